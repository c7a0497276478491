/*
 * test_device.c: device models against closed forms, independent solves and
 * finite differences.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "qn_err.h"

/* Prepares d or fails the test with the model's own message. */
static void prepare(struct dev_model *d)
{
    struct dev_error err = {{0}, {0}};
    int rc = dev_model_prepare(d, &err);
    if (rc)
        fail_msg("prepare: %s: %s", err.field, err.msg);
}

/* The CRN smoothed ReLU y* = (z + sqrt(z^2 + 4 kappa)) / 2. */
static double crn_closed(double z, double kappa)
{
    return (z + sqrt(z * z + 4 * kappa)) / 2;
}

/* The three forms of the CRN device. */
static void crn_builtin(struct dev_model *d)
{
    dev_model_init(d, DEV_CRN_RELU);
    prepare(d);
}

static void crn_ode(struct dev_model *d)
{
    dev_model_init(d, DEV_ODE);
    d->n_states = 1;
    strcpy(d->state_names[0], "y");
    dev_model_set_param(d, "kappa", 0.01);
    d->rhs_src[0] = strdup("kappa + u1*y - y^2");
    prepare(d);
}

static void crn_reactions(struct dev_model *d)
{
    dev_model_init(d, DEV_REACTIONS);
    d->n_states = 1;
    strcpy(d->state_names[0], "Y");
    dev_model_set_param(d, "kappa", 0.01);
    const char *rx[] = {"0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ pos(u1)",
                        "Y -> 0 @ neg(u1)"};
    d->n_reactions = 4;
    for (int i = 0; i < 4; i++)
        d->reaction_src[i] = strdup(rx[i]);
    d->output_src = strdup("Y");
    prepare(d);
}

/* Checks one CRN form against the closed form over z in [-3, 3] to 1e-8. */
static void check_crn_form(void (*make)(struct dev_model *), enum dev_method method)
{
    struct dev_model d;
    make(&d);
    d.solver.method = method;
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    for (int i = 0; i <= 60; i++) {
        double z = -3 + 0.1 * i, out = 0;
        assert_int_equal(dev_eval(&w, &z, &out), 0);
        if (fabs(out - crn_closed(z, 0.01)) > 1e-8)
            fail_msg("z=%g: %.12g vs %.12g", z, out, crn_closed(z, 0.01));
    }
    dev_work_close(&w);
    dev_model_close(&d);
}

static void test_crn_builtin_closed_form(void **state)
{
    (void)state;
    check_crn_form(crn_builtin, ODE_RK8PD);
    check_crn_form(crn_builtin, ODE_RKF45);
    check_crn_form(crn_builtin, ODE_MSBDF);
}

static void test_crn_ode_and_reactions_match(void **state)
{
    (void)state;
    check_crn_form(crn_ode, ODE_RK8PD);
    check_crn_form(crn_reactions, ODE_RK8PD);
    check_crn_form(crn_reactions, ODE_MSBDF);
}

/* Independent reference activations. */
static double ref_act(enum act_kind k, double z)
{
    switch (k) {
    case ACT_IDENTITY: return z;
    case ACT_RELU: return z > 0 ? z : 0;
    case ACT_SIGMOID: return 1 / (1 + exp(-z));
    case ACT_TANH: return (exp(z) - exp(-z)) / (exp(z) + exp(-z));
    case ACT_SOFTPLUS: return log(1 + exp(z));
    }
    return NAN;
}

static void test_neuron_formulas(void **state)
{
    (void)state;
    for (int k = ACT_IDENTITY; k <= ACT_SOFTPLUS; k++) {
        struct dev_model d;
        dev_model_init(&d, DEV_NEURON);
        d.activation = (enum act_kind)k;
        prepare(&d);
        struct dev_work w;
        assert_int_equal(dev_work_init(&w, &d, NULL), 0);
        for (double z = -5; z <= 5; z += 0.25) {
            double out;
            assert_int_equal(dev_eval(&w, &z, &out), 0);
            assert_true(fabs(out - ref_act((enum act_kind)k, z)) < 1e-12);
        }
        dev_work_close(&w);
        dev_model_close(&d);
    }
}

