/*
 * test_mlp.c: the MLP end to end: gradients against finite differences of a
 * double-precision forward written here, seeded initialisation, training
 * XOR (2-2-1 sigmoid) to 100% and sine on [-pi, pi] (1-16-1 tanh) to test
 * RMSE < 0.02, and bit-identical repeat runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "data.h"
#include "mlp.h"
#include "nn.h"
#include "optim.h"
#include "qn_err.h"

#define FD_EPS 1e-6
#define REL_TOL 1e-4

/* ---- a reference forward in double ---- */

/* Output (B, sizes[L]) of m at x (B, sizes[0]) with parameters p (double). */
static void ref_forward(const struct mlp *m, const double *p, const double *x, size_t B,
                        double *out)
{
    size_t w = mlp_max_width(m);
    double *cur = malloc(B * w * sizeof *cur), *nxt = malloc(B * w * sizeof *nxt);
    memcpy(cur, x, B * m->sizes[0] * sizeof *cur);
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t in = m->sizes[l], on = m->sizes[l + 1];
        const double *W = p + m->offset[l], *bias = W + in * on;
        for (size_t b = 0; b < B; b++)
            for (size_t o = 0; o < on; o++) {
                double z = bias[o];
                for (size_t i = 0; i < in; i++)
                    z += W[o * in + i] * cur[b * in + i];
                nxt[b * on + o] = act_eval(m->act[l], z);
            }
        double *t = cur;
        cur = nxt;
        nxt = t;
    }
    memcpy(out, cur, B * m->sizes[m->n_layers] * sizeof *out);
    free(cur);
    free(nxt);
}

/* Loss in double: cross-entropy when labels, else MSE against target. */
static double ref_loss(const struct mlp *m, const double *p, const double *x, size_t B,
                       const int *labels, const float *target)
{
    size_t C = m->sizes[m->n_layers];
    double out[64], L = 0;
    assert_true(B * C <= 64);
    ref_forward(m, p, x, B, out);
    for (size_t b = 0; b < B; b++) {
        if (!labels) {
            for (size_t c = 0; c < C; c++)
                L += (out[b * C + c] - target[b * C + c]) * (out[b * C + c] - target[b * C + c]);
            continue;
        }
        double mx = out[b * C], s = 0;
        for (size_t c = 1; c < C; c++)
            mx = fmax(mx, out[b * C + c]);
        for (size_t c = 0; c < C; c++)
            s += exp(out[b * C + c] - mx);
        L += mx + log(s) - out[b * C + (size_t)labels[b]];
    }
    return labels ? L / (double)B : L / (double)(B * C);
}

static double central(double *v, size_t i, const struct mlp *m, double *p, double *x, size_t B,
                      const int *labels, const float *target)
{
    double keep = v[i];
    v[i] = keep + FD_EPS;
    double lp = ref_loss(m, p, x, B, labels, target);
    v[i] = keep - FD_EPS;
    double lm = ref_loss(m, p, x, B, labels, target);
    v[i] = keep;
    return (lp - lm) / (2 * FD_EPS);
}

static void check(double a, double r, const char *what, size_t i)
{
    double e = fabs(a - r) / fmax(fmax(fabs(a), fabs(r)), 1e-3);
    if (e >= REL_TOL)
        fail_msg("%s[%zu]: analytic %.9g vs finite difference %.9g (rel %.3g)", what, i, a, r, e);
}

/* Builds m, runs forward + loss + backward in float, compares every
 * parameter and input gradient with central differences in double. */
