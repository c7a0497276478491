/*
 * test_adapt.c: adaptive structure: a split leaves the network's function
 * unchanged (to 1e-3 with the symmetry-breaking perturbation, 1e-7 without,
 * measured on the function in double precision: the float32 network also
 * differs by summation order, a few ulps, which is checked separately)
 * and carries the Adam moments; pruning removes exactly the lowest-scoring
 * devices and widths respect the bounds; the schedule (after_epochs,
 * patience); an adaptive run resumed from a checkpoint taken after an
 * event ends bit-identically to an uninterrupted one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapt.h"
#include "qn_err.h"
#include "train.h"

#include "qt_engine.h"

#define ROWS 32
#define N_IN 3

/* Devices used by the tests: tanh and softplus neurons, an identity readout. */
struct devs {
    struct dev_model tanhd, soft, ident;
};

static void devs_init(struct devs *d)
{
    dev_model_init(&d->tanhd, DEV_NEURON);
    d->tanhd.activation = ACT_TANH;
    qt_dev_prepare(&d->tanhd);
    dev_model_init(&d->soft, DEV_NEURON);
    d->soft.activation = ACT_SOFTPLUS;
    qt_dev_prepare(&d->soft);
    dev_model_init(&d->ident, DEV_NEURON);
    d->ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&d->ident);
}

static void devs_close(struct devs *d)
{
    dev_model_close(&d->tanhd), dev_model_close(&d->soft), dev_model_close(&d->ident);
}

/* 3 -> 8 tanh -> 6 softplus -> 2 identity, biases random too. */
static struct net *make_net(const struct devs *d, size_t w0, size_t w1, uint64_t seed)
{
    struct net_layer_spec spec[3] = {{w0, &d->tanhd, VIA_EXACT, NULL, 0, 0},
                                     {w1, &d->soft, VIA_EXACT, NULL, 0, 0},
                                     {2, &d->ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, spec, 3, ROWS, 1, seed, NULL), 0);
    for (size_t l = 0; l < 3; l++)
        for (size_t j = 0; j < n->layer[l].n_out; j++)
            n->params[n->layer[l].off_b + j] = (float)(0.3 * sin(1.1 * (double)(j + 5 * l)));
    return n;
}

static void batch(float *x)
{
    for (size_t i = 0; i < ROWS * N_IN; i++)
        x[i] = (float)sin(0.37 * (double)i + 0.2);
}

/* Largest |a - b| over n floats. */
static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* The network's outputs in double precision (dense layers of closed-form neurons),
 * into out (ROWS, n_out): the function itself, free of float32 summation order. */
static void ref_forward(const struct net *n, const float *x, double *out)
{
    double in[ROWS * 64], nx[ROWS * 64];
    for (size_t i = 0; i < ROWS * N_IN; i++)
        in[i] = x[i];
    size_t w = N_IN;
    for (size_t l = 0; l < n->n_layers; l++) {
        const struct net_layer *L = &n->layer[l];
        const float *A = n->params + L->off_w, *b = n->params + L->off_b;
        double s = n->params[L->off_s];
        for (size_t r = 0; r < ROWS; r++)
            for (size_t j = 0; j < L->n_out; j++) {
                double u = b[j];
                for (size_t i = 0; i < w; i++)
                    u += (double)A[j * w + i] * s * in[r * w + i];
                nx[r * L->n_out + j] = act_eval(L->dev->activation, u);
            }
        w = L->n_out;
        memcpy(in, nx, ROWS * w * sizeof *in);
    }
    memcpy(out, in, ROWS * w * sizeof *out);
}

/* A split-only event (grow 0.5, prune 0) with the given perturbation: the largest
 * change of the outputs over the batch, of the float network (*f) and of its
 * function in double precision (*d). */
