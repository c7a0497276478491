/*
 * test_spec_bodies.c: the parsers of the daemon's compute-route bodies
 * (schema/spec_simulate.c, spec_predict.c). Good bodies fill their struct
 * (defaults included, inputs in the device's order, rows raw); each bad
 * field is refused with QN_ESPEC at its JSON Pointer path, with the
 * messages clients of POST /v1/devices/{id}/simulate and POST
 * /v1/models/{id}/predict have always seen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define CRN "{\"kind\": \"crn_relu\"}" /* one input, u1 */
#define NEAR                                                                                       \
    "{\"kind\": \"almost_neuron\", \"drive\": \"dot_sq\", \"params\": {\"eps\": 0.1, "             \
    "\"activation\": \"sigmoid\"}}" /* two inputs, u1 and u2 */

/* Parses JSON text through spec_load; fails the test on error. */
static json_t *load(const char *text)
{
    json_t *j = NULL;
    struct spec_error err;
    if (spec_load(text, strlen(text), &j, &err))
        fail_msg("bad test JSON: %s: %s\n%s", err.path, err.msg, text);
    return j;
}

/* A prepared device from its JSON; fails the test on error. */
static void device(const char *text, struct dev_model *m)
{
    json_t *j = load(text);
    struct spec_error err = {{0}, {0}};
    if (spec_device_parse(j, "", m, &err))
        fail_msg("device refused: %s: %s", err.path, err.msg);
    json_decref(j);
}

/* A simulate body the device accepts. */
static void sim_ok(const char *dev, const char *body, struct simulate_spec *out)
{
    struct dev_model m;
    device(dev, &m);
    json_t *j = load(body);
    struct spec_error err = {{0}, {0}};
    int rc = spec_simulate_parse(j, &m, out, &err);
    if (rc)
        fail_msg("%s refused (%s): %s: %s", body, qn_err_name(rc), err.path, err.msg);
    json_decref(j);
    dev_model_close(&m);
}

/* A simulate body refused at `path` (and with `msg`, when not NULL). */
static void sim_bad(const char *dev, const char *body, const char *path, const char *msg)
{
    struct dev_model m;
    device(dev, &m);
    json_t *j = load(body);
    struct simulate_spec s;
    struct spec_error err = {{0}, {0}};
    int rc = spec_simulate_parse(j, &m, &s, &err);
    if (rc != QN_ESPEC || strcmp(err.path, path) != 0 || (msg && strcmp(err.msg, msg) != 0))
        fail_msg("%s\n  got %s at '%s': %s\n  expected invalid_spec at '%s'%s%s", body,
                 qn_err_name(rc), err.path, err.msg, path, msg ? ": " : "", msg ? msg : "");
    assert_true(strlen(err.msg) > 0);
    json_decref(j);
    dev_model_close(&m);
}

static void test_simulate_good(void **state)
{
    (void)state;
    struct simulate_spec s;
    sim_ok(CRN, "{\"inputs\": {\"u1\": 0.5}}", &s);
    assert_int_equal(s.curve, 0);
    assert_int_equal(s.max_points, SPEC_SIM_POINTS_DEFAULT);
    assert_true(s.in[0] == 0.5);

    sim_ok(NEAR, "{\"inputs\": {\"u2\": 2, \"u1\": 1}, \"max_points\": 50}", &s);
    assert_true(s.in[0] == 1); /* the device's order, not the body's */
    assert_true(s.in[1] == 2);
    assert_int_equal(s.max_points, 50);

    sim_ok(CRN, "{\"curve\": {\"input\": \"u1\", \"from\": -1, \"to\": 1}}", &s);
    assert_int_equal(s.curve, 1);
    assert_int_equal(s.curve_input, 0);
    assert_int_equal(s.points, SPEC_SIM_CURVE_DEFAULT);
    assert_true(s.from == -1);
    assert_true(s.to == 1);

    sim_ok(NEAR,
           "{\"curve\": {\"input\": \"u2\", \"from\": 0, \"to\": 3, \"points\": 7}, "
           "\"inputs\": {\"u1\": 4}, \"max_points\": 100000}",
           &s);
    assert_int_equal(s.curve_input, 1);
    assert_int_equal(s.points, 7);
    assert_true(s.in[0] == 4);
    assert_int_equal(s.max_points, SPEC_SIM_POINTS_MAX);
}

