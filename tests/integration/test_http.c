/*
 * test_http.c: the real `qn serve` (QN_BIN) on an ephemeral loopback port,
 * driven with libcurl: every non-job route (happy path and errors), the
 * bad-input catalogue (each answered with a 4xx JSON error, the daemon
 * still healthy after), users (401, 403, revocation), the refusal to listen
 * beyond loopback without users, and a clean SIGTERM.
 *
 * Two daemons: one without users (group "open") and one with users (group
 * "auth"), each with its own temporary database, small limits
 * (--max-body 16K, --max-upload 64K) so the limit tests send little, and
 * the log on a file that the tests read. The port comes from the JSON line
 * qn serve prints on stdout. Teardown always stops the daemon it started.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_daemon.h"

struct fx {
    struct qd d;    /* first (qd_fixture_new): the daemon's directory, database, log, pid, port */
    char admin[80]; /* tokens (auth group) */
    char alice[80];
    char bob[80];
};

struct resp {
    long status;
    char *body;
    size_t len;
    char ctype[128];
    char allow[128];
    char www_auth[128];
};

/* ---- the daemon ---------------------------------------------------------------- */

/* Starts qn serve (1 worker, small body limits) with extra arguments
 * (NULL-terminated); reads its port. */
static void daemon_start(struct fx *f, const char *const *extra)
{
    const char *argv[32] = {"--max-body", "16K", "--max-upload", "64K"};
    size_t n = 4;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    qd_start_with(&f->d, argv);
}

/* SIGTERM and wait (SIGKILL after 30 s); the exit status, or -1. */
static int daemon_stop(struct fx *f)
{
    return qd_exit_code(qd_stop(&f->d, SIGTERM));
}

/* ---- HTTP --------------------------------------------------------------------- */

static size_t on_body(char *d, size_t sz, size_t nm, void *u)
{
    struct resp *r = u;
    size_t n = sz * nm;
    char *b = realloc(r->body, r->len + n + 1);
    if (!b)
        return 0;
    memcpy(b + r->len, d, n);
    r->body = b;
    r->len += n;
    b[r->len] = '\0';
    return n;
}

static void header_value(const char *h, size_t n, const char *name, char *out, size_t cap)
{
    size_t l = strlen(name);
    if (n <= l + 1 || strncasecmp(h, name, l) != 0 || h[l] != ':')
        return;
    const char *v = h + l + 1;
    while (*v == ' ')
        v++;
    size_t vn = n - (size_t)(v - h);
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n'))
        vn--;
    snprintf(out, cap, "%.*s", (int)vn, v);
}

static size_t on_header(char *d, size_t sz, size_t nm, void *u)
{
    struct resp *r = u;
    header_value(d, sz * nm, "Content-Type", r->ctype, sizeof r->ctype);
    header_value(d, sz * nm, "Allow", r->allow, sizeof r->allow);
    header_value(d, sz * nm, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    return sz * nm;
}

struct upload {
    const char *data;
    size_t len, off;
};

static size_t on_read(char *d, size_t sz, size_t nm, void *u)
{
    struct upload *up = u;
    size_t n = up->len - up->off < sz * nm ? up->len - up->off : sz * nm;
    memcpy(d, up->data + up->off, n);
    up->off += n;
    return n;
}

/*
 * One request with extra header lines (NULL-terminated, may be NULL; "Name:"
 * removes a header curl would send). body (len bytes; len (size_t)-1 =
 * strlen) may be NULL; chunked sends it without a Content-Length. Fills *r
 * (free r->body).
 */
static long http_req_h(struct fx *f, const char *method, const char *path, const char *token,
                       const char *body, size_t len, int chunked, const char *const *hdrs,
                       struct resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char *url = malloc(strlen(path) + 64), *auth = NULL;
    assert_non_null(url);
    sprintf(url, "http://127.0.0.1:%u%s", f->d.port, path);
    struct curl_slist *h = NULL;
    if (token) {
        auth = malloc(strlen(token) + 32);
        assert_non_null(auth);
        sprintf(auth, "Authorization: %s", token);
        h = curl_slist_append(h, auth);
    }
    h = curl_slist_append(h, "Expect:");
    for (size_t i = 0; hdrs && hdrs[i]; i++)
        h = curl_slist_append(h, hdrs[i]);
    if (len == (size_t)-1)
        len = body ? strlen(body) : 0;
    struct upload up = {body, len, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body && chunked) {
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &up);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    free(auth);
    if (!r->body)
        r->body = calloc(1, 1);
    return cc == CURLE_OK ? r->status : -1;
}

/* http_req_h declaring a body as the daemon wants it: a file for uploads
 * (application/octet-stream), JSON for everything else. */
static long http_req(struct fx *f, const char *method, const char *path, const char *token,
                     const char *body, size_t len, int chunked, struct resp *r)
{
    const char *hdrs[] = {strncmp(path, "/v1/datasets", 12) == 0
                              ? "Content-Type: application/octet-stream"
                              : "Content-Type: application/json",
                          NULL};
    return http_req_h(f, method, path, token, body, len, chunked, body ? hdrs : NULL, r);
}

/* A JSON request whose reply must be `want`; returns the parsed body (decref it). */
static json_t *call(struct fx *f, const char *method, const char *path, const char *token,
                    const char *body, long want)
{
    struct resp r;
    long st = http_req(f, method, path, token, body, (size_t)-1, 0, &r);
    if (st != want)
        fail_msg("%s %s: status %ld, wanted %ld; body: %s", method, path, st, want, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    if (!j)
        fail_msg("%s %s: not JSON: %s", method, path, r.body);
    free(r.body);
    return j;
}

/* An error reply: status `want`, JSON {"error":{"code","message","path"}}, the code `code`. */
static void expect_error(struct fx *f, const char *method, const char *path, const char *token,
                         const char *body, size_t len, int chunked, long want, const char *code)
{
    struct resp r;
    long st = http_req(f, method, path, token, body, len, chunked, &r);
    if (st != want)
        fail_msg("%s %s: status %ld, wanted %ld; body: %s", method, path, st, want, r.body);
    if (strncmp(r.ctype, "application/json", 16) != 0)
        fail_msg("%s %s: content type '%s'", method, path, r.ctype);
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *e = json_object_get(j, "error");
    if (!json_is_object(e) || !json_is_string(json_object_get(e, "message")) ||
        !json_object_get(e, "path"))
        fail_msg("%s %s: not an error object: %s", method, path, r.body);
    if (code && strcmp(json_string_value(json_object_get(e, "code")), code) != 0)
        fail_msg("%s %s: code %s, wanted %s", method, path,
                 json_string_value(json_object_get(e, "code")), code);
    json_decref(j);
    free(r.body);
}

static void expect_healthy(struct fx *f)
{
    json_t *j = call(f, "GET", "/healthz", NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_non_null(json_string_value(json_object_get(j, "auth")));
    json_decref(j);
}

/* ---- fixtures ------------------------------------------------------------------ */

static int fx_new(void **state)
{
    *state = qd_fixture_new(sizeof(struct fx), 1);
    return *state ? 0 : -1;
}

static int group_open_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (fx_new(state))
        return -1;
    daemon_start(*state, NULL);
    return 0;
}

/* Runs `qn user add NAME [--admin]` and keeps the token it prints. */
static void add_user(struct fx *f, const char *name, int admin, char *tok, size_t cap)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->d.dir, NULL, &r, "user", "add", name, "--db", f->d.db,
                           admin ? "--admin" : NULL, NULL),
                     0);
    if (r.status != 0)
        fail_msg("qn user add %s: %s", name, r.err);
    size_t n = strcspn(r.out, "\n");
    assert_int_equal(n, 64);
    snprintf(tok, cap, "Bearer %.*s", (int)n, r.out);
    qt_run_free(&r);
}

/* qn user VERB NAME --db: its exit status. */
static int user_cmd(struct fx *f, const char *verb, const char *name)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->d.dir, NULL, &r, "user", verb, name, "--db", f->d.db, NULL), 0);
    int st = r.status;
    qt_run_free(&r);
    return st;
}

static int group_auth_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (fx_new(state))
        return -1;
    struct fx *f = *state;
    /* Users first: the daemon may then also listen beyond loopback (it does not here). */
    add_user(f, "carol", 1, f->admin, sizeof f->admin);
    add_user(f, "alice", 0, f->alice, sizeof f->alice);
    add_user(f, "bob", 0, f->bob, sizeof f->bob);
    daemon_start(f, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;
    int st = daemon_stop(f);
    char *log = qt_read_file(f->d.log, NULL);
    int ok = st == 0 && log && strstr(log, "qn: stopped");
    if (!ok)
        fprintf(stderr, "daemon exit %d; log tail:\n%s\n", st,
                log ? log + (strlen(log) > 2000 ? strlen(log) - 2000 : 0) : "");
    free(log);
    qt_rmtree(f->d.dir);
    free(f);
    curl_global_cleanup();
    return ok ? 0 : -1;
}

/* ---- open daemon: health, metrics, devices, simulate ----------------------------- */

