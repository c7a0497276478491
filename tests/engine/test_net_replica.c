/*
 * test_net_replica.c: replicas of a network and whole passes in parallel
 * (net_replica.h). A replica of a network of crn_relu devices with kappa
 * spread and drive and output noise, set to a chip, answers a forward pass
 * bit for bit as its source does (outputs, solves), also after the source's
 * parameters change and the replica is synchronised. Scoring chips with
 * train_evaluate_chips on 1, 2 or 3 threads gives, chip by chip and bit for
 * bit, what train_evaluate gives on each chip alone, for chip counts that do
 * and do not fill whole rounds of threads, with the same count of solves.
 * net_replica_run computes every item once, and on failure returns the code
 * of the lowest-numbered failing item, whatever the number of threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "net_replica.h"
#include "qn_err.h"
#include "train.h"

#include "qt_engine.h"

/* crn_relu, kappa 0.05 spread lognormal cv 0.3, drive and output noise 0.05; and
 * identity neurons. */
struct devices {
    struct dev_model crn, ident;
};

static void devices_init(struct devices *d)
{
    dev_model_init(&d->crn, DEV_CRN_RELU);
    assert_int_equal(dev_model_set_param(&d->crn, "kappa", 0.05), 0);
    for (size_t i = 0; i < d->crn.n_params; i++)
        if (strcmp(d->crn.param_names[i], "kappa") == 0)
            d->crn.vary[i] = (struct dev_spread){DEV_DIST_LOGNORMAL, 0.3};
    d->crn.noise = (struct dev_noise){0.05, 0.05};
    qt_dev_prepare(&d->crn);
    dev_model_init(&d->ident, DEV_NEURON);
    d->ident.activation = ACT_IDENTITY;
    qt_dev_prepare(&d->ident);
}

static void devices_close(struct devices *d)
{
    dev_model_close(&d->crn), dev_model_close(&d->ident);
}

/* 2 -> 5 crn via device -> 2 identity outputs, batches of up to 16, `threads` threads. */
static struct net *small_net(const struct devices *d, size_t threads)
{
    struct net_layer_spec spec[2] = {{5, &d->crn, VIA_DEVICE, NULL, 1, 0},
                                     {2, &d->ident, VIA_EXACT, NULL, 1, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, 2, spec, 2, 16, threads, 11, NULL), 0);
    return n;
}

static void test_replica_forward(void **state)
{
    (void)state;
    struct devices d;
    devices_init(&d);
    struct net *n = small_net(&d, 2), *r = NULL;
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 16, 2, 0.1, 2), 0);
    net_set_chip(n, 4);
    net_set_noise(n, 1, 9);
    assert_int_equal(net_forward(n, ds.x, 16), 0); /* the noise counter moves on */
    assert_int_equal(net_replica_create(&r, n, 1), 0);
    assert_int_equal(r->n_threads, 1);
    assert_int_equal(r->solves, 0);
    size_t before = n->solves;
    assert_int_equal(net_forward(n, ds.x, 16), 0);
    assert_int_equal(net_forward(r, ds.x, 16), 0);
    assert_memory_equal(net_output(n), net_output(r), 16 * 2 * sizeof(float));
    assert_int_equal(r->solves, n->solves - before);
    assert_int_equal(r->solves, 16 * 5);
    /* new parameters, another chip: a synchronised replica follows */
    for (size_t i = 0; i < n->n_params; i++)
        n->params[i] *= 0.9f;
    net_set_chip(n, 8);
    net_replica_sync(r, n);
    assert_int_equal(r->solves, 0);
    assert_int_equal(net_forward(n, ds.x, 16), 0);
    assert_int_equal(net_forward(r, ds.x, 16), 0);
    assert_memory_equal(net_output(n), net_output(r), 16 * 2 * sizeof(float));
    size_t total = n->solves;
    net_replica_absorb(n, r);
    assert_int_equal(n->solves, total + 16 * 5);
    assert_int_equal(r->solves, 0);
    net_destroy(r), net_destroy(n);
    data_close(&ds);
    devices_close(&d);
}

/* Chips 3 .. 3 + count - 1 of a 3-thread, a 2-thread and a 1-thread network, against
 * train_evaluate on each chip alone (a fresh 1-thread network per chip). */
static void test_chips_parallel(void **state)
{
    (void)state;
    struct devices d;
    devices_init(&d);
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 40, 2, 0.1, 6), 0); /* 3 batches of 16 */
    double loss1[5], acc1[5];
    size_t solves1 = 0;
    for (size_t i = 0; i < 5; i++) {
        struct net *one = small_net(&d, 1);
        net_set_chip(one, 3 + i);
        net_set_noise(one, 1, 3 + i);
        assert_int_equal(train_evaluate(one, &ds, LOSS_CROSS_ENTROPY, &loss1[i], &acc1[i]), 0);
        solves1 += one->solves;
        net_destroy(one);
    }
    assert_true(loss1[0] != loss1[1]); /* the chips differ */
    for (size_t threads = 1; threads <= 3; threads++)
        for (size_t count = 1; count <= 5; count++) {
            struct net *n = small_net(&d, threads);
            double loss[5], acc[5];
            assert_int_equal(
                train_evaluate_chips(n, &ds, LOSS_CROSS_ENTROPY, 3, count, 1, loss, acc), 0);
            assert_memory_equal(loss, loss1, count * sizeof *loss);
            assert_memory_equal(acc, acc1, count * sizeof *acc);
            assert_int_equal(n->solves, solves1 / 5 * count);
            net_destroy(n);
        }
    /* shapes that do not fit are refused before any chip runs */
    struct net *n = small_net(&d, 2);
    double l, a;
    ds.d = 3;
    assert_int_equal(train_evaluate_chips(n, &ds, LOSS_CROSS_ENTROPY, 3, 2, 1, &l, &a), QN_EINVAL);
    ds.d = 2;
    assert_int_equal(n->solves, 0);
    net_destroy(n);
    data_close(&ds);
    devices_close(&d);
}

/* Items 0 .. 19: each counted once; items 5 and 12 fail (with different codes). */
struct run_ctx {
    atomic_int seen[20];
    int fail;
};

static int run_item(struct net *r, size_t t, size_t item, void *ctx)
{
    struct run_ctx *c = ctx;
    (void)r, (void)t;
    atomic_fetch_add(&c->seen[item], 1);
    if (c->fail && item == 12)
        return QN_ENOMEM;
    return c->fail && item == 5 ? QN_EINVAL : QN_OK;
}

static void test_run_items(void **state)
{
    (void)state;
    struct net *reps[4] = {NULL, NULL, NULL, NULL}; /* run_item needs no network */
    for (size_t T = 1; T <= 4; T++) {
        struct run_ctx c;
        for (size_t i = 0; i < 20; i++)
            atomic_init(&c.seen[i], 0);
        c.fail = 0;
        assert_int_equal(net_replica_run(reps, T, 20, run_item, &c), 0);
        for (size_t i = 0; i < 20; i++)
            assert_int_equal(atomic_load(&c.seen[i]), 1);
        for (size_t i = 0; i < 20; i++)
            atomic_init(&c.seen[i], 0);
        c.fail = 1;
        assert_int_equal(net_replica_run(reps, T, 20, run_item, &c), QN_EINVAL);
        for (size_t i = 0; i <= 5; i++)
            assert_int_equal(atomic_load(&c.seen[i]), 1);
        for (size_t i = 6; i < 20; i++)
            assert_true(atomic_load(&c.seen[i]) <= 1);
    }
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replica_forward),
        cmocka_unit_test(test_chips_parallel),
        cmocka_unit_test(test_run_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
