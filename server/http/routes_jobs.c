/*
 * routes_jobs.c: the job routes (see routes_jobs.h for the contract).
 *
 * Handlers stay short on the request thread: a submission parses and
 * validates the spec (queue_submit) and wakes the pool; a cancel sets a flag
 * (workers_cancel); the event stream is handed to the pump (events_open).
 * Nothing here waits on a job. Records, lists and metric rows come from
 * the catalog (catalog.h); the metric decimation (max_points) is the
 * store's one metric query (store_catalog.h), shared with the event pump.
 */
#include "routes_jobs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"
#include "catalog.h"
#include "events.h"
#include "http.h"
#include "job.h"
#include "page_cache.h"
#include "qn_err.h"
#include "queue.h"
#include "spec_dumps.h"
#include "workers.h"

/* ---- helpers --------------------------------------------------------------------- */

/* 503 while the daemon shuts down (or runs without a pool). */
static int routes_jobs__available(struct http_req *req, struct routes_ctx *d)
{
    if (!atomic_load(&d->stopping) && d->workers)
        return 0;
    http_reply_err(req, QN_EUNAVAIL, NULL, "the daemon is shutting down");
    return QN_EBUSY;
}

/* A decimal integer in [lo, hi], the whole string. */
static int routes_jobs__int(const char *text, int64_t lo, int64_t hi, int64_t *out)
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
static int routes_jobs__query_int(struct http_req *req, const char *name, int64_t lo, int64_t hi,
                         int64_t *out)
{
    const char *v = http_req_query(req, name);
    if (!v)
        return 0;
    if (routes_jobs__int(v, lo, hi, out) == 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "?%s", name);
    http_reply_err(req, QN_EINVAL, path, "%s must be an integer from %" PRId64 " to %" PRId64, name,
                   lo, hi);
    return QN_EINVAL;
}

/* The {id} job into *j (catalog_job_close it) with CATALOG_JOB_* bits `with`;
 * replies 404 when there is none. */
static int routes_jobs__load(struct http_req *req, struct store *s, int64_t *id, unsigned with,
                    struct catalog_job *j)
{
    int rc = http_req_param_id(req, "id", "job", id);
    if (rc)
        return rc;
    rc = catalog_job_get(s, *id, with, j);
    if (rc == QN_ENOTFOUND)
        http_reply_err(req, QN_ENOTFOUND, NULL, "no such job: %" PRId64, *id);
    else if (rc)
        http_reply_err(req, rc, NULL, "cannot read job %" PRId64 ": %s", *id, catalog_errmsg(s));
    return rc;
}

/* The API's job record: j's record (taken from j: it has "priority") with the
 * progress of a running job, then j's spec when it was asked for. */
static json_t *routes_jobs__record(struct routes_ctx *d, struct catalog_job *j)
{
    json_t *r = j->record;
    j->record = NULL;
    uint64_t done = 0, total = 0;
    int fail = 0;
    if (j->state == JOB_RUNNING && d->workers && !atomic_load(&d->stopping) &&
        workers_progress(d->workers, j->id, &done, &total) == 0)
        fail = json_object_set_new(r, "progress",
                                   json_pack("{sI sI}", "done", (json_int_t)done, "total",
                                             (json_int_t)total));
    if (!fail && j->spec) {
        fail = json_object_set_new(r, "spec", j->spec);
        j->spec = NULL;
    }
    if (fail) {
        json_decref(r);
        return NULL;
    }
    return r;
}

/* Replies status with job id's record read back from the store. */
static int routes_jobs__reply_job(struct http_req *req, struct store *s, int64_t id,
                                  unsigned status, int cancel_requested)
{
    struct catalog_job j;
    int rc = catalog_job_get(s, id, CATALOG_JOB_PRIORITY | CATALOG_JOB_SPEC, &j);
    if (rc)
        return rc;
    json_t *r = routes_jobs__record(routes_ctx(req), &j);
    catalog_job_close(&j);
    if (r && cancel_requested)
        json_object_set_new(r, "cancel_requested", json_true());
    return http_reply_json(req, status, r);
}

