/*
 * events.c: SSE streams of job events and the pump thread (see events.h).
 *
 * Locking: one mutex (e->mu) guards the list of streams and every stream's
 * buffer and flags. MHD is never called with it held: a reader that finds
 * its buffer empty marks the stream suspended, unlocks, then suspends the
 * connection; the pump collects the streams to wake under the lock and
 * resumes them after unlocking. If the pump's resume comes before the
 * reader's suspend, MHD cancels the suspension (its "resuming" flag), so no
 * wake-up is lost. A suspended connection is never closed by MHD, which is
 * why the pump may still use its pointer after unlocking.
 *
 * Lifetime: struct events is shared by the daemon and by every stream's
 * response (MHD frees those, possibly after events_stop), so it is
 * reference counted: one reference for the daemon (dropped by events_release,
 * once no request thread can reach the hub any more), one per stream.
 */
#include "events.h"

#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "http.h"
#include "qn_err.h"
#include "spec_dumps.h"
#include "users.h"
#include "workers.h"

/* One client's stream. Every field but conn, job and hub is guarded by hub->mu. */
struct events_stream {
    struct events_stream *next;
    struct events *hub;
    struct MHD_Connection *conn;
    int64_t job;
    int64_t user;          /* users.id of whoever opened it (0: the built-in local) */
    char user_name[64];    /* and their name, for the per-user cap */
    int64_t last_id;       /* last metric id put in the buffer */
    char state[16];        /* last state sent, "" before the first */
    uint64_t pdone, ptotal; /* last progress sent */
    char *buf;             /* pending bytes [off, len) of cap */
    size_t off, len, cap;
    int suspended;         /* the reader suspended (or is about to suspend) the connection */
    int dirty;             /* look at the database for this stream at the next tick */
    int eos;               /* nothing more will be added; end when drained */
    double last_send;      /* monotonic seconds of the last event or heartbeat */
};

struct events {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* wakes the pump early (a new stream) */
    struct events_stream *head;
    size_t n;                /* streams in the list */
    int refs;                /* 1 (the owner) + streams alive */
    int stopping;
    int kick;                /* a tick is wanted now */
    pthread_t pump;
    int have_pump;
    struct catalog *catalog; /* where the pump's connection comes from (borrowed) */
    struct store *s;         /* the pump's connection, held while it runs (pump thread only) */
    struct workers *workers; /* borrowed, may be NULL */
    const atomic_int *daemon_stopping; /* borrowed, may be NULL: workers are being stopped */
    unsigned poll_ms, heartbeat_ms;
    size_t max_streams, max_per_user; /* caps of open streams (0: none) */
    int64_t data_version;
    int users_stale;         /* something was committed since the streams' users were checked */
    double users_checked;    /* monotonic seconds of that check */
};

#define EVENTS_USERS_S 1.0 /* seconds between checks that the streams' users are not revoked */

static double events__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Drops one reference (mu held); frees the hub at zero. Returns 1 when freed (mu gone). */
static int events__unref_locked(struct events *e)
{
    if (--e->refs > 0)
        return 0;
    pthread_mutex_unlock(&e->mu);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
    return 1;
}

/* ---- buffers ------------------------------------------------------------------- */

static int events__append(struct events_stream *s, const char *text, size_t n)
{
    if (s->off == s->len)
        s->off = s->len = 0;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (!b)
            return QN_ENOMEM;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    return 0;
}

/* Appends "[id: N\n]event: NAME\ndata: JSON\n\n"; steals data. */
static int events__event(struct events_stream *s, int64_t id, const char *name, json_t *data)
{
    char *text = data ? spec_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    if (!text)
        return QN_ENOMEM;
    char head[96];
    int k = id ? snprintf(head, sizeof head, "id: %" PRId64 "\nevent: %s\ndata: ", id, name)
               : snprintf(head, sizeof head, "event: %s\ndata: ", name);
    int rc = events__append(s, head, (size_t)k);
    if (rc == 0)
        rc = events__append(s, text, strlen(text));
    if (rc == 0)
        rc = events__append(s, "\n\n", 2);
    free(text);
    return rc;
}

/* ---- what the pump reads ------------------------------------------------------------ */

