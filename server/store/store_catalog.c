/*
 * store_catalog.c: the catalog's reads (see store_catalog.h).
 *
 * The record types' row readers are the other store files' (store_internal.h):
 * a list here selects the same columns, with NULL in place of the arrays it
 * leaves out, so a list of a hundred models never reads a hundred weight
 * blobs.
 *
 * Metric decimation is one SQL statement: window functions number each
 * name's rows (k) and count them (n), and a row is kept when it is the
 * first of its name or starts a new one of max_points - 1 index buckets.
 */
#include "store_catalog.h"

#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "store_internal.h"

/* A limit as SQL's LIMIT: -1 for none. */
static int64_t store_catalog__limit(size_t limit)
{
    return limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
}

/* store__collect into a new array *out of *n; on failure *out is NULL and
 * what was read is freed through `release`. */
static int store_catalog__collect(sqlite3_stmt *st, size_t size,
                                  int (*row)(sqlite3_stmt *, void *), void (*release)(void *),
                                  void **out, size_t *n)
{
    char *arr = NULL;
    size_t len = 0;
    int rc = store__collect(st, size, row, &arr, &len);
    if (rc) {
        store__free_array(arr, len, size, release);
        arr = NULL;
        len = 0;
    }
    *out = arr;
    *n = len;
    return rc;
}

/* ---- jobs ---------------------------------------------------------------- */

void store_job_list_free(struct store_job *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store__job_free_v);
}

int store_job_list(struct store *s, const struct store_job_filter *f, int64_t after, size_t limit,
                   struct store_job **out, size_t *n)
{
    static const struct store_job_filter any = {NULL, NULL, NULL};
    if (!f)
        f = &any;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         STORE__JOB_COLS "WHERE id > ?1 AND (?2 IS NULL OR state = ?2) AND"
                                         " (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR owner = ?4)"
                                         " ORDER BY id LIMIT ?5",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, after);
    store__bind_text(st, 2, f->state);
    store__bind_text(st, 3, f->type);
    store__bind_text(st, 4, f->owner);
    sqlite3_bind_int64(st, 5, store_catalog__limit(limit));
    void *arr = NULL;
    rc = store_catalog__collect(st, sizeof **out, store__job_row, store__job_free_v, &arr, n);
    *out = arr;
    return rc;
}

int store_job_counts(struct store *s, int64_t counts[JOB_CANCELED + 1])
{
    memset(counts, 0, (JOB_CANCELED + 1) * sizeof *counts);
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "SELECT state, count(*) FROM jobs GROUP BY state", &st);
    if (rc)
        return rc;
    int sr;
    while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
        enum store_job_state js;
        const unsigned char *name = sqlite3_column_text(st, 0);
        if (name && store_job_state_from_name((const char *)name, &js) == 0)
            counts[js] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return store_sqlite_err(sr);
}

/* ---- metrics -------------------------------------------------------------- */

/* ?1 job, ?2 after, ?3 name or NULL, ?4 limit (-1: none); the decimation ?5 max_points. */
static const char store_catalog__metrics_sql[] =
    "SELECT id, step, epoch, name, value, time FROM metrics WHERE job_id = ?1 AND id > ?2"
    " AND (?3 IS NULL OR name = ?3) ORDER BY id LIMIT ?4";

static const char store_catalog__decimate_sql[] =
    "WITH r AS (SELECT id, step, epoch, name, value, time,"
    "  row_number() OVER (PARTITION BY name ORDER BY id) - 1 AS k,"
    "  count(*) OVER (PARTITION BY name) AS n"
    "  FROM metrics WHERE job_id = ?1 AND id > ?2 AND (?3 IS NULL OR name = ?3))"
    " SELECT id, step, epoch, name, value, time FROM r"
    " WHERE n <= ?5 OR k = 0 OR (k * (?5 - 1)) / (n - 1) != ((k - 1) * (?5 - 1)) / (n - 1)"
    " ORDER BY id LIMIT ?4";

