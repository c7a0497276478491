/*
 * catalog.h: what the lab has stored, as the command line and HTTP ask for
 * it, and the pool of database connections they ask through.
 *
 * A catalog is one database path and a mutex-protected stack of idle store
 * connections. A caller borrows a connection only while it works (a request
 * handler, one CSV chunk), so a thousand idle SSE streams hold none. The
 * catalog's queries (catalog_*) take that borrowed connection; the layers
 * above the jobs layer never speak to the store themselves.
 *
 * The queries are thin: a store call, and the JSON the API shows, built in
 * one place so that `qn device list` and GET /v1/devices print the same
 * record. A reference `ref` is what {id} holds in a route: an id (digits) or
 * a name (the newest of that name). Functions return 0 or a qn_err code:
 * QN_ENOTFOUND when a reference names nothing, the store's codes otherwise
 * (catalog_errmsg says what SQLite said). JSON results are new references.
 */
#ifndef QN_CATALOG_H
#define QN_CATALOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "spec.h"
#include "store.h"
#include "store_catalog.h"

#define CATALOG_POOL_IDLE_MAX 16 /* idle connections kept */

struct catalog; /* opaque; thread-safe */

/* A catalog of database `db` (copied; nothing is opened yet) into *out
 * (new: catalog_destroy it). QN_ENOMEM. */
int catalog_create(const char *db, struct catalog **out);
/* Closes the idle connections and frees c (NULL is fine). Give back every
 * borrowed connection first. */
void catalog_destroy(struct catalog *c);
/* The database path (borrowed, lives as long as c). */
const char *catalog_db(const struct catalog *c);

/* The counts of commits that changed jobs, and metrics (store_changes in
 * store.h), moved by c's connections and by those given to store_watch with
 * them (the workers'): borrowed, lives as long as c. */
struct store_changes *catalog_changes(struct catalog *c);
/* The count of table t into *n: 0, or QN_EINVAL when it cannot be trusted
 * (then keep no page made from jobs or metrics). */
int catalog_changes_read(struct catalog *c, enum store_watched t, uint64_t *n);

/* Borrows a connection (opens one when none is idle); NULL when the
 * database cannot be opened (the reason goes to stderr). Give it back with
 * catalog_release. */
struct store *catalog_acquire(struct catalog *c);
/* Gives s back (NULL is fine): kept idle, or closed beyond the pool's size. */
void catalog_release(struct catalog *c, struct store *s);

/* ---- the database ------------------------------------------------------------- */

/* The last database error of s, in SQLite's words (borrowed, until the next call on s). */
const char *catalog_errmsg(const struct store *s);
/* What GET /healthz reports: the applied schema version and the users who hold a token. */
int catalog_health(struct store *s, int *schema, int64_t *users);
/* s's data version: it changes when another connection commits (store_data_version). */
int catalog_data_version(struct store *s, int64_t *out);

/* ---- devices ------------------------------------------------------------------- */

/* Validates a device JSON document fully (parse and prepare: spec_device_parse)
 * without storing it; QN_ESPEC with *err at the field. */
int catalog_device_check(const json_t *root, struct spec_error *err);
/*
 * Validates root (catalog_device_check) and stores it; its record into
 * *record. QN_ESPEC with *err (nothing stored); QN_EEXIST with *err at
 * "/name" when the name is taken. A caller that must refuse a bad device
 * before it opens the database calls catalog_device_check first.
 */
int catalog_device_add(struct store *s, const json_t *root, json_t **record,
                       struct spec_error *err);
/* A reference written in a URL path ({id}) into *ref: an id (digits), else a
 * name. QN_ENOTFOUND for a name longer than any stored one. */
int catalog_ref(const char *text, struct spec_ref *ref);

/* The device ref names into *out (catalog_device_free it). */
int catalog_device_find(struct store *s, const char *ref, struct store_device *out);
void catalog_device_free(struct store_device *d);
/* The record of the device ref names: {"id","name","kind","spec","created"}. */
int catalog_device_get(struct store *s, const char *ref, json_t **out);
/* The records of the devices with id > after, at most limit (0: all), as an
 * array into *items; *last the id of the last one (0: none). */
int catalog_device_list(struct store *s, int64_t after, size_t limit, json_t **items,
                        int64_t *last);

/* Sets whose names resolve first on s and who owns what it stores
 * (store_set_owner): the user a request acts as. catalog_release resets it. */
void catalog_set_owner(struct store *s, const char *owner);

/* ---- datasets ------------------------------------------------------------------ */

/* Imports a CSV or IDX file as import_file does (import.h: the codes, the
 * names refused, the default name from stem, and the sentence in msg) and
 * the new dataset's record into *record. */
int catalog_dataset_import(struct store *s, const char *path, const char *labels,
                           const char *name, const char *stem, json_t **record, char *msg,
                           size_t cap);
/* An upload: catalog_dataset_import without labels, within max_bytes
 * decompressed bytes (QN_ETOOLARGE beyond) and max_values values
 * (QN_ELIMIT beyond; import_file_max); 0: no limit. */
