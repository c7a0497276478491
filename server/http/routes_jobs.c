/*
 * routes_jobs.c: the job routes (see routes_jobs.h for the contract).
 *
 * Handlers stay short on the request thread: a submission parses and
 * validates the spec (queue_submit) and wakes the pool; a cancel sets a flag
 * (workers_cancel); the event stream is handed to the pump (events_open).
 * Nothing here waits on a job.
 *
 * Metric decimation (max_points): per metric name, the first row, the last
 * row, and the first row of each of max_points - 1 equal index buckets in
 * between, so a plot of 100k steps keeps its ends and its shape in exactly
 * max_points points per name, computed in one SQL statement.
 */
#include "routes_jobs.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "events.h"
#include "http.h"
#include "job.h"
#include "qn_err.h"
#include "queue.h"
#include "workers.h"

/* ---- helpers --------------------------------------------------------------------- */

/* 503 while the daemon shuts down (or runs without a pool). */
static int rj__available(struct http_req *req, struct routes_ctx *d)
{
    if (!atomic_load(&d->stopping) && d->workers)
        return 0;
    http_reply_error(req, 503, "unavailable", NULL, "the daemon is shutting down");
    return QN_EBUSY;
}

/* A decimal integer in [lo, hi], the whole string. */
static int rj__int(const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    if (!text || !*text || strlen(text) > 19 || strspn(text, "0123456789") != strlen(text))
        return QN_EINVAL;
    long long v = strtoll(text, NULL, 10);
    if (v < lo || v > hi)
        return QN_ERANGE;
    *out = v;
    return 0;
}

/* An optional integer query argument; replies 400 at "?name" when malformed. */
static int rj__query_int(struct http_req *req, const char *name, int64_t lo, int64_t hi,
                         int64_t *out)
{
    const char *v = http_req_query(req, name);
    if (!v)
        return 0;
    if (rj__int(v, lo, hi, out) == 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "?%s", name);
    http_reply_error(req, 400, "invalid", path, "%s must be an integer from %" PRId64 " to %" PRId64,
                     name, lo, hi);
    return QN_EINVAL;
}

/* The {id} job into *j (store_job_free it); replies 404 when there is none. */
static int rj__load(struct http_req *req, struct store *s, int64_t *id, struct store_job *j)
{
    int rc = http_req_param_id(req, "id", "job", id);
    if (rc)
        return rc;
    rc = store_job_get(s, *id, j);
    if (rc == QN_ENOTFOUND)
        http_reply_error(req, 404, "not_found", NULL, "no such job: %" PRId64, *id);
    else if (rc)
        http_reply_error(req, http_status_for(rc), qn_err_name(rc), NULL,
                         "cannot read job %" PRId64 ": %s", *id, store_errmsg(s));
    return rc;
}

