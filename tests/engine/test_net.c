/*
 * test_net.c: device networks: gradients against central finite differences
 * of a float64 reference forward pass, for every via and drive; resume
 * equivalence of training; XOR through the network path. Layers of full
 * devices (fixed fan-in k, random/local/tree wiring): their wiring, gradient
 * checks for every via, and XOR-of-pairs learned by a k = 3 tree.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "nn.h"
#include "train.h"

#include "qt_engine.h"

#define B_ROWS 5
#define N_IN 3

/* Float64 forward of the whole network with parameters p; returns the mean MSE loss vs target. */
static double ref_loss(const struct net *n, const double *p, const float *x, const float *target)
{
    double in[B_ROWS * 64], out[B_ROWS * 64];
    for (size_t i = 0; i < B_ROWS * n->n_in; i++)
        in[i] = x[i];
    size_t width = n->n_in;
    for (size_t l = 0; l < n->n_layers; l++) {
        const struct net_layer *L = &n->layer[l];
        struct dev_work w;
        assert_int_equal(dev_work_init(&w, L->dev, NULL), 0);
        for (size_t b = 0; b < B_ROWS; b++) {
            for (size_t j = 0; j < L->n_out; j++) {
                if (L->k) { /* full: inputs (x_conn, a) */
                    double v[DEV_MAX_INPUTS], y = 0;
                    for (size_t i = 0; i < L->k; i++) {
                        v[i] = p[L->off_s] * in[b * width + L->conn[j * L->k + i]];
                        v[L->k + i] = p[L->off_w + j * L->k + i];
                    }
                    if (L->via == VIA_SURROGATE)
                        y = qt_ref_surrogate(L->sur, v);
                    else
                        assert_int_equal(dev_eval(&w, v, &y), 0);
                    out[b * L->n_out + j] = y;
                    continue;
                }
                double u[2] = {p[L->off_b + j], 0};
                for (size_t i = 0; i < width; i++) {
                    double xi = p[L->off_s] * in[b * width + i], a = p[L->off_w + j * width + i];
                    u[0] += a * xi, u[1] += a * xi * xi;
                }
                double y = 0;
                if (L->via == VIA_SURROGATE)
                    y = qt_ref_surrogate(L->sur, u);
                else
                    assert_int_equal(dev_eval(&w, u, &y), 0);
                out[b * L->n_out + j] = y;
            }
        }
        dev_work_close(&w);
        width = L->n_out;
        memcpy(in, out, B_ROWS * width * sizeof *in);
    }
    double loss = 0;
    for (size_t i = 0; i < B_ROWS * width; i++)
        loss += (in[i] - target[i]) * (in[i] - target[i]);
    return loss / (double)(B_ROWS * width);
}

/* Analytic gradient of the float network vs central differences of ref_loss. */
static void check_net_grad(struct net *n)
{
    float x[B_ROWS * N_IN], target[B_ROWS * 2], dout[B_ROWS * 2];
    for (size_t i = 0; i < B_ROWS * N_IN; i++)
        x[i] = (float)sin(1.7 * (double)i + 0.3);
    for (size_t i = 0; i < B_ROWS * n->n_out; i++)
        target[i] = (float)cos(0.9 * (double)i);
    assert_int_equal(net_forward(n, x, B_ROWS), 0);
    nn_mse_loss(dout, net_output(n), target, B_ROWS, n->n_out);
    memset(n->grads, 0, n->n_params * sizeof *n->grads);
    net_backward(n, x, dout, B_ROWS);
    double *p = malloc(n->n_params * sizeof *p);
    for (size_t i = 0; i < n->n_params; i++)
        p[i] = n->params[i];
    double worst = 0;
    for (size_t i = 0; i < n->n_params; i++) {
        int fixed = 0;
        for (size_t l = 0; l < n->n_layers; l++)
            fixed |= i == n->layer[l].off_s;
        if (fixed) {
            assert_true(n->grads[i] == 0.0f); /* the input scale is not trained */
            continue;
        }
        double v = p[i], h = 1e-5;
        p[i] = v + h;
        double lp = ref_loss(n, p, x, target);
        p[i] = v - h;
        double lm = ref_loss(n, p, x, target);
        p[i] = v;
        double fd = (lp - lm) / (2 * h), an = n->grads[i];
        double rel = fabs(fd - an) / fmax(1e-3, fabs(fd) + fabs(an));
        worst = fmax(worst, rel);
        if (rel > 1e-4)
            fail_msg("param %zu: analytic %.9g vs fd %.9g (rel %.2g)", i, an, fd, rel);
    }
    free(p);
}

