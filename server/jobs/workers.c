/*
 * workers.c: the worker pool (see workers.h).
 *
 * Each thread owns one slot of the registry: the id of the job it runs, that
 * job's cancel flag and requeue marker, and its progress. The registry mutex
 * is taken only for the few instructions that change or search slots, never
 * across a database call, so a cancel request never waits behind a job and a
 * job never waits behind a client. Progress counters are atomics written by
 * the job's own threads.
 */
#include "workers.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "job_remote.h"
#include "qn_err.h"
#include "queue.h"
#include "spec_dumps.h"

/*
 * Workers run this much nicer than the HTTP threads. It was 19 (the most
 * Linux allows), measured with bench_http's first mix (32 clients flooding
 * GET /v1/jobs/{id} and a 100-row metric page): p99 12-15 ms, training kept
 * ~180 of 3200 steps/s. The realistic mix (issue 16: job lists, live
 * metrics, full 1000-row pages of finished jobs, 32 clients, 2 CPUs, AMD
 * EPYC) showed what that costs: at nice 19 the trains ran x65 slower (4105
 * -> 63 steps/s), at 3 x2.14, at 0 x1.92 (with the finished pages cached:
 * 926 req/s, p99 190 ms at 0; 1167 req/s, p99 187 ms at 3). A lab's jobs
 * are its work, so they share the CPUs evenly with the requests.
 */
#define WORKERS_NICE 0
#define WORKERS_IDLE_POLL_MS 1000 /* an idle thread looks at the queue at least this often */
#define WORKERS_CANCEL_TRIES 2000 /* cancel: waits up to ~2 s for a claimed job to register */
#define WORKERS_RETRY_MS 100       /* first pause after a claim failed (the database's fault) */
#define WORKERS_RETRY_MAX_MS 10000 /* the pause doubles up to this */

struct workers;

/* One thread and what it runs. */
struct workers_slot {
    struct workers *pool;
    size_t index;
    pthread_t thread;
    int started;            /* the thread was created */
    int64_t job_id;         /* the job it runs, 0 when idle (registry mutex) */
    size_t kind;            /* that job's type's index (job_type_index); JOB_TYPES_MAX when
                               this build has no such type (registry mutex) */
    atomic_int cancel;      /* the job's cancel flag (job_ctx.cancel) */
    atomic_int requeue;     /* with cancel: put it back to queued, not canceled */
    atomic_uint_fast64_t done, total; /* progress of the job */
};

struct workers {
    char *db;                  /* database path (owned) */
    size_t job_threads;        /* job_ctx.workers */
    FILE *log;                 /* borrowed, may be NULL */
    const struct job_remote *remote; /* borrowed, may be NULL */
    struct store_changes *changes; /* counts the threads' commits (borrowed, may be NULL) */
    struct queue *q;           /* owned */
    struct workers_slot *slots;      /* (n) */
    size_t n;
    atomic_int stop;           /* 1: threads leave their loop */
    atomic_int stop_requeue;   /* with stop: running jobs are requeued */
    atomic_int halted;         /* 1: workers_halt ran (threads joined) */
    pthread_mutex_t reg_mu;    /* guards slots' job_id and kind */
    atomic_uint_fast64_t claim_failures; /* claims that failed on the database (disk full...) */
    pthread_mutex_t wake_mu;   /* guards wake_gen, with wake_cv */
    pthread_cond_t wake_cv;
    uint64_t wake_gen;         /* bumped by workers_wake */
    atomic_uint_fast64_t units[JOB_TYPES_MAX]; /* progress units done, by type index */
    atomic_uint_fast64_t finished[JOB_CANCELED + 1]; /* jobs ended here, by final state */
    struct store *boot;        /* the start-up connection (recovery), closed after it */
};

static void workers__log(struct workers *w, const char *fmt, const char *a, int64_t id)
{
    if (w->log) {
        fprintf(w->log, fmt, a, id);
        fflush(w->log);
    }
}

