/*
 * job_remote.c: a job on qn-mpi's ranks, staged, launched, followed and
 * collected (see job_remote.h).
 */
#include "job_remote.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_err.h"

#define JOB_REMOTE_POLL_MS 200 /* the cancel flag is looked at least this often */
#define JOB_REMOTE_ATTEMPTS 3  /* runs of a job whose run is lost with its node (QN_ELOST) */

/* Creates dir when missing, then proves it writable by making a file in it. */
static int job_remote__writable(const char *dir, char *msg, size_t cap)
{
    char probe[SPOOL_PATH_MAX];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(msg, cap, "the spool directory %s cannot be created: %s", dir, strerror(errno));
        return QN_EIO;
    }
    int fd = -1;
    if (spool_path(probe, sizeof probe, dir, ".qn-write-test") == 0)
        fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(msg, cap, "the spool directory %s is not writable: %s", dir, strerror(errno));
        return QN_EIO;
    }
    close(fd);
    unlink(probe);
    return 0;
}

/* qn-mpi beside this program's executable into out. */
static void job_remote__qn_mpi(char *out, size_t cap)
{
    char exe[SPOOL_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, cap, "%s/qn-mpi", slash ? exe : ".");
}

int job_remote_init(struct job_remote *r, const struct launcher *L, const char *spool,
                    const char *db, char *msg, size_t cap)
{
    char dir[SPOOL_PATH_MAX];
    memset(r, 0, sizeof *r);
    r->launcher = *L;
    if (snprintf(dir, sizeof dir, "%s%s", spool ? spool : db, spool ? "" : ".spool") >=
        (int)sizeof dir) {
        snprintf(msg, cap, "the spool directory's path is too long");
        return QN_EIO;
    }
    int rc = job_remote__writable(dir, msg, cap);
    if (rc)
        return rc;
    if (!realpath(dir, r->spool)) {
        snprintf(msg, cap, "the spool directory %s cannot be resolved: %s", dir,
                 strerror(errno));
        return QN_EIO;
    }
    job_remote__qn_mpi(r->qn_mpi, sizeof r->qn_mpi);
    return 0;
}

int job_remote_check(const struct job_remote *r, const struct job_type *t, size_t ranks,
                     struct spec_error *err)
{
    char msg[sizeof err->msg];
    const char *path = "/resources/ranks";
    if (ranks <= 1)
        return 0;
    if (!t->stage) {
        spec_fail(err, path, "type %s does not run on several ranks yet (ranks %zu asked; "
                  "give 1 or leave resources out)", t->name, ranks);
        return QN_EREMOTE;
    }
    if (!r) {
        spec_fail(err, path, "no launcher for ranks > 1 here");
        return QN_EREMOTE;
    }
    if (r->launcher.ops->check(&r->launcher, msg, sizeof msg)) {
        spec_fail(err, path, "ranks %zu cannot run: %s", ranks, msg);
        return QN_EREMOTE;
    }
    if (access(r->qn_mpi, X_OK) != 0) {
        spec_fail(err, path, "ranks %zu cannot run: qn-mpi is not at %s (make builds it)", ranks,
                  r->qn_mpi);
        return QN_EREMOTE;
    }
    return 0;
}

/* ---- following the run ---- */

/* One line of rank 0: progress to the callback, a metric row to the store, a
 * checkpoint to the type's checkpoint (t's, from dir). Lines that are not
 * ours are skipped; so is a metric row already stored when `attached` (the
 * lines of a run attached to again are read from the start, and the daemon
 * before the restart stored some). */
static int job_remote__line(const struct job_type *t, struct job_ctx *ctx, const char *dir,
                            const char *text, int attached)
{
    struct spool_line l;
    if (spool_line_parse(text, strlen(text), &l) != 0)
        return 0;
    if (l.kind == SPOOL_LINE_PROGRESS) {
        if (ctx->progress)
            ctx->progress((size_t)l.done, (size_t)l.total, ctx->progress_ctx);
        return 0;
    }
    if (l.kind == SPOOL_LINE_CHECKPOINT)
        return t->checkpoint ? t->checkpoint(ctx, dir, (size_t)l.epoch) : 0;
    int rc = store_metric_insert(ctx->store, ctx->job_id, l.step, l.epoch, l.name, l.value);
    if (rc == QN_EEXIST && attached)
        return 0;
    return rc ? job_fail(ctx, rc, "cannot store a metric") : 0;
}

