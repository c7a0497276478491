/*
 * cmd_user.c: `qn user add NAME [--admin] | list | revoke NAME`, the command
 * line over the jobs layer's users module (users.h). Only this file prints.
 */
#include "cmd_user.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "catalog.h"
#include "qn_err.h"
#include "store.h"
#include "users.h"

#define USERS_DEFAULT_DB "quasineuron.db"

/* ---- qn user ---------------------------------------------------------------------- */

static const char cmd_user__usage[] = "usage: qn user add NAME [--admin] [--db PATH]\n"
                                   "       qn user list [--db PATH]\n"
                                   "       qn user revoke NAME [--db PATH]\n";

struct cmd_user_args {
    const char *sub;  /* "add", "list", "revoke" */
    const char *name; /* NAME or NULL */
    const char *db;
    int admin;
};

static int cmd_user__parse(int argc, char **argv, struct cmd_user_args *a)
{
    memset(a, 0, sizeof *a);
    a->db = USERS_DEFAULT_DB;
    if (argc < 2)
        return QN_EINVAL;
    a->sub = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--admin") == 0 && strcmp(a->sub, "add") == 0)
            a->admin = 1;
        else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc && argv[i + 1][0])
            a->db = argv[++i];
        else if (strncmp(argv[i], "--db=", 5) == 0 && argv[i][5])
            a->db = argv[i] + 5;
        else if (argv[i][0] != '-' && !a->name)
            a->name = argv[i];
        else
            return QN_EINVAL;
    }
    int want_name = strcmp(a->sub, "add") == 0 || strcmp(a->sub, "revoke") == 0;
    if (!want_name && strcmp(a->sub, "list") != 0)
        return QN_EINVAL;
    return (want_name != 0) == (a->name != NULL) ? 0 : QN_EINVAL;
}

static int cmd_user__cmd_add(struct store *s, const struct cmd_user_args *a)
{
    char token[USERS_TOKEN_HEX + 1];
    int64_t id = 0;
    int rc = users_add(s, a->name, a->admin, token, &id);
    if (rc == QN_EINVAL)
        fprintf(stderr, "qn: '%s' is not a valid user name (letters, digits, '.', '_', '-'; "
                "at most %d bytes; not 'local' or 'anonymous')\n", a->name, USERS_NAME_MAX - 1);
    else if (rc == QN_EEXIST)
        fprintf(stderr, "qn: a user named '%s' already exists\n", a->name);
    else if (rc)
        fprintf(stderr, "qn: cannot add the user: %s\n",
                rc == QN_EIO ? "no random bytes" : catalog_errmsg(s));
    if (rc)
        return rc == QN_EINVAL || rc == QN_EEXIST ? 2 : 1;
    printf("%s\n", token);
    fprintf(stderr, "qn: user '%s'%s added (id %lld); the token above is shown only once: "
            "send it as \"Authorization: Bearer <token>\"\n",
            a->name, a->admin ? " (admin)" : "", (long long)id);
    memset(token, 0, sizeof token);
    return 0;
}

static int cmd_user__cmd_list(struct store *s)
{
    json_t *arr = NULL;
    int rc = users_list(s, &arr);
    if (rc) {
        fprintf(stderr, "qn: cannot list users: %s\n", catalog_errmsg(s));
        return 1;
    }
    size_t i;
    json_t *u;
    json_array_foreach(arr, i, u) {
        char *t = json_dumps(u, JSON_COMPACT);
        if (t)
            puts(t);
        free(t);
    }
    json_decref(arr);
    return 0;
}

static int cmd_user__cmd_revoke(struct store *s, const struct cmd_user_args *a)
{
    int rc = users_revoke(s, a->name);
    if (rc == QN_ENOTFOUND)
        fprintf(stderr, "qn: no active user named '%s'\n", a->name);
    else if (rc)
        fprintf(stderr, "qn: cannot revoke: %s\n", catalog_errmsg(s));
    else
        fprintf(stderr, "qn: user '%s' revoked; their token no longer works\n", a->name);
    return rc == QN_ENOTFOUND ? 2 : rc ? 1 : 0;
}

int cmd_user_main(int argc, char **argv)
{
    struct cmd_user_args a;
    if (cmd_user__parse(argc, argv, &a)) {
        fputs(cmd_user__usage, stderr);
        return 2;
    }
    struct store *s = NULL;
    char msg[STORE_MSG_MAX];
    if (store_open(a.db, &s, msg, sizeof msg)) {
        fprintf(stderr, "qn: %s: %s\n", a.db, msg);
        return 1;
    }
    int code = strcmp(a.sub, "add") == 0    ? cmd_user__cmd_add(s, &a)
               : strcmp(a.sub, "list") == 0 ? cmd_user__cmd_list(s)
                                            : cmd_user__cmd_revoke(s, &a);
    store_close(s);
    return code;
}
