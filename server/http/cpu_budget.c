/* cpu_budget.c: the request threads' share of the CPU while jobs run (cpu_budget.h). */
#include "cpu_budget.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "qn_err.h"

struct cpu_budget {
    double rate;              /* CPU seconds per second while busy */
    cpu_budget_busy_fn busy;  /* NULL: always busy */
    void *busy_ctx;
    pthread_mutex_t mu;
    double tokens;            /* CPU seconds in hand; negative: owed (mu) */
    double at;                /* CLOCK_MONOTONIC seconds of the last fill (mu) */
    double slept;             /* seconds slept in all (mu) */
};

/* The calling thread's CPU seconds at its last charge (-1: none yet). */
static _Thread_local double cpu_budget__seen = -1;

static double cpu_budget__clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cpu_budget_create(unsigned percent, struct cpu_budget **out)
{
    struct cpu_budget *b = calloc(1, sizeof *b);
    if (!b)
        return QN_ENOMEM;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return QN_ENOMEM;
    }
    b->rate = percent / 100.0;
    b->tokens = CPU_BUDGET_BURST;
    b->at = cpu_budget__clock(CLOCK_MONOTONIC);
    *out = b;
    return 0;
}

void cpu_budget_set_busy(struct cpu_budget *b, cpu_budget_busy_fn busy, void *ctx)
{
    pthread_mutex_lock(&b->mu);
    b->busy = busy;
    b->busy_ctx = ctx;
    pthread_mutex_unlock(&b->mu);
}

void cpu_budget_destroy(struct cpu_budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* Fills the bucket for the time since the last fill, takes `used` from it
 * and says how long the caller sleeps to pay what it owes. Under b->mu. */
static double cpu_budget__charge(struct cpu_budget *b, double used, int busy)
{
    double now = cpu_budget__clock(CLOCK_MONOTONIC);
    b->tokens += (now - b->at) * b->rate;
    b->at = now;
    if (b->tokens > CPU_BUDGET_BURST || !busy)
        b->tokens = CPU_BUDGET_BURST; /* idle time, or no job: nothing is owed */
    b->tokens -= used;
    if (!(b->tokens < -CPU_BUDGET_SLACK))
        return 0;
    double wait = -b->tokens / b->rate;
    return wait < CPU_BUDGET_MAX_SLEEP ? wait : CPU_BUDGET_MAX_SLEEP;
}

double cpu_budget_pace(struct cpu_budget *b)
{
    if (!b || !(b->rate > 0))
        return 0;
    double cpu = cpu_budget__clock(CLOCK_THREAD_CPUTIME_ID);
    double used = cpu_budget__seen < 0 ? 0 : cpu - cpu_budget__seen;
    cpu_budget__seen = cpu;
    pthread_mutex_lock(&b->mu);
    cpu_budget_busy_fn busy = b->busy;
    void *ctx = b->busy_ctx;
    pthread_mutex_unlock(&b->mu);
    int holds = !busy || busy(ctx) > 0;
    pthread_mutex_lock(&b->mu);
    double wait = cpu_budget__charge(b, used, holds);
    b->slept += wait;
    pthread_mutex_unlock(&b->mu);
    if (wait > 0) {
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return wait;
}

double cpu_budget_slept(struct cpu_budget *b)
{
    pthread_mutex_lock(&b->mu);
    double s = b->slept;
    pthread_mutex_unlock(&b->mu);
    return s;
}
