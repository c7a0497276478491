/*
 * qn_daemon.h: a real `qn serve` (QN_BIN) for the crash, disk-full and load
 * tests (tests/integration/test_crash.c, test_diskfull.c, test_load.c): start
 * it on an ephemeral loopback port with its stderr appended to a log file,
 * stop it with a signal (always, even when a test fails: the fixture's
 * teardown kills what is left), talk to it with libcurl, and read the
 * database with the SQLite C API once it has stopped.
 *
 * Header-only (static inline) so that each test program includes it after
 * cmocka and links nothing extra; the Makefile builds every
 * tests/integration/test_*.c on its own. Every wait is a poll with a
 * deadline: no fixed sleeps.
 *
 * http() is safe to call from several threads at once (one curl handle per
 * call; curl_global_init is the caller's, once, before any thread), but the
 * cmocka checks it makes are not: threads use qd_http_raw instead.
 */
#ifndef QN_DAEMON_H
#define QN_DAEMON_H

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_test.h"

/* One daemon: where its files are and how to reach it. */
struct qd {
    char dir[512];  /* the test's temporary directory (removed at the end) */
    char db[700];   /* the database path */
    char log[700];  /* the daemon's stderr, appended across restarts */
    pid_t pid;      /* the running daemon, 0 when none */
    unsigned port;  /* its port, once printed */
    int workers;    /* --workers */
};

static inline double qd_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void qd_nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static inline long qd_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The port the daemon printed after offset `from` of its log, or 0. */
static inline unsigned qd_port_from_log(const char *path, long from)
{
    char *text = qt_read_file(path, NULL);
    unsigned port = 0;
    if (text && (long)strlen(text) > from) {
        const char *p = strstr(text + from, " on http://");
        const char *slash = p ? strchr(p + 11, '/') : NULL;
        if (slash) {
            const char *colon = slash;
            while (colon > p && *colon != ':')
                colon--;
            port = (unsigned)strtoul(colon + 1, NULL, 10);
        }
    }
    free(text);
    return port;
}

/* Starts `qn serve --db d->db --port 0 --workers d->workers`; returns once it
 * printed its port (fails the test after 30 s or when it exits). */
static inline void qd_start(struct qd *d)
{
    long from = qd_file_size(d->log);
    char nw[16];
    snprintf(nw, sizeof nw, "%d", d->workers > 0 ? d->workers : 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDWR);
        if (fd < 0 || null < 0)
            _exit(127);
        dup2(fd, 2);
        dup2(null, 1);
        dup2(null, 0);
        execl(QN_BIN, "qn", "serve", "--db", d->db, "--port", "0", "--workers", nw,
              (char *)NULL);
        _exit(127);
    }
    d->pid = pid;
    d->port = 0;
    double t0 = qd_now();
    while ((d->port = qd_port_from_log(d->log, from)) == 0) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            d->pid = 0;
            fail_msg("qn serve exited at start-up; log:\n%s", qt_read_file(d->log, NULL));
        }
        if (qd_now() - t0 > 30)
            fail_msg("qn serve did not print its port within 30 s");
        qd_nap_ms(2);
    }
}

/* Sends sig and reaps the daemon (SIGKILL after 30 s); its wait status. */
static inline int qd_stop(struct qd *d, int sig)
{
    if (!d->pid)
        return -1;
    kill(d->pid, sig);
    int st = 0;
    double t0 = qd_now();
    while (waitpid(d->pid, &st, WNOHANG) == 0) {
        if (qd_now() - t0 > 30) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            break;
        }
        qd_nap_ms(2);
    }
    d->pid = 0;
    return st;
}

