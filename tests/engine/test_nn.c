/*
 * test_nn.c: the nn.h kernels against references written here in double.
 *
 * Gradient checks: each kernel's float gradient is compared with central
 * finite differences (eps 1e-6) of a double-precision forward written in this
 * file, with relative error |a - r| / max(|a|, |r|, 1e-3) below 1e-4.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "act.h"
#include "nn.h"
#include "qn_err.h"

#define FD_EPS 1e-6
#define REL_TOL 1e-4

/* A small deterministic generator for test data, uniform in [lo, hi). */
static double urand(uint64_t *s, double lo, double hi)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (double)(*s >> 11) / 9007199254740992.0;
}

static void fill(float *a, size_t n, uint64_t *s, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)urand(s, lo, hi);
}

static double rel_err(double a, double r)
{
    double den = fmax(fmax(fabs(a), fabs(r)), 1e-3);
    return fabs(a - r) / den;
}

static void check_grad(double analytic, double reference, const char *what, size_t i)
{
    double e = rel_err(analytic, reference);
    if (e >= REL_TOL)
        fail_msg("%s[%zu]: analytic %.9g vs finite difference %.9g (rel %.3g)", what, i, analytic,
                 reference, e);
}

/* ---- dense ---- */

enum { B = 3, IN = 4, OUT = 5 };

/* L = sum_{b,o} R[b,o] * (inp W^T + b)[b,o] in double. */
static double dense_ref(const double *inp, const double *w, const double *bias, const float *R)
{
    double L = 0;
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OUT; o++) {
            double z = bias[o];
            for (int i = 0; i < IN; i++)
                z += inp[b * IN + i] * w[o * IN + i];
            L += R[b * OUT + o] * z;
        }
    return L;
}

/* Central difference of dense_ref with respect to v[i]. */
static double dense_fd(double *v, size_t i, const double *inp, const double *w, const double *bias,
                       const float *R)
{
    double keep = v[i];
    v[i] = keep + FD_EPS;
    double lp = dense_ref(inp, w, bias, R);
    v[i] = keep - FD_EPS;
    double lm = dense_ref(inp, w, bias, R);
    v[i] = keep;
    return (lp - lm) / (2 * FD_EPS);
}

static void to_double(double *d, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
}

static void test_dense_forward(void **state)
{
    (void)state;
    uint64_t s = 1;
    float inp[B * IN], w[OUT * IN], bias[OUT], out[B * OUT];
    fill(inp, B * IN, &s, -1, 1);
    fill(w, OUT * IN, &s, -1, 1);
    fill(bias, OUT, &s, -1, 1);
    nn_dense_forward(out, inp, w, bias, B, IN, OUT);
    for (int b = 0; b < B; b++)
        for (int o = 0; o < OUT; o++) {
            double z = bias[o];
            for (int i = 0; i < IN; i++)
                z += (double)inp[b * IN + i] * w[o * IN + i];
            assert_true(fabs(out[b * OUT + o] - z) < 1e-5);
        }
    nn_dense_forward(out, inp, w, NULL, B, IN, OUT); /* no bias */
    double z = 0;
    for (int i = 0; i < IN; i++)
        z += (double)inp[i] * w[i];
    assert_true(fabs(out[0] - z) < 1e-5);
}

static void test_dense_grad(void **state)
{
    (void)state;
    uint64_t s = 2;
    float inp[B * IN], w[OUT * IN], bias[OUT], R[B * OUT];
    float dinp[B * IN] = {0}, dw[OUT * IN] = {0}, db[OUT] = {0};
    double inp_d[B * IN], w_d[OUT * IN], b_d[OUT];
    fill(inp, B * IN, &s, -1, 1);
    fill(w, OUT * IN, &s, -1, 1);
    fill(bias, OUT, &s, -1, 1);
    fill(R, B * OUT, &s, -1, 1);
    to_double(inp_d, inp, B * IN);
    to_double(w_d, w, OUT * IN);
    to_double(b_d, bias, OUT);
    nn_dense_backward(dinp, dw, db, R, inp, w, B, IN, OUT);
    for (size_t i = 0; i < B * IN; i++)
        check_grad(dinp[i], dense_fd(inp_d, i, inp_d, w_d, b_d, R), "dinp", i);
    for (size_t i = 0; i < OUT * IN; i++)
        check_grad(dw[i], dense_fd(w_d, i, inp_d, w_d, b_d, R), "dw", i);
    for (size_t i = 0; i < OUT; i++)
        check_grad(db[i], dense_fd(b_d, i, inp_d, w_d, b_d, R), "db", i);
}