/* Whether a canceled run is left going for the next daemon: the daemon is
 * stopping (requeue), and the run has a handle to be found by. */
static int job_remote__leaves(const struct job_ctx *ctx, struct launch_run *run)
{
    const struct launch_ops *ops = ctx->remote->launcher.ops;
    return ctx->requeue && atomic_load(ctx->requeue) && ops->detach && ops->handle(run);
}

/* Reads the run's lines until they end, the job is canceled or a line
 * cannot be stored; then waits for its end. A stopping daemon's run with a
 * handle is left going instead (*detached 1, QN_ECANCELED). */
static int job_remote__follow(const struct job_type *t, struct job_ctx *ctx, const char *dir,
                              struct launch_run *run, int attached, int *detached)
{
    const struct launch_ops *ops = ctx->remote->launcher.ops;
    char line[LAUNCH_LINE_MAX];
    int rc = 0, canceled = 0, got;
    while (rc == 0 && (got = ops->next_line(run, line, sizeof line, JOB_REMOTE_POLL_MS)) != 2) {
        if (got == 1)
            rc = job_remote__line(t, ctx, dir, line, attached);
        if (ctx->cancel && atomic_load(ctx->cancel)) {
            canceled = 1;
            break;
        }
    }
    if (canceled && rc == 0 && job_remote__leaves(ctx, run)) {
        *detached = 1;
        return QN_ECANCELED;
    }
    if (rc || canceled)
        ops->cancel(run);
    char reason[sizeof ctx->reason];
    int wrc = ops->wait(run, reason, sizeof reason);
    if (canceled)
        return QN_ECANCELED;
    if (rc)
        return rc;
    if (wrc)
        snprintf(ctx->reason, sizeof ctx->reason, "%s", reason);
    return wrc;
}

/* Records the run's handle on the job's row (a Slurm job id: a daemon that
 * restarts attaches to it), or clears it (NULL). */
static int job_remote__keep_handle(struct job_ctx *ctx, const char *handle)
{
    int rc = store_job_set_handle(ctx->store, ctx->job_id, handle);
    return rc ? job_fail(ctx, rc, "cannot record the run's handle on the job") : 0;
}

/* The launch_job of ctx in dir. */
static struct launch_job job_remote__lj(const struct job_ctx *ctx, const char *dir)
{
    return (struct launch_job){.id = ctx->job_id, .dir = dir, .qn_mpi = ctx->remote->qn_mpi,
                               .ranks = ctx->ranks, .threads = ctx->threads ? ctx->threads : 1};
}

/* The job's spool directory, made empty: an earlier attempt's is removed. */
static int job_remote__dir(struct job_ctx *ctx, const char *dir)
{
    spool_remove(dir);
    if (mkdir(dir, 0755) != 0) {
        snprintf(ctx->reason, sizeof ctx->reason, "cannot create %s: %s", dir, strerror(errno));
        return QN_EIO;
    }
    return 0;
}

/* Stages the job afresh in dir and starts it; its handle goes on the row. */
static int job_remote__start(const struct job_type *t, struct job_ctx *ctx, const char *dir,
                             struct launch_run **run)
{
    const struct launcher *L = &ctx->remote->launcher;
    struct launch_job lj = job_remote__lj(ctx, dir);
    int rc = job_remote__dir(ctx, dir);
    if (rc == 0)
        rc = t->stage(ctx, dir);
    if (rc == 0)
        rc = L->ops->start(L, &lj, run, ctx->reason, sizeof ctx->reason);
    const char *handle = rc == 0 ? L->ops->handle(*run) : NULL;
    if (rc == 0 && handle && (rc = job_remote__keep_handle(ctx, handle)) != 0) {
        L->ops->destroy(*run); /* cancels it: a run the row cannot find must not go on */
        *run = NULL;
    }
    return rc;
}

