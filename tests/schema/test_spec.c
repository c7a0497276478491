/*
 * test_spec.c: the schema layer. Every DESIGN.md device example parses with
 * the documented defaults; each kind of bad input is refused at the exact
 * JSON Pointer path; every file in schema/examples parses end to end; the
 * JSON Schema documents are valid JSON and their "default"s agree with what
 * dev_model_init and the parsers apply.
 *
 * Files are found relative to the source tree: $QN_SRC_DIR, else the
 * current directory (make runs tests from the repository root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"
#include "spool.h"
#include "spec_test_util.h"

/* ---- helpers ---- */

/* Parses a device at "/spec/device"; fails the test on error. */
static void device_ok(const char *text, struct dev_model *d)
{
    json_t *j = load(text);
    struct spec_error err = {{0}, {0}};
    int rc = spec_device_parse(j, "/spec/device", d, &err);
    if (rc)
        fail_msg("device refused (%s): %s: %s\n%s", qn_err_name(rc), err.path, err.msg, text);
    json_decref(j);
}

/* A device that must be refused with `code` at `path`. */
static void device_bad(const char *text, const char *path, int code)
{
    json_t *j = load(text);
    struct dev_model d;
    struct spec_error err = {{0}, {0}};
    int rc = spec_device_parse(j, "/spec/device", &d, &err);
    if (rc == 0) {
        dev_model_close(&d);
        fail_msg("device accepted, expected %s: %s", path, text);
    }
    if (strcmp(err.path, path) != 0 || rc != code)
        fail_msg("%s\n  got %s (%s: %s), expected %s (%s)", text, err.path, qn_err_name(rc),
                 err.msg, path, qn_err_name(code));
    assert_true(strlen(err.msg) > 0);
    json_decref(j);
}

/* A sweep "spec" that must be refused at `path`. */
static void sweep_bad(const char *text, const char *path)
{
    json_t *j = load(text);
    struct sweep_spec s;
    struct spec_error err = {{0}, {0}};
    int rc = spec_sweep_parse(j, &s, &err);
    if (rc == 0) {
        spec_sweep_close(&s);
        fail_msg("sweep accepted, expected %s: %s", path, text);
    }
    if (strcmp(err.path, path) != 0 || rc != QN_ESPEC)
        fail_msg("%s\n  got %s (%s: %s), expected %s", text, err.path, qn_err_name(rc), err.msg,
                 path);
    json_decref(j);
}

/* A job envelope that must be refused at `path`. */
static void job_bad(const char *text, const char *path)
{
    json_t *j = load(text);
    struct job_spec js;
    struct spec_error err = {{0}, {0}};
    int rc = job_parse(j, &js, &err);
    if (rc == 0) {
        json_decref(js.spec);
        fail_msg("job accepted, expected %s: %s", path, text);
    }
    if (strcmp(err.path, path) != 0 || rc != QN_ESPEC)
        fail_msg("%s\n  got %s (%s), expected %s", text, err.path, err.msg, path);
    json_decref(j);
}

static double param(const struct dev_model *d, const char *name)
{
    double v = NAN;
    assert_int_equal(dev_model_param(d, name, &v), 0);
    return v;
}

/* ---- the DESIGN.md devices ---- */

static void test_design_examples(void **state)
{
    (void)state;
    struct dev_model d;
    device_ok("{\"name\": \"crn\", \"kind\": \"crn_relu\", \"drive\": \"dot\", \"params\": "
              "{\"kappa\": 0.01}, \"readout\": {\"kind\": \"steady_state\", \"t_max\": 200, "
              "\"tol\": 1e-10}, \"solver\": {\"method\": \"rk8pd\", \"rtol\": 1e-8, \"atol\": "
              "1e-10}}",
              &d);
    assert_string_equal(d.name, "crn");
    assert_int_equal(d.kind, DEV_CRN_RELU);
    assert_double_equal(param(&d, "kappa"), 0.01, 0);
    assert_double_equal(d.readout.t_max, 200, 0);
    assert_non_null(d.compiled);
    dev_model_close(&d);

    device_ok("{\"name\": \"near\", \"kind\": \"almost_neuron\", \"drive\": \"dot_sq\", "
              "\"params\": {\"eps\": 0.1, \"activation\": \"sigmoid\"}}",
              &d);
    assert_int_equal(d.drive, DRIVE_DOT_SQ);
    assert_int_equal(d.activation, ACT_SIGMOID);
    assert_double_equal(d.eps, 0.1, 0);
    assert_int_equal(dev_n_inputs(&d), 2);
    dev_model_close(&d);

    device_ok("{\"name\": \"hh\", \"kind\": \"hodgkin_huxley\", \"drive\": \"dot\", \"params\": "
              "{\"gain\": 1.0}, \"readout\": {\"kind\": \"spike_rate\", \"t_max\": 500}}",
              &d);
    assert_int_equal(d.readout.kind, READ_SPIKE_RATE);
    assert_double_equal(d.readout.t_max, 500, 0);
    dev_model_close(&d);

    device_ok("{\"name\": \"relax\", \"kind\": \"ode\", \"drive\": \"dot\", \"state\": {\"y\": "
              "0.0}, \"params\": {\"tau\": 2.0}, \"rhs\": {\"y\": \"(tanh(u1) - y) / tau\"}, "
              "\"output\": \"y\", \"readout\": {\"kind\": \"steady_state\"}}",
              &d);
    assert_int_equal(d.n_states, 1);
    assert_string_equal(d.state_names[0], "y");
    assert_string_equal(d.rhs_src[0], "(tanh(u1) - y) / tau");
    assert_string_equal(d.output_src, "y");
    assert_double_equal(param(&d, "tau"), 2.0, 0);
    dev_model_close(&d);

    device_ok("{\"name\": \"crn-reactions\", \"kind\": \"reactions\", \"drive\": \"dot\", "
              "\"species\": {\"Y\": 1.0}, \"params\": {\"kappa\": 0.01}, \"reactions\": [\"0 -> "
              "Y @ kappa\", \"2 Y -> Y @ 1\", \"Y -> 2 Y @ u1\"], \"output\": \"Y\", "
              "\"readout\": {\"kind\": \"steady_state\"}}",
              &d);
    assert_int_equal(d.n_reactions, 3);
    assert_string_equal(d.reaction_src[2], "Y -> 2 Y @ u1");
    assert_double_equal(d.y0[0], 1.0, 0);
    dev_model_close(&d);
}

/* ---- defaults ---- */