/* Backward accumulates: a second call doubles; NULL outputs are skipped. */
static void test_dense_accumulates(void **state)
{
    (void)state;
    uint64_t s = 3;
    float inp[B * IN], w[OUT * IN], R[B * OUT];
    float dw1[OUT * IN] = {0}, dw2[OUT * IN] = {0}, db[OUT] = {0};
    fill(inp, B * IN, &s, -1, 1);
    fill(w, OUT * IN, &s, -1, 1);
    fill(R, B * OUT, &s, -1, 1);
    nn_dense_backward(NULL, dw1, NULL, R, inp, w, B, IN, OUT);
    nn_dense_backward(NULL, dw2, db, R, inp, w, B, IN, OUT);
    nn_dense_backward(NULL, dw2, NULL, R, inp, w, B, IN, OUT);
    for (size_t i = 0; i < OUT * IN; i++)
        assert_true(fabsf(dw2[i] - 2 * dw1[i]) <= 1e-6f * fabsf(dw1[i]) + 1e-7f);
    for (size_t o = 0; o < OUT; o++)
        assert_true(fabsf(db[o] - (R[o] + R[OUT + o] + R[2 * OUT + o])) < 1e-6f);
}

/* ---- activations ---- */

enum { NA = 64 };

/* L = sum R[i] f(z[i]) in double. */
static double act_ref(enum act_kind k, const double *z, const float *R)
{
    double L = 0;
    for (size_t i = 0; i < NA; i++)
        L += R[i] * act_eval(k, z[i]);
    return L;
}

static void check_activation(enum act_kind k)
{
    uint64_t s = 10 + (uint64_t)k;
    float z[NA], out[NA], R[NA], dz[NA] = {0};
    double zd[NA];
    fill(z, NA, &s, -6, 6);
    fill(R, NA, &s, -1, 1);
    z[0] = 40.0f; /* saturation and overflow guards */
    z[1] = -40.0f;
    for (size_t i = 0; i < NA; i++)
        if (fabsf(z[i]) < 0.01f)
            z[i] = 0.5f; /* keep relu's kink out of the difference stencil */
    to_double(zd, z, NA);
    nn_act_forward(out, z, NA, k);
    for (size_t i = 0; i < NA; i++) {
        double r = act_eval(k, zd[i]);
        assert_true(isfinite(out[i]));
        if (fabs(out[i] - r) > 1e-6 * fmax(1, fabs(r)))
            fail_msg("%s(%g) = %.9g, expected %.9g", act_name(k), zd[i], out[i], r);
    }
    nn_act_backward(dz, R, z, out, NA, k);
    for (size_t i = 0; i < NA; i++) {
        double keep = zd[i];
        zd[i] = keep + FD_EPS;
        double lp = act_ref(k, zd, R);
        zd[i] = keep - FD_EPS;
        double lm = act_ref(k, zd, R);
        zd[i] = keep;
        check_grad(dz[i], (lp - lm) / (2 * FD_EPS), act_name(k), i);
    }
}

static void test_act_identity(void **state)
{
    (void)state;
    check_activation(ACT_IDENTITY);
}

static void test_act_relu(void **state)
{
    (void)state;
    check_activation(ACT_RELU);
}

static void test_act_sigmoid(void **state)
{
    (void)state;
    check_activation(ACT_SIGMOID);
}

static void test_act_tanh(void **state)
{
    (void)state;
    check_activation(ACT_TANH);
}

static void test_act_softplus(void **state)
{
    (void)state;
    check_activation(ACT_SOFTPLUS);
}

/* In-place forward is allowed. */
static void test_act_inplace(void **state)
{
    (void)state;
    float z[3] = {-1.0f, 0.0f, 2.0f};
    nn_act_forward(z, z, 3, ACT_RELU);
    assert_true(z[0] == 0.0f && z[1] == 0.0f && z[2] == 2.0f);
}

/* ---- losses ---- */

enum { LB = 4, LT = 3 };

static double mse_ref(const double *p, const float *t)
{
    double L = 0;
    for (size_t i = 0; i < LB * LT; i++)
        L += (p[i] - t[i]) * (p[i] - t[i]);
    return L / (LB * LT);
}

static void test_mse(void **state)
{
    (void)state;
    uint64_t s = 20;
    float p[LB * LT], t[LB * LT], dp[LB * LT];
    double pd[LB * LT];
    fill(p, LB * LT, &s, -2, 2);
    fill(t, LB * LT, &s, -2, 2);
    to_double(pd, p, LB * LT);
    double L = nn_mse_loss(dp, p, t, LB, LT);
    assert_true(fabs(L - mse_ref(pd, t)) < 1e-6 * mse_ref(pd, t));
    for (size_t i = 0; i < LB * LT; i++) {
        double keep = pd[i];
        pd[i] = keep + FD_EPS;
        double lp = mse_ref(pd, t);
        pd[i] = keep - FD_EPS;
        double lm = mse_ref(pd, t);
        pd[i] = keep;
        check_grad(dp[i], (lp - lm) / (2 * FD_EPS), "dmse", i);
    }
    /* a closed form: pred 1, target 0 everywhere gives loss 1 */
    float one[2] = {1, 1}, zero[2] = {0, 0};
    assert_true(nn_mse_loss(NULL, one, zero, 2, 1) == 1.0);
}