static void gradcheck(size_t L, const size_t *sizes, const enum act_kind *act, int classify)
{
    enum { B = 4 };
    struct mlp *m;
    struct mlp_acts a;
    assert_int_equal(mlp_create(&m, L, sizes, act), QN_OK);
    assert_int_equal(mlp_init_params(m, 7), QN_OK);
    for (size_t i = 0; i < m->n_params; i++) /* nonzero biases too */
        m->params[i] += 0.05f * (float)((i * 7919) % 13) / 13.0f;
    assert_int_equal(mlp_acts_init(&a, m, B), QN_OK);
    size_t D = sizes[0], C = sizes[L];
    float x[B * 8], target[B * 8], dout[B * 8], dx[B * 8] = {0};
    int labels[B];
    for (size_t i = 0; i < B * D; i++)
        x[i] = (float)sin(1.3 * (double)i + 0.4);
    for (size_t i = 0; i < B * C; i++)
        target[i] = (float)cos(0.7 * (double)i);
    for (size_t b = 0; b < B; b++)
        labels[b] = (int)((b * 5 + 1) % C);
    assert_int_equal(mlp_forward(m, &a, x, B), QN_OK);
    if (classify) {
        double loss;
        assert_int_equal(nn_xent_loss(&loss, dout, mlp_output(m, &a), labels, B, C), QN_OK);
    } else {
        nn_mse_loss(dout, mlp_output(m, &a), target, B, C);
    }
    mlp_zero_grad(m);
    assert_int_equal(mlp_backward(m, &a, x, dout, B, m->grads, dx), QN_OK);

    double *p = malloc(m->n_params * sizeof *p), xd[B * 8];
    for (size_t i = 0; i < m->n_params; i++)
        p[i] = m->params[i];
    for (size_t i = 0; i < B * D; i++)
        xd[i] = x[i];
    const int *lab = classify ? labels : NULL;
    for (size_t i = 0; i < m->n_params; i++)
        check(m->grads[i], central(p, i, m, p, xd, B, lab, target), "dparams", i);
    for (size_t i = 0; i < B * D; i++)
        check(dx[i], central(xd, i, m, p, xd, B, lab, target), "dx", i);
    free(p);
    mlp_acts_close(&a);
    mlp_destroy(m);
}

static void test_gradcheck_xent(void **state)
{
    (void)state;
    const size_t sizes[] = {3, 5, 4, 3};
    const enum act_kind act[] = {ACT_TANH, ACT_SOFTPLUS, ACT_IDENTITY};
    gradcheck(3, sizes, act, 1);
}

static void test_gradcheck_mse(void **state)
{
    (void)state;
    const size_t sizes[] = {2, 6, 5, 2};
    const enum act_kind act[] = {ACT_RELU, ACT_SIGMOID, ACT_IDENTITY};
    gradcheck(3, sizes, act, 0);
}

static void test_gradcheck_single_layer(void **state)
{
    (void)state;
    const size_t sizes[] = {4, 3};
    const enum act_kind act[] = {ACT_SIGMOID};
    gradcheck(1, sizes, act, 0);
}

/* Frozen use: NULL dparams leaves gradients alone and gives the same dx. */
static void test_backward_frozen(void **state)
{
    (void)state;
    const size_t sizes[] = {3, 4, 2};
    const enum act_kind act[] = {ACT_TANH, ACT_IDENTITY};
    struct mlp *m;
    struct mlp_acts a;
    assert_int_equal(mlp_create(&m, 2, sizes, act), QN_OK);
    assert_int_equal(mlp_init_params(m, 3), QN_OK);
    assert_int_equal(mlp_acts_init(&a, m, 2), QN_OK);
    float x[6] = {0.1f, -0.2f, 0.3f, 1.0f, 0.5f, -1.0f}, dout[4] = {1, -1, 0.5f, 2};
    float dx1[6] = {0}, dx2[6] = {0};
    assert_int_equal(mlp_forward(m, &a, x, 2), QN_OK);
    assert_int_equal(mlp_backward(m, &a, x, dout, 2, m->grads, dx1), QN_OK);
    float *g = malloc(m->n_params * sizeof *g);
    memcpy(g, m->grads, m->n_params * sizeof *g);
    assert_int_equal(mlp_backward(m, &a, x, dout, 2, NULL, dx2), QN_OK);
    assert_memory_equal(g, m->grads, m->n_params * sizeof *g);
    assert_memory_equal(dx1, dx2, sizeof dx1);
    /* a second backward with grads accumulates: exactly twice */
    assert_int_equal(mlp_backward(m, &a, x, dout, 2, m->grads, NULL), QN_OK);
    for (size_t i = 0; i < m->n_params; i++)
        assert_true(m->grads[i] == 2 * g[i]);
    assert_int_equal(mlp_forward(m, &a, x, 3), QN_EINVAL); /* above capacity */
    free(g);
    mlp_acts_close(&a);
    mlp_destroy(m);
}

