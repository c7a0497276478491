/* train.c: the training loop and evaluation of device networks (see train.h). */
#include "train.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net_replica.h"
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

#define TRAIN__MAX_REPS 64 /* replicas of one network: ES members, chips */
/* An ES step keeps its eps_k for the gradient up to 64 MB of them; beyond, it draws them
 * again. */
#define TRAIN__ES_KEEP_FLOATS (16u << 20)

/* Replicas of the network (net_replica.h) on which an ES step's members run in parallel. */
struct train__es_pool {
    struct net *reps[TRAIN__MAX_REPS]; /* (n) owned */
    size_t n;                          /* 0: the members run on the network itself */
};

/* The ES pool of an epoch: replicas of n for the members (min(threads, P / 2) of them, the
 * threads shared out among them), none when n has one thread or the optimizer is not ES. */
static int train__es_pool_open(struct train__es_pool *pool, const struct net *n,
                               const struct optim *o)
{
    size_t pairs = o->cfg.population / 2, T = n->n_threads;
    pool->n = 0;
    if (o->cfg.kind != OPTIM_ES || T < 2 || pairs < 2)
        return QN_OK;
    T = T < pairs ? T : pairs;
    T = T < TRAIN__MAX_REPS ? T : TRAIN__MAX_REPS;
    for (size_t t = 0; t < T; t++) {
        int rc = net_replica_create(&pool->reps[t], n, n->n_threads / T);
        if (rc)
            return rc;
        pool->n = t + 1;
    }
    return QN_OK;
}

static void train__es_pool_close(struct train__es_pool *pool)
{
    for (size_t t = 0; t < pool->n; t++)
        net_destroy(pool->reps[t]);
    pool->n = 0;
}

/* Scratch for one batch. */
struct train__batch {
    size_t *idx;  /* (n) permutation */
    float *x;     /* (cap, d) */
    int *labels;  /* (cap) */
    float *y;     /* (cap, t) */
    float *dout;  /* (cap, n_out) */
    int labelled; /* the dataset has labels (with mse: the one output's target) */
    /* ES members' replicas, rebuilt every epoch (adapt may change the network between
     * epochs). */
    struct train__es_pool es;
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
    train__es_pool_close(&b->es);
}

/* Gathers rows idx[0..B) of ds into b; with mse on a labelled set, each row's target
 * is its label. */
static void train__gather(struct train__batch *b, const struct data_set *ds, enum loss_kind loss,
                          const size_t *idx, size_t B)
{
    data_gather(ds, idx, B, b->x, ds->labels ? b->labels : NULL, ds->y ? b->y : NULL);
    for (size_t k = 0; loss == LOSS_MSE && b->labelled && k < B; k++)
        b->y[k] = (float)b->labels[k];
}

/* Loss of the last forward on B rows; writes dout when asked; counts correct rows. Reads b
 * only (ES members on several threads share it). */