static void split_change(double perturb, double *f, double *d)
{
    struct devs dv;
    devs_init(&dv);
    struct net *n = make_net(&dv, 8, 6, 11);
    float x[ROWS * N_IN], before[ROWS * 2];
    double ref0[ROWS * 2], ref1[ROWS * 2];
    batch(x);
    n->track = 1;
    assert_int_equal(net_forward(n, x, ROWS), 0);
    n->track = 0;
    memcpy(before, net_output(n), sizeof before);
    ref_forward(n, x, ref0);
    struct adapt_config c;
    adapt_config_default(&c);
    c.enabled = 1, c.grow = 0.5, c.prune = 0, c.perturb = perturb;
    struct adapt_state s;
    adapt_state_init(&s);
    struct adapt_event ev[NET_MAX_LAYERS];
    size_t n_ev;
    assert_int_equal(adapt_event(n, NULL, &c, 1, &s, ev, &n_ev), 0);
    assert_int_equal(n_ev, 2);
    assert_int_equal(n->layer[0].n_out, 12);
    assert_int_equal(n->layer[1].n_out, 9);
    assert_int_equal(ev[0].grown, 4);
    assert_int_equal(ev[1].grown, 3);
    assert_int_equal(ev[0].width, 12);
    assert_int_equal(n->n_params, 12 * 3 + 12 + 1 + 9 * 12 + 9 + 1 + 2 * 9 + 2 + 1);
    assert_int_equal(net_forward(n, x, ROWS), 0);
    ref_forward(n, x, ref1);
    *f = max_diff(before, net_output(n), ROWS * 2);
    *d = 0;
    for (size_t i = 0; i < ROWS * 2; i++)
        *d = fmax(*d, fabs(ref0[i] - ref1[i]));
    net_destroy(n);
    devs_close(&dv);
}

/* Without the perturbation the function is unchanged to 1e-7 (in double precision;
 * the float network differs only by summation order, a few ulps); with it, to 1e-3. */
static void test_split_preserves_function(void **state)
{
    (void)state;
    double f0, d0, f1, d1;
    split_change(0, &f0, &d0);
    split_change(1e-3, &f1, &d1);
    if (d0 > 1e-7 || f0 > 4 * FLT_EPSILON * 2)
        fail_msg("split without perturbation moved the outputs by %g (float: %g)", d0, f0);
    if (d1 > 1e-3 || f1 > 1e-3)
        fail_msg("split with perturbation moved the outputs by %g (float: %g)", d1, f1);
    assert_true(d1 > 1e-7); /* the perturbation did something */
}

/* A split copies incoming weights and moments; the two share the outgoing weights. */
static void test_split_layout_and_moments(void **state)
{
    (void)state;
    struct devs d;
    devs_init(&d);
    struct net *n = make_net(&d, 4, 3, 5);
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    for (size_t i = 0; i < n->n_params; i++)
        o.m[i] = (float)i, o.v[i] = (float)(1000 + i);
    o.t = 17;
    float *old = malloc(n->n_params * sizeof *old);
    memcpy(old, n->params, n->n_params * sizeof *old);
    struct net_layer L0 = n->layer[0], L1 = n->layer[1];
    /* scores by hand: layer 0 device 2 carries the most, device 1 the least */
    double act[4] = {1, 0.1, 5, 2};
    for (size_t j = 0; j < 4; j++)
        n->layer[0].act_sum[j] = act[j];
    n->layer[0].act_rows = 1;
    for (size_t j = 0; j < 3; j++)
        n->layer[1].act_sum[j] = 1;
    n->layer[1].act_rows = 1;
    struct adapt_config c;
    adapt_config_default(&c);
    c.enabled = 1, c.grow = 0.25, c.prune = 0.25, c.perturb = 0, c.score = ADAPT_WEIGHT;
    for (size_t o2 = 0; o2 < 3; o2++) /* equal outgoing norms, so "weight" ties... */
        for (size_t j = 0; j < 4; j++)
            n->params[L1.off_w + o2 * 4 + j] = old[L1.off_w + o2 * 4 + j] =
                (float)((j == 2 ? 3.0 : j == 1 ? 0.1 : 1.0) * (o2 == 1 ? -1 : 1));
    struct adapt_state s;
    adapt_state_init(&s);
    struct adapt_event ev[NET_MAX_LAYERS];
    size_t n_ev;
    assert_int_equal(adapt_event(n, &o, &c, 1, &s, ev, &n_ev), 0);
    /* layer 0: device 1 pruned, device 2 split: new order 0, 2, 2', 3 */
    assert_int_equal(n->layer[0].n_out, 4);
    assert_int_equal(ev[0].pruned, 1);
    assert_int_equal(ev[0].grown, 1);
    size_t src[4] = {0, 2, 2, 3};
    const struct net_layer *N0 = &n->layer[0], *N1 = &n->layer[1];
    for (size_t j = 0; j < 4; j++) {
        for (size_t i = 0; i < N_IN; i++) {
            size_t to = N0->off_w + j * N_IN + i, from = L0.off_w + src[j] * N_IN + i;
            assert_true(n->params[to] == old[from]);
            assert_true(o.m[to] == (float)from && o.v[to] == (float)(1000 + from));
        }
        assert_true(n->params[N0->off_b + j] == old[L0.off_b + src[j]]);
    }
    /* layer 1's columns follow, halved for the split pair: every old row was
     * +-(1, 0.1, 3, 1), so every new row (whatever layer 1's own event did) is
     * +-(1, 1.5, 1.5, 1) */
    float want[4] = {1, 1.5f, 1.5f, 1};
    for (size_t r = 0; r < N1->n_out; r++)
        for (size_t j = 0; j < 4; j++)
            assert_true(fabsf(n->params[N1->off_w + r * 4 + j]) == want[j]);
    assert_int_equal(o.t, 17);
    assert_int_equal(optim_state_len(&o), 2 * n->n_params);
    free(old);
    optim_close(&o);
    net_destroy(n);
    devs_close(&d);
}

