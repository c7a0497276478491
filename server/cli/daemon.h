/*
 * daemon.h: `qn serve`: the daemon's context, start-up and shutdown.
 *
 * One struct daemon is made in daemon_main: the catalog (the database's
 * connection pool), the HTTP server, and the routes' context (worker pool,
 * event pump, stopping flag) that handlers reach with routes_ctx. It is the
 * server's only mutable state: daemon_main takes SIGTERM and SIGINT with
 * sigwait, so there is no signal flag either.
 *
 * Start-up order: parse options; open the database once (migrations run
 * here, before any thread); the launcher and the spool directory of jobs on
 * several ranks (a spool that cannot be written stops the start); refuse a non-loopback address when the users
 * table is empty; create the catalog and the HTTP server (tokens checked by
 * users_authenticate through the server's auth callback) and add every
 * route (routes_register_all); the worker pool; the event pump; http_start.
 * Shutdown (SIGTERM or SIGINT): http_quiesce (new requests get 503); events_halt
 * (the pump reads the workers' registry, so it stops first); workers_halt
 * (requeue: running jobs are canceled with the requeue marker and go back to
 * `queued`); events_stop (resumes every suspended SSE connection and ends
 * their streams); http_destroy (MHD_stop_daemon); events_release and
 * workers_stop free the hub and the pool last, when no request thread can
 * hold them any more; the catalog closes its connections after that.
 */
#ifndef QN_DAEMON_H
#define QN_DAEMON_H

#include <stdatomic.h>
#include <stddef.h>

#include "catalog.h"
#include "http.h"
#include "job_remote.h"
#include "routes.h"

#define DAEMON_DEFAULT_PORT 8080
#define DAEMON_DEFAULT_BIND "127.0.0.1"
#define DAEMON_DEFAULT_MAX_BODY (1u << 20)           /* 1 MiB JSON bodies */
#define DAEMON_DEFAULT_MAX_UPLOAD ((size_t)256 << 20) /* 256 MiB uploads */
#define DAEMON_DEFAULT_MAX_CONN 256
#define DAEMON_DEFAULT_PER_CLIENT 64  /* connections from one address: a quarter of them */
#define DAEMON_DEFAULT_STREAMS 128    /* event streams: half the connections */
#define DAEMON_DEFAULT_USER_STREAMS 16 /* event streams of one user (the page shares one) */
#define DAEMON_DEFAULT_TIMEOUT 60 /* seconds a connection may stay idle */
#define DAEMON_DEFAULT_BODY_RATE 1024 /* bytes/s a request body must keep up (slow bodies) */
#define DAEMON_DEFAULT_BODY_GRACE 10  /* seconds from the head before that floor holds */
#define DAEMON_HTTP_CPU_PER_CPU 15 /* --http-cpu default: 15% of the machine (issue 16:
                                      jobs keep over half their speed under a flood of requests
                                      and those are still answered by the thousand a second) */
#define DAEMON_DEFAULT_HEADER_TIMEOUT 10 /* seconds a request head may take (slowloris) */
#define DAEMON_DEFAULT_SIM_STEPS 1000000 /* steps of one solve of a simulate request */
#define DAEMON_DEFAULT_SIM_SECONDS 5     /* seconds one simulate request may compute */
#define DAEMON_DEFAULT_DS_VALUES 100000000 /* values of an uploaded dataset (Fashion-MNIST's
                                              training set has 47 million) */

struct daemon_config {
    const char *db;           /* database path */
    const char *bind;         /* listen address (IPv4 or IPv6 literal) */
    unsigned port;            /* 0: an ephemeral port, printed at start-up */
    size_t workers;           /* job worker threads (default: CPUs) */
    size_t job_threads;       /* threads one job may use (default 1) */
    unsigned http_threads;    /* MHD thread pool (default: measured choice, daemon.c) */
    unsigned compute_threads; /* threads for simulate/predict/upload (default: CPUs, <= 4) */
    size_t max_body;          /* bytes of a JSON body */
    size_t max_upload;        /* bytes of a dataset upload, also once decompressed */
    unsigned max_connections; /* concurrent HTTP connections */
    unsigned timeout_s;       /* idle connection timeout */
    size_t simulate_steps;    /* steps one solve of a simulate request may take */
    unsigned simulate_seconds; /* seconds one simulate request may compute */
    size_t max_job_memory;    /* bytes one submitted job may need (default: half the RAM) */
    size_t max_dataset_values; /* values one uploaded dataset may hold, decompressed */
    unsigned max_per_client;  /* concurrent connections from one address */
    size_t max_streams;       /* open event streams */
    size_t max_streams_per_user; /* open event streams of one user */
    const char *spool;        /* --spool: jobs on several ranks are staged here (NULL: DB.spool) */
    const char *launcher;     /* --launcher: the command template (NULL: mpirun, launch.h) */
    int slurm;                /* --slurm: jobs on several ranks are Slurm batch jobs */
    const char *partition;    /* --partition (--slurm; NULL: Slurm's default) */
    const char *account;      /* --account (--slurm; NULL: the user's default) */
    unsigned min_body_rate;   /* bytes/s a body must keep up (0: none) */
    unsigned body_grace_s;    /* seconds from the head before min_body_rate holds */
    unsigned header_timeout_s; /* seconds a request head may take to arrive */
    unsigned http_nice;       /* HTTP threads run this much nicer (0: as the workers) */
    unsigned http_cpu;        /* percent of one CPU the HTTP threads may use while jobs run
                                 (0: no cap; default DAEMON_HTTP_CPU_PER_CPU per CPU) */
};

struct daemon {
    struct daemon_config cfg;  /* as parsed (strings borrowed from argv) */
    struct catalog *catalog;   /* the database's connection pool */
    struct http_server *http;  /* the HTTP layer */
    struct routes_ctx routes;  /* workers, events, stopping: what handlers reach */
    struct job_remote remote;  /* launcher and spool of jobs on several ranks (zero: none,
                                  they are refused) */
};

/* `qn serve ...`: argv[0] is "serve". Runs until SIGTERM/SIGINT; returns the
 * process exit status (0 clean stop, 1 runtime failure, 2 usage). */
int daemon_main(int argc, char **argv);

/*
 * Starts d (d->cfg filled, everything else zero): the catalog, the HTTP
 * server with every route, the worker pool, the event pump, listening.
 * Returns 0, or a code with msg (cap) saying why and everything stopped.
 * The caller blocks signals first if it wants them (daemon_main does).
 */
int daemon_start(struct daemon *d, char *msg, size_t cap);
/* The orderly stop of the comment above, whatever part of d runs; d can be
 * started again. */
void daemon_stop(struct daemon *d);

/* Online CPUs (at least 1): the default worker count of `qn serve` and `qn run`. */
size_t daemon_cpus(void);

#endif
