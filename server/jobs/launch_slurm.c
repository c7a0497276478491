/*
 * launch_slurm.c: the Slurm launcher (launch.h): qn-mpi as a batch job,
 * submitted with sbatch and followed with squeue.
 *
 * start writes SPOOL/job-ID/job.sbatch (ranks as tasks, threads as CPUs per
 * task, rank 0's standard output into stdout.jsonl and standard error into
 * stderr.txt of the spool directory, `srun --mpi=pmix qn-mpi DIR` inside)
 * and submits it with `sbatch --parsable`; the Slurm job id is the run's
 * handle, which the runner stores on the job's row, so a daemon that
 * restarts attaches to the job by its id instead of running it twice. Lines
 * are read by following stdout.jsonl as it grows. The job's state comes from
 * `squeue -h -t all -j ID -o %T`, which knows a finished job for MinJobAge
 * seconds; past that, `sacct` where accounting is kept; past that, the spool
 * says: result.json present means it completed. A cancel is `scancel ID`.
 *
 * How a job ended, for the runner (wait): COMPLETED with result.json is 0
 * (without it, srun's step did not run: QN_EREMOTE with stderr's reason);
 * NODE_FAIL, BOOT_FAIL, PREEMPTED, and FAILED with no error.txt from qn-mpi (a rank
 * killed from outside: out of memory, a lost node) are QN_ELOST, a run
 * lost with its machine that may be run again; every other end (FAILED with
 * qn-mpi's reason, CANCELLED, TIMEOUT, OUT_OF_MEMORY) is QN_EREMOTE with a
 * reason. Slurm's own requeue is turned off (--no-requeue): the runner
 * decides, and a train job resumes from its last checkpoint.
 *
 * The Slurm commands run through posix_spawnp (no fork of the multi-threaded
 * daemon) with their output in a pipe; they take milliseconds, and the
 * state is asked at most every SLURM__STATE_MS while a job runs. The
 * launcher's settings, sbatch's --partition and --account options, are kept
 * as text in the launcher's template_ (no allocation to free).
 */
#define _GNU_SOURCE /* pipe2 */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_err.h"
#include "spool.h"

extern char **environ;

#define SLURM__SCRIPT "job.sbatch"
#define SLURM__ID_MAX 32         /* bytes of a Slurm job id, with NUL */
#define SLURM__STATE_MS 500      /* how often a running job's state is asked */
#define SLURM__POLL_MS 50        /* how often stdout.jsonl is looked at while waiting for a line */
#define SLURM__OUT_MAX 4096      /* bytes of a Slurm command's output that are kept */
#define SLURM__OPTION_MAX 256    /* bytes of a --partition or --account value */
#define SLURM__GIVE_UP_MS 120000 /* squeue failing this long ends the run (slurmctld gone) */

/* One submitted batch job. */
struct launch_run {
    char id[SLURM__ID_MAX];    /* Slurm's job id */
    char dir[SPOOL_PATH_MAX];  /* the spool directory */
    int out;                   /* stdout.jsonl, -1 until it exists */
    char buf[LAUNCH_LINE_MAX]; /* bytes read and not yet returned as lines */
    size_t len;                /* bytes in buf */
    char state[32];            /* the last state Slurm gave ("" before the first) */
    int ended;                 /* the state is a final one */
    struct timespec asked;     /* when the state was last asked */
    int canceled;              /* scancel was sent */
    struct timespec failing;   /* when squeue began to fail (tv_sec 0: it answers) */
    char why[256];             /* what the last failed question said */
};

/* ---- running a Slurm command ------------------------------------------------------------ */

/* Runs argv (argv[0] looked up on PATH) with stdin from /dev/null and stdout
 * and stderr into out (cap bytes, NUL-terminated, cut); its exit status into
 * *status (-1 when it was ended by a signal). 0, or QN_EREMOTE when it could
 * not be started (out says why). */
static int slurm__cmd(char *const *argv, char *out, size_t cap, int *status)
{
    int p[2];
    out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(out, cap, "cannot make a pipe: %s", strerror(errno));
        return QN_EREMOTE;
    }
    posix_spawn_file_actions_t fa;
    pid_t pid = 0;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc == 0) {
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_adddup2(&fa, p[1], 2);
        rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
    }
    close(p[1]);
    size_t len = 0;
    char chunk[512];
    ssize_t got;
    while (rc == 0 && (got = read(p[0], chunk, sizeof chunk)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        size_t take = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
        memcpy(out + len, chunk, take);
        len += take;
    }
    out[len] = '\0';
    close(p[0]);
    if (rc) {
        snprintf(out, cap, "cannot run %s: %s", argv[0], strerror(rc));
        return QN_EREMOTE;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return 0;
}

/* The last line of text with a word in it into buf (cap bytes); "" when none. */
static void slurm__last_line(const char *text, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const char *s = text; *s;) {
        size_t n = strcspn(s, "\r\n");
        if (n && s[strspn(s, " \t-=")] != '\0' && strspn(s, " \t-=") < n)
            snprintf(buf, cap, "%.*s", (int)n, s);
        s += n;
        s += strspn(s, "\r\n");
    }
}

