/*
 * job_data.c: dataset references of fit, train and evaluate jobs resolved
 * against the store and loaded into engine datasets (see job_data.h).
 *
 * Stored rows are read one store block at a time into a scratch buffer and
 * copied straight into the dataset's arrays, so a table is held once in
 * memory (as the dataset), not twice. Rows a sweep could not solve (status
 * != 0) are skipped while copying; the arrays are allocated for every row
 * and the row count set to the rows kept.
 */
#include "job_data.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

/* ---- references ---------------------------------------------------------------- */

int job_ref_check(struct store *s, int64_t id, const char *type, const char *path,
                  struct spec_error *err)
{
    struct store_job j;
    int rc = store_job_get(s, id, &j);
    if (rc == QN_ENOTFOUND)
        return spec_fail(err, path, "no job with id %" PRId64, id);
    if (rc)
        return spec_fail(err, path, "cannot read job %" PRId64 ": %s", id, qn_err_msg(rc));
    if (strcmp(j.type, type) != 0)
        rc = spec_fail(err, path, "job %" PRId64 " is a %s job, not a %s job", id, j.type, type);
    else if (j.state != JOB_SUCCEEDED)
        rc = spec_fail(err, path, "job %" PRId64 " has not succeeded (it is %s%s%s)", id,
                       store_job_state_name(j.state), j.error ? ": " : "",
                       j.error ? j.error : "");
    store_job_free(&j);
    return rc;
}

/* The built-in named by the reference, or JOB_DS_STORED. */
static enum job_ds_kind job_data__builtin(const struct spec_ref *ref)
{
    const char *name;
    for (size_t i = 0; ref->kind == REF_NAME && (name = spec_dataset_builtin(i)); i++)
        if (strcmp(ref->name, name) == 0)
            return (enum job_ds_kind)i;
    return JOB_DS_STORED;
}

/* Loads the stored dataset's record the reference names. */
static int job_data__record(struct store *s, const struct spec_ref *ref, const char *path,
                            struct store_dataset *rec, struct spec_error *err)
{
    int rc;
    if (ref->kind == REF_JOB) {
        if ((rc = job_ref_check(s, ref->id, "sweep", path, err)))
            return rc;
        rc = store_dataset_get_by_job(s, ref->id, rec);
        if (rc == QN_ENOTFOUND)
            return spec_fail(err, path, "job %" PRId64 " made no dataset", ref->id);
    } else if (ref->kind == REF_ID) {
        rc = store_dataset_get(s, ref->id, rec);
        if (rc == QN_ENOTFOUND)
            return spec_fail(err, path, "no dataset with id %" PRId64, ref->id);
    } else if (ref->kind == REF_NAME) {
        rc = store_dataset_get_by_name(s, ref->name, rec);
        if (rc == QN_ENOTFOUND)
            return spec_fail(err, path, "no dataset named '%s' (built-ins: %s)", ref->name,
                             spec_dataset_builtin_list());
    } else {
        return spec_fail(err, path, "a dataset cannot be given inline; import it first");
    }
    if (rc)
        return spec_fail(err, path, "cannot read the dataset: %s", qn_err_msg(rc));
    return 0;
}

/* Index of the column named `name`, or -1. */
static long job_data__col(const json_t *cols, const char *name)
{
    for (size_t i = 0; i < json_array_size(cols); i++) {
        const char *c = json_string_value(json_array_get(cols, i));
        if (c && strcmp(c, name) == 0)
            return (long)i;
    }
    return -1;
}

/* Chooses the label or target column: given, or "out" for a sweep, or a
 * column named "label". */
static int job_data__y(struct job_dsref *r, const char *path, struct spec_error *err)
{
    const struct dataset_spec *d = r->spec;
    int sweep = strcmp(r->rec.source, "sweep") == 0;
    const char *name = d->label[0] ? d->label : d->target;
    r->classify = d->label[0] != '\0';
    if (!name[0]) {
        name = sweep ? "out" : "label";
        r->classify = !sweep;
        if (job_data__col(r->columns, name) < 0)
            return spec_fail(err, path, "dataset %" PRId64 " has no column '%s': name the column "
                             "to learn with \"label\" (classes) or \"target\" (regression)",
                             r->rec.id, name);
    }
    r->y_col = job_data__col(r->columns, name);
    if (r->y_col < 0)
        return spec_fail(err, path, "dataset %" PRId64 " has no column '%s'", r->rec.id, name);
    r->status_col = sweep ? job_data__col(r->columns, "status") : -1;
    return 0;
}