static void test_almost_neuron_formula(void **state)
{
    (void)state;
    struct dev_model d;
    dev_model_init(&d, DEV_ALMOST_NEURON);
    d.drive = DRIVE_DOT_SQ;
    d.activation = ACT_SIGMOID;
    d.eps = 0.1;
    prepare(&d);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    double in[2] = {0.7, 2.5}, out;
    assert_int_equal(dev_eval(&w, in, &out), 0);
    assert_true(fabs(out - ref_act(ACT_SIGMOID, 0.7 - 0.1 * 2.5)) < 1e-12);
    dev_work_close(&w);
    dev_model_close(&d);

    /* full drive: u1 = sum a x + b, u2 = sum a x^2 */
    dev_model_init(&d, DEV_ALMOST_NEURON);
    d.drive = DRIVE_FULL;
    d.fan_in = 3;
    d.activation = ACT_TANH;
    d.eps = 0.2;
    dev_model_set_param(&d, "b", 0.3);
    prepare(&d);
    assert_int_equal(dev_n_inputs(&d), 6);
    char name[8];
    dev_input_name(&d, 4, name, sizeof name);
    assert_string_equal(name, "a2");
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    double x[6] = {0.5, -1, 2, 0.3, 0.4, -0.2};
    double u1 = 0.3, u2 = 0;
    for (int i = 0; i < 3; i++)
        u1 += x[3 + i] * x[i], u2 += x[3 + i] * x[i] * x[i];
    assert_int_equal(dev_eval(&w, x, &out), 0);
    assert_true(fabs(out - tanh(u1 - 0.2 * u2)) < 1e-12);
    dev_work_close(&w);
    dev_model_close(&d);
}

/* A plain drive as a rate constant is a negative rate for u1 < 0: that is
 * not a mass-action network, and the solve says so instead of integrating. */
static void test_negative_rate_refused(void **state)
{
    (void)state;
    struct dev_model d;
    dev_model_init(&d, DEV_REACTIONS);
    d.n_states = 1;
    strcpy(d.state_names[0], "Y");
    d.y0[0] = 1.0;
    dev_model_set_param(&d, "kappa", 0.01);
    const char *rx[] = {"0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ u1"};
    d.n_reactions = 3;
    for (int i = 0; i < 3; i++)
        d.reaction_src[i] = strdup(rx[i]);
    d.output_src = strdup("Y");
    prepare(&d);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    double u = 1.5, out = 0, g = 0;
    assert_int_equal(dev_eval(&w, &u, &out), 0);
    assert_true(fabs(out - crn_closed(1.5, 0.01)) < 1e-8);
    u = -0.5;
    assert_int_equal(dev_eval(&w, &u, &out), QN_ERATE);
    assert_true(isnan(out));
    assert_int_equal(dev_eval_grad(&w, &u, &out, &g), QN_ERATE);
    assert_string_equal(qn_err_name(QN_ERATE), "invalid_rate");
    dev_work_close(&w);
    dev_model_close(&d);
}

/* ---- Hodgkin-Huxley against an independent solve ------------------------------------------- */

static double ref_vtrap(double x)
{
    return fabs(x) < 1e-9 ? 10.0 : x / (1 - exp(-x / 10));
}

/* The textbook HH equations, written independently of dev_sys.c. */
static int ref_hh(double t, const double y[], double f[], void *p)
{
    (void)t;
    double I = *(double *)p, V = y[0], m = y[1], h = y[2], n = y[3];
    double am = 0.1 * ref_vtrap(V + 40), bm = 4 * exp(-(V + 65) / 18);
    double ah = 0.07 * exp(-(V + 65) / 20), bh = 1 / (1 + exp(-(V + 35) / 10));
    double an = 0.01 * ref_vtrap(V + 55), bn = 0.125 * exp(-(V + 65) / 80);
    f[0] = I - 120 * pow(m, 3) * h * (V - 50) - 36 * pow(n, 4) * (V + 77) - 0.3 * (V + 54.4);
    f[1] = am * (1 - m) - bm * m;
    f[2] = ah * (1 - h) - bh * h;
    f[3] = an * (1 - n) - bn * n;
    return GSL_SUCCESS;
}

/* Spikes in 500 ms at current I: rk8pd at 1e-10, sampled every 0.01 ms. */
static int ref_hh_spikes(double I)
{
    gsl_odeiv2_system sys = {ref_hh, NULL, 4, &I};
    gsl_odeiv2_driver *drv =
        gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-3, 1e-10, 1e-10);
    double V = -65, am = 0.1 * ref_vtrap(-25), bm = 4, ah = 0.07, bh = 1 / (1 + exp(3));
    double an = 0.01 * ref_vtrap(-10), bn = 0.125;
    double y[4] = {V, am / (am + bm), ah / (ah + bh), an / (an + bn)}, t = 0, last = V;
    int spikes = 0;
    for (int i = 1; i <= 50000; i++) {
        assert_int_equal(gsl_odeiv2_driver_apply(drv, &t, i * 0.01, y), GSL_SUCCESS);
        if (last < 0 && y[0] >= 0)
            spikes++;
        last = y[0];
    }
    gsl_odeiv2_driver_free(drv);
    return spikes;
}

/* HH's rate at I with readout `kind` over t_max ms. */
static double hh_readout(double I, enum dev_readout_kind kind, double t_max)
{
    struct dev_model d;
    dev_model_init(&d, DEV_HODGKIN_HUXLEY);
    d.readout.kind = kind;
    d.readout.t_max = t_max;
    prepare(&d);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    double out = NAN;
    assert_int_equal(dev_eval(&w, &I, &out), 0);
    dev_work_close(&w);
    dev_model_close(&d);
    return out;
}

