/*
 * spec_dataset.c: dataset references with their options, shared by the fit,
 * train and evaluate parsers ("dataset" fields).
 *
 * A dataset is named by an id, a name, {"job": N} (a sweep's output), or an
 * object {"id" | "job" | "name": ..., options}. The options say which
 * columns to use (CSV and sweep datasets), how to hold out a test part, how
 * many rows to keep, and how the built-in generators draw their points.
 *
 * Trade-off: built-in names are reserved words here, so options that only
 * make sense for one kind of dataset ("noise" for a generator, "inputs" for
 * a table) are refused at parse time for the built-ins. For stored datasets
 * (ids, other names, jobs) the column names can only be checked once the
 * runner has loaded the table.
 */
#include <math.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))

static const char *const spec__dataset_fields[] = {
    "id",         "job",     "name",  "inputs", "label", "target", "test_fraction",
    "limit",      "test_limit", "samples", "noise", "arms"};

/* The built-ins, in the order of spec_dataset_builtin's indices; the logic
 * gates are generators of the four corners of {0,1}^2. */
static const char *const spec__builtins[] = {"fashion-mnist", "xor",  "sine", "spirals",
                                             "and",           "or",   "nand", "nor",
                                             "xnor",          "lotka_volterra"};
static const char *const spec__gates[] = {"and", "or", "nand", "nor", "xor", "xnor"};

const char *spec_dataset_builtin(size_t i)
{
    return i < SPEC__N(spec__builtins) ? spec__builtins[i] : NULL;
}

const char *spec_dataset_builtin_list(void)
{
    return "fashion-mnist, xor, sine, spirals, and, or, nand, nor, xnor, lotka_volterra";
}

int spec_dataset_is_builtin(const char *name)
{
    for (size_t i = 0; i < SPEC__N(spec__builtins); i++)
        if (strcmp(name, spec__builtins[i]) == 0)
            return 1;
    return 0;
}

/* Is `name` one of the logic gates ("and", ..., "xnor")? */
static int spec__is_gate(const char *name)
{
    for (size_t i = 0; i < SPEC__N(spec__gates); i++)
        if (strcmp(name, spec__gates[i]) == 0)
            return 1;
    return 0;
}

/* Is the reference a generator (every built-in but fashion-mnist)? */
static int spec__is_generator(const struct dataset_spec *d)
{
    return d->ref.kind == REF_NAME && spec_dataset_is_builtin(d->ref.name) &&
           strcmp(d->ref.name, "fashion-mnist") != 0;
}

/* Defaults that depend on the name: generator sizes and noise. */
static void spec__dataset_defaults(struct dataset_spec *d)
{
    d->test_fraction = 0.2;
    d->arms = 2;
    if (!spec__is_generator(d))
        return;
    d->samples = spec__is_gate(d->ref.name) ? 0 : 1000;
    d->noise = strcmp(d->ref.name, "spirals") == 0 ? 0.1 : 0.0;
}

/* The reference part of an object form: exactly one of "id", "job", "name". */
static int spec__dataset_ref(const json_t *v, const char *path, struct spec_ref *r,
                             struct spec_error *err)
{
    static const char *const keys[] = {"id", "job", "name"};
    const char *found = NULL;
    char p[SPEC_PATH_MAX];
    for (size_t i = 0; i < SPEC__N(keys); i++) {
        if (!json_object_get(v, keys[i]))
            continue;
        spec_path_key(p, sizeof p, path, keys[i]);
        if (found)
            return spec_fail(err, p, "give only one of \"id\", \"job\" and \"name\"");
        found = keys[i];
    }
    if (!found)
        return spec_fail(err, path, "must name a dataset with \"id\", \"job\" or \"name\"");
    spec_path_key(p, sizeof p, path, found);
    const json_t *x = json_object_get(v, found);
    int rc;
    if (found[0] == 'n') {
        const char *s;
        if ((rc = spec_get_string(x, p, sizeof r->name - 1, &s, err)))
            return rc;
        r->kind = REF_NAME;
        memcpy(r->name, s, strlen(s) + 1);
    } else {
        if ((rc = spec_get_int(x, p, 1, INT64_MAX, &r->id, err)))
            return rc;
        r->kind = found[0] == 'i' ? REF_ID : REF_JOB;
    }
    r->inline_obj = json_incref((json_t *)v);
    return 0;
}

