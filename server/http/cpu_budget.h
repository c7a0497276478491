/*
 * cpu_budget.h: a cap on the CPU the request threads take while jobs run.
 *
 * Clients that ask again as soon as they are answered (a dashboard on every
 * screen of a lab, wrk) take whatever CPU the request threads are given: on a
 * 2-CPU machine 32 such connections held two trains to 40% of their speed
 * (issue 16) however cheap each request was. So while jobs run, requests
 * are admitted, first come first served, at the pace that keeps the request
 * threads to `percent` of one CPU. A clock says when the CPU the threads
 * have used is paid for at that rate. Admitting a request books the moving
 * average of a request's cost on it; as each request is about to run its
 * handler, its thread charges the CPU it used since its previous charge
 * (its clock, CLOCK_THREAD_CPUTIME_ID: the previous request's handler and
 * reply, this one's parsing) in place of the booking of the request it ran
 * since, so the clock follows the CPU really used (the pacing thread's own
 * too). A request comes in at once while the clock is not ahead of now and
 * nobody waits; otherwise it waits in a queue (the caller holds it: http.c
 * suspends the connection) and a pacing thread lets the first ones in
 * whenever the clock has caught up (to a millisecond: it wakes for several
 * at a time), while the request threads serve others. A backlog of
 * CPU_BUDGET_BURST of CPU may be caught up at once, and a debt of more than
 * CPU_BUDGET_MAX_WAIT is forgiven (one long request does not stall everyone
 * after it). With no job running everyone comes in at once.
 * Tried first: sleeping on the request threads, which held every other
 * connection of a sleeping thread too (p99 160-470 ms at 20%); turns handed
 * out from the average alone, whose samples spanned several requests (the
 * threads took 42% of a CPU at 30%, and after a few expensive requests the
 * cheap ones waited 60-170 ms). Threads of the compute pool (simulate,
 * predict, uploads) have their own bound (their count) and are not
 * charged. Thread-safe.
 */
#ifndef QN_CPU_BUDGET_H
#define QN_CPU_BUDGET_H

#include <stddef.h>

#define CPU_BUDGET_BURST 0.005   /* CPU seconds a backlog may catch up at once */
#define CPU_BUDGET_MAX_WAIT 0.5  /* seconds of debt kept at most */
#define CPU_BUDGET_SLACK 0.001   /* seconds early a waiting request may come in */
#define CPU_BUDGET_AVERAGE 0.2   /* weight of each request in the moving average of the cost */

struct cpu_budget; /* opaque */

/* Nonzero while the budget holds (jobs run). */
typedef size_t (*cpu_budget_busy_fn)(void *ctx);
/* Holds a request before it is queued to wait. */
typedef void (*cpu_budget_hold_fn)(void *item);
/* Releases a waiting request as it comes in, with the CPU seconds booked for
 * it (hand them to cpu_budget_ran on the thread that runs it). */
typedef void (*cpu_budget_release_fn)(void *item, double booked);

/* A budget of `percent` of one CPU into *out, with its pacing thread, which
 * calls release(item) for each waiting request as it comes in. percent 0:
 * no budget (everyone comes in at once, no thread). QN_ENOMEM, QN_EIO (no
 * thread). */
int cpu_budget_create(unsigned percent, cpu_budget_release_fn release, struct cpu_budget **out);
/* Says when the budget holds: while busy(ctx) is nonzero (until then: always). */
void cpu_budget_set_busy(struct cpu_budget *b, cpu_budget_busy_fn busy, void *ctx);
/* Lets every waiting request in and stops the pacing thread: later requests
 * come in at once (NULL is fine; once is enough). */
void cpu_budget_stop(struct cpu_budget *b);
/* Stops b and frees it (NULL is fine). */
void cpu_budget_destroy(struct cpu_budget *b);
/* On a request thread as a request (item) is about to run its handler:
 * charges the thread's CPU since its previous request, and 0 when it comes
 * in now; 1 when it waits (hold(item) was called first, under the lock the
 * pacing thread takes to release it). b NULL, stopped or out of memory: 0. */
int cpu_budget_admit(struct cpu_budget *b, void *item, cpu_budget_hold_fn hold);
/* On the request thread that runs a request released from the queue, as it
 * runs: charges the thread's CPU since its previous charge, and notes what
 * was booked for this request, which the thread's next charge takes back. */
void cpu_budget_ran(struct cpu_budget *b, double booked);
/* Seconds requests have waited to come in, in all (for /metrics). */
double cpu_budget_waited(struct cpu_budget *b);

#endif