/* ---- POST /v1/jobs ---------------------------------------------------------------- */

static int routes_jobs__submit(struct http_req *req)
{
    struct routes_ctx *d = routes_ctx(req);
    struct store *s;
    if (routes_jobs__available(req, d) || http_req_store_or_reply(req, &s))
        return 0;
    const struct user *u = http_req_user(req);
    struct spec_error err = {{0}, {0}};
    int64_t id = 0;
    enum store_job_state st;
    int rc = queue_priority_allowed(http_req_json(req), u->admin, &err);
    if (rc)
        return http_reply_err(req, rc, err.path, "%s", err.msg);
    rc = queue_submit(workers_queue(d->workers), s, http_req_json(req), u->name, &id, &st, &err);
    if (rc == QN_ESPEC || rc == QN_EINVAL)
        return http_reply_err(req, QN_ESPEC, err.path, "%s", err.msg[0] ? err.msg : "invalid job");
    if (rc == QN_ELIMIT || rc == QN_EREMOTE)
        return http_reply_err(req, rc, err.path, "%s", err.msg);
    if (rc)
        return http_reply_err(req, rc, NULL, "%scannot store the job: %s",
                              rc == QN_EFULL ? "the disk is full: " : "", catalog_errmsg(s));
    workers_wake(d->workers);
    return routes_jobs__reply_job(req, s, id, 201, 0);
}

/* ---- GET /v1/jobs ------------------------------------------------------------------ */

/* The filter arguments of a job list; replies 400 on a bad one. */
static int routes_jobs__filter(struct http_req *req, struct store_job_filter *f)
{
    enum store_job_state st;
    f->state = http_req_query(req, "state");
    f->type = http_req_query(req, "type");
    f->owner = http_req_query(req, "owner");
    if (f->state && catalog_job_state_from_name(f->state, &st) != 0) {
        http_reply_err(req, QN_EINVAL, "?state",
                       "state must be one of waiting, queued, running, succeeded, failed, "
                       "canceled");
        return QN_EINVAL;
    }
    if (f->type && !job_type_find(f->type)) {
        char names[128];
        job_type_names(names, sizeof names);
        http_reply_err(req, QN_EINVAL, "?type", "type must be one of %s", names);
        return QN_EINVAL;
    }
    return 0;
}

/* The records of jobs[n] into a new array *out. */
static int routes_jobs__records(struct routes_ctx *d, struct catalog_job *jobs, size_t n,
                                json_t **out)
{
    json_t *items = json_array();
    int rc = items ? 0 : QN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = json_array_append_new(items, routes_jobs__record(d, &jobs[i])) ? QN_ENOMEM : 0;
    if (rc)
        json_decref(items);
    else
        *out = items;
    return rc;
}

static int routes_jobs__list(struct http_req *req)
{
    struct store_job_filter f;
    size_t limit, n = 0;
    int64_t after;
    struct store *s;
    if (routes_jobs__filter(req, &f) || http_req_page(req, &limit, &after) ||
        http_req_store_or_reply(req, &s))
        return 0;
    struct catalog_job *jobs = NULL;
    json_t *items = NULL;
    int rc = catalog_job_list(s, &f, after, limit, CATALOG_JOB_PRIORITY, &jobs, &n);
    if (rc == 0)
        rc = routes_jobs__records(routes_ctx(req), jobs, n, &items);
    int64_t last = n ? jobs[n - 1].id : 0;
    catalog_job_list_free(jobs, n);
    if (rc)
        return rc;
    json_t *next = json_array_size(items) == limit && last ? json_integer(last) : json_null();
    return http_reply_json(req, 200, json_pack("{so so}", "jobs", items, "next", next));
}

/* ---- GET /v1/jobs/{id} -------------------------------------------------------------- */

static int routes_jobs__get(struct http_req *req)
{
    struct store *s;
    struct catalog_job j;
    int64_t id;
    if (http_req_store_or_reply(req, &s) ||
        routes_jobs__load(req, s, &id, CATALOG_JOB_PRIORITY | CATALOG_JOB_SPEC, &j))
        return 0;
    json_t *r = routes_jobs__record(routes_ctx(req), &j);
    catalog_job_close(&j);
    return http_reply_json(req, 200, r);
}

