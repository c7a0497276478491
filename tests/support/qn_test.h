/*
 * qn_test.h: helpers shared by every test program (compiled into each):
 * temporary directories, whole-file reads and writes, and running the real
 * `qn` binary (QN_BIN, defined by the Makefile) with captured output, and
 * the checks of such a run shared by the command-line tests, and skipping a
 * test with its reason.
 *
 * stdout is line-buffered from the program's start (a constructor in
 * qn_test.c), also when it is a pipe: `make test` tees each program's
 * output, and a failure message on stderr then still follows the
 * "[ RUN      ]" line it belongs to.
 *
 * libc, POSIX, jansson and cmocka only (what every test program links).
 */
#ifndef QN_TEST_H
#define QN_TEST_H

#include <stddef.h>

/* A fresh directory under $TMPDIR (or /tmp) into buf (cap bytes). 0 or -1. */
int qt_tmpdir(char *buf, size_t cap);

/* Removes a directory tree (best effort). */
void qt_rmtree(const char *path);

/* Writes `text` to dir/name (or to name when dir is NULL); 0 or -1. */
int qt_write_file(const char *dir, const char *name, const char *text);

/* The whole file as a new NUL-terminated string (free it), length in *len
 * (may be NULL); NULL when it cannot be read. */
char *qt_read_file(const char *path, size_t *len);

/* What a child process did. */
struct qt_run {
    int status;  /* exit code, or 128 + signal number when killed */
    char *out;   /* its stdout (owned; free with qt_run_free) */
    size_t out_len;
    char *err;   /* its stderr (owned) */
    size_t err_len;
};

/*
 * Runs argv (argv[0] is the program path, the list ends with NULL) in
 * directory cwd (NULL: the current one), feeding `input` (may be NULL: an
 * empty stdin). Captures stdout and stderr. Returns 0 when the program ran,
 * -1 when it could not be started.
 */
int qt_run(const char *cwd, const char *const *argv, const char *input, struct qt_run *r);

/* As qt_run, with QN_BIN as argv[0]: qt_qn(dir, NULL, &r, "run", "job.json", NULL). */
int qt_qn(const char *cwd, const char *input, struct qt_run *r, ...);

void qt_run_free(struct qt_run *r);

/* The number of processes whose command line (/proc/PID/cmdline, arguments
 * joined by spaces, its first 4 KiB) contains needle; fails the test when
 * /proc cannot be read. */
int qt_processes_with(const char *needle);

/* Number of lines (newline-terminated) in s. */
size_t qt_count_lines(const char *s);

/* A cmocka fixture: a fresh temporary directory, removed in the teardown. */
struct qt_dir {
    char dir[512]; /* the working directory of every qn run */
};

/* cmocka setup: *state = a new struct qt_dir; 0 or -1. */
int qt_dir_setup(void **state);

/* cmocka teardown: removes the directory and frees *state. */
int qt_dir_teardown(void **state);

/* A cmocka fixture: a temporary directory with a fresh database open in it. */
struct store;
struct qt_store {
    char dir[512];    /* the temporary directory */
    char db[600];     /* dir/qt.db */
    struct store *s;  /* the open connection (owned) */
};

/* cmocka setup: *state = a new struct qt_store; 0 or -1. */
int qt_store_setup(void **state);

/* cmocka teardown: closes the store, removes the directory, frees *state. */
int qt_store_teardown(void **state);

/* Fails the test with qn's stderr and stdout when the exit status is not `want`. */
void qt_expect_status(const struct qt_run *r, int want);

/* qn's stdout as exactly one JSON object line (new reference; fails the test
 * otherwise). The return is a json_t * (void * here so that this header needs
 * no jansson). */
void *qt_one_record(const struct qt_run *r);

/* Runs `qn run - --db db --workers workers` in f->dir with the job text on
 * stdin, checks the exit status, and returns the record (as qt_one_record). */
void *qt_run_job(const struct qt_dir *f, const char *db, const char *job, const char *workers,
                 int want_status);

/* Runs `qn run - --db db` in f->dir with the job text on stdin; it must be
 * refused (exit 2, nothing on stdout) with `needle` and, unless NULL,
 * `needle2` in stderr. */
void qt_run_refused(const struct qt_dir *f, const char *db, const char *job, const char *needle,
                    const char *needle2);

/*
 * Skips the running cmocka test for a reason that lies outside the code under
 * test (a package, a CPU feature or a privilege this machine lacks; never a
 * failure): prints "SKIP: <test>: <why>" on stdout, then calls cmocka's
 * skip(), which does not return. The Makefile's test-plain counts cmocka's
 * skipped tests in its closing line and lists these reasons under it.
 * qt_skip uses the calling function's name as <test>; a helper that skips on
 * behalf of a test passes the test's name to qt_skip_test.
 */
#define qt_skip(why) qt_skip_test(__func__, (why))
void qt_skip_test(const char *test, const char *why);

/* Skips `test` (as qt_skip_test) when mpirun is not on PATH (Debian's
 * openmpi-bin), so qn-mpi cannot be launched; returns when it is. */
void qt_need_mpirun(const char *test);

#endif
