/*
 * spec_device.c: a device object (DESIGN.md "Specs by example") into a
 * prepared struct dev_model.
 *
 * The parser works in two passes. This file checks the JSON itself: types,
 * unknown fields, which fields each kind may have, names and counts against
 * the limits of device.h, and fills the struct over dev_model_init's
 * defaults. dev_model_prepare then checks the physics (expressions compile,
 * reaction species exist, readout fits the kind) and its errors are mapped
 * back to JSON paths ("rhs/y" becomes "/spec/device/rhs/y"). The defaults are
 * documented in device.schema.json; tests/schema/test_spec.c checks that the
 * two agree.
 *
 * Trade-off: the fields are a table {name, kinds allowed, parser}, walked in
 * table order, so that a field's parser can rely on the fields before it
 * (params after drive, rhs after state) and "only for kind ode" errors come
 * from data rather than a chain of ifs.
 */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))
#define K(kind) (1u << (kind))
#define K_ALL (K(DEV_NEURON) | K(DEV_ALMOST_NEURON) | K_ODE)
#define K_ODE (K(DEV_CRN_RELU) | K(DEV_HODGKIN_HUXLEY) | K(DEV_ODE) | K(DEV_REACTIONS))

#define SPEC__N_KINDS 6
#define SPEC__N_DRIVES 3
#define SPEC__N_READOUTS 6
#define SPEC__N_CYCLES 2
#define SPEC__N_METHODS 3
#define SPEC__N_ACTS 5

typedef int (*spec__field_fn)(const json_t *v, const char *path, struct dev_model *d,
                              struct spec_error *err);

/* One field of a device object: who may have it and who parses it. */
struct spec__field {
    const char *name;     /* JSON key */
    unsigned kinds;       /* bit K(kind) set when the kind may have this field */
    spec__field_fn parse; /* fills d from the value; NULL for "name"/"kind" */
};

/* ---- small helpers ---- */

/* A state, species or parameter name: an identifier that fits DEV_NAME_MAX. */
static int spec__ident(const char *key, const char *path, struct spec_error *err)
{
    size_t n = strlen(key);
    int ok = n > 0 && n < DEV_NAME_MAX && (isalpha((unsigned char)key[0]) || key[0] == '_');
    for (size_t i = 1; ok && i < n; i++)
        ok = isalnum((unsigned char)key[i]) || key[i] == '_';
    if (ok)
        return 0;
    return spec_fail(err, path,
                     "must be a name of 1 to %d letters, digits or underscores, not starting "
                     "with a digit",
                     DEV_NAME_MAX - 1);
}

/* A number in (0, max]. */
static int spec__positive(const json_t *v, const char *path, double max, double *out,
                          struct spec_error *err)
{
    int rc = spec_get_number(v, path, out, err);
    if (rc)
        return rc;
    if (!(*out > 0) || *out > max)
        return spec_fail(err, path, "must be a number > 0 and <= %g", max);
    return 0;
}

/* A number in [0, max]. */
static int spec__non_negative(const json_t *v, const char *path, double max, double *out,
                              struct spec_error *err)
{
    int rc = spec_get_number(v, path, out, err);
    if (rc)
        return rc;
    if (!(*out >= 0) || *out > max)
        return spec_fail(err, path, "must be a number >= 0 and <= %g", max);
    return 0;
}

/* An owned copy of a non-empty source string of at most SPEC_SRC_MAX bytes. */
static int spec__source(const json_t *v, const char *path, char **out, struct spec_error *err)
{
    const char *s;
    int rc = spec_get_string(v, path, SPEC_SRC_MAX, &s, err);
    if (rc)
        return rc;
    free(*out);
    if (!(*out = strdup(s))) {
        spec_fail(err, path, "out of memory");
        return QN_ENOMEM;
    }
    return 0;
}

/* "only for kind ode", "only for kinds ode and reactions", ... from a kind mask. */
static int spec__only_for(unsigned kinds, const char *path, struct spec_error *err)
{
    char list[160] = "";
    size_t used = 0, n = 0, total = 0;
    for (int k = 0; k < SPEC__N_KINDS; k++)
        total += (kinds & K(k)) != 0;
    for (int k = 0; k < SPEC__N_KINDS && used < sizeof list; k++) {
        if (!(kinds & K(k)))
            continue;
        n++;
        const char *sep = n == 1 ? "" : n == total ? " and " : ", ";
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", sep,
                                 dev_kind_name((enum dev_kind)k));
    }
    return spec_fail(err, path, "only for kind%s %s", total > 1 ? "s" : "", list);
}

