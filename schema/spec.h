/*
 * spec.h: JSON job specs, devices and request bodies into plain structs.
 *
 * The schema layer is the only place that parses and checks user JSON:
 * every job spec, every device, and the bodies of the daemon's compute
 * routes (simulate, predict) are read here, and the other layers act on the
 * structs it fills (or on a document it has accepted). It checks types,
 * ranges and unknown fields, fills in documented defaults (the JSON Schema
 * documents in this folder and openapi.yaml are the contract), and reports
 * the first problem as a JSON Pointer path plus a sentence: "/spec/samples:
 * must be a positive integer". It knows no SQL: references to stored things
 * (a device by id or name, {"job": N}) are returned as struct spec_ref for
 * the server to resolve.
 */
#ifndef QN_SPEC_H
#define QN_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "design.h"
#include "device.h"
#include "net.h"
#include "optim.h"
#include "surrogate.h"
#include "train.h"

#define SPEC_PATH_MAX 128
#define SPEC_MAX_RANGES DEV_MAX_INPUTS
#define SPEC_SAMPLES_MAX 10000000 /* sweep "samples" */
#define SPEC_RANGE_ABS_MAX 1e15   /* |lo|, |hi| of a sweep range: hi - lo stays finite */
#define SPEC_SRC_MAX 4096         /* bytes of one expression or reaction source */
#define SPEC_T_MAX 1e9            /* readout t_max and solver h0 at most this */
#define SPEC_MAX_STEPS 1000000000 /* solver max_steps at most this */
#define SPEC_NOISE_SD_MAX 1e6     /* a device's noise sd at most this */

/* The first problem found in a spec. */
struct spec_error {
    char path[SPEC_PATH_MAX]; /* JSON Pointer of the bad field, e.g. "/spec/ranges/u1" */
    char msg[256];            /* a sentence, e.g. "must be [lo, hi] with lo <= hi" */
};

/* A reference to a stored thing: an id, a name, a job's output, or inline JSON. */
enum spec_ref_kind { REF_ID, REF_NAME, REF_JOB, REF_INLINE };
struct spec_ref {
    enum spec_ref_kind kind;
    int64_t id;         /* REF_ID: the id; REF_JOB: the job id */
    char name[128];     /* REF_NAME */
    json_t *inline_obj; /* REF_INLINE or the options of {"id": N, ...}: new reference, json_decref it */
};

/* A parsed sweep spec. The device is a reference, resolved by the caller. */
struct sweep_spec {
    struct spec_ref device;
    enum design_kind design; /* default sobol */
    size_t samples;          /* required, 1..10,000,000 */
    uint64_t seed;           /* default 1 */
    size_t n_ranges;         /* one per device input, then one per swept parameter */
    char range_names[SPEC_MAX_RANGES][DEV_NAME_MAX]; /* "u1", "x2", "kappa", ... in the
                                                        spec's order (bound: see below) */
    double lo[SPEC_MAX_RANGES];
    double hi[SPEC_MAX_RANGES];
    size_t n_inputs;         /* set by spec_sweep_bind: the ranges of the device's inputs
                                (the first n_inputs); the rest sweep parameters */
    size_t param_idx[SPEC_MAX_RANGES]; /* set by spec_sweep_bind: range n_inputs + k sweeps
                                          the device's params[param_idx[k]] */
};

/* A job submission: {"type", "name", "priority", "resources", "spec"}. */
struct job_spec {
    char type[16];     /* one of the caller's types: "sweep", "fit", ... */
    char name[128];    /* default: the type */
    int priority;      /* default 0; higher runs first */
    size_t ranks;      /* "resources": {"ranks"}: 1..4096, default 1 (in the daemon's process);
                          more runs the job on qn-mpi's ranks (server/jobs/job_remote.h) */
    size_t threads;    /* "resources": {"threads"}: threads per rank, 1..1024, default 1 */
    json_t *spec;      /* new reference to the "spec" object */
};

/* Parses a "resources" object {"ranks", "threads"} at path (both optional,
 * default 1; ranks 1..SPOOL_RANKS_MAX, threads 1..SPOOL_THREADS_MAX; errors
 * at path + "/ranks" ...). 0 or QN_ESPEC with *err. */
int spec_resources_parse(const json_t *v, const char *path, size_t *ranks, size_t *threads,
                         struct spec_error *err);