static void test_hh_spiking(void **state)
{
    (void)state;
    assert_true(hh_readout(2.0, READ_SPIKE_COUNT, 500) == 0.0);
    assert_int_equal(ref_hh_spikes(2.0), 0);
    double count = hh_readout(10.0, READ_SPIKE_COUNT, 500); /* every crossing in 500 ms */
    int ref = ref_hh_spikes(10.0);
    assert_true(ref >= 25); /* repetitive firing: ~68 Hz */
    if (fabs(count - ref) > 0.5)
        fail_msg("HH at 10 uA/cm2: %g spikes vs reference %d", count, ref);
}

/*
 * The reference sustained rate: classic RK4 at a fixed 0.005 ms (no GSL),
 * upward crossings of 0 mV located by linear interpolation, and 1000 / the
 * mean interval between the crossings after 50 ms (0 with fewer than two).
 */
static double ref_hh_rate(double I, double t_max)
{
    const double dt = 0.005, transient = 50;
    double am = 0.1 * ref_vtrap(-25), bm = 4, ah = 0.07, bh = 1 / (1 + exp(3));
    double an = 0.01 * ref_vtrap(-10), bn = 0.125;
    double y[4] = {-65, am / (am + bm), ah / (ah + bh), an / (an + bn)};
    double k[4][4], tmp[4], first = 0, last = 0;
    long n_late = 0, steps = lround(t_max / dt);
    for (long s = 0; s < steps; s++) {
        double t = s * dt, v0 = y[0];
        ref_hh(t, y, k[0], &I);
        for (int i = 0; i < 4; i++)
            tmp[i] = y[i] + 0.5 * dt * k[0][i];
        ref_hh(t, tmp, k[1], &I);
        for (int i = 0; i < 4; i++)
            tmp[i] = y[i] + 0.5 * dt * k[1][i];
        ref_hh(t, tmp, k[2], &I);
        for (int i = 0; i < 4; i++)
            tmp[i] = y[i] + dt * k[2][i];
        ref_hh(t, tmp, k[3], &I);
        for (int i = 0; i < 4; i++)
            y[i] += dt / 6 * (k[0][i] + 2 * k[1][i] + 2 * k[2][i] + k[3][i]);
        if (v0 < 0 && y[0] >= 0) {
            double tc = t + dt * (0 - v0) / (y[0] - v0);
            if (tc >= transient) {
                if (n_late++ == 0)
                    first = tc;
                last = tc;
            }
        }
    }
    return n_late >= 2 ? 1000.0 * (double)(n_late - 1) / (last - first) : 0.0;
}

/* spike_rate is the sustained rate: the onset spike of a sub-threshold step
 * is not a rate, and the rate does not depend on how long one looks. */
static void test_hh_sustained_rate(void **state)
{
    (void)state;
    const double I[] = {2, 3, 5, 6.5, 7, 10, 20};
    for (size_t i = 0; i < sizeof I / sizeof I[0]; i++) {
        double ref = ref_hh_rate(I[i], 500), rate = hh_readout(I[i], READ_SPIKE_RATE, 500);
        double rate_long = hh_readout(I[i], READ_SPIKE_RATE, 2000);
        if (fabs(rate - ref) > 1.0)
            fail_msg("HH at %g uA/cm2: %.3f Hz vs reference %.3f Hz", I[i], rate, ref);
        if (fabs(rate_long - rate) > 1.0)
            fail_msg("HH at %g uA/cm2: %.3f Hz over 2000 ms vs %.3f Hz over 500 ms", I[i],
                     rate_long, rate);
    }
    /* one onset spike and silence (2.3 to 6.2 uA/cm2): 0 Hz, though it crossed once */
    assert_true(hh_readout(3.0, READ_SPIKE_COUNT, 500) == 1.0);
    assert_true(hh_readout(3.0, READ_SPIKE_RATE, 500) == 0.0);
    assert_true(ref_hh_rate(7.0, 500) > 40); /* the table above covers repetitive firing */
}

/* The textbook rate x / (1 - exp(-x/10)) in long double, expm1 through x = 0. */
static long double ref_vtrapl(long double x)
{
    return x == 0 ? 10.0L : x / -expm1l(-x / 10);
}

/* The six HH rates with the textbook's six exponentials, in long double. */
static void ref_hh_ratesl(double V, long double r[6])
{
    long double v = V;
    r[0] = 0.1L * ref_vtrapl(v + 40), r[1] = 4 * expl(-(v + 65) / 18);
    r[2] = 0.07L * expl(-(v + 65) / 20), r[3] = 1 / (1 + expl(-(v + 35) / 10));
    r[4] = 0.01L * ref_vtrapl(v + 55), r[5] = 0.125L * expl(-(v + 65) / 80);
}

