/*
 * spec_train.c: the "spec" object of a train job (a network of device
 * layers, loss, optimizer, schedule) into struct train_spec.
 *
 * Everything checkable without the store is checked here: layer counts and
 * widths, via names, a surrogate for the vias that need one, optimizer
 * fields that belong to the chosen optimizer. An inline device is parsed
 * and prepared (so its expression errors come back with their path under
 * /spec/network/N/device) and its kind and readout are checked against the
 * via; the prepared model is released again and the runner parses
 * device.inline_obj itself. A device named by reference is checked by the
 * runner once resolved (net_set_via refuses the same combinations).
 */
#include <math.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))
#define SPEC__N_VIAS 4
#define SPEC__LR_MIN 1e-30
#define SPEC__LR_MAX 1e3

static const char *const spec__train_fields[] = {
    "dataset", "network", "loss", "optimizer", "epochs", "batch", "seed", "checkpoint_every",
    "calibrate"};
static const char *const spec__layer_fields[] = {"devices", "device", "via", "surrogate"};
static const char *const spec__optim_fields[] = {"name",  "lr",  "momentum",     "beta1",
                                                 "beta2", "eps", "weight_decay", "decoupled"};

/* ---- network layers ---- */

/* An inline device at `p` (".../device") must suit `via` (checked at `vp`). */
static int spec__inline_device(const json_t *obj, const char *p, const char *vp,
                               enum net_via via, int via_given, struct spec_error *err)
{
    struct dev_model m;
    int rc = spec_device_parse(obj, p, &m, err);
    if (rc)
        return rc;
    char dp[SPEC_PATH_MAX];
    spec_path_key(dp, sizeof dp, p, "drive");
    if (m.drive == DRIVE_FULL)
        rc = spec_fail(err, dp, "network layers need drive dot or dot_sq, not full");
    else if (via == VIA_EXACT && dev_is_ode(&m))
        rc = spec_fail(err, vp,
                       "%s\"exact\" needs an analytic device (neuron, almost_neuron); a %s "
                       "device trains via surrogate, device or physics_aware",
                       via_given ? "" : "defaults to \"exact\" (no surrogate given), but ",
                       dev_kind_name(m.kind));
    else if (via == VIA_DEVICE && !dev_is_differentiable(&m))
        rc = spec_fail(err, vp,
                       "the %s readout cannot be differentiated; train via surrogate or "
                       "physics_aware",
                       dev_readout_name(m.readout.kind));
    dev_model_close(&m);
    return rc;
}

/* "via" at path p (default: surrogate when a surrogate is given, else exact). */
static int spec__via(const json_t *v, const char *p, int has_sur, enum net_via *out,
                     struct spec_error *err)
{
    *out = has_sur ? VIA_SURROGATE : VIA_EXACT;
    if (!v)
        return 0;
    const char *names[SPEC__N_VIAS];
    for (int i = 0; i < SPEC__N_VIAS; i++)
        names[i] = net_via_name((enum net_via)i);
    int x;
    int rc = spec_get_enum(v, p, names, SPEC__N_VIAS, &x, err);
    if (!rc)
        *out = (enum net_via)x;
    return rc;
}

/* Layer i of "network". */
static int spec__layer(const json_t *v, size_t i, struct train_layer_spec *L,
                       struct spec_error *err)
{
    char base[SPEC_PATH_MAX], p[SPEC_PATH_MAX], vp[SPEC_PATH_MAX];
    spec_path_index(base, sizeof base, "/spec/network", i);
    int rc = spec_check_fields(v, base, spec__layer_fields, SPEC__N(spec__layer_fields), err);
    if (rc)
        return rc;
    const json_t *x;
    int64_t n;
    spec_path_key(p, sizeof p, base, "devices");
    if (!(x = json_object_get(v, "devices")))
        return spec_fail(err, p, "is required");
    if ((rc = spec_get_int(x, p, 1, SPEC_DEVICES_MAX, &n, err)))
        return rc;
    L->devices = (size_t)n;
    spec_path_key(p, sizeof p, base, "surrogate");
    if ((x = json_object_get(v, "surrogate"))) {
        if ((rc = spec_ref_parse(x, p, 0, &L->surrogate, err)))
            return rc;
        L->has_surrogate = 1;
    }
    spec_path_key(vp, sizeof vp, base, "via");
    if ((rc = spec__via(json_object_get(v, "via"), vp, L->has_surrogate, &L->via, err)))
        return rc;
    if ((L->via == VIA_SURROGATE || L->via == VIA_PHYSICS_AWARE) && !L->has_surrogate)
        return spec_fail(err, p, "required for via %s", net_via_name(L->via));
    spec_path_key(p, sizeof p, base, "device");
    if (!(x = json_object_get(v, "device")))
        return spec_fail(err, p, "is required");
    if ((rc = spec_ref_parse(x, p, 1, &L->device, err)))
        return rc;
    if (L->device.kind == REF_INLINE)
        return spec__inline_device(L->device.inline_obj, p, vp, L->via,
                                   json_object_get(v, "via") != NULL, err);
    return 0;
}

