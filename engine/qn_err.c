/* qn_err.c: names and messages of the error table in qn_err.h. */
#include "qn_err.h"

#include <string.h>

struct qn_err_entry {
    int code;         /* the negative code (or 0) */
    const char *name; /* short snake_case name */
    const char *msg;  /* human message */
};

static const struct qn_err_entry qn__errs[] = {
#define QN_ERR_ROW(sym, val, name, msg) {val, name, msg},
    QN_ERR_MAP(QN_ERR_ROW)
#undef QN_ERR_ROW
};

static const struct qn_err_entry *qn__err_find(int err)
{
    for (size_t i = 0; i < sizeof qn__errs / sizeof qn__errs[0]; i++)
        if (qn__errs[i].code == err)
            return &qn__errs[i];
    return NULL;
}

const char *qn_err_name(int err)
{
    const struct qn_err_entry *e = qn__err_find(err);
    return e ? e->name : "unknown";
}

const char *qn_err_msg(int err)
{
    const struct qn_err_entry *e = qn__err_find(err);
    return e ? e->msg : "unknown error";
}

