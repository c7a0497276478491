/*
 * test_es.c: the ES optimizer (evolution strategies: antithetic pairs,
 * centred-rank fitness shaping, seeded). Its step against the backprop
 * gradient of the same batch (the directions must agree: cosine above 0.9
 * for a large population); determinism from the seed; refused
 * configurations; spirals learned by forward passes alone; and a layer of
 * Hodgkin-Huxley devices read out as spike rates, trained in situ via
 * device, whose solves are counted exactly; and the members evaluated in
 * parallel give the step of one thread bit for bit.
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

#include "nn.h"
#include "qn_err.h"
#include "train.h"

#include "qt_engine.h"

static void es_config(struct optim_config *oc, size_t population, double sigma, double lr)
{
    optim_config_default(oc, OPTIM_ES);
    oc->population = population, oc->sigma = sigma, oc->lr = lr;
}

/* A 2-4-1 tanh network on 64 spiral points (mse on a 0/1 target); one full-batch step. */
struct fx {
    struct dev_model th, id;
    struct net_layer_spec spec[2];
    struct data_set ds;
};

static void fx_init(struct fx *f)
{
    qt_neuron(&f->th, ACT_TANH), qt_neuron(&f->id, ACT_IDENTITY);
    f->spec[0] = (struct net_layer_spec){4, &f->th, VIA_EXACT, NULL, 0, 0};
    f->spec[1] = (struct net_layer_spec){1, &f->id, VIA_EXACT, NULL, 0, 0};
    assert_int_equal(data_gen_spirals(&f->ds, 64, 2, 0.1, 3), 0);
}

static void fx_close(struct fx *f)
{
    dev_model_close(&f->th), dev_model_close(&f->id);
    data_close(&f->ds);
}

/* One ES step of n over the whole of ds with the given config; the change of params into d. */
static void es_step(struct net *n, const struct optim_config *oc, const struct data_set *ds,
                    uint64_t seed, float *d)
{
    struct optim o;
    assert_int_equal(optim_init(&o, oc, n->n_params), 0);
    memcpy(d, n->params, n->n_params * sizeof *d);
    struct train_config cfg = {LOSS_MSE, 1, ds->n, seed, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result r;
    assert_int_equal(train_run(n, &o, ds, NULL, &cfg, NULL, 0, &r), 0);
    for (size_t i = 0; i < n->n_params; i++)
        d[i] = n->params[i] - d[i];
    optim_close(&o);
}

static void test_es_direction(void **state)
{
    (void)state;
    struct fx f;
    fx_init(&f);
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, f.spec, 2, 64, 1, 7, NULL), 0);
    /* the backprop gradient of the batch's mse at the start */
    size_t N = n->n_params;
    float *g = calloc(N, sizeof *g), *d = malloc(N * sizeof *d), *p0 = malloc(N * sizeof *p0);
    float y[64], dout[64];
    memcpy(p0, n->params, N * sizeof *p0);
    for (size_t i = 0; i < 64; i++)
        y[i] = (float)f.ds.labels[i];
    assert_int_equal(net_forward(n, f.ds.x, 64), 0);
    nn_mse_loss(dout, net_output(n), y, 64, 1);
    memset(n->grads, 0, N * sizeof *n->grads);
    net_backward(n, f.ds.x, dout, 64);
    memcpy(g, n->grads, N * sizeof *g);
    struct optim_config oc;
    es_config(&oc, 4000, 1e-3, 1e-2);
    es_step(n, &oc, &f.ds, 5, d);
    double dot = 0, gg = 0, dd = 0;
    for (size_t i = 0; i < N; i++) {
        if (i == n->layer[0].off_s || i == n->layer[1].off_s) {
            assert_true(d[i] == 0.0f); /* the fixed input scales never move */
            continue;
        }
        dot += -(double)d[i] * g[i], gg += (double)g[i] * g[i], dd += (double)d[i] * d[i];
    }
    double cosine = dot / sqrt(gg * dd);
    print_message("ES step vs -gradient: cosine %.4f over %zu parameters\n", cosine, N);
    assert_true(cosine > 0.9);
    /* the same seed repeats the step bit for bit; another seed does not */
    float *d2 = malloc(N * sizeof *d2);
    memcpy(n->params, p0, N * sizeof *p0);
    es_step(n, &oc, &f.ds, 5, d2);
    assert_memory_equal(d, d2, N * sizeof *d);
    memcpy(n->params, p0, N * sizeof *p0);
    es_step(n, &oc, &f.ds, 6, d2);
    assert_true(memcmp(d, d2, N * sizeof *d) != 0);
    free(g), free(d), free(d2), free(p0);
    net_destroy(n);
    fx_close(&f);
}

