/*
 * spec_run.c: resolved train and fit specs made into engine objects and run
 * (see spec_run.h). The daemon's train and fit jobs and qn-mpi's ranks call
 * the same functions, so the one-process and the data-parallel runs build,
 * start and score a network the same way.
 */
#include "spec_run.h"

#include <stdio.h>
#include <string.h>

#include "qn_err.h"

int spec_run_build(const struct train_spec *t, const struct net_layer_spec *ls, size_t n_in,
                   size_t n_threads, const atomic_int *cancel, struct net **net, struct optim *o,
                   const char **what)
{
    return spec_run_build_cells(t, ls, NULL, n_in, n_threads, cancel, net, o, what);
}

int spec_run_build_cells(const struct train_spec *t, const struct net_layer_spec *ls,
                         const struct net_cells_spec *cells, size_t n_in, size_t n_threads,
                         const atomic_int *cancel, struct net **net, struct optim *o,
                         const char **what)
{
    struct net_layer_spec spec[NET_MAX_LAYERS];
    struct net_cells_spec own[NET_MAX_LAYERS];
    for (size_t l = 0; l < t->n_layers; l++) {
        const struct train_layer_spec *L = &t->layers[l];
        spec[l] = ls[l];
        spec[l].forward_only = t->optim.kind == OPTIM_ES; /* es never backpropagates */
        own[l] = (struct net_cells_spec){L->cells, L->n_cells, L->cell_src, L->cell_dst};
    }
    *net = NULL;
    *what = "cannot build the network";
    int rc = net_create_cells(net, n_in, spec, cells ? cells : own, t->n_layers, t->train.batch,
                              n_threads, t->train.seed, cancel);
    if (rc)
        return rc;
    *what = "cannot initialise the network";
    for (size_t l = 0; l < t->n_layers && rc == 0; l++)
        if (t->layers[l].init != NET_INIT_UNIFORM)
            rc = net_init_layer(*net, l, t->layers[l].init, t->train.seed);
    if (rc == 0) {
        *what = "cannot set up the optimizer";
        rc = optim_init(o, &t->optim, (*net)->n_params);
    }
    if (rc) {
        net_destroy(*net);
        *net = NULL;
    }
    return rc;
}

int spec_run_start(const struct train_spec *t, struct net *n, struct optim *o,
                   const struct spec_run_start *st, const struct data_set *train, char *reason,
                   size_t cap)
{
    if (!st->params) {
        size_t B = train->n < n->cap ? train->n : n->cap;
        return t->calibrate ? net_calibrate(n, train->x, B) : QN_OK;
    }
    if (st->n_params != n->n_params || (st->state && st->n_state != optim_state_len(o))) {
        snprintf(reason, cap, "the %s does not fit the network (%zu parameters, %zu expected)",
                 st->state ? "checkpoint" : "model", st->n_params, n->n_params);
        return QN_EFORMAT;
    }
    memcpy(n->params, st->params, st->n_params * sizeof *st->params);
    if (st->state) {
        memcpy(o->state, st->state, st->n_state * sizeof *st->state);
        o->t = st->t;
    }
    return QN_OK;
}

int spec_run_train(const struct train_spec *t, struct net *n, struct optim *o,
                   const struct data_set *train, const struct data_set *test,
                   const struct train_hooks *hooks, const struct train_position *from,
                   struct train_result *res)
{
    int rc = train_run_from(n, o, train, test, &t->train, hooks, from, res);
    if (rc || res->epochs_done > 0)
        return rc;
    /* Every epoch was done before (resumed after the last checkpoint): score it. */
    const struct shard *sh = hooks ? hooks->shard : NULL;
    rc = train_evaluate_shard(n, train, t->train.loss, sh, &res->train_loss, &res->train_accuracy);
    if (rc == 0)
        rc = train_evaluate_shard(n, test, t->train.loss, sh, &res->test_loss, &res->test_accuracy);
    res->epochs_done = t->train.epochs;
    return rc;
}

int spec_run_train_ranks(const struct train_spec *t, size_t ranks, struct spec_error *err)
{
    if (ranks <= 1)
        return QN_OK;
    if (t->train.adapt.enabled)
        return spec_fail(err, "/spec/adapt",
                         "adaptive structure decides on statistics of the "
                         "whole data, which %zu data-parallel ranks do not share; leave "
                         "\"adapt\" out or run on one rank",
                         ranks);
    if (t->optim.kind == OPTIM_ES)
        return spec_fail(err, "/spec/optimizer/name",
                         "es does not run on several ranks (%zu "
                         "asked): use adam or sgd, or one rank",
                         ranks);
    return QN_OK;
}

int spec_run_fit(const struct fit_spec *f, const float *in, const float *out, const int *status,
                 size_t n, size_t n_in, size_t n_cond, const char *const *names,
                 const struct fit_hooks *hooks, struct surrogate *s, struct fit_result *res,
                 const char **what)
{
    *what = "fit stopped";
    int rc = surrogate_fit(in, out, status, n, n_in, &f->cfg, hooks, s, res);
    if (rc || !n_cond)
        return rc;
    *what = "cannot name the surrogate's parameters";
    if ((rc = surrogate_set_cond(s, n_cond, names)))
        surrogate_close(s);
    return rc;
}
