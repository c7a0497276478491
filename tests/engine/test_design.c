/*
 * test_design.c: sampling designs (engine/design.c).
 *
 * Bounds for every kind; grid counts and endpoints; Latin hypercube strata;
 * Sobol' against its known first points, its mean, and its net property (1024
 * points in 16 equal bins per dimension: exactly 64 each); uniform mean within
 * 3 sigma; reproducibility by seed; refusal of bad arguments.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "design.h"
#include "qn_err.h"

/* Generates a design into a new array (free it) and checks rc == 0. */
static double *gen(enum design_kind k, size_t samples, size_t dim, const double *lo,
                   const double *hi, uint64_t seed, size_t *n_out)
{
    size_t n = design_points(k, samples, dim);
    assert_true(n > 0);
    double *x = malloc(n * dim * sizeof *x);
    assert_non_null(x);
    assert_int_equal(design_generate(k, samples, dim, lo, hi, seed, x), 0);
    *n_out = n;
    return x;
}

static void test_bounds_all_kinds(void **state)
{
    (void)state;
    const double lo[3] = {-4.0, 0.0, 2.5}, hi[3] = {4.0, 1e-3, 2.5}; /* dim 2 constant */
    for (int k = DESIGN_GRID; k <= DESIGN_SOBOL; k++) {
        size_t n;
        double *x = gen((enum design_kind)k, 777, 3, lo, hi, 5, &n);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < 3; j++)
                if (!(x[i * 3 + j] >= lo[j] && x[i * 3 + j] <= hi[j]))
                    fail_msg("%s: point %zu dim %zu = %g outside", design_name(k), i, j,
                             x[i * 3 + j]);
        for (size_t i = 0; i < n; i++)
            assert_true(x[i * 3 + 2] == 2.5);
        free(x);
    }
}

static void test_grid(void **state)
{
    (void)state;
    assert_int_equal(design_points(DESIGN_GRID, 100, 2), 100);
    assert_int_equal(design_points(DESIGN_GRID, 1000, 3), 1000);  /* cube root 9.999... */
    assert_int_equal(design_points(DESIGN_GRID, 999, 3), 729);
    assert_int_equal(design_points(DESIGN_GRID, 3, 2), 4);        /* never below 2 per axis */
    assert_int_equal(design_points(DESIGN_GRID, 7, 1), 7);
    assert_int_equal(design_points(DESIGN_SOBOL, 7, 3), 7);
    const double lo[2] = {-1.0, 10.0}, hi[2] = {1.0, 20.0};
    size_t n;
    double *x = gen(DESIGN_GRID, 30, 2, lo, hi, 0, &n); /* m = 5 */
    assert_int_equal(n, 25);
    /* first dimension slowest, endpoints included exactly, even spacing */
    assert_true(x[0] == -1.0 && x[1] == 10.0);
    assert_true(x[2 * 4] == -1.0 && x[2 * 4 + 1] == 20.0);
    assert_true(x[2 * 24] == 1.0 && x[2 * 24 + 1] == 20.0);
    for (size_t i = 0; i < 25; i++) {
        assert_true(fabs(x[2 * i] - (-1.0 + 0.5 * (double)(i / 5))) < 1e-15);
        assert_true(fabs(x[2 * i + 1] - (10.0 + 2.5 * (double)(i % 5))) < 1e-14);
    }
    free(x);
}

static void test_lhs_strata(void **state)
{
    (void)state;
    enum { N = 257, D = 4 };
    const double lo[D] = {-3, 0, 1, -1e-3}, hi[D] = {5, 1, 2, 1e-3};
    size_t n;
    double *x = gen(DESIGN_LHS, N, D, lo, hi, 42, &n);
    assert_int_equal(n, N);
    for (size_t j = 0; j < D; j++) {
        int count[N] = {0};
        for (size_t i = 0; i < N; i++) {
            double u = (x[i * D + j] - lo[j]) / (hi[j] - lo[j]);
            long s = (long)floor(u * N);
            assert_true(s >= 0 && s < N);
            count[s]++;
        }
        for (size_t s = 0; s < N; s++)
            if (count[s] != 1)
                fail_msg("dim %zu stratum %zu holds %d points", j, s, count[s]);
    }
    free(x);
}

static void test_sobol_known_points(void **state)
{
    (void)state;
    const double lo[3] = {0, 0, 0}, hi[3] = {1, 1, 1};
    size_t n;
    double *x = gen(DESIGN_SOBOL, 5, 3, lo, hi, 0, &n);
    /* the origin, then the Sobol' sequence as GSL continues it */
    static const double want[5][3] = {{0, 0, 0},
                                      {0.5, 0.5, 0.5},
                                      {0.75, 0.25, 0.75},
                                      {0.25, 0.75, 0.25},
                                      {0.375, 0.375, 0.625}};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 3; j++)
            if (x[i * 3 + j] != want[i][j])
                fail_msg("point %zu dim %zu = %g, want %g", i, j, x[i * 3 + j], want[i][j]);
    free(x);
    /* scaling into a box */
    const double l2[1] = {-4}, h2[1] = {4};
    x = gen(DESIGN_SOBOL, 3, 1, l2, h2, 0, &n);
    assert_true(x[0] == -4.0 && x[1] == 0.0 && x[2] == 2.0);
    free(x);
}

