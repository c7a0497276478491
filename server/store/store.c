/*
 * store.c: the SQLite store (see store.h for the contract).
 *
 * Statements are prepared per call: the store is not a hot path (a sweep
 * writes a few blocks, a training run a few metrics per second), and this
 * keeps every function self-contained with one cleanup ladder. SQLite's
 * result codes become qn_err codes in store_sqlite_err, the one mapping point
 * (public, so modules that keep their own SQL map errors the same way).
 * The helpers and row readers the store's other files use (store_catalog.c)
 * are declared in store_sql.h.
 */
#include "store.h"
#include "store_sql.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "migrate.h"
#include "qn_err.h"

struct store {
    sqlite3 *db; /* the connection (owned) */
};

struct store_dswriter {
    struct store *s;    /* borrowed */
    int64_t id;         /* the dataset's row id */
    size_t n_cols;      /* floats per row */
    size_t n_rows;      /* rows appended so far */
    int64_t block;      /* index of the block being filled */
    size_t fill;        /* rows in buf */
    float *buf;         /* (STORE_BLOCK_ROWS, n_cols) block being filled (owned) */
};

static const char *const store__states[] = {"waiting",   "queued", "running",
                                            "succeeded", "failed", "canceled"};

/* Maps an SQLite result code to the qn_err table. */
int store_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return 0;
    case SQLITE_FULL: return QN_EFULL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return QN_EBUSY;
    case SQLITE_NOMEM: return QN_ENOMEM;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? QN_EEXIST
                                                                                    : QN_EDB;
    default: return QN_EDB;
    }
}

/* Prepares sql on s; 0 or a qn_err code. */
int store__prep(struct store *s, const char *sql, sqlite3_stmt **st)
{
    return store_sqlite_err(sqlite3_prepare_v2(s->db, sql, -1, st, NULL));
}

/* Steps a statement that returns no rows and finalizes it. */
static int store__exec_stmt(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : store_sqlite_err(rc);
}

static int store__exec(struct store *s, const char *sql)
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
static void store__bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Binds an id, NULL when 0. */
static void store__bind_id(sqlite3_stmt *st, int i, int64_t v)
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
static int store__exec_bound(sqlite3_stmt *st, int rc)
{
    if (rc) {
        sqlite3_finalize(st);
        return rc;
    }
    return store__exec_stmt(st);
}

/* store__exec_bound for an INSERT; the new row id in *id (may be NULL). */
static int store__exec_insert(struct store *s, sqlite3_stmt *st, int rc, int64_t *id)
{
    rc = store__exec_bound(st, rc);
    if (rc == 0 && id)
        *id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

#define STORE__BUSY_MS 5000 /* how long a connection waits for another's lock */

/*
 * Switches db to WAL. On a database that several processes open for the
 * first time at once, this can answer SQLITE_BUSY ("database is locked")
 * at once, without waiting in the busy handler: the switch needs the
 * exclusive lock, and SQLite does not wait where waiting could deadlock.
 * test_store's concurrent first open failed so, under load. So it is tried
 * again for as long as the busy timeout would have waited.
 */
static int store__wal(sqlite3 *db)
{
    int rc = SQLITE_BUSY;
    for (int ms = 0; ms <= STORE__BUSY_MS && rc == SQLITE_BUSY; ms += 2) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_BUSY)
            sqlite3_sleep(2);
    }
    return rc;
}