/* Chooses the input columns: those named, or every column but y and status. */
static int job_data__inputs(struct job_dsref *r, const char *path, struct spec_error *err)
{
    const struct dataset_spec *d = r->spec;
    size_t nc = r->rec.n_cols;
    r->in_col = calloc(nc ? nc : 1, sizeof *r->in_col);
    if (!r->in_col)
        return spec_fail(err, path, "out of memory");
    for (size_t i = 0; i < d->n_inputs; i++) {
        long c = job_data__col(r->columns, d->inputs[i]);
        if (c < 0)
            return spec_fail(err, path, "dataset %" PRId64 " has no column '%s'", r->rec.id,
                             d->inputs[i]);
        if (c == r->status_col)
            return spec_fail(err, path, "'status' is not an input");
        r->in_col[r->n_in++] = (size_t)c;
    }
    for (size_t c = 0; d->n_inputs == 0 && c < nc; c++)
        if ((long)c != r->y_col && (long)c != r->status_col)
            r->in_col[r->n_in++] = c;
    if (r->n_in == 0)
        return spec_fail(err, path, "dataset %" PRId64 " has no input columns", r->rec.id);
    return 0;
}

int job_data_resolve(struct store *s, const struct dataset_spec *ds, const char *path,
                     struct job_dsref *out, struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    out->spec = ds;
    out->y_col = out->status_col = -1;
    out->kind = job_data__builtin(&ds->ref);
    if (out->kind != JOB_DS_STORED) {
        out->classify = out->kind != JOB_DS_SINE && out->kind != JOB_DS_LOTKA_VOLTERRA;
        return 0;
    }
    int rc = job_data__record(s, &ds->ref, path, &out->rec, err);
    if (rc)
        return rc;
    out->have_rec = 1;
    out->columns = json_loads(out->rec.columns, 0, NULL);
    if (!json_is_array(out->columns) || json_array_size(out->columns) != out->rec.n_cols)
        return spec_fail(err, path, "dataset %" PRId64 " has a corrupt column list", out->rec.id);
    if ((rc = job_data__y(out, path, err)) || (rc = job_data__inputs(out, path, err)))
        return rc;
    return 0;
}

void job_data_close(struct job_dsref *r)
{
    if (!r)
        return;
    if (r->have_rec)
        store_dataset_free(&r->rec);
    json_decref(r->columns);
    free(r->in_col);
    memset(r, 0, sizeof *r);
}

/* ---- reading stored rows ---------------------------------------------------------- */

