/*
 * routes_jobs.h: the job routes of `qn serve`.
 *
 *   POST /v1/jobs                   submit {"type","name","priority","spec"}: 201 + the job
 *                                   (state queued, or waiting on {"job": N} inputs);
 *                                   400 invalid_spec at the spec's path; 503 when stopping
 *   GET  /v1/jobs                   ?state=&type=&owner=&limit=&cursor=: {"jobs": [...], "next"}
 *   GET  /v1/jobs/{id}              the job record, with priority, spec and (running) progress
 *   POST /v1/jobs/{id}/cancel       200 canceled at once (queued, waiting); 202 cancel
 *                                   requested (running: ends `canceled` within ~1 s);
 *                                   403 another member's job; 409 already ended
 *   GET  /v1/jobs/{id}/metrics      ?since=&limit=&name=&max_points=:
 *                                   {"metrics": [{"id","step","epoch","name","value","time"}],
 *                                    "next": id to pass as since, "more": bool}
 *   GET  /v1/jobs/{id}/events       Server-Sent Events (events.h); Last-Event-ID header or
 *                                   ?last_event_id= resumes after that metric row
 */
#ifndef QN_ROUTES_JOBS_H
#define QN_ROUTES_JOBS_H

struct http_server;

#define ROUTES_JOBS_METRICS_DEFAULT 1000  /* metrics: default limit */
#define ROUTES_JOBS_METRICS_MAX 100000    /* metrics: largest limit and max_points */

/* Adds the job routes to srv (before http_start). */
int routes_jobs_register(struct http_server *srv);

#endif