/* The counter index of a job's type; JOB_TYPES_MAX (no counter) for a type
 * this build cannot run. */
static size_t workers__kind(const char *type)
{
    const struct job_type *t = job_type_find(type);
    return t ? job_type_index(t) : JOB_TYPES_MAX;
}

/* ---- the registry ---------------------------------------------------------------- */

/* Marks slot t as running job id; a stop that began meanwhile reaches it too. */
static void workers__register(struct workers_slot *t, const struct store_job *j)
{
    struct workers *w = t->pool;
    atomic_store(&t->cancel, 0);
    atomic_store(&t->requeue, 0);
    atomic_store(&t->done, 0);
    atomic_store(&t->total, 0);
    pthread_mutex_lock(&w->reg_mu);
    t->job_id = j->id;
    t->kind = workers__kind(j->type);
    pthread_mutex_unlock(&w->reg_mu);
    if (atomic_load(&w->stop) && atomic_load(&w->stop_requeue)) {
        atomic_store(&t->requeue, 1);
        atomic_store(&t->cancel, 1);
    }
}

static void workers__unregister(struct workers_slot *t)
{
    pthread_mutex_lock(&t->pool->reg_mu);
    t->job_id = 0;
    pthread_mutex_unlock(&t->pool->reg_mu);
}

/* Sets the cancel flag of job id if a slot runs it; 1 if one did. */
static int workers__flag(struct workers *w, int64_t id)
{
    int found = 0;
    pthread_mutex_lock(&w->reg_mu);
    for (size_t i = 0; i < w->n; i++) {
        if (id && w->slots[i].job_id == id) {
            atomic_store(&w->slots[i].cancel, 1);
            found = 1;
        }
    }
    pthread_mutex_unlock(&w->reg_mu);
    return found;
}

/* Flags every running job for requeue (stop). */
static void workers__flag_all(struct workers *w)
{
    pthread_mutex_lock(&w->reg_mu);
    for (size_t i = 0; i < w->n; i++) {
        if (w->slots[i].job_id) {
            atomic_store(&w->slots[i].requeue, 1);
            atomic_store(&w->slots[i].cancel, 1);
        }
    }
    pthread_mutex_unlock(&w->reg_mu);
}

/* ---- running one job ---------------------------------------------------------------- */

/* job_ctx.progress: keeps the job's progress and the pool's unit counter. */
static void workers__progress(size_t done, size_t total, void *c)
{
    struct workers_slot *t = c;
    uint64_t before = atomic_exchange(&t->done, (uint64_t)done);
    atomic_store(&t->total, (uint64_t)total);
    if (done > before && t->kind < JOB_TYPES_MAX)
        atomic_fetch_add(&t->pool->units[t->kind], (uint64_t)done - before);
}

/* A job run again from the start must not meet its earlier attempt's metrics. */
static int workers__clear_metrics(struct store *s, const struct store_job *j,
                            const struct job_type *type)
{
    if (type->resumes) /* it continues from its checkpoint and trims its own */
        return 0;
    return store_metric_delete_after(s, j->id, INT64_MIN);
}

/* Prepares and runs the job; the run's code, with ctx->reason on failure. */
static int workers__execute(struct store *s, const struct store_job *j, const struct job_type *type,
                      struct job_ctx *ctx)
{
    int rc = workers__clear_metrics(s, j, type);
    if (rc)
        return job_fail(ctx, rc, "cannot clear the metrics of an earlier attempt");
    store_set_owner(s, ctx->owner); /* names resolve, and outputs belong, to its owner */
    rc = type->prepare(ctx);
    if (rc) {
        snprintf(ctx->reason, sizeof ctx->reason, "%s%s%s", ctx->err.path,
                 ctx->err.path[0] ? ": " : "", ctx->err.msg[0] ? ctx->err.msg : qn_err_msg(rc));
        return rc;
    }
    return job_execute(type, ctx); /* in this process, or on qn-mpi's ranks */
}