/* Index of name in the model's states, or n_states when absent. */
static size_t spec__state_index(const struct dev_model *d, const char *name)
{
    size_t i = 0;
    while (i < d->n_states && strcmp(d->state_names[i], name) != 0)
        i++;
    return i;
}

/* Nonzero when `name` is one of the device's inputs (u1, x3, a3, ...). */
static int spec__is_input(const struct dev_model *d, const char *name)
{
    char buf[DEV_NAME_MAX];
    for (size_t i = 0; i < dev_n_inputs(d); i++) {
        dev_input_name(d, i, buf, sizeof buf);
        if (strcmp(buf, name) == 0)
            return 1;
    }
    return 0;
}

/* Enum names from a name function, for spec_get_enum. */
static int spec__enum(const json_t *v, const char *path, const char *(*name_of)(int), int n,
                      int *out, struct spec_error *err)
{
    const char *names[8];
    assert(n > 0 && n <= 8);
    for (int i = 0; i < n; i++)
        names[i] = name_of(i);
    return spec_get_enum(v, path, names, (size_t)n, out, err);
}

static const char *spec__kind_name(int k) { return dev_kind_name((enum dev_kind)k); }
static const char *spec__drive_name(int k) { return dev_drive_name((enum dev_drive)k); }
static const char *spec__readout_name(int k) { return dev_readout_name((enum dev_readout_kind)k); }
static const char *spec__method_name(int k) { return dev_method_name((enum dev_method)k); }
static const char *spec__cycles_name(int k) { return dev_cycles_name((enum dev_cycles)k); }
static const char *spec__act_name(int k) { return act_name((enum act_kind)k); }

/* ---- field parsers, in table order ---- */

static int spec__fan_in(const json_t *v, const char *path, struct dev_model *d,
                        struct spec_error *err)
{
    if (d->drive != DRIVE_FULL)
        return spec_fail(err, path, "only for drive full");
    int64_t k;
    int rc = spec_get_int(v, path, 1, DEV_MAX_FANIN, &k, err);
    d->fan_in = (int)k;
    return rc;
}

/* A user-defined name (ode, reactions) that expressions could not tell from
 * something else: the time "t", a function, a drive input, a state. */
static int spec__name_clash(const struct dev_model *d, const char *key, const char *p,
                            int is_param, struct spec_error *err)
{
    static const char *const reserved[] = {"t",   "exp", "log", "sqrt", "sin",
                                           "cos", "tanh", "pow", "min",  "max"};
    for (size_t i = 0; i < SPEC__N(reserved); i++)
        if (strcmp(key, reserved[i]) == 0)
            return spec_fail(err, p, "'%s' is reserved (time or a function)", key);
    if (spec__is_input(d, key))
        return spec_fail(err, p, "clashes with the drive input of the same name");
    if (is_param && spec__state_index(d, key) < d->n_states)
        return spec_fail(err, p, "clashes with the %s of the same name",
                         d->kind == DEV_REACTIONS ? "species" : "state");
    return 0;
}

/* An object of name -> number into names/values (states or species). */
static int spec__named_values(const json_t *v, const char *path, int non_negative,
                              struct dev_model *d, struct spec_error *err)
{
    if (!json_is_object(v))
        return spec_fail(err, path, "must be an object of name -> number");
    size_t n = json_object_size(v);
    if (n == 0 || n > DEV_MAX_STATES)
        return spec_fail(err, path, "must have 1 to %d entries", DEV_MAX_STATES);
    const char *key;
    json_t *val;
    char p[SPEC_PATH_MAX];
    int rc;
    d->n_states = 0;
    json_object_foreach((json_t *)v, key, val) {
        spec_path_key(p, sizeof p, path, key);
        if ((rc = spec__ident(key, p, err)) || (rc = spec__name_clash(d, key, p, 0, err)) ||
            (rc = spec_get_number(val, p, &d->y0[d->n_states], err)))
            return rc;
        if (non_negative && d->y0[d->n_states] < 0)
            return spec_fail(err, p, "must be an amount >= 0");
        memcpy(d->state_names[d->n_states], key, strlen(key) + 1);
        d->n_states++;
    }
    return 0;
}

static int spec__state(const json_t *v, const char *path, struct dev_model *d,
                       struct spec_error *err)
{
    return spec__named_values(v, path, 0, d, err);
}

static int spec__species(const json_t *v, const char *path, struct dev_model *d,
                         struct spec_error *err)
{
    return spec__named_values(v, path, 1, d, err);
}

