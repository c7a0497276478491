/*
 * job_train.c: the train job: a network of device layers trained on a
 * dataset, checkpointed, saved as a model.
 *
 * prepare resolves the dataset and every layer's device and surrogate (so a
 * wrong reference is refused before the job exists); run loads the rows,
 * standardises the inputs with statistics of the training split only, builds
 * the network and trains it. Every checkpoint_every epochs the parameters and
 * the optimizer state are written to the checkpoints table. A job that
 * already has checkpoints (a second attempt: `qn resume`, or the daemon
 * after a crash) loads the last one and continues from its epoch; since
 * the engine's shuffles depend only on (seed, epoch), the resumed run ends
 * with the same bits as an uninterrupted one. Metrics of epochs after that
 * checkpoint are deleted first, so the history has no duplicates.
 *
 * Adaptive structure ("adapt"): the hidden layers' widths change during
 * training, so each checkpoint row also gets an "arch" JSON column
 * (migration 0004) with the widths and the schedule's state, written in the
 * same statement (store_checkpoint.arch); a resumed run builds the network
 * at those widths. The
 * saved model's spec gives every layer its final width ("devices"), so
 * evaluation and prediction rebuild it as it is; the result adds "widths".
 * Structure events are metric rows ("structure", "structure_layer",
 * "structure_grown", "structure_pruned", and "cells" for edge layers; see
 * train.h). Layers of edge cells change their cell lists instead: the
 * "arch" of a network with edge layers also has "cells", per layer null or
 * {"src": [..], "dst": [..]}, and the saved model's spec gives each edge
 * layer its final "cell_list"; the result adds "cells" (per layer, the
 * count, or null for node layers).
 *
 * "from": {"model": ref} starts training from a stored model (job_model.c
 * opens it in prepare): its network must be this spec's (layers, widths,
 * drives, fan-ins, and so its parameter count), refused at /spec/from
 * otherwise; run standardises the inputs with the model's scaler instead of
 * fitting one and, without a checkpoint, copies its parameters into the new
 * network instead of calibrating. A resumed run restores its checkpoint as
 * any other. The saved spec names the model by id.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "job_data.h"
#include "job_model.h"
#include "job_net.h"
#include "qn_err.h"
#include "spec_run.h"
#include "spool.h"
#include "spool_net.h"

#define JOB_TRAIN_STEP_EVERY 20 /* steps between step_loss metrics */

/* What prepare made. */
struct job_train {
    struct train_spec t;  /* parsed spec */
    int have_t;
    struct job_dsref ds;  /* the dataset */
    struct job_netdef nd; /* the layers */
    struct job_model from; /* "from": the model training starts from */
    int have_from;
    struct job_train_run *staged; /* on several ranks: what stage built, for collect (owned) */
};

/* What run holds. */
struct job_train_run {
    struct data_set train, test;
    struct data_scaler scaler;
    struct net *net;
    struct optim o;
    int have_o;
    size_t start;      /* epochs done before this run (resume) */
    struct train_position from; /* where to start: start epochs, then from.step steps */
    size_t widths[NET_MAX_LAYERS]; /* the widths to build with (the spec's, or a checkpoint's) */
    struct net_cells_spec cells[NET_MAX_LAYERS]; /* the cells to build with (the spec's, the
                                                    "from" model's, or a checkpoint's) */
    size_t *cell_buf[NET_MAX_LAYERS]; /* owned: a checkpoint's lists (src, then dst) */
    struct adapt_state as; /* the adaptive schedule (restored with a checkpoint) */
    struct store_checkpoint cp; /* the checkpoint to resume from */
    int have_cp;
    uint64_t steps;    /* steps of the whole run, for progress */
    int metric_rc;     /* first failure to store a metric */
    struct job_ctx *ctx;
};

/* job_type.validate: the spec alone; its dataset may be a sweep's and each
 * layer's surrogate a fit's {"job": N}. */
static int job_train_validate(const json_t *spec, struct job_refs *refs, struct spec_error *err)
{
    struct train_spec *t = malloc(sizeof *t); /* about 10 KB */
    if (!t)
        return spec_fail(err, "", "out of memory"), QN_ENOMEM;
    int rc = spec_train_parse(spec, t, err);
    if (rc == 0) {
        job_refs_add(refs, &t->dataset.ref, "/spec/dataset", "sweep");
        for (size_t l = 0; l < t->n_layers; l++) {
            char path[SPEC_PATH_MAX];
            snprintf(path, sizeof path, "/spec/network/%zu/surrogate", l);
            if (t->layers[l].has_surrogate)
                job_refs_add(refs, &t->layers[l].surrogate, path, "fit");
        }
        if (t->has_from)
            job_refs_add(refs, &t->from, "/spec/from/model", "train");
        spec_train_close(t);
    }
    free(t);
    return rc;
}

/* job_type.check_ranks: adapt and es stay on one rank (spec_run_train_ranks). */
static int job_train_check_ranks(const json_t *spec, size_t ranks, struct spec_error *err)
{
    struct train_spec *t = malloc(sizeof *t);
    if (!t)
        return spec_fail(err, "", "out of memory"), QN_ENOMEM;
    int rc = spec_train_parse(spec, t, err);
    if (rc == 0) {
        rc = spec_run_train_ranks(t, ranks, err);
        spec_train_close(t);
    }
    free(t);
    return rc;
}

