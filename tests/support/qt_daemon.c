/*
 * qt_daemon.c: a real `qn serve` for tests and benchmarks (see qt_daemon.h).
 * The daemon's stdout goes to /dev/null; its port is read from the line it
 * logs on stderr, so restarts append to one log and each start reads only
 * what follows the previous one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "qt_daemon.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_test.h"

double qd_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void qd_nap_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

long qd_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

unsigned qd_port_from_log(const char *path, long from)
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

int qd_init(struct qd *d, int workers)
{
    memset(d, 0, sizeof *d);
    d->workers = workers;
    if (qt_tmpdir(d->dir, sizeof d->dir) != 0)
        return -1;
    snprintf(d->db, sizeof d->db, "%s/qn.db", d->dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
    return 0;
}

/* In the child: stderr appended to the log, stdin/stdout /dev/null, exec. */
static void qd__child(const struct qd *d, const char *const *extra)
{
    char nw[16];
    snprintf(nw, sizeof nw, "%d", d->workers > 0 ? d->workers : 2);
    const char *argv[40] = {"qn", "serve", "--db", d->db, "--port", "0", "--workers", nw};
    size_t n = 8;
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDWR);
    if (fd < 0 || null < 0)
        _exit(127);
    dup2(fd, 2);
    dup2(null, 1);
    dup2(null, 0);
#ifdef QN_BIN
    execv(QN_BIN, (char *const *)argv);
#endif
    _exit(127);
}

int qd_spawn(struct qd *d, const char *const *extra, double timeout)
{
    long from = qd_file_size(d->log);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        qd__child(d, extra);
    d->pid = pid;
    d->port = 0;
    double t0 = qd_now();
    while ((d->port = qd_port_from_log(d->log, from)) == 0) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            d->pid = 0;
            return -1;
        }
        if (qd_now() - t0 > timeout) {
            qd_kill(d);
            return -1;
        }
        qd_nap_ms(2);
    }
    return 0;
}

void qd_start_with(struct qd *d, const char *const *extra)
{
    if (qd_spawn(d, extra, 30) != 0)
        fail_msg("qn serve did not start within 30 s; log:\n%s", qt_read_file(d->log, NULL));
}

void qd_start(struct qd *d)
{
    qd_start_with(d, NULL);
}

int qd_stop(struct qd *d, int sig)
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

int qd_exit_code(int wait_status)
{
    if (wait_status == -1)
        return -1;
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

void qd_kill(struct qd *d)
{
    if (d->pid) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

void *qd_fixture_new(size_t size, int workers)
{
    struct qd *d = calloc(1, size);
    if (d && qd_init(d, workers) != 0) {
        free(d);
        d = NULL;
    }
    return d;
}

void qd_fixture_free(void *state)
{
    struct qd *d = state;
    if (!d)
        return;
    qd_kill(d);
    qt_rmtree(d->dir);
    free(d);
}

int qd_fixture_setup(void **state)
{
    *state = qd_fixture_new(sizeof(struct qd), 1);
    return *state ? 0 : -1;
}

int qd_fixture_teardown(void **state)
{
    qd_fixture_free(*state);
    return 0;
}

/* ---- the qn binary ---------------------------------------------------------------- */

json_t *qd_qn_job(const struct qt_dir *f, const char *db, const char *job, const char *resume_id,
                  int want, const char *needle)
{
    struct qt_run r;
    if (resume_id)
        assert_int_equal(
            qt_qn(f->dir, NULL, &r, "resume", resume_id, "--db", db, "--workers", "1", NULL), 0);
    else
        assert_int_equal(qt_qn(f->dir, job, &r, "run", "-", "--db", db, "--workers", "1", NULL), 0);
    if (r.status != want)
        fail_msg("qn exited %d, wanted %d; stderr:\n%s\nstdout:\n%s", r.status, want, r.err, r.out);
    json_t *rec = NULL;
    if (want != 0 && want != 1) {
        if (needle && !strstr(r.err, needle))
            fail_msg("stderr lacks '%s': %s", needle, r.err);
    } else if (!(rec = json_loads(r.out, 0, NULL))) {
        fail_msg("stdout is not JSON: %s", r.out);
    }
    qt_run_free(&r);
    return rec;
}

const json_t *qd_result(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(json_object_get(rec, "result"), key);
    if (!v)
        fail_msg("result has no '%s'", key);
    return v;
}

/* ---- HTTP ------------------------------------------------------------------------ */

size_t qd_buf_write(char *data, size_t sz, size_t nm, void *u)
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

long qd_http_raw_t(unsigned port, const char *method, const char *path, const char *token,
                   const char *body, json_t **out, long timeout)
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
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
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

long qd_http_raw(unsigned port, const char *method, const char *path, const char *token,
                 const char *body, json_t **out)
{
    return qd_http_raw_t(port, method, path, token, body, out, 60L);
}

long qd_http(const struct qd *d, const char *method, const char *path, const char *token,
             const char *body, json_t **out)
{
    long st = qd_http_raw(d->port, method, path, token, body, out);
    if (st == 0)
        fail_msg("%s %s: no answer", method, path);
    if (out && !*out)
        fail_msg("%s %s: %ld, not JSON", method, path, st);
    return st;
}

int64_t qd_submit(const struct qd *d, const char *token, const char *job)
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

json_t *qd_job(const struct qd *d, const char *token, int64_t id)
{
    char path[64];
    json_t *r = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    assert_int_equal(qd_http(d, "GET", path, token, NULL, &r), 200);
    return r;
}

int qd_is_final(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "canceled");
}

json_t *qd_wait_final(const struct qd *d, const char *token, int64_t id, double timeout)
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

/* ---- the database ----------------------------------------------------------------- */

sqlite3 *qd_db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_busy_timeout(db, 5000);
    return db;
}

int64_t qd_db_int(sqlite3 *db, const char *sql)
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

long long qd_db_file_int(const char *dir, const char *name, int flags, int strict,
                         const char *sql)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, F_OK) != 0) {
        if (strict)
            fail_msg("%s: no database %s", sql, path);
        return -1;
    }
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -2;
    int rc = sqlite3_open_v2(path, &h, flags, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else if (strict && rc == SQLITE_DONE)
        v = -1;
    else if (strict)
        fail_msg("%s: %s", sql, h ? sqlite3_errmsg(h) : "cannot open");
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

void *qd_db_model_params(const char *dir, const char *name, size_t *len)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    void *out = NULL;
    *len = 0;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "SELECT params FROM models ORDER BY id DESC LIMIT 1", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        *len = (size_t)sqlite3_column_bytes(st, 0);
        out = malloc(*len ? *len : 1);
        if (out)
            memcpy(out, sqlite3_column_blob(st, 0), *len);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return out;
}

void qd_db_integrity_ok(sqlite3 *db)
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

char *qd_log_tail(const char *path)
{
    char *all = qt_read_file(path, NULL);
    size_t cap = 8192, n = 0;
    char *out = calloc(cap, 1);
    if (!out)
        return all;
    for (char *line = all ? strtok(all, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "qn: http ", 9) == 0)
            continue;
        size_t l = strlen(line);
        while (n + l + 2 > cap && n > 0) { /* keep the newest lines */
            char *nl = memchr(out, '\n', n);
            size_t cut = nl ? (size_t)(nl - out) + 1 : n;
            memmove(out, out + cut, n - cut);
            n -= cut;
        }
        if (l + 2 <= cap) {
            memcpy(out + n, line, l);
            n += l;
            out[n++] = '\n';
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
    free(all);
    return out;
}