/* The string parameter "activation" of neuron and almost_neuron. */
static int spec__activation(const json_t *v, const char *path, struct dev_model *d,
                            struct spec_error *err)
{
    int x, rc = spec__enum(v, path, spec__act_name, SPEC__N_ACTS, &x, err);
    d->activation = (enum act_kind)x;
    return rc;
}

/* Nonzero when a built-in kind has a parameter named `key`: the string
 * "activation" and "eps" (fields of the model), or one that dev_model_init
 * gave a default (kappa, gain, b, the Hodgkin-Huxley constants). */
static int spec__builtin_param(const struct dev_model *d, const char *key)
{
    double unused;
    int neuron = d->kind == DEV_NEURON || d->kind == DEV_ALMOST_NEURON;
    if (neuron && strcmp(key, "activation") == 0)
        return 1;
    if (d->kind == DEV_ALMOST_NEURON && strcmp(key, "eps") == 0)
        return 1;
    return dev_model_param(d, key, &unused) == 0;
}

/* One entry of "params" at path p. */
static int spec__param(const char *key, const json_t *val, const char *p, struct dev_model *d,
                       struct spec_error *err)
{
    int user = d->kind == DEV_ODE || d->kind == DEV_REACTIONS;
    if (!user && !spec__builtin_param(d, key))
        return spec_fail(err, p, "unknown parameter for kind %s", dev_kind_name(d->kind));
    if (!user && strcmp(key, "activation") == 0)
        return spec__activation(val, p, d, err);
    int rc = spec__ident(key, p, err);
    double x;
    if (rc || (rc = spec_get_number(val, p, &x, err)))
        return rc;
    if (d->kind == DEV_CRN_RELU && strcmp(key, "kappa") == 0 && !(x > 0))
        return spec_fail(err, p, "must be > 0");
    if (user && (rc = spec__name_clash(d, key, p, 1, err)))
        return rc;
    if (d->kind == DEV_ALMOST_NEURON && strcmp(key, "eps") == 0) {
        d->eps = x;
        return 0;
    }
    if (dev_model_set_param(d, key, x))
        return spec_fail(err, p, "too many parameters (at most %d)", DEV_MAX_PARAMS);
    return 0;
}

static int spec__params(const json_t *v, const char *path, struct dev_model *d,
                        struct spec_error *err)
{
    if (!json_is_object(v))
        return spec_fail(err, path, "must be an object of name -> number");
    if (json_object_size(v) > DEV_MAX_PARAMS)
        return spec_fail(err, path, "must have at most %d entries", DEV_MAX_PARAMS);
    const char *key;
    json_t *val;
    char p[SPEC_PATH_MAX];
    json_object_foreach((json_t *)v, key, val) {
        spec_path_key(p, sizeof p, path, key);
        int rc = spec__param(key, val, p, d, err);
        if (rc)
            return rc;
    }
    return 0;
}

static int spec__rhs(const json_t *v, const char *path, struct dev_model *d,
                     struct spec_error *err)
{
    if (!json_is_object(v))
        return spec_fail(err, path, "must be an object of state name -> expression");
    const char *key;
    json_t *val;
    char p[SPEC_PATH_MAX];
    json_object_foreach((json_t *)v, key, val) {
        spec_path_key(p, sizeof p, path, key);
        size_t i = spec__state_index(d, key);
        if (i == d->n_states)
            return spec_fail(err, p, "no state named '%s'", key);
        int rc = spec__source(val, p, &d->rhs_src[i], err);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < d->n_states; i++)
        if (!d->rhs_src[i])
            return spec_fail(err, path, "missing the right-hand side of state '%s'",
                             d->state_names[i]);
    return 0;
}

static int spec__output(const json_t *v, const char *path, struct dev_model *d,
                        struct spec_error *err)
{
    return spec__source(v, path, &d->output_src, err);
}

static int spec__reactions(const json_t *v, const char *path, struct dev_model *d,
                           struct spec_error *err)
{
    if (!json_is_array(v))
        return spec_fail(err, path, "must be an array of reaction strings");
    size_t n = json_array_size(v);
    if (n == 0 || n > DEV_MAX_REACTIONS)
        return spec_fail(err, path, "must have 1 to %d reactions", DEV_MAX_REACTIONS);
    char p[SPEC_PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        spec_path_index(p, sizeof p, path, i);
        int rc = spec__source(json_array_get(v, i), p, &d->reaction_src[i], err);
        if (rc)
            return rc;
        d->n_reactions = i + 1;
    }
    return 0;
}

