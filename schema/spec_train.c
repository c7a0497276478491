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
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))
#define SPEC__N_VIAS 4
#define SPEC__LR_MIN 1e-30
#define SPEC__LR_MAX 1e3

static const char *const spec__train_fields[] = {
    "dataset", "network", "loss", "optimizer", "epochs", "batch", "seed", "checkpoint_every",
    "calibrate", "adapt", "chip", "hardware_aware", "from"};
/* "surrogate_matched" is written by the server into a stored model's spec
 * (whether the surrogate's fingerprint was the device's); read, not used. */
static const char *const spec__layer_fields[] = {"devices", "device",  "via",
                                                 "surrogate", "twin", "surrogate_matched",
                                                 "connect", "fan_in", "init", "cells",
                                                 "cell_list"};
static const char *const spec__adapt_fields[] = {"after_epochs", "patience",    "grow",
                                                 "prune",        "max_devices", "min_devices",
                                                 "score",        "perturb",
                                                 "min_delta",    "max_cells"};
static const char *const spec__optim_fields[] = {"name",  "lr",  "momentum",     "beta1",
                                                 "beta2", "eps", "weight_decay", "decoupled",
                                                 "population", "sigma"};

/* ---- network layers ---- */

int spec_layer_wiring(const struct train_layer_spec *L, const struct dev_model *m,
                      const char *base, struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, base, "cells");
    if (L->cells == NET_CELLS_EDGE && m->drive != DRIVE_DOT)
        return spec_fail(err, p, "an edge cell is a device of one drive, u = a x + b; this "
                         "device's drive is %s (%s)", dev_drive_name(m->drive),
                         m->drive == DRIVE_FULL ? "a fan-in of inputs" : "two drives");
    if (m->drive != DRIVE_FULL) {
        spec_path_key(p, sizeof p, base, L->has_connect ? "connect" : "fan_in");
        if (L->has_connect || L->fan_in)
            return spec_fail(err, p, "applies only to layers of full devices; this device's "
                             "drive is %s", dev_drive_name(m->drive));
        return 0;
    }
    spec_path_key(p, sizeof p, base, "connect");
    if (!L->has_connect)
        return spec_fail(err, p, "is required for a layer of full devices (\"random\", "
                         "\"local\" or \"tree\")");
    spec_path_key(p, sizeof p, base, "fan_in");
    if (L->fan_in && L->fan_in != (size_t)m->fan_in)
        return spec_fail(err, p, "is %zu but the device's fan_in is %d", L->fan_in, m->fan_in);
    return 0;
}

/* An inline device at `p` (".../device") must suit `via` (checked at `vp`) and the
 * layer's wiring. */
