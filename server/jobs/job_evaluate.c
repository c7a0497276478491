/*
 * job_evaluate.c: the evaluate job: a stored model scored on a dataset
 * split, with any layer computed another way ("via": {"0": "device"}).
 *
 * The model is opened, its network built and its inputs standardised by
 * job_model.c, as POST /v1/models/{id}/predict does; the "via" overrides are
 * applied to its layers between opening and building (the parameter layout
 * does not depend on the via). A model trained via surrogate and scored via
 * device is the number users came for.
 *
 * "chip": S scores one chip of a device population (every instance with
 * variability drawn as chip S, engine/chip.h); "chips": {"count", "seed"}
 * scores chips seed .. seed + count - 1, whole chips in parallel on the
 * job's threads (train_evaluate_chips; the scores are those of one chip at a
 * time, bit for bit), and reports each and their spread. Noise is drawn,
 * seeded by the chip, unless "noise": false.
 *
 * On several ranks (job_remote.h), stage writes the standardised rows, the
 * model's layers (devices inline, surrogates as blobs) and parameters to the
 * spool (spool_net.h); qn-mpi splits the rows (or the chips) across its
 * ranks and sends back the sums a run here would have made, and collect
 * reports them through the same functions as a run here.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "job_data.h"
#include "job_model.h"
#include "qn_err.h"
#include "spool.h"
#include "spool_net.h"
#include "store_tx.h"

#define JOB_EVAL_BATCH 256 /* rows per forward pass */
#define JOB_EVAL_DOMAIN_WARN 0.01 /* a layer with more of its surrogate inputs outside: a warning */
#define JOB_EVAL_PARAMS "model_params.qna" /* the spool's parameter file (f32, (n_params)) */
#define JOB_EVAL_DATA "eval"               /* the spool's dataset prefix (spool_data_write) */

/* What an evaluation counted besides its scores. */
struct job_eval_tally {
    size_t solves, failed_solves; /* device solves, of which failed */
    size_t rows;                  /* rows scored */
    json_t *ood;                  /* out-of-domain fractions (spool_net_domain; borrowed) */
};

/* What prepare made. */
struct job_evaluate {
    struct evaluate_spec e;   /* parsed spec */
    int have_e;
    struct job_model model;   /* the opened model; its layers with the overrides applied */
    struct job_dsref ds;      /* the dataset to score on */
};

/* Opens the model the reference names (job_model_open); every failure is a
 * spec error at /spec/model. */
static int job_eval__model(struct job_ctx *ctx, struct job_evaluate *p)
{
    return job_model_resolve(ctx->store, &p->e.model, "/spec/model", &p->model, &ctx->err);
}

