/*
 * launch_local.c: the local launcher (launch.h): a command template such as
 * "mpirun -n {ranks} {cmd}" run as a child of the daemon.
 *
 * The child goes into a process group of its own, with the daemon's blocked
 * signals unblocked and their handlers at default, so that one kill(-pgid)
 * reaches mpirun and every process it started in that group. It asks the
 * kernel for SIGTERM when the thread that started it dies
 * (PR_SET_PDEATHSIG), so a daemon killed with -9 leaves no mpirun running,
 * and qn-mpi asks the same of its own parent (server/mpi/qn_mpi.c). That
 * request can only be made in the child, so it is forked rather than
 * posix_spawn'ed: between fork and exec the child of the multi-threaded
 * daemon makes only async-signal-safe calls on what the parent prepared
 * (the program's path is resolved before the fork), and a failed exec is
 * reported through a close-on-exec pipe. Its standard output is a pipe the
 * worker reads line by line; its standard error goes to the spool's
 * stderr.txt, whose last worded line is the reason of a failure. Every
 * descriptor is opened close-on-exec, so a launch from one worker never
 * leaks into another's child.
 */
#define _GNU_SOURCE /* pipe2: the pipes are close-on-exec from their creation */
#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_err.h"
#include "spool.h"

extern char **environ;

#define LAUNCH__DEFAULT "mpirun --oversubscribe -n {ranks} {cmd}"
#define LAUNCH__DEFAULT_ROOT "mpirun --allow-run-as-root --oversubscribe -n {ranks} {cmd}"
#define LAUNCH__POLL_MS 50 /* wait: how often a canceled child is looked at */

/* One running template. */
struct launch_run {
    pid_t pid;             /* the launcher's process, leader of its group */
    int out;               /* read end of its standard output; -1 once closed */
    char buf[LAUNCH_LINE_MAX]; /* bytes read and not yet returned as lines */
    size_t len;            /* bytes in buf */
    int eof;               /* the pipe has ended */
    int waited;            /* the child was reaped; status holds its end */
    int status;            /* waitpid status */
    struct timespec cancel_at; /* when cancel sent SIGTERM (tv_sec 0: not canceled) */
    int killed;            /* SIGKILL was sent */
    char err_path[SPOOL_PATH_MAX]; /* DIR/stderr.txt */
    char why_path[SPOOL_PATH_MAX]; /* DIR/error.txt: qn-mpi's reason when it failed */
};

int launch_local_init(struct launcher *L, const char *template_, char *msg, size_t cap)
{
    memset(L, 0, sizeof *L);
    L->ops = &launch_local_ops;
    const char *t = template_ && *template_ ? template_
                    : geteuid() == 0        ? LAUNCH__DEFAULT_ROOT
                                            : LAUNCH__DEFAULT;
    if (strlen(t) >= sizeof L->template_) {
        snprintf(msg, cap, "the launcher template is longer than %d bytes",
                 LAUNCH_TEMPLATE_MAX - 1);
        return QN_EINVAL;
    }
    if (!strstr(t, "{cmd}")) {
        snprintf(msg, cap, "the launcher template '%s' has no {cmd} (where qn-mpi goes)", t);
        return QN_EINVAL;
    }
    memcpy(L->template_, t, strlen(t) + 1);
    return 0;
}

/* The template's first word (the program) into prog. */
static void launch__program(const struct launcher *L, char *prog, size_t cap)
{
    const char *t = L->template_;
    while (*t == ' ')
        t++;
    size_t n = strcspn(t, " ");
    snprintf(prog, cap, "%.*s", (int)n, t);
}

