/*
 * test_net_chip.c: device populations in a network (issue 12). A device
 * instance of a chip answers exactly as the device prepared alone with that
 * instance's drawn parameters, with 1 or 2 threads, via device and in
 * physics_aware's forward; gradients through a layer with per-instance
 * parameters match central finite differences of an independent float64
 * forward (each instance its own prepared model); cycle-to-cycle noise is
 * the documented counter-keyed draw, reproducible from its seed; and
 * dev_work_set_params reaches every way a kind reads its parameters (ode
 * expressions, reaction rates, crn_relu's and hodgkin_huxley's built-in slots).
 * A layer through a surrogate conditioned on kappa feeds each instance its
 * chip's kappa (the nominal kappa with no chip set): its outputs are the
 * surrogate's at (u, kappa_j), and its gradients match central differences
 * of a float64 forward of that surrogate; a surrogate conditioned on a
 * parameter the device lacks is refused. Hardware-aware training (a fresh
 * chip and noise every step) is, bit for bit, nominal training steps each
 * run on the documented chip and noise of its step (train_step_chip,
 * train_step_noise), whatever the thread count; training one chip is
 * nominal training of the network set to that chip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip.h"
#include "net.h"
#include "nn.h"
#include "qn_err.h"
#include "data.h"
#include "optim.h"
#include "train.h"

#include "qt_engine.h"

#define B_ROWS 4
#define N_IN 3

/* crn_relu with kappa 0.05 spread lognormal cv 0.3 (prepared). */
static void crn_chip(struct dev_model *d)
{
    dev_model_init(d, DEV_CRN_RELU);
    assert_int_equal(dev_model_set_param(d, "kappa", 0.05), 0);
    for (size_t i = 0; i < d->n_params; i++)
        if (strcmp(d->param_names[i], "kappa") == 0)
            d->vary[i] = (struct dev_spread){DEV_DIST_LOGNORMAL, 0.3};
    qt_dev_prepare(d);
}

/* The same device prepared alone with the parameters theta (no variability). */
static void crn_alone(const struct dev_model *chip, const double *theta, struct dev_model *d)
{
    dev_model_init(d, DEV_CRN_RELU);
    for (size_t i = 0; i < chip->n_params; i++)
        assert_int_equal(dev_model_set_param(d, chip->param_names[i], theta[i]), 0);
    qt_dev_prepare(d);
}

static void inputs(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)sin(1.7 * (double)i + 0.3);
}

/* A small random surrogate MLP (1 -> 6 tanh -> 1), for physics_aware's backward. */
static void make_surrogate(struct surrogate *s)
{
    memset(s, 0, sizeof *s);
    size_t sizes[3] = {1, 6, 1};
    enum act_kind act[2] = {ACT_TANH, ACT_IDENTITY};
    assert_int_equal(mlp_create(&s->mlp, 2, sizes, act), 0);
    assert_int_equal(mlp_init_params(s->mlp, 3), 0);
    s->n_in = 1;
    s->in_mean[0] = 0.0f, s->in_std[0] = 1.0f;
    s->out_mean = 0.3f, s->out_std = 1.0f;
}

/* One layer of 3 instances of chip 7 via `via` with `threads` threads: every
 * instance's theta is chip_draw's, and its output is the device alone at that
 * theta, bit for bit (as float). The outputs go to y (B_ROWS * 3). */