static int store_catalog__metric_row(sqlite3_stmt *st, void *p)
{
    struct store_metric *m = p;
    int err = 0;
    memset(m, 0, sizeof *m);
    m->id = sqlite3_column_int64(st, 0);
    m->step = sqlite3_column_int64(st, 1);
    m->epoch = sqlite3_column_int64(st, 2);
    m->name = store__col_dup(st, 3, &err);
    m->value = store__col_real(st, 4);
    m->time = sqlite3_column_double(st, 5);
    if (!m->name && !err)
        err = QN_EFORMAT; /* the column is NOT NULL */
    return err;
}

static void store_catalog__metric_free_v(void *p)
{
    struct store_metric *m = p;
    free(m->name);
    m->name = NULL;
}

void store_metric_list_free(struct store_metric *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store_catalog__metric_free_v);
}

int store_metric_list(struct store *s, const struct store_metric_query *q,
                      struct store_metric **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (q->max_points == 1 || q->max_points > INT64_MAX)
        return QN_EINVAL;
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, q->max_points ? store_catalog__decimate_sql : store_catalog__metrics_sql,
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, q->job);
    sqlite3_bind_int64(st, 2, q->after);
    store__bind_text(st, 3, q->name);
    sqlite3_bind_int64(st, 4, store_catalog__limit(q->limit));
    if (q->max_points)
        sqlite3_bind_int64(st, 5, (int64_t)q->max_points);
    void *arr = NULL;
    rc = store_catalog__collect(st, sizeof **out, store_catalog__metric_row,
                                store_catalog__metric_free_v, &arr, n);
    *out = arr;
    return rc;
}

/* ---- surrogates and models ---------------------------------------------------- */

/* store__surrogate_row's columns, the weights left out. */
#define STORE_CATALOG__SURROGATE_COLS                                                           \
    "SELECT id, name, job_id, device, dataset_id, n_in, val_rmse, max_error, NULL, created,"   \
    " owner FROM surrogates "

void store_surrogate_list_free(struct store_surrogate *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store__surrogate_free_v);
}

int store_surrogate_list(struct store *s, int64_t after, size_t limit,
                         struct store_surrogate **out, size_t *n)
{
    void *arr = NULL;
    int rc = store__list(s, STORE_CATALOG__SURROGATE_COLS STORE__PAGE, after, limit, sizeof **out,
                         store__surrogate_row, store__surrogate_free_v, &arr, n);
    *out = arr;
    return rc;
}

/* store__model_row's columns, the arrays left out, then the parameter count. */
#define STORE_CATALOG__MODEL_COLS                                                               \
    "SELECT id, name, job_id, spec, n_in, n_out, n_classes, loss, NULL, NULL, created,"        \
    " owner, length(params) / 4 FROM models "

static int store_catalog__model_row(sqlite3_stmt *st, void *p)
{
    int rc = store__model_row(st, p);
    ((struct store_model *)p)->n_params = (size_t)sqlite3_column_int64(st, 12);
    return rc;
}

void store_model_list_free(struct store_model *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store__model_free_v);
}

int store_model_list(struct store *s, int64_t after, size_t limit, struct store_model **out,
                     size_t *n)
{
    void *arr = NULL;
    int rc = store__list(s, STORE_CATALOG__MODEL_COLS STORE__PAGE, after, limit, sizeof **out,
                         store_catalog__model_row, store__model_free_v, &arr, n);
    *out = arr;
    return rc;
}

int store_model_summary(struct store *s, int64_t id, struct store_model *out)
{
    return store__get_by(s, STORE_CATALOG__MODEL_COLS STORE__BY_ID, id, NULL,
                         store_catalog__model_row, store__model_free_v, out);
}

int store_model_summary_by_name(struct store *s, const char *name, struct store_model *out)
{
    return store__get_by_name(s, STORE_CATALOG__MODEL_COLS, name, store_catalog__model_row,
                              store__model_free_v, out);
}

/* ---- the connection -------------------------------------------------------------- */

int store_data_version(struct store *s, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "PRAGMA data_version", &st);
    if (rc)
        return rc;
    int sr = sqlite3_step(st);
    if (sr == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return sr == SQLITE_ROW ? 0 : sr == SQLITE_DONE ? QN_EDB : store_sqlite_err(sr);
}
