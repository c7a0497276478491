/*
 * events.h: Server-Sent Events for GET /v1/jobs/{id}/events, and the event
 * pump that feeds them.
 *
 * A stream carries three kinds of events:
 *
 *   event: state      data: the job record (GET /v1/jobs/{id})   -- no id
 *   id: 345
 *   event: metric     data: {"id","step","epoch","name","value","time"}
 *   event: progress   data: {"done","total"}                     -- no id
 *
 * A metric's SSE id is its row id in the metrics table, so a client that
 * reconnects with Last-Event-ID: N gets exactly the rows after N (state and
 * progress are snapshots: a (re)connected stream starts with the current
 * state). The stream ends after the job's final state, sent once every
 * metric before it has been sent; a client should then stop reconnecting.
 * A comment line (": heartbeat") goes out after 15 s without events.
 *
 * How it avoids blocking: the connection is served by an MHD callback
 * response that suspends its connection (MHD_suspend_connection) when its
 * buffer is empty. One pump thread polls the database every ~100 ms
 * through a connection it borrows from the catalog for as long as it runs
 * (the connection's data version tells it cheaply whether anything was
 * committed), fills the buffers of streams that have drained, and resumes
 * their connections. Workers never see the streams; a slow client
 * only makes its own stream lag (one batch of at most EVENTS_BATCH rows is
 * buffered per stream); a vanished one is noticed at the next heartbeat.
 * A stream remembers who opened it: when that user is revoked (`qn user
 * revoke`, a commit the pump sees), the stream ends within about a second,
 * with a comment saying why, and reconnecting is refused 401.
 */
#ifndef QN_EVENTS_H
#define QN_EVENTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct catalog;
struct events;  /* opaque */
struct http_req;
struct workers;

#define EVENTS_BATCH 256          /* metric rows buffered per stream at a time */
#define EVENTS_POLL_MS 100        /* pump period */
#define EVENTS_HEARTBEAT_MS 15000 /* ": heartbeat" after this long without events */

struct events_config {
    struct catalog *catalog; /* lends the pump its connection (borrowed; outlives events_stop) */
    struct workers *workers; /* for progress events (borrowed, may be NULL) */
    const atomic_int *stopping; /* nonzero: workers may be gone, send no progress (may be NULL) */
    unsigned poll_ms;        /* 0: EVENTS_POLL_MS */
    unsigned heartbeat_ms;   /* 0: EVENTS_HEARTBEAT_MS */
};

/* Borrows the pump's connection and starts its thread; *out is new (events_stop it). */
int events_create(const struct events_config *cfg, struct events **out, char *msg, size_t cap);

/*
 * Stops the pump thread only (streams stay open, nothing is sent until
 * events_stop). The daemon calls it before stopping the worker pool, because
 * the pump reads the pool's progress registry. Idempotent; NULL is fine.
 */
void events_halt(struct events *e);

/*
 * Stops the pump, ends every stream and resumes every suspended connection,
 * so that MHD_stop_daemon may follow; later events_open calls answer
 * QN_EBUSY. The hub stays valid until events_release. NULL is fine.
 */
void events_stop(struct events *e);

/*
 * Drops the daemon's reference, after MHD_stop_daemon (a request thread may
 * still be in events_open until then). Memory still referenced by open
 * connections is freed when MHD frees their responses. NULL is fine.
 */
void events_release(struct events *e);

/*
 * Answers req with the event stream of job `job` (which the caller checked
 * exists), starting after metric row `last_id` (0: from the start). Returns 0
 * after replying, or a qn_err code without replying (QN_EBUSY when stopping).
 */
int events_open(struct events *e, struct http_req *req, int64_t job, int64_t last_id);

#endif
