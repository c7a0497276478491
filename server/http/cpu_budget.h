/*
 * cpu_budget.h: a cap on the CPU the request threads take while jobs run.
 *
 * Clients that ask again as soon as they are answered (a dashboard on every
 * screen of a lab, wrk) take whatever CPU the request threads are given: on a
 * 2-CPU machine 32 such connections held two trains to 40% of their speed
 * (issue 16) however cheap each request was. So while jobs run, the request
 * threads share a budget of `percent` of one CPU: as a request begins, its
 * thread charges the CPU time it used since it last did so (its clock,
 * CLOCK_THREAD_CPUTIME_ID: parsing, the handler, sending the previous reply)
 * to a bucket that fills at the budget's rate up to a small burst, and a
 * thread that finds the bucket owing more than CPU_BUDGET_SLACK sleeps until
 * it is paid, leaving the CPU to the jobs. With no job running nothing is
 * capped. Threads of the compute pool (simulate, predict, uploads) have
 * their own bound (their count) and are not charged. Thread-safe.
 */
#ifndef QN_CPU_BUDGET_H
#define QN_CPU_BUDGET_H

#include <stddef.h>

#define CPU_BUDGET_BURST 0.005  /* CPU seconds the bucket holds at most */
#define CPU_BUDGET_SLACK 0.001  /* CPU seconds owed before a thread sleeps */
#define CPU_BUDGET_MAX_SLEEP 0.05 /* seconds one request waits at most */

struct cpu_budget; /* opaque */

/* Nonzero while the budget holds (jobs run); called as requests begin. */
typedef size_t (*cpu_budget_busy_fn)(void *ctx);

/* A budget of `percent` of one CPU (0: none: cpu_budget_pace never waits)
 * into *out; QN_ENOMEM. busy decides when it holds (NULL: always). */
int cpu_budget_create(unsigned percent, struct cpu_budget **out);
void cpu_budget_set_busy(struct cpu_budget *b, cpu_budget_busy_fn busy, void *ctx);
/* Frees b (NULL is fine). */
void cpu_budget_destroy(struct cpu_budget *b);
/* On a request thread as a request begins: charges the thread's CPU since
 * its last charge, and sleeps while the budget holds and the bucket owes
 * more than the slack. The seconds it slept. b NULL: 0. */
double cpu_budget_pace(struct cpu_budget *b);
/* Seconds the request threads have slept for the budget (for /metrics). */
double cpu_budget_slept(struct cpu_budget *b);

#endif
