/*
 * job_evaluate.c: the evaluate job: a stored model scored on a dataset
 * split, with any layer computed another way ("via": {"0": "device"}).
 *
 * The model's stored spec has every device inline and every surrogate as an
 * id, so the network is rebuilt from it alone; the "via" overrides are
 * applied before the network is built (the parameter layout does not depend
 * on the via). The inputs are standardised with the scaler saved with the
 * model, never refitted. A model trained via surrogate and scored via device
 * is the number users came for.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "job_data.h"
#include "job_net.h"
#include "qn_err.h"

#define JOB_EVAL_BATCH 256 /* rows per forward pass */

/* What prepare made. */
struct job_evaluate {
    struct evaluate_spec e;   /* parsed spec */
    int have_e;
    struct store_model model; /* the model's row */
    int have_model;
    struct train_spec t;      /* the model's stored train spec */
    int have_t;
    struct job_netdef nd;     /* its layers, overrides applied */
    struct job_dsref ds;      /* the dataset to score on */
};

/* Loads the model row the reference names. */
static int job_eval__model(struct job_ctx *ctx, struct job_evaluate *p)
{
    const struct spec_ref *ref = &p->e.model;
    const char *path = "/spec/model";
    int rc;
    if (ref->kind == REF_JOB) {
        if ((rc = job_ref_check(ctx->store, ref->id, "train", path, &ctx->err)))
            return rc;
        rc = store_model_get_by_job(ctx->store, ref->id, &p->model);
    } else if (ref->kind == REF_ID) {
        rc = store_model_get(ctx->store, ref->id, &p->model);
    } else if (ref->kind == REF_NAME) {
        rc = store_model_get_by_name(ctx->store, ref->name, &p->model);
    } else {
        return spec_fail(&ctx->err, path, "a model is an id, a name or {\"job\": N}");
    }
    if (rc == QN_ENOTFOUND)
        return ref->kind == REF_NAME
                   ? spec_fail(&ctx->err, path, "no model named '%s'", ref->name)
                   : spec_fail(&ctx->err, path, "no model %s %" PRId64,
                               ref->kind == REF_JOB ? "made by job" : "with id", ref->id);
    if (rc)
        return spec_fail(&ctx->err, path, "cannot read the model: %s", qn_err_msg(rc));
    p->have_model = 1;
    return 0;
}

/* Rebuilds the model's layers from its stored spec. */
static int job_eval__layers(struct job_ctx *ctx, struct job_evaluate *p)
{
    struct spec_error e = {{0}, {0}};
    json_t *root = NULL;
    int rc = spec_load(p->model.spec, strlen(p->model.spec), &root, &e);
    if (rc == 0)
        rc = spec_train_parse(root, &p->t, &e);
    json_decref(root);
    p->have_t = rc == 0;
    if (rc == 0)
        rc = job_netdef_resolve(ctx->store, &p->t, &p->nd, &e);
    if (rc)
        return spec_fail(&ctx->err, "/spec/model", "model %" PRId64 " cannot be rebuilt: %s: %s",
                         p->model.id, e.path, e.msg);
    return 0;
}

/* Applies the "surrogates" and "via" entries of layer l. */
static int job_eval__override(struct job_ctx *ctx, struct job_evaluate *p, size_t l,
                              enum net_via via)
{
    char path[SPEC_PATH_MAX];
    if (l >= p->nd.n_layers) {
        snprintf(path, sizeof path, "/spec/%s/%zu", p->e.has_surrogate[l] ? "surrogates" : "via",
                 l);
        return spec_fail(&ctx->err, path, "model %" PRId64 " has %zu layers (0 to %zu)",
                         p->model.id, p->nd.n_layers, p->nd.n_layers - 1);
    }
    if (p->e.has_surrogate[l]) {
        struct surrogate sur;
        int64_t id;
        snprintf(path, sizeof path, "/spec/surrogates/%zu", l);
        int rc = job_resolve_surrogate(ctx->store, &p->e.surrogate[l], path, &p->nd.dev[l], &sur,
                                       &id, &ctx->err);
        if (rc)
            return rc;
        if (p->nd.have_sur[l])
            surrogate_close(&p->nd.sur[l]);
        p->nd.sur[l] = sur;
        p->nd.sur_id[l] = id;
        p->nd.have_sur[l] = 1;
    }
    snprintf(path, sizeof path, "/spec/via/%zu", l);
    p->nd.via[l] = via;
    return job_check_via(&p->nd.dev[l], via, p->nd.have_sur[l], 1, path, &ctx->err);
}

