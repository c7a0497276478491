/*
 * routes_jobs.c: the job routes (see routes_jobs.h for the contract).
 *
 * Handlers stay short on the request thread: a submission parses and
 * validates the spec (queue_submit) and wakes the pool; a cancel sets a flag
 * (workers_cancel); the event stream is handed to the pump (events_open).
 * Nothing here waits on a job. Records, lists and metric rows come from
 * the catalog (catalog.h); the metric decimation (max_points) is the
 * store's one metric query (store_catalog.h), shared with the event pump.
 *
 * A dashboard asks the same pages again and again: the job list, a job's
 * record, a running job's metrics. They are kept as their reply text
 * (page_cache.h) under the count of commits that changed their table
 * (catalog_changes_read: jobs for the list and records, metrics for metric
 * pages; a training run writes metrics, not jobs), read before the page is
 * made, and answered while the count stays the same; a finished job's
 * metric pages are kept for good. A running job's full page (`limit` rows
 * and more after them) cannot change while no metric row is deleted: it is
 * kept under the count of those trims instead (a live chart that asks from
 * where the load began otherwise rebuilt 1000 rows at every commit, 20
 * steps of a train). Most of a request's CPU was turning rows into JSON
 * text; a kept page costs a copy.
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

/* ---- pages kept while jobs and metrics stay the same -------------------------------- */

/*
 * A job list or a job's record is kept as its reply text and the places
 * where a running job's progress goes: progress moves with every training
 * step and is not in the store, so it is written in when the page is sent.
 * A kept list or record is one block: a struct routes_jobs__live, its
 * spots[n], then text[len].
 */
struct routes_jobs__spot {
    size_t at;  /* the progress goes before text[at] (a record's closing brace) */
    int64_t id; /* of this job, running when the page was made */
};

struct routes_jobs__live {
    size_t n;   /* spots */
    size_t len; /* bytes of text */
};

/* A list page being made: the block above, grown by doubling. */
struct routes_jobs__page {
    struct routes_jobs__spot *spots; /* (n) of cap_spots (owned) */
    size_t n, cap_spots;
    char *text;                      /* (len) of cap (owned) */
    size_t len, cap;
};

/* Appends text[n] to p. 0 or QN_ENOMEM. */
static int routes_jobs__add_text(struct routes_jobs__page *p, const char *text, size_t n)
{
    if (n > p->cap - p->len) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap - p->len < n)
            cap *= 2;
        char *t = realloc(p->text, cap);
        if (!t)
            return QN_ENOMEM;
        p->text = t;
        p->cap = cap;
    }
    memcpy(p->text + p->len, text, n);
    p->len += n;
    return 0;
}

/* Appends a record's JSON text (steals record) and, for a running job, the
 * spot of its progress: before the closing brace. 0 or QN_ENOMEM. */