static void test_health_and_metrics(void **state)
{
    struct fx *f = *state;
    expect_healthy(f);
    struct resp r;
    assert_int_equal(http_req(f, "HEAD", "/healthz", NULL, NULL, 0, 0, &r), 200);
    free(r.body);
    /* a request is counted when its connection is done with it: poll */
    const char *want = "qn_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}";
    double t0 = qd_now();
    for (;;) {
        assert_int_equal(http_req(f, "GET", "/metrics", NULL, NULL, 0, 0, &r), 200);
        assert_non_null(strstr(r.ctype, "text/plain"));
        assert_non_null(strstr(r.body, "qn_jobs{state=\"queued\"}"));
        assert_non_null(strstr(r.body, "qn_queue_depth "));
        int found = strstr(r.body, want) != NULL;
        free(r.body);
        if (found)
            break;
        if (qd_now() - t0 > 5)
            fail_msg("/metrics never counted GET /healthz");
        qd_nap_ms(10);
    }
    char *log = qt_read_file(f->d.log, NULL);
    assert_non_null(strstr(log, "GET /healthz 200"));
    free(log);
}

static void test_devices(void **state)
{
    struct fx *f = *state;
    json_t *d = call(f, "POST", "/v1/devices", NULL,
                     "{\"name\":\"crn\",\"kind\":\"crn_relu\",\"params\":{\"kappa\":0.01}}", 201);
    int64_t id = json_integer_value(json_object_get(d, "id"));
    assert_true(id > 0);
    assert_string_equal(json_string_value(json_object_get(d, "kind")), "crn_relu");
    json_decref(d);
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%" PRId64, id);
    d = call(f, "GET", path, NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "crn");
    json_decref(d);
    d = call(f, "GET", "/v1/devices/crn", NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(d, "id")), id);
    json_decref(d);
    expect_error(f, "POST", "/v1/devices", NULL, "{\"name\":\"crn\",\"kind\":\"neuron\"}",
                 (size_t)-1, 0, 409, "exists");
    expect_error(f, "GET", "/v1/devices/99999", NULL, NULL, 0, 0, 404, "not_found");
    expect_error(f, "GET", "/v1/devices/no-such", NULL, NULL, 0, 0, 404, "not_found");
    /* a bad spec names its field */
    struct resp r;
    assert_int_equal(http_req(f, "POST", "/v1/devices", NULL,
                              "{\"kind\":\"crn_relu\",\"params\":{\"kappa\":\"x\"}}", (size_t)-1,
                              0, &r),
                     400);
    json_t *body = json_loads(r.body, 0, NULL), *e = json_object_get(body, "error");
    free(r.body);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_spec");
    assert_string_equal(json_string_value(json_object_get(e, "path")), "/params/kappa");
    json_decref(body);
    expect_error(f, "POST", "/v1/devices", NULL, "{\"kind\":\"crn_relu\",\"colour\":1}",
                 (size_t)-1, 0, 400, "invalid_spec");
}

static void test_pagination(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 3; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"name\":\"page%d\",\"kind\":\"neuron\"}", i);
        json_decref(call(f, "POST", "/v1/devices", NULL, body, 201));
    }
    size_t total = 0, pages = 0;
    int64_t cursor = 0, prev = 0;
    for (;;) {
        char path[128];
        snprintf(path, sizeof path, "/v1/devices?limit=2&cursor=%" PRId64, cursor);
        json_t *p = call(f, "GET", path, NULL, NULL, 200);
        json_t *items = json_object_get(p, "devices");
        assert_true(json_array_size(items) <= 2);
        for (size_t i = 0; i < json_array_size(items); i++) {
            int64_t id = json_integer_value(json_object_get(json_array_get(items, i), "id"));
            assert_true(id > prev); /* ascending, no repeats across pages */
            prev = id;
        }
        total += json_array_size(items);
        pages++;
        json_t *next = json_object_get(p, "next");
        int more = json_is_integer(next);
        cursor = more ? json_integer_value(next) : 0;
        json_decref(p);
        if (!more)
            break;
        assert_true(pages < 10);
    }
    assert_true(total >= 3);
    assert_true(pages >= 2);
    expect_error(f, "GET", "/v1/devices?limit=0", NULL, NULL, 0, 0, 400, "invalid");
    expect_error(f, "GET", "/v1/devices?limit=abc", NULL, NULL, 0, 0, 400, "invalid");
    expect_error(f, "GET", "/v1/devices?limit=1001", NULL, NULL, 0, 0, 400, "invalid");
    expect_error(f, "GET", "/v1/devices?cursor=-1", NULL, NULL, 0, 0, 400, "invalid");
    /* one past INT64_MAX: refused, not overflowed (UBSan would report it) */
    expect_error(f, "GET", "/v1/devices?cursor=9223372036854775808", NULL, NULL, 0, 0, 400,
                 "invalid");
    expect_error(f, "GET", "/v1/jobs/9999999999999999999", NULL, NULL, 0, 0, 404, "not_found");
}

static void test_simulate(void **state)
{
    struct fx *f = *state;
    json_decref(call(f, "POST", "/v1/devices", NULL, "{\"name\":\"crn-sim\",\"kind\":\"crn_relu\"}",
                     201));
    json_t *s = call(f, "POST", "/v1/devices/crn-sim/simulate", NULL,
                     "{\"inputs\":{\"u1\":1.0},\"max_points\":50}", 200);
    /* kappa 0.01: y* = (z + sqrt(z^2 + 4 kappa)) / 2 at z = 1 */
    double want = (1.0 + sqrt(1.0 + 0.04)) / 2.0;
    assert_true(fabs(json_real_value(json_object_get(s, "output")) - want) < 1e-6);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "ok");
    json_t *tr = json_object_get(s, "trajectory");
    json_t *t = json_object_get(tr, "t");
    assert_true(json_array_size(t) >= 2 && json_array_size(t) <= 50);
    /* non-decreasing: engine/dev_solve's decimation repeats late points (reported) */
    for (size_t i = 1; i < json_array_size(t); i++)
        assert_true(json_real_value(json_array_get(t, i)) >=
                    json_real_value(json_array_get(t, i - 1)));
    assert_true(json_real_value(json_array_get(t, json_array_size(t) - 1)) > 0);
    assert_int_equal(json_array_size(json_object_get(tr, "y")), json_array_size(t));
    json_decref(s);
    s = call(f, "POST", "/v1/devices/crn-sim/simulate", NULL,
             "{\"curve\":{\"input\":\"u1\",\"from\":-2,\"to\":2,\"points\":9}}", 200);
    json_t *out = json_object_get(json_object_get(s, "curve"), "out");
    assert_int_equal(json_array_size(out), 9);
    for (size_t i = 1; i < 9; i++) /* a smoothed relu rises */
        assert_true(json_real_value(json_array_get(out, i)) >
                    json_real_value(json_array_get(out, i - 1)));
    json_decref(s);
    expect_error(f, "POST", "/v1/devices/crn-sim/simulate", NULL, "{}", (size_t)-1, 0, 400,
                 "invalid_spec");
    expect_error(f, "POST", "/v1/devices/crn-sim/simulate", NULL, "{\"inputs\":{\"u9\":1}}",
                 (size_t)-1, 0, 400, "invalid_spec");
    expect_error(f, "POST", "/v1/devices/crn-sim/simulate", NULL,
                 "{\"inputs\":{\"u1\":1},\"max_points\":1}", (size_t)-1, 0, 400, "invalid_spec");
    expect_error(f, "POST", "/v1/devices/crn-sim/simulate", NULL,
                 "{\"curve\":{\"input\":\"u1\",\"from\":0,\"to\":1,\"points\":100000}}",
                 (size_t)-1, 0, 400, "invalid_spec");
    expect_error(f, "POST", "/v1/devices/424242/simulate", NULL, "{\"inputs\":{\"u1\":1}}",
                 (size_t)-1, 0, 404, "not_found");
}

/* ---- datasets ----------------------------------------------------------------------- */

