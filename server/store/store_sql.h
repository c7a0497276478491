/*
 * store_sql.h: the store's own SQL helpers and row readers, shared by the
 * store's files (store.c defines them; store_catalog.c reads through them).
 *
 * Only files of server/store/ include this header: the layers above see
 * records (store.h, store_catalog.h), never a statement. Every helper
 * returns 0 or a qn_err code mapped by store_sqlite_err.
 */
#ifndef QN_STORE_SQL_H
#define QN_STORE_SQL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The key clauses of the get functions: by id, and the newest by name or by job. */
#define STORE__BY_ID "WHERE id = ?1"
#define STORE__BY_NAME "WHERE name = ?1 ORDER BY id DESC LIMIT 1"
#define STORE__BY_JOB "WHERE job_id = ?1 ORDER BY id DESC LIMIT 1"

/* The list page end every list query shares: ?1 after, ?2 limit. */
#define STORE__PAGE "WHERE id > ?1 ORDER BY id LIMIT ?2"

/* The columns store__job_row reads, in its order. */
#define STORE__JOB_COLS                                                                         \
    "SELECT id, type, name, owner, priority, state, spec, result, error, created, started,"     \
    " finished FROM jobs "

/* Prepares sql on s into *st (finalize it). */
int store__prep(struct store *s, const char *sql, sqlite3_stmt **st);

/* Copies a text column into buf (cap bytes), "" for NULL. */
void store__col_text(sqlite3_stmt *st, int col, char *buf, size_t cap);
/* A new copy of a text column, NULL for NULL; *err = QN_ENOMEM on failure. */
char *store__col_dup(sqlite3_stmt *st, int col, int *err);
/* A REAL column, NaN for NULL. */
double store__col_real(sqlite3_stmt *st, int col);
/* Binds text, or NULL when t is NULL. */
int store__bind_text(sqlite3_stmt *st, int i, const char *t);

/*
 * Reads the first row of `sql` (one parameter ?1: the text when not NULL,
 * else id) into out with `row`; what a failing row read left is freed with
 * free_row. 0, QN_ENOTFOUND when there is no row, or another qn_err code.
 */
int store__get_by(struct store *s, const char *sql, int64_t id, const char *text,
                  int (*row)(sqlite3_stmt *, void *), void (*free_row)(void *), void *out);

/* Steps st, appending each row (filled by `row`) to the growing array *arr
 * of `size`-byte records (*len used); finalizes st. On failure the records
 * read so far stay in *arr (*len of them) for the caller to free. */
int store__collect(sqlite3_stmt *st, size_t size, int (*row)(sqlite3_stmt *, void *),
                   char **arr, size_t *len);

/* Frees an array of n `size`-byte records, each through `release`. */
void store__free_array(void *arr, size_t n, size_t size, void (*release)(void *));

/*
 * One page of a list query `sql` (ending in STORE__PAGE): the rows with
 * id > after, at most limit (0: all), as a new array *out of *n `size`-byte
 * records filled by `row`; on failure *out is NULL and what was read is
 * freed through `release`.
 */
int store__list(struct store *s, const char *sql, int64_t after, size_t limit, size_t size,
                int (*row)(sqlite3_stmt *, void *), void (*release)(void *), void **out,
                size_t *n);

/* Row readers of the record types (void * is the record), and their frees. */
int store__job_row(sqlite3_stmt *st, void *p);            /* STORE__JOB_COLS */
void store__job_free_v(void *p);
int store__surrogate_row(sqlite3_stmt *st, void *p);      /* STORE__SURROGATE_COLS */
void store__surrogate_free_v(void *p);
int store__model_row(sqlite3_stmt *st, void *p);          /* STORE__MODEL_COLS */
void store__model_free_v(void *p);

#endif
