/* cpu_budget.c: turns for requests while jobs run, and the thread that keeps them (cpu_budget.h). */
#include "cpu_budget.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "qn_err.h"

struct cpu_budget__waiting {
    void *item;
    double turn;
};

struct cpu_budget {
    double rate; /* CPU seconds per second while busy */
    cpu_budget_hold_fn release;
    pthread_mutex_t mu;
    pthread_cond_t cv;                /* the queue changed, or stop */
    pthread_t thread;
    int started, stop;                /* (mu) */
    cpu_budget_busy_fn busy;          /* NULL: always busy (mu) */
    void *busy_ctx;                   /* (mu) */
    double cost;                      /* moving average of a request's CPU seconds (mu) */
    double next;                      /* the next free turn (mu) */
    struct cpu_budget__waiting *q;    /* the queue, q[head..head+n) in a ring of cap (mu) */
    size_t head, n, cap;
    double waited;                    /* (mu) */
};

/* The calling thread's CPU seconds at its previous turn (of budget `of`). */
static _Thread_local struct {
    const struct cpu_budget *of;
    double seen;
} cpu_budget__mine;

static double cpu_budget__clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct timespec cpu_budget__ts(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    return ts;
}

/* The pacing thread: releases each queued request at its turn (all of them
 * at once when stopping). */
static void *cpu_budget__main(void *arg)
{
    struct cpu_budget *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->n && !b->stop)
            pthread_cond_wait(&b->cv, &b->mu);
        if (!b->n)
            break; /* stopping, nothing waits */
        struct cpu_budget__waiting w = b->q[b->head];
        double now = cpu_budget__clock(CLOCK_MONOTONIC);
        if (w.turn > now && !b->stop) {
            struct timespec ts = cpu_budget__ts(w.turn);
            pthread_cond_timedwait(&b->cv, &b->mu, &ts);
            continue;
        }
        b->head = (b->head + 1) % b->cap;
        b->n--;
        b->release(w.item); /* under mu: cpu_budget_wait held it under mu */
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int cpu_budget_create(unsigned percent, cpu_budget_hold_fn release, struct cpu_budget **out)
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
        pthread_join(b->thread, NULL); /* every queued request released */
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

/* The CPU the calling thread used since its previous turn on b. */
static double cpu_budget__used(const struct cpu_budget *b)
{
    double cpu = cpu_budget__clock(CLOCK_THREAD_CPUTIME_ID);
    double used = cpu_budget__mine.of == b ? cpu - cpu_budget__mine.seen : 0;
    cpu_budget__mine.of = b;
    cpu_budget__mine.seen = cpu;
    return used;
}

double cpu_budget_turn(struct cpu_budget *b)
{
    if (!b || !(b->rate > 0))
        return 0;
    double used = cpu_budget__used(b);
    pthread_mutex_lock(&b->mu);
    cpu_budget_busy_fn busy = b->busy;
    void *ctx = b->busy_ctx;
    pthread_mutex_unlock(&b->mu);
    int holds = !busy || busy(ctx) > 0;
    double now = cpu_budget__clock(CLOCK_MONOTONIC), turn = 0;
    pthread_mutex_lock(&b->mu);
    b->cost += CPU_BUDGET_AVERAGE * (used - b->cost);
    if (!holds || b->next < now - CPU_BUDGET_BURST / b->rate)
        b->next = holds ? now - CPU_BUDGET_BURST / b->rate : now; /* no backlog beyond the burst */
    if (holds) {
        turn = b->next;
        b->next += b->cost / b->rate;
        if (turn > now + CPU_BUDGET_MAX_WAIT)
            turn = now + CPU_BUDGET_MAX_WAIT;
    }
    pthread_mutex_unlock(&b->mu);
    return turn > now ? turn : 0;
}

int cpu_budget_wait(struct cpu_budget *b, void *item, double turn, cpu_budget_hold_fn hold)
{
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if (b->stop || !b->started) {
        rc = QN_EBUSY;
    } else if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct cpu_budget__waiting *q = malloc(cap * sizeof *q);
        if (!q)
            rc = QN_ENOMEM;
        for (size_t i = 0; q && i < b->n; i++)
            q[i] = b->q[(b->head + i) % b->cap];
        if (q) {
            free(b->q);
            b->q = q, b->head = 0, b->cap = cap;
        }
    }
    if (rc == 0) {
        hold(item);
        b->q[(b->head + b->n++) % b->cap] = (struct cpu_budget__waiting){item, turn};
        b->waited += turn - cpu_budget__clock(CLOCK_MONOTONIC);
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

double cpu_budget_waited(struct cpu_budget *b)
{
    pthread_mutex_lock(&b->mu);
    double s = b->waited;
    pthread_mutex_unlock(&b->mu);
    return s;
}