/* The device's rates (three shared exponentials) equal the textbook's to
 * 1e-14 relative from -150 to 100 mV, and exactly at the removable
 * singularities V = -40 (alpha_m = 1) and V = -55 (alpha_n = 0.1). */
static void test_hh_rates_textbook(void **state)
{
    (void)state;
    /* the singularities, either side of the 1e-6 series, of the 1 mV expm1 band */
    const double special[] = {-40,         -55,         -40 + 1e-9,  -40 - 1e-9,
                              -55 + 1e-5,  -55 - 1e-5,  -40 + 0.999, -40 + 1.001,
                              -55 - 0.999, -55 - 1.001, -65,         -35};
    double worst = 0;
    for (int i = 0; i < 25000 + 12; i++) {
        double V = i < 25000 ? -150 + 0.01 * i + 0.00123 : special[i - 25000], r[6];
        long double ref[6];
        dev__hh_rates0(V, r);
        ref_hh_ratesl(V, ref);
        for (int k = 0; k < 6; k++) {
            double rel = (double)fabsl((r[k] - ref[k]) / ref[k]);
            worst = fmax(worst, rel);
            if (!(rel < 1e-14))
                fail_msg("rate %d at V = %.17g: %.17g vs %.17Lg", k, V, r[k], ref[k]);
        }
    }
    double r[6];
    dev__hh_rates0(-40, r);
    assert_true(r[0] == 1.0);
    dev__hh_rates0(-55, r);
    assert_true(r[4] == 0.1);
    print_message("HH rates: largest relative difference from the textbook %.2e\n", worst);
}

/*
 * The device's spike_rate and spike_count at 100 random drives in [-20, 40]
 * (the study's range, t_max 500 ms) against a bare GSL loop over the textbook
 * right-hand side (ref_hh, six exponentials) at the device's own stepper and
 * tolerances, locating the crossings after the transient as the readout does:
 * the same spike counts, the rates within the device's rtol.
 */
static void test_hh_solve_textbook(void **state)
{
    (void)state;
    struct dev_model d, c;
    dev_model_init(&d, DEV_HODGKIN_HUXLEY);
    d.readout.t_max = 500;
    prepare(&d);
    dev_model_init(&c, DEV_HODGKIN_HUXLEY);
    c.readout.kind = READ_SPIKE_COUNT;
    c.readout.t_max = 500;
    prepare(&c);
    struct dev_work w, wc;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    assert_int_equal(dev_work_init(&wc, &c, NULL), 0);
    double I = 0, transient = dev_transient(&d.readout);
    gsl_odeiv2_system sys = {ref_hh, NULL, 4, &I};
    gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(
        &sys, gsl_odeiv2_step_rk8pd, d.solver.h0, d.solver.atol, d.solver.rtol);
    srand(13);
    size_t firing = 0;
    for (int i = 0; i < 100; i++) {
        I = -20 + 60 * (rand() + 0.5) / (RAND_MAX + 1.0);
        double t = 0, h = d.solver.h0, y[4], yp[4], f0[4], f1[4], first = 0, last = 0;
        memcpy(y, d.y0, sizeof y);
        gsl_odeiv2_driver_reset(drv);
        int all = 0, late = 0;
        while (t < 500) {
            double tp = t;
            memcpy(yp, y, sizeof y);
            assert_int_equal(gsl_odeiv2_evolve_apply(drv->e, drv->c, drv->s, &sys, &t, 500, &h, y),
                             GSL_SUCCESS);
            if (!(yp[0] < 0 && y[0] >= 0))
                continue;
            all++;
            ref_hh(tp, yp, f0, &I);
            ref_hh(t, y, f1, &I);
            double tc = y[0] > 0 ? dev_hermite_cross(tp, yp[0], f0[0], t, y[0], f1[0], 0) : t;
            if (t > transient && tc >= transient && late++ == 0)
                first = tc;
            last = t > transient && tc >= transient ? tc : last;
        }
        double ref = late >= 2 ? 1000.0 * (late - 1) / (last - first) : 0, rate, count;
        firing += late >= 2;
        assert_int_equal(dev_eval(&w, &I, &rate), 0);
        assert_int_equal(dev_eval(&wc, &I, &count), 0);
        if (count != all || fabs(rate - ref) > d.solver.rtol * fabs(ref))
            fail_msg("HH at %.6f: %g spikes at %.9g Hz vs the textbook loop's %d at %.9g Hz", I,
                     count, rate, all, ref);
    }
    assert_true(firing > 20 && firing < 80); /* both regimes are covered */
    gsl_odeiv2_driver_free(drv);
    dev_work_close(&w);
    dev_work_close(&wc);
    dev_model_close(&d);
    dev_model_close(&c);
}