/*
 * job_type.estimate: a lower bound of a run's memory from the layer widths,
 * before any dataset is read. Floats held per parameter: the parameters,
 * their gradients, Adam's two moments and a checkpoint's copy of all four
 * (JOB_TRAIN_FLOATS_PER_PARAM); per row of a batch and device, the layer's
 * drives, their derivatives, outputs and scratch (JOB_TRAIN_FLOATS_PER_UNIT).
 * The first layer's input width is taken as 1 (the dataset is not read
 * here) and a full device's fan-in as its "fan_in" or 1, so the figure
 * never overstates (an edge layer holds a and b per cell, and per row each
 * cell's drive, slope and output); the product n_in x devices dominates any large network.
 */
#define JOB_TRAIN_FLOATS_PER_PARAM 8
#define JOB_TRAIN_FLOATS_PER_UNIT 6

static int job_train_estimate(const json_t *spec, uint64_t *bytes, char *msg, size_t cap)
{
    struct train_spec *t = malloc(sizeof *t);
    struct spec_error err;
    if (!t)
        return QN_ENOMEM;
    int rc = spec_train_parse(spec, t, &err);
    if (rc) {
        free(t);
        return rc;
    }
    double params = 0, units = 0, width = 1; /* doubles: 16 x 65536^2 overflows nothing */
    for (size_t l = 0; l < t->n_layers; l++) {
        const struct train_layer_spec *L = &t->layers[l];
        double n = (double)L->devices, fan = L->has_connect ? (L->fan_in ? (double)L->fan_in : 1)
                                                            : width;
        double cells = L->n_cells ? (double)L->n_cells : n * fan; /* edge layers */
        params += L->cells == NET_CELLS_EDGE ? 2 * cells + 1 : n * fan + n + 1;
        units += n + width + (L->cells == NET_CELLS_EDGE ? cells : 0);
        width = n;
    }
    double b = 4.0 * (JOB_TRAIN_FLOATS_PER_PARAM * params +
                      JOB_TRAIN_FLOATS_PER_UNIT * (double)t->train.batch * units);
    *bytes = b < 1.8e19 ? (uint64_t)b : UINT64_MAX;
    snprintf(msg, cap, "%.3g parameters in %zu layers, batches of %zu rows", params, t->n_layers,
             t->train.batch);
    spec_train_close(t);
    free(t);
    return 0;
}

/* A layer via surrogate whose device varies must have a surrogate conditioned on
 * every varying parameter when training sees chips ("chip", "hardware_aware"). */
static int job_train__chip_layers(struct job_ctx *ctx, const struct job_train *p,
                                  const char *field)
{
    const struct job_netdef *nd = &p->nd;
    char path[64];
    for (size_t l = 0; l < nd->n_layers; l++) {
        if (nd->via[l] != VIA_SURROGATE || !dev_has_variability(&nd->dev[l]) ||
            job_netdef_sur_covers(nd, l))
            continue;
        snprintf(path, sizeof path, "/spec/network/%zu/surrogate", l);
        return spec_fail(&ctx->err, path, "\"%s\" training through this surrogate needs it "
                         "conditioned on every parameter of the device that varies (fit it on "
                         "a sweep that ranges over them); surrogate %" PRId64 " is conditioned "
                         "on %s", field, nd->sur_id[l],
                         nd->sur[l].n_cond ? "others" : "none");
    }
    return 0;
}

/* "chip" needs a layer a chip changes; "hardware_aware" one, or noise; both need
 * conditioned surrogates where a varying device goes through one. */
static int job_train__chips(struct job_ctx *ctx, const struct job_train *p)
{
    const struct job_netdef *nd = &p->nd;
    enum train_chip mode = p->t.train.chip_mode;
    if (mode == TRAIN_NOMINAL)
        return 0;
    const char *field = mode == TRAIN_ONE_CHIP ? "chip" : "hardware_aware";
    int rc = job_train__chip_layers(ctx, p, field);
    int matters = 0, noise = 0;
    for (size_t l = 0; l < nd->n_layers; l++) {
        matters |= job_netdef_chip_matters(nd, l);
        noise |= dev_has_noise(&nd->dev[l]);
    }
    if (rc == 0 && mode == TRAIN_ONE_CHIP && !matters)
        rc = spec_fail(&ctx->err, "/spec/chip", "the network has no layer that a chip changes "
                       "(a device with \"variability\" via device or physics_aware, or via a "
                       "surrogate conditioned on the varying parameters): every chip would be "
                       "the nominal network");
    if (rc == 0 && mode == TRAIN_HARDWARE_AWARE && !matters && !noise)
        rc = spec_fail(&ctx->err, "/spec/hardware_aware", "the network has neither variability "
                       "that a chip changes nor noise: there is nothing to draw");
    return rc;
}

/* Whether the model's layers are this spec's, layer by layer: widths, drives
 * and fan-ins; a sentence in msg (cap bytes) says where they differ. */
static int job_train__same_layers(const struct job_netdef *a, const struct job_netdef *m,
                                  char *msg, size_t cap)
{
    if (a->n_layers != m->n_layers)
        return snprintf(msg, cap, "has %zu layers, this network %zu", m->n_layers, a->n_layers),
               0;
    for (size_t l = 0; l < a->n_layers; l++) {
        const struct dev_model *x = &a->dev[l], *y = &m->dev[l];
        if (a->devices[l] != m->devices[l])
            return snprintf(msg, cap, "has %zu devices in layer %zu, this network %zu",
                            m->devices[l], l, a->devices[l]), 0;
        if (a->cells[l].cells != m->cells[l].cells)
            return snprintf(msg, cap, "has %s cells in layer %zu, this network %s",
                            net_cells_name(m->cells[l].cells), l,
                            net_cells_name(a->cells[l].cells)), 0;
        if (x->drive != y->drive || x->fan_in != y->fan_in ||
            (x->drive == DRIVE_FULL && a->connect[l] != m->connect[l]))
            return snprintf(msg, cap, "drives layer %zu otherwise (%s, fan-in %d; this "
                            "network: %s, fan-in %d)", l, dev_drive_name(y->drive), y->fan_in,
                            dev_drive_name(x->drive), x->fan_in), 0;
    }
    return 1;
}