/* A column name (1..SPEC_COLUMN_MAX - 1 bytes) into out. */
static int spec__column(const json_t *v, const char *path, char *out, struct spec_error *err)
{
    const char *s;
    int rc = spec_get_string(v, path, SPEC_COLUMN_MAX - 1, &s, err);
    if (!rc)
        memcpy(out, s, strlen(s) + 1);
    return rc;
}

/* "inputs": 1..64 distinct column names. */
static int spec__inputs(const json_t *v, const char *path, struct dataset_spec *d,
                        struct spec_error *err)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > SPEC_DATASET_MAX_INPUTS)
        return spec_fail(err, path, "must be an array of 1 to %d column names",
                         SPEC_DATASET_MAX_INPUTS);
    char p[SPEC_PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        spec_path_index(p, sizeof p, path, i);
        int rc = spec__column(json_array_get(v, i), p, d->inputs[i], err);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(d->inputs[j], d->inputs[i]) == 0)
                return spec_fail(err, p, "column '%s' is listed twice", d->inputs[i]);
    }
    d->n_inputs = n;
    return 0;
}

/* "inputs", "label", "target": which columns of a table. */
static int spec__columns(const json_t *v, const char *path, struct dataset_spec *d,
                         struct spec_error *err)
{
    static const char *const keys[] = {"inputs", "label", "target"};
    char p[SPEC_PATH_MAX];
    int rc;
    for (size_t i = 0; i < SPEC__N(keys); i++) {
        if (d->ref.kind == REF_NAME && spec_dataset_is_builtin(d->ref.name) &&
            json_object_get(v, keys[i])) {
            spec_path_key(p, sizeof p, path, keys[i]);
            return spec_fail(err, p, "the built-in dataset '%s' has no named columns",
                             d->ref.name);
        }
    }
    const json_t *x;
    spec_path_key(p, sizeof p, path, "inputs");
    if ((x = json_object_get(v, "inputs")) && (rc = spec__inputs(x, p, d, err)))
        return rc;
    spec_path_key(p, sizeof p, path, "label");
    if ((x = json_object_get(v, "label")) && (rc = spec__column(x, p, d->label, err)))
        return rc;
    spec_path_key(p, sizeof p, path, "target");
    if ((x = json_object_get(v, "target"))) {
        if (d->label[0])
            return spec_fail(err, p, "give either \"label\" or \"target\", not both");
        if ((rc = spec__column(x, p, d->target, err)))
            return rc;
    }
    const char *y = d->label[0] ? d->label : d->target;
    for (size_t i = 0; y[0] && i < d->n_inputs; i++) {
        if (strcmp(d->inputs[i], y) == 0) {
            char q[SPEC_PATH_MAX];
            spec_path_key(q, sizeof q, path, "inputs");
            spec_path_index(p, sizeof p, q, i);
            return spec_fail(err, p, "'%s' is the %s column, not an input", y,
                             d->label[0] ? "label" : "target");
        }
    }
    return 0;
}

/* "test_fraction" in (0, 1), "limit", "test_limit" >= 0. */
static int spec__rows(const json_t *v, const char *path, struct dataset_spec *d,
                      struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    const json_t *x;
    int rc;
    int64_t n;
    spec_path_key(p, sizeof p, path, "test_fraction");
    if ((x = json_object_get(v, "test_fraction"))) {
        if (!json_is_number(x) || !(json_number_value(x) > 0.0 && json_number_value(x) < 1.0))
            return spec_fail(err, p, "must be a number in (0, 1)");
        d->test_fraction = json_number_value(x);
    }
    spec_path_key(p, sizeof p, path, "limit");
    if ((x = json_object_get(v, "limit"))) {
        if ((rc = spec_get_int(x, p, 0, INT64_MAX, &n, err)))
            return rc;
        d->limit = (size_t)n;
    }
    spec_path_key(p, sizeof p, path, "test_limit");
    if ((x = json_object_get(v, "test_limit"))) {
        if ((rc = spec_get_int(x, p, 0, INT64_MAX, &n, err)))
            return rc;
        d->test_limit = (size_t)n;
    }
    return 0;
}