static void test_device_defaults(void **state)
{
    (void)state;
    struct dev_model d;
    device_ok("{\"kind\": \"crn_relu\"}", &d);
    assert_string_equal(d.name, "");
    assert_int_equal(d.drive, DRIVE_DOT);
    assert_double_equal(param(&d, "kappa"), 0.01, 0);
    assert_int_equal(d.readout.kind, READ_STEADY_STATE);
    assert_double_equal(d.readout.t_max, 200, 0);
    assert_double_equal(d.readout.tol, 1e-10, 0);
    assert_double_equal(d.readout.threshold, 0, 0);
    assert_int_equal(d.solver.method, ODE_RK8PD);
    assert_double_equal(d.solver.rtol, 1e-8, 0);
    assert_double_equal(d.solver.atol, 1e-10, 0);
    assert_double_equal(d.solver.h0, 1e-3, 0);
    assert_int_equal(d.solver.max_steps, 1000000);
    dev_model_close(&d);

    device_ok("{\"kind\": \"neuron\"}", &d);
    assert_int_equal(d.activation, ACT_RELU);
    dev_model_close(&d);

    device_ok("{\"kind\": \"almost_neuron\", \"drive\": \"dot_sq\"}", &d);
    assert_double_equal(d.eps, 0.1, 0);
    assert_int_equal(d.activation, ACT_RELU);
    dev_model_close(&d);

    device_ok("{\"kind\": \"hodgkin_huxley\"}", &d);
    assert_double_equal(param(&d, "gain"), 1.0, 0);
    assert_int_equal(d.readout.kind, READ_SPIKE_RATE);
    assert_double_equal(d.readout.t_max, 500, 0);
    assert_int_equal(d.readout.cycles, DEV_CYCLES_SKIP);
    dev_model_close(&d);
    device_ok("{\"kind\": \"hodgkin_huxley\", \"readout\": {\"cycles\": \"integrate\"}}", &d);
    assert_int_equal(d.readout.cycles, DEV_CYCLES_INTEGRATE);
    dev_model_close(&d);

    /* ode: output defaults to the first state, in the spec's order. */
    device_ok("{\"kind\": \"ode\", \"state\": {\"b2\": 1, \"a1\": 2}, \"rhs\": {\"a1\": \"-a1\", "
              "\"b2\": \"a1 - b2\"}}",
              &d);
    assert_string_equal(d.state_names[0], "b2");
    assert_string_equal(d.state_names[1], "a1");
    assert_string_equal(d.rhs_src[0], "a1 - b2");
    assert_double_equal(d.y0[1], 2, 0);
    assert_string_equal(d.output_src, "b2");
    dev_model_close(&d);

    device_ok("{\"kind\": \"reactions\", \"species\": {\"A\": 0}, \"reactions\": [\"0 -> A @ u1\", "
              "\"A -> 0 @ 1\"]}",
              &d);
    assert_string_equal(d.output_src, "A");
    dev_model_close(&d);

    /* Overrides reach the struct. */
    device_ok("{\"kind\": \"neuron\", \"drive\": \"full\", \"fan_in\": 3, \"params\": "
              "{\"activation\": \"tanh\", \"b\": 0.5}}",
              &d);
    assert_int_equal(d.fan_in, 3);
    assert_int_equal(d.activation, ACT_TANH);
    assert_double_equal(param(&d, "b"), 0.5, 0);
    assert_int_equal(dev_n_inputs(&d), 6);
    dev_model_close(&d);

    device_ok("{\"kind\": \"crn_relu\", \"readout\": {\"kind\": \"final\", \"t_max\": 50, "
              "\"tol\": 1e-6, \"threshold\": 0.5}, \"solver\": {\"method\": \"msbdf\", \"rtol\": "
              "1e-6, \"atol\": 0, \"h0\": 0.01, \"max_steps\": 5000}}",
              &d);
    assert_int_equal(d.readout.kind, READ_FINAL);
    assert_double_equal(d.readout.t_max, 50, 0);
    assert_double_equal(d.readout.threshold, 0.5, 0);
    assert_int_equal(d.solver.method, ODE_MSBDF);
    assert_double_equal(d.solver.atol, 0, 0);
    assert_int_equal(d.solver.max_steps, 5000);
    dev_model_close(&d);
}

/* ---- device errors ---- */

struct bad_case {
    const char *json;
    const char *path;
    int code;
};

