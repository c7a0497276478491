/*
 * store.h: the SQLite store of Quasineuron: devices, datasets, jobs, metrics,
 * surrogates, models and training checkpoints.
 *
 * One struct store is one SQLite connection (WAL, busy_timeout 5000 ms,
 * foreign keys on). It is not shared between threads: each thread that
 * needs the database opens its own. Opening applies pending migrations
 * (migrate.h) and refuses a database newer than the program.
 *
 * Every function returns 0 or a qn_err code: SQLITE_FULL -> QN_EFULL,
 * SQLITE_BUSY/LOCKED -> QN_EBUSY, a UNIQUE violation -> QN_EEXIST, anything
 * else -> QN_EDB (store_errmsg says what SQLite said). Lookups that find
 * nothing return QN_ENOTFOUND.
 *
 * Times in records are ISO-8601 UTC text with milliseconds
 * ("2026-11-23T11:01:20.123Z"); metric times are unix seconds.
 *
 * Datasets are written in one transaction (store_dataset_begin .. finish):
 * a job that fails or is killed leaves no trace of its dataset, and readers
 * never see a half-written one. The trade-off is that the write lock is
 * held while the rows are appended, so callers append rows they already
 * have (a sweep appends its finished arrays), not rows still being computed.
 */
#ifndef QN_STORE_H
#define QN_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store_err.h"

#define STORE_BLOCK_ROWS 4096 /* rows per dataset block */
#define STORE_MAX_COLS 100000 /* columns of a dataset (a block stays < 2 GiB) */
#define STORE_NAME_MAX 128    /* bytes of a device, dataset or job name, with NUL */
#define STORE_TIME_MAX 32     /* bytes of an ISO-8601 time, with NUL */
#define STORE_HANDLE_MAX 64   /* bytes of a launcher's handle (a Slurm job id), with NUL */
#define STORE_MSG_MAX 256     /* bytes of an error message, with NUL */

struct store; /* opaque: one connection */

/*
 * Opens (creating if needed) the database at `path` and migrates it. On
 * success *out is a new handle (store_close it). On failure *out is NULL and
 * msg (cap bytes, may be NULL) says why; QN_EVERSION when the database is
 * newer than this program.
 */
int store_open(const char *path, struct store **out, char *msg, size_t cap);
/* Closes the connection (NULL is fine). Finish or abort any dataset writer first. */
void store_close(struct store *s);

/* The last SQLite error message of this connection (borrowed, until the next call). */
const char *store_errmsg(const struct store *s);

/* The applied schema version. */
int store_schema_version(struct store *s, int *out);

/* Runs PRAGMA integrity_check; 0 when it answers "ok", QN_EDB otherwise. */
int store_integrity_check(struct store *s);

#define STORE_WAL_LARGE (16u << 20) /* bytes of a dataset whose commit is followed by
                                       store_wal_truncate (store_dataset_finish) */

/* Checkpoints the WAL into the database and truncates it to zero bytes
 * (PRAGMA wal_checkpoint(TRUNCATE)), waiting for other connections at most
 * the busy timeout. 0, or QN_EBUSY when readers or a writer kept part of
 * it (it is then left as it is), or another store code. */
int store_wal_truncate(struct store *s);

/*
 * Sets whose names resolve first on this connection and who owns the
 * devices, datasets and surrogates it stores (a user name; NULL or "" =
 * "local", the owner of `qn run` and of a daemon without users). The
 * caller that borrows a connection sets it: a request its user, a worker
 * its job's owner. Lookups by name then take "owner/name" as that owner's,
 * and a bare name as the connection owner's, else local's.
 */
void store_set_owner(struct store *s, const char *owner);

/* ---- change counting ---------------------------------------------------- */

/* The tables whose commits are counted. */
enum store_watched {
    STORE_WATCH_JOBS,    /* jobs: records, states (the job list, a job's record) */
    STORE_WATCH_METRICS, /* metrics: a job's metric pages */
    STORE_WATCH_TRIMS,   /* metrics deleted or rewritten (a resumed train trims its own): a
                            full page of a running job stays true until one */
    STORE_WATCH_N
};

