/*
 * bench_hh.c: the CPU cost of one Hodgkin-Huxley device solve, the one the
 * study's HH part (tests/study/study.sh) pays 2 models x 10 chips x N images
 * x 128 devices times, against a bare GSL loop over the same ODE.
 *
 * Workload: the study's device (tests/study/dev_hh_chip.json: hodgkin_huxley,
 * gain 1, spike_rate over t_max 500 ms, the default transient and solver),
 * drives u1 uniform in [-20, 40] (the study's sweep range), N solves through
 * dev_eval on one dev_work, as the network's device path (net.c) makes them.
 * Reference, in the same run: a bare gsl_odeiv2 rk8pd loop with the same
 * tolerances over the textbook right-hand side (six exp calls, the code the
 * device ran before it shared its exponentials), locating the spikes as the
 * readout does. Time is CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), so
 * other processes on the machine's cores disturb it little; best of REPS,
 * interleaved.
 *
 * It also checks the outputs: every drive must give the same spike count in
 * both, and the rates must agree within the device's rtol (relative).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "device.h"
#include "device_internal.h" /* dev_hermite_cross: the same spike location */
#include "qn_err.h"

#define N_SOLVES 1000
#define REPS 3

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the reference: textbook HH, a bare GSL loop ------------------------------------------- */

/* x / (1 - exp(-x/c)), continuous through x = 0. */
static double ref_vtrap(double x, double c)
{
    double s = x / c;
    return fabs(s) < 1e-6 ? c * (1 + s / 2 + s * s / 12) : x / (1 - exp(-s));
}

static int ref_rhs(double t, const double y[], double f[], void *params)
{
    (void)t;
    double I = *(const double *)params, V = y[0], m = y[1], h = y[2], n = y[3];
    double am = 0.1 * ref_vtrap(V + 40, 10), bm = 4 * exp(-(V + 65) / 18);
    double ah = 0.07 * exp(-(V + 65) / 20), bh = 1 / (1 + exp(-(V + 35) / 10));
    double an = 0.01 * ref_vtrap(V + 55, 10), bn = 0.125 * exp(-(V + 65) / 80);
    f[0] = I - 120.0 * m * m * m * h * (V - 50.0) - 36.0 * n * n * n * n * (V + 77.0) -
           0.3 * (V + 54.4);
    f[1] = am * (1 - m) - bm * m;
    f[2] = ah * (1 - h) - bh * h;
    f[3] = an * (1 - n) - bn * n;
    return GSL_SUCCESS;
}

/* Integrates each drive to t_max; rate[i] as spike_rate defines it, count[i]
 * the spikes after the transient. */
static void ref_solve(const struct dev_model *d, const double *u, size_t n, double *rate,
                      size_t *count)
{
    double I = 0;
    gsl_odeiv2_system sys = {ref_rhs, NULL, 4, &I};
    gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(
        &sys, gsl_odeiv2_step_rk8pd, d->solver.h0, d->solver.atol, d->solver.rtol);
    double t_max = d->readout.t_max, transient = dev_transient(&d->readout);
    for (size_t i = 0; i < n; i++) {
        I = u[i];
        gsl_odeiv2_driver_reset(drv);
        double t = 0, h = d->solver.h0, y[4], yp[4], f0[4], f1[4], first = 0, last = 0;
        memcpy(y, d->y0, sizeof y);
        size_t late = 0;
        int rc = GSL_SUCCESS;
        while (t < t_max && rc == GSL_SUCCESS) {
            double tp = t;
            memcpy(yp, y, sizeof y);
            rc = gsl_odeiv2_evolve_apply(drv->e, drv->c, drv->s, &sys, &t, t_max, &h, y);
            if (!(yp[0] < 0 && y[0] >= 0 && t > transient))
                continue;
            ref_rhs(tp, yp, f0, &I);
            ref_rhs(t, y, f1, &I);
            double tc = y[0] > 0 ? dev_hermite_cross(tp, yp[0], f0[0], t, y[0], f1[0], 0.0) : t;
            if (tc >= transient && late++ == 0)
                first = tc;
            last = tc >= transient ? tc : last;
        }
        count[i] = late;
        rate[i] = rc != GSL_SUCCESS ? NAN
                  : late >= 2       ? 1000.0 * (double)(late - 1) / (last - first)
                                    : 0.0;
    }
    gsl_odeiv2_driver_free(drv);
}

/* ---- the device ---------------------------------------------------------------------------- */

