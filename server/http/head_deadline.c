/*
 * head_deadline.c: the request-head deadline (see head_deadline.h).
 *
 * The watched connections are a doubly linked list under one mutex: open
 * and close are O(1) and happen once a connection, busy twice a request;
 * the reaper walks the list every HEAD_DEADLINE_TICK_MS, which for the
 * daemon's few hundred connections is microseconds. A connection is shut
 * down once (its entry is marked) and counted once; one log line a sweep
 * says how many were closed and from where the first came, so that an
 * attack of a thousand connections writes a line a sweep, not a thousand.
 */
#include "head_deadline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "qn_err.h"

#define HEAD_DEADLINE_TICK_MS 250 /* how often the reaper looks: the deadline's resolution */
#define HEAD_DEADLINE_ADDR 48     /* bytes of an address text (INET6_ADDRSTRLEN, and NUL) */

struct head_deadline_conn {
    struct head_deadline_conn *prev, *next;
    int fd;                      /* the connection's socket (open while listed) */
    int busy;                    /* a request is in progress: not watched */
    int reaped;                  /* shut down already (counted once) */
    double since;                /* monotonic seconds when the head began to be due */
    char addr[HEAD_DEADLINE_ADDR]; /* the client's address, for the log */
};

struct head_deadline {
    pthread_mutex_t mu;          /* guards everything below */
    pthread_cond_t cv;           /* wakes the reaper to stop */
    struct head_deadline_conn *head; /* the watched connections */
    double seconds;              /* the deadline */
    uint64_t reaped;             /* connections shut down so far */
    int stop;                    /* 1: the reaper returns */
    pthread_t reaper;
};

static double head_deadline__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Shuts down every idle connection past the deadline; hd->mu held. Returns how
 * many, and the address of the first into first (cap bytes). */
static unsigned head_deadline__sweep(struct head_deadline *hd, char *first, size_t cap)
{
    double now = head_deadline__now();
    unsigned n = 0;
    for (struct head_deadline_conn *c = hd->head; c; c = c->next) {
        if (c->busy || c->reaped || now - c->since < hd->seconds)
            continue;
        shutdown(c->fd, SHUT_RDWR); /* the library reads EOF and closes the connection */
        c->reaped = 1;
        if (n++ == 0)
            snprintf(first, cap, "%s", c->addr);
    }
    hd->reaped += n;
    return n;
}

/* The reaper: a sweep every tick until stopped. The wait is on the realtime
 * clock (the condition variable's default); a clock step only makes one
 * tick longer or shorter, the deadline itself is measured on the monotonic
 * clock. */
static void *head_deadline__reaper(void *arg)
{
    struct head_deadline *hd = arg;
    pthread_mutex_lock(&hd->mu);
    while (!hd->stop) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += HEAD_DEADLINE_TICK_MS * 1000000L;
        t.tv_sec += t.tv_nsec / 1000000000L;
        t.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&hd->cv, &hd->mu, &t);
        if (hd->stop)
            break;
        char first[HEAD_DEADLINE_ADDR] = "";
        unsigned n = head_deadline__sweep(hd, first, sizeof first);
        if (n) { /* logged outside the lock: stderr may block */
            pthread_mutex_unlock(&hd->mu);
            fprintf(stderr,
                    "qn: http: closed %u connection%s whose request head took over %.0f s "
                    "(the first from %s)\n",
                    n, n == 1 ? "" : "s", hd->seconds, first);
            pthread_mutex_lock(&hd->mu);
        }
    }
    pthread_mutex_unlock(&hd->mu);
    return NULL;
}

int head_deadline_create(unsigned seconds, struct head_deadline **out)
{
    *out = NULL;
    struct head_deadline *hd = calloc(1, sizeof *hd);
    if (!hd)
        return QN_ENOMEM;
    hd->seconds = seconds;
    pthread_mutex_init(&hd->mu, NULL);
    pthread_cond_init(&hd->cv, NULL);
    if (pthread_create(&hd->reaper, NULL, head_deadline__reaper, hd) != 0) {
        pthread_cond_destroy(&hd->cv);
        pthread_mutex_destroy(&hd->mu);
        free(hd);
        return QN_EIO;
    }
    *out = hd;
    return 0;
}

void head_deadline_destroy(struct head_deadline *hd)
{
    if (!hd)
        return;
    pthread_mutex_lock(&hd->mu);
    hd->stop = 1;
    pthread_cond_signal(&hd->cv);
    pthread_mutex_unlock(&hd->mu);
    pthread_join(hd->reaper, NULL);
    while (hd->head) {
        struct head_deadline_conn *next = hd->head->next;
        free(hd->head);
        hd->head = next;
    }
    pthread_cond_destroy(&hd->cv);
    pthread_mutex_destroy(&hd->mu);
    free(hd);
}

struct head_deadline_conn *head_deadline_open(struct head_deadline *hd, int fd,
                                              const char *addr)
{
    if (!hd || fd < 0)
        return NULL;
    struct head_deadline_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->since = head_deadline__now();
    snprintf(c->addr, sizeof c->addr, "%s", addr ? addr : "-");
    pthread_mutex_lock(&hd->mu);
    c->next = hd->head;
    if (hd->head)
        hd->head->prev = c;
    hd->head = c;
    pthread_mutex_unlock(&hd->mu);
    return c;
}

void head_deadline_close(struct head_deadline *hd, struct head_deadline_conn *c)
{
    if (!hd || !c)
        return;
    pthread_mutex_lock(&hd->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        hd->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&hd->mu);
    free(c);
}

void head_deadline_busy(struct head_deadline *hd, struct head_deadline_conn *c, int busy)
{
    if (!hd || !c)
        return;
    double now = busy ? 0 : head_deadline__now();
    pthread_mutex_lock(&hd->mu);
    c->busy = busy;
    if (!busy)
        c->since = now;
    pthread_mutex_unlock(&hd->mu);
}

uint64_t head_deadline_reaped(struct head_deadline *hd)
{
    if (!hd)
        return 0;
    pthread_mutex_lock(&hd->mu);
    uint64_t n = hd->reaped;
    pthread_mutex_unlock(&hd->mu);
    return n;
}