/* ---- a peak between solver steps ------------------------------------------------------------ */

/*
 * x' = -a x, y' = k (x - y), x(0) = 1, y(0) = 0 with a = exp(u1 / 2) and
 * k = 2 + u2^2 peaks in the interior at t* = ln(k/a) / (k - a) with
 * y* = (a/k)^(a/(k - a)): the closed form the readout must meet.
 */
static double peak_closed(double u1, double u2)
{
    double a = exp(0.5 * u1), k = 2 + u2 * u2;
    return pow(a / k, a / (k - a));
}

static void peak_model(struct dev_model *d, double rtol)
{
    dev_model_init(d, DEV_ODE);
    d->drive = DRIVE_DOT_SQ;
    d->n_states = 2;
    strcpy(d->state_names[0], "x");
    strcpy(d->state_names[1], "y");
    d->y0[0] = 1;
    d->rhs_src[0] = strdup("-exp(0.5*u1)*x");
    d->rhs_src[1] = strdup("(2 + u2^2)*(x - y)");
    d->output_src = strdup("y");
    d->readout.kind = READ_PEAK;
    d->readout.t_max = 10;
    d->solver.rtol = rtol;
    prepare(d);
}

static void test_peak_between_steps(void **state)
{
    (void)state;
    const double rtols[] = {1e-6, 1e-8};
    const double us[][2] = {{0.3, 0.5}, {-0.8, 1.2}, {1.0, 0.0}};
    for (size_t r = 0; r < 2; r++) {
        struct dev_model d;
        peak_model(&d, rtols[r]);
        struct dev_work w;
        assert_int_equal(dev_work_init(&w, &d, NULL), 0);
        for (size_t i = 0; i < 3; i++) {
            double in[2] = {us[i][0], us[i][1]}, out, g[2];
            double ref = peak_closed(in[0], in[1]);
            /* the maximum falls between accepted steps: no step lands near t* */
            double a = exp(0.5 * in[0]), k = 2 + in[1] * in[1], ts = log(k / a) / (k - a);
            struct dev_traj tr;
            assert_int_equal(dev_trajectory(&w, in, 100000, &tr, &out), 0);
            double nearest = HUGE_VAL;
            for (size_t j = 0; j < tr.n; j++)
                nearest = fmin(nearest, fabs(tr.t[j] - ts));
            dev_traj_free(&tr);
            assert_true(nearest > 1e-3);
            assert_int_equal(dev_eval_grad(&w, in, &out, g), 0);
            if (fabs(out - ref) > 1e-7 * ref)
                fail_msg("rtol %g u (%g, %g): peak %.12g vs closed form %.12g", rtols[r], in[0],
                         in[1], out, ref);
            for (int j = 0; j < 2; j++) {
                double h = 1e-5, up[2] = {in[0], in[1]}, um[2] = {in[0], in[1]};
                up[j] += h, um[j] -= h;
                double fd = (peak_closed(up[0], up[1]) - peak_closed(um[0], um[1])) / (2 * h);
                if (fabs(g[j] - fd) > 1e-5)
                    fail_msg("rtol %g u (%g, %g): d peak/d u%d %.10g vs central difference "
                             "%.10g", rtols[r], in[0], in[1], j + 1, g[j], fd);
            }
        }
        dev_work_close(&w);
        dev_model_close(&d);
    }
}

/* ---- exact Jacobians ------------------------------------------------------------------------ */

/* Compares dev__sys_jac and dev__sys_jin with central differences (relative 1e-6). */
static void check_jacobians(const struct dev_model *d, const double *y, const double *in)
{
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    double J[DEV_MAX_STATES * DEV_MAX_STATES], Jp[DEV_MAX_STATES * DEV_MAX_INPUTS];
    double yp[DEV_MAX_STATES], fp[DEV_MAX_STATES], fm[DEV_MAX_STATES], ip[DEV_MAX_INPUTS];
    dev__sys_jac(d, 0.0, y, in, J, NULL);
    dev__sys_jin(d, 0.0, y, in, Jp);
    for (size_t j = 0; j < n + n_in; j++) {
        memcpy(yp, y, n * sizeof *yp);
        memcpy(ip, in, n_in * sizeof *ip);
        double *v = j < n ? &yp[j] : &ip[j - n];
        double h = 1e-6 * fmax(1, fabs(*v)), v0 = *v;
        *v = v0 + h;
        dev__sys_rhs(d, 0.0, yp, ip, fp);
        *v = v0 - h;
        dev__sys_rhs(d, 0.0, yp, ip, fm);
        for (size_t i = 0; i < n; i++) {
            double fd = (fp[i] - fm[i]) / (2 * h);
            double ex = j < n ? J[i * n + j] : Jp[i * n_in + (j - n)];
            if (fabs(fd - ex) > 1e-6 * fmax(1, fabs(ex)))
                fail_msg("%s d f%zu / d v%zu: exact %.10g fd %.10g", dev_kind_name(d->kind), i,
                         j, ex, fd);
        }
    }
}