/* N solves through dev_eval on one work; returns 0 or the first error. */
static int dev_solve_all(struct dev_work *w, const double *u, size_t n, double *rate)
{
    for (size_t i = 0; i < n; i++) {
        int rc = dev_eval(w, &u[i], &rate[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* The study's HH device (tests/study/dev_hh_chip.json, variability aside). */
static int setup(struct dev_model *d)
{
    struct dev_error err;
    dev_model_init(d, DEV_HODGKIN_HUXLEY);
    d->readout.kind = READ_SPIKE_RATE;
    d->readout.t_max = 500.0;
    int rc = dev_model_prepare(d, &err);
    if (rc)
        fprintf(stderr, "bench_hh: %s: %s\n", err.field, err.msg);
    return rc;
}

/* The CPU model from /proc/cpuinfo into buf. */
static void cpu_model(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            snprintf(buf, cap, "%s", c + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    }
    if (f)
        fclose(f);
}

/* The largest relative difference between the rates a[n] and b[n]. */
static double max_rel_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double s = fmax(fabs(a[i]), fabs(b[i]));
        double r = s > 0 ? fabs(a[i] - b[i]) / s : 0;
        if (!(r <= m))
            m = r;
    }
    return m;
}

/* The drives whose spike counts (every upward 0 mV crossing in t_max) differ
 * between the device's spike_count readout and the reference loop. */
static size_t count_mismatch(struct dev_model *d, const double *u, size_t n)
{
    double I = 0;
    size_t bad = 0;
    struct dev_model c = *d;
    c.compiled = d->compiled;
    c.readout.kind = READ_SPIKE_COUNT;
    struct dev_work w;
    if (dev_work_init(&w, &c, NULL))
        return n;
    gsl_odeiv2_system sys = {ref_rhs, NULL, 4, &I};
    gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(
        &sys, gsl_odeiv2_step_rk8pd, d->solver.h0, d->solver.atol, d->solver.rtol);
    for (size_t i = 0; drv && i < n; i++) {
        double out = NAN, t = 0, h = d->solver.h0, y[4], yp[4];
        I = u[i];
        gsl_odeiv2_driver_reset(drv);
        memcpy(y, d->y0, sizeof y);
        size_t spikes = 0;
        while (t < d->readout.t_max) {
            memcpy(yp, y, sizeof y);
            if (gsl_odeiv2_evolve_apply(drv->e, drv->c, drv->s, &sys, &t, d->readout.t_max, &h,
                                        y) != GSL_SUCCESS)
                break;
            spikes += yp[0] < 0 && y[0] >= 0;
        }
        bad += dev_eval(&w, &u[i], &out) || out != (double)spikes;
    }
    if (drv)
        gsl_odeiv2_driver_free(drv);
    dev_work_close(&w);
    return bad;
}

int main(void)
{
    static double u[N_SOLVES], r_dev[N_SOLVES], r_ref[N_SOLVES];
    static size_t c_ref[N_SOLVES];
    struct dev_model d;
    struct dev_work w;
    char cpu[128];
    gsl_set_error_handler_off();
    if (setup(&d) || dev_work_init(&w, &d, NULL))
        return 1;
    srand(12);
    for (size_t i = 0; i < N_SOLVES; i++)
        u[i] = -20.0 + 60.0 * ((double)rand() + 0.5) / ((double)RAND_MAX + 1.0);
    double best_dev = HUGE_VAL, best_ref = HUGE_VAL;
    int rc = 0;
    for (int r = 0; r < REPS && !rc; r++) {
        double t0 = cpu_now();
        ref_solve(&d, u, N_SOLVES, r_ref, c_ref);
        best_ref = fmin(best_ref, cpu_now() - t0);
        t0 = cpu_now();
        rc = dev_solve_all(&w, u, N_SOLVES, r_dev);
        best_dev = fmin(best_dev, cpu_now() - t0);
    }
    size_t spiking = 0;
    for (size_t i = 0; i < N_SOLVES; i++)
        spiking += c_ref[i] >= 2;
    cpu_model(cpu, sizeof cpu);
    if (!rc) {
        printf("hodgkin_huxley spike_rate t_max 500 ms, %d drives u1 in [-20, 40] (%zu spiking), "
               "CPU %s\n",
               N_SOLVES, spiking, cpu);
        printf("  device (dev_eval)            %.3f ms CPU per solve\n", 1e3 * best_dev / N_SOLVES);
        printf("  bare GSL loop, textbook rhs  %.3f ms CPU per solve\n", 1e3 * best_ref / N_SOLVES);
        printf("  ratio device / bare loop     %.2f (below 1: the device is cheaper)\n",
               best_dev / best_ref);
        printf("  check: largest relative rate difference %.2e (device rtol %.0e); drives whose "
               "spike counts differ: %zu\n",
               max_rel_diff(r_dev, r_ref, N_SOLVES), d.solver.rtol,
               count_mismatch(&d, u, N_SOLVES));
    }
    dev_work_close(&w);
    dev_model_close(&d);
    if (rc)
        fprintf(stderr, "bench_hh: %s\n", qn_err_msg(rc));
    return rc ? 1 : 0;
}