/* Applies the "surrogates" and "via" entries of layer l. */
static int job_eval__override(struct job_ctx *ctx, struct job_evaluate *p, size_t l,
                              enum net_via via)
{
    char path[SPEC_PATH_MAX];
    if (l >= p->model.nd.n_layers) {
        snprintf(path, sizeof path, "/spec/%s/%zu", p->e.has_surrogate[l] ? "surrogates" : "via",
                 l);
        return spec_fail(&ctx->err, path, "model %" PRId64 " has %zu layers (0 to %zu)",
                         p->model.row.id, p->model.nd.n_layers, p->model.nd.n_layers - 1);
    }
    if (p->e.has_surrogate[l]) {
        struct surrogate sur;
        int64_t id;
        snprintf(path, sizeof path, "/spec/surrogates/%zu", l);
        int matched = 0;
        int rc = job_resolve_surrogate(ctx->store, &p->e.surrogate[l], path, &p->model.nd.dev[l],
                                       p->model.nd.twin[l], &sur, &id, &matched, &ctx->err);
        if (rc)
            return rc;
        if (p->model.nd.have_sur[l])
            surrogate_close(&p->model.nd.sur[l]);
        p->model.nd.sur[l] = sur;
        p->model.nd.sur_id[l] = id;
        p->model.nd.sur_matched[l] = matched;
        p->model.nd.have_sur[l] = 1;
    }
    snprintf(path, sizeof path, "/spec/via/%zu", l);
    p->model.nd.via[l] = via;
    return job_check_via(&p->model.nd.dev[l], via, p->model.nd.have_sur[l], 1, path, &ctx->err);
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
        int rc = job_eval__override(ctx, p, l,
                                    l < p->model.nd.n_layers ? p->model.nd.via[l] : VIA_EXACT);
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

/* "chip" and "chips" need a layer that a chip changes (job_netdef_chip_matters). */
static int job_eval__population(struct job_ctx *ctx, const struct job_evaluate *p)
{
    const struct job_netdef *nd = &p->model.nd;
    if (!p->e.has_chip && !p->e.chips)
        return 0;
    for (size_t l = 0; l < nd->n_layers; l++)
        if (job_netdef_chip_matters(nd, l))
            return 0;
    return spec_fail(&ctx->err, p->e.has_chip ? "/spec/chip" : "/spec/chips",
                     "model %" PRId64 " has no layer that solves a device with variability "
                     "(a device with \"variability\", via device or physics_aware, or via a "
                     "surrogate conditioned on a varying parameter; a surrogate of the nominal "
                     "device is nominal): every chip would be the nominal network",
                     p->model.row.id);
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
    if ((rc = job_eval__model(ctx, p)) || (rc = job_eval__overrides(ctx, p)) ||
        (rc = job_eval__population(ctx, p)))
        return rc;
    const struct store_model *m = &p->model.row;
    rc = job_data_resolve(ctx->store, &p->e.dataset, "/spec/dataset", &p->ds, &ctx->err);
    int labels_ok = p->model.loss == LOSS_CROSS_ENTROPY || m->n_out == 1; /* mse: label = target */
    if (rc == 0 && (p->ds.classify ? !labels_ok : p->model.loss == LOSS_CROSS_ENTROPY))
        rc = spec_fail(&ctx->err, "/spec/dataset",
                       "model %" PRId64 " was trained with loss %s and needs a %s dataset", m->id,
                       m->loss, p->ds.classify ? "regression" : "labelled");
    return rc;
}

static void job_evaluate_release(struct job_ctx *ctx)
{
    struct job_evaluate *p = ctx->prep;
    if (!p)
        return;
    job_data_close(&p->ds);
    job_model_close(&p->model);
    if (p->have_e)
        spec_evaluate_close(&p->e);
    free(p);
    ctx->prep = NULL;
}

/* Loads the dataset, keeps the split asked for, standardises it with the model's scaler. */
static int job_eval__data(struct job_ctx *ctx, const struct job_evaluate *p, struct data_set *ds)
{
    struct data_set train = {0}, test = {0};
    uint64_t seed = p->e.has_seed ? p->e.seed : p->model.t.train.seed;
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
    const struct store_model *m = &p->model.row;
    if (ds->d != m->n_in)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has %zu inputs; model %" PRId64 " takes %zu", ds->d, m->id, m->n_in);
    else if (ds->labels && ds->n_classes > m->n_out && p->model.loss == LOSS_CROSS_ENTROPY)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has labels up to %zu; model %" PRId64 " has %zu outputs",
                 ds->n_classes - 1, m->id, m->n_out);
    else if (!ds->labels && ds->t != m->n_out)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has %zu targets; model %" PRId64 " has %zu outputs", ds->t, m->id,
                 m->n_out);
    else
        return 0;
    return QN_EINVAL;
}

/* Builds the model's network (job_model_net) for batches of JOB_EVAL_BATCH rows. */
static int job_eval__net(struct job_ctx *ctx, const struct job_evaluate *p, struct net **out)
{
    struct spec_error e = {{0}, {0}};
    int rc = job_model_net(&p->model, JOB_EVAL_BATCH, ctx->workers, ctx->cancel, out, &e);
    if (rc == QN_EMODEL)
        snprintf(ctx->reason, sizeof ctx->reason, "%s", e.msg);
    else if (rc)
        job_fail(ctx, rc, "cannot build the network");
    return rc;
}

/* The warning, when a layer's out-of-domain fraction (ood: spool_net_domain's
 * object, or null) is large, that the score is not the surrogate's to stand
 * behind: a new string, or NULL (none, or out of memory: *rc says). */