static void test_create_bad(void **state)
{
    (void)state;
    struct mlp *m = NULL;
    const enum act_kind act[MLP_MAX_LAYERS + 1] = {ACT_RELU};
    size_t zero[] = {3, 0, 1}, huge[] = {MLP_MAX_WIDTH + 1, 2}, many[MLP_MAX_LAYERS + 2];
    for (size_t i = 0; i < MLP_MAX_LAYERS + 2; i++)
        many[i] = 2;
    assert_int_equal(mlp_create(&m, 2, zero, act), QN_EINVAL);
    assert_int_equal(mlp_create(&m, 1, huge, act), QN_EINVAL);
    assert_int_equal(mlp_create(&m, 0, zero, act), QN_EINVAL);
    assert_int_equal(mlp_create(&m, MLP_MAX_LAYERS + 1, many, act), QN_EINVAL);
    size_t wide[] = {MLP_MAX_WIDTH, MLP_MAX_WIDTH, 1}; /* 2^40 weights: refused, not allocated */
    assert_int_equal(mlp_create(&m, 2, wide, act), QN_EINVAL);
    assert_null(m);
}

/* Layout, parameter count and init statistics. */
static void test_init(void **state)
{
    (void)state;
    const size_t sizes[] = {100, 200, 10};
    const enum act_kind act[] = {ACT_RELU, ACT_TANH};
    struct mlp *a, *b;
    assert_int_equal(mlp_create(&a, 2, sizes, act), QN_OK);
    assert_int_equal(mlp_create(&b, 2, sizes, act), QN_OK);
    assert_int_equal(a->n_params, 100 * 200 + 200 + 200 * 10 + 10);
    assert_int_equal(mlp_init_params(a, 42), QN_OK);
    assert_int_equal(mlp_init_params(b, 42), QN_OK);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_int_equal(mlp_init_params(b, 43), QN_OK);
    assert_true(memcmp(a->params, b->params, a->n_params * sizeof(float)) != 0);
    /* He normal: sample variance near 2 / 100 */
    struct mlp_layer_view v0 = mlp_layer_view(a, a->params, 0);
    double s2 = 0;
    for (size_t i = 0; i < 200 * 100; i++)
        s2 += (double)v0.w[i] * v0.w[i];
    assert_true(fabs(s2 / 20000 / 0.02 - 1) < 0.05);
    assert_true(v0.b[0] == 0 && v0.b[199] == 0);
    /* Xavier uniform: bounded by sqrt(6 / 210) */
    struct mlp_layer_view v1 = mlp_layer_view(a, a->params, 1);
    double bound = sqrt(6.0 / 210.0), mx = 0;
    for (size_t i = 0; i < 200 * 10; i++)
        mx = fmax(mx, fabs(v1.w[i]));
    assert_true(mx <= bound && mx > 0.9 * bound);
    assert_ptr_equal(v1.w, a->params + 100 * 200 + 200);
    mlp_destroy(a);
    mlp_destroy(b);
}

/* ---- training ---- */

/* One full pass of minibatch training in shuffled order; returns mean loss. */
static double train_epoch(struct mlp *m, struct mlp_acts *a, struct optim *o,
                          const struct data_set *ds, size_t batch, gsl_rng *r, size_t *idx,
                          float *xb, int *lb, float *yb, float *dout)
{
    double sum = 0;
    data_permute(idx, ds->n, r);
    for (size_t s = 0; s < ds->n; s += batch) {
        size_t B = ds->n - s < batch ? ds->n - s : batch;
        size_t C = m->sizes[m->n_layers];
        double loss;
        data_gather(ds, idx + s, B, xb, lb, yb);
        assert_int_equal(mlp_forward(m, a, xb, B), QN_OK);
        if (ds->labels && C > 1)
            assert_int_equal(nn_xent_loss(&loss, dout, mlp_output(m, a), lb, B, C), QN_OK);
        else
            loss = nn_mse_loss(dout, mlp_output(m, a), yb, B, C);
        mlp_zero_grad(m);
        assert_int_equal(mlp_backward(m, a, xb, dout, B, m->grads, NULL), QN_OK);
        optim_step(o, m->params, m->grads);
        sum += loss * (double)B;
    }
    return sum / (double)ds->n;
}

