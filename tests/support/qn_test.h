/*
 * qn_test.h: helpers shared by every test program (compiled into each):
 * temporary directories, whole-file reads and writes, and running the real
 * `qn` binary (QN_BIN, defined by the Makefile) with captured output.
 *
 * Plain libc and POSIX only, so any test can link it.
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

/* Number of lines (newline-terminated) in s. */
size_t qt_count_lines(const char *s);

#endif
