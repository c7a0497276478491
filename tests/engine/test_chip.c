/*
 * test_chip.c: the chip generator. Determinism (the same seed gives the same
 * parameters for every instance, in any order and from any number of
 * threads), the statistics of 10^5 draws of each distribution (mean and
 * coefficient of variation within 4 standard errors), the uniformity of the
 * underlying uniforms (chi-square), and the independence of different chips,
 * instances and parameters (correlations within 4 / sqrt(N)).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chip.h"
#include "device.h"
#include "qn_err.h"

#define N_DRAWS 100000

/* A prepared crn_relu with kappa spread as dist/cv; b (nominal 0) fixed. */
static void crn_with(struct dev_model *d, enum dev_dist dist, double cv)
{
    struct dev_error err;
    dev_model_init(d, DEV_CRN_RELU);
    assert_int_equal(dev_model_set_param(d, "kappa", 0.01), QN_OK);
    for (size_t i = 0; i < d->n_params; i++)
        if (strcmp(d->param_names[i], "kappa") == 0)
            d->vary[i] = (struct dev_spread){dist, cv};
    assert_int_equal(dev_model_prepare(d, &err), QN_OK);
}

static size_t kappa_index(const struct dev_model *d)
{
    for (size_t i = 0; i < d->n_params; i++)
        if (strcmp(d->param_names[i], "kappa") == 0)
            return i;
    fail_msg("no kappa");
    return 0;
}

/* Mean and standard deviation of x[n]. */
static void moments(const double *x, size_t n, double *mean, double *sd)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *sd = sqrt(ss / (double)(n - 1));
}

/* Pearson correlation of x[n] and y[n]. */
static double correlation(const double *x, const double *y, size_t n)
{
    double mx, sx, my, sy, c = 0;
    moments(x, n, &mx, &sx);
    moments(y, n, &my, &sy);
    for (size_t i = 0; i < n; i++)
        c += (x[i] - mx) * (y[i] - my);
    return c / ((double)(n - 1) * sx * sy);
}

/* ---- determinism ---- */

struct strided {
    const struct dev_model *d;
    size_t first, step; /* instances first, first + step, ... */
    double *theta;      /* (64 * 32, n_params) */
};

static void *draw_strided(void *arg)
{
    struct strided *s = arg;
    for (size_t k = s->first; k < 64 * 32; k += s->step)
        chip_draw(s->d, 7, k / 32, k % 32, s->theta + k * s->d->n_params);
    return NULL;
}

/* Chip 7 drawn serially, backwards, and by 1, 2 and 4 threads each taking
 * every T-th instance: the same parameters bit for bit. */
static void test_determinism(void **state)
{
    (void)state;
    struct dev_model d;
    crn_with(&d, DEV_DIST_LOGNORMAL, 0.3);
    size_t np = d.n_params, n = 64 * 32;
    double *ref = calloc(n * np, sizeof *ref), *got = calloc(n * np, sizeof *got);
    assert_non_null(ref);
    assert_non_null(got);
    for (size_t k = 0; k < n; k++)
        chip_draw(&d, 7, k / 32, k % 32, ref + k * np);
    for (size_t k = n; k-- > 0;)
        chip_draw(&d, 7, k / 32, k % 32, got + k * np);
    assert_memory_equal(ref, got, n * np * sizeof *ref);
    const size_t threads[] = {1, 2, 4};
    for (size_t c = 0; c < 3; c++) {
        size_t T = threads[c];
        pthread_t tid[4];
        struct strided s[4];
        memset(got, 0, n * np * sizeof *got);
        for (size_t t = 0; t < T; t++) {
            s[t] = (struct strided){&d, t, T, got};
            assert_int_equal(pthread_create(&tid[t], NULL, draw_strided, &s[t]), 0);
        }
        for (size_t t = 0; t < T; t++)
            pthread_join(tid[t], NULL);
        assert_memory_equal(ref, got, n * np * sizeof *ref);
    }
    /* the fixed parameter b keeps its nominal value; kappa varies */
    size_t ik = kappa_index(&d);
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < np; i++)
            if (i != ik)
                assert_true(ref[k * np + i] == d.params[i]);
    assert_true(ref[ik] != ref[np + ik]);
    /* another chip is another draw */
    double other[DEV_MAX_PARAMS];
    chip_draw(&d, 8, 0, 0, other);
    assert_true(other[ik] != ref[ik]);
    free(ref);
    free(got);
    dev_model_close(&d);
}

/* ---- statistics ---- */

/* kappa of instance k of chip 3 for N_DRAWS instances (layer k / 1000, device k % 1000). */
static void draw_kappas(const struct dev_model *d, double *x)
{
    double theta[DEV_MAX_PARAMS];
    size_t ik = kappa_index(d);
    for (size_t k = 0; k < N_DRAWS; k++) {
        chip_draw(d, 3, k / 1000, k % 1000, theta);
        x[k] = theta[ik];
    }
}

/*
 * normal and uniform: mean 0.01 and sd cv * 0.01; lognormal: median 0.01
 * (log kappa has mean log 0.01, sd sigma) and coefficient of variation cv.
 * Tolerances are 4 standard errors: the mean's cv / sqrt(N) (relative), the
 * sample cv's about cv sqrt((2 + excess kurtosis) / (4 N)) <= cv / sqrt(N)
 * for these distributions (excess kurtosis 0, -1.2, 1.6).
 */