static const struct bad_case device_cases[] = {
    {"[1]", "/spec/device", QN_ESPEC},
    {"{}", "/spec/device/kind", QN_ESPEC},
    {"{\"kind\": \"quantum\"}", "/spec/device/kind", QN_ESPEC},
    {"{\"kind\": 3}", "/spec/device/kind", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"colour\": 1}", "/spec/device/colour", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"name\": \"\"}", "/spec/device/name", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"name\": "
     "\"0123456789012345678901234567890123456789012345678901234567890123\"}",
     "/spec/device/name", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"drive\": \"dots\"}", "/spec/device/drive", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"drive\": \"full\"}", "/spec/device/fan_in", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"drive\": \"full\", \"fan_in\": 17}", "/spec/device/fan_in",
     QN_ESPEC},
    {"{\"kind\": \"neuron\", \"drive\": \"full\", \"fan_in\": 0}", "/spec/device/fan_in", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"fan_in\": 2}", "/spec/device/fan_in", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"params\": {\"activation\": \"swish\"}}",
     "/spec/device/params/activation", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"params\": {\"activation\": 1}}", "/spec/device/params/activation",
     QN_ESPEC},
    {"{\"kind\": \"neuron\", \"params\": {\"eps\": 1}}", "/spec/device/params/eps", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"readout\": {}}", "/spec/device/readout", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"solver\": {}}", "/spec/device/solver", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"params\": []}", "/spec/device/params", QN_ESPEC},
    {"{\"kind\": \"almost_neuron\", \"drive\": \"dot\"}", "/spec/device/drive", QN_ESPEC}, /* from dev_model_prepare */
    {"{\"kind\": \"almost_neuron\", \"drive\": \"dot_sq\", \"params\": {\"eps\": \"0.1\"}}",
     "/spec/device/params/eps", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"params\": {\"kappa\": 0}}", "/spec/device/params/kappa", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"params\": {\"kappa\": -1}}", "/spec/device/params/kappa",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"params\": {\"kapa\": 1}}", "/spec/device/params/kapa", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"params\": {\"activation\": \"relu\"}}",
     "/spec/device/params/activation", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"rhs\": {\"y\": \"1\"}}", "/spec/device/rhs", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"output\": \"y\"}", "/spec/device/output", QN_ESPEC},
    {"{\"kind\": \"hodgkin_huxley\", \"species\": {\"Y\": 1}}", "/spec/device/species", QN_ESPEC},
    /* readout and solver, at depth */
    {"{\"kind\": \"crn_relu\", \"readout\": {\"kind\": \"final\", \"bogus\": 1}}",
     "/spec/device/readout/bogus", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"readout\": {\"kind\": \"spike_rat\"}}",
     "/spec/device/readout/kind", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"readout\": {\"t_max\": -1}}", "/spec/device/readout/t_max",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"readout\": {\"t_max\": 1e308}}", "/spec/device/readout/t_max",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"readout\": {\"tol\": 0}}", "/spec/device/readout/tol", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"readout\": {\"threshold\": null}}",
     "/spec/device/readout/threshold", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"readout\": 5}", "/spec/device/readout", QN_ESPEC},
    {"{\"kind\": \"hodgkin_huxley\", \"readout\": {\"cycles\": \"jump\"}}",
     "/spec/device/readout/cycles", QN_ESPEC},
    {"{\"kind\": \"hodgkin_huxley\", \"readout\": {\"cycles\": 1}}",
     "/spec/device/readout/cycles", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"method\": \"euler\"}}", "/spec/device/solver/method",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"rtol\": \"1e-8\"}}", "/spec/device/solver/rtol",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"atol\": -1e-9}}", "/spec/device/solver/atol",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"rtol\": 0, \"atol\": 0}}", "/spec/device/solver/rtol",
     QN_ESPEC}, /* from dev_model_prepare */
    {"{\"kind\": \"crn_relu\", \"solver\": {\"max_steps\": 1.5}}", "/spec/device/solver/max_steps",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"max_steps\": 0}}", "/spec/device/solver/max_steps",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"h0\": 1e300}}", "/spec/device/solver/h0", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"solver\": {\"h0\": -1}}", "/spec/device/solver/h0", QN_ESPEC},
    /* ode */
    {"{\"kind\": \"ode\", \"rhs\": {\"y\": \"-y\"}}", "/spec/device/state", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}}", "/spec/device/rhs", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {}, \"rhs\": {}}", "/spec/device/state", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0, \"z\": 0}, \"rhs\": {\"y\": \"-y\"}}",
     "/spec/device/rhs", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"-y\", \"z\": \"1\"}}",
     "/spec/device/rhs/z", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"y +* 2\"}}",
     "/spec/device/rhs/y", QN_EPARSE},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"params\": {\"kappa\": 1}, \"rhs\": {\"y\": "
     "\"kapa * y\"}}",
     "/spec/device/rhs/y", QN_EPARSE},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"\"}}", "/spec/device/rhs/y",
     QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": -1}}", "/spec/device/rhs/y",
     QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"-y\"}, \"output\": \"q\"}",
     "/spec/device/output", QN_EPARSE},
    {"{\"kind\": \"ode\", \"state\": {\"y\": \"0\"}, \"rhs\": {\"y\": \"-y\"}}",
     "/spec/device/state/y", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"t\": 0}, \"rhs\": {\"t\": \"1\"}}", "/spec/device/state/t",
     QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"1y\": 0}, \"rhs\": {\"1y\": \"1\"}}",
     "/spec/device/state/1y", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"a/b~\": 0}, \"rhs\": {\"a/b~\": \"1\"}}",
     "/spec/device/state/a~1b~0", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"u1\": 0}, \"rhs\": {\"u1\": \"1\"}}",
     "/spec/device/state/u1", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"params\": {\"y\": 1}, \"rhs\": {\"y\": \"1\"}}",
     "/spec/device/params/y", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"params\": {\"tau\": true}, \"rhs\": {\"y\": "
     "\"1\"}}",
     "/spec/device/params/tau", QN_ESPEC},
    {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"1\"}, \"species\": {\"Y\": 1}}",
     "/spec/device/species", QN_ESPEC},
    /* reactions */
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"params\": {\"kappa\": 0.01}, "
     "\"reactions\": [\"0 -> Y @ kappa\", \"Z -> Y @ 1\"]}",
     "/spec/device/reactions/1", QN_EPARSE},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": [\"0 -> Y @ kapa\"]}",
     "/spec/device/reactions/0", QN_EPARSE},
    {"{\"kind\": \"reactions\", \"species\": {\"A\": 1, \"B\": 0}, \"reactions\": [\"A -> B @ "
     "u1\"]}",
     "/spec/device/output", QN_ESPEC},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": -1}, \"reactions\": [\"Y -> 0 @ 1\"]}",
     "/spec/device/species/Y", QN_ESPEC},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": []}",
     "/spec/device/reactions", QN_ESPEC},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": \"Y -> 0 @ 1\"}",
     "/spec/device/reactions", QN_ESPEC},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": [\"Y -> 0 @ 1\", 7]}",
     "/spec/device/reactions/1", QN_ESPEC},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}}", "/spec/device/reactions", QN_ESPEC},
    {"{\"kind\": \"reactions\", \"reactions\": [\"Y -> 0 @ 1\"]}", "/spec/device/species",
     QN_ESPEC},
    {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": [\"Y -> 0 @ 1\"], "
     "\"rhs\": {\"Y\": \"1\"}}",
     "/spec/device/rhs", QN_ESPEC},    /* variability and noise (issue 12) */
    {"{\"kind\": \"crn_relu\", \"variability\": {\"gk\": {\"dist\": \"normal\", \"cv\": 0.1}}}",
     "/spec/device/variability/gk", QN_ESPEC},
    {"{\"kind\": \"hodgkin_huxley\", \"variability\": {\"v0\": {\"dist\": \"normal\", "
     "\"cv\": 0.1}}}",
     "/spec/device/variability/v0", QN_ESPEC},
    {"{\"kind\": \"almost_neuron\", \"variability\": {\"eps\": {\"dist\": \"normal\", "
     "\"cv\": 0.1}}}",
     "/spec/device/variability/eps", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"variability\": {\"kappa\": {\"dist\": \"normal\", "
     "\"cv\": -0.1}}}",
     "/spec/device/variability/kappa/cv", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"variability\": {\"kappa\": {\"dist\": \"normal\", "
     "\"cv\": 5.5}}}",
     "/spec/device/variability/kappa/cv", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"variability\": {\"kappa\": {\"dist\": \"gamma\", "
     "\"cv\": 0.3}}}",
     "/spec/device/variability/kappa/dist", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"variability\": {\"kappa\": {\"cv\": 0.3}}}",
     "/spec/device/variability/kappa/dist", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"variability\": {\"kappa\": {\"dist\": \"normal\", "
     "\"cv\": 0.3, \"sd\": 1}}}",
     "/spec/device/variability/kappa/sd", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"variability\": [1]}", "/spec/device/variability", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"noise\": {\"output\": {\"sd\": -0.01}}}",
     "/spec/device/noise/output/sd", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"noise\": {\"drive\": {\"sd\": -1}}}",
     "/spec/device/noise/drive/sd", QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"noise\": {\"drive\": {}}}", "/spec/device/noise/drive/sd",
     QN_ESPEC},
    {"{\"kind\": \"crn_relu\", \"noise\": {\"read\": {\"sd\": 1}}}",
     "/spec/device/noise/read", QN_ESPEC},
    {"{\"kind\": \"neuron\", \"drive\": \"full\", \"fan_in\": 2, \"noise\": {\"drive\": "
     "{\"sd\": 0.1}}}",
     "/spec/device/noise/drive", QN_ESPEC},
};

static void test_device_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof device_cases / sizeof device_cases[0]; i++)
        device_bad(device_cases[i].json, device_cases[i].path, device_cases[i].code);
}

/* Builds {"kind": kind, key: {"n0": v, "n1": v, ...}} with n entries. */
static char *many(const char *head, const char *key, size_t n, const char *value, const char *tail)
{
    size_t cap = 64 * n + 512;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t k = (size_t)snprintf(s, cap, "%s\"%s\": {", head, key);
    for (size_t i = 0; i < n; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s\"n%zu\": %s", i ? ", " : "", i, value);
    snprintf(s + k, cap - k, "}%s", tail);
    return s;
}