static void test_sobol_net_and_mean(void **state)
{
    (void)state;
    enum { N = 1024, D = 40 };
    double lo[D], hi[D];
    for (size_t j = 0; j < D; j++)
        lo[j] = 0.0, hi[j] = 1.0;
    size_t n;
    double *x = gen(DESIGN_SOBOL, N, D, lo, hi, 0, &n);
    for (size_t j = 0; j < D; j++) {
        int bins[16] = {0};
        double mean = 0.0;
        for (size_t i = 0; i < N; i++) {
            mean += x[i * D + j] / N;
            bins[(int)(x[i * D + j] * 16)]++;
        }
        if (fabs(mean - 0.5) > 1e-3)
            fail_msg("dim %zu mean %g", j, mean);
        for (int b = 0; b < 16; b++)
            if (bins[b] != 64)
                fail_msg("dim %zu bin %d holds %d points", j, b, bins[b]);
    }
    free(x);
}

static void test_uniform_mean_and_seeds(void **state)
{
    (void)state;
    enum { N = 20000, D = 2 };
    const double lo[D] = {-2, 10}, hi[D] = {2, 11};
    size_t n;
    double *a = gen(DESIGN_UNIFORM, N, D, lo, hi, 7, &n);
    double *b = gen(DESIGN_UNIFORM, N, D, lo, hi, 7, &n);
    double *c = gen(DESIGN_UNIFORM, N, D, lo, hi, 8, &n);
    assert_memory_equal(a, b, sizeof(double) * N * D);
    assert_true(memcmp(a, c, sizeof(double) * N * D) != 0);
    for (size_t j = 0; j < D; j++) {
        double mean = 0.0, w = hi[j] - lo[j];
        for (size_t i = 0; i < N; i++)
            mean += a[i * D + j] / N;
        double sigma = w / sqrt(12.0 * N);
        if (fabs(mean - (lo[j] + hi[j]) / 2) > 3 * sigma)
            fail_msg("dim %zu mean %g, 3 sigma %g", j, mean, 3 * sigma);
    }
    free(a);
    free(b);
    free(c);
    /* LHS is seeded the same way */
    a = gen(DESIGN_LHS, 100, D, lo, hi, 3, &n);
    b = gen(DESIGN_LHS, 100, D, lo, hi, 3, &n);
    c = gen(DESIGN_LHS, 100, D, lo, hi, 4, &n);
    assert_memory_equal(a, b, sizeof(double) * 100 * D);
    assert_true(memcmp(a, c, sizeof(double) * 100 * D) != 0);
    free(a);
    free(b);
    free(c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    double lo[80] = {0}, hi[80] = {0}, out[41 * 4];
    for (size_t j = 0; j < 80; j++)
        hi[j] = 1.0;
    assert_int_equal(design_generate(DESIGN_SOBOL, 4, 41, lo, hi, 0, out), QN_EINVAL);
    assert_int_equal(design_generate(DESIGN_SOBOL, 4, 40, lo, hi, 0, out), 0);
    assert_int_equal(design_generate(DESIGN_UNIFORM, 4, 0, lo, hi, 0, out), QN_EINVAL);
    assert_int_equal(design_generate(DESIGN_UNIFORM, 0, 1, lo, hi, 0, out), QN_EINVAL);
    assert_int_equal(design_generate(DESIGN_LHS, 4, 1, NULL, hi, 0, out), QN_EINVAL);
    assert_int_equal(design_generate(DESIGN_LHS, 4, 1, lo, hi, 0, NULL), QN_EINVAL);
    assert_int_equal(design_generate((enum design_kind)9, 4, 1, lo, hi, 0, out), QN_EINVAL);
    double l1[1] = {1.0}, h1[1] = {0.0};
    assert_int_equal(design_generate(DESIGN_GRID, 4, 1, l1, h1, 0, out), QN_EINVAL);
    l1[0] = NAN, h1[0] = 1.0;
    assert_int_equal(design_generate(DESIGN_LHS, 4, 1, l1, h1, 0, out), QN_EINVAL);
    l1[0] = 0.0, h1[0] = INFINITY;
    assert_int_equal(design_generate(DESIGN_UNIFORM, 4, 1, l1, h1, 0, out), QN_EINVAL);
    /* a grid whose size overflows is refused, not wrapped */
    assert_int_equal(design_points(DESIGN_GRID, 1, 80), 0);
    assert_int_equal(design_generate(DESIGN_GRID, 1, 80, lo, hi, 0, out), QN_EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    enum design_kind k;
    for (int i = DESIGN_GRID; i <= DESIGN_SOBOL; i++) {
        assert_int_equal(design_from_name(design_name((enum design_kind)i), &k), 0);
        assert_int_equal(k, i);
    }
    assert_string_equal(design_name(DESIGN_LHS), "lhs");
    assert_int_equal(design_from_name("halton", &k), QN_ESPEC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_all_kinds),
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_lhs_strata),
        cmocka_unit_test(test_sobol_known_points),
        cmocka_unit_test(test_sobol_net_and_mean),
        cmocka_unit_test(test_uniform_mean_and_seeds),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
