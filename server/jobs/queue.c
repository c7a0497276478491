/*
 * queue.c: the persistent job queue (see queue.h for the life of a job).
 *
 * The scheduling rules live here; the statements they run are the store's
 * (store_queue.h). Each transition is one write transaction (store_tx.h,
 * BEGIN IMMEDIATE): taking the write lock up front means a claim never
 * reads a job that another thread moves before the update (no SQLITE_BUSY
 * upgrade failures), and the busy timeout of the store covers waiting for
 * the lock. Moves are logged only once their transaction has committed.
 */
#include "queue.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "job_remote.h"
#include "qn_err.h"
#include "qn_log.h"
#include "store_catalog.h"
#include "store_queue.h"
#include "store_tx.h"

/* The round-robin memory: when each owner last had a job claimed. */
struct queue_owner {
    char name[64];  /* jobs.owner */
    uint64_t seq;   /* claim sequence number of its last claim; 0 = never */
};

struct queue {
    pthread_mutex_t mu;     /* guards everything below; held across a claim */
    struct queue_owner *owners; /* (n_owners) */
    size_t n_owners, cap_owners;
    uint64_t next_seq;      /* the next claim's sequence number */
    FILE *log;              /* transition lines (borrowed, may be NULL) */
    pthread_mutex_t log_mu; /* one line at a time */
    uint64_t max_job_memory; /* bytes one job may need (0: no limit); set before use */
    const struct job_remote *remote; /* jobs on several ranks (borrowed, may be NULL) */
};

/* A transition to log once its transaction committed. */
struct queue_event {
    int64_t id;
    char type[16];
    char owner[64];
    enum store_job_state from, to;
    char why[160]; /* "" or a reason */
};

struct queue_events {
    struct queue_event *v;
    size_t n, cap;
};

/* ---- transition log --------------------------------------------------------- */

/*
 * 1 when a job may move from `from` to `to` (queue.h's diagram); from == to
 * is a new job, which starts waiting or queued. Every move the queue makes
 * or the store reports to it passes here.
 */
static int queue__legal(enum store_job_state from, enum store_job_state to)
{
    switch (from) {
    case JOB_WAITING: return to == JOB_WAITING || to == JOB_QUEUED || to == JOB_FAILED ||
                             to == JOB_CANCELED;
    case JOB_QUEUED: return to == JOB_QUEUED || to == JOB_RUNNING || to == JOB_CANCELED;
    case JOB_RUNNING: return to == JOB_QUEUED || store_job_state_final(to);
    default: return 0; /* an ended job stays ended (a resume is `qn resume`, not the queue) */
    }
}

/* store_queue_move_fn: records a move (ctx: the struct queue_events) to log after the commit. */
static int queue__ev_add(void *ctx, int64_t id, const char *type, const char *owner,
                     enum store_job_state from, enum store_job_state to, const char *why)
{
    struct queue_events *e = ctx;
    assert(queue__legal(from, to));
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 8;
        struct queue_event *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return QN_ENOMEM;
        e->v = v;
        e->cap = cap;
    }
    struct queue_event *x = &e->v[e->n++];
    x->id = id;
    x->from = from;
    x->to = to;
    snprintf(x->type, sizeof x->type, "%s", type ? type : "?");
    snprintf(x->owner, sizeof x->owner, "%s", owner ? owner : "?");
    snprintf(x->why, sizeof x->why, "%s", why ? why : "");
    return 0;
}

static void queue__log_one(struct queue *q, const struct queue_event *x)
{
    assert(queue__legal(x->from, x->to));
    if (!q->log)
        return;
    /* Owners, types and reasons may quote what a client sent: escaped. */
    char type[QN_LOG_ESCAPED_MAX(sizeof x->type)], owner[QN_LOG_ESCAPED_MAX(sizeof x->owner)];
    char why[QN_LOG_ESCAPED_MAX(sizeof x->why)];
    qn_log_escape(type, sizeof type, x->type);
    qn_log_escape(owner, sizeof owner, x->owner);
    qn_log_escape(why, sizeof why, x->why);
    pthread_mutex_lock(&q->log_mu);
    if (x->from == x->to) /* a new job */
        fprintf(q->log, "qn: job %" PRId64 " (%s, %s): submitted -> %s%s%s\n", x->id, type,
                owner, store_job_state_name(x->to), why[0] ? ": " : "", why);
    else
        fprintf(q->log, "qn: job %" PRId64 " (%s, %s): %s -> %s%s%s\n", x->id, type, owner,
                store_job_state_name(x->from), store_job_state_name(x->to),
                why[0] ? ": " : "", why);
    fflush(q->log);
    pthread_mutex_unlock(&q->log_mu);
}