/* Whether the model's parameter count and output width are those of this
 * network built on the model's inputs (a network of one row, one thread). */
static int job_train__same_params(const struct job_train *p, const struct job_model *m,
                                  char *msg, size_t cap)
{
    struct net_layer_spec ls[NET_MAX_LAYERS];
    job_netdef_layers(&p->nd, ls);
    for (size_t l = 0; l < p->nd.n_layers; l++)
        ls[l].forward_only = 1;
    struct net *n = NULL;
    int rc = net_create_cells(&n, m->row.n_in, ls, m->nd.cells, p->nd.n_layers, 1, 1,
                              p->t.train.seed, NULL);
    if (rc) {
        snprintf(msg, cap, "cannot be built as this network: %s", qn_err_msg(rc));
        return 0;
    }
    int same = n->n_params == m->row.n_params && n->n_out == m->row.n_out;
    if (!same)
        snprintf(msg, cap, "has %zu parameters and %zu outputs; this network on its %zu "
                 "inputs has %zu and %zu", m->row.n_params, m->row.n_out, m->row.n_in,
                 n->n_params, n->n_out);
    net_destroy(n);
    return same;
}

/* "from": opens the model (every failure to find or rebuild it is a spec
 * error at /spec/from/model) and checks that its network is this one
 * (/spec/from); a stored dataset must have the model's inputs. */
static int job_train__from(struct job_ctx *ctx, struct job_train *p)
{
    const struct spec_ref *ref = &p->t.from;
    const char *path = "/spec/from/model";
    if (!p->t.has_from)
        return 0;
    p->have_from = 1; /* a zeroed model closes as well as an opened one */
    int rc = job_model_resolve(ctx->store, ref, path, &p->from, &ctx->err);
    if (rc)
        return rc;
    char why[256];
    if (!job_train__same_layers(&p->nd, &p->from.nd, why, sizeof why) ||
        !job_train__same_params(p, &p->from, why, sizeof why))
        return spec_fail(&ctx->err, "/spec/from", "training starts from model %" PRId64
                         " only with its network; the model %s", p->from.row.id, why);
    if (p->ds.kind == JOB_DS_STORED && p->ds.n_in != p->from.row.n_in)
        return spec_fail(&ctx->err, "/spec/from", "model %" PRId64 " has %zu inputs; the "
                         "dataset has %zu", p->from.row.id, p->from.row.n_in, p->ds.n_in);
    return 0;
}

static int job_train_prepare(struct job_ctx *ctx)
{
    struct job_train *p = calloc(1, sizeof *p);
    if (!p)
        return spec_fail(&ctx->err, "", "out of memory"), QN_ENOMEM;
    ctx->prep = p;
    int rc = spec_train_parse(ctx->spec, &p->t, &ctx->err);
    if (rc)
        return rc;
    p->have_t = 1;
    rc = job_data_resolve(ctx->store, &p->t.dataset, "/spec/dataset", &p->ds, &ctx->err);
    if (rc)
        return rc;
    size_t n_out = p->t.layers[p->t.n_layers - 1].devices;
    if (p->ds.classify && p->t.train.loss == LOSS_MSE && n_out != 1)
        return spec_fail(&ctx->err, "/spec/loss", "loss mse on a labelled dataset needs one "
                         "output (its target is the label); the last layer has %zu devices",
                         n_out);
    if (!p->ds.classify && p->t.train.loss == LOSS_CROSS_ENTROPY)
        return spec_fail(&ctx->err, "/spec/loss", "loss cross_entropy needs a labelled dataset; "
                         "this one has a regression target");
    rc = job_netdef_resolve(ctx->store, &p->t, &p->nd, &ctx->err);
    if (rc == 0)
        rc = job_train__chips(ctx, p);
    return rc ? rc : job_train__from(ctx, p);
}

static void job_train__staged_free(struct job_train_run *r);

static void job_train_release(struct job_ctx *ctx)
{
    struct job_train *p = ctx->prep;
    if (!p)
        return;
    if (p->have_from)
        job_model_close(&p->from);
    job_netdef_close(&p->nd);
    job_data_close(&p->ds);
    if (p->have_t)
        spec_train_close(&p->t);
    job_train__staged_free(p->staged);
    free(p);
    ctx->prep = NULL;
}

static void job_train__run_close(struct job_train_run *r)
{
    if (r->have_cp)
        store_checkpoint_free(&r->cp);
    for (size_t l = 0; l < NET_MAX_LAYERS; l++)
        free(r->cell_buf[l]);
    net_destroy(r->net);
    if (r->have_o)
        optim_close(&r->o);
    data_scaler_close(&r->scaler);
    data_close(&r->train);
    data_close(&r->test);
}