static void test_jacobians_exact(void **state)
{
    (void)state;
    struct dev_model d;
    double yc[1] = {0.37}, in1[1] = {1.3};
    void (*forms[])(struct dev_model *) = {crn_builtin, crn_ode, crn_reactions};
    for (int f = 0; f < 3; f++) {
        forms[f](&d);
        check_jacobians(&d, yc, in1);
        dev_model_close(&d);
    }
    dev_model_init(&d, DEV_HODGKIN_HUXLEY);
    prepare(&d);
    double yh[4] = {-52.0, 0.2, 0.5, 0.4}, I = 7;
    check_jacobians(&d, yh, &I);
    double yh40[4] = {-40.0, 0.2, 0.5, 0.4}; /* the removable singularity of alpha_m */
    check_jacobians(&d, yh40, &I);
    dev_model_close(&d);

    /* a two-state user ODE with every function and a dot_sq drive */
    dev_model_init(&d, DEV_ODE);
    d.drive = DRIVE_DOT_SQ;
    d.n_states = 2;
    strcpy(d.state_names[0], "p");
    strcpy(d.state_names[1], "q");
    dev_model_set_param(&d, "k", 0.5);
    d.rhs_src[0] = strdup("tanh(u1) - p*exp(-q) + k*sqrt(1 + q^2)");
    d.rhs_src[1] = strdup("sin(p)*cos(u2) - log(2 + p^2)*q + pow(u1, 2)*min(p, q)");
    prepare(&d);
    double y2[2] = {0.3, -0.8}, in2[2] = {0.9, -0.4};
    check_jacobians(&d, y2, in2);
    dev_model_close(&d);
}

/* ---- gradients of readouts ------------------------------------------------------------------ */

/* dev_eval_grad against central differences of dev_eval (relative 1e-5). */
static void check_grad(struct dev_model *d, const double *in)
{
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, d, NULL), 0);
    size_t n_in = dev_n_inputs(d);
    double out, g[DEV_MAX_INPUTS], x[DEV_MAX_INPUTS];
    assert_int_equal(dev_eval_grad(&w, in, &out, g), 0);
    double plain;
    assert_int_equal(dev_eval(&w, in, &plain), 0);
    assert_true(fabs(out - plain) < 1e-9 * fmax(1, fabs(plain)));
    for (size_t k = 0; k < n_in; k++) {
        memcpy(x, in, n_in * sizeof *x);
        double h = 1e-4 * fmax(1, fabs(x[k])), op, om;
        x[k] = in[k] + h;
        assert_int_equal(dev_eval(&w, x, &op), 0);
        x[k] = in[k] - h;
        assert_int_equal(dev_eval(&w, x, &om), 0);
        double fd = (op - om) / (2 * h);
        if (fabs(fd - g[k]) > 1e-5 * fmax(1e-2, fabs(g[k])))
            fail_msg("%s/%s d out/d in%zu: %.10g vs fd %.10g", dev_kind_name(d->kind),
                     dev_readout_name(d->readout.kind), k, g[k], fd);
    }
    dev_work_close(&w);
}

/* A relaxation y' = (tanh(u1 + a1 u2... ) - y)/tau: a smooth device with time readouts. */
static void relax(struct dev_model *d, enum dev_readout_kind r)
{
    dev_model_init(d, DEV_ODE);
    d->drive = DRIVE_DOT_SQ;
    d->n_states = 2;
    strcpy(d->state_names[0], "y");
    strcpy(d->state_names[1], "v");
    dev_model_set_param(d, "tau", 2.0);
    d->rhs_src[0] = strdup("(tanh(u1) - y) / tau + 0.1*v");
    d->rhs_src[1] = strdup("-v + 0.5*u2*y");
    d->output_src = strdup("y + 0.1*v^2");
    d->readout.kind = r;
    d->readout.t_max = 6;
    d->solver.rtol = 1e-11;
    d->solver.atol = 1e-12;
    prepare(d);
}

static void test_gradients(void **state)
{
    (void)state;
    struct dev_model d;
    double z = 0.4, in2[2] = {0.6, -0.3};
    crn_builtin(&d);
    check_grad(&d, &z);
    dev_model_close(&d);
    crn_reactions(&d);
    check_grad(&d, &z);
    dev_model_close(&d);
    enum dev_readout_kind rs[] = {READ_STEADY_STATE, READ_FINAL, READ_TIME_AVERAGE, READ_PEAK};
    for (int i = 0; i < 4; i++) {
        relax(&d, rs[i]);
        if (rs[i] == READ_STEADY_STATE)
            d.readout.t_max = 200;
        check_grad(&d, in2);
        dev_model_close(&d);
    }
    /* closed forms and the full drive */
    dev_model_init(&d, DEV_ALMOST_NEURON);
    d.drive = DRIVE_FULL;
    d.fan_in = 2;
    d.activation = ACT_SOFTPLUS;
    prepare(&d);
    double x[4] = {0.5, -1.5, 0.7, 0.2};
    check_grad(&d, x);
    dev_model_close(&d);
}

