/*
 * job_sweep.c: the sweep job: a device solved over a sampling design into a
 * stored dataset.
 *
 * The design is generated and solved in memory first (engine/design.h,
 * engine/sweep.h); only then is the dataset written, in one store
 * transaction, converting the double results to float32 rows a chunk at a
 * time. So a sweep that fails or is canceled leaves no dataset at all, and
 * the database's write lock is held only for the copy, not for the solves.
 * The dataset's columns are the device's inputs in its own order, then the
 * swept parameters in the device's parameter order (a range on a parameter,
 * "kappa": [lo, hi], solves each row with that value), then "out", then
 * "status" (0 = ok, else the row's qn_err code, as a float).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "design.h"
#include "job.h"
#include "qn_err.h"
#include "sweep.h"

#define JOB_SWEEP_CHUNK 1024 /* rows converted to float32 per append */

/* What prepare made: the parsed spec and the prepared device. */
struct job_sweep {
    struct sweep_spec sw;  /* ranges bound to the device's input order */
    struct dev_model dev;  /* prepared */
    int have_dev;          /* dev must be closed */
};

/* The solved sweep, in memory. */
struct job_sweep_rows {
    size_t n, dim;   /* rows, columns per row: the device's inputs then swept parameters */
    double *in;      /* (n, dim) design points (owned) */
    double *out;     /* (n) outputs, NaN where a row failed (owned) */
    int *status;     /* (n) 0 or the row's qn_err code (owned) */
};

/* job_type.validate: the spec alone; a sweep references no job. */
static int job_sweep_validate(const json_t *spec, struct job_refs *refs, struct spec_error *err)
{
    (void)refs;
    struct sweep_spec sw;
    int rc = spec_sweep_parse(spec, &sw, err);
    if (rc == 0)
        spec_sweep_close(&sw);
    return rc;
}

static int job_sweep_prepare(struct job_ctx *ctx)
{
    struct job_sweep *p = calloc(1, sizeof *p);
    if (!p) {
        spec_fail(&ctx->err, "", "out of memory");
        return QN_ENOMEM;
    }
    ctx->prep = p;
    int rc = spec_sweep_parse(ctx->spec, &p->sw, &ctx->err);
    if (rc) {
        memset(&p->sw, 0, sizeof p->sw); /* parse closed it */
        return rc;
    }
    rc = job_resolve_device(ctx->store, &p->sw.device, "/spec/device", &p->dev, &ctx->err);
    if (rc)
        return rc;
    p->have_dev = 1;
    return spec_sweep_bind(&p->sw, &p->dev, &ctx->err);
}

static void job_sweep_release(struct job_ctx *ctx)
{
    struct job_sweep *p = ctx->prep;
    if (!p)
        return;
    spec_sweep_close(&p->sw);
    if (p->have_dev)
        dev_model_close(&p->dev);
    free(p);
    ctx->prep = NULL;
}

static void job_sweep__rows_free(struct job_sweep_rows *r)
{
    free(r->in);
    free(r->out);
    free(r->status);
}

/* Allocates and generates the design; n from design_points. */
static int job_sweep__design(const struct job_sweep *p, struct job_sweep_rows *r)
{
    r->dim = p->sw.n_ranges;
    r->n = design_points(p->sw.design, p->sw.samples, r->dim);
    if (r->n == 0 || r->dim == 0 || r->n > SIZE_MAX / sizeof(double) / r->dim)
        return QN_ERANGE;
    r->in = malloc(r->n * r->dim * sizeof(double));
    r->out = malloc(r->n * sizeof(double));
    r->status = malloc(r->n * sizeof(int));
    if (!r->in || !r->out || !r->status)
        return QN_ENOMEM;
    return design_generate(p->sw.design, p->sw.samples, r->dim, p->sw.lo, p->sw.hi, p->sw.seed,
                           r->in);
}

/* Copies rows [r0, r0 + k) as float32 [inputs..., out, status] into buf. */
static void job_sweep__to_float(const struct job_sweep_rows *r, size_t r0, size_t k, float *buf)
{
    size_t w = r->dim + 2;
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < r->dim; j++)
            buf[i * w + j] = (float)r->in[(r0 + i) * r->dim + j];
        buf[i * w + r->dim] = (float)r->out[r0 + i];
        buf[i * w + r->dim + 1] = (float)r->status[r0 + i];
    }
}

/* Appends every row, checking the cancel flag between chunks. */
static int job_sweep__append(struct job_ctx *ctx, const struct job_sweep_rows *r,
                             struct store_dswriter *w)
{
    float *buf = malloc(JOB_SWEEP_CHUNK * (r->dim + 2) * sizeof(float));
    if (!buf)
        return QN_ENOMEM;
    int rc = 0;
    for (size_t r0 = 0; rc == 0 && r0 < r->n; r0 += JOB_SWEEP_CHUNK) {
        size_t k = r->n - r0 < JOB_SWEEP_CHUNK ? r->n - r0 : JOB_SWEEP_CHUNK;
        job_sweep__to_float(r, r0, k, buf);
        rc = store_dataset_append(w, buf, k);
        if (rc == 0 && ctx->cancel && atomic_load(ctx->cancel))
            rc = QN_ECANCELED;
    }
    free(buf);
    return rc;
}