int catalog_dataset_upload(struct store *s, const char *path, const char *name,
                           uint64_t max_bytes, uint64_t max_values, json_t **record, char *msg,
                           size_t cap);
/* The dataset ref names into *out (catalog_dataset_free it). */
int catalog_dataset_find(struct store *s, const char *ref, struct store_dataset *out);
void catalog_dataset_free(struct store_dataset *d);
/* Rows [row0, row0 + n) of dataset id into out (n, n_cols) (store_dataset_read). */
int catalog_dataset_read(struct store *s, int64_t id, size_t row0, size_t n, float *out);
/* Dataset id as CSV to f (store_dataset_export_csv: a header of the column
 * names, a sweep's status as names); QN_EIO when f fails. */
int catalog_dataset_export_csv(struct store *s, int64_t id, FILE *f);
/* {"id","name","source","rows","cols","columns","job","created"}, one or a list
 * (as catalog_device_list). */
int catalog_dataset_get(struct store *s, const char *ref, json_t **out);
int catalog_dataset_list(struct store *s, int64_t after, size_t limit, json_t **items,
                         int64_t *last);

/* ---- surrogates and models ----------------------------------------------------- */

/* {"id","name","job","device","dataset","inputs","val_rmse","max_error","created"};
 * one record adds "weights" (the network and its standardisation, null when
 * the stored blob does not parse). */
int catalog_surrogate_get(struct store *s, const char *ref, json_t **out);
int catalog_surrogate_list(struct store *s, int64_t after, size_t limit, json_t **items,
                           int64_t *last);

/* The model ref names, with its arrays, into *out (catalog_model_free it). */
int catalog_model_find(struct store *s, const char *ref, struct store_model *out);
void catalog_model_free(struct store_model *m);
/* {"id","name","job","spec","inputs","outputs","classes","loss","params","created"}
 * ("params": the parameter count), one or a list. */
int catalog_model_get(struct store *s, const char *ref, json_t **out);
int catalog_model_list(struct store *s, int64_t after, size_t limit, json_t **items,
                       int64_t *last);

/* ---- jobs ---------------------------------------------------------------------- */

#define CATALOG_JOB_PRIORITY 1u /* the record has "priority" (the API's records) */
#define CATALOG_JOB_SPEC 2u     /* fill catalog_job.spec */

/* A job as the catalog shows it. */
struct catalog_job {
    int64_t id;
    enum store_job_state state;
    int ended;        /* 1: succeeded, failed or canceled */
    char owner[64];
    json_t *record;   /* the job record (job_record_json), with "priority" when asked (owned) */
    json_t *spec;     /* the stored spec; NULL unless CATALOG_JOB_SPEC (owned) */
};

/* Job id into *out (catalog_job_close it), with CATALOG_JOB_* bits `with`. */
int catalog_job_get(struct store *s, int64_t id, unsigned with, struct catalog_job *out);
/* The jobs matching f (NULL: all) with id > after, at most limit (0: all),
 * into a new array *out of *n (catalog_job_list_free it). */
int catalog_job_list(struct store *s, const struct store_job_filter *f, int64_t after,
                     size_t limit, unsigned with, struct catalog_job **out, size_t *n);
void catalog_job_close(struct catalog_job *j);
void catalog_job_list_free(struct catalog_job *list, size_t n);
/* A state's name ("running", static) and back; QN_EINVAL for no state. */
const char *catalog_job_state_name(enum store_job_state st);
int catalog_job_state_from_name(const char *name, enum store_job_state *out);
/*
 * Cancels job id from outside a daemon (the command line): a queued or
 * waiting job at once (its dependents fail), as queue_cancel_pending does.
 * QN_EBUSY when it is running (only the process running it can stop it),
 * QN_EEXIST when it had already ended (*state says how), QN_ENOTFOUND.
 */
int catalog_job_cancel(struct store *s, int64_t id, enum store_job_state *state);
/* The number of jobs in each state, indexed by enum store_job_state. */
int catalog_job_counts(struct store *s, int64_t counts[JOB_CANCELED + 1]);

/* ---- metrics ------------------------------------------------------------------- */

/* The metric rows q asks for (store_metric_list: after a row id, by name,
 * decimated) into a new array *out of *n (catalog_metric_list_free it). */
int catalog_metric_list(struct store *s, const struct store_metric_query *q,
                        struct store_metric **out, size_t *n);
void catalog_metric_list_free(struct store_metric *list, size_t n);
/* {"id","step","epoch","name","value","time"} ("value" null when not finite):
 * a row of GET /v1/jobs/{id}/metrics and the data of an SSE metric event. */
json_t *catalog_metric_json(const struct store_metric *m);
/* The same row as the JSON text spec_dumps(catalog_metric_json(m),
 * JSON_COMPACT | JSON_ENSURE_ASCII) gives, byte for byte, written straight
 * from the row (no tree, no second pass over the reals: a 1000-row page
 * took 5-7 ms that way), at buf (cap bytes, NUL-terminated). Its length, or
 * 0 when it does not fit or out of memory. */
size_t catalog_metric_text(const struct store_metric *m, char *buf, size_t cap);

#endif