static void test_datasets(void **state)
{
    struct fx *f = *state;
    const char *csv = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n0.5,0.25,1\n";
    struct resp r;
    assert_int_equal(http_req(f, "POST", "/v1/datasets?name=tiny", NULL, csv, (size_t)-1, 0, &r),
                     201);
    json_t *d = json_loads(r.body, 0, NULL);
    free(r.body);
    int64_t id = json_integer_value(json_object_get(d, "id"));
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 5);
    assert_int_equal(json_integer_value(json_object_get(d, "cols")), 3);
    assert_string_equal(json_string_value(json_object_get(d, "source")), "csv");
    json_decref(d);
    char path[128];
    snprintf(path, sizeof path, "/v1/datasets/%" PRId64 "/data", id);
    assert_int_equal(http_req(f, "GET", path, NULL, NULL, 0, 0, &r), 200);
    assert_non_null(strstr(r.ctype, "text/csv"));
    assert_string_equal(r.body, "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n0.5,0.25,1\n");
    free(r.body);
    d = call(f, "GET", "/v1/datasets/tiny", NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(d, "id")), id);
    json_decref(d);
    /* A built-in dataset's name or a used one is a conflict; no name gets a readable one. */
    expect_error(f, "POST", "/v1/datasets?name=tiny", NULL, csv, (size_t)-1, 0, 409, "exists");
    expect_error(f, "POST", "/v1/datasets?name=spirals", NULL, csv, (size_t)-1, 0, 409, "exists");
    assert_int_equal(http_req(f, "POST", "/v1/datasets", NULL, csv, (size_t)-1, 0, &r), 201);
    d = json_loads(r.body, 0, NULL);
    free(r.body);
    assert_string_equal(json_string_value(json_object_get(d, "name")), "upload");
    json_decref(d);
    d = call(f, "GET", "/v1/datasets?limit=1000", NULL, NULL, 200);
    assert_true(json_array_size(json_object_get(d, "datasets")) >= 1);
    json_decref(d);
    /* a bigger one streams in several chunks and comes back intact */
    size_t rows = 3000, cap = rows * 32 + 16, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "a,b\n");
    for (size_t i = 0; i < rows; i++)
        n += (size_t)snprintf(big + n, cap - n, "%zu,%g\n", i, (double)i * 0.5);
    assert_true(n < 64 * 1024);
    assert_int_equal(http_req(f, "POST", "/v1/datasets", NULL, big, n, 1, &r), 201);
    d = json_loads(r.body, 0, NULL);
    free(r.body);
    id = json_integer_value(json_object_get(d, "id"));
    json_decref(d);
    snprintf(path, sizeof path, "/v1/datasets/%" PRId64 "/data", id);
    assert_int_equal(http_req(f, "GET", path, NULL, NULL, 0, 0, &r), 200);
    assert_string_equal(r.body, big);
    free(r.body);
    free(big);
    /* IDX: three 2x2 images followed by their labels in one body (`cat images labels`) */
    static const unsigned char idx[] = {
        0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2, /* images: 3 x 2 x 2 */
        0, 51, 102, 255, 255, 0, 0, 0, 1, 2, 3, 4,       /* pixels */
        0, 0, 8, 1, 0, 0, 0, 3,                          /* labels: 3 */
        2, 0, 1};
    assert_int_equal(http_req(f, "POST", "/v1/datasets?name=joined", NULL, (const char *)idx,
                              sizeof idx, 0, &r),
                     201);
    d = json_loads(r.body, 0, NULL);
    free(r.body);
    assert_string_equal(json_string_value(json_object_get(d, "source")), "idx");
    assert_int_equal(json_integer_value(json_object_get(d, "rows")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "cols")), 5);
    id = json_integer_value(json_object_get(d, "id"));
    json_decref(d);
    snprintf(path, sizeof path, "/v1/datasets/%" PRId64 "/data", id);
    assert_int_equal(http_req(f, "GET", path, NULL, NULL, 0, 0, &r), 200);
    /* Each float (k/255 pixels) as the shortest text that reads back to it. */
    assert_string_equal(r.body, "p0,p1,p2,p3,label\n0,0.2,0.4,1,2\n1,0,0,0,0\n"
                                "0.003921569,0.007843138,0.011764706,0.015686275,1\n");
    free(r.body);
    /* errors */
    assert_int_equal(http_req(f, "POST", "/v1/datasets", NULL, (const char *)idx, sizeof idx - 1,
                              0, &r),
                     400);
    assert_non_null(strstr(r.body, "\"the body: IDX: the labels after the images: truncated: 2 of 3 data bytes\""));
    free(r.body);
    expect_error(f, "POST", "/v1/datasets", NULL, "this is not,a dataset\n1,x,3\n", (size_t)-1, 0,
                 400, "bad_format");
    expect_error(f, "POST", "/v1/datasets", NULL, "", 0, 0, 400, "bad_format");
    expect_error(f, "GET", "/v1/datasets/99999", NULL, NULL, 0, 0, 404, "not_found");
    expect_error(f, "GET", "/v1/datasets/99999/data", NULL, NULL, 0, 0, 404, "not_found");
    char *huge = malloc(70 * 1024);
    memset(huge, '1', 70 * 1024);
    expect_error(f, "POST", "/v1/datasets", NULL, huge, 70 * 1024, 0, 413, "too_large");
    expect_error(f, "POST", "/v1/datasets", NULL, huge, 70 * 1024, 1, 413, "too_large");
    free(huge);
    expect_healthy(f);
}

/* ---- surrogates, models, predict ----------------------------------------------------- */

static int64_t submit(struct fx *f, const char *job)
{
    json_t *j = call(f, "POST", "/v1/jobs", NULL, job, 201);
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    assert_true(id > 0);
    return id;
}

/* Polls job id until it ends; fails unless it succeeded. */
static void wait_success(struct fx *f, int64_t id)
{
    char path[64], st[32] = "";
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    double t0 = qd_now();
    while (qd_now() - t0 < 45) {
        json_t *j = call(f, "GET", path, NULL, NULL, 200);
        snprintf(st, sizeof st, "%s", json_string_value(json_object_get(j, "state")));
        if (strcmp(st, "failed") == 0 || strcmp(st, "canceled") == 0)
            fail_msg("job %" PRId64 " %s: %s", id, st,
                     json_string_value(json_object_get(j, "error")));
        json_decref(j);
        if (strcmp(st, "succeeded") == 0)
            return;
        qd_nap_ms(50);
    }
    fail_msg("job %" PRId64 " still %s after 45 s", id, st);
}

/* Cross-entropy of the four XOR corners (labels 0 1 1 0) from predict's logits. */
static double xor_xent(const json_t *pred)
{
    static const int label[4] = {0, 1, 1, 0};
    const json_t *outs = json_object_get(pred, "outputs");
    double sum = 0;
    for (size_t i = 0; i < 4; i++) {
        const json_t *r = json_array_get(outs, i);
        double z0 = json_real_value(json_array_get(r, 0)),
               z1 = json_real_value(json_array_get(r, 1));
        double mx = z0 > z1 ? z0 : z1;
        double lse = mx + log(exp(z0 - mx) + exp(z1 - mx));
        sum += lse - (label[i] ? z1 : z0);
    }
    return sum / 4;
}

/* An evaluate job of model mid on the same four rows (the test split of
 * "xor" is its four corners) reports the loss that predict's outputs `pred`
 * give: both rebuild and standardise alike. */
static void expect_evaluate_agrees(struct fx *f, int64_t mid, const json_t *pred)
{
    char job[256], path[64];
    snprintf(job, sizeof job,
             "{\"type\":\"evaluate\",\"spec\":{\"model\":%" PRId64 ",\"dataset\":\"xor\","
             "\"split\":\"test\"}}",
             mid);
    int64_t ev = submit(f, job);
    wait_success(f, ev);
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, ev);
    json_t *j = call(f, "GET", path, NULL, NULL, 200);
    json_t *res = json_object_get(j, "result");
    assert_int_equal(json_integer_value(json_object_get(res, "rows")), 4);
    double loss = json_real_value(json_object_get(res, "loss")), want = xor_xent(pred);
    if (!(fabs(loss - want) <= 1e-7 + 1e-6 * want))
        fail_msg("evaluate's loss %.9g; predict's outputs give %.9g", loss, want);
    json_decref(j);
}