/* Writes how the run ended: succeeded, requeued, canceled or failed. */
static void workers__end(struct workers_slot *t, struct store *s, const struct store_job *j,
                   struct job_ctx *ctx, int rc)
{
    struct workers *w = t->pool;
    struct queue *q = w->q;
    enum store_job_state st = JOB_FAILED;
    int wrc;
    char *text = NULL;
    if (rc == 0 && ctx->result && (text = spec_dumps(ctx->result, JSON_COMPACT))) {
        st = JOB_SUCCEEDED;
        wrc = queue_finish(q, s, j->id, st, text, NULL);
        free(text);
    } else if (rc != 0 && atomic_load(&t->cancel) && atomic_load(&t->requeue)) {
        st = JOB_QUEUED;
        wrc = queue_requeue(q, s, j->id);
    } else if (rc != 0 && atomic_load(&t->cancel)) {
        st = JOB_CANCELED;
        wrc = queue_finish(q, s, j->id, st, NULL, "canceled");
    } else {
        if (rc == 0)
            snprintf(ctx->reason, sizeof ctx->reason, "cannot store the result: out of memory");
        else if (!ctx->reason[0])
            snprintf(ctx->reason, sizeof ctx->reason, "%s", qn_err_msg(rc));
        wrc = queue_finish(q, s, j->id, st, NULL, ctx->reason);
    }
    if (wrc)
        workers__log(w, "qn: cannot record the end of a %s job %" PRId64 "\n", j->type, j->id);
    else
        atomic_fetch_add(&w->finished[st], 1);
}

/* The whole life of claimed job j on slot t. */
static void workers__run(struct workers_slot *t, struct store *s, const struct store_job *j)
{
    struct workers *w = t->pool;
    struct spec_error e = {{0}, {0}};
    json_t *spec = NULL;
    const struct job_type *type = job_type_find(j->type);
    struct job_ctx ctx = {.store = s, .job_id = j->id, .name = j->name, .owner = j->owner,
                          .workers = w->job_threads, .cancel = &t->cancel,
                          .requeue = &t->requeue,
                          .progress = workers__progress, .progress_ctx = t,
                          .remote = w->remote, .handle = j->handle};
    int rc;
    workers__register(t, j);
    if (!type) {
        snprintf(ctx.reason, sizeof ctx.reason, "type '%s' is not supported by this build",
                 j->type);
        rc = QN_EINVAL;
    } else if (spec_load(j->spec, strlen(j->spec), &spec, &e) != 0 ||
               job_spec_take_resources(spec, &ctx.ranks, &ctx.threads, &e) != 0) {
        snprintf(ctx.reason, sizeof ctx.reason, "the stored spec does not parse: %s", e.msg);
        rc = QN_ESPEC;
    } else {
        ctx.spec = spec;
        rc = workers__execute(s, j, type, &ctx);
        type->release(&ctx);
    }
    workers__end(t, s, j, &ctx, rc);
    workers__unregister(t);
    json_decref(ctx.result);
    json_decref(spec);
    workers_wake(w); /* promotions may have queued jobs */
}

/* ---- the thread loop ------------------------------------------------------------------- */

/* Sleeps until woken, stopped, or WORKERS_IDLE_POLL_MS passed, unless a wake came after `seen`. */
/* Sleeps ms milliseconds or until stopped; a wake after `seen` ends it too
 * when `wakeable`. */
static void workers__wait(struct workers *w, uint64_t seen, long ms, int wakeable)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->wake_mu);
    while ((!wakeable || w->wake_gen == seen) && !atomic_load(&w->stop))
        if (pthread_cond_timedwait(&w->wake_cv, &w->wake_mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&w->wake_mu);
}

static void workers__idle(struct workers *w, uint64_t seen)
{
    workers__wait(w, seen, WORKERS_IDLE_POLL_MS, 1);
}

/*
 * A claim that failed on the database (disk full, an I/O error): logged once
 * per run of failures, then retried after a pause that doubles up to
 * WORKERS_RETRY_MAX_MS and that submissions do not cut short, so a full disk
 * neither floods the log nor keeps the database busy. *failures counts the
 * run.
 */
