/*
 * http.c: the HTTP layer of `qn serve` on libmicrohttpd (see http.h).
 *
 * MHD runs with its own threads (internal polling with epoll, optionally a
 * pool of them, measured choice in daemon.c) and calls http__access for each
 * request several times: first with the headers (we match the route, check
 * the token and the declared length, and may answer at once: 401, 404, 405,
 * 413), then with body chunks (appended to a buffer capped at max_body, or
 * written to an unlinked temporary file for uploads), then once more with
 * no data, when the handler runs. Everything a request allocates lives in
 * struct http_req and its arena, freed in http__completed, which also writes
 * the access log line and counts the reply for /metrics.
 *
 * Each connection is watched by the request-head deadline (head_deadline.h)
 * from MHD's connection notices: marked busy when its head reaches
 * http__access, idle again in http__completed, dropped in the CLOSED notice.
 *
 * A request borrows a store connection from the catalog's pool only while
 * its handler runs, so a thousand idle SSE streams hold no connection.
 * Tokens are checked by the auth callback of the config: this layer knows
 * no users table.
 */
#include "http.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cpu_budget.h"
#include "head_deadline.h"
#include "qn_err.h"
#include "qn_log.h"
#include "spec_dumps.h"

#define HTTP_MAX_ROUTES 128
#define HTTP_MAX_COUNTERS 512   /* (route, method, status) series for /metrics */
#define HTTP_MAX_HOOKS 8
#define HTTP_ARENA_BLOCK 4096
#define HTTP_MAX_COMPUTE 64

/* One series of the request counter. */
struct http_counter {
    int route;          /* index into routes, -1 = no route matched */
    char method[8];
    unsigned status;
    uint64_t n;         /* requests */
    double seconds;     /* summed handling time */
};

struct http_server {
    struct MHD_Daemon *mhd;
    struct http_config cfg;
    char *bind;                      /* owned copy of cfg.bind */
    char *tmpdir;                    /* directory for upload files (the database's) */
    int loopback;                    /* bound to a loopback address */
    unsigned port;                   /* bound port */
    atomic_int closing;              /* set by http_quiesce: new requests get 503 */
    int nice;                        /* the nice value MHD's threads take (cfg.nice applied) */
    const struct http_route *routes[HTTP_MAX_ROUTES]; /* borrowed */
    size_t n_routes;


    pthread_mutex_t count_mu;
    struct http_counter counters[HTTP_MAX_COUNTERS];
    size_t n_counters;
    uint64_t overflow;               /* requests not counted by series (table full) */

    pthread_t compute[HTTP_MAX_COMPUTE]; /* threads running HTTP_F_SLOW handlers */
    size_t n_compute;
    pthread_mutex_t cq_mu;
    pthread_cond_t cq_cv;
    struct http_req *cq_head, *cq_tail;  /* requests waiting for a compute thread */
    int cq_stop;                         /* 1: compute threads drain and exit */

    http_metrics_fn hooks[HTTP_MAX_HOOKS];
    void *hook_ctx[HTTP_MAX_HOOKS];
    size_t n_hooks;

    struct head_deadline *deadline;  /* the request-head deadline (NULL: none) */
    struct cpu_budget *budget;       /* the request threads' CPU while jobs run (NULL: none) */
};

struct http_arena {
    struct http_arena *next;
    size_t used, cap;
    max_align_t data[];
};

struct http_req {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method;              /* MHD's string (valid for the request) */
    const char *version;             /* MHD's string: "HTTP/1.1" */
    char *path;                      /* arena copy */
    int route;                       /* index, -1 when none matched */
    size_t n_params;
    const char *pname[HTTP_MAX_PARAMS]; /* point into the route's pattern... */
    size_t pname_len[HTTP_MAX_PARAMS];
    char *pval[HTTP_MAX_PARAMS];        /* arena copies */
    char *body;                      /* malloc'd, NUL-terminated */
    size_t body_len, body_cap;
    FILE *upload;                    /* HTTP_F_UPLOAD: unlinked temp file */
    size_t upload_len;
    int too_big;                     /* the body went past its limit */
    int io_error;                    /* the upload file could not be written */
    int io_errno;                    /* errno of that failure (ENOSPC: disk full) */
    int close;                       /* reply with Connection: close (bad framing) */
    unsigned cut;                    /* the connection was closed without a reply: the
                                        status the log gives it (408: a slow body), 0: none */
    json_t *json;
    struct user user;
    struct store *store;             /* borrowed from the pool during the handler */
    int replied;
    unsigned status;
    int offloaded;                   /* handed to a compute thread, connection suspended */
    int paced;                       /* came in under the CPU budget (or waits to) */
    int waited;                      /* it waited to come in: booked is what was booked */
    double booked;                   /* CPU seconds booked for it as it came in (cpu_budget.h) */
    struct MHD_Response *pending;    /* the reply a compute thread made, queued on resume */
    struct http_req *cq_next;
    struct timespec t0;
    struct http_arena *arena;
    size_t arena_total;
};

/* ---- small helpers ---------------------------------------------------------- */

static double http__since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

void *http_req_alloc(struct http_req *req, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (n == 0 || n > HTTP_ARENA_MAX || req->arena_total > HTTP_ARENA_MAX - n)
        return NULL;
    struct http_arena *a = req->arena;
    if (!a || a->cap - a->used < n) {
        size_t cap = n > HTTP_ARENA_BLOCK ? n : HTTP_ARENA_BLOCK;
        a = malloc(sizeof *a + cap);
        if (!a)
            return NULL;
        a->next = req->arena;
        a->used = 0;
        a->cap = cap;
        req->arena = a;
    }
    void *p = (char *)a->data + a->used;
    a->used += n;
    req->arena_total += n;
    return p;
}