/* Two layers: layer 0 of `dev` via `via`, then an identity neuron readout. */
static void grad_case(struct dev_model *dev, enum net_via via, const struct surrogate *sur)
{
    struct dev_model ident;
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&ident);
    struct net_layer_spec spec[2] = {{4, dev, via, sur, 0, 0}, {2, &ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, spec, 2, 8, 2, 7, NULL), 0);
    n->params[n->layer[0].off_s] = 0.8f; /* exercise the fixed input scales */
    n->params[n->layer[1].off_s] = 1.3f;
    check_net_grad(n);
    net_destroy(n);
    dev_model_close(&ident);
}

static void test_grad_exact(void **state)
{
    (void)state;
    for (int k = ACT_IDENTITY; k <= ACT_SOFTPLUS; k++) {
        if (k == ACT_RELU)
            continue; /* kinks make finite differences unreliable; covered by test_nn */
        struct dev_model d;
        dev_model_init(&d, DEV_NEURON);
        d.activation = (enum act_kind)k;
        qt_dev_prepare(&d);
        grad_case(&d, VIA_EXACT, NULL);
        dev_model_close(&d);
    }
    struct dev_model a;
    dev_model_init(&a, DEV_ALMOST_NEURON);
    a.drive = DRIVE_DOT_SQ;
    a.activation = ACT_SIGMOID;
    qt_dev_prepare(&a);
    grad_case(&a, VIA_EXACT, NULL);
    dev_model_close(&a);
}

/* physics_aware: the forward pass is the device's, dy/du the surrogate's. */
static void test_physics_aware(void **state)
{
    (void)state;
    struct surrogate sur;
    qt_make_surrogate(&sur, 1, 5);
    struct dev_model crn;
    qt_crn(&crn);
    struct net_layer_spec pa = {3, &crn, VIA_PHYSICS_AWARE, &sur, 0, 0};
    struct net_layer_spec su = {3, &crn, VIA_SURROGATE, &sur, 0, 0};
    struct net *a = NULL, *b = NULL;
    assert_int_equal(net_create(&a, N_IN, &pa, 1, 8, 2, 4, NULL), 0);
    assert_int_equal(net_create(&b, N_IN, &su, 1, 8, 1, 4, NULL), 0);
    float x[2 * N_IN] = {0.4f, -1, 0.2f, 1.5f, -0.3f, 0.9f};
    assert_int_equal(net_forward(a, x, 2), 0);
    assert_int_equal(net_forward(b, x, 2), 0);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &crn, NULL), 0);
    for (size_t e = 0; e < 6; e++) {
        double u = a->layer[0].u[e], y;
        assert_int_equal(dev_eval(&w, &u, &y), 0);
        assert_true(fabsf(net_output(a)[e] - (float)y) < 1e-6f);
        assert_true(a->layer[0].g[e] == b->layer[0].g[e]);
    }
    dev_work_close(&w);
    net_destroy(a), net_destroy(b);
    dev_model_close(&crn);
    surrogate_close(&sur);
}

/* Outside its domain a surrogate answers for the nearest point of it, with
 * slope 0 across the boundary, and every such evaluation is counted;
 * calibration starts the drives inside the domain. */