static void instance_case(enum net_via via, const struct surrogate *sur, size_t threads,
                          float *y)
{
    struct dev_model crn;
    crn_chip(&crn);
    struct net_layer_spec spec = {3, &crn, via, sur, 0, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, threads, 5, NULL), 0);
    assert_true(net_has_variability(n));
    float x[B_ROWS * N_IN];
    inputs(x, B_ROWS * N_IN);
    net_set_chip(n, 7);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    const struct net_layer *L = &n->layer[0];
    size_t np = crn.n_params;
    for (size_t j = 0; j < 3; j++) {
        double theta[DEV_MAX_PARAMS];
        chip_draw(&crn, 7, 0, j, theta);
        assert_memory_equal(theta, L->theta + j * np, np * sizeof *theta);
        struct dev_model alone;
        crn_alone(&crn, theta, &alone);
        struct dev_work w;
        assert_int_equal(dev_work_init(&w, &alone, NULL), 0);
        for (size_t b = 0; b < B_ROWS; b++) {
            double u = L->u[b * 3 + j], out;
            assert_int_equal(dev_eval(&w, &u, &out), 0);
            assert_true(L->y[b * 3 + j] == (float)out);
        }
        dev_work_close(&w);
        dev_model_close(&alone);
    }
    memcpy(y, L->y, B_ROWS * 3 * sizeof *y);
    /* the chip matters: the nominal network answers otherwise */
    net_set_nominal(n);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    size_t differ = 0;
    for (size_t e = 0; e < B_ROWS * 3; e++)
        differ += L->y[e] != y[e];
    assert_true(differ > 0);
    net_destroy(n);
    dev_model_close(&crn);
}

static void test_instance_is_device_alone(void **state)
{
    (void)state;
    float y1[B_ROWS * 3], y2[B_ROWS * 3], yp[B_ROWS * 3];
    instance_case(VIA_DEVICE, NULL, 1, y1);
    instance_case(VIA_DEVICE, NULL, 2, y2);
    assert_memory_equal(y1, y2, sizeof y1); /* whatever the thread count */
    struct surrogate s;
    make_surrogate(&s);
    instance_case(VIA_PHYSICS_AWARE, &s, 2, yp);
    assert_memory_equal(y1, yp, sizeof y1); /* physics_aware's forward is the chip's device */
    surrogate_close(&s);
}

/* Inputs x[B_ROWS * N_IN] and targets target[B_ROWS * 2] for a gradient
 * check: forward, mean squared error and net_backward into n->grads (zeroed
 * first). Returns n's parameters as doubles (malloc'd, to perturb). */
static double *mse_backward(struct net *n, float *x, float *target)
{
    float dout[B_ROWS * 2];
    inputs(x, B_ROWS * N_IN);
    for (size_t i = 0; i < B_ROWS * 2; i++)
        target[i] = (float)cos(0.9 * (double)i);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    nn_mse_loss(dout, net_output(n), target, B_ROWS, 2);
    memset(n->grads, 0, n->n_params * sizeof *n->grads);
    net_backward(n, x, dout, B_ROWS);
    double *p = malloc(n->n_params * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n->n_params; i++)
        p[i] = n->params[i];
    return p;
}

/* Float64 loss of layer 0 (crn instances, each its own model at theta) and
 * layer 1 (identity neurons) with parameters p, MSE against target. */
static double ref_loss(const struct net *n, struct dev_model *alone, const double *p,
                       const float *x, const float *target)
{
    const struct net_layer *L0 = &n->layer[0], *L1 = &n->layer[1];
    double h[B_ROWS * 4], loss = 0;
    for (size_t j = 0; j < L0->n_out; j++) {
        struct dev_work w;
        assert_int_equal(dev_work_init(&w, &alone[j], NULL), 0);
        for (size_t b = 0; b < B_ROWS; b++) {
            double u = p[L0->off_b + j];
            for (size_t i = 0; i < N_IN; i++)
                u += p[L0->off_w + j * N_IN + i] * p[L0->off_s] * x[b * N_IN + i];
            assert_int_equal(dev_eval(&w, &u, &h[b * 4 + j]), 0);
        }
        dev_work_close(&w);
    }
    for (size_t b = 0; b < B_ROWS; b++) {
        for (size_t j = 0; j < L1->n_out; j++) {
            double y = p[L1->off_b + j];
            for (size_t i = 0; i < 4; i++)
                y += p[L1->off_w + j * 4 + i] * p[L1->off_s] * h[b * 4 + i];
            double d = y - target[b * 2 + j];
            loss += d * d;
        }
    }
    return loss / (B_ROWS * 2);
}