/* Runs one statement on the daemon's database (read-write, waiting out its locks). */
static void db_exec(struct fx *f, const char *sql)
{
    sqlite3 *h = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open_v2(f->d.db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    if (sqlite3_exec(h, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : sqlite3_errmsg(h));
    sqlite3_close(h);
}

/* Copies of model mid whose spec, parameters or scaler do not fit together:
 * each predict answers 409 model_unusable (it was a 500). */
static void expect_unusable_models(struct fx *f, int64_t mid)
{
    static const struct {
        const char *name, *cols;
    } bad[] = {
        {"cut-params", "spec, n_in, n_out, n_classes, loss, substr(params, 1, 8), scaler"},
        {"cut-scaler", "spec, n_in, n_out, n_classes, loss, params, substr(scaler, 1, 4)"},
        {"no-network", "'{\"dataset\": \"xor\"}', n_in, n_out, n_classes, loss, params, scaler"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char sql[512], path[128];
        snprintf(sql, sizeof sql,
                 "INSERT INTO models (name, spec, n_in, n_out, n_classes, loss, params, scaler)"
                 " SELECT '%s', %s FROM models WHERE id = %" PRId64,
                 bad[i].name, bad[i].cols, mid);
        db_exec(f, sql);
        snprintf(path, sizeof path, "/v1/models/%s/predict", bad[i].name);
        expect_error(f, "POST", path, NULL, "{\"rows\":[[0,0]]}", (size_t)-1, 0, 409,
                     "model_unusable");
    }
}

static void test_surrogates_models_predict(void **state)
{
    struct fx *f = *state;
    json_t *l = call(f, "GET", "/v1/surrogates", NULL, NULL, 200);
    assert_true(json_is_array(json_object_get(l, "surrogates")));
    json_decref(l);
    expect_error(f, "GET", "/v1/surrogates/99999", NULL, NULL, 0, 0, 404, "not_found");
    expect_error(f, "GET", "/v1/models/99999", NULL, NULL, 0, 0, 404, "not_found");
    expect_error(f, "POST", "/v1/models/99999/predict", NULL, "{\"rows\":[[0,0]]}", (size_t)-1, 0,
                 404, "not_found");

    int64_t sw = submit(f, "{\"type\":\"sweep\",\"name\":\"s\",\"spec\":{\"device\":{\"kind\":"
                           "\"crn_relu\"},\"samples\":256,\"ranges\":{\"u1\":[-3,3]}}}");
    char fit[512];
    snprintf(fit, sizeof fit,
             "{\"type\":\"fit\",\"name\":\"sur\",\"spec\":{\"dataset\":{\"job\":%" PRId64 "},"
             "\"hidden\":[8],\"epochs\":20,\"batch\":32,\"patience\":5}}",
             sw);
    int64_t ft = submit(f, fit);
    int64_t tr = submit(
        f, "{\"type\":\"train\",\"name\":\"xor\",\"spec\":{\"dataset\":{\"name\":\"xor\"},"
           "\"network\":[{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":{"
           "\"activation\":\"sigmoid\"}},\"via\":\"exact\"},{\"devices\":2,\"device\":{\"kind\":"
           "\"neuron\",\"params\":{\"activation\":\"identity\"}},\"via\":\"exact\"}],"
           "\"loss\":\"cross_entropy\",\"optimizer\":{\"name\":\"adam\",\"lr\":0.05},"
           "\"epochs\":200,\"batch\":4,\"seed\":1,\"checkpoint_every\":0,\"calibrate\":false}}");
    wait_success(f, ft);
    wait_success(f, tr);

    l = call(f, "GET", "/v1/surrogates", NULL, NULL, 200);
    json_t *first = json_array_get(json_object_get(l, "surrogates"), 0);
    int64_t sid = json_integer_value(json_object_get(first, "id"));
    assert_int_equal(json_integer_value(json_object_get(first, "job")), ft);
    json_decref(l);
    char path[128];
    snprintf(path, sizeof path, "/v1/surrogates/%" PRId64, sid);
    json_t *s = call(f, "GET", path, NULL, NULL, 200);
    assert_true(json_real_value(json_object_get(s, "val_rmse")) >= 0);
    json_t *layers = json_object_get(json_object_get(s, "weights"), "layers");
    assert_int_equal(json_array_size(layers), 2);
    assert_int_equal(json_array_size(json_object_get(json_array_get(layers, 0), "w")), 8);
    json_decref(s);

    l = call(f, "GET", "/v1/models", NULL, NULL, 200);
    first = json_array_get(json_object_get(l, "models"), 0);
    int64_t mid = json_integer_value(json_object_get(first, "id"));
    assert_int_equal(json_integer_value(json_object_get(first, "job")), tr);
    assert_int_equal(json_integer_value(json_object_get(first, "inputs")), 2);
    json_decref(l);
    snprintf(path, sizeof path, "/v1/models/%" PRId64, mid);
    json_decref(call(f, "GET", path, NULL, NULL, 200));
    snprintf(path, sizeof path, "/v1/models/%" PRId64 "/predict", mid);
    json_t *p = call(f, "POST", path, NULL, "{\"rows\":[[0,0],[0,1],[1,0],[1,1]]}", 200);
    json_t *cls = json_object_get(p, "classes");
    assert_int_equal(json_array_size(cls), 4);
    assert_int_equal(json_array_size(json_array_get(json_object_get(p, "outputs"), 0)), 2);
    json_t *pr = json_array_get(json_object_get(p, "probabilities"), 0);
    double sum = json_real_value(json_array_get(pr, 0)) + json_real_value(json_array_get(pr, 1));
    assert_true(fabs(sum - 1.0) < 1e-9);
    /* XOR learned: 0 1 1 0 */
    assert_int_equal(json_integer_value(json_array_get(cls, 0)), 0);
    assert_int_equal(json_integer_value(json_array_get(cls, 1)), 1);
    assert_int_equal(json_integer_value(json_array_get(cls, 2)), 1);
    assert_int_equal(json_integer_value(json_array_get(cls, 3)), 0);
    expect_evaluate_agrees(f, mid, p);
    json_decref(p);
    expect_error(f, "POST", path, NULL, "{\"rows\":[[0,0,0]]}", (size_t)-1, 0, 400,
                 "invalid_spec");
    expect_error(f, "POST", path, NULL, "{\"rows\":[]}", (size_t)-1, 0, 400, "invalid_spec");
    expect_error(f, "POST", path, NULL, "{\"rows\":[[0,\"a\"]]}", (size_t)-1, 0, 400,
                 "invalid_spec");
    expect_error(f, "POST", path, NULL, "{\"rows\":[[0,1e39]]}", (size_t)-1, 0, 400,
                 "invalid_spec");
    expect_unusable_models(f, mid);
}

/* ---- the bad-input catalogue ----------------------------------------------------------- */

static void test_bad_input_catalogue(void **state)
{
    struct fx *f = *state;
    static const char *const targets[] = {"/v1/devices", "/v1/jobs", "/v1/devices/crn/simulate"};
    char *big = malloc(20 * 1024);
    memset(big, ' ', 20 * 1024);
    big[0] = '{';
    big[20 * 1024 - 1] = '}';
    char deep[1024] = "";
    for (int i = 0; i < 200; i++)
        strcat(deep, "[");
    for (int i = 0; i < 200; i++)
        strcat(deep, "]");
    char deep_obj[2048] = "{\"a\":";
    for (int i = 0; i < 100; i++)
        strcat(deep_obj, "{\"a\":");
    strcat(deep_obj, "1");
    for (int i = 0; i < 101; i++)
        strcat(deep_obj, "}");
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        const char *p = targets[t];
        expect_error(f, "POST", p, NULL, big, 20 * 1024, 0, 413, "too_large");
        expect_error(f, "POST", p, NULL, big, 20 * 1024, 1, 413, "too_large");
        expect_error(f, "POST", p, NULL, "{\"kind\":", (size_t)-1, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"name\":\"\xff\xfe\",\"kind\":\"neuron\"}", (size_t)-1,
                     0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, deep, (size_t)-1, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, deep_obj, (size_t)-1, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"kind\":NaN}", (size_t)-1, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"x\":1e999}", (size_t)-1, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"x\":123456789012345678901234567890}", (size_t)-1, 0,
                     400, "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"kind\":\"neuron\",\"kind\":\"neuron\"}", (size_t)-1,
                     0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "[1,2]", (size_t)-1, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "", 0, 0, 400, "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"a\":\"\\u0000\"}", (size_t)-1, 0, 400,
                     "invalid_json");
        expect_error(f, "POST", p, NULL, "{\"kind\":5}", (size_t)-1, 0, 400, NULL);
        expect_healthy(f);
    }
    free(big);
    /* an oversized request line or header block: our JSON reply, not the HTTP library's */
    size_t huge = 40 * 1024;
    char *long_path = malloc(huge + 32), *long_token = malloc(huge + 1);
    assert_non_null(long_path);
    assert_non_null(long_token);
    strcpy(long_path, "/v1/jobs?name=");
    memset(long_path + strlen(long_path), 'a', huge);
    long_path[huge + 14] = '\0';
    memset(long_token, 'b', huge);
    long_token[huge] = '\0';
    expect_error(f, "GET", long_path, NULL, NULL, 0, 0, 414, "uri_too_long");
    expect_error(f, "GET", "/v1/jobs", long_token, NULL, 0, 0, 431, "headers_too_large");
    free(long_path);
    free(long_token);
    expect_healthy(f);
    /* wrong types and huge numbers inside otherwise valid JSON */
    expect_error(f, "POST", "/v1/devices", NULL, "{\"kind\":5}", (size_t)-1, 0, 400,
                 "invalid_spec");
    expect_error(f, "POST", "/v1/devices", NULL, "{\"kind\":\"crn_relu\",\"params\":[1]}",
                 (size_t)-1, 0, 400, "invalid_spec");
    /* a finite but absurd parameter: stored or refused, and a solve says how it went */
    struct resp r;
    long st = http_req(f, "POST", "/v1/devices", NULL,
                       "{\"name\":\"absurd\",\"kind\":\"crn_relu\",\"params\":{\"kappa\":1e308}}",
                       (size_t)-1, 0, &r);
    free(r.body);
    assert_true(st == 201 || st == 400);
    if (st == 201) {
        json_t *s = call(f, "POST", "/v1/devices/absurd/simulate", NULL,
                         "{\"curve\":{\"input\":\"u1\",\"from\":-1e300,\"to\":1e300}}", 200);
        assert_int_equal(json_array_size(json_object_get(json_object_get(s, "curve"), "out")), 101);
        json_decref(s);
    }
    expect_error(f, "POST", "/v1/jobs", NULL,
                 "{\"type\":\"sweep\",\"spec\":{\"device\":\"crn\",\"samples\":1e300,"
                 "\"ranges\":{\"u1\":[0,1]}}}",
                 (size_t)-1, 0, 400, "invalid_spec");
    expect_error(f, "POST", "/v1/jobs", NULL, "{\"type\":\"sweep\",\"spec\":\"no\"}", (size_t)-1,
                 0, 400, "invalid_spec");
    /* a sweep range on a parameter the device lacks: 400 at its path, no job stored */
    json_t *before = call(f, "GET", "/v1/jobs", NULL, NULL, 200);
    assert_int_equal(http_req(f, "POST", "/v1/jobs", NULL,
                              "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                              "\"samples\":8,\"ranges\":{\"u1\":[0,1],\"gain\":[1,2]}}}",
                              (size_t)-1, 0, &r),
                     400);
    json_t *rb = json_loads(r.body, 0, NULL);
    free(r.body);
    assert_string_equal(json_string_value(json_object_get(json_object_get(rb, "error"), "path")),
                        "/spec/ranges/gain");
    json_decref(rb);
    json_t *after = call(f, "GET", "/v1/jobs", NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(after, "jobs")),
                     json_array_size(json_object_get(before, "jobs")));
    json_decref(before), json_decref(after);
    /* routes and methods */
    expect_error(f, "GET", "/nope", NULL, NULL, 0, 0, 404, "not_found");
    expect_error(f, "GET", "/v1", NULL, NULL, 0, 0, 404, "not_found");
    expect_error(f, "GET", "/v1/devices/1/simulate", NULL, NULL, 0, 0, 405,
                 "method_not_allowed");
    expect_error(f, "GET", "/v1/devices//", NULL, NULL, 0, 0, 404, "not_found");
    assert_int_equal(http_req(f, "PUT", "/v1/devices", NULL, "{}", (size_t)-1, 0, &r), 405);
    assert_non_null(strstr(r.allow, "POST"));
    assert_non_null(strstr(r.allow, "GET"));
    free(r.body);
    expect_error(f, "DELETE", "/v1/devices/1", NULL, NULL, 0, 0, 405, "method_not_allowed");
    expect_error(f, "BREW", "/healthz", NULL, NULL, 0, 0, 405, "method_not_allowed");
    expect_error(f, "POST", "/v1/devices", NULL, "--x\r\n", (size_t)-1, 0, 400, "invalid_json");
    expect_healthy(f);
    json_t *m = call(f, "GET", "/v1/devices?limit=1", NULL, NULL, 200); /* still serving */
    json_decref(m);
}

/* ---- where requests come from (DNS rebinding, CSRF) ------------------------------------ */

/* A request with extra headers must be answered `want` with error `code` at `path`. */
static void expect_refused(struct fx *f, const char *method, const char *url, const char *body,
                           const char *const *hdrs, long want, const char *code,
                           const char *path)
{
    struct resp r;
    long st = http_req_h(f, method, url, NULL, body, (size_t)-1, 0, hdrs, &r);
    if (st != want)
        fail_msg("%s %s (%s): status %ld, wanted %ld; body: %s", method, url, hdrs[0], st, want,
                 r.body);
    assert_int_equal(strncmp(r.ctype, "application/json", 16), 0);
    json_t *j = json_loads(r.body, 0, NULL);
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_string_equal(json_string_value(json_object_get(e, "path")), path);
    json_decref(j);
    free(r.body);
}

/* How many devices are stored. */
static size_t device_count(struct fx *f)
{
    json_t *j = call(f, "GET", "/v1/devices?limit=1000", NULL, NULL, 200);
    size_t n = json_array_size(json_object_get(j, "devices"));
    json_decref(j);
    return n;
}

static void test_origin_checks(void **state)
{
    struct fx *f = *state;
    const char *dev = "{\"name\":\"csrf\",\"kind\":\"neuron\"}";
    size_t before = device_count(f);
    /* DNS rebinding: a foreign name that resolves to 127.0.0.1 reads nothing */
    static const char *const evil_host[] = {"Host: evil.example:8080", NULL};
    expect_refused(f, "GET", "/v1/devices", NULL, evil_host, 403, "forbidden", "Host");
    expect_refused(f, "GET", "/healthz", NULL, evil_host, 403, "forbidden", "Host");
    static const char *const evil_host2[] = {"Host: 127.0.0.1.evil.example", NULL};
    expect_refused(f, "GET", "/", NULL, evil_host2, 403, "forbidden", "Host");
    static const char *const no_host[] = {"Host:", NULL};
    expect_refused(f, "GET", "/v1/devices", NULL, no_host, 400, "invalid", "Host");
    struct resp r;
    static const char *const local_names[] = {"Host: localhost:1", "Host: [::1]:8080",
                                              "Host: 127.0.0.2", "Host: LOCALHOST"};
    for (size_t i = 0; i < 4; i++) {
        const char *h[] = {local_names[i], NULL};
        assert_int_equal(http_req_h(f, "GET", "/healthz", NULL, NULL, 0, 0, h, &r), 200);
        free(r.body);
    }
    /* a foreign page's simple requests: bodies not declared JSON */
    static const char *const plain[] = {"Content-Type: text/plain", NULL};
    static const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    static const char *const none[] = {"Content-Type:", NULL};
    expect_refused(f, "POST", "/v1/devices", dev, plain, 415, "unsupported_media_type",
                   "Content-Type");
    expect_refused(f, "POST", "/v1/devices", dev, form, 415, "unsupported_media_type",
                   "Content-Type");
    expect_refused(f, "POST", "/v1/devices", dev, none, 415, "unsupported_media_type",
                   "Content-Type");
    expect_refused(f, "POST", "/v1/datasets", "a,b\n1,2\n", plain, 415,
                   "unsupported_media_type", "Content-Type");
    /* cross-origin writes, even declared JSON (a browser would have asked first) */
    static const char *const cross[][3] = {
        {"Content-Type: application/json", "Origin: http://evil.example", NULL},
        {"Content-Type: application/json", "Origin: null", NULL},
        {"Content-Type: application/json", "Sec-Fetch-Site: cross-site", NULL},
        {"Content-Type: application/json", "Sec-Fetch-Site: same-site", NULL},
    };
    for (size_t i = 0; i < sizeof cross / sizeof cross[0]; i++)
        expect_refused(f, "POST", "/v1/devices", dev, cross[i], 403, "forbidden", "Origin");
    assert_int_equal(device_count(f), before); /* nothing was stored */
    /* the page itself: same origin, as a browser sends it */
    char origin[64];
    snprintf(origin, sizeof origin, "Origin: http://127.0.0.1:%u", f->d.port);
    const char *same[] = {"Content-Type: application/json; charset=utf-8", origin,
                          "Sec-Fetch-Site: same-origin", NULL};
    assert_int_equal(http_req_h(f, "POST", "/v1/devices", NULL, dev, (size_t)-1, 0, same, &r),
                     201);
    free(r.body);
    assert_int_equal(device_count(f), before + 1);
    /* reads from another site are not writes: answered (the browser keeps them from the page) */
    static const char *const cross_get[] = {"Sec-Fetch-Site: cross-site", NULL};
    assert_int_equal(http_req_h(f, "GET", "/healthz", NULL, NULL, 0, 0, cross_get, &r), 200);
    free(r.body);
}

/* ---- how requests are framed (raw bytes: curl would not send these) ------------------------ */

/* Sends raw[len] on a new connection and reads the answer until the daemon
 * closes it or 20 s pass: a new string (the bytes read; "" on timeout). */
static char *raw_exchange(struct fx *f, const char *raw, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->d.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(write(fd, raw, len), (ssize_t)len);
    size_t cap = 65536, n = 0;
    char *out = calloc(cap, 1);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (double t0 = qd_now(); n + 1 < cap && qd_now() - t0 < 20;) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    return out;
}

/* A raw request must be answered 400 with our JSON error at `path`, and the
 * connection closed (what follows its head cannot be trusted). */
static void expect_raw_400(struct fx *f, const char *raw, const char *path, const char *says)
{
    char *out = raw_exchange(f, raw, strlen(raw));
    if (strncmp(out, "HTTP/1.1 400 ", 13) != 0 || !strstr(out, "application/json"))
        fail_msg("%s\nanswered: %s", raw, out);
    const char *body = strstr(out, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL;
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid");
    assert_string_equal(json_string_value(json_object_get(e, "path")), path);
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), says));
    json_decref(j);
    free(out);
}

