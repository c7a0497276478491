/*
 * http.h: the HTTP layer of `qn serve` on libmicrohttpd: routing, request
 * bodies, authentication through a callback, replies, access log and
 * request counters.
 *
 * Routes are data: modules hand arrays of struct http_route to
 * http_routes_add before http_start (routes_register_all, which the daemon
 * calls, adds routes.c's device/dataset/surrogate/model routes,
 * routes_jobs.c's job routes and web_assets.c's page). A pattern is a path whose segments are literals or
 * "{name}" placeholders matching one non-empty segment ("/v1/jobs/{id}").
 * The dispatcher tries routes in order; a path that matches no pattern is a
 * 404, one that matches with another method a 405 (with an Allow header),
 * both as JSON.
 *
 * A handler runs once per request, after the whole body has arrived, on one
 * of MHD's threads: it must not block for long (no waiting on a job). A
 * route that computes (HTTP_F_SLOW) runs on one of the compute threads
 * instead, with its connection suspended until it has replied. It
 * answers through one http_reply_* call and returns 0, or returns a qn_err
 * code without replying and the layer answers with that code's row of the
 * error table (qn_err.h: its HTTP status, its wire name, its message).
 * Every error reply, the layer's own included, goes through http_reply_err,
 * so error bodies have one shape and a code one status.
 *
 * Bodies: a route flagged HTTP_F_JSON gets its body parsed (jansson, duplicate
 * keys rejected, at most max_body bytes, valid UTF-8, nesting at most
 * HTTP_JSON_DEPTH) before the handler runs; a bad body is answered 400/413/415
 * without calling it. A route flagged HTTP_F_UPLOAD gets its body streamed to
 * an unlinked temporary file (at most max_upload bytes), never held in
 * memory. Other routes refuse a body larger than max_body.
 *
 * Where a request comes from, checked before anything else: an HTTP/1.1
 * request needs a Host header (400); a server bound to loopback answers only
 * requests whose Host is "localhost" or a loopback address (403 otherwise:
 * a page whose name an attacker pointed at 127.0.0.1, DNS rebinding, reads
 * nothing); a write (any method but GET, HEAD, OPTIONS) that a browser marks
 * as coming from another site (Sec-Fetch-Site other than same-origin/none,
 * or an Origin other than the Host) is refused 403. A JSON route's body must
 * be declared application/json and an upload's text/csv,
 * application/octet-stream or application/gzip (415 otherwise), so no
 * foreign page can send one without the browser asking first (CORS).
 *
 * Authentication: this layer reads no users itself. For every route not
 * flagged HTTP_F_PUBLIC it hands the Authorization header to the config's
 * callback (http_config.auth); QN_EAUTH from it is a 401 JSON reply, another
 * code the matching 5xx, and an HTTP_F_ADMIN route refuses a member with 403.
 * The daemon wires users_authenticate: a bearer token is needed once the
 * database has users, and while it has none every request is the built-in
 * admin "local" (the daemon then listens on loopback only). Without a
 * callback every request is "local" too; a public route's user is
 * "anonymous". http_req_user never returns NULL in a handler.
 *
 * Database: the server owns no connections. A request borrows one from the
 * config's catalog (http_config.catalog) when its handler asks
 * (http_req_store) and gives it back when the handler returns.
 *
 * Memory: each request has an arena (http_req_alloc) capped at
 * HTTP_ARENA_MAX bytes, freed with the request.
 */
#ifndef QN_HTTP_H
#define QN_HTTP_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"
#include "users.h"

#define HTTP_JSON_DEPTH 64          /* deepest JSON nesting accepted in a body */
#define HTTP_ARENA_MAX (4u << 20)   /* bytes one request may take from its arena */
#define HTTP_MAX_PARAMS 4           /* {placeholders} in one pattern */
#define HTTP_LIST_LIMIT_DEFAULT 100 /* list routes: default `limit` */
#define HTTP_LIST_LIMIT_MAX 1000    /* list routes: largest `limit` */
#define HTTP_MAX_URI 8192           /* bytes of path + query: 414 JSON beyond */
#define HTTP_MAX_HEADERS 32768      /* bytes of all request headers: 431 JSON beyond */
#define HTTP_MHD_MEMORY (256u << 10) /* MHD's per-connection buffer: beyond it MHD answers */

struct http_server; /* opaque: the MHD daemon, routes, the borrowed catalog, counters */
struct http_req;    /* opaque: one request (valid during the handler call) */
struct MHD_Connection;
struct MHD_Response;

