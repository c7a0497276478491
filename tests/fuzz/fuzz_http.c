/*
 * fuzz_http.c: the HTTP request path of `qn serve` (MHD's parser, routing,
 * authentication, headers, query arguments, JSON bodies, uploads, every
 * handler) through a real daemon running in this process.
 *
 * The dispatcher lives inside http.c behind MHD's access callback, so there
 * is no request struct to fake: fuzz_http_init starts the daemon once as
 * daemon_main does (HTTP server with every route, worker pool, event pump)
 * on 127.0.0.1 with an ephemeral port and a database in a fresh temporary
 * directory, and stores a device, a dataset, a sweep, a surrogate fit of it
 * and a small model so that the {id} routes have something to find (ids 1).
 * Each input is then sent as raw bytes over a new TCP connection, and the
 * reply read until it is complete (Content-Length, chunked end, or an event
 * stream's headers), the server closes, or nothing has come for a while (an
 * incomplete request: the write side is shut so MHD sees the end).
 *
 * The worker pool must run for POST /v1/jobs to work, but fuzzed jobs must
 * not eat the CPU: after every input, every job newer than the seeded ones
 * that is still pending or running is canceled (workers_cancel).
 *
 * One worker, one MHD thread and handlers run inline (no compute threads),
 * so an input's coverage is mostly its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "events.h"
#include "fuzz.h"
#include "qn_err.h"
#include "store.h"
#include "store_internal.h" /* store_sqlite: raw access to inspect the database */
#include "workers.h"

#define FUZZ_HTTP__RESP_MAX (256u << 10) /* bytes of a reply kept (the rest is drained) */
#define FUZZ_HTTP__IDLE_MS 25            /* no reply this long: shut the write side */
#define FUZZ_HTTP__CLOSE_MS 1000         /* then wait at most this for the end */
#define FUZZ_HTTP__SEED_WAIT_S 120       /* a seeded job must finish within this */

static struct {
    int up;
    char dir[256];
    char db[300];
    struct daemon d;
    unsigned port;
    struct store *s;   /* the harness's own connection (job states, cancels) */
    int64_t last_seed; /* highest job id the harness submitted */
    char *resp;        /* (FUZZ_HTTP__RESP_MAX + 1) the last reply */
} fuzz_http__g;

/* ---- one exchange ---------------------------------------------------------- */

static double fuzz_http__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fuzz_http__connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fuzz_http__g.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (const struct sockaddr *)(const void *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends all of p[n] (stops quietly when the server has closed). */
static void fuzz_http__send(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Case-insensitive search for a header line "name:" in the head r[0..h). */
static const char *fuzz_http__header(const char *r, size_t h, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = r; p && p + nl < r + h; p = memchr(p, '\n', (size_t)(r + h - p))) {
        if (*p == '\n')
            p++;
        if (p + nl < r + h && strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return p + nl + 1;
    }
    return NULL;
}

/* Nonzero when r[0..n) holds a whole reply (1xx interim replies skipped). */
static int fuzz_http__complete(const char *r, size_t n)
{
    for (;;) {
        const char *end = NULL;
        for (size_t i = 0; i + 3 < n; i++)
            if (memcmp(r + i, "\r\n\r\n", 4) == 0) {
                end = r + i + 4;
                break;
            }
        if (!end)
            return 0;
        size_t h = (size_t)(end - r);
        if (n >= 10 && r[9] == '1') { /* "HTTP/1.1 100 Continue" */
            r += h;
            n -= h;
            continue;
        }
        const char *v;
        if ((v = fuzz_http__header(r, h, "Content-Length")))
            return n - h >= strtoull(v, NULL, 10);
        if ((v = fuzz_http__header(r, h, "Transfer-Encoding")) && strstr(v, "chunked"))
            return n >= h + 5 && memcmp(r + n - 5, "0\r\n\r\n", 5) == 0;
        if ((v = fuzz_http__header(r, h, "Content-Type")) && strstr(v, "event-stream"))
            return 1;
        return 0; /* ends when the server closes */
    }
}

/* Sends req[n] on a new connection and reads the reply into g.resp (NUL-terminated). */
static size_t fuzz_http__exchange(const uint8_t *req, size_t n)
{
    char *r = fuzz_http__g.resp;
    size_t got = 0;
    r[0] = '\0';
    int fd = fuzz_http__connect();
    if (fd < 0)
        return 0;
    fuzz_http__send(fd, req, n);
    int shut = 0;
    double last = fuzz_http__now();
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, FUZZ_HTTP__IDLE_MS);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            double idle = (fuzz_http__now() - last) * 1e3;
            if (!shut) {
                shutdown(fd, SHUT_WR);
                shut = 1;
            } else if (idle > FUZZ_HTTP__CLOSE_MS) {
                break;
            }
            continue;
        }
        char tmp[16384];
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k <= 0)
            break;
        last = fuzz_http__now();
        size_t keep = (size_t)k;
        if (keep > FUZZ_HTTP__RESP_MAX - got)
            keep = FUZZ_HTTP__RESP_MAX - got;
        memcpy(r + got, tmp, keep);
        got += keep;
        r[got] = '\0';
        if (fuzz_http__complete(r, got))
            break;
    }
    close(fd);
    return got;
}

