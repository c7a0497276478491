/*
 * store_queue.c: the job queue's statements (see store_queue.h).
 *
 * A waiting job's dependencies are its rows of job_deps (migration 0006),
 * written with the job itself from the references its spec's parser found.
 */
#include "store_queue.h"

#include <assert.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "qn_err.h"
#include "store_internal.h"

#define STORE_Q_NOW "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"

/* Text column col of st, "" for NULL (borrowed until the next step). */
static const char *store_queue__text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

int store_queue_owners(struct store *s, int (*fn)(void *ctx, const char *owner), void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "SELECT owner FROM jobs WHERE started IS NOT NULL"
                         " GROUP BY owner ORDER BY max(started), max(id)",
                         &st);
    int sr = SQLITE_DONE;
    while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW)
        rc = fn(ctx, store_queue__text(st, 0));
    if (rc == 0)
        rc = store_sqlite_err(sr);
    sqlite3_finalize(st);
    return rc;
}

int store_queue_heads(struct store *s, void (*fn)(void *ctx, const char *owner, int64_t id),
                      void *ctx)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "SELECT priority, owner, min(id) FROM jobs WHERE state = 'queued'"
                         " GROUP BY priority, owner ORDER BY priority DESC, 3",
                         &st);
    int have = 0, top = 0, sr = SQLITE_DONE;
    while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        int prio = sqlite3_column_int(st, 0);
        if (have && prio != top) {
            sr = SQLITE_DONE;
            break;
        }
        have = 1;
        top = prio;
        fn(ctx, store_queue__text(st, 1), sqlite3_column_int64(st, 2));
    }
    if (rc == 0)
        rc = store_sqlite_err(sr);
    sqlite3_finalize(st);
    return rc;
}

/* Runs sql (?1: id) and checks that it changed a row: QN_ENOTFOUND when not. */
static int store_queue__update_one(struct store *s, const char *sql, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = store__exec_stmt(st);
    assert(rc || sqlite3_changes(s->db) <= 1); /* by primary key */
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

int store_queue_mark_running(struct store *s, int64_t id)
{
    return store_queue__update_one(s,
                               "UPDATE jobs SET state = 'running', finished = NULL,"
                               " started = coalesce(started, " STORE_Q_NOW ")"
                               " WHERE id = ?1 AND state = 'queued'",
                               id);
}

int store_queue_requeue(struct store *s, int64_t id)
{
    return store_queue__update_one(
        s, "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'running'", id);
}

int store_queue_requeue_all(struct store *s, store_queue_move_fn fn, void *ctx, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *n = 0;
    int rc =
        store__prep(s, "SELECT id, type, owner FROM jobs WHERE state = 'running' ORDER BY id", &st);
    int sr = SQLITE_DONE;
    while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        (*n)++;
        rc =
            fn(ctx, sqlite3_column_int64(st, 0), store_queue__text(st, 1), store_queue__text(st, 2),
               JOB_RUNNING, JOB_QUEUED, "requeued at start-up (the daemon stopped while it ran)");
    }
    if (rc == 0)
        rc = store_sqlite_err(sr);
    sqlite3_finalize(st);
    if (rc == 0)
        rc = store__exec(s, "UPDATE jobs SET state = 'queued' WHERE state = 'running'");
    assert(rc || (size_t)sqlite3_changes(s->db) == *n); /* the rows just listed */
    return rc;
}

int store_queue_state(struct store *s, int64_t id, enum store_job_state *out)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "SELECT state FROM jobs WHERE id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    int sr = sqlite3_step(st);
    if (sr == SQLITE_ROW)
        rc = store_job_state_from_name(store_queue__text(st, 0), out) ? QN_EFORMAT : 0;
    else
        rc = sr == SQLITE_DONE ? QN_ENOTFOUND : store_sqlite_err(sr);
    sqlite3_finalize(st);
    return rc;
}