/* Route flags. */
#define HTTP_F_PUBLIC 1u /* no token needed (GET /healthz, GET /metrics) */
#define HTTP_F_JSON 2u   /* the body is a JSON document (required) */
#define HTTP_F_UPLOAD 4u /* the body is streamed to a temp file (http_req_upload) */
#define HTTP_F_ADMIN 8u  /* only admins (403 for members) */
#define HTTP_F_SLOW 16u  /* runs on a compute thread, its connection suspended meanwhile
                            (simulate, predict, uploads): a long handler never holds up
                            the other connections of an MHD thread */

/* Returns 0 after one http_reply_* (http_reply_err included), or a qn_err code
 * without having replied (the layer replies); never a code after a reply (the
 * dispatcher asserts it). */
typedef int (*http_handler_fn)(struct http_req *req);

struct http_route {
    const char *method;      /* "GET", "POST" (static) */
    const char *pattern;     /* "/v1/jobs/{id}/cancel" (static) */
    http_handler_fn handler;
    unsigned flags;          /* HTTP_F_* */
};

/*
 * Authentication, supplied by whoever wires the server (the daemon): checks
 * an Authorization header value (may be NULL; loopback: the client is on a
 * loopback address) and fills *user. Returns 0, QN_EAUTH (msg says why: 401)
 * or another code (msg says why: 5xx). Called on MHD's threads.
 */
typedef int (*http_auth_fn)(void *ctx, const char *authorization, int loopback,
                            struct user *user, char *msg, size_t cap);

/* What the server needs at creation; copied. */
struct http_config {
    const char *bind;         /* address to listen on, IPv4 or IPv6 literal (copied) */
    unsigned port;            /* 0: an ephemeral port (http_port says which) */
    unsigned threads;         /* MHD thread-pool size; 1: one internal polling thread */
    size_t max_body;          /* bytes of a JSON body */
    size_t max_upload;        /* bytes of an upload */
    unsigned max_connections; /* concurrent connections */
    unsigned max_per_client;  /* concurrent connections from one address (0: no limit) */
    unsigned timeout_s;       /* idle seconds before a connection is closed */
    unsigned header_timeout_s; /* seconds a request head may take to arrive, counted from the
                                  connection's start or its previous request's end (0: none;
                                  head_deadline.h) */
    unsigned min_body_rate;   /* bytes/s a body must keep up after body_grace_s (0: none) */
    unsigned body_grace_s;    /* seconds from the head a body may take before the floor holds */
    unsigned nice;            /* MHD's threads run this much nicer than the caller (0-19) */
    unsigned cpu_percent;     /* while jobs run (http_set_busy), MHD's threads use at most this
                                 percent of one CPU (0: no cap; cpu_budget.h) */
    unsigned compute_threads; /* threads for HTTP_F_SLOW handlers; 0: run them inline */
    struct catalog *catalog;  /* the database's connection pool (borrowed) */
    http_auth_fn auth;        /* checks tokens (NULL: everyone is "local", an admin) */
    void *auth_ctx;           /* passed to auth (borrowed) */
    void *app;                /* what handlers reach with http_req_app (borrowed) */
};

/* Creates a server (not yet listening) into *out; msg (cap) says why not. */
int http_create(const struct http_config *cfg, struct http_server **out, char *msg, size_t cap);
/* Adds n routes (the array is borrowed: static storage). Before http_start. */
int http_routes_add(struct http_server *srv, const struct http_route *routes, size_t n);
/* The routes added so far, in dispatch order (borrowed), for the OpenAPI test. */
size_t http_route_count(const struct http_server *srv);
const struct http_route *http_route_at(const struct http_server *srv, size_t i);
/* Starts listening (MHD threads run from here). */
int http_start(struct http_server *srv, char *msg, size_t cap);
/* The port actually bound (after http_start). */
unsigned http_port(const struct http_server *srv);
/* Nonzero when addr (an IPv4 or IPv6 literal) is a loopback address. */
int http_is_loopback(const char *addr);
/* Stops taking new requests: from now on each new request is answered 503
 * unavailable ("the daemon is stopping") at its first byte; requests in
 * flight finish. (Not MHD_quiesce_daemon: in libmicrohttpd 0.9.75 it races
 * with the daemon's own epoll threads and aborts the process with "Failed to
 * remove listen FD from epoll set".) The listening socket closes with
 * http_destroy. */
void http_quiesce(struct http_server *srv);
/* Stops MHD (waits for its threads) and frees everything. NULL is fine.
 * Resume every suspended connection first (events_stop does). */
void http_destroy(struct http_server *srv);

/* Registers a writer of extra Prometheus lines for GET /metrics (the worker
 * pool: workers busy, solves/s). fn is called on a request thread; ctx borrowed. */
typedef void (*http_metrics_fn)(FILE *out, void *ctx);
int http_metrics_add(struct http_server *srv, http_metrics_fn fn, void *ctx);
/* Says when the CPU budget (cfg.cpu_percent) holds: while busy(ctx) is
 * nonzero (the jobs running; ctx borrowed, and must outlive srv). */