static char *http__strdup(struct http_req *req, const char *s, size_t len)
{
    char *p = http_req_alloc(req, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

unsigned http_status_for(int err) { return qn_err_status(err); }

/* ---- replies ------------------------------------------------------------------ */

int http_reply_response(struct http_req *req, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return QN_ENOMEM;
    if (req->replied) {
        MHD_destroy_response(resp);
        return QN_EINVAL;
    }
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (req->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (req->offloaded) { /* off MHD's threads: queued when the connection resumes */
        req->pending = resp;
        req->replied = 1;
        req->status = status;
        return 0;
    }
    enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (r != MHD_YES)
        return QN_EIO;
    req->replied = 1;
    req->status = status;
    return 0;
}

/* Adds one header of a response to the response cls (MHD_get_response_headers). */
static enum MHD_Result http__copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    (void)kind;
    MHD_add_response_header(cls, key, value);
    return MHD_YES;
}

int http_reply_stream(struct http_req *req, unsigned status, struct MHD_Response *resp)
{
    if (!resp || strcmp(req->method, "HEAD") != 0)
        return http_reply_response(req, status, resp);
    struct MHD_Response *head = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (head)
        MHD_get_response_headers(resp, http__copy_header, head);
    MHD_destroy_response(resp);
    return http_reply_response(req, status, head);
}

int http_reply_text(struct http_req *req, unsigned status, const char *content_type,
                    const char *text, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return QN_ENOMEM;
    MHD_add_response_header(resp, "Content-Type", content_type);
    return http_reply_response(req, status, resp);
}

/* An application/json response that owns `text` (json_dumps output), its NUL
 * replaced by a newline so curl users get one at the end (NULL: out of memory,
 * `text` freed). */
static struct MHD_Response *http__json_text_resp(char *text)
{
    size_t len = strlen(text);
    text[len] = '\n';
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len + 1, text, free);
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return resp;
}

int http_reply_json_text(struct http_req *req, unsigned status, char *text, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, text, free);
    if (!resp) {
        free(text);
        return QN_ENOMEM;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return http_reply_response(req, status, resp);
}

/* The last resort when an error body cannot be built: QN_ENOMEM's row, formatted
 * on the stack. */
static int http__reply_oom(struct http_req *req)
{
    char text[160];
    int n = snprintf(text, sizeof text,
                     "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"path\":null}}",
                     qn_err_wire(QN_ENOMEM), qn_err_msg(QN_ENOMEM));
    return http_reply_text(req, qn_err_status(QN_ENOMEM), "application/json", text, (size_t)n);
}

int http_reply_json(struct http_req *req, unsigned status, json_t *body)
{
    /* JSON_ENSURE_ASCII: any byte sequence a handler echoes stays valid JSON text. */
    char *text = body ? spec_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    if (!text)
        return http__reply_oom(req);
    struct MHD_Response *resp = http__json_text_resp(text);
    if (!resp)
        return QN_ENOMEM;
    return http_reply_response(req, status, resp);
}

/* A JSON error response {"error":{"code","message","path"}} (NULL: out of memory). */
static struct MHD_Response *http__error_resp(const char *code, const char *path, const char *msg)
{
    json_t *body = json_pack("{s{ss ss so}}", "error", "code", code, "message", msg, "path",
                             path ? json_string(path) : json_null());
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    return text ? http__json_text_resp(text) : NULL;
}

/* The error reply of `code` (its row's status and wire name) with one extra
 * header (hname NULL: none). */
static int http__verr(struct http_req *req, int code, const char *path, const char *hname,
                      const char *hval, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct MHD_Response *resp = http__error_resp(qn_err_wire(code), path, msg);
    if (!resp)
        return http__reply_oom(req);
    if (hname)
        MHD_add_response_header(resp, hname, hval);
    return http_reply_response(req, qn_err_status(code), resp);
}

int http_reply_err(struct http_req *req, int code, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = http__verr(req, code, path, NULL, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* http_reply_err with one extra header (the 401's WWW-Authenticate, the 405's Allow). */
static int http__reply_err_hdr(struct http_req *req, int code, const char *hname, const char *hval,
                               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static int http__reply_err_hdr(struct http_req *req, int code, const char *hname, const char *hval,
                               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = http__verr(req, code, NULL, hname, hval, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- accessors ---------------------------------------------------------------- */

void *http_req_app(struct http_req *req) { return req->srv->cfg.app; }

struct catalog *http_req_catalog(struct http_req *req) { return req->srv->cfg.catalog; }
struct http_server *http_req_server(struct http_req *req) { return req->srv; }
const struct user *http_req_user(const struct http_req *req) { return &req->user; }
json_t *http_req_json(const struct http_req *req) { return req->json; }
struct MHD_Connection *http_req_connection(struct http_req *req) { return req->conn; }

int http_req_gone(struct http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
        return 1;
    char c;
    /* Readable with nothing to read: the peer's FIN (a pipelined request is data). */
    return (p.revents & POLLIN) && recv(p.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

const char *http_req_param(const struct http_req *req, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < req->n_params; i++)
        if (req->pname_len[i] == len && memcmp(req->pname[i], name, len) == 0)
            return req->pval[i];
    return NULL;
}

const char *http_req_query(struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

FILE *http_req_upload(const struct http_req *req, size_t *size)
{
    if (size)
        *size = req->upload_len;
    return req->upload;
}

struct store *http_req_store(struct http_req *req)
{
    if (!req->store && (req->store = catalog_acquire(req->srv->cfg.catalog)))
        catalog_set_owner(req->store, req->user.name); /* names resolve within the user's */
    return req->store;
}

int http_req_store_or_reply(struct http_req *req, struct store **s)
{
    *s = http_req_store(req);
    if (*s)
        return 0;
    http_reply_err(req, QN_EDBDOWN, NULL, "the database cannot be opened");
    return QN_EDBDOWN;
}

/* Parses a decimal integer in [lo, hi] (lo >= 0); 0 or QN_EINVAL. Digits
 * beyond INT64_MAX are refused before they overflow. */
static int http__parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s || strlen(s) > 19)
        return QN_EINVAL;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - (*p - '0')) / 10)
            return QN_EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return QN_EINVAL;
    *out = v;
    return 0;
}

int http_req_param_id(struct http_req *req, const char *name, const char *what, int64_t *out)
{
    const char *v = http_req_param(req, name);
    if (v && http__parse_i64(v, 1, INT64_MAX, out) == 0)
        return 0;
    http_reply_err(req, QN_ENOTFOUND, NULL, "no such %s: '%s'", what, v ? v : "");
    return QN_ENOTFOUND;
}

int http_req_page(struct http_req *req, size_t *limit, int64_t *after)
{
    const char *l = http_req_query(req, "limit"), *c = http_req_query(req, "cursor");
    int64_t v = HTTP_LIST_LIMIT_DEFAULT, a = 0;
    if (l && http__parse_i64(l, 1, HTTP_LIST_LIMIT_MAX, &v)) {
        http_reply_err(req, QN_EINVAL, "?limit", "limit must be an integer from 1 to %d",
                       HTTP_LIST_LIMIT_MAX);
        return QN_EINVAL;
    }
    if (c && *c && http__parse_i64(c, 0, INT64_MAX, &a)) {
        http_reply_err(req, QN_EINVAL, "?cursor",
                       "cursor must be the \"next\" value of a previous page");
        return QN_EINVAL;
    }
    *limit = (size_t)v;
    *after = a;
    return 0;
}

/* ---- routes ------------------------------------------------------------------- */

int http_routes_add(struct http_server *srv, const struct http_route *routes, size_t n)
{
    if (srv->mhd || n > HTTP_MAX_ROUTES - srv->n_routes)
        return QN_ERANGE;
    for (size_t i = 0; i < n; i++)
        srv->routes[srv->n_routes++] = &routes[i];
    return 0;
}

size_t http_route_count(const struct http_server *srv) { return srv->n_routes; }

const struct http_route *http_route_at(const struct http_server *srv, size_t i)
{
    return i < srv->n_routes ? srv->routes[i] : NULL;
}

/* Matches path against pattern; on success records the placeholders in req. */
static int http__match(struct http_req *req, const char *pattern, const char *path)
{
    size_t np = 0;
    const char *pp = pattern, *up = path;
    while (*pp && *up) {
        if (*pp != '/' || *up != '/')
            return 0;
        pp++, up++;
        size_t pl = strcspn(pp, "/"), ul = strcspn(up, "/");
        if (pl >= 2 && pp[0] == '{' && pp[pl - 1] == '}') {
            if (ul == 0 || np == HTTP_MAX_PARAMS)
                return 0;
            req->pname[np] = pp + 1;
            req->pname_len[np] = pl - 2;
            req->pval[np] = http__strdup(req, up, ul);
            if (!req->pval[np])
                return 0;
            np++;
        } else if (pl != ul || memcmp(pp, up, pl) != 0) {
            return 0;
        }
        pp += pl, up += ul;
    }
    if (*pp || *up)
        return 0;
    req->n_params = np;
    return 1;
}

/* HEAD is served by the GET route (MHD drops the body). */
static int http__method_is(const char *route_m, const char *m)
{
    return strcmp(route_m, m) == 0 || (strcmp(m, "HEAD") == 0 && strcmp(route_m, "GET") == 0);
}

/* Finds the route; 0, or 404/405 replied (returns 1). */
static int http__route(struct http_req *req)
{
    struct http_server *srv = req->srv;
    char allow[64] = "";
    for (size_t i = 0; i < srv->n_routes; i++) {
        const struct http_route *r = srv->routes[i];
        if (!http__match(req, r->pattern, req->path))
            continue;
        if (http__method_is(r->method, req->method)) {
            req->route = (int)i;
            return 0;
        }
        if (!strstr(allow, r->method) && strlen(allow) + strlen(r->method) + 3 < sizeof allow) {
            if (allow[0])
                strcat(allow, ", ");
            strcat(allow, r->method);
        }
    }
    req->n_params = 0;
    if (!allow[0]) {
        http_reply_err(req, QN_ENOTFOUND, NULL, "no route for %s %s", req->method, req->path);
        return 1;
    }
    http__reply_err_hdr(req, QN_EMETHOD, "Allow", allow, "method %s not allowed on %s; allowed: %s",
                        req->method, req->path, allow);
    return 1;
}

/* ---- request life ----------------------------------------------------------------- */

/* The config's auth callback on this request's Authorization header; with
 * none configured everyone is the built-in admin "local". */
static int http__authenticate(struct http_req *req, char *msg, size_t cap)
{
    const struct http_config *cfg = &req->srv->cfg;
    if (!cfg->auth) {
        memset(&req->user, 0, sizeof req->user);
        snprintf(req->user.name, sizeof req->user.name, "local");
        req->user.admin = 1;
        return 0;
    }
    return cfg->auth(cfg->auth_ctx, http_req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
                     req->srv->loopback, &req->user, msg, cap);
}

/* Checks the bearer token for a route that needs one; 0, or replied (1). */
static int http__auth(struct http_req *req, unsigned flags)
{
    if (flags & HTTP_F_PUBLIC) {
        snprintf(req->user.name, sizeof req->user.name, "anonymous");
        return 0;
    }
    char msg[256] = "";
    int rc = http__authenticate(req, msg, sizeof msg);
    if (rc == QN_EAUTH) {
        http__reply_err_hdr(req, QN_EAUTH, "WWW-Authenticate", "Bearer realm=\"quasineuron\"", "%s",
                            msg);
        return 1;
    }
    if (rc) {
        http_reply_err(req, rc, NULL, "cannot check the token: %s", msg[0] ? msg : qn_err_msg(rc));
        return 1;
    }
    if ((flags & HTTP_F_ADMIN) && !req->user.admin) {
        http_reply_err(req, QN_EFORBID, NULL, "only an admin may do this");
        return 1;
    }
    return 0;
}

/* The body limit of the request's route. */
static size_t http__limit(const struct http_req *req)
{
    const struct http_route *r = req->srv->routes[req->route];
    return (r->flags & HTTP_F_UPLOAD) ? req->srv->cfg.max_upload : req->srv->cfg.max_body;
}

static int http__reply_too_big(struct http_req *req)
{
    size_t lim = http__limit(req);
    return http_reply_err(
        req, QN_ETOOLARGE, NULL, "the body is larger than the limit of %zu bytes (%s)", lim,
        (req->srv->routes[req->route]->flags & HTTP_F_UPLOAD) ? "--max-upload" : "--max-body");
}

/* An I/O failure of the body's file: 507 disk_full when the disk is full
 * (ENOSPC, EDQUOT), else 500 io_error; what failed, and why. */
static int http__reply_io(struct http_req *req, int err, const char *what)
{
    if (err == ENOSPC || err == EDQUOT)
        return http_reply_err(req, QN_EFULL, NULL, "the disk is full: %s (%s has no room)", what,
                              req->srv->tmpdir);
    return http_reply_err(req, QN_EIO, NULL, "%s: %s", what, err ? strerror(err) : "I/O error");
}

/* Opens the unlinked temporary file an upload streams into. */
static int http__open_upload(struct http_req *req)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.qn-upload-XXXXXX", req->srv->tmpdir);
    int fd = mkstemp(path);
    if (fd < 0)
        return QN_EIO;
    unlink(path);
    req->upload = fdopen(fd, "w+b");
    if (!req->upload) {
        close(fd);
        return QN_EIO;
    }
    return 0;
}

/* Adds the bytes of one key and value to the sum in cls (MHD's iterator). */
static enum MHD_Result http__sum_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) + 1 : 0);
    return MHD_YES;
}