/* Applies the connection settings every handle needs. */
static int store__configure(sqlite3 *db)
{
    sqlite3_extended_result_codes(db, 1); /* tells UNIQUE from other constraints */
    int rc = sqlite3_busy_timeout(db, STORE__BUSY_MS);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = store__wal(db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    return store_sqlite_err(rc);
}

int store_open(const char *path, struct store **out, char *msg, size_t cap)
{
    *out = NULL;
    if (msg && cap)
        msg[0] = '\0';
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return QN_ENOMEM;
    int rc = store_sqlite_err(sqlite3_open_v2(path, &s->db,
                                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                            SQLITE_OPEN_NOMUTEX,
                                        NULL));
    if (rc) {
        if (msg && cap)
            snprintf(msg, cap, "cannot open database %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    rc = store__configure(s->db);
    if (rc) {
        if (msg && cap)
            snprintf(msg, cap, "cannot configure database %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    rc = migrate_apply(s->db, msg, cap);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    sqlite3_close(s->db);
    free(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

const char *store_errmsg(const struct store *s)
{
    return sqlite3_errmsg(s->db);
}

int store_schema_version(struct store *s, int *out)
{
    return migrate_version(s->db, out);
}

int store_integrity_check(struct store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "PRAGMA integrity_check", &st);
    if (rc)
        return rc;
    rc = QN_EDB;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t && strcmp((const char *)t, "ok") == 0 && sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- devices ---------------------------------------------------------- */

int store_device_insert(struct store *s, const char *name, const char *kind, const char *spec,
                        int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "INSERT INTO devices (name, kind, spec) VALUES (?1, ?2, ?3)", &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, name);
    store__bind_text(st, 2, kind);
    store__bind_text(st, 3, spec);
    return store__exec_insert(s, st, 0, id);
}

#define STORE__DEVICE_COLS "SELECT id, name, kind, spec, created FROM devices "

/* Fills *d from the current row of a STORE__DEVICE_COLS query. */
static int store__device_row(sqlite3_stmt *st, void *p)
{
    struct store_device *d = p;
    int err = 0;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(st, 0);
    d->has_name = sqlite3_column_type(st, 1) != SQLITE_NULL;
    store__col_text(st, 1, d->name, sizeof d->name);
    store__col_text(st, 2, d->kind, sizeof d->kind);
    d->spec = store__col_dup(st, 3, &err);
    store__col_text(st, 4, d->created, sizeof d->created);
    return err;
}

static void store__device_free_v(void *p) { store_device_free(p); }

int store_device_get(struct store *s, int64_t id, struct store_device *out)
{
    return store__get_by(s, STORE__DEVICE_COLS STORE__BY_ID, id, NULL, store__device_row,
                         store__device_free_v, out);
}

int store_device_get_by_name(struct store *s, const char *name, struct store_device *out)
{
    return store__get_by(s, STORE__DEVICE_COLS "WHERE name = ?1", 0, name, store__device_row,
                         store__device_free_v, out);
}

void store_device_free(struct store_device *d)
{
    if (d) {
        free(d->spec);
        d->spec = NULL;
    }
}

void store_device_list_free(struct store_device *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store__device_free_v);
}

int store_device_list(struct store *s, int64_t after, size_t limit, struct store_device **out,
                      size_t *n)
{
    void *arr = NULL;
    int rc = store__list(s, STORE__DEVICE_COLS STORE__PAGE, after, limit, sizeof **out,
                         store__device_row, store__device_free_v, &arr, n);
    *out = arr;
    return rc;
}

/* ---- datasets: writing -------------------------------------------------- */

/* The JSON array text of column names cols[n] into a new string. */
static int store__columns_json(size_t n, const char *const *cols, char **out)
{
    json_t *arr = json_array();
    int rc = arr ? 0 : QN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!cols[i] || json_array_append_new(arr, json_string(cols[i])) != 0)
            rc = cols[i] ? QN_ENOMEM : QN_EINVAL;
    if (rc == 0) {
        *out = json_dumps(arr, JSON_COMPACT);
        rc = *out ? 0 : QN_ENOMEM;
    }
    json_decref(arr);
    return rc;
}

/* Inserts the dataset row (inside the writer's transaction). */
static int store__dataset_row_insert(struct store *s, const char *name, const char *source,
                                     size_t n_cols, const char *cols_json, int64_t job_id,
                                     int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO datasets (name, source, n_cols, columns, block_rows, job_id)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, name);
    store__bind_text(st, 2, source);
    sqlite3_bind_int64(st, 3, (int64_t)n_cols);
    store__bind_text(st, 4, cols_json);
    sqlite3_bind_int64(st, 5, STORE_BLOCK_ROWS);
    store__bind_id(st, 6, job_id);
    return store__exec_insert(s, st, 0, id);
}

/*
 * Deletes what an earlier attempt of job job_id stored in `table` (datasets,
 * surrogates or models; blocks go with their dataset). A job commits its
 * output before its end, so a kill -9 between the two leaves the job
 * `running` with its output stored; the restart runs it again, and the new
 * output must replace that one, not sit beside it. Nothing can use the old
 * row: the job's dependents wait for it to succeed. In the caller's
 * transaction.
 */
static int store__drop_attempt(struct store *s, const char *table, int64_t job_id)
{
    char sql[64];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE job_id = ?1", table);
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    return store__exec_stmt(st);
}

/* Inserts one output row of a job with add(s, row, id), in place of an earlier attempt's. */
static int store__job_output(struct store *s, const char *table, int64_t job_id,
                             int (*add)(struct store *, const void *, int64_t *),
                             const void *row, int64_t *id)
{
    if (job_id <= 0)
        return add(s, row, id);
    int rc = store__exec(s, "BEGIN IMMEDIATE");
    if (rc)
        return rc;
    rc = store__drop_attempt(s, table, job_id);
    if (rc == 0)
        rc = add(s, row, id);
    if (rc == 0)
        rc = store__exec(s, "COMMIT");
    if (rc)
        store__exec(s, "ROLLBACK");
    return rc;
}

int store_dataset_begin(struct store *s, const char *name, const char *source, size_t n_cols,
                        const char *const *columns, int64_t job_id, struct store_dswriter **out)
{
    *out = NULL;
    if (n_cols == 0 || n_cols > STORE_MAX_COLS)
        return QN_EINVAL;
    char *cols_json = NULL;
    int rc = store__columns_json(n_cols, columns, &cols_json);
    if (rc)
        return rc;
    struct store_dswriter *w = calloc(1, sizeof *w);
    if (!w) {
        rc = QN_ENOMEM;
        goto fail_writer;
    }
    w->buf = malloc(STORE_BLOCK_ROWS * n_cols * sizeof(float));
    if (!w->buf) {
        rc = QN_ENOMEM;
        goto fail_buf;
    }
    w->s = s;
    w->n_cols = n_cols;
    rc = store__exec(s, "BEGIN IMMEDIATE");
    if (rc)
        goto fail_buf;
    rc = job_id > 0 ? store__drop_attempt(s, "datasets", job_id) : 0;
    if (rc == 0)
        rc = store__dataset_row_insert(s, name, source, n_cols, cols_json, job_id, &w->id);
    if (rc)
        goto fail_insert;
    free(cols_json);
    *out = w;
    return 0;
fail_insert:
    store__exec(s, "ROLLBACK");
fail_buf:
    free(w->buf);
    free(w);
fail_writer:
    free(cols_json);
    return rc;
}

/* Writes the buffered rows as block w->block and starts the next one. */
static int store__block_flush(struct store_dswriter *w)
{
    if (w->fill == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(w->s,
                         "INSERT INTO dataset_blocks (dataset_id, block, n_rows, data)"
                         " VALUES (?1, ?2, ?3, ?4)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, w->id);
    sqlite3_bind_int64(st, 2, w->block);
    sqlite3_bind_int64(st, 3, (int64_t)w->fill);
    sqlite3_bind_blob(st, 4, w->buf, (int)(w->fill * w->n_cols * sizeof(float)), SQLITE_STATIC);
    rc = store__exec_stmt(st);
    if (rc == 0) {
        w->block++;
        w->fill = 0;
    }
    return rc;
}

int store_dataset_append(struct store_dswriter *w, const float *rows, size_t n_rows)
{
    while (n_rows > 0) {
        size_t take = STORE_BLOCK_ROWS - w->fill;
        if (take > n_rows)
            take = n_rows;
        memcpy(w->buf + w->fill * w->n_cols, rows, take * w->n_cols * sizeof(float));
        w->fill += take;
        w->n_rows += take;
        rows += take * w->n_cols;
        n_rows -= take;
        if (w->fill == STORE_BLOCK_ROWS) {
            int rc = store__block_flush(w);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* Records the final row count on the dataset row. */
static int store__dataset_set_rows(struct store_dswriter *w)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(w->s, "UPDATE datasets SET n_rows = ?1 WHERE id = ?2", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, (int64_t)w->n_rows);
    sqlite3_bind_int64(st, 2, w->id);
    return store__exec_stmt(st);
}

int store_dataset_finish(struct store_dswriter *w, int64_t *id)
{
    int rc = store__block_flush(w);
    if (rc == 0)
        rc = store__dataset_set_rows(w);
    if (rc == 0)
        rc = store__exec(w->s, "COMMIT");
    if (rc) {
        store_dataset_abort(w);
        return rc;
    }
    if (id)
        *id = w->id;
    free(w->buf);
    free(w);
    return 0;
}

void store_dataset_abort(struct store_dswriter *w)
{
    if (!w)
        return;
    if (!sqlite3_get_autocommit(w->s->db))
        store__exec(w->s, "ROLLBACK");
    free(w->buf);
    free(w);
}

/* ---- datasets: reading -------------------------------------------------- */

#define STORE__DATASET_COLS                                                                     \
    "SELECT id, name, source, n_rows, n_cols, columns, block_rows, job_id, created FROM datasets "

static int store__dataset_row(sqlite3_stmt *st, void *p)
{
    struct store_dataset *d = p;
    int err = 0;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(st, 0);
    d->has_name = sqlite3_column_type(st, 1) != SQLITE_NULL;
    store__col_text(st, 1, d->name, sizeof d->name);
    store__col_text(st, 2, d->source, sizeof d->source);
    d->n_rows = (size_t)sqlite3_column_int64(st, 3);
    d->n_cols = (size_t)sqlite3_column_int64(st, 4);
    d->columns = store__col_dup(st, 5, &err);
    d->block_rows = (size_t)sqlite3_column_int64(st, 6);
    d->job_id = sqlite3_column_int64(st, 7);
    store__col_text(st, 8, d->created, sizeof d->created);
    return err;
}

static void store__dataset_free_v(void *p) { store_dataset_free(p); }

int store_dataset_get(struct store *s, int64_t id, struct store_dataset *out)
{
    return store__get_by(s, STORE__DATASET_COLS STORE__BY_ID, id, NULL, store__dataset_row,
                         store__dataset_free_v, out);
}

int store_dataset_get_by_name(struct store *s, const char *name, struct store_dataset *out)
{
    return store__get_by(s, STORE__DATASET_COLS STORE__BY_NAME, 0, name, store__dataset_row,
                         store__dataset_free_v, out);
}

int store_dataset_get_by_job(struct store *s, int64_t job_id, struct store_dataset *out)
{
    return store__get_by(s, STORE__DATASET_COLS STORE__BY_JOB, job_id, NULL, store__dataset_row,
                         store__dataset_free_v, out);
}

void store_dataset_free(struct store_dataset *d)
{
    if (d) {
        free(d->columns);
        d->columns = NULL;
    }
}

void store_dataset_list_free(struct store_dataset *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store__dataset_free_v);
}

int store_dataset_list(struct store *s, int64_t after, size_t limit, struct store_dataset **out,
                       size_t *n)
{
    void *arr = NULL;
    int rc = store__list(s, STORE__DATASET_COLS STORE__PAGE, after, limit, sizeof **out,
                         store__dataset_row, store__dataset_free_v, &arr, n);
    *out = arr;
    return rc;
}

/*
 * Iterates the blocks holding rows [row0, row0 + n) of dataset d, calling
 * fn(ctx, first_row_of_block, rows, n_rows_in_block) for each in order.
 * Checks that blocks are contiguous and their sizes match their row counts.
 */
static int store__blocks_each(struct store *s, const struct store_dataset *d, size_t row0,
                              size_t n, int (*fn)(void *, size_t, const float *, size_t),
                              void *ctx)
{
    if (row0 > d->n_rows || n > d->n_rows - row0)
        return QN_ERANGE;
    if (n == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "SELECT block, n_rows, data FROM dataset_blocks WHERE dataset_id = ?1"
                         " AND block >= ?2 AND block <= ?3 ORDER BY block",
                         &st);
    if (rc)
        return rc;
    size_t b0 = row0 / d->block_rows, b1 = (row0 + n - 1) / d->block_rows;
    sqlite3_bind_int64(st, 1, d->id);
    sqlite3_bind_int64(st, 2, (int64_t)b0);
    sqlite3_bind_int64(st, 3, (int64_t)b1);
    size_t expect = b0;
    int sr = SQLITE_DONE;
    while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        size_t blk = (size_t)sqlite3_column_int64(st, 0);
        size_t rows = (size_t)sqlite3_column_int64(st, 1);
        const float *data = sqlite3_column_blob(st, 2);
        size_t bytes = (size_t)sqlite3_column_bytes(st, 2);
        if (blk != expect || rows == 0 || rows > d->block_rows ||
            bytes != rows * d->n_cols * sizeof(float) || !data)
            rc = QN_EFORMAT;
        else
            rc = fn(ctx, blk * d->block_rows, data, rows);
        expect++;
    }
    if (rc == 0 && sr != SQLITE_DONE)
        rc = store_sqlite_err(sr);
    if (rc == 0 && expect != b1 + 1)
        rc = QN_EFORMAT;
    sqlite3_finalize(st);
    return rc;
}

/* State of store_dataset_read's block callback. */
struct store__read_ctx {
    size_t row0, n, n_cols; /* the requested window */
    float *out;             /* (n, n_cols) destination (borrowed) */
};

/* Copies the part of a block that falls in the window. */
static int store__read_block(void *p, size_t first, const float *data, size_t rows)
{
    struct store__read_ctx *c = p;
    size_t lo = first > c->row0 ? first : c->row0;
    size_t hi = first + rows < c->row0 + c->n ? first + rows : c->row0 + c->n;
    if (hi <= lo)
        return QN_EFORMAT;
    memcpy(c->out + (lo - c->row0) * c->n_cols, data + (lo - first) * c->n_cols,
           (hi - lo) * c->n_cols * sizeof(float));
    return 0;
}

int store_dataset_read(struct store *s, int64_t id, size_t row0, size_t n, float *out)
{
    struct store_dataset d;
    int rc = store_dataset_get(s, id, &d);
    if (rc)
        return rc;
    struct store__read_ctx c = {row0, n, d.n_cols, out};
    rc = store__blocks_each(s, &d, row0, n, store__read_block, &c);
    store_dataset_free(&d);
    return rc;
}

/* ---- datasets: CSV export ------------------------------------------------ */

/* State of the CSV export's block callback. */
struct store__csv_ctx {
    FILE *f;          /* destination (borrowed) */
    size_t n_cols;
    long status_col;  /* index of a sweep's status column, or -1 */
};

/* Writes one column name as a CSV field (quoted when it must be). */
static void store__csv_field(FILE *f, const char *t)
{
    if (!strpbrk(t, ",\"\r\n")) {
        fputs(t, f);
        return;
    }
    fputc('"', f);
    for (; *t; t++) {
        if (*t == '"')
            fputc('"', f);
        fputc(*t, f);
    }
    fputc('"', f);
}

/* Writes the header line from the JSON array text of column names and
 * finds the column named "status". */
static int store__csv_header(FILE *f, const char *cols_json, size_t n_cols, long *status_col)
{
    json_t *arr = json_loads(cols_json, 0, NULL);
    int rc = json_is_array(arr) && json_array_size(arr) == n_cols ? 0 : QN_EFORMAT;
    *status_col = -1;
    for (size_t i = 0; rc == 0 && i < n_cols; i++) {
        const char *name = json_string_value(json_array_get(arr, i));
        if (!name) {
            rc = QN_EFORMAT;
            break;
        }
        if (i)
            fputc(',', f);
        store__csv_field(f, name);
        if (strcmp(name, "status") == 0)
            *status_col = (long)i;
    }
    if (rc == 0)
        fputc('\n', f);
    json_decref(arr);
    return rc;
}

/* Writes the rows of one block. */
static int store__csv_block(void *p, size_t first, const float *data, size_t rows)
{
    struct store__csv_ctx *c = p;
    (void)first;
    for (size_t r = 0; r < rows; r++) {
        for (size_t j = 0; j < c->n_cols; j++) {
            float v = data[r * c->n_cols + j];
            if (j)
                fputc(',', c->f);
            if ((long)j == c->status_col)
                fputs(qn_err_name((int)v), c->f);
            else if (isnan(v))
                fputs("nan", c->f);
            else
                fprintf(c->f, "%.9g", (double)v);
        }
        if (fputc('\n', c->f) == EOF)
            return QN_EIO;
    }
    return 0;
}

int store_dataset_export_csv(struct store *s, int64_t id, FILE *f)
{
    struct store_dataset d;
    int rc = store_dataset_get(s, id, &d);
    if (rc)
        return rc;
    struct store__csv_ctx c = {f, d.n_cols, -1};
    rc = store__csv_header(f, d.columns, d.n_cols, &c.status_col);
    if (strcmp(d.source, "sweep") != 0)
        c.status_col = -1;
    if (rc == 0)
        rc = store__blocks_each(s, &d, 0, d.n_rows, store__csv_block, &c);
    if (rc == 0 && (fflush(f) != 0 || ferror(f)))
        rc = QN_EIO;
    store_dataset_free(&d);
    return rc;
}

/* ---- jobs --------------------------------------------------------------- */

int store_job_state_final(enum store_job_state st)
{
    return st == JOB_SUCCEEDED || st == JOB_FAILED || st == JOB_CANCELED;
}

const char *store_job_state_name(enum store_job_state st)
{
    return (unsigned)st < sizeof store__states / sizeof store__states[0] ? store__states[st]
                                                                         : "unknown";
}

int store_job_state_from_name(const char *name, enum store_job_state *out)
{
    for (size_t i = 0; i < sizeof store__states / sizeof store__states[0]; i++)
        if (strcmp(name, store__states[i]) == 0) {
            *out = (enum store_job_state)i;
            return 0;
        }
    return QN_EINVAL;
}

int store_job_insert(struct store *s, const char *type, const char *name, const char *owner,
                     int priority, enum store_job_state state, const char *spec, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO jobs (type, name, owner, priority, state, spec, started)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?5 = 'running' THEN"
                         " strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, type);
    store__bind_text(st, 2, name);
    store__bind_text(st, 3, owner ? owner : "local");
    sqlite3_bind_int(st, 4, priority);
    store__bind_text(st, 5, store_job_state_name(state));
    store__bind_text(st, 6, spec);
    return store__exec_insert(s, st, 0, id);
}

int store__job_row(sqlite3_stmt *st, void *p)
{
    struct store_job *j = p;
    int err = 0;
    char state[16];
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    store__col_text(st, 1, j->type, sizeof j->type);
    store__col_text(st, 2, j->name, sizeof j->name);
    store__col_text(st, 3, j->owner, sizeof j->owner);
    j->priority = sqlite3_column_int(st, 4);
    store__col_text(st, 5, state, sizeof state);
    if (store_job_state_from_name(state, &j->state))
        err = QN_EFORMAT;
    j->spec = store__col_dup(st, 6, &err);
    j->result = store__col_dup(st, 7, &err);
    j->error = store__col_dup(st, 8, &err);
    store__col_text(st, 9, j->created, sizeof j->created);
    store__col_text(st, 10, j->started, sizeof j->started);
    store__col_text(st, 11, j->finished, sizeof j->finished);
    return err;
}

void store__job_free_v(void *p) { store_job_free(p); }

int store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    return store__get_by(s, STORE__JOB_COLS STORE__BY_ID, id, NULL, store__job_row,
                         store__job_free_v, out);
}

int store_job_set_state(struct store *s, int64_t id, enum store_job_state state,
                        const char *result, const char *error)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(
        s,
        "UPDATE jobs SET state = ?2, result = coalesce(?3, result), error = coalesce(?4, error),"
        " started = CASE WHEN ?2 = 'running' AND started IS NULL"
        "   THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE started END,"
        " finished = CASE WHEN ?2 IN ('succeeded', 'failed', 'canceled')"
        "   THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE NULL END"
        " WHERE id = ?1",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    store__bind_text(st, 2, store_job_state_name(state));
    store__bind_text(st, 3, result);
    store__bind_text(st, 4, error);
    rc = store__exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

int store_job_restart(struct store *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "UPDATE jobs SET state = 'running', result = NULL, error = NULL,"
                         " finished = NULL, started = coalesce(started,"
                         " strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) WHERE id = ?1",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = store__exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

void store_job_free(struct store_job *j)
{
    if (!j)
        return;
    free(j->spec);
    free(j->result);
    free(j->error);
    j->spec = j->result = j->error = NULL;
}

/* ---- metrics ------------------------------------------------------------ */

int store_metric_insert(struct store *s, int64_t job, int64_t step, int64_t epoch,
                        const char *name, double value)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO metrics (job_id, step, epoch, name, value, time)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, step);
    sqlite3_bind_int64(st, 3, epoch);
    store__bind_text(st, 4, name);
    store__bind_real(st, 5, value);
    sqlite3_bind_double(st, 6, (double)tv.tv_sec + tv.tv_usec * 1e-6);
    return store__exec_stmt(st);
}

int store_metric_delete_after(struct store *s, int64_t job, int64_t epoch)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "DELETE FROM metrics WHERE job_id = ?1 AND epoch > ?2", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, epoch);
    return store__exec_stmt(st);
}

/* ---- blobs --------------------------------------------------------------- */

/* Binds `bytes` bytes at p (borrowed until the step); a zero-length blob is
 * bound as an empty blob, not NULL. */
static int store__bind_blob(sqlite3_stmt *st, int i, const void *p, size_t bytes)
{
    if (bytes > INT32_MAX)
        return QN_ERANGE;
    if (bytes == 0)
        return store_sqlite_err(sqlite3_bind_zeroblob(st, i, 0));
    return store_sqlite_err(sqlite3_bind_blob(st, i, p, (int)bytes, SQLITE_STATIC));
}

/* A new copy of a blob column into *out (*len bytes; NULL when empty). */
static int store__col_blob(sqlite3_stmt *st, int col, void **out, size_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    *out = NULL;
    *len = n;
    if (n == 0 || !p)
        return 0;
    *out = malloc(n);
    if (!*out)
        return QN_ENOMEM;
    memcpy(*out, p, n);
    return 0;
}

/* A float32 array column into a new array of *n floats; QN_EFORMAT when
 * its size is not a multiple of 4. */
static int store__col_floats(sqlite3_stmt *st, int col, float **out, size_t *n)
{
    size_t bytes = 0;
    void *p = NULL;
    int rc = store__col_blob(st, col, &p, &bytes);
    if (rc == 0 && bytes % sizeof(float)) {
        free(p);
        p = NULL;
        rc = QN_EFORMAT;
    }
    *out = p;
    *n = bytes / sizeof(float);
    return rc;
}

/* A REAL column, NaN for NULL. */
double store__col_real(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

/* ---- surrogates ----------------------------------------------------------- */

/* The INSERT of store_surrogate_insert (row: a struct store_surrogate). */
static int store__surrogate_add(struct store *s, const void *row, int64_t *id)
{
    const struct store_surrogate *in = row;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO surrogates (name, job_id, device, dataset_id, n_in,"
                         " val_rmse, max_error, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, in->has_name ? in->name : NULL);
    store__bind_id(st, 2, in->job_id);
    store__bind_text(st, 3, in->device);
    store__bind_id(st, 4, in->dataset_id);
    sqlite3_bind_int64(st, 5, (int64_t)in->n_in);
    store__bind_real(st, 6, in->val_rmse);
    store__bind_real(st, 7, in->max_error);
    rc = store__bind_blob(st, 8, in->blob, in->blob_len);
    return store__exec_insert(s, st, rc, id);
}

int store_surrogate_insert(struct store *s, const struct store_surrogate *in, int64_t *id)
{
    return store__job_output(s, "surrogates", in->job_id, store__surrogate_add, in, id);
}

#define STORE__SURROGATE_COLS                                                                   \
    "SELECT id, name, job_id, device, dataset_id, n_in, val_rmse, max_error, blob, created"    \
    " FROM surrogates "

int store__surrogate_row(sqlite3_stmt *st, void *p)
{
    struct store_surrogate *x = p;
    int err = 0;
    memset(x, 0, sizeof *x);
    x->id = sqlite3_column_int64(st, 0);
    x->has_name = sqlite3_column_type(st, 1) != SQLITE_NULL;
    store__col_text(st, 1, x->name, sizeof x->name);
    x->job_id = sqlite3_column_int64(st, 2);
    x->device = store__col_dup(st, 3, &err);
    x->dataset_id = sqlite3_column_int64(st, 4);
    x->n_in = (size_t)sqlite3_column_int64(st, 5);
    x->val_rmse = store__col_real(st, 6);
    x->max_error = store__col_real(st, 7);
    if (err == 0)
        err = store__col_blob(st, 8, &x->blob, &x->blob_len);
    store__col_text(st, 9, x->created, sizeof x->created);
    return err;
}

void store__surrogate_free_v(void *p) { store_surrogate_free(p); }

int store_surrogate_get(struct store *s, int64_t id, struct store_surrogate *out)
{
    return store__get_by(s, STORE__SURROGATE_COLS STORE__BY_ID, id, NULL, store__surrogate_row,
                         store__surrogate_free_v, out);
}

int store_surrogate_get_by_name(struct store *s, const char *name, struct store_surrogate *out)
{
    return store__get_by(s, STORE__SURROGATE_COLS STORE__BY_NAME, 0, name, store__surrogate_row,
                         store__surrogate_free_v, out);
}

int store_surrogate_get_by_job(struct store *s, int64_t job_id, struct store_surrogate *out)
{
    return store__get_by(s, STORE__SURROGATE_COLS STORE__BY_JOB, job_id, NULL,
                         store__surrogate_row, store__surrogate_free_v, out);
}

void store_surrogate_free(struct store_surrogate *x)
{
    if (!x)
        return;
    free(x->device);
    free(x->blob);
    x->device = NULL;
    x->blob = NULL;
}

/* ---- models ------------------------------------------------------------------ */

/* The INSERT of store_model_insert (row: a struct store_model). */
static int store__model_add(struct store *s, const void *row, int64_t *id)
{
    const struct store_model *in = row;
    if (in->n_params > SIZE_MAX / sizeof(float) || in->n_scaler > SIZE_MAX / sizeof(float))
        return QN_ERANGE;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO models (name, job_id, spec, n_in, n_out, n_classes, loss,"
                         " params, scaler) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, in->has_name ? in->name : NULL);
    store__bind_id(st, 2, in->job_id);
    store__bind_text(st, 3, in->spec);
    sqlite3_bind_int64(st, 4, (int64_t)in->n_in);
    sqlite3_bind_int64(st, 5, (int64_t)in->n_out);
    sqlite3_bind_int64(st, 6, (int64_t)in->n_classes);
    store__bind_text(st, 7, in->loss);
    rc = store__bind_blob(st, 8, in->params, in->n_params * sizeof(float));
    if (rc == 0)
        rc = store__bind_blob(st, 9, in->scaler, in->n_scaler * sizeof(float));
    return store__exec_insert(s, st, rc, id);
}

int store_model_insert(struct store *s, const struct store_model *in, int64_t *id)
{
    return store__job_output(s, "models", in->job_id, store__model_add, in, id);
}

#define STORE__MODEL_COLS                                                                       \
    "SELECT id, name, job_id, spec, n_in, n_out, n_classes, loss, params, scaler, created"     \
    " FROM models "

int store__model_row(sqlite3_stmt *st, void *p)
{
    struct store_model *m = p;
    int err = 0;
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    m->has_name = sqlite3_column_type(st, 1) != SQLITE_NULL;
    store__col_text(st, 1, m->name, sizeof m->name);
    m->job_id = sqlite3_column_int64(st, 2);
    m->spec = store__col_dup(st, 3, &err);
    m->n_in = (size_t)sqlite3_column_int64(st, 4);
    m->n_out = (size_t)sqlite3_column_int64(st, 5);
    m->n_classes = (size_t)sqlite3_column_int64(st, 6);
    store__col_text(st, 7, m->loss, sizeof m->loss);
    if (err == 0)
        err = store__col_floats(st, 8, &m->params, &m->n_params);
    if (err == 0)
        err = store__col_floats(st, 9, &m->scaler, &m->n_scaler);
    store__col_text(st, 10, m->created, sizeof m->created);
    return err;
}

void store__model_free_v(void *p) { store_model_free(p); }

int store_model_get(struct store *s, int64_t id, struct store_model *out)
{
    return store__get_by(s, STORE__MODEL_COLS STORE__BY_ID, id, NULL, store__model_row,
                         store__model_free_v, out);
}

int store_model_get_by_name(struct store *s, const char *name, struct store_model *out)
{
    return store__get_by(s, STORE__MODEL_COLS STORE__BY_NAME, 0, name, store__model_row,
                         store__model_free_v, out);
}

int store_model_get_by_job(struct store *s, int64_t job_id, struct store_model *out)
{
    return store__get_by(s, STORE__MODEL_COLS STORE__BY_JOB, job_id, NULL, store__model_row,
                         store__model_free_v, out);
}

void store_model_free(struct store_model *m)
{
    if (!m)
        return;
    free(m->spec);
    free(m->params);
    free(m->scaler);
    m->spec = NULL;
    m->params = m->scaler = NULL;
}

/* ---- checkpoints -------------------------------------------------------------- */

int store_checkpoint_put(struct store *s, const struct store_checkpoint *c)
{
    if (c->n_params > SIZE_MAX / sizeof(float) || c->n_state > SIZE_MAX / sizeof(float) ||
        c->t > INT64_MAX)
        return QN_ERANGE;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT OR REPLACE INTO checkpoints (job_id, epoch, params, optim_state,"
                         " optim_t) VALUES (?1, ?2, ?3, ?4, ?5)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, c->job_id);
    sqlite3_bind_int64(st, 2, (int64_t)c->epoch);
    rc = store__bind_blob(st, 3, c->params, c->n_params * sizeof(float));
    if (rc == 0)
        rc = store__bind_blob(st, 4, c->state, c->n_state * sizeof(float));
    sqlite3_bind_int64(st, 5, (int64_t)c->t);
    return store__exec_bound(st, rc);
}

static int store__checkpoint_row(sqlite3_stmt *st, void *p)
{
    struct store_checkpoint *c = p;
    memset(c, 0, sizeof *c);
    c->job_id = sqlite3_column_int64(st, 0);
    c->epoch = (size_t)sqlite3_column_int64(st, 1);
    c->t = (uint64_t)sqlite3_column_int64(st, 4);
    int err = store__col_floats(st, 2, &c->params, &c->n_params);
    if (err == 0)
        err = store__col_floats(st, 3, &c->state, &c->n_state);
    return err;
}

static void store__checkpoint_free_v(void *p) { store_checkpoint_free(p); }

int store_checkpoint_last(struct store *s, int64_t job_id, struct store_checkpoint *out)
{
    return store__get_by(s,
                         "SELECT job_id, epoch, params, optim_state, optim_t FROM checkpoints"
                         " WHERE job_id = ?1 ORDER BY epoch DESC LIMIT 1",
                         job_id, NULL, store__checkpoint_row, store__checkpoint_free_v, out);
}

void store_checkpoint_free(struct store_checkpoint *c)
{
    if (!c)
        return;
    free(c->params);
    free(c->state);
    c->params = c->state = NULL;
}

struct sqlite3 *store_sqlite(struct store *s)
{
    return s->db;
}
