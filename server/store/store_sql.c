/*
 * store_sql.c: the statement helpers every file of the store shares
 * (store_internal.h): prepare, step, bind, read columns, get one row, list
 * a page; and the write transactions (store_tx.h).
 */
#include <assert.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "store_internal.h"

int store_begin(struct store *s)
{
    return store__exec(s, "BEGIN IMMEDIATE");
}

int store_end(struct store *s, int rc)
{
    if (rc == 0)
        rc = store__exec(s, "COMMIT");
    /* SQLite may have rolled back already (SQLITE_FULL does): a ROLLBACK then
     * fails and its "no transaction is active" would replace the real error
     * message a caller reports. */
    if (rc && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Prepares sql on s; 0 or a qn_err code. */
int store__prep(struct store *s, const char *sql, sqlite3_stmt **st)
{
    return store_sqlite_err(sqlite3_prepare_v2(s->db, sql, -1, st, NULL));
}

/* Steps a statement that returns no rows and finalizes it. */
int store__exec_stmt(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_sqlite_err(rc);
}

int store__exec(struct store *s, const char *sql)
{
    return store_sqlite_err(sqlite3_exec(s->db, sql, NULL, NULL, NULL));
}

/* Copies a text column into buf (cap bytes), "" for NULL. */
void store__col_text(sqlite3_stmt *st, int col, char *buf, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(buf, cap, "%s", t ? (const char *)t : "");
}

/* A new copy of a text column, NULL for NULL; *err = QN_ENOMEM on failure. */
char *store__col_dup(sqlite3_stmt *st, int col, int *err)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    if (!t)
        return NULL;
    char *d = strdup((const char *)t);
    if (!d)
        *err = QN_ENOMEM;
    return d;
}

/* Binds text, or NULL when t is NULL. */
int store__bind_text(sqlite3_stmt *st, int i, const char *t)
{
    return t ? sqlite3_bind_text(st, i, t, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* Binds a double, NULL when not finite. */
void store__bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Binds an id, NULL when 0. */
void store__bind_id(sqlite3_stmt *st, int i, int64_t v)
{
    if (v > 0)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/*
 * Reads the first row of `sql` (one parameter ?1: the text when not NULL,
 * else id) into out with `row`; what a failing row read left is freed with
 * free_row. 0, QN_ENOTFOUND when there is no row, or another qn_err code.
 */
int store__get_by(struct store *s, const char *sql, int64_t id, const char *text,
                  int (*row)(sqlite3_stmt *, void *), void (*free_row)(void *), void *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, sql, &st);
    if (rc)
        return rc;
    if (text)
        store__bind_text(st, 1, text);
    else
        sqlite3_bind_int64(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = row(st, out);
        if (rc)
            free_row(out);
    } else {
        rc = rc == SQLITE_DONE ? QN_ENOTFOUND : store_sqlite_err(rc);
    }
    sqlite3_finalize(st);
    return rc;
}

const char *store__owner(const struct store *s) { return s->owner[0] ? s->owner : "local"; }

/* One lookup of store__get_by_name: name within owner, or within owner then local. */
static int store__get_named(struct store *s, const char *cols, const char *name, size_t len,
                            const char *owner, int then_local, int (*row)(sqlite3_stmt *, void *),
                            void (*free_row)(void *), void *out)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "%s%s", cols,
             then_local ? "WHERE name = ?1 AND owner IN (?2, 'local')"
                          " ORDER BY owner = ?2 DESC, id DESC LIMIT 1"
                        : "WHERE name = ?1 AND owner = ?2 ORDER BY id DESC LIMIT 1");
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, name, (int)len, SQLITE_TRANSIENT);
    store__bind_text(st, 2, owner);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        rc = row(st, out);
        if (rc)
            free_row(out);
    } else {
        rc = rc == SQLITE_DONE ? QN_ENOTFOUND : store_sqlite_err(rc);
    }
    sqlite3_finalize(st);
    return rc;
}

int store__get_by_name(struct store *s, const char *cols, const char *name,
                       int (*row)(sqlite3_stmt *, void *), void (*free_row)(void *), void *out)
{
    const char *slash = strchr(name, '/');
    if (slash && slash > name && slash[1]) {
        char owner[64];
        size_t n = (size_t)(slash - name);
        if (n < sizeof owner) {
            memcpy(owner, name, n);
            owner[n] = '\0';
            int rc = store__get_named(s, cols, slash + 1, strlen(slash + 1), owner, 0, row,
                                      free_row, out);
            if (rc != QN_ENOTFOUND)
                return rc;
        }
    }
    return store__get_named(s, cols, name, strlen(name), store__owner(s), 1, row, free_row, out);
}

/* Frees an array of n `size`-byte records, each through `release`. */
void store__free_array(void *arr, size_t n, size_t size, void (*release)(void *))
{
    for (size_t i = 0; arr && i < n; i++)
        release((char *)arr + i * size);
    free(arr);
}

/* Steps st, appending each row (filled by `row`) to the growing array
 * *arr of `size`-byte records (*len used, *cap allocated); finalizes st. */
int store__collect(sqlite3_stmt *st, size_t size, int (*row)(sqlite3_stmt *, void *),
                          char **arr, size_t *len)
{
    size_t cap = 0;
    int rc = 0, sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        if (*len == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char *na = ncap > SIZE_MAX / size ? NULL : realloc(*arr, ncap * size);
            if (!na) {
                rc = QN_ENOMEM;
                break;
            }
            *arr = na;
            cap = ncap;
        }
        rc = row(st, *arr + *len * size);
        (*len)++;
        if (rc)
            break;
    }
    if (!rc && sr != SQLITE_DONE)
        rc = store_sqlite_err(sr);
    sqlite3_finalize(st);
    return rc;
}

/*
 * One page of a list query `sql` (ending in STORE__PAGE): the rows with
 * id > after, at most limit (0: all), as a new array *out of *n `size`-byte
 * records filled by `row`; on failure *out is NULL and what was read is
 * freed through `release`. Shared by the device, dataset and job lists.
 */
int store__list(struct store *s, const char *sql, int64_t after, size_t limit,
                size_t size, int (*row)(sqlite3_stmt *, void *), void (*release)(void *),
                void **out, size_t *n)
{
    *out = NULL;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
    char *arr = NULL;
    size_t len = 0;
    rc = store__collect(st, size, row, &arr, &len);
    if (rc) {
        store__free_array(arr, len, size, release);
        return rc;
    }
    *out = arr;
    *n = len;
    return 0;
}

/* Finalizes st and returns rc when a bind failed (rc != 0), else steps it
 * as store__exec_stmt. */
int store__exec_bound(sqlite3_stmt *st, int rc)
{
    if (rc) {
        sqlite3_finalize(st);
        return rc;
    }
    return store__exec_stmt(st);
}

/* store__exec_bound for an INSERT of one row; the new row id in *id (may be NULL). */
int store__exec_insert(struct store *s, sqlite3_stmt *st, int rc, int64_t *id)
{
    rc = store__exec_bound(st, rc);
    assert(rc || sqlite3_changes(s->db) == 1);
    if (rc == 0 && id)
        *id = sqlite3_last_insert_rowid(s->db);
    return rc;
}
