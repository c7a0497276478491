/*
 * sweep.c: solving a device over many input rows on a pool of threads.
 *
 * The calling thread and n_threads - 1 helpers each own a struct dev_work and
 * take chunks of rows from one atomic counter (about a 64th of a thread's
 * share, SWEEP_CHUNK_MIN to SWEEP_CHUNK_MAX rows: a large sweep of cheap
 * solves claims, counts and shares cache lines between threads rarely, and
 * the threads still finish within one chunk's time of each other). Row i is
 * only ever written by the thread that claimed it, to out[i] and status[i],
 * and a solve depends only on its row, so the result is byte-identical for
 * any number of threads and any chunk size. Finished rows are counted with
 * an atomic add; a mutex serialises the user's progress callback, which is
 * called when at least ~1% more rows are done than at the last call (so at
 * most once per chunk) and once at the end.
 *
 * Trade-off: if a helper thread cannot be created the sweep goes on with the
 * threads it has (the output does not depend on the count); only a failure to
 * set up a worker's scratch (out of memory) stops the sweep with an error.
 */
#include "sweep.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

#define SWEEP_CHUNK_MIN 16    /* rows claimed at a time, at least */
#define SWEEP_CHUNK_MAX 256   /* and at most */
#define SWEEP_MAX_THREADS 256 /* more threads than this are not created */

/* State shared by all workers of one sweep. */
struct sweep__shared {
    const struct dev_model *d;       /* borrowed, prepared */
    const double *in;                /* (n, n_in) input rows, borrowed */
    size_t n;                        /* rows */
    size_t n_in;                     /* device inputs per row */
    size_t n_par;                    /* parameter values per row, after the inputs */
    const size_t *par;               /* (n_par) their indices in d->params, borrowed */
    double *out;                     /* (n) outputs, borrowed */
    int *status;                     /* (n) statuses, borrowed */
    const struct sweep_hooks *hooks; /* borrowed, never NULL */
    size_t chunk;                    /* rows claimed at a time */
    _Alignas(64) atomic_size_t next; /* first row not yet claimed (own cache line with
                                        done: every claim writes both) */
    atomic_size_t done;              /* rows finished */
    _Alignas(64) atomic_int stop;    /* nonzero: a worker failed or the sweep was canceled */
    atomic_int canceled;             /* nonzero: a solve was stopped by cancel */
    _Alignas(64) pthread_mutex_t mu; /* guards err, the callback and writes of reported */
    atomic_size_t reported;          /* done at the last progress call */
    size_t step;                     /* rows between progress calls (~1%) */
    int err;                         /* first setup failure of a worker (0 if none) */
};

static int sweep__cancel_requested(const struct sweep__shared *s)
{
    const atomic_int *c = s->hooks->cancel;
    return (c && atomic_load_explicit(c, memory_order_relaxed)) ||
           atomic_load_explicit(&s->stop, memory_order_relaxed);
}

/* Whether a progress call is due with `done` rows finished. */
static int sweep__due(const struct sweep__shared *s, size_t done)
{
    size_t reported = atomic_load_explicit(&s->reported, memory_order_relaxed);
    return done > reported && (done - reported >= s->step || done == s->n);
}

/* Adds `rows` finished rows and calls the progress callback when due; the
 * calls see `done` grow, and the last one is n when every row was solved. */
