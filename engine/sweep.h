/*
 * sweep.h: solving a device over many inputs on a pool of threads.
 *
 * Rows are independent, so threads take chunks of rows from a shared counter
 * and write into disjoint parts of the output: the result is byte-identical
 * whatever the thread count. Progress is reported through a callback and a
 * cancel flag is checked between rows and inside each solve.
 */
#ifndef QN_SWEEP_H
#define QN_SWEEP_H

#include <stdatomic.h>
#include <stddef.h>

#include "device.h"

/* Called from worker threads (serialised by the sweep) after rows finish. */
typedef void (*sweep_progress_fn)(size_t done, size_t total, void *ctx);

struct sweep_hooks {
    sweep_progress_fn progress; /* may be NULL */
    void *ctx;                  /* passed to progress, borrowed */
    const atomic_int *cancel;   /* may be NULL; nonzero stops the sweep */
};

/*
 * Solves `d` (prepared) at n input rows in[n, dev_n_inputs(d)] with
 * n_threads threads (0 = 1). Writes out[n] (NaN where a row failed) and
 * status[n] (0 or the row's qn_err code). Returns 0 when all rows were
 * attempted (failed rows are not an error), QN_ECANCELED, or QN_ENOMEM.
 */
int sweep_run(const struct dev_model *d, const double *in, size_t n, size_t n_threads,
              double *out, int *status, const struct sweep_hooks *hooks);

/*
 * As sweep_run, over rows that also set parameters of the device: row i is
 * in[i, dev_n_inputs(d) + n_par], the device's inputs then the values of its
 * parameters par[0..n_par) (indices into d->params, borrowed; each below
 * d->n_params); the row is solved with the model's parameters but those
 * (dev_work_set_params). n_par 0 is sweep_run. QN_EINVAL for an index out
 * of range, else as sweep_run.
 */
int sweep_run_params(const struct dev_model *d, const double *in, size_t n, size_t n_par,
                     const size_t *par, size_t n_threads, double *out, int *status,
                     const struct sweep_hooks *hooks);

#endif
