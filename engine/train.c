/* train.c: the training loop and evaluation of device networks (see train.h). */
#include "train.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn.h"
#include "qn_err.h"

const char *train_loss_name(enum loss_kind k)
{
    return k == LOSS_MSE ? "mse" : "cross_entropy";
}

int train_check_data(const struct net *n, const struct data_set *ds, enum loss_kind loss)
{
    if (ds->d != n->n_in || ds->n == 0)
        return QN_EINVAL;
    if (loss == LOSS_CROSS_ENTROPY) {
        if (!ds->labels || ds->n_classes > n->n_out)
            return QN_EINVAL;
        for (size_t i = 0; i < ds->n; i++)
            if (ds->labels[i] < 0 || (size_t)ds->labels[i] >= n->n_out)
                return QN_EINVAL;
        return QN_OK;
    }
    if (ds->labels) /* mse on a label: one output, whose target is the label */
        return n->n_out == 1 ? QN_OK : QN_EINVAL;
    return ds->y && ds->t == n->n_out ? QN_OK : QN_EINVAL;
}

/* Scratch for one batch. */
struct train__batch {
    size_t *idx;  /* (n) permutation */
    float *x;     /* (cap, d) */
    int *labels;  /* (cap) */
    float *y;     /* (cap, t) */
    float *dout;  /* (cap, n_out) */
    int labelled; /* the dataset has labels (with mse: the one output's target) */
};

static int train__batch_init(struct train__batch *b, const struct net *n, const struct data_set *ds)
{
    b->idx = malloc(ds->n * sizeof *b->idx);
    b->x = malloc(n->cap * ds->d * sizeof *b->x);
    b->labels = malloc(n->cap * sizeof *b->labels);
    b->y = malloc(n->cap * (ds->t ? ds->t : 1) * sizeof *b->y);
    b->dout = malloc(n->cap * n->n_out * sizeof *b->dout);
    b->labelled = ds->labels != NULL;
    return b->idx && b->x && b->labels && b->y && b->dout ? QN_OK : QN_ENOMEM;
}

static void train__batch_close(struct train__batch *b)
{
    free(b->idx), free(b->x), free(b->labels), free(b->y), free(b->dout);
}

/* Loss of the last forward on B rows; writes dout when asked; counts correct rows. */
static int train__loss(const struct net *n, enum loss_kind loss, const struct train__batch *b,
                       size_t B, float *dout, double *l, size_t *correct)
{
    const float *out = net_output(n);
    if (loss == LOSS_MSE && b->labelled) {
        for (size_t k = 0; k < B; k++) {
            b->y[k] = (float)b->labels[k];
            *correct += fabsf(out[k] - b->y[k]) < 0.5f;
        }
    }
    if (loss == LOSS_MSE) {
        *l = nn_mse_loss(dout, out, b->y, B, n->n_out);
        return QN_OK;
    }
    *correct += nn_count_correct(out, b->labels, B, n->n_out);
    return nn_xent_loss(l, dout, out, b->labels, B, n->n_out) ? QN_EINVAL : QN_OK;
}

/* One row-batch's loss gradient by backprop into n->grads; the loss into *l. */
static int train__backprop(struct net *n, const struct train_config *cfg,
                           const struct train__batch *b, size_t B, double *l, size_t *correct)
{
    int rc = net_forward(n, b->x, B);
    if (rc == QN_OK)
        rc = train__loss(n, cfg->loss, b, B, b->dout, l, correct);
    if (rc)
        return rc;
    memset(n->grads, 0, n->n_params * sizeof *n->grads);
    net_backward(n, b->x, b->dout, B);
    return QN_OK;
}

/* A well-mixed 64-bit seed of (a, b, c) (splitmix64 steps). */
static uint64_t train__mix(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t z = a;
    for (int i = 0; i < 3; i++) {
        z += 0x9e3779b97f4a7c15u + (i == 1 ? b : i == 2 ? c : 0);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
    }
    return z;
}

/* eps (n) = N(0, 1) on o's trainable segments for pair k of step `step`. */
static void train__es_noise(const struct optim *o, uint64_t seed, uint64_t step, size_t k,
                            gsl_rng *r, float *eps)
{
    gsl_rng_set(r, (unsigned long)train__mix(seed, step, k));
    for (size_t s = 0; s < o->n_seg; s++)
        for (size_t i = o->seg[s].off; i < o->seg[s].off + o->seg[s].len; i++)
            eps[i] = (float)gsl_ran_ugaussian(r);
}