/* net_backward through a chip's layer (4 crn instances, each its own kappa)
 * against central differences (h 1e-5) of ref_loss: relative error < 1e-4. */
static void test_grad_per_instance(void **state)
{
    (void)state;
    struct dev_model crn, ident, alone[4];
    crn_chip(&crn);
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&ident);
    struct net_layer_spec spec[2] = {{4, &crn, VIA_DEVICE, NULL, 0, 0},
                                     {2, &ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, spec, 2, 8, 2, 7, NULL), 0);
    net_set_chip(n, 11);
    for (size_t j = 0; j < 4; j++)
        crn_alone(&crn, n->layer[0].theta + j * crn.n_params, &alone[j]);
    float x[B_ROWS * N_IN], target[B_ROWS * 2];
    double *p = mse_backward(n, x, target);
    size_t checked = 0;
    for (size_t i = 0; i < n->n_params; i++) {
        if (i == n->layer[0].off_s || i == n->layer[1].off_s)
            continue; /* fixed input scales */
        double v = p[i], h = 1e-5;
        p[i] = v + h;
        double lp = ref_loss(n, alone, p, x, target);
        p[i] = v - h;
        double lm = ref_loss(n, alone, p, x, target);
        p[i] = v;
        double fd = (lp - lm) / (2 * h), an = n->grads[i];
        double rel = fabs(fd - an) / fmax(1e-3, fabs(fd) + fabs(an));
        if (rel > 1e-4)
            fail_msg("param %zu: analytic %.9g vs fd %.9g (rel %.2g)", i, an, fd, rel);
        checked++;
    }
    assert_true(checked == n->n_params - 2);
    free(p);
    for (size_t j = 0; j < 4; j++)
        dev_model_close(&alone[j]);
    net_destroy(n);
    dev_model_close(&ident);
    dev_model_close(&crn);
}

/* Identity neurons with drive noise 0.2 and output noise 0.1: forward pass k
 * adds exactly 0.2 zd + 0.1 zo (the documented keys) to the noiseless output;
 * the next pass draws anew; the same seed replays the same noise; dy/du is 1. */
static void test_noise(void **state)
{
    (void)state;
    struct dev_model id;
    dev_model_init(&id, DEV_NEURON);
    id.activation = ACT_IDENTITY;
    id.noise = (struct dev_noise){0.1, 0.2};
    qt_dev_prepare(&id);
    assert_true(dev_has_noise(&id));
    struct net_layer_spec spec = {3, &id, VIA_EXACT, NULL, 0, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, 1, 2, NULL), 0);
    assert_false(net_has_variability(n));
    float x[B_ROWS * N_IN], y0[B_ROWS * 3], y1[B_ROWS * 3];
    inputs(x, B_ROWS * N_IN);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    memcpy(y0, net_output(n), sizeof y0);
    net_set_noise(n, 1, 5);
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(net_forward(n, x, B_ROWS), 0);
        for (size_t e = 0; e < B_ROWS * 3; e++) {
            double zd = chip_normal(CHIP_TAG_NOISE_DRIVE, 5, k, 0, e);
            double zo = chip_normal(CHIP_TAG_NOISE_OUTPUT, 5, k, 0, e);
            double want = y0[e] + 0.2 * zd + 0.1 * zo;
            assert_true(fabs(net_output(n)[e] - want) < 1e-5);
            assert_true(n->layer[0].g[e] == 1.0f);
        }
        if (k == 0)
            memcpy(y1, net_output(n), sizeof y1);
    }
    assert_memory_not_equal(y1, net_output(n), sizeof y1); /* a fresh draw per pass */
    net_set_noise(n, 1, 5);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    assert_memory_equal(y1, net_output(n), sizeof y1); /* reproducible from the seed */
    net_set_noise(n, 0, 0);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    assert_memory_equal(y0, net_output(n), sizeof y0); /* off: the nominal outputs */
    net_destroy(n);
    dev_model_close(&id);
}

