/*
 * test_shard.c: data-parallel training and fitting (engine/shard.h). R
 * ranks are R threads in this process, each with its own network (or
 * surrogate fit) built from the same seed, whose sum hooks add the ranks'
 * buffers in rank order behind a barrier: a real reduction, as
 * MPI_Allreduce does across processes. For R = 2 and 3, every step's loss
 * and the final parameters match the one-process run within 1e-5 relative
 * (the additions differ in order only), and every rank ends with the same
 * bits: a cross-entropy run with a test set and a short last batch; an mse
 * run with hardware-aware chips and drive and output noise, whose last batch
 * is smaller than R (some ranks get no rows); a crn_relu layer via device
 * (real ODE solves, spread over the ranks, every solve counted once) and
 * physics_aware (the ODE forward, a surrogate's slope backward); and a
 * surrogate fit with its per-step losses and validation RMSE. Two runs at
 * the same R give the same bits. shard_rows covers a batch exactly, and
 * what the ranks cannot share (adapt, es, a bad shard) is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "shard.h"
#include "surrogate.h"
#include "train.h"

#include "qt_engine.h"

#define MAX_RANKS 3
#define MAX_STEPS 512
#define REL_TOL 1e-5

/* ---- R ranks as R threads ---- */

/* The ranks' meeting point: each publishes its buffer, waits, sums every
 * rank's buffer in rank order (so every rank gets the same bits), waits
 * again (no buffer changes while another rank reads it), then keeps the sum. */
struct team {
    size_t ranks;
    pthread_barrier_t bar;
    const void *slot[MAX_RANKS];
};

struct member {
    struct team *team;
    struct shard shard;
};

static void add_f32(void *acc, const void *src, size_t n)
{
    for (size_t k = 0; k < n; k++)
        ((float *)acc)[k] += ((const float *)src)[k];
}

static void add_f64(void *acc, const void *src, size_t n)
{
    for (size_t k = 0; k < n; k++)
        ((double *)acc)[k] += ((const double *)src)[k];
}

/* Rank m's part of a sum of n values of `size` bytes, added by `add`. */
static int team_meet(struct member *m, void *buf, size_t n, size_t size,
                     void (*add)(void *, const void *, size_t))
{
    struct team *t = m->team;
    void *acc = calloc(n ? n : 1, size);
    if (!acc)
        return QN_ENOMEM;
    t->slot[m->shard.rank] = buf;
    pthread_barrier_wait(&t->bar);
    for (size_t r = 0; r < t->ranks; r++)
        add(acc, t->slot[r], n);
    pthread_barrier_wait(&t->bar);
    memcpy(buf, acc, n * size);
    free(acc);
    return QN_OK;
}

static int team_sum(float *buf, size_t n, void *ctx)
{
    return team_meet(ctx, buf, n, sizeof *buf, add_f32);
}

static int team_sum64(double *buf, size_t n, void *ctx)
{
    return team_meet(ctx, buf, n, sizeof *buf, add_f64);
}

/* What one rank's run gives. */
struct outcome {
    double loss[MAX_STEPS]; /* step_loss by step (1-based steps at index step - 1) */
    size_t steps;
    double val[MAX_STEPS]; /* val_rmse (fit) or test_loss (train) by epoch */
    size_t epochs;
    float *params; /* owned */
    size_t n_params;
    size_t solves;
    int rc;
};

static void on_metric(struct outcome *o, const char *name, uint64_t step, size_t epoch, double v)
{
    if (strcmp(name, "step_loss") == 0 && step >= 1 && step <= MAX_STEPS) {
        o->loss[step - 1] = v;
        o->steps = step > o->steps ? step : o->steps;
    }
    if ((strcmp(name, "val_rmse") == 0 || strcmp(name, "test_loss") == 0) && epoch >= 1 &&
        epoch <= MAX_STEPS) {
        o->val[epoch - 1] = v;
        o->epochs = epoch > o->epochs ? epoch : o->epochs;
    }
}

static void train_metric(const char *name, uint64_t step, size_t epoch, double v, void *ctx)
{
    on_metric(ctx, name, step, epoch, v);
}

