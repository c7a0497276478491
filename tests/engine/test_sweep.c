/*
 * test_sweep.c: solving devices over many rows on a thread pool (engine/sweep.c).
 *
 * A neuron sweep over a grid equals the closed form; a crn_relu sweep of 2000
 * Sobol' points gives memcmp-identical outputs and statuses with 1, 2 and 3
 * threads and matches the fixed point (z + sqrt(z^2 + 4 kappa)) / 2; the
 * progress callback is serialised, monotone and reaches the total; a cancel
 * flag set from the callback stops the sweep with QN_ECANCELED. A sweep over
 * (u1, kappa) solves each row at its own kappa: it equals the fixed point at
 * that kappa and a direct solve of a model prepared with that kappa, with 1
 * and 3 threads alike, and refuses a parameter index the device lacks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "design.h"
#include "device.h"
#include "qn_err.h"
#include "sweep.h"

/* Prepares a model of `kind` with its defaults, failing the test if it does not. */
static void model(struct dev_model *d, enum dev_kind kind)
{
    struct dev_error err;
    dev_model_init(d, kind);
    if (dev_model_prepare(d, &err) != 0)
        fail_msg("prepare: %s: %s", err.field, err.msg);
}

/* Sobol' points of u1 in [lo, hi] into a new array. */
static double *sobol_u1(size_t n, double lo, double hi)
{
    double *x = malloc(n * sizeof *x);
    assert_non_null(x);
    assert_int_equal(design_generate(DESIGN_SOBOL, n, 1, &lo, &hi, 0, x), 0);
    return x;
}

