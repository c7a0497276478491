/*
 * dblock.c: the database's run lock (see dblock.h).
 *
 * The daemon writes its pid into the lock file so that the message another
 * process prints can name it; the file's contents are only ever advice, the
 * flock is the lock.
 */
#include "dblock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "qn_err.h"

/* The pid the daemon left in the lock file, or 0. */
static long dblock__holder(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    long pid = strtol(buf, NULL, 10);
    return pid > 0 ? pid : 0;
}

/* Records who holds the lock: the daemon's pid, or nothing for runners
 * (whatever pid is there was left by a daemon that has ended). */
static void dblock__mark(int fd, enum dblock_mode mode)
{
    char buf[32];
    int n = mode == DBLOCK_SERVE ? snprintf(buf, sizeof buf, "%ld\n", (long)getpid()) : 0;
    if (ftruncate(fd, 0) == 0 && (n == 0 || pwrite(fd, buf, (size_t)n, 0) == n))
        return; /* advice only: a lock without the pid still locks */
}

/* What to tell the user when the lock is held in a conflicting mode. */
static void dblock__busy_msg(const char *db, enum dblock_mode mode, long pid, char *msg,
                             size_t cap)
{
    if (pid)
        snprintf(msg, cap,
                 "%s is served by a qn daemon (pid %ld): submit jobs to it over HTTP "
                 "(POST /v1/jobs), or stop it first",
                 db, pid);
    else if (mode == DBLOCK_SERVE)
        snprintf(msg, cap,
                 "%s has jobs running in qn run or qn resume; let them finish (or stop them "
                 "with Ctrl-C) before serving it",
                 db);
    else
        snprintf(msg, cap, "%s is served by a qn daemon: submit jobs to it over HTTP", db);
}

int dblock_take(const char *db, enum dblock_mode mode, int *fd, char *msg, size_t cap)
{
    *fd = -1;
    size_t n = strlen(db) + sizeof ".lock";
    char *path = malloc(n);
    if (!path) {
        snprintf(msg, cap, "out of memory");
        return QN_ENOMEM;
    }
    snprintf(path, n, "%s.lock", db);
    int lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lfd < 0) {
        snprintf(msg, cap, "cannot open the lock file %s: %s", path, strerror(errno));
        free(path);
        return QN_EIO;
    }
    free(path);
    int op = (mode == DBLOCK_SERVE ? LOCK_EX : LOCK_SH) | LOCK_NB;
    int rc;
    while ((rc = flock(lfd, op)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        int busy = errno == EWOULDBLOCK;
        if (busy)
            dblock__busy_msg(db, mode, dblock__holder(lfd), msg, cap);
        else
            snprintf(msg, cap, "cannot lock %s: %s", db, strerror(errno));
        close(lfd);
        return busy ? QN_EBUSY : QN_EIO;
    }
    dblock__mark(lfd, mode);
    *fd = lfd;
    return 0;
}

void dblock_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the last descriptor releases the flock */
}