/*
 * Parses a job envelope. The type must be one of types[n_types] (borrowed:
 * the job types the caller runs; the schema layer does not know them, the
 * jobs layer's table does), each shorter than sizeof out->type. Unknown
 * top-level fields and unknown types are errors at their path. Returns 0 or
 * QN_ESPEC with *err. On success the caller json_decref's out->spec.
 */
int spec_job_parse(const json_t *root, const char *const *types, size_t n_types,
                   struct job_spec *out, struct spec_error *err);

/*
 * Parses an inline device object at JSON path `path` (e.g. "/spec/device")
 * into *out (dev_model_init'd here, then dev_model_prepare'd: expression and
 * reaction errors come back with the path of their field). Returns 0 or
 * QN_ESPEC / QN_EPARSE with *err. On success the caller dev_model_close's it.
 */
int spec_device_parse(const json_t *obj, const char *path, struct dev_model *out,
                      struct spec_error *err);

/*
 * The canonical form of a prepared device (spec_fingerprint.c): kind, drive,
 * fan-in, every parameter, readout and solver as in force, and the system of
 * ode and reactions; not its name. New reference (NULL: out of memory).
 */
json_t *spec_device_canonical(const struct dev_model *d);
/* The canonical form as compact text with sorted keys: the fingerprint two
 * devices share exactly when they compute the same thing. New (free() it). */
char *spec_device_fingerprint(const struct dev_model *d);
/* 1 when a and b differ, with "params/kappa 0.01 vs 0.5; ..." (a's value
 * first) in buf (cap bytes, cut when long); 0 when they are the same device;
 * QN_ENOMEM. */
int spec_device_differences(const struct dev_model *a, const struct dev_model *b, char *buf,
                            size_t cap);

/* Parses a reference at `path`: integer id, string name, {"job": N},
 * {"id": N, ...options}, or (if allow_inline) an inline object. */
int spec_ref_parse(const json_t *v, const char *path, int allow_inline, struct spec_ref *out,
                   struct spec_error *err);
void spec_ref_close(struct spec_ref *r);

/*
 * Parses the "spec" object of a sweep job (path "/spec"). The ranges are not
 * checked against the device here (the device may be a reference); call
 * spec_sweep_bind once the device is known.
 */
int spec_sweep_parse(const json_t *spec, struct sweep_spec *out, struct spec_error *err);

/*
 * Checks the ranges against the prepared device: every input of the device
 * has a range, and every other range names a parameter of the device that
 * may vary (dev_param_can_vary; a parameter sweep); a range on anything else
 * is refused at its path. Reorders the ranges into the device's input order,
 * then the swept parameters in the device's parameter order, and sets
 * n_inputs and param_idx. Returns 0 or QN_ESPEC.
 */
int spec_sweep_bind(struct sweep_spec *s, const struct dev_model *d, struct spec_error *err);

void spec_sweep_close(struct sweep_spec *s);