/* Pruning removes exactly the lowest-scoring devices; widths respect the bounds. */
static void test_prune_lowest_and_bounds(void **state)
{
    (void)state;
    double score[10] = {5, 0.5, 9, 0.2, 7, 3, 0.9, 8, 1, 6};
    size_t src[20], width, grown, pruned;
    float share[20];
    struct adapt_config c;
    adapt_config_default(&c);
    c.grow = 0, c.prune = 0.3;
    assert_int_equal(adapt_plan(score, 10, &c, src, share, &width, &grown, &pruned), 0);
    assert_int_equal(pruned, 3);
    assert_int_equal(width, 7);
    size_t keep[7] = {0, 2, 4, 5, 7, 8, 9}; /* 0.2, 0.5, 0.9 gone */
    assert_memory_equal(src, keep, sizeof keep);
    for (size_t j = 0; j < 7; j++)
        assert_true(share[j] == 1.0f);
    /* min_devices stops pruning */
    c.min_devices = 9;
    assert_int_equal(adapt_plan(score, 10, &c, src, share, &width, &grown, &pruned), 0);
    assert_int_equal(pruned, 1);
    assert_int_equal(src[3], 4); /* only device 3 (0.2) went */
    /* max_devices stops growth; the top scorers split */
    c.min_devices = 1, c.prune = 0.1, c.grow = 0.5, c.max_devices = 11;
    assert_int_equal(adapt_plan(score, 10, &c, src, share, &width, &grown, &pruned), 0);
    assert_int_equal(pruned, 1);
    assert_int_equal(grown, 2);
    assert_int_equal(width, 11);
    size_t want[11] = {0, 1, 2, 2, 4, 5, 6, 7, 7, 8, 9}; /* 9 and 8 split */
    assert_memory_equal(src, want, sizeof want);
    assert_true(share[2] == 0.5f && share[3] == 0.5f && share[7] == 0.5f && share[0] == 1.0f);
    /* at the bounds nothing changes */
    c.min_devices = 10, c.max_devices = 10;
    assert_int_equal(adapt_plan(score, 10, &c, src, share, &width, &grown, &pruned), 0);
    assert_int_equal(width, 10);
    assert_int_equal(grown + pruned, 0);
    /* a bad configuration is refused */
    c.min_devices = 11;
    assert_int_equal(adapt_config_check(&c), QN_EINVAL);
}

