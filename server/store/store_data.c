/*
 * store_data.c: datasets: written in one transaction block by block, read
 * back by row windows, exported as CSV (see store.h).
 */
#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "numtext.h"
#include "qn_err.h"
#include "store_internal.h"

struct store_dswriter {
    struct store *s;    /* borrowed */
    int64_t id;         /* the dataset's row id */
    size_t n_cols;      /* floats per row */
    size_t n_rows;      /* rows appended so far */
    int64_t block;      /* index of the block being filled */
    size_t fill;        /* rows in buf */
    float *buf;         /* (STORE_BLOCK_ROWS, n_cols) block being filled (owned) */
};

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
                         "INSERT INTO datasets (name, source, n_cols, columns, block_rows, job_id,"
                         " owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, name);
    store__bind_text(st, 2, source);
    sqlite3_bind_int64(st, 3, (int64_t)n_cols);
    store__bind_text(st, 4, cols_json);
    sqlite3_bind_int64(st, 5, STORE_BLOCK_ROWS);
    store__bind_id(st, 6, job_id);
    store__bind_text(st, 7, store__owner(s));
    return store__exec_insert(s, st, 0, id);
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
    rc = store_begin(s);
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
    store_end(s, rc); /* rolls back */
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
    assert(w->fill <= STORE_BLOCK_ROWS);
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
        assert(sqlite3_changes(w->s->db) == 1);
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
    rc = store__exec_stmt(st);
    assert(rc || sqlite3_changes(w->s->db) == 1); /* the row begin inserted, in this transaction */
    return rc;
}

int store_dataset_finish(struct store_dswriter *w, int64_t *id)
{
    /* Every appended row is in a written block or in the one being filled. */
    assert(w->n_rows == (size_t)w->block * STORE_BLOCK_ROWS + w->fill);
    int rc = store__block_flush(w);
    if (rc == 0)
        rc = store__dataset_set_rows(w);
    rc = store_end(w->s, rc);
    if (rc == 0 && id)
        *id = w->id;
    /* A large dataset went through the WAL: put it in the database and give
     * the WAL's space back now (best effort: busy readers leave it be). */
    if (rc == 0 && (double)w->n_rows * (double)w->n_cols * sizeof(float) >= STORE_WAL_LARGE)
        store_wal_truncate(w->s);
    else if (rc != 0 && w->block > 0) /* rolled back: what it spilled into the WAL */
        store_wal_truncate(w->s);
    free(w->buf);
    free(w);
    return rc;
}

void store_dataset_abort(struct store_dswriter *w)
{
    if (!w)
        return;
    if (!sqlite3_get_autocommit(w->s->db))
        store__exec(w->s, "ROLLBACK");
    /* Blocks written before the abort may have spilled into the WAL: give
     * that space back (best effort, as after a large commit). */
    if (w->block > 0)
        store_wal_truncate(w->s);
    free(w->buf);
    free(w);
}

/* ---- datasets: reading -------------------------------------------------- */

#define STORE__DATASET_COLS                                                                     \
    "SELECT id, name, source, n_rows, n_cols, columns, block_rows, job_id, created, owner"      \
    " FROM datasets "

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
    store__col_text(st, 9, d->owner, sizeof d->owner);
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
    return store__get_by_name(s, STORE__DATASET_COLS, name, store__dataset_row,
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
    char num[NUMTEXT_MAX]; /* a value as the shortest text that reads back to it */
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
            else if (numtext_float(num, v) && fputs(num, c->f) == EOF)
                return QN_EIO;
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
