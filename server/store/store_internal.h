/*
 * store_internal.h: what the store's files (store.c, store_sql.c,
 * store_data.c, store_jobs.c, store_models.c, store_queue.c, store_users.c,
 * migrate.c) share and nothing outside server/store/ includes: the
 * connection struct and the statement helpers.
 *
 * Every helper returns 0 or a qn_err code mapped by store_sqlite_err.
 */
#ifndef QN_STORE_INTERNAL_H
#define QN_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "store_tx.h"

struct store {
    sqlite3 *db; /* the connection (owned) */
    char owner[64]; /* whose names resolve first and who owns new rows ("" = local) */
    struct store_changes *changes; /* counts this connection's commits (borrowed; NULL: none) */
    unsigned dirty; /* bit t: the open transaction changed table t (store_watch) */
    int autockpt;   /* WAL pages that start a checkpoint after a commit (store_watch) */
};

/* The connection's owner: its user name, or "local". */
const char *store__owner(const struct store *s);

/* The newest row named `name` among cols' table (a SELECT ... FROM t
 * prefix with an owner column): "owner/name" names one owner's; a bare name
 * the connection owner's, else local's. */
int store__get_by_name(struct store *s, const char *cols, const char *name,
                       int (*row)(sqlite3_stmt *, void *), void (*free_row)(void *), void *out);

/* The key clauses of the get functions: by id, and the newest by job (by
 * name: store__get_by_name). */
#define STORE__BY_ID "WHERE id = ?1"
#define STORE__BY_JOB "WHERE job_id = ?1 ORDER BY id DESC LIMIT 1"

/* The list page end every list query shares: ?1 after, ?2 limit. */
#define STORE__PAGE "WHERE id > ?1 ORDER BY id LIMIT ?2"

/* The columns store__job_row reads, in its order. */
#define STORE__JOB_COLS                                                                         \
    "SELECT id, type, name, owner, priority, state, spec, result, error, created, started,"     \
    " finished, launch_handle FROM jobs "

/* The connection's SQLite handle (borrowed): for the store's own files, and
 * for tests that inspect or damage a database on purpose. */
struct sqlite3 *store_sqlite(struct store *s);

/* ---- statements (store_sql.c) ---- */

/* Prepares sql on s into *st (finalize it). */
int store__prep(struct store *s, const char *sql, sqlite3_stmt **st);
/* Steps a statement that returns no rows and finalizes it. */
int store__exec_stmt(sqlite3_stmt *st);
/* Runs sql (no rows) on s. */
int store__exec(struct store *s, const char *sql);
/* Copies a text column into buf (cap bytes), "" for NULL. */
void store__col_text(sqlite3_stmt *st, int col, char *buf, size_t cap);
/* A new copy of a text column, NULL for NULL; *err = QN_ENOMEM on failure. */
char *store__col_dup(sqlite3_stmt *st, int col, int *err);
/* Binds text (copied), or NULL when t is NULL. */
int store__bind_text(sqlite3_stmt *st, int i, const char *t);
/* Binds a double, NULL when not finite. */
void store__bind_real(sqlite3_stmt *st, int i, double v);
/* Binds an id, NULL when 0. */
void store__bind_id(sqlite3_stmt *st, int i, int64_t v);
/* The first row of sql (?1: text when not NULL, else id) into out with
 * row; QN_ENOTFOUND when there is none. */
int store__get_by(struct store *s, const char *sql, int64_t id, const char *text,
                  int (*row)(sqlite3_stmt *, void *), void (*free_row)(void *), void *out);
/* A REAL column, NaN for NULL (store_models.c). */
double store__col_real(sqlite3_stmt *st, int col);
/* Steps st, appending each row (filled by `row`) to the growing array *arr
 * of `size`-byte records (*len used); finalizes st. On failure the records
 * read so far stay in *arr (*len of them) for the caller to free. */
int store__collect(sqlite3_stmt *st, size_t size, int (*row)(sqlite3_stmt *, void *),
                   char **arr, size_t *len);
/* Frees an array of n `size`-byte records, each through `release`. */
void store__free_array(void *arr, size_t n, size_t size, void (*release)(void *));
/* One page of a list query ending in STORE__PAGE, as a new array *out of *n records. */
int store__list(struct store *s, const char *sql, int64_t after, size_t limit, size_t size,
                int (*row)(sqlite3_stmt *, void *), void (*release)(void *), void **out, size_t *n);
/* Finalizes st and returns rc when a bind failed (rc != 0), else steps it. */
int store__exec_bound(sqlite3_stmt *st, int rc);
/* store__exec_bound for an INSERT; the new row id in *id (may be NULL). */
int store__exec_insert(struct store *s, sqlite3_stmt *st, int rc, int64_t *id);

/* ---- row readers of the record types (void * is the record), and their frees ---- */

int store__job_row(sqlite3_stmt *st, void *p);       /* STORE__JOB_COLS (store_jobs.c) */
void store__job_free_v(void *p);
int store__surrogate_row(sqlite3_stmt *st, void *p); /* surrogates' columns (store_models.c) */
void store__surrogate_free_v(void *p);
int store__model_row(sqlite3_stmt *st, void *p);     /* models' columns (store_models.c) */
void store__model_free_v(void *p);

/* ---- a job's outputs (store_jobs.c) ---- */

/* Deletes what an earlier attempt of job_id stored in `table`, in the caller's transaction. */
int store__drop_attempt(struct store *s, const char *table, int64_t job_id);
/* Inserts one output row of a job with add(s, row, id), in place of an earlier attempt's. */
int store__job_output(struct store *s, const char *table, int64_t job_id,
                      int (*add)(struct store *, const void *, int64_t *), const void *row,
                      int64_t *id);

#endif
