/*
 * qn_test.c: test helpers (see qn_test.h). A child's stdout and stderr go to
 * files in a private temporary directory rather than pipes, so a chatty
 * child can never deadlock against a parent that reads one pipe at a time.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "qn_test.h"

#include "store.h"

#include <jansson.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Line-buffered stdout before main (see qn_test.h); a GCC and Clang extension. */
__attribute__((constructor)) static void qt__stdout_by_line(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void qt_skip_test(const char *test, const char *why)
{
    printf("SKIP: %s: %s\n", test, why);
    fflush(stdout);
    skip();
}

void qt_need_mpirun(const char *test)
{
    const char *path = getenv("PATH");
    char full[1024];
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(full, sizeof full, "%.*s/mpirun", (int)n, p);
        if (access(full, X_OK) == 0)
            return;
        p += n + (p[n] == ':');
    }
    qt_skip_test(test, "mpirun is not on PATH (Debian's openmpi-bin): qn-mpi cannot be launched");
}

int qt_tmpdir(char *buf, size_t cap)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    if ((size_t)snprintf(buf, cap, "%s/qn-test-XXXXXX", base) >= cap)
        return -1;
    return mkdtemp(buf) ? 0 : -1;
}

static int qt__rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: a leftover temp file fails no test */
    return 0;
}

void qt_rmtree(const char *path)
{
    nftw(path, qt__rm, 16, FTW_DEPTH | FTW_PHYS);
}

int qt_write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    if (dir)
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s", name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

char *qt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n - 1, f);
        if (n < cap - 1)
            break;
        char *nb = realloc(b, cap * 2);
        if (!nb)
            free(b);
        b = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

/* In the child: stdin from in_path, stdout/stderr to files, then exec. */
static void qt__child(const char *cwd, const char *const *argv, const char *in_path,
                      const char *out_path, const char *err_path)
{
    int in = open(in_path, O_RDONLY);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        _exit(126);
    if (cwd && chdir(cwd) != 0)
        _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

int qt_run(const char *cwd, const char *const *argv, const char *input, struct qt_run *r)
{
    memset(r, 0, sizeof *r);
    char dir[512], in_path[600], out_path[600], err_path[600];
    if (qt_tmpdir(dir, sizeof dir) != 0)
        return -1;
    snprintf(in_path, sizeof in_path, "%s/stdin", dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    int rc = qt_write_file(NULL, in_path, input ? input : "");
    pid_t pid = rc == 0 ? fork() : -1;
    if (pid == 0)
        qt__child(cwd, argv, in_path, out_path, err_path);
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        rc = -1;
    if (rc == 0) {
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        r->out = qt_read_file(out_path, &r->out_len);
        r->err = qt_read_file(err_path, &r->err_len);
        if (!r->out || !r->err)
            rc = -1;
    }
    qt_rmtree(dir);
    return rc;
}

int qt_qn(const char *cwd, const char *input, struct qt_run *r, ...)
{
#ifdef QN_BIN
    const char *argv[64];
    size_t n = 0;
    argv[n++] = QN_BIN;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while (n < 63 && (a = va_arg(ap, const char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return qt_run(cwd, argv, input, r);
#else
    (void)cwd;
    (void)input;
    memset(r, 0, sizeof *r);
    return -1;
#endif
}

void qt_run_free(struct qt_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

int qt_processes_with(const char *needle)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[300], buf[4096];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "rb");
        size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        for (size_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[len] = '\0';
        n += strstr(buf, needle) != NULL;
    }
    closedir(d);
    return n;
}

size_t qt_count_lines(const char *s)
{
    size_t n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

int qt_dir_setup(void **state)
{
    struct qt_dir *f = calloc(1, sizeof *f);
    if (!f || qt_tmpdir(f->dir, sizeof f->dir) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int qt_dir_teardown(void **state)
{
    struct qt_dir *f = *state;
    qt_rmtree(f->dir);
    free(f);
    return 0;
}

void qt_expect_status(const struct qt_run *r, int want)
{
    if (r->status != want)
        fail_msg("qn exited %d, wanted %d; stderr:\n%s\nstdout:\n%s", r->status, want, r->err,
                 r->out);
}

void *qt_one_record(const struct qt_run *r)
{
    assert_int_equal(qt_count_lines(r->out), 1);
    json_error_t e;
    json_t *j = json_loads(r->out, 0, &e);
    if (!j)
        fail_msg("stdout is not JSON (%s): %s", e.text, r->out);
    assert_true(json_is_object(j));
    return j;
}

void *qt_run_job(const struct qt_dir *f, const char *db, const char *job, const char *workers,
                 int want_status)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, job, &r, "run", "-", "--db", db, "--workers", workers, NULL),
                     0);
    qt_expect_status(&r, want_status);
    json_t *rec = qt_one_record(&r);
    qt_run_free(&r);
    return rec;
}

void qt_run_refused(const struct qt_dir *f, const char *db, const char *job, const char *needle,
                    const char *needle2)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, job, &r, "run", "-", "--db", db, NULL), 0);
    qt_expect_status(&r, 2);
    assert_string_equal(r.out, "");
    if (!strstr(r.err, needle) || (needle2 && !strstr(r.err, needle2)))
        fail_msg("stderr lacks '%s'%s%s: %s", needle, needle2 ? " or " : "",
                 needle2 ? needle2 : "", r.err);
    qt_run_free(&r);
}

int qt_store_setup(void **state)
{
    struct qt_store *f = calloc(1, sizeof *f);
    char msg[STORE_MSG_MAX];
    if (!f || qt_tmpdir(f->dir, sizeof f->dir) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/qt.db", f->dir);
    if (store_open(f->db, &f->s, msg, sizeof msg) != 0) {
        qt_rmtree(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

int qt_store_teardown(void **state)
{
    struct qt_store *f = *state;
    store_close(f->s);
    qt_rmtree(f->dir);
    free(f);
    return 0;
}