static void test_time_average_closed_form(void **state)
{
    (void)state;
    /* y' = -y, y(0) = 1: mean over [0, T] is (1 - e^-T) / T */
    struct dev_model d;
    dev_model_init(&d, DEV_ODE);
    d.n_states = 1;
    strcpy(d.state_names[0], "y");
    d.y0[0] = 1;
    d.rhs_src[0] = strdup("-y + 0*u1");
    d.readout.kind = READ_TIME_AVERAGE;
    d.readout.t_max = 3;
    prepare(&d);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    double u = 0, out;
    assert_int_equal(dev_eval(&w, &u, &out), 0);
    assert_true(fabs(out - (1 - exp(-3.0)) / 3) < 1e-8);
    d.readout.kind = READ_FINAL;
    assert_int_equal(dev_eval(&w, &u, &out), 0);
    assert_true(fabs(out - exp(-3.0)) < 1e-8);
    d.readout.kind = READ_TIME_AVERAGE;
    dev_work_close(&w);
    dev_model_close(&d);
}

/* ---- failures are reported, never guessed -------------------------------------------------- */

static void test_failures_reported(void **state)
{
    (void)state;
    struct dev_model d;
    struct dev_work w;
    double u = 1, out = 0;

    /* blow-up: y' = y^2 from 1 explodes at t = 1 */
    dev_model_init(&d, DEV_ODE);
    d.n_states = 1;
    strcpy(d.state_names[0], "y");
    d.y0[0] = 1;
    d.rhs_src[0] = strdup("y^2 * u1");
    d.readout.kind = READ_FINAL;
    d.readout.t_max = 2;
    prepare(&d);
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    int rc = dev_eval(&w, &u, &out);
    assert_true(rc == QN_EDIVERGED || rc == QN_ESOLVER);
    assert_true(isnan(out));
    dev_work_close(&w);
    dev_model_close(&d);

    /* no steady state: y' = u1 */
    dev_model_init(&d, DEV_ODE);
    d.n_states = 1;
    strcpy(d.state_names[0], "y");
    d.rhs_src[0] = strdup("u1");
    prepare(&d);
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    assert_int_equal(dev_eval(&w, &u, &out), QN_ENOTCONV);
    assert_true(isnan(out));
    dev_work_close(&w);
    dev_model_close(&d);

    /* spike rate is not differentiable */
    dev_model_init(&d, DEV_HODGKIN_HUXLEY);
    prepare(&d);
    assert_false(dev_is_differentiable(&d));
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    double g;
    assert_int_equal(dev_eval_grad(&w, &u, &out, &g), QN_ENOTDIFF);
    dev_work_close(&w);
    dev_model_close(&d);
}

static void test_prepare_errors(void **state)
{
    (void)state;
    struct dev_model d;
    struct dev_error err;
    dev_model_init(&d, DEV_CRN_RELU);
    dev_model_set_param(&d, "kapa", 1);
    assert_int_equal(dev_model_prepare(&d, &err), QN_ESPEC);
    assert_string_equal(err.field, "params/kapa");
    dev_model_close(&d);

    dev_model_init(&d, DEV_CRN_RELU);
    dev_model_set_param(&d, "kappa", -1);
    assert_int_equal(dev_model_prepare(&d, &err), QN_ESPEC);
    assert_string_equal(err.field, "params/kappa");
    dev_model_close(&d);

    dev_model_init(&d, DEV_ODE);
    d.n_states = 1;
    strcpy(d.state_names[0], "y");
    d.rhs_src[0] = strdup("kappa*y");
    assert_int_equal(dev_model_prepare(&d, &err), QN_EPARSE);
    assert_string_equal(err.field, "rhs/y");
    assert_non_null(strstr(err.msg, "kappa"));
    dev_model_close(&d);

    dev_model_init(&d, DEV_ALMOST_NEURON);
    d.drive = DRIVE_DOT;
    assert_int_equal(dev_model_prepare(&d, &err), QN_ESPEC);
    assert_string_equal(err.field, "drive");
    dev_model_close(&d);

    dev_model_init(&d, DEV_CRN_RELU);
    d.readout.t_max = -1;
    assert_int_equal(dev_model_prepare(&d, &err), QN_ESPEC);
    assert_string_equal(err.field, "readout/t_max");
    dev_model_close(&d);
}

