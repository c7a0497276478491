/*
 * spec_simulate.c: the body of POST /v1/devices/{id}/simulate into struct
 * simulate_spec.
 *
 * Unlike a job spec, the body is read against a device that is already
 * prepared (the route loads it first): its inputs are named by the device
 * ("u1", "x2", "a1", ...), so every name is checked here and the values land
 * in the device's input order, ready for dev_eval and dev_trajectory.
 */
#include <string.h>

#include "qn_err.h"
#include "spec.h"

/* The index of m's input called `name`, or dev_n_inputs(m) when it has none. */
static size_t spec__sim_input(const struct dev_model *m, const char *name)
{
    size_t n = dev_n_inputs(m), i = 0;
    for (; i < n; i++) {
        char have[DEV_NAME_MAX];
        dev_input_name(m, i, have, sizeof have);
        if (strcmp(have, name) == 0)
            break;
    }
    return i;
}

/* Reads the inputs object at `path`: every input of the device by name, but
 * input skip_i when skip (the one a curve varies). */
static int spec__sim_inputs(const json_t *obj, const char *path, const struct dev_model *m,
                            int skip, size_t skip_i, double *in, struct spec_error *e)
{
    if (!json_is_object(obj))
        return spec_fail(e, path, "must be an object of the device's inputs");
    size_t n = dev_n_inputs(m);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        char p[SPEC_PATH_MAX];
        spec_path_key(p, sizeof p, path, key);
        size_t i = spec__sim_input(m, key);
        if (i == n)
            return spec_fail(e, p, "the device has no input named '%s'", key);
        if (spec_get_number(v, p, &in[i], e))
            return QN_ESPEC;
    }
    for (size_t i = 0; i < n; i++) {
        char name[DEV_NAME_MAX];
        dev_input_name(m, i, name, sizeof name);
        if (!(skip && i == skip_i) && !json_object_get(obj, name))
            return spec_fail(e, path, "missing input '%s'", name);
    }
    return 0;
}

/* Parses {"curve": {"input", "from", "to", "points"}}. */
static int spec__sim_curve(const json_t *c, const struct dev_model *m, struct simulate_spec *sim,
                           struct spec_error *e)
{
    static const char *const fields[] = {"input", "from", "to", "points"};
    if (spec_check_fields(c, "/curve", fields, 4, e))
        return QN_ESPEC;
    const char *input = NULL;
    int64_t pts = SPEC_SIM_CURVE_DEFAULT;
    if (spec_get_string(json_object_get(c, "input"), "/curve/input", DEV_NAME_MAX - 1, &input, e))
        return QN_ESPEC;
    size_t i = spec__sim_input(m, input);
    if (i == dev_n_inputs(m))
        return spec_fail(e, "/curve/input", "the device has no input named '%s'", input);
    if (spec_get_number(json_object_get(c, "from"), "/curve/from", &sim->from, e) ||
        spec_get_number(json_object_get(c, "to"), "/curve/to", &sim->to, e))
        return QN_ESPEC;
    if (json_object_get(c, "points") &&
        spec_get_int(json_object_get(c, "points"), "/curve/points", 2, SPEC_SIM_CURVE_MAX, &pts, e))
        return QN_ESPEC;
    sim->curve = 1;
    sim->curve_input = i;
    sim->points = (size_t)pts;
    return 0;
}

int spec_simulate_parse(const json_t *body, const struct dev_model *m, struct simulate_spec *out,
                        struct spec_error *err)
{
    static const char *const fields[] = {"inputs", "max_points", "curve"};
    memset(out, 0, sizeof *out);
    out->max_points = SPEC_SIM_POINTS_DEFAULT;
    if (spec_check_fields(body, "", fields, 3, err))
        return QN_ESPEC;
    const json_t *mp = json_object_get(body, "max_points"), *c = json_object_get(body, "curve");
    int64_t v;
    if (mp) {
        if (spec_get_int(mp, "/max_points", 2, SPEC_SIM_POINTS_MAX, &v, err))
            return QN_ESPEC;
        out->max_points = (size_t)v;
    }
    if (c && spec__sim_curve(c, m, out, err))
        return QN_ESPEC;
    const json_t *in = json_object_get(body, "inputs");
    if (!in && dev_n_inputs(m) == (out->curve ? 1u : 0u))
        return 0;
    if (!in)
        return spec_fail(err, "/inputs",
                         "required: an object of the device's inputs, e.g. {\"u1\": 0.5}");
    return spec__sim_inputs(in, "/inputs", m, out->curve, out->curve_input, out->in, err);
}