/* Which generators an option belongs to. */
enum spec__gen_set { SPEC__GEN_ALL, SPEC__GEN_NOISY, SPEC__GEN_SPIRALS };

/* A generator option `key` must belong to one of the generators of `set`. */
static int spec__gen_only(const json_t *v, const char *path, const char *key,
                          const struct dataset_spec *d, enum spec__gen_set set,
                          struct spec_error *err)
{
    static const char *const which[] = {
        "s and, or, nand, nor, xor, xnor, sine, spirals and lotka_volterra",
        "s and, or, nand, nor, xor, xnor and spirals", " spirals"};
    if (!json_object_get(v, key))
        return 0;
    if (spec__is_generator(d)) {
        int spirals = strcmp(d->ref.name, "spirals") == 0;
        if (set == SPEC__GEN_ALL || spirals || (set == SPEC__GEN_NOISY && spec__is_gate(d->ref.name)))
            return 0;
    }
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, path, key);
    return spec_fail(err, p, "applies only to the built-in generator%s", which[set]);
}

/* "samples", "noise", "arms": generator options. */
static int spec__generator(const json_t *v, const char *path, struct dataset_spec *d,
                           struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    const json_t *x;
    int64_t n;
    int rc;
    if ((rc = spec__gen_only(v, path, "samples", d, SPEC__GEN_ALL, err)) ||
        (rc = spec__gen_only(v, path, "noise", d, SPEC__GEN_NOISY, err)) ||
        (rc = spec__gen_only(v, path, "arms", d, SPEC__GEN_SPIRALS, err)))
        return rc;
    spec_path_key(p, sizeof p, path, "samples");
    if ((x = json_object_get(v, "samples"))) {
        if ((rc = spec_get_int(x, p, 1, SPEC_DATASET_SAMPLES_MAX, &n, err)))
            return rc;
        d->samples = (size_t)n;
    }
    spec_path_key(p, sizeof p, path, "noise");
    if ((x = json_object_get(v, "noise"))) {
        double z;
        if ((rc = spec_get_number(x, p, &z, err)))
            return rc;
        if (z < 0.0 || z > 1e6)
            return spec_fail(err, p, "must be a number from 0 to 1e6");
        d->noise = z;
    }
    spec_path_key(p, sizeof p, path, "arms");
    if ((x = json_object_get(v, "arms"))) {
        if ((rc = spec_get_int(x, p, 2, 3, &n, err)))
            return rc;
        d->arms = (size_t)n;
    }
    return 0;
}

/* The object form: reference, then options. */
static int spec__dataset_object(const json_t *v, const char *path, struct dataset_spec *d,
                                struct spec_error *err)
{
    int rc = spec_check_fields(v, path, spec__dataset_fields, SPEC__N(spec__dataset_fields),
                               err);
    if (rc || (rc = spec__dataset_ref(v, path, &d->ref, err)))
        return rc;
    spec__dataset_defaults(d);
    if ((rc = spec__columns(v, path, d, err)) || (rc = spec__rows(v, path, d, err)))
        return rc;
    return spec__generator(v, path, d, err);
}

int spec_dataset_parse(const json_t *v, const char *path, struct dataset_spec *out,
                       struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    int rc;
    if (json_is_object(v)) {
        rc = spec__dataset_object(v, path, out, err);
    } else if (json_is_string(v) || json_is_number(v)) {
        rc = spec_ref_parse(v, path, 0, &out->ref, err);
        if (!rc)
            spec__dataset_defaults(out);
    } else {
        rc = spec_fail(err, path,
                       "must be a dataset id, a name, {\"job\": N}, or an object with \"id\", "
                       "\"job\" or \"name\" and options");
    }
    if (rc)
        spec_dataset_close(out);
    return rc;
}

void spec_dataset_close(struct dataset_spec *d)
{
    if (d)
        spec_ref_close(&d->ref);
}