/* 1 when path is an executable regular file. */
static int launch__executable(const char *path)
{
    struct stat st;
    return access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* 1 when prog (a path, or a name looked up on PATH) is an executable file,
 * its path into full (cap bytes). */
static int launch__found(const char *prog, char *full, size_t cap)
{
    if (strchr(prog, '/')) {
        snprintf(full, cap, "%s", prog);
        return launch__executable(full);
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(full, cap, "%.*s/%s", (int)n, n ? p : ".", prog);
        if (launch__executable(full))
            return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

static int launch_local_check(const struct launcher *L, char *msg, size_t cap)
{
    char prog[256], full[SPOOL_PATH_MAX];
    launch__program(L, prog, sizeof prog);
    if (prog[0] && launch__found(prog, full, sizeof full))
        return 0;
    snprintf(msg, cap, "the launcher '%s' cannot run: '%s' is not an executable on PATH",
             L->template_, prog);
    return QN_EREMOTE;
}

/* Appends word w (len n) to argv (owned copies); QN_ERANGE/QN_ENOMEM. */
static int launch__push(char **argv, size_t *argc, const char *w, size_t n)
{
    if (*argc + 1 >= LAUNCH_ARGS_MAX)
        return QN_ERANGE;
    if (!(argv[*argc] = strndup(w, n)))
        return QN_ENOMEM;
    (*argc)++;
    return 0;
}

/* One template word, its placeholders replaced ({cmd} becomes two words). */
static int launch__word(char **argv, size_t *argc, const char *w, size_t n,
                        const struct launch_job *job)
{
    char num[32];
    if (n == 5 && memcmp(w, "{cmd}", 5) == 0) {
        int rc = launch__push(argv, argc, job->qn_mpi, strlen(job->qn_mpi));
        return rc ? rc : launch__push(argv, argc, job->dir, strlen(job->dir));
    }
    if (n == 7 && memcmp(w, "{ranks}", 7) == 0)
        snprintf(num, sizeof num, "%zu", job->ranks);
    else if (n == 9 && memcmp(w, "{threads}", 9) == 0)
        snprintf(num, sizeof num, "%zu", job->threads);
    else if (n == 5 && memcmp(w, "{dir}", 5) == 0)
        return launch__push(argv, argc, job->dir, strlen(job->dir));
    else
        return launch__push(argv, argc, w, n);
    return launch__push(argv, argc, num, strlen(num));
}

static void launch__argv_free(char **argv)
{
    for (size_t i = 0; argv[i]; i++)
        free(argv[i]);
}

/* The template expanded into argv (NULL-terminated, LAUNCH_ARGS_MAX slots). */
static int launch__expand(const struct launcher *L, const struct launch_job *job, char **argv)
{
    size_t argc = 0;
    memset(argv, 0, LAUNCH_ARGS_MAX * sizeof *argv);
    for (const char *t = L->template_; *t;) {
        size_t n = strcspn(t, " ");
        int rc = n ? launch__word(argv, &argc, t, n, job) : 0;
        if (rc) {
            launch__argv_free(argv);
            return rc;
        }
        t += n + (t[n] == ' ');
    }
    return argc ? 0 : QN_EINVAL;
}

/* The child, between fork and exec: async-signal-safe calls only. Never
 * returns; a failure's errno goes to `report`. */
static void launch__child(const char *path, char **argv, int pipe_w, int err_fd, int report,
                          const sigset_t *none)
{
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* the worker thread gone: mpirun stops */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, none, NULL);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && dup2(in, 0) >= 0 && dup2(pipe_w, 1) >= 0 && dup2(err_fd, 2) >= 0)
        execve(path, argv, environ);
    int e = errno;
    ssize_t w = write(report, &e, sizeof e);
    (void)w;
    _exit(127);
}

/* Starts argv (its program at path) with stdout on pipe_w and stderr on
 * err_fd; the pid into r. QN_EREMOTE with msg when it cannot be run. */
static int launch__spawn(struct launch_run *r, const char *path, char **argv, int pipe_w,
                         int err_fd, char *msg, size_t cap)
{
    int report[2];
    sigset_t none;
    sigemptyset(&none);
    if (pipe2(report, O_CLOEXEC) != 0) {
        snprintf(msg, cap, "cannot start '%s': %s", argv[0], strerror(errno));
        return QN_EREMOTE;
    }
    pid_t pid = fork();
    if (pid == 0)
        launch__child(path, argv, pipe_w, err_fd, report[1], &none);
    close(report[1]);
    int e = pid < 0 ? errno : 0;
    if (pid > 0) {
        setpgid(pid, pid); /* as the child does: a cancel right away finds the group */
        if (read(report[0], &e, sizeof e) != (ssize_t)sizeof e)
            e = 0; /* the pipe closed at exec: it runs */
        else
            waitpid(pid, NULL, 0);
    }
    close(report[0]);
    if (e) {
        snprintf(msg, cap, "cannot start '%s': %s", argv[0], strerror(e));
        return QN_EREMOTE;
    }
    r->pid = pid;
    return 0;
}

static int launch_local_start(const struct launcher *L, const struct launch_job *job,
                              struct launch_run **out, char *msg, size_t cap)
{
    char *argv[LAUNCH_ARGS_MAX];
    int p[2] = {-1, -1}, err_fd = -1;
    *out = NULL;
    struct launch_run *r = calloc(1, sizeof *r);
    if (!r)
        return QN_ENOMEM;
    int rc = launch__expand(L, job, argv);
    if (rc) {
        snprintf(msg, cap, "the launcher template '%s' does not expand", L->template_);
        goto fail_expand;
    }
    if (spool_path(r->err_path, sizeof r->err_path, job->dir, SPOOL_STDERR) ||
        spool_path(r->why_path, sizeof r->why_path, job->dir, SPOOL_ERROR) ||
        (err_fd = open(r->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
        pipe2(p, O_CLOEXEC) != 0) {
        snprintf(msg, cap, "cannot set up the launch in %s: %s", job->dir, strerror(errno));
        rc = QN_EIO;
        goto fail_io;
    }
    char path[SPOOL_PATH_MAX];
    if (!launch__found(argv[0], path, sizeof path)) {
        snprintf(msg, cap, "cannot start '%s': not an executable on PATH", argv[0]);
        rc = QN_EREMOTE;
        goto fail_io;
    }
    rc = launch__spawn(r, path, argv, p[1], err_fd, msg, cap);
    if (rc)
        goto fail_io;
    close(p[1]);
    close(err_fd);
    launch__argv_free(argv);
    r->out = p[0];
    *out = r;
    return 0;
fail_io:
    if (p[0] >= 0)
        close(p[0]), close(p[1]);
    if (err_fd >= 0)
        close(err_fd);
    launch__argv_free(argv);
fail_expand:
    free(r);
    return rc;
}

static const char *launch_local_handle(const struct launch_run *r)
{
    (void)r;
    return NULL; /* mpirun is the daemon's child: it cannot outlive it usefully */
}

/* Takes one complete line out of r->buf into buf; 1 if there was one. */
static int launch__take_line(struct launch_run *r, char *buf, size_t cap)
{
    char *nl = memchr(r->buf, '\n', r->len);
    size_t n = nl ? (size_t)(nl - r->buf) : r->len;
    if (!nl && !(r->eof && r->len) && r->len < sizeof r->buf)
        return 0;
    size_t keep = n < cap - 1 ? n : cap - 1;
    memcpy(buf, r->buf, keep);
    buf[keep] = '\0';
    size_t used = nl ? n + 1 : n;
    memmove(r->buf, r->buf + used, r->len - used);
    r->len -= used;
    return 1;
}

static int launch_local_next_line(struct launch_run *r, char *buf, size_t cap, int timeout_ms)
{
    if (launch__take_line(r, buf, cap))
        return 1;
    if (r->eof)
        return 2;
    struct pollfd pfd = {.fd = r->out, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    if (n <= 0)
        return 0; /* a timeout, or a signal: the caller asks again */
    ssize_t got = read(r->out, r->buf + r->len, sizeof r->buf - r->len);
    if (got <= 0 && !(got < 0 && errno == EINTR)) {
        r->eof = 1;
        close(r->out);
        r->out = -1;
    } else if (got > 0) {
        r->len += (size_t)got;
    }
    if (launch__take_line(r, buf, cap))
        return 1;
    return r->eof ? 2 : 0;
}

static void launch_local_cancel(struct launch_run *r)
{
    if (r->waited || r->cancel_at.tv_sec)
        return;
    clock_gettime(CLOCK_MONOTONIC, &r->cancel_at);
    kill(-r->pid, SIGTERM);
}

/* Milliseconds since t. */
static long launch__ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000L + (now.tv_nsec - t->tv_nsec) / 1000000L;
}

/* The last line of the file at path with a word in it (mpirun's banners end
 * in a row of dashes) into buf (cap bytes); "" when none. */
static void launch__last_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    buf[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[strspn(line, " \t-=")])
            snprintf(buf, cap, "%s", line);
    }
    if (f)
        fclose(f);
}

/* How the child ended, as a reason for a failed job; 0 when it exited 0. */
static int launch__verdict(const struct launch_run *r, char *reason, size_t cap)
{
    char last[512];
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0)
        return 0;
    launch__last_line(r->why_path, last, sizeof last);
    if (!last[0])
        launch__last_line(r->err_path, last, sizeof last);
    if (last[0])
        snprintf(reason, cap, "%s", last);
    else if (WIFEXITED(r->status))
        snprintf(reason, cap, "the launcher exited with status %d", WEXITSTATUS(r->status));
    else
        snprintf(reason, cap, "the launcher was ended by signal %d", WTERMSIG(r->status));
    return QN_EREMOTE;
}