/* Logs and frees the events (after the commit that made them true). */
static void queue__ev_flush(struct queue *q, struct queue_events *e, int committed)
{
    for (size_t i = 0; committed && i < e->n; i++)
        queue__log_one(q, &e->v[i]);
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* ---- creation: the round-robin memory ---------------------------------------- */

static struct queue_owner *queue__owner(struct queue *q, const char *name)
{
    for (size_t i = 0; i < q->n_owners; i++)
        if (strcmp(q->owners[i].name, name) == 0)
            return &q->owners[i];
    return NULL;
}

/* The owner's entry, added (seq 0) when new; NULL when out of memory. */
static struct queue_owner *queue__owner_add(struct queue *q, const char *name)
{
    struct queue_owner *o = queue__owner(q, name);
    if (o)
        return o;
    if (q->n_owners == q->cap_owners) {
        size_t cap = q->cap_owners ? 2 * q->cap_owners : 8;
        struct queue_owner *v = realloc(q->owners, cap * sizeof *v);
        if (!v)
            return NULL;
        q->owners = v;
        q->cap_owners = cap;
    }
    o = &q->owners[q->n_owners++];
    snprintf(o->name, sizeof o->name, "%s", name);
    o->seq = 0;
    return o;
}

/* Seeds one owner (store_queue_owners gives them the least recently started first). */
static int queue__seed_owner(void *ctx, const char *name)
{
    struct queue *q = ctx;
    struct queue_owner *o = queue__owner_add(q, name);
    if (!o)
        return QN_ENOMEM;
    o->seq = q->next_seq++;
    return 0;
}

int queue_create(struct store *s, FILE *log, struct queue **out)
{
    *out = NULL;
    struct queue *q = calloc(1, sizeof *q);
    if (!q)
        return QN_ENOMEM;
    q->next_seq = 1;
    q->log = log;
    if (pthread_mutex_init(&q->mu, NULL))
        goto fail_mu;
    if (pthread_mutex_init(&q->log_mu, NULL))
        goto fail_log_mu;
    int rc = store_queue_owners(s, queue__seed_owner, q);
    if (rc) {
        queue_destroy(q);
        return rc;
    }
    *out = q;
    return 0;
fail_log_mu:
    pthread_mutex_destroy(&q->mu);
fail_mu:
    free(q);
    return QN_ENOMEM;
}

void queue_destroy(struct queue *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->log_mu);
    pthread_mutex_destroy(&q->mu);
    free(q->owners);
    free(q);
}

/* ---- submit ----------------------------------------------------------------------- */

/* Checks one reference against the job it names: it must exist, be of the
 * type the reference needs, and not have failed or been canceled. *pending
 * = 1 when it has not succeeded yet. */
static int queue__dep_check(struct store *s, const struct job_ref *r, int *pending,
                        struct spec_error *err)
{
    struct store_job j;
    int rc = store_job_get(s, r->job, &j);
    if (rc == QN_ENOTFOUND)
        return spec_fail(err, r->path, "no job with id %" PRId64, r->job);
    if (rc)
        return rc;
    if (strcmp(j.type, r->type) != 0)
        rc = spec_fail(err, r->path, "job %" PRId64 " is a %s job, not a %s job", r->job, j.type,
                       r->type);
    else if (j.state == JOB_FAILED)
        rc = spec_fail(err, r->path, "job %" PRId64 " failed: %s", r->job,
                       j.error ? j.error : "no reason recorded");
    else if (j.state == JOB_CANCELED)
        rc = spec_fail(err, r->path, "job %" PRId64 " was canceled", r->job);
    else if (j.state != JOB_SUCCEEDED)
        *pending = 1;
    store_job_free(&j);
    return rc;
}