static void test_device_limits(void **state)
{
    (void)state;
    /* 33 states, 33 params, 65 reactions, an over-long source. */
    char *s = many("{\"kind\": \"ode\", ", "state", DEV_MAX_STATES + 1, "0", ", \"rhs\": {}}");
    device_bad(s, "/spec/device/state", QN_ESPEC);
    free(s);
    s = many("{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"-y\"}, ", "params",
             DEV_MAX_PARAMS + 1, "1", "}");
    device_bad(s, "/spec/device/params", QN_ESPEC);
    free(s);
    s = many("{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"-y\"}, ", "params",
             DEV_MAX_PARAMS, "1", "}");
    struct dev_model d;
    device_ok(s, &d); /* exactly the limit is fine */
    assert_int_equal(d.n_params, DEV_MAX_PARAMS);
    dev_model_close(&d);
    free(s);

    size_t cap = (DEV_MAX_REACTIONS + 1) * 24 + 256;
    s = malloc(cap);
    assert_non_null(s);
    size_t k = (size_t)snprintf(s, cap, "{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, "
                                        "\"reactions\": [");
    for (int i = 0; i <= DEV_MAX_REACTIONS; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s\"Y -> 0 @ 1\"", i ? ", " : "");
    snprintf(s + k, cap - k, "]}");
    device_bad(s, "/spec/device/reactions", QN_ESPEC);
    free(s);

    char *src = malloc(SPEC_SRC_MAX + 2);
    assert_non_null(src);
    memset(src, 'y', SPEC_SRC_MAX + 1);
    src[SPEC_SRC_MAX + 1] = '\0';
    cap = SPEC_SRC_MAX + 256;
    s = malloc(cap);
    assert_non_null(s);
    snprintf(s, cap, "{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"%s\"}}", src);
    device_bad(s, "/spec/device/rhs/y", QN_ESPEC);
    free(s);
    free(src);

    /* A 32-byte name does not fit DEV_NAME_MAX (31 + NUL). */
    device_bad("{\"kind\": \"ode\", \"state\": {\"abcdefghijabcdefghijabcdefghijab\": 0}, \"rhs\": "
               "{}}",
               "/spec/device/state/abcdefghijabcdefghijabcdefghijab", QN_ESPEC);
    /* An embedded NUL in a source (jansson only makes one when asked to). */
    json_t *j = load("{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {}}");
    json_object_set_new(json_object_get(j, "rhs"), "y", json_stringn("-y\0+1", 5));
    struct spec_error err;
    assert_int_equal(spec_device_parse(j, "/spec/device", &d, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/device/rhs/y");
    json_decref(j);
}

/* ---- references ---- */

static void test_refs(void **state)
{
    (void)state;
    struct spec_ref r;
    struct spec_error err;
    json_t *j = load("3");
    assert_int_equal(spec_ref_parse(j, "/spec/device", 0, &r, &err), 0);
    assert_int_equal(r.kind, REF_ID);
    assert_int_equal(r.id, 3);
    assert_null(r.inline_obj);
    spec_ref_close(&r);
    json_decref(j);

    j = load("\"crn\"");
    assert_int_equal(spec_ref_parse(j, "/spec/device", 0, &r, &err), 0);
    assert_int_equal(r.kind, REF_NAME);
    assert_string_equal(r.name, "crn");
    spec_ref_close(&r);
    json_decref(j);

    j = load("{\"job\": 12}");
    assert_int_equal(spec_ref_parse(j, "/spec/dataset", 0, &r, &err), 0);
    assert_int_equal(r.kind, REF_JOB);
    assert_int_equal(r.id, 12);
    spec_ref_close(&r);
    json_decref(j);

    j = load("{\"id\": 7, \"inputs\": [\"x1\", \"x2\"], \"label\": \"y\"}");
    assert_int_equal(spec_ref_parse(j, "/spec/dataset", 0, &r, &err), 0);
    assert_int_equal(r.kind, REF_ID);
    assert_int_equal(r.id, 7);
    assert_non_null(r.inline_obj);
    assert_string_equal(json_string_value(json_object_get(r.inline_obj, "label")), "y");
    json_decref(j); /* the ref holds its own reference */
    assert_int_equal(json_array_size(json_object_get(r.inline_obj, "inputs")), 2);
    spec_ref_close(&r);

    j = load("{\"kind\": \"neuron\"}");
    assert_int_equal(spec_ref_parse(j, "/spec/device", 1, &r, &err), 0);
    assert_int_equal(r.kind, REF_INLINE);
    assert_ptr_equal(r.inline_obj, j);
    spec_ref_close(&r);
    assert_int_equal(spec_ref_parse(j, "/spec/model", 0, &r, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/model");
    json_decref(j);

    static const struct {
        const char *json, *path;
    } bad[] = {
        {"0", "/r"},          {"-1", "/r"},         {"1.5", "/r"},         {"\"\"", "/r"},
        {"true", "/r"},       {"null", "/r"},       {"[1]", "/r"},         {"{\"job\": 0}", "/r/job"},
        {"{\"job\": \"x\"}", "/r/job"}, {"{\"id\": 1, \"job\": 2}", "/r/job"},
        {"{\"id\": 1e300}", "/r/id"},
        {"\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
         "5678901234567890123456789012345678901234567\"",
         "/r"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = load(bad[i].json);
        memset(&err, 0, sizeof err);
        if (spec_ref_parse(j, "/r", 1, &r, &err) == 0)
            fail_msg("ref accepted: %s", bad[i].json);
        if (strcmp(err.path, bad[i].path) != 0)
            fail_msg("ref %s: path %s, expected %s", bad[i].json, err.path, bad[i].path);
        spec_ref_close(&r);
        json_decref(j);
    }
    /* A real that is an integer counts as one (as in JSON Schema). */
    j = load("4.0");
    assert_int_equal(spec_ref_parse(j, "/r", 0, &r, &err), 0);
    assert_int_equal(r.id, 4);
    spec_ref_close(&r);
    json_decref(j);
}

/* ---- job envelope ---- */

static void test_job(void **state)
{
    (void)state;
    struct job_spec js;
    struct spec_error err;
    json_t *j = load("{\"type\": \"fit\", \"spec\": {\"epochs\": 3}}");
    assert_int_equal(job_parse(j, &js, &err), 0);
    assert_string_equal(js.type, "fit");
    assert_string_equal(js.name, "fit"); /* default: the type */
    assert_int_equal(js.priority, 0);
    json_decref(j);
    assert_int_equal(json_integer_value(json_object_get(js.spec, "epochs")), 3);
    json_decref(js.spec);

    j = load("{\"type\": \"evaluate\", \"name\": \"crn on the real device\", \"priority\": -100, "
             "\"spec\": {}}");
    assert_int_equal(job_parse(j, &js, &err), 0);
    assert_string_equal(js.name, "crn on the real device");
    assert_int_equal(js.priority, -100);
    json_decref(js.spec);
    json_decref(j);

    /* "resources": ranks 1..4096, threads 1..1024, both optional (default 1). */
    assert_int_equal(js.ranks, 1);
    assert_int_equal(js.threads, 1);
    j = load("{\"type\": \"sweep\", \"resources\": {\"ranks\": 4096, \"threads\": 2}, "
             "\"spec\": {}}");
    assert_int_equal(job_parse(j, &js, &err), 0);
    assert_int_equal(js.ranks, 4096);
    assert_int_equal(js.threads, 2);
    json_decref(js.spec);
    json_decref(j);
    job_bad("{\"type\": \"sweep\", \"resources\": {\"ranks\": 0}, \"spec\": {}}",
            "/resources/ranks");
    job_bad("{\"type\": \"sweep\", \"resources\": {\"ranks\": 5000}, \"spec\": {}}",
            "/resources/ranks");
    job_bad("{\"type\": \"sweep\", \"resources\": {\"ranks\": \"2\"}, \"spec\": {}}",
            "/resources/ranks");
    job_bad("{\"type\": \"sweep\", \"resources\": {\"threads\": 0}, \"spec\": {}}",
            "/resources/threads");
    job_bad("{\"type\": \"sweep\", \"resources\": {\"nodes\": 2}, \"spec\": {}}",
            "/resources/nodes");
    job_bad("{\"type\": \"sweep\", \"resources\": 2, \"spec\": {}}", "/resources");

    job_bad("[]", "");
    job_bad("{\"spec\": {}}", "/type");
    job_bad("{\"type\": \"fly\", \"spec\": {}}", "/type");
    job_bad("{\"type\": [\"sweep\"], \"spec\": {}}", "/type");
    job_bad("{\"type\": \"sweep\"}", "/spec");
    job_bad("{\"type\": \"sweep\", \"spec\": [1]}", "/spec");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"owner\": \"eve\"}", "/owner");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"name\": \"\"}", "/name");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"name\": 5}", "/name");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"name\": \"0123456789012345678901234567890123456"
            "789012345678901234567890123456789012345678901234567890123456789012345678901234567890123"
            "45678\"}",
            "/name");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"priority\": 101}", "/priority");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"priority\": 1.5}", "/priority");
    job_bad("{\"type\": \"sweep\", \"spec\": {}, \"priority\": \"1\"}", "/priority");

    /* spec_load: malformed JSON and duplicate keys are refused with a position. */
    json_t *out;
    const char *dup = "{\"type\": \"sweep\", \"type\": \"fit\"}";
    assert_int_equal(spec_load(dup, strlen(dup), &out, &err), QN_ESPEC);
    assert_string_equal(err.path, "");
    assert_non_null(strstr(err.msg, "line 1"));
    const char *nan = "{\"samples\": NaN}";
    assert_int_equal(spec_load(nan, strlen(nan), &out, &err), QN_ESPEC);
    const char *inf = "{\"samples\": 1e400}";
    assert_int_equal(spec_load(inf, strlen(inf), &out, &err), QN_ESPEC);
}