static json_t *job_eval__warning(const json_t *ood, int *rc)
{
    char text[256] = "";
    size_t len = 0;
    *rc = 0;
    for (size_t l = 0; json_is_object(ood) && l < NET_MAX_LAYERS; l++) {
        char key[24];
        snprintf(key, sizeof key, "%zu", l);
        const json_t *v = json_object_get(ood, key);
        double f = json_number_value(v);
        if (v && f > JOB_EVAL_DOMAIN_WARN && len < sizeof text)
            len += (size_t)snprintf(text + len, sizeof text - len,
                                    "%slayer %zu: %.1f%% of its surrogate's evaluations were "
                                    "outside the surrogate's domain (clamped to it)",
                                    len ? "; " : "", l, 100 * f);
    }
    json_t *w = len ? json_string(text) : NULL;
    if (len && !w)
        *rc = QN_ENOMEM;
    return w;
}

/* The tally of network n after scoring `rows` rows (t->ood: new reference,
 * json_decref it; NULL when out of memory). */
static struct job_eval_tally job_eval__tally(const struct net *n, size_t rows)
{
    return (struct job_eval_tally){.solves = n->solves, .failed_solves = n->failed_solves,
                                   .rows = rows, .ood = spool_net_domain(n)};
}

/* The evaluation's metric rows, in one transaction. */
static int job_eval__metrics(struct job_ctx *ctx, const struct job_eval_tally *t, double loss,
                             double acc)
{
    struct store *s = ctx->store;
    int rc = store_begin(s);
    if (rc)
        return rc;
    rc = store_metric_insert(s, ctx->job_id, 0, 0, "loss", loss);
    if (rc == 0 && isfinite(acc))
        rc = store_metric_insert(s, ctx->job_id, 0, 0, "accuracy", acc);
    if (rc == 0)
        rc = store_metric_insert(s, ctx->job_id, 0, 0, "solves", (double)t->solves);
    if (rc == 0)
        rc = store_metric_insert(s, ctx->job_id, 0, 0, "failed_solves", (double)t->failed_solves);
    return store_end(s, rc);
}

/* Metric rows and the result. */
static int job_eval__report(struct job_ctx *ctx, const struct job_evaluate *p,
                            const struct job_eval_tally *t, double loss, double acc)
{
    if (!t->ood)
        return job_fail(ctx, QN_ENOMEM, "cannot report the evaluation");
    int rc = job_eval__metrics(ctx, t, loss, acc);
    if (rc)
        return job_fail(ctx, rc, "cannot store the metrics");
    json_t *warning = job_eval__warning(t->ood, &rc);
    if (rc)
        return rc;
    ctx->result = json_pack("{sI so so sI sI sI ss sO}", "model", (json_int_t)p->model.row.id,
                            "accuracy", job_real(acc), "loss", job_real(loss), "solves",
                            (json_int_t)t->solves, "failed_solves", (json_int_t)t->failed_solves,
                            "rows", (json_int_t)t->rows, "split", spec_split_name(p->e.split),
                            "out_of_domain", t->ood);
    if (ctx->result && warning && json_object_set_new(ctx->result, "warning", warning))
        return QN_ENOMEM;
    if (!ctx->result)
        json_decref(warning);
    return ctx->result ? 0 : QN_ENOMEM;
}

/* ---- chips ---- */

/* Scores chip `seed` (noise seeded by it when the spec asks for noise). */
static int job_eval__chip(struct job_ctx *ctx, const struct job_evaluate *p, struct net *n,
                          const struct data_set *ds, uint64_t seed, double *loss, double *acc)
{
    net_set_chip(n, seed);
    net_set_noise(n, p->e.noise, seed);
    int rc = train_evaluate(n, ds, p->model.loss, loss, acc);
    char what[64];
    snprintf(what, sizeof what, "evaluation of chip %" PRIu64 " stopped", seed);
    return rc ? job_fail(ctx, rc, what) : 0;
}

/* Mean, sample sd (0 for one value), min and max of v[n] into the result as
 * "<name>_mean", "_sd", "_min", "_max". */