static int routes_jobs__add_record(struct routes_jobs__page *p, json_t *record, int running,
                                   int64_t id)
{
    char *text = record ? spec_dumps(record, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(record);
    int rc = text ? routes_jobs__add_text(p, text, strlen(text)) : QN_ENOMEM;
    free(text);
    if (rc || !running)
        return rc;
    if (p->n == p->cap_spots) {
        size_t cap = p->cap_spots ? 2 * p->cap_spots : 8;
        struct routes_jobs__spot *s = realloc(p->spots, cap * sizeof *s);
        if (!s)
            return QN_ENOMEM;
        p->spots = s;
        p->cap_spots = cap;
    }
    p->spots[p->n].at = p->len - 1;
    p->spots[p->n++].id = id;
    return 0;
}

/* p as one kept block (malloc'd) into *out, *size; frees p. 0 or QN_ENOMEM. */
static int routes_jobs__seal(struct routes_jobs__page *p, char **out, size_t *size)
{
    struct routes_jobs__live h = {p->n, p->len};
    *size = sizeof h + p->n * sizeof *p->spots + p->len;
    *out = malloc(*size);
    if (*out) {
        memcpy(*out, &h, sizeof h);
        if (p->n)
            memcpy(*out + sizeof h, p->spots, p->n * sizeof *p->spots);
        memcpy(*out + sizeof h + p->n * sizeof *p->spots, p->text, p->len);
    }
    free(p->spots);
    free(p->text);
    return *out ? 0 : QN_ENOMEM;
}

/* Replies 200 with a kept block's text, the running jobs' progress written
 * in (as routes_jobs__record adds it). */
static int routes_jobs__send_live(struct http_req *req, const char *block)
{
    struct routes_ctx *d = routes_ctx(req);
    struct routes_jobs__live h;
    memcpy(&h, block, sizeof h);
    const char *spots = block + sizeof h, *text = spots + h.n * sizeof(struct routes_jobs__spot);
    enum { PROGRESS_MAX = 96 }; /* ,"progress":{"done":N,"total":N}: 70 bytes at most */
    char *out = malloc(h.len + h.n * PROGRESS_MAX);
    if (!out)
        return QN_ENOMEM;
    size_t w = 0, r = 0;
    int live = d->workers && !atomic_load(&d->stopping);
    for (size_t i = 0; i < h.n; i++) {
        struct routes_jobs__spot sp;
        uint64_t done = 0, total = 0;
        memcpy(&sp, spots + i * sizeof sp, sizeof sp);
        memcpy(out + w, text + r, sp.at - r);
        w += sp.at - r;
        r = sp.at;
        if (live && workers_progress(d->workers, sp.id, &done, &total) == 0)
            w += (size_t)snprintf(out + w, PROGRESS_MAX,
                                  ",\"progress\":{\"done\":%" PRIu64 ",\"total\":%" PRIu64 "}",
                                  done, total);
    }
    memcpy(out + w, text + r, h.len - r);
    return http_reply_json_text(req, 200, out, w + h.len - r);
}

/* The kept page of (job, key) made at generation gen: what replying with it
 * returned (0 or a code), or 1 when there is none. live: a list block
 * (routes_jobs__send_live), else the reply text itself. */
static int routes_jobs__cached(struct http_req *req, int64_t job, const char *key, uint64_t gen,
                               int live)
{
    char *text = NULL;
    size_t len = 0;
    if (page_cache_get(routes_ctx(req)->pages, job, key, gen, &text, &len) != 1)
        return 1;
    if (!live)
        return http_reply_json_text(req, 200, text, len);
    int rc = routes_jobs__send_live(req, text);
    free(text);
    return rc;
}

/* The generation pages made now from table t are kept under (its count of
 * changes plus one: 0 means for good) into *gen; 0 when none may be kept. */
static int routes_jobs__generation(struct http_req *req, enum store_watched t, uint64_t *gen)
{
    if (!routes_ctx(req)->pages || catalog_changes_read(http_req_catalog(req), t, gen) != 0)
        return 0;
    *gen += 1;
    return 1;
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

/* The list page of jobs[n] (next: the cursor of the next page, 0: none) as a
 * kept block into *out, *size: the text http_reply_json would send for
 * {"jobs": [records], "next": next}, without the progress. */
static int routes_jobs__list_block(struct catalog_job *jobs, size_t n, int64_t next, char **out,
                                   size_t *size)
{
    struct routes_jobs__page p = {0};
    char tail[48];
    int rc = routes_jobs__add_text(&p, "{\"jobs\":[", 9);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = routes_jobs__add_text(&p, ",", 1);
        if (rc == 0)
            rc = routes_jobs__add_record(&p, jobs[i].record, jobs[i].state == JOB_RUNNING,
                                         jobs[i].id);
        jobs[i].record = NULL; /* stolen */
    }
    if (next)
        snprintf(tail, sizeof tail, "],\"next\":%" PRId64 "}\n", next);
    else
        snprintf(tail, sizeof tail, "],\"next\":null}\n");
    if (rc == 0)
        rc = routes_jobs__add_text(&p, tail, strlen(tail));
    if (rc) {
        free(p.spots);
        free(p.text);
        return rc;
    }
    return routes_jobs__seal(&p, out, size);
}

/* The kept list's key: the filter and the page, each string with its length
 * before it (so no two queries share one); 0 when it does not fit. */
static int routes_jobs__list_key(char *key, const struct store_job_filter *f, int64_t after,
                                 size_t limit)
{
    const char *v[3] = {f->state, f->type, f->owner};
    size_t w = 0;
    for (int i = 0; i < 3 && w < PAGE_CACHE_KEY_MAX; i++)
        w += (size_t)(v[i] ? snprintf(key + w, PAGE_CACHE_KEY_MAX - w, "%zu:%s ", strlen(v[i]), v[i])
                           : snprintf(key + w, PAGE_CACHE_KEY_MAX - w, "- "));
    if (w < PAGE_CACHE_KEY_MAX)
        w += (size_t)snprintf(key + w, PAGE_CACHE_KEY_MAX - w, "%" PRId64 " %zu", after, limit);
    return w < PAGE_CACHE_KEY_MAX;
}

static int routes_jobs__list(struct http_req *req)
{
    struct store_job_filter f;
    size_t limit, n = 0, size = 0;
    int64_t after;
    uint64_t gen = 0;
    struct store *s;
    char key[PAGE_CACHE_KEY_MAX];
    if (routes_jobs__filter(req, &f) || http_req_page(req, &limit, &after))
        return 0;
    int keep = routes_jobs__generation(req, STORE_WATCH_JOBS, &gen) &&
               routes_jobs__list_key(key, &f, after, limit);
    int rc = keep ? routes_jobs__cached(req, 0, key, gen, 1) : 1;
    if (rc != 1)
        return rc;
    if (http_req_store_or_reply(req, &s))
        return 0;
    struct catalog_job *jobs = NULL;
    char *block = NULL;
    rc = catalog_job_list(s, &f, after, limit, CATALOG_JOB_PRIORITY, &jobs, &n);
    if (rc == 0)
        rc = routes_jobs__list_block(jobs, n, n == limit ? jobs[n - 1].id : 0, &block, &size);
    catalog_job_list_free(jobs, n);
    if (rc)
        return rc;
    if (keep)
        page_cache_put(routes_ctx(req)->pages, 0, key, gen, block, size);
    rc = routes_jobs__send_live(req, block);
    free(block);
    return rc;
}

/* ---- GET /v1/jobs/{id} -------------------------------------------------------------- */

/* Job j's record with its spec (what routes_jobs__record gives) as a kept
 * block: a running job's progress goes before the spec. Takes j's record
 * and reads its spec. 0 or QN_ENOMEM. */
static int routes_jobs__record_block(struct catalog_job *j, char **out, size_t *size)
{
    struct routes_jobs__page p = {0};
    char *spec = NULL;
    int rc = routes_jobs__add_record(&p, j->record, j->state == JOB_RUNNING, j->id);
    j->record = NULL;
    if (rc == 0 && j->spec) { /* {...record} -> {...record,"spec":...} */
        spec = spec_dumps(j->spec, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        p.len--;
        rc = spec ? routes_jobs__add_text(&p, ",\"spec\":", 8) : QN_ENOMEM;
        if (rc == 0)
            rc = routes_jobs__add_text(&p, spec, strlen(spec));
        if (rc == 0)
            rc = routes_jobs__add_text(&p, "}", 1);
    }
    if (rc == 0)
        rc = routes_jobs__add_text(&p, "\n", 1);
    free(spec);
    if (rc) {
        free(p.spots);
        free(p.text);
        return rc;
    }
    return routes_jobs__seal(&p, out, size);
}

static int routes_jobs__get(struct http_req *req)
{
    struct store *s;
    struct catalog_job j;
    int64_t id;
    uint64_t gen = 0;
    char *block = NULL;
    size_t size = 0;
    if (http_req_param_id(req, "id", "job", &id))
        return 0;
    int keep = routes_jobs__generation(req, STORE_WATCH_JOBS, &gen);
    int rc = keep ? routes_jobs__cached(req, id, "record", gen, 1) : 1;
    if (rc != 1)
        return rc;
    if (http_req_store_or_reply(req, &s) ||
        routes_jobs__load(req, s, &id, CATALOG_JOB_PRIORITY | CATALOG_JOB_SPEC, &j))
        return 0;
    rc = routes_jobs__record_block(&j, &block, &size);
    catalog_job_close(&j);
    if (rc)
        return rc;
    if (keep) /* "record" is no metric query's key: those begin with a digit */
        page_cache_put(routes_ctx(req)->pages, id, "record", gen, block, size);
    rc = routes_jobs__send_live(req, block);
    free(block);
    return rc;
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

#define ROUTES_JOBS_PAGE_HEAD "{\"metrics\":["
#define ROUTES_JOBS_PAGE_TAIL "],\"next\":"

#define ROUTES_JOBS_ROW_MAX 512 /* bytes of a metric row's text (a 63-byte name all escaped) */

/*
 * The reply text of a metric page (what http_reply_json would send: the JSON
 * {"metrics": [...], "next": last, "more": more} and a newline) into *out,
 * its length into *len: the rows old[old_len] (an earlier page's, without
 * brackets: routes_jobs__page_rows) then rows[n] (catalog_metric_text; last
 * becomes the last one's id). 0 or QN_ENOMEM.
 */
static int routes_jobs__page_text(const char *old, size_t old_len,
                                  const struct store_metric *rows, size_t n, int64_t last,
                                  int more, char **out, size_t *len)
{
    size_t cap = strlen(ROUTES_JOBS_PAGE_HEAD) + old_len + n * (ROUTES_JOBS_ROW_MAX + 1) + 64;
    char *t = malloc(cap);
    if (!t)
        return QN_ENOMEM;
    size_t k = (size_t)snprintf(t, cap, "%s%.*s", ROUTES_JOBS_PAGE_HEAD, (int)old_len, old);
    for (size_t i = 0; i < n; i++) {
        if (old_len || i)
            t[k++] = ',';
        size_t m = catalog_metric_text(&rows[i], t + k, ROUTES_JOBS_ROW_MAX);
        if (!m) {
            free(t);
            return QN_ENOMEM;
        }
        k += m;
        last = rows[i].id;
    }
    k += (size_t)snprintf(t + k, cap - k, "%s%" PRId64 ",\"more\":%s}\n", ROUTES_JOBS_PAGE_TAIL,
                          last, more ? "true" : "false");
    *out = t;
    *len = k;
    return 0;
}

/* The rows of page text p[len] (routes_jobs__page_text's), without their
 * brackets, into *rows, *rows_len, and the id after which they end (its
 * "next") into *next; 0, or -1 when p is not such a page. The tail is
 * looked for from the end: it is the last few bytes of a 100 KB page. */
static int routes_jobs__page_rows(const char *p, size_t len, const char **rows,
                                  size_t *rows_len, int64_t *next)
{
    size_t head = strlen(ROUTES_JOBS_PAGE_HEAD), tail = strlen(ROUTES_JOBS_PAGE_TAIL);
    if (len < head + tail || strncmp(p, ROUTES_JOBS_PAGE_HEAD, head) != 0)
        return -1;
    const char *t = p + len - tail;
    while (t > p + head && memcmp(t, ROUTES_JOBS_PAGE_TAIL, tail) != 0)
        t--;
    char *end;
    long long v = strtoll(t + tail, &end, 10);
    if (memcmp(t, ROUTES_JOBS_PAGE_TAIL, tail) != 0 || *end != ',')
        return -1;
    *rows = p + head;
    *rows_len = (size_t)(t - *rows);
    *next = v;
    return 0;
}

/*
 * GET /v1/jobs/{id}/metrics. Pages are kept (see the header): a finished
 * job's for good; a running job's page of rows (no max_points) under the
 * count of metric trims (its key names it), for good while full, else under
 * the count of metric commits, and when that moved it grows from the kept
 * one by the rows after it: metric rows are appended in id order, so the
 * rows a page showed stay its first rows until a trim.
 */
static int routes_jobs__metrics(struct http_req *req)
{
    struct page_cache *pages = routes_ctx(req)->pages;
    struct store *s;
    struct catalog_job j;
    struct store_metric_query q = {0};
    struct store_metric *rows = NULL;
    size_t n = 0;
    uint64_t gen = 0, trims = 0;
    if (routes_jobs__mq(req, &q) || http_req_param_id(req, "id", "job", &q.job))
        return 0;
    char key[PAGE_CACHE_KEY_MAX], live[PAGE_CACHE_KEY_MAX];
    snprintf(key, sizeof key, "%" PRId64 " %zu %zu %s", q.after, q.limit, q.max_points,
             q.name ? q.name : "");
    int keep = routes_jobs__generation(req, STORE_WATCH_METRICS, &gen);
    int grows = keep && q.limit && routes_jobs__generation(req, STORE_WATCH_TRIMS, &trims) &&
                snprintf(live, sizeof live, "%s t%" PRIu64, key, trims) < (int)sizeof live;
    int rc = routes_jobs__cached(req, q.job, key, 0, 0);
    if (rc == 1 && grows) {
        rc = routes_jobs__cached(req, q.job, live, 0, 0);
        if (rc == 1)
            rc = routes_jobs__cached(req, q.job, live, gen, 0);
    } else if (rc == 1 && keep) {
        rc = routes_jobs__cached(req, q.job, key, gen, 0);
    }
    if (rc != 1)
        return rc;
    if (http_req_store_or_reply(req, &s) || routes_jobs__load(req, s, &q.job, 0, &j))
        return 0;
    if (j.state == JOB_SUCCEEDED || j.state == JOB_FAILED || j.state == JOB_CANCELED)
        gen = 0, keep = 1, grows = 0; /* its metrics cannot change */
    catalog_job_close(&j);
    /* A running job's kept page, to grow by the rows after it. */
    char *prev = NULL, *text = NULL;
    const char *old = "";
    size_t prev_len, old_len = 0, len = 0;
    uint64_t prev_gen, prev_rows = 0;
    int64_t last = q.after;
    if (grows && page_cache_latest(pages, q.job, live, &prev_gen, &prev_rows, &prev,
                                   &prev_len) == 1) {
        if (prev_gen && prev_rows < q.limit - 1 &&
            routes_jobs__page_rows(prev, prev_len, &old, &old_len, &last) == 0) {
            q.after = last;
            q.limit -= prev_rows;
        } else {
            old = "", old_len = 0, prev_rows = 0;
        }
    }
    rc = catalog_metric_list(s, &q, &rows, &n);
    int more = rc == 0 && q.limit && n == q.limit; /* the row past the limit */
    if (rc == 0)
        rc = routes_jobs__page_text(old, old_len, rows, more ? n - 1 : n, last, more, &text,
                                    &len);
    catalog_metric_list_free(rows, n);
    free(prev);
    if (rc)
        return http_reply_err(req, rc, NULL, "cannot read the metrics: %s", catalog_errmsg(s));
    if (grows)
        page_cache_put_tagged(pages, q.job, live, more ? 0 : gen,
                              prev_rows + (more ? n - 1 : n), text, len);
    else if (keep)
        page_cache_put(pages, q.job, key, gen, text, len);
    return http_reply_json_text(req, 200, text, len);
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
