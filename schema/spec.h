/*
 * spec.h: JSON job and device specs into engine structs.
 *
 * The schema layer is the only place that reads user JSON. It checks types,
 * ranges and unknown fields, fills in documented defaults (the JSON Schema
 * documents in this folder are the contract), and reports the first problem
 * as a JSON Pointer path plus a sentence: "/spec/samples: must be a positive
 * integer". It knows no SQL: references to stored things (a device by id or
 * name, {"job": N}) are returned as struct spec_ref for the server to resolve.
 */
#ifndef QN_SPEC_H
#define QN_SPEC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "design.h"
#include "device.h"

#define SPEC_PATH_MAX 128
#define SPEC_MAX_RANGES DEV_MAX_INPUTS

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
    size_t n_ranges;         /* one per device input */
    char range_names[SPEC_MAX_RANGES][DEV_NAME_MAX]; /* "u1", "x2", ... in the spec's order */
    double lo[SPEC_MAX_RANGES];
    double hi[SPEC_MAX_RANGES];
};

/* A job submission: {"type", "name", "priority", "spec"}. */
struct job_spec {
    char type[16];     /* "sweep", "fit", "train", "evaluate" */
    char name[128];    /* default: the type */
    int priority;      /* default 0; higher runs first */
    json_t *spec;      /* new reference to the "spec" object */
};

/*
 * Parses a job envelope. Unknown top-level fields and unknown types are
 * errors at their path. Returns 0 or QN_ESPEC with *err. On success the
 * caller json_decref's out->spec.
 */
int spec_job_parse(const json_t *root, struct job_spec *out, struct spec_error *err);

/*
 * Parses an inline device object at JSON path `path` (e.g. "/spec/device")
 * into *out (dev_model_init'd here, then dev_model_prepare'd: expression and
 * reaction errors come back with the path of their field). Returns 0 or
 * QN_ESPEC / QN_EPARSE with *err. On success the caller dev_model_close's it.
 */
int spec_device_parse(const json_t *obj, const char *path, struct dev_model *out,
                      struct spec_error *err);

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
 * has a range and no range names something the device lacks. Reorders the
 * ranges into the device's input order. Returns 0 or QN_ESPEC.
 */
int spec_sweep_bind(struct sweep_spec *s, const struct dev_model *d, struct spec_error *err);

void spec_sweep_close(struct sweep_spec *s);

/* Fills err with path and a printf-style message; returns QN_ESPEC. */
int spec_fail(struct spec_error *err, const char *path, const char *fmt, ...);

#endif
