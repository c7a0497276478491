/*
 * job_remote.h: running a job on several ranks: the daemon's side of qn-mpi.
 *
 * A job whose envelope asks "resources": {"ranks": R, "threads": T} with
 * R > 1 is not run in the worker's process. After its type's prepare (the
 * same checks and look-ups as in-process) the worker:
 *   1. stages SPOOL/job-ID/ (schema/spool.h): the type's stage writes
 *      job.json with every reference resolved, and the arrays and blobs
 *      qn-mpi needs;
 *   2. starts qn-mpi on R ranks through the launcher (launch.h) and reads
 *      rank 0's lines until they end: progress goes to the job's progress
 *      callback, metric rows are stored with store_metric_insert as an
 *      in-process job stores them (so SSE and the page see them); a cancel
 *      (the job's cancel flag) becomes the launcher's cancel, and the job
 *      ends canceled;
 *   3. when qn-mpi exited 0, the type's collect reads the result files and
 *      stores the job's output in one transaction and makes its result; a
 *      failure is the job's failure with qn-mpi's reason (error.txt, else
 *      the last line of stderr.txt), with nothing of its output stored;
 *   4. removes SPOOL/job-ID/ however the job ended.
 * A launcher whose runs outlive the daemon (Slurm) gives each run a handle
 * (the Slurm job id), kept on the job's row (store_job_set_handle) from the
 * start until the output is stored: a daemon that restarts (kill -9) finds
 * the job requeued with its handle and attaches to that run (follows it,
 * collects its result) instead of staging and starting it again; when the
 * run is gone and left result.json, the result is collected as it is. A
 * daemon that stops cleanly (SIGTERM: its jobs are requeued) leaves such a
 * run going, with its spool directory and handle, for the next start to
 * attach to, instead of canceling it. A run lost with its node (QN_ELOST
 * from the launcher's wait) is staged and run again, up to
 * JOB_REMOTE_ATTEMPTS runs in all (a train job resumes from its last
 * checkpoint, which the stage writes).
 * Only the daemon opens the database; qn-mpi sees the spool and its output.
 */
#ifndef QN_JOB_REMOTE_H
#define QN_JOB_REMOTE_H

#include <stddef.h>

#include "job.h"
#include "launch.h"
#include "spool.h"

/* How jobs on several ranks run in this process (made once at start-up). */
struct job_remote {
    struct launcher launcher;    /* its ops and settings (copied in) */
    char spool[SPOOL_PATH_MAX];  /* the spool directory, absolute and writable */
    char qn_mpi[SPOOL_PATH_MAX]; /* the qn-mpi program: beside this program's executable */
};

/*
 * Fills *r: the launcher L (copied), the spool directory (spool, or NULL:
 * DB.spool beside the database db), created when missing and checked
 * writable, and the qn-mpi beside /proc/self/exe. Returns 0, or QN_EIO with
 * msg naming the spool directory that cannot be written (`qn serve` refuses
 * to start).
 */
int job_remote_init(struct job_remote *r, const struct launcher *L, const char *spool,
                    const char *db, char *msg, size_t cap);

/*
 * Whether a job of type t asking for `ranks` can run here, at submission:
 * 0 for ranks <= 1; QN_EREMOTE with *err at /resources/ranks when t has no
 * stage ("type X does not run on several ranks yet"), when r is NULL, when
 * the launcher's check fails (mpirun not on PATH) or qn-mpi is missing.
 */
int job_remote_check(const struct job_remote *r, const struct job_type *t, size_t ranks,
                     struct spec_error *err);

/*
 * Runs a prepared job: in this process (t->run) when ctx->ranks <= 1 or
 * ctx->remote is NULL (`qn resume`, which has no launcher), else on qn-mpi's
 * ranks (steps 1-4 above). Returns as t->run: 0 with ctx->result, or a code
 * with ctx->reason (QN_ECANCELED when ctx->cancel stopped it).
 */
int job_execute(const struct job_type *t, struct job_ctx *ctx);

#endif