/* Trains m on ds for `epochs`; returns the last epoch's loss. */
static double train(struct mlp *m, const struct optim_config *cfg, const struct data_set *ds,
                    size_t epochs, size_t batch, uint64_t seed)
{
    struct mlp_acts a;
    struct optim o;
    size_t C = m->sizes[m->n_layers];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, (unsigned long)seed);
    size_t *idx = malloc(ds->n * sizeof *idx);
    float *xb = malloc(batch * ds->d * sizeof *xb), *yb = malloc(batch * C * sizeof *yb);
    float *dout = malloc(batch * C * sizeof *dout);
    int *lb = malloc(batch * sizeof *lb);
    assert_int_equal(mlp_acts_init(&a, m, batch), QN_OK);
    assert_int_equal(optim_init(&o, cfg, m->n_params), QN_OK);
    double loss = 0;
    for (size_t e = 0; e < epochs; e++)
        loss = train_epoch(m, &a, &o, ds, batch, r, idx, xb, lb, yb, dout);
    optim_close(&o);
    mlp_acts_close(&a);
    free(idx);
    free(xb);
    free(yb);
    free(dout);
    free(lb);
    gsl_rng_free(r);
    return loss;
}

/* XOR with a 2-2-1 sigmoid network, MSE on the label as target, SGD. */
static void test_xor(void **state)
{
    (void)state;
    struct data_set xr, ds;
    assert_int_equal(data_gen_xor(&xr, 4, 0, 0), QN_OK);
    assert_int_equal(data_alloc(&ds, 4, 2, 0, 1), QN_OK);
    memcpy(ds.x, xr.x, 8 * sizeof(float));
    for (int i = 0; i < 4; i++)
        ds.y[i] = (float)xr.labels[i];
    const size_t sizes[] = {2, 2, 1};
    const enum act_kind act[] = {ACT_SIGMOID, ACT_SIGMOID};
    struct mlp *m;
    assert_int_equal(mlp_create(&m, 2, sizes, act), QN_OK);
    assert_int_equal(mlp_init_params(m, 1), QN_OK);
    struct optim_config c;
    optim_config_default(&c, OPTIM_SGD);
    c.lr = 2.0;
    c.momentum = 0.9;
    double loss = train(m, &c, &ds, 3000, 4, 1);
    struct mlp_acts a;
    assert_int_equal(mlp_acts_init(&a, m, 4), QN_OK);
    assert_int_equal(mlp_forward(m, &a, ds.x, 4), QN_OK);
    const float *out = mlp_output(m, &a);
    for (int i = 0; i < 4; i++)
        if ((out[i] > 0.5f) != (xr.labels[i] == 1))
            fail_msg("XOR point %d: output %g for label %d (loss %g)", i, out[i], xr.labels[i],
                     loss);
    assert_true(loss < 0.01);
    mlp_acts_close(&a);
    mlp_destroy(m);
    data_close(&xr);
    data_close(&ds);
}

/* RMSE of m on ds (t = 1). */
static double rmse(const struct mlp *m, const struct data_set *ds)
{
    struct mlp_acts a;
    assert_int_equal(mlp_acts_init(&a, m, ds->n), QN_OK);
    assert_int_equal(mlp_forward(m, &a, ds->x, ds->n), QN_OK);
    double mse = nn_mse_loss(NULL, mlp_output(m, &a), ds->y, ds->n, 1);
    mlp_acts_close(&a);
    return sqrt(mse);
}

