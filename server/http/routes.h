/*
 * routes.h: the daemon's routes other than jobs (routes.c): GET /healthz,
 * GET /metrics, devices (+ simulate), datasets (upload, list, CSV download),
 * surrogates, models (+ predict). The job routes are routes_jobs.c's.
 */
#ifndef QN_ROUTES_H
#define QN_ROUTES_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "http.h"

struct events;
struct workers;

/* Adds this module's routes to srv (http_routes_add). */
int routes_register(struct http_server *srv);

/* What every route's handler reaches through http_req_app: the daemon's
 * parts that live above the database. */
struct routes_ctx {
    struct workers *workers; /* the job worker pool (borrowed) */
    struct events *events;   /* the SSE event pump (borrowed) */
    atomic_int stopping;     /* 1 once shutdown began: new submissions get 503 */
    size_t simulate_steps;   /* steps one solve of a simulate request may take (0: no cap) */
    double simulate_seconds; /* seconds one simulate request may compute (0: no limit) */
    uint64_t max_dataset_values; /* values one uploaded dataset may hold (0: no limit) */
    uint64_t max_upload;         /* bytes an upload may decompress to (0: no limit) */
    struct page_cache *pages; /* kept metric and list pages (owned by the wiring; NULL: none) */
};

/* The context of req's server (borrowed). */
struct routes_ctx *routes_ctx(struct http_req *req);

/* Adds every route of the daemon (all modules) to srv: what `qn serve`
 * serves and what tests/http/test_openapi.c checks against openapi.yaml. */
int routes_register_all(struct http_server *srv);

#endif