static int spec__inline_device(const json_t *obj, const char *p, const char *vp,
                               const char *base, const struct train_layer_spec *L,
                               int via_given, int es, struct spec_error *err)
{
    struct dev_model m;
    enum net_via via = L->via;
    int rc = spec_device_parse(obj, p, &m, err);
    if (rc)
        return rc;
    rc = spec_layer_wiring(L, &m, base, err);
    if (rc == 0 && via == VIA_EXACT && dev_is_ode(&m))
        rc = spec_fail(err, vp,
                       "%s\"exact\" needs an analytic device (neuron, almost_neuron); a %s "
                       "device trains via surrogate, device or physics_aware",
                       via_given ? "" : "defaults to \"exact\" (no surrogate given), but ",
                       dev_kind_name(m.kind));
    else if (rc == 0 && via == VIA_DEVICE && !dev_is_differentiable(&m) && !es)
        rc = spec_fail(err, vp,
                       "the %s readout cannot be differentiated; train via surrogate or "
                       "physics_aware, or with the es optimizer",
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

/* "connect" and "fan_in" of a layer (checked against its device later). */
static int spec__layer_wiring(const json_t *v, const char *base, struct train_layer_spec *L,
                              struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    const json_t *x;
    int rc;
    if ((x = json_object_get(v, "connect"))) {
        const char *names[] = {net_connect_name(NET_CONNECT_RANDOM),
                               net_connect_name(NET_CONNECT_LOCAL),
                               net_connect_name(NET_CONNECT_TREE)};
        int c;
        spec_path_key(p, sizeof p, base, "connect");
        if ((rc = spec_get_enum(x, p, names, 3, &c, err)))
            return rc;
        L->has_connect = 1;
        L->connect = (enum net_connect)c;
    }
    if ((x = json_object_get(v, "fan_in"))) {
        int64_t k;
        spec_path_key(p, sizeof p, base, "fan_in");
        if ((rc = spec_get_int(x, p, 1, DEV_MAX_FANIN, &k, err)))
            return rc;
        L->fan_in = (size_t)k;
    }
    return 0;
}

/* The indices of `key` ("src" or "dst") of "cell_list" at base into a new array. */
static int spec__cell_index(const json_t *v, const char *base, const char *key, size_t n,
                            size_t **out, struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, base, key);
    const json_t *a = json_object_get(v, key);
    if (!json_is_array(a) || json_array_size(a) != n)
        return spec_fail(err, p, "must be an array of %zu cell indices (as many as \"src\")",
                         n);
    if (!(*out = malloc(n * sizeof **out)))
        return spec_fail(err, p, "out of memory"), QN_ENOMEM;
    for (size_t c = 0; c < n; c++) {
        const json_t *x = json_array_get(a, c);
        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
            json_integer_value(x) >= SPEC_DEVICES_MAX)
            return spec_fail(err, p, "entry %zu must be an integer in [0, %d)", c,
                             SPEC_DEVICES_MAX);
        (*out)[c] = (size_t)json_integer_value(x);
    }
    return 0;
}

/* "cells" and "cell_list" of a layer, and "init": "unit", which needs edge cells. */
static int spec__layer_cells(const json_t *v, const char *base, struct train_layer_spec *L,
                             struct spec_error *err)
{
    static const char *const fields[] = {"src", "dst"};
    char p[SPEC_PATH_MAX], lp[SPEC_PATH_MAX];
    const json_t *x = json_object_get(v, "cells"), *list = json_object_get(v, "cell_list");
    const char *names[] = {net_cells_name(NET_CELLS_NODE), net_cells_name(NET_CELLS_EDGE)};
    int k = NET_CELLS_NODE, rc;
    spec_path_key(p, sizeof p, base, "cells");
    if (x && (rc = spec_get_enum(x, p, names, 2, &k, err)))
        return rc;
    L->cells = (enum net_cells)k;
    spec_path_key(p, sizeof p, base, "init");
    if (L->has_init && L->init == NET_INIT_UNIT && L->cells != NET_CELLS_EDGE)
        return spec_fail(err, p, "\"unit\" (every weight 1, every bias 0) applies to edge "
                         "cells only: on a layer of node devices every device would compute "
                         "the same and stay so");
    spec_path_key(lp, sizeof lp, base, "cell_list");
    if (!list)
        return 0;
    if (L->cells != NET_CELLS_EDGE)
        return spec_fail(err, lp, "applies only to a layer of \"cells\": \"edge\"");
    if (!json_is_object(list))
        return spec_fail(err, lp, "must be an object {\"src\": [..], \"dst\": [..]}");
    if ((rc = spec_check_fields(list, lp, fields, 2, err)))
        return rc;
    size_t n = json_array_size(json_object_get(list, "src"));
    spec_path_key(p, sizeof p, lp, "src");
    if (n < 1 || n > NET_MAX_CELLS)
        return spec_fail(err, p, "must be an array of 1 to %zu cell inputs", NET_MAX_CELLS);
    if ((rc = spec__cell_index(list, lp, "src", n, &L->cell_src, err)) ||
        (rc = spec__cell_index(list, lp, "dst", n, &L->cell_dst, err)))
        return rc;
    L->n_cells = n;
    spec_path_key(p, sizeof p, lp, "dst");
    for (size_t c = 0; c < n; c++)
        if (L->cell_dst[c] >= L->devices)
            return spec_fail(err, p, "entry %zu is %zu: the layer has %zu devices", c,
                             L->cell_dst[c], L->devices);
    return 0;
}

