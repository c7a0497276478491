/*
 * job_fit.c: the fit job: a frozen MLP surrogate of the device a sweep
 * dataset came from.
 *
 * prepare resolves the dataset (it must be a sweep's: inputs..., out,
 * status) and, through the sweep job's stored spec, the device it swept; the
 * surrogate row keeps that device's JSON, so a train job can check that a
 * layer's device and its surrogate agree without the sweep. run reads the
 * rows, fits (engine/surrogate.h) with one metric row per epoch (train_loss,
 * val_rmse) and a step_loss every JOB_FIT_STEP_EVERY steps, and stores the
 * surrogate blob. Rows whose solve failed are
 * excluded by the fit and counted in the result. A sweep that also ranged
 * over parameters of the device (columns u1, kappa, out, status) gives a
 * parameter-conditioned surrogate f(u; theta): its inputs are the drives then
 * those parameters, whose names the surrogate records (surrogate_set_cond).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "job_data.h"
#include "qn_err.h"
#include "spec_run.h"
#include "spool.h"

#define JOB_FIT_STEP_EVERY 20 /* steps between step_loss metrics, as train jobs */

/* What prepare made. */
struct job_fit {
    struct fit_spec fit;      /* parsed spec */
    int have_fit;
    struct job_dsref ds;      /* the sweep dataset */
    struct dev_model dev;     /* the swept device */
    int have_dev;
    char *device_json;        /* its JSON text (owned) */
    size_t n_cond;            /* input columns after the drives: swept parameters */
    const char *cond[DEV_MAX_PARAMS]; /* their names (borrowed from ds.columns) */
};

/* The metric hook's state. */
struct job_fit_hooks {
    struct job_ctx *ctx;
    size_t epochs;  /* for progress */
    int rc;         /* first failure to store a metric */
};

/* The device of the sweep job that made the dataset, with its JSON text. */
static int job_fit__device(struct job_ctx *ctx, struct job_fit *p)
{
    const char *path = "/spec/dataset";
    struct store_job j;
    if (p->ds.rec.job_id <= 0 || store_job_get(ctx->store, p->ds.rec.job_id, &j) != 0)
        return spec_fail(&ctx->err, path, "dataset %lld has no sweep job to say which device "
                         "it swept", (long long)p->ds.rec.id);
    json_t *spec = json_loads(j.spec, 0, NULL);
    store_job_free(&j);
    struct spec_ref ref = {0};
    json_t *dev_json = NULL;
    int rc = spec_ref_parse(json_object_get(spec, "device"), path, 1, &ref, &ctx->err);
    if (rc == 0)
        rc = job_resolve_device_json(ctx->store, &ref, path, &p->dev, &dev_json, &ctx->err);
    p->have_dev = rc == 0;
    spec_ref_close(&ref);
    json_decref(spec);
    if (rc)
        return rc;
    p->device_json = json_dumps(dev_json, JSON_COMPACT);
    json_decref(dev_json);
    if (!p->device_json)
        return spec_fail(&ctx->err, path, "out of memory");
    return 0;
}

/* The input columns after the device's drives must each name a parameter of the
 * device (a parameter sweep); their names into p->cond. */
static int job_fit__cond(struct job_ctx *ctx, struct job_fit *p)
{
    size_t n_drive = dev_n_inputs(&p->dev);
    p->n_cond = p->ds.n_in - n_drive;
    if (p->n_cond > DEV_MAX_PARAMS)
        return spec_fail(&ctx->err, "/spec/dataset", "the dataset has too many input columns");
    for (size_t k = 0; k < p->n_cond; k++) {
        json_t *c = json_array_get(p->ds.columns, p->ds.in_col[n_drive + k]);
        const char *name = json_string_value(c);
        if (!name || !dev_param_can_vary(&p->dev, name))
            return spec_fail(&ctx->err, "/spec/dataset", "input column '%s' is neither a drive "
                             "nor a parameter of the swept device", name ? name : "?");
        p->cond[k] = name;
    }
    return 0;
}

/* The dataset must be a sweep's, its inputs the device's drives (then parameters). */
static int job_fit__check(struct job_ctx *ctx, struct job_fit *p)
{
    const char *path = "/spec/dataset";
    if (p->ds.kind != JOB_DS_STORED || strcmp(p->ds.rec.source, "sweep") != 0 ||
        p->ds.status_col < 0)
        return spec_fail(&ctx->err, path, "a fit needs a sweep dataset (a stored dataset with "
                                          "columns inputs..., out, status)");
    if (p->ds.classify)
        return spec_fail(&ctx->err, path, "a surrogate fits a regression target, not a label");
    int rc = job_fit__device(ctx, p);
    if (rc == 0 && p->ds.n_in < dev_n_inputs(&p->dev))
        rc = spec_fail(&ctx->err, path, "the dataset has %zu input columns; its device takes %zu",
                       p->ds.n_in, dev_n_inputs(&p->dev));
    return rc ? rc : job_fit__cond(ctx, p);
}