/* The data must fit the last layer: classes or targets. */
static int job_train__fits(struct job_ctx *ctx, const struct job_train *p,
                           const struct data_set *ds)
{
    size_t n_out = p->nd.devices[p->nd.n_layers - 1];
    if (ds->labels && p->t.train.loss == LOSS_MSE)
        return 0; /* one output whose target is the label (checked in prepare) */
    if (ds->labels && ds->n_classes > n_out)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has labels up to %zu but the last layer has %zu devices (one per "
                 "class)", ds->n_classes - 1, n_out);
    else if (!ds->labels && ds->t != n_out)
        snprintf(ctx->reason, sizeof ctx->reason,
                 "the dataset has %zu target%s but the last layer has %zu devices", ds->t,
                 ds->t == 1 ? "" : "s", n_out);
    else
        return 0;
    return QN_EINVAL;
}

/* The scaler of the model training starts from (its inputs are standardised
 * as the model expects), when the data has its inputs. */
static int job_train__from_scaler(struct job_ctx *ctx, const struct job_train *p,
                                  struct job_train_run *r)
{
    const struct data_scaler *m = &p->from.scaler;
    if (r->train.d != m->d) {
        snprintf(ctx->reason, sizeof ctx->reason, "model %" PRId64 " has %zu inputs; the "
                 "dataset has %zu", p->from.row.id, m->d, r->train.d);
        return QN_EINVAL;
    }
    int rc = data_scaler_init(&r->scaler, m->d);
    if (rc == 0)
        memcpy(r->scaler.slab, m->slab, 2 * m->d * sizeof *m->slab);
    return rc;
}

/* Loads, checks and standardises the data (with the scaler of "from"'s model, or
 * statistics of the training split). */
static int job_train__data(struct job_ctx *ctx, const struct job_train *p,
                           struct job_train_run *r)
{
    int rc = job_data_load(ctx->store, &p->ds, p->t.train.seed, &r->train, &r->test,
                           ctx->reason, sizeof ctx->reason);
    if (rc)
        return rc;
    if ((rc = job_train__fits(ctx, p, &r->train)))
        return rc;
    rc = p->have_from ? job_train__from_scaler(ctx, p, r) : data_scaler_fit(&r->scaler, &r->train);
    if (rc == 0)
        rc = data_scaler_apply(&r->scaler, &r->train);
    if (rc == 0)
        rc = data_scaler_apply(&r->scaler, &r->test);
    return rc ? job_fail(ctx, rc, "cannot standardise the inputs") : 0;
}

/* Builds the network and the optimizer (spec_run_build) at the widths to build with. */
static int job_train__build(struct job_ctx *ctx, const struct job_train *p,
                            struct job_train_run *r)
{
    struct net_layer_spec ls[NET_MAX_LAYERS];
    const char *what;
    job_netdef_layers(&p->nd, ls);
    for (size_t l = 0; l < p->nd.n_layers; l++)
        ls[l].devices = r->widths[l];
    int rc = spec_run_build_cells(&p->t, ls, r->cells, r->train.d, ctx->workers, ctx->cancel,
                                  &r->net, &r->o, &what);
    if (rc)
        return job_fail(ctx, rc, what);
    r->have_o = 1;
    return 0;
}

/* The "arch" JSON text of checkpoint c (may be NULL: widths and *as are left
 * alone) into widths, *as and *at. Returns 0 or QN_EFORMAT. */