/* Appends the job's metrics after s->last_id (one batch); *n rows appended. */
static int events__metrics(struct events *e, struct events_stream *s, size_t *n)
{
    struct store_metric_query q = {.job = s->job, .after = s->last_id, .limit = EVENTS_BATCH};
    struct store_metric *rows = NULL;
    size_t len = 0;
    *n = 0;
    int rc = catalog_metric_list(e->s, &q, &rows, &len);
    for (size_t i = 0; rc == 0 && i < len; i++) {
        rc = events__event(s, rows[i].id, "metric", catalog_metric_json(&rows[i]));
        if (rc == 0) {
            s->last_id = rows[i].id;
            (*n)++;
        }
    }
    catalog_metric_list_free(rows, len);
    return rc;
}

/*
 * Brings stream s up to date: a state event when the state changed (before
 * the metrics, or after them for a final state, so that the final state is
 * the last event), one batch of metrics, and the end when the job is over.
 */
static int events__fill(struct events *e, struct events_stream *s)
{
    struct catalog_job j;
    int rc = catalog_job_get(e->s, s->job, CATALOG_JOB_PRIORITY, &j);
    if (rc == QN_ENOTFOUND) {
        s->eos = 1;
        return 0;
    }
    if (rc)
        return rc;
    const char *name = catalog_job_state_name(j.state);
    int changed = strcmp(name, s->state) != 0;
    int final = j.ended;
    size_t n = 0;
    if (changed && !final)
        rc = events__event(s, 0, "state", json_incref(j.record));
    if (rc == 0)
        rc = events__metrics(e, s, &n);
    s->dirty = rc == 0 && n == EVENTS_BATCH; /* more rows wait */
    if (rc == 0 && final && !s->dirty) {
        if (changed)
            rc = events__event(s, 0, "state", json_incref(j.record));
        s->eos = 1;
    }
    if (rc == 0 && changed && (!final || s->eos))
        snprintf(s->state, sizeof s->state, "%s", name);
    catalog_job_close(&j);
    return rc;
}

/* A progress event when the job's progress moved. */
static int events__progress(struct events *e, struct events_stream *s)
{
    uint64_t done = 0, total = 0;
    if (!e->workers || s->eos || (e->daemon_stopping && atomic_load(e->daemon_stopping)) ||
        workers_progress(e->workers, s->job, &done, &total) != 0)
        return 0;
    if (done == s->pdone && total == s->ptotal)
        return 0;
    s->pdone = done;
    s->ptotal = total;
    return events__event(s, 0, "progress",
                     json_pack("{sI sI}", "done", (json_int_t)done, "total", (json_int_t)total));
}

/* Has anything been committed since the last tick? (1 on the first call.) */
static int events__db_changed(struct events *e)
{
    int64_t v = -1;
    if (catalog_data_version(e->s, &v))
        v = -1;
    int changed = v != e->data_version || v < 0;
    e->data_version = v;
    return changed;
}

/* Updates one drained stream; 1 when it has something new for its client. */
static int events__tick_stream(struct events *e, struct events_stream *s, int changed, double now)
{
    size_t before = s->len - s->off;
    if (changed)
        s->dirty = 1;
    if (s->dirty && events__fill(e, s) != 0)
        s->dirty = 1; /* try again next tick */
    events__progress(e, s);
    if (s->len - s->off == before && !s->eos && now - s->last_send >= e->heartbeat_ms / 1e3)
        events__append(s, ": heartbeat\n\n", 13);
    if (s->len - s->off != before)
        s->last_send = now;
    return s->len - s->off != before || s->eos;
}

/*
 * Ends stream s when its user has been revoked since it was opened: what it
 * had buffered is dropped and a comment says why. 1 when it ended.
 */
static int events__revoked(struct events *e, struct events_stream *s)
{
    int active = 1;
    if (s->eos || s->user <= 0 || users_active(e->s, s->user, &active) != 0 || active)
        return 0;
    s->off = s->len = 0;
    events__append(s, ": the token was revoked\n\n", 25);
    s->eos = 1;
    return 1;
}

/* Whether this tick checks the streams' users: after a commit, at most once
 * every EVENTS_USERS_S (a revocation is a commit, by `qn user revoke`). */