/* Fills err with path and a printf-style message; returns QN_ESPEC. */
int spec_fail(struct spec_error *err, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Parses JSON text (len bytes, borrowed) with duplicate keys rejected and any
 * value allowed at the top (the parsers then say "must be an object"). Returns
 * 0 and a new reference in *out, or QN_ESPEC with err->path "" and a message
 * naming the line and column of the problem.
 */
int spec_load(const char *text, size_t len, json_t **out, struct spec_error *err);

/*
 * Helpers shared by the spec parsers (job, device, sweep, and later fit,
 * train, evaluate). Each checks one value `v` found at JSON Pointer `path`
 * (borrowed) and returns 0 or QN_ESPEC with *err.
 */

/* out (cap bytes) = base + "/" + key, the key escaped as JSON Pointer (~0, ~1). */
void spec_path_key(char *out, size_t cap, const char *base, const char *key);
/* out (cap bytes) = base + "/" + i. */
void spec_path_index(char *out, size_t cap, const char *base, size_t i);

/* v must be an object whose keys are all in allowed[0..n_allowed) ("unknown field"). */
int spec_check_fields(const json_t *v, const char *path, const char *const *allowed,
                      size_t n_allowed, struct spec_error *err);

/* v must be an integer (or an integral real, as in JSON Schema) in [lo, hi]. */
int spec_get_int(const json_t *v, const char *path, int64_t lo, int64_t hi, int64_t *out,
                 struct spec_error *err);

/* v must be a finite number (integer or real). */
int spec_get_number(const json_t *v, const char *path, double *out, struct spec_error *err);

/* v must be a string of 1..max_len bytes; *out borrows it from v. */
int spec_get_string(const json_t *v, const char *path, size_t max_len, const char **out,
                    struct spec_error *err);

/* v must be one of the strings names[0..n); *out is its index. */
int spec_get_enum(const json_t *v, const char *path, const char *const *names, size_t n,
                  int *out, struct spec_error *err);

/* ---- fit, train and evaluate jobs ---- */

#define SPEC_DATASET_MAX_INPUTS 64 /* names in a dataset's "inputs" */
#define SPEC_COLUMN_MAX 64         /* bytes of a column name, NUL included */
#define SPEC_EPOCHS_MAX 100000
#define SPEC_BATCH_MAX 65536
#define SPEC_HIDDEN_MAX 4096       /* width of one fit hidden layer */
#define SPEC_DEVICES_MAX 65536     /* devices in one network layer */
#define SPEC_DATASET_SAMPLES_MAX 10000000 /* generator "samples" */
#define SPEC_ES_POPULATION_MAX 10000      /* es optimizer "population" */
#define SPEC_CHIPS_MAX 1000               /* evaluate "chips" "count" */

/*
 * A dataset reference with its options. The reference (ref) is an id, a name
 * (a built-in: spec_dataset_builtin_list(), or a stored dataset's name), {"job": N} (a sweep's dataset), or the object forms
 * {"id": N, ...options}, {"job": N, ...options}, {"name": S, ...options}.
 * For every object form ref.inline_obj holds the whole object (new reference)
 * and ref.kind is REF_ID, REF_JOB or REF_NAME (never REF_INLINE).
 * Generator options ("samples", "noise", "arms") are refused unless the name
 * is a generator; "label" and "target" exclude each other.
 */
struct dataset_spec {
    struct spec_ref ref;
    size_t n_inputs;                                      /* 0 = every column but the label/target */
    char inputs[SPEC_DATASET_MAX_INPUTS][SPEC_COLUMN_MAX]; /* "inputs": column names (CSV/sweep) */
    char label[SPEC_COLUMN_MAX];  /* "label": class column; "" = not given */
    char target[SPEC_COLUMN_MAX]; /* "target": regression column; "" = not given (a sweep
                                     dataset then uses "out") */
    double test_fraction; /* "test_fraction" in (0, 1), default 0.2 (fashion-mnist: ignored, it
                             has its own test set) */
    size_t limit;         /* "limit": first N training rows only, 0 = all (default) */
    size_t test_limit;    /* "test_limit": first N test rows only, 0 = all (default) */
    size_t samples;       /* generators: "samples" 1..10,000,000, default 1000; the logic gates:
                             default 0 = the 4 exact corners; 0 for datasets that are not
                             generators */
    double noise;         /* gates and spirals: "noise" >= 0, default 0 (gates), 0.1 (spirals) */
    size_t arms;          /* spirals: "arms" 2 or 3, default 2 */
};

/* Is `name` a built-in dataset (one of spec_dataset_builtin_list())? */
int spec_dataset_is_builtin(const char *name);

/* The name of built-in i (0: "fashion-mnist", 1: "xor", 2: "sine", 3:
 * "spirals", 4: "and", 5: "or", 6: "nand", 7: "nor", 8: "xnor", 9:
 * "lotka_volterra"), NULL past the last; a static string. */
const char *spec_dataset_builtin(size_t i);

/* Every built-in's name, comma-separated, for messages; a static string. */
const char *spec_dataset_builtin_list(void);

/* Parses a dataset reference at `path` (e.g. "/spec/dataset"). Returns 0 or
 * QN_ESPEC with *err. On success the caller spec_dataset_close's it. */
int spec_dataset_parse(const json_t *v, const char *path, struct dataset_spec *out,
                       struct spec_error *err);
void spec_dataset_close(struct dataset_spec *d);

/*
 * A fit job: {"dataset", "hidden", "activation", "epochs", "batch", "lr",
 * "validation", "patience", "seed"}; "dataset" is required, the rest default
 * to fit_config_default (hidden [32, 32], tanh, 300 epochs, batch 32, lr
 * 3e-3, validation 0.1, patience 50, seed 1 at the time of writing;
 * schema/fit.schema.json documents them and a test keeps the two in step).
 */
struct fit_spec {
    struct dataset_spec dataset;
    struct fit_config cfg;
};
int spec_fit_parse(const json_t *spec, struct fit_spec *out, struct spec_error *err);
void spec_fit_close(struct fit_spec *f);

/* One layer of a train job's "network": {"devices", "device", "via", "surrogate", "twin",
 * "connect", "fan_in", "init", "cells", "cell_list"}. */
struct train_layer_spec {
    size_t devices;            /* required, 1..65536 */
    struct spec_ref device;    /* required: id, name, {"id": N} or inline object */
    enum net_via via;          /* default: surrogate when "surrogate" is given, else exact */
    int has_surrogate;         /* "surrogate" given (required for surrogate, physics_aware) */
    struct spec_ref surrogate; /* id, name, {"job": N} or {"id": N}; never inline */
    int twin;                  /* "twin": the surrogate models another device, on purpose
                                  (physics-aware training against a model knowingly wrong) */
    int has_connect;           /* "connect" given: required for (only allowed with) full devices */
    enum net_connect connect;  /* "random" | "local" | "tree" */
    size_t fan_in;             /* "fan_in" 1..16: must equal the full device's fan_in; 0 = not
                                  given (the device's) */
    int has_init;              /* "init" given (then "calibrate" defaults to false) */
    enum net_init init;        /* "uniform" (default) | "normal" (weights and biases N(0, 1)) |
                                  "unit" (edge cells only: a = 1, b = 0) */
    enum net_cells cells;      /* "cells": "node" (default) | "edge" (one-drive devices) */
    size_t n_cells;            /* "cell_list": {"src": [..], "dst": [..]} (edge only; what a
                                  saved model stores): the cells; 0 = one per edge */
    size_t *cell_src;          /* (n_cells) owned: each cell's input */
    size_t *cell_dst;          /* (n_cells) owned: each cell's output, < devices */
};

/*
 * A train job: {"dataset", "network", "loss", "optimizer", "epochs", "batch",
 * "seed", "checkpoint_every", "calibrate", "adapt"}. Inline devices are
 * parsed (and prepared) here to check them, then released: the runner parses
 * device.inline_obj again. An inline full device needs the layer's
 * "connect" (and a "fan_in" that matches, if given); via "exact" needs an
 * analytic kind (neuron, almost_neuron) and via "device" a differentiable
 * readout (not spike_rate), except with the es optimizer. "adapt" {"after_epochs", "patience", "grow",
 * "prune", "max_devices", "min_devices", "score", "perturb", "min_delta",
 * "max_cells"} goes into train.adapt (adapt.h; defaults from
 * adapt_config_default) and needs an edge layer or two or more layers, no
 * full layer, and the widths of hidden node layers that adapt within
 * [min_devices, max_devices]. A layer of "cells": "edge" needs a device of
 * drive dot. Returns 0, QN_ESPEC,
 * or QN_EPARSE (an inline device's expression) with *err; on success the
 * caller spec_train_close's *out (about 10 KB).
 */
struct train_spec {
    struct dataset_spec dataset;                     /* required */
    size_t n_layers;                                 /* "network": 1..NET_MAX_LAYERS layers */
    struct train_layer_spec layers[NET_MAX_LAYERS];
    struct optim_config optim;  /* "optimizer": {"name": "adam"|"sgd"|"es", "lr", "momentum",
                                   "beta1", "beta2", "eps", "weight_decay", "decoupled",
                                   "population", "sigma"}; default adam, other fields from
                                   optim_config_default of that name; es lets a layer via
                                   device have a readout without a gradient (spike_rate) */
    struct train_config train;  /* "loss" (default cross_entropy), "epochs" (5), "batch" (128),
                                   "seed" (1), "checkpoint_every" (1; 0 = never), "adapt"
                                   (train.adapt.enabled when given) */
    int calibrate;              /* "calibrate": default 1 (data-dependent init, net_calibrate);
                                   default 0 when a layer gives "init" or with "from" */
    int has_from;               /* "from": {"model": ref} given: training starts from that
                                   stored model's parameters and input scaler (its network
                                   must be this one: the server checks); "epochs" may then
                                   be 0; "calibrate": true and "init" are refused */
    struct spec_ref from;       /* its "model": id, name or {"job": N} (a train job) */
};
/* A layer's "connect" and "fan_in" against its prepared device m (drive and
 * fan-in); base is the layer's path ("/spec/network/1"). Also used once a
 * referenced device is resolved. Returns 0 or QN_ESPEC. */
int spec_layer_wiring(const struct train_layer_spec *L, const struct dev_model *m,
                      const char *base, struct spec_error *err);
int spec_train_parse(const json_t *spec, struct train_spec *out, struct spec_error *err);
void spec_train_close(struct train_spec *t);

enum spec_split { SPLIT_TEST, SPLIT_TRAIN, SPLIT_ALL };

/*
 * An evaluate job: {"model", "dataset", "split", "via", "surrogates", "seed",
 * "chip", "chips", "noise"}.
 * "via" and "surrogates" are objects keyed by layer index ("0".."15") whose
 * layers the runner checks against the model. A layer switched to surrogate
 * or physics_aware without an entry in "surrogates" uses the model's own.
 */
struct evaluate_spec {
    struct spec_ref model;       /* required: id, name, {"job": N} (a train job) or {"id": N} */
    struct dataset_spec dataset; /* required */
    enum spec_split split;       /* "split": "test" (default), "train", "all" */
    size_t n_via;                /* "via" overrides, in the spec's order */
    size_t via_layer[NET_MAX_LAYERS];
    enum net_via via[NET_MAX_LAYERS];
    int has_surrogate[NET_MAX_LAYERS];              /* by layer index */
    struct spec_ref surrogate[NET_MAX_LAYERS];      /* "surrogates": {"0": ref} */
    int has_seed;                /* "seed" given; otherwise the model's training seed */
    uint64_t seed;               /* the test_fraction split of a CSV/sweep dataset */
    int has_chip;                /* "chip": S given (excludes "chips") */
    uint64_t chip;               /* the one chip to score */
    size_t chips;                /* "chips": {"count"}: 0 when not given, else 1..SPEC_CHIPS_MAX */
    uint64_t chips_seed;         /* "chips": {"seed"}: chip i is seed + i (default 0) */
    int noise;                   /* "noise": the devices' noise drawn; default on with "chip"
                                    or "chips", off without */
};
int spec_evaluate_parse(const json_t *spec, struct evaluate_spec *out, struct spec_error *err);
void spec_evaluate_close(struct evaluate_spec *e);

const char *spec_split_name(enum spec_split s);

/* ---- bodies of the daemon's compute routes ---- */

#define SPEC_SIM_POINTS_DEFAULT 500 /* simulate: default "max_points" */
#define SPEC_SIM_POINTS_MAX 100000  /* simulate: largest "max_points" */
#define SPEC_SIM_CURVE_DEFAULT 101  /* simulate: default "curve" "points" */
#define SPEC_SIM_CURVE_MAX 1000     /* simulate: largest "curve" "points" */
#define SPEC_PREDICT_ROWS_MAX 1024  /* predict: rows per request */

/*
 * The body of POST /v1/devices/{id}/simulate, read against the prepared
 * device m (borrowed): {"inputs": {"u1": 0.5, ...}, "max_points", "curve":
 * {"input", "from", "to", "points"}}. "inputs" names every input of the
 * device but the one a curve varies, and may be left out when that leaves
 * none. Returns 0 or QN_ESPEC with *err (paths "/inputs/u9", "/curve/to"...).
 */
struct simulate_spec {
    double in[DEV_MAX_INPUTS]; /* the one solve's inputs, or a curve's fixed ones, in the
                                  device's input order */
    size_t max_points;         /* trajectory points: 2..SPEC_SIM_POINTS_MAX */
    int curve;                 /* 1: a response curve over one input */
    size_t curve_input;        /* the input the curve varies */
    double from, to;           /* its range */
    size_t points;             /* its points: 2..SPEC_SIM_CURVE_MAX */
};
int spec_simulate_parse(const json_t *body, const struct dev_model *m, struct simulate_spec *out,
                        struct spec_error *err);

/*
 * The body of POST /v1/models/{id}/predict for a model of n_in (> 0) inputs:
 * {"rows": [[n_in numbers], ...]}, 1..SPEC_PREDICT_ROWS_MAX rows of finite
 * numbers that fit a float. The rows are kept raw (the model standardises
 * them). Returns 0 (spec_predict_close *out), QN_ESPEC with *err (paths
 * "/rows", "/rows/2", "/rows/2/0"), QN_EINVAL (n_in is 0) or QN_ENOMEM.
 */
struct predict_spec {
    size_t n; /* rows */
    size_t d; /* numbers per row: n_in */
    float *x; /* (n, d) owned: the inputs as sent */
};
int spec_predict_parse(const json_t *body, size_t n_in, struct predict_spec *out,
                       struct spec_error *err);
void spec_predict_close(struct predict_spec *p);

#endif
