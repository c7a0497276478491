/*
 * daemon.h: `qn serve`: the daemon's context, start-up and shutdown.
 *
 * One struct daemon is made in daemon_main and passed to every handler
 * (http_req_daemon) and to the worker pool and event pump: it is the only
 * mutable state of the server besides the signal flag.
 *
 * Start-up order: parse options; open the database once (migrations run
 * here, before any thread); refuse a non-loopback address when the users
 * table is empty; create the HTTP server and add every module's routes;
 * workers_start; events_start; http_start. Shutdown (SIGTERM or SIGINT):
 * http_quiesce (stop accepting); events_halt (the pump reads the workers'
 * registry, so it stops first); workers_halt (requeue: running jobs are
 * canceled with the requeue marker and go back to `queued`); events_stop
 * (resumes every suspended SSE connection and ends their streams);
 * http_destroy (MHD_stop_daemon); events_release and workers_stop free the
 * hub and the pool last, when no request thread can hold them any more.
 *
 * The worker pool and the event pump (server/workers.h, server/events.h,
 * server/routes_jobs.h) are optional at compile time: daemon.c uses them
 * when the headers exist (__has_include) and expects exactly:
 *
 *   int  routes_jobs_register(struct http_server *srv);   -- http_routes_add of the job routes
 *   int  workers_start(struct daemon *d, struct workers **out);
 *   void workers_halt(struct workers *w, int requeue);    -- joins the threads
 *   void workers_stop(struct workers *w, int requeue);    -- halts if needed, frees w
 *   void events_halt(struct events *e);                   -- joins the pump
 *   int  events_start(struct daemon *d, struct events **out);
 *   void events_stop(struct events *e);                   -- ends streams, resumes all
 *   void events_release(struct events *e);                -- drops the daemon's reference
 *
 * and stores their handles in d->workers and d->events, where the job
 * handlers find them (submit wakes the workers; cancel reaches a running
 * job; the events route registers its stream with the pump).
 */
#ifndef QN_DAEMON_H
#define QN_DAEMON_H

#include <stdatomic.h>
#include <stddef.h>

#include "http.h"

#define DAEMON_DEFAULT_PORT 8080
#define DAEMON_DEFAULT_BIND "127.0.0.1"
#define DAEMON_DEFAULT_MAX_BODY (1u << 20)           /* 1 MiB JSON bodies */
#define DAEMON_DEFAULT_MAX_UPLOAD ((size_t)256 << 20) /* 256 MiB uploads */
#define DAEMON_DEFAULT_MAX_CONN 256
#define DAEMON_DEFAULT_TIMEOUT 60 /* seconds a connection may stay idle */

struct workers; /* workers.h (engineer B) */
struct events;  /* events.h (engineer B) */

struct daemon_config {
    const char *db;           /* database path */
    const char *bind;         /* listen address (IPv4 or IPv6 literal) */
    unsigned port;            /* 0: an ephemeral port, printed at start-up */
    size_t workers;           /* job worker threads (default: CPUs) */
    size_t job_threads;       /* threads one job may use (default 1) */
    unsigned http_threads;    /* MHD thread pool (default: measured choice, daemon.c) */
    unsigned compute_threads; /* threads for simulate/predict/upload (default: CPUs, <= 4) */
    size_t max_body;          /* bytes of a JSON body */
    size_t max_upload;        /* bytes of a dataset upload */
    unsigned max_connections; /* concurrent HTTP connections */
    unsigned timeout_s;       /* idle connection timeout */
};

struct daemon {
    struct daemon_config cfg;  /* as parsed (strings borrowed from argv) */
    struct http_server *http;  /* the HTTP layer */
    struct workers *workers;   /* the job worker pool (NULL when not built) */
    struct events *events;     /* the SSE event pump (NULL when not built) */
    atomic_int stopping;       /* 1 once shutdown began: new submissions get 503 */
};

/* `qn serve ...`: argv[0] is "serve". Runs until SIGTERM/SIGINT; returns the
 * process exit status (0 clean stop, 1 runtime failure, 2 usage). */
int daemon_main(int argc, char **argv);

/* Online CPUs (at least 1): the default worker count of `qn serve` and `qn run`. */
size_t daemon_cpus(void);

/* Adds every route of the daemon (all modules) to srv: what daemon_main
 * serves and what tests/server/test_openapi.c checks against openapi.yaml. */
int daemon_routes_register(struct http_server *srv);

#endif
