/*
 * job.h: job types and running one job against the store.
 *
 * A job type is one row of one table (job.c): a struct job_type, defined in
 * the type's own file (job_<type>.c), whose functions are
 *   validate  parses the spec with the schema layer only, no store, and lists
 *            its {"job": N} references (for a job whose inputs do not exist
 *            yet: the queue stores it waiting);
 *   prepare  parses and validates the spec and resolves its references
 *            without writing anything, so a bad spec is refused before the
 *            job exists;
 *   run      does the work and fills in the result;
 *   release  frees what prepare made.
 *   stage, collect  the same job on several ranks (job_remote.h): its
 *            resolved inputs written to a spool directory for qn-mpi, and
 *            qn-mpi's results stored; NULL for a type qn-mpi does not run yet
 *            (such a job asking for ranks > 1 is refused at submission).
 * A row's position in the table is its index for per-type counters. Adding a
 * job type is writing job_<type>.c, which defines its struct job_type, and
 * naming that in the table; the envelope's accepted types, the queue, the
 * workers' counters and the error texts that list the types all come from
 * the table.
 *
 * job_run_local is the whole life of one job in-process (what `qn run`
 * does), job_resume_local a second attempt of a job that did not succeed
 * (what `qn resume` does). The daemon (queue.h, workers.h) calls validate
 * at submission, and prepare too when every job the spec references has
 * succeeded; then prepare and run in a worker thread with that thread's own
 * store connection.
 */
#ifndef QN_JOB_H
#define QN_JOB_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"
#include "store.h"

/* Progress of a running job: `done` of `total` units (rows, steps). Called
 * from worker threads, one call at a time. */
typedef void (*job_progress_fn)(size_t done, size_t total, void *ctx);

/* Everything a job type sees. The runner fills the inputs; the type fills the outputs. */
struct job_remote;

struct job_ctx {
    struct store *store;       /* this thread's connection (borrowed) */
    int64_t job_id;            /* the job's row; 0 during prepare of a new job */
    const char *name;          /* the job's name (borrowed) */
    const char *owner;         /* the job's owner, NULL = "local" (borrowed) */
    const json_t *spec;        /* the job's "spec" object (borrowed) */
    size_t workers;            /* threads the job may use, >= 1 */
    const atomic_int *cancel;  /* nonzero asks the job to stop (borrowed, may be NULL) */
    const atomic_int *requeue; /* nonzero with cancel: the daemon is stopping and the job goes
                                  back to the queue (borrowed, may be NULL) */
    job_progress_fn progress;  /* may be NULL */
    void *progress_ctx;        /* passed to progress (borrowed) */
    size_t ranks;              /* "resources": 0 or 1 runs in this process; more runs on
                                  qn-mpi's ranks through remote (job_remote.h) */
    size_t threads;            /* threads per rank when ranks > 1 */
    const struct job_remote *remote; /* the launcher and spool (borrowed; NULL: none) */
    const char *handle;        /* the launcher's handle of a run an earlier daemon started
                                  (a Slurm job id, from the job's row; borrowed; NULL or "":
                                  none): the run is attached to instead of started again */

    void *prep;                /* the type's prepared state: made by prepare, freed by release */
    json_t *result;            /* out of run: the result object (new reference) */
    struct spec_error err;     /* out of prepare: where the spec is wrong (QN_ESPEC) */
    char reason[256];          /* out of run on failure: why, for the job's "error" */
};

#define JOB_TYPES_MAX 16                  /* rows the type table may have */
#define JOB_REFS_MAX (2 + NET_MAX_LAYERS) /* {"job": N} references one spec can hold */

/* A {"job": N} reference of a parsed spec. */
struct job_ref {
    int64_t job;              /* N: the job whose output is used */
    char path[SPEC_PATH_MAX]; /* its JSON Pointer, e.g. "/spec/network/0/surrogate" */
    const char *type;         /* the type job N must be, e.g. "fit" (static) */
};

/* The references of one spec, in the spec's order. */
struct job_refs {
    struct job_ref v[JOB_REFS_MAX];
    size_t n;
};