/* Checks every reference (queue__dep_check); *pending = 1 when one has not
 * succeeded yet. */
static int queue__deps_check(struct store *s, const struct job_refs *refs, int *pending,
                         struct spec_error *err)
{
    *pending = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < refs->n; i++)
        rc = queue__dep_check(s, &refs->v[i], pending, err);
    return rc;
}

/* Runs the type's prepare (full resolution against the store) and releases it. */
static int queue__prepare(struct store *s, const struct job_type *t, const struct job_spec *js,
                      const char *owner, struct spec_error *err)
{
    struct job_ctx ctx = {.store = s, .name = js->name, .owner = owner, .spec = js->spec,
                          .workers = 1};
    store_set_owner(s, owner); /* its names resolve within its owner's things first */
    int rc = t->prepare(&ctx);
    if (rc)
        *err = ctx.err;
    t->release(&ctx);
    return rc == QN_EPARSE ? QN_ESPEC : rc;
}

/* Inserts the job (waiting or queued) and its dependency rows; in the
 * caller's transaction, references re-checked in it. */
static int queue__insert_rows(struct store *s, const struct job_spec *js, const char *owner,
                          const struct job_refs *refs, const char *text, int64_t *id,
                          enum store_job_state *state, struct spec_error *err)
{
    int pending = 0;
    int rc = queue__deps_check(s, refs, &pending, err);
    *state = pending ? JOB_WAITING : JOB_QUEUED;
    if (rc == 0)
        rc = store_job_insert(s, js->type, js->name, owner, js->priority, *state, text, id);
    for (size_t i = 0; rc == 0 && i < refs->n; i++)
        rc = store_queue_dep_insert(s, *id, refs->v[i].job, refs->v[i].path, refs->v[i].type);
    return rc;
}

/* Inserts the job and its dependencies in one transaction, and logs it. */
static int queue__insert(struct queue *q, struct store *s, const struct job_spec *js,
                     const char *owner, const struct job_refs *refs, int64_t *id,
                     enum store_job_state *state, struct spec_error *err)
{
    char *text = job_spec_text(js);
    if (!text)
        return QN_ENOMEM;
    int rc = store_begin(s);
    if (rc == 0)
        rc = store_end(s, queue__insert_rows(s, js, owner, refs, text, id, state, err));
    free(text);
    if (rc == 0 && q->log) {
        struct queue_event x = {.id = *id, .from = *state, .to = *state};
        snprintf(x.type, sizeof x.type, "%s", js->type);
        snprintf(x.owner, sizeof x.owner, "%s", owner ? owner : "local");
        snprintf(x.why, sizeof x.why, "priority %d", js->priority);
        queue__log_one(q, &x);
    }
    return rc;
}

void queue_set_max_job_memory(struct queue *q, uint64_t bytes) { q->max_job_memory = bytes; }

void queue_set_remote(struct queue *q, const struct job_remote *r) { q->remote = r; }

/* Bytes as text with a binary unit ("3.91 GiB") into buf. */
static const char *queue__bytes(uint64_t b, char *buf, size_t cap)
{
    static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof unit / sizeof unit[0])
        v /= 1024, u++;
    snprintf(buf, cap, u ? "%.3g %s" : "%.0f %s", v, unit[u]);
    return buf;
}

/* Refuses a job of type t whose estimated memory is over the budget:
 * QN_ELIMIT with *err at /spec/network. */
static int queue__memory_check(const struct queue *q, const struct job_type *t,
                               const json_t *spec, struct spec_error *err)
{
    uint64_t bytes = 0;
    char what[128] = "", need[32], have[32];
    if (!q->max_job_memory || !t->estimate)
        return 0;
    int rc = t->estimate(spec, &bytes, what, sizeof what);
    if (rc || bytes <= q->max_job_memory)
        return rc == QN_ENOMEM ? rc : 0; /* a bad spec is validate's to refuse */
    snprintf(err->path, sizeof err->path, "/spec/network");
    snprintf(err->msg, sizeof err->msg,
             "the job needs at least %s of memory (estimated from the spec: %s), more than "
             "one job may use (--max-job-memory %s)",
             queue__bytes(bytes, need, sizeof need), what,
             queue__bytes(q->max_job_memory, have, sizeof have));
    return QN_ELIMIT;
}

