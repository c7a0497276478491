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
 * The device skips the repeated cycles of a periodic spike train and stops
 * at a rest state (readout "cycles": "skip", the default); it is also timed
 * integrating every step ("integrate", the cost before skipping), over all
 * drives and over the firing (two spikes or more after the transient) and
 * the resting ones apart.
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
#include "qn_err.h"

#include "qt_bench.h"

#define N_SOLVES 1000
#define REPS 3

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

/* The study's HH device (tests/study/dev_hh_chip.json, variability aside),
 * skipping or integrating repeated cycles. */
static int setup(struct dev_model *d, enum dev_cycles cycles)
{
    struct dev_error err;
    dev_model_init(d, DEV_HODGKIN_HUXLEY);
    d->readout.kind = READ_SPIKE_RATE;
    d->readout.t_max = 500.0;
    d->readout.cycles = cycles;
    int rc = dev_model_prepare(d, &err);
    if (rc)
        fprintf(stderr, "bench_hh: %s: %s\n", err.field, err.msg);
    return rc;
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
    gsl_odeiv2_system sys = {qb_hh_rhs, NULL, 4, &I};
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

/* CPU seconds of the best of REPS passes of dev_eval over u[n] (into rate[n]);
 * a negative value when a solve fails. */
static double time_solves(struct dev_work *w, const double *u, size_t n, double *rate)
{
    double best = HUGE_VAL;
    for (int r = 0; r < REPS; r++) {
        double t0 = cpu_now();
        if (dev_solve_all(w, u, n, rate))
            return -1;
        best = fmin(best, cpu_now() - t0);
    }
    return best;
}

/* One row of the skip / integrate table: ms per solve and their ratio. */
static void print_cycles_row(const char *what, size_t n, double skip, double full)
{
    if (n == 0)
        return;
    printf("  %-8s %4zu drives  skip %.3f ms  integrate %.3f ms  ratio skip/integrate %.2f\n",
           what, n, 1e3 * skip / (double)n, 1e3 * full / (double)n, skip / full);
}

/* Times skip against integrate over all drives, the firing ones (fire[i]
 * nonzero) and the resting ones. Returns 0 or QN_ESOLVER when a solve failed. */
static int bench_cycles(struct dev_work *skip, struct dev_work *full, const double *u,
                        const int *fire)
{
    static double sub[2][N_SOLVES], out[N_SOLVES];
    size_t m[2] = {0, 0};
    for (size_t i = 0; i < N_SOLVES; i++)
        sub[fire[i] ? 0 : 1][m[fire[i] ? 0 : 1]++] = u[i];
    double ts = time_solves(skip, u, N_SOLVES, out), tf = time_solves(full, u, N_SOLVES, out);
    double fs = time_solves(skip, sub[0], m[0], out), ff = time_solves(full, sub[0], m[0], out);
    double rs = time_solves(skip, sub[1], m[1], out), rf = time_solves(full, sub[1], m[1], out);
    if (ts < 0 || tf < 0 || fs < 0 || ff < 0 || rs < 0 || rf < 0)
        return QN_ESOLVER;
    printf("  repeated cycles (readout cycles skip vs integrate, best of %d):\n", REPS);
    print_cycles_row("all", N_SOLVES, ts, tf);
    print_cycles_row("firing", m[0], fs, ff);
    print_cycles_row("resting", m[1], rs, rf);
    return 0;
}

int main(void)
{
    static double u[N_SOLVES], r_dev[N_SOLVES], r_ref[N_SOLVES], r_full[N_SOLVES];
    static size_t c_ref[N_SOLVES];
    static int fire[N_SOLVES];
    struct dev_model d, full;
    struct dev_work w, wf;
    char cpu[128];
    gsl_set_error_handler_off();
    if (setup(&d, DEV_CYCLES_SKIP) || dev_work_init(&w, &d, NULL) ||
        setup(&full, DEV_CYCLES_INTEGRATE) || dev_work_init(&wf, &full, NULL))
        return 1;
    srand(12);
    for (size_t i = 0; i < N_SOLVES; i++)
        u[i] = -20.0 + 60.0 * ((double)rand() + 0.5) / ((double)RAND_MAX + 1.0);
    double best_dev = HUGE_VAL, best_ref = HUGE_VAL;
    int rc = 0;
    for (int r = 0; r < REPS && !rc; r++) {
        double t0 = cpu_now();
        qb_hh_direct(&d, d.y0, 1.0, u, N_SOLVES, r_ref, c_ref);
        best_ref = fmin(best_ref, cpu_now() - t0);
        t0 = cpu_now();
        rc = dev_solve_all(&w, u, N_SOLVES, r_dev);
        best_dev = fmin(best_dev, cpu_now() - t0);
    }
    size_t spiking = 0;
    for (size_t i = 0; i < N_SOLVES; i++) {
        fire[i] = c_ref[i] >= 2;
        spiking += (size_t)fire[i];
    }
    qb_cpu_name(cpu, sizeof cpu);
    if (!rc)
        rc = dev_solve_all(&wf, u, N_SOLVES, r_full);
    if (!rc) {
        printf("hodgkin_huxley spike_rate t_max 500 ms, %d drives u1 in [-20, 40] (%zu spiking), "
               "CPU %s\n",
               N_SOLVES, spiking, cpu);
        printf("  device (dev_eval)            %.3f ms CPU per solve\n", 1e3 * best_dev / N_SOLVES);
        printf("  bare GSL loop, textbook rhs  %.3f ms CPU per solve\n", 1e3 * best_ref / N_SOLVES);
        printf("  ratio device / bare loop     %.2f (below 1: the device is cheaper)\n",
               best_dev / best_ref);
        printf("  check: largest relative rate difference %.2e (device rtol %.0e); drives whose "
               "spike counts differ: %zu; skip vs integrate %.2e\n",
               max_rel_diff(r_dev, r_ref, N_SOLVES), d.solver.rtol,
               count_mismatch(&d, u, N_SOLVES), max_rel_diff(r_dev, r_full, N_SOLVES));
        rc = bench_cycles(&w, &wf, u, fire);
    }
    dev_work_close(&w);
    dev_work_close(&wf);
    dev_model_close(&d);
    dev_model_close(&full);
    if (rc)
        fprintf(stderr, "bench_hh: %s\n", qn_err_msg(rc));
    return rc ? 1 : 0;
}