/* Trains 1-16-1 tanh on sine; the parameters land in *out (new, free it). */
static double sine_run(uint64_t seed, float **out, size_t *n_params)
{
    struct data_set train_set, test_set;
    assert_int_equal(data_gen_sine(&train_set, 1000, seed), QN_OK);
    assert_int_equal(data_gen_sine(&test_set, 500, seed + 1000), QN_OK);
    const size_t sizes[] = {1, 16, 1};
    const enum act_kind act[] = {ACT_TANH, ACT_IDENTITY};
    struct mlp *m;
    assert_int_equal(mlp_create(&m, 2, sizes, act), QN_OK);
    assert_int_equal(mlp_init_params(m, seed), QN_OK);
    struct optim_config c;
    optim_config_default(&c, OPTIM_ADAM);
    c.lr = 0.01;
    train(m, &c, &train_set, 150, 32, seed);
    c.lr = 0.001;
    train(m, &c, &train_set, 50, 32, seed + 1);
    double e = rmse(m, &test_set);
    *n_params = m->n_params;
    *out = malloc(m->n_params * sizeof **out);
    memcpy(*out, m->params, m->n_params * sizeof **out);
    mlp_destroy(m);
    data_close(&train_set);
    data_close(&test_set);
    return e;
}

static void test_sine(void **state)
{
    (void)state;
    float *p;
    size_t n;
    double e = sine_run(5, &p, &n);
    print_message("sine 1-16-1 tanh, Adam: test RMSE %.5f\n", e);
    assert_true(e < 0.02);
    free(p);
}

/* Same seed, same thread count: bit-identical parameters. */
static void test_repeatable(void **state)
{
    (void)state;
    float *p1, *p2;
    size_t n1, n2;
    double e1 = sine_run(9, &p1, &n1), e2 = sine_run(9, &p2, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1 * sizeof *p1);
    assert_true(e1 == e2);
    free(p1);
    free(p2);
}

/* Parameters after `steps` Adam steps of a network big enough for OpenBLAS
 * to use its threads (new array, free it). */
static float *blas_run(size_t steps, size_t *n_params)
{
    enum { B = 256, D = 256, H = 512, C = 10 };
    const size_t sizes[] = {D, H, C};
    const enum act_kind act[] = {ACT_RELU, ACT_IDENTITY};
    struct mlp *m;
    struct mlp_acts a;
    struct optim o;
    struct optim_config c;
    assert_int_equal(mlp_create(&m, 2, sizes, act), QN_OK);
    assert_int_equal(mlp_init_params(m, 11), QN_OK);
    assert_int_equal(mlp_acts_init(&a, m, B), QN_OK);
    optim_config_default(&c, OPTIM_ADAM);
    assert_int_equal(optim_init(&o, &c, m->n_params), QN_OK);
    float *x = malloc(B * D * sizeof *x), *dout = malloc(B * C * sizeof *dout);
    int labels[B];
    for (size_t i = 0; i < B * D; i++)
        x[i] = (float)sin(0.37 * (double)i);
    for (size_t b = 0; b < B; b++)
        labels[b] = (int)(b % C);
    for (size_t s = 0; s < steps; s++) {
        double loss;
        assert_int_equal(mlp_forward(m, &a, x, B), QN_OK);
        assert_int_equal(nn_xent_loss(&loss, dout, mlp_output(m, &a), labels, B, C), QN_OK);
        mlp_zero_grad(m);
        assert_int_equal(mlp_backward(m, &a, x, dout, B, m->grads, NULL), QN_OK);
        optim_step(&o, m->params, m->grads);
    }
    float *p = malloc(m->n_params * sizeof *p);
    memcpy(p, m->params, m->n_params * sizeof *p);
    *n_params = m->n_params;
    free(x);
    free(dout);
    optim_close(&o);
    mlp_acts_close(&a);
    mlp_destroy(m);
    return p;
}

/* Bit-identical with sgemm large enough to be split across BLAS threads. */
static void test_repeatable_blas(void **state)
{
    (void)state;
    size_t n1, n2;
    float *p1 = blas_run(5, &n1), *p2 = blas_run(5, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1 * sizeof *p1);
    free(p1);
    free(p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck_xent),
        cmocka_unit_test(test_gradcheck_mse),
        cmocka_unit_test(test_gradcheck_single_layer),
        cmocka_unit_test(test_backward_frozen),
        cmocka_unit_test(test_create_bad),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_xor),
        cmocka_unit_test(test_sine),
        cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_repeatable_blas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