/* ---- settings and check ----------------------------------------------------------------- */

/* Nonzero when v may go into a batch script line and a command argument:
 * printable, no quote, backslash, dollar, backquote or space. */
static int slurm__plain(const char *v)
{
    for (; *v; v++)
        if (*v <= ' ' || *v > '~' || strchr("'\"\\$`", *v))
            return 0;
    return 1;
}

/* Appends "--NAME=VALUE " for a non-empty value to L->template_. */
static int slurm__option(struct launcher *L, const char *name, const char *value, char *msg,
                         size_t cap)
{
    if (!value || !*value)
        return 0;
    if (strlen(value) >= SLURM__OPTION_MAX || !slurm__plain(value)) {
        snprintf(msg, cap, "--%s '%s': give a Slurm name (letters, digits, - _ . and no spaces)",
                 name, value);
        return QN_EINVAL;
    }
    size_t len = strlen(L->template_);
    snprintf(L->template_ + len, sizeof L->template_ - len, "--%s=%s ", name, value);
    return 0;
}

int launch_slurm_init(struct launcher *L, const char *partition, const char *account, char *msg,
                      size_t cap)
{
    memset(L, 0, sizeof *L);
    L->ops = &launch_slurm_ops;
    int rc = slurm__option(L, "partition", partition, msg, cap);
    return rc ? rc : slurm__option(L, "account", account, msg, cap);
}