static void test_request_framing(void **state)
{
    struct fx *f = *state;
    size_t before = device_count(f);
    /* %00 used to cut the name short: /v1/devices/crn%00x answered crn */
    expect_raw_400(f, "GET /v1/devices/crn%00x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "url",
                   "control character");
    expect_raw_400(f,
                   "POST /v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                   "application/json\r\nContent-Length: 32\r\nContent-Length: 60\r\n\r\n"
                   "{\"name\":\"cl2\",\"kind\":\"neuron\"}",
                   "headers", "two Content-Length");
    /* used to hang for the whole connection timeout */
    expect_raw_400(f,
                   "POST /v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                   "application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                   "20\r\n{\"name\":\"te1\",\"kind\":\"neuron\"}\r\n0\r\n\r\n",
                   "headers", "Transfer-Encoding other than chunked");
    expect_raw_400(f,
                   "POST /v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                   "application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 32\r\n\r\n"
                   "20\r\n{\"name\":\"te2\",\"kind\":\"neuron\"}\r\n0\r\n\r\n",
                   "headers", "both Transfer-Encoding and Content-Length");
    expect_raw_400(f, "GET /healthz HTTP/1.1\r\n\r\n", "Host", "needs a Host header");
    assert_int_equal(device_count(f), before); /* nothing was stored */
    /* plain chunked and HTTP/1.0 without Host still work */
    char *out = raw_exchange(f, "GET /healthz HTTP/1.0\r\n\r\n", 26);
    assert_int_equal(strncmp(out, "HTTP/1.0 200 ", 13) == 0 || strncmp(out, "HTTP/1.1 200 ", 13) == 0,
                     1);
    free(out);
    expect_healthy(f);
}