/* Bytes of the connection's values of one kind (query arguments, headers). */
static size_t http__values_size(struct MHD_Connection *conn, enum MHD_ValueKind kind)
{
    size_t n = 0;
    MHD_get_connection_values(conn, kind, http__sum_kv, &n);
    return n;
}

/*
 * Request line and headers within our limits, else 414 or 431 with a JSON
 * body; 0 to go on, 1 replied. MHD's own buffer (HTTP_MHD_MEMORY) is a few
 * times larger, so requests between the two sizes get our JSON answer, not
 * MHD's HTML one; only beyond it does MHD answer (and close) by itself.
 */
static int http__check_head(struct http_req *req)
{
    size_t uri = strlen(req->path) + http__values_size(req->conn, MHD_GET_ARGUMENT_KIND);
    if (uri > HTTP_MAX_URI) {
        http_reply_err(req, QN_EURI, "url",
                       "the request target has %zu bytes; at most %d are served", uri,
                       HTTP_MAX_URI);
        return 1;
    }
    size_t head = http__values_size(req->conn, MHD_HEADER_KIND);
    if (head > HTTP_MAX_HEADERS) {
        http_reply_err(req, QN_EHEADERS, "headers",
                       "the request headers have %zu bytes; at most %d are served", head,
                       HTTP_MAX_HEADERS);
        return 1;
    }
    return 0;
}

