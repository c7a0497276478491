/*
 * test_device_cycles.c: skipping the repeated cycles of a periodic spike
 * train (readout "cycles": "skip", engine/dev_solve.c) gives what integrating
 * every cycle gives, on the real Hodgkin-Huxley ODE over the study's drive
 * and gK range, and is not applied where it would be wrong (a system that
 * names t) or where it cannot be (a recorded trajectory).
 *
 * Tolerance of the rates: both readouts are 1000 (n - 1) / (last - first)
 * over about 450 ms. Skipping moves the last crossings by m periods of the
 * located period T, which repeats to DEV__CYCLE_TOL = 0.1 of the solver's
 * error scale rtol T: at most 0.1 rtol relative on the rate, plus the
 * difference of where the two runs' steps fall around their last crossing
 * (the Hermite interpolant that times every counted spike, O(h^4), a few
 * 1e-5 ms). So rtol (1e-6 for hodgkin_huxley) relative; measured 3.5e-7.
 * Counts must be equal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "qn_err.h"

/* Prepares d or fails the test with the model's own message. */
static void prepare(struct dev_model *d)
{
    struct dev_error err = {{0}, {0}};
    int rc = dev_model_prepare(d, &err);
    if (rc)
        fail_msg("prepare: %s: %s", err.field, err.msg);
}

/* The study's HH device (tests/study/dev_hh_chip.json) with gK = gk. */
static void hh(struct dev_model *d, enum dev_readout_kind k, enum dev_cycles cycles, double gk)
{
    dev_model_init(d, DEV_HODGKIN_HUXLEY);
    d->readout.kind = k;
    d->readout.t_max = 500;
    d->readout.cycles = cycles;
    dev_model_set_param(d, "gk", gk);
    prepare(d);
}

/* One readout of the device at drive u, skipped and integrated, into out[2]. */
static void both(enum dev_readout_kind k, double gk, double u, double out[2])
{
    for (int c = 0; c < 2; c++) {
        struct dev_model d;
        struct dev_work w;
        hh(&d, k, c ? DEV_CYCLES_INTEGRATE : DEV_CYCLES_SKIP, gk);
        assert_int_equal(dev_work_init(&w, &d, NULL), 0);
        int rc = dev_eval(&w, &u, &out[c]);
        if (rc)
            fail_msg("gk %g u %g: %s", gk, u, qn_err_name(rc));
        dev_work_close(&w);
        dev_model_close(&d);
    }
}

/* The drives of the grid: 60 over the study's sweep range [-20, 40] and 24
 * through the bistable region near the firing threshold, where the approach
 * to the cycle is slowest. */
static double grid_drive(int i)
{
    return i < 60 ? -20 + 60.0 * (i + 0.5) / 60 : 6.0 + 4.0 * (i - 60 + 0.5) / 24;
}

/* 12 gK x 84 drives = 1008 points: equal counts, rates within rtol. */
static void test_hh_skip_matches_integrate(void **state)
{
    (void)state;
    const double gks[] = {25, 27.5, 30, 32.5, 35, 36, 37.5, 40, 42.5, 45, 47.5, 50};
    double worst = 0, worst_u = 0, worst_gk = 0;
    int firing = 0, points = 0;
    for (size_t g = 0; g < sizeof gks / sizeof gks[0]; g++) {
        for (int i = 0; i < 84; i++, points++) {
            double u = grid_drive(i), rate[2], count[2];
            both(READ_SPIKE_RATE, gks[g], u, rate);
            both(READ_SPIKE_COUNT, gks[g], u, count);
            if (count[0] != count[1])
                fail_msg("gk %g u %g: %g spikes skipped vs %g integrated", gks[g], u, count[0],
                         count[1]);
            double rel = fabs(rate[0] - rate[1]) / fmax(fabs(rate[1]), 1e-300);
            if (rate[0] == 0 && rate[1] == 0)
                rel = 0;
            firing += rate[1] > 0;
            if (rel > worst)
                worst = rel, worst_u = u, worst_gk = gks[g];
        }
    }
    print_message("cycles: %d points, %d firing; largest relative rate difference %.2e "
                  "(gk %g, u %g)\n",
                  points, firing, worst, worst_gk, worst_u);
    assert_true(firing > points / 3); /* the grid holds periodic trains to skip */
    if (worst > 1e-6)
        fail_msg("rate differs by %.3g relative at gk %g u %g", worst, worst_gk, worst_u);
}

