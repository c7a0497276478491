/* mpi_dp.c: the engine's shard over MPI ranks, and rank 0's lines (see mpi_dp.h). */
#include "mpi_dp.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>

#include "qn_err.h"

/* MPI counts are int: sums in chunks of at most INT_MAX elements. */
static int mpi_dp__sum(void *buf, size_t n, MPI_Datatype type, size_t size)
{
    char *p = buf;
    while (n > 0) {
        int k = n > INT_MAX ? INT_MAX : (int)n;
        if (MPI_Allreduce(MPI_IN_PLACE, p, k, type, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return QN_EREMOTE;
        p += (size_t)k * size, n -= (size_t)k;
    }
    return 0;
}

static int mpi_dp__sum_f32(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    return mpi_dp__sum(buf, n, MPI_FLOAT, sizeof *buf);
}

static int mpi_dp__sum_f64(double *buf, size_t n, void *ctx)
{
    (void)ctx;
    return mpi_dp__sum(buf, n, MPI_DOUBLE, sizeof *buf);
}

void mpi_dp_shard(struct mpi_ctx *m, struct shard *out)
{
    *out = (struct shard){(size_t)m->rank, (size_t)m->size, mpi_dp__sum_f32, mpi_dp__sum_f64, m};
}

void mpi_dp_metric(const struct mpi_ctx *m, const char *name, uint64_t step, size_t epoch,
                   double value)
{
    if (m->rank != 0)
        return;
    char *line = spool_line_metric((int64_t)step, (int64_t)epoch, name, value);
    if (line)
        mpi_emit(m, line);
    free(line);
}

void mpi_dp_progress(const struct mpi_ctx *m, uint64_t done, uint64_t total)
{
    if (m->rank != 0)
        return;
    char *line = spool_line_progress(done, total);
    if (line)
        mpi_emit(m, line);
    free(line);
}