enum { CB = 4, CC = 5 };

/* Mean cross-entropy in double with a stable log-sum-exp. */
static double xent_ref(const double *z, const int *lab)
{
    double L = 0;
    for (size_t b = 0; b < CB; b++) {
        double mx = z[b * CC];
        for (size_t c = 1; c < CC; c++)
            mx = fmax(mx, z[b * CC + c]);
        double s = 0;
        for (size_t c = 0; c < CC; c++)
            s += exp(z[b * CC + c] - mx);
        L += mx + log(s) - z[b * CC + (size_t)lab[b]];
    }
    return L / CB;
}

static void test_xent(void **state)
{
    (void)state;
    uint64_t s = 30;
    float z[CB * CC], dz[CB * CC];
    double zd[CB * CC], L;
    int lab[CB] = {0, 4, 2, 2};
    fill(z, CB * CC, &s, -3, 3);
    to_double(zd, z, CB * CC);
    assert_int_equal(nn_xent_loss(&L, dz, z, lab, CB, CC), QN_OK);
    assert_true(fabs(L - xent_ref(zd, lab)) < 1e-6 * xent_ref(zd, lab));
    for (size_t i = 0; i < CB * CC; i++) {
        double keep = zd[i];
        zd[i] = keep + FD_EPS;
        double lp = xent_ref(zd, lab);
        zd[i] = keep - FD_EPS;
        double lm = xent_ref(zd, lab);
        zd[i] = keep;
        check_grad(dz[i], (lp - lm) / (2 * FD_EPS), "dxent", i);
    }
    /* each row of the gradient sums to zero */
    for (size_t b = 0; b < CB; b++) {
        double sum = 0;
        for (size_t c = 0; c < CC; c++)
            sum += dz[b * CC + c];
        assert_true(fabs(sum) < 1e-7);
    }
}

/* Huge logits must not overflow: log-sum-exp subtracts the maximum. */
static void test_xent_stable(void **state)
{
    (void)state;
    float z[3] = {1000.0f, 1001.0f, 999.0f}, dz[3];
    int lab = 1;
    double L;
    assert_int_equal(nn_xent_loss(&L, dz, z, &lab, 1, 3), QN_OK);
    double want = log(exp(-1.0) + 1 + exp(-2.0));
    assert_true(fabs(L - want) < 1e-6);
    assert_true(isfinite(dz[0]) && isfinite(dz[1]) && isfinite(dz[2]));
    /* uniform logits: loss log C */
    float u[4] = {-7, -7, -7, -7};
    int l0 = 3;
    assert_int_equal(nn_xent_loss(&L, NULL, u, &l0, 1, 4), QN_OK);
    assert_true(fabs(L - log(4.0)) < 1e-7);
}

static void test_xent_bad_label(void **state)
{
    (void)state;
    float z[4] = {0, 1, 2, 3};
    int bad[2] = {1, 2};
    int neg[2] = {1, -1};
    double L = 42;
    assert_int_equal(nn_xent_loss(&L, NULL, z, bad, 2, 2), QN_ERANGE);
    assert_int_equal(nn_xent_loss(&L, NULL, z, neg, 2, 2), QN_ERANGE);
    assert_true(L == 42);
}

static void test_argmax(void **state)
{
    (void)state;
    float z[6] = {0, 3, 3, 5, -1, 2};
    int pred[2], lab[2] = {1, 2};
    nn_argmax(pred, z, 2, 3);
    assert_int_equal(pred[0], 1); /* tie: lowest index */
    assert_int_equal(pred[1], 0);
    assert_int_equal(nn_count_correct(z, lab, 2, 3), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_forward),
        cmocka_unit_test(test_dense_grad),
        cmocka_unit_test(test_dense_accumulates),
        cmocka_unit_test(test_act_identity),
        cmocka_unit_test(test_act_relu),
        cmocka_unit_test(test_act_sigmoid),
        cmocka_unit_test(test_act_tanh),
        cmocka_unit_test(test_act_softplus),
        cmocka_unit_test(test_act_inplace),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_xent_stable),
        cmocka_unit_test(test_xent_bad_label),
        cmocka_unit_test(test_argmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