static void test_es_config(void **state)
{
    (void)state;
    struct optim o;
    struct optim_config oc;
    es_config(&oc, 64, 0.02, 0.02);
    assert_int_equal(optim_init(&o, &oc, 10), 0);
    assert_int_equal(optim_state_len(&o), 10);
    assert_string_equal(optim_name(OPTIM_ES), "es");
    optim_close(&o);
    size_t bad_pop[] = {0, 1, 3, 63};
    for (size_t i = 0; i < 4; i++) {
        es_config(&oc, bad_pop[i], 0.02, 0.02);
        assert_int_equal(optim_init(&o, &oc, 10), QN_EINVAL);
    }
    es_config(&oc, 64, 0.0, 0.02);
    assert_int_equal(optim_init(&o, &oc, 10), QN_EINVAL);
    es_config(&oc, 64, 0.02, 0.02);
    oc.momentum = 0.9;
    assert_int_equal(optim_init(&o, &oc, 10), QN_EINVAL);
}

/* Spirals (2 arms, 1000 points, the job's split, standardised and calibrated) by
 * forward passes alone: 2-16-2 tanh, population 64, sigma 0.02, lr 0.05, 60 epochs of
 * batch 64: test accuracy above 85%. */
static void test_es_spirals(void **state)
{
    (void)state;
    struct dev_model th, id;
    qt_neuron(&th, ACT_TANH), qt_neuron(&id, ACT_IDENTITY);
    struct net_layer_spec spec[2] = {{16, &th, VIA_EXACT, NULL, 0, 0},
                                     {2, &id, VIA_EXACT, NULL, 0, 0}};
    struct data_set all, tr, te;
    assert_int_equal(data_gen_spirals(&all, 1000, 2, 0.1, 1), 0);
    assert_int_equal(data_split(&all, 0.2, 1 ^ 0x5eed5eedu, &tr, &te), 0);
    struct data_scaler sc; /* standardised and calibrated, as a train job does */
    assert_int_equal(data_scaler_fit(&sc, &tr), 0);
    assert_int_equal(data_scaler_apply(&sc, &tr), 0);
    assert_int_equal(data_scaler_apply(&sc, &te), 0);
    data_scaler_close(&sc);
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 64, 1, 1, NULL), 0);
    assert_int_equal(net_calibrate(n, tr.x, 64), 0);
    struct optim o;
    struct optim_config oc;
    es_config(&oc, 64, 0.02, 0.05);
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 60, 64, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result r;
    assert_int_equal(train_run(n, &o, &tr, &te, &cfg, NULL, 0, &r), 0);
    print_message("ES spirals: test accuracy %.3f, loss %.3f\n", r.test_accuracy, r.test_loss);
    assert_true(r.test_accuracy > 0.85);
    optim_close(&o);
    net_destroy(n);
    dev_model_close(&th), dev_model_close(&id);
    data_close(&all), data_close(&tr), data_close(&te);
}

/*
 * In-situ training of Hodgkin-Huxley devices read out as firing rates (no
 * gradient): a forward-only layer of 3 devices via device, then a readout.
 * Each step forwards the batch at theta and at P members, so a run of S
 * steps of B rows solves S (P + 1) B 3 times; and the parameters moved.
 */
static void test_es_spike_rate(void **state)
{
    (void)state;
    struct dev_model hh, id;
    struct dev_error err;
    dev_model_init(&hh, DEV_HODGKIN_HUXLEY);
    hh.readout.t_max = 100;
    if (dev_model_prepare(&hh, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
    qt_neuron(&id, ACT_IDENTITY);
    struct net_layer_spec spec[2] = {{3, &hh, VIA_DEVICE, NULL, 1, 0},
                                     {2, &id, VIA_EXACT, NULL, 0, 0}};
    struct data_set ds;
    assert_int_equal(data_gen_xor(&ds, 8, 0.1, 1), 0);
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 4, 2, 1, NULL), 0);
    for (size_t j = 0; j < 3; j++)
        n->params[n->layer[0].off_b + j] = 8.0f; /* near the firing threshold */
    n->params[n->layer[1].off_s] = 0.02f;       /* spike rates of tens of Hz to unit size */
    float *p0 = malloc(n->n_params * sizeof *p0);
    memcpy(p0, n->params, n->n_params * sizeof *p0);
    struct optim o;
    struct optim_config oc;
    es_config(&oc, 6, 0.05, 0.05);
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 1, 4, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result r;
    assert_int_equal(train_run(n, &o, &ds, NULL, &cfg, NULL, 0, &r), 0);
    assert_int_equal(n->solves, 2 * (6 + 1) * 4 * 3);
    assert_int_equal(n->failed_solves, 0);
    assert_true(memcmp(p0, n->params, n->n_params * sizeof *p0) != 0);
    assert_true(isfinite(r.train_loss));
    /* backprop through the same layer is refused, as before */
    struct optim adam;
    struct optim_config ac;
    optim_config_default(&ac, OPTIM_ADAM);
    assert_int_equal(optim_init(&adam, &ac, n->n_params), 0);
    assert_int_equal(train_run(n, &adam, &ds, NULL, &cfg, NULL, 0, &r), QN_ENOTDIFF);
    optim_close(&adam);
    free(p0);
    optim_close(&o);
    net_destroy(n);
    dev_model_close(&hh), dev_model_close(&id);
    data_close(&ds);
}

