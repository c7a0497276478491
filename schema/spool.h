/*
 * spool.h: the files through which the daemon and qn-mpi hand one job to
 * each other, in the job's spool directory SPOOL/job-ID/. Only the daemon
 * opens the database; qn-mpi (server/mpi, linked with Open MPI) sees these
 * files, its command line and its standard output, nothing else. Both sides
 * read and write them through this one module, so the format has one
 * implementation. On a cluster SPOOL is a shared filesystem.
 *
 * The file set of SPOOL/job-ID/ (names are the SPOOL_* macros below):
 *
 *   written by the daemon before the launch (stage):
 *     job.json          {"version": 1, "job": ID, "type": "sweep", "name": ...,
 *                        "ranks": R, "threads": T, "spec": {...}}: the type's
 *                        spec with every reference resolved (devices inline; a
 *                        type documents its own resolved form in its stage
 *                        function, e.g. evaluate's "network" in spool_net.h)
 *     NAME.qna          input arrays (a dataset's rows, a model's parameters),
 *                        in the array format below
 *     surrogate-L.bin   layer L's frozen surrogate: the store's blob bytes
 *                        (surrogate_to_blob), for the types that need one
 *   written by the launcher while qn-mpi runs:
 *     stderr.txt        qn-mpi's (and mpirun's) standard error; its last line
 *                        is the reason of a failed job
 *     stdout.jsonl      rank 0's progress lines, only for batch launchers that
 *                        cannot pipe them (sbatch): the daemon tails the file
 *   written by rank 0 when the job failed:
 *     error.txt         one line: why (mpirun's own messages follow qn-mpi's on
 *                       stderr, so the reason is not stderr's last line)
 *   written by rank 0 when the job succeeded:
 *     NAME.qna          result arrays (a sweep's outputs and statuses)
 *     result.json       the type's result; written last, through a temporary
 *                        name and rename(2), so its presence means every other
 *                        result file is complete
 *
 * Rank 0's standard output is one JSON object per line:
 *   {"progress": [done, total]}                      units of the type (rows)
 *   {"metric": {"step": S, "epoch": E, "name": N, "value": V}}   a metric row
 *   {"checkpoint": E}                                the files of checkpoint E are
 *                                                    complete (train jobs)
 * (spool_line_* write and parse them; the daemon skips any other line, such
 * as a warning mpirun printed). The daemon stores every metric row as
 * an in-process job would, in the same call, so SSE and the page see them.
 *
 * The array format (".qna"): the 8 bytes "QNARRAY1", a uint32 element kind
 * (enum spool_dtype), a uint32 rank (dimensions, 1..SPOOL_MAX_DIMS), rank
 * uint64 dimensions, then the elements row-major. Every integer and element
 * is little-endian, as the store's blobs are (this code runs on
 * little-endian hosts only, checked at compile time). A file whose size is
 * not exactly its header plus its elements is refused (QN_EFORMAT).
 *
 * Functions return 0 or a negative qn_err code (QN_EIO with errno's words
 * in msg where one is taken, QN_EFORMAT, QN_ENOMEM).
 */
#ifndef QN_SPOOL_H
#define QN_SPOOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SPOOL_VERSION 1
#define SPOOL_JOB "job.json"
#define SPOOL_RESULT "result.json"
#define SPOOL_STDERR "stderr.txt"
#define SPOOL_STDOUT "stdout.jsonl"
#define SPOOL_ERROR "error.txt"
#define SPOOL_PATH_MAX 4096
#define SPOOL_MAX_DIMS 4
#define SPOOL_RANKS_MAX 4096 /* "resources": {"ranks"} at most this */
#define SPOOL_THREADS_MAX 1024 /* "resources": {"threads"} at most this */

/* Element kinds of an array file (their values are the file's, never change). */
enum spool_dtype { SPOOL_F32 = 1, SPOOL_F64 = 2, SPOOL_I32 = 3 };

/* An array read from a file: dims and the elements (owned: spool_array_free). */
struct spool_array {
    enum spool_dtype dtype;
    size_t rank;                  /* dimensions in use */
    size_t dims[SPOOL_MAX_DIMS];  /* (rank) */
    size_t count;                 /* elements: the product of dims */
    void *data;                   /* (count) elements of dtype (owned) */
};

/* The job file's envelope, read by qn-mpi. */
struct spool_job {
    int64_t job;       /* the job's id */
    char type[16];     /* "sweep", ... */
    char name[128];    /* the job's name */
    size_t ranks;      /* ranks it was launched with */
    size_t threads;    /* threads per rank, >= 1 */
    json_t *spec;      /* the resolved spec (new reference: spool_job_close) */
};