int store_queue_any_waiting(struct store *s, int *any)
{
    sqlite3_stmt *st = NULL;
    *any = 0;
    int rc = store__prep(s, "SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'waiting')", &st);
    if (rc == 0) {
        int sr = sqlite3_step(st);
        rc = sr == SQLITE_ROW ? 0 : store_sqlite_err(sr == SQLITE_DONE ? SQLITE_ERROR : sr);
        *any = rc == 0 && sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

/* "job N failed: why" or "job N was canceled" into buf. */
static void store_queue__why(char *buf, size_t cap, int64_t dep, const char *state, const char *err)
{
    if (strcmp(state, "canceled") == 0)
        snprintf(buf, cap, "job %" PRId64 " was canceled", dep);
    else
        snprintf(buf, cap, "job %" PRId64 " failed: %s", dep, err ? err : "no reason recorded");
}

int store_queue_fail_dependents(struct store *s, store_queue_move_fn fn, void *ctx, size_t *n)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    int rc = store__prep(s,
                         "SELECT w.id, w.type, w.owner, d.id, d.state, d.error"
                         " FROM jobs w JOIN job_deps x ON x.job = w.id"
                         " JOIN jobs d ON d.id = x.dependency"
                         " WHERE w.state = 'waiting' AND d.state IN ('failed', 'canceled')"
                         " ORDER BY w.id, d.id",
                         &st);
    if (rc == 0)
        rc = store__prep(s,
                         "UPDATE jobs SET state = 'failed', error = ?2, finished = " STORE_Q_NOW
                         " WHERE id = ?1 AND state = 'waiting'",
                         &up);
    int sr = SQLITE_DONE;
    while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        char why[STORE_MSG_MAX];
        const char *derr = (const char *)sqlite3_column_text(st, 5);
        store_queue__why(why, sizeof why, sqlite3_column_int64(st, 3), store_queue__text(st, 4),
                         derr);
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
        store__bind_text(up, 2, why);
        rc = store_sqlite_err(sqlite3_step(up));
        assert(rc || sqlite3_changes(s->db) <= 1); /* by primary key; 0: failed by an earlier row */
        if (rc == 0 && sqlite3_changes(s->db) > 0) {
            (*n)++;
            rc = fn(ctx, sqlite3_column_int64(st, 0), store_queue__text(st, 1),
                    store_queue__text(st, 2), JOB_WAITING, JOB_FAILED, why);
        }
    }
    if (rc == 0)
        rc = store_sqlite_err(sr);
    sqlite3_finalize(up);
    sqlite3_finalize(st);
    return rc;
}

int store_queue_promote_ready(struct store *s, store_queue_move_fn fn, void *ctx, size_t *n)
{
    sqlite3_stmt *st = NULL, *up = NULL;
    int rc = store__prep(s,
                         "SELECT w.id, w.type, w.owner FROM jobs w WHERE w.state = 'waiting'"
                         " AND NOT EXISTS (SELECT 1 FROM job_deps x JOIN jobs d"
                         "  ON d.id = x.dependency WHERE x.job = w.id"
                         "  AND d.state != 'succeeded') ORDER BY w.id",
                         &st);
    if (rc == 0)
        rc = store__prep(s, "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'waiting'",
                         &up);
    int sr = SQLITE_DONE;
    while (rc == 0 && (sr = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
        rc = store_sqlite_err(sqlite3_step(up));
        assert(rc || sqlite3_changes(s->db) <= 1); /* by primary key */
        if (rc == 0 && sqlite3_changes(s->db) > 0) {
            (*n)++;
            rc = fn(ctx, sqlite3_column_int64(st, 0), store_queue__text(st, 1),
                    store_queue__text(st, 2), JOB_WAITING, JOB_QUEUED, "its inputs are ready");
        }
    }
    if (rc == 0)
        rc = store_sqlite_err(sr);
    sqlite3_finalize(up);
    sqlite3_finalize(st);
    return rc;
}

int store_queue_dep_insert(struct store *s, int64_t job, int64_t dependency, const char *path,
                           const char *type)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO job_deps (job, dependency, path, expected_type)"
                         " VALUES (?1, ?2, ?3, ?4)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, dependency);
    store__bind_text(st, 3, path);
    store__bind_text(st, 4, type);
    return store__exec_insert(s, st, 0, NULL);
}