/* ---- where a request comes from: Host, Origin, Content-Type ------------------------ */

/* Whether the n bytes at s spell word (ASCII case-insensitive). */
static int http__is_word(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/*
 * Whether a Host header names this machine's loopback: "localhost" or a
 * loopback IP literal ("127.0.0.1", "[::1]"), with any port. A name an
 * attacker's DNS points at 127.0.0.1 (DNS rebinding) is none of these.
 */
static int http__host_is_loopback(const char *host)
{
    char lit[INET6_ADDRSTRLEN + 2];
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end || (end[1] && end[1] != ':'))
            return 0;
        n = (size_t)(end - host - 1);
        host++;
    } else {
        n = strcspn(host, ":");
        if (host[n] && strspn(host + n + 1, "0123456789") != strlen(host + n + 1))
            return 0;
    }
    if (http__is_word(host, n, "localhost"))
        return 1;
    if (n == 0 || n >= sizeof lit)
        return 0;
    memcpy(lit, host, n);
    lit[n] = '\0';
    return http_is_loopback(lit);
}

/* Whether the method changes something (anything but GET, HEAD, OPTIONS). */
static int http__is_write(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
           strcmp(method, "OPTIONS") != 0;
}

/*
 * Whether a write comes from another site's page: a browser says so in
 * Sec-Fetch-Site (anything but "same-origin" or "none", the latter being a
 * user's own navigation) or in an Origin whose host and port are not the
 * Host the request was sent to. Clients that are not browsers send neither.
 */
static int http__is_cross_origin(struct http_req *req, const char *host)
{
    const char *site = http_req_header(req, "Sec-Fetch-Site");
    if (site && strcasecmp(site, "same-origin") != 0 && strcasecmp(site, "none") != 0)
        return 1;
    const char *origin = http_req_header(req, "Origin");
    if (!origin)
        return 0;
    const char *sep = strstr(origin, "://");
    return !sep || !host || strcasecmp(sep + 3, host) != 0;
}

/*
 * A daemon on loopback answers only requests addressed to loopback (Host),
 * and no daemon takes a write from another site's page; HTTP/1.1 requires
 * Host. 0 to go on, 1 replied (400 or 403, naming the header).
 */
static int http__check_origin(struct http_req *req)
{
    const char *host = http_req_header(req, MHD_HTTP_HEADER_HOST);
    if (!host && req->version && strcmp(req->version, MHD_HTTP_VERSION_1_0) != 0) {
        http_reply_err(req, QN_EINVAL, "Host", "an HTTP/1.1 request needs a Host header");
        return 1;
    }
    if (host && req->srv->loopback && !http__host_is_loopback(host)) {
        http_reply_err(req, QN_EFORBID, "Host",
                       "this daemon listens on loopback and answers requests for localhost "
                       "or a loopback address only, not for '%s'", host);
        return 1;
    }
    if (http__is_write(req->method) && http__is_cross_origin(req, host)) {
        http_reply_err(req, QN_EFORBID, "Origin",
                       "a write from another site's page is refused (Origin '%s', "
                       "Sec-Fetch-Site '%s')",
                       http_req_header(req, "Origin") ? http_req_header(req, "Origin") : "",
                       http_req_header(req, "Sec-Fetch-Site")
                           ? http_req_header(req, "Sec-Fetch-Site") : "");
        return 1;
    }
    return 0;
}

/* Counts the headers named key and whether their values differ (MHD's iterator). */
struct http__same {
    const char *key;
    const char *first;
    int n, differ;
};

static enum MHD_Result http__same_kv(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct http__same *h = cls;
    if (strcasecmp(key, h->key) != 0)
        return MHD_YES;
    if (h->n++ == 0)
        h->first = value;
    else if (!value || !h->first || strcmp(value, h->first) != 0)
        h->differ = 1;
    return MHD_YES;
}

/*
 * How the request is framed, before its body is read: one Content-Length
 * (two that differ are how requests are smuggled), no transfer coding but
 * plain "chunked" (MHD decodes no other, and waited for a body it could not
 * read: "gzip, chunked" hung for the whole timeout), not both, and no
 * control character in the path (a %00 would have cut it short). 0 to go
 * on, 1 replied 400 (and the connection closes).
 */
