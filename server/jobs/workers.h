/*
 * workers.h: the worker pool of `qn serve`: N threads that take jobs from
 * the persistent queue (queue.h) and run them through the job type table
 * (job.h), each thread with its own store connection.
 *
 * A thread's loop: claim -> prepare -> run -> release -> final state, then
 * promote the jobs waiting on it. A thread with nothing to do sleeps on a
 * condition variable that submissions signal (workers_wake), and looks at
 * the queue at least once a second anyway.
 *
 * Each running job has a cancel flag, registered in the pool so that
 * workers_cancel (POST /v1/jobs/{id}/cancel) and workers_stop (SIGTERM)
 * reach it. A user's cancel ends the job `canceled` and keeps what it wrote
 * (metrics, checkpoints); a stop with requeue sets the same flag with a
 * requeue marker and the job goes back to `queued`, to resume from its last
 * checkpoint at the next start. A job that is run again from the start (any
 * type but train, which resumes from its checkpoint and trims its own
 * metrics) has the metrics of its earlier attempt deleted first, so its
 * history has no duplicates.
 *
 * Thread-safe: every function may be called from any thread, except that
 * workers_stop must be the last call.
 */
#ifndef QN_WORKERS_H
#define QN_WORKERS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct queue;
struct job_remote;
struct workers; /* opaque */

struct workers_config {
    const char *db;     /* database path (copied) */
    size_t n;           /* worker threads, >= 1 */
    size_t job_threads; /* threads one job may use (job_ctx.workers), >= 1 */
    FILE *log;          /* transition lines (borrowed; NULL: silent) */
    uint64_t max_job_memory; /* bytes one submitted job may need (0: no limit) */
    const struct job_remote *remote; /* jobs asking ranks > 1 (job_remote.h; borrowed, must
                                        outlive the pool; NULL: such jobs are refused) */
    struct store_changes *changes; /* counts the workers' commits (borrowed; NULL: none) */
};

/*
 * Opens the database, requeues the jobs that were running when the last
 * process stopped (queue_recover), and starts cfg->n threads. *out is new:
 * workers_stop it. msg (cap bytes, may be NULL) says why on failure.
 */
int workers_create(const struct workers_config *cfg, struct workers **out, char *msg,
                   size_t cap);

/*
 * Stops the pool and frees it (NULL is fine). requeue = 1: running jobs are
 * told to stop and are put back to `queued` (shutdown); requeue = 0: they are
 * let run to their end. Joins every thread either way.
 */
void workers_stop(struct workers *w, int requeue);

/* The first half of workers_stop: stops and joins the threads (requeue as
 * there) but keeps w, so request threads still holding it read an empty
 * registry instead of freed memory; workers_stop frees it later. */
void workers_halt(struct workers *w, int requeue);

/* The queue the pool takes jobs from (borrowed; lives as long as w). */
struct queue *workers_queue(struct workers *w);

/* Tells idle threads to look at the queue now (after a submission). */
void workers_wake(struct workers *w);

/*
 * Cancels job id using connection s (the caller's): a queued or waiting job
 * at once (*state = canceled), a running one by setting its cancel flag
 * (*state = running: it ends canceled within about a second). QN_EEXIST when
 * the job had already ended (*state says how), QN_ENOTFOUND when there is no
 * such job, QN_EBUSY when it is running but not in this pool (another
 * process runs it).
 */
int workers_cancel(struct workers *w, struct store *s, int64_t id, enum store_job_state *state);

/* Progress of job id if a thread of this pool runs it: 0 with done/total
 * (units of its type: sweep rows, train steps), QN_ENOTFOUND otherwise. */
int workers_progress(struct workers *w, int64_t id, uint64_t *done, uint64_t *total);

/* Threads of the pool running a job now. */
size_t workers_busy(struct workers *w);

/* Writes the pool's Prometheus lines (http_metrics_fn; ctx is the pool):
 * qn_workers, qn_workers_busy, qn_job_units_total{type} (sweep rows solved,
 * train steps, by type), qn_jobs_ended_total{state} (requeued, succeeded, failed,
 * canceled). Jobs by state and the queue depth are the HTTP layer's. */
void workers_metrics(FILE *out, void *ctx);

#endif
