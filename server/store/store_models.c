/*
 * store_models.c: frozen surrogates, trained models and training
 * checkpoints, with their float32 blobs (see store.h).
 */
#include <assert.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "store_internal.h"

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
                         " val_rmse, max_error, blob, owner)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    store__bind_text(st, 9, store__owner(s));
    return store__exec_insert(s, st, rc, id);
}

int store_surrogate_insert(struct store *s, const struct store_surrogate *in, int64_t *id)
{
    return store__job_output(s, "surrogates", in->job_id, store__surrogate_add, in, id);
}

#define STORE__SURROGATE_COLS                                                                   \
    "SELECT id, name, job_id, device, dataset_id, n_in, val_rmse, max_error, blob, created,"   \
    " owner FROM surrogates "

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
    store__col_text(st, 10, x->owner, sizeof x->owner);
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
    return store__get_by_name(s, STORE__SURROGATE_COLS, name, store__surrogate_row,
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
                         " params, scaler, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
                         " ?10)",
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
    store__bind_text(st, 10, store__owner(s));
    return store__exec_insert(s, st, rc, id);
}

int store_model_insert(struct store *s, const struct store_model *in, int64_t *id)
{
    return store__job_output(s, "models", in->job_id, store__model_add, in, id);
}

#define STORE__MODEL_COLS                                                                       \
    "SELECT id, name, job_id, spec, n_in, n_out, n_classes, loss, params, scaler, created,"    \
    " owner FROM models "

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
    store__col_text(st, 11, m->owner, sizeof m->owner);
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
    return store__get_by_name(s, STORE__MODEL_COLS, name, store__model_row, store__model_free_v,
                              out);
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
                         " optim_t, arch) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, c->job_id);
    sqlite3_bind_int64(st, 2, (int64_t)c->epoch);
    rc = store__bind_blob(st, 3, c->params, c->n_params * sizeof(float));
    if (rc == 0)
        rc = store__bind_blob(st, 4, c->state, c->n_state * sizeof(float));
    sqlite3_bind_int64(st, 5, (int64_t)c->t);
    store__bind_text(st, 6, c->arch);
    rc = store__exec_bound(st, rc);
    assert(rc || sqlite3_changes(s->db) == 1); /* a replaced row counts once */
    return rc;
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
    if (err == 0)
        c->arch = store__col_dup(st, 5, &err);
    return err;
}

static void store__checkpoint_free_v(void *p) { store_checkpoint_free(p); }

int store_checkpoint_last(struct store *s, int64_t job_id, struct store_checkpoint *out)
{
    return store__get_by(s,
                         "SELECT job_id, epoch, params, optim_state, optim_t, arch FROM checkpoints"
                         " WHERE job_id = ?1 ORDER BY epoch DESC LIMIT 1",
                         job_id, NULL, store__checkpoint_row, store__checkpoint_free_v, out);
}

void store_checkpoint_free(struct store_checkpoint *c)
{
    if (!c)
        return;
    free(c->params);
    free(c->state);
    free(c->arch);
    c->params = c->state = NULL;
    c->arch = NULL;
}