/* ---- POST /v1/jobs/{id}/cancel -------------------------------------------------------- */

static int routes_jobs__cancel(struct http_req *req)
{
    struct routes_ctx *d = routes_ctx(req);
    const struct user *u = http_req_user(req);
    struct store *s;
    struct catalog_job j;
    int64_t id;
    if (http_req_store_or_reply(req, &s) || routes_jobs__load(req, s, &id, 0, &j))
        return 0;
    int mine = strcmp(j.owner, u->name) == 0;
    char owner[sizeof j.owner];
    snprintf(owner, sizeof owner, "%s", j.owner);
    catalog_job_close(&j);
    if (!mine && !u->admin)
        return http_reply_err(req, QN_EFORBID, NULL,
                              "job %" PRId64 " belongs to %s: only its owner or an admin may "
                              "cancel it",
                              id, owner);
    if (routes_jobs__available(req, d))
        return 0;
    enum store_job_state st = JOB_QUEUED;
    int rc = workers_cancel(d->workers, s, id, &st);
    if (rc == QN_EEXIST)
        return http_reply_err(req, QN_EENDED, NULL, "job %" PRId64 " has already %s", id,
                              st == JOB_SUCCEEDED ? "succeeded"
                              : st == JOB_FAILED  ? "failed"
                                                  : "been canceled");
    if (rc == QN_EBUSY)
        return http_reply_err(req, QN_EELSEWHERE, NULL,
                              "job %" PRId64 " is running outside this daemon's workers", id);
    if (rc)
        return http_reply_err(req, rc, NULL, "cannot cancel job %" PRId64 ": %s", id,
                              qn_err_msg(rc));
    return routes_jobs__reply_job(req, s, id, st == JOB_RUNNING ? 202 : 200, st == JOB_RUNNING);
}

/* ---- GET /v1/jobs/{id}/metrics ---------------------------------------------------------- */

/* The metric query's arguments into q (all but the job); replies 400 on a bad
 * one. Without max_points one row more than the limit is asked for: it tells
 * whether there are more. */
static int routes_jobs__mq(struct http_req *req, struct store_metric_query *q)
{
    int64_t since = 0, limit = ROUTES_JOBS_METRICS_DEFAULT, max_points = 0;
    q->name = http_req_query(req, "name");
    if (routes_jobs__query_int(req, "since", 0, INT64_MAX, &since) ||
        routes_jobs__query_int(req, "limit", 1, ROUTES_JOBS_METRICS_MAX, &limit) ||
        routes_jobs__query_int(req, "max_points", 2, ROUTES_JOBS_METRICS_MAX, &max_points))
        return QN_EINVAL;
    if (q->name && (!*q->name || strlen(q->name) > 63)) {
        http_reply_err(req, QN_EINVAL, "?name", "name must be 1 to 63 bytes");
        return QN_EINVAL;
    }
    q->after = since;
    q->max_points = (size_t)max_points;
    q->limit = max_points ? 0 : (size_t)limit + 1;
    return 0;
}

/* rows[n] as JSON into a new array *out; *last the last id (unchanged when n is 0). */
static int routes_jobs__metric_rows(const struct store_metric *rows, size_t n, json_t **out,
                           int64_t *last)
{
    json_t *a = json_array();
    int rc = a ? 0 : QN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = json_array_append_new(a, catalog_metric_json(&rows[i])) ? QN_ENOMEM : 0;
        *last = rows[i].id;
    }
    if (rc)
        json_decref(a);
    else
        *out = a;
    return rc;
}

/* The page of a finished job (its metrics cannot change) from the cache:
 * what replying with it returned, or 1 when it is not there. */
static int routes_jobs__cached(struct http_req *req, struct page_cache *pages, int64_t job,
                               const char *key)
{
    char *text = NULL;
    size_t len = 0;
    if (page_cache_get(pages, job, key, &text, &len) != 1)
        return 1;
    int rc = http_reply_text(req, 200, "application/json", text, len);
    free(text);
    return rc;
}

