/*
 * qt_slurm.c: starting and stopping the tests' single-node Slurm (qt_slurm.h)
 * through tests/support/qt_slurm.sh, which is found beside the sources of
 * the build that made QN_BIN (BUILD/qn, BUILD being build/ or build/asan/).
 */
#include "qt_slurm.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qn_test.h"

#ifndef QN_BIN
#define QN_BIN "qn"
#endif

/* Finds tests/support/qt_slurm.sh in a directory above QN_BIN's; 0 or -1. */
static int qt_slurm__script(char *buf, size_t cap)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", QN_BIN);
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        *slash = '\0';
        snprintf(buf, cap, "%s/tests/support/qt_slurm.sh", dir);
        if (access(buf, X_OK) == 0)
            return 0;
    }
    return -1;
}

/* A loopback TCP port that was free a moment ago; 0 when none. */
static unsigned qt_slurm__free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Nonzero on Debian 12 as root: a machine that must run the cluster. */
static int qt_slurm__must_run(void)
{
    char *v = qt_read_file("/etc/debian_version", NULL);
    int twelve = v && strncmp(v, "12", 2) == 0;
    free(v);
    return twelve && geteuid() == 0;
}

int qt_slurm_start(struct qt_slurm *s, char *why, size_t cap)
{
    memset(s, 0, sizeof *s);
    int must = qt_slurm__must_run();
    if (qt_slurm__script(s->script, sizeof s->script) != 0) {
        snprintf(why, cap, "tests/support/qt_slurm.sh not found above %s", QN_BIN);
        return must ? -1 : 1;
    }
    if (qt_tmpdir(s->dir, sizeof s->dir) != 0) {
        snprintf(why, cap, "no temporary directory");
        return -1;
    }
    snprintf(s->conf, sizeof s->conf, "%s/slurm.conf", s->dir);
    char p1[16], p2[16];
    snprintf(p1, sizeof p1, "%u", qt_slurm__free_port());
    snprintf(p2, sizeof p2, "%u", qt_slurm__free_port());
    const char *argv[] = {"/bin/sh", s->script, "start", s->dir, p1, p2, NULL};
    struct qt_run r;
    int rc = qt_run(NULL, argv, NULL, &r);
    if (rc == 0 && r.status == 0) {
        qt_run_free(&r);
        setenv("SLURM_CONF", s->conf, 1);
        s->up = 1;
        return 0;
    }
    snprintf(why, cap, "single-node Slurm did not start: %s%s",
             rc == 0 && r.out && r.out[0] ? r.out : "qt_slurm.sh did not run",
             rc == 0 && r.err ? r.err : "");
    if (rc == 0)
        qt_run_free(&r);
    qt_rmtree(s->dir);
    s->dir[0] = '\0';
    return must ? -1 : 1; /* skipped where Slurm need not run, failed where it must */
}

void qt_slurm_stop(struct qt_slurm *s)
{
    if (!s->up)
        return;
    const char *argv[] = {"/bin/sh", s->script, "stop", s->dir, NULL};
    struct qt_run r;
    if (qt_run(NULL, argv, NULL, &r) == 0)
        qt_run_free(&r);
    unsetenv("SLURM_CONF");
    qt_rmtree(s->dir);
    s->up = 0;
}
