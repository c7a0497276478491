/*
 * test_optim.c: SGD and Adam steps against hand computation in double,
 * frozen ranges, and byte-for-byte state save and restore.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "optim.h"
#include "qn_err.h"

static void assert_close(double got, double want, double rel)
{
    if (fabs(got - want) > rel * fmax(fabs(want), 1e-6))
        fail_msg("got %.9g, want %.9g", got, want);
}

static void test_sgd_momentum(void **state)
{
    (void)state;
    struct optim_config c;
    struct optim o;
    optim_config_default(&c, OPTIM_SGD);
    c.lr = 0.1;
    c.momentum = 0.9;
    c.weight_decay = 0.01;
    assert_int_equal(optim_init(&o, &c, 2), QN_OK);
    float p[2] = {1.0f, -2.0f};
    const float g1[2] = {0.5f, 0.25f}, g2[2] = {-1.0f, 0.0f};
    double pd[2] = {1.0, -2.0}, v[2] = {0, 0};
    const float *gs[2] = {g1, g2};
    for (int step = 0; step < 2; step++) {
        optim_step(&o, p, gs[step]);
        for (int i = 0; i < 2; i++) { /* g' = g + wd p; v = mu v + g'; p -= lr v */
            double gi = gs[step][i] + 0.01 * pd[i];
            v[i] = 0.9 * v[i] + gi;
            pd[i] -= 0.1 * v[i];
            assert_close(p[i], pd[i], 1e-6);
        }
    }
    assert_int_equal(o.t, 2);
    assert_int_equal(optim_state_len(&o), 2);
    optim_close(&o);
}