struct job_type {
    const char *name; /* "sweep", ... */
    int resumes;      /* 1: a new attempt continues from its checkpoint and trims its own
                         metrics; 0: it starts over and its earlier metrics are deleted */
    /* Parses spec (borrowed) without the store; its references into *refs.
     * 0 or QN_ESPEC (*err). */
    int (*validate)(const json_t *spec, struct job_refs *refs, struct spec_error *err);
    int (*prepare)(struct job_ctx *ctx);  /* 0, QN_ESPEC (ctx->err), or another code */
    int (*run)(struct job_ctx *ctx);      /* 0 with ctx->result, or a code with ctx->reason */
    void (*release)(struct job_ctx *ctx); /* frees ctx->prep (safe when NULL) */
    /* The bytes of memory a run needs at least, estimated from spec (borrowed)
     * alone into *bytes, with a sentence saying what they are for in msg (cap
     * bytes); NULL for types whose memory a spec cannot blow up. 0 or QN_ESPEC. */
    int (*estimate)(const json_t *spec, uint64_t *bytes, char *msg, size_t cap);
    /* After prepare, for ctx->ranks > 1: writes the job's resolved inputs into
     * the spool directory dir (schema/spool.h: job.json through spool_job_write,
     * arrays, blobs). 0 or a code with ctx->reason. NULL: qn-mpi does not run
     * this type yet. */
    int (*stage)(struct job_ctx *ctx, const char *dir);
    /* After qn-mpi exited 0: reads the result files of dir and stores the job's
     * output in one transaction, filling ctx->result as run does. 0 or a code
     * with ctx->reason; nothing is stored on failure. */
    int (*collect)(struct job_ctx *ctx, const char *dir);
    /* At submission, for ranks > 1: refuses what the spec (borrowed) asks that
     * the ranks cannot share (QN_ESPEC with *err at its field); NULL: any spec
     * of the type runs on ranks. Called after validate. */
    int (*check_ranks)(const json_t *spec, size_t ranks, struct spec_error *err);
    /* While qn-mpi runs, on rank 0's line {"checkpoint": E}: stores the
     * checkpoint of epoch E from the spool directory dir as run would, so a
     * later attempt resumes from it. 0 or a code with ctx->reason (the run
     * is then stopped). NULL: the type writes none. */
    int (*checkpoint)(struct job_ctx *ctx, const char *dir, size_t epoch);
};

/* The type named `name` (borrowed, static), or NULL when this build cannot run it. */
const struct job_type *job_type_find(const char *name);
/* The number of types, and type i < job_type_count() (static). */
size_t job_type_count(void);
const struct job_type *job_type_at(size_t i);
/* The row of t in the table: its index for per-type counters (< JOB_TYPES_MAX). */
size_t job_type_index(const struct job_type *t);
/* "sweep, fit, train, evaluate": the types' names into buf (cap bytes). */
void job_type_names(char *buf, size_t cap);

/* Parses a job envelope (spec_job_parse) accepting the types of the table.
 * 0 or QN_ESPEC with *err; on success the caller json_decref's out->spec. */
int job_spec_parse(const json_t *root, struct job_spec *out, struct spec_error *err);

/* For validate: adds ref (found at path) to refs when it is a {"job": N}
 * reference, which must name a job of type `type` (static). */
void job_refs_add(struct job_refs *refs, const struct spec_ref *ref, const char *path,
                  const char *type);

/*
 * Runs the job `js` (parsed envelope, borrowed) to the end: prepare; insert
 * it as running (owner NULL = "local"); run; record succeeded with the
 * result, canceled, or failed with the reason. Returns:
 *   0            the job ran and has a final state (read it with store_job_get(*job_id));
 *   QN_ESPEC     the spec is wrong (*err says where); nothing was written;
 *   QN_EINVAL    the type is not supported by this build (*err says so); nothing was written;
 *   other codes  the job could not be recorded (database errors); *job_id is 0
 *                if it was never inserted.
 * When a final state cannot be written the job stays "running" and the code
 * of that failure is returned.
 */
int job_run_local(struct store *s, const struct job_spec *js, const char *owner, size_t workers,
                  const atomic_int *cancel, job_progress_fn progress, void *progress_ctx,
                  int64_t *job_id, struct spec_error *err);