static int job_eval__summary(json_t *r, const char *name, const double *v, size_t n)
{
    double mean = 0, ss = 0, lo = v[0], hi = v[0];
    for (size_t i = 0; i < n; i++)
        mean += v[i] / (double)n, lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    const double stat[4] = {mean, n > 1 ? sqrt(ss / (double)(n - 1)) : 0.0, lo, hi};
    const char *suffix[4] = {"mean", "sd", "min", "max"};
    char key[32];
    for (int k = 0; k < 4; k++) {
        snprintf(key, sizeof key, "%s_%s", name, suffix[k]);
        if (json_object_set_new(r, key, job_real(stat[k])))
            return QN_ENOMEM;
    }
    return 0;
}

/* The per-chip list and its summary into ctx->result (made by job_eval__report). */
static int job_eval__chips_result(struct job_ctx *ctx, const struct job_evaluate *p,
                                  const double *loss, const double *score, int classify)
{
    const char *name = classify ? "accuracy" : "rmse";
    json_t *list = json_array();
    for (size_t i = 0; list && i < p->e.chips; i++) {
        json_t *c = json_pack("{sI so so}", "chip", (json_int_t)(p->e.chips_seed + i), name,
                              job_real(score[i]), "loss", job_real(loss[i]));
        if (!c || json_array_append_new(list, c)) {
            json_decref(list);
            return QN_ENOMEM;
        }
    }
    if (!list || json_object_set_new(ctx->result, "chips", list))
        return QN_ENOMEM;
    if (json_object_set_new(ctx->result, "noise", json_boolean(p->e.noise)))
        return QN_ENOMEM;
    return job_eval__summary(ctx->result, name, score, p->e.chips);
}

/* Reports N = p->e.chips chips' losses and accuracies (NaN for regression):
 * their means as "accuracy" and "loss" and the chips beside them. */
static int job_eval__chips_report(struct job_ctx *ctx, const struct job_evaluate *p,
                                  const struct job_eval_tally *t, const double *loss,
                                  const double *acc)
{
    size_t N = p->e.chips;
    double *score = calloc(N, sizeof *score), mean_loss = 0, mean_acc = 0;
    if (!score)
        return job_fail(ctx, QN_ENOMEM, "out of memory");
    for (size_t i = 0; i < N; i++) {
        score[i] = isfinite(acc[i]) ? acc[i] : sqrt(loss[i]);
        mean_loss += loss[i] / (double)N, mean_acc += acc[i] / (double)N;
    }
    int rc = job_eval__report(ctx, p, t, mean_loss, mean_acc);
    if (rc == 0)
        rc = job_eval__chips_result(ctx, p, loss, score, isfinite(acc[N - 1]));
    free(score);
    return rc;
}

/* Scores chips seed, seed + 1, ... (train_evaluate_chips: whole chips in parallel on the
 * job's threads); reports them. */
static int job_eval__chips(struct job_ctx *ctx, const struct job_evaluate *p, struct net *n,
                           const struct data_set *ds)
{
    size_t N = p->e.chips;
    double *loss = calloc(N, sizeof *loss), *acc = calloc(N, sizeof *acc);
    int rc = loss && acc ? 0 : job_fail(ctx, QN_ENOMEM, "out of memory");
    if (rc == 0 && (rc = train_evaluate_chips(n, ds, p->model.loss, p->e.chips_seed, N,
                                              p->e.noise, loss, acc)))
        job_fail(ctx, rc, "evaluation of the chips stopped");
    if (rc == 0) {
        struct job_eval_tally t = job_eval__tally(n, ds->n);
        rc = job_eval__chips_report(ctx, p, &t, loss, acc);
        json_decref(t.ood);
    }
    free(loss);
    free(acc);
    return rc;
}

/* A nominal or one-chip result's "chip" and "noise". */
static int job_eval__single_extras(struct job_ctx *ctx, const struct job_evaluate *p)
{
    int rc = 0;
    if (p->e.has_chip &&
        json_object_set_new(ctx->result, "chip", json_integer((json_int_t)p->e.chip)))
        rc = QN_ENOMEM;
    if (rc == 0 && (p->e.has_chip || p->e.noise) &&
        json_object_set_new(ctx->result, "noise", json_boolean(p->e.noise)))
        rc = QN_ENOMEM;
    return rc;
}