/* Layer i of "network". */
static int spec__layer(const json_t *v, size_t i, int es, struct train_layer_spec *L,
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
    if ((rc = spec__layer_wiring(v, base, L, err)))
        return rc;
    spec_path_key(p, sizeof p, base, "init");
    if ((x = json_object_get(v, "init"))) {
        static const char *const inits[] = {"uniform", "normal", "unit"};
        int k;
        if ((rc = spec_get_enum(x, p, inits, 3, &k, err)))
            return rc;
        L->has_init = 1;
        L->init = (enum net_init)k;
    }
    if ((rc = spec__layer_cells(v, base, L, err)))
        return rc;
    spec_path_key(p, sizeof p, base, "surrogate");
    if ((x = json_object_get(v, "surrogate"))) {
        if ((rc = spec_ref_parse(x, p, 0, &L->surrogate, err)))
            return rc;
        L->has_surrogate = 1;
    }
    spec_path_key(p, sizeof p, base, "surrogate_matched");
    if ((x = json_object_get(v, "surrogate_matched")) && !json_is_boolean(x))
        return spec_fail(err, p, "must be true or false");
    spec_path_key(p, sizeof p, base, "twin");
    if ((x = json_object_get(v, "twin"))) {
        if (!json_is_boolean(x))
            return spec_fail(err, p, "must be true or false");
        if (json_is_true(x) && !L->has_surrogate)
            return spec_fail(err, p, "a twin is a surrogate of another device: give \"surrogate\"");
        L->twin = json_is_true(x);
    }
    spec_path_key(p, sizeof p, base, "surrogate");
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
        return spec__inline_device(L->device.inline_obj, p, vp, base, L,
                                   json_object_get(v, "via") != NULL, es, err);
    return 0;
}

/* Whether layer i (with an inline device) is a layer of full devices. */
static int spec__layer_is_full(const struct train_layer_spec *L)
{
    if (L->has_connect || L->fan_in)
        return 1;
    if (L->device.kind != REF_INLINE)
        return 0;
    const char *d = json_string_value(json_object_get(L->device.inline_obj, "drive"));
    return d && strcmp(d, "full") == 0;
}

/* Number field `key` of "adapt" in [lo, hi] into *out when present. */
static int spec__adapt_num(const json_t *v, const char *key, double lo, double hi, int hi_open,
                           double *out, struct spec_error *err)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, "/spec/adapt", key);
    int rc = spec_get_number(x, p, out, err);
    if (rc == 0 && (*out < lo || (hi_open ? *out >= hi : *out > hi)))
        rc = spec_fail(err, p, "must be a number in [%g, %g%c", lo, hi, hi_open ? ')' : ']');
    return rc;
}

/* Integer field `key` of "adapt" in [lo, hi] into *out when present. */
static int spec__adapt_int(const json_t *v, const char *key, int64_t lo, int64_t hi, size_t *out,
                           struct spec_error *err)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    char p[SPEC_PATH_MAX];
    spec_path_key(p, sizeof p, "/spec/adapt", key);
    int64_t n;
    int rc = spec_get_int(x, p, lo, hi, &n, err);
    if (rc == 0)
        *out = (size_t)n;
    return rc;
}