/* ---- sweep ---- */

static void test_sweep_parse(void **state)
{
    (void)state;
    struct sweep_spec s;
    struct spec_error err;
    json_t *j = load("{\"device\": \"crn\", \"samples\": 4000, \"ranges\": {\"u1\": [-4, 4]}}");
    assert_int_equal(spec_sweep_parse(j, &s, &err), 0);
    assert_int_equal(s.device.kind, REF_NAME);
    assert_int_equal(s.design, DESIGN_SOBOL);
    assert_int_equal(s.seed, 1);
    assert_int_equal(s.samples, 4000);
    assert_int_equal(s.n_ranges, 1);
    assert_string_equal(s.range_names[0], "u1");
    assert_double_equal(s.lo[0], -4, 0);
    assert_double_equal(s.hi[0], 4, 0);
    spec_sweep_close(&s);
    json_decref(j);

    j = load("{\"device\": {\"kind\": \"neuron\"}, \"design\": \"lhs\", \"samples\": 10000000, "
             "\"seed\": 0, \"ranges\": {\"u1\": [2, 2]}}");
    assert_int_equal(spec_sweep_parse(j, &s, &err), 0);
    assert_int_equal(s.device.kind, REF_INLINE);
    assert_int_equal(s.design, DESIGN_LHS);
    assert_int_equal(s.samples, SPEC_SAMPLES_MAX);
    assert_int_equal(s.seed, 0);
    spec_sweep_close(&s);
    json_decref(j);

#define R "\"ranges\": {\"u1\": [-3, 3]}"
    sweep_bad("[]", "/spec");
    sweep_bad("{\"samples\": 10, " R "}", "/spec/device");
    sweep_bad("{\"device\": true, \"samples\": 10, " R "}", "/spec/device");
    sweep_bad("{\"device\": 1, \"samples\": 10, " R ", \"threads\": 4}", "/spec/threads");
    sweep_bad("{\"device\": 1, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": -5, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": 0, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": 1.5, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": \"10\", " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": 1e300, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": -1e300, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": 10000001, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": 9223372036854775807, " R "}", "/spec/samples");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"seed\": -1, " R "}", "/spec/seed");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"seed\": 0.5, " R "}", "/spec/seed");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"design\": \"random\", " R "}", "/spec/design");
    sweep_bad("{\"device\": 1, \"samples\": 10}", "/spec/ranges");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {}}", "/spec/ranges");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": [[0, 1]]}", "/spec/ranges");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"u1\": [3, -3]}}", "/spec/ranges/u1");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"u1\": [1]}}", "/spec/ranges/u1");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"u1\": [1, 2, 3]}}",
              "/spec/ranges/u1");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"u1\": [\"a\", 1]}}",
              "/spec/ranges/u1");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"u1\": {\"lo\": 0, \"hi\": 1}}}",
              "/spec/ranges/u1");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"u1\": [-1e308, 1e308]}}",
              "/spec/ranges/u1");
    sweep_bad("{\"device\": 1, \"samples\": 10, \"ranges\": {\"\": [0, 1]}}", "/spec/ranges/");
#undef R
}

/* Binds {"ranges": ...} to a device; returns rc, fills s. */
static int bind(const char *device, const char *ranges, struct sweep_spec *s,
                struct spec_error *err)
{
    char text[512];
    snprintf(text, sizeof text, "{\"device\": 1, \"samples\": 16, \"ranges\": %s}", ranges);
    json_t *j = load(text);
    assert_int_equal(spec_sweep_parse(j, s, err), 0);
    json_decref(j);
    struct dev_model d;
    device_ok(device, &d);
    int rc = spec_sweep_bind(s, &d, err);
    dev_model_close(&d);
    return rc;
}

