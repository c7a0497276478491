/*
 * cpu_budget.h: a cap on the CPU the request threads take while jobs run.
 *
 * Clients that ask again as soon as they are answered (a dashboard on every
 * screen of a lab, wrk) take whatever CPU the request threads are given: on a
 * 2-CPU machine 32 such connections held two trains to 40% of their speed
 * (issue 16) however cheap each request was. So while jobs run, requests
 * take turns spaced so that the request threads use `percent` of one CPU:
 * as a request is about to run its handler, its thread charges the CPU time
 * it used since its previous turn (its clock, CLOCK_THREAD_CPUTIME_ID:
 * parsing, the handler, sending the previous reply) to a moving average of
 * a request's cost, and the request gets the next turn on a clock that
 * advances by cost / budget per request (a backlog of CPU_BUDGET_BURST of
 * CPU may be caught up at once). A request whose turn is later waits in a
 * queue, first come first served, while its thread serves others: the
 * caller holds it (http.c suspends the connection) and a pacing thread
 * releases it at its turn. Sleeping on the request threads instead held
 * every other connection of a sleeping thread too, and requests waited for
 * several rounds (p99 160-470 ms at 20%). With no job running every turn is
 * now. Threads of the compute pool (simulate, predict, uploads) have their
 * own bound (their count) and are not charged. Thread-safe.
 */
#ifndef QN_CPU_BUDGET_H
#define QN_CPU_BUDGET_H

#include <stddef.h>

#define CPU_BUDGET_BURST 0.005   /* CPU seconds of turns a backlog may catch up at once */
#define CPU_BUDGET_MAX_WAIT 0.5  /* seconds one request waits at most */
#define CPU_BUDGET_AVERAGE 0.05  /* weight of each request in the moving average of the cost */

struct cpu_budget; /* opaque */

/* Nonzero while the budget holds (jobs run). */
typedef size_t (*cpu_budget_busy_fn)(void *ctx);
/* Holds (before it is queued) or releases (at its turn) a waiting request. */
typedef void (*cpu_budget_hold_fn)(void *item);

/* A budget of `percent` of one CPU into *out, with its pacing thread, which
 * calls release(item) for each request whose turn has come. percent 0: no
 * budget (every turn is now, no thread). QN_ENOMEM, QN_EIO (no thread). */
int cpu_budget_create(unsigned percent, cpu_budget_hold_fn release, struct cpu_budget **out);
/* Says when the budget holds: while busy(ctx) is nonzero (until then: always). */
void cpu_budget_set_busy(struct cpu_budget *b, cpu_budget_busy_fn busy, void *ctx);
/* Releases every waiting request and stops the pacing thread: later
 * cpu_budget_wait calls are refused (NULL is fine; once is enough). */
void cpu_budget_stop(struct cpu_budget *b);
/* Stops b and frees it (NULL is fine). */
void cpu_budget_destroy(struct cpu_budget *b);
/* On a request thread as a request is about to run: charges the thread's
 * CPU since its previous turn and gives the request its turn: 0 when it is
 * now, else the CLOCK_MONOTONIC second it comes. b NULL: 0. */
double cpu_budget_turn(struct cpu_budget *b);
/* Queues item until `turn`: hold(item) is called first, under the lock the
 * pacing thread takes to release it. QN_EBUSY when b is stopping (item not
 * held, not queued: run it now), QN_ENOMEM. */
int cpu_budget_wait(struct cpu_budget *b, void *item, double turn, cpu_budget_hold_fn hold);
/* Seconds requests have waited for their turns in all (for /metrics). */
double cpu_budget_waited(struct cpu_budget *b);

#endif