/*
 * The run an earlier daemon started for this job (ctx->handle, from the
 * job's row), if the launcher can attach to it: 0 with *run; 0 with *run
 * NULL and *done 1 when the run is gone but left its result in dir; 0 with
 * both unset when there is nothing to attach to (start afresh).
 */
static int job_remote__reattach(struct job_ctx *ctx, const char *dir, struct launch_run **run,
                                int *done)
{
    const struct launcher *L = &ctx->remote->launcher;
    struct launch_job lj = job_remote__lj(ctx, dir);
    char msg[256], result[SPOOL_PATH_MAX];
    *run = NULL;
    *done = 0;
    if (!ctx->handle || !ctx->handle[0] || !L->ops->attach)
        return 0;
    int rc = L->ops->attach(L, &lj, ctx->handle, run, msg, sizeof msg);
    if (rc == QN_ENOTFOUND) {
        *done = spool_path(result, sizeof result, dir, SPOOL_RESULT) == 0 &&
                access(result, F_OK) == 0;
        return 0;
    }
    if (rc)
        snprintf(ctx->reason, sizeof ctx->reason, "cannot attach to run %s: %s", ctx->handle, msg);
    return rc;
}

/* One run of the job to its end: attached to the run of an earlier daemon
 * when the row names one, else staged and started; *detached as in
 * job_remote__follow. */
static int job_remote__attempt(const struct job_type *t, struct job_ctx *ctx, const char *dir,
                               int *detached)
{
    const struct launch_ops *ops = ctx->remote->launcher.ops;
    struct launch_run *run = NULL;
    int done = 0;
    int rc = job_remote__reattach(ctx, dir, &run, &done);
    int attached = run != NULL;
    if (rc == 0 && !run && !done)
        rc = job_remote__start(t, ctx, dir, &run);
    if (rc == 0 && run)
        rc = job_remote__follow(t, ctx, dir, run, attached, detached);
    if (run && *detached)
        ops->detach(run);
    else if (run)
        ops->destroy(run);
    return rc;
}

static int job_remote__run(const struct job_type *t, struct job_ctx *ctx)
{
    char dir[SPOOL_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/job-%" PRId64, ctx->remote->spool, ctx->job_id) >=
        (int)sizeof dir)
        return job_fail(ctx, QN_ERANGE, "the spool directory's path is too long");
    int rc = QN_ELOST, detached = 0;
    for (int attempt = 1; rc == QN_ELOST && attempt <= JOB_REMOTE_ATTEMPTS; attempt++) {
        rc = job_remote__attempt(t, ctx, dir, &detached);
        ctx->handle = NULL; /* a second attempt starts afresh */
    }
    if (detached) /* the daemon stops; its run, spool and handle wait for the next one */
        return rc;
    if (rc == QN_ELOST) {
        char lost[sizeof ctx->reason];
        snprintf(lost, sizeof lost, "%s", ctx->reason);
        snprintf(ctx->reason, sizeof ctx->reason, "lost %d times: %s", JOB_REMOTE_ATTEMPTS, lost);
    }
    if (rc == 0)
        rc = t->collect(ctx, dir);
    /* Only now: a daemon killed before this line attaches again and collects
     * the same files (the output replaces its earlier attempt's). */
    int hrc = job_remote__keep_handle(ctx, NULL);
    spool_remove(dir);
    return rc ? rc : hrc;
}

int job_execute(const struct job_type *t, struct job_ctx *ctx)
{
    if (ctx->ranks <= 1 || !ctx->remote)
        return t->run(ctx);
    if (!t->stage || !t->collect) {
        snprintf(ctx->reason, sizeof ctx->reason, "type %s does not run on several ranks yet",
                 t->name);
        return QN_EREMOTE;
    }
    return job_remote__run(t, ctx);
}