static void workers__claim_failed(struct workers_slot *t, struct store *s, int rc,
                                  size_t *failures)
{
    struct workers *w = t->pool;
    atomic_fetch_add(&w->claim_failures, 1);
    if ((*failures)++ == 0 && w->log) {
        fprintf(w->log, "qn: worker %zu cannot claim a job: %s (%s); retrying quietly\n",
                t->index, qn_err_msg(rc), store_errmsg(s));
        fflush(w->log);
    }
    long ms = WORKERS_RETRY_MS;
    for (size_t i = 1; i < *failures && ms < WORKERS_RETRY_MAX_MS; i++)
        ms *= 2;
    workers__wait(w, 0, ms < WORKERS_RETRY_MAX_MS ? ms : WORKERS_RETRY_MAX_MS, 0);
}

/* After a run of failed claims, one that worked: says so once. */
static void workers__claim_works(struct workers_slot *t, size_t *failures)
{
    if (*failures && t->pool->log) {
        fprintf(t->pool->log, "qn: worker %zu claims jobs again after %zu failed attempt%s\n",
                t->index, *failures, *failures == 1 ? "" : "s");
        fflush(t->pool->log);
    }
    *failures = 0;
}

static uint64_t workers__gen(struct workers *w)
{
    pthread_mutex_lock(&w->wake_mu);
    uint64_t g = w->wake_gen;
    pthread_mutex_unlock(&w->wake_mu);
    return g;
}

/* Lowers the calling thread's scheduling priority (Linux nice is per thread;
 * threads the job starts inherit it): on a shared server, requests from
 * people waiting at a browser or a curl come before computation. */
static void workers__lower_priority(void)
{
    errno = 0;
    int now = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (errno == 0)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), now + WORKERS_NICE);
}

static void *workers__main(void *arg)
{
    struct workers_slot *t = arg;
    struct workers *w = t->pool;
    struct store *s = NULL;
    char msg[STORE_MSG_MAX];
    workers__lower_priority();
    if (store_open(w->db, &s, msg, sizeof msg) != 0) {
        if (w->log)
            fprintf(w->log, "qn: worker %zu cannot open the database: %s\n", t->index, msg);
        return NULL;
    }
    if (w->changes)
        store_watch(s, w->changes); /* a failure marks the count untrusted */
    size_t failures = 0; /* claims failed in a row */
    while (!atomic_load(&w->stop)) {
        uint64_t seen = workers__gen(w);
        struct store_job j;
        int rc = queue_claim(w->q, s, &j);
        if (rc == 0 || rc == QN_ENOTFOUND)
            workers__claim_works(t, &failures);
        if (rc == 0) {
            workers__run(t, s, &j);
            store_job_free(&j);
            continue;
        }
        if (rc != QN_ENOTFOUND) /* look again soon, but do not spin */
            queue_promote(w->q, s, NULL, NULL);
        if (rc != QN_ENOTFOUND && rc != QN_EBUSY)
            workers__claim_failed(t, s, rc, &failures);
        else
            workers__idle(w, seen);
    }
    store_close(s);
    return NULL;
}

/* ---- life of the pool ------------------------------------------------------------------- */

static void workers__say(char *msg, size_t cap, const char *what, const char *why)
{
    if (msg && cap)
        snprintf(msg, cap, "%s%s%s", what, why && *why ? ": " : "", why ? why : "");
}

/* Allocates the pool and its locks (no threads, no database yet). */
static struct workers *workers__alloc(const struct workers_config *cfg)
{
    struct workers *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->n = cfg->n;
    w->job_threads = cfg->job_threads ? cfg->job_threads : 1;
    w->log = cfg->log;
    w->remote = cfg->remote;
    w->changes = cfg->changes;
    w->db = strdup(cfg->db);
    w->slots = calloc(cfg->n, sizeof *w->slots);
    if (!w->db || !w->slots) {
        free(w->db);
        free(w->slots);
        free(w);
        return NULL;
    }
    pthread_mutex_init(&w->reg_mu, NULL);
    pthread_mutex_init(&w->wake_mu, NULL);
    pthread_cond_init(&w->wake_cv, NULL);
    for (size_t i = 0; i < w->n; i++) {
        w->slots[i].pool = w;
        w->slots[i].index = i;
    }
    return w;
}