/* dir + "/" + name into out (cap bytes); QN_ERANGE when it does not fit. */
int spool_path(char *out, size_t cap, const char *dir, const char *name);

/* Writes JSON v (borrowed) to dir/name through dir/name.tmp and rename(2). */
int spool_json_write(const char *dir, const char *name, const json_t *v, char *msg, size_t cap);

/* Reads dir/name into *out (new reference). QN_EIO (no such file: msg says
 * so), QN_EFORMAT (not JSON). */
int spool_json_read(const char *dir, const char *name, json_t **out, char *msg, size_t cap);

/* Writes job.json: the envelope above around spec (borrowed). */
int spool_job_write(const char *dir, int64_t job, const char *type, const char *name,
                    size_t ranks, size_t threads, const json_t *spec, char *msg, size_t cap);

/* Reads job.json into *out (spool_job_close it, also on failure). */
int spool_job_read(const char *dir, struct spool_job *out, char *msg, size_t cap);
void spool_job_close(struct spool_job *j);

/* Writes array dir/name: count = the product of dims[0..rank) elements of
 * dtype at data (borrowed), through a temporary name and rename(2). */
int spool_array_write(const char *dir, const char *name, enum spool_dtype dtype, size_t rank,
                      const size_t *dims, const void *data, char *msg, size_t cap);

/* Reads array dir/name into *out (spool_array_free it); QN_EFORMAT also
 * when its kind is not `dtype`. */
int spool_array_read(const char *dir, const char *name, enum spool_dtype dtype,
                     struct spool_array *out, char *msg, size_t cap);
void spool_array_free(struct spool_array *a);

/* Writes len bytes (borrowed) to dir/name; reads dir/name into a new buffer
 * *out of *len bytes (free() it). */
int spool_blob_write(const char *dir, const char *name, const void *data, size_t len, char *msg,
                     size_t cap);
int spool_blob_read(const char *dir, const char *name, void **out, size_t *len, char *msg,
                    size_t cap);

/* Removes dir and every file in it (one level: the spool has no
 * subdirectories); a dir that does not exist is fine. */
int spool_remove(const char *dir);

/* ---- rank 0's progress lines ---- */

/* What one line of rank 0's output says. */
enum spool_line_kind { SPOOL_LINE_PROGRESS, SPOOL_LINE_METRIC, SPOOL_LINE_CHECKPOINT };
struct spool_line {
    enum spool_line_kind kind;
    uint64_t done, total; /* progress */
    int64_t step, epoch;  /* metric; checkpoint: epoch only */
    char name[64];        /* metric name */
    double value;         /* metric value (NaN and infinities travel as null: NaN) */
};

/* The line for a progress or a metric (new string without the newline:
 * free() it; NULL when out of memory). */
char *spool_line_progress(uint64_t done, uint64_t total);
char *spool_line_metric(int64_t step, int64_t epoch, const char *name, double value);
/* {"checkpoint": E}: rank 0 has written the checkpoint files of epoch E
 * (spool_checkpoint_write), which the daemon stores as the run goes on. */
char *spool_line_checkpoint(int64_t epoch);

/* Parses one line (len bytes, borrowed, without its newline). QN_EFORMAT
 * for anything else. */
int spool_line_parse(const char *text, size_t len, struct spool_line *out);

/* ---- sweep jobs (spool_sweep.c) ----
 * job.json's "spec" is the sweep's spec with "device" inline (the resolved
 * device object). Rank 0 writes sweep_out.qna (f64, (n)) and
 * sweep_status.qna (i32, (n)): every row's output and status, in design
 * order; result.json is {"rows": n}. The daemon generates the design again
 * (the same function, the same seed) and stores the dataset as an
 * in-process sweep does, so the bytes are the same. */
#define SPOOL_SWEEP_OUT "sweep_out.qna"
#define SPOOL_SWEEP_STATUS "sweep_status.qna"

struct sweep_spec;
struct dev_model;
struct spec_error;

/* Parses a resolved sweep spec (borrowed) into *sw and its inline device
 * into *dev (prepared), bound (spec_sweep_bind). QN_ESPEC/QN_EPARSE with
 * *err; on success spec_sweep_close(sw) and dev_model_close(dev). */
int spool_sweep_open(const json_t *spec, struct sweep_spec *sw, struct dev_model *dev,
                     struct spec_error *err);

/* The design of sw: *n rows of sw->n_ranges values in a new buffer *in
 * (free() it). QN_ERANGE (sizes), QN_ENOMEM, design_generate's codes. */
int spool_sweep_design(const struct sweep_spec *sw, size_t *n, double **in);

/* Rank 0: the n outputs and statuses (borrowed) into the spool. */
int spool_sweep_result_write(const char *dir, size_t n, const double *out, const int *status,
                             char *msg, size_t cap);
