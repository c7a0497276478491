/*
 * routes.h: the daemon's routes other than jobs (routes.c): GET /healthz,
 * GET /metrics, devices (+ simulate), datasets (upload, list, CSV download),
 * surrogates, models (+ predict). The job routes are routes_jobs.c's.
 */
#ifndef QN_ROUTES_H
#define QN_ROUTES_H

#include <jansson.h>

#include "http.h"

struct store_device;
struct store_dataset;

/* Adds this module's routes to srv (http_routes_add). */
int routes_register(struct http_server *srv);

/* The API's JSON of a device and of a dataset record (new references; NULL:
 * out of memory), also printed by the CLI's list commands. */
json_t *routes_device_json(const struct store_device *d);
json_t *routes_dataset_json(const struct store_dataset *d);

#endif