/* printf into reason; returns rc. */
static int job_data__fail(char *reason, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int job_data__fail(char *reason, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* The name of column c (for messages). */
static const char *job_data__colname(const struct job_dsref *r, size_t c)
{
    const char *n = json_string_value(json_array_get(r->columns, c));
    return n ? n : "?";
}

/* Copies one row (rec.n_cols floats) into row `k` of ds; checks its values. */
static int job_data__put_row(const struct job_dsref *r, const float *row, size_t i,
                             struct data_set *ds, size_t k, char *reason, size_t cap)
{
    for (size_t j = 0; j < r->n_in; j++) {
        float v = row[r->in_col[j]];
        if (!isfinite(v))
            return job_data__fail(reason, cap, QN_EFORMAT,
                                  "dataset %" PRId64 " row %zu column '%s': not a finite number",
                                  r->rec.id, i + 1, job_data__colname(r, r->in_col[j]));
        ds->x[k * ds->d + j] = v;
    }
    float y = row[r->y_col];
    if (!isfinite(y))
        return job_data__fail(reason, cap, QN_EFORMAT,
                              "dataset %" PRId64 " row %zu column '%s': not a finite number",
                              r->rec.id, i + 1, job_data__colname(r, (size_t)r->y_col));
    if (!r->classify) {
        ds->y[k] = y;
        return 0;
    }
    if (y < 0 || y >= DATA_MAX_CLASSES || y != floorf(y))
        return job_data__fail(reason, cap, QN_EFORMAT,
                              "dataset %" PRId64 " row %zu: label '%s' = %g is not a class "
                              "(a non-negative integer below %d)",
                              r->rec.id, i + 1, job_data__colname(r, (size_t)r->y_col),
                              (double)y, DATA_MAX_CLASSES);
    ds->labels[k] = (int)y;
    if ((size_t)y + 1 > ds->n_classes)
        ds->n_classes = (size_t)y + 1;
    return 0;
}

/* Reads every stored row into *all (rows with a failed status skipped). */
static int job_data__read_all(struct store *s, const struct job_dsref *r, struct data_set *all,
                              char *reason, size_t cap)
{
    size_t n = r->rec.n_rows, nc = r->rec.n_cols, blk = STORE_BLOCK_ROWS;
    if (n == 0)
        return job_data__fail(reason, cap, QN_EINVAL, "dataset %" PRId64 " has no rows",
                              r->rec.id);
    int rc = data_alloc(all, n, r->n_in, r->classify ? 1 : 0, r->classify ? 0 : 1);
    if (rc)
        return job_data__fail(reason, cap, rc, "dataset %" PRId64 " is too large: %s",
                              r->rec.id, qn_err_msg(rc));
    all->n_classes = 0;
    float *buf = malloc(blk * nc * sizeof *buf);
    if (!buf)
        return job_data__fail(reason, cap, QN_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t r0 = 0; rc == 0 && r0 < n; r0 += blk) {
        size_t m = n - r0 < blk ? n - r0 : blk;
        rc = store_dataset_read(s, r->rec.id, r0, m, buf);
        if (rc)
            job_data__fail(reason, cap, rc, "cannot read dataset %" PRId64 ": %s", r->rec.id,
                           qn_err_msg(rc));
        for (size_t i = 0; rc == 0 && i < m; i++) {
            const float *row = buf + i * nc;
            if (r->status_col >= 0 && row[r->status_col] != 0.0f)
                continue;
            rc = job_data__put_row(r, row, r0 + i, all, k++, reason, cap);
        }
    }
    free(buf);
    all->n = k;
    if (rc == 0 && k == 0)
        rc = job_data__fail(reason, cap, QN_EINVAL,
                            "dataset %" PRId64 " has no usable rows (every solve failed)",
                            r->rec.id);
    if (rc == 0 && r->classify && all->n_classes < 2)
        all->n_classes = 2; /* one class seen: still a classification */
    return rc;
}

/* ---- loading ------------------------------------------------------------------------ */

/* Keeps the first `limit` rows of ds (0 = all). */
static int job_data__limit(struct data_set *ds, size_t limit)
{
    if (limit == 0 || limit >= ds->n)
        return 0;
    struct data_set sub;
    int rc = data_subset(ds, limit, &sub);
    if (rc)
        return rc;
    size_t nc = ds->n_classes;
    data_close(ds);
    *ds = sub;
    if (ds->labels)
        ds->n_classes = nc; /* the classes of the whole set, not of the first rows */
    return 0;
}

/* The gate of a logic-gate built-in, or -1. */
static int job_data__gate(enum job_ds_kind k)
{
    switch (k) {
    case JOB_DS_AND: return DATA_GATE_AND;
    case JOB_DS_OR: return DATA_GATE_OR;
    case JOB_DS_NAND: return DATA_GATE_NAND;
    case JOB_DS_NOR: return DATA_GATE_NOR;
    case JOB_DS_XOR: return DATA_GATE_XOR;
    case JOB_DS_XNOR: return DATA_GATE_XNOR;
    default: return -1;
    }
}

/* Generates a built-in generator's rows (seeded) into *all. */
static int job_data__generate(const struct job_dsref *r, uint64_t seed, struct data_set *all)
{
    const struct dataset_spec *d = r->spec;
    int gate = job_data__gate(r->kind);
    if (gate >= 0)
        return data_gen_gate(all, (enum data_gate)gate, d->samples, d->noise, seed);
    if (r->kind == JOB_DS_SINE)
        return data_gen_sine(all, d->samples, seed);
    if (r->kind == JOB_DS_LOTKA_VOLTERRA)
        return data_gen_lotka_volterra(all, d->samples, seed);
    return data_gen_spirals(all, d->samples, d->arms, d->noise, seed);
}

/* Splits all into train and test by the spec's test_fraction; a gate's four
 * exact corners are both the training and the test set. */
static int job_data__split(const struct job_dsref *r, const struct data_set *all, uint64_t seed,
                           struct data_set *train, struct data_set *test)
{
    if (job_data__gate(r->kind) >= 0 && r->spec->samples == 0) {
        int rc = data_subset(all, all->n, train);
        return rc ? rc : data_subset(all, all->n, test);
    }
    int rc = data_split(all, r->spec->test_fraction, seed ^ 0x5eed5eedu, train, test);
    if (rc == 0 && all->labels) {
        train->n_classes = all->n_classes;
        test->n_classes = all->n_classes;
    }
    return rc;
}

int job_data_load(struct store *s, const struct job_dsref *r, uint64_t seed,
                  struct data_set *train, struct data_set *test, char *reason, size_t cap)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    reason[0] = '\0';
    struct data_set all = {0};
    int rc;
    if (r->kind == JOB_DS_FASHION) {
        struct data_error e = {0, 0, {0}};
        rc = data_load_fashion_mnist(train, test, NULL, &e);
        if (rc)
            return job_data__fail(reason, cap, rc, "cannot load fashion-mnist: %s", e.msg);
    } else {
        rc = r->kind == JOB_DS_STORED ? job_data__read_all(s, r, &all, reason, cap)
                                      : job_data__generate(r, seed, &all);
        if (rc == 0)
            rc = job_data__split(r, &all, seed, train, test);
        data_close(&all);
        if (rc && !reason[0])
            job_data__fail(reason, cap, rc, "cannot make the dataset: %s", qn_err_msg(rc));
        if (rc)
            return rc;
    }
    rc = job_data__limit(train, r->spec->limit);
    if (rc == 0)
        rc = job_data__limit(test, r->spec->test_limit);
    if (rc == 0 && (train->n == 0 || test->n == 0))
        rc = job_data__fail(reason, cap, QN_EINVAL, "the %s split is empty",
                            train->n == 0 ? "training" : "test");
    if (rc && !reason[0])
        job_data__fail(reason, cap, rc, "cannot subset the dataset: %s", qn_err_msg(rc));
    return rc;
}

int job_data_concat(const struct data_set *a, const struct data_set *b, struct data_set *out)
{
    if (a->d != b->d || a->t != b->t || !a->labels != !b->labels || a->n > SIZE_MAX - b->n)
        return QN_EINVAL;
    size_t nc = a->n_classes > b->n_classes ? a->n_classes : b->n_classes;
    int rc = data_alloc(out, a->n + b->n, a->d, a->labels ? nc : 0, a->t);
    if (rc)
        return rc;
    memcpy(out->x, a->x, a->n * a->d * sizeof *a->x);
    memcpy(out->x + a->n * a->d, b->x, b->n * b->d * sizeof *b->x);
    if (a->labels) {
        memcpy(out->labels, a->labels, a->n * sizeof *a->labels);
        memcpy(out->labels + a->n, b->labels, b->n * sizeof *b->labels);
    } else {
        memcpy(out->y, a->y, a->n * a->t * sizeof *a->y);
        memcpy(out->y + a->n * a->t, b->y, b->n * b->t * sizeof *b->y);
    }
    return 0;
}

/* ---- sweeps for fits --------------------------------------------------------------- */

void job_data_sweep_free(struct job_sweep_data *d)
{
    free(d->in);
    free(d->out);
    free(d->status);
    memset(d, 0, sizeof *d);
}

/* Copies block rows into the sweep arrays at row k. */
static void job_data__sweep_rows(const struct job_dsref *r, const float *buf, size_t m,
                                 struct job_sweep_data *d, size_t k)
{
    size_t nc = r->rec.n_cols;
    for (size_t i = 0; i < m; i++) {
        const float *row = buf + i * nc;
        for (size_t j = 0; j < d->n_in; j++)
            d->in[(k + i) * d->n_in + j] = row[r->in_col[j]];
        d->out[k + i] = row[r->y_col];
        float st = row[r->status_col];
        d->status[k + i] = isfinite(st) ? (int)st : QN_EFORMAT;
    }
}

int job_data_sweep(struct store *s, const struct job_dsref *r, struct job_sweep_data *d,
                   char *reason, size_t cap)
{
    memset(d, 0, sizeof *d);
    size_t n = r->rec.n_rows, nc = r->rec.n_cols, blk = STORE_BLOCK_ROWS;
    if (r->spec->limit && r->spec->limit < n)
        n = r->spec->limit;
    d->n = n;
    d->n_in = r->n_in;
    if (n == 0 || n > DATA_MAX_ELEMS / d->n_in)
        return job_data__fail(reason, cap, QN_ERANGE, "dataset %" PRId64 " has %zu rows",
                              r->rec.id, r->rec.n_rows);
    d->in = malloc(n * d->n_in * sizeof *d->in);
    d->out = malloc(n * sizeof *d->out);
    d->status = malloc(n * sizeof *d->status);
    float *buf = malloc(blk * nc * sizeof *buf);
    int rc = d->in && d->out && d->status && buf ? 0 : QN_ENOMEM;
    for (size_t r0 = 0; rc == 0 && r0 < n; r0 += blk) {
        size_t m = n - r0 < blk ? n - r0 : blk;
        rc = store_dataset_read(s, r->rec.id, r0, m, buf);
        if (rc == 0)
            job_data__sweep_rows(r, buf, m, d, r0);
    }
    free(buf);
    if (rc)
        return job_data__fail(reason, cap, rc, "cannot read dataset %" PRId64 ": %s", r->rec.id,
                              qn_err_msg(rc));
    return 0;
}