/* The fields of "adapt" into c. */
static int spec__adapt_values(const json_t *v, struct adapt_config *c, struct spec_error *err)
{
    int rc, x;
    const char *names[] = {adapt_score_name(ADAPT_PASSTHROUGH), adapt_score_name(ADAPT_WEIGHT),
                           adapt_score_name(ADAPT_HEBBIAN)};
    const json_t *sc = json_object_get(v, "score");
    if ((rc = spec__adapt_int(v, "after_epochs", 0, SPEC_EPOCHS_MAX, &c->after_epochs, err)) ||
        (rc = spec__adapt_int(v, "patience", 0, SPEC_EPOCHS_MAX, &c->patience, err)) ||
        (rc = spec__adapt_int(v, "max_devices", 1, SPEC_DEVICES_MAX, &c->max_devices, err)) ||
        (rc = spec__adapt_int(v, "min_devices", 1, SPEC_DEVICES_MAX, &c->min_devices, err)) ||
        (rc = spec__adapt_num(v, "grow", 0, 1, 0, &c->grow, err)) ||
        (rc = spec__adapt_num(v, "prune", 0, 1, 1, &c->prune, err)) ||
        (rc = spec__adapt_num(v, "perturb", 0, 1e-3, 0, &c->perturb, err)) ||
        (rc = spec__adapt_num(v, "min_delta", 0, 1, 1, &c->min_delta, err)) ||
        (rc = spec__adapt_int(v, "max_cells", 1, (int64_t)NET_MAX_CELLS, &c->max_cells, err)) ||
        (sc && (rc = spec_get_enum(sc, "/spec/adapt/score", names, 3, &x, err))))
        return rc;
    if (sc)
        c->score = (enum adapt_score)x;
    if (c->min_devices > c->max_devices)
        return spec_fail(err, "/spec/adapt/min_devices", "must not exceed max_devices (%zu)",
                         c->max_devices);
    return 0;
}

/* "adapt": checked against the network (parsed before it). */
static int spec__adapt(const json_t *v, struct train_spec *t, struct spec_error *err)
{
    if (!v)
        return 0;
    if (!json_is_object(v))
        return spec_fail(err, "/spec/adapt", "must be an object");
    int rc = spec_check_fields(v, "/spec/adapt", spec__adapt_fields, SPEC__N(spec__adapt_fields),
                               err);
    struct adapt_config *c = &t->train.adapt;
    adapt_config_default(c);
    c->enabled = 1;
    if (rc || (rc = spec__adapt_values(v, c, err)))
        return rc;
    int edges = 0;
    for (size_t i = 0; i < t->n_layers; i++)
        edges |= t->layers[i].cells == NET_CELLS_EDGE;
    if (t->n_layers < 2 && !edges)
        return spec_fail(err, "/spec/adapt", "needs a hidden layer (a network of 2 or more "
                         "layers) or a layer of edge cells; the last layer's devices never "
                         "adapt");
    char base[SPEC_PATH_MAX], p[SPEC_PATH_MAX];
    for (size_t i = 0; i < t->n_layers; i++) {
        spec_path_index(base, sizeof base, "/spec/network", i);
        if (spec__layer_is_full(&t->layers[i]))
            return spec_fail(err, base, "a layer of full devices has a fixed wiring; \"adapt\" "
                             "needs dot or dot_sq layers");
        size_t w = t->layers[i].devices;
        spec_path_key(p, sizeof p, base, "devices");
        int nodes_adapt = i + 1 < t->n_layers && t->layers[i].cells == NET_CELLS_NODE &&
                          t->layers[i + 1].cells == NET_CELLS_NODE;
        if (nodes_adapt && (w < c->min_devices || w > c->max_devices))
            return spec_fail(err, p, "must be within adapt's min_devices and max_devices "
                             "(%zu to %zu)", c->min_devices, c->max_devices);
    }
    return 0;
}

/* Layer i's cell inputs must be devices of layer i - 1 (layer 0's inputs are the
 * dataset's, checked when the network is built). */