/* Every "via" entry, then "surrogates" entries without one. */
static int job_eval__overrides(struct job_ctx *ctx, struct job_evaluate *p)
{
    int done[NET_MAX_LAYERS] = {0};
    for (size_t i = 0; i < p->e.n_via; i++) {
        size_t l = p->e.via_layer[i];
        int rc = job_eval__override(ctx, p, l, p->e.via[i]);
        if (rc)
            return rc;
        done[l] = 1;
    }
    for (size_t l = 0; l < NET_MAX_LAYERS; l++) {
        if (!p->e.has_surrogate[l] || done[l])
            continue;
        int rc = job_eval__override(ctx, p, l, l < p->nd.n_layers ? p->nd.via[l] : VIA_EXACT);
        if (rc)
            return rc;
    }
    return 0;
}

/* job_type.validate: the spec alone; its model may be a train's, its dataset
 * a sweep's and its "surrogates" fits' {"job": N}. */
static int job_evaluate_validate(const json_t *spec, struct job_refs *refs,
                                 struct spec_error *err)
{
    struct evaluate_spec *e = malloc(sizeof *e);
    if (!e)
        return spec_fail(err, "", "out of memory"), QN_ENOMEM;
    int rc = spec_evaluate_parse(spec, e, err);
    if (rc == 0) {
        job_refs_add(refs, &e->model, "/spec/model", "train");
        job_refs_add(refs, &e->dataset.ref, "/spec/dataset", "sweep");
        for (size_t l = 0; l < NET_MAX_LAYERS; l++) {
            char path[SPEC_PATH_MAX];
            snprintf(path, sizeof path, "/spec/surrogates/%zu", l);
            if (e->has_surrogate[l])
                job_refs_add(refs, &e->surrogate[l], path, "fit");
        }
        spec_evaluate_close(e);
    }
    free(e);
    return rc;
}

static int job_evaluate_prepare(struct job_ctx *ctx)
{
    struct job_evaluate *p = calloc(1, sizeof *p);
    if (!p)
        return spec_fail(&ctx->err, "", "out of memory"), QN_ENOMEM;
    ctx->prep = p;
    int rc = spec_evaluate_parse(ctx->spec, &p->e, &ctx->err);
    if (rc)
        return rc;
    p->have_e = 1;
    if ((rc = job_eval__model(ctx, p)) || (rc = job_eval__layers(ctx, p)) ||
        (rc = job_eval__overrides(ctx, p)))
        return rc;
    rc = job_data_resolve(ctx->store, &p->e.dataset, "/spec/dataset", &p->ds, &ctx->err);
    if (rc == 0 && p->ds.classify != (strcmp(p->model.loss, "cross_entropy") == 0))
        rc = spec_fail(&ctx->err, "/spec/dataset", "model %" PRId64 " was trained with loss %s "
                       "and needs a %s dataset", p->model.id, p->model.loss,
                       p->ds.classify ? "regression" : "labelled");
    return rc;
}

static void job_evaluate_release(struct job_ctx *ctx)
{
    struct job_evaluate *p = ctx->prep;
    if (!p)
        return;
    job_data_close(&p->ds);
    job_netdef_close(&p->nd);
    if (p->have_t)
        spec_train_close(&p->t);
    if (p->have_model)
        store_model_free(&p->model);
    if (p->have_e)
        spec_evaluate_close(&p->e);
    free(p);
    ctx->prep = NULL;
}

/* Loads the dataset, keeps the split asked for, standardises it with the model's scaler. */
static int job_eval__data(struct job_ctx *ctx, const struct job_evaluate *p, struct data_set *ds)
{
    struct data_set train = {0}, test = {0};
    uint64_t seed = p->e.has_seed ? p->e.seed : p->t.train.seed;
    int rc = job_data_load(ctx->store, &p->ds, seed, &train, &test, ctx->reason,
                           sizeof ctx->reason);
    if (rc == 0) {
        if (p->e.split == SPLIT_ALL)
            rc = job_data_concat(&train, &test, ds);
        else {
            struct data_set *keep = p->e.split == SPLIT_TEST ? &test : &train;
            *ds = *keep; /* ownership moves to ds */
            memset(keep, 0, sizeof *keep);
        }
        if (rc)
            job_fail(ctx, rc, "cannot join the splits");
    }
    data_close(&train);
    data_close(&test);
    return rc;
}

