/*
 * queue.c: the persistent job queue (see queue.h for the life of a job).
 *
 * The SQL lives here, next to the scheduling rules, on the raw connection of
 * each caller's store (store_sqlite). Each transition is one BEGIN IMMEDIATE
 * transaction: taking the write lock up front means a claim never reads a
 * job that another thread moves before the update (no SQLITE_BUSY upgrade
 * failures), and the busy timeout of the store covers waiting for the lock.
 *
 * Dependencies are read from the stored specs with json_tree rather than
 * kept in a table of their own: the spec is the single source, and a
 * daemon has few waiting jobs at a time.
 */
#include "queue.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "qn_err.h"

#define Q_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

/* The round-robin memory: when each owner last had a job claimed. */
struct q_owner {
    char name[64];  /* jobs.owner */
    uint64_t seq;   /* claim sequence number of its last claim; 0 = never */
};

struct queue {
    pthread_mutex_t mu;     /* guards everything below; held across a claim */
    struct q_owner *owners; /* (n_owners) */
    size_t n_owners, cap_owners;
    uint64_t next_seq;      /* the next claim's sequence number */
    FILE *log;              /* transition lines (borrowed, may be NULL) */
    pthread_mutex_t log_mu; /* one line at a time */
};

/* A transition to log once its transaction committed. */
struct q_event {
    int64_t id;
    char type[16];
    char owner[64];
    enum store_job_state from, to;
    char why[160]; /* "" or a reason */
};

struct q_events {
    struct q_event *v;
    size_t n, cap;
};

/* ---- small SQL helpers ---------------------------------------------------- */

static int q__exec(sqlite3 *db, const char *sql)
{
    return store_sqlite_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static int q__begin(sqlite3 *db)
{
    return q__exec(db, "BEGIN IMMEDIATE");
}

/* Commits, or rolls back when rc (the work's result) is not 0. Returns the first failure. */
static int q__end(sqlite3 *db, int rc)
{
    if (rc == 0)
        rc = q__exec(db, "COMMIT");
    if (rc)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int q__prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return store_sqlite_err(sqlite3_prepare_v2(db, sql, -1, st, NULL));
}

/* Steps a statement that returns no rows and finalizes it. */
static int q__run(sqlite3_stmt *st)
{
    int rc = store_sqlite_err(sqlite3_step(st));
    sqlite3_finalize(st);
    return rc;
}

/* ---- transition log --------------------------------------------------------- */

static int q__ev_add(struct q_events *e, int64_t id, const char *type, const char *owner,
                     enum store_job_state from, enum store_job_state to, const char *why)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 8;
        struct q_event *v = realloc(e->v, cap * sizeof *v);
        if (!v)
            return QN_ENOMEM;
        e->v = v;
        e->cap = cap;
    }
    struct q_event *x = &e->v[e->n++];
    x->id = id;
    x->from = from;
    x->to = to;
    snprintf(x->type, sizeof x->type, "%s", type ? type : "?");
    snprintf(x->owner, sizeof x->owner, "%s", owner ? owner : "?");
    snprintf(x->why, sizeof x->why, "%s", why ? why : "");
    return 0;
}

static void q__log_one(struct queue *q, const struct q_event *x)
{
    if (!q->log)
        return;
    pthread_mutex_lock(&q->log_mu);
    if (x->from == x->to) /* a new job */
        fprintf(q->log, "qn: job %" PRId64 " (%s, %s): submitted -> %s%s%s\n", x->id, x->type,
                x->owner, store_job_state_name(x->to), x->why[0] ? ": " : "", x->why);
    else
        fprintf(q->log, "qn: job %" PRId64 " (%s, %s): %s -> %s%s%s\n", x->id, x->type, x->owner,
                store_job_state_name(x->from), store_job_state_name(x->to),
                x->why[0] ? ": " : "", x->why);
    fflush(q->log);
    pthread_mutex_unlock(&q->log_mu);
}

/* Logs and frees the events (after the commit that made them true). */
static void q__ev_flush(struct queue *q, struct q_events *e, int committed)
{
    for (size_t i = 0; committed && i < e->n; i++)
        q__log_one(q, &e->v[i]);
    free(e->v);
    memset(e, 0, sizeof *e);
}

/* ---- creation: the round-robin memory ---------------------------------------- */

static struct q_owner *q__owner(struct queue *q, const char *name)
{
    for (size_t i = 0; i < q->n_owners; i++)
        if (strcmp(q->owners[i].name, name) == 0)
            return &q->owners[i];
    return NULL;
}