/*
 * Counts of the commits that changed jobs, and metrics, shared by the
 * connections that watch them (store_watch). A page made from one table
 * (the job list from jobs, a running job's metrics from metrics) stays true
 * while its count stays the same: read the count, then make the page; the
 * count moves after the commit (SQLite's WAL hook), so a page kept under a
 * count never misses a commit that count has not seen. Only watched
 * connections move them: writes of other processes go unseen (while `qn
 * serve` holds its database, no other process runs jobs: dblock.h).
 * Zero-initialise it; not freed.
 */
struct store_changes {
    _Atomic uint64_t n[STORE_WATCH_N]; /* commits that changed each table */
    _Atomic int broken; /* a connection could not be watched: no count can be trusted */
};

/* Makes s count its commits into c (borrowed; it must outlive s). 0, or
 * QN_EINVAL when s is not in WAL mode (c is then marked broken). */
int store_watch(struct store *s, struct store_changes *c);
/* The count of table t into *n; QN_EINVAL when it cannot be trusted (a
 * connection was not watched). */
int store_changes_read(struct store_changes *c, enum store_watched t, uint64_t *n);

/* ---- devices ---------------------------------------------------------- */

struct store_device {
    int64_t id;
    int has_name;                 /* 0 when the device is unnamed */
    char name[STORE_NAME_MAX];    /* "" when unnamed */
    char kind[32];                /* "crn_relu", ... */
    char *spec;                   /* the device JSON as submitted (owned) */
    char created[STORE_TIME_MAX];
    char owner[STORE_NAME_MAX];   /* its owner's user name ("local" for older rows) */
};

/* Stores a device. name may be NULL (unnamed); spec is its JSON text.
 * QN_EEXIST when the name is taken. The new id into *id (may be NULL). */
int store_device_insert(struct store *s, const char *name, const char *kind, const char *spec,
                        int64_t *id);
/* Fill *out (store_device_free it); QN_ENOTFOUND if absent. */
int store_device_get(struct store *s, int64_t id, struct store_device *out);
int store_device_get_by_name(struct store *s, const char *name, struct store_device *out);
/* Devices with id > after, ascending, at most limit (0 = all), into a new
 * array *out of *n (store_device_list_free it). */
int store_device_list(struct store *s, int64_t after, size_t limit, struct store_device **out,
                      size_t *n);
void store_device_free(struct store_device *d);
void store_device_list_free(struct store_device *list, size_t n);

/* ---- datasets --------------------------------------------------------- */

struct store_dataset {
    int64_t id;
    int has_name;
    char name[STORE_NAME_MAX];
    char source[8];               /* "sweep", "csv", "idx" */
    size_t n_rows;
    size_t n_cols;
    char *columns;                /* JSON array of n_cols names (owned) */
    size_t block_rows;            /* rows per block */
    int64_t job_id;               /* 0 when not made by a job */
    char created[STORE_TIME_MAX];
    char owner[STORE_NAME_MAX];   /* its owner's user name */
};

struct store_dswriter; /* an open dataset write (one transaction) */

/*
 * Starts a dataset: BEGIN IMMEDIATE and its row. name may be NULL; source is
 * "sweep", "csv" or "idx"; columns[n_cols] its column names (borrowed);
 * job_id 0 for none; 1 <= n_cols <= STORE_MAX_COLS. The connection is inside the transaction until finish
 * or abort; do not start another transaction on it meanwhile. A job makes one
 * dataset: one an earlier attempt of job_id stored (it was killed before its
 * end was) is deleted in the same transaction.
 */
int store_dataset_begin(struct store *s, const char *name, const char *source, size_t n_cols,
                        const char *const *columns, int64_t job_id, struct store_dswriter **out);
/* Appends rows[n_rows, n_cols] (borrowed), writing full blocks as they fill. */
int store_dataset_append(struct store_dswriter *w, const float *rows, size_t n_rows);
/* Writes the last block, the row count, and commits. Frees w whatever the
 * result; on failure everything is rolled back. The id into *id (may be NULL). */
int store_dataset_finish(struct store_dswriter *w, int64_t *id);
/* Rolls everything back and frees w (NULL is fine). After a write that
 * stored blocks, finish (failed) and abort truncate the WAL the rolled-back
 * blocks may have filled (store_wal_truncate). */
void store_dataset_abort(struct store_dswriter *w);