int queue_submit(struct queue *q, struct store *s, const json_t *root, const char *owner,
                 int64_t *id, enum store_job_state *state, struct spec_error *err)
{
    struct job_spec js;
    *id = 0;
    int rc = job_spec_parse(root, &js, err);
    if (rc)
        return rc;
    const struct job_type *t = job_type_find(js.type);
    assert(t); /* job_spec_parse accepts the table's types only */
    struct job_refs *refs = calloc(1, sizeof *refs);
    int pending = 0;
    rc = refs ? t->validate(js.spec, refs, err) : QN_ENOMEM;
    if (rc == QN_EPARSE)
        rc = QN_ESPEC;
    if (rc == 0)
        rc = queue__memory_check(q, t, js.spec, err);
    if (rc == 0)
        rc = job_remote_check(q->remote, t, js.ranks, err);
    if (rc == 0 && js.ranks > 1 && t->check_ranks)
        rc = t->check_ranks(js.spec, js.ranks, err);
    if (rc == 0)
        rc = queue__deps_check(s, refs, &pending, err);
    if (rc == 0 && !pending) /* every input exists: resolve them all now */
        rc = queue__prepare(s, t, &js, owner, err);
    if (rc == 0)
        rc = queue__insert(q, s, &js, owner, refs, id, state, err);
    free(refs);
    json_decref(js.spec);
    return rc;
}

int queue_priority_allowed(const json_t *root, int admin, struct spec_error *err)
{
    const json_t *p = json_object_get(root, "priority");
    if (admin || !json_is_integer(p) || json_integer_value(p) <= 0)
        return 0;
    snprintf(err->path, sizeof err->path, "/priority");
    snprintf(err->msg, sizeof err->msg,
             "a priority above the default (0) is for admins; %" JSON_INTEGER_FORMAT
             " asked by a member", json_integer_value(p));
    return QN_EFORBID;
}

/* ---- claim ------------------------------------------------------------------------ */

/* The choice among store_queue_heads' candidates: the owner least recently served. */
struct queue_pick {
    struct queue *q;
    int have;
    uint64_t best;  /* the chosen owner's claim sequence number */
    int64_t id;     /* the chosen job */
    char owner[64];
};

/* store_queue_heads' callback: keeps the head whose owner was served least
 * recently (the first, i.e. oldest, among equals). */
static void queue__pick_head(void *ctx, const char *owner, int64_t id)
{
    struct queue_pick *p = ctx;
    const struct queue_owner *qo = queue__owner(p->q, owner);
    uint64_t seq = qo ? qo->seq : 0;
    if (p->have && seq >= p->best)
        return;
    p->have = 1;
    p->best = seq;
    p->id = id;
    snprintf(p->owner, sizeof p->owner, "%s", owner);
}

/* Picks the job to run (highest priority, then least recently served owner,
 * then oldest) and marks it running; in the caller's transaction. */
static int queue__claim_one(struct queue *q, struct store *s, struct queue_pick *p)
{
    *p = (struct queue_pick){.q = q};
    int rc = store_queue_heads(s, queue__pick_head, p);
    if (rc == 0 && !p->have)
        rc = QN_ENOTFOUND;
    if (rc == 0) {
        rc = store_queue_mark_running(s, p->id);
        assert(rc != QN_ENOTFOUND); /* this transaction just read it queued */
    }
    return rc;
}

int queue_claim(struct queue *q, struct store *s, struct store_job *out)
{
    struct queue_pick p;
    pthread_mutex_lock(&q->mu);
    int rc = store_begin(s);
    if (rc == 0)
        rc = store_end(s, queue__claim_one(q, s, &p));
    if (rc == 0) {
        struct queue_owner *o = queue__owner_add(q, p.owner);
        if (o)
            o->seq = q->next_seq++;
    }
    pthread_mutex_unlock(&q->mu);
    if (rc)
        return rc;
    rc = store_job_get(s, p.id, out);
    if (rc == 0) {
        struct queue_event x = {.id = p.id, .from = JOB_QUEUED, .to = JOB_RUNNING};
        snprintf(x.type, sizeof x.type, "%s", out->type);
        snprintf(x.owner, sizeof x.owner, "%s", out->owner);
        queue__log_one(q, &x);
    }
    return rc;
}