/* 1 when prog is an executable file in a directory of PATH. */
static int slurm__on_path(const char *prog)
{
    const char *path = getenv("PATH");
    struct stat st;
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        char full[SPOOL_PATH_MAX];
        snprintf(full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", prog);
        if (access(full, X_OK) == 0 && stat(full, &st) == 0 && S_ISREG(st.st_mode))
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

static int launch_slurm_check(const struct launcher *L, char *msg, size_t cap)
{
    (void)L;
    static const char *const progs[] = {"sbatch", "squeue", "scancel"};
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++)
        if (!slurm__on_path(progs[i])) {
            snprintf(msg, cap, "--slurm: '%s' is not an executable on PATH (Debian: slurm-client)",
                     progs[i]);
            return QN_EREMOTE;
        }
    return 0;
}

/* ---- the batch script and its submission ------------------------------------------------- */

/* Writes DIR/job.sbatch for job. QN_EINVAL when a path cannot be quoted,
 * QN_EIO (msg) when the file cannot be written. */
static int slurm__script(const struct launcher *L, const struct launch_job *job, char *msg,
                         size_t cap)
{
    char path[SPOOL_PATH_MAX];
    if (strchr(job->dir, '\'') || strchr(job->dir, '\n') || strchr(job->qn_mpi, '\'') ||
        strchr(job->qn_mpi, '\n') || !slurm__plain(job->dir)) {
        snprintf(msg, cap,
                 "the spool directory %s cannot be named in a batch script "
                 "(no spaces, quotes or $)",
                 job->dir);
        return QN_EINVAL;
    }
    if (spool_path(path, sizeof path, job->dir, SLURM__SCRIPT)) {
        snprintf(msg, cap, "the spool directory's path is too long");
        return QN_EINVAL;
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(msg, cap, "cannot write %s: %s", path, strerror(errno));
        return QN_EIO;
    }
    fprintf(f, "#!/bin/sh\n# qn job %lld on %zu ranks of %zu threads: qn-mpi reads and writes %s\n",
            (long long)job->id, job->ranks, job->threads, job->dir);
    fprintf(f, "#SBATCH --job-name=qn-%lld\n#SBATCH --ntasks=%zu\n#SBATCH --cpus-per-task=%zu\n",
            (long long)job->id, job->ranks, job->threads);
    fprintf(f, "#SBATCH --output=%s/%s\n#SBATCH --error=%s/%s\n#SBATCH --chdir=%s\n", job->dir,
            SPOOL_STDOUT, job->dir, SPOOL_STDERR, job->dir);
    fprintf(f, "#SBATCH --no-requeue\n");
    for (const char *o = L->template_; *o;) { /* "--partition=P --account=A " */
        size_t n = strcspn(o, " ");
        if (n)
            fprintf(f, "#SBATCH %.*s\n", (int)n, o);
        o += n + (o[n] == ' ');
    }
    fprintf(f, "exec srun --mpi=pmix --kill-on-bad-exit=1 '%s' '%s'\n", job->qn_mpi, job->dir);
    if (fclose(f) != 0) {
        snprintf(msg, cap, "cannot write %s: %s", path, strerror(errno));
        return QN_EIO;
    }
    return 0;
}

/* Submits DIR/job.sbatch; the job id into id. QN_EREMOTE (msg) when sbatch refuses. */
static int slurm__submit(const char *dir, char *id, size_t cap, char *msg, size_t msg_cap)
{
    char path[SPOOL_PATH_MAX], out[SLURM__OUT_MAX], last[512];
    spool_path(path, sizeof path, dir, SLURM__SCRIPT);
    char *argv[] = {"sbatch", "--parsable", path, NULL};
    int status = 0;
    if (slurm__cmd(argv, out, sizeof out, &status)) {
        snprintf(msg, msg_cap, "%s", out);
        return QN_EREMOTE;
    }
    size_t n = strspn(out, "0123456789"); /* "123" or "123;cluster" */
    if (status != 0 || n == 0 || n >= cap) {
        slurm__last_line(out, last, sizeof last);
        snprintf(msg, msg_cap, "sbatch refused the job: %s", last[0] ? last : "no job id printed");
        return QN_EREMOTE;
    }
    snprintf(id, cap, "%.*s", (int)n, out);
    return 0;
}

static struct launch_run *slurm__run_new(const char *id, const char *dir)
{
    struct launch_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    r->out = -1;
    return r;
}

static int launch_slurm_start(const struct launcher *L, const struct launch_job *job,
                              struct launch_run **out, char *msg, size_t cap)
{
    char id[SLURM__ID_MAX], path[SPOOL_PATH_MAX];
    *out = NULL;
    int rc = slurm__script(L, job, msg, cap);
    /* stdout.jsonl is Slurm's to create; one of an earlier attempt must not be read */
    if (rc == 0 && spool_path(path, sizeof path, job->dir, SPOOL_STDOUT) == 0)
        unlink(path);
    if (rc == 0)
        rc = slurm__submit(job->dir, id, sizeof id, msg, cap);
    if (rc)
        return rc;
    if (!(*out = slurm__run_new(id, job->dir))) {
        char *argv[] = {"scancel", id, NULL};
        int status;
        slurm__cmd(argv, msg, cap, &status);
        snprintf(msg, cap, "out of memory");
        return QN_ENOMEM;
    }
    return 0;
}

static const char *launch_slurm_handle(const struct launch_run *r)
{
    return r->id;
}

/* ---- the job's state --------------------------------------------------------------------- */

/* Nonzero for a state Slurm never leaves. */
static int slurm__final(const char *state)
{
    static const char *const live[] = {"PENDING",      "RUNNING",   "CONFIGURING",  "COMPLETING",
                                       "SUSPENDED",    "REQUEUED",  "REQUEUE_HOLD", "REQUEUE_FED",
                                       "RESIZING",     "SIGNALING", "STAGE_OUT",    "STOPPED",
                                       "RESV_DEL_HOLD"};
    for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
        if (strcmp(state, live[i]) == 0)
            return 0;
    return 1;
}

/* The first word of Slurm's answer (a state such as "COMPLETED" or
 * "CANCELLED by 0") into state; 0 when it gave one. */
static int slurm__word(const char *out, char *state, size_t cap)
{
    size_t n = strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
    if (n == 0 || n >= cap)
        return -1;
    snprintf(state, cap, "%.*s", (int)n, out);
    return 0;
}

/* Whether the spool shows the job completed: result.json is written last. */
static int slurm__spool_done(const char *dir)
{
    char path[SPOOL_PATH_MAX];
    return spool_path(path, sizeof path, dir, SPOOL_RESULT) == 0 && access(path, F_OK) == 0;
}

/*
 * The state of job id into state (cap bytes): squeue's, else sacct's, else
 * from the spool (COMPLETED when result.json is there, else "GONE"). 0, or
 * QN_EREMOTE when squeue cannot be run or does not answer (msg says why).
 */
static int slurm__state(const char *id, const char *dir, char *state, size_t cap, char *msg,
                        size_t msg_cap)
{
    char out[SLURM__OUT_MAX];
    int status = 0;
    char *squeue[] = {"squeue", "-h", "-t", "all", "-j", (char *)id, "-o", "%T", NULL};
    if (slurm__cmd(squeue, out, sizeof out, &status)) {
        snprintf(msg, msg_cap, "%s", out);
        return QN_EREMOTE;
    }
    if (status == 0 && slurm__word(out, state, cap) == 0)
        return 0;
    /* Only "Invalid job id" means Slurm has forgotten the job; anything else
     * (slurmctld unreachable or busy, an empty answer) is a question to ask
     * again, never a job taken for gone while it runs. */
    if (!strstr(out, "Invalid job id")) {
        slurm__last_line(out, state, cap);
        snprintf(msg, msg_cap, "squeue -j %s: %s", id, state[0] ? state : "no answer");
        return QN_EREMOTE;
    }
    char *sacct[] = {"sacct", "-n", "-X", "-P", "-j", (char *)id, "-o", "State", NULL};
    if (slurm__on_path("sacct") && slurm__cmd(sacct, out, sizeof out, &status) == 0 &&
        status == 0 && slurm__word(out, state, cap) == 0)
        return 0;
    snprintf(state, cap, "%s", slurm__spool_done(dir) ? "COMPLETED" : "GONE");
    return 0;
}

/* Milliseconds since t. */
static long slurm__ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

/* Asks for r's state when the last answer is older than SLURM__STATE_MS (or
 * `now`); a failed question leaves the state as it was. */
static void slurm__refresh(struct launch_run *r, int now)
{
    char state[sizeof r->state], msg[256];
    if (r->ended || (!now && r->asked.tv_sec && slurm__ms_since(&r->asked) < SLURM__STATE_MS))
        return;
    clock_gettime(CLOCK_MONOTONIC, &r->asked);
    if (slurm__state(r->id, r->dir, state, sizeof state, msg, sizeof msg) == 0) {
        snprintf(r->state, sizeof r->state, "%s", state);
        r->ended = slurm__final(state);
        r->failing.tv_sec = 0;
        return;
    }
    snprintf(r->why, sizeof r->why, "%s", msg);
    if (!r->failing.tv_sec)
        r->failing = r->asked;
    else if (slurm__ms_since(&r->failing) > SLURM__GIVE_UP_MS)
        snprintf(r->state, sizeof r->state, "UNREACHABLE"), r->ended = 1;
}

static int launch_slurm_attach(const struct launcher *L, const struct launch_job *job,
                               const char *handle, struct launch_run **out, char *msg, size_t cap)
{
    (void)L;
    char state[32];
    *out = NULL;
    if (!handle || !*handle || strlen(handle) >= SLURM__ID_MAX ||
        strspn(handle, "0123456789") != strlen(handle)) {
        snprintf(msg, cap, "'%s' is not a Slurm job id", handle ? handle : "");
        return QN_ENOTFOUND;
    }
    /* Slurm not answering now (slurmctld restarting too) is no reason to give
     * the job up: the run is followed, and its state asked again. */
    if (slurm__state(handle, job->dir, state, sizeof state, msg, cap) != 0)
        state[0] = '\0';
    if (strcmp(state, "GONE") == 0) {
        snprintf(msg, cap, "Slurm job %s is gone and left no result", handle);
        return QN_ENOTFOUND;
    }
    if (!(*out = slurm__run_new(handle, job->dir)))
        return QN_ENOMEM;
    snprintf((*out)->state, sizeof(*out)->state, "%s", state);
    (*out)->ended = state[0] && slurm__final(state);
    clock_gettime(CLOCK_MONOTONIC, &(*out)->asked);
    return 0;
}

/* ---- rank 0's lines ---------------------------------------------------------------------- */

/* Takes one complete line out of r->buf into buf (a full buffer, or the rest
 * once the job ended, counts as a line); 1 if there was one. */
static int slurm__take_line(struct launch_run *r, char *buf, size_t cap, int end)
{
    char *nl = memchr(r->buf, '\n', r->len);
    size_t n = nl ? (size_t)(nl - r->buf) : r->len;
    if (!nl && !(end && r->len) && r->len < sizeof r->buf)
        return 0;
    size_t keep = n < cap - 1 ? n : cap - 1;
    memcpy(buf, r->buf, keep);
    buf[keep] = '\0';
    size_t used = nl ? n + 1 : n;
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
    return 1;
}

/* Reads what stdout.jsonl has gained into r->buf (opening it once it exists). */
static void slurm__read_more(struct launch_run *r)
{
    char path[SPOOL_PATH_MAX];
    if (r->out < 0 && spool_path(path, sizeof path, r->dir, SPOOL_STDOUT) == 0)
        r->out = open(path, O_RDONLY | O_CLOEXEC);
    while (r->out >= 0 && r->len < sizeof r->buf) {
        ssize_t got = read(r->out, r->buf + r->len, sizeof r->buf - r->len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        r->len += (size_t)got;
    }
}

static int launch_slurm_next_line(struct launch_run *r, char *buf, size_t cap, int timeout_ms)
{
    struct timespec start, nap = {0, SLURM__POLL_MS * 1000000L};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int ended = r->ended; /* read before the file: lines written before the end are all in */
        slurm__read_more(r);
        if (slurm__take_line(r, buf, cap, ended))
            return 1;
        if (ended)
            return 2;
        slurm__refresh(r, 0);
        if (slurm__ms_since(&start) >= timeout_ms)
            return 0;
        nanosleep(&nap, NULL);
    }
}

/* ---- cancel, wait, destroy --------------------------------------------------------------- */

static void launch_slurm_cancel(struct launch_run *r)
{
    char out[SLURM__OUT_MAX];
    int status = 0;
    if (r->ended || r->canceled)
        return;
    char *argv[] = {"scancel", r->id, NULL};
    slurm__cmd(argv, out, sizeof out, &status);
    r->canceled = 1;
}

/* A file of the spool's last line with a word in it into buf; "" when none. */
static void slurm__file_last_line(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[SPOOL_PATH_MAX];
    buf[0] = '\0';
    if (spool_path(path, sizeof path, dir, name))
        return;
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[strspn(line, " \t-=")])
            snprintf(buf, cap, "%s", line);
    }
    if (f)
        fclose(f);
}