/*
 * The hebbian score against an independent computation: every layer's
 * outputs in double precision from the parameters, then for device j of
 * layer l the mean over rows of |y_j| x mean_i |s x_i| (x the layer's
 * inputs, s its input scale); the batch is forwarded twice, so the sums
 * run over 2 ROWS rows. Then a run scored by it grows the top devices.
 */
static void test_hebbian(void **state)
{
    (void)state;
    struct devs d;
    devs_init(&d);
    struct net *n = make_net(&d, 8, 6, 5);
    n->params[n->layer[1].off_s] = 0.5f; /* the input scale enters the co-activity */
    float x[ROWS * N_IN];
    batch(x);
    n->track = 1;
    assert_int_equal(net_forward(n, x, ROWS), 0);
    assert_int_equal(net_forward(n, x, ROWS), 0);
    double in[ROWS * 64], nx[ROWS * 64];
    for (size_t i = 0; i < ROWS * N_IN; i++)
        in[i] = x[i];
    size_t w = N_IN;
    for (size_t l = 0; l < 2; l++) {
        const struct net_layer *L = &n->layer[l];
        const float *A = n->params + L->off_w, *b = n->params + L->off_b;
        double sc = n->params[L->off_s], want[8] = {0}, got[8];
        for (size_t r = 0; r < ROWS; r++) {
            double pre = 0;
            for (size_t i = 0; i < w; i++)
                pre += fabs(sc * in[r * w + i]) / (double)w;
            for (size_t j = 0; j < L->n_out; j++) {
                double u = b[j];
                for (size_t i = 0; i < w; i++)
                    u += (double)A[j * w + i] * sc * in[r * w + i];
                nx[r * L->n_out + j] = act_eval(L->dev->activation, u);
                want[j] += fabs(nx[r * L->n_out + j]) * pre / ROWS;
            }
        }
        adapt_scores(n, l, ADAPT_HEBBIAN, got);
        for (size_t j = 0; j < L->n_out; j++)
            if (fabs(got[j] - want[j]) > 1e-5 * fmax(1e-3, want[j]))
                fail_msg("layer %zu device %zu: hebbian %.9g, by hand %.9g", l, j, got[j], want[j]);
        w = L->n_out;
        memcpy(in, nx, ROWS * w * sizeof *in);
    }
    net_track_reset(n);
    double zero[8];
    adapt_scores(n, 0, ADAPT_HEBBIAN, zero);
    assert_true(zero[0] == 0.0 && zero[7] == 0.0);
    /* an event by hebbian score: the top half splits, the two lowest go */
    assert_int_equal(net_forward(n, x, ROWS), 0);
    double score[8];
    adapt_scores(n, 0, ADAPT_HEBBIAN, score);
    struct adapt_config c;
    adapt_config_default(&c);
    c.enabled = 1, c.grow = 0.5, c.prune = 0.25, c.perturb = 0, c.score = ADAPT_HEBBIAN;
    struct adapt_event ev[NET_MAX_LAYERS];
    size_t n_ev = 0;
    struct adapt_state as;
    adapt_state_init(&as);
    assert_int_equal(adapt_event(n, NULL, &c, 1, &as, ev, &n_ev), 0);
    assert_int_equal(ev[0].pruned, 2);
    assert_int_equal(ev[0].grown, 4);
    assert_int_equal(n->layer[0].n_out, 10);
    net_destroy(n);
    devs_close(&d);
}

