/*
 * spec_sweep.c: the "spec" object of a sweep job, and binding its ranges to
 * the device once the device is known.
 *
 * Trade-off: parsing and binding are two steps because the device is often a
 * reference (an id or a name) that only the server can resolve; everything
 * that can be checked without the device is checked in spec_sweep_parse, so
 * a malformed submission is refused before anything is looked up.
 */
#include <math.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))
#define SPEC__N_DESIGNS 4

static const char *const spec__sweep_fields[] = {"device", "design", "samples", "seed", "ranges"};

/* One range [lo, hi] at path p into slot i of s. */
static int spec__range(const json_t *v, const char *p, struct sweep_spec *s, size_t i,
                       struct spec_error *err)
{
    const char *msg = "must be [lo, hi]: two finite numbers with lo <= hi";
    if (!json_is_array(v) || json_array_size(v) != 2)
        return spec_fail(err, p, "%s", msg);
    double lo, hi;
    if (spec_get_number(json_array_get(v, 0), p, &lo, err) ||
        spec_get_number(json_array_get(v, 1), p, &hi, err) || lo > hi)
        return spec_fail(err, p, "%s", msg);
    if (fabs(lo) > SPEC_RANGE_ABS_MAX || fabs(hi) > SPEC_RANGE_ABS_MAX)
        return spec_fail(err, p, "bounds must be within +-%g", SPEC_RANGE_ABS_MAX);
    s->lo[i] = lo;
    s->hi[i] = hi;
    return 0;
}

/* "ranges": an object of input name -> [lo, hi], in the spec's order. */
static int spec__ranges(const json_t *v, struct sweep_spec *s, struct spec_error *err)
{
    if (!v)
        return spec_fail(err, "/spec/ranges", "is required");
    if (!json_is_object(v))
        return spec_fail(err, "/spec/ranges", "must be an object of input name -> [lo, hi]");
    size_t n = json_object_size(v);
    if (n == 0 || n > SPEC_MAX_RANGES)
        return spec_fail(err, "/spec/ranges", "must have 1 to %d entries", SPEC_MAX_RANGES);
    const char *key;
    json_t *val;
    char p[SPEC_PATH_MAX];
    json_object_foreach((json_t *)v, key, val) {
        spec_path_key(p, sizeof p, "/spec/ranges", key);
        if (key[0] == '\0' || strlen(key) >= DEV_NAME_MAX)
            return spec_fail(err, p, "must be an input name of 1 to %d bytes", DEV_NAME_MAX - 1);
        int rc = spec__range(val, p, s, s->n_ranges, err);
        if (rc)
            return rc;
        memcpy(s->range_names[s->n_ranges], key, strlen(key) + 1);
        s->n_ranges++;
    }
    return 0;
}

/* "design" (default sobol), "samples" (required), "seed" (default 1). */
static int spec__sampling(const json_t *spec, struct sweep_spec *s, struct spec_error *err)
{
    const json_t *v;
    int rc;
    if ((v = json_object_get(spec, "design"))) {
        const char *names[SPEC__N_DESIGNS];
        int x;
        for (int i = 0; i < SPEC__N_DESIGNS; i++)
            names[i] = design_name((enum design_kind)i);
        if ((rc = spec_get_enum(v, "/spec/design", names, SPEC__N_DESIGNS, &x, err)))
            return rc;
        s->design = (enum design_kind)x;
    }
    if (!(v = json_object_get(spec, "samples")))
        return spec_fail(err, "/spec/samples", "is required");
    int64_t n;
    if ((rc = spec_get_int(v, "/spec/samples", 1, SPEC_SAMPLES_MAX, &n, err)))
        return rc;
    s->samples = (size_t)n;
    if ((v = json_object_get(spec, "seed"))) {
        if ((rc = spec_get_int(v, "/spec/seed", 0, INT64_MAX, &n, err)))
            return rc;
        s->seed = (uint64_t)n;
    }
    return 0;
}

