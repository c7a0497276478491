/*
 * queue.h: the persistent job queue of `qn serve`, kept in the jobs table.
 *
 * A job's life in the daemon:
 *
 *   submit ──▶ waiting ──(every {"job": N} it names succeeded)──▶ queued
 *      │          └──(one of them failed or was canceled)──▶ failed "job N failed: ..."
 *      └──▶ queued ──claim──▶ running ──▶ succeeded | failed | canceled
 *                     ▲                     │
 *                     └──── requeue ────────┘  (shutdown, or start-up after a crash)
 *
 * Every transition is one SQLite write transaction (BEGIN IMMEDIATE), so the
 * database is the queue: several worker threads, each with its own
 * connection, claim without handing out a job twice, and a crash leaves
 * each job in exactly one state. A job's dependencies are the {"job": N}
 * references its type's parser finds in its spec (job_type.validate),
 * stored with the job in the same transaction (job_deps); waiting jobs are
 * promoted and failed by joining on them.
 *
 * Scheduling: claim takes the highest priority first; among the queued jobs
 * of that priority it takes the oldest job of the owner who least recently
 * had a job claimed (round-robin across owners), so one member's 200 sweeps
 * do not starve another's single job. That memory (owner -> claim sequence)
 * lives in struct queue, seeded at creation from the jobs' start times; it
 * is the only in-process state and losing it on restart only loses the
 * round-robin position. The struct queue is shared by every thread of the
 * daemon (it has its own mutex); store connections are not.
 *
 * Every transition is logged as one line on the queue's log stream:
 *   "qn: job 12 (sweep, alice): queued -> running"
 *
 * Functions return 0 or a qn_err code (store_err.h's mapping of SQLite codes).
 */
#ifndef QN_QUEUE_H
#define QN_QUEUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "spec.h"
#include "store.h"

struct queue; /* opaque; thread-safe */

/*
 * Creates the scheduler state, seeding the round-robin order from the jobs
 * in s (borrowed for the call only). log (borrowed, may be NULL: silent)
 * receives one line per transition. *out is new: queue_destroy it.
 */
int queue_create(struct store *s, FILE *log, struct queue **out);
void queue_destroy(struct queue *q); /* NULL is fine */

/*
 * Submits the job envelope `root` (borrowed: {"type","name","priority","spec"})
 * for `owner`. The envelope (its type one of the job table's) and the type's
 * spec are parsed; every {"job": N} reference of the spec must name an
 * existing job of the type that reference needs (a fit's dataset a sweep,
 * a train's surrogate a fit, ...), finished or not, that has not failed or
 * been canceled. When every referenced job has succeeded the whole job
 * type's prepare runs too (devices, datasets, surrogates are resolved), so a
 * bad reference is refused now; otherwise the job is stored `waiting` and
 * those checks happen when it runs. The job and its references (job_deps)
 * are stored in one transaction. Returns 0 with *id and *state (queued or
 * waiting); QN_ESPEC with *err at the field's path (nothing stored);
 * QN_ELIMIT with *err when the job would need more memory than
 * queue_set_max_job_memory allows (nothing stored); QN_EREMOTE with *err
 * when it asks for ranks it cannot have (queue_set_remote); store codes.
 */
int queue_submit(struct queue *q, struct store *s, const json_t *root, const char *owner,
                 int64_t *id, enum store_job_state *state, struct spec_error *err);

/*
 * Sets how jobs asking for ranks > 1 run (borrowed; lives as long as q; NULL:
 * they are refused): queue_submit refuses such a job with QN_EREMOTE and
 * *err at /resources/ranks when job_remote_check does (its type does not run
 * on several ranks yet, no launcher usable), and stores its resources with
 * its spec (job_spec_text).
 */
struct job_remote;
void queue_set_remote(struct queue *q, const struct job_remote *r);

/*
 * Sets the most memory one job may need (bytes; 0: no limit): queue_submit
 * refuses a job whose type estimates more (job_type.estimate) with
 * QN_ELIMIT and the estimate in *err, at /spec/network.
 */
void queue_set_max_job_memory(struct queue *q, uint64_t bytes);

/*
 * Whether a submitter may ask for the envelope root's priority (borrowed):
 * one above the default (0) is for admins only, so that a member cannot jump
 * the round-robin across owners; lower ones are anyone's. Returns 0, or
 * QN_EFORBID with *err at /priority. A priority that is not an integer is
 * left for queue_submit to refuse.
 */
int queue_priority_allowed(const json_t *root, int admin, struct spec_error *err);

/*
 * Claims the next job (priority, then round-robin across owners, then
 * oldest) and moves it to running. Returns 0 with *out filled
 * (store_job_free it); QN_ENOTFOUND when nothing is queued; QN_EBUSY when the
 * database stayed locked.
 */
int queue_claim(struct queue *q, struct store *s, struct store_job *out);

/*
 * Records the end of a running job: succeeded (result JSON text), failed
 * (error) or canceled; then promotes or fails the jobs waiting on it.
 * QN_EINVAL for a state that is not final.
 */
int queue_finish(struct queue *q, struct store *s, int64_t id, enum store_job_state state,
                 const char *result, const char *error);

/* Puts a running job back to queued (shutdown); it resumes when claimed. */
int queue_requeue(struct queue *q, struct store *s, int64_t id);

/*
 * Cancels job id if it is queued or waiting: 0 and it is canceled (its
 * dependents fail). Otherwise QN_EBUSY when it is running (the worker must
 * be told), QN_EEXIST when it had already ended (*state says how; may be
 * NULL), QN_ENOTFOUND when there is no such job.
 */
int queue_cancel_pending(struct queue *q, struct store *s, int64_t id,
                         enum store_job_state *state);

/*
 * Moves waiting jobs whose references all succeeded to queued, and fails
 * those with a failed or canceled reference, until nothing changes (chains).
 * The counts into *promoted and *failed (may be NULL).
 */
int queue_promote(struct queue *q, struct store *s, size_t *promoted, size_t *failed);

/* Start-up after a crash or a stop: every running job back to queued, then
 * a promotion pass. The count into *requeued (may be NULL). */
int queue_recover(struct queue *q, struct store *s, size_t *requeued);

/* Jobs in each state (indexed by enum store_job_state, 6 entries). */
int queue_counts(struct store *s, int64_t counts[6]);

#endif