/* The dataset must match the model: inputs, classes or targets. */
static int job_eval__fits(struct job_ctx *ctx, const struct job_evaluate *p,
                          const struct data_set *ds)
{
    const struct store_model *m = &p->model;
    if (ds->d != m->n_in)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has %zu inputs; model %" PRId64 " takes %zu", ds->d, m->id, m->n_in);
    else if (ds->labels && ds->n_classes > m->n_out)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has labels up to %zu; model %" PRId64 " has %zu outputs",
                 ds->n_classes - 1, m->id, m->n_out);
    else if (!ds->labels && ds->t != m->n_out)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has %zu targets; model %" PRId64 " has %zu outputs", ds->t, m->id,
                 m->n_out);
    else if (m->n_scaler != 2 * m->n_in)
        snprintf(ctx->reason, sizeof ctx->reason, "model %" PRId64 " has a corrupt scaler",
                 m->id);
    else
        return 0;
    return QN_EINVAL;
}

/* x = (x - mean) / std with the model's saved statistics. */
static int job_eval__standardise(const struct store_model *m, struct data_set *ds)
{
    struct data_scaler sc;
    int rc = data_scaler_init(&sc, m->n_in);
    if (rc)
        return rc;
    memcpy(sc.slab, m->scaler, 2 * m->n_in * sizeof *sc.slab);
    rc = data_scaler_apply(&sc, ds);
    data_scaler_close(&sc);
    return rc;
}

/* Rebuilds the network with the model's parameters. */
static int job_eval__net(struct job_ctx *ctx, const struct job_evaluate *p, struct net **out)
{
    struct net_layer_spec ls[NET_MAX_LAYERS];
    job_netdef_layers(&p->nd, ls);
    for (size_t l = 0; l < p->nd.n_layers; l++)
        ls[l].forward_only = 1; /* scoring only: a spike-rate device may be used via device */
    int rc = net_create(out, p->model.n_in, ls, p->nd.n_layers, JOB_EVAL_BATCH, ctx->workers,
                        p->t.train.seed, ctx->cancel);
    if (rc)
        return job_fail(ctx, rc, "cannot build the network");
    if ((*out)->n_params != p->model.n_params || (*out)->n_out != p->model.n_out) {
        snprintf(ctx->reason, sizeof ctx->reason, "model %" PRId64 " has %zu parameters; its "
                 "network has %zu", p->model.id, p->model.n_params, (*out)->n_params);
        return QN_EFORMAT;
    }
    memcpy((*out)->params, p->model.params, p->model.n_params * sizeof *p->model.params);
    return 0;
}

/* Metric rows and the result. */
static int job_eval__report(struct job_ctx *ctx, const struct job_evaluate *p,
                            const struct net *n, size_t rows, double loss, double acc)
{
    struct store *s = ctx->store;
    int rc = store_metric_insert(s, ctx->job_id, 0, 0, "loss", loss);
    if (rc == 0 && isfinite(acc))
        rc = store_metric_insert(s, ctx->job_id, 0, 0, "accuracy", acc);
    if (rc == 0)
        rc = store_metric_insert(s, ctx->job_id, 0, 0, "failed_solves", (double)n->failed_solves);
    if (rc)
        return job_fail(ctx, rc, "cannot store the metrics");
    ctx->result = json_pack("{sI so so sI sI ss}", "model", (json_int_t)p->model.id, "accuracy",
                            job_real(acc), "loss", job_real(loss), "failed_solves",
                            (json_int_t)n->failed_solves, "rows", (json_int_t)rows, "split",
                            spec_split_name(p->e.split));
    return ctx->result ? 0 : QN_ENOMEM;
}

static int job_evaluate_run(struct job_ctx *ctx)
{
    const struct job_evaluate *p = ctx->prep;
    struct data_set ds = {0};
    struct net *n = NULL;
    double loss = NAN, acc = NAN;
    int rc = job_eval__data(ctx, p, &ds);
    if (rc == 0)
        rc = job_eval__fits(ctx, p, &ds);
    if (rc == 0 && (rc = job_eval__standardise(&p->model, &ds)))
        job_fail(ctx, rc, "cannot standardise the inputs");
    if (rc == 0)
        rc = job_eval__net(ctx, p, &n);
    if (rc == 0) {
        enum loss_kind lk = strcmp(p->model.loss, "mse") == 0 ? LOSS_MSE : LOSS_CROSS_ENTROPY;
        rc = train_evaluate(n, &ds, lk, &loss, &acc);
        if (rc)
            job_fail(ctx, rc, "evaluation stopped");
    }
    if (rc == 0)
        rc = job_eval__report(ctx, p, n, ds.n, loss, acc);
    net_destroy(n);
    data_close(&ds);
    return rc;
}

const struct job_type job_evaluate_type = {.name = "evaluate",
                                           .validate = job_evaluate_validate,
                                           .prepare = job_evaluate_prepare,
                                           .run = job_evaluate_run,
                                           .release = job_evaluate_release};