static int job_train__arch_read(const struct store_checkpoint *c, size_t n_layers,
                                size_t *widths, struct adapt_state *as,
                                struct train_position *at)
{
    size_t epoch = c->epoch;
    const char *text = c->arch;
    int rc = 0;
    json_t *a = text ? json_loads(text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_t *w = json_object_get(a, "widths"), *best = json_object_get(a, "best_loss");
    if (text && (json_array_size(w) != n_layers || !json_is_integer(json_object_get(a, "stale")) ||
                 !json_is_integer(json_object_get(a, "events"))))
        rc = QN_EFORMAT;
    for (size_t l = 0; text && rc == 0 && l < n_layers; l++) {
        json_int_t v = json_integer_value(json_array_get(w, l));
        if (v < 1 || v > SPEC_DEVICES_MAX)
            rc = QN_EFORMAT;
        widths[l] = (size_t)v;
    }
    *at = (struct train_position){epoch, 0, 0, 0};
    json_t *step = json_object_get(a, "step");
    if (text && rc == 0 && step) {
        json_t *sum = json_object_get(a, "loss_sum"), *cor = json_object_get(a, "correct");
        if (!json_is_integer(step) || json_integer_value(step) < 1 || !json_is_number(sum) ||
            !json_is_integer(cor) || json_integer_value(cor) < 0)
            rc = QN_EFORMAT;
        else
            *at = (struct train_position){epoch, (size_t)json_integer_value(step),
                                          json_number_value(sum),
                                          (size_t)json_integer_value(cor)};
    }
    if (text && rc == 0) {
        as->best_loss = json_is_number(best) ? json_number_value(best) : INFINITY;
        as->stale = (size_t)json_integer_value(json_object_get(a, "stale"));
        as->events = (size_t)json_integer_value(json_object_get(a, "events"));
    }
    json_decref(a);
    return rc;
}

/* The edge layers' cell lists of checkpoint c's "arch" ("cells": per layer null or
 * {"src", "dst"}; absent: none changed) into r. Returns 0 or QN_EFORMAT. */
static int job_train__arch_cells(const struct store_checkpoint *c, struct job_train_run *r)
{
    json_t *a = c->arch ? json_loads(c->arch, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const json_t *cells = json_object_get(a, "cells");
    int rc = QN_OK;
    for (size_t l = 0; cells && rc == QN_OK && l < json_array_size(cells); l++) {
        const json_t *v = json_array_get(cells, l);
        if (json_is_null(v))
            continue;
        rc = r->cells[l].cells == NET_CELLS_EDGE
                 ? spool_cell_list_read(v, &r->cell_buf[l], &r->cells[l])
                 : QN_EFORMAT;
    }
    json_decref(a);
    return rc == QN_ENOMEM ? rc : rc ? QN_EFORMAT : QN_OK;
}

/* Reads the last checkpoint when there is one (r->cp, with its widths and schedule). */
static int job_train__resume_point(struct job_ctx *ctx, const struct job_train *p,
                                   struct job_train_run *r)
{
    for (size_t l = 0; l < p->nd.n_layers; l++) {
        r->widths[l] = p->nd.devices[l];
        r->cells[l] = p->have_from && p->nd.cells[l].cells == NET_CELLS_EDGE ? p->from.nd.cells[l]
                                                                           : p->nd.cells[l];
    }
    adapt_state_init(&r->as);
    int rc = store_checkpoint_last(ctx->store, ctx->job_id, &r->cp);
    if (rc == QN_ENOTFOUND)
        return 0;
    if (rc)
        return job_fail(ctx, rc, "cannot read the checkpoints");
    r->have_cp = 1;
    rc = job_train__arch_read(&r->cp, p->nd.n_layers, r->widths, &r->as, &r->from);
    if (rc == 0)
        rc = job_train__arch_cells(&r->cp, r);
    return rc ? job_fail(ctx, rc, "cannot read the checkpoint's architecture") : 0;
}

/* Deletes the metrics a resumed run will write again: every epoch after the
 * checkpoint's, except (for a checkpoint inside an epoch) the step losses
 * of the steps it had already done. */
static int job_train__trim(struct job_ctx *ctx, const struct job_train *p,
                           const struct job_train_run *r)
{
    if (r->from.step == 0)
        return store_metric_delete_after(ctx->store, ctx->job_id, (int64_t)r->start);
    size_t batch = p->t.train.batch, spe = (r->train.n + batch - 1) / batch;
    return store_metric_delete_after_step(ctx->store, ctx->job_id, (int64_t)r->start,
                                          (int64_t)(r->start * spe + r->from.step));
}

/* Restores the checkpoint when there is one; else copies the parameters of
 * "from"'s model, or calibrates (if asked): spec_run_start. */
static int job_train__start(struct job_ctx *ctx, const struct job_train *p,
                            struct job_train_run *r)
{
    const struct store_checkpoint *c = &r->cp;
    struct spec_run_start st = {0};
    if (r->have_cp)
        st = (struct spec_run_start){c->params, c->n_params, c->state, c->n_state, c->t};
    else if (p->have_from)
        st = (struct spec_run_start){p->from.row.params, p->from.row.n_params, NULL, 0, 0};
    int rc = spec_run_start(&p->t, r->net, &r->o, &st, &r->train, ctx->reason,
                            sizeof ctx->reason);
    if (rc && !ctx->reason[0])
        job_fail(ctx, rc, "cannot calibrate the network");
    if (rc == 0 && r->have_cp)
        r->start = c->epoch;
    if (!r->have_cp)
        r->from = (struct train_position){0, 0, 0, 0};
    if (rc == 0 && (rc = job_train__trim(ctx, p, r)))
        job_fail(ctx, rc, "cannot trim the metrics");
    return rc;
}

static void job_train__metric(const char *name, uint64_t step, size_t epoch, double value,
                              void *c)
{
    struct job_train_run *r = c;
    struct job_ctx *ctx = r->ctx;
    int rc = store_metric_insert(ctx->store, ctx->job_id, (int64_t)step, (int64_t)epoch, name,
                                 value);
    if (rc && !r->metric_rc)
        r->metric_rc = rc;
    if (ctx->progress && (strcmp(name, "step_loss") == 0 || strcmp(name, "train_loss") == 0))
        ctx->progress(step < r->steps ? step : r->steps, r->steps, ctx->progress_ctx);
}

/* Per layer of n, its cell list ({"src", "dst"}; lists 1) or count (lists 0), or null
 * for a node layer; NULL (no JSON) when n has no edge layer or out of memory. */
static json_t *job_train__cells_json(const struct net *n, int lists)
{
    int edges = 0;
    for (size_t l = 0; l < n->n_layers; l++)
        edges |= n->layer[l].edge;
    json_t *a = edges ? json_array() : NULL;
    for (size_t l = 0; a && l < n->n_layers; l++) {
        const struct net_layer *L = &n->layer[l];
        json_t *v = !L->edge ? json_null()
                    : lists  ? job_net_cell_list(L)
                             : json_integer((json_int_t)L->n_cells);
        if (json_array_append_new(a, v))
            json_decref(a), a = NULL;
    }
    return a;
}

/* The "arch" JSON of n and the schedule as (new text, free() it; NULL: no memory). */
static char *job_train__arch_text(const struct net *n, const struct adapt_state *as,
                                  const struct train_position *at)
{
    json_t *w = json_array();
    for (size_t l = 0; w && l < n->n_layers; l++)
        if (json_array_append_new(w, json_integer((json_int_t)n->layer[l].n_out)))
            break;
    json_t *a = json_pack("{so so sI sI}", "widths", w, "best_loss", job_real(as->best_loss),
                          "stale", (json_int_t)as->stale, "events", (json_int_t)as->events);
    json_t *cells = a ? job_train__cells_json(n, 1) : NULL;
    if (a && cells && json_object_set_new(a, "cells", cells)) {
        json_decref(a);
        a = NULL;
    }
    if (a && at && at->step && /* a checkpoint inside an epoch (taken on cancel) */
        json_object_update_new(a, json_pack("{sI sf sI}", "step", (json_int_t)at->step,
                                            "loss_sum", at->loss_sum, "correct",
                                            (json_int_t)at->correct))) {
        json_decref(a);
        a = NULL;
    }
    char *text = a ? json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(a);
    return text;
}

/* Writes the checkpoint row (after `epoch` epochs, plus at->step steps when
 * at is non-NULL) with its architecture. */
static int job_train__save_checkpoint(const struct net *n, const struct optim *o, size_t epoch,
                                      const struct train_position *at, struct job_train_run *r)
{
    struct store *s = r->ctx->store;
    struct store_checkpoint cp = {.job_id = r->ctx->job_id, .epoch = epoch, .params = n->params,
                                  .n_params = n->n_params, .state = o->state,
                                  .n_state = optim_state_len(o), .t = o->t,
                                  .arch = job_train__arch_text(n, &r->as, at)};
    int rc = cp.arch ? store_checkpoint_put(s, &cp) : QN_ENOMEM;
    free(cp.arch);
    return rc ? job_fail(r->ctx, rc, "cannot write a checkpoint") : 0;
}

/* train_hooks.checkpoint: every checkpoint_every epochs. */
static int job_train__checkpoint(const struct net *n, const struct optim *o, size_t epoch,
                                 void *c)
{
    return job_train__save_checkpoint(n, o, epoch, NULL, c);
}

/* train_hooks.partial: the run was canceled inside an epoch (the daemon
 * stopping, or a user's cancel); keep where it stood, so that a requeued or
 * resumed job loses no step. Keeps the cancel as the run's outcome. */
static int job_train__partial(const struct net *n, const struct optim *o,
                              const struct train_position *at, void *c)
{
    int rc = job_train__save_checkpoint(n, o, at->epoch, at, c);
    return rc ? rc : QN_ECANCELED;
}

/* Trains from r->start to the last epoch; final figures into *res. */
static int job_train__train(struct job_ctx *ctx, const struct job_train *p,
                            struct job_train_run *r, struct train_result *res)
{
    size_t batch = p->t.train.batch;
    r->steps = (uint64_t)((r->train.n + batch - 1) / batch) * p->t.train.epochs;
    r->ctx = ctx;
    struct train_hooks h = {job_train__metric, job_train__checkpoint, r, ctx->cancel,
                            JOB_TRAIN_STEP_EVERY, &r->as, job_train__partial, NULL};
    int rc = spec_run_train(&p->t, r->net, &r->o, &r->train, &r->test, &h, &r->from, res);
    if (rc == QN_EINVAL && !ctx->reason[0])
        snprintf(ctx->reason, sizeof ctx->reason, "the dataset does not fit the network "
                 "(inputs, outputs or labels)");
    else if (rc && !ctx->reason[0])
        job_fail(ctx, rc, rc == QN_ECANCELED ? "training" : "training stopped");
    if (rc == 0 && r->metric_rc)
        rc = job_fail(ctx, r->metric_rc, "cannot store a metric");
    return rc;
}

/*
 * The model records the stored dataset it was trained on by id, whatever
 * the spec named (a name resolves within its owner and may later name
 * another dataset): "name" or "job" becomes "id", the options stay.
 * Returns nonzero when out of memory.
 */
static int job_train__dataset_id(json_t *spec, const struct job_dsref *ds)
{
    if (!spec || ds->kind != JOB_DS_STORED)
        return 0;
    json_t *d = json_object_get(spec, "dataset");
    json_t *o = json_is_object(d) ? json_deep_copy(d) : json_object();
    if (!o)
        return 1;
    json_object_del(o, "name");
    json_object_del(o, "job");
    if (json_object_set_new(o, "id", json_integer((json_int_t)ds->rec.id)))
        return json_decref(o), 1;
    return json_object_set_new(spec, "dataset", o) != 0;
}

/* The model records the model it started from ("from") by id, as it does its
 * dataset. Returns nonzero when out of memory. */
static int job_train__from_id(json_t *spec, const struct job_train *p)
{
    if (!spec || !p->have_from)
        return 0;
    return json_object_set_new(spec, "from",
                               json_pack("{sI}", "model", (json_int_t)p->from.row.id)) != 0;
}

/* Saves the model; its id into *id. */
static int job_train__save(struct job_ctx *ctx, const struct job_train *p,
                           const struct job_train_run *r, int64_t *id)
{
    json_t *spec = job_netdef_spec(&p->nd, ctx->spec, p->t.train.seed);
    if (job_train__dataset_id(spec, &p->ds) || job_train__from_id(spec, p)) {
        json_decref(spec);
        spec = NULL;
    }
    json_t *layers = json_object_get(spec, "network");
    for (size_t l = 0; spec && l < r->net->n_layers; l++) { /* the widths and cells it ended with */
        const struct net_layer *L = &r->net->layer[l];
        json_t *layer = json_array_get(layers, l);
        if (json_object_set_new(layer, "devices", json_integer((json_int_t)L->n_out)) ||
            (L->edge && json_object_set_new(layer, "cell_list", job_net_cell_list(L)))) {
            json_decref(spec);
            spec = NULL;
        }
    }
    char *text = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    json_decref(spec);
    if (!text)
        return job_fail(ctx, QN_ENOMEM, "cannot save the model");
    struct store_model m = {.has_name = 1, .job_id = ctx->job_id, .spec = text,
                            .n_in = r->net->n_in, .n_out = r->net->n_out,
                            .n_classes = r->train.labels ? r->train.n_classes : 0,
                            .params = r->net->params, .n_params = r->net->n_params,
                            .scaler = r->scaler.slab, .n_scaler = 2 * r->scaler.d};
    snprintf(m.name, sizeof m.name, "%s", ctx->name);
    snprintf(m.loss, sizeof m.loss, "%s", train_loss_name(p->t.train.loss));
    int rc = store_model_insert(ctx->store, &m, id);
    free(text);
    return rc ? job_fail(ctx, rc, "cannot save the model") : 0;
}

/* Per surrogate layer ({"0": ...}): what the result says of its surrogate
 * (the id, whether it is the layer device's own, out_of_domain in the last
 * epoch); null when the network has none. */
static json_t *job_train__surrogates(const struct job_netdef *nd, const struct train_result *res)
{
    json_t *o = json_object();
    for (size_t l = 0; o && l < nd->n_layers; l++) {
        if (!nd->have_sur[l])
            continue;
        char key[24];
        snprintf(key, sizeof key, "%zu", l);
        json_t *x = json_pack("{sI sb sb so}", "id", (json_int_t)nd->sur_id[l], "matched",
                              nd->sur_matched[l], "twin", nd->twin[l], "out_of_domain",
                              job_real(res->out_of_domain_layer[l]));
        if (!x || json_object_set_new(o, key, x))
            json_decref(o), o = NULL;
    }
    if (o && json_object_size(o) == 0)
        json_decref(o), o = json_null();
    return o;
}

static int job_train__result(struct job_ctx *ctx, int64_t id, const struct train_result *res,
                             const struct job_train_run *r)
{
    const struct job_train *p = ctx->prep;
    json_t *w = json_array();
    for (size_t l = 0; w && l < r->net->n_layers; l++)
        if (json_array_append_new(w, json_integer((json_int_t)r->net->layer[l].n_out)))
            break;
    ctx->result = json_pack("{sI so so so so sI sI sI sI so sI}", "model", (json_int_t)id,
                            "test_accuracy", job_real(res->test_accuracy), "test_loss",
                            job_real(res->test_loss), "train_accuracy",
                            job_real(res->train_accuracy), "train_loss",
                            job_real(res->train_loss), "epochs",
                            (json_int_t)res->epochs_done, "resumed_from", (json_int_t)r->start,
                            "failed_solves", (json_int_t)r->net->failed_solves, "params",
                            (json_int_t)r->net->n_params, "widths", w, "events",
                            (json_int_t)r->as.events);
    json_t *cells = ctx->result ? job_train__cells_json(r->net, 0) : NULL;
    if (cells && json_object_set_new(ctx->result, "cells", cells))
        return QN_ENOMEM;
    json_t *sur = ctx->result ? job_train__surrogates(&p->nd, res) : NULL;
    if (ctx->result && (!sur || json_object_set_new(ctx->result, "surrogates", sur) ||
                        json_object_set_new(ctx->result, "out_of_domain",
                                            job_real(res->out_of_domain))))
        return QN_ENOMEM;
    return ctx->result ? 0 : QN_ENOMEM;
}

static int job_train_run(struct job_ctx *ctx)
{
    const struct job_train *p = ctx->prep;
    struct job_train_run r;
    memset(&r, 0, sizeof r);
    struct train_result res;
    int64_t id = 0;
    int rc = job_train__data(ctx, p, &r);
    if (rc == 0)
        rc = job_train__resume_point(ctx, p, &r);
    if (rc == 0)
        rc = job_train__build(ctx, p, &r);
    if (rc == 0)
        rc = job_train__start(ctx, p, &r);
    if (rc == 0)
        rc = job_train__train(ctx, p, &r, &res);
    if (rc == 0)
        rc = job_train__save(ctx, p, &r, &id);
    if (rc == 0)
        rc = job_train__result(ctx, id, &res, &r);
    job_train__run_close(&r);
    return rc;
}

/* ---- on several ranks (job_remote.h; spool.h, "train and fit jobs") ---- */

static void job_train__staged_free(struct job_train_run *r)
{
    if (!r)
        return;
    job_train__run_close(r);
    free(r);
}

/* The layers as spool_net.h's "network" (their surrogates into dir), new
 * reference into *network. */
static int job_train__stage_network(struct job_ctx *ctx, const struct job_train *p,
                                    const char *dir, json_t **network)
{
    struct spool_layer L[NET_MAX_LAYERS];
    for (size_t l = 0; l < p->nd.n_layers; l++)
        L[l] = (struct spool_layer){p->nd.devices[l], p->nd.dev_json[l], p->nd.via[l],
                                    p->nd.connect[l], p->nd.have_sur[l] ? &p->nd.sur[l] : NULL,
                                    &p->nd.cells[l]};
    return spool_net_write(dir, L, p->nd.n_layers, network, ctx->reason, sizeof ctx->reason);
}

/* The resolved spec (job_netdef_spec) with "staged" (spool.h): where the run
 * starts, the optimizer's steps, the step_loss interval, the network (steals
 * it) and the datasets' classes. New reference; NULL: no memory. */
static json_t *job_train__staged_spec(struct job_ctx *ctx, const struct job_train *p,
                                      const struct job_train_run *r, json_t *network)
{
    json_t *spec = job_netdef_spec(&p->nd, ctx->spec, p->t.train.seed);
    json_t *staged = json_pack("{sI sI sf sI sI sI so sI}", "epoch", (json_int_t)r->from.epoch,
                               "step", (json_int_t)r->from.step, "loss_sum", r->from.loss_sum,
                               "correct", (json_int_t)r->from.correct, "t", (json_int_t)r->o.t,
                               "step_metric_every", (json_int_t)JOB_TRAIN_STEP_EVERY, "network",
                               network, "n_classes", (json_int_t)r->train.n_classes);
    if (!spec || !staged || json_object_set(spec, SPOOL_STAGED, staged) != 0)
        json_decref(spec), spec = NULL;
    json_decref(staged);
    return spec;
}

/* The files qn-mpi reads: rows, network and surrogates, start parameters and
 * state, job.json. */
static int job_train__stage_files(struct job_ctx *ctx, const struct job_train *p,
                                  const struct job_train_run *r, const char *dir)
{
    char *why = ctx->reason;
    size_t cap = sizeof ctx->reason;
    json_t *network = NULL;
    int rc = spool_data_write(dir, SPOOL_TRAIN_SET, &r->train, why, cap);
    if (rc == 0)
        rc = spool_data_write(dir, SPOOL_TEST_SET, &r->test, why, cap);
    if (rc == 0)
        rc = job_train__stage_network(ctx, p, dir, &network);
    if (rc == 0)
        rc = spool_floats_write(dir, SPOOL_START_PARAMS, r->net->params, r->net->n_params, why,
                                cap);
    if (rc == 0)
        rc = spool_floats_write(dir, SPOOL_START_STATE, r->o.state, optim_state_len(&r->o), why,
                                cap);
    json_t *spec = rc ? NULL : job_train__staged_spec(ctx, p, r, network);
    if (rc)
        json_decref(network);
    else if (!spec)
        rc = QN_ENOMEM;
    if (rc == 0)
        rc = spool_job_write(dir, ctx->job_id, "train", ctx->name, ctx->ranks, ctx->threads, spec,
                             why, cap);
    json_decref(spec);
    return rc && !why[0] ? job_fail(ctx, rc, "cannot stage the run") : rc;
}

/* job_type.stage: as run up to the training itself (data, resume point,
 * network, calibration or restore, metric trim), then the spool's files. */
static int job_train_stage(struct job_ctx *ctx, const char *dir)
{
    struct job_train *p = ctx->prep;
    struct job_train_run *r = calloc(1, sizeof *r);
    if (!r)
        return job_fail(ctx, QN_ENOMEM, "cannot stage the run");
    p->staged = r;
    r->ctx = ctx;
    int rc = job_train__data(ctx, p, r);
    if (rc == 0)
        rc = job_train__resume_point(ctx, p, r);
    if (rc == 0)
        rc = job_train__build(ctx, p, r);
    if (rc == 0)
        rc = job_train__start(ctx, p, r);
    return rc ? rc : job_train__stage_files(ctx, p, r, dir);
}

/* job_type.checkpoint: the checkpoint of `epoch` qn-mpi wrote, stored as run
 * stores one, its files then removed. */
static int job_train_checkpoint(struct job_ctx *ctx, const char *dir, size_t epoch)
{
    struct job_train *p = ctx->prep;
    struct job_train_run *r = p->staged;
    size_t n = r->net->n_params, n_state = optim_state_len(&r->o);
    float *params = malloc(n * sizeof *params);
    if (!params)
        return job_fail(ctx, QN_ENOMEM, "cannot read a checkpoint");
    int rc = spool_checkpoint_read(dir, epoch, params, n, r->o.state, n_state, &r->o.t,
                                   ctx->reason, sizeof ctx->reason);
    if (rc == 0) {
        float *mine = r->net->params;
        r->net->params = params; /* the checkpoint's, for the row */
        rc = job_train__save_checkpoint(r->net, &r->o, epoch, NULL, r);
        r->net->params = mine;
        spool_checkpoint_remove(dir, epoch);
    }
    free(params);
    return rc;
}

/* job_type.collect: the trained parameters and figures qn-mpi wrote, then the
 * model and the result as run saves them (the checkpoints are stored already). */
static int job_train_collect(struct job_ctx *ctx, const char *dir)
{
    struct job_train *p = ctx->prep;
    struct job_train_run *r = p->staged;
    struct train_result res;
    size_t failed = 0;
    float *params = NULL;
    int64_t id = 0;
    int rc = spool_train_result_read(dir, &res, r->net->n_layers, &failed, ctx->reason,
                                     sizeof ctx->reason);
    if (rc == 0)
        rc = spool_floats_read(dir, SPOOL_MODEL_PARAMS, r->net->n_params, &params, ctx->reason,
                               sizeof ctx->reason);
    if (rc == 0) {
        memcpy(r->net->params, params, r->net->n_params * sizeof *params);
        r->net->failed_solves += failed; /* calibration's, here, and the run's */
    }
    free(params);
    if (rc == 0)
        rc = job_train__save(ctx, p, r, &id);
    return rc ? rc : job_train__result(ctx, id, &res, r);
}

/* A train job resumes from its last checkpoint (and trims its own metrics). */
const struct job_type job_train_type = {.name = "train",
                                        .resumes = 1,
                                        .validate = job_train_validate,
                                        .prepare = job_train_prepare,
                                        .run = job_train_run,
                                        .release = job_train_release,
                                        .estimate = job_train_estimate,
                                        .stage = job_train_stage,
                                        .collect = job_train_collect,
                                        .check_ranks = job_train_check_ranks,
                                        .checkpoint = job_train_checkpoint};