void http_set_busy(struct http_server *srv, size_t (*busy)(void *ctx), void *ctx);
/* Writes the HTTP counters, then every registered writer's lines, to out. */
void http_metrics_write(struct http_server *srv, FILE *out);

/* ---- inside a handler ------------------------------------------------------ */

/* The server's catalog (borrowed): for work that outlives the handler
 * (a streamed CSV borrows a connection per chunk). */
struct catalog *http_req_catalog(struct http_req *req);
/* The config's `app` pointer (borrowed): the routes' context. */
void *http_req_app(struct http_req *req);
struct http_server *http_req_server(struct http_req *req);
/* A {placeholder}'s text (borrowed), NULL when the pattern has none of that name. */
const char *http_req_param(const struct http_req *req, const char *name);
/* The {name} placeholder as a positive id; on failure replies 404 "no such
 * <what>" and returns QN_ENOTFOUND (the handler, having replied, returns 0). */
int http_req_param_id(struct http_req *req, const char *name, const char *what, int64_t *out);
/* A query argument (borrowed), NULL when absent. */
const char *http_req_query(struct http_req *req, const char *name);
/* A request header (borrowed), NULL when absent. */
const char *http_req_header(struct http_req *req, const char *name);
/* The signed-in user (borrowed; never NULL in a handler). */
const struct user *http_req_user(const struct http_req *req);
/* The parsed body of an HTTP_F_JSON route (borrowed; never NULL there). */
json_t *http_req_json(const struct http_req *req);
/* The uploaded body of an HTTP_F_UPLOAD route: a file rewound to its start
 * (borrowed, closed with the request) and its size. */
FILE *http_req_upload(const struct http_req *req, size_t *size);
/* A pooled store connection for this request (borrowed; given back when the
 * handler returns). NULL when the database is unreachable: return QN_EDBDOWN
 * (503 database_error). */
struct store *http_req_store(struct http_req *req);
/* http_req_store into *s, or a 503 database_error reply (QN_EDBDOWN) and
 * QN_EDBDOWN (the handler, having replied, returns 0). */
int http_req_store_or_reply(struct http_req *req, struct store **s);
/* The MHD connection (for MHD_suspend_connection / MHD_resume_connection). */
struct MHD_Connection *http_req_connection(struct http_req *req);
/* Nonzero when the client has closed its connection (an HTTP_F_SLOW
 * handler asks, to stop computing for nobody); a cheap non-blocking look. */
int http_req_gone(struct http_req *req);
/* n bytes from the request's arena (freed with it); NULL past HTTP_ARENA_MAX. */
void *http_req_alloc(struct http_req *req, size_t n);

/*
 * Pagination of list routes: `limit` (1..HTTP_LIST_LIMIT_MAX, default
 * HTTP_LIST_LIMIT_DEFAULT) and `cursor` (opaque to clients; the id after
 * which the next page starts; 0 = from the start). On a bad value replies
 * 400 at the query parameter and returns QN_EINVAL (the handler, having
 * replied, returns 0).
 */
int http_req_page(struct http_req *req, size_t *limit, int64_t *after);

/* ---- replies (exactly one per handler call) ----------------------------- */

/* A JSON reply; steals body (NULL: 503 out of memory). */
int http_reply_json(struct http_req *req, unsigned status, json_t *body);
/*
 * The error reply of `code` (negative, from qn_err.h): its row's HTTP status
 * and {"error":{"code": <its wire name>, "message", "path"}}; path may be NULL
 * (JSON null). Returns 0 once replied (so `return http_reply_err(...)` ends a
 * handler by its contract), or the code of a failure to reply.
 */
int http_reply_err(struct http_req *req, int code, const char *path, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* A JSON reply of text[len], ready JSON text (a newline at its end): steals
 * text (malloc'd; freed once sent, or here on failure). */
int http_reply_json_text(struct http_req *req, unsigned status, char *text, size_t len);
/* A copy of text[len] with the given content type. */
int http_reply_text(struct http_req *req, unsigned status, const char *content_type,
                    const char *text, size_t len);
/* A response the handler built (callback responses: SSE, CSV streams);
 * steals resp. Headers the layer adds to every reply are added here too. */
int http_reply_response(struct http_req *req, unsigned status, struct MHD_Response *resp);
/* A response of unknown length (chunked: SSE, CSV streams); steals resp. To
 * HEAD it answers the same status and headers without a body (libmicrohttpd
 * would send an empty chunked body's last chunk, which a HEAD reply must not
 * have; the length is not known, so Content-Length says 0), freeing resp at
 * once. */
int http_reply_stream(struct http_req *req, unsigned status, struct MHD_Response *resp);

/* The HTTP status for a qn_err code: its row's in the error table (qn_err_status). */
unsigned http_status_for(int err);

#endif