/* Pruning in a network: the survivors are the top scorers, by passthrough. */
static void test_prune_in_network(void **state)
{
    (void)state;
    struct devs d;
    devs_init(&d);
    struct net *n = make_net(&d, 8, 6, 3);
    float x[ROWS * N_IN];
    batch(x);
    n->track = 1;
    assert_int_equal(net_forward(n, x, ROWS), 0);
    double score[8];
    adapt_scores(n, 0, ADAPT_PASSTHROUGH, score);
    /* passthrough = mean |y| x outgoing norm, by hand for device 5 */
    double act = n->layer[0].act_sum[5] / ROWS, ss = 0;
    for (size_t o = 0; o < 6; o++) {
        double w = n->params[n->layer[1].off_w + o * 8 + 5];
        ss += w * w;
    }
    assert_true(fabs(score[5] - act * sqrt(ss)) < 1e-12 * fmax(1, score[5]));
    size_t order[8];
    for (size_t j = 0; j < 8; j++)
        order[j] = j;
    for (size_t a = 0; a < 8; a++) /* sort ascending by score */
        for (size_t b = a + 1; b < 8; b++)
            if (score[order[b]] < score[order[a]]) {
                size_t t = order[a];
                order[a] = order[b], order[b] = t;
            }
    float *old = malloc(n->n_params * sizeof *old);
    memcpy(old, n->params, n->n_params * sizeof *old);
    size_t off_w0 = n->layer[0].off_w;
    struct adapt_config c;
    adapt_config_default(&c);
    c.enabled = 1, c.grow = 0, c.prune = 0.25, c.min_devices = 5;
    struct adapt_state s;
    adapt_state_init(&s);
    struct adapt_event ev[NET_MAX_LAYERS];
    size_t n_ev;
    assert_int_equal(adapt_event(n, NULL, &c, 1, &s, ev, &n_ev), 0);
    assert_int_equal(n->layer[0].n_out, 6);
    assert_int_equal(n->layer[1].n_out, 5); /* 6 - round(1.5) = 4 < min 5: only one goes */
    assert_int_equal(ev[1].pruned, 1);
    /* the survivors of layer 0 are exactly the devices not among the two lowest */
    size_t k = 0;
    for (size_t j = 0; j < 8; j++) {
        if (j == order[0] || j == order[1])
            continue;
        assert_memory_equal(n->params + n->layer[0].off_w + k * N_IN, old + off_w0 + j * N_IN,
                            N_IN * sizeof(float));
        k++;
    }
    assert_int_equal(k, 6);
    free(old);
    net_destroy(n);
    devs_close(&d);
}

/* The schedule: nothing before after_epochs; patience counts stale epochs; never after the last. */
static void test_schedule(void **state)
{
    (void)state;
    struct adapt_config c;
    adapt_config_default(&c);
    c.enabled = 1, c.after_epochs = 3, c.patience = 2;
    struct adapt_state s;
    adapt_state_init(&s);
    double loss[9] = {5, 4, 4.5, 4.2, 4.1, 3, 3.5, 3.6, 3.7};
    int want[9] = {0, 0, 0, 1, 0, 0, 0, 1, 0}; /* epoch 9 is the last: no event */
    for (size_t e = 0; e < 9; e++)
        if (adapt_due(&c, &s, e + 1, 9, loss[e]) != want[e])
            fail_msg("epoch %zu", e + 1);
    assert_int_equal(s.events, 2);
    c.patience = 0; /* every epoch from after_epochs on */
    adapt_state_init(&s);
    for (size_t e = 0; e < 5; e++)
        assert_int_equal(adapt_due(&c, &s, e + 1, 9, 1.0 / (double)(e + 1)), e + 1 >= 3);
}

/* A loss that falls steadily but slowly (0.2% an epoch, as a long Fashion-MNIST run
 * does) never makes a stale epoch with min_delta 0; with min_delta 1% it is a plateau:
 * events at epochs 2, 3, 4, ... with patience 1 (each event rebaselines on its own
 * epoch's loss, and the next epoch is again within 1% of it). */