static void fit_metric(const char *name, size_t step, size_t epoch, double v, void *ctx)
{
    on_metric(ctx, name, step, epoch, v);
}

static void outcome_close(struct outcome *o)
{
    free(o->params);
}

/* ---- the runs ---- */

/* A training scenario: the layers, the data, the config. */
struct scenario {
    struct net_layer_spec spec[2];
    size_t n_layers;
    struct data_set train, test;
    int have_test;
    struct train_config cfg;
    struct optim_config oc;
};

/* Trains the scenario once as rank sh (NULL: one process) into *out. */
static void train_once(const struct scenario *sc, const struct shard *sh, struct outcome *out)
{
    memset(out, 0, sizeof *out);
    struct net *n = NULL;
    struct optim o;
    struct train_result res;
    out->rc = net_create(&n, sc->train.d, sc->spec, sc->n_layers, sc->cfg.batch, 1, 5, NULL);
    if (out->rc)
        return;
    out->rc = optim_init(&o, &sc->oc, n->n_params);
    if (out->rc == QN_OK) {
        struct train_hooks h = {
            .metric = train_metric, .ctx = out, .step_metric_every = 1, .shard = sh};
        out->rc =
            train_run(n, &o, &sc->train, sc->have_test ? &sc->test : NULL, &sc->cfg, &h, 0, &res);
        optim_close(&o);
    }
    out->n_params = n->n_params;
    out->params = malloc(n->n_params * sizeof *out->params);
    if (out->params)
        memcpy(out->params, n->params, n->n_params * sizeof *out->params);
    out->solves = n->solves;
    net_destroy(n);
}

/* Fit data: u in [-3, 3], out = log(1 + e^u) + 0.3 sin(2u). */
struct fit_data {
    float in[300], out[300];
    size_t n;
    struct fit_config cfg;
};

static void fit_once(const struct fit_data *fd, const struct shard *sh, struct outcome *out)
{
    memset(out, 0, sizeof *out);
    struct surrogate s;
    struct fit_result res;
    struct fit_hooks h = {.metric = fit_metric, .ctx = out, .step_metric_every = 1, .shard = sh};
    out->rc = surrogate_fit(fd->in, fd->out, NULL, fd->n, 1, &fd->cfg, &h, &s, &res);
    if (out->rc)
        return;
    out->n_params = s.mlp->n_params;
    out->params = malloc(s.mlp->n_params * sizeof *out->params);
    if (out->params)
        memcpy(out->params, s.mlp->params, s.mlp->n_params * sizeof *out->params);
    surrogate_close(&s);
}

/* One thread: rank m's run. */
struct job {
    struct member m;
    const struct scenario *sc; /* a training run, or */
    const struct fit_data *fd; /* a fit */
    struct outcome out;
    pthread_t th;
};

static void *job_main(void *arg)
{
    struct job *j = arg;
    if (j->sc)
        train_once(j->sc, &j->m.shard, &j->out);
    else
        fit_once(j->fd, &j->m.shard, &j->out);
    return NULL;
}

/* Runs R ranks at once; out[r] gets rank r's outcome. */
static void run_ranks(size_t R, const struct scenario *sc, const struct fit_data *fd,
                      struct outcome *out)
{
    struct team t = {.ranks = R};
    struct job jobs[MAX_RANKS];
    assert_int_equal(pthread_barrier_init(&t.bar, NULL, (unsigned)R), 0);
    for (size_t r = 0; r < R; r++) {
        jobs[r] = (struct job){.sc = sc, .fd = fd};
        jobs[r].m = (struct member){&t, {r, R, team_sum, team_sum64, &jobs[r].m}};
        assert_int_equal(pthread_create(&jobs[r].th, NULL, job_main, &jobs[r]), 0);
    }
    for (size_t r = 0; r < R; r++) {
        pthread_join(jobs[r].th, NULL);
        out[r] = jobs[r].out;
    }
    pthread_barrier_destroy(&t.bar);
}

/* ---- comparisons ---- */

static void assert_close(double a, double b, const char *what, size_t i)
{
    if (!(fabs(a - b) <= REL_TOL * fabs(a)))
        fail_msg("%s %zu: one process %.9g, sharded %.9g (relative %.3g)", what, i, a, b,
                 fabs(a - b) / fabs(a));
}