int store_dataset_get(struct store *s, int64_t id, struct store_dataset *out);
/* The newest dataset named `name` (names need not be unique). */
int store_dataset_get_by_name(struct store *s, const char *name, struct store_dataset *out);
/* The dataset made by job `job_id` (the newest if several). */
int store_dataset_get_by_job(struct store *s, int64_t job_id, struct store_dataset *out);
int store_dataset_list(struct store *s, int64_t after, size_t limit, struct store_dataset **out,
                       size_t *n);
void store_dataset_free(struct store_dataset *d);
void store_dataset_list_free(struct store_dataset *list, size_t n);

/* Reads rows [row0, row0 + n) of dataset id into out[n, n_cols].
 * QN_ERANGE when they are not all there; QN_EFORMAT when a block is corrupt. */
int store_dataset_read(struct store *s, int64_t id, size_t row0, size_t n, float *out);

/*
 * Writes dataset id as CSV to f: a header of the column names, then one line
 * per row, values with 9 significant digits (float32 round-trips). A sweep's
 * "status" column is written as names ("ok", "not_converged", ...).
 * QN_EIO when f fails.
 */
int store_dataset_export_csv(struct store *s, int64_t id, FILE *f);

/* ---- jobs --------------------------------------------------------------- */

enum store_job_state { JOB_WAITING, JOB_QUEUED, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED };

const char *store_job_state_name(enum store_job_state st);
/* 1 when st is an end: succeeded, failed or canceled. */
int store_job_state_final(enum store_job_state st);
int store_job_state_from_name(const char *name, enum store_job_state *out); /* QN_EINVAL */

struct store_job {
    int64_t id;
    char type[16];
    char name[STORE_NAME_MAX];
    char owner[64];
    int priority;
    enum store_job_state state;
    char *spec;                    /* JSON text (owned) */
    char *result;                  /* JSON text or NULL (owned) */
    char *error;                   /* reason or NULL (owned) */
    char created[STORE_TIME_MAX];
    char started[STORE_TIME_MAX];  /* "" until it runs */
    char finished[STORE_TIME_MAX]; /* "" until it ends */
    char handle[STORE_HANDLE_MAX]; /* its run's launcher handle (a Slurm job id), "" when none */
};

/* Stores a job. owner NULL means "local"; spec is the spec JSON text. */
int store_job_insert(struct store *s, const char *type, const char *name, const char *owner,
                     int priority, enum store_job_state state, const char *spec, int64_t *id);
int store_job_get(struct store *s, int64_t id, struct store_job *out);
/*
 * Moves job id to `state`, stamping started on the first move to running and
 * finished on a move to succeeded, failed or canceled. result (JSON text) and
 * error may be NULL, which leaves the stored value unchanged.
 */
int store_job_set_state(struct store *s, int64_t id, enum store_job_state state,
                        const char *result, const char *error);
/* Stores the launcher's handle of job id's run (a Slurm job id: the run
 * outlives the daemon, which attaches to it again after a restart), or
 * clears it (NULL or ""). QN_ERANGE for a handle of STORE_HANDLE_MAX bytes
 * or more, QN_ENOTFOUND when there is no such job. */
int store_job_set_handle(struct store *s, int64_t id, const char *handle);
/* Moves job id back to running for a new attempt: result, error and
 * finished are cleared, started is kept. QN_ENOTFOUND if absent. */
int store_job_restart(struct store *s, int64_t id);
void store_job_free(struct store_job *j);

/* ---- metrics ------------------------------------------------------------ */

/* Records metric `name` = value of job at (step, epoch), time now. A
 * non-finite value is stored as NULL. QN_EEXIST if (job, name, step) exists. */
int store_metric_insert(struct store *s, int64_t job, int64_t step, int64_t epoch,
                        const char *name, double value);

/* Deletes job's metrics of epochs after `epoch` (a resumed run writes them
 * again), so the history has neither duplicates nor gaps. */
int store_metric_delete_after(struct store *s, int64_t job, int64_t epoch);

/* As store_metric_delete_after, keeping the rows of steps up to `step` (a
 * run resumed inside an epoch keeps the step losses it had written). */
int store_metric_delete_after_step(struct store *s, int64_t job, int64_t epoch, int64_t step);