static int http__check_framing(struct http_req *req)
{
    struct http__same cl = {MHD_HTTP_HEADER_CONTENT_LENGTH, NULL, 0, 0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, http__same_kv, &cl);
    const char *te = http_req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *why = NULL;
    if (cl.differ)
        why = "two Content-Length headers that differ";
    else if (te && strcasecmp(te, "chunked") != 0)
        why = "a Transfer-Encoding other than chunked (no other coding is accepted)";
    else if (te && cl.n)
        why = "both Transfer-Encoding and Content-Length";
    for (const char *p = req->path; !why && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            why = "a control character (%00-%1F, %7F) in the path";
    if (!why)
        return 0;
    req->close = 1;
    http_reply_err(req, QN_EINVAL, strstr(why, "path") ? "url" : "headers", "the request has %s",
                   why);
    return 1;
}

/* Whether a Content-Type's media type (before any ';') is one of types. */
static int http__media_is(const char *ct, const char *const *types)
{
    size_t n = strcspn(ct, "; \t");
    for (; *types; types++)
        if (http__is_word(ct, n, *types))
            return 1;
    return 0;
}

/*
 * A body's declared type: application/json for a JSON route, a file type
 * for an upload. Neither accepts the types a foreign page may send without
 * asking first (text/plain, forms). 0 to go on, 1 replied 415.
 */
static int http__check_media(struct http_req *req, unsigned flags)
{
    static const char *const json[] = {"application/json", NULL};
    static const char *const files[] = {"text/csv", "application/octet-stream",
                                        "application/gzip", "application/x-gzip", NULL};
    if (!(flags & (HTTP_F_JSON | HTTP_F_UPLOAD)))
        return 0;
    const char *ct = http_req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *const *ok = (flags & HTTP_F_JSON) ? json : files;
    if (ct && http__media_is(ct, ok))
        return 0;
    http_reply_err(req, QN_EMEDIA, "Content-Type", "the body must be %s, not %s",
                   (flags & HTTP_F_JSON)
                       ? "JSON (Content-Type: application/json)"
                       : "a file (Content-Type: text/csv, application/octet-stream or "
                         "application/gzip)",
                   ct ? ct : "a body without a Content-Type");
    return 1;
}

/* The first call: size of the head, where it comes from, route, auth, body
 * type, declared length. 0 to go on reading; 1 replied. */
static int http__begin(struct http_req *req)
{
    if (http__check_head(req) || http__check_framing(req) || http__check_origin(req) ||
        http__route(req))
        return 1;
    const struct http_route *r = req->srv->routes[req->route];
    if (http__auth(req, r->flags) || http__check_media(req, r->flags))
        return 1;
    const char *cl = http_req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t len = 0;
    if (cl && http__parse_i64(cl, 0, INT64_MAX, &len) == 0 && (uint64_t)len > http__limit(req)) {
        http__reply_too_big(req);
        return 1;
    }
    if ((r->flags & HTTP_F_UPLOAD) && http__open_upload(req)) {
        http__reply_io(req, errno, "cannot create the upload's temporary file");
        return 1;
    }
    return 0;
}

/* Takes one chunk of the body. */
static void http__take(struct http_req *req, const char *data, size_t n)
{
    size_t lim = http__limit(req);
    size_t have = req->upload ? req->upload_len : req->body_len;
    if (req->too_big || req->io_error || n > lim - have) {
        req->too_big = req->too_big || (!req->io_error && n > lim - have);
        return;
    }
    if (req->upload) {
        if (fwrite(data, 1, n, req->upload) != n)
            req->io_error = 1, req->io_errno = errno;
        req->upload_len += n;
        return;
    }
    if (req->body_len + n + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + n + 1)
            cap *= 2;
        char *b = realloc(req->body, cap);
        if (!b) {
            req->io_error = 1, req->io_errno = ENOMEM;
            return;
        }
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
}

/*
 * The body rate floor: once body_grace_s have passed since the head, the
 * body must have arrived at min_body_rate bytes/s at least (a slow-body
 * attack sends a byte now and then, each one renewing MHD's idle timeout).
 * Checked as each chunk arrives; 1 when the body is too slow. libmicrohttpd
 * 0.9.75 queues no reply before the whole body is in, so the caller closes
 * the connection without one (so no JSON error either); the access log
 * says 408.
 */
static int http__too_slow(struct http_req *req)
{
    const struct http_config *cfg = &req->srv->cfg;
    size_t have = req->upload ? req->upload_len : req->body_len;
    if (!cfg->min_body_rate ||
        http__since(&req->t0) <= cfg->body_grace_s + (double)have / cfg->min_body_rate)
        return 0;
    req->cut = 408; /* Request Timeout, for the log only */
    return 1;
}

/* The deepest nesting of [ and { in JSON text (strings skipped). */
static size_t http__json_depth(const char *s, size_t n)
{
    size_t depth = 0, max = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth) {
            depth--;
        }
    }
    return max;
}

/* Parses the body of an HTTP_F_JSON route; 0, or replied (1). */
static int http__parse_json(struct http_req *req)
{
    if (req->body_len == 0) {
        http_reply_err(req, QN_EJSON, "", "the body must be a JSON object");
        return 1;
    }
    if (http__json_depth(req->body, req->body_len) > HTTP_JSON_DEPTH) {
        http_reply_err(req, QN_EJSON, "", "JSON nested deeper than %d levels", HTTP_JSON_DEPTH);
        return 1;
    }
    json_error_t e;
    req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!req->json) {
        http_reply_err(req, QN_EJSON, "", "invalid JSON at line %d, column %d: %s", e.line,
                       e.column, e.text);
        return 1;
    }
    if (!json_is_object(req->json)) {
        http_reply_err(req, QN_EJSON, "", "the body must be a JSON object");
        return 1;
    }
    return 0;
}

static void http__run(struct http_req *req);

/*
 * Suspends the connection and queues the request for a compute thread; 0,
 * or QN_EBUSY when the compute threads are stopping (nothing suspended).
 * http_destroy joins the compute threads before MHD_stop_daemon, and MHD
 * aborts the process (MHD_PANIC) when it stops with a connection still
 * suspended: a request offloaded once they had left, from a keep-alive
 * connection the quiesced daemon still serves, was never resumed. So the
 * stop flag is tested and the connection suspended under cq_mu, the lock
 * http_destroy takes to set it: either a compute thread will take this
 * request (and resume it), or it is not suspended at all.
 */