static int train__loss(const struct net *n, enum loss_kind loss, const struct train__batch *b,
                       size_t B, float *dout, double *l, size_t *correct)
{
    const float *out = net_output(n);
    for (size_t k = 0; loss == LOSS_MSE && b->labelled && k < B; k++)
        *correct += fabsf(out[k] - b->y[k]) < 0.5f;
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

/* Multiplies n's gradients by this shard's share of the batch, len / B, and sums
 * them and the step's tot (loss times rows, correct rows, ranks that failed)
 * across the ranks. */
static int train__shard_sum(struct net *n, const struct shard *sh, size_t len, size_t B,
                            double tot[3])
{
    float share = (float)((double)len / (double)B);
    for (size_t k = 0; k < n->n_params; k++)
        n->grads[k] *= share;
    int rc = shard_sum(sh, n->grads, n->n_params);
    return rc ? rc : shard_sum64(sh, tot, 3);
}

/* The gradient of the batch b->idx[i..i + B) of ds into n->grads and its mean loss
 * into *l, adding its correct rows to *correct: the whole batch in one process, or
 * this rank's rows of it and the sums across the ranks (see train_run). */
static int train__grad(struct net *n, const struct train_config *cfg, const struct shard *sh,
                       const struct data_set *ds, struct train__batch *b, size_t i, size_t B,
                       double *l, size_t *correct)
{
    size_t off, len, c = 0;
    shard_rows(sh, B, &off, &len);
    train__gather(b, ds, cfg->loss, b->idx + i + off, len);
    if (!shard_active(sh))
        return train__backprop(n, cfg, b, B, l, correct);
    double tot[3] = {0, 0, 0}; /* loss times rows, correct rows, ranks that failed */
    int rc = QN_OK;
    n->noise_row0 = off;
    if (len)
        rc = train__backprop(n, cfg, b, len, &tot[0], &c);
    n->noise_row0 = 0;
    if (!len || rc) /* a rank that failed still takes part in the sums, with zeros */
        memset(n->grads, 0, n->n_params * sizeof *n->grads);
    tot[0] = rc ? 0 : tot[0] * (double)len, tot[1] = (double)c, tot[2] = rc != QN_OK;
    int src = train__shard_sum(n, sh, len, B, tot);
    if (rc || src)
        return rc ? rc : src;
    if (tot[2] > 0)
        return QN_EREMOTE; /* another rank failed */
    *l = tot[0] / (double)B;
    *correct += (size_t)tot[1];
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

/* What the members of one ES step share (train__es_pair); each thread t has its own eps
 * and generator. */
struct train__es {
    const struct optim *o;
    const struct train_config *cfg;
    const struct train__batch *b;
    size_t B;
    uint64_t step;
    const float *theta;  /* (n_params) the parameters of the step, read-only */
    uint64_t noise_step; /* the network's forward count after the forward at theta */
    double *loss;        /* (P) member losses: 2k at theta + sigma eps_k, 2k + 1 at minus */
    float *eps;          /* (threads, n_params) each thread's eps_k when kept is NULL */
    float *kept;         /* (P / 2, n_params) every eps_k, kept for the gradient; or NULL */
    gsl_rng **rng;       /* (threads) */
};

/* Pair k of the step on network m (the network itself or a replica) by thread t: both
 * members, each forward counted as the k-th pair's in a sequential run (noise keys). */
static int train__es_pair(struct net *m, size_t t, size_t k, void *ctx)
{
    struct train__es *e = ctx;
    float *eps = e->kept ? e->kept + k * m->n_params : e->eps + t * m->n_params;
    train__es_noise(e->o, e->cfg->seed, e->step, k, e->rng[t], eps);
    m->noise_step = e->noise_step + 2 * k;
    int rc = train__es_member(m, e->o, e->cfg, e->b, e->B, e->theta, eps, 1.0f, &e->loss[2 * k]);
    if (rc == QN_OK)
        rc = train__es_member(m, e->o, e->cfg, e->b, e->B, e->theta, eps, -1.0f,
                              &e->loss[2 * k + 1]);
    return rc;
}

/*
 * The losses of the step's P members into e->loss: pairs spread over the pool's replicas
 * (each synchronised with n first) or, without replicas, one after another on n. Either
 * way n ends as a sequential run leaves it (its forward count past every member's, the
 * members' solves and surrogate rows in its counters).
 */
static int train__es_members(struct net *n, struct train__es_pool *pool, struct train__es *e,
                             size_t pairs)
{
    int track = n->track;
    n->track = 0; /* the members are not the network's activity */
    int rc;
    if (pool->n == 0) {
        rc = net_replica_run(&n, 1, pairs, train__es_pair, e);
    } else {
        for (size_t t = 0; t < pool->n; t++)
            net_replica_sync(pool->reps[t], n);
        rc = net_replica_run(pool->reps, pool->n, pairs, train__es_pair, e);
        for (size_t t = 0; t < pool->n; t++)
            net_replica_absorb(n, pool->reps[t]);
    }
    n->track = track;
    n->noise_step = e->noise_step + (n->noise_on ? 2 * pairs : 0);
    return rc;
}

/*
 * The ES estimate of the loss gradient for one batch into n->grads: pairs
 * k = 0..P/2-1 of members theta +- sigma eps_k (eps_k drawn from seed, step
 * and k alone), their losses rank-shaped into utilities u, and
 * g = -(1 / (P sigma)) sum_k (u+_k - u-_k) eps_k on the trainable segments
 * (0 elsewhere). The loss at theta itself (forwarded with tracking as
 * usual) goes into *l and the correct count. The members run in parallel on
 * the pool's replicas when it has some; the step is the same bit for bit.
 */
static int train__es_grad(struct net *n, const struct optim *o, const struct train_config *cfg,
                          const struct train__batch *b, struct train__es_pool *pool, size_t B,
                          uint64_t step, double *l, size_t *correct)
{
    size_t P = o->cfg.population, N = n->n_params, T = pool->n ? pool->n : 1;
    int rc = net_forward(n, b->x, B);
    if (rc == QN_OK)
        rc = train__loss(n, cfg->loss, b, B, NULL, l, correct);
    if (rc)
        return rc;
    float *kept = N <= TRAIN__ES_KEEP_FLOATS / (P / 2) ? malloc(P / 2 * N * sizeof *kept) : NULL;
    float *theta = malloc(N * sizeof *theta), *eps = kept ? NULL : malloc(T * N * sizeof *eps);
    double *loss = malloc(P * sizeof *loss), *u = malloc(P * sizeof *u);
    gsl_rng *r[TRAIN__MAX_REPS] = {0};
    for (size_t t = 0; t < T; t++)
        r[t] = gsl_rng_alloc(gsl_rng_mt19937);
    rc = theta && (kept || eps) && loss && u ? QN_OK : QN_ENOMEM;
    for (size_t t = 0; t < T; t++)
        rc = r[t] ? rc : QN_ENOMEM;
    if (rc == QN_OK) {
        memcpy(theta, n->params, N * sizeof *theta);
        struct train__es e = {o, cfg, b, B, step, theta, n->noise_step, loss, eps, kept, r};
        rc = train__es_members(n, pool, &e, P / 2);
    }
    if (rc == QN_OK)
        rc = train__es_utilities(loss, P, u);
    memset(n->grads, 0, N * sizeof *n->grads);
    for (size_t k = 0; rc == QN_OK && k < P / 2; k++) {
        const float *ek = kept ? kept + k * N : eps;
        if (!kept) /* drawn again: the same eps_k */
            train__es_noise(o, cfg->seed, step, k, r[0], eps);
        float c = (float)(-(u[2 * k] - u[2 * k + 1]) / ((double)P * o->cfg.sigma));
        for (size_t s = 0; s < o->n_seg; s++)
            for (size_t i = o->seg[s].off; i < o->seg[s].off + o->seg[s].len; i++)
                n->grads[i] += c * ek[i];
    }
    for (size_t t = 0; t < T; t++)
        gsl_rng_free(r[t]);
    free(theta), free(eps), free(kept), free(loss), free(u);
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
        train__gather(&b, ds, loss, b.idx, B);
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

/* The sum of rows [lo, hi) of ds (train_evaluate_rows) into tot: loss times rows, correct
 * rows. */
static int train__score_slice(struct net *n, const struct data_set *ds, enum loss_kind loss,
                              size_t lo, size_t hi, double tot[2])
{
    size_t nb = (hi - lo + n->cap - 1) / n->cap, correct = 0;
    double *sums = malloc((nb ? nb : 1) * sizeof *sums);
    if (!sums)
        return QN_ENOMEM;
    int rc = hi > lo ? train_evaluate_rows(n, ds, loss, lo, hi, sums, &correct) : QN_OK;
    for (size_t k = 0; rc == QN_OK && k < nb; k++)
        tot[0] += sums[k];
    tot[1] = (double)correct;
    free(sums);
    return rc;
}

int train_evaluate_shard(struct net *n, const struct data_set *ds, enum loss_kind loss,
                         const struct shard *sh, double *out_loss, double *out_accuracy)
{
    if (!shard_active(sh))
        return train_evaluate(n, ds, loss, out_loss, out_accuracy);
    int rc = train_check_data(n, ds, loss);
    if (rc)
        return rc;
    size_t off, len;
    shard_rows(sh, ds->n, &off, &len);
    double tot[3] = {0, 0, 0}; /* loss sum, correct rows, ranks that failed */
    rc = train__score_slice(n, ds, loss, off, off + len, tot);
    tot[2] = rc != QN_OK;
    int src = shard_sum64(sh, tot, 3); /* every rank takes part, also after a failure */
    if (rc || src)
        return rc ? rc : src;
    if (tot[2] > 0)
        return QN_EREMOTE; /* another rank failed */
    *out_loss = tot[0] / (double)ds->n;
    *out_accuracy = loss == LOSS_CROSS_ENTROPY || ds->labels ? tot[1] / (double)ds->n : NAN;
    return QN_OK;
}

/* What the chips of one train_evaluate_chips share. */
struct train__chips {
    const struct data_set *ds;
    enum loss_kind loss;
    uint64_t seed; /* chip i is seed + i */
    int noise;
    double *out_loss, *out_accuracy; /* (count) */
};

/* Chip i on network m (the network itself or a replica): its parameters and noise, then
 * train_evaluate. */
static int train__chip(struct net *m, size_t t, size_t i, void *ctx)
{
    const struct train__chips *c = ctx;
    (void)t;
    net_set_chip(m, c->seed + i);
    net_set_noise(m, c->noise, c->seed + i);
    return train_evaluate(m, c->ds, c->loss, &c->out_loss[i], &c->out_accuracy[i]);
}

/* Chips [0, full) over min(n->n_threads, TRAIN__MAX_REPS) replicas of n, one device
 * thread each; their counters into n. */
static int train__chips_parallel(struct net *n, struct train__chips *c, size_t T, size_t full)
{
    struct net *reps[TRAIN__MAX_REPS] = {0};
    int rc = QN_OK;
    for (size_t t = 0; rc == QN_OK && t < T; t++)
        rc = net_replica_create(&reps[t], n, 1);
    if (rc == QN_OK)
        rc = net_replica_run(reps, T, full, train__chip, c);
    for (size_t t = 0; t < T; t++) {
        if (reps[t])
            net_replica_absorb(n, reps[t]);
        net_destroy(reps[t]);
    }
    return rc;
}

int train_evaluate_chips(struct net *n, const struct data_set *ds, enum loss_kind loss,
                         uint64_t seed, size_t count, int noise, double *out_loss,
                         double *out_accuracy)
{
    struct train__chips c = {ds, loss, seed, noise, out_loss, out_accuracy};
    size_t T = n->n_threads < TRAIN__MAX_REPS ? n->n_threads : TRAIN__MAX_REPS;
    size_t full = T > 1 ? count / T * T : 0; /* whole rounds of T chips */
    int rc = train_check_data(n, ds, loss);
    if (rc == QN_OK && full)
        rc = train__chips_parallel(n, &c, T, full);
    for (size_t i = full; rc == QN_OK && i < count; i++)
        rc = train__chip(n, 0, i, &c);
    return rc;
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
        double l = 0;
        train__population(n, cfg, step);
        int rc;
        if (o->cfg.kind == OPTIM_ES) {
            train__gather(b, ds, cfg->loss, b->idx + i, B);
            rc = train__es_grad(n, o, cfg, b, &b->es, B, step, &l, &correct);
        } else {
            rc = train__grad(n, cfg, h ? h->shard : NULL, ds, b, i, B, &l, &correct);
        }
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
        int rc = train_evaluate_shard(n, test, cfg->loss, h ? h->shard : NULL, &res->test_loss,
                                      &res->test_accuracy);
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

/* Sums the epoch's failed solves and solves (since failed_before and solves_before)
 * and every layer's surrogate counts across the ranks, so that every rank reports
 * the whole run's; nothing in one process. */
static int train__share_counts(struct net *n, const struct shard *sh, size_t failed_before,
                               size_t solves_before)
{
    if (!shard_active(sh))
        return QN_OK;
    double c[2 + 2 * NET_MAX_LAYERS];
    c[0] = (double)(n->failed_solves - failed_before), c[1] = (double)(n->solves - solves_before);
    for (size_t l = 0; l < n->n_layers; l++)
        c[2 + 2 * l] = (double)n->layer[l].sur_rows, c[3 + 2 * l] = (double)n->layer[l].ood_rows;
    int rc = shard_sum64(sh, c, 2 + 2 * n->n_layers);
    if (rc)
        return rc;
    n->failed_solves = failed_before + (size_t)c[0], n->solves = solves_before + (size_t)c[1];
    for (size_t l = 0; l < n->n_layers; l++)
        n->layer[l].sur_rows = (size_t)c[2 + 2 * l], n->layer[l].ood_rows = (size_t)c[3 + 2 * l];
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
        if (n->layer[ev[i].layer].edge)
            train__metric(h, "cells", step + i, epoch, (double)ev[i].cells);
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
    const struct shard *sh = h ? h->shard : NULL;
    if (shard_check(sh) || (shard_active(sh) && (cfg->adapt.enabled || o->cfg.kind == OPTIM_ES)))
        return QN_EINVAL; /* adapt and es decide on per-rank statistics */
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
        size_t failed_before = n->failed_solves, solves_before = n->solves;
        net_track_reset(n);
        net_domain_reset(n);
        n->track = cfg->adapt.enabled;
        if (e != from->epoch)
            at = (struct train_position){e, 0, 0, 0};
        train__scored(n, cfg); /* one chip: the chip trained on */
        rc = train__es_pool_open(&b.es, n, o);
        if (rc == QN_OK)
            rc = train__epoch(n, o, train, cfg, h, &b, &at, &res->train_loss, &res->train_accuracy);
        train__es_pool_close(&b.es);
        n->track = 0;
        train__scored(n, cfg);
        if (rc == QN_ECANCELED) {
            int prc = train__partial(n, o, cfg, h, &at);
            rc = prc ? prc : rc;
        }
        if (rc == QN_OK)
            rc = train__share_counts(n, sh, failed_before, solves_before);
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