/* Writes the dataset in one transaction; its id into *id. */
static int job_sweep__store(struct job_ctx *ctx, const struct job_sweep *p,
                            const struct job_sweep_rows *r, int64_t *id)
{
    const char *cols[SPEC_MAX_RANGES + 2];
    for (size_t j = 0; j < r->dim; j++)
        cols[j] = p->sw.range_names[j];
    cols[r->dim] = "out";
    cols[r->dim + 1] = "status";
    struct store_dswriter *w = NULL;
    int rc = store_dataset_begin(ctx->store, ctx->name, "sweep", r->dim + 2, cols, ctx->job_id,
                                 &w);
    if (rc)
        return rc;
    rc = job_sweep__append(ctx, r, w); /* checks the cancel flag after the last chunk too */
    if (rc) {
        store_dataset_abort(w);
        return rc;
    }
    return store_dataset_finish(w, id);
}

/* Rows per status: counts[-code] for every code of the table (0: ok). */
static void job_sweep__count(const struct job_sweep_rows *r, size_t counts[QN_ERR_COUNT])
{
    memset(counts, 0, QN_ERR_COUNT * sizeof *counts);
    for (size_t i = 0; i < r->n; i++)
        if (r->status[i] <= 0 && r->status[i] > -QN_ERR_COUNT)
            counts[-r->status[i]]++;
}

/* The counts as "solver_failed 48, not_converged 2" (failures only) into buf. */
static void job_sweep__count_text(const size_t counts[QN_ERR_COUNT], char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 1; k < QN_ERR_COUNT && len < cap; k++)
        if (counts[k])
            len += (size_t)snprintf(buf + len, cap - len, "%s%s %zu", len ? ", " : "",
                                    qn_err_name(-k), counts[k]);
}

/* {"dataset", "rows", "failed", "statuses": {"ok": n, "solver_failed": k, ...}} into ctx->result. */
static int job_sweep__result(struct job_ctx *ctx, int64_t id, const struct job_sweep_rows *r,
                             const size_t counts[QN_ERR_COUNT])
{
    json_t *st = json_object();
    for (int k = 0; st && k < QN_ERR_COUNT; k++) {
        json_t *v = counts[k] ? json_integer((json_int_t)counts[k]) : NULL;
        if (counts[k] && json_object_set_new(st, qn_err_name(-k), v))
            json_decref(st), st = NULL;
    }
    if (!st)
        return QN_ENOMEM;
    ctx->result = json_pack("{sI sI sI so}", "dataset", (json_int_t)id, "rows", (json_int_t)r->n,
                            "failed", (json_int_t)(r->n - counts[0]), "statuses", st);
    return ctx->result ? 0 : QN_ENOMEM;
}

/* A sweep none of whose rows could be solved has nothing to fit: it fails,
 * saying how its rows failed, and stores nothing. */
static int job_sweep__none_usable(struct job_ctx *ctx, const struct job_sweep_rows *r,
                                  const size_t counts[QN_ERR_COUNT])
{
    char text[200];
    job_sweep__count_text(counts, text, sizeof text);
    snprintf(ctx->reason, sizeof ctx->reason, "no usable row: all %zu solves failed (%s)", r->n,
             text);
    return QN_ESOLVER;
}

static int job_sweep_run(struct job_ctx *ctx)
{
    const struct job_sweep *p = ctx->prep;
    struct job_sweep_rows r = {0};
    int64_t id = 0;
    struct sweep_hooks hooks = {ctx->progress, ctx->progress_ctx, ctx->cancel};
    int rc = job_sweep__design(p, &r);
    if (rc) {
        job_fail(ctx, rc, "cannot generate the design");
        goto out;
    }
    rc = sweep_run_params(&p->dev, r.in, r.n, p->sw.n_ranges - p->sw.n_inputs, p->sw.param_idx,
                          ctx->workers, r.out, r.status, &hooks);
    if (rc) {
        job_fail(ctx, rc, "sweep stopped");
        goto out;
    }
    size_t counts[QN_ERR_COUNT];
    job_sweep__count(&r, counts);
    if (counts[0] == 0) {
        rc = job_sweep__none_usable(ctx, &r, counts);
        goto out;
    }
    rc = job_sweep__store(ctx, p, &r, &id);
    if (rc) {
        job_fail(ctx, rc, "cannot store the dataset");
        goto out;
    }
    rc = job_sweep__result(ctx, id, &r, counts);
out:
    job_sweep__rows_free(&r);
    return rc;
}

const struct job_type job_sweep_type = {.name = "sweep",
                                        .validate = job_sweep_validate,
                                        .prepare = job_sweep_prepare,
                                        .run = job_sweep_run,
                                        .release = job_sweep_release};