/* ---- the log ------------------------------------------------------------------------------ */

/* The daemon log once it contains needle (polled: the access line is written
 * after the reply), or NULL after 10 s. A new string. */
static char *log_with(struct fx *f, const char *needle)
{
    for (double t0 = qd_now(); qd_now() - t0 < 10; qd_nap_ms(20)) {
        char *log = qt_read_file(f->d.log, NULL);
        if (log && strstr(log, needle))
            return log;
        free(log);
    }
    return NULL;
}

/* A path with %0a and ESC cannot forge an access-log line or drive a terminal. */
static void test_log_escapes_controls(void **state)
{
    struct fx *f = *state;
    /* refused (a path has no control characters), and logged as sent */
    expect_error(f, "GET", "/v1/devices/x%0aqn:%20http%20127.0.0.1%20admin%20GET%20/forged%1b%5b2J",
                 NULL, NULL, 0, 0, 400, "invalid");
    char *log = log_with(f, "/v1/devices/x\\nqn: http 127.0.0.1 admin GET /forged\\x1b[2J 400");
    assert_non_null(log);
    assert_null(strstr(log, "\nqn: http 127.0.0.1 admin GET /forged"));
    assert_null(strchr(log, '\x1b'));
    free(log);
}

/* ---- users ---------------------------------------------------------------------------- */

static void test_auth_401(void **state)
{
    struct fx *f = *state;
    expect_healthy(f); /* public */
    struct resp r;
    assert_int_equal(http_req(f, "GET", "/v1/devices", NULL, NULL, 0, 0, &r), 401);
    assert_non_null(strstr(r.www_auth, "Bearer"));
    free(r.body);
    expect_error(f, "GET", "/v1/devices", NULL, NULL, 0, 0, 401, "unauthorized");
    expect_error(f, "GET", "/v1/devices", "Bearer 0000", NULL, 0, 0, 401, "unauthorized");
    expect_error(f, "GET", "/v1/devices",
                 "Bearer 0000000000000000000000000000000000000000000000000000000000000000", NULL,
                 0, 0, 401, "unauthorized");
    expect_error(f, "GET", "/v1/devices", "Basic YWxpY2U6eA==", NULL, 0, 0, 401, "unauthorized");
    expect_error(f, "POST", "/v1/jobs", NULL, "{}", (size_t)-1, 0, 401, "unauthorized");
    expect_error(f, "GET", "/v1/jobs/1", NULL, NULL, 0, 0, 401, "unauthorized");
    json_decref(call(f, "GET", "/v1/devices", f->alice, NULL, 200));
    json_decref(call(f, "GET", "/v1/devices", f->admin, NULL, 200));
    /* /healthz tells a client a token is needed; /v1/whoami says whose it is */
    json_t *h = call(f, "GET", "/healthz", NULL, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(h, "auth")), "token");
    json_decref(h);
    expect_error(f, "GET", "/v1/whoami", NULL, NULL, 0, 0, 401, "unauthorized");
    json_t *w = call(f, "GET", "/v1/whoami", f->alice, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(w, "name")), "alice");
    assert_true(json_is_false(json_object_get(w, "admin")));
    json_decref(w);
    w = call(f, "GET", "/v1/whoami", f->admin, NULL, 200);
    assert_true(json_is_true(json_object_get(w, "admin")));
    json_decref(w);
}

static void test_auth_owner_and_403(void **state)
{
    struct fx *f = *state;
    /* a job big enough to still be queued or running when it is canceled */
    const char *job = "{\"type\":\"sweep\",\"name\":\"long\",\"priority\":-5,\"spec\":{\"device\":"
                      "{\"kind\":\"hodgkin_huxley\",\"readout\":{\"kind\":\"spike_rate\","
                      "\"t_max\":500}},\"samples\":200000,\"ranges\":{\"u1\":[0,20]}}}";
    json_t *j = call(f, "POST", "/v1/jobs", f->alice, job, 201);
    int64_t id = json_integer_value(json_object_get(j, "id"));
    assert_string_equal(json_string_value(json_object_get(j, "owner")), "alice");
    json_decref(j);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/cancel", id);
    expect_error(f, "POST", path, f->bob, NULL, 0, 0, 403, "forbidden");
    struct resp r;
    long st = http_req(f, "POST", path, f->admin, NULL, 0, 0, &r);
    free(r.body);
    assert_true(st == 200 || st == 202);
}

/* A member cannot jump the round-robin with a high priority; an admin can. */
static void test_auth_priority(void **state)
{
    struct fx *f = *state;
    json_t *before = call(f, "GET", "/v1/jobs?limit=1000", f->admin, NULL, 200);
    size_t n = json_array_size(json_object_get(before, "jobs"));
    json_decref(before);
    static const char job[] = "{\"type\":\"sweep\",\"priority\":%d,\"spec\":{\"device\":"
                              "{\"kind\":\"neuron\"},\"samples\":8,\"ranges\":{\"u1\":[0,1]}}}";
    char body[256];
    snprintf(body, sizeof body, job, 100);
    struct resp r;
    assert_int_equal(http_req(f, "POST", "/v1/jobs", f->alice, body, (size_t)-1, 0, &r), 403);
    json_t *reply = json_loads(r.body, 0, NULL), *e = json_object_get(reply, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "forbidden");
    assert_string_equal(json_string_value(json_object_get(e, "path")), "/priority");
    json_decref(reply);
    free(r.body);
    snprintf(body, sizeof body, job, 1);
    expect_error(f, "POST", "/v1/jobs", f->bob, body, (size_t)-1, 0, 403, "forbidden");
    json_t *after = call(f, "GET", "/v1/jobs?limit=1000", f->admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(after, "jobs")), n); /* nothing stored */
    json_decref(after);
    snprintf(body, sizeof body, job, 0);
    json_decref(call(f, "POST", "/v1/jobs", f->alice, body, 201)); /* the default is anyone's */
    snprintf(body, sizeof body, job, -3);
    json_decref(call(f, "POST", "/v1/jobs", f->alice, body, 201));
    snprintf(body, sizeof body, job, 100);
    json_t *j = call(f, "POST", "/v1/jobs", f->admin, body, 201);
    assert_int_equal(json_integer_value(json_object_get(j, "priority")), 100);
    json_decref(j);
}

static void test_auth_revoke(void **state)
{
    struct fx *f = *state;
    json_decref(call(f, "GET", "/v1/devices", f->bob, NULL, 200));
    struct qt_run r;
    assert_int_equal(user_cmd(f, "revoke", "bob"), 0);
    expect_error(f, "GET", "/v1/devices", f->bob, NULL, 0, 0, 401, "unauthorized");
    json_decref(call(f, "GET", "/v1/devices", f->alice, NULL, 200)); /* others unaffected */
    assert_int_equal(qt_qn(f->d.dir, NULL, &r, "user", "list", "--db", f->d.db, NULL), 0);
    assert_int_equal(r.status, 0);
    assert_int_equal(qt_count_lines(r.out), 3);
    assert_non_null(strstr(r.out, "\"name\":\"bob\""));
    assert_null(strstr(r.out, "token"));
    qt_run_free(&r);
    /* revoking twice, bad names, a taken name */
    assert_int_equal(user_cmd(f, "revoke", "bob"), 2);
    assert_int_equal(user_cmd(f, "add", "local"), 2);
    assert_int_equal(user_cmd(f, "add", "a b"), 2);
    assert_int_equal(user_cmd(f, "add", "alice"), 2);
    /* the name of a revoked user is free again, with a new token */
    char tok[80];
    add_user(f, "bob", 0, tok, sizeof tok);
    assert_string_not_equal(tok, f->bob);
    json_decref(call(f, "GET", "/v1/devices", tok, NULL, 200));
    expect_error(f, "GET", "/v1/devices", f->bob, NULL, 0, 0, 401, "unauthorized");
}

/* The event stream of test_auth_revoke_closes_stream: revokes `name` once
 * the stream has begun, and keeps what arrives. */
struct revoke_stream {
    struct fx *f;
    const char *name;
    int revoked;      /* qn user revoke ran (its exit status in status) */
    int status;
    struct resp r;
};

static size_t on_stream(char *d, size_t sz, size_t nm, void *u)
{
    struct revoke_stream *rs = u;
    size_t n = on_body(d, sz, nm, &rs->r);
    if (!rs->revoked && strstr(rs->r.body, "event: state")) {
        rs->revoked = 1;
        rs->status = user_cmd(rs->f, "revoke", rs->name);
    }
    return n;
}