static void sweep__progress(struct sweep__shared *s, size_t rows)
{
    size_t done = atomic_fetch_add_explicit(&s->done, rows, memory_order_relaxed) + rows;
    if (!s->hooks->progress || !sweep__due(s, done))
        return;
    pthread_mutex_lock(&s->mu);
    done = atomic_load(&s->done);
    if (sweep__due(s, done)) {
        atomic_store_explicit(&s->reported, done, memory_order_relaxed);
        s->hooks->progress(done, s->n, s->hooks->ctx);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Records a worker's setup failure and stops the others. */
static void sweep__fail(struct sweep__shared *s, int err)
{
    pthread_mutex_lock(&s->mu);
    if (!s->err)
        s->err = err;
    pthread_mutex_unlock(&s->mu);
    atomic_store(&s->stop, 1);
}

/* Makes w solve with the parameter values of row `row` (n_par of them after its
 * inputs), the model's own values elsewhere. Returns 0 or QN_ENOMEM. */
static int sweep__row_params(const struct sweep__shared *s, struct dev_work *w, const double *row)
{
    double theta[DEV_MAX_PARAMS];
    memcpy(theta, s->d->params, s->d->n_params * sizeof *theta);
    for (size_t k = 0; k < s->n_par; k++)
        theta[s->par[k]] = row[s->n_in + k];
    return dev_work_set_params(w, theta);
}

/* Solves rows [lo, hi); returns how many were attempted (fewer when canceled). */
static size_t sweep__chunk(struct sweep__shared *s, struct dev_work *w, size_t lo, size_t hi)
{
    size_t width = s->n_in + s->n_par;
    for (size_t i = lo; i < hi; i++) {
        if (sweep__cancel_requested(s))
            return i - lo;
        const double *row = s->in + i * width;
        s->status[i] = s->n_par ? sweep__row_params(s, w, row) : 0;
        if (s->status[i] == 0)
            s->status[i] = dev_eval(w, row, &s->out[i]);
        if (s->status[i] != 0)
            s->out[i] = NAN;
        if (s->status[i] == QN_ECANCELED)
            atomic_store(&s->canceled, 1);
    }
    return hi - lo;
}

/* One worker: claims chunks until the rows run out or the sweep stops. */
static void *sweep__worker(void *arg)
{
    struct sweep__shared *s = arg;
    struct dev_work w;
    int rc = dev_work_init(&w, s->d, s->hooks->cancel);
    if (rc) {
        sweep__fail(s, rc);
        return NULL;
    }
    for (;;) {
        size_t lo = atomic_fetch_add(&s->next, s->chunk);
        if (lo >= s->n || sweep__cancel_requested(s))
            break;
        size_t hi = s->n - lo < s->chunk ? s->n : lo + s->chunk;
        size_t rows = sweep__chunk(s, &w, lo, hi);
        if (rows)
            sweep__progress(s, rows);
        if (rows < hi - lo)
            break;
    }
    dev_work_close(&w);
    return NULL;
}

/* Marks every row as not attempted, so rows a canceled sweep skips are defined. */
static void sweep__prefill(double *out, int *status, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = NAN;
        status[i] = QN_ECANCELED;
    }
}

/* Runs the calling thread plus up to n_threads - 1 helpers over s. */
static int sweep__pool(struct sweep__shared *s, size_t n_threads)
{
    pthread_t *tid = NULL;
    size_t started = 0;
    if (n_threads > 1) {
        tid = calloc(n_threads - 1, sizeof *tid);
        if (!tid)
            return QN_ENOMEM;
        while (started < n_threads - 1 && pthread_create(&tid[started], NULL, sweep__worker, s) == 0)
            started++;
    }
    sweep__worker(s);
    for (size_t t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    free(tid);
    return 0;
}

int sweep_run(const struct dev_model *d, const double *in, size_t n, size_t n_threads,
              double *out, int *status, const struct sweep_hooks *hooks)
{
    return sweep_run_params(d, in, n, 0, NULL, n_threads, out, status, hooks);
}

/* Whether the n_par parameter indices par (may be NULL when n_par is 0) are d's. */
static int sweep__params_ok(const struct dev_model *d, size_t n_par, const size_t *par)
{
    if (n_par && !par)
        return 0;
    for (size_t k = 0; k < n_par; k++)
        if (par[k] >= d->n_params)
            return 0;
    return n_par <= DEV_MAX_PARAMS;
}

int sweep_run_params(const struct dev_model *d, const double *in, size_t n, size_t n_par,
                     const size_t *par, size_t n_threads, double *out, int *status,
                     const struct sweep_hooks *hooks)
{
    static const struct sweep_hooks no_hooks = {NULL, NULL, NULL};
    if (!d || (n && (!in || !out || !status)) || !sweep__params_ok(d, n_par, par))
        return QN_EINVAL;
    if (n == 0)
        return 0;
    size_t n_in = dev_n_inputs(d), width = n_in + n_par;
    if (n_in == 0 || n > SIZE_MAX / width - SWEEP_CHUNK_MAX * (SWEEP_MAX_THREADS + 1))
        return QN_EINVAL;
    size_t chunks = (n + SWEEP_CHUNK_MIN - 1) / SWEEP_CHUNK_MIN;
    n_threads = n_threads == 0 ? 1 : n_threads;
    n_threads = n_threads > SWEEP_MAX_THREADS ? SWEEP_MAX_THREADS : n_threads;
    n_threads = n_threads > chunks ? chunks : n_threads;
    size_t chunk = n / (64 * n_threads);
    chunk = chunk < SWEEP_CHUNK_MIN   ? SWEEP_CHUNK_MIN
            : chunk > SWEEP_CHUNK_MAX ? SWEEP_CHUNK_MAX
                                      : chunk;

    struct sweep__shared s = {.d = d, .in = in, .n = n, .n_in = n_in, .n_par = n_par,
                              .par = par, .out = out,
                              .status = status, .hooks = hooks ? hooks : &no_hooks,
                              .step = n / 100 ? n / 100 : 1, .chunk = chunk};
    atomic_init(&s.next, 0);
    atomic_init(&s.done, 0);
    atomic_init(&s.reported, 0);
    atomic_init(&s.stop, 0);
    atomic_init(&s.canceled, 0);
    if (pthread_mutex_init(&s.mu, NULL) != 0)
        return QN_ENOMEM;
    sweep__prefill(out, status, n);
    int rc = sweep__pool(&s, n_threads);
    if (rc == 0)
        rc = s.err;
    if (rc == 0 && (atomic_load(&s.done) < n || atomic_load(&s.canceled)))
        rc = QN_ECANCELED;
    pthread_mutex_destroy(&s.mu);
    return rc;
}
