/*
 * test_train.c: engine/train.c's evaluation by row ranges.
 *
 * Covers: train_evaluate_rows over slices that start at multiples of the
 * batch, evaluated apart on networks of their own (as qn-mpi's ranks do),
 * gives per-batch loss sums whose sum in order is bit for bit
 * train_evaluate's loss, and the same count of rows classified right; with
 * the devices' noise on, a slice whose network counts its forward passes
 * from its first batch draws the noise of the whole run; a range outside
 * the dataset is refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "net.h"
#include "qn_err.h"
#include "train.h"

#define ROWS 23 /* 6 batches of 4 rows, the last of 3 */
#define CAP 4
#define N_IN 3

static void prepare(struct dev_model *d)
{
    struct dev_error err;
    if (dev_model_prepare(d, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
}

/* A tanh layer with output noise and a 3-class readout, seeded alike each time. */
static struct net *make_net(struct dev_model *hid, struct dev_model *out)
{
    struct net_layer_spec spec[2] = {{5, hid, VIA_EXACT, NULL, 1, 0},
                                     {3, out, VIA_EXACT, NULL, 1, 0}};
    struct net *n = NULL;
    assert_int_equal(net_create(&n, N_IN, spec, 2, CAP, 1, 11, NULL), 0);
    return n;
}

/* ROWS rows of smooth inputs with labels 0..2. */
static void make_data(struct data_set *ds)
{
    assert_int_equal(data_alloc(ds, ROWS, N_IN, 3, 0), 0);
    for (size_t i = 0; i < ROWS; i++) {
        for (size_t j = 0; j < N_IN; j++)
            ds->x[i * N_IN + j] = (float)sin(0.7 * (double)i + (double)j);
        ds->labels[i] = (int)(i % 3);
    }
}

/* Evaluates rows [lo, hi) on a fresh network whose noise starts at batch lo / CAP. */
static void slice(struct dev_model *hid, struct dev_model *out, const struct data_set *ds,
                  size_t lo, size_t hi, double *sums, size_t *correct)
{
    struct net *n = make_net(hid, out);
    net_set_noise(n, 1, 9);
    n->noise_step = lo / CAP;
    assert_int_equal(train_evaluate_rows(n, ds, LOSS_CROSS_ENTROPY, lo, hi, sums, correct), 0);
    net_destroy(n);
}

static void test_slices_sum_to_the_whole(void **state)
{
    (void)state;
    struct dev_model hid, out;
    dev_model_init(&hid, DEV_NEURON);
    hid.activation = ACT_TANH;
    hid.noise.output_sd = 0.1;
    prepare(&hid);
    dev_model_init(&out, DEV_NEURON);
    out.activation = ACT_IDENTITY;
    prepare(&out);
    struct data_set ds = {0};
    make_data(&ds);

    struct net *n = make_net(&hid, &out);
    net_set_noise(n, 1, 9);
    double loss = NAN, acc = NAN;
    assert_int_equal(train_evaluate(n, &ds, LOSS_CROSS_ENTROPY, &loss, &acc), 0);
    double sums[6] = {0}, noiseless = NAN;
    net_set_noise(n, 0, 9);
    assert_int_equal(train_evaluate(n, &ds, LOSS_CROSS_ENTROPY, &noiseless, &acc), 0);
    assert_true(noiseless != loss); /* the noise is drawn: the check below can fail */
    net_set_noise(n, 1, 9);
    assert_int_equal(train_evaluate(n, &ds, LOSS_CROSS_ENTROPY, &loss, &acc), 0);
    size_t ignored = 0;
    assert_int_equal(train_evaluate_rows(n, &ds, LOSS_CROSS_ENTROPY, 5, ROWS + 1, sums, &ignored),
                     QN_EINVAL);
    net_destroy(n);

    size_t correct = 0;
    slice(&hid, &out, &ds, 0, 8, sums, &correct);      /* batches 0, 1 */
    slice(&hid, &out, &ds, 8, 12, sums + 2, &correct); /* batch 2 */
    slice(&hid, &out, &ds, 12, ROWS, sums + 3, &correct); /* batches 3, 4, 5 */
    double sum = 0;
    for (size_t k = 0; k < 6; k++)
        sum += sums[k];
    assert_true(sum / (double)ROWS == loss); /* the same bits */
    assert_true((double)correct / (double)ROWS == acc);
    data_close(&ds);
    dev_model_close(&hid);
    dev_model_close(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_sum_to_the_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