static void test_surrogate_domain(void **state)
{
    (void)state;
    struct surrogate sur;
    qt_make_surrogate(&sur, 1, 5);
    struct dev_model crn;
    qt_crn(&crn);
    struct net_layer_spec su = {3, &crn, VIA_SURROGATE, &sur, 0, 0};
    struct net *n = NULL;
    float x0[N_IN] = {0.4f, -1, 0.2f};
    double f0;
    /* a surrogate without a domain (fitted before domains were kept): unknown, not 0 */
    assert_int_equal(net_create(&n, N_IN, &su, 1, 8, 1, 4, NULL), 0);
    assert_int_equal(net_forward(n, x0, 1), 0);
    assert_int_equal(net_domain_fraction(n, 0, &f0), QN_ENOTFOUND);
    net_destroy(n);
    n = NULL;
    sur.has_domain = 1, sur.dom_lo[0] = -0.5f, sur.dom_hi[0] = 0.7f;
    assert_int_equal(net_create(&n, N_IN, &su, 1, 8, 1, 4, NULL), 0);
    float x[2 * N_IN] = {0.4f, -1, 0.2f, 1.5f, -0.3f, 0.9f};
    double frac;
    assert_int_equal(net_domain_fraction(n, 0, &frac), QN_ENOTFOUND);
    assert_int_equal(net_forward(n, x, 2), 0);
    size_t outside = 0;
    for (size_t e = 0; e < 6; e++) {
        double u = n->layer[0].u[e], uc = fmin(fmax(u, -0.5), 0.7), h = 1e-3;
        int out = uc != u;
        outside += (size_t)out;
        assert_true(fabs(net_output(n)[e] - qt_ref_surrogate(&sur, &uc)) < 1e-5);
        double up = uc + h, um = uc - h;
        double slope = (qt_ref_surrogate(&sur, &up) - qt_ref_surrogate(&sur, &um)) / (2 * h);
        assert_true(out ? n->layer[0].g[e] == 0.0f : fabs(n->layer[0].g[e] - slope) < 1e-3);
    }
    assert_true(outside > 0 && outside < 6); /* the case covers both sides */
    assert_int_equal(net_domain_fraction(n, 0, &frac), 0);
    assert_true(fabs(frac - (double)outside / 6) < 1e-12);
    /* calibration keeps the calibration batch's drives inside */
    assert_int_equal(net_calibrate(n, x, 2), 0);
    net_domain_reset(n);
    assert_int_equal(net_forward(n, x, 2), 0);
    assert_int_equal(net_domain_fraction(n, 0, &frac), 0);
    assert_true(frac == 0.0);
    net_destroy(n);
    dev_model_close(&crn);
    surrogate_close(&sur);
}

static void test_grad_surrogate(void **state)
{
    (void)state;
    struct surrogate s1, s2;
    qt_make_surrogate(&s1, 1, 3);
    qt_make_surrogate(&s2, 2, 4);
    struct dev_model crn, near;
    qt_crn(&crn);
    grad_case(&crn, VIA_SURROGATE, &s1);
    dev_model_init(&near, DEV_ALMOST_NEURON);
    near.drive = DRIVE_DOT_SQ;
    qt_dev_prepare(&near);
    grad_case(&near, VIA_SURROGATE, &s2);
    /* a surrogate with the wrong number of drives is refused */
    struct net_layer_spec bad = {4, &crn, VIA_SURROGATE, &s2, 0, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &bad, 1, 8, 1, 1, NULL), QN_EINVAL);
    dev_model_close(&crn);
    dev_model_close(&near);
    surrogate_close(&s1);
    surrogate_close(&s2);
}

