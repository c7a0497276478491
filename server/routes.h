/*
 * routes.h: the daemon's routes other than jobs (routes.c): GET /healthz,
 * GET /metrics, devices (+ simulate), datasets (upload, list, CSV download),
 * surrogates, models (+ predict). The job routes are routes_jobs.c's.
 */
#ifndef QN_ROUTES_H
#define QN_ROUTES_H

#include "http.h"

/* Adds this module's routes to srv (http_routes_add). */
int routes_register(struct http_server *srv);

#endif