static int routes_jobs__metrics(struct http_req *req)
{
    struct page_cache *pages = routes_ctx(req)->pages;
    struct store *s;
    struct catalog_job j;
    struct store_metric_query q = {0};
    struct store_metric *rows = NULL;
    size_t n = 0;
    json_t *items = NULL;
    if (routes_jobs__mq(req, &q) || http_req_store_or_reply(req, &s) ||
        routes_jobs__load(req, s, &q.job, 0, &j))
        return 0;
    int finished = j.state == JOB_SUCCEEDED || j.state == JOB_FAILED || j.state == JOB_CANCELED;
    catalog_job_close(&j);
    char key[PAGE_CACHE_KEY_MAX];
    snprintf(key, sizeof key, "%" PRId64 " %zu %zu %s", q.after, q.limit, q.max_points,
             q.name ? q.name : "");
    int cached = finished ? routes_jobs__cached(req, pages, q.job, key) : 1;
    if (cached != 1)
        return cached;
    int64_t last = q.after;
    int rc = catalog_metric_list(s, &q, &rows, &n);
    int more = rc == 0 && q.limit && n == q.limit; /* the row past the limit */
    if (rc == 0)
        rc = routes_jobs__metric_rows(rows, more ? n - 1 : n, &items, &last);
    catalog_metric_list_free(rows, n);
    if (rc)
        return http_reply_err(req, rc, NULL, "cannot read the metrics: %s", catalog_errmsg(s));
    json_t *page = json_pack("{so sI sb}", "metrics", items, "next", (json_int_t)last, "more",
                             more);
    if (!finished || !pages || !page)
        return http_reply_json(req, 200, page);
    /* The text http_reply_json would send (JSON, then a newline), kept for next time. */
    char *text = spec_dumps(page, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(page);
    if (!text)
        return QN_ENOMEM;
    size_t len = strlen(text);
    text[len] = '\n'; /* over the NUL: text[len + 1] is the reply */
    page_cache_put(pages, q.job, key, text, len + 1);
    rc = http_reply_text(req, 200, "application/json", text, len + 1);
    free(text);
    return rc;
}

/* ---- GET /v1/jobs/{id}/events ------------------------------------------------------------ */

static int routes_jobs__events(struct http_req *req)
{
    struct routes_ctx *d = routes_ctx(req);
    struct store *s;
    struct catalog_job j;
    int64_t id, last = 0;
    if (http_req_store_or_reply(req, &s) || routes_jobs__load(req, s, &id, 0, &j))
        return 0;
    catalog_job_close(&j);
    const char *h = http_req_header(req, "Last-Event-ID");
    if (h && *h && routes_jobs__int(h, 0, INT64_MAX, &last) != 0)
        return http_reply_err(req, QN_EINVAL, "Last-Event-ID",
                              "Last-Event-ID must be the id of an event of this stream");
    if ((!h || !*h) && routes_jobs__query_int(req, "last_event_id", 0, INT64_MAX, &last))
        return 0;
    if (!d->events || atomic_load(&d->stopping))
        return http_reply_err(req, QN_EUNAVAIL, NULL, "the daemon is shutting down");
    return events_open(d->events, req, id, last);
}

static const struct http_route routes_jobs__routes[] = {
    {"POST", "/v1/jobs", routes_jobs__submit, HTTP_F_JSON},
    {"GET", "/v1/jobs", routes_jobs__list, 0},
    {"GET", "/v1/jobs/{id}", routes_jobs__get, 0},
    {"POST", "/v1/jobs/{id}/cancel", routes_jobs__cancel, 0},
    {"GET", "/v1/jobs/{id}/metrics", routes_jobs__metrics, 0},
    {"GET", "/v1/jobs/{id}/events", routes_jobs__events, 0},
};

int routes_jobs_register(struct http_server *srv)
{
    return http_routes_add(srv, routes_jobs__routes,
                           sizeof routes_jobs__routes / sizeof routes_jobs__routes[0]);
}