static void test_sweep_bind(void **state)
{
    (void)state;
    struct sweep_spec s;
    struct spec_error err;
    const char *sq = "{\"kind\": \"almost_neuron\", \"drive\": \"dot_sq\"}";
    assert_int_equal(bind(sq, "{\"u2\": [0, 4], \"u1\": [-1, 1]}", &s, &err), 0);
    assert_string_equal(s.range_names[0], "u1"); /* reordered to the device's inputs */
    assert_string_equal(s.range_names[1], "u2");
    assert_double_equal(s.lo[0], -1, 0);
    assert_double_equal(s.hi[1], 4, 0);
    spec_sweep_close(&s);

    assert_int_equal(bind(sq, "{\"u1\": [-1, 1]}", &s, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/ranges");
    assert_non_null(strstr(err.msg, "u2"));
    spec_sweep_close(&s);

    assert_int_equal(bind("{\"kind\": \"crn_relu\"}", "{\"u1\": [-1, 1], \"u3\": [0, 1]}", &s,
                          &err),
                     QN_ESPEC);
    assert_string_equal(err.path, "/spec/ranges/u3");
    spec_sweep_close(&s);

    const char *full = "{\"kind\": \"neuron\", \"drive\": \"full\", \"fan_in\": 2}";
    assert_int_equal(bind(full, "{\"a2\": [4, 5], \"x1\": [0, 1], \"a1\": [2, 3], \"x2\": [1, 2]}",
                          &s, &err),
                     0);
    assert_int_equal(s.n_ranges, 4);
    assert_string_equal(s.range_names[0], "x1");
    assert_string_equal(s.range_names[1], "x2");
    assert_string_equal(s.range_names[2], "a1");
    assert_string_equal(s.range_names[3], "a2");
    for (int i = 0; i < 4; i++)
        assert_double_equal(s.hi[i] - s.lo[i], 1, 0);
    assert_double_equal(s.lo[3], 4, 0);
    spec_sweep_close(&s);
}

/* Ranges over parameters: after the inputs, in the device's parameter order, with their
 * indices; a name that is neither input nor parameter, or a range the parameter cannot
 * take, is refused at its path. */
static void test_sweep_bind_params(void **state)
{
    (void)state;
    struct sweep_spec s;
    struct spec_error err;
    const char *crn = "{\"kind\": \"crn_relu\"}";
    assert_int_equal(bind(crn, "{\"kappa\": [0.002, 0.05], \"u1\": [-4, 4]}", &s, &err), 0);
    assert_int_equal(s.n_ranges, 2);
    assert_int_equal(s.n_inputs, 1);
    assert_string_equal(s.range_names[0], "u1");
    assert_string_equal(s.range_names[1], "kappa");
    assert_int_equal(s.param_idx[0], 0); /* kappa is crn_relu's params[0] */
    assert_double_equal(s.lo[1], 0.002, 0);
    assert_double_equal(s.hi[1], 0.05, 0);
    spec_sweep_close(&s);

    assert_int_equal(bind(crn, "{\"u1\": [-4, 4], \"gain\": [1, 2]}", &s, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/ranges/gain");
    assert_non_null(strstr(err.msg, "no input or parameter named 'gain'"));
    spec_sweep_close(&s);

    assert_int_equal(bind(crn, "{\"u1\": [-4, 4], \"kappa\": [0, 0.05]}", &s, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/ranges/kappa");
    assert_non_null(strstr(err.msg, "positive"));
    spec_sweep_close(&s);

    /* hodgkin_huxley's v0 sets the initial state, not a parameter a chip or sweep varies */
    const char *hh = "{\"kind\": \"hodgkin_huxley\"}";
    assert_int_equal(bind(hh, "{\"u1\": [0, 20], \"v0\": [-70, -60]}", &s, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/ranges/v0");
    spec_sweep_close(&s);
    assert_int_equal(bind(hh, "{\"u1\": [0, 20], \"gk\": [30, 40]}", &s, &err), 0);
    assert_int_equal(s.n_inputs, 1);
    assert_string_equal(s.range_names[1], "gk");
    spec_sweep_close(&s);
}

/* ---- example files ---- */

/* Parses one job file end to end: envelope, sweep spec, inline device, bind. */
static void example_job(const char *name, json_t *root)
{
    struct job_spec js;
    struct spec_error err;
    if (job_parse(root, &js, &err))
        fail_msg("%s: %s: %s", name, err.path, err.msg);
    if (strcmp(js.type, "sweep") != 0) { /* fit/train/evaluate: tests/schema/test_spec_jobs.c */
        json_decref(js.spec);
        return;
    }
    struct sweep_spec s;
    if (spec_sweep_parse(js.spec, &s, &err))
        fail_msg("%s: %s: %s", name, err.path, err.msg);
    if (s.device.kind == REF_INLINE) {
        struct dev_model d;
        int rc = spec_device_parse(s.device.inline_obj, "/spec/device", &d, &err);
        if (rc || (rc = spec_sweep_bind(&s, &d, &err)))
            fail_msg("%s: %s: %s", name, err.path, err.msg);
        dev_model_close(&d);
    }
    spec_sweep_close(&s);
    json_decref(js.spec);
}

/* One file of schema/examples: a job (see example_job) or a bare device. */
static void example_file(const char *name, json_t *root, void *ctx)
{
    if (json_object_get(root, "type")) {
        example_job(name, root);
    } else {
        struct dev_model d;
        struct spec_error err;
        if (spec_device_parse(root, "", &d, &err))
            fail_msg("%s: %s: %s", name, err.path, err.msg);
        dev_model_close(&d);
    }
    *(int *)ctx += strcmp(name, "crn-sweep.json") == 0;
}

static void test_example_files(void **state)
{
    (void)state;
    int crn_sweep = 0;
    int n = for_each_example(example_file, &crn_sweep);
    assert_true(n >= 6);
    assert_int_equal(crn_sweep, 1); /* make demo needs it */
}

/* Parses `dev` with field `key` of object `at` replaced by each JSON type:
 * never a crash or leak (ASan), and every refusal names a path under /d. */
static void confuse(json_t *dev, json_t *at, const char *key)
{
    json_t *vals[] = {json_null(), json_true(), json_integer(-1), json_real(1e308),
                      json_string("x"), json_array(), json_object(), json_integer(0)};
    json_t *orig = json_incref(json_object_get(at, key));
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        json_object_set_new(at, key, vals[i]);
        struct dev_model d;
        struct spec_error err = {{0}, {0}};
        int rc = spec_device_parse(dev, "/d", &d, &err);
        if (rc == 0)
            dev_model_close(&d);
        else if (strncmp(err.path, "/d", 2) != 0 || !err.msg[0])
            fail_msg("field %s: bad error '%s: %s'", key, err.path, err.msg);
    }
    json_object_set_new(at, key, orig);
}

static void test_type_confusion(void **state)
{
    (void)state;
    const char *files[] = {"device-crn.json", "device-near.json", "device-hh.json",
                           "device-relax.json", "device-crn-reactions.json"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char rel[128];
        snprintf(rel, sizeof rel, "schema/examples/%s", files[f]);
        json_t *dev = load_file(rel);
        const char *key;
        json_t *val;
        void *tmp;
        json_object_foreach_safe(dev, tmp, key, val) {
            if (json_is_object(val)) {
                const char *k2;
                json_t *v2;
                void *t2;
                json_object_foreach_safe(val, t2, k2, v2) confuse(dev, val, k2);
            }
            confuse(dev, dev, key);
        }
        json_decref(dev);
    }
}

/* ---- the JSON Schema documents ---- */

static void test_schemas_are_json(void **state)
{
    (void)state;
    const char *files[] = {"schema/device.schema.json", "schema/sweep.schema.json",
                           "schema/job.schema.json"};
    for (size_t i = 0; i < 3; i++) {
        json_t *s = load_file(files[i]);
        assert_string_equal(json_string_value(json_object_get(s, "$schema")),
                            "https://json-schema.org/draft/2020-12/schema");
        assert_true(json_is_object(json_object_get(s, "properties")));
        json_decref(s);
    }
}

/* Every device kind of the engine has its own schema document, which fixes
 * the kind and refers to the shared definition. */
static void test_device_kind_schemas(void **state)
{
    (void)state;
    for (int k = DEV_NEURON; k <= DEV_REACTIONS; k++) {
        const char *kind = dev_kind_name((enum dev_kind)k);
        char path[128];
        snprintf(path, sizeof path, "schema/devices/%s.schema.json", kind);
        json_t *s = load_file(path);
        assert_string_equal(json_string_value(json_object_get(s, "$schema")),
                            "https://json-schema.org/draft/2020-12/schema");
        json_t *c = json_object_get(json_object_get(json_object_get(s, "properties"), "kind"),
                                    "const");
        assert_string_equal(json_string_value(c), kind);
        json_t *ref = json_object_get(json_array_get(json_object_get(s, "allOf"), 0), "$ref");
        assert_string_equal(json_string_value(ref), "../device.schema.json");
        json_decref(s);
    }
}

/* Collects every "default" under schema `s` ("properties" recursively) into
 * out as path -> value, e.g. "readout/t_max" -> 200; later calls overwrite. */
static void collect_defaults(const json_t *s, const char *prefix, json_t *out)
{
    const char *key;
    json_t *sub;
    json_object_foreach(json_object_get(s, "properties"), key, sub) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", prefix, key);
        json_t *def = json_object_get(sub, "default");
        if (def)
            json_object_set(out, p, def);
        if (json_object_get(sub, "properties")) {
            strncat(p, "/", sizeof p - strlen(p) - 1);
            collect_defaults(sub, p, out);
        }
    }
}

/* The defaults the schema documents for `kind`: top level, then its allOf branch. */
static json_t *schema_defaults(const json_t *schema, const char *kind)
{
    json_t *out = json_object();
    collect_defaults(schema, "", out);
    size_t i;
    json_t *branch;
    json_array_foreach(json_object_get(schema, "allOf"), i, branch) {
        const json_t *c = json_object_get(
            json_object_get(json_object_get(json_object_get(branch, "if"), "properties"), "kind"),
            "const");
        if (c && strcmp(json_string_value(c), kind) == 0)
            collect_defaults(json_object_get(branch, "then"), "", out);
    }
    return out;
}

/* What the parsed model holds at a schema path, as JSON; NULL when unmapped. */
static json_t *model_value(const struct dev_model *d, const char *p)
{
    double v;
    if (strcmp(p, "drive") == 0) return json_string(dev_drive_name(d->drive));
    if (strcmp(p, "readout/kind") == 0) return json_string(dev_readout_name(d->readout.kind));
    if (strcmp(p, "readout/t_max") == 0) return json_real(d->readout.t_max);
    if (strcmp(p, "readout/tol") == 0) return json_real(d->readout.tol);
    if (strcmp(p, "readout/threshold") == 0) return json_real(d->readout.threshold);
    if (strcmp(p, "readout/transient") == 0) return json_real(d->readout.transient);
    if (strcmp(p, "readout/cycles") == 0) return json_string(dev_cycles_name(d->readout.cycles));
    if (strcmp(p, "solver/method") == 0) return json_string(dev_method_name(d->solver.method));
    if (strcmp(p, "solver/rtol") == 0) return json_real(d->solver.rtol);
    if (strcmp(p, "solver/atol") == 0) return json_real(d->solver.atol);
    if (strcmp(p, "solver/h0") == 0) return json_real(d->solver.h0);
    if (strcmp(p, "solver/max_steps") == 0) return json_integer((json_int_t)d->solver.max_steps);
    if (strcmp(p, "noise/output/sd") == 0) return json_real(d->noise.output_sd);
    if (strcmp(p, "noise/drive/sd") == 0) return json_real(d->noise.drive_sd);
    if (strcmp(p, "params/activation") == 0) return json_string(act_name(d->activation));
    if (strcmp(p, "params/eps") == 0) return json_real(d->eps);
    if (strncmp(p, "params/", 7) == 0 && dev_model_param(d, p + 7, &v) == 0) return json_real(v);
    return NULL;
}

static int same_value(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        return fabs(x - y) <= 1e-12 * fmax(1, fabs(x));
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* Checks every documented default of `kind` against a parsed minimal device. */
static int check_kind_defaults(const json_t *schema, const char *kind, const char *minimal)
{
    json_t *defs = schema_defaults(schema, kind);
    json_t *min = load(minimal);
    struct dev_model d;
    device_ok(minimal, &d);
    const char *p;
    json_t *want;
    int checked = 0;
    json_object_foreach(defs, p, want) {
        if (strchr(p, '/') == NULL && json_object_get(min, p))
            continue; /* the minimal spec sets it (drive of almost_neuron) */
        json_t *got = model_value(&d, p);
        if (!got)
            fail_msg("kind %s: schema default of %s is not checked by this test", kind, p);
        if (!same_value(got, want)) {
            char *w = json_dumps(want, JSON_ENCODE_ANY), *g = json_dumps(got, JSON_ENCODE_ANY);
            fail_msg("kind %s: %s: schema says %s, parser gives %s", kind, p, w, g);
        }
        json_decref(got);
        checked++;
    }
    dev_model_close(&d);
    json_decref(min);
    json_decref(defs);
    return checked;
}

static void test_schema_defaults_match(void **state)
{
    (void)state;
    json_t *schema = load_file("schema/device.schema.json");
    /* The $defs activation/bias defaults are reached through $ref: check them directly. */
    json_t *defs = json_object_get(schema, "$defs");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(defs, "activation"), "default")), "relu");
    assert_double_equal(
        json_number_value(json_object_get(json_object_get(defs, "bias"), "default")), 0, 0);

    static const struct {
        const char *kind, *minimal;
    } kinds[] = {
        {"neuron", "{\"kind\": \"neuron\"}"},
        {"almost_neuron", "{\"kind\": \"almost_neuron\", \"drive\": \"dot_sq\"}"},
        {"crn_relu", "{\"kind\": \"crn_relu\"}"},
        {"hodgkin_huxley", "{\"kind\": \"hodgkin_huxley\"}"},
        {"ode", "{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"-y\"}}"},
        {"reactions", "{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": [\"Y -> "
                      "0 @ 1\"]}"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        assert_true(check_kind_defaults(schema, kinds[i].kind, kinds[i].minimal) >= 9);

    /* The ones the brief names, spelled out so that a schema losing them fails. */
    json_t *crn = schema_defaults(schema, "crn_relu");
    assert_double_equal(json_number_value(json_object_get(crn, "params/kappa")), 0.01, 0);
    assert_double_equal(json_number_value(json_object_get(crn, "readout/t_max")), 200, 0);
    assert_double_equal(json_number_value(json_object_get(crn, "readout/tol")), 1e-10, 0);
    assert_double_equal(json_number_value(json_object_get(crn, "solver/rtol")), 1e-8, 0);
    assert_double_equal(json_number_value(json_object_get(crn, "solver/atol")), 1e-10, 0);
    assert_string_equal(json_string_value(json_object_get(crn, "solver/method")), "rk8pd");
    json_decref(crn);
    json_t *an = schema_defaults(schema, "almost_neuron");
    assert_double_equal(json_number_value(json_object_get(an, "params/eps")), 0.1, 0);
    json_decref(an);
    json_t *hh = schema_defaults(schema, "hodgkin_huxley");
    assert_double_equal(json_number_value(json_object_get(hh, "params/gain")), 1.0, 0);
    assert_double_equal(json_number_value(json_object_get(hh, "readout/t_max")), 500, 0);
    json_decref(hh);
    json_decref(schema);

    /* Sweep: design and seed; job: priority. */
    json_t *sw = load_file("schema/sweep.schema.json");
    json_t *props = json_object_get(sw, "properties");
    json_t *spec = load("{\"device\": 1, \"samples\": 1, \"ranges\": {\"u1\": [0, 1]}}");
    struct sweep_spec s;
    struct spec_error err;
    assert_int_equal(spec_sweep_parse(spec, &s, &err), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(props, "design"), "default")),
        design_name(s.design));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(props, "seed"), "default")),
                     s.seed);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(props, "samples"), "maximum")),
        SPEC_SAMPLES_MAX);
    spec_sweep_close(&s);
    json_decref(spec);
    json_decref(sw);

    json_t *job = load_file("schema/job.schema.json");
    json_t *env = load("{\"type\": \"sweep\", \"spec\": {}}");
    struct job_spec js;
    assert_int_equal(job_parse(env, &js, &err), 0);
    props = json_object_get(job, "properties");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(props, "priority"), "default")),
        js.priority);
    json_t *res = json_object_get(json_object_get(props, "resources"), "properties");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "ranks"), "default")),
                     js.ranks);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "ranks"), "maximum")),
                     SPOOL_RANKS_MAX);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(res, "threads"), "maximum")),
        SPOOL_THREADS_MAX);
    json_decref(js.spec);
    json_decref(env);
    json_decref(job);
}