int spec_sweep_parse(const json_t *spec, struct sweep_spec *out, struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    out->design = DESIGN_SOBOL;
    out->seed = 1;
    int rc = spec_check_fields(spec, "/spec", spec__sweep_fields, SPEC__N(spec__sweep_fields),
                               err);
    if (rc)
        return rc;
    const json_t *dev = json_object_get(spec, "device");
    if (!dev)
        return spec_fail(err, "/spec/device", "is required");
    if ((rc = spec_ref_parse(dev, "/spec/device", 1, &out->device, err)))
        return rc;
    rc = spec__sampling(spec, out, err);
    if (!rc)
        rc = spec__ranges(json_object_get(spec, "ranges"), out, err);
    if (rc)
        spec_sweep_close(out);
    return rc;
}

/* Index of range `name` in s, or s->n_ranges when absent. */
static size_t spec__range_index(const struct sweep_spec *s, const char *name)
{
    size_t i = 0;
    while (i < s->n_ranges && strcmp(s->range_names[i], name) != 0)
        i++;
    return i;
}

/* Index of input `name` of d, or dev_n_inputs(d) when d has no such input. */
static size_t spec__input_index(const struct dev_model *d, const char *name)
{
    char in[DEV_NAME_MAX];
    size_t n = dev_n_inputs(d), j = 0;
    for (; j < n; j++) {
        dev_input_name(d, j, in, sizeof in);
        if (strcmp(in, name) == 0)
            break;
    }
    return j;
}

/* Every range names an input of d or a parameter of d that may vary. */
static int spec__ranges_known(const struct sweep_spec *s, const struct dev_model *d,
                              struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    for (size_t i = 0; i < s->n_ranges; i++) {
        const char *name = s->range_names[i];
        if (spec__input_index(d, name) < dev_n_inputs(d))
            continue;
        spec_path_key(p, sizeof p, "/spec/ranges", name);
        if (!dev_param_can_vary(d, name))
            return spec_fail(err, p, "the device has no input or parameter named '%s'", name);
        if (!dev_param_value_ok(d, name, s->lo[i]) || !dev_param_value_ok(d, name, s->hi[i]))
            return spec_fail(err, p, "'%s' cannot take every value of [%g, %g] (it must be "
                             "positive)", name, s->lo[i], s->hi[i]);
    }
    return 0;
}

/* Copies range i of s into slot j of t. */
static void spec__range_move(struct sweep_spec *t, size_t j, const struct sweep_spec *s, size_t i)
{
    memcpy(t->range_names[j], s->range_names[i], sizeof t->range_names[j]);
    t->lo[j] = s->lo[i];
    t->hi[j] = s->hi[i];
}

int spec_sweep_bind(struct sweep_spec *s, const struct dev_model *d, struct spec_error *err)
{
    size_t n = dev_n_inputs(d);
    char name[DEV_NAME_MAX];
    if (n > SPEC_MAX_RANGES)
        return spec_fail(err, "/spec/device", "has more inputs than a sweep can range over");
    int rc = spec__ranges_known(s, d, err);
    if (rc)
        return rc;
    struct sweep_spec tmp = *s;
    for (size_t j = 0; j < n; j++) {
        dev_input_name(d, j, name, sizeof name);
        size_t i = spec__range_index(s, name);
        if (i == s->n_ranges)
            return spec_fail(err, "/spec/ranges", "missing the range of input '%s'", name);
        spec__range_move(&tmp, j, s, i);
    }
    size_t m = n; /* the swept parameters follow, in the device's order */
    for (size_t k = 0; k < d->n_params; k++) {
        size_t i = spec__range_index(s, d->param_names[k]);
        if (i == s->n_ranges || spec__input_index(d, d->param_names[k]) < n)
            continue;
        tmp.param_idx[m - n] = k;
        spec__range_move(&tmp, m++, s, i);
    }
    memcpy(s->range_names, tmp.range_names, sizeof s->range_names);
    memcpy(s->lo, tmp.lo, sizeof s->lo);
    memcpy(s->hi, tmp.hi, sizeof s->hi);
    memcpy(s->param_idx, tmp.param_idx, sizeof s->param_idx);
    s->n_inputs = n;
    return 0;
}

void spec_sweep_close(struct sweep_spec *s)
{
    if (s)
        spec_ref_close(&s->device);
}