static int http__offload(struct http_req *req)
{
    struct http_server *srv = req->srv;
    pthread_mutex_lock(&srv->cq_mu);
    if (srv->cq_stop) {
        pthread_mutex_unlock(&srv->cq_mu);
        return QN_EBUSY;
    }
    req->offloaded = 1;
    MHD_suspend_connection(req->conn);
    if (srv->cq_tail)
        srv->cq_tail->cq_next = req;
    else
        srv->cq_head = req;
    srv->cq_tail = req;
    pthread_cond_signal(&srv->cq_cv);
    pthread_mutex_unlock(&srv->cq_mu);
    return 0;
}

/* A compute thread: runs queued handlers; when stopping, answers the rest 503. */
static void *http__compute(void *arg)
{
    struct http_server *srv = arg;
    pthread_mutex_lock(&srv->cq_mu);
    for (;;) {
        while (!srv->cq_head && !srv->cq_stop)
            pthread_cond_wait(&srv->cq_cv, &srv->cq_mu);
        struct http_req *req = srv->cq_head;
        if (!req)
            break;
        srv->cq_head = req->cq_next;
        if (!srv->cq_head)
            srv->cq_tail = NULL;
        int stop = srv->cq_stop;
        pthread_mutex_unlock(&srv->cq_mu);
        if (stop)
            http_reply_err(req, QN_EBUSY, NULL, "the daemon is stopping");
        else
            http__run(req);
        MHD_resume_connection(req->conn);
        pthread_mutex_lock(&srv->cq_mu);
    }
    pthread_mutex_unlock(&srv->cq_mu);
    return NULL;
}

/* Queues the reply a compute thread left (the connection has resumed). */
static void http__queue_pending(struct http_req *req)
{
    struct MHD_Response *resp = req->pending;
    req->pending = NULL;
    if (resp) {
        if (MHD_queue_response(req->conn, req->status, resp) != MHD_YES)
            req->status = 500;
        MHD_destroy_response(resp);
    }
}

/* The CPU budget's hold and release of a waiting request (cpu_budget.h). */
static void http__hold(void *req) { MHD_suspend_connection(((struct http_req *)req)->conn); }
static void http__release(void *item, double booked)
{
    struct http_req *req = item;
    req->booked = booked;
    req->waited = 1;
    MHD_resume_connection(req->conn);
}

/* Before the handler: 1 when the request waits to come in under the CPU
 * budget (its connection suspended until then), 0 when it runs now. */
static int http__pace(struct http_req *req)
{
    req->paced = 1;
    return cpu_budget_admit(req->srv->budget, req, http__hold);
}

/* The last call: limits, body parsing, the handler. */
static void http__finish(struct http_req *req)
{
    const struct http_route *r = req->srv->routes[req->route];
    if (req->too_big) {
        http__reply_too_big(req);
        return;
    }
    if (req->io_error || (req->upload && fflush(req->upload) != 0 && (req->io_errno = errno))) {
        http__reply_io(req, req->io_errno, "cannot store the body");
        return;
    }
    if ((r->flags & HTTP_F_JSON) && http__parse_json(req))
        return;
    if (req->upload && fseek(req->upload, 0, SEEK_SET) != 0) {
        http__reply_io(req, errno, "cannot read the upload back");
        return;
    }
    if ((r->flags & HTTP_F_SLOW) && req->srv->n_compute) {
        if (http__offload(req) != 0)
            http_reply_err(req, QN_EBUSY, NULL, "the daemon is stopping");
        return;
    }
    http__run(req);
}

/* Runs the handler and makes sure there is a reply. */
static void http__run(struct http_req *req)
{
    int rc = req->srv->routes[req->route]->handler(req);
    catalog_release(req->srv->cfg.catalog, req->store);
    req->store = NULL;
    /* The handler contract (http.h): a code is returned only by a handler that
     * has not replied; after a reply it returns 0. */
    assert(rc == 0 || !req->replied);
    if (!req->replied) {
        if (rc == 0)
            rc = QN_EINVAL; /* a handler that forgot to reply: a bug, but answer anyway */
        http_reply_err(req, rc, NULL, "%s", qn_err_msg(rc));
    }
}

/* The head-deadline entry of a connection (MHD's socket context), NULL when none. */
static struct head_deadline_conn *http__watched(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result http__access(void *cls, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version,
                                    const char *upload_data, size_t *upload_data_size,
                                    void **con_cls)
{
    struct http_server *srv = cls;
    struct http_req *req = *con_cls;
    if (!req) {
        head_deadline_busy(srv->deadline, http__watched(conn), 1);
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->version = version;
        req->route = -1;
        clock_gettime(CLOCK_MONOTONIC, &req->t0);
        req->path = http__strdup(req, url, strlen(url));
        if (!req->path) {
            http_reply_err(req, QN_ENOMEM, NULL, "out of memory");
            return MHD_YES;
        }
        if (atomic_load(&srv->closing))
            http_reply_err(req, QN_EUNAVAIL, NULL, "the daemon is stopping");
        else
            http__begin(req);
        return MHD_YES;
    }
    if (req->offloaded) { /* resumed after a compute thread replied */
        http__queue_pending(req);
        return MHD_YES;
    }
    if (req->replied) { /* answered early: drop the rest of the body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        http__take(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return http__too_slow(req) ? MHD_NO : MHD_YES; /* MHD_NO closes the connection */
    }
    if (!req->paced && http__pace(req)) /* waits to come in: called again then */
        return MHD_YES;
    if (req->waited) { /* it waited: this thread runs it now */
        req->waited = 0;
        cpu_budget_ran(srv->budget, req->booked);
    }
    http__finish(req);
    return MHD_YES;
}

/* Counts the finished request for /metrics. */
static void http__count(struct http_server *srv, const struct http_req *req, double sec)
{
    pthread_mutex_lock(&srv->count_mu);
    size_t i = 0;
    for (; i < srv->n_counters; i++) {
        struct http_counter *c = &srv->counters[i];
        if (c->route == req->route && c->status == req->status &&
            strncmp(c->method, req->method, sizeof c->method - 1) == 0)
            break;
    }
    if (i == srv->n_counters && i < HTTP_MAX_COUNTERS) {
        struct http_counter *c = &srv->counters[srv->n_counters++];
        c->route = req->route;
        snprintf(c->method, sizeof c->method, "%s", req->method);
        c->status = req->status;
    }
    if (i < srv->n_counters) {
        srv->counters[i].n++;
        srv->counters[i].seconds += sec;
    } else {
        srv->overflow++;
    }
    pthread_mutex_unlock(&srv->count_mu);
}

/* The client's address as text into addr (INET6_ADDRSTRLEN bytes; "-" when unknown). */
static void http__client_addr(struct MHD_Connection *conn, char *addr)
{
    strcpy(addr, "-");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr,
                      INET6_ADDRSTRLEN);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                      addr, INET6_ADDRSTRLEN);
    }
}