/* job_type.validate: the spec alone; its dataset may be a sweep's {"job": N}. */
static int job_fit_validate(const json_t *spec, struct job_refs *refs, struct spec_error *err)
{
    struct fit_spec f;
    int rc = spec_fit_parse(spec, &f, err);
    if (rc)
        return rc;
    job_refs_add(refs, &f.dataset.ref, "/spec/dataset", "sweep");
    spec_fit_close(&f);
    return 0;
}

static int job_fit_prepare(struct job_ctx *ctx)
{
    struct job_fit *p = calloc(1, sizeof *p);
    if (!p)
        return spec_fail(&ctx->err, "", "out of memory"), QN_ENOMEM;
    ctx->prep = p;
    int rc = spec_fit_parse(ctx->spec, &p->fit, &ctx->err);
    if (rc)
        return rc;
    p->have_fit = 1;
    rc = job_data_resolve(ctx->store, &p->fit.dataset, "/spec/dataset", &p->ds, &ctx->err);
    return rc ? rc : job_fit__check(ctx, p);
}

static void job_fit_release(struct job_ctx *ctx)
{
    struct job_fit *p = ctx->prep;
    if (!p)
        return;
    job_data_close(&p->ds);
    if (p->have_fit)
        spec_fit_close(&p->fit);
    if (p->have_dev)
        dev_model_close(&p->dev);
    free(p->device_json);
    free(p);
    ctx->prep = NULL;
}

static void job_fit__metric(const char *name, size_t step, size_t epoch, double value, void *c)
{
    struct job_fit_hooks *h = c;
    int rc = store_metric_insert(h->ctx->store, h->ctx->job_id, (int64_t)step, (int64_t)epoch,
                                 name, value);
    if (rc && !h->rc)
        h->rc = rc;
    if (h->ctx->progress && strcmp(name, "val_rmse") == 0)
        h->ctx->progress(epoch, h->epochs, h->ctx->progress_ctx);
}

/* Stores the surrogate; its id into *id. */
static int job_fit__store(struct job_ctx *ctx, const struct job_fit *p, const struct surrogate *sur,
                          const struct fit_result *res, int64_t *id)
{
    struct store_surrogate row = {.has_name = 1, .job_id = ctx->job_id,
                                  .device = p->device_json, .dataset_id = p->ds.rec.id,
                                  .n_in = sur->n_in, .val_rmse = res->val_rmse,
                                  .max_error = res->max_error};
    snprintf(row.name, sizeof row.name, "%s", ctx->name);
    int rc = surrogate_to_blob(sur, &row.blob, &row.blob_len);
    if (rc == 0)
        rc = store_surrogate_insert(ctx->store, &row, id);
    free(row.blob);
    return rc;
}

/* The result, with "conditioned_on": the parameters the surrogate takes ([] for none). */
static int job_fit__result(struct job_ctx *ctx, const struct job_fit *p, int64_t id,
                           const struct fit_result *res, size_t rows)
{
    json_t *cond = json_array();
    for (size_t k = 0; cond && k < p->n_cond; k++)
        if (json_array_append_new(cond, json_string(p->cond[k])))
            json_decref(cond), cond = NULL;
    if (!cond)
        return QN_ENOMEM;
    ctx->result = json_pack("{sI so so sI sI sI sI so}", "surrogate", (json_int_t)id, "val_rmse",
                            job_real(res->val_rmse), "max_error",
                            job_real(res->max_error), "rows", (json_int_t)rows,
                            "excluded", (json_int_t)res->n_excluded, "epochs",
                            (json_int_t)res->epochs_run, "best_epoch",
                            (json_int_t)res->best_epoch, "conditioned_on", cond);
    return ctx->result ? 0 : QN_ENOMEM;
}