static void test_trajectory_and_cancel(void **state)
{
    (void)state;
    struct dev_model d;
    dev_model_init(&d, DEV_HODGKIN_HUXLEY);
    d.readout.t_max = 50;
    prepare(&d);
    struct dev_work w;
    atomic_int cancel = 0;
    assert_int_equal(dev_work_init(&w, &d, &cancel), 0);
    struct dev_traj tr;
    double I = 10, out;
    assert_int_equal(dev_trajectory(&w, &I, 100, &tr, &out), 0);
    assert_true(tr.n > 10 && tr.n <= 100);
    assert_int_equal(tr.n_states, 4);
    assert_true(tr.t[0] == 0 && fabs(tr.t[tr.n - 1] - 50) < 1e-9);
    for (size_t i = 1; i < tr.n; i++)
        assert_true(tr.t[i] > tr.t[i - 1]);
    assert_true(tr.out[0] == -65);
    dev_traj_free(&tr);
    atomic_store(&cancel, 1);
    assert_int_equal(dev_eval(&w, &I, &out), QN_ECANCELED);
    dev_work_close(&w);
    dev_model_close(&d);
}

/* should_stop's context: how often it was asked, and after how many asks it says stop. */
struct stop_after {
    int asked, after;
};

static int stop_after_n(void *ctx)
{
    struct stop_after *s = ctx;
    return ++s->asked > s->after;
}

/*
 * A long solve keeps a bounded, evenly spread trajectory (thinned while it
 * runs: without thinning its thousands of steps would all be held before
 * the final decimation); a caller's step cap and stop callback end solves
 * with their own codes.
 */
static void test_trajectory_thinned_and_bounded(void **state)
{
    (void)state;
    struct dev_model d;
    dev_model_init(&d, DEV_HODGKIN_HUXLEY);
    d.readout.t_max = 2000; /* ~100 spikes: tens of thousands of steps */
    d.readout.cycles = DEV_CYCLES_INTEGRATE; /* dev_eval integrates every step too, as a
                                                recorded trajectory does */
    prepare(&d);
    struct dev_work w;
    assert_int_equal(dev_work_init(&w, &d, NULL), 0);
    struct dev_traj tr;
    double I = 10, out, ref;
    const size_t pts = 50;
    assert_int_equal(dev_eval(&w, &I, &ref), 0);
    assert_int_equal(dev_trajectory(&w, &I, pts, &tr, &out), 0);
    assert_true(out == ref); /* thinning the record does not touch the solve */
    assert_true(tr.n > pts / 2 && tr.n <= pts);
    assert_true(tr.t[0] == 0 && fabs(tr.t[tr.n - 1] - 2000) < 1e-9);
    double gap = 0;
    for (size_t i = 1; i < tr.n; i++) {
        assert_true(tr.t[i] > tr.t[i - 1]);
        gap = fmax(gap, tr.t[i] - tr.t[i - 1]);
    }
    if (gap > 2.5 * 2000 / (double)(pts - 1)) /* evenly spread over the whole run */
        fail_msg("largest gap %g ms between %zu points over 2000 ms", gap, tr.n);
    dev_traj_free(&tr);
    /* the caller's step cap: QN_ELIMIT, distinct from the model's max_steps */
    w.step_cap = 1000;
    assert_int_equal(dev_eval(&w, &I, &out), QN_ELIMIT);
    assert_true(isnan(out));
    assert_int_equal(dev_trajectory(&w, &I, pts, &tr, &out), QN_ELIMIT);
    dev_traj_free(&tr);
    w.step_cap = 0;
    /* the stop callback is asked as the solve goes, and stops it */
    struct stop_after s = {0, 3};
    w.should_stop = stop_after_n;
    w.stop_ctx = &s;
    assert_int_equal(dev_eval(&w, &I, &out), QN_ECANCELED);
    assert_int_equal(s.asked, 4);
    dev_work_close(&w);
    dev_model_close(&d);
}

int main(void)
{
    gsl_set_error_handler_off();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crn_builtin_closed_form),
        cmocka_unit_test(test_crn_ode_and_reactions_match),
        cmocka_unit_test(test_neuron_formulas),
        cmocka_unit_test(test_trajectory_thinned_and_bounded),
        cmocka_unit_test(test_almost_neuron_formula),
        cmocka_unit_test(test_negative_rate_refused),
        cmocka_unit_test(test_hh_spiking),
        cmocka_unit_test(test_hh_sustained_rate),
        cmocka_unit_test(test_hh_rates_textbook),
        cmocka_unit_test(test_hh_solve_textbook),
        cmocka_unit_test(test_peak_between_steps),
        cmocka_unit_test(test_jacobians_exact),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_time_average_closed_form),
        cmocka_unit_test(test_failures_reported),
        cmocka_unit_test(test_prepare_errors),
        cmocka_unit_test(test_trajectory_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
