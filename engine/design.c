/*
 * design.c: sampling designs for sweeps (see design.h).
 *
 * Every design is generated on the calling thread from its arguments alone:
 *   grid     m points per axis (endpoints included), first dimension slowest;
 *   uniform  i.i.d. points from GSL's mt19937 seeded with `seed`;
 *   lhs      Latin hypercube: per dimension a random permutation of the n
 *            strata, one uniform point inside each stratum;
 *   sobol    GSL's Sobol' sequence scaled into the box.
 *
 * Trade-off on sobol: GSL's generator skips the sequence's first point (the
 * origin), which breaks Sobol's net property: the first 2^m points GSL returns
 * are not stratified. We emit the origin first and then GSL's stream, so the
 * first 2^m rows are exactly a (t,m,s)-net (in one dimension, exactly one
 * point in each of 2^m equal bins). The price is a row on the box's lower
 * corner, which a sweep handles like any other input.
 */
#include "design.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_qrng.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "qn_err.h"

#define DESIGN_SOBOL_MAX_DIM 40 /* GSL's gsl_qrng_sobol limit */

static const char *const design__names[] = {"grid", "uniform", "lhs", "sobol"};

/* base^e, or 0 when it overflows size_t. */
static size_t design__pow(size_t base, size_t e)
{
    size_t acc = 1;
    for (size_t i = 0; i < e; i++) {
        if (acc > SIZE_MAX / base)
            return 0;
        acc *= base;
    }
    return acc;
}

/* Grid points per axis: max(2, floor(samples^(1/dim))), with the floating
 * root corrected to the exact integer root. */
static size_t design__grid_m(size_t samples, size_t dim)
{
    size_t m = (size_t)floor(pow((double)samples, 1.0 / (double)dim) + 1e-9);
    while (m > 2 && (design__pow(m, dim) == 0 || design__pow(m, dim) > samples))
        m--;
    while (design__pow(m + 1, dim) != 0 && design__pow(m + 1, dim) <= samples)
        m++;
    return m < 2 ? 2 : m;
}

size_t design_points(enum design_kind kind, size_t samples, size_t dim)
{
    if (dim == 0 || samples == 0)
        return 0;
    if (kind == DESIGN_GRID)
        return design__pow(design__grid_m(samples, dim), dim);
    return samples;
}

/* lo + (hi - lo) * u for u in [0, 1], clamped into [lo, hi] against rounding. */
static double design__scale(double lo, double hi, double u)
{
    double v = lo + (hi - lo) * u;
    return v < lo ? lo : v > hi ? hi : v;
}

static void design__grid(size_t samples, size_t dim, const double *lo, const double *hi,
                         double *out)
{
    size_t m = design__grid_m(samples, dim), total = design__pow(m, dim);
    for (size_t p = 0; p < total; p++) {
        size_t rest = p;
        for (size_t j = dim; j-- > 0;) {
            size_t k = rest % m;
            rest /= m;
            out[p * dim + j] = k == m - 1 ? hi[j] : design__scale(lo[j], hi[j], (double)k / (double)(m - 1));
        }
    }
}

/* A GSL mt19937 seeded from all 64 bits of seed (mt19937 keeps 32). */
static gsl_rng *design__rng(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r)
        gsl_rng_set(r, (unsigned long)((seed ^ (seed >> 32)) & 0xffffffffu));
    return r;
}

static int design__uniform(size_t n, size_t dim, const double *lo, const double *hi,
                           uint64_t seed, double *out)
{
    gsl_rng *r = design__rng(seed);
    if (!r)
        return QN_ENOMEM;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            out[i * dim + j] = design__scale(lo[j], hi[j], gsl_rng_uniform(r));
    gsl_rng_free(r);
    return 0;
}

static int design__lhs(size_t n, size_t dim, const double *lo, const double *hi,
                       uint64_t seed, double *out)
{
    int rc = QN_ENOMEM;
    size_t *perm = malloc(n * sizeof *perm); /* n * sizeof checked by the caller */
    if (!perm)
        goto fail_perm;
    gsl_rng *r = design__rng(seed);
    if (!r)
        goto fail_rng;
    for (size_t j = 0; j < dim; j++) {
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        gsl_ran_shuffle(r, perm, n, sizeof *perm);
        for (size_t i = 0; i < n; i++) {
            double u = ((double)perm[i] + gsl_rng_uniform(r)) / (double)n;
            out[i * dim + j] = design__scale(lo[j], hi[j], u);
        }
    }
    rc = 0;
    gsl_rng_free(r);
fail_rng:
    free(perm);
fail_perm:
    return rc;
}

static int design__sobol(size_t n, size_t dim, const double *lo, const double *hi,
                         double *out)
{
    gsl_qrng *q = gsl_qrng_alloc(gsl_qrng_sobol, (unsigned)dim);
    if (!q)
        return QN_ENOMEM;
    double u[DESIGN_SOBOL_MAX_DIM];
    for (size_t i = 0; i < n; i++) {
        if (i == 0)
            memset(u, 0, sizeof u); /* the origin, which GSL skips */
        else if (gsl_qrng_get(q, u) != 0)
            break; /* GSL's Sobol' never fails below 2^30 points; checked by the caller */
        for (size_t j = 0; j < dim; j++)
            out[i * dim + j] = design__scale(lo[j], hi[j], u[j]);
    }
    gsl_qrng_free(q);
    return 0;
}

/* Checks the arguments of design_generate; returns the point count or 0. */
static size_t design__check(enum design_kind kind, size_t samples, size_t dim,
                            const double *lo, const double *hi, const double *out)
{
    if (!lo || !hi || !out || (unsigned)kind > DESIGN_SOBOL)
        return 0;
    if (kind == DESIGN_SOBOL && (dim > DESIGN_SOBOL_MAX_DIM || samples > (1u << 30)))
        return 0;
    for (size_t j = 0; j < dim; j++)
        if (!isfinite(lo[j]) || !isfinite(hi[j]) || lo[j] > hi[j])
            return 0;
    size_t n = design_points(kind, samples, dim);
    if (n == 0 || n > SIZE_MAX / sizeof(double) / dim)
        return 0;
    return n;
}

int design_generate(enum design_kind kind, size_t samples, size_t dim, const double *lo,
                    const double *hi, uint64_t seed, double *out)
{
    size_t n = design__check(kind, samples, dim, lo, hi, out);
    if (n == 0)
        return QN_EINVAL;
    switch (kind) {
    case DESIGN_GRID:
        design__grid(samples, dim, lo, hi, out);
        return 0;
    case DESIGN_UNIFORM:
        return design__uniform(n, dim, lo, hi, seed, out);
    case DESIGN_LHS:
        return design__lhs(n, dim, lo, hi, seed, out);
    case DESIGN_SOBOL:
        return design__sobol(n, dim, lo, hi, out);
    }
    return QN_EINVAL;
}

const char *design_name(enum design_kind k)
{
    return (unsigned)k <= DESIGN_SOBOL ? design__names[k] : "unknown";
}

int design_from_name(const char *s, enum design_kind *out)
{
    for (size_t i = 0; s && i < sizeof design__names / sizeof design__names[0]; i++) {
        if (strcmp(s, design__names[i]) == 0) {
            *out = (enum design_kind)i;
            return 0;
        }
    }
    return QN_ESPEC;
}