/* Reaps the child; blocks when `block`, else only looks. 1 once it is reaped. */
static int launch__reap(struct launch_run *r, int block)
{
    pid_t got;
    while ((got = waitpid(r->pid, &r->status, block ? 0 : WNOHANG)) < 0 && errno == EINTR)
        ;
    if (got == r->pid || got < 0)
        r->waited = 1;
    return r->waited;
}

/* A run that was not canceled is waited for in waitpid itself, so its end
 * is seen the moment it comes; a canceled one is looked at every
 * LAUNCH__POLL_MS, to send SIGKILL when its grace is over. */
static int launch_local_wait(struct launch_run *r, char *reason, size_t cap)
{
    struct timespec ms = {0, LAUNCH__POLL_MS * 1000000L};
    while (!r->waited) {
        if (launch__reap(r, !r->cancel_at.tv_sec || r->killed))
            break;
        if (!r->killed && launch__ms_since(&r->cancel_at) > LAUNCH_GRACE_MS) {
            kill(-r->pid, SIGKILL);
            r->killed = 1;
        }
        nanosleep(&ms, NULL);
    }
    kill(-r->pid, SIGKILL); /* whatever of its group is left: none should be */
    return launch__verdict(r, reason, cap);
}

static void launch_local_destroy(struct launch_run *r)
{
    if (!r)
        return;
    if (!r->waited) {
        char reason[8];
        launch_local_cancel(r);
        launch_local_wait(r, reason, sizeof reason);
    }
    if (r->out >= 0)
        close(r->out);
    free(r);
}

const struct launch_ops launch_local_ops = {.name = "local",
                                            .check = launch_local_check,
                                            .start = launch_local_start,
                                            .handle = launch_local_handle,
                                            .attach = NULL,
                                            .next_line = launch_local_next_line,
                                            .cancel = launch_local_cancel,
                                            .wait = launch_local_wait,
                                            .destroy = launch_local_destroy};