/* As job_run_local, a job whose js->ranks > 1 running on qn-mpi through
 * remote (borrowed; NULL refuses such a job with QN_EREMOTE at
 * /resources/ranks, as does a type without stage): what `qn run --ranks N`
 * does. */
int job_run_with(struct store *s, const struct job_spec *js, const char *owner, size_t workers,
                 const struct job_remote *remote, const atomic_int *cancel,
                 job_progress_fn progress, void *progress_ctx, int64_t *job_id,
                 struct spec_error *err);

/* The text a job's spec is stored as: js->spec, and "resources": {"ranks",
 * "threads"} beside its fields when ranks > 1 (the jobs table has no column
 * for them; job_spec_take_resources takes them off again). New string (free
 * it), NULL when out of memory. */
char *job_spec_text(const struct job_spec *js);

/* Takes "resources" off a stored spec (loaded, changed in place) into *ranks
 * and *threads (1 and 1 when it has none). 0 or QN_ESPEC with *err. */
int job_spec_take_resources(json_t *spec, size_t *ranks, size_t *threads,
                            struct spec_error *err);

/* The job record {"id","type","name","owner","state","created","started",
 * "finished","error","result"} of j as a new reference (NULL: out of memory). */
json_t *job_record_json(const struct store_job *j);

/*
 * Runs job id again (`qn resume`): a job that is running (its process died),
 * failed or canceled is prepared from its stored spec, moved back to running
 * and run; a train job continues from its last checkpoint. Returns as
 * job_run_local; QN_EINVAL (*err says why) for a job that succeeded or has
 * not started, QN_ENOTFOUND when there is no such job.
 */
int job_resume_local(struct store *s, int64_t id, size_t workers, const atomic_int *cancel,
                     job_progress_fn progress, void *progress_ctx, struct spec_error *err);

/*
 * Resolves the device reference at JSON path `path` into a prepared model
 * (dev_model_close it): inline objects are parsed; ids and names are loaded
 * from the store and parsed. Errors are QN_ESPEC with *err at `path`.
 */
int job_resolve_device(struct store *s, const struct spec_ref *ref, const char *path,
                       struct dev_model *out, struct spec_error *err);

/* As job_resolve_device, and the device's JSON object into *json (new
 * reference; json_decref it) when json is not NULL. */
int job_resolve_device_json(struct store *s, const struct spec_ref *ref, const char *path,
                            struct dev_model *out, json_t **json, struct spec_error *err);

/*
 * Loads the surrogate a reference names (id, name: the newest of that name,
 * {"job": N}: what fit job N made, which must have succeeded) and checks it
 * against dev: the same number of drives always; the same device (the
 * canonical fingerprint of spec_device_fingerprint: kind, drive, params,
 * readout, solver, system) unless `twin` says a model of another device is
 * intended. A parameter-conditioned surrogate's parameters must be dev's, and
 * their values do not count as a difference (it answers for any). *out is filled (surrogate_close it), its id put in *id, and
 * *matched says whether the fingerprints agree (may be NULL). QN_ESPEC with
 * *err at path naming the differences.
 */
int job_resolve_surrogate(struct store *s, const struct spec_ref *ref, const char *path,
                          const struct dev_model *dev, int twin, struct surrogate *out,
                          int64_t *id, int *matched, struct spec_error *err);

/* Checks that a layer of device d can be computed with `via` (have_sur: a
 * surrogate is at hand; forward_only: the layer is only scored, so a readout
 * without a gradient may be used via device); QN_ESPEC with *err at path (the
 * via's) otherwise. */
int job_check_via(const struct dev_model *d, enum net_via via, int have_sur, int forward_only,
                  const char *path, struct spec_error *err);

/* Fills ctx->reason with `what: <code message>` (and SQLite's words for
 * database codes); returns rc. */
int job_fail(struct job_ctx *ctx, int rc, const char *what);

/* v as a JSON number, or null when not finite (jansson refuses NaN; the
 * accuracy of a regression is NaN). */
json_t *job_real(double v);

#endif
