/*
 * expr.h: a small compiler for the right-hand sides of user-defined ODEs.
 *
 * Source text such as "(tanh(u1) - y) / tau" is parsed against a fixed list of
 * variable names into an expression tree, differentiated symbolically (exact
 * Jacobians, not finite differences), simplified, and compiled to a flat
 * stack-machine program that evaluates without allocating. A compiled program
 * is immutable after creation, so one program may be evaluated from many
 * threads at once.
 *
 * Grammar: numbers (123, 1.5, 2e-3), names, + - * / ^ (right associative,
 * binds tighter than unary minus: -x^2 == -(x^2)), parentheses, and the calls
 * exp log sqrt sin cos tanh (one argument), pow min max (two arguments).
 */
#ifndef QN_EXPR_H
#define QN_EXPR_H

#include <stddef.h>

/* Deepest evaluation stack a program may need; deeper sources are refused. */
#define EXPR_MAX_STACK 64

/* Where and why a source did not compile. */
struct expr_error {
    size_t pos;      /* 0-based byte offset of the offending token in the source */
    char token[32];  /* the offending token as written ("" at end of input) */
    char msg[160];   /* a sentence: "unknown symbol 'kapa'", "expected ')'" */
};

struct expr; /* a compiled program (opaque) */

/*
 * Compiles `src` with variables `names[0..n_names)`: a name in the source
 * refers to the variable of the same index in the `vars` array given to
 * expr_eval. Returns 0 and a new program in *out (free with expr_destroy), or
 * QN_EPARSE with *err filled (unknown symbols, bad tokens, wrong argument
 * counts, trailing input), or QN_ENOMEM. `names` is borrowed.
 */
int expr_compile(const char *src, const char *const *names, size_t n_names,
                 struct expr **out, struct expr_error *err);

/*
 * The exact partial derivative of `e` with respect to variable `var`,
 * simplified (constants folded, x*0 and x+0 removed), as a new program in
 * *out. Returns 0, QN_EINVAL when var >= n_names, QN_ERANGE when the
 * derivative is too deep or too large to compile (more than EXPR_MAX_STACK
 * stack slots), or QN_ENOMEM. min/max differentiate piecewise (the derivative
 * of the selected branch; a on ties). Works on derivatives too.
 */
int expr_diff(const struct expr *e, size_t var, struct expr **out);

/* Evaluates `e` at `vars` (n_names values, borrowed). Never allocates. */
double expr_eval(const struct expr *e, const double *vars);

/* Nonzero when `e` depends on variable `var`. */
int expr_uses(const struct expr *e, size_t var);

/* Nonzero when `e` is the constant 0 (e.g. a derivative that vanishes). */
int expr_is_zero(const struct expr *e);

/* Number of bytecode instructions of `e` (for tests and benchmarks). */
size_t expr_n_ops(const struct expr *e);

/* Frees a program; NULL is allowed. */
void expr_destroy(struct expr *e);

#endif