/* Per-step losses, per-epoch scores and parameters of a sharded run against the
 * one-process run: within REL_TOL (parameters: relative to the largest). */
static void assert_matches(const struct outcome *one, const struct outcome *sh)
{
    assert_int_equal(one->rc, QN_OK);
    assert_int_equal(sh->rc, QN_OK);
    assert_true(one->steps > 0);
    assert_int_equal(sh->steps, one->steps);
    assert_int_equal(sh->epochs, one->epochs);
    for (size_t i = 0; i < one->steps; i++)
        assert_close(one->loss[i], sh->loss[i], "step", i + 1);
    for (size_t i = 0; i < one->epochs; i++)
        assert_close(one->val[i], sh->val[i], "epoch score", i + 1);
    assert_int_equal(sh->n_params, one->n_params);
    double big = 0, diff = 0;
    for (size_t k = 0; k < one->n_params; k++) {
        big = fmax(big, fabs(one->params[k]));
        diff = fmax(diff, fabs((double)one->params[k] - (double)sh->params[k]));
    }
    if (!(diff <= REL_TOL * big))
        fail_msg("parameters: largest difference %.3g of largest value %.3g", diff, big);
}

/* Every rank's parameters are rank 0's, bit for bit, and so are its losses. */
static void assert_ranks_agree(const struct outcome *out, size_t R)
{
    for (size_t r = 1; r < R; r++) {
        assert_int_equal(out[r].rc, QN_OK);
        assert_memory_equal(out[r].params, out[0].params, out[0].n_params * sizeof(float));
        assert_memory_equal(out[r].loss, out[0].loss, sizeof out[0].loss);
        assert_memory_equal(out[r].val, out[0].val, sizeof out[0].val);
    }
}

/* The scenario one process and sharded over 2 and 3 ranks (twice at 3: the same bits). */
static void check_scenario(const struct scenario *sc, const struct fit_data *fd)
{
    struct outcome one, two[MAX_RANKS], three[MAX_RANKS], again[MAX_RANKS];
    if (sc)
        train_once(sc, NULL, &one);
    else
        fit_once(fd, NULL, &one);
    run_ranks(2, sc, fd, two);
    run_ranks(3, sc, fd, three);
    run_ranks(3, sc, fd, again);
    assert_matches(&one, &two[0]);
    assert_matches(&one, &three[0]);
    assert_ranks_agree(two, 2);
    assert_ranks_agree(three, 3);
    assert_memory_equal(again[0].params, three[0].params, one.n_params * sizeof(float));
    assert_memory_equal(again[0].loss, three[0].loss, sizeof one.loss);
    if (sc) /* every device solve of a step is one rank's: the counts add up */
        assert_int_equal(two[0].solves, one.solves);
    outcome_close(&one);
    for (size_t r = 0; r < 3; r++) {
        if (r < 2)
            outcome_close(&two[r]);
        outcome_close(&three[r]), outcome_close(&again[r]);
    }
}

static void scenario_close(struct scenario *sc)
{
    data_close(&sc->train);
    if (sc->have_test)
        data_close(&sc->test);
}

/* Cross entropy on 150 spiral points (batches of 32: the last has 22 rows), a test set. */
static void test_train_xent(void **state)
{
    (void)state;
    struct dev_model th, id;
    qt_neuron(&th, ACT_TANH), qt_neuron(&id, ACT_IDENTITY);
    struct scenario sc = {.n_layers = 2, .have_test = 1};
    sc.spec[0] = (struct net_layer_spec){8, &th, VIA_EXACT, NULL, 0, 0};
    sc.spec[1] = (struct net_layer_spec){2, &id, VIA_EXACT, NULL, 0, 0};
    assert_int_equal(data_gen_spirals(&sc.train, 150, 2, 0.1, 3), 0);
    assert_int_equal(data_gen_spirals(&sc.test, 70, 2, 0.1, 4), 0);
    sc.cfg = (struct train_config){.loss = LOSS_CROSS_ENTROPY, .epochs = 3, .batch = 32, .seed = 9};
    optim_config_default(&sc.oc, OPTIM_ADAM);
    sc.oc.lr = 0.02;
    check_scenario(&sc, NULL);
    scenario_close(&sc);
    dev_model_close(&th), dev_model_close(&id);
}

