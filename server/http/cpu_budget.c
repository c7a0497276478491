/* cpu_budget.c: requests admitted at the pace of a CPU budget while jobs run (cpu_budget.h). */
#include "cpu_budget.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "qn_err.h"

/* A waiting request and when it came to wait. */
struct cpu_budget__waiting {
    void *item;
    double since;
};

struct cpu_budget {
    double rate; /* CPU seconds per second while busy */
    unsigned long number; /* its number, from 1 (cpu_budget__made) */
    cpu_budget_release_fn release;
    pthread_mutex_t mu;
    pthread_cond_t cv;                /* the queue changed, or stop */
    pthread_t thread;
    int started, stop;                /* (mu) */
    cpu_budget_busy_fn busy;          /* NULL: always busy (mu) */
    void *busy_ctx;                   /* (mu) */
    double cost;                      /* moving average of a request's CPU seconds (mu) */
    double paid;                      /* CLOCK_MONOTONIC second the CPU used is paid for (mu) */
    struct cpu_budget__waiting *q;    /* the queue, q[head..head+n) in a ring of cap (mu) */
    size_t head, n, cap;
    double waited;                    /* (mu) */
};

/* The calling thread's CPU seconds at its previous charge (on the budget
 * numbered `of`: a budget made where a freed one was is another), and what
 * was booked for the request it has run since then. */
static _Thread_local struct {
    unsigned long of;
    double seen, booked;
} cpu_budget__mine;
static atomic_ulong cpu_budget__made; /* budgets made so far: their numbers */

static double cpu_budget__clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keeps b->paid within [now - burst, now + max wait]. Under mu. */
static void cpu_budget__bound(struct cpu_budget *b, double now)
{
    double lo = now - CPU_BUDGET_BURST / b->rate, hi = now + CPU_BUDGET_MAX_WAIT;
    b->paid = b->paid < lo ? lo : b->paid > hi ? hi : b->paid;
}

/* Lets the first waiting request in, its cost booked on the clock at the
 * average (the thread that runs it takes the booking back when it charges
 * what the request really used). Under mu (its release is under the lock
 * its hold was). */
static void cpu_budget__let_in(struct cpu_budget *b, double now)
{
    struct cpu_budget__waiting w = b->q[b->head];
    b->head = (b->head + 1) % b->cap;
    b->n--;
    b->paid += b->cost / b->rate;
    b->waited += now - w.since;
    b->release(w.item, b->cost);
}

/*
 * The pacing thread: lets the waiting requests in, first come first served,
 * as the clock catches up (all of them at once when stopping). Each time it
 * wakes it lets in everyone the clock allows within CPU_BUDGET_SLACK, so it
 * wakes about once per that much time rather than once per request (at one
 * wake a request it used 11% of a CPU at 7,500 requests/s), and its own CPU
 * goes on the clock too.
 */
static void *cpu_budget__main(void *arg)
{
    struct cpu_budget *b = arg;
    double cpu = cpu_budget__clock(CLOCK_THREAD_CPUTIME_ID);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->n && !b->stop)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->n)
            break; /* stopping, nobody waits */
        double c = cpu_budget__clock(CLOCK_THREAD_CPUTIME_ID);
        b->paid += (c - cpu) / b->rate;
        cpu = c;
        double now = cpu_budget__clock(CLOCK_MONOTONIC);
        cpu_budget__bound(b, now);
        while (b->n && (b->paid <= now + CPU_BUDGET_SLACK || b->stop))
            cpu_budget__let_in(b, now);
        if (!b->n)
            continue;
        double at = b->paid - CPU_BUDGET_SLACK / 2;
        struct timespec ts = {(time_t)at, (long)((at - (double)(time_t)at) * 1e9)};
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int cpu_budget_create(unsigned percent, cpu_budget_release_fn release, struct cpu_budget **out)
{
    struct cpu_budget *b = calloc(1, sizeof *b);
    if (!b)
        return QN_ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&b->mu, NULL) == 0;
    if (ok && pthread_cond_init(&b->cv, &ca) != 0) {
        pthread_mutex_destroy(&b->mu);
        ok = 0;
    }
    pthread_condattr_destroy(&ca);
    if (!ok) {
        free(b);
        return QN_ENOMEM;
    }
    b->rate = percent / 100.0;
    b->number = atomic_fetch_add(&cpu_budget__made, 1) + 1;
    b->release = release;
    if (b->rate > 0 && pthread_create(&b->thread, NULL, cpu_budget__main, b) != 0) {
        cpu_budget_destroy(b);
        return QN_EIO;
    }
    b->started = b->rate > 0;
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

