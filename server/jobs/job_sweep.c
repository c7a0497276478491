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
 *
 * On several ranks (job_remote.h) the spec goes to qn-mpi with its device
 * inline (stage); qn-mpi sends back every row's output and status, and the
 * design is generated again here by the same function (spool_sweep_design),
 * so collect stores exactly what an in-process run stores.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "qn_err.h"
#include "spool.h"
#include "sweep.h"

#define JOB_SWEEP_CHUNK 1024 /* rows converted to float32 per append */

/* What prepare made: the parsed spec and the prepared device. */
struct job_sweep {
    struct sweep_spec sw;  /* ranges bound to the device's input order */
    struct dev_model dev;  /* prepared */
    int have_dev;          /* dev must be closed */
    json_t *dev_json;      /* the device object (new reference): stage writes it inline */
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
    rc = job_resolve_device_json(ctx->store, &p->sw.device, "/spec/device", &p->dev,
                                 &p->dev_json, &ctx->err);
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
    json_decref(p->dev_json);
    free(p);
    ctx->prep = NULL;
}

static void job_sweep__rows_free(struct job_sweep_rows *r)
{
    free(r->in);
    free(r->out);
    free(r->status);
}

/* Generates the design (spool_sweep_design, as qn-mpi does) and allocates the outputs. */
static int job_sweep__design(const struct job_sweep *p, struct job_sweep_rows *r)
{
    r->dim = p->sw.n_ranges;
    int rc = spool_sweep_design(&p->sw, &r->n, &r->in);
    if (rc)
        return rc;
    r->out = malloc(r->n * sizeof(double));
    r->status = malloc(r->n * sizeof(int));
    return r->out && r->status ? 0 : QN_ENOMEM;
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

/* The solved rows r stored as the job's dataset, and the result. */
static int job_sweep__finish(struct job_ctx *ctx, const struct job_sweep *p,
                             const struct job_sweep_rows *r)
{
    int64_t id = 0;
    size_t counts[QN_ERR_COUNT];
    job_sweep__count(r, counts);
    if (counts[0] == 0)
        return job_sweep__none_usable(ctx, r, counts);
    int rc = job_sweep__store(ctx, p, r, &id);
    if (rc)
        return job_fail(ctx, rc, "cannot store the dataset");
    return job_sweep__result(ctx, id, r, counts);
}

static int job_sweep_run(struct job_ctx *ctx)
{
    const struct job_sweep *p = ctx->prep;
    struct job_sweep_rows r = {0};
    struct sweep_hooks hooks = {ctx->progress, ctx->progress_ctx, ctx->cancel};
    int rc = job_sweep__design(p, &r);
    if (rc)
        job_fail(ctx, rc, "cannot generate the design");
    else if ((rc = sweep_run_params(&p->dev, r.in, r.n, p->sw.n_ranges - p->sw.n_inputs,
                                    p->sw.param_idx, ctx->workers, r.out, r.status, &hooks)))
        job_fail(ctx, rc, "sweep stopped");
    else
        rc = job_sweep__finish(ctx, p, &r);
    job_sweep__rows_free(&r);
    return rc;
}

/* job_type.stage: job.json with the spec's device inline. */
static int job_sweep_stage(struct job_ctx *ctx, const char *dir)
{
    const struct job_sweep *p = ctx->prep;
    json_t *spec = json_copy((json_t *)ctx->spec); /* shallow: only "device" changes */
    int rc = spec && json_object_set(spec, "device", p->dev_json) == 0 ? 0 : QN_ENOMEM;
    if (rc == 0)
        rc = spool_job_write(dir, ctx->job_id, "sweep", ctx->name, ctx->ranks, ctx->threads, spec,
                             ctx->reason, sizeof ctx->reason);
    json_decref(spec);
    return rc == QN_ENOMEM ? job_fail(ctx, rc, "cannot stage the sweep") : rc;
}

/* job_type.collect: qn-mpi's rows beside the design generated again, stored. */
static int job_sweep_collect(struct job_ctx *ctx, const char *dir)
{
    const struct job_sweep *p = ctx->prep;
    struct job_sweep_rows r = {0};
    int rc = job_sweep__design(p, &r);
    if (rc)
        job_fail(ctx, rc, "cannot generate the design");
    else if ((rc = spool_sweep_result_read(dir, r.n, r.out, r.status, ctx->reason,
                                           sizeof ctx->reason)) == 0)
        rc = job_sweep__finish(ctx, p, &r);
    job_sweep__rows_free(&r);
    return rc;
}

const struct job_type job_sweep_type = {.name = "sweep",
                                        .validate = job_sweep_validate,
                                        .prepare = job_sweep_prepare,
                                        .run = job_sweep_run,
                                        .release = job_sweep_release,
                                        .stage = job_sweep_stage,
                                        .collect = job_sweep_collect};