/* mse on 61 rows in batches of 10 (the last has 1 row: two of three ranks get none),
 * hardware-aware with drive and output noise keyed by each row's place in its batch. */
static void test_train_noise(void **state)
{
    (void)state;
    struct dev_model th, id;
    qt_neuron(&th, ACT_TANH), qt_neuron(&id, ACT_IDENTITY);
    th.noise.drive_sd = 0.1, th.noise.output_sd = 0.05;
    struct scenario sc = {.n_layers = 2};
    sc.spec[0] = (struct net_layer_spec){6, &th, VIA_EXACT, NULL, 0, 0};
    sc.spec[1] = (struct net_layer_spec){1, &id, VIA_EXACT, NULL, 0, 0};
    assert_int_equal(data_gen_spirals(&sc.train, 61, 2, 0.1, 5), 0);
    sc.cfg = (struct train_config){
        .loss = LOSS_MSE, .epochs = 2, .batch = 10, .seed = 2, .chip_mode = TRAIN_HARDWARE_AWARE};
    optim_config_default(&sc.oc, OPTIM_SGD);
    sc.oc.lr = 0.05;
    check_scenario(&sc, NULL);
    scenario_close(&sc);
    dev_model_close(&th), dev_model_close(&id);
}

/* A layer of crn_relu devices via device: the real ODE in the loop, its solves
 * spread over the ranks. */