static void workers__free(struct workers *w)
{
    queue_destroy(w->q);
    store_close(w->boot);
    pthread_cond_destroy(&w->wake_cv);
    pthread_mutex_destroy(&w->wake_mu);
    pthread_mutex_destroy(&w->reg_mu);
    free(w->slots);
    free(w->db);
    free(w);
}

/* Makes the queue and recovers it on a start-up connection, then closes that. */
static int workers__open_queue(struct workers *w, char *msg, size_t cap)
{
    char why[STORE_MSG_MAX] = "";
    size_t requeued = 0;
    int rc = store_open(w->db, &w->boot, why, sizeof why);
    if (rc)
        return workers__say(msg, cap, "cannot open the database", why), rc;
    if (w->changes)
        store_watch(w->boot, w->changes);
    rc = queue_create(w->boot, w->log, &w->q);
    if (rc == 0)
        rc = queue_recover(w->q, w->boot, &requeued);
    if (rc)
        workers__say(msg, cap, "cannot recover the job queue", store_errmsg(w->boot));
    else if (requeued && w->log)
        fprintf(w->log, "qn: %zu job%s that were running are queued again\n", requeued,
                requeued == 1 ? "" : "s");
    store_close(w->boot);
    w->boot = NULL;
    return rc;
}

int workers_create(const struct workers_config *cfg, struct workers **out, char *msg,
                   size_t cap)
{
    *out = NULL;
    if (!cfg->db || cfg->n == 0)
        return workers__say(msg, cap, "a worker pool needs a database and at least one thread",
                            NULL),
               QN_EINVAL;
    struct workers *w = workers__alloc(cfg);
    if (!w)
        return workers__say(msg, cap, "out of memory", NULL), QN_ENOMEM;
    int rc = workers__open_queue(w, msg, cap);
    if (rc == 0) {
        queue_set_max_job_memory(w->q, cfg->max_job_memory);
        queue_set_remote(w->q, cfg->remote);
    }
    for (size_t i = 0; rc == 0 && i < w->n; i++) {
        if (pthread_create(&w->slots[i].thread, NULL, workers__main, &w->slots[i]) != 0) {
            workers__say(msg, cap, "cannot start a worker thread", NULL);
            rc = QN_ENOMEM;
        } else {
            w->slots[i].started = 1;
        }
    }
    if (rc) {
        workers_stop(w, 1);
        return rc;
    }
    *out = w;
    return 0;
}

void workers_halt(struct workers *w, int requeue)
{
    if (!w || atomic_load(&w->halted))
        return;
    atomic_store(&w->halted, 1);
    atomic_store(&w->stop_requeue, requeue);
    atomic_store(&w->stop, 1);
    if (requeue)
        workers__flag_all(w);
    pthread_mutex_lock(&w->wake_mu);
    w->wake_gen++;
    pthread_cond_broadcast(&w->wake_cv);
    pthread_mutex_unlock(&w->wake_mu);
    for (size_t i = 0; i < w->n; i++)
        if (w->slots[i].started)
            pthread_join(w->slots[i].thread, NULL);
}

void workers_stop(struct workers *w, int requeue)
{
    if (!w)
        return;
    workers_halt(w, requeue);
    workers__free(w);
}

struct queue *workers_queue(struct workers *w)
{
    return w->q;
}

void workers_wake(struct workers *w)
{
    pthread_mutex_lock(&w->wake_mu);
    w->wake_gen++;
    pthread_cond_broadcast(&w->wake_cv);
    pthread_mutex_unlock(&w->wake_mu);
}

/* ---- cancel, progress, figures ---------------------------------------------------------- */