static void test_statistics(void **state)
{
    (void)state;
    const double cv = 0.3, mu = 0.01, N = N_DRAWS, tol = 4 * cv / sqrt(N);
    double *x = malloc(N_DRAWS * sizeof *x);
    assert_non_null(x);
    const enum dev_dist dists[] = {DEV_DIST_NORMAL, DEV_DIST_UNIFORM, DEV_DIST_LOGNORMAL};
    for (size_t c = 0; c < 3; c++) {
        struct dev_model d;
        crn_with(&d, dists[c], cv);
        draw_kappas(&d, x);
        double mean, sd;
        moments(x, N_DRAWS, &mean, &sd);
        if (dists[c] != DEV_DIST_LOGNORMAL) {
            assert_true(fabs(mean / mu - 1) < tol);
            assert_true(fabs(sd / mean - cv) < tol);
        } else {
            double sigma = sqrt(log1p(cv * cv));
            assert_true(fabs(sd / mean - cv) < tol);
            for (size_t k = 0; k < N_DRAWS; k++)
                x[k] = log(x[k]);
            double lm, ls;
            moments(x, N_DRAWS, &lm, &ls);
            assert_true(fabs(lm - log(mu)) < 4 * sigma / sqrt(N));
            assert_true(fabs(ls - sigma) < 4 * sigma / sqrt(2 * N));
        }
        if (dists[c] == DEV_DIST_UNIFORM) { /* inside mu (1 +- sqrt(3) cv) */
            for (size_t k = 0; k < N_DRAWS; k++)
                assert_true(fabs(x[k] - mu) <= sqrt(3.0) * cv * mu * (1 + 1e-12));
        }
        dev_model_close(&d);
    }
    free(x);
}

/* 10^5 uniforms in 100 bins: chi-square with 99 degrees of freedom below
 * 99 + 4 sqrt(2 * 99) (4 standard deviations). */
static void test_uniformity(void **state)
{
    (void)state;
    size_t bins[100] = {0};
    for (size_t k = 0; k < N_DRAWS; k++) {
        double u = chip_uniform(CHIP_TAG_PARAM, 11, 0, k, 0);
        assert_true(u > 0 && u < 1);
        bins[(size_t)(u * 100)]++;
    }
    double e = N_DRAWS / 100.0, chi2 = 0;
    for (size_t b = 0; b < 100; b++)
        chi2 += ((double)bins[b] - e) * ((double)bins[b] - e) / e;
    assert_true(chi2 < 99 + 4 * sqrt(2 * 99.0));
}

/* Correlations within 4 / sqrt(N) between: chips 3 and 4 (same instances),
 * neighbouring devices, the two parameters of one instance, and a chip's
 * parameter draws and its noise draws. */
static void test_independence(void **state)
{
    (void)state;
    double *a = malloc(N_DRAWS * sizeof *a), *b = malloc(N_DRAWS * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    const double lim = 4 / sqrt((double)N_DRAWS);
    for (size_t k = 0; k < N_DRAWS; k++) {
        a[k] = chip_normal(CHIP_TAG_PARAM, 3, k / 1000, k % 1000, 0);
        b[k] = chip_normal(CHIP_TAG_PARAM, 4, k / 1000, k % 1000, 0);
    }
    assert_true(fabs(correlation(a, b, N_DRAWS)) < lim);
    for (size_t k = 0; k < N_DRAWS; k++)
        b[k] = chip_normal(CHIP_TAG_PARAM, 3, k / 1000, k % 1000 + 1, 0);
    assert_true(fabs(correlation(a, b, N_DRAWS)) < lim);
    for (size_t k = 0; k < N_DRAWS; k++)
        b[k] = chip_normal(CHIP_TAG_PARAM, 3, k / 1000, k % 1000, 1);
    assert_true(fabs(correlation(a, b, N_DRAWS)) < lim);
    for (size_t k = 0; k < N_DRAWS; k++)
        b[k] = chip_normal(CHIP_TAG_NOISE_OUTPUT, 3, k / 1000, k % 1000, 0);
    assert_true(fabs(correlation(a, b, N_DRAWS)) < lim);
    /* and the normals are standard: mean 0, sd 1 within 4 standard errors */
    double m, s;
    moments(a, N_DRAWS, &m, &s);
    assert_true(fabs(m) < lim);
    assert_true(fabs(s - 1) < 4 / sqrt(2.0 * N_DRAWS));
    free(a);
    free(b);
}

/* chip_spread's closed forms at fixed z and u. */
static void test_spread_forms(void **state)
{
    (void)state;
    struct dev_spread n = {DEV_DIST_NORMAL, 0.5}, l = {DEV_DIST_LOGNORMAL, 0.5},
                      u = {DEV_DIST_UNIFORM, 0.5}, none = {DEV_DIST_NONE, 0.5};
    assert_true(fabs(chip_spread(&n, -2.0, 1.0, 0.5) - (-2.0 + 0.5 * 2.0)) < 1e-15);
    assert_true(fabs(chip_spread(&l, 2.0, 1.0, 0.5) - 2.0 * exp(sqrt(log(1.25)))) < 1e-14);
    assert_true(fabs(chip_spread(&u, 2.0, 0.0, 1.0) - (2.0 + sqrt(3.0))) < 1e-14);
    assert_true(chip_spread(&none, 2.0, 3.0, 0.9) == 2.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),  cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_uniformity),   cmocka_unit_test(test_independence),
        cmocka_unit_test(test_spread_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
