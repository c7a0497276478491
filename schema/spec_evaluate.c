/*
 * spec_evaluate.c: the "spec" object of an evaluate job (a trained model
 * scored on a dataset split, optionally with some layers computed another
 * way) into struct evaluate_spec.
 *
 * "via" and "surrogates" are objects keyed by layer index. The keys are
 * checked here to be plain decimal indices below NET_MAX_LAYERS; whether
 * the model has that many layers, and whether the device of a layer can be
 * computed that way, only the runner knows once the model is loaded.
 */
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))
#define SPEC__N_VIAS 4

static const char *const spec__eval_fields[] = {"model", "dataset",    "split", "via",
                                                "surrogates", "seed", "chip", "chips",
                                                "noise"};
static const char *const spec__chips_fields[] = {"count", "seed"};
static const char *const spec__split_names[] = {"test", "train", "all"};

const char *spec_split_name(enum spec_split s)
{
    return (unsigned)s < SPEC__N(spec__split_names) ? spec__split_names[s] : "?";
}

/* A layer index key: "0".."15", decimal, no sign or leading zero. Returns
 * the index, or -1. */
static int spec__layer_key(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 2 || (n == 2 && key[0] == '0'))
        return -1;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (key[i] < '0' || key[i] > '9')
            return -1;
        x = x * 10 + (key[i] - '0');
    }
    return x < NET_MAX_LAYERS ? x : -1;
}

/* Checks that `obj` at `path` is an object keyed by layer indices. */
static int spec__layer_keys(const json_t *obj, const char *path, struct spec_error *err)
{
    if (!json_is_object(obj))
        return spec_fail(err, path, "must be an object keyed by layer index (\"0\", \"1\", ...)");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        if (spec__layer_key(key) < 0) {
            char p[SPEC_PATH_MAX];
            spec_path_key(p, sizeof p, path, key);
            return spec_fail(err, p, "must be a layer index from 0 to %d", NET_MAX_LAYERS - 1);
        }
    }
    return 0;
}

/* "via": {"<layer>": via name}, kept in the spec's order. */
static int spec__eval_via(const json_t *obj, struct evaluate_spec *e, struct spec_error *err)
{
    int rc = spec__layer_keys(obj, "/spec/via", err);
    if (rc)
        return rc;
    const char *names[SPEC__N_VIAS];
    for (int i = 0; i < SPEC__N_VIAS; i++)
        names[i] = net_via_name((enum net_via)i);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        char p[SPEC_PATH_MAX];
        int x;
        spec_path_key(p, sizeof p, "/spec/via", key);
        if ((rc = spec_get_enum(val, p, names, SPEC__N_VIAS, &x, err)))
            return rc;
        e->via_layer[e->n_via] = (size_t)spec__layer_key(key);
        e->via[e->n_via] = (enum net_via)x;
        e->n_via++;
    }
    return 0;
}

/* "surrogates": {"<layer>": surrogate reference}. */
static int spec__eval_surrogates(const json_t *obj, struct evaluate_spec *e,
                                 struct spec_error *err)
{
    int rc = spec__layer_keys(obj, "/spec/surrogates", err);
    if (rc)
        return rc;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        char p[SPEC_PATH_MAX];
        int l = spec__layer_key(key);
        spec_path_key(p, sizeof p, "/spec/surrogates", key);
        if ((rc = spec_ref_parse(val, p, 0, &e->surrogate[l], err)))
            return rc;
        e->has_surrogate[l] = 1;
    }
    return 0;
}

