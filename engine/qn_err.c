/* qn_err.c: names, HTTP statuses, wire names and messages of the error table in qn_err.h. */
#include "qn_err.h"

#include <stddef.h>

struct qn_err_entry {
    int code;         /* the negative code (or 0) */
    const char *name; /* short snake_case name */
    unsigned status;  /* HTTP status */
    const char *wire; /* the JSON error "code" */
    const char *msg;  /* human message */
};

static const struct qn_err_entry qn__errs[] = {
#define QN_ERR_ROW(sym, val, name, status, wire, msg) {val, name, status, wire, msg},
    QN_ERR_MAP(QN_ERR_ROW)
#undef QN_ERR_ROW
};

_Static_assert(sizeof qn__errs / sizeof qn__errs[0] == QN_ERR_COUNT,
               "QN_ERR_COUNT is the number of rows of QN_ERR_MAP");

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

unsigned qn_err_status(int err)
{
    const struct qn_err_entry *e = qn__err_find(err);
    return e ? e->status : 500;
}

const char *qn_err_wire(int err)
{
    const struct qn_err_entry *e = qn__err_find(err);
    return e ? e->wire : "unknown";
}

int qn_err_at(int i, int *code)
{
    if (i < 0 || i >= QN_ERR_COUNT)
        return QN_ERANGE;
    *code = qn__errs[i].code;
    return 0;
}