static int job_fit_run(struct job_ctx *ctx)
{
    const struct job_fit *p = ctx->prep;
    struct job_sweep_data d;
    int rc = job_data_sweep(ctx->store, &p->ds, &d, ctx->reason, sizeof ctx->reason);
    if (rc)
        return rc;
    struct job_fit_hooks h = {ctx, p->fit.cfg.epochs, 0};
    struct fit_hooks hooks = {.metric = job_fit__metric, .ctx = &h, .cancel = ctx->cancel,
                              .step_metric_every = JOB_FIT_STEP_EVERY};
    struct surrogate sur = {0};
    struct fit_result res;
    memset(&res, 0, sizeof res);
    int64_t id = 0;
    const char *what;
    rc = spec_run_fit(&p->fit, d.in, d.out, d.status, d.n, d.n_in, p->n_cond, p->cond, &hooks,
                      &sur, &res, &what);
    if (rc == QN_EINVAL && res.n_train == 0) /* surrogate_fit refused the rows or config */
        snprintf(ctx->reason, sizeof ctx->reason, "cannot fit: too few usable rows (%zu of %zu "
                 "excluded) or a bad configuration", res.n_excluded, d.n);
    else if (rc)
        job_fail(ctx, rc, what);
    if (rc == 0 && h.rc)
        rc = job_fail(ctx, h.rc, "cannot store a metric");
    if (rc == 0 && (rc = job_fit__store(ctx, p, &sur, &res, &id)))
        job_fail(ctx, rc, "cannot store the surrogate");
    if (rc == 0)
        rc = job_fit__result(ctx, p, id, &res, d.n);
    if (sur.mlp)
        surrogate_close(&sur);
    job_data_sweep_free(&d);
    return rc;
}

/* The fit spec with "staged": the conditioning parameters' names and the
 * step_loss interval (spool.h). New reference; NULL when out of memory. */
static json_t *job_fit__staged_spec(const struct job_ctx *ctx, const struct job_fit *p)
{
    json_t *cond = json_array();
    for (size_t k = 0; cond && k < p->n_cond; k++)
        if (json_array_append_new(cond, json_string(p->cond[k])))
            json_decref(cond), cond = NULL;
    json_t *staged = cond ? json_pack("{so sI}", "conditioned_on", cond, "step_metric_every",
                                      (json_int_t)JOB_FIT_STEP_EVERY)
                          : NULL;
    json_t *spec = staged ? json_deep_copy(ctx->spec) : NULL;
    if (spec && json_object_set(spec, SPOOL_STAGED, staged) != 0)
        json_decref(spec), spec = NULL;
    json_decref(staged);
    return spec;
}

/* job_type.stage: the sweep's rows as arrays, job.json with the fit spec. */
static int job_fit_stage(struct job_ctx *ctx, const char *dir)
{
    const struct job_fit *p = ctx->prep;
    struct job_sweep_data d;
    char *why = ctx->reason;
    size_t cap = sizeof ctx->reason;
    int rc = job_data_sweep(ctx->store, &p->ds, &d, why, cap);
    if (rc)
        return rc;
    size_t dims[2] = {d.n, d.n_in};
    rc = spool_array_write(dir, SPOOL_FIT_IN, SPOOL_F32, 2, dims, d.in, why, cap);
    if (rc == 0)
        rc = spool_array_write(dir, SPOOL_FIT_OUT, SPOOL_F32, 1, &d.n, d.out, why, cap);
    if (rc == 0)
        rc = spool_array_write(dir, SPOOL_FIT_STATUS, SPOOL_I32, 1, &d.n, d.status, why, cap);
    json_t *spec = rc ? NULL : job_fit__staged_spec(ctx, p);
    if (rc == 0 && !spec)
        rc = job_fail(ctx, QN_ENOMEM, "cannot stage the fit");
    if (rc == 0)
        rc = spool_job_write(dir, ctx->job_id, "fit", ctx->name, ctx->ranks, ctx->threads, spec,
                             why, cap);
    json_decref(spec);
    job_data_sweep_free(&d);
    return rc;
}

/* job_type.collect: the surrogate qn-mpi fitted, stored as run stores it. */
static int job_fit_collect(struct job_ctx *ctx, const char *dir)
{
    const struct job_fit *p = ctx->prep;
    struct fit_result res;
    struct surrogate sur = {0};
    void *blob = NULL;
    size_t len = 0;
    int64_t id = 0;
    int rc = spool_fit_result_read(dir, &res, ctx->reason, sizeof ctx->reason);
    if (rc == 0)
        rc = spool_blob_read(dir, SPOOL_SURROGATE, &blob, &len, ctx->reason, sizeof ctx->reason);
    if (rc == 0 && (rc = surrogate_from_blob(blob, len, &sur)))
        job_fail(ctx, rc, "qn-mpi's surrogate is unreadable");
    if (rc == 0 && (rc = job_fit__store(ctx, p, &sur, &res, &id)))
        job_fail(ctx, rc, "cannot store the surrogate");
    if (rc == 0)
        rc = job_fit__result(ctx, p, id, &res, res.n_train + res.n_val + res.n_excluded);
    if (sur.mlp)
        surrogate_close(&sur);
    free(blob);
    return rc;
}

const struct job_type job_fit_type = {.name = "fit",
                                      .validate = job_fit_validate,
                                      .prepare = job_fit_prepare,
                                      .run = job_fit_run,
                                      .release = job_fit_release,
                                      .stage = job_fit_stage,
                                      .collect = job_fit_collect};
