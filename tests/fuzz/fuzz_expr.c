/*
 * fuzz_expr.c: the expression compiler (expr_compile, expr_diff, expr_eval).
 *
 * Input: one byte choosing how many of a fixed list of variable names are
 * visible (low 3 bits, 0..6), then the source text (at most SPEC_SRC_MAX
 * bytes, as the spec layer allows; cut at the first NUL, as a C string is).
 * A program that compiles is evaluated at a few points, differentiated with
 * respect to every variable, each derivative evaluated and differentiated
 * once more, as the device layer does for Jacobians.
 */
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "fuzz.h"
#include "spec.h"

static const char *const fuzz_expr__names[] = {"y", "u1", "u2", "kappa", "tau", "x_1"};
#define FUZZ_EXPR__N (sizeof fuzz_expr__names / sizeof fuzz_expr__names[0])

static const double fuzz_expr__points[][FUZZ_EXPR__N] = {
    {0, 0, 0, 0, 0, 0},
    {1.5, -2, 0.25, 0.01, 3, -1e3},
    {-1, 1e300, -1e-300, 2, -0.5, 7},
};
#define FUZZ_EXPR__NP (sizeof fuzz_expr__points / sizeof fuzz_expr__points[0])

static void fuzz_expr__eval_all(const struct expr *e)
{
    for (size_t p = 0; p < FUZZ_EXPR__NP; p++)
        (void)expr_eval(e, fuzz_expr__points[p]);
    (void)expr_is_zero(e);
    (void)expr_n_ops(e);
}

int fuzz_expr_one(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > SPEC_SRC_MAX)
        return 0;
    size_t n_names = data[0] & 7u;
    if (n_names > FUZZ_EXPR__N)
        n_names = FUZZ_EXPR__N;
    char *src = malloc(size);
    if (!src)
        return 0;
    memcpy(src, data + 1, size - 1);
    src[size - 1] = '\0';
    struct expr *e = NULL;
    struct expr_error err;
    if (expr_compile(src, fuzz_expr__names, n_names, &e, &err) == 0) {
        fuzz_expr__eval_all(e);
        for (size_t v = 0; v <= n_names; v++) { /* v == n_names: out of range, QN_EINVAL */
            struct expr *d = NULL;
            (void)expr_uses(e, v < n_names ? v : 0);
            if (expr_diff(e, v, &d) != 0)
                continue;
            fuzz_expr__eval_all(d);
            struct expr *d2 = NULL;
            if (expr_diff(d, 0, &d2) == 0) {
                fuzz_expr__eval_all(d2);
                expr_destroy(d2);
            }
            expr_destroy(d);
        }
        expr_destroy(e);
    }
    free(src);
    return 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_expr_one(data, size);
}
#endif