/* A prepared device of `kind` with parameter `name` = value (ode and reactions:
 * the crn_relu system written out, its rate constant named k). */
static void kind_with(struct dev_model *d, enum dev_kind kind, const char *name, double value)
{
    dev_model_init(d, kind);
    if (kind == DEV_ODE) {
        d->n_states = 1;
        strcpy(d->state_names[0], "y");
        d->rhs_src[0] = strdup("k + u1*y - y^2");
        assert_non_null(d->rhs_src[0]);
    } else if (kind == DEV_REACTIONS) {
        d->n_states = 1;
        strcpy(d->state_names[0], "Y");
        d->y0[0] = 0.5;
        const char *rx[] = {"0 -> Y @ k", "2 Y -> Y @ 1", "Y -> 2 Y @ pos(u1)",
                            "Y -> 0 @ neg(u1)"};
        for (size_t i = 0; i < 4; i++)
            assert_non_null(d->reaction_src[i] = strdup(rx[i]));
        d->n_reactions = 4;
    }
    assert_int_equal(dev_model_set_param(d, name, value), 0);
    if (kind == DEV_ODE || kind == DEV_REACTIONS)
        assert_non_null(d->output_src = strdup(d->state_names[0]));
    qt_dev_prepare(d);
}

/* dev_work_set_params for every way a kind reads its parameters (expressions,
 * reaction rates, built-in slots): the work answers as the model prepared
 * with those values; NULL returns to the model's own. */
static void test_set_params_every_kind(void **state)
{
    (void)state;
    const struct {
        enum dev_kind kind;
        const char *name;
        double nominal, other, u;
    } cases[] = {{DEV_ODE, "k", 0.01, 0.2, 0.5},
                 {DEV_REACTIONS, "k", 0.01, 0.2, -0.5},
                 {DEV_CRN_RELU, "kappa", 0.01, 0.05, 0.3},
                 {DEV_HODGKIN_HUXLEY, "gk", 36.0, 30.0, 10.0}};
    for (size_t c = 0; c < 4; c++) {
        struct dev_model nom, alone;
        kind_with(&nom, cases[c].kind, cases[c].name, cases[c].nominal);
        kind_with(&alone, cases[c].kind, cases[c].name, cases[c].other);
        double theta[DEV_MAX_PARAMS];
        memcpy(theta, nom.params, nom.n_params * sizeof *theta);
        for (size_t i = 0; i < nom.n_params; i++)
            if (strcmp(nom.param_names[i], cases[c].name) == 0)
                theta[i] = cases[c].other;
        struct dev_work w, wa;
        assert_int_equal(dev_work_init(&w, &nom, NULL), 0);
        assert_int_equal(dev_work_init(&wa, &alone, NULL), 0);
        double u = cases[c].u, y_nom, y_set, y_alone, y_back;
        assert_int_equal(dev_eval(&w, &u, &y_nom), 0);
        assert_int_equal(dev_work_set_params(&w, theta), 0);
        assert_int_equal(dev_eval(&w, &u, &y_set), 0);
        assert_int_equal(dev_eval(&wa, &u, &y_alone), 0);
        assert_int_equal(dev_work_set_params(&w, NULL), 0);
        assert_int_equal(dev_eval(&w, &u, &y_back), 0);
        if (y_set != y_alone || y_back != y_nom || y_set == y_nom)
            fail_msg("%s: nominal %.17g, set %.17g, alone %.17g, back %.17g",
                     dev_kind_name(cases[c].kind), y_nom, y_set, y_alone, y_back);
        dev_work_close(&w);
        dev_work_close(&wa);
        dev_model_close(&nom);
        dev_model_close(&alone);
    }
}