static int spec__cell_inputs(const struct train_spec *t, size_t i, struct spec_error *err)
{
    const struct train_layer_spec *L = &t->layers[i];
    char base[SPEC_PATH_MAX];
    spec_path_index(base, sizeof base, "/spec/network", i);
    for (size_t c = 0; i > 0 && c < L->n_cells; c++)
        if (L->cell_src[c] >= t->layers[i - 1].devices) {
            char lp[SPEC_PATH_MAX], p[SPEC_PATH_MAX];
            spec_path_key(lp, sizeof lp, base, "cell_list");
            spec_path_key(p, sizeof p, lp, "src");
            return spec_fail(err, p, "entry %zu is %zu: layer %zu has %zu devices", c,
                             L->cell_src[c], i - 1, t->layers[i - 1].devices);
        }
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
        int rc = spec__layer(json_array_get(v, i), i, t->optim.kind == OPTIM_ES, &t->layers[i],
                             err);
        if (rc || (rc = spec__cell_inputs(t, i, err)))
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

/* The es optimizer's "population" (even: antithetic pairs) and "sigma"; "weight_decay"
 * is not one of its fields. */
static int spec__optim_es(const json_t *v, enum optim_kind kind, struct optim_config *c,
                          struct spec_error *err)
{
    if (kind != OPTIM_ES)
        return 0;
    if (json_object_get(v, "weight_decay"))
        return spec_fail(err, "/spec/optimizer/weight_decay",
                         "applies only to the sgd and adam optimizers");
    const json_t *x = json_object_get(v, "population");
    int64_t n;
    int rc;
    if (x) {
        if ((rc = spec_get_int(x, "/spec/optimizer/population", 2, SPEC_ES_POPULATION_MAX, &n,
                               err)))
            return rc;
        if (n % 2)
            return spec_fail(err, "/spec/optimizer/population",
                             "must be even: members come in antithetic pairs (theta +- sigma "
                             "eps); %lld is odd", (long long)n);
        c->population = (size_t)n;
    }
    return spec__optim_num(v, "sigma", 0, 1, 10, 0, &c->sigma, err);
}

/* "optimizer": an object, or just its name. */
static int spec__optimizer(const json_t *v, struct optim_config *c, struct spec_error *err)
{
    const char *names[] = {optim_name(OPTIM_SGD), optim_name(OPTIM_ADAM), optim_name(OPTIM_ES)};
    int k = OPTIM_ADAM, rc;
    if (json_is_string(v)) {
        if ((rc = spec_get_enum(v, "/spec/optimizer", names, 3, &k, err)))
            return rc;
        optim_config_default(c, (enum optim_kind)k);
        return 0;
    }
    if (!json_is_object(v))
        return spec_fail(err, "/spec/optimizer", "must be \"adam\", \"sgd\", \"es\" or an object");
    if ((rc = spec_check_fields(v, "/spec/optimizer", spec__optim_fields,
                                SPEC__N(spec__optim_fields), err)))
        return rc;
    const json_t *x = json_object_get(v, "name");
    if (x && (rc = spec_get_enum(x, "/spec/optimizer/name", names, 3, &k, err)))
        return rc;
    enum optim_kind kind = (enum optim_kind)k;
    optim_config_default(c, kind);
    if ((rc = spec__optim_only(v, "momentum", OPTIM_SGD, kind, err)) ||
        (rc = spec__optim_only(v, "beta1", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "beta2", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "eps", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "decoupled", OPTIM_ADAM, kind, err)) ||
        (rc = spec__optim_only(v, "population", OPTIM_ES, kind, err)) ||
        (rc = spec__optim_only(v, "sigma", OPTIM_ES, kind, err)) ||
        (rc = spec__optim_es(v, kind, c, err)))
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
    } f[] = {{"epochs", "/spec/epochs", t->has_from ? 0 : 1, SPEC_EPOCHS_MAX},
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

/* "chip": S (train chip S) or "hardware_aware": true (a fresh chip and noise every
 * step), not both. Whether the network has what they need is the server's check. */
static int spec__chips(const json_t *spec, struct train_spec *t, struct spec_error *err)
{
    const json_t *c = json_object_get(spec, "chip"), *h = json_object_get(spec, "hardware_aware");
    int64_t x;
    int rc;
    if (h && !json_is_boolean(h))
        return spec_fail(err, "/spec/hardware_aware", "must be true or false");
    if (c && h && json_is_true(h))
        return spec_fail(err, "/spec/hardware_aware", "cannot be combined with \"chip\": "
                         "train one chip or a fresh chip every step");
    if (h && json_is_true(h))
        t->train.chip_mode = TRAIN_HARDWARE_AWARE;
    if (c) {
        if ((rc = spec_get_int(c, "/spec/chip", 0, INT64_MAX, &x, err)))
            return rc;
        t->train.chip_mode = TRAIN_ONE_CHIP;
        t->train.chip = (uint64_t)x;
    }
    return 0;
}

/* "from": {"model": ref}: start from a stored model's parameters (the server
 * checks that its network is this one). Parsed before the schedule, which
 * then allows "epochs": 0 (the model scored and saved again as it is). */
static int spec__from(const json_t *spec, struct train_spec *t, struct spec_error *err)
{
    static const char *const fields[] = {"model"};
    const json_t *v = json_object_get(spec, "from"), *m;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return spec_fail(err, "/spec/from", "must be an object: {\"model\": id, name or "
                         "{\"job\": N}}");
    int rc = spec_check_fields(v, "/spec/from", fields, 1, err);
    if (rc)
        return rc;
    if (!(m = json_object_get(v, "model")))
        return spec_fail(err, "/spec/from/model", "is required");
    if ((rc = spec_ref_parse(m, "/spec/from/model", 0, &t->from, err)))
        return rc;
    t->has_from = 1;
    return 0;
}

/* With "from" the parameters are the model's: "calibrate": true and a layer's
 * "init" would change them, and are refused; calibration defaults to off. */
static int spec__from_start(const json_t *spec, struct train_spec *t, struct spec_error *err)
{
    if (!t->has_from)
        return 0;
    if (json_is_true(json_object_get(spec, "calibrate")))
        return spec_fail(err, "/spec/calibrate", "cannot be combined with \"from\": "
                         "calibration would rescale the model's parameters");
    char base[SPEC_PATH_MAX], p[SPEC_PATH_MAX];
    for (size_t l = 0; l < t->n_layers; l++) {
        if (!t->layers[l].has_init)
            continue;
        spec_path_index(base, sizeof base, "/spec/network", l);
        spec_path_key(p, sizeof p, base, "init");
        return spec_fail(err, p, "cannot be combined with \"from\": the initial weights "
                         "are the model's");
    }
    t->calibrate = 0;
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
    if ((opt && (rc = spec__optimizer(opt, &out->optim, err))) || /* es lets the layers */
        (rc = spec__network(json_object_get(spec, "network"), out, err)) || /* skip gradients */
        (rc = spec__from(spec, out, err)) || (rc = spec__from_start(spec, out, err)) ||
        (rc = spec__schedule(spec, out, err)) || (rc = spec__chips(spec, out, err)) ||
        (rc = spec__adapt(json_object_get(spec, "adapt"), out, err))) {
        spec_train_close(out);
        return rc;
    }
    for (size_t l = 0; l < out->n_layers && !json_object_get(spec, "calibrate"); l++)
        if (out->layers[l].has_init)
            out->calibrate = 0; /* calibration would rescale the weights asked for */
    return 0;
}

void spec_train_close(struct train_spec *t)
{
    if (!t)
        return;
    spec_dataset_close(&t->dataset);
    spec_ref_close(&t->from);
    for (size_t i = 0; i < t->n_layers && i < NET_MAX_LAYERS; i++) {
        spec_ref_close(&t->layers[i].device);
        spec_ref_close(&t->layers[i].surrogate);
        free(t->layers[i].cell_src), free(t->layers[i].cell_dst);
        t->layers[i].cell_src = t->layers[i].cell_dst = NULL;
    }
    t->n_layers = 0;
}