/* "network": 1..NET_MAX_LAYERS layers. */
static int spec__network(const json_t *v, struct train_spec *t, struct spec_error *err)
{
    if (!v)
        return spec_fail(err, "/spec/network", "is required");
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > NET_MAX_LAYERS)
        return spec_fail(err, "/spec/network", "must be an array of 1 to %d layers",
                         NET_MAX_LAYERS);
    for (size_t i = 0; i < n; i++) {
        t->n_layers = i + 1; /* so a failure closes what this layer holds */
        int rc = spec__layer(json_array_get(v, i), i, &t->layers[i], err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- optimizer ---- */

/* A field of "optimizer" that only `kind` has. */
static int spec__optim_only(const json_t *v, const char *key, enum optim_kind has,
                            enum optim_kind kind, struct spec_error *err)
{
    if (kind == has || !json_object_get(v, key))
        return 0;
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, "/spec/optimizer", key);
    return spec_fail(err, p, "applies only to the %s optimizer", optim_name(has));
}

/* Number field `key` of "optimizer" into *out when present; lo <= x < hi
 * (hi_open) or lo <= x <= hi, with lo exclusive when lo_open. */
static int spec__optim_num(const json_t *v, const char *key, double lo, int lo_open, double hi,
                           int hi_open, double *out, struct spec_error *err)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, "/spec/optimizer", key);
    double d;
    int rc = spec_get_number(x, p, &d, err);
    if (rc)
        return rc;
    if ((lo_open ? d <= lo : d < lo) || (hi_open ? d >= hi : d > hi))
        return spec_fail(err, p, "must be a number in %c%g, %g%c", lo_open ? '(' : '[', lo, hi,
                         hi_open ? ')' : ']');
    *out = d;
    return 0;
}

/* "optimizer": an object, or just its name. */
static int spec__optimizer(const json_t *v, struct optim_config *c, struct spec_error *err)
{
    const char *names[] = {optim_name(OPTIM_SGD), optim_name(OPTIM_ADAM)};
    int k = OPTIM_ADAM, rc;
    if (json_is_string(v)) {
        if ((rc = spec_get_enum(v, "/spec/optimizer", names, 2, &k, err)))
            return rc;
        optim_config_default(c, (enum optim_kind)k);
        return 0;
    }
    if (!json_is_object(v))
        return spec_fail(err, "/spec/optimizer", "must be \"adam\", \"sgd\" or an object");
    if ((rc = spec_check_fields(v, "/spec/optimizer", spec__optim_fields,
                                SPEC__N(spec__optim_fields), err)))
        return rc;
    const json_t *x = json_object_get(v, "name");
    if (x && (rc = spec_get_enum(x, "/spec/optimizer/name", names, 2, &k, err)))
        return rc;
    enum optim_kind kind = (enum optim_kind)k;
    optim_config_default(c, kind);
    if ((rc = spec__optim_only(v, "momentum", OPTIM_SGD, kind, err)) ||
        (rc = spec__optim_only(v, "beta1", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "beta2", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "eps", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "decoupled", OPTIM_ADAM, kind, err)))
        return rc;
    if ((rc = spec__optim_num(v, "lr", 0, 1, SPEC__LR_MAX, 0, &c->lr, err)) ||
        (rc = spec__optim_num(v, "momentum", 0, 0, 1, 1, &c->momentum, err)) ||
        (rc = spec__optim_num(v, "beta1", 0, 0, 1, 1, &c->beta1, err)) ||
        (rc = spec__optim_num(v, "beta2", 0, 0, 1, 1, &c->beta2, err)) ||
        (rc = spec__optim_num(v, "eps", 0, 1, 1, 0, &c->eps, err)) ||
        (rc = spec__optim_num(v, "weight_decay", 0, 0, 1e3, 0, &c->weight_decay, err)))
        return rc;
    if (c->lr < SPEC__LR_MIN)
        return spec_fail(err, "/spec/optimizer/lr", "must be a number in (0, %g]", SPEC__LR_MAX);
    if ((x = json_object_get(v, "decoupled"))) {
        if (!json_is_boolean(x))
            return spec_fail(err, "/spec/optimizer/decoupled", "must be true or false");
        c->decoupled = json_is_true(x);
    }
    return 0;
}