/* The evaluation itself: nominal, one chip, or several. */
static int job_eval__score(struct job_ctx *ctx, const struct job_evaluate *p, struct net *n,
                           const struct data_set *ds)
{
    double loss = NAN, acc = NAN;
    if (p->e.chips)
        return job_eval__chips(ctx, p, n, ds);
    int rc;
    if (p->e.has_chip) {
        rc = job_eval__chip(ctx, p, n, ds, p->e.chip, &loss, &acc);
    } else {
        net_set_noise(n, p->e.noise, 0);
        if ((rc = train_evaluate(n, ds, p->model.loss, &loss, &acc)))
            job_fail(ctx, rc, "evaluation stopped");
    }
    struct job_eval_tally t = job_eval__tally(n, ds->n);
    if (rc == 0)
        rc = job_eval__report(ctx, p, &t, loss, acc);
    json_decref(t.ood);
    return rc ? rc : job_eval__single_extras(ctx, p);
}

/* The rows to score, standardised with the model's scaler: what run scores
 * and what stage hands to qn-mpi. */
static int job_eval__rows(struct job_ctx *ctx, const struct job_evaluate *p, struct data_set *ds)
{
    int rc = job_eval__data(ctx, p, ds);
    if (rc == 0)
        rc = job_eval__fits(ctx, p, ds);
    if (rc == 0 && (rc = job_model_scale(&p->model, ds)))
        job_fail(ctx, rc, "cannot standardise the inputs");
    return rc;
}

static int job_evaluate_run(struct job_ctx *ctx)
{
    const struct job_evaluate *p = ctx->prep;
    struct data_set ds = {0};
    struct net *n = NULL;
    int rc = job_eval__rows(ctx, p, &ds);
    if (rc == 0)
        rc = job_eval__net(ctx, p, &n);
    if (rc == 0)
        rc = job_eval__score(ctx, p, n, &ds);
    net_destroy(n);
    data_close(&ds);
    return rc;
}

/* ---- on several ranks ---- */

/* The model's layers, with this job's overrides, into dir and *network. */
static int job_eval__stage_net(struct job_ctx *ctx, const struct job_evaluate *p, const char *dir,
                               json_t **network)
{
    const struct job_netdef *nd = &p->model.nd;
    struct spool_layer L[NET_MAX_LAYERS];
    for (size_t l = 0; l < nd->n_layers; l++)
        L[l] = (struct spool_layer){.devices = nd->devices[l], .device = nd->dev_json[l],
                                    .via = nd->via[l], .connect = nd->connect[l],
                                    .sur = nd->have_sur[l] ? &nd->sur[l] : NULL,
                                    .cells = &nd->cells[l]};
    return spool_net_write(dir, L, nd->n_layers, network, ctx->reason, sizeof ctx->reason);
}

/*
 * The staged spec (steals network): {"network", "n_in", "n_out", "loss",
 * "seed" (the network's, as built here), "batch", "n_classes", "noise", and
 * "chip": S or "chips": {"count", "seed"} as the spec says}.
 */
static json_t *job_eval__staged_spec(const struct job_evaluate *p, json_t *network,
                                     const struct data_set *ds)
{
    const struct store_model *m = &p->model.row;
    json_t *s = json_pack("{so sI sI ss sI sI sI sb}", "network", network, "n_in",
                          (json_int_t)m->n_in, "n_out", (json_int_t)m->n_out, "loss", m->loss,
                          "seed", (json_int_t)p->model.t.train.seed, "batch",
                          (json_int_t)JOB_EVAL_BATCH, "n_classes", (json_int_t)ds->n_classes,
                          "noise", p->e.noise);
    int bad = !s;
    if (!bad && p->e.has_chip)
        bad = json_object_set_new(s, "chip", json_integer((json_int_t)p->e.chip)) != 0;
    if (!bad && p->e.chips)
        bad = json_object_set_new(s, "chips",
                                  json_pack("{sI sI}", "count", (json_int_t)p->e.chips, "seed",
                                            (json_int_t)p->e.chips_seed)) != 0;
    if (bad) {
        json_decref(s);
        return NULL;
    }
    return s;
}