/* How the job ended, as launch.h's wait reports it (see the file's header). */
static int slurm__verdict(const struct launch_run *r, char *reason, size_t cap)
{
    char why[512], err[512];
    const char *s = r->state;
    if (strcmp(s, "COMPLETED") == 0 && slurm__spool_done(r->dir))
        return 0;
    slurm__file_last_line(r->dir, SPOOL_ERROR, why, sizeof why);
    slurm__file_last_line(r->dir, SPOOL_STDERR, err, sizeof err);
    int lost = strcmp(s, "NODE_FAIL") == 0 || strcmp(s, "BOOT_FAIL") == 0 ||
               strcmp(s, "PREEMPTED") == 0 || (strcmp(s, "FAILED") == 0 && !why[0]) ||
               strcmp(s, "GONE") == 0;
    if (strcmp(s, "COMPLETED") == 0) /* srun's step failed to start, and it said 0 */
        snprintf(reason, cap, "Slurm job %s completed without qn-mpi's result: %s", r->id,
                 why[0]   ? why
                 : err[0] ? err
                          : "nothing in stderr.txt");
    else if (strcmp(s, "UNREACHABLE") == 0)
        snprintf(reason, cap, "Slurm did not answer about job %s for %d s: %s", r->id,
                 SLURM__GIVE_UP_MS / 1000, r->why);
    else if (why[0])
        snprintf(reason, cap, "%s", why);
    else if (err[0])
        snprintf(reason, cap, "Slurm job %s ended %s: %s", r->id, s, err);
    else
        snprintf(reason, cap, "Slurm job %s ended %s", r->id, s);
    return lost && !r->canceled ? QN_ELOST : QN_EREMOTE;
}