void cpu_budget_stop(struct cpu_budget *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    int join = b->started && !b->stop;
    b->stop = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (join)
        pthread_join(b->thread, NULL); /* every waiting request let in */
}

void cpu_budget_destroy(struct cpu_budget *b)
{
    if (!b)
        return;
    cpu_budget_stop(b);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b->q);
    free(b);
}

/*
 * Charges the calling thread's CPU since its previous charge to b's clock,
 * in place of the booking of the request it ran since (a request is charged
 * this way as the next one on its thread is about to run), and takes it into
 * the average cost. Under mu.
 */
static void cpu_budget__charge(struct cpu_budget *b)
{
    double cpu = cpu_budget__clock(CLOCK_THREAD_CPUTIME_ID);
    if (cpu_budget__mine.of == b->number) {
        double used = cpu - cpu_budget__mine.seen;
        b->paid += (used - cpu_budget__mine.booked) / b->rate;
        b->cost += CPU_BUDGET_AVERAGE * (used - b->cost);
    }
    cpu_budget__mine.of = b->number;
    cpu_budget__mine.seen = cpu;
    cpu_budget__mine.booked = 0;
}

void cpu_budget_ran(struct cpu_budget *b, double booked)
{
    if (!b || !(b->rate > 0))
        return;
    pthread_mutex_lock(&b->mu);
    cpu_budget__charge(b);
    pthread_mutex_unlock(&b->mu);
    cpu_budget__mine.booked = booked;
}

/* Room for one more waiting request. Under mu. 0 or QN_ENOMEM. */
static int cpu_budget__room(struct cpu_budget *b)
{
    if (b->n < b->cap)
        return 0;
    size_t cap = b->cap ? 2 * b->cap : 64;
    struct cpu_budget__waiting *q = malloc(cap * sizeof *q);
    if (!q)
        return QN_ENOMEM;
    for (size_t i = 0; i < b->n; i++)
        q[i] = b->q[(b->head + i) % b->cap];
    free(b->q);
    b->q = q, b->head = 0, b->cap = cap;
    return 0;
}

int cpu_budget_admit(struct cpu_budget *b, void *item, cpu_budget_hold_fn hold)
{
    if (!b || !(b->rate > 0))
        return 0;
    pthread_mutex_lock(&b->mu);
    cpu_budget_busy_fn busy = b->busy;
    void *ctx = b->busy_ctx;
    pthread_mutex_unlock(&b->mu);
    int holds = !busy || busy(ctx) > 0;
    double now = cpu_budget__clock(CLOCK_MONOTONIC);
    int waits = 0;
    pthread_mutex_lock(&b->mu);
    cpu_budget__charge(b);
    cpu_budget__bound(b, now);
    if (!holds || b->stop) {
        b->paid = now;
    } else if (!b->n && b->paid <= now) {
        b->paid += b->cost / b->rate;
        cpu_budget__mine.booked = b->cost;
    } else if (cpu_budget__room(b) == 0) {
        hold(item);
        b->q[(b->head + b->n++) % b->cap] = (struct cpu_budget__waiting){item, now};
            if (b->n == 1)
            pthread_cond_signal(&b->cv); /* the pacer sleeps on an empty queue */
        waits = 1;
    }
    pthread_mutex_unlock(&b->mu);
    return waits;
}

double cpu_budget_waited(struct cpu_budget *b)
{
    pthread_mutex_lock(&b->mu);
    double s = b->waited;
    pthread_mutex_unlock(&b->mu);
    return s;
}