/* ---- schedule ---- */

/* "loss", "epochs", "batch", "seed", "checkpoint_every", "calibrate". */
static int spec__schedule(const json_t *spec, struct train_spec *t, struct spec_error *err)
{
    const json_t *v;
    int rc;
    if ((v = json_object_get(spec, "loss"))) {
        const char *names[] = {train_loss_name(LOSS_MSE), train_loss_name(LOSS_CROSS_ENTROPY)};
        int x;
        if ((rc = spec_get_enum(v, "/spec/loss", names, 2, &x, err)))
            return rc;
        t->train.loss = (enum loss_kind)x;
    }
    struct {
        const char *key, *path;
        int64_t lo, hi;
    } f[] = {{"epochs", "/spec/epochs", 1, SPEC_EPOCHS_MAX},
             {"batch", "/spec/batch", 1, SPEC_BATCH_MAX},
             {"seed", "/spec/seed", 0, INT64_MAX},
             {"checkpoint_every", "/spec/checkpoint_every", 0, SPEC_EPOCHS_MAX}};
    for (size_t i = 0; i < SPEC__N(f); i++) {
        int64_t x;
        if (!(v = json_object_get(spec, f[i].key)))
            continue;
        if ((rc = spec_get_int(v, f[i].path, f[i].lo, f[i].hi, &x, err)))
            return rc;
        switch (i) {
        case 0: t->train.epochs = (size_t)x; break;
        case 1: t->train.batch = (size_t)x; break;
        case 2: t->train.seed = (uint64_t)x; break;
        default: t->train.checkpoint_every = (size_t)x; break;
        }
    }
    if ((v = json_object_get(spec, "calibrate"))) {
        if (!json_is_boolean(v))
            return spec_fail(err, "/spec/calibrate", "must be true or false");
        t->calibrate = json_is_true(v);
    }
    return 0;
}

static void spec__train_defaults(struct train_spec *t)
{
    memset(t, 0, sizeof *t);
    optim_config_default(&t->optim, OPTIM_ADAM);
    t->train.loss = LOSS_CROSS_ENTROPY;
    t->train.epochs = 5;
    t->train.batch = 128;
    t->train.seed = 1;
    t->train.checkpoint_every = 1;
    t->calibrate = 1;
}

int spec_train_parse(const json_t *spec, struct train_spec *out, struct spec_error *err)
{
    spec__train_defaults(out);
    int rc = spec_check_fields(spec, "/spec", spec__train_fields, SPEC__N(spec__train_fields),
                               err);
    if (rc)
        return rc;
    const json_t *ds = json_object_get(spec, "dataset");
    if (!ds)
        return spec_fail(err, "/spec/dataset", "is required");
    if ((rc = spec_dataset_parse(ds, "/spec/dataset", &out->dataset, err)))
        return rc;
    const json_t *opt = json_object_get(spec, "optimizer");
    if ((rc = spec__network(json_object_get(spec, "network"), out, err)) ||
        (opt && (rc = spec__optimizer(opt, &out->optim, err))) ||
        (rc = spec__schedule(spec, out, err)))
        spec_train_close(out);
    return rc;
}

void spec_train_close(struct train_spec *t)
{
    if (!t)
        return;
    spec_dataset_close(&t->dataset);
    for (size_t i = 0; i < t->n_layers && i < NET_MAX_LAYERS; i++) {
        spec_ref_close(&t->layers[i].device);
        spec_ref_close(&t->layers[i].surrogate);
    }
    t->n_layers = 0;
}
