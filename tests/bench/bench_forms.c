/*
 * bench_forms.c: the same device written three ways, solved over the same
 * points: how much do user-written forms cost against the built-in kind?
 *
 *   crn_relu    built in: dy/dt = kappa + u1 y - y^2, hand-written rhs and Jacobian
 *   ode         "kappa + u1*y - y^2", compiled expressions (engine/expr)
 *   reactions   "0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ pos(u1)",
 *               "Y -> 0 @ neg(u1)" (mass action, engine/rxn), the same ODE
 * All three: kappa 0.01, y0 0, steady_state readout and solver defaults, 20000
 * Sobol' points u1 in [-4, 4], sweep_run on 1 worker (the form's cost, not the
 * pool's), best of REPS interleaved. Printed: solves/s, the ratio of each form
 * to the built-in (target: ode >= 0.5), and the largest difference of outputs
 * against the built-in (the forms must agree, or the timing means nothing).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "blas_env.h"
#include "design.h"
#include "device.h"
#include "qn_err.h"
#include "sweep.h"

#define REPS 7
#define N_PTS 20000
#define N_FORMS 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The ode form: one state y. Sources are strdup'ed: the model owns them. */
static int setup_ode(struct dev_model *d)
{
    dev_model_init(d, DEV_ODE);
    d->n_states = 1;
    strcpy(d->state_names[0], "y");
    d->y0[0] = 0.0;
    d->rhs_src[0] = strdup("kappa + u1*y - y^2");
    if (!d->rhs_src[0])
        return QN_ENOMEM;
    return dev_model_set_param(d, "kappa", 0.01);
}

/* The reactions form: species Y, three mass-action reactions. */
static int setup_reactions(struct dev_model *d)
{
    static const char *const rx[4] = {"0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ pos(u1)",
                                      "Y -> 0 @ neg(u1)"};
    dev_model_init(d, DEV_REACTIONS);
    d->n_states = 1;
    strcpy(d->state_names[0], "Y");
    d->y0[0] = 0.0;
    d->n_reactions = 4;
    for (size_t i = 0; i < 4; i++)
        if (!(d->reaction_src[i] = strdup(rx[i])))
            return QN_ENOMEM;
    d->output_src = strdup("Y");
    if (!d->output_src)
        return QN_ENOMEM;
    return dev_model_set_param(d, "kappa", 0.01);
}

static int prepare(struct dev_model *d, const char *name)
{
    struct dev_error err;
    int rc = dev_model_prepare(d, &err);
    if (rc)
        fprintf(stderr, "bench_forms: %s: %s: %s\n", name, err.field, err.msg);
    return rc;
}

/* Largest |a - b| over rows both solved; *nan_rows counts rows where either failed. */
static double max_diff(const double *a, const double *b, size_t n, size_t *nan_rows)
{
    double m = 0;
    *nan_rows = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i]))
            ++*nan_rows;
        else
            m = fmax(m, fabs(a[i] - b[i]));
    }
    return m;
}

int main(int argc, char **argv)
{
    static const char *const names[N_FORMS] = {"crn_relu", "ode", "reactions"};
    static double u[N_PTS], out[N_FORMS][N_PTS];
    static int status[N_PTS];
    struct dev_model d[N_FORMS];
    double best[N_FORMS] = {HUGE_VAL, HUGE_VAL, HUGE_VAL}, lo = -4, hi = 4;
    blas_env_select(argc, argv);
    gsl_set_error_handler_off();
    memset(d, 0, sizeof d); /* dev_model_close is safe on every entry whatever fails */
    dev_model_init(&d[0], DEV_CRN_RELU);
    int rc = setup_ode(&d[1]);
    if (!rc)
        rc = setup_reactions(&d[2]);
    for (size_t f = 0; !rc && f < N_FORMS; f++)
        rc = prepare(&d[f], names[f]);
    if (!rc)
        rc = design_generate(DESIGN_SOBOL, N_PTS, 1, &lo, &hi, 1, u);
    for (int r = 0; !rc && r < REPS; r++) {
        for (size_t f = 0; !rc && f < N_FORMS; f++) {
            double t0 = now();
            rc = sweep_run(&d[f], u, N_PTS, 1, out[f], status, NULL);
            best[f] = fmin(best[f], now() - t0);
        }
    }
    for (size_t f = 0; !rc && f < N_FORMS; f++) {
        size_t bad = 0;
        double diff = max_diff(out[f], out[0], N_PTS, &bad);
        printf("%-10s %6d points, 1 worker: %9.0f solves/s | vs built-in %.2fx | max |out - "
               "built-in| %.2e, rows failed in either %zu\n",
               names[f], N_PTS, N_PTS / best[f], best[0] / best[f], diff, bad);
    }
    if (!rc)
        printf("target: ode >= 0.5x built-in: %s\n", best[0] / best[1] >= 0.5 ? "met" : "NOT met");
    for (size_t f = 0; f < N_FORMS; f++)
        dev_model_close(&d[f]);
    if (rc)
        fprintf(stderr, "bench_forms: %s\n", qn_err_msg(rc));
    return rc ? 1 : 0;
}