/* ---- surrogates ----------------------------------------------------------- */

/* A frozen surrogate. Inserting reads the fields marked "in"; reading fills all. */
struct store_surrogate {
    int64_t id;
    int has_name;              /* in: 0 = unnamed */
    char name[STORE_NAME_MAX]; /* in */
    int64_t job_id;            /* in: the fit job, 0 = none */
    char *device;              /* in: the device JSON it models (owned when read) */
    int64_t dataset_id;        /* in: the sweep dataset it was fitted on, 0 = none */
    size_t n_in;               /* in: drives */
    double val_rmse;           /* in: held-out RMSE (NaN stored as NULL) */
    double max_error;          /* in */
    void *blob;                /* in: surrogate_to_blob bytes (owned when read) */
    size_t blob_len;           /* in */
    char created[STORE_TIME_MAX];
    char owner[STORE_NAME_MAX]; /* its owner's user name (the connection's when stored) */
};

/* Stores a surrogate (fields borrowed); the new id into *id (may be NULL).
 * Replaces the one an earlier attempt of in->job_id stored, in one transaction. */
int store_surrogate_insert(struct store *s, const struct store_surrogate *in, int64_t *id);
/* Fill *out (store_surrogate_free it); QN_ENOTFOUND when absent. By name:
 * the newest of that name; by job: the surrogate job_id made. */
int store_surrogate_get(struct store *s, int64_t id, struct store_surrogate *out);
int store_surrogate_get_by_name(struct store *s, const char *name, struct store_surrogate *out);
int store_surrogate_get_by_job(struct store *s, int64_t job_id, struct store_surrogate *out);
void store_surrogate_free(struct store_surrogate *x);

/* ---- models ------------------------------------------------------------------ */

/* A trained network. Inserting reads every field but id and created. */
struct store_model {
    int64_t id;
    int has_name;
    char name[STORE_NAME_MAX];
    int64_t job_id;            /* the train job, 0 = none */
    char *spec;                /* train spec JSON, devices inline, surrogates by id (owned when read) */
    size_t n_in, n_out;        /* network inputs and outputs */
    size_t n_classes;          /* classes of its training data; 0 for regression */
    char loss[16];             /* "mse", "cross_entropy" */
    float *params;             /* (n_params) (owned when read) */
    size_t n_params;
    float *scaler;             /* (n_scaler) = (2, n_in): input mean then std (owned when read) */
    size_t n_scaler;
    char created[STORE_TIME_MAX];
    char owner[STORE_NAME_MAX]; /* its owner's user name (the connection's when stored: the
                                   train job's owner) */
};

/* Stores a model (fields borrowed); the new id into *id (may be NULL). Replaces
 * the one an earlier attempt of in->job_id stored, in one transaction. */
int store_model_insert(struct store *s, const struct store_model *in, int64_t *id);
int store_model_get(struct store *s, int64_t id, struct store_model *out);
/* The newest model named `name` within the connection's owner, else within
 * local's; "owner/name" names that owner's (store_set_owner). */
int store_model_get_by_name(struct store *s, const char *name, struct store_model *out);
int store_model_get_by_job(struct store *s, int64_t job_id, struct store_model *out);
void store_model_free(struct store_model *m);

/* ---- checkpoints -------------------------------------------------------------- */

/* The state of a train job after `epoch` completed epochs. */
struct store_checkpoint {
    int64_t job_id;
    size_t epoch;
    float *params;  /* (n_params) (owned when read) */
    size_t n_params;
    float *state;   /* (n_state) optimizer state slab (owned when read) */
    size_t n_state;
    uint64_t t;     /* optimizer steps */
    char *arch;     /* the network's architecture as JSON text (migration 0004), or NULL
                       for a network whose widths are its spec's (owned when read) */
};

/* Writes (or replaces) the checkpoint of (job_id, epoch), its arch with it in
 * the same statement; arrays and text borrowed. */
int store_checkpoint_put(struct store *s, const struct store_checkpoint *c);
/* The checkpoint of job_id with the largest epoch; QN_ENOTFOUND if none. */
int store_checkpoint_last(struct store *s, int64_t job_id, struct store_checkpoint *out);
void store_checkpoint_free(struct store_checkpoint *c);

#endif