/* The job record with priority, the progress of a running job and (full) its spec. */
static json_t *rj__record(struct routes_ctx *d, const struct store_job *j, int full)
{
    json_t *r = job_record_json(j);
    if (!r)
        return NULL;
    uint64_t done = 0, total = 0;
    int fail = json_object_set_new(r, "priority", json_integer(j->priority));
    if (!fail && j->state == JOB_RUNNING && d->workers && !atomic_load(&d->stopping) &&
        workers_progress(d->workers, j->id, &done, &total) == 0)
        fail = json_object_set_new(r, "progress",
                                   json_pack("{sI sI}", "done", (json_int_t)done, "total",
                                             (json_int_t)total));
    if (!fail && full && j->spec) {
        json_t *spec = json_loads(j->spec, 0, NULL);
        fail = json_object_set_new(r, "spec", spec ? spec : json_null());
    }
    if (fail) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* Replies status with job id's record read back from the store. */
static int rj__reply_job(struct http_req *req, struct store *s, int64_t id, unsigned status,
                         int cancel_requested)
{
    struct store_job j;
    int rc = store_job_get(s, id, &j);
    if (rc)
        return rc;
    json_t *r = rj__record(routes_ctx(req), &j, 1);
    store_job_free(&j);
    if (r && cancel_requested)
        json_object_set_new(r, "cancel_requested", json_true());
    return http_reply_json(req, status, r);
}

/* ---- POST /v1/jobs ---------------------------------------------------------------- */

static int rj__submit(struct http_req *req)
{
    struct routes_ctx *d = routes_ctx(req);
    struct store *s;
    if (rj__available(req, d) || http_req_store_or_reply(req, &s))
        return 0;
    const struct user *u = http_req_user(req);
    struct spec_error err = {{0}, {0}};
    int64_t id = 0;
    enum store_job_state st;
    int rc = queue_submit(workers_queue(d->workers), s, http_req_json(req), u->name, &id, &st,
                          &err);
    if (rc == QN_ESPEC || rc == QN_EINVAL)
        return http_reply_error(req, 400, "invalid_spec", err.path, "%s",
                                err.msg[0] ? err.msg : "invalid job");
    if (rc)
        return http_reply_error(req, http_status_for(rc), qn_err_name(rc), NULL,
                                "cannot store the job: %s", store_errmsg(s));
    workers_wake(d->workers);
    return rj__reply_job(req, s, id, 201, 0);
}

/* ---- GET /v1/jobs ------------------------------------------------------------------ */

/* The filter arguments of a job list; replies 400 on a bad one. */
struct rj_filter {
    const char *state, *type, *owner; /* NULL: any */
};

static int rj__filter(struct http_req *req, struct rj_filter *f)
{
    enum store_job_state st;
    f->state = http_req_query(req, "state");
    f->type = http_req_query(req, "type");
    f->owner = http_req_query(req, "owner");
    if (f->state && store_job_state_from_name(f->state, &st) != 0) {
        http_reply_error(req, 400, "invalid", "?state",
                         "state must be one of waiting, queued, running, succeeded, failed, "
                         "canceled");
        return QN_EINVAL;
    }
    if (f->type && !job_type_find(f->type)) {
        char names[128];
        job_type_names(names, sizeof names);
        http_reply_error(req, 400, "invalid", "?type", "type must be one of %s", names);
        return QN_EINVAL;
    }
    return 0;
}

/* A list row as a record (the struct borrows the statement's text). */
static json_t *rj__row(struct routes_ctx *d, sqlite3_stmt *st)
{
    struct store_job j;
    memset(&j, 0, sizeof j);
    j.id = sqlite3_column_int64(st, 0);
    snprintf(j.type, sizeof j.type, "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(j.name, sizeof j.name, "%s", (const char *)sqlite3_column_text(st, 2));
    snprintf(j.owner, sizeof j.owner, "%s", (const char *)sqlite3_column_text(st, 3));
    j.priority = sqlite3_column_int(st, 4);
    store_job_state_from_name((const char *)sqlite3_column_text(st, 5), &j.state);
    j.result = (char *)sqlite3_column_text(st, 6);
    j.error = (char *)sqlite3_column_text(st, 7);
    const unsigned char *t;
    if ((t = sqlite3_column_text(st, 8)))
        snprintf(j.created, sizeof j.created, "%s", (const char *)t);
    if ((t = sqlite3_column_text(st, 9)))
        snprintf(j.started, sizeof j.started, "%s", (const char *)t);
    if ((t = sqlite3_column_text(st, 10)))
        snprintf(j.finished, sizeof j.finished, "%s", (const char *)t);
    return rj__record(d, &j, 0);
}

static int rj__list(struct http_req *req)
{
    struct rj_filter f;
    size_t limit;
    int64_t after, last = 0;
    struct store *s;
    if (rj__filter(req, &f) || http_req_page(req, &limit, &after) ||
        http_req_store_or_reply(req, &s))
        return 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite(s),
                           "SELECT id, type, name, owner, priority, state, result, error, created,"
                           " started, finished FROM jobs WHERE id > ?1 AND (?2 IS NULL OR"
                           " state = ?2) AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR"
                           " owner = ?4) ORDER BY id LIMIT ?5",
                           -1, &st, NULL) != SQLITE_OK)
        return QN_EDB;
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_text(st, 2, f.state, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, f.type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, f.owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)limit);
    json_t *items = json_array();
    int rc = items ? 0 : QN_ENOMEM, s_rc;
    while (rc == 0 && (s_rc = sqlite3_step(st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        rc = json_array_append_new(items, rj__row(routes_ctx(req), st)) ? QN_ENOMEM : 0;
    }
    if (rc == 0 && s_rc != SQLITE_DONE)
        rc = QN_EDB;
    sqlite3_finalize(st);
    if (rc) {
        json_decref(items);
        return rc;
    }
    json_t *next = json_array_size(items) == limit && last ? json_integer(last) : json_null();
    return http_reply_json(req, 200, json_pack("{so so}", "jobs", items, "next", next));
}

/* ---- GET /v1/jobs/{id} -------------------------------------------------------------- */

static int rj__get(struct http_req *req)
{
    struct store *s;
    struct store_job j;
    int64_t id;
    if (http_req_store_or_reply(req, &s) || rj__load(req, s, &id, &j))
        return 0;
    json_t *r = rj__record(routes_ctx(req), &j, 1);
    store_job_free(&j);
    return http_reply_json(req, 200, r);
}

/* ---- POST /v1/jobs/{id}/cancel -------------------------------------------------------- */

static int rj__cancel(struct http_req *req)
{
    struct routes_ctx *d = routes_ctx(req);
    const struct user *u = http_req_user(req);
    struct store *s;
    struct store_job j;
    int64_t id;
    if (http_req_store_or_reply(req, &s) || rj__load(req, s, &id, &j))
        return 0;
    int mine = strcmp(j.owner, u->name) == 0;
    char owner[sizeof j.owner];
    snprintf(owner, sizeof owner, "%s", j.owner);
    store_job_free(&j);
    if (!mine && !u->admin)
        return http_reply_error(req, 403, "forbidden", NULL,
                                "job %" PRId64 " belongs to %s: only its owner or an admin may "
                                "cancel it",
                                id, owner);
    if (rj__available(req, d))
        return 0;
    enum store_job_state st = JOB_QUEUED;
    int rc = workers_cancel(d->workers, s, id, &st);
    if (rc == QN_EEXIST)
        return http_reply_error(req, 409, "already_ended", NULL, "job %" PRId64 " has already %s",
                                id, st == JOB_SUCCEEDED ? "succeeded"
                                    : st == JOB_FAILED  ? "failed"
                                                        : "been canceled");
    if (rc == QN_EBUSY)
        return http_reply_error(req, 409, "busy", NULL,
                                "job %" PRId64 " is running outside this daemon's workers", id);
    if (rc)
        return http_reply_error(req, http_status_for(rc), qn_err_name(rc), NULL,
                                "cannot cancel job %" PRId64 ": %s", id, qn_err_msg(rc));
    return rj__reply_job(req, s, id, st == JOB_RUNNING ? 202 : 200, st == JOB_RUNNING);
}

/* ---- GET /v1/jobs/{id}/metrics ---------------------------------------------------------- */

/* The metric query's arguments. */
struct rj_mq {
    int64_t since;      /* rows with id > since */
    int64_t limit;      /* at most this many (without max_points) */
    int64_t max_points; /* 0: no decimation */
    const char *name;   /* NULL: every name */
};

static int rj__mq(struct http_req *req, struct rj_mq *q)
{
    q->since = 0;
    q->limit = ROUTES_JOBS_METRICS_DEFAULT;
    q->max_points = 0;
    q->name = http_req_query(req, "name");
    if (rj__query_int(req, "since", 0, INT64_MAX, &q->since) ||
        rj__query_int(req, "limit", 1, ROUTES_JOBS_METRICS_MAX, &q->limit) ||
        rj__query_int(req, "max_points", 2, ROUTES_JOBS_METRICS_MAX, &q->max_points))
        return QN_EINVAL;
    if (q->name && (!*q->name || strlen(q->name) > 63)) {
        http_reply_error(req, 400, "invalid", "?name", "name must be 1 to 63 bytes");
        return QN_EINVAL;
    }
    return 0;
}

static const char rj__metrics_sql[] =
    "SELECT id, step, epoch, name, value, time FROM metrics WHERE job_id = ?1 AND id > ?2"
    " AND (?3 IS NULL OR name = ?3) ORDER BY id LIMIT ?4";

static const char rj__decimate_sql[] =
    "WITH r AS (SELECT id, step, epoch, name, value, time,"
    "  row_number() OVER (PARTITION BY name ORDER BY id) - 1 AS k,"
    "  count(*) OVER (PARTITION BY name) AS n"
    "  FROM metrics WHERE job_id = ?1 AND id > ?2 AND (?3 IS NULL OR name = ?3))"
    " SELECT id, step, epoch, name, value, time FROM r"
    " WHERE n <= ?4 OR k = 0 OR (k * (?4 - 1)) / (n - 1) != ((k - 1) * (?4 - 1)) / (n - 1)"
    " ORDER BY id";

/* Runs the metric query into a new array; *last the last id, *more when cut by limit. */
static int rj__metric_rows(struct store *s, int64_t job, const struct rj_mq *q, json_t **out,
                           int64_t *last, int *more)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite(s), q->max_points ? rj__decimate_sql : rj__metrics_sql, -1,
                           &st, NULL) != SQLITE_OK)
        return QN_EDB;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, q->since);
    sqlite3_bind_text(st, 3, q->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, q->max_points ? q->max_points : q->limit + 1);
    json_t *rows = json_array();
    int rc = rows ? 0 : QN_ENOMEM, s_rc = SQLITE_DONE;
    *last = q->since;
    *more = 0;
    while (rc == 0 && (s_rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!q->max_points && (int64_t)json_array_size(rows) == q->limit) {
            *more = 1;
            break;
        }
        *last = sqlite3_column_int64(st, 0);
        rc = json_array_append_new(rows, events_metric_json(st)) ? QN_ENOMEM : 0;
    }
    if (rc == 0 && s_rc != SQLITE_DONE && s_rc != SQLITE_ROW)
        rc = QN_EDB;
    sqlite3_finalize(st);
    if (rc)
        json_decref(rows);
    else
        *out = rows;
    return rc;
}

