/*
 * spec_fit.c: the "spec" object of a fit job (an MLP surrogate of a sweep
 * dataset) into struct fit_spec.
 *
 * Defaults come from fit_config_default, so the engine stays the one place
 * that knows them; schema/fit.schema.json documents the same numbers and
 * tests/schema/test_spec_jobs.c checks that the two agree.
 */
#include <math.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))
#define SPEC__N_ACTS 5
#define SPEC__LR_MIN 1e-30 /* stays a nonzero float */
#define SPEC__LR_MAX 1e3

static const char *const spec__fit_fields[] = {"dataset", "hidden",     "activation",
                                               "epochs",  "batch",      "lr",
                                               "validation", "patience", "seed"};

/* "hidden": 1..FIT_MAX_HIDDEN widths, each 1..SPEC_HIDDEN_MAX. */
static int spec__hidden(const json_t *v, struct fit_config *c, struct spec_error *err)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > FIT_MAX_HIDDEN)
        return spec_fail(err, "/spec/hidden", "must be an array of 1 to %d layer widths",
                         FIT_MAX_HIDDEN);
    char p[SPEC_PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        int64_t w;
        spec_path_index(p, sizeof p, "/spec/hidden", i);
        int rc = spec_get_int(json_array_get(v, i), p, 1, SPEC_HIDDEN_MAX, &w, err);
        if (rc)
            return rc;
        c->hidden[i] = (size_t)w;
    }
    c->n_hidden = n;
    return 0;
}

/* "activation": one of the act.h names. */
static int spec__activation(const json_t *v, struct fit_config *c, struct spec_error *err)
{
    const char *names[SPEC__N_ACTS];
    for (int i = 0; i < SPEC__N_ACTS; i++)
        names[i] = act_name((enum act_kind)i);
    int x;
    int rc = spec_get_enum(v, "/spec/activation", names, SPEC__N_ACTS, &x, err);
    if (!rc)
        c->act = (enum act_kind)x;
    return rc;
}

/* "lr": a learning rate in [1e-30, 1e3]. */
static int spec__lr(const json_t *v, struct fit_config *c, struct spec_error *err)
{
    double lr;
    int rc = spec_get_number(v, "/spec/lr", &lr, err);
    if (rc)
        return rc;
    if (!(lr >= SPEC__LR_MIN && lr <= SPEC__LR_MAX))
        return spec_fail(err, "/spec/lr", "must be a number > 0 and at most %g", SPEC__LR_MAX);
    c->lr = (float)lr;
    return 0;
}

/* "epochs", "batch", "patience", "seed": integers with their ranges. */
static int spec__fit_counts(const json_t *spec, struct fit_config *c, struct spec_error *err)
{
    struct {
        const char *key, *path;
        int64_t lo, hi;
    } f[] = {{"epochs", "/spec/epochs", 1, SPEC_EPOCHS_MAX},
             {"batch", "/spec/batch", 1, SPEC_BATCH_MAX},
             {"patience", "/spec/patience", 1, SPEC_EPOCHS_MAX},
             {"seed", "/spec/seed", 0, INT64_MAX}};
    for (size_t i = 0; i < SPEC__N(f); i++) {
        const json_t *v = json_object_get(spec, f[i].key);
        int64_t x;
        if (!v)
            continue;
        int rc = spec_get_int(v, f[i].path, f[i].lo, f[i].hi, &x, err);
        if (rc)
            return rc;
        switch (i) {
        case 0: c->epochs = (size_t)x; break;
        case 1: c->batch = (size_t)x; break;
        case 2: c->patience = (size_t)x; break;
        default: c->seed = (uint64_t)x; break;
        }
    }
    return 0;
}

/* Every field but the dataset. */
static int spec__fit_cfg(const json_t *spec, struct fit_config *c, struct spec_error *err)
{
    const json_t *v;
    int rc;
    if ((v = json_object_get(spec, "hidden")) && (rc = spec__hidden(v, c, err)))
        return rc;
    if ((v = json_object_get(spec, "activation")) && (rc = spec__activation(v, c, err)))
        return rc;
    if ((v = json_object_get(spec, "lr")) && (rc = spec__lr(v, c, err)))
        return rc;
    if ((v = json_object_get(spec, "validation"))) {
        double x = json_is_number(v) ? json_number_value(v) : NAN;
        if (!(x > 0.0 && x <= 0.5))
            return spec_fail(err, "/spec/validation", "must be a number in (0, 0.5]");
        c->validation = x;
    }
    return spec__fit_counts(spec, c, err);
}

int spec_fit_parse(const json_t *spec, struct fit_spec *out, struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    fit_config_default(&out->cfg);
    int rc = spec_check_fields(spec, "/spec", spec__fit_fields, SPEC__N(spec__fit_fields), err);
    if (rc)
        return rc;
    const json_t *ds = json_object_get(spec, "dataset");
    if (!ds)
        return spec_fail(err, "/spec/dataset", "is required");
    if ((rc = spec_dataset_parse(ds, "/spec/dataset", &out->dataset, err)))
        return rc;
    if ((rc = spec__fit_cfg(spec, &out->cfg, err)))
        spec_fit_close(out);
    return rc;
}

void spec_fit_close(struct fit_spec *f)
{
    if (f)
        spec_dataset_close(&f->dataset);
}