/* For teardowns: kills whatever is still running. */
static inline void qd_kill(struct qd *d)
{
    if (d->pid) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

/* A fresh temporary directory with db and log paths in it; 0 or -1. */
static inline int qd_init(struct qd *d, int workers)
{
    memset(d, 0, sizeof *d);
    d->workers = workers;
    if (qt_tmpdir(d->dir, sizeof d->dir) != 0)
        return -1;
    snprintf(d->db, sizeof d->db, "%s/qn.db", d->dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------------ */

struct qd_buf {
    char *p;
    size_t n;
};

static inline size_t qd_buf_write(char *data, size_t sz, size_t nm, void *u)
{
    struct qd_buf *b = u;
    char *p = realloc(b->p, b->n + sz * nm + 1);
    if (!p)
        return 0;
    memcpy(p + b->n, data, sz * nm);
    b->n += sz * nm;
    p[b->n] = 0;
    b->p = p;
    return sz * nm;
}

/*
 * One request without cmocka checks (any thread): the HTTP status, 0 when the
 * transfer failed. The body (may be NULL) parsed into *out when out is not
 * NULL (NULL when not JSON). token NULL or "": no Authorization header.
 */
static inline long qd_http_raw(unsigned port, const char *method, const char *path,
                               const char *token, const char *body, json_t **out)
{
    CURL *c = curl_easy_init();
    if (out)
        *out = NULL;
    if (!c)
        return 0;
    char url[512], auth[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (token && *token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        h = curl_slist_append(h, auth);
    }
    struct qd_buf b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, qd_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    else if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out && b.p)
        *out = json_loads(b.p, 0, NULL);
    free(b.p);
    return status;
}

/* One request from the test's thread: fails the test when the transfer fails
 * or (out not NULL) the body is not JSON. */
static inline long qd_http(const struct qd *d, const char *method, const char *path,
                           const char *token, const char *body, json_t **out)
{
    long st = qd_http_raw(d->port, method, path, token, body, out);
    if (st == 0)
        fail_msg("%s %s: no answer", method, path);
    if (out && !*out)
        fail_msg("%s %s: %ld, not JSON", method, path, st);
    return st;
}

/* POST /v1/jobs; the new id (201 expected). */
static inline int64_t qd_submit(const struct qd *d, const char *token, const char *job)
{
    json_t *r = NULL;
    long st = qd_http(d, "POST", "/v1/jobs", token, job, &r);
    if (st != 201)
        fail_msg("submit: %ld %s\nspec: %s", st, json_dumps(r, 0), job);
    int64_t id = json_integer_value(json_object_get(r, "id"));
    json_decref(r);
    assert_true(id > 0);
    return id;
}

/* GET /v1/jobs/{id}: the record (new reference). */
static inline json_t *qd_job(const struct qd *d, const char *token, int64_t id)
{
    char path[64];
    json_t *r = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    assert_int_equal(qd_http(d, "GET", path, token, NULL, &r), 200);
    return r;
}

static inline int qd_is_final(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "canceled");
}

/* Polls until job id is final; fails after timeout s. The record (new reference). */
static inline json_t *qd_wait_final(const struct qd *d, const char *token, int64_t id,
                                    double timeout)
{
    double t0 = qd_now();
    for (;;) {
        json_t *r = qd_job(d, token, id);
        const char *st = json_string_value(json_object_get(r, "state"));
        if (st && qd_is_final(st))
            return r;
        if (qd_now() - t0 > timeout)
            fail_msg("job %" PRId64 " still %s after %.0f s: %s", id, st, timeout,
                     json_dumps(r, 0));
        json_decref(r);
        qd_nap_ms(5);
    }
}

/* ---- the database, read after the daemon stopped ---------------------------------- */

/* Opens the database read-only (fails the test when it cannot). */
static inline sqlite3 *qd_db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The one integer an SQL query answers (fails the test on anything else). */
static inline int64_t qd_db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) != SQLITE_ROW)
        fail_msg("%s: no row (%s)", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* PRAGMA integrity_check answers "ok" (prints what it says otherwise). */
static inline void qd_db_integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *ans = (const char *)sqlite3_column_text(st, 0);
    if (!ans || strcmp(ans, "ok") != 0) {
        do
            fprintf(stderr, "integrity_check: %s\n", (const char *)sqlite3_column_text(st, 0));
        while (sqlite3_step(st) == SQLITE_ROW);
        fail_msg("PRAGMA integrity_check is not ok");
    }
    sqlite3_finalize(st);
}

#endif