/* One access-log line: address, user, method, path, status, milliseconds. */
static void http__log(const struct http_req *req, double sec)
{
    char addr[INET6_ADDRSTRLEN];
    http__client_addr(req->conn, addr);
    /* The path is decoded (%0a is a newline) and the method is the client's:
     * every field is escaped, so a request cannot forge a line or drive the
     * terminal. Paths longer than the line are cut. */
    char user[QN_LOG_ESCAPED_MAX(sizeof req->user.name)], method[64], path[1024], line[1280];
    qn_log_escape(user, sizeof user, req->user.name[0] ? req->user.name : "-");
    qn_log_escape(method, sizeof method, req->method);
    qn_log_escape(path, sizeof path, req->path ? req->path : "?");
    int n = snprintf(line, sizeof line, "qn: http %s %s %s %s %u %.1fms\n", addr, user, method,
                     path, req->status, sec * 1e3);
    if (n > 0) {
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        line[len - 1] = '\n';
        ssize_t w = write(STDERR_FILENO, line, len); /* one write: lines never interleave */
        (void)w;
    }
}

static void http__free_req(struct http_req *req)
{
    if (req->pending)
        MHD_destroy_response(req->pending);
    catalog_release(req->srv->cfg.catalog, req->store);
    json_decref(req->json);
    free(req->body);
    if (req->upload)
        fclose(req->upload);
    while (req->arena) {
        struct http_arena *next = req->arena->next;
        free(req->arena);
        req->arena = next;
    }
    free(req);
}

static void http__completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct http_server *srv = cls;
    head_deadline_busy(srv->deadline, http__watched(conn), 0); /* the next head is due */
    struct http_req *req = *con_cls;
    if (!req)
        return;
    double sec = http__since(&req->t0);
    if (!req->replied) /* cut by us (a slow body), or the client went away before an answer */
        req->status = req->cut ? req->cut : 499;
    http__count(req->srv, req, sec);
    http__log(req, sec);
    http__free_req(req);
    *con_cls = NULL;
}

/* ---- /metrics ------------------------------------------------------------------ */

void http_set_busy(struct http_server *srv, size_t (*busy)(void *ctx), void *ctx)
{
    if (srv->budget)
        cpu_budget_set_busy(srv->budget, busy, ctx);
}

int http_metrics_add(struct http_server *srv, http_metrics_fn fn, void *ctx)
{
    if (srv->n_hooks == HTTP_MAX_HOOKS)
        return QN_ERANGE;
    srv->hooks[srv->n_hooks] = fn;
    srv->hook_ctx[srv->n_hooks++] = ctx;
    return 0;
}

void http_metrics_write(struct http_server *srv, FILE *out)
{
    fputs("# HELP qn_http_requests_total HTTP requests by route pattern, method and status.\n"
          "# TYPE qn_http_requests_total counter\n",
          out);
    pthread_mutex_lock(&srv->count_mu);
    for (size_t i = 0; i < srv->n_counters; i++) {
        const struct http_counter *c = &srv->counters[i];
        fprintf(out, "qn_http_requests_total{route=\"%s\",method=\"%s\",status=\"%u\"} %" PRIu64 "\n",
                c->route >= 0 ? srv->routes[c->route]->pattern : "unmatched", c->method,
                c->status, c->n);
    }
    fputs("# HELP qn_http_request_seconds_sum Time spent answering, by route pattern.\n"
          "# TYPE qn_http_request_seconds_sum counter\n",
          out);
    for (size_t i = 0; i < srv->n_counters; i++) {
        const struct http_counter *c = &srv->counters[i];
        fprintf(out, "qn_http_request_seconds_sum{route=\"%s\",method=\"%s\",status=\"%u\"} %.6f\n",
                c->route >= 0 ? srv->routes[c->route]->pattern : "unmatched", c->method,
                c->status, c->seconds);
    }
    uint64_t overflow = srv->overflow;
    pthread_mutex_unlock(&srv->count_mu);
    if (overflow)
        fprintf(out, "qn_http_requests_uncounted_total %" PRIu64 "\n", overflow);
    fprintf(out, "# HELP qn_http_head_timeouts_total Connections closed because a request head "
                 "did not arrive within --header-timeout.\n"
                 "# TYPE qn_http_head_timeouts_total counter\n"
                 "qn_http_head_timeouts_total %" PRIu64 "\n",
            head_deadline_reaped(srv->deadline));
    if (srv->budget)
        fprintf(out, "# HELP qn_http_cpu_budget_wait_seconds_total Seconds request threads "
                     "waited so that jobs keep the CPU (--http-cpu).\n"
                     "# TYPE qn_http_cpu_budget_wait_seconds_total counter\n"
                     "qn_http_cpu_budget_wait_seconds_total %.6f\n",
                cpu_budget_waited(srv->budget));
    for (size_t i = 0; i < srv->n_hooks; i++)
        srv->hooks[i](out, srv->hook_ctx[i]);
}

/* ---- server life ------------------------------------------------------------------- */

/*
 * MHD's unescaping of the path and query, but a %00 becomes DEL (0x7f)
 * instead of a NUL that would cut the path short ("/v1/datasets/a%00b"
 * read as "/v1/datasets/a"); http__check_request then refuses the path.
 */
static size_t http__unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    size_t n = MHD_http_unescape(s);
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\0')
            s[i] = 0x7f;
    return n;
}

static void http__mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512], clean[QN_LOG_ESCAPED_MAX(sizeof buf)];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    /* MHD's messages may quote the request (a header, the URL): escaped. */
    fprintf(stderr, "qn: http: %s\n", qn_log_escape(clean, sizeof clean, buf));
}