static void test_neuron_grid_closed_form(void **state)
{
    (void)state;
    struct dev_model d;
    dev_model_init(&d, DEV_NEURON);
    d.activation = ACT_SIGMOID;
    struct dev_error err;
    assert_int_equal(dev_model_prepare(&d, &err), 0);
    const double lo = -3.0, hi = 3.0;
    size_t n = design_points(DESIGN_GRID, 101, 1);
    assert_int_equal(n, 101);
    double in[101], out[101];
    int status[101];
    assert_int_equal(design_generate(DESIGN_GRID, 101, 1, &lo, &hi, 0, in), 0);
    assert_int_equal(sweep_run(&d, in, n, 3, out, status, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(status[i], 0);
        double want = 1.0 / (1.0 + exp(-in[i]));
        if (fabs(out[i] - want) > 1e-15)
            fail_msg("row %zu: u1 %g out %.17g want %.17g", i, in[i], out[i], want);
    }
    dev_model_close(&d);
}

static void test_crn_relu_thread_invariance(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct dev_model d;
    model(&d, DEV_CRN_RELU);
    double kappa;
    assert_int_equal(dev_model_param(&d, "kappa", &kappa), 0);
    double *in = sobol_u1(N, -4.0, 4.0);
    double *out[3];
    int *status[3];
    for (size_t t = 0; t < 3; t++) {
        out[t] = malloc(N * sizeof *out[t]);
        status[t] = malloc(N * sizeof *status[t]);
        assert_true(out[t] && status[t]);
        assert_int_equal(sweep_run(&d, in, N, t + 1, out[t], status[t], NULL), 0);
    }
    assert_memory_equal(out[0], out[1], N * sizeof(double));
    assert_memory_equal(status[0], status[1], N * sizeof(int));
    assert_memory_equal(out[0], out[2], N * sizeof(double));
    assert_memory_equal(status[0], status[2], N * sizeof(int));
    size_t ok = 0;
    for (size_t i = 0; i < N; i++) {
        if (status[0][i] != 0) {
            assert_true(isnan(out[0][i]));
            continue;
        }
        ok++;
        double z = in[i], want = (z + sqrt(z * z + 4 * kappa)) / 2;
        if (fabs(out[0][i] - want) > 1e-6 * fmax(1.0, want))
            fail_msg("row %zu: u1 %g out %.12g want %.12g", i, z, out[0][i], want);
    }
    assert_true(ok >= N * 99 / 100); /* the fixed point is globally stable */
    for (size_t t = 0; t < 3; t++) {
        free(out[t]);
        free(status[t]);
    }
    free(in);
    dev_model_close(&d);
}

/* What the progress callback saw. */
struct progress_log {
    size_t calls;      /* how many calls */
    size_t last;       /* done at the last call */
    size_t total;      /* total at the last call */
    int monotone;      /* nonzero while every call saw more rows than the one before */
    int inside;        /* nonzero while a call is running (detects overlap) */
    int overlapped;    /* set if two calls overlapped */
    size_t cancel_at;  /* set *cancel once done >= cancel_at (0: never) */
    atomic_int *cancel; /* the flag to set */
};

static void on_progress(size_t done, size_t total, void *ctx)
{
    struct progress_log *p = ctx;
    if (p->inside)
        p->overlapped = 1;
    p->inside = 1;
    if (done <= p->last || done > total)
        p->monotone = 0;
    p->calls++;
    p->last = done;
    p->total = total;
    if (p->cancel_at && done >= p->cancel_at)
        atomic_store(p->cancel, 1);
    p->inside = 0;
}

static void test_progress_reaches_total(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct dev_model d;
    model(&d, DEV_CRN_RELU);
    double *in = sobol_u1(N, -2.0, 2.0), out[N];
    int status[N];
    struct progress_log log = {.monotone = 1};
    struct sweep_hooks hooks = {on_progress, &log, NULL};
    assert_int_equal(sweep_run(&d, in, N, 2, out, status, &hooks), 0);
    assert_int_equal(log.last, N);
    assert_int_equal(log.total, N);
    assert_true(log.monotone);
    assert_false(log.overlapped);
    assert_true(log.calls >= 2 && log.calls <= N / 16 + 2); /* at most once per chunk */
    free(in);
    dev_model_close(&d);
}

static void test_cancel_from_progress(void **state)
{
    (void)state;
    enum { N = 2000 };
    struct dev_model d;
    model(&d, DEV_CRN_RELU);
    double *in = sobol_u1(N, -4.0, 4.0), *out = malloc(N * sizeof *out);
    int *status = malloc(N * sizeof *status);
    assert_true(out && status);
    for (size_t threads = 1; threads <= 2; threads++) {
        atomic_int cancel;
        atomic_init(&cancel, 0);
        struct progress_log log = {.monotone = 1, .cancel_at = 1, .cancel = &cancel};
        struct sweep_hooks hooks = {on_progress, &log, &cancel};
        assert_int_equal(sweep_run(&d, in, N, threads, out, status, &hooks), QN_ECANCELED);
        assert_true(log.last < N);
        size_t skipped = 0;
        for (size_t i = 0; i < N; i++) {
            if (status[i] == QN_ECANCELED) {
                skipped++;
                assert_true(isnan(out[i]));
            }
        }
        assert_true(skipped >= N - 4 * 16); /* at most a few chunks ran */
    }
    /* a flag already set stops the sweep before any row */
    atomic_int cancel;
    atomic_init(&cancel, 1);
    struct sweep_hooks hooks = {NULL, NULL, &cancel};
    assert_int_equal(sweep_run(&d, in, N, 2, out, status, &hooks), QN_ECANCELED);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(status[i], QN_ECANCELED);
    free(in);
    free(out);
    free(status);
    dev_model_close(&d);
}

static void test_edges(void **state)
{
    (void)state;
    struct dev_model d;
    model(&d, DEV_NEURON); /* relu */
    double in[5] = {-1, 0, 0.5, 2, 3}, out[5];
    int status[5];
    assert_int_equal(sweep_run(&d, in, 0, 4, NULL, NULL, NULL), 0);
    assert_int_equal(sweep_run(&d, NULL, 5, 1, out, status, NULL), QN_EINVAL);
    assert_int_equal(sweep_run(NULL, in, 5, 1, out, status, NULL), QN_EINVAL);
    /* 0 threads means 1; many threads on few rows are capped */
    for (size_t t = 0; t <= 64; t += 64) {
        memset(out, 0, sizeof out);
        assert_int_equal(sweep_run(&d, in, 5, t, out, status, NULL), 0);
        for (size_t i = 0; i < 5; i++) {
            assert_int_equal(status[i], 0);
            assert_true(out[i] == (in[i] > 0 ? in[i] : 0.0));
        }
    }
    dev_model_close(&d);
}

/* Sobol' rows (u1, kappa) over [-4, 4] x [0.002, 0.05]: each row is the fixed point at
 * its own kappa (closed form, 1e-7 relative: the steady-state tolerance), bit for bit a
 * direct solve of a model prepared with that kappa, and the same with 1 and 3 threads. */
static void test_parameter_sweep_direct(void **state)
{
    (void)state;
    enum { N = 200 };
    struct dev_model d;
    model(&d, DEV_CRN_RELU);
    const double lo[2] = {-4.0, 0.002}, hi[2] = {4.0, 0.05};
    double in[N * 2], out[2][N];
    int status[2][N];
    assert_int_equal(design_generate(DESIGN_SOBOL, N, 2, lo, hi, 0, in), 0);
    size_t par = 0; /* kappa, crn_relu's first parameter */
    assert_string_equal(d.param_names[par], "kappa");
    assert_int_equal(sweep_run_params(&d, in, N, 1, &par, 1, out[0], status[0], NULL), 0);
    assert_int_equal(sweep_run_params(&d, in, N, 1, &par, 3, out[1], status[1], NULL), 0);
    assert_memory_equal(out[0], out[1], sizeof out[0]);
    for (size_t i = 0; i < N; i += 1) {
        double u = in[2 * i], kappa = in[2 * i + 1];
        assert_int_equal(status[0][i], 0);
        double want = (u + sqrt(u * u + 4 * kappa)) / 2;
        if (fabs(out[0][i] - want) > 1e-7 * fmax(1.0, want))
            fail_msg("row %zu: u1 %g kappa %g: out %.12g, fixed point %.12g", i, u, kappa,
                     out[0][i], want);
        if (i % 20)
            continue; /* a direct solve of every 20th row */
        struct dev_model m;
        model(&m, DEV_CRN_RELU);
        assert_int_equal(dev_model_set_param(&m, "kappa", kappa), 0);
        struct dev_error err;
        assert_int_equal(dev_model_prepare(&m, &err), 0);
        struct dev_work w;
        assert_int_equal(dev_work_init(&w, &m, NULL), 0);
        double direct;
        assert_int_equal(dev_eval(&w, &in[2 * i], &direct), 0);
        assert_true(direct == out[0][i]);
        dev_work_close(&w);
        dev_model_close(&m);
    }
    size_t bad = d.n_params; /* one past the last */
    assert_int_equal(sweep_run_params(&d, in, N, 1, &bad, 1, out[0], status[0], NULL),
                     QN_EINVAL);
    assert_int_equal(sweep_run_params(&d, in, N, 1, NULL, 1, out[0], status[0], NULL),
                     QN_EINVAL);
    dev_model_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_neuron_grid_closed_form),
        cmocka_unit_test(test_crn_relu_thread_invariance),
        cmocka_unit_test(test_progress_reaches_total),
        cmocka_unit_test(test_cancel_from_progress),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_parameter_sweep_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
