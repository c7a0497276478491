/*
 * store_users.c: the rows of the users table (see store_users.h).
 */
#include "store_users.h"

#include <assert.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "store_internal.h"

#define STORE__USER_COLS "SELECT id, name, admin, created, revoked FROM users "

int store_user_insert(struct store *s, const char *name, int admin, const char *token_hash,
                      int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "INSERT INTO users (name, admin, token_hash) VALUES (?1, ?2, ?3)", &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, name);
    sqlite3_bind_int(st, 2, admin ? 1 : 0);
    store__bind_text(st, 3, token_hash);
    return store__exec_insert(s, st, 0, id);
}

int store_user_revoke(struct store *s, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "UPDATE users SET revoked = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
                         " WHERE name = ?1 AND revoked IS NULL",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, name);
    rc = store__exec_stmt(st);
    assert(rc || sqlite3_changes(s->db) <= 1); /* users_active_name: one active per name */
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

/* Fills a struct store_user from the current row of a STORE__USER_COLS query. */
static int store__user_row(sqlite3_stmt *st, void *p)
{
    struct store_user *u = p;
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(st, 0);
    store__col_text(st, 1, u->name, sizeof u->name);
    u->admin = sqlite3_column_int(st, 2) != 0;
    store__col_text(st, 3, u->created, sizeof u->created);
    store__col_text(st, 4, u->revoked, sizeof u->revoked);
    return 0;
}

/* A user row owns nothing. */
static void store__user_free_v(void *p)
{
    (void)p;
}

int store_user_list(struct store *s, struct store_user **out, size_t *n)
{
    void *arr = NULL;
    int rc = store__list(s, STORE__USER_COLS STORE__PAGE, 0, 0, sizeof **out, store__user_row,
                         store__user_free_v, &arr, n);
    *out = arr;
    return rc;
}

int store_user_count_active(struct store *s, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "SELECT count(*) FROM users WHERE revoked IS NULL", &st);
    if (rc)
        return rc;
    int sr = sqlite3_step(st);
    rc = sr == SQLITE_ROW ? 0 : store_sqlite_err(sr == SQLITE_DONE ? SQLITE_ERROR : sr);
    if (rc == 0)
        *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int store_user_active(struct store *s, int64_t id, int *active)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "SELECT count(*) FROM users WHERE id = ?1 AND revoked IS NULL", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int sr = sqlite3_step(st);
    rc = sr == SQLITE_ROW ? 0 : store_sqlite_err(sr == SQLITE_DONE ? SQLITE_ERROR : sr);
    if (rc == 0)
        *active = sqlite3_column_int64(st, 0) > 0;
    sqlite3_finalize(st);
    return rc;
}

int store_user_by_token_hash(struct store *s, const char *token_hash, struct store_user *out)
{
    return store__get_by(s, STORE__USER_COLS "WHERE token_hash = ?1 AND revoked IS NULL", 0,
                         token_hash, store__user_row, store__user_free_v, out);
}
