/*
 * head_deadline.h: a deadline for request heads, on top of a library that
 * has none.
 *
 * libmicrohttpd 0.9.75 calls the application only once a request head is
 * complete, and its one timer is an idle timeout for head, body and
 * keep-alive waits alike: a client that trickles a header byte now and
 * then (slowloris) renews it forever. This module keeps the sockets of the
 * open connections with the time each began to wait for a head; a reaper
 * thread shuts down (shutdown(2), SHUT_RDWR) every socket whose head has
 * not arrived within the deadline, so that the library reads end-of-file
 * and closes the connection itself. No reply is sent: the library owns the
 * socket's output.
 *
 * A connection waits for a head from when it opens and, on a keep-alive
 * connection, again from when its previous request finished: the deadline
 * covers the idle wait between requests too (as Apache's KeepAliveTimeout
 * does), so an idle keep-alive connection is closed after it. A request in
 * progress (its body, its handler, a reply being sent, an event stream) is
 * never cut here; the body rate floor and the idle timeout cover those.
 *
 * Threads: head_deadline_open/close/busy are called on the library's
 * threads, the reaper runs on its own; one mutex guards the list. The
 * caller must call head_deadline_close before the socket is closed (see
 * http.c for why libmicrohttpd's CLOSED notice guarantees it): the reaper
 * then never shuts down a closed socket, nor a number reused by another.
 */
#ifndef QN_HEAD_DEADLINE_H
#define QN_HEAD_DEADLINE_H

#include <stdint.h>

struct head_deadline;      /* opaque: the list, the reaper thread, the counter */
struct head_deadline_conn; /* opaque: one watched connection (owned by the list) */

/* Starts a reaper for a deadline of `seconds` (>= 1) into *out; QN_ENOMEM, QN_EIO
 * (no thread). */
int head_deadline_create(unsigned seconds, struct head_deadline **out);
/* Stops the reaper and frees hd with any connection still listed (NULL is fine). */
void head_deadline_destroy(struct head_deadline *hd);

/* Watches socket fd of a new connection from address `addr` (copied, for the
 * log); its head is due within the deadline. Returns the entry (owned by hd,
 * freed by head_deadline_close), NULL when hd is NULL or out of memory (the
 * connection is then not watched). */
struct head_deadline_conn *head_deadline_open(struct head_deadline *hd, int fd,
                                              const char *addr);
/* Forgets the connection (NULL is fine); must come before its socket is closed. */
void head_deadline_close(struct head_deadline *hd, struct head_deadline_conn *c);
/* busy 1: a request head arrived, the connection is not watched until its
 * request ends; busy 0: the request ended, the next head is due within the
 * deadline from now. c NULL is fine. */
void head_deadline_busy(struct head_deadline *hd, struct head_deadline_conn *c, int busy);
/* Connections shut down so far for a late head (0 when hd is NULL). */
uint64_t head_deadline_reaped(struct head_deadline *hd);

#endif