/* ---- start-up: the daemon and the seeded records --------------------------- */

/* A directory for the database: /dev/shm when usable (no fsync cost), else TMPDIR or /tmp. */
static int fuzz_http__mkdir(void)
{
    const char *bases[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        if (!bases[i] || !*bases[i])
            continue;
        snprintf(fuzz_http__g.dir, sizeof fuzz_http__g.dir, "%s/qn-fuzz-http-XXXXXX", bases[i]);
        if (mkdtemp(fuzz_http__g.dir)) {
            snprintf(fuzz_http__g.db, sizeof fuzz_http__g.db, "%s/fuzz.db", fuzz_http__g.dir);
            return 0;
        }
    }
    return QN_EIO;
}

/* As daemon_main's start-up, with the settings described at the top. */
static int fuzz_http__start(void)
{
    struct daemon *d = &fuzz_http__g.d;
    memset(d, 0, sizeof *d);
    d->cfg = (struct daemon_config){.db = fuzz_http__g.db,
                                    .bind = "127.0.0.1",
                                    .port = 0,
                                    .workers = 1,
                                    .job_threads = 1,
                                    .http_threads = 1,
                                    .compute_threads = 0,
                                    .max_body = 64u << 10,
                                    .max_upload = 1u << 20,
                                    .max_connections = 64,
                                    .timeout_s = 5};
    char msg[512] = "";
    int rc = daemon_start(d, msg, sizeof msg);
    if (rc) {
        fprintf(stderr, "fuzz_http: cannot start the daemon: %s\n", msg);
        return rc;
    }
    fuzz_http__g.port = http_port(d->http);
    return 0;
}

/* Sends a request built from its parts; the reply is in g.resp. Returns the status. */
static int fuzz_http__call(const char *method, const char *target, const char *ctype,
                           const char *body)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap = blen + 512;
    char *req = malloc(cap);
    if (!req)
        return 0;
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, target, ctype, blen, body ? body : "");
    fuzz_http__exchange((const uint8_t *)req, (size_t)n);
    free(req);
    int status = 0;
    sscanf(fuzz_http__g.resp, "HTTP/1.%*d %d", &status);
    return status;
}

/* The state of job id through the harness's connection; -1 when unknown. */
static int fuzz_http__job_state(int64_t id)
{
    struct store_job j;
    if (store_job_get(fuzz_http__g.s, id, &j) != 0)
        return -1;
    int st = (int)j.state;
    store_job_free(&j);
    return st;
}

/* Submits a job (its JSON) and waits for it to end; 0 when it succeeded. */
static int fuzz_http__seed_job(const char *json)
{
    if (fuzz_http__call("POST", "/v1/jobs", "application/json", json) / 100 != 2)
        return QN_EIO;
    int64_t id = ++fuzz_http__g.last_seed;
    double t0 = fuzz_http__now();
    while (fuzz_http__now() - t0 < FUZZ_HTTP__SEED_WAIT_S) {
        int st = fuzz_http__job_state(id);
        if (st == JOB_SUCCEEDED)
            return 0;
        if (st == JOB_FAILED || st == JOB_CANCELED)
            break;
        usleep(20000);
    }
    fprintf(stderr, "fuzz_http: seeded job %lld did not succeed\n", (long long)id);
    return QN_EIO;
}

static const char fuzz_http__device[] =
    "{\"name\": \"crn\", \"kind\": \"crn_relu\", \"drive\": \"dot\", \"params\": {\"kappa\": 0.01}}";