static int rj__metrics(struct http_req *req)
{
    struct store *s;
    struct store_job j;
    struct rj_mq q;
    int64_t id, last;
    int more;
    json_t *rows = NULL;
    if (rj__mq(req, &q) || http_req_store_or_reply(req, &s) || rj__load(req, s, &id, &j))
        return 0;
    store_job_free(&j);
    int rc = rj__metric_rows(s, id, &q, &rows, &last, &more);
    if (rc)
        return http_reply_error(req, http_status_for(rc), qn_err_name(rc), NULL,
                                "cannot read the metrics: %s", store_errmsg(s));
    return http_reply_json(req, 200, json_pack("{so sI sb}", "metrics", rows, "next",
                                               (json_int_t)last, "more", more));
}

/* ---- GET /v1/jobs/{id}/events ------------------------------------------------------------ */

static int rj__events(struct http_req *req)
{
    struct routes_ctx *d = routes_ctx(req);
    struct store *s;
    struct store_job j;
    int64_t id, last = 0;
    if (http_req_store_or_reply(req, &s) || rj__load(req, s, &id, &j))
        return 0;
    store_job_free(&j);
    const char *h = http_req_header(req, "Last-Event-ID");
    if (h && *h && rj__int(h, 0, INT64_MAX, &last) != 0)
        return http_reply_error(req, 400, "invalid", "Last-Event-ID",
                                "Last-Event-ID must be the id of an event of this stream");
    if ((!h || !*h) && rj__query_int(req, "last_event_id", 0, INT64_MAX, &last))
        return 0;
    if (!d->events || atomic_load(&d->stopping))
        return http_reply_error(req, 503, "unavailable", NULL, "the daemon is shutting down");
    return events_open(d->events, req, id, last);
}

static const struct http_route rj__routes[] = {
    {"POST", "/v1/jobs", rj__submit, HTTP_F_JSON},
    {"GET", "/v1/jobs", rj__list, 0},
    {"GET", "/v1/jobs/{id}", rj__get, 0},
    {"POST", "/v1/jobs/{id}/cancel", rj__cancel, 0},
    {"GET", "/v1/jobs/{id}/metrics", rj__metrics, 0},
    {"GET", "/v1/jobs/{id}/events", rj__events, 0},
};

int routes_jobs_register(struct http_server *srv)
{
    return http_routes_add(srv, rj__routes, sizeof rj__routes / sizeof rj__routes[0]);
}