static int events__users_due(struct events *e, int changed, double now)
{
    e->users_stale |= changed;
    if (!e->users_stale || now - e->users_checked < EVENTS_USERS_S)
        return 0;
    e->users_stale = 0;
    e->users_checked = now;
    return 1;
}

/* One pass over the streams; the connections to resume into wake[] (*n_wake). */
static void events__tick(struct events *e, struct MHD_Connection **wake, size_t *n_wake, size_t cap)
{
    int changed = events__db_changed(e);
    double now = events__now();
    int check_users = events__users_due(e, changed, now);
    *n_wake = 0;
    for (struct events_stream *s = e->head; s; s = s->next) {
        if (check_users && events__revoked(e, s)) {
            if (s->suspended && *n_wake < cap) {
                s->suspended = 0;
                wake[(*n_wake)++] = s->conn;
            }
            continue;
        }
        if (s->eos || s->off < s->len)
            continue; /* finished, or its client has not taken the last batch yet */
        if (events__tick_stream(e, s, changed, now) && s->suspended && *n_wake < cap) {
            s->suspended = 0;
            wake[(*n_wake)++] = s->conn;
        }
    }
}

static void *events__pump(void *arg)
{
    struct events *e = arg;
    struct MHD_Connection **wake = NULL;
    size_t cap = 0, n_wake = 0;
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        if (cap < e->n) { /* room to remember every stream's connection */
            struct MHD_Connection **w = realloc(wake, e->n * sizeof *w);
            if (w) {
                wake = w;
                cap = e->n;
            }
        }
        events__tick(e, wake, &n_wake, cap);
        pthread_mutex_unlock(&e->mu);
        for (size_t i = 0; i < n_wake; i++)
            MHD_resume_connection(wake[i]);
        pthread_mutex_lock(&e->mu);
        if (!e->kick && !e->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            long ns = until.tv_nsec + (long)e->poll_ms * 1000000L;
            until.tv_sec += ns / 1000000000L;
            until.tv_nsec = ns % 1000000000L;
            pthread_cond_timedwait(&e->cv, &e->mu, &until);
        }
        e->kick = 0;
    }
    pthread_mutex_unlock(&e->mu);
    free(wake);
    return NULL;
}

/* ---- the MHD side ---------------------------------------------------------------- */

/* MHD's content reader: pending bytes, the end, or suspend until the pump has more. */
static ssize_t events__read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct events_stream *s = cls;
    struct events *e = s->hub;
    (void)pos;
    pthread_mutex_lock(&e->mu);
    if (s->off < s->len) {
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        if (s->off == s->len && s->dirty)
            e->kick = 1, pthread_cond_signal(&e->cv); /* more rows wait: do not idle */
        pthread_mutex_unlock(&e->mu);
        return (ssize_t)n;
    }
    if (s->eos) {
        pthread_mutex_unlock(&e->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    s->suspended = 1;
    pthread_mutex_unlock(&e->mu);
    MHD_suspend_connection(s->conn);
    return 0;
}

/* MHD frees the response: the stream goes away (and the hub, if it was the last). */
static void events__free(void *cls)
{
    struct events_stream *s = cls;
    struct events *e = s->hub;
    pthread_mutex_lock(&e->mu);
    for (struct events_stream **p = &e->head; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            e->n--;
            break;
        }
    }
    free(s->buf);
    free(s);
    if (!events__unref_locked(e))
        pthread_mutex_unlock(&e->mu);
}

/* Streams of user `name` open (mu held). */
static size_t events__user_streams(const struct events *e, const char *name)
{
    size_t n = 0;
    for (const struct events_stream *s = e->head; s; s = s->next)
        n += strcmp(s->user_name, name) == 0;
    return n;
}

/* Which cap a new stream of user `name` would pass (mu held): NULL for none. */
static const char *events__over_cap(const struct events *e, const char *name, size_t *limit)
{
    if (e->max_streams && e->n >= e->max_streams)
        return *limit = e->max_streams, "--max-streams";
    if (e->max_per_user && events__user_streams(e, name) >= e->max_per_user)
        return *limit = e->max_per_user, "--max-streams-per-user";
    return NULL;
}