/* Revoking a user ends the event streams they have open. */
static void test_auth_revoke_closes_stream(void **state)
{
    struct fx *f = *state;
    char tok[80];
    add_user(f, "erin", 0, tok, sizeof tok);
    /* a job that stays queued or running for the whole test */
    const char *job = "{\"type\":\"sweep\",\"name\":\"long\",\"priority\":-9,\"spec\":{\"device\":"
                      "{\"kind\":\"hodgkin_huxley\",\"readout\":{\"kind\":\"spike_rate\","
                      "\"t_max\":500}},\"samples\":200000,\"ranges\":{\"u1\":[0,20]}}}";
    json_t *j = call(f, "POST", "/v1/jobs", f->admin, job, 201);
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    char url[128], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/jobs/%" PRId64 "/events", f->d.port, id);
    snprintf(auth, sizeof auth, "Authorization: %s", tok);
    struct revoke_stream rs = {.f = f, .name = "erin"};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &rs);
    /* Without the revocation the stream would run until this timeout (it
     * sends heartbeats and the job outlives the test). */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 40L);
    CURLcode cc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    assert_int_equal(rs.revoked, 1);
    assert_int_equal(rs.status, 0);
    if (cc != CURLE_OK)
        fail_msg("the stream did not end after the revocation: %s; got: %s",
                 curl_easy_strerror(cc), rs.r.body);
    assert_non_null(strstr(rs.r.body, ": the token was revoked"));
    free(rs.r.body);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    j = call(f, "GET", path, f->admin, NULL, 200);
    assert_false(qd_is_final(json_string_value(json_object_get(j, "state"))));
    json_decref(j);
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/events", id);
    expect_error(f, "GET", path, tok, NULL, 0, 0, 401, "unauthorized"); /* no reconnecting */
    char cancel[64];
    snprintf(cancel, sizeof cancel, "/v1/jobs/%" PRId64 "/cancel", id);
    struct resp r;
    http_req(f, "POST", cancel, f->admin, NULL, 0, 0, &r);
    free(r.body);
}

/* A CSV of n rows y = k x, uploaded as `name` by token: the new dataset's id. */
static int64_t upload_csv(struct fx *f, const char *token, const char *name, int n, double k)
{
    char csv[2048] = "x,y\n", path[128];
    for (int i = 0; i < n; i++)
        snprintf(csv + strlen(csv), sizeof csv - strlen(csv), "%g,%g\n", i * 0.1, k * i * 0.1);
    snprintf(path, sizeof path, "/v1/datasets?name=%s", name);
    struct resp r;
    assert_int_equal(http_req(f, "POST", path, token, csv, (size_t)-1, 0, &r), 201);
    json_t *d = json_loads(r.body, 0, NULL);
    free(r.body);
    int64_t id = json_integer_value(json_object_get(d, "id"));
    json_decref(d);
    return id;
}

/* GET path as token: the record's integer `key`. */
static int64_t record_int(struct fx *f, const char *path, const char *token, const char *key)
{
    json_t *j = call(f, "GET", path, token, NULL, 200);
    int64_t v = json_integer_value(json_object_get(j, key));
    json_decref(j);
    return v;
}

/* Submits job as token and polls it until it ends; fails unless it
 * succeeded. Its record (new reference). */
static json_t *run_as(struct fx *f, const char *token, const char *job)
{
    json_t *j = call(f, "POST", "/v1/jobs", token, job, 201);
    int64_t id = json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    json_t *rec = NULL;
    for (double t0 = qd_now(); qd_now() - t0 < 120; qd_nap_ms(50)) {
        json_decref(rec);
        rec = call(f, "GET", path, token, NULL, 200);
        if (qd_is_final(json_string_value(json_object_get(rec, "state"))))
            break;
    }
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") != 0)
        fail_msg("%s: %s", job, json_dumps(rec, 0));
    return rec;
}

/* Trains a small regression on `dataset` (JSON) as token; the id of the
 * dataset its model records. */
static int64_t trained_on(struct fx *f, const char *token, const char *dataset)
{
    char job[768], path[64];
    snprintf(job, sizeof job,
             "{\"type\":\"train\",\"spec\":{\"dataset\":%s,\"network\":[{\"devices\":4,"
             "\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":\"tanh\"}}},"
             "{\"devices\":1,\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":"
             "\"identity\"}}}],\"loss\":\"mse\",\"epochs\":1,\"batch\":4}}",
             dataset);
    json_t *rec = run_as(f, token, job);
    snprintf(path, sizeof path, "/v1/models/%" PRId64,
             (int64_t)json_integer_value(json_object_get(json_object_get(rec, "result"), "model")));
    json_decref(rec);
    json_t *m = call(f, "GET", path, token, NULL, 200);
    int64_t ds = json_integer_value(
        json_object_get(json_object_get(json_object_get(m, "spec"), "dataset"), "id"));
    json_decref(m);
    return ds;
}

/* Names are owned: Mallory's dataset named like Alice's does not stand in
 * for hers; a device name is unique per owner; owner/name reaches another's. */
static void test_auth_owned_names(void **state)
{
    struct fx *f = *state;
    char mallory[80];
    add_user(f, "mallory", 0, mallory, sizeof mallory);
    int64_t mine = upload_csv(f, f->alice, "private", 20, 1);
    int64_t his = upload_csv(f, mallory, "private", 30, -1); /* newer, same name */
    assert_true(his > mine);
    assert_int_equal(record_int(f, "/v1/datasets/private", f->alice, "id"), mine);
    assert_int_equal(record_int(f, "/v1/datasets/private", mallory, "id"), his);
    json_t *d = call(f, "GET", "/v1/datasets/private", f->alice, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(d, "owner")), "alice");
    json_decref(d);
    /* Alice's train on "private" uses hers, and the model records its id */
    assert_int_equal(trained_on(f, f->alice, "{\"name\":\"private\",\"target\":\"y\"}"), mine);
    assert_int_equal(trained_on(f, f->alice, "{\"name\":\"mallory/private\",\"target\":\"y\"}"),
                     his);
    /* device names: one per owner */
    const char *dev = "{\"name\":\"shared-name\",\"kind\":\"neuron\"}";
    json_t *a = call(f, "POST", "/v1/devices", f->alice, dev, 201);
    json_t *b = call(f, "POST", "/v1/devices", mallory, dev, 201);
    assert_string_equal(json_string_value(json_object_get(b, "owner")), "mallory");
    assert_int_equal(record_int(f, "/v1/devices/shared-name", f->alice, "id"),
                     json_integer_value(json_object_get(a, "id")));
    json_decref(a);
    json_decref(b);
    expect_error(f, "POST", "/v1/devices", f->alice, dev, (size_t)-1, 0, 409, "exists");
}

/* A train job named `name` of xor through device "cell" via surrogate
 * "sur" (both by name), from model `from` when not NULL. */
static char *cell_train(const char *name, const char *from)
{
    char *job = malloc(1024);
    assert_non_null(job);
    snprintf(job, 1024,
             "{\"type\":\"train\",\"name\":\"%s\",\"spec\":{\"dataset\":\"xor\",\"network\":"
             "[{\"devices\":2,\"device\":\"cell\",\"via\":\"surrogate\",\"surrogate\":\"sur\"},"
             "{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":"
             "\"identity\"}},\"via\":\"exact\"}],\"loss\":\"cross_entropy\",\"epochs\":2,"
             "\"batch\":4,\"seed\":1%s%s%s}}",
             name, from ? ",\"from\":{\"model\":\"" : "", from ? from : "", from ? "\"}" : "");
    return job;
}

/* As token: device "cell" (a neuron with `activation`), a sweep of it and
 * surrogate "sur" fitted on it, then model "m" trained through them (job
 * cell_train). The ids of the surrogate and the model. */
static void cell_model(struct fx *f, const char *token, const char *activation, int64_t *sur,
                       int64_t *model)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"name\":\"cell\",\"kind\":\"neuron\",\"params\":{\"activation\":\"%s\"}}",
             activation);
    json_decref(call(f, "POST", "/v1/devices", token, body, 201));
    json_t *rec = run_as(f, token, "{\"type\":\"sweep\",\"spec\":{\"device\":\"cell\","
                                   "\"samples\":128,\"ranges\":{\"u1\":[-3,3]}}}");
    snprintf(body, sizeof body,
             "{\"type\":\"fit\",\"name\":\"sur\",\"spec\":{\"dataset\":{\"job\":%" PRId64
             "},\"hidden\":[8],\"epochs\":10,\"batch\":32,\"patience\":5}}",
             (int64_t)json_integer_value(json_object_get(rec, "id")));
    json_decref(rec);
    json_decref(run_as(f, token, body));
    *sur = record_int(f, "/v1/surrogates/sur", token, "id");
    char *job = cell_train("m", NULL);
    rec = run_as(f, token, job);
    free(job);
    *model = json_integer_value(json_object_get(json_object_get(rec, "result"), "model"));
    json_decref(rec);
}

/* Model id as token: its owner, and what its spec records of the layer
 * through the surrogate (the surrogate's id, the device's activation). */