static void test_grad_device(void **state)
{
    (void)state;
    struct dev_model crn;
    dev_model_init(&crn, DEV_CRN_RELU);
    dev_model_set_param(&crn, "kappa", 0.1);
    qt_dev_prepare(&crn);
    grad_case(&crn, VIA_DEVICE, NULL); /* steady state: implicit function theorem */
    dev_model_close(&crn);

    struct dev_model relax;
    dev_model_init(&relax, DEV_ODE);
    relax.n_states = 1;
    strcpy(relax.state_names[0], "y");
    relax.rhs_src[0] = strdup("tanh(u1) - y");
    relax.readout.kind = READ_FINAL; /* a time readout: forward sensitivities */
    relax.readout.t_max = 1.5;
    relax.solver.rtol = 1e-12;
    relax.solver.atol = 1e-12;
    qt_dev_prepare(&relax);
    grad_case(&relax, VIA_DEVICE, NULL);
    dev_model_close(&relax);

    struct dev_model hh;
    dev_model_init(&hh, DEV_HODGKIN_HUXLEY);
    qt_dev_prepare(&hh);
    struct net_layer_spec spec = {4, &hh, VIA_DEVICE, NULL, 0, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, 1, 1, NULL), QN_ENOTDIFF);
    /* scored only (forward_only): the real spike rates, and training through it is refused */
    spec.forward_only = 1;
    assert_int_equal(net_create(&n, N_IN, &spec, 1, 8, 2, 1, NULL), 0);
    float x[2 * N_IN] = {1, -0.5f, 2, 0.3f, 0.8f, -1};
    for (size_t j = 0; j < 4; j++)
        n->params[n->layer[0].off_b + j] = 8.0f; /* near the firing threshold */
    assert_int_equal(net_forward(n, x, 2), 0);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &hh, NULL), 0);
    for (size_t e = 0; e < 8; e++) {
        double u = n->layer[0].u[e], rate;
        assert_int_equal(dev_eval(&w, &u, &rate), 0);
        assert_true(net_output(n)[e] == (float)rate);
        assert_true(n->layer[0].g[e] == 0.0f);
    }
    dev_work_close(&w);
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 8, 2, 0.1, 1), 0);
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    struct train_config cfg = {LOSS_MSE, 1, 4, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result r;
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, NULL, 0, &r), QN_ENOTDIFF);
    optim_close(&o);
    data_close(&ds);
    net_destroy(n);
    dev_model_close(&hh);
}

/* Metrics of a run, for comparing runs. */
struct run_log {
    double last_loss;
    size_t checkpoints;
    float *saved_params;
    float *saved_state;
    uint64_t saved_t;
};

static void log_metric(const char *name, uint64_t step, size_t epoch, double v, void *ctx)
{
    (void)step, (void)epoch;
    if (strcmp(name, "train_loss") == 0)
        ((struct run_log *)ctx)->last_loss = v;
}

static int save_checkpoint(const struct net *n, const struct optim *o, size_t epoch, void *ctx)
{
    struct run_log *log = ctx;
    if (epoch != 2)
        return 0;
    log->checkpoints++;
    memcpy(log->saved_params, n->params, n->n_params * sizeof(float));
    memcpy(log->saved_state, o->state, optim_state_len(o) * sizeof(float));
    log->saved_t = o->t;
    return 0;
}

/* Spirals (240 train, 60 test rows) and a 2-16-2 tanh network's devices:
 * what the resume tests train. */
struct spirals_fx {
    struct data_set ds, tr, te;
    struct dev_model tanhd, ident;
    struct net_layer_spec spec[2];
};

static void spirals_fx_init(struct spirals_fx *x)
{
    assert_int_equal(data_gen_spirals(&x->ds, 300, 2, 0.1, 5), 0);
    assert_int_equal(data_split(&x->ds, 0.2, 1, &x->tr, &x->te), 0);
    dev_model_init(&x->tanhd, DEV_NEURON);
    x->tanhd.activation = ACT_TANH;
    qt_dev_prepare(&x->tanhd);
    dev_model_init(&x->ident, DEV_NEURON);
    x->ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&x->ident);
    x->spec[0] = (struct net_layer_spec){16, &x->tanhd, VIA_EXACT, NULL, 0, 0};
    x->spec[1] = (struct net_layer_spec){2, &x->ident, VIA_EXACT, NULL, 0, 0};
}