/* A parameter used as a rate constant must not be negative: no drive can
 * make that a mass-action network (a drive rate is checked at solve time). */
static void test_negative_parameter_rate(void **state)
{
    (void)state;
    device_bad("{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"params\": {\"k\": -1}, "
               "\"reactions\": [\"Y -> 0 @ 1\", \"0 -> Y @ k\"]}",
               "/spec/device/reactions/1", QN_ESPEC);
    struct dev_model d;
    device_ok("{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"params\": {\"k\": -1}, "
              "\"reactions\": [\"Y -> 0 @ 1\", \"0 -> Y @ neg(k)\"]}", &d);
    dev_model_close(&d);
}

/* Variability and noise parse into the model's vary[] and noise, and leave
 * the fingerprint of the nominal device as it was (a surrogate of the
 * nominal device still matches). */
static void test_device_variability(void **state)
{
    (void)state;
    struct dev_model a, b, h;
    device_ok("{\"kind\": \"crn_relu\", \"params\": {\"kappa\": 0.01}}", &a);
    device_ok("{\"name\": \"crn-chip\", \"kind\": \"crn_relu\", \"drive\": \"dot\", "
              "\"params\": {\"kappa\": 0.01}, \"variability\": {\"kappa\": {\"dist\": "
              "\"lognormal\", \"cv\": 0.3}}, \"noise\": {\"output\": {\"sd\": 0.02}, "
              "\"drive\": {\"sd\": 0.0}}}", &b);
    device_ok("{\"kind\": \"hodgkin_huxley\", \"variability\": {\"gk\": {\"dist\": "
              "\"uniform\", \"cv\": 0.1}, \"gna\": {\"dist\": \"normal\", \"cv\": 0}}}", &h);
    assert_false(dev_has_variability(&a));
    assert_false(dev_has_noise(&a));
    assert_true(dev_has_variability(&b));
    assert_true(dev_has_noise(&b));
    double v;
    for (size_t i = 0; i < b.n_params; i++) {
        int kappa = strcmp(b.param_names[i], "kappa") == 0;
        assert_int_equal(b.vary[i].dist, kappa ? DEV_DIST_LOGNORMAL : DEV_DIST_NONE);
        assert_true(b.vary[i].cv == (kappa ? 0.3 : 0.0));
    }
    assert_true(b.noise.output_sd == 0.02 && b.noise.drive_sd == 0.0);
    assert_int_equal(dev_model_param(&h, "gk", &v), 0);
    for (size_t i = 0; i < h.n_params; i++) {
        int gk = strcmp(h.param_names[i], "gk") == 0, gna = strcmp(h.param_names[i], "gna") == 0;
        assert_int_equal(h.vary[i].dist,
                         gk ? DEV_DIST_UNIFORM : gna ? DEV_DIST_NORMAL : DEV_DIST_NONE);
    }
    char *fa = spec_device_fingerprint(&a), *fb = spec_device_fingerprint(&b);
    assert_non_null(fa);
    assert_non_null(fb);
    assert_string_equal(fa, fb);
    char diff[200];
    assert_int_equal(spec_device_differences(&a, &b, diff, sizeof diff), 0);
    free(fa), free(fb);
    dev_model_close(&a), dev_model_close(&b), dev_model_close(&h);
}