static const char *const spec__readout_fields[] = {"kind", "t_max", "tol", "threshold",
                                                   "transient", "cycles"};

static int spec__readout(const json_t *v, const char *path, struct dev_model *d,
                         struct spec_error *err)
{
    int rc = spec_check_fields(v, path, spec__readout_fields, SPEC__N(spec__readout_fields), err);
    const json_t *f;
    char p[SPEC_PATH_MAX];
    if (!rc && (f = json_object_get(v, "kind"))) {
        int x;
        spec_path_key(p, sizeof p, path, "kind");
        rc = spec__enum(f, p, spec__readout_name, SPEC__N_READOUTS, &x, err);
        d->readout.kind = (enum dev_readout_kind)x;
    }
    if (!rc && (f = json_object_get(v, "t_max"))) {
        spec_path_key(p, sizeof p, path, "t_max");
        rc = spec__positive(f, p, SPEC_T_MAX, &d->readout.t_max, err);
    }
    if (!rc && (f = json_object_get(v, "tol"))) {
        spec_path_key(p, sizeof p, path, "tol");
        rc = spec__positive(f, p, 1.0, &d->readout.tol, err);
    }
    if (!rc && (f = json_object_get(v, "threshold"))) {
        spec_path_key(p, sizeof p, path, "threshold");
        rc = spec_get_number(f, p, &d->readout.threshold, err);
    }
    if (!rc && (f = json_object_get(v, "transient"))) {
        spec_path_key(p, sizeof p, path, "transient");
        rc = spec_get_number(f, p, &d->readout.transient, err);
        d->readout.transient_set = 1;
    }
    if (!rc && (f = json_object_get(v, "cycles"))) {
        int x;
        spec_path_key(p, sizeof p, path, "cycles");
        rc = spec__enum(f, p, spec__cycles_name, SPEC__N_CYCLES, &x, err);
        if (!rc)
            d->readout.cycles = (enum dev_cycles)x;
    }
    return rc;
}

static const char *const spec__solver_fields[] = {"method", "rtol", "atol", "h0", "max_steps"};

static int spec__solver(const json_t *v, const char *path, struct dev_model *d,
                        struct spec_error *err)
{
    int rc = spec_check_fields(v, path, spec__solver_fields, SPEC__N(spec__solver_fields), err);
    const json_t *f;
    char p[SPEC_PATH_MAX];
    if (!rc && (f = json_object_get(v, "method"))) {
        int x;
        spec_path_key(p, sizeof p, path, "method");
        rc = spec__enum(f, p, spec__method_name, SPEC__N_METHODS, &x, err);
        d->solver.method = (enum dev_method)x;
    }
    if (!rc && (f = json_object_get(v, "rtol"))) {
        spec_path_key(p, sizeof p, path, "rtol");
        rc = spec__non_negative(f, p, 1.0, &d->solver.rtol, err);
    }
    if (!rc && (f = json_object_get(v, "atol"))) {
        spec_path_key(p, sizeof p, path, "atol");
        rc = spec__non_negative(f, p, 1.0, &d->solver.atol, err);
    }
    if (!rc && (f = json_object_get(v, "h0"))) {
        spec_path_key(p, sizeof p, path, "h0");
        rc = spec__positive(f, p, SPEC_T_MAX, &d->solver.h0, err);
    }
    if (!rc && (f = json_object_get(v, "max_steps"))) {
        int64_t n;
        spec_path_key(p, sizeof p, path, "max_steps");
        rc = spec_get_int(f, p, 1, SPEC_MAX_STEPS, &n, err);
        d->solver.max_steps = (size_t)n;
    }
    return rc;
}

/* ---- variability and noise ---- */

static const char *const spec__spread_fields[] = {"dist", "cv"};
static const char *const spec__dist_names[] = {"normal", "lognormal", "uniform"};