/* The smallest step cap under which one solve at u succeeds (binary search
 * on QN_ELIMIT): how many steps the solve integrates. */
static size_t steps_needed(struct dev_work *w, double u)
{
    size_t lo = 1, hi = 100000;
    double out;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        w->step_cap = mid;
        int rc = dev_eval(w, &u, &out);
        assert_true(rc == QN_OK || rc == QN_ELIMIT);
        if (rc == QN_OK)
            hi = mid;
        else
            lo = mid + 1;
    }
    w->step_cap = 0;
    return lo;
}

/* Skipping integrates far fewer steps on a firing drive, and a resting one
 * stops once it sits on its stable fixed point: after the onset spike at 4
 * uA/cm2, and at once under a hyperpolarising -20 (where rk8pd, held back by
 * stiffness, takes its most steps). */
static void test_hh_skip_saves_steps(void **state)
{
    (void)state;
    struct dev_model a, b;
    struct dev_work wa, wb;
    hh(&a, READ_SPIKE_RATE, DEV_CYCLES_SKIP, 36);
    hh(&b, READ_SPIKE_RATE, DEV_CYCLES_INTEGRATE, 36);
    assert_int_equal(dev_work_init(&wa, &a, NULL), 0);
    assert_int_equal(dev_work_init(&wb, &b, NULL), 0);
    size_t skip = steps_needed(&wa, 20), full = steps_needed(&wb, 20);
    print_message("cycles: u 20: %zu steps skipped vs %zu integrated\n", skip, full);
    assert_true(3 * skip < full);
    const double rest[] = {4, -20};
    for (int i = 0; i < 2; i++) {
        skip = steps_needed(&wa, rest[i]), full = steps_needed(&wb, rest[i]);
        print_message("cycles: u %g (rests): %zu steps skipped vs %zu integrated\n", rest[i],
                      skip, full);
        assert_true(2 * skip < full);
    }
    double count[2];
    both(READ_SPIKE_COUNT, 36, 4, count);
    assert_true(count[0] == 1 && count[1] == 1); /* the onset spike is counted before rest */
    dev_work_close(&wa), dev_work_close(&wb);
    dev_model_close(&a), dev_model_close(&b);
}

/* A harmonic oscillator x'' = -x (x(0) = 0, v(0) = 1) as an ode device whose
 * output crosses 0.5 upwards once a period 2 pi; `vrhs` is v's right-hand
 * side and `out` the output. */
static void oscillator(struct dev_model *d, const char *vrhs, const char *out,
                       enum dev_readout_kind k, enum dev_cycles cycles)
{
    dev_model_init(d, DEV_ODE);
    d->n_states = 2;
    strcpy(d->state_names[0], "x");
    strcpy(d->state_names[1], "v");
    d->y0[1] = 1;
    d->rhs_src[0] = strdup("v");
    d->rhs_src[1] = strdup(vrhs);
    d->output_src = strdup(out);
    d->readout.kind = k;
    d->readout.t_max = 1000;
    d->readout.threshold = 0.5;
    d->readout.cycles = cycles;
    prepare(d);
}

/* One solve of the oscillator; the steps it needed into *steps. */
static double oscillator_eval(const char *vrhs, const char *out, enum dev_readout_kind k,
                              enum dev_cycles cycles, size_t *steps)
{
    struct dev_model d;
    struct dev_work w;
    double u = 0, value = NAN;
    oscillator(&d, vrhs, out, k, cycles);
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    assert_int_equal(dev_eval(&w, &u, &value), 0);
    *steps = steps_needed(&w, u);
    dev_work_close(&w);
    dev_model_close(&d);
    return value;
}