/* A chip survives net_remap: the remapped network still evaluates the chip. */
static void test_remap_keeps_chip(void **state)
{
    (void)state;
    struct dev_model crn;
    crn_chip(&crn);
    struct net_layer_spec spec = {3, &crn, VIA_DEVICE, NULL, 1, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, 1, 5, NULL), 0);
    net_set_chip(n, 9);
    struct net_remap m = {{3}, {NULL}, {NULL}};
    assert_int_equal(net_remap(n, &m, NULL), 0);
    assert_true(n->chip_on && n->chip_seed == 9);
    double theta[DEV_MAX_PARAMS];
    chip_draw(&crn, 9, 0, 2, theta);
    assert_memory_equal(theta, n->layer[0].theta + 2 * crn.n_params,
                        crn.n_params * sizeof *theta);
    net_destroy(n);
    dev_model_close(&crn);
}

/* ---- parameter-conditioned surrogates ---- */

/* A small random surrogate f(u1; kappa) (2 -> 6 tanh -> 1) conditioned on kappa,
 * its inputs standardised around kappa 0.05, with a domain wide enough that no
 * drive or drawn kappa is clamped (u1 in [-20, 20], kappa in [0.005, 0.3]).
 * table: keep the 2-D table surrogate_set_cond builds, else answer by the MLP. */
static void make_cond_surrogate(struct surrogate *s, const char *param, int table)
{
    memset(s, 0, sizeof *s);
    size_t sizes[3] = {2, 6, 1};
    enum act_kind act[2] = {ACT_TANH, ACT_IDENTITY};
    assert_int_equal(mlp_create(&s->mlp, 2, sizes, act), 0);
    assert_int_equal(mlp_init_params(s->mlp, 9), 0);
    s->n_in = 2;
    s->in_mean[0] = 0.0f, s->in_std[0] = 1.0f;
    s->in_mean[1] = 0.05f, s->in_std[1] = 0.1f;
    s->out_mean = 0.3f, s->out_std = 1.5f;
    s->has_domain = 1;
    s->dom_lo[0] = -20.0f, s->dom_hi[0] = 20.0f;
    s->dom_lo[1] = 0.005f, s->dom_hi[1] = 0.3f;
    const char *names[] = {param};
    assert_int_equal(surrogate_set_cond(s, 1, names), 0);
    assert_non_null(s->table);
    if (!table) {
        free(s->table);
        s->table = NULL, s->table_n = s->table_m = 0;
    }
}

/* Float64 forward of surrogate s at (u, kappa), from its float parameters. */
static double cond_forward64(const struct surrogate *s, double u, double kappa)
{
    const struct mlp *m = s->mlp;
    double a[8] = {(u - s->in_mean[0]) / s->in_std[0], (kappa - s->in_mean[1]) / s->in_std[1]};
    double z[8];
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t IC = m->sizes[l], OC = m->sizes[l + 1];
        struct mlp_layer_view v = mlp_layer_view(m, m->params, l);
        for (size_t o = 0; o < OC; o++) {
            z[o] = v.b[o];
            for (size_t i = 0; i < IC; i++)
                z[o] += (double)v.w[o * IC + i] * a[i];
        }
        for (size_t o = 0; o < OC; o++)
            a[o] = act_eval(m->act[l], z[o]);
    }
    return a[0] * s->out_std + s->out_mean;
}

/* Layer outputs against cond_forward64 at each instance's kappa (kappa[j]), to 1e-5
 * relative (float32 evaluation). */
static void expect_cond_outputs(const struct surrogate *s, const struct net_layer *L,
                                const double *kappa)
{
    for (size_t b = 0; b < B_ROWS; b++)
        for (size_t j = 0; j < L->n_out; j++) {
            size_t e = b * L->n_out + j;
            double want = cond_forward64(s, L->u[e], kappa[j]);
            if (fabs(L->y[e] - want) > 1e-5 * fmax(1.0, fabs(want)))
                fail_msg("row %zu device %zu: %.9g vs %.9g at kappa %g", b, j, L->y[e], want,
                         kappa[j]);
        }
}

