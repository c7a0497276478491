/*
 * mpi_sweep.c: a sweep on several ranks. Every rank generates the whole
 * design (it is cheap and deterministic) and solves its contiguous slice of
 * rows with sweep_run_params on the job's threads; rank 0 gathers the
 * outputs and statuses in row order (MPI_Gatherv) and writes them to the
 * spool. A row's result depends on that row only (engine/sweep.h), so the
 * gathered arrays, and the dataset the daemon stores from them, are
 * byte-identical to a sweep in one process.
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_mpi.h"
#include "spec.h"
#include "sweep.h"

/* One rank's sweep. */
struct mpi_sweep {
    struct mpi_ctx *m;
    struct sweep_spec sw;
    struct dev_model dev;
    size_t n;          /* rows of the whole design */
    double *in;        /* (n, sw.n_ranges) the design (owned) */
    size_t lo, hi;     /* this rank's rows */
    double *out;       /* (n) on rank 0, (hi - lo) elsewhere (owned) */
    int *status;       /* as out (owned) */
    int opened;        /* sw and dev must be closed */
};

/* sweep_hooks.progress: this rank's finished rows into the relay's count. */
static void mpi_sweep__progress(size_t done, size_t total, void *ctx)
{
    (void)total;
    atomic_store((atomic_size_t *)ctx, done);
}

/* mpi_work's work: solves rows [lo, hi) into the front of out and status. */
static int mpi_sweep__solve(void *arg, atomic_size_t *done)
{
    struct mpi_sweep *s = arg;
    struct sweep_hooks hooks = {mpi_sweep__progress, done, NULL};
    size_t dim = s->sw.n_ranges, k = s->hi - s->lo;
    if (k == 0)
        return 0;
    int rc = sweep_run_params(&s->dev, s->in + s->lo * dim, k, dim - s->sw.n_inputs,
                              s->sw.param_idx, s->m->job.threads, s->out, s->status, &hooks);
    if (rc)
        snprintf(s->m->reason, sizeof s->m->reason, "rank %d: sweep stopped: %s", s->m->rank,
                 qn_err_msg(rc));
    return rc;
}

/* Opens the spec and the device, the design, and this rank's buffers. */
static int mpi_sweep__setup(struct mpi_sweep *s)
{
    struct mpi_ctx *m = s->m;
    struct spec_error e = {{0}, {0}};
    int rc = spool_sweep_open(m->job.spec, &s->sw, &s->dev, &e);
    if (rc) {
        snprintf(m->reason, sizeof m->reason, "the staged sweep is not valid: %s: %s", e.path,
                 e.msg);
        return rc;
    }
    s->opened = 1;
    if ((rc = spool_sweep_design(&s->sw, &s->n, &s->in))) {
        snprintf(m->reason, sizeof m->reason, "cannot generate the design: %s", qn_err_msg(rc));
        return rc;
    }
    mpi_slice(m, s->n, 1, &s->lo, &s->hi);
    size_t rows = m->rank == 0 ? s->n : s->hi - s->lo;
    s->out = malloc((rows ? rows : 1) * sizeof *s->out);
    s->status = malloc((rows ? rows : 1) * sizeof *s->status);
    if (!s->out || !s->status) {
        snprintf(m->reason, sizeof m->reason, "rank %d: out of memory", m->rank);
        return QN_ENOMEM;
    }
    return 0;
}

static void mpi_sweep__close(struct mpi_sweep *s)
{
    if (s->opened) {
        spec_sweep_close(&s->sw);
        dev_model_close(&s->dev);
    }
    free(s->in);
    free(s->out);
    free(s->status);
}

/* Every rank's slice into rank 0's out and status, in rank (= row) order. */
static int mpi_sweep__gather(struct mpi_sweep *s)
{
    struct mpi_ctx *m = s->m;
    int *counts = calloc((size_t)m->size, sizeof *counts);
    int *displs = calloc((size_t)m->size, sizeof *displs);
    int rc = counts && displs ? 0 : QN_ENOMEM;
    if (rc == 0 && s->n > (size_t)INT32_MAX)
        rc = QN_ERANGE; /* MPI counts are int */
    if ((rc = mpi_agree(m, rc)) == 0) {
        for (int r = 0; r < m->size; r++) {
            struct mpi_ctx other = {.rank = r, .size = m->size};
            size_t lo, hi;
            mpi_slice(&other, s->n, 1, &lo, &hi);
            counts[r] = (int)(hi - lo), displs[r] = (int)lo;
        }
        int k = (int)(s->hi - s->lo);
        /* Rank 0's own slice is already in place (rows [0, k) of out). */
        MPI_Gatherv(m->rank == 0 ? MPI_IN_PLACE : s->out, k, MPI_DOUBLE, s->out, counts, displs,
                    MPI_DOUBLE, 0, MPI_COMM_WORLD);
        MPI_Gatherv(m->rank == 0 ? MPI_IN_PLACE : s->status, k, MPI_INT, s->status, counts,
                    displs, MPI_INT, 0, MPI_COMM_WORLD);
    }
    free(counts);
    free(displs);
    return rc;
}

/* Rank 0: the arrays, then result.json. */
static int mpi_sweep__write(struct mpi_sweep *s)
{
    struct mpi_ctx *m = s->m;
    if (m->rank != 0)
        return 0;
    int rc = spool_sweep_result_write(m->dir, s->n, s->out, s->status, m->reason,
                                      sizeof m->reason);
    json_t *r = rc ? NULL : json_pack("{sI}", "rows", (json_int_t)s->n);
    if (rc == 0)
        rc = r ? spool_json_write(m->dir, SPOOL_RESULT, r, m->reason, sizeof m->reason)
               : QN_ENOMEM;
    json_decref(r);
    return rc;
}

static int mpi_sweep_run(struct mpi_ctx *m)
{
    struct mpi_sweep s = {.m = m};
    int rc = mpi_agree(m, mpi_sweep__setup(&s));
    if (rc == 0)
        rc = mpi_agree(m, mpi_work(m, mpi_sweep__solve, &s, s.n));
    if (rc == 0)
        rc = mpi_sweep__gather(&s);
    if (rc == 0)
        rc = mpi_agree(m, mpi_sweep__write(&s));
    mpi_sweep__close(&s);
    return rc;
}

const struct mpi_type mpi_sweep_type = {.name = "sweep", .run = mpi_sweep_run};