/* "chips": {"count": 1..SPEC_CHIPS_MAX, "seed": S >= 0 (default 0)}. */
static int spec__eval_chips(const json_t *v, struct evaluate_spec *e, struct spec_error *err)
{
    int64_t x;
    int rc = spec_check_fields(v, "/spec/chips", spec__chips_fields,
                               SPEC__N(spec__chips_fields), err);
    const json_t *f;
    if (!rc && !(f = json_object_get(v, "count")))
        return spec_fail(err, "/spec/chips/count", "is required");
    if (!rc && !(rc = spec_get_int(f, "/spec/chips/count", 1, SPEC_CHIPS_MAX, &x, err)))
        e->chips = (size_t)x;
    if (!rc && (f = json_object_get(v, "seed")) &&
        !(rc = spec_get_int(f, "/spec/chips/seed", 0, INT64_MAX, &x, err)))
        e->chips_seed = (uint64_t)x;
    return rc;
}

/* "chip", "chips" (not both) and "noise" (default: on when either is given). */
static int spec__eval_population(const json_t *spec, struct evaluate_spec *e,
                                 struct spec_error *err)
{
    const json_t *v;
    int rc;
    int64_t x;
    if ((v = json_object_get(spec, "chip"))) {
        if ((rc = spec_get_int(v, "/spec/chip", 0, INT64_MAX, &x, err)))
            return rc;
        e->has_chip = 1;
        e->chip = (uint64_t)x;
    }
    if ((v = json_object_get(spec, "chips"))) {
        if (e->has_chip)
            return spec_fail(err, "/spec/chips", "give \"chip\" (one chip) or \"chips\" "
                                                 "(several), not both");
        if ((rc = spec__eval_chips(v, e, err)))
            return rc;
    }
    e->noise = e->has_chip || e->chips > 0;
    if ((v = json_object_get(spec, "noise"))) {
        if (!json_is_boolean(v))
            return spec_fail(err, "/spec/noise", "must be true or false");
        e->noise = json_is_true(v);
    }
    return 0;
}

/* "split", "via", "surrogates", "seed". */
static int spec__eval_options(const json_t *spec, struct evaluate_spec *e,
                              struct spec_error *err)
{
    const json_t *v;
    int rc, x;
    if ((v = json_object_get(spec, "split"))) {
        if ((rc = spec_get_enum(v, "/spec/split", spec__split_names,
                                SPEC__N(spec__split_names), &x, err)))
            return rc;
        e->split = (enum spec_split)x;
    }
    if ((v = json_object_get(spec, "via")) && (rc = spec__eval_via(v, e, err)))
        return rc;
    if ((v = json_object_get(spec, "surrogates")) && (rc = spec__eval_surrogates(v, e, err)))
        return rc;
    if ((v = json_object_get(spec, "seed"))) {
        int64_t s;
        if ((rc = spec_get_int(v, "/spec/seed", 0, INT64_MAX, &s, err)))
            return rc;
        e->has_seed = 1;
        e->seed = (uint64_t)s;
    }
    return spec__eval_population(spec, e, err);
}

int spec_evaluate_parse(const json_t *spec, struct evaluate_spec *out, struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    out->split = SPLIT_TEST;
    int rc = spec_check_fields(spec, "/spec", spec__eval_fields, SPEC__N(spec__eval_fields),
                               err);
    if (rc)
        return rc;
    const json_t *v;
    if (!(v = json_object_get(spec, "model")))
        return spec_fail(err, "/spec/model", "is required");
    if ((rc = spec_ref_parse(v, "/spec/model", 0, &out->model, err)))
        return rc;
    if (!(v = json_object_get(spec, "dataset")))
        rc = spec_fail(err, "/spec/dataset", "is required");
    else if (!(rc = spec_dataset_parse(v, "/spec/dataset", &out->dataset, err)))
        rc = spec__eval_options(spec, out, err);
    if (rc)
        spec_evaluate_close(out);
    return rc;
}

void spec_evaluate_close(struct evaluate_spec *e)
{
    if (!e)
        return;
    spec_ref_close(&e->model);
    spec_dataset_close(&e->dataset);
    for (size_t i = 0; i < NET_MAX_LAYERS; i++)
        spec_ref_close(&e->surrogate[i]);
}