static void spirals_fx_close(struct spirals_fx *x)
{
    dev_model_close(&x->tanhd), dev_model_close(&x->ident);
    data_close(&x->ds), data_close(&x->tr), data_close(&x->te);
}

static void test_resume_identical(void **state)
{
    (void)state;
    struct spirals_fx x;
    spirals_fx_init(&x);
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 4, 32, 9, 2, {0}, TRAIN_NOMINAL, 0};
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.01;

    /* uninterrupted */
    struct net *a = NULL;
    struct optim oa;
    assert_int_equal(net_create(&a, 2, x.spec, 2, 32, 1, 3, NULL), 0);
    assert_int_equal(optim_init(&oa, &oc, a->n_params), 0);
    struct run_log la = {0};
    la.saved_params = malloc(a->n_params * sizeof(float));
    la.saved_state = malloc(optim_state_len(&oa) * sizeof(float));
    struct train_hooks ha = {log_metric, save_checkpoint, &la, NULL, 0, NULL, NULL, NULL};
    struct train_result ra;
    assert_int_equal(train_run(a, &oa, &x.tr, &x.te, &cfg, &ha, 0, &ra), 0);
    assert_int_equal(la.checkpoints, 1);

    /* resumed from the epoch-2 checkpoint of the first run */
    struct net *b = NULL;
    struct optim ob;
    assert_int_equal(net_create(&b, 2, x.spec, 2, 32, 1, 99, NULL), 0);
    assert_int_equal(optim_init(&ob, &oc, b->n_params), 0);
    memcpy(b->params, la.saved_params, b->n_params * sizeof(float));
    memcpy(ob.state, la.saved_state, optim_state_len(&ob) * sizeof(float));
    ob.t = la.saved_t;
    struct run_log lb = {0};
    struct train_hooks hb = {log_metric, NULL, &lb, NULL, 0, NULL, NULL, NULL};
    struct train_result rb;
    assert_int_equal(train_run(b, &ob, &x.tr, &x.te, &cfg, &hb, 2, &rb), 0);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_true(la.last_loss == lb.last_loss);

    free(la.saved_params), free(la.saved_state);
    optim_close(&oa), optim_close(&ob);
    net_destroy(a), net_destroy(b);
    spirals_fx_close(&x);
}

/* A run canceled inside an epoch, saved by the partial hook. */
struct cut_log {
    atomic_int cancel;     /* set at step cut_at */
    uint64_t cut_at;
    double last_loss;
    struct train_position at;
    float *params, *state; /* saved */
    uint64_t t;
};

static void cut_metric(const char *name, uint64_t step, size_t epoch, double v, void *ctx)
{
    (void)epoch;
    struct cut_log *c = ctx;
    if (strcmp(name, "step_loss") == 0 && step == c->cut_at)
        atomic_store(&c->cancel, 1);
    if (strcmp(name, "train_loss") == 0)
        c->last_loss = v;
}

static int cut_partial(const struct net *n, const struct optim *o, const struct train_position *at,
                       void *ctx)
{
    struct cut_log *c = ctx;
    c->at = *at;
    memcpy(c->params, n->params, n->n_params * sizeof(float));
    memcpy(c->state, o->state, optim_state_len(o) * sizeof(float));
    c->t = o->t;
    return 0;
}

/* Canceled in the middle of epoch 2, saved by the partial hook, resumed with
 * train_run_from: the same weights and the same epoch losses as a run that
 * never stopped. */