/* Via surrogate and physics_aware's slopes: each instance answers at its chip's kappa,
 * and at the nominal kappa with no chip; through the MLP (table 0) or the 2-D table
 * (table 1: values within 1e-5, slopes within slope_tol of the MLP's). */
static void conditioned_instances(int table, double slope_tol)
{
    struct dev_model crn;
    crn_chip(&crn);
    struct surrogate s, bad;
    make_cond_surrogate(&s, "kappa", table);
    struct net_layer_spec spec = {3, &crn, VIA_SURROGATE, &s, 0, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, 1, 5, NULL), 0);
    float x[B_ROWS * N_IN], y_chip[B_ROWS * 3];
    inputs(x, B_ROWS * N_IN);
    const struct net_layer *L = &n->layer[0];
    double kappa[3], theta[DEV_MAX_PARAMS];
    size_t k = 0;
    while (strcmp(crn.param_names[k], "kappa") != 0)
        k++;
    net_set_chip(n, 7);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    for (size_t j = 0; j < 3; j++) {
        chip_draw(&crn, 7, 0, j, theta);
        kappa[j] = (float)theta[k];
    }
    assert_true(kappa[0] != kappa[1] && kappa[1] != kappa[2]);
    expect_cond_outputs(&s, L, kappa);
    memcpy(y_chip, L->y, sizeof y_chip);
    net_set_nominal(n);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    double nominal[3] = {0.05, 0.05, 0.05};
    expect_cond_outputs(&s, L, nominal);
    size_t differ = 0;
    for (size_t e = 0; e < B_ROWS * 3; e++)
        differ += L->y[e] != y_chip[e];
    assert_true(differ > 0);
    /* physics_aware: the chip's device forward, the slope of the surrogate at the
     * instance's kappa (central difference of the float64 forward, 1e-3 relative) */
    assert_int_equal(net_set_via(n, 0, VIA_PHYSICS_AWARE, &s), 0);
    net_set_chip(n, 7);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    for (size_t e = 0; e < B_ROWS * 3; e++) {
        double u = L->u[e], h = 1e-4, kj = kappa[e % 3];
        double fd = (cond_forward64(&s, u + h, kj) - cond_forward64(&s, u - h, kj)) / (2 * h);
        if (fabs(L->g[e] - fd) > slope_tol * fmax(1.0, fabs(fd)))
            fail_msg("element %zu: slope %.7g vs %.7g", e, L->g[e], fd);
    }
    net_destroy(n);
    /* a surrogate conditioned on a parameter the device lacks is refused */
    make_cond_surrogate(&bad, "gain", table);
    spec.sur = &bad;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, 1, 5, NULL), QN_EINVAL);
    surrogate_close(&bad);
    surrogate_close(&s);
    dev_model_close(&crn);
}

/* Float64 loss of a conditioned-surrogate layer (kappa[j] per device) and an
 * identity readout with parameters p, MSE against target. */
static double cond_ref_loss(const struct net *n, const struct surrogate *s, const double *kappa,
                            const double *p, const float *x, const float *target)
{
    const struct net_layer *L0 = &n->layer[0], *L1 = &n->layer[1];
    double h[B_ROWS * 4], loss = 0;
    for (size_t b = 0; b < B_ROWS; b++)
        for (size_t j = 0; j < 4; j++) {
            double u = p[L0->off_b + j];
            for (size_t i = 0; i < N_IN; i++)
                u += p[L0->off_w + j * N_IN + i] * p[L0->off_s] * x[b * N_IN + i];
            h[b * 4 + j] = cond_forward64(s, u, kappa[j]);
        }
    for (size_t b = 0; b < B_ROWS; b++)
        for (size_t j = 0; j < 2; j++) {
            double y = p[L1->off_b + j];
            for (size_t i = 0; i < 4; i++)
                y += p[L1->off_w + j * 4 + i] * p[L1->off_s] * h[b * 4 + i];
            loss += (y - target[b * 2 + j]) * (y - target[b * 2 + j]);
        }
    return loss / (B_ROWS * 2);
}