static void test_train_device(void **state)
{
    (void)state;
    struct dev_model crn, id;
    struct dev_error err;
    dev_model_init(&crn, DEV_CRN_RELU);
    if (dev_model_prepare(&crn, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
    qt_neuron(&id, ACT_IDENTITY);
    struct scenario sc = {.n_layers = 2};
    sc.spec[0] = (struct net_layer_spec){3, &crn, VIA_DEVICE, NULL, 0, 0};
    sc.spec[1] = (struct net_layer_spec){1, &id, VIA_EXACT, NULL, 0, 0};
    assert_int_equal(data_gen_spirals(&sc.train, 20, 2, 0.1, 6), 0);
    sc.cfg = (struct train_config){.loss = LOSS_MSE, .epochs = 1, .batch = 8, .seed = 3};
    optim_config_default(&sc.oc, OPTIM_ADAM);
    sc.oc.lr = 0.01;
    check_scenario(&sc, NULL);
    scenario_close(&sc);
    dev_model_close(&crn), dev_model_close(&id);
}

/* physics_aware: the real ODE forward on each rank's rows, the backward through a
 * surrogate of the device's fixed point (fitted here on its closed form). */
static void test_train_physics_aware(void **state)
{
    (void)state;
    struct dev_model crn, id;
    struct dev_error err;
    dev_model_init(&crn, DEV_CRN_RELU);
    assert_int_equal(dev_model_set_param(&crn, "kappa", 0.01), 0);
    if (dev_model_prepare(&crn, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
    qt_neuron(&id, ACT_IDENTITY);
    float u[200], y[200];
    for (size_t i = 0; i < 200; i++) {
        double z = -4.0 + 8.0 * (double)i / 199.0;
        u[i] = (float)z, y[i] = (float)((z + sqrt(z * z + 0.04)) / 2);
    }
    struct fit_config fc;
    fit_config_default(&fc);
    fc.n_hidden = 1, fc.hidden[0] = 8, fc.epochs = 20;
    struct surrogate sur;
    struct fit_result fr;
    assert_int_equal(surrogate_fit(u, y, NULL, 200, 1, &fc, NULL, &sur, &fr), 0);
    struct scenario sc = {.n_layers = 2};
    sc.spec[0] = (struct net_layer_spec){3, &crn, VIA_PHYSICS_AWARE, &sur, 0, 0};
    sc.spec[1] = (struct net_layer_spec){1, &id, VIA_EXACT, NULL, 0, 0};
    assert_int_equal(data_gen_spirals(&sc.train, 20, 2, 0.1, 7), 0);
    sc.cfg = (struct train_config){.loss = LOSS_MSE, .epochs = 1, .batch = 8, .seed = 4};
    optim_config_default(&sc.oc, OPTIM_ADAM);
    sc.oc.lr = 0.01;
    check_scenario(&sc, NULL);
    scenario_close(&sc);
    surrogate_close(&sur);
    dev_model_close(&crn), dev_model_close(&id);
}

/* A surrogate fit: 300 rows, 30 held out, batches of 64 (the last of 14 rows). */
static void test_fit(void **state)
{
    (void)state;
    struct fit_data *fd = calloc(1, sizeof *fd);
    assert_non_null(fd);
    fd->n = 300;
    for (size_t i = 0; i < fd->n; i++) {
        double u = -3.0 + 6.0 * (double)i / (double)(fd->n - 1);
        fd->in[i] = (float)u;
        fd->out[i] = (float)(log1p(exp(u)) + 0.3 * sin(2 * u));
    }
    fit_config_default(&fd->cfg);
    fd->cfg.n_hidden = 1, fd->cfg.hidden[0] = 8;
    fd->cfg.epochs = 4, fd->cfg.batch = 64;
    check_scenario(NULL, fd);
    free(fd);
}

/* The ranks' slices of a batch are contiguous, in rank order, and cover it. */
static void test_rows(void **state)
{
    (void)state;
    for (size_t R = 1; R <= 5; R++)
        for (size_t B = 0; B <= 40; B++) {
            size_t next = 0;
            for (size_t r = 0; r < R; r++) {
                struct shard s = {r, R, team_sum, team_sum64, NULL};
                size_t off, len;
                shard_rows(&s, B, &off, &len);
                assert_int_equal(off, next);
                assert_true(len <= B / R + 1);
                next = off + len;
            }
            assert_int_equal(next, B);
        }
}

/* What the ranks cannot share is refused before any step: adapt, es, and a
 * shard that is not one (rank out of range, no sum hook). */
static void test_refused(void **state)
{
    (void)state;
    struct dev_model th, id;
    qt_neuron(&th, ACT_TANH), qt_neuron(&id, ACT_IDENTITY);
    struct net_layer_spec spec[2] = {{4, &th, VIA_EXACT, NULL, 0, 0},
                                     {2, &id, VIA_EXACT, NULL, 0, 0}};
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 40, 2, 0.1, 3), 0);
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 8, 1, 1, NULL), 0);
    struct optim_config adam, es;
    optim_config_default(&adam, OPTIM_ADAM);
    optim_config_default(&es, OPTIM_ES);
    struct optim o;
    struct train_result res;
    struct shard two = {0, 2, team_sum, team_sum64, NULL}, bad = {2, 2, team_sum, team_sum64, NULL},
                 nohook = {0, 2, NULL, NULL, NULL};
    struct train_config cfg = {.loss = LOSS_CROSS_ENTROPY, .epochs = 1, .batch = 8, .seed = 1};
    struct train_hooks h = {.shard = &two};
    assert_int_equal(optim_init(&o, &es, n->n_params), 0);
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, &h, 0, &res), QN_EINVAL);
    optim_close(&o);
    assert_int_equal(optim_init(&o, &adam, n->n_params), 0);
    adapt_config_default(&cfg.adapt);
    cfg.adapt.enabled = 1;
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, &h, 0, &res), QN_EINVAL);
    cfg.adapt.enabled = 0;
    h.shard = &bad;
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, &h, 0, &res), QN_EINVAL);
    h.shard = &nohook;
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, &h, 0, &res), QN_EINVAL);
    optim_close(&o);
    net_destroy(n);
    float in[4] = {0, 1, 2, 3}, out[4] = {0, 1, 4, 9};
    struct fit_config fc;
    fit_config_default(&fc);
    struct fit_hooks fh = {.shard = &bad};
    struct surrogate s;
    struct fit_result fr;
    assert_int_equal(surrogate_fit(in, out, NULL, 4, 1, &fc, &fh, &s, &fr), QN_EINVAL);
    data_close(&ds);
    dev_model_close(&th), dev_model_close(&id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_train_xent),
        cmocka_unit_test(test_train_noise),
        cmocka_unit_test(test_train_device),
        cmocka_unit_test(test_train_physics_aware),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
