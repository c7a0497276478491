/*
 * job_data.h: datasets for fit, train and evaluate jobs, from a parsed
 * dataset reference (struct dataset_spec) to engine datasets.
 *
 * Two steps, so that a job is refused before it exists when its reference is
 * wrong, and the rows are read only when it runs:
 *   job_data_resolve  the reference against the store: a built-in
 *                     (spec_dataset_builtin_list()), a stored
 *                     dataset by id, by name (the newest of that name) or
 *                     {"job": N} (that job's dataset; the job must have
 *                     succeeded); and which columns are inputs and which is
 *                     the label or target. No rows are read.
 *   job_data_load     the rows, as train and test splits: built-ins are
 *                     generated (seeded with the job's seed) or loaded;
 *                     stored rows are read block by block, sweep rows whose
 *                     status is not 0 are left out, labels must be
 *                     non-negative integers and every value finite; then the
 *                     seeded test_fraction split and the limit/test_limit
 *                     subsets.
 * job_data_sweep gives a fit job the raw sweep arrays instead.
 */
#ifndef QN_JOB_DATA_H
#define QN_JOB_DATA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "spec.h"
#include "store.h"

/* The built-ins in the order of spec_dataset_builtin's indices, then stored datasets. */
enum job_ds_kind {
    JOB_DS_FASHION,
    JOB_DS_XOR,
    JOB_DS_SINE,
    JOB_DS_SPIRALS,
    JOB_DS_AND,
    JOB_DS_OR,
    JOB_DS_NAND,
    JOB_DS_NOR,
    JOB_DS_XNOR,
    JOB_DS_LOTKA_VOLTERRA,
    JOB_DS_STORED
};

/* A resolved dataset reference. */
struct job_dsref {
    enum job_ds_kind kind;
    const struct dataset_spec *spec; /* borrowed: the options */
    int have_rec;                    /* rec must be freed */
    struct store_dataset rec;        /* JOB_DS_STORED: the dataset's record */
    json_t *columns;                 /* JOB_DS_STORED: its column names (new reference) */
    size_t n_in;                     /* input columns (stored) */
    size_t *in_col;                  /* (n_in) their indices (owned) */
    long y_col;                      /* label or target column; -1 for built-ins */
    long status_col;                 /* a sweep's "status" column, else -1 */
    int classify;                    /* 1: labels (classification); 0: a target (regression) */
};

/*
 * Resolves ds (borrowed; must outlive *out) found at JSON path `path`.
 * Returns 0, or QN_ESPEC with *err at path (no such dataset, a job that made
 * none or has not succeeded, unknown columns, no label or target), or a
 * store code. On success job_data_close(out).
 */
int job_data_resolve(struct store *s, const struct dataset_spec *ds, const char *path,
                     struct job_dsref *out, struct spec_error *err);
void job_data_close(struct job_dsref *r);

/*
 * Loads the rows of r into train and test (both data_close'd by the caller,
 * also on failure), splitting with `seed`. Returns 0 or a code with a
 * sentence in reason (cap bytes): QN_EFORMAT (a NaN, a label that is not a
 * non-negative integer), QN_EINVAL (no usable rows), QN_EIO, QN_ENOMEM, ...
 */
int job_data_load(struct store *s, const struct job_dsref *r, uint64_t seed,
                  struct data_set *train, struct data_set *test, char *reason, size_t cap);

/* A sweep dataset's raw arrays for a surrogate fit. */
struct job_sweep_data {
    size_t n;     /* rows (after "limit") */
    size_t n_in;  /* drives per row */
    float *in;    /* (n, n_in) owned */
    float *out;   /* (n) owned */
    int *status;  /* (n) owned: 0 = ok */
};

/* Reads r (a stored sweep dataset) into *out (job_data_sweep_free it).
 * Returns 0 or a code with reason as job_data_load. */
int job_data_sweep(struct store *s, const struct job_dsref *r, struct job_sweep_data *out,
                   char *reason, size_t cap);
void job_data_sweep_free(struct job_sweep_data *d);

/* Appends b's rows to a into out (same shapes). For the "all" split. */
int job_data_concat(const struct data_set *a, const struct data_set *b, struct data_set *out);

/*
 * Checks that job `id` (referenced as {"job": N} at `path`) exists, is of
 * type `type` ("sweep", "fit", "train") and has succeeded. QN_ESPEC with *err
 * otherwise.
 */
int job_ref_check(struct store *s, int64_t id, const char *type, const char *path,
                  struct spec_error *err);

#endif
