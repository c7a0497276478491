/*
 * store_queue.h: the statements of the job queue (server/jobs/queue.c): the
 * jobs table read as a queue, the moves between states, and the
 * dependencies between jobs (job_deps, migration 0006).
 *
 * The scheduling rules stay with the queue: it chooses among the heads this
 * file lists, holds the transactions (store_tx.h) that make a transition
 * atomic, and logs each move, which the functions that move several jobs
 * report through a store_queue_move_fn. Functions marked "in the caller's
 * transaction" must run between store_begin and store_end; the others are
 * one statement each.
 *
 * Every function returns 0 or a qn_err code (store_err.h).
 */
#ifndef QN_STORE_QUEUE_H
#define QN_STORE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * One job moved from `from` to `to`, why a sentence or "". Every string is
 * borrowed for the call. Returns 0, or a code that stops the caller's loop
 * (and is returned by it).
 */
typedef int (*store_queue_move_fn)(void *ctx, int64_t id, const char *type, const char *owner,
                                   enum store_job_state from, enum store_job_state to,
                                   const char *why);

/* The owners of jobs that ever started, the least recently started first:
 * fn(ctx, owner) for each (owner borrowed; a nonzero return stops and is
 * returned). */
int store_queue_owners(struct store *s, int (*fn)(void *ctx, const char *owner), void *ctx);

/*
 * The candidates of the next claim: among the queued jobs of the highest
 * priority queued, each owner's oldest job, the oldest first: fn(ctx, owner,
 * id) for each (owner borrowed). Nothing is called when no job is queued. In
 * the caller's transaction (the claim's).
 */
int store_queue_heads(struct store *s, void (*fn)(void *ctx, const char *owner, int64_t id),
                      void *ctx);

/* Moves queued job id to running, stamping started on its first run. In the
 * caller's transaction; QN_ENOTFOUND when id is not queued. */
int store_queue_mark_running(struct store *s, int64_t id);

/* Moves running job id back to queued (started is kept). QN_ENOTFOUND when
 * it is not running. */
int store_queue_requeue(struct store *s, int64_t id);

/* Moves every running job back to queued (start-up), each reported to fn
 * (why: requeued at start-up); their number into *n. In the caller's
 * transaction. */
int store_queue_requeue_all(struct store *s, store_queue_move_fn fn, void *ctx, size_t *n);

/* The state of job id into *out; QN_ENOTFOUND when there is none. */
int store_queue_state(struct store *s, int64_t id, enum store_job_state *out);

/* *any = 1 when some job is waiting, else 0. */
int store_queue_any_waiting(struct store *s, int *any);

/*
 * Fails every waiting job that depends (job_deps) on a failed or canceled job, with
 * the error "job N failed: <its error>" or "job N was canceled", each
 * reported to fn; *n is increased by their number. In the caller's
 * transaction.
 */
int store_queue_fail_dependents(struct store *s, store_queue_move_fn fn, void *ctx, size_t *n);

/* Queues every waiting job whose dependencies (job_deps) have all succeeded, each
 * reported to fn; *n is increased by their number. In the caller's
 * transaction. */
int store_queue_promote_ready(struct store *s, store_queue_move_fn fn, void *ctx, size_t *n);

/* Records that job `job` uses the output of job `dependency`: its reference
 * at JSON Pointer `path` of the envelope, which must name a job of type
 * `type`. In the caller's transaction (the one that inserts the job).
 * QN_EEXIST when job already has a reference at path. */
int store_queue_dep_insert(struct store *s, int64_t job, int64_t dependency, const char *path,
                           const char *type);

#endif