static void test_min_delta(void **state)
{
    (void)state;
    struct adapt_config c;
    adapt_config_default(&c);
    c.enabled = 1, c.after_epochs = 1, c.patience = 1;
    struct adapt_state s;
    adapt_state_init(&s);
    double loss = 1.0;
    for (size_t e = 1; e <= 8; e++, loss *= 0.998)
        assert_int_equal(adapt_due(&c, &s, e, 20, loss), 0);
    c.min_delta = 0.01;
    adapt_state_init(&s);
    loss = 1.0;
    for (size_t e = 1; e <= 8; e++, loss *= 0.998)
        assert_int_equal(adapt_due(&c, &s, e, 20, loss), e >= 2);
    assert_int_equal(s.events, 7);
    /* a drop larger than the margin is an improvement: no event, and the best moves */
    adapt_state_init(&s);
    assert_int_equal(adapt_due(&c, &s, 1, 20, 1.0), 0);
    assert_int_equal(adapt_due(&c, &s, 2, 20, 0.98), 0);
    assert_true(s.best_loss == 0.98);
    assert_int_equal(adapt_due(&c, &s, 3, 20, 0.975), 1); /* 0.5% below: stale */
    c.min_delta = -0.01;
    assert_int_equal(adapt_config_check(&c), QN_EINVAL);
    c.min_delta = 1.0;
    assert_int_equal(adapt_config_check(&c), QN_EINVAL);
    c.min_delta = 0.5;
    assert_int_equal(adapt_config_check(&c), QN_OK);
}

/* What the checkpoint hook saves. */
struct saved {
    size_t at;                      /* the epoch to save at */
    int done;
    size_t widths[NET_MAX_LAYERS];
    struct qt_snap snap;
    struct adapt_state as;
    const struct adapt_state *live; /* the run's state */
    size_t structure_rows;
    double last_loss;
};

static void on_metric(const char *name, uint64_t step, size_t epoch, double v, void *ctx)
{
    (void)step, (void)epoch;
    struct saved *s = ctx;
    if (strcmp(name, "structure") == 0)
        s->structure_rows++;
    if (strcmp(name, "train_loss") == 0)
        s->last_loss = v;
}

static int on_checkpoint(const struct net *n, const struct optim *o, size_t epoch, void *ctx)
{
    struct saved *s = ctx;
    if (epoch != s->at)
        return 0;
    s->done = 1;
    for (size_t l = 0; l < n->n_layers; l++)
        s->widths[l] = n->layer[l].n_out;
    qt_snap_take(&s->snap, n, o);
    s->as = *s->live;
    return 0;
}

static void test_resume_after_event(void **state)
{
    (void)state;
    struct data_set ds, tr, te;
    assert_int_equal(data_gen_spirals(&ds, 300, 2, 0.1, 5), 0);
    assert_int_equal(data_split(&ds, 0.2, 1, &tr, &te), 0);
    struct dev_model tanhd, ident;
    dev_model_init(&tanhd, DEV_NEURON);
    tanhd.activation = ACT_TANH;
    qt_dev_prepare(&tanhd);
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&ident);
    struct net_layer_spec spec[3] = {{12, &tanhd, VIA_EXACT, NULL, 0, 0},
                                     {8, &tanhd, VIA_EXACT, NULL, 0, 0},
                                     {2, &ident, VIA_EXACT, NULL, 0, 0}};
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 6, 32, 9, 1, {0}, TRAIN_NOMINAL, 0};
    adapt_config_default(&cfg.adapt);
    cfg.adapt.enabled = 1, cfg.adapt.after_epochs = 2, cfg.adapt.patience = 0;
    cfg.adapt.grow = 0.5, cfg.adapt.prune = 0.25, cfg.adapt.max_devices = 20;
    cfg.adapt.min_devices = 4;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.01;

    /* uninterrupted, saving the checkpoint of epoch 3 (after the events of epochs 2 and 3) */
    struct net *a = NULL;
    struct optim oa;
    assert_int_equal(net_create(&a, 2, spec, 3, 32, 1, 3, NULL), 0);
    assert_int_equal(optim_init(&oa, &oc, a->n_params), 0);
    struct adapt_state asa;
    adapt_state_init(&asa);
    struct saved sv = {.at = 3, .live = &asa};
    struct train_hooks ha = {on_metric, on_checkpoint, &sv, NULL, 0, &asa, NULL, NULL};
    struct train_result ra;
    assert_int_equal(train_run(a, &oa, &tr, &te, &cfg, &ha, 0, &ra), 0);
    assert_true(sv.done);
    assert_int_equal(ra.events, 4); /* after epochs 2, 3, 4, 5 */
    assert_int_equal(sv.structure_rows, 8);
    assert_int_equal(sv.as.events, 2);
    assert_true(sv.widths[0] != 12 || sv.widths[1] != 8);
    assert_true(a->layer[0].n_out <= 20 && a->layer[1].n_out >= 4);

    /* resumed: a network of the saved widths, the saved slabs and schedule */
    struct net_layer_spec rs[3];
    memcpy(rs, spec, sizeof rs);
    for (size_t l = 0; l < 3; l++)
        rs[l].devices = sv.widths[l];
    struct net *b = NULL;
    struct optim ob;
    assert_int_equal(net_create(&b, 2, rs, 3, 32, 1, 3, NULL), 0);
    assert_int_equal(b->n_params, sv.snap.n_params);
    assert_int_equal(optim_init(&ob, &oc, b->n_params), 0);
    qt_snap_restore(&sv.snap, b, &ob);
    struct adapt_state asb = sv.as;
    struct saved sb = {.at = 0, .live = &asb};
    struct train_hooks hb = {on_metric, NULL, &sb, NULL, 0, &asb, NULL, NULL};
    struct train_result rb;
    assert_int_equal(train_run(b, &ob, &tr, &te, &cfg, &hb, 3, &rb), 0);
    assert_int_equal(b->n_params, a->n_params);
    for (size_t l = 0; l < 3; l++)
        assert_int_equal(b->layer[l].n_out, a->layer[l].n_out);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_memory_equal(oa.state, ob.state, optim_state_len(&oa) * sizeof(float));
    assert_true(sv.last_loss == sb.last_loss);
    assert_true(ra.test_accuracy == rb.test_accuracy);

    qt_snap_free(&sv.snap);
    optim_close(&oa), optim_close(&ob);
    net_destroy(a), net_destroy(b);
    dev_model_close(&tanhd), dev_model_close(&ident);
    data_close(&ds), data_close(&tr), data_close(&te);
}