/* The fingerprint: two spellings of one device agree (defaults written out,
 * numbers written otherwise, another name); a change of physics does not,
 * and the differences name the fields. */
static void test_device_fingerprint(void **state)
{
    (void)state;
    struct dev_model a, b, c, d;
    device_ok("{\"name\": \"one\", \"kind\": \"crn_relu\", \"params\": {\"kappa\": 0.01}}", &a);
    device_ok("{\"name\": \"two\", \"kind\": \"crn_relu\", \"drive\": \"dot\", "
              "\"params\": {\"kappa\": 1e-2}, \"readout\": {\"kind\": \"steady_state\", "
              "\"t_max\": 200}}", &b);
    device_ok("{\"kind\": \"crn_relu\", \"params\": {\"kappa\": 0.5}, \"readout\": "
              "{\"t_max\": 100}}", &c);
    device_ok("{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"params\": {\"kappa\": 0.01}, "
              "\"rhs\": {\"y\": \"kappa + u1*y - y^2\"}}", &d);
    char *fa = spec_device_fingerprint(&a), *fb = spec_device_fingerprint(&b);
    char *fc = spec_device_fingerprint(&c), *fd = spec_device_fingerprint(&d);
    assert_non_null(fa);
    assert_string_equal(fa, fb);
    assert_string_not_equal(fa, fc);
    assert_string_not_equal(fa, fd);
    assert_null(strstr(fa, "one")); /* the name is not physics */
    char diff[320];
    assert_int_equal(spec_device_differences(&a, &b, diff, sizeof diff), 0);
    assert_string_equal(diff, "");
    assert_int_equal(spec_device_differences(&a, &c, diff, sizeof diff), 1);
    assert_string_equal(diff, "params/kappa 0.01 vs 0.5; readout/t_max 200.0 vs 100.0");
    assert_int_equal(spec_device_differences(&a, &d, diff, sizeof diff), 1);
    assert_non_null(strstr(diff, "kind \"crn_relu\" vs \"ode\""));
    assert_non_null(strstr(diff, "rhs - vs {\"y\": \"kappa+u1*y-y^2\"}"));
    free(fa), free(fb), free(fc), free(fd);
    dev_model_close(&a), dev_model_close(&b), dev_model_close(&c), dev_model_close(&d);
    /* spellings that do not change the physics: whitespace in expressions, a
     * reaction's "Y + Y" for "2 Y" and the reactions' order, a readout
     * field the readout does not read (threshold of a steady state), and
     * whether a periodic spike train's cycles are skipped or integrated (the
     * same values to the solver's tolerance: tests/engine/test_device_cycles.c) */
    const char *same[][2] = {
        {"{\"kind\": \"hodgkin_huxley\"}",
         "{\"kind\": \"hodgkin_huxley\", \"readout\": {\"cycles\": \"integrate\"}}"},
        {"{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"tanh(u1) - y\"}}",
         "{\"kind\": \"ode\", \"state\": {\"y\": 0}, \"rhs\": {\"y\": \"tanh(u1)-y\"}, "
         "\"readout\": {\"kind\": \"steady_state\", \"threshold\": 5}}"},
        {"{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"params\": {\"kappa\": 0.01}, "
         "\"reactions\": [\"0 -> Y @ kappa\", \"2 Y -> Y @ 1\", \"Y -> 2 Y @ pos(u1)\", "
         "\"Y -> 0 @ neg(u1)\"]}",
         "{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"params\": {\"kappa\": 0.01}, "
         "\"reactions\": [\"Y->0@neg(u1)\", \"Y -> Y + Y @ pos( u1 )\", \"Y + Y -> Y @ 1.0\", "
         "\"0 -> Y @ kappa\"]}"}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        device_ok(same[i][0], &a);
        device_ok(same[i][1], &b);
        assert_int_equal(spec_device_differences(&a, &b, diff, sizeof diff), 0);
        dev_model_close(&a), dev_model_close(&b);
    }
    /* a reaction that differs (another rate) still shows, in canonical form */
    device_ok("{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": "
              "[\"Y + Y -> Y @ 1\"]}", &a);
    device_ok("{\"kind\": \"reactions\", \"species\": {\"Y\": 1}, \"reactions\": "
              "[\"2 Y -> Y @ 2\"]}", &b);
    assert_int_equal(spec_device_differences(&a, &b, diff, sizeof diff), 1);
    assert_string_equal(diff, "reactions [\"2 Y -> Y @ 1\"] vs [\"2 Y -> Y @ 2\"]");
    dev_model_close(&a), dev_model_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_examples),  cmocka_unit_test(test_device_defaults),
        cmocka_unit_test(test_device_errors),    cmocka_unit_test(test_device_limits),
        cmocka_unit_test(test_refs),             cmocka_unit_test(test_job),
        cmocka_unit_test(test_sweep_parse),      cmocka_unit_test(test_sweep_bind),
        cmocka_unit_test(test_sweep_bind_params),
        cmocka_unit_test(test_example_files),    cmocka_unit_test(test_schemas_are_json),
        cmocka_unit_test(test_device_kind_schemas),
        cmocka_unit_test(test_schema_defaults_match), cmocka_unit_test(test_type_confusion),
        cmocka_unit_test(test_device_fingerprint),
        cmocka_unit_test(test_device_variability), cmocka_unit_test(test_negative_parameter_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