/* The loss of the batch at params + sign * sigma * eps (trainable segments), then
 * the parameters as they were (theta). */
static int train__es_member(struct net *n, const struct optim *o, const struct train_config *cfg,
                            const struct train__batch *b, size_t B, const float *theta,
                            const float *eps, float sign, double *l)
{
    float step = sign * (float)o->cfg.sigma;
    size_t unused = 0;
    for (size_t s = 0; s < o->n_seg; s++)
        for (size_t i = o->seg[s].off; i < o->seg[s].off + o->seg[s].len; i++)
            n->params[i] = theta[i] + step * eps[i];
    int rc = net_forward(n, b->x, B);
    if (rc == QN_OK)
        rc = train__loss(n, cfg->loss, b, B, NULL, l, &unused);
    memcpy(n->params, theta, n->n_params * sizeof *theta);
    return rc;
}

/* Centred ranks: utility 0.5 for the lowest loss down to -0.5 for the highest (ties by
 * index), into u (P). */
static int train__es_utilities(const double *loss, size_t P, double *u)
{
    size_t *order = malloc(P * sizeof *order);
    if (!order)
        return QN_ENOMEM;
    for (size_t i = 0; i < P; i++)
        order[i] = i;
    for (size_t i = 1; i < P; i++) /* insertion sort: P is small */
        for (size_t j = i; j > 0 && loss[order[j]] < loss[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    for (size_t rank = 0; rank < P; rank++)
        u[order[rank]] = 0.5 - (double)rank / (double)(P - 1);
    free(order);
    return QN_OK;
}

/*
 * The ES estimate of the loss gradient for one batch into n->grads: pairs
 * k = 0..P/2-1 of members theta +- sigma eps_k (eps_k drawn from seed, step
 * and k alone), their losses rank-shaped into utilities u, and
 * g = -(1 / (P sigma)) sum_k (u+_k - u-_k) eps_k on the trainable segments
 * (0 elsewhere). The loss at theta itself (forwarded with tracking as
 * usual) goes into *l and the correct count.
 */
static int train__es_grad(struct net *n, const struct optim *o, const struct train_config *cfg,
                          const struct train__batch *b, size_t B, uint64_t step, double *l,
                          size_t *correct)
{
    size_t P = o->cfg.population, N = n->n_params;
    int rc = net_forward(n, b->x, B);
    if (rc == QN_OK)
        rc = train__loss(n, cfg->loss, b, B, NULL, l, correct);
    if (rc)
        return rc;
    float *theta = malloc(N * sizeof *theta), *eps = malloc(N * sizeof *eps);
    double *loss = malloc(P * sizeof *loss), *u = malloc(P * sizeof *u);
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    int track = n->track;
    rc = theta && eps && loss && u && r ? QN_OK : QN_ENOMEM;
    if (rc == QN_OK)
        memcpy(theta, n->params, N * sizeof *theta);
    n->track = 0; /* the members are not the network's activity */
    for (size_t k = 0; rc == QN_OK && k < P / 2; k++) {
        train__es_noise(o, cfg->seed, step, k, r, eps);
        rc = train__es_member(n, o, cfg, b, B, theta, eps, 1.0f, &loss[2 * k]);
        if (rc == QN_OK)
            rc = train__es_member(n, o, cfg, b, B, theta, eps, -1.0f, &loss[2 * k + 1]);
    }
    n->track = track;
    if (rc == QN_OK)
        rc = train__es_utilities(loss, P, u);
    memset(n->grads, 0, N * sizeof *n->grads);
    for (size_t k = 0; rc == QN_OK && k < P / 2; k++) {
        train__es_noise(o, cfg->seed, step, k, r, eps);
        float c = (float)(-(u[2 * k] - u[2 * k + 1]) / ((double)P * o->cfg.sigma));
        for (size_t s = 0; s < o->n_seg; s++)
            for (size_t i = o->seg[s].off; i < o->seg[s].off + o->seg[s].len; i++)
                n->grads[i] += c * eps[i];
    }
    gsl_rng_free(r);
    free(theta), free(eps), free(loss), free(u);
    return rc;
}

static int train__canceled(const atomic_int *c)
{
    return c && atomic_load(c);
}

int train_evaluate_rows(struct net *n, const struct data_set *ds, enum loss_kind loss, size_t lo,
                        size_t hi, double *sums, size_t *correct)
{
    int rc = train_check_data(n, ds, loss);
    if (rc)
        return rc;
    if (lo > hi || hi > ds->n)
        return QN_EINVAL;
    struct train__batch b = {0};
    rc = train__batch_init(&b, n, ds);
    for (size_t i = lo, k = 0; rc == QN_OK && i < hi; i += n->cap, k++) {
        size_t B = hi - i < n->cap ? hi - i : n->cap;
        for (size_t r = 0; r < B; r++)
            b.idx[r] = i + r;
        data_gather(ds, b.idx, B, b.x, ds->labels ? b.labels : NULL, ds->y ? b.y : NULL);
        double l = 0;
        rc = net_forward(n, b.x, B);
        if (rc == QN_OK)
            rc = train__loss(n, loss, &b, B, NULL, &l, correct);
        sums[k] = l * (double)B;
    }
    train__batch_close(&b);
    return rc;
}

int train_evaluate(struct net *n, const struct data_set *ds, enum loss_kind loss, double *out_loss,
                   double *out_accuracy)
{
    int rc = train_check_data(n, ds, loss);
    if (rc)
        return rc;
    size_t n_batches = (ds->n + n->cap - 1) / n->cap, correct = 0;
    double *sums = malloc((n_batches ? n_batches : 1) * sizeof *sums), sum = 0;
    if (!sums)
        return QN_ENOMEM;
    rc = train_evaluate_rows(n, ds, loss, 0, ds->n, sums, &correct);
    for (size_t k = 0; rc == QN_OK && k < n_batches; k++)
        sum += sums[k];
    free(sums);
    if (rc)
        return rc;
    *out_loss = sum / (double)ds->n;
    *out_accuracy = loss == LOSS_CROSS_ENTROPY || ds->labels ? (double)correct / (double)ds->n
                                                             : NAN;
    return QN_OK;
}

static void train__metric(const struct train_hooks *h, const char *name, uint64_t step,
                          size_t epoch, double v)
{
    if (h && h->metric)
        h->metric(name, step, epoch, v, h->ctx);
}

uint64_t train_step_chip(uint64_t seed, uint64_t step)
{
    return train__mix(seed, step, 0x4857u);
}

uint64_t train_step_noise(uint64_t seed, uint64_t step)
{
    return train__mix(seed, step, 0x4e53u);
}

/* The chips of training: hardware-aware step `step` sees its own chip and noise
 * (train_step_chip, train_step_noise); the other modes change nothing here. */
static void train__population(struct net *n, const struct train_config *cfg, uint64_t step)
{
    if (cfg->chip_mode != TRAIN_HARDWARE_AWARE)
        return;
    net_set_chip(n, train_step_chip(cfg->seed, step));
    net_set_noise(n, 1, train_step_noise(cfg->seed, step));
}

/* The network as the epoch's scores see it: chip cfg->chip (one chip) or nominal
 * (hardware-aware), noise off; a nominal run leaves the network as it was given. */
static void train__scored(struct net *n, const struct train_config *cfg)
{
    if (cfg->chip_mode == TRAIN_NOMINAL)
        return;
    if (cfg->chip_mode == TRAIN_ONE_CHIP)
        net_set_chip(n, cfg->chip);
    else
        net_set_nominal(n);
    net_set_noise(n, 0, 0);
}

/* One epoch over ds in the order of a permutation drawn from (seed, epoch),
 * from step at->step on (at->epoch == epoch). On cancel, *at says where it
 * stopped. */
static int train__epoch(struct net *n, struct optim *o, const struct data_set *ds,
                        const struct train_config *cfg, const struct train_hooks *h,
                        struct train__batch *b, struct train_position *at, double *loss,
                        double *acc)
{
    size_t epoch = at->epoch;
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return QN_ENOMEM;
    gsl_rng_set(r, cfg->seed * 1000003u + epoch);
    data_permute(b->idx, ds->n, r);
    gsl_rng_free(r);
    size_t steps_per_epoch = (ds->n + cfg->batch - 1) / cfg->batch, correct = at->correct;
    uint64_t step = (uint64_t)epoch * steps_per_epoch + at->step;
    size_t every = h && h->step_metric_every ? h->step_metric_every : 1;
    double sum = at->loss_sum;
    for (size_t i = at->step * cfg->batch; i < ds->n; i += cfg->batch, step++) {
        if (h && train__canceled(h->cancel)) {
            *at = (struct train_position){epoch, i / cfg->batch, sum, correct};
            return QN_ECANCELED;
        }
        size_t B = ds->n - i < cfg->batch ? ds->n - i : cfg->batch;
        data_gather(ds, b->idx + i, B, b->x, ds->labels ? b->labels : NULL, ds->y ? b->y : NULL);
        double l = 0;
        train__population(n, cfg, step);
        int rc = o->cfg.kind == OPTIM_ES ? train__es_grad(n, o, cfg, b, B, step, &l, &correct)
                                         : train__backprop(n, cfg, b, B, &l, &correct);
        if (rc)
            return rc;
        optim_step(o, n->params, n->grads);
        sum += l * (double)B;
        if ((step + 1) % every == 0)
            train__metric(h, "step_loss", step + 1, epoch + 1, l);
    }
    *loss = sum / (double)ds->n;
    *acc = cfg->loss == LOSS_CROSS_ENTROPY || b->labelled ? (double)correct / (double)ds->n : NAN;
    return QN_OK;
}

static double train__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The epoch's out-of-domain fractions (net_domain_fraction) into res and as
 * metrics: one over every surrogate layer, one per such layer. */
static void train__domain(const struct net *n, const struct train_hooks *h, size_t epoch,
                          uint64_t step, struct train_result *res)
{
    size_t sur = 0, ood = 0;
    char name[32];
    for (size_t l = 0; l < n->n_layers; l++) {
        double f;
        res->out_of_domain_layer[l] = NAN;
        if (net_domain_fraction(n, l, &f))
            continue;
        res->out_of_domain_layer[l] = f;
        sur += n->layer[l].sur_rows, ood += n->layer[l].ood_rows;
        snprintf(name, sizeof name, "out_of_domain_%zu", l);
        train__metric(h, name, step, epoch, f);
    }
    res->out_of_domain = sur ? (double)ood / (double)sur : NAN;
    if (sur)
        train__metric(h, "out_of_domain", step, epoch, res->out_of_domain);
}

/* Reports an epoch's metrics and evaluates on the test set. */
static int train__report(struct net *n, const struct data_set *test, const struct train_config *cfg,
                         const struct train_hooks *h, size_t epoch, uint64_t step, double secs,
                         size_t failed_before, struct train_result *res)
{
    train__metric(h, "train_loss", step, epoch, res->train_loss);
    train__domain(n, h, epoch, step, res); /* before the test set's forward passes count */
    if (!isnan(res->train_accuracy))
        train__metric(h, "train_accuracy", step, epoch, res->train_accuracy);
    if (test) {
        int rc = train_evaluate(n, test, cfg->loss, &res->test_loss, &res->test_accuracy);
        if (rc)
            return rc;
        train__metric(h, "test_loss", step, epoch, res->test_loss);
        if (!isnan(res->test_accuracy))
            train__metric(h, "test_accuracy", step, epoch, res->test_accuracy);
    }
    train__metric(h, "seconds", step, epoch, secs);
    if (n->failed_solves > failed_before)
        train__metric(h, "failed_solves", step, epoch, (double)(n->failed_solves - failed_before));
    return QN_OK;
}

/* After epoch `epoch` (1-based): an extinction event when one is due, and its metrics. */
static int train__adapt(struct net *n, struct optim *o, const struct train_config *cfg,
                        const struct train_hooks *h, struct adapt_state *as, size_t epoch,
                        uint64_t step, struct train_result *res)
{
    if (!adapt_due(&cfg->adapt, as, epoch, cfg->epochs, res->train_loss))
        return QN_OK;
    struct adapt_event ev[NET_MAX_LAYERS];
    size_t n_ev = 0;
    int rc = adapt_event(n, o, &cfg->adapt, cfg->seed, as, ev, &n_ev);
    if (rc)
        return rc;
    res->events++;
    for (size_t i = 0; i < n_ev; i++) {
        train__metric(h, "structure", step + i, epoch, (double)ev[i].width);
        train__metric(h, "structure_layer", step + i, epoch, (double)ev[i].layer);
        train__metric(h, "structure_grown", step + i, epoch, (double)ev[i].grown);
        train__metric(h, "structure_pruned", step + i, epoch, (double)ev[i].pruned);
    }
    return QN_OK;
}

int train_run(struct net *n, struct optim *o, const struct data_set *train,
              const struct data_set *test, const struct train_config *cfg,
              const struct train_hooks *h, size_t start_epoch, struct train_result *res)
{
    struct train_position from = {start_epoch, 0, 0, 0};
    return train_run_from(n, o, train, test, cfg, h, &from, res);
}

/* Saves a mid-epoch checkpoint after a cancel, when the hooks ask for one. */
static int train__partial(const struct net *n, const struct optim *o,
                          const struct train_config *cfg, const struct train_hooks *h,
                          const struct train_position *at)
{
    if (!h || !h->partial || cfg->adapt.enabled || at->step == 0)
        return QN_OK;
    return h->partial(n, o, at, h->ctx);
}

int train_run_from(struct net *n, struct optim *o, const struct data_set *train,
                   const struct data_set *test, const struct train_config *cfg,
                   const struct train_hooks *h, const struct train_position *from,
                   struct train_result *res)
{
    memset(res, 0, sizeof *res);
    res->test_loss = res->test_accuracy = res->out_of_domain = NAN;
    for (size_t l = 0; l < NET_MAX_LAYERS; l++)
        res->out_of_domain_layer[l] = NAN;
    if (cfg->batch < 1 || cfg->batch > n->cap)
        return QN_EINVAL;
    for (size_t l = 0; l < n->n_layers && o->cfg.kind != OPTIM_ES; l++)
        if (n->layer[l].via == VIA_DEVICE && !dev_is_differentiable(n->layer[l].dev))
            return QN_ENOTDIFF; /* a forward-only layer cannot be backpropagated through */
    int rc = train_check_data(n, train, cfg->loss);
    if (rc == QN_OK && test)
        rc = train_check_data(n, test, cfg->loss);
    if (rc)
        return rc;
    size_t steps_per_epoch = (train->n + cfg->batch - 1) / cfg->batch;
    if (cfg->adapt.enabled && adapt_config_check(&cfg->adapt))
        return QN_EINVAL;
    if (from->step >= steps_per_epoch || (from->step && cfg->adapt.enabled))
        return QN_EINVAL;
    struct adapt_state fresh, *as = h && h->adapt_state ? h->adapt_state : &fresh;
    adapt_state_init(&fresh);
    struct train__batch b = {0};
    rc = net_freeze_fixed(n, o);
    if (rc == QN_OK)
        rc = train__batch_init(&b, n, train);
    struct train_position at = *from;
    for (size_t e = from->epoch; rc == QN_OK && e < cfg->epochs; e++) {
        double t0 = train__now();
        size_t failed_before = n->failed_solves;
        net_track_reset(n);
        net_domain_reset(n);
        n->track = cfg->adapt.enabled;
        if (e != from->epoch)
            at = (struct train_position){e, 0, 0, 0};
        train__scored(n, cfg); /* one chip: the chip trained on */
        rc = train__epoch(n, o, train, cfg, h, &b, &at, &res->train_loss, &res->train_accuracy);
        n->track = 0;
        train__scored(n, cfg);
        if (rc == QN_ECANCELED) {
            int prc = train__partial(n, o, cfg, h, &at);
            rc = prc ? prc : rc;
        }
        if (rc == QN_OK)
            rc = train__report(n, test, cfg, h, e + 1, (uint64_t)(e + 1) * steps_per_epoch,
                               train__now() - t0, failed_before, res);
        if (rc == QN_OK)
            res->epochs_done = e + 1;
        if (rc == QN_OK && cfg->adapt.enabled)
            rc = train__adapt(n, o, cfg, h, as, e + 1, (uint64_t)(e + 1) * steps_per_epoch, res);
        int due = cfg->checkpoint_every && ((e + 1) % cfg->checkpoint_every == 0 ||
                                            e + 1 == cfg->epochs);
        if (rc == QN_OK && due && h && h->checkpoint)
            rc = h->checkpoint(n, o, e + 1, h->ctx);
    }
    train__batch_close(&b);
    return rc;
}