/*
 * An ode device is skipped only when neither its right-hand sides nor its
 * output name t. The autonomous oscillator is skipped (fewer steps, the same
 * 160 crossings, the rate 1000 / 2 pi within 1e-7 relative, the solver's
 * rtol 1e-8 times the 10 the phase error gathers over 160 periods); one whose
 * spring or output drifts with t, however slowly, is integrated: the same
 * steps and the same bits as "integrate".
 */
static void test_ode_skipped_only_without_t(void **state)
{
    (void)state;
    size_t s_skip, s_full;
    double c_skip = oscillator_eval("-x", "x", READ_SPIKE_COUNT, DEV_CYCLES_SKIP, &s_skip);
    double c_full = oscillator_eval("-x", "x", READ_SPIKE_COUNT, DEV_CYCLES_INTEGRATE, &s_full);
    double crossings = floor((1000 - M_PI / 6) / (2 * M_PI)) + 1; /* at pi/6 + 2 pi k */
    assert_true(c_skip == crossings && c_full == crossings);
    assert_true(3 * s_skip < s_full);
    double r_skip = oscillator_eval("-x", "x", READ_SPIKE_RATE, DEV_CYCLES_SKIP, &s_skip);
    double r_full = oscillator_eval("-x", "x", READ_SPIKE_RATE, DEV_CYCLES_INTEGRATE, &s_full);
    assert_true(3 * s_skip < s_full);
    assert_true(fabs(r_skip - 1000 / (2 * M_PI)) < 1e-7 * r_skip);
    assert_true(fabs(r_full - 1000 / (2 * M_PI)) < 1e-7 * r_full);
    assert_true(fabs(r_skip - r_full) < 1e-8 * r_full); /* measured 1e-10 */
    const char *drift[][2] = {{"-x * (1 + 1e-12 * t)", "x"}, {"-x", "x + 1e-12 * t"}};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 2; k++) {
            enum dev_readout_kind rk = k ? READ_SPIKE_COUNT : READ_SPIKE_RATE;
            double a = oscillator_eval(drift[i][0], drift[i][1], rk, DEV_CYCLES_SKIP, &s_skip);
            double b = oscillator_eval(drift[i][0], drift[i][1], rk, DEV_CYCLES_INTEGRATE, &s_full);
            assert_true(a == b);
            assert_int_equal(s_skip, s_full);
        }
    }
}

/* A recorded trajectory integrates every cycle: /simulate plots each point. */
static void test_trajectory_integrates_every_cycle(void **state)
{
    (void)state;
    struct dev_model d;
    struct dev_work w;
    struct dev_traj tr;
    double u = 20, out, rate;
    hh(&d, READ_SPIKE_RATE, DEV_CYCLES_SKIP, 36);
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    assert_int_equal(dev_trajectory(&w, &u, 100000, &tr, &out), 0);
    /* the points are accepted steps (thinned evenly in time), so a skip of m
     * periods would leave a gap of hundreds of ms */
    assert_true(tr.n > 1000);
    assert_true(tr.t[tr.n - 1] == 500);
    for (size_t i = 1; i < tr.n; i++)
        assert_true(tr.t[i] - tr.t[i - 1] < 1.0);
    assert_int_equal(dev_eval(&w, &u, &rate), 0);
    assert_true(fabs(out - rate) <= 1e-6 * rate);
    dev_traj_free(&tr);
    dev_work_close(&w);
    dev_model_close(&d);
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hh_skip_matches_integrate),
        cmocka_unit_test(test_hh_skip_saves_steps),
        cmocka_unit_test(test_ode_skipped_only_without_t),
        cmocka_unit_test(test_trajectory_integrates_every_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