/*
 * MHD's connection notices, on the thread that serves the connection.
 *
 * STARTED: that thread takes the server's nice value (Linux nice is per
 * thread; setting an absolute value is the same every time, so once per
 * connection does no harm), and the connection's socket is watched by the
 * head deadline, its entry kept as MHD's socket context.
 *
 * CLOSED: the entry is dropped, under the deadline's lock, before the
 * socket is closed. That order is libmicrohttpd 0.9.75's (daemon.c):
 * MHD_cleanup_connections calls notify_connection(CLOSED) and only then
 * MHD_socket_close_chk_(pos->socket_fd); the failure path of
 * new_connection_process_ after STARTED does the same, and closing a
 * connection before that (MHD_connection_close_, MHD_connection_mark_closed_)
 * only shuts the socket down for writing. So while an entry is listed its
 * fd is open and is this connection's, and the reaper, which holds the same
 * lock, never shuts down a closed descriptor or one reused by another
 * connection.
 */
static void http__on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                                enum MHD_ConnectionNotificationCode code)
{
    struct http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        head_deadline_close(srv->deadline, *socket_ctx);
        *socket_ctx = NULL;
        return;
    }
    if (srv->cfg.nice)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), srv->nice);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (srv->deadline && ci) {
        char addr[INET6_ADDRSTRLEN];
        http__client_addr(c, addr);
        *socket_ctx = head_deadline_open(srv->deadline, ci->connect_fd, addr);
    }
}

/* The directory of the database file (uploads are written there, not to a RAM /tmp). */
static char *http__dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    size_t n = (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

int http_create(const struct http_config *cfg, struct http_server **out, char *msg, size_t cap)
{
    *out = NULL;
    struct http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return QN_ENOMEM;
    srv->cfg = *cfg;
    srv->bind = strdup(cfg->bind);
    srv->tmpdir = http__dirname(catalog_db(cfg->catalog));
    atomic_init(&srv->closing, 0);
    pthread_mutex_init(&srv->count_mu, NULL);
    pthread_mutex_init(&srv->cq_mu, NULL);
    pthread_cond_init(&srv->cq_cv, NULL);
    if (!srv->bind || !srv->tmpdir ||
        (cfg->cpu_percent && cpu_budget_create(cfg->cpu_percent, http__release, &srv->budget))) {
        http_destroy(srv);
        snprintf(msg, cap, "out of memory");
        return QN_ENOMEM;
    }
    srv->cfg.bind = srv->bind;
    *out = srv;
    return 0;
}

/* Parses the bind address into ss; sets *v6. */
static int http__addr(struct http_server *srv, struct sockaddr_storage *ss, int *v6)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, srv->bind, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)srv->cfg.port);
        *v6 = 0;
        return 0;
    }
    if (inet_pton(AF_INET6, srv->bind, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)srv->cfg.port);
        *v6 = 1;
        return 0;
    }
    return QN_EINVAL;
}

int http_is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}

int http_start(struct http_server *srv, char *msg, size_t cap)
{
    struct sockaddr_storage ss;
    int v6 = 0;
    if (http__addr(srv, &ss, &v6)) {
        snprintf(msg, cap, "--bind %s: not an IPv4 or IPv6 address", srv->bind);
        return QN_EINVAL;
    }
    srv->loopback = http_is_loopback(srv->bind);
    errno = 0; /* -1 is a nice value: errno tells a failure */
    int want = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)) + (int)srv->cfg.nice;
    srv->nice = errno ? 0 : want > 19 ? 19 : want;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    unsigned threads = srv->cfg.threads > 1 ? srv->cfg.threads : 0;
    /* Before MHD's threads, which read n_compute (http_destroy joins them). */
    size_t nc = srv->cfg.compute_threads < HTTP_MAX_COMPUTE ? srv->cfg.compute_threads
                                                             : HTTP_MAX_COMPUTE;
    for (; srv->n_compute < nc; srv->n_compute++)
        if (pthread_create(&srv->compute[srv->n_compute], NULL, http__compute, srv) != 0)
            break; /* fewer compute threads (none: slow routes run inline) */
    if (srv->cfg.header_timeout_s &&
        head_deadline_create(srv->cfg.header_timeout_s, &srv->deadline) != 0) {
        snprintf(msg, cap, "cannot start the request-head deadline (out of memory or threads)");
        return QN_EIO;
    }
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, http__access, srv, MHD_OPTION_EXTERNAL_LOGGER, http__mhd_log, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        srv->cfg.max_per_client,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
        srv->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT, srv->cfg.timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MHD_MEMORY, MHD_OPTION_NOTIFY_CONNECTION,
        http__on_connection, srv, MHD_OPTION_NOTIFY_COMPLETED,
        http__completed, srv, MHD_OPTION_UNESCAPE_CALLBACK, http__unescape, srv, MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(msg, cap, "cannot listen on %s port %u (address in use, or not an address of "
                 "this machine?)", srv->bind, srv->cfg.port);
        return QN_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : srv->cfg.port;
    return 0;
}

unsigned http_port(const struct http_server *srv) { return srv->port; }

void http_quiesce(struct http_server *srv)
{
    if (srv)
        atomic_store(&srv->closing, 1);
}

void http_destroy(struct http_server *srv)
{
    if (!srv)
        return;
    pthread_mutex_lock(&srv->cq_mu);
    srv->cq_stop = 1;
    pthread_cond_broadcast(&srv->cq_cv);
    pthread_mutex_unlock(&srv->cq_mu);
    for (size_t i = 0; i < srv->n_compute; i++)
        pthread_join(srv->compute[i], NULL); /* every offloaded connection is resumed */
    cpu_budget_stop(srv->budget); /* every waiting connection is resumed, none waits again */
    if (srv->mhd)
        MHD_stop_daemon(srv->mhd); /* every connection's CLOSED notice has run */
    head_deadline_destroy(srv->deadline);
    cpu_budget_destroy(srv->budget);
    pthread_mutex_destroy(&srv->count_mu);
    pthread_mutex_destroy(&srv->cq_mu);
    pthread_cond_destroy(&srv->cq_cv);
    free(srv->bind);
    free(srv->tmpdir);
    free(srv);
}