static void test_conditioned_instances(void **state)
{
    (void)state;
    conditioned_instances(0, 1e-4);
    conditioned_instances(1, 1e-3);
}

/* net_backward through a conditioned-surrogate layer on chip 11 against central
 * differences (h 1e-5) of cond_ref_loss (the float64 MLP): through the MLP (table 0)
 * or the 2-D table (table 1, whose slopes are bilinear in its knots'), relative error
 * below tol. */
static void conditioned_grad(int table, double tol)
{
    struct dev_model crn, ident;
    crn_chip(&crn);
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&ident);
    struct surrogate s;
    make_cond_surrogate(&s, "kappa", table);
    struct net_layer_spec spec[2] = {{4, &crn, VIA_SURROGATE, &s, 0, 0},
                                     {2, &ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, spec, 2, 8, 1, 7, NULL), 0);
    net_set_chip(n, 11);
    double kappa[4];
    size_t k = 0;
    while (strcmp(crn.param_names[k], "kappa") != 0)
        k++;
    for (size_t j = 0; j < 4; j++)
        kappa[j] = (float)n->layer[0].theta[j * crn.n_params + k];
    float x[B_ROWS * N_IN], target[B_ROWS * 2];
    double *p = mse_backward(n, x, target);
    size_t checked = 0;
    double worst = 0;
    for (size_t i = 0; i < n->n_params; i++) {
        if (i == n->layer[0].off_s || i == n->layer[1].off_s)
            continue; /* fixed input scales */
        double v = p[i], h = 1e-5;
        p[i] = v + h;
        double lp = cond_ref_loss(n, &s, kappa, p, x, target);
        p[i] = v - h;
        double lm = cond_ref_loss(n, &s, kappa, p, x, target);
        p[i] = v;
        double fd = (lp - lm) / (2 * h), an = n->grads[i];
        double rel = fabs(fd - an) / fmax(1e-3, fabs(fd) + fabs(an));
        worst = fmax(worst, rel);
        if (rel > tol)
            fail_msg("param %zu: analytic %.9g vs fd %.9g (rel %.2g)", i, an, fd, rel);
        checked++;
    }
    printf("conditioned layer gradients (%s): worst relative error %.2g\n",
           table ? "2-D table" : "MLP", worst);
    assert_true(checked == n->n_params - 2);
    free(p);
    net_destroy(n);
    surrogate_close(&s);
    dev_model_close(&ident);
    dev_model_close(&crn);
}

/* Measured worst relative errors (AMD EPYC): MLP 3.5e-7, 2-D table 1.0e-4. */
static void test_conditioned_grad(void **state)
{
    (void)state;
    conditioned_grad(0, 1e-4);
    conditioned_grad(1, 5e-4);
}

/* ---- training on chips ---- */

/* A 2-input network: 4 crn_relu of crn_chip (kappa lognormal cv 0.3) with output and
 * drive noise 0.05 via device, then 2 identity neurons; seed 3, `threads` threads. */
static struct net *chip_net(struct dev_model *crn, struct dev_model *ident, size_t threads)
{
    crn_chip(crn);
    crn->noise = (struct dev_noise){0.05, 0.05};
    dev_model_init(ident, DEV_NEURON);
    ident->activation = ACT_IDENTITY;
    qt_dev_prepare(ident);
    struct net_layer_spec spec[2] = {{4, crn, VIA_DEVICE, NULL, 0, 0},
                                     {2, ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 32, threads, 3, NULL), 0);
    return n;
}