/*
 * After workers__flag found job id registered: 0 (*state running), or QN_EEXIST
 * when its row already says how it ended. A worker stores the end before it
 * leaves the registry (workers__run), so for a moment an ended job is still
 * registered; without this look, a cancel of a job that GET already shows
 * `canceled` answered "cancel requested" (202) instead of 409.
 */
static int workers__flagged_state(struct store *s, int64_t id, enum store_job_state *state)
{
    struct store_job j;
    *state = JOB_RUNNING;
    if (store_job_get(s, id, &j) != 0)
        return 0; /* the flag is set: report what it did */
    int ended = store_job_state_final(j.state);
    if (ended)
        *state = j.state;
    store_job_free(&j);
    return ended ? QN_EEXIST : 0;
}

int workers_cancel(struct workers *w, struct store *s, int64_t id, enum store_job_state *state)
{
    for (int i = 0; i < WORKERS_CANCEL_TRIES; i++) {
        if (workers__flag(w, id))
            return workers__flagged_state(s, id, state);
        int rc = queue_cancel_pending(w->q, s, id, state);
        if (rc != QN_EBUSY)
            return rc; /* 0: canceled at once; QN_EEXIST, QN_ENOTFOUND, store codes */
        /* Running but not registered: claimed a moment ago, or run elsewhere. */
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    *state = JOB_RUNNING;
    return QN_EBUSY;
}

int workers_progress(struct workers *w, int64_t id, uint64_t *done, uint64_t *total)
{
    int rc = QN_ENOTFOUND;
    pthread_mutex_lock(&w->reg_mu);
    for (size_t i = 0; i < w->n && rc; i++) {
        if (id && w->slots[i].job_id == id) {
            *done = atomic_load(&w->slots[i].done);
            *total = atomic_load(&w->slots[i].total);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&w->reg_mu);
    return rc;
}

size_t workers_busy(struct workers *w)
{
    size_t busy = 0;
    pthread_mutex_lock(&w->reg_mu);
    for (size_t i = 0; i < w->n; i++)
        busy += w->slots[i].job_id != 0;
    pthread_mutex_unlock(&w->reg_mu);
    return busy;
}

void workers_metrics(FILE *out, void *ctx)
{
    struct workers *w = ctx;
    fprintf(out, "# HELP qn_workers Worker threads.\n# TYPE qn_workers gauge\nqn_workers %zu\n",
            w->n);
    fprintf(out, "# HELP qn_workers_busy Worker threads running a job.\n"
                 "# TYPE qn_workers_busy gauge\nqn_workers_busy %zu\n",
            workers_busy(w));
    fprintf(out, "# HELP qn_job_units_total Work done by jobs: sweep rows solved, train steps, "
                 "by job type.\n# TYPE qn_job_units_total counter\n");
    for (size_t k = 0; k < job_type_count(); k++)
        fprintf(out, "qn_job_units_total{type=\"%s\"} %" PRIuFAST64 "\n", job_type_at(k)->name,
                (uint_fast64_t)atomic_load(&w->units[k]));
    fprintf(out, "# HELP qn_jobs_ended_total Jobs this process ran to an end, by outcome.\n"
                 "# TYPE qn_jobs_ended_total counter\n");
    for (int i = JOB_QUEUED; i <= JOB_CANCELED; i++)
        if (i != JOB_RUNNING)
            fprintf(out, "qn_jobs_ended_total{state=\"%s\"} %" PRIuFAST64 "\n",
                    i == JOB_QUEUED ? "requeued" : store_job_state_name((enum store_job_state)i),
                    (uint_fast64_t)atomic_load(&w->finished[i]));
    fprintf(out, "# HELP qn_worker_claim_failures_total Claims of a job that failed on the "
                 "database (disk full, I/O).\n# TYPE qn_worker_claim_failures_total counter\n"
                 "qn_worker_claim_failures_total %" PRIuFAST64 "\n",
            (uint_fast64_t)atomic_load(&w->claim_failures));
}