/* One entry of "variability" at path p: {"dist": ..., "cv": ...} for parameter `key`. */
static int spec__spread(const char *key, const json_t *v, const char *p, struct dev_model *d,
                        struct spec_error *err)
{
    char q[SPEC_PATH_MAX];
    size_t i = 0;
    while (i < d->n_params && strcmp(d->param_names[i], key) != 0)
        i++;
    if (!dev_param_can_vary(d, key))
        return spec_fail(err, p, "no parameter '%s' that can vary for kind %s (a named "
                         "parameter of the device; hodgkin_huxley's v0 only sets the start)",
                         key, dev_kind_name(d->kind));
    int rc = spec_check_fields(v, p, spec__spread_fields, SPEC__N(spec__spread_fields), err);
    int x;
    const json_t *f;
    for (size_t k = 0; !rc && k < SPEC__N(spec__spread_fields); k++) {
        spec_path_key(q, sizeof q, p, spec__spread_fields[k]);
        if (!json_object_get(v, spec__spread_fields[k]))
            return spec_fail(err, q, "is required");
    }
    if (!rc) {
        spec_path_key(q, sizeof q, p, "dist");
        f = json_object_get(v, "dist");
        rc = spec_get_enum(f, q, spec__dist_names, SPEC__N(spec__dist_names), &x, err);
        d->vary[i].dist = (enum dev_dist)(x + 1);
    }
    if (!rc) {
        spec_path_key(q, sizeof q, p, "cv");
        rc = spec__non_negative(json_object_get(v, "cv"), q, DEV_CV_MAX, &d->vary[i].cv, err);
    }
    return rc;
}

static int spec__variability(const json_t *v, const char *path, struct dev_model *d,
                             struct spec_error *err)
{
    if (!json_is_object(v))
        return spec_fail(err, path, "must be an object of parameter name -> {dist, cv}");
    const char *key;
    json_t *val;
    char p[SPEC_PATH_MAX];
    json_object_foreach((json_t *)v, key, val) {
        spec_path_key(p, sizeof p, path, key);
        int rc = spec__spread(key, val, p, d, err);
        if (rc)
            return rc;
    }
    return 0;
}

static const char *const spec__noise_fields[] = {"output", "drive"};
static const char *const spec__sd_fields[] = {"sd"};

/* noise.output or noise.drive: {"sd": x >= 0} into *sd. */
static int spec__noise_sd(const json_t *v, const char *path, double *sd, struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    int rc = spec_check_fields(v, path, spec__sd_fields, 1, err);
    const json_t *f = rc ? NULL : json_object_get(v, "sd");
    spec_path_key(p, sizeof p, path, "sd");
    if (!rc && !f)
        return spec_fail(err, p, "is required");
    return rc ? rc : spec__non_negative(f, p, SPEC_NOISE_SD_MAX, sd, err);
}

static int spec__noise(const json_t *v, const char *path, struct dev_model *d,
                       struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    int rc = spec_check_fields(v, path, spec__noise_fields, SPEC__N(spec__noise_fields), err);
    const json_t *f;
    if (!rc && (f = json_object_get(v, "output"))) {
        spec_path_key(p, sizeof p, path, "output");
        rc = spec__noise_sd(f, p, &d->noise.output_sd, err);
    }
    if (!rc && (f = json_object_get(v, "drive"))) {
        spec_path_key(p, sizeof p, path, "drive");
        rc = spec__noise_sd(f, p, &d->noise.drive_sd, err);
        if (!rc && d->drive == DRIVE_FULL && d->noise.drive_sd > 0)
            return spec_fail(err, p, "only for drives dot and dot_sq (a full device forms "
                             "its drive inside)");
    }
    return rc;
}

/* Table order is parse order: fan_in before params (inputs), state before rhs.
 * name, kind and drive (parse NULL) are read first, by spec__head. */
static const struct spec__field spec__fields[] = {
    {"name", K_ALL, NULL},
    {"kind", K_ALL, NULL},
    {"drive", K_ALL, NULL},
    {"fan_in", K_ALL, spec__fan_in},
    {"state", K(DEV_ODE), spec__state},
    {"species", K(DEV_REACTIONS), spec__species},
    {"params", K_ALL, spec__params},
    {"rhs", K(DEV_ODE), spec__rhs},
    {"output", K(DEV_ODE) | K(DEV_REACTIONS), spec__output},
    {"reactions", K(DEV_REACTIONS), spec__reactions},
    {"readout", K_ODE, spec__readout},
    {"solver", K_ODE, spec__solver},
    {"variability", K_ALL, spec__variability}, /* after params: it names them */
    {"noise", K_ALL, spec__noise},
};

/* ---- the device object ---- */

/* "kind" (required), which dev_model_init's *d; then "name" and "drive". On
 * failure *d owns nothing either way (dev_model_init allocates nothing). */