/*
 * The step does not depend on the thread count: a network of crn_relu devices via device
 * (kappa spread lognormal, drive and output noise), trained hardware-aware by ES (a fresh
 * chip and noise every step, so every member's noise key matters) for 2 epochs of 3
 * steps on 1, 2 and 3 threads (members in parallel on replicas), ends with the same
 * parameters bit for bit, the same losses and the same count of solves; so does the
 * exact tanh network of the spirals on 1 and 2 threads.
 */
static struct net *es_crn_net(struct dev_model *crn, struct dev_model *id, size_t threads)
{
    struct dev_error err;
    dev_model_init(crn, DEV_CRN_RELU);
    assert_int_equal(dev_model_set_param(crn, "kappa", 0.05), 0);
    for (size_t i = 0; i < crn->n_params; i++)
        if (strcmp(crn->param_names[i], "kappa") == 0)
            crn->vary[i] = (struct dev_spread){DEV_DIST_LOGNORMAL, 0.3};
    crn->noise = (struct dev_noise){0.05, 0.05};
    if (dev_model_prepare(crn, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
    qt_neuron(id, ACT_IDENTITY);
    struct net_layer_spec spec[2] = {{4, crn, VIA_DEVICE, NULL, 1, 0},
                                     {2, id, VIA_EXACT, NULL, 0, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 8, threads, 3, NULL), 0);
    return n;
}

/* Trains n by ES (population 10) with cfg on ds; the result into r. */
static void es_train(struct net *n, const struct data_set *ds, const struct train_config *cfg,
                     struct train_result *r)
{
    struct optim o;
    struct optim_config oc;
    es_config(&oc, 10, 0.05, 0.05);
    assert_int_equal(optim_init(&o, &oc, n->n_params), 0);
    assert_int_equal(train_run(n, &o, ds, ds, cfg, NULL, 0, r), 0);
    optim_close(&o);
}

static void test_es_threads(void **state)
{
    (void)state;
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 24, 2, 0.1, 5), 0);
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 2, 8, 4, 0, {0}, TRAIN_HARDWARE_AWARE, 0};
    struct dev_model crn[3], id[3];
    struct net *n[3];
    struct train_result r[3];
    for (size_t t = 0; t < 3; t++) {
        n[t] = es_crn_net(&crn[t], &id[t], t + 1);
        es_train(n[t], &ds, &cfg, &r[t]);
    }
    /* 6 steps of 8 rows at theta and 10 members, then 2 test passes of 24 rows */
    assert_int_equal(n[0]->solves, (6 * 8 * 11 + 2 * 24) * 4);
    for (size_t t = 1; t < 3; t++) {
        assert_memory_equal(n[0]->params, n[t]->params, n[0]->n_params * sizeof(float));
        assert_true(r[0].train_loss == r[t].train_loss);
        assert_true(r[0].test_loss == r[t].test_loss);
        assert_int_equal(n[0]->solves, n[t]->solves);
    }
    for (size_t t = 0; t < 3; t++) {
        net_destroy(n[t]);
        dev_model_close(&crn[t]), dev_model_close(&id[t]);
    }
    struct fx f;
    fx_init(&f);
    cfg = (struct train_config){LOSS_MSE, 3, 16, 2, 0, {0}, TRAIN_NOMINAL, 0};
    for (size_t t = 0; t < 2; t++) {
        assert_int_equal(net_create(&n[t], 2, f.spec, 2, 16, t + 1, 7, NULL), 0);
        es_train(n[t], &f.ds, &cfg, &r[t]);
    }
    assert_memory_equal(n[0]->params, n[1]->params, n[0]->n_params * sizeof(float));
    net_destroy(n[0]), net_destroy(n[1]);
    fx_close(&f);
    data_close(&ds);
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_es_direction),
        cmocka_unit_test(test_es_config),
        cmocka_unit_test(test_es_spirals),
        cmocka_unit_test(test_es_spike_rate),
        cmocka_unit_test(test_es_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