/* net_remap refuses what it cannot do; a full layer never adapts. */
static void test_refusals(void **state)
{
    (void)state;
    struct devs d;
    devs_init(&d);
    struct net *n = make_net(&d, 4, 3, 1);
    size_t src[3] = {0, 1, 9};
    struct net_remap m = {{4, 3, 2}, {NULL, src, NULL}, {NULL, NULL, NULL}};
    size_t before = n->n_params;
    assert_int_equal(net_remap(n, &m, NULL), QN_EINVAL); /* index 9 */
    m.width[1] = 4, m.src[1] = NULL;
    assert_int_equal(net_remap(n, &m, NULL), QN_EINVAL); /* width change without src */
    m.width[1] = 3, m.width[2] = 3;
    assert_int_equal(net_remap(n, &m, NULL), QN_EINVAL); /* the outputs are the task's */
    assert_int_equal(n->n_params, before);
    net_destroy(n);
    struct dev_model f;
    dev_model_init(&f, DEV_NEURON);
    f.drive = DRIVE_FULL, f.fan_in = 2;
    qt_dev_prepare(&f);
    struct net_layer_spec spec[2] = {{4, &f, VIA_EXACT, NULL, 0, NET_CONNECT_TREE},
                                     {2, &d.ident, VIA_EXACT, NULL, 0, 0}};
    assert_int_equal(net_create(&n, 4, spec, 2, 4, 1, 1, NULL), 0);
    struct adapt_config c;
    adapt_config_default(&c);
    struct adapt_state s;
    adapt_state_init(&s);
    struct adapt_event ev[NET_MAX_LAYERS];
    size_t n_ev;
    assert_int_equal(adapt_event(n, NULL, &c, 1, &s, ev, &n_ev), QN_EINVAL);
    net_destroy(n);
    dev_model_close(&f);
    devs_close(&d);
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_preserves_function),
        cmocka_unit_test(test_split_layout_and_moments),
        cmocka_unit_test(test_prune_lowest_and_bounds),
        cmocka_unit_test(test_prune_in_network),
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_min_delta),
        cmocka_unit_test(test_hebbian),
        cmocka_unit_test(test_resume_after_event),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