/* Trains n on ds with Adam (lr 0.05), full batches, epochs [start, epochs), mode and
 * chip as given, seed 5; o must be initialised. */
static void chip_train(struct net *n, struct optim *o, const struct data_set *ds,
                       enum train_chip mode, uint64_t chip, size_t start, size_t epochs)
{
    struct train_config cfg = {LOSS_CROSS_ENTROPY, epochs, ds->n, 5, 0, {0}, mode, chip};
    struct train_result r;
    assert_int_equal(train_run(n, o, ds, NULL, &cfg, NULL, start, &r), 0);
}

static void test_train_chips(void **state)
{
    (void)state;
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 32, 2, 0.1, 4), 0);
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.05f;
    struct dev_model crn[4], ident[4];
    struct net *hw1 = chip_net(&crn[0], &ident[0], 1), *hw2 = chip_net(&crn[1], &ident[1], 2);
    struct net *man = chip_net(&crn[2], &ident[2], 1), *nom = chip_net(&crn[3], &ident[3], 1);
    struct optim o[4];
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(optim_init(&o[i], &oc, hw1->n_params), 0);
    chip_train(hw1, &o[0], &ds, TRAIN_HARDWARE_AWARE, 0, 0, 3);
    chip_train(hw2, &o[1], &ds, TRAIN_HARDWARE_AWARE, 0, 0, 3);
    chip_train(nom, &o[3], &ds, TRAIN_NOMINAL, 0, 0, 3);
    for (size_t e = 0; e < 3; e++) { /* one step per epoch: step e */
        net_set_chip(man, train_step_chip(5, e));
        net_set_noise(man, 1, train_step_noise(5, e));
        chip_train(man, &o[2], &ds, TRAIN_NOMINAL, 0, e, e + 1);
    }
    size_t bytes = hw1->n_params * sizeof *hw1->params;
    assert_memory_equal(hw1->params, hw2->params, bytes); /* 1 or 2 threads */
    assert_memory_equal(hw1->params, man->params, bytes); /* the documented draws */
    assert_memory_not_equal(hw1->params, nom->params, bytes); /* they change training */
    assert_int_equal(hw1->chip_on, 0); /* left nominal and quiet */
    assert_int_equal(hw1->noise_on, 0);
    for (size_t i = 0; i < 4; i++) {
        net_destroy(i == 0 ? hw1 : i == 1 ? hw2 : i == 2 ? man : nom);
        optim_close(&o[i]);
        dev_model_close(&crn[i]);
        dev_model_close(&ident[i]);
    }

    /* one chip: the nominal run of the network set to that chip */
    struct net *one = chip_net(&crn[0], &ident[0], 2), *set = chip_net(&crn[1], &ident[1], 1);
    assert_int_equal(optim_init(&o[0], &oc, one->n_params), 0);
    assert_int_equal(optim_init(&o[1], &oc, one->n_params), 0);
    chip_train(one, &o[0], &ds, TRAIN_ONE_CHIP, 7, 0, 2);
    net_set_chip(set, 7);
    chip_train(set, &o[1], &ds, TRAIN_NOMINAL, 0, 0, 2);
    assert_memory_equal(one->params, set->params, bytes);
    assert_true(one->chip_on && one->chip_seed == 7);
    for (size_t i = 0; i < 2; i++) {
        net_destroy(i == 0 ? one : set);
        optim_close(&o[i]);
        dev_model_close(&crn[i]);
        dev_model_close(&ident[i]);
    }
    data_close(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instance_is_device_alone),
        cmocka_unit_test(test_grad_per_instance),
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_remap_keeps_chip),
        cmocka_unit_test(test_set_params_every_kind),
        cmocka_unit_test(test_conditioned_instances),
        cmocka_unit_test(test_conditioned_grad),
        cmocka_unit_test(test_train_chips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
