/*
 * test_logic.c: the small built-in problems of the founding examples: the
 * logic-gate datasets, the Lotka-Volterra dataset against an independent
 * fixed-step RK4 solve, the classic 2-2-1 sigmoid XOR network (MSE on the
 * label, SGD with momentum, N(0, 1) weights) over 20 seeds, and a network
 * that learns the Lotka-Volterra prey to a stated test RMSE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "qn_err.h"
#include "train.h"

/* ---- the gates ---- */

static void test_gates(void **state)
{
    (void)state;
    /* truth[op][b * 2 + a] at the corner (a, b), from the definitions */
    static const int truth[6][4] = {{0, 0, 0, 1}, {0, 1, 1, 1}, {1, 1, 1, 0},
                                    {1, 0, 0, 0}, {0, 1, 1, 0}, {1, 0, 0, 1}};
    for (int op = DATA_GATE_AND; op <= DATA_GATE_XNOR; op++) {
        struct data_set ds;
        assert_int_equal(data_gen_gate(&ds, (enum data_gate)op, 0, 0.0, 1), 0);
        assert_int_equal(ds.n, 4);
        assert_int_equal(ds.d, 2);
        assert_int_equal(ds.n_classes, 2);
        for (size_t i = 0; i < 4; i++) {
            int a = (int)ds.x[2 * i], b = (int)ds.x[2 * i + 1];
            assert_true(ds.x[2 * i] == (float)a && ds.x[2 * i + 1] == (float)b);
            assert_int_equal(ds.labels[i], truth[op][b * 2 + a]);
        }
        data_close(&ds);
        /* noisy points keep the label of the corner they were drawn around */
        assert_int_equal(data_gen_gate(&ds, (enum data_gate)op, 400, 0.1, 3), 0);
        for (size_t i = 0; i < ds.n; i++) {
            int a = ds.x[2 * i] > 0.5f, b = ds.x[2 * i + 1] > 0.5f;
            if (fabsf(ds.x[2 * i] - 0.5f) > 0.45f && fabsf(ds.x[2 * i + 1] - 0.5f) > 0.45f)
                assert_int_equal(ds.labels[i], truth[op][b * 2 + a]);
        }
        data_close(&ds);
    }
    struct data_set ds;
    assert_int_equal(data_gen_gate(&ds, (enum data_gate)99, 0, 0.0, 1), QN_EINVAL);
    assert_null(ds.x);
}

/* ---- Lotka-Volterra ---- */

static void lv_rhs(const double y[2], double f[2])
{
    f[0] = DATA_LV_ALPHA * y[0] - DATA_LV_BETA * y[0] * y[1];
    f[1] = DATA_LV_DELTA * y[0] * y[1] - DATA_LV_GAMMA * y[1];
}

/* The prey at t by classic fixed-step RK4 with steps of at most h: independent of GSL. */
static double lv_rk4(double x0, double y0, double t, double h)
{
    size_t steps = (size_t)ceil(t / h);
    double y[2] = {x0, y0};
    if (steps == 0)
        return x0;
    h = t / (double)steps;
    for (size_t s = 0; s < steps; s++) {
        double k1[2], k2[2], k3[2], k4[2], z[2];
        lv_rhs(y, k1);
        for (int i = 0; i < 2; i++)
            z[i] = y[i] + 0.5 * h * k1[i];
        lv_rhs(z, k2);
        for (int i = 0; i < 2; i++)
            z[i] = y[i] + 0.5 * h * k2[i];
        lv_rhs(z, k3);
        for (int i = 0; i < 2; i++)
            z[i] = y[i] + h * k3[i];
        lv_rhs(z, k4);
        for (int i = 0; i < 2; i++)
            y[i] += h / 6.0 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]);
    }
    return y[0];
}

static void test_lotka_volterra_data(void **state)
{
    (void)state;
    struct data_set ds, again;
    assert_int_equal(data_gen_lotka_volterra(&ds, 60, 7), 0);
    assert_int_equal(ds.d, 3);
    assert_int_equal(ds.t, 1);
    assert_null(ds.labels);
    double worst = 0;
    for (size_t i = 0; i < ds.n; i++) {
        const float *x = ds.x + 3 * i;
        assert_true(x[0] >= DATA_LV_POP_LO && x[0] <= DATA_LV_POP_HI);
        assert_true(x[1] >= DATA_LV_POP_LO && x[1] <= DATA_LV_POP_HI);
        assert_true(x[2] >= 0 && x[2] <= DATA_LV_T_MAX);
        /* the stored inputs are floats: solve again from exactly those */
        double ref = lv_rk4(x[0], x[1], x[2], 1e-3);
        double got = 0;
        assert_int_equal(data_lotka_volterra_prey(x[0], x[1], x[2], &got), 0);
        worst = fmax(worst, fabs(got - ref));
        /* the row holds that solve, rounded to float */
        assert_true(fabs((double)ds.y[i] - got) <= 1e-6 * fabs(got) + 1e-7);
    }
    assert_true(worst < 1e-9); /* RK4 at h = 1e-3 has a global error near 1e-12 here */
    assert_int_equal(data_gen_lotka_volterra(&again, 60, 7), 0);
    assert_memory_equal(ds.y, again.y, ds.n * sizeof *ds.y);
    data_close(&ds), data_close(&again);
}