static void expect_model_used(struct fx *f, const char *token, int64_t id, const char *owner,
                              int64_t sur, const char *activation)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/models/%" PRId64, id);
    json_t *m = call(f, "GET", path, token, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(m, "owner")), owner);
    json_t *l0 = json_array_get(json_object_get(json_object_get(m, "spec"), "network"), 0);
    assert_int_equal(json_integer_value(json_object_get(l0, "surrogate")), sur);
    assert_true(json_is_true(json_object_get(l0, "surrogate_matched")));
    json_t *dev = json_object_get(l0, "device");
    assert_true(json_is_object(dev)); /* inline: the definition used, not a name */
    assert_string_equal(json_string_value(json_object_get(json_object_get(dev, "params"),
                                                          "activation")),
                        activation);
    json_decref(m);
}

/* Evaluates model `ref` on xor as token: the model id its result names. */
static int64_t evaluated(struct fx *f, const char *token, const char *ref)
{
    char job[256];
    snprintf(job, sizeof job,
             "{\"type\":\"evaluate\",\"spec\":{\"model\":\"%s\",\"dataset\":\"xor\","
             "\"split\":\"test\"}}",
             ref);
    json_t *rec = run_as(f, token, job);
    int64_t id = json_integer_value(json_object_get(json_object_get(rec, "result"), "model"));
    json_decref(rec);
    return id;
}

/*
 * Models are owned too (issue 16, item 6): Alice and Bob each make a device
 * "cell", a surrogate "sur" of it and a model "m" through both, Bob last.
 * Alice's names stay hers: GET /v1/models/m, predict on it, an evaluate of
 * "m" and a train "from" "m" all reach her model, though Bob's is newer
 * (before, the newest "m" of anyone's); "bobby/m" or the id reach his. Each
 * model records the surrogate id and the device definition its owner's
 * names resolved to, and a train from "m" records her model's id.
 */
static void test_auth_owned_models(void **state)
{
    struct fx *f = *state;
    char bob[80]; /* "bob" was revoked by an earlier test: a fresh member */
    add_user(f, "bobby", 0, bob, sizeof bob);
    int64_t a_sur, a_m, b_sur, b_m;
    cell_model(f, f->alice, "tanh", &a_sur, &a_m);
    cell_model(f, bob, "relu", &b_sur, &b_m);
    assert_true(b_sur > a_sur && b_m > a_m);
    expect_model_used(f, f->alice, a_m, "alice", a_sur, "tanh");
    expect_model_used(f, bob, b_m, "bobby", b_sur, "relu");
    assert_int_equal(record_int(f, "/v1/models/m", f->alice, "id"), a_m);
    assert_int_equal(record_int(f, "/v1/models/m", bob, "id"), b_m);
    json_t *l = call(f, "GET", "/v1/models", f->alice, NULL, 200);
    json_t *m;
    size_t i, seen = 0;
    json_array_foreach(json_object_get(l, "models"), i, m) {
        int64_t id = json_integer_value(json_object_get(m, "id"));
        const char *owner = json_string_value(json_object_get(m, "owner"));
        seen += (id == a_m && strcmp(owner, "alice") == 0) + (id == b_m && strcmp(owner, "bobby") == 0);
    }
    assert_int_equal(seen, 2);
    json_decref(l);
    /* predict by name is predict by her model's id */
    const char *rows = "{\"rows\":[[0,0],[0,1],[1,0],[1,1]]}";
    char path[64];
    snprintf(path, sizeof path, "/v1/models/%" PRId64 "/predict", a_m);
    json_t *by_id = call(f, "POST", path, f->alice, rows, 200);
    json_t *by_name = call(f, "POST", "/v1/models/m/predict", f->alice, rows, 200);
    assert_true(json_equal(json_object_get(by_id, "outputs"), json_object_get(by_name, "outputs")));
    json_decref(by_id);
    json_decref(by_name);
    assert_int_equal(evaluated(f, f->alice, "m"), a_m);
    assert_int_equal(evaluated(f, f->alice, "bobby/m"), b_m);
    assert_int_equal(evaluated(f, bob, "m"), b_m);
    /* a train from "m" starts from hers, and its model records that id */
    char *job = cell_train("m2", "m");
    json_t *rec = run_as(f, f->alice, job);
    free(job);
    snprintf(path, sizeof path, "/v1/models/%" PRId64,
             (int64_t)json_integer_value(json_object_get(json_object_get(rec, "result"), "model")));
    json_decref(rec);
    m = call(f, "GET", path, f->alice, NULL, 200);
    json_t *from = json_object_get(json_object_get(m, "spec"), "from");
    assert_int_equal(json_integer_value(json_object_get(from, "model")), a_m);
    json_decref(m);
}

/* Whether hay[n] contains needle[m]. */
static int contains(const char *hay, size_t n, const char *needle, size_t m)
{
    for (size_t i = 0; hay && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return 1;
    return 0;
}

/* The database stores hashes, never tokens. */
static void test_tokens_not_stored(void **state)
{
    struct fx *f = *state;
    size_t len = 0;
    char *db = qt_read_file(f->d.db, &len);
    char *wal_path = malloc(strlen(f->d.db) + 5);
    sprintf(wal_path, "%s-wal", f->d.db);
    size_t wlen = 0;
    char *wal = qt_read_file(wal_path, &wlen);
    const char *tok = f->alice + 7; /* after "Bearer " */
    assert_false(contains(db, len, tok, 64));
    if (wal)
        assert_false(contains(wal, wlen, tok, 64));
    free(db);
    free(wal);
    free(wal_path);
}

/* ---- start-up rules (their own short-lived daemons) ------------------------------------ */

static void test_refuses_public_bind_without_users(void **state)
{
    (void)state;
    char dir[512];
    assert_int_equal(qt_tmpdir(dir, sizeof dir), 0);
    struct qt_run r;
    assert_int_equal(qt_qn(dir, NULL, &r, "serve", "--db", "x.db", "--bind", "0.0.0.0", "--port",
                           "0", NULL),
                     0);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "refusing to listen on 0.0.0.0"));
    assert_non_null(strstr(r.err, "qn user add"));
    qt_run_free(&r);
    assert_int_equal(qt_qn(dir, NULL, &r, "serve", "--db", "x.db", "--port", "70000", NULL), 0);
    assert_int_equal(r.status, 2);
    qt_run_free(&r);
    assert_int_equal(qt_qn(dir, NULL, &r, "serve", "--db", "x.db", "--max-body", "12Q", NULL), 0);
    assert_int_equal(r.status, 2);
    qt_run_free(&r);
    assert_int_equal(qt_qn(dir, NULL, &r, "serve", "--db", "x.db", "--frobnicate", "1", NULL), 0);
    assert_int_equal(r.status, 2);
    qt_run_free(&r);
    qt_rmtree(dir);
}

static void test_public_bind_with_users(void **state)
{
    (void)state;
    struct fx *f = NULL;
    assert_int_equal(fx_new((void **)&f), 0);
    char tok[80];
    add_user(f, "dora", 0, tok, sizeof tok);
    static const char *const extra[] = {"--bind", "0.0.0.0", NULL};
    daemon_start(f, extra);
    expect_healthy(f);
    expect_error(f, "GET", "/v1/devices", NULL, NULL, 0, 0, 401, "unauthorized");
    json_decref(call(f, "GET", "/v1/devices", tok, NULL, 200));
    /* revoking the last user must not open the daemon up */
    user_cmd(f, "revoke", "dora");
    expect_error(f, "GET", "/v1/devices", NULL, NULL, 0, 0, 401, "unauthorized");
    assert_int_equal(daemon_stop(f), 0);
    qt_rmtree(f->d.dir);
    free(f);
}

int main(void)
{
    const struct CMUnitTest open[] = {
        cmocka_unit_test(test_health_and_metrics),
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_simulate),
        cmocka_unit_test(test_datasets),
        cmocka_unit_test(test_surrogates_models_predict),
        cmocka_unit_test(test_bad_input_catalogue),
        cmocka_unit_test(test_origin_checks),
        cmocka_unit_test(test_log_escapes_controls),
        cmocka_unit_test(test_request_framing),
    };
    const struct CMUnitTest auth[] = {
        cmocka_unit_test(test_auth_401),
        cmocka_unit_test(test_auth_owner_and_403),
        cmocka_unit_test(test_auth_priority),
        cmocka_unit_test(test_auth_revoke),
        cmocka_unit_test(test_auth_revoke_closes_stream),
        cmocka_unit_test(test_auth_owned_names),
        cmocka_unit_test(test_auth_owned_models),
        cmocka_unit_test(test_tokens_not_stored),
    };
    const struct CMUnitTest startup[] = {
        cmocka_unit_test(test_refuses_public_bind_without_users),
        cmocka_unit_test(test_public_bind_with_users),
    };
    int fails = cmocka_run_group_tests_name("open", open, group_open_setup, group_teardown);
    fails += cmocka_run_group_tests_name("auth", auth, group_auth_setup, group_teardown);
    fails += cmocka_run_group_tests_name("startup", startup, NULL, NULL);
    return fails;
}