/* The owner's entry, added (seq 0) when new; NULL when out of memory. */
static struct q_owner *q__owner_add(struct queue *q, const char *name)
{
    struct q_owner *o = q__owner(q, name);
    if (o)
        return o;
    if (q->n_owners == q->cap_owners) {
        size_t cap = q->cap_owners ? 2 * q->cap_owners : 8;
        struct q_owner *v = realloc(q->owners, cap * sizeof *v);
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

/* Orders owners by when their last job started, the least recent first. */
static int q__seed(struct queue *q, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = q__prep(db,
                     "SELECT owner FROM jobs WHERE started IS NOT NULL"
                     " GROUP BY owner ORDER BY max(started), max(id)",
                     &st);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        struct q_owner *o = q__owner_add(q, (const char *)sqlite3_column_text(st, 0));
        if (!o)
            rc = QN_ENOMEM;
        else
            o->seq = q->next_seq++;
    }
    sqlite3_finalize(st);
    return rc;
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
    int rc = q__seed(q, store_sqlite(s));
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

/* A {"job": N} reference found in a spec. */
struct q_dep {
    int64_t id;
    char path[SPEC_PATH_MAX]; /* JSON Pointer of the reference object */
};

struct q_deps {
    struct q_dep v[QUEUE_MAX_DEPS];
    size_t n;
};

/* Collects every object member "job" with an integer value under v (at path). */
static int q__deps_walk(const json_t *v, const char *path, struct q_deps *d,
                        struct spec_error *err)
{
    char sub[SPEC_PATH_MAX];
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            spec_path_index(sub, sizeof sub, path, i);
            int rc = q__deps_walk(json_array_get(v, i), sub, d, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    const json_t *job = json_object_get(v, "job");
    if (json_is_integer(job)) {
        if (d->n == QUEUE_MAX_DEPS)
            return spec_fail(err, path, "a spec may reference at most %d jobs", QUEUE_MAX_DEPS);
        d->v[d->n].id = json_integer_value(job);
        snprintf(d->v[d->n].path, sizeof d->v[d->n].path, "%s", path);
        d->n++;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        spec_path_key(sub, sizeof sub, path, key);
        int rc = q__deps_walk(val, sub, d, err);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Checks the references against the jobs table: each must exist and must not
 * have failed or been canceled. *pending = 1 when one has not succeeded yet.
 */
static int q__deps_check(sqlite3 *db, const struct q_deps *d, int *pending,
                         struct spec_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = q__prep(db, "SELECT state, error FROM jobs WHERE id = ?1", &st);
    *pending = 0;
    for (size_t i = 0; rc == 0 && i < d->n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, d->v[i].id);
        int s = sqlite3_step(st);
        if (s == SQLITE_DONE) {
            rc = spec_fail(err, d->v[i].path, "no job with id %" PRId64, d->v[i].id);
            break;
        }
        if (s != SQLITE_ROW) {
            rc = store_sqlite_err(s);
            break;
        }
        const char *state = (const char *)sqlite3_column_text(st, 0);
        const char *why = (const char *)sqlite3_column_text(st, 1);
        if (strcmp(state, "failed") == 0)
            rc = spec_fail(err, d->v[i].path, "job %" PRId64 " failed: %s", d->v[i].id,
                           why ? why : "no reason recorded");
        else if (strcmp(state, "canceled") == 0)
            rc = spec_fail(err, d->v[i].path, "job %" PRId64 " was canceled", d->v[i].id);
        else if (strcmp(state, "succeeded") != 0)
            *pending = 1;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Parses the type's spec without the store (a job whose inputs do not exist yet). */
static int q__parse_only(const struct job_type *t, const struct job_spec *js,
                         struct spec_error *err)
{
    struct job_refs refs = {.n = 0};
    int rc = t->validate(js->spec, &refs, err);
    return rc == QN_EPARSE ? QN_ESPEC : rc;
}

/* Runs the type's prepare (full resolution against the store) and releases it. */
static int q__prepare(struct store *s, const struct job_type *t, const struct job_spec *js,
                      const char *owner, struct spec_error *err)
{
    struct job_ctx ctx = {.store = s, .name = js->name, .owner = owner, .spec = js->spec,
                          .workers = 1};
    int rc = t->prepare(&ctx);
    if (rc)
        *err = ctx.err;
    t->release(&ctx);
    return rc == QN_EPARSE ? QN_ESPEC : rc;
}

/* Inserts the job (references re-checked inside the transaction). */
static int q__insert(struct queue *q, struct store *s, const struct job_spec *js,
                     const char *owner, const struct q_deps *d, int64_t *id,
                     enum store_job_state *state, struct spec_error *err)
{
    char *text = json_dumps(js->spec, JSON_COMPACT);
    if (!text)
        return QN_ENOMEM;
    sqlite3 *db = store_sqlite(s);
    int pending = 0;
    int rc = q__begin(db);
    if (rc == 0) {
        rc = q__deps_check(db, d, &pending, err);
        *state = pending ? JOB_WAITING : JOB_QUEUED;
        if (rc == 0)
            rc = store_job_insert(s, js->type, js->name, owner, js->priority, *state, text, id);
        rc = q__end(db, rc);
    }
    free(text);
    if (rc == 0 && q->log) {
        struct q_event x = {.id = *id, .from = *state, .to = *state};
        snprintf(x.type, sizeof x.type, "%s", js->type);
        snprintf(x.owner, sizeof x.owner, "%s", owner ? owner : "local");
        snprintf(x.why, sizeof x.why, "priority %d", js->priority);
        q__log_one(q, &x);
    }
    return rc;
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
    struct q_deps *d = calloc(1, sizeof *d);
    int pending = 0;
    if (!t)
        rc = spec_fail(err, "/type", "type '%s' is not supported by this build", js.type),
        rc = QN_EINVAL;
    else if (!d)
        rc = QN_ENOMEM;
    else
        rc = q__deps_walk(js.spec, "/spec", d, err);
    if (rc == 0)
        rc = q__deps_check(store_sqlite(s), d, &pending, err);
    if (rc == 0)
        rc = pending ? q__parse_only(t, &js, err) : q__prepare(s, t, &js, owner, err);
    if (rc == 0)
        rc = q__insert(q, s, &js, owner, d, id, state, err);
    free(d);
    json_decref(js.spec);
    return rc;
}

/* ---- claim ------------------------------------------------------------------------ */

/* Picks the job to run: highest priority, then least recently served owner, then oldest. */
static int q__pick(struct queue *q, sqlite3 *db, int64_t *id, char *owner, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = q__prep(db,
                     "SELECT priority, owner, min(id) FROM jobs WHERE state = 'queued'"
                     " GROUP BY priority, owner ORDER BY priority DESC, 3",
                     &st);
    int have = 0, top = 0;
    uint64_t best = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        int prio = sqlite3_column_int(st, 0);
        if (have && prio != top)
            break;
        const char *o = (const char *)sqlite3_column_text(st, 1);
        const struct q_owner *qo = q__owner(q, o);
        uint64_t seq = qo ? qo->seq : 0;
        if (!have || seq < best) {
            have = 1;
            top = prio;
            best = seq;
            *id = sqlite3_column_int64(st, 2);
            snprintf(owner, cap, "%s", o);
        }
    }
    sqlite3_finalize(st);
    return rc ? rc : have ? 0 : QN_ENOTFOUND;
}

static int q__mark_running(sqlite3 *db, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = q__prep(db,
                     "UPDATE jobs SET state = 'running', finished = NULL,"
                     " started = coalesce(started, " Q_NOW ") WHERE id = ?1 AND state = 'queued'",
                     &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return q__run(st);
}

int queue_claim(struct queue *q, struct store *s, struct store_job *out)
{
    sqlite3 *db = store_sqlite(s);
    int64_t id = 0;
    char owner[64] = "";
    pthread_mutex_lock(&q->mu);
    int rc = q__begin(db);
    if (rc == 0) {
        rc = q__pick(q, db, &id, owner, sizeof owner);
        if (rc == 0)
            rc = q__mark_running(db, id);
        rc = q__end(db, rc);
    }
    if (rc == 0) {
        struct q_owner *o = q__owner_add(q, owner);
        if (o)
            o->seq = q->next_seq++;
    }
    pthread_mutex_unlock(&q->mu);
    if (rc)
        return rc;
    rc = store_job_get(s, id, out);
    if (rc == 0) {
        struct q_event x = {.id = id, .from = JOB_QUEUED, .to = JOB_RUNNING};
        snprintf(x.type, sizeof x.type, "%s", out->type);
        snprintf(x.owner, sizeof x.owner, "%s", out->owner);
        q__log_one(q, &x);
    }
    return rc;
}

/* ---- promotion and failure propagation -------------------------------------------------- */

/* Fails every waiting job that references a failed or canceled job. */
static int q__fail_dependents(sqlite3 *db, struct q_events *ev, size_t *n)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    int rc = q__prep(db,
                     "SELECT w.id, w.type, w.owner, d.id, d.state, d.error"
                     " FROM jobs w, json_tree(w.spec) t JOIN jobs d ON d.id = t.value"
                     " WHERE w.state = 'waiting' AND t.key = 'job' AND t.type = 'integer'"
                     " AND d.state IN ('failed', 'canceled') ORDER BY w.id, d.id",
                     &st);
    if (rc == 0)
        rc = q__prep(db,
                     "UPDATE jobs SET state = 'failed', error = ?2, finished = " Q_NOW
                     " WHERE id = ?1 AND state = 'waiting'",
                     &up);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        char why[STORE_MSG_MAX];
        const char *dstate = (const char *)sqlite3_column_text(st, 4);
        const char *derr = (const char *)sqlite3_column_text(st, 5);
        int64_t did = sqlite3_column_int64(st, 3);
        if (strcmp(dstate, "canceled") == 0)
            snprintf(why, sizeof why, "job %" PRId64 " was canceled", did);
        else
            snprintf(why, sizeof why, "job %" PRId64 " failed: %s", did,
                     derr ? derr : "no reason recorded");
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
        sqlite3_bind_text(up, 2, why, -1, SQLITE_TRANSIENT);
        rc = store_sqlite_err(sqlite3_step(up));
        if (rc == 0 && sqlite3_changes(db) > 0) {
            (*n)++;
            rc = q__ev_add(ev, sqlite3_column_int64(st, 0),
                           (const char *)sqlite3_column_text(st, 1),
                           (const char *)sqlite3_column_text(st, 2), JOB_WAITING, JOB_FAILED, why);
        }
    }
    sqlite3_finalize(up);
    sqlite3_finalize(st);
    return rc;
}

/* Queues every waiting job whose references have all succeeded. */
static int q__promote_ready(sqlite3 *db, struct q_events *ev, size_t *n)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    int rc = q__prep(db,
                     "SELECT w.id, w.type, w.owner FROM jobs w WHERE w.state = 'waiting'"
                     " AND NOT EXISTS (SELECT 1 FROM json_tree(w.spec) t JOIN jobs d"
                     "  ON d.id = t.value WHERE t.key = 'job' AND t.type = 'integer'"
                     "  AND d.state != 'succeeded') ORDER BY w.id",
                     &st);
    if (rc == 0)
        rc = q__prep(db, "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'waiting'",
                     &up);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
        rc = store_sqlite_err(sqlite3_step(up));
        if (rc == 0 && sqlite3_changes(db) > 0) {
            (*n)++;
            rc = q__ev_add(ev, sqlite3_column_int64(st, 0),
                           (const char *)sqlite3_column_text(st, 1),
                           (const char *)sqlite3_column_text(st, 2), JOB_WAITING, JOB_QUEUED,
                           "its inputs are ready");
        }
    }
    sqlite3_finalize(up);
    sqlite3_finalize(st);
    return rc;
}

/* Has anything waiting at all? Most calls end here without a write lock. */
static int q__any_waiting(sqlite3 *db, int *any)
{
    sqlite3_stmt *st = NULL;
    int rc = q__prep(db, "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting')", &st);
    if (rc == 0) {
        int s = sqlite3_step(st);
        rc = s == SQLITE_ROW ? 0 : store_sqlite_err(s);
        *any = rc == 0 && sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

int queue_promote(struct queue *q, struct store *s, size_t *promoted, size_t *failed)
{
    sqlite3 *db = store_sqlite(s);
    size_t np = 0, nf = 0;
    struct q_events ev = {0};
    int any = 0;
    int rc = q__any_waiting(db, &any);
    if (rc == 0 && any && (rc = q__begin(db)) == 0) {
        size_t before;
        do { /* a failure or a promotion can unblock the next link of a chain */
            before = np + nf;
            rc = q__fail_dependents(db, &ev, &nf);
            if (rc == 0)
                rc = q__promote_ready(db, &ev, &np);
        } while (rc == 0 && np + nf != before);
        rc = q__end(db, rc);
    }
    q__ev_flush(q, &ev, rc == 0);
    if (promoted)
        *promoted = rc ? 0 : np;
    if (failed)
        *failed = rc ? 0 : nf;
    return rc;
}

/* ---- ends, requeue, cancel, recover --------------------------------------------------- */

/* Logs a single transition of job id read back from the store. */
static void q__log_job(struct queue *q, struct store *s, int64_t id, enum store_job_state from,
                       enum store_job_state to, const char *why)
{
    if (!q->log)
        return;
    struct store_job j;
    struct q_event x = {.id = id, .from = from, .to = to};
    if (store_job_get(s, id, &j) == 0) {
        snprintf(x.type, sizeof x.type, "%s", j.type);
        snprintf(x.owner, sizeof x.owner, "%s", j.owner);
        store_job_free(&j);
    }
    snprintf(x.why, sizeof x.why, "%s", why ? why : "");
    q__log_one(q, &x);
}

int queue_finish(struct queue *q, struct store *s, int64_t id, enum store_job_state state,
                 const char *result, const char *error)
{
    if (!store_job_state_final(state))
        return QN_EINVAL;
    int rc = store_job_set_state(s, id, state, result, error);
    if (rc)
        return rc;
    q__log_job(q, s, id, JOB_RUNNING, state, state == JOB_SUCCEEDED ? NULL : error);
    return queue_promote(q, s, NULL, NULL);
}

int queue_requeue(struct queue *q, struct store *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    sqlite3 *db = store_sqlite(s);
    int rc = q__prep(db, "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'running'",
                     &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = q__run(st);
    if (rc == 0 && sqlite3_changes(db) == 0)
        rc = QN_ENOTFOUND;
    if (rc == 0)
        q__log_job(q, s, id, JOB_RUNNING, JOB_QUEUED, "requeued at shutdown");
    return rc;
}

static int q__state_of(sqlite3 *db, int64_t id, enum store_job_state *out)
{
    sqlite3_stmt *st = NULL;
    int rc = q__prep(db, "SELECT state FROM jobs WHERE id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        rc = store_job_state_from_name((const char *)sqlite3_column_text(st, 0), out);
    else
        rc = s == SQLITE_DONE ? QN_ENOTFOUND : store_sqlite_err(s);
    sqlite3_finalize(st);
    return rc;
}

int queue_cancel_pending(struct queue *q, struct store *s, int64_t id,
                         enum store_job_state *state)
{
    sqlite3 *db = store_sqlite(s);
    enum store_job_state st = JOB_QUEUED;
    int rc = q__begin(db);
    if (rc)
        return rc;
    rc = q__state_of(db, id, &st);
    int pending = rc == 0 && (st == JOB_QUEUED || st == JOB_WAITING);
    if (pending)
        rc = store_job_set_state(s, id, JOB_CANCELED, NULL, "canceled");
    rc = q__end(db, rc);
    if (state)
        *state = rc == 0 && pending ? JOB_CANCELED : st;
    if (rc)
        return rc;
    if (!pending)
        return st == JOB_RUNNING ? QN_EBUSY : QN_EEXIST;
    q__log_job(q, s, id, st, JOB_CANCELED, "canceled");
    return queue_promote(q, s, NULL, NULL);
}

int queue_recover(struct queue *q, struct store *s, size_t *requeued)
{
    sqlite3 *db = store_sqlite(s);
    sqlite3_stmt *st = NULL;
    struct q_events ev = {0};
    size_t n = 0;
    int rc = q__begin(db);
    if (rc)
        return rc;
    rc = q__prep(db, "SELECT id, type, owner FROM jobs WHERE state = 'running' ORDER BY id",
                 &st);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        n++;
        rc = q__ev_add(&ev, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                       (const char *)sqlite3_column_text(st, 2), JOB_RUNNING, JOB_QUEUED,
                       "requeued at start-up (the daemon stopped while it ran)");
    }
    sqlite3_finalize(st);
    if (rc == 0)
        rc = q__exec(db, "UPDATE jobs SET state = 'queued' WHERE state = 'running'");
    rc = q__end(db, rc);
    q__ev_flush(q, &ev, rc == 0);
    if (requeued)
        *requeued = rc ? 0 : n;
    return rc ? rc : queue_promote(q, s, NULL, NULL);
}

int queue_counts(struct store *s, int64_t counts[6])
{
    sqlite3_stmt *st = NULL;
    memset(counts, 0, 6 * sizeof *counts);
    int rc = q__prep(store_sqlite(s), "SELECT state, count(*) FROM jobs GROUP BY state", &st);
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        enum store_job_state js;
        if (store_job_state_from_name((const char *)sqlite3_column_text(st, 0), &js) == 0)
            counts[js] = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}