static const char fuzz_http__csv[] = "x1,x2,label\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n";
static const char fuzz_http__sweep[] =
    "{\"type\": \"sweep\", \"spec\": {\"device\": \"crn\", \"samples\": 64, "
    "\"ranges\": {\"u1\": [-3, 3]}}}";
static const char fuzz_http__fit[] =
    "{\"type\": \"fit\", \"spec\": {\"dataset\": {\"job\": 1}, \"hidden\": [8], "
    "\"epochs\": 3, \"patience\": 3}}";
static const char fuzz_http__train[] =
    "{\"type\": \"train\", \"spec\": {\"dataset\": \"xor\", \"epochs\": 1, \"batch\": 4, "
    "\"network\": [{\"devices\": 4, \"device\": \"crn\", \"surrogate\": {\"job\": 2}}, "
    "{\"devices\": 2, \"device\": {\"kind\": \"neuron\", \"params\": {\"activation\": \"identity\"}}}]}}";

/* Device 1, dataset 1, job 1 (sweep, dataset 2), job 2 (fit, surrogate 1), job 3 (model 1). */
static int fuzz_http__seed(void)
{
    if (fuzz_http__call("POST", "/v1/devices", "application/json", fuzz_http__device) != 201 ||
        fuzz_http__call("POST", "/v1/datasets?name=tiny", "text/csv", fuzz_http__csv) != 201) {
        fprintf(stderr, "fuzz_http: seeding failed: %s\n", fuzz_http__g.resp);
        return QN_EIO;
    }
    if (fuzz_http__seed_job(fuzz_http__sweep) || fuzz_http__seed_job(fuzz_http__fit) ||
        fuzz_http__seed_job(fuzz_http__train)) {
        fprintf(stderr, "fuzz_http: last reply: %s\n", fuzz_http__g.resp);
        return QN_EIO;
    }
    return 0;
}

/* Cancels every job newer than the seeded ones that has not ended. */
static void fuzz_http__cancel_new(void)
{
    sqlite3 *db = store_sqlite(fuzz_http__g.s);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT id FROM jobs WHERE id > ? AND state IN "
                           "('waiting', 'queued', 'running')",
                           -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(st, 1, fuzz_http__g.last_seed);
    int64_t ids[256];
    size_t n = 0;
    while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
        ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    for (size_t i = 0; i < n; i++) {
        enum store_job_state s;
        (void)workers_cancel(fuzz_http__g.d.routes.workers, fuzz_http__g.s, ids[i], &s);
    }
}

static void fuzz_http__rmdir(void)
{
    static const char *const files[] = {"fuzz.db", "fuzz.db-wal", "fuzz.db-shm",
                                        "fuzz.db-journal"};
    char p[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_http__g.dir, files[i]);
        unlink(p);
    }
    rmdir(fuzz_http__g.dir);
}

int fuzz_http_init(void)
{
    if (fuzz_http__g.up)
        return 0;
    signal(SIGPIPE, SIG_IGN);
    fuzz_http__g.resp = malloc(FUZZ_HTTP__RESP_MAX + 1);
    if (!fuzz_http__g.resp || fuzz_http__mkdir())
        return QN_EIO;
    char msg[STORE_MSG_MAX];
    if (store_open(fuzz_http__g.db, &fuzz_http__g.s, msg, sizeof msg)) { /* migrations */
        fprintf(stderr, "fuzz_http: %s: %s\n", fuzz_http__g.db, msg);
        fuzz_http__rmdir();
        return QN_EIO;
    }
    fuzz_http__g.up = 1;
    int rc = fuzz_http__start();
    if (!rc)
        rc = fuzz_http__seed();
    if (rc)
        fuzz_http_fini();
    return rc;
}

int fuzz_http_one(const uint8_t *data, size_t size)
{
    if (!fuzz_http__g.up)
        return 0;
    fuzz_http__exchange(data, size);
    fuzz_http__cancel_new();
    return 0;
}

/* Stops in daemon.h's order and removes the directory. */
void fuzz_http_fini(void)
{
    if (!fuzz_http__g.up)
        return;
    struct daemon *d = &fuzz_http__g.d;
    daemon_stop(d);
    store_close(fuzz_http__g.s);
    fuzz_http__g.s = NULL;
    fuzz_http__rmdir();
    free(fuzz_http__g.resp);
    fuzz_http__g.resp = NULL;
    fuzz_http__g.up = 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (fuzz_http_init() != 0)
        abort(); /* a fuzzer without its daemon would report nothing */
    atexit(fuzz_http_fini);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_http_one(data, size);
}
#endif
