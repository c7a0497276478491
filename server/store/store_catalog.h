/*
 * store_catalog.h: what the catalog (server/jobs/catalog.h) reads besides
 * store.h's records: job lists by filter, a job's metric rows after a row id
 * (decimated on request), jobs by state, surrogate and model lists without
 * their weights, and a connection's data version.
 *
 * Same contract as store.h: one connection, 0 or a qn_err code, lists are
 * pages ordered by id (rows with id > after, at most limit; 0: all).
 */
#ifndef QN_STORE_CATALOG_H
#define QN_STORE_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* ---- jobs ---------------------------------------------------------------- */

/* Which jobs a list shows; a NULL field matches any job (strings borrowed).
 * A state name that is no state matches none. */
struct store_job_filter {
    const char *state; /* "queued", ... */
    const char *type;  /* "sweep", ... */
    const char *owner;
};

/* The jobs matching f (NULL: every job) with id > after, ascending, at most
 * limit (0: all), into a new array *out of *n (store_job_list_free it). */
int store_job_list(struct store *s, const struct store_job_filter *f, int64_t after, size_t limit,
                   struct store_job **out, size_t *n);
void store_job_list_free(struct store_job *list, size_t n);

/* The number of jobs in each state, indexed by enum store_job_state. */
int store_job_counts(struct store *s, int64_t counts[JOB_CANCELED + 1]);

/* ---- metrics -------------------------------------------------------------- */

/* One metric row. */
struct store_metric {
    int64_t id;    /* row id, increasing (the SSE event id) */
    int64_t step;
    int64_t epoch;
    char *name;    /* "step_loss", ... (owned) */
    double value;  /* NaN when stored as NULL (the value was not finite) */
    double time;   /* unix seconds */
};

/*
 * Which metric rows to read. Decimation (max_points >= 2): per name, the
 * first row, the last row, and the first row of each of max_points - 1
 * equal index buckets in between, so a plot of 100k steps keeps its ends
 * and its shape in exactly max_points rows per name (every row of a name
 * that has at most max_points).
 */
struct store_metric_query {
    int64_t job;       /* the job's rows */
    int64_t after;     /* rows with id > after */
    const char *name;  /* NULL: every name (borrowed) */
    size_t limit;      /* at most this many rows, 0: all (applied after decimation) */
    size_t max_points; /* 0: every row; else >= 2, decimated per name */
};

/* The rows q asks for, ascending by id, into a new array *out of *n
 * (store_metric_list_free it). */
int store_metric_list(struct store *s, const struct store_metric_query *q,
                      struct store_metric **out, size_t *n);
void store_metric_list_free(struct store_metric *list, size_t n);

/* ---- surrogates and models ---------------------------------------------------- */

/* Surrogates with id > after, at most limit (0: all), every field but the
 * weights (blob NULL, blob_len 0), into a new array (store_surrogate_list_free). */
int store_surrogate_list(struct store *s, int64_t after, size_t limit,
                         struct store_surrogate **out, size_t *n);
void store_surrogate_list_free(struct store_surrogate *list, size_t n);

/*
 * Models as their records show them: every field but the arrays (params and
 * scaler NULL, n_scaler 0) and n_params the parameter count. The list as
 * above (store_model_list_free it); one by id or by name as
 * store_model_get_by_name resolves it (store_model_free it; QN_ENOTFOUND
 * when absent).
 */
int store_model_list(struct store *s, int64_t after, size_t limit, struct store_model **out,
                     size_t *n);
void store_model_list_free(struct store_model *list, size_t n);
int store_model_summary(struct store *s, int64_t id, struct store_model *out);
int store_model_summary_by_name(struct store *s, const char *name, struct store_model *out);

/* ---- the connection -------------------------------------------------------------- */

/* PRAGMA data_version of this connection: it changes when another connection
 * commits, so a poller can tell cheaply whether to read again. */
int store_data_version(struct store *s, int64_t *out);

#endif
