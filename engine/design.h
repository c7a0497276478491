/*
 * design.h: sampling designs for sweeps: grid, uniform, lhs, sobol.
 *
 * A design is n points in a box [lo_j, hi_j] of `dim` dimensions, written
 * row-major into a caller-provided (n, dim) array. Designs are generated on
 * one thread from the seed alone, so a sweep's inputs never depend on how
 * many threads solve them. Randomness is GSL's mt19937 seeded with `seed`;
 * sobol is GSL's qrng (deterministic; the seed is unused).
 */
#ifndef QN_DESIGN_H
#define QN_DESIGN_H

#include <stddef.h>
#include <stdint.h>

enum design_kind { DESIGN_GRID, DESIGN_UNIFORM, DESIGN_LHS, DESIGN_SOBOL };

/*
 * The number of points a design of `samples` requested points has in `dim`
 * dimensions: samples for uniform/lhs/sobol; for grid, m^dim with
 * m = max(2, floor(samples^(1/dim) + 1e-9)) points per axis (endpoints
 * included), so a grid never exceeds the request unless samples < 2^dim.
 */
size_t design_points(enum design_kind kind, size_t samples, size_t dim);

/*
 * Writes design_points(kind, samples, dim) points into out (rows of dim).
 * lo and hi are borrowed arrays of dim bounds with lo[j] <= hi[j].
 * Returns 0, QN_EINVAL (dim 0 or > 40 for sobol, lo > hi, non-finite bounds),
 * or QN_ENOMEM.
 */
int design_generate(enum design_kind kind, size_t samples, size_t dim, const double *lo,
                    const double *hi, uint64_t seed, double *out);

const char *design_name(enum design_kind k);
int design_from_name(const char *s, enum design_kind *out);

#endif