/* ---- networks ---- */

/* net_init_layer: normal draws N(0, 1) weights and biases (moments within 5
 * standard errors), uniform stays inside +-sqrt(3 / fan-in) with zero biases,
 * other layers are untouched, and the draw is seeded. */
static void test_init_layer(void **state)
{
    (void)state;
    struct dev_model id;
    struct dev_error err;
    dev_model_init(&id, DEV_NEURON);
    id.activation = ACT_IDENTITY;
    assert_int_equal(dev_model_prepare(&id, &err), 0);
    struct net_layer_spec spec[2] = {{200, &id, VIA_EXACT, NULL, 0, 0},
                                     {3, &id, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL, *m = NULL;
    assert_int_equal(net_create(&n, 50, spec, 2, 1, 1, 4, NULL), 0);
    assert_int_equal(net_create(&m, 50, spec, 2, 1, 1, 4, NULL), 0);
    const struct net_layer *L0 = &n->layer[0], *L1 = &n->layer[1];
    size_t top = L1->off_s - L1->off_w;
    float *before = malloc(top * sizeof *before);
    memcpy(before, n->params + L1->off_w, top * sizeof *before);
    assert_int_equal(net_init_layer(n, 0, NET_INIT_NORMAL, 9), 0);
    size_t cnt = L0->off_s - L0->off_w; /* 200 * 50 weights and 200 biases */
    double mean = 0, sq = 0, bias_sq = 0;
    for (size_t i = 0; i < cnt; i++)
        mean += n->params[L0->off_w + i], sq += n->params[L0->off_w + i] * n->params[L0->off_w + i];
    for (size_t j = 0; j < L0->n_out; j++)
        bias_sq += n->params[L0->off_b + j] * n->params[L0->off_b + j];
    mean /= (double)cnt, sq /= (double)cnt;
    assert_true(fabs(mean) < 5.0 / sqrt((double)cnt));
    assert_true(fabs(sq - 1.0) < 5.0 * sqrt(2.0 / (double)cnt));
    assert_true(bias_sq / (double)L0->n_out > 0.5); /* biases drawn too */
    assert_memory_equal(before, n->params + L1->off_w, top * sizeof *before);
    assert_true(n->params[L0->off_s] == 1.0f); /* the input scale is not a weight */
    assert_int_equal(net_init_layer(m, 0, NET_INIT_NORMAL, 9), 0);
    assert_memory_equal(n->params, m->params, n->n_params * sizeof *n->params);
    assert_int_equal(net_init_layer(n, 1, NET_INIT_UNIFORM, 9), 0);
    float s = sqrtf(3.0f / 200.0f);
    for (size_t i = 0; i < L1->n_out * L1->n_w; i++)
        assert_true(fabsf(n->params[L1->off_w + i]) <= s);
    for (size_t j = 0; j < L1->n_out; j++)
        assert_true(n->params[L1->off_b + j] == 0.0f);
    assert_int_equal(net_init_layer(n, 2, NET_INIT_NORMAL, 9), QN_EINVAL);
    free(before);
    net_destroy(n), net_destroy(m);
    dev_model_close(&id);
}

static void prepare(struct dev_model *d, enum act_kind act)
{
    struct dev_error err;
    dev_model_init(d, DEV_NEURON);
    d->activation = act;
    if (dev_model_prepare(d, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
}

/* Trains n on train (standardised as a train job does) and returns the final
 * loss and accuracy on test. */
static void train_net(struct net *n, const struct optim_config *oc, struct data_set *train,
                      struct data_set *test, const struct train_config *cfg,
                      struct train_result *res)
{
    struct optim o;
    assert_int_equal(optim_init(&o, oc, n->n_params), 0);
    assert_int_equal(train_run(n, &o, train, test, cfg, NULL, 0, res), 0);
    optim_close(&o);
}

/* Standardises both sets with train's statistics, as train jobs do. */
static void standardise(struct data_set *train, struct data_set *test)
{
    struct data_scaler sc;
    assert_int_equal(data_scaler_fit(&sc, train), 0);
    assert_int_equal(data_scaler_apply(&sc, train), 0);
    assert_int_equal(data_scaler_apply(&sc, test), 0);
    data_scaler_close(&sc);
}

#define XOR_SEEDS 20
#define XOR_EPOCHS 10000

/*
 * The classic XOR network as first written: 2-2-1, sigmoid hidden and
 * output, MSE on the 0/1 label, SGD momentum 0.9 lr 0.02, weights and
 * biases N(0, 1), full batch of the four corners, XOR_EPOCHS epochs, seeds
 * 1..20 (the spec of README's example). A seed fails to converge when a
 * corner is on the wrong side of 0.5 at the end. The well-known failure
 * (a local minimum) shows on some seeds, not all; README reports the count
 * this test prints.
 */
static void test_classic_xor(void **state)
{
    (void)state;
    struct dev_model sig;
    prepare(&sig, ACT_SIGMOID);
    struct net_layer_spec spec[2] = {{2, &sig, VIA_EXACT, NULL, 0, 0},
                                     {1, &sig, VIA_EXACT, NULL, 0, 0}};
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_SGD);
    oc.lr = 0.02, oc.momentum = 0.9;
    size_t failed = 0;
    char which[128] = "";
    for (uint64_t seed = 1; seed <= XOR_SEEDS; seed++) {
        struct data_set tr, te;
        assert_int_equal(data_gen_xor(&tr, 0, 0, seed), 0);
        assert_int_equal(data_gen_xor(&te, 0, 0, seed), 0);
        standardise(&tr, &te);
        struct train_config cfg = {LOSS_MSE, XOR_EPOCHS, 4, seed, 0, {0}, TRAIN_NOMINAL, 0};
        struct net *n = NULL;
        assert_int_equal(net_create(&n, 2, spec, 2, 4, 1, seed, NULL), 0);
        for (size_t l = 0; l < 2; l++) /* as a train job does for "init": "normal" */
            assert_int_equal(net_init_layer(n, l, NET_INIT_NORMAL, seed), 0);
        struct train_result res;
        train_net(n, &oc, &tr, &te, &cfg, &res);
        if (res.test_accuracy < 1.0) {
            failed++;
            snprintf(which + strlen(which), sizeof which - strlen(which), " %u", (unsigned)seed);
            assert_true(res.test_loss > 0.1); /* stuck, not merely slow */
        } else {
            assert_true(res.test_loss < 0.01);
        }
        net_destroy(n);
        data_close(&tr), data_close(&te);
    }
    print_message("classic XOR: %zu of %d seeds failed to converge in %d epochs (seeds%s)\n",
                  failed, XOR_SEEDS, XOR_EPOCHS, which);
    assert_true(failed >= 1 && failed < XOR_SEEDS); /* some seeds, not all */
    dev_model_close(&sig);
}

/*
 * The Lotka-Volterra prey learned by a 3-32-32-1 tanh network as README's
 * train job does it: 2000 rows, the seeded 20% test split, standardised
 * inputs, calibration, Adam 0.003, batch 32, 150 epochs, seed 1. The test
 * RMSE must be below 0.05 (README states the measured figure), a tenth of the
 * spread of the prey itself.
 */
static void test_lotka_volterra_learns(void **state)
{
    (void)state;
    struct data_set all, tr, te;
    assert_int_equal(data_gen_lotka_volterra(&all, 2000, 1), 0);
    assert_int_equal(data_split(&all, 0.2, 1 ^ 0x5eed5eedu, &tr, &te), 0);
    standardise(&tr, &te);
    double mean = 0, var = 0;
    for (size_t i = 0; i < te.n; i++)
        mean += te.y[i] / (double)te.n;
    for (size_t i = 0; i < te.n; i++)
        var += (te.y[i] - mean) * (te.y[i] - mean) / (double)te.n;
    struct dev_model th, id;
    prepare(&th, ACT_TANH), prepare(&id, ACT_IDENTITY);
    struct net_layer_spec spec[3] = {{32, &th, VIA_EXACT, NULL, 0, 0},
                                     {32, &th, VIA_EXACT, NULL, 0, 0},
                                     {1, &id, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 3, spec, 3, 32, 1, 1, NULL), 0);
    assert_int_equal(net_calibrate(n, tr.x, 32), 0);
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = 0.003;
    struct train_config cfg = {LOSS_MSE, 150, 32, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result res;
    train_net(n, &oc, &tr, &te, &cfg, &res);
    double rmse = sqrt(res.test_loss);
    print_message("lotka_volterra: test RMSE %.4f (prey std %.3f)\n", rmse, sqrt(var));
    assert_true(rmse < 0.05);
    assert_true(rmse < 0.1 * sqrt(var));
    net_destroy(n);
    dev_model_close(&th), dev_model_close(&id);
    data_close(&all), data_close(&tr), data_close(&te);
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gates),
        cmocka_unit_test(test_lotka_volterra_data),
        cmocka_unit_test(test_init_layer),
        cmocka_unit_test(test_classic_xor),
        cmocka_unit_test(test_lotka_volterra_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