/* job_type.stage: the rows, the model's layers and parameters, job.json. */
static int job_evaluate_stage(struct job_ctx *ctx, const char *dir)
{
    const struct job_evaluate *p = ctx->prep;
    const struct store_model *m = &p->model.row;
    struct data_set ds = {0};
    json_t *network = NULL, *spec = NULL;
    int rc = job_eval__rows(ctx, p, &ds);
    if (rc == 0)
        rc = job_eval__stage_net(ctx, p, dir, &network);
    if (rc == 0)
        rc = spool_array_write(dir, JOB_EVAL_PARAMS, SPOOL_F32, 1, &m->n_params, m->params,
                               ctx->reason, sizeof ctx->reason);
    if (rc == 0)
        rc = spool_data_write(dir, JOB_EVAL_DATA, &ds, ctx->reason, sizeof ctx->reason);
    if (rc == 0) {
        spec = job_eval__staged_spec(p, network, &ds);
        network = NULL;
        rc = spec ? spool_job_write(dir, ctx->job_id, "evaluate", ctx->name, ctx->ranks,
                                    ctx->threads, spec, ctx->reason, sizeof ctx->reason)
                  : job_fail(ctx, QN_ENOMEM, "cannot stage the evaluation");
    }
    json_decref(network);
    json_decref(spec);
    data_close(&ds);
    return rc;
}

/* A number of result.json (null: NaN). */
static double job_eval__num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The per-chip arrays "chips_loss" and "chips_accuracy" of r into loss and acc. */
static int job_eval__chip_arrays(const json_t *r, size_t N, double *loss, double *acc)
{
    const json_t *L = json_object_get(r, "chips_loss"), *A = json_object_get(r, "chips_accuracy");
    if (json_array_size(L) != N || json_array_size(A) != N)
        return QN_EFORMAT;
    for (size_t i = 0; i < N; i++) {
        const json_t *l = json_array_get(L, i), *a = json_array_get(A, i);
        loss[i] = json_is_number(l) ? json_number_value(l) : NAN;
        acc[i] = json_is_number(a) ? json_number_value(a) : NAN;
    }
    return 0;
}

/* Reports qn-mpi's result r: as job_eval__score and job_eval__chips do. */
static int job_eval__collected(struct job_ctx *ctx, const struct job_evaluate *p, json_t *r)
{
    struct job_eval_tally t = {
        .solves = (size_t)json_integer_value(json_object_get(r, "solves")),
        .failed_solves = (size_t)json_integer_value(json_object_get(r, "failed_solves")),
        .rows = (size_t)json_integer_value(json_object_get(r, "rows")),
        .ood = json_object_get(r, "out_of_domain")};
    if (!t.ood || !(json_is_object(t.ood) || json_is_null(t.ood)))
        return job_fail(ctx, QN_EFORMAT, "qn-mpi's result");
    if (!p->e.chips) {
        int rc = job_eval__report(ctx, p, &t, job_eval__num(r, "loss"),
                                  job_eval__num(r, "accuracy"));
        return rc ? rc : job_eval__single_extras(ctx, p);
    }
    double *loss = calloc(p->e.chips, sizeof *loss), *acc = calloc(p->e.chips, sizeof *acc);
    int rc = loss && acc ? job_eval__chip_arrays(r, p->e.chips, loss, acc) : QN_ENOMEM;
    if (rc)
        job_fail(ctx, rc, "qn-mpi's result");
    else
        rc = job_eval__chips_report(ctx, p, &t, loss, acc);
    free(loss);
    free(acc);
    return rc;
}

/* job_type.collect: the sums qn-mpi gathered, reported as a run here reports. */
static int job_evaluate_collect(struct job_ctx *ctx, const char *dir)
{
    json_t *r = NULL;
    int rc = spool_json_read(dir, SPOOL_RESULT, &r, ctx->reason, sizeof ctx->reason);
    if (rc == 0)
        rc = job_eval__collected(ctx, ctx->prep, r);
    json_decref(r);
    return rc;
}

const struct job_type job_evaluate_type = {.name = "evaluate",
                                           .validate = job_evaluate_validate,
                                           .prepare = job_evaluate_prepare,
                                           .run = job_evaluate_run,
                                           .release = job_evaluate_release,
                                           .stage = job_evaluate_stage,
                                           .collect = job_evaluate_collect};