static void test_resume_mid_epoch(void **state)
{
    (void)state;
    struct spirals_fx x;
    spirals_fx_init(&x);
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 3, 32, 9, 0, {0}, TRAIN_NOMINAL, 0};
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.01;
    struct net *a = NULL, *b = NULL, *c = NULL;
    struct optim oa, ob, ocut;
    assert_int_equal(net_create(&a, 2, x.spec, 2, 32, 1, 3, NULL), 0);
    assert_int_equal(net_create(&b, 2, x.spec, 2, 32, 1, 3, NULL), 0);
    assert_int_equal(net_create(&c, 2, x.spec, 2, 32, 1, 77, NULL), 0);
    assert_int_equal(optim_init(&oa, &oc, a->n_params), 0);
    assert_int_equal(optim_init(&ob, &oc, b->n_params), 0);
    assert_int_equal(optim_init(&ocut, &oc, c->n_params), 0);
    struct cut_log full = {0}, cut = {0}, rest = {0};
    full.cut_at = rest.cut_at = UINT64_MAX;
    cut.cut_at = 11; /* 8 steps an epoch: the 3rd step of epoch 2 */
    cut.params = malloc(b->n_params * sizeof(float));
    cut.state = malloc(optim_state_len(&ob) * sizeof(float));
    struct train_hooks hf = {cut_metric, NULL, &full, NULL, 1, NULL, NULL, NULL};
    struct train_hooks hc = {cut_metric, NULL, &cut, &cut.cancel, 1, NULL, cut_partial, NULL};
    struct train_hooks hr = {cut_metric, NULL, &rest, NULL, 1, NULL, NULL, NULL};
    struct train_result r;
    assert_int_equal(train_run(a, &oa, &x.tr, &x.te, &cfg, &hf, 0, &r), 0);
    assert_int_equal(train_run(b, &ob, &x.tr, &x.te, &cfg, &hc, 0, &r), QN_ECANCELED);
    assert_int_equal(cut.at.epoch, 1);
    assert_int_equal(cut.at.step, 3);
    memcpy(c->params, cut.params, c->n_params * sizeof(float));
    memcpy(ocut.state, cut.state, optim_state_len(&ocut) * sizeof(float));
    ocut.t = cut.t;
    assert_int_equal(train_run_from(c, &ocut, &x.tr, &x.te, &cfg, &hr, &cut.at, &r), 0);
    assert_memory_equal(a->params, c->params, a->n_params * sizeof(float));
    assert_true(full.last_loss == rest.last_loss);
    free(cut.params), free(cut.state);
    optim_close(&oa), optim_close(&ob), optim_close(&ocut);
    net_destroy(a), net_destroy(b), net_destroy(c);
    spirals_fx_close(&x);
}

static void test_xor_network(void **state)
{
    (void)state;
    struct data_set ds;
    assert_int_equal(data_gen_xor(&ds, 4, 0.0, 1), 0);
    struct dev_model sig;
    dev_model_init(&sig, DEV_NEURON);
    sig.activation = ACT_TANH;
    qt_dev_prepare(&sig);
    struct dev_model ident;
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&ident);
    struct net_layer_spec spec[2] = {{4, &sig, VIA_EXACT, NULL, 0, 0}, {2, &ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 4, 1, 2, NULL), 0);
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.05;
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 1000, 4, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result r;
    assert_int_equal(train_run(n, &o, &ds, &ds, &cfg, NULL, 0, &r), 0);
    if (r.test_accuracy != 1.0)
        fail_msg("xor accuracy %g loss %g", r.test_accuracy, r.test_loss);
    /* labels out of range and shape mismatches are refused */
    ds.labels[0] = 5;
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, NULL, 0, &r), QN_EINVAL);
    optim_close(&o);
    net_destroy(n);
    dev_model_close(&sig);
    dev_model_close(&ident);
    data_close(&ds);
}

/* Three layers: 4 devices `dev` (full, fan-in 3) via `via` wired by c, 3 full tanh
 * neurons (fan-in 3) wired by c, then a dense identity readout. */