static int launch_slurm_wait(struct launch_run *r, char *reason, size_t cap)
{
    struct timespec nap = {0, SLURM__STATE_MS * 1000000L};
    slurm__refresh(r, 1);
    while (!r->ended) {
        nanosleep(&nap, NULL);
        slurm__refresh(r, 1);
    }
    return slurm__verdict(r, reason, cap);
}

static void launch_slurm_destroy(struct launch_run *r)
{
    if (!r)
        return;
    if (!r->ended) {
        char reason[8];
        launch_slurm_cancel(r);
        launch_slurm_wait(r, reason, sizeof reason);
    }
    if (r->out >= 0)
        close(r->out);
    free(r);
}

/* The daemon stops: the batch job goes on, its id stays on the job's row. */
static void launch_slurm_detach(struct launch_run *r)
{
    if (r && r->out >= 0)
        close(r->out);
    free(r);
}

const struct launch_ops launch_slurm_ops = {.name = "slurm",
                                            .check = launch_slurm_check,
                                            .start = launch_slurm_start,
                                            .handle = launch_slurm_handle,
                                            .attach = launch_slurm_attach,
                                            .next_line = launch_slurm_next_line,
                                            .cancel = launch_slurm_cancel,
                                            .wait = launch_slurm_wait,
                                            .destroy = launch_slurm_destroy,
                                            .detach = launch_slurm_detach};
