/*
 * qt_bench.h: helpers shared by the benchmarks in tests/bench (compiled into
 * every test and bench program, as every tests/support .c file): the CPU's
 * name for the figures, and a reference Hodgkin-Huxley solve
 * written as a bare GSL loop (the device's work done by hand, to time
 * against and to check the device's outputs with). Nothing here allocates
 * for the caller. Wall-clock time is qd_now (qt_daemon.h).
 */
#ifndef QT_BENCH_H
#define QT_BENCH_H

#include <stddef.h>

struct dev_model;

/* The CPU's model name from /proc/cpuinfo into buf ("unknown" when absent). */
void qb_cpu_name(char *buf, size_t cap);

/* Hodgkin-Huxley's six rate functions (classic squid-axon constants) at
 * membrane potential V (mV): alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n. */
void qb_hh_rates(double V, double r[6]);

/* Hodgkin-Huxley's right-hand side for gsl_odeiv2 (y: V, m, h, n); params
 * points at the injected current (a double). */
int qb_hh_rhs(double t, const double y[], double f[], void *params);

/*
 * Textbook Hodgkin-Huxley integrated by a bare gsl_odeiv2 rk8pd loop with
 * d's solver step and tolerances, from state y0 (V, m, h, n) to d's t_max,
 * for each injected current gain * u[i]. rate[i] is the sustained rate as
 * spike_rate defines it: 1000 / the mean interval between the upward 0 mV
 * crossings after d's transient, each located between the two steps around
 * it by the cubic Hermite interpolant of V (NaN when GSL fails, 0 under two
 * spikes); count[i] (count may be NULL) the spikes after the transient.
 */
void qb_hh_direct(const struct dev_model *d, const double y0[4], double gain, const double *u,
                  size_t n, double *rate, size_t *count);

#endif