static void full_grad_case(struct dev_model *dev, enum net_via via, const struct surrogate *sur,
                           enum net_connect c)
{
    struct dev_model ident, fid;
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&ident);
    dev_model_init(&fid, DEV_NEURON);
    fid.activation = ACT_TANH;
    fid.drive = DRIVE_FULL;
    fid.fan_in = 3;
    qt_dev_prepare(&fid);
    struct net_layer_spec spec[3] = {{4, dev, via, sur, 0, c},
                                     {3, &fid, VIA_EXACT, NULL, 0, c},
                                     {2, &ident, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, spec, 3, 8, 2, 7, NULL), 0);
    assert_int_equal(n->n_params, 4 * 3 + 1 + 3 * 3 + 1 + 2 * 3 + 2 + 1);
    n->params[n->layer[0].off_s] = 0.8f;
    n->params[n->layer[1].off_s] = 1.3f;
    check_net_grad(n);
    net_destroy(n);
    dev_model_close(&ident), dev_model_close(&fid);
}

static void test_full_grad(void **state)
{
    (void)state;
    struct dev_model tn, crn;
    dev_model_init(&tn, DEV_ALMOST_NEURON);
    tn.activation = ACT_SIGMOID;
    tn.drive = DRIVE_FULL;
    tn.fan_in = 3;
    qt_dev_prepare(&tn);
    for (int c = NET_CONNECT_RANDOM; c <= NET_CONNECT_TREE; c++)
        full_grad_case(&tn, VIA_EXACT, NULL, (enum net_connect)c);
    dev_model_init(&crn, DEV_CRN_RELU);
    dev_model_set_param(&crn, "kappa", 0.1);
    crn.drive = DRIVE_FULL;
    crn.fan_in = 3;
    qt_dev_prepare(&crn);
    full_grad_case(&crn, VIA_DEVICE, NULL, NET_CONNECT_TREE); /* implicit function theorem */
    struct surrogate s6, s2;
    qt_make_surrogate(&s6, 6, 8);
    full_grad_case(&crn, VIA_SURROGATE, &s6, NET_CONNECT_LOCAL);
    /* a surrogate must take the 2k inputs; the fan-in must fit the layer below */
    qt_make_surrogate(&s2, 2, 9);
    struct net_layer_spec bad = {4, &crn, VIA_SURROGATE, &s2, 0, 0};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, &bad, 1, 8, 1, 1, NULL), QN_EINVAL);
    bad.sur = &s6;
    assert_int_equal(net_create(&n, 2, &bad, 1, 8, 1, 1, NULL), QN_EINVAL);
    surrogate_close(&s6), surrogate_close(&s2);
    dev_model_close(&tn), dev_model_close(&crn);
}

/* The wiring: tree blocks, local windows, random distinct inputs; same seed, same wiring. */
static void test_full_wiring(void **state)
{
    (void)state;
    struct dev_model f;
    dev_model_init(&f, DEV_NEURON);
    f.drive = DRIVE_FULL;
    f.fan_in = 3;
    qt_dev_prepare(&f);
    struct net *n = NULL, *m = NULL;
    struct net_layer_spec tree = {4, &f, VIA_EXACT, NULL, 0, NET_CONNECT_TREE};
    assert_int_equal(net_create(&n, 6, &tree, 1, 2, 1, 1, NULL), 0);
    size_t want_tree[12] = {0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5};
    assert_memory_equal(n->layer[0].conn, want_tree, sizeof want_tree);
    net_destroy(n);
    struct net_layer_spec local = {3, &f, VIA_EXACT, NULL, 0, NET_CONNECT_LOCAL};
    assert_int_equal(net_create(&n, 7, &local, 1, 2, 1, 1, NULL), 0);
    size_t want_local[9] = {0, 1, 2, 2, 3, 4, 4, 5, 6};
    assert_memory_equal(n->layer[0].conn, want_local, sizeof want_local);
    net_destroy(n);
    struct net_layer_spec rnd = {50, &f, VIA_EXACT, NULL, 0, NET_CONNECT_RANDOM};
    assert_int_equal(net_create(&n, 10, &rnd, 1, 2, 1, 5, NULL), 0);
    assert_int_equal(net_create(&m, 10, &rnd, 1, 2, 1, 5, NULL), 0);
    assert_memory_equal(n->layer[0].conn, m->layer[0].conn, 150 * sizeof(size_t));
    size_t hits[10] = {0};
    for (size_t j = 0; j < 50; j++) {
        const size_t *c = n->layer[0].conn + 3 * j;
        assert_true(c[0] < 10 && c[1] < 10 && c[2] < 10);
        assert_true(c[0] != c[1] && c[0] != c[2] && c[1] != c[2]);
        hits[c[0]]++, hits[c[1]]++, hits[c[2]]++;
    }
    for (size_t i = 0; i < 10; i++)
        assert_true(hits[i] > 0); /* 150 draws reach every input */
    net_destroy(n), net_destroy(m);
    dev_model_close(&f);
}