static int spec__head(const json_t *obj, const char *path, struct dev_model *d,
                      struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    const json_t *v = json_object_get(obj, "kind");
    int x, rc;
    spec_path_key(p, sizeof p, path, "kind");
    if (!v)
        return spec_fail(err, p, "is required");
    if ((rc = spec__enum(v, p, spec__kind_name, SPEC__N_KINDS, &x, err)))
        return rc;
    dev_model_init(d, (enum dev_kind)x);
    if ((v = json_object_get(obj, "drive"))) {
        spec_path_key(p, sizeof p, path, "drive");
        if ((rc = spec__enum(v, p, spec__drive_name, SPEC__N_DRIVES, &x, err)))
            return rc;
        d->drive = (enum dev_drive)x;
    }
    if ((v = json_object_get(obj, "name"))) {
        const char *s;
        spec_path_key(p, sizeof p, path, "name");
        if ((rc = spec_get_string(v, p, sizeof d->name - 1, &s, err)))
            return rc;
        memcpy(d->name, s, strlen(s) + 1);
    }
    return 0;
}

/* Fields a kind or drive cannot do without. */
static int spec__required(const json_t *obj, const char *path, const struct dev_model *d,
                          struct spec_error *err)
{
    const char *need[2] = {NULL, NULL};
    if (d->kind == DEV_ODE) {
        need[0] = "state";
        need[1] = "rhs";
    } else if (d->kind == DEV_REACTIONS) {
        need[0] = "species";
        need[1] = "reactions";
    }
    char p[SPEC_PATH_MAX];
    for (int i = 0; i < 2; i++) {
        if (need[i] && !json_object_get(obj, need[i])) {
            spec_path_key(p, sizeof p, path, need[i]);
            return spec_fail(err, p, "is required for kind %s", dev_kind_name(d->kind));
        }
    }
    if (d->drive == DRIVE_FULL && !json_object_get(obj, "fan_in")) {
        spec_path_key(p, sizeof p, path, "fan_in");
        return spec_fail(err, p, "is required for drive full");
    }
    return 0;
}

/* Every field but name and kind, in table order. */
static int spec__body(const json_t *obj, const char *path, struct dev_model *d,
                      struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    for (size_t i = 0; i < SPEC__N(spec__fields); i++) {
        const struct spec__field *f = &spec__fields[i];
        const json_t *v = json_object_get(obj, f->name);
        if (!v || !f->parse)
            continue;
        spec_path_key(p, sizeof p, path, f->name);
        if (!(f->kinds & K(d->kind)))
            return spec__only_for(f->kinds, p, err);
        int rc = f->parse(v, p, d, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* The documented "output" defaults: the first state; the only species. */
static int spec__output_default(const char *path, struct dev_model *d, struct spec_error *err)
{
    if (d->output_src || (d->kind != DEV_ODE && d->kind != DEV_REACTIONS))
        return 0;
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, path, "output");
    if (d->kind == DEV_REACTIONS && d->n_states > 1)
        return spec_fail(err, p, "is required when there is more than one species");
    if (!(d->output_src = strdup(d->state_names[0]))) {
        spec_fail(err, p, "out of memory");
        return QN_ENOMEM;
    }
    return 0;
}

/* dev_model_prepare, its error field mapped under `path`. */
static int spec__prepare(const char *path, struct dev_model *d, struct spec_error *err)
{
    struct dev_error derr;
    memset(&derr, 0, sizeof derr);
    int rc = dev_model_prepare(d, &derr);
    if (!rc)
        return 0;
    char p[SPEC_PATH_MAX];
    if (derr.field[0])
        snprintf(p, sizeof p, "%s/%s", path, derr.field);
    else
        snprintf(p, sizeof p, "%s", path);
    spec_fail(err, p, "%s", derr.msg[0] ? derr.msg : qn_err_msg(rc));
    return rc;
}

int spec_device_parse(const json_t *obj, const char *path, struct dev_model *out,
                      struct spec_error *err)
{
    const char *names[SPEC__N(spec__fields)];
    for (size_t i = 0; i < SPEC__N(spec__fields); i++)
        names[i] = spec__fields[i].name;
    memset(out, 0, sizeof *out);
    int rc = spec_check_fields(obj, path, names, SPEC__N(names), err);
    if (!rc)
        rc = spec__head(obj, path, out, err);
    if (rc)
        return rc; /* nothing allocated yet */
    rc = spec__required(obj, path, out, err);
    if (!rc)
        rc = spec__body(obj, path, out, err);
    if (!rc)
        rc = spec__output_default(path, out, err);
    if (!rc)
        rc = spec__prepare(path, out, err);
    if (rc)
        dev_model_close(out);
    return rc;
}