/* ---- promotion and failure propagation -------------------------------------------------- */

int queue_promote(struct queue *q, struct store *s, size_t *promoted, size_t *failed)
{
    size_t np = 0, nf = 0;
    struct queue_events ev = {0};
    int any = 0;
    int rc = store_queue_any_waiting(s, &any); /* most calls end here, without a write lock */
    if (rc == 0 && any && (rc = store_begin(s)) == 0) {
        size_t before;
        do { /* a failure or a promotion can unblock the next link of a chain */
            before = np + nf;
            rc = store_queue_fail_dependents(s, queue__ev_add, &ev, &nf);
            if (rc == 0)
                rc = store_queue_promote_ready(s, queue__ev_add, &ev, &np);
        } while (rc == 0 && np + nf != before);
        rc = store_end(s, rc);
    }
    queue__ev_flush(q, &ev, rc == 0);
    if (promoted)
        *promoted = rc ? 0 : np;
    if (failed)
        *failed = rc ? 0 : nf;
    return rc;
}

/* ---- ends, requeue, cancel, recover --------------------------------------------------- */

/* Logs a single transition of job id read back from the store. */
static void queue__log_job(struct queue *q, struct store *s, int64_t id, enum store_job_state from,
                       enum store_job_state to, const char *why)
{
    if (!q->log)
        return;
    struct store_job j;
    struct queue_event x = {.id = id, .from = from, .to = to};
    if (store_job_get(s, id, &j) == 0) {
        snprintf(x.type, sizeof x.type, "%s", j.type);
        snprintf(x.owner, sizeof x.owner, "%s", j.owner);
        store_job_free(&j);
    }
    snprintf(x.why, sizeof x.why, "%s", why ? why : "");
    queue__log_one(q, &x);
}

int queue_finish(struct queue *q, struct store *s, int64_t id, enum store_job_state state,
                 const char *result, const char *error)
{
    if (!store_job_state_final(state))
        return QN_EINVAL;
    int rc = store_job_set_state(s, id, state, result, error);
    if (rc)
        return rc;
    queue__log_job(q, s, id, JOB_RUNNING, state, state == JOB_SUCCEEDED ? NULL : error);
    return queue_promote(q, s, NULL, NULL);
}

int queue_requeue(struct queue *q, struct store *s, int64_t id)
{
    int rc = store_queue_requeue(s, id);
    if (rc == 0)
        queue__log_job(q, s, id, JOB_RUNNING, JOB_QUEUED, "requeued at shutdown");
    return rc;
}

int queue_cancel_pending(struct queue *q, struct store *s, int64_t id,
                         enum store_job_state *state)
{
    enum store_job_state st = JOB_QUEUED;
    int rc = store_begin(s);
    if (rc)
        return rc;
    rc = store_queue_state(s, id, &st);
    int pending = rc == 0 && (st == JOB_QUEUED || st == JOB_WAITING);
    if (pending)
        rc = store_job_set_state(s, id, JOB_CANCELED, NULL, "canceled");
    rc = store_end(s, rc);
    if (state)
        *state = rc == 0 && pending ? JOB_CANCELED : st;
    if (rc)
        return rc;
    if (!pending)
        return st == JOB_RUNNING ? QN_EBUSY : QN_EEXIST;
    queue__log_job(q, s, id, st, JOB_CANCELED, "canceled");
    return queue_promote(q, s, NULL, NULL);
}

int queue_recover(struct queue *q, struct store *s, size_t *requeued)
{
    struct queue_events ev = {0};
    size_t n = 0;
    int rc = store_begin(s);
    if (rc)
        return rc;
    rc = store_end(s, store_queue_requeue_all(s, queue__ev_add, &ev, &n));
    queue__ev_flush(q, &ev, rc == 0);
    if (requeued)
        *requeued = rc ? 0 : n;
    return rc ? rc : queue_promote(q, s, NULL, NULL);
}

int queue_counts(struct store *s, int64_t counts[6])
{
    return store_job_counts(s, counts);
}