/* XOR of two pairs: inputs (x1, x2, 1, x3, x4, 1), targets (xor(x1, x2), xor(x3, x4)) as
 * +-1; a k = 3 tree of tanh neurons (6 devices, three per pair) and a k = 3 tree of
 * identity readouts (one per pair of the tree). */
static void test_full_xor_pairs(void **state)
{
    (void)state;
    struct data_set ds;
    assert_int_equal(data_alloc(&ds, 16, 6, 0, 2), 0);
    for (size_t r = 0; r < 16; r++) {
        float b[4] = {(float)(r & 1), (float)((r >> 1) & 1), (float)((r >> 2) & 1),
                      (float)((r >> 3) & 1)};
        float *x = ds.x + 6 * r;
        x[0] = b[0], x[1] = b[1], x[2] = 1, x[3] = b[2], x[4] = b[3], x[5] = 1;
        ds.y[2 * r] = b[0] != b[1] ? 1.0f : -1.0f;
        ds.y[2 * r + 1] = b[2] != b[3] ? 1.0f : -1.0f;
    }
    struct dev_model th, id;
    dev_model_init(&th, DEV_NEURON);
    th.activation = ACT_TANH, th.drive = DRIVE_FULL, th.fan_in = 3;
    qt_dev_prepare(&th);
    dev_model_init(&id, DEV_NEURON);
    id.activation = ACT_IDENTITY, id.drive = DRIVE_FULL, id.fan_in = 3;
    qt_dev_prepare(&id);
    struct net_layer_spec spec[2] = {{6, &th, VIA_EXACT, NULL, 0, NET_CONNECT_TREE},
                                     {2, &id, VIA_EXACT, NULL, 0, NET_CONNECT_TREE}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 6, spec, 2, 16, 1, 3, NULL), 0);
    /* the tree: devices 0-2 see pair 1, 3-5 pair 2; readout 0 sees 0-2, readout 1 sees 3-5 */
    assert_int_equal(n->layer[0].conn[2 * 3], 0);
    assert_int_equal(n->layer[0].conn[3 * 3], 3);
    assert_int_equal(n->layer[1].conn[3], 3);
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.03;
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    struct train_config cfg = {LOSS_MSE, 1500, 16, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result r;
    assert_int_equal(train_run(n, &o, &ds, &ds, &cfg, NULL, 0, &r), 0);
    assert_int_equal(net_forward(n, ds.x, 16), 0);
    for (size_t i = 0; i < 32; i++)
        if (net_output(n)[i] * ds.y[i] <= 0.5f)
            fail_msg("row %zu output %zu: %g for target %g (loss %g)", i / 2, i % 2,
                     net_output(n)[i], ds.y[i], r.test_loss);
    assert_true(r.test_loss < 0.05);
    optim_close(&o);
    net_destroy(n);
    dev_model_close(&th), dev_model_close(&id);
    data_close(&ds);
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_exact),
        cmocka_unit_test(test_grad_surrogate),
        cmocka_unit_test(test_grad_device),
        cmocka_unit_test(test_physics_aware),
        cmocka_unit_test(test_surrogate_domain),
        cmocka_unit_test(test_resume_identical),
        cmocka_unit_test(test_resume_mid_epoch),
        cmocka_unit_test(test_xor_network),
        cmocka_unit_test(test_full_grad),
        cmocka_unit_test(test_full_wiring),
        cmocka_unit_test(test_full_xor_pairs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
