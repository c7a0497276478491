/*
 * bench_expr.c: the compiled expression evaluator against hand-written C.
 *
 * Times the chemical device's right-hand side "kappa + u1*y - y^2" and its
 * y-derivative evaluated alone (ns per evaluation), then inside real ODE
 * solves (GSL rk8pd to t = 200 over a range of drives), where the target is
 * that the compiled rhs costs at most twice the hand-written one. Prints the
 * ratios; a ratio above the target is reported, not fatal (timings on a
 * shared machine are noisy).
 */
#include <stdio.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "expr.h"

#define BENCH_EVALS 10000000
#define BENCH_SOLVES 20000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The hand-written versions; noinline so both sides pay for a call. */
__attribute__((noinline)) static double hand_f(const double *v)
{
    return v[0] + v[1] * v[2] - v[2] * v[2];
}

__attribute__((noinline)) static double hand_df(const double *v)
{
    return v[1] - 2 * v[2];
}

/* ns per evaluation of e (hand when e is NULL) over varying y. */
static double time_evals(const struct expr *e, double (*hand)(const double *), double *sum)
{
    double v[3] = {0.01, 0.7, 0}, s = 0, t0 = now();
    for (int i = 0; i < BENCH_EVALS; i++) {
        v[2] = i * 1e-7;
        s += e ? expr_eval(e, v) : hand(v);
    }
    *sum = s;
    return (now() - t0) / BENCH_EVALS * 1e9;
}

struct bench_ode {
    const struct expr *e; /* NULL: the hand-written rhs */
    double kappa, u1;
};

static int bench_rhs(double t, const double y[], double f[], void *p)
{
    (void)t;
    const struct bench_ode *c = p;
    double v[3] = {c->kappa, c->u1, y[0]};
    f[0] = c->e ? expr_eval(c->e, v) : hand_f(v);
    return GSL_SUCCESS;
}

/* Seconds for BENCH_SOLVES solves; *ysum sums the final states. */
static double time_solves(struct bench_ode *c, double *ysum)
{
    gsl_odeiv2_system sys = {bench_rhs, NULL, 1, c};
    double s = 0, t0 = now();
    for (int rep = 0; rep < BENCH_SOLVES; rep++) {
        gsl_odeiv2_driver *d =
            gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-3, 1e-10, 1e-8);
        if (!d)
            return -1;
        double t = 0, y[1] = {1.0};
        c->u1 = -1 + 2.0 * rep / BENCH_SOLVES;
        gsl_odeiv2_driver_apply(d, &t, 200.0, y);
        s += y[0];
        gsl_odeiv2_driver_free(d);
    }
    *ysum = s;
    return now() - t0;
}

int main(void)
{
    const char *const names[] = {"kappa", "u1", "y"};
    struct expr *e = NULL, *de = NULL;
    struct expr_error err;
    if (expr_compile("kappa + u1*y - y^2", names, 3, &e, &err) || expr_diff(e, 2, &de)) {
        fprintf(stderr, "bench_expr: compile failed: %s\n", err.msg);
        expr_destroy(e);
        return 1;
    }
    gsl_set_error_handler_off();
    double s1, s2;
    double th = time_evals(NULL, hand_f, &s1), tq = time_evals(e, NULL, &s2);
    printf("f = kappa + u1*y - y^2   hand-written %6.2f ns  expr %6.2f ns (%zu ops)  ratio %.2f%s\n",
           th, tq, expr_n_ops(e), tq / th, s1 == s2 ? "" : "  RESULTS DIFFER");
    th = time_evals(NULL, hand_df, &s1);
    tq = time_evals(de, NULL, &s2);
    printf("df/dy = u1 - 2*y         hand-written %6.2f ns  expr %6.2f ns (%zu ops)  ratio %.2f%s\n",
           th, tq, expr_n_ops(de), tq / th, s1 == s2 ? "" : "  RESULTS DIFFER");

    struct bench_ode c = {NULL, 0.01, 0};
    double yh, yq;
    th = time_solves(&c, &yh);
    c.e = e;
    tq = time_solves(&c, &yq);
    double ratio = tq / th;
    printf("%d rk8pd solves to t=200  hand-written %.3f s  expr %.3f s  ratio %.2f (target <= 2)%s%s\n",
           BENCH_SOLVES, th, tq, ratio, ratio <= 2 ? "" : "  OVER TARGET",
           yh == yq ? "" : "  RESULTS DIFFER");
    expr_destroy(de);
    expr_destroy(e);
    return 0;
}