int events_open(struct events *e, struct http_req *req, int64_t job, int64_t last_id)
{
    struct events_stream *s = calloc(1, sizeof *s);
    if (!s)
        return QN_ENOMEM;
    s->hub = e;
    s->conn = http_req_connection(req);
    s->job = job;
    s->user = http_req_user(req)->id;
    snprintf(s->user_name, sizeof s->user_name, "%s", http_req_user(req)->name);
    s->last_id = last_id;
    s->dirty = 1;
    s->last_send = events__now();
    /* The client's reconnection delay, and a first line so proxies flush headers. */
    if (events__append(s, "retry: 2000\n\n", 13) != 0) {
        free(s);
        return QN_ENOMEM;
    }
    pthread_mutex_lock(&e->mu);
    size_t limit = 0;
    const char *cap = e->stopping ? NULL : events__over_cap(e, s->user_name, &limit);
    if (e->stopping || cap) {
        pthread_mutex_unlock(&e->mu);
        free(s->buf);
        free(s);
        if (!cap)
            return QN_EBUSY;
        return http_reply_err(req, QN_EBUSY, NULL,
                              "too many event streams open (at most %zu, %s): close one, or "
                              "share one stream between pages",
                              limit, cap);
    }
    s->next = e->head;
    e->head = s;
    e->n++;
    e->refs++;
    e->kick = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
                                                                  events__read, s, events__free);
    if (!resp) {
        events__free(s);
        return QN_ENOMEM;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    int rc = http_reply_stream(req, 200, resp); /* frees resp (and s) on failure */
    return rc == QN_EINVAL ? QN_EIO : rc;
}

/* ---- life ------------------------------------------------------------------------ */

int events_create(const struct events_config *cfg, struct events **out, char *msg, size_t cap)
{
    *out = NULL;
    struct events *e = calloc(1, sizeof *e);
    if (!e)
        return QN_ENOMEM;
    e->refs = 1;
    e->catalog = cfg->catalog;
    e->workers = cfg->workers;
    e->daemon_stopping = cfg->stopping;
    e->poll_ms = cfg->poll_ms ? cfg->poll_ms : EVENTS_POLL_MS;
    e->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : EVENTS_HEARTBEAT_MS;
    e->max_streams = cfg->max_streams;
    e->max_per_user = cfg->max_per_user;
    e->data_version = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->s = catalog_acquire(e->catalog);
    int rc = e->s ? 0 : QN_EDB;
    if (rc && msg && cap)
        snprintf(msg, cap, "cannot open the database");
    if (rc == 0 && pthread_create(&e->pump, NULL, events__pump, e) != 0) {
        if (msg && cap)
            snprintf(msg, cap, "cannot start the event pump thread");
        rc = QN_ENOMEM;
    }
    if (rc) {
        catalog_release(e->catalog, e->s);
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        free(e);
        return rc;
    }
    e->have_pump = 1;
    *out = e;
    return 0;
}

void events_halt(struct events *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->have_pump)
        pthread_join(e->pump, NULL);
    e->have_pump = 0;
    e->workers = NULL; /* the pool may be gone from here on */
}

void events_stop(struct events *e)
{
    if (!e)
        return;
    events_halt(e);
    /* A last look at the database, so clients see their job requeued, then the
     * end of every stream; the suspended ones are woken so MHD can close them. */
    pthread_mutex_lock(&e->mu);
    size_t n = 0;
    struct MHD_Connection **wake = calloc(e->n ? e->n : 1, sizeof *wake);
    e->data_version = -2; /* forces the look */
    for (struct events_stream *s = e->head; s; s = s->next)
        if (!s->eos && s->off == s->len)
            events__tick_stream(e, s, 1, events__now());
    catalog_release(e->catalog, e->s);
    e->s = NULL;
    for (struct events_stream *s = e->head; s; s = s->next) {
        s->eos = 1;
        if (s->suspended && wake) {
            s->suspended = 0;
            wake[n++] = s->conn;
        }
    }
    pthread_mutex_unlock(&e->mu);
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(wake[i]);
    free(wake);
}

void events_release(struct events *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    if (!events__unref_locked(e))
        pthread_mutex_unlock(&e->mu);
}