/* The daemon: reads them back into out[n] and status[n] (caller's);
 * QN_EFORMAT when the files do not hold exactly n rows. */
int spool_sweep_result_read(const char *dir, size_t n, double *out, int *status, char *msg,
                            size_t cap);

/* ---- train and fit jobs, data-parallel (spool_train.c) ----
 * Both: job.json's "spec" is the type's spec plus "staged", an object of
 * facts that are not the user's spec, which qn-mpi takes out (spool_staged_
 * take) before parsing the rest with the type's parser:
 *   "step_metric_every": steps between step_loss metrics (the daemon's).
 *
 * train: the spec is the resolved train spec (every layer's device inline,
 * its surrogate an id, the seed explicit: what a stored model records);
 * "staged" adds where the run starts: "epoch", "step", "loss_sum",
 * "correct" (a struct train_position) and "t" (the optimizer's steps); the
 * layers as spool_net.h's "network" (surrogates in surrogate-L.bin); and
 * "n_classes" of the datasets. Files: the split and standardised rows as
 * spool_net.h's datasets "train" and "test"; start_params.qna and
 * start_state.qna (f32): the parameters and optimizer state the run starts
 * from (the daemon has built the network and calibrated it, or restored its
 * checkpoint or the "from" model). At each checkpoint rank 0 writes
 * checkpoint-E-params.qna, checkpoint-E-state.qna (f32) and checkpoint-E-info.json
 * {"epoch", "t"} (E the epoch), then the line {"checkpoint": E}; the daemon
 * stores it then and removes its files. At the end rank 0 writes
 * model_params.qna (f32) and result.json (spool_train_result_write).
 *
 * fit: the spec is the fit spec; "staged" adds "conditioned_on": the names
 * of the parameters among the inputs (after the drives). Files: fit_in.qna
 * (f32, (n, n_in)), fit_out.qna (f32, (n)), fit_status.qna (i32, (n)).
 * Rank 0 writes surrogate.bin (surrogate_to_blob) and result.json
 * (spool_fit_result_write).
 */
#define SPOOL_STAGED "staged"
#define SPOOL_TRAIN_SET "train" /* spool_data_write prefixes */
#define SPOOL_TEST_SET "test"
#define SPOOL_START_PARAMS "start_params.qna"
#define SPOOL_START_STATE "start_state.qna"
#define SPOOL_MODEL_PARAMS "model_params.qna"
#define SPOOL_FIT_IN "fit_in.qna"
#define SPOOL_FIT_OUT "fit_out.qna"
#define SPOOL_FIT_STATUS "fit_status.qna"
#define SPOOL_SURROGATE "surrogate.bin"

struct train_result;
struct fit_result;

/* Takes "staged" out of spec (changed in place) into *staged (new reference).
 * QN_EFORMAT when it is missing or not an object. */
int spool_staged_take(json_t *spec, json_t **staged);

/* A float32 vector of n values (borrowed) into dir/name; back into a new
 * buffer *out (free() it) that must hold exactly n values (QN_EFORMAT). */
int spool_floats_write(const char *dir, const char *name, const float *v, size_t n, char *msg,
                       size_t cap);
int spool_floats_read(const char *dir, const char *name, size_t n, float **out, char *msg,
                      size_t cap);

/* Rank 0 at the checkpoint of epoch `epoch`: the parameters and optimizer
 * state, then checkpoint-E-info.json. The daemon: that checkpoint into params
 * (n_params) and state (n_state), the caller's, with its t; then
 * spool_checkpoint_remove drops its files. */
int spool_checkpoint_write(const char *dir, size_t epoch, const float *params, size_t n_params,
                           const float *state, size_t n_state, uint64_t t, char *msg, size_t cap);
int spool_checkpoint_read(const char *dir, size_t epoch, float *params, size_t n_params,
                          float *state, size_t n_state, uint64_t *t, char *msg, size_t cap);
void spool_checkpoint_remove(const char *dir, size_t epoch);

/* result.json of a train run: res's figures (out_of_domain_layer for n_layers
 * layers) and the run's failed solves; NaN travels as null. */
int spool_train_result_write(const char *dir, const struct train_result *res, size_t n_layers,
                             size_t failed_solves, char *msg, size_t cap);
int spool_train_result_read(const char *dir, struct train_result *res, size_t n_layers,
                            size_t *failed_solves, char *msg, size_t cap);

/* result.json of a fit. */
int spool_fit_result_write(const char *dir, const struct fit_result *res, char *msg, size_t cap);
int spool_fit_result_read(const char *dir, struct fit_result *res, char *msg, size_t cap);

#endif
