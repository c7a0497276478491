/*
 * qt_daemon.h: a real `qn serve` (QN_BIN) for the integration tests and the
 * HTTP benchmark: start it on an ephemeral loopback port with its stderr
 * appended to a log file, stop it with a signal (teardowns kill what is
 * left), talk to it with libcurl, poll a job to a final state, and read the
 * database with the SQLite C API; also run a job through `qn run` or `qn
 * resume` on a database without a daemon.
 *
 * Compiled into every test and bench program (every tests/support .c file), so it uses
 * only what they all link: libc/POSIX, libcurl, jansson, SQLite and cmocka.
 * The qd_*_raw and qd_spawn functions make no cmocka checks and may be used
 * outside a cmocka test (threads, benchmarks); the others fail the running
 * test on error. Every wait is a poll with a deadline: no fixed sleeps.
 *
 * qd_http_raw is safe to call from several threads at once (one curl handle
 * per call; curl_global_init is the caller's, once, before any thread).
 */
#ifndef QT_DAEMON_H
#define QT_DAEMON_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One daemon: where its files are and how to reach it. */
struct qd {
    char dir[512];  /* the test's temporary directory (removed by the caller) */
    char db[700];   /* the database path */
    char log[700];  /* the daemon's stderr, appended across restarts */
    pid_t pid;      /* the running daemon, 0 when none */
    unsigned port;  /* its port, once printed */
    int workers;    /* --workers (2 when 0) */
};

/* Monotonic seconds. */
double qd_now(void);

/* Sleeps ms milliseconds. */
void qd_nap_ms(long ms);

/* The file's size in bytes, 0 when it cannot be read. */
long qd_file_size(const char *path);

/* The port the daemon printed (" on http://host:port/") after offset `from`
 * of its log, or 0. */
unsigned qd_port_from_log(const char *path, long from);

/* A fresh temporary directory with db (qn.db) and log (daemon.log) paths in
 * it; 0 or -1. */
int qd_init(struct qd *d, int workers);

/*
 * Starts `qn serve --db d->db --port 0 --workers N` followed by `extra`
 * (NULL-terminated, may be NULL) without cmocka checks; returns 0 once it
 * printed its port, -1 when it could not start, exited, or printed nothing
 * within `timeout` s (then no daemon is left running).
 */
int qd_spawn(struct qd *d, const char *const *extra, double timeout);

/* qd_spawn with a 30 s deadline; fails the test (with the log) when it fails. */
void qd_start_with(struct qd *d, const char *const *extra);

/* qd_start_with(d, NULL). */
void qd_start(struct qd *d);

/* Sends sig and reaps the daemon (SIGKILL after 30 s); its wait status, -1
 * when none runs. */
int qd_stop(struct qd *d, int sig);

/* A wait status as an exit code: the code, or 128 + signal; -1 stays -1. */
int qd_exit_code(int wait_status);

/* For teardowns: kills whatever is still running. */
void qd_kill(struct qd *d);

/* A cmocka fixture state: a zeroed struct of `size` bytes whose first member
 * is a struct qd, qd_init'ed with `workers`; NULL when that fails. */
void *qd_fixture_new(size_t size, int workers);

/* Its teardown: qd_kill, removes the directory, frees the state (may be NULL). */
void qd_fixture_free(void *state);

/* cmocka setup and teardown for a test whose state is one struct qd with one
 * worker (qd_fixture_new, qd_fixture_free). */
int qd_fixture_setup(void **state);
int qd_fixture_teardown(void **state);

/* ---- the qn binary ---------------------------------------------------------------- */

/*
 * Runs `qn run -` (job on stdin) or, when resume_id is not NULL, `qn resume
 * resume_id`, on database db in f->dir with `--workers 1`, and fails the test
 * unless it exits with `want`. Returns qn's stdout record (new reference)
 * when want is 0 or 1; else NULL, and stderr must then hold needle (when not
 * NULL).
 */
struct qt_dir;
json_t *qd_qn_job(const struct qt_dir *f, const char *db, const char *job, const char *resume_id,
                  int want, const char *needle);

/* The member `key` of rec's "result" (borrowed); fails the test when it is missing. */
const json_t *qd_result(const json_t *rec, const char *key);

/* ---- HTTP ------------------------------------------------------------------------ */

/* A growing NUL-terminated byte buffer for curl replies (p owned). */
struct qd_buf {
    char *p;
    size_t n;
};

/* CURLOPT_WRITEFUNCTION appending to a struct qd_buf. */
size_t qd_buf_write(char *data, size_t sz, size_t nm, void *u);

/*
 * One request on a new connection, no cmocka checks (any thread): the HTTP
 * status, 0 when the transfer failed. The body (may be NULL) is parsed into
 * *out when out is not NULL (new reference; NULL when not JSON). token NULL
 * or "": no Authorization header. `timeout` in seconds.
 */
long qd_http_raw_t(unsigned port, const char *method, const char *path, const char *token,
                   const char *body, json_t **out, long timeout);

/* qd_http_raw_t with a 60 s timeout. */
long qd_http_raw(unsigned port, const char *method, const char *path, const char *token,
                 const char *body, json_t **out);

/* One request from the test's thread: fails the test when the transfer fails
 * or (out not NULL) the body is not JSON. */
long qd_http(const struct qd *d, const char *method, const char *path, const char *token,
             const char *body, json_t **out);

/* POST /v1/jobs; the new id (201 expected). */
int64_t qd_submit(const struct qd *d, const char *token, const char *job);

/* GET /v1/jobs/{id}: the record (new reference; 200 expected). */
json_t *qd_job(const struct qd *d, const char *token, int64_t id);

/* 1 when state is succeeded, failed or canceled. */
int qd_is_final(const char *state);

/* Polls until job id is final; fails after timeout s. The record (new reference). */
json_t *qd_wait_final(const struct qd *d, const char *token, int64_t id, double timeout);

/* ---- the database ----------------------------------------------------------------- */

/* Opens the database read-only (fails the test when it cannot). */
sqlite3 *qd_db_open(const char *path);

/* The one integer an SQL query answers (fails the test on anything else). */
int64_t qd_db_int(sqlite3 *db, const char *sql);

/* PRAGMA integrity_check answers "ok" (prints what it says otherwise). */
void qd_db_integrity_ok(sqlite3 *db);

/*
 * Runs sql on dir/name, opened with sqlite3_open_v2 `flags` (e.g.
 * SQLITE_OPEN_READONLY), for the first column of its first row as an
 * integer; -1 when the file does not exist. Not strict: -2 when SQLite fails
 * or there is no row. Strict: SQLite failing (or no file) fails the test, and
 * no row answers -1 (so statements that return nothing may be run too).
 */
long long qd_db_file_int(const char *dir, const char *name, int flags, int strict,
                         const char *sql);

/* The params blob of the newest model in dir/name, read-only: a new buffer
 * (free it) of *len bytes, NULL (*len 0) when there is none. */
void *qd_db_model_params(const char *dir, const char *name, size_t *len);

/* The last lines of a daemon log without the per-request access lines, for
 * failure messages (a new string, owned by the caller; never NULL). */
char *qd_log_tail(const char *path);

#endif