/* Adam by hand in double; decoupled selects AdamW or L2. */
static void adam_by_hand(int decoupled)
{
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
    struct optim_config c;
    struct optim o;
    optim_config_default(&c, OPTIM_ADAM);
    c.lr = lr;
    c.weight_decay = wd;
    c.decoupled = decoupled;
    assert_int_equal(optim_init(&o, &c, 3), QN_OK);
    float p[3] = {0.5f, -1.5f, 2.0f};
    double pd[3] = {0.5, -1.5, 2.0}, m[3] = {0}, v[3] = {0};
    const float g[3][3] = {{0.1f, -0.2f, 3.0f}, {-0.3f, 0.0f, 1.0f}, {0.2f, 0.5f, -2.0f}};
    for (int t = 1; t <= 3; t++) {
        optim_step(&o, p, g[t - 1]);
        for (int i = 0; i < 3; i++) {
            double gi = g[t - 1][i] + (decoupled ? 0 : wd * pd[i]);
            if (decoupled)
                pd[i] -= lr * wd * pd[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            double mh = m[i] / (1 - pow(b1, t)), vh = v[i] / (1 - pow(b2, t));
            pd[i] -= lr * mh / (sqrt(vh) + eps);
            assert_close(p[i], pd[i], 1e-5);
            assert_close(o.m[i], m[i], 1e-5);
            assert_close(o.v[i], v[i], 1e-5);
        }
    }
    assert_int_equal(optim_state_len(&o), 6);
    optim_close(&o);
}

static void test_adamw(void **state)
{
    (void)state;
    adam_by_hand(1);
}

static void test_adam_l2(void **state)
{
    (void)state;
    adam_by_hand(0);
}

/* The first Adam step moves every parameter by lr in the direction of -g. */
static void test_adam_first_step(void **state)
{
    (void)state;
    struct optim_config c;
    struct optim o;
    optim_config_default(&c, OPTIM_ADAM);
    assert_int_equal(optim_init(&o, &c, 2), QN_OK);
    float p[2] = {0, 0}, g[2] = {5.0f, -0.001f};
    optim_step(&o, p, g);
    assert_close(p[0], -1e-3, 1e-4);
    assert_close(p[1], 1e-3, 1e-4);
    optim_close(&o);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct optim_config c;
    struct optim o;
    optim_config_default(&c, OPTIM_ADAM);
    c.lr = 0;
    assert_int_equal(optim_init(&o, &c, 4), QN_EINVAL);
    optim_config_default(&c, OPTIM_ADAM);
    c.beta2 = 1.0f;
    assert_int_equal(optim_init(&o, &c, 4), QN_EINVAL);
    optim_config_default(&c, OPTIM_SGD);
    c.momentum = -0.1f;
    assert_int_equal(optim_init(&o, &c, 4), QN_EINVAL);
    optim_config_default(&c, OPTIM_SGD);
    c.lr = NAN;
    assert_int_equal(optim_init(&o, &c, 4), QN_EINVAL);
    optim_config_default(&c, OPTIM_SGD);
    c.weight_decay = -1;
    assert_int_equal(optim_init(&o, &c, 4), QN_EINVAL);
    enum optim_kind k;
    assert_int_equal(optim_from_name("adam", &k), QN_OK);
    assert_int_equal(k, OPTIM_ADAM);
    assert_int_equal(optim_from_name("lbfgs", &k), QN_ESPEC);
}

/* Frozen ranges: parameters and their state never change, byte for byte. */
static void test_freeze(void **state)
{
    (void)state;
    enum { N = 20 };
    struct optim_config c;
    struct optim o;
    optim_config_default(&c, OPTIM_ADAM);
    c.weight_decay = 0.5; /* decay must not leak into frozen weights either */
    assert_int_equal(optim_init(&o, &c, N), QN_OK);
    assert_int_equal(optim_freeze(&o, 3, 4), QN_OK);  /* [3, 7) */
    assert_int_equal(optim_freeze(&o, 6, 4), QN_OK);  /* overlapping: [3, 10) */
    assert_int_equal(optim_freeze(&o, 19, 1), QN_OK); /* the last one */
    assert_int_equal(optim_freeze(&o, 15, 6), QN_ERANGE);
    assert_int_equal(optim_freeze(&o, 21, 0), QN_ERANGE);
    float p[N], before[N], g[N];
    for (int i = 0; i < N; i++) {
        p[i] = before[i] = (float)i * 0.37f - 2.1f;
        g[i] = 1.0f + (float)i;
    }
    for (int s = 0; s < 5; s++)
        optim_step(&o, p, g);
    for (int i = 0; i < N; i++) {
        int frozen = (i >= 3 && i < 10) || i == 19;
        if (frozen) {
            assert_memory_equal(&p[i], &before[i], sizeof(float));
            assert_true(o.m[i] == 0.0f && o.v[i] == 0.0f);
        } else {
            if (p[i] == before[i])
                fail_msg("parameter %d did not move", i);
        }
    }
    optim_close(&o);
}

/* Saving state and t, restoring into a fresh optimizer, continues bit-identically. */
static void test_state_roundtrip(void **state)
{
    (void)state;
    enum { N = 8 };
    struct optim_config c;
    struct optim a, b;
    optim_config_default(&c, OPTIM_ADAM);
    assert_int_equal(optim_init(&a, &c, N), QN_OK);
    float pa[N], g[N];
    for (int i = 0; i < N; i++) {
        pa[i] = (float)i;
        g[i] = (float)(i % 3) - 1.1f;
    }
    optim_step(&a, pa, g);
    optim_step(&a, pa, g);
    float saved[2 * N], pb[N];
    memcpy(saved, a.state, sizeof saved);
    memcpy(pb, pa, sizeof pb);
    uint64_t t = a.t;
    assert_int_equal(optim_init(&b, &c, N), QN_OK);
    memcpy(b.state, saved, optim_state_len(&b) * sizeof(float));
    b.t = t;
    for (int s = 0; s < 3; s++) {
        optim_step(&a, pa, g);
        optim_step(&b, pb, g);
    }
    assert_memory_equal(pa, pb, sizeof pa);
    assert_memory_equal(a.state, b.state, 2 * N * sizeof(float));
    optim_reset(&b);
    assert_true(b.t == 0 && b.m[0] == 0.0f && b.v[N - 1] == 0.0f);
    optim_close(&a);
    optim_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_momentum),    cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_adam_l2),         cmocka_unit_test(test_adam_first_step),
        cmocka_unit_test(test_bad_config),      cmocka_unit_test(test_freeze),
        cmocka_unit_test(test_state_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