static void test_simulate_bad(void **state)
{
    (void)state;
    sim_bad(CRN, "{\"colour\": 1}", "/colour", NULL);
    sim_bad(CRN, "{}", "/inputs", "required: an object of the device's inputs, e.g. {\"u1\": 0.5}");
    sim_bad(CRN, "{\"inputs\": 3}", "/inputs", "must be an object of the device's inputs");
    sim_bad(CRN, "{\"inputs\": {\"u9\": 1}}", "/inputs/u9", "the device has no input named 'u9'");
    sim_bad(CRN, "{\"inputs\": {\"u1\": \"a\"}}", "/inputs/u1", NULL);
    sim_bad(NEAR, "{\"inputs\": {\"u1\": 1}}", "/inputs", "missing input 'u2'");
    sim_bad(CRN, "{\"inputs\": {\"u1\": 1}, \"max_points\": 1}", "/max_points", NULL);
    sim_bad(CRN, "{\"inputs\": {\"u1\": 1}, \"max_points\": 100001}", "/max_points", NULL);
    sim_bad(CRN, "{\"inputs\": {\"u1\": 1}, \"max_points\": 2.5}", "/max_points", NULL);
    sim_bad(CRN, "{\"curve\": 5}", "/curve", NULL);
    sim_bad(CRN, "{\"curve\": {\"from\": 0, \"to\": 1}}", "/curve/input", NULL);
    sim_bad(CRN, "{\"curve\": {\"input\": \"u9\", \"from\": 0, \"to\": 1}}", "/curve/input",
            "the device has no input named 'u9'");
    sim_bad(CRN, "{\"curve\": {\"input\": \"u1\", \"to\": 1}}", "/curve/from", NULL);
    sim_bad(CRN, "{\"curve\": {\"input\": \"u1\", \"from\": 0}}", "/curve/to", NULL);
    sim_bad(CRN, "{\"curve\": {\"input\": \"u1\", \"from\": 0, \"to\": 1, \"points\": 1}}",
            "/curve/points", NULL);
    sim_bad(CRN, "{\"curve\": {\"input\": \"u1\", \"from\": 0, \"to\": 1, \"points\": 1001}}",
            "/curve/points", NULL);
    sim_bad(CRN, "{\"curve\": {\"input\": \"u1\", \"from\": 0, \"to\": 1, \"step\": 1}}",
            "/curve/step", NULL);
    /* a curve over u1 still needs u2 */
    sim_bad(NEAR, "{\"curve\": {\"input\": \"u1\", \"from\": 0, \"to\": 1}}", "/inputs", NULL);
    sim_bad(NEAR, "{\"curve\": {\"input\": \"u1\", \"from\": 0, \"to\": 1}, \"inputs\": {}}",
            "/inputs", "missing input 'u2'");
}

/* A predict body refused at `path` (and with `msg`, when not NULL) for n_in inputs. */
static void predict_bad(const char *body, size_t n_in, const char *path, const char *msg)
{
    json_t *j = load(body);
    struct predict_spec p;
    struct spec_error err = {{0}, {0}};
    int rc = spec_predict_parse(j, n_in, &p, &err);
    if (rc != QN_ESPEC || strcmp(err.path, path) != 0 || (msg && strcmp(err.msg, msg) != 0))
        fail_msg("%.80s\n  got %s at '%s': %s\n  expected invalid_spec at '%s'%s%s", body,
                 qn_err_name(rc), err.path, err.msg, path, msg ? ": " : "", msg ? msg : "");
    assert_null(p.x);
    json_decref(j);
}

static void test_predict_good(void **state)
{
    (void)state;
    json_t *j = load("{\"rows\": [[1, 2.5], [-3, 1e10], [0.1, -0]]}");
    struct predict_spec p;
    struct spec_error err = {{0}, {0}};
    assert_int_equal(spec_predict_parse(j, 2, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_int_equal(p.d, 2);
    const float want[6] = {1.0f, 2.5f, -3.0f, 1e10f, 0.1f, 0.0f}; /* raw: not standardised */
    for (int i = 0; i < 6; i++)
        assert_true(p.x[i] == want[i]);
    spec_predict_close(&p);
    assert_null(p.x);
    json_decref(j);
    j = load("{\"rows\": [[1]]}");
    assert_int_equal(spec_predict_parse(j, 0, &p, &err), QN_EINVAL);
    json_decref(j);
}

static void test_predict_bad(void **state)
{
    (void)state;
    predict_bad("{\"row\": []}", 2, "/row", NULL);
    predict_bad("{}", 2, "/rows", "required: a non-empty array of rows of 2 numbers");
    predict_bad("{\"rows\": []}", 2, "/rows", NULL);
    predict_bad("{\"rows\": 5}", 2, "/rows", NULL);
    predict_bad("{\"rows\": [[1, 2], [1]]}", 2, "/rows/1",
                "must be an array of 2 numbers (the model's inputs)");
    predict_bad("{\"rows\": [[1, 2], \"x\"]}", 2, "/rows/1", NULL);
    predict_bad("{\"rows\": [[1, \"a\"]]}", 2, "/rows/0/1", NULL);
    predict_bad("{\"rows\": [[1e39, 0]]}", 2, "/rows/0/0", "must fit in a float");
    predict_bad("{\"rows\": [[0, 0], [0, null]]}", 2, "/rows/1/1", NULL);
    /* one row more than allowed */
    size_t cap = 16 + (SPEC_PREDICT_ROWS_MAX + 1) * 4;
    char *many = malloc(cap);
    assert_non_null(many);
    size_t len = (size_t)snprintf(many, cap, "{\"rows\": [");
    for (int i = 0; i <= SPEC_PREDICT_ROWS_MAX; i++)
        len += (size_t)snprintf(many + len, cap - len, "%s[0]", i ? "," : "");
    snprintf(many + len, cap - len, "]}");
    predict_bad(many, 1, "/rows", "at most 1024 rows per request");
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulate_good),
        cmocka_unit_test(test_simulate_bad),
        cmocka_unit_test(test_predict_good),
        cmocka_unit_test(test_predict_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
