/*
 * qn_mpi.h: what the job types of qn-mpi share: the job being run, the
 * agreement of all ranks on how a step ended, and rank 0's progress lines.
 *
 * qn-mpi runs one job, staged by the daemon in a spool directory
 * (schema/spool.h), on every rank of MPI_COMM_WORLD; which function runs it
 * is a table by job type (qn_mpi.c), so a type that learns to run on several
 * ranks adds one row (its file mpi_<type>.c defines a struct mpi_type). A
 * type's run function is called on every rank, collectively; it returns
 * the same code on every rank (mpi_agree), and on success rank 0 has written
 * the result files and result.json. Only the main thread of a rank calls
 * MPI (MPI_THREAD_FUNNELED); the work runs on threads (mpi_work).
 */
#ifndef QN_MPI_H
#define QN_MPI_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "spool.h"

#define MPI_REASON_MAX 256 /* bytes of a failure's reason */

/* One job on this rank. */
struct mpi_ctx {
    const char *dir;       /* the spool directory (borrowed: argv) */
    struct spool_job job;  /* job.json */
    int rank, size;        /* this rank, ranks in MPI_COMM_WORLD */
    char reason[MPI_REASON_MAX]; /* why this rank's step failed */
};

/* A job type qn-mpi runs: its name and its collective run function
 * (0, or a code with m->reason, the same code on every rank). */
struct mpi_type {
    const char *name;
    int (*run)(struct mpi_ctx *m);
};

/*
 * Collective: every rank passes its own rc (m->reason filled when nonzero);
 * every rank gets back the code of the lowest rank that failed, with its
 * reason in m->reason, or 0 when none did.
 */
int mpi_agree(struct mpi_ctx *m, int rc);

/* Rows [*lo, *hi) of n that this rank takes: contiguous slices in rank order,
 * their sizes differing by at most `unit` (slices start at multiples of unit,
 * unit >= 1). */
void mpi_slice(const struct mpi_ctx *m, size_t n, size_t unit, size_t *lo, size_t *hi);

/*
 * Collective: runs work(arg, done) on a thread of this rank while the main
 * thread relays progress: each rank's work counts finished units into
 * *done; rank 0 sums every rank's count and prints a progress line (of
 * `total`, the units of all ranks) when the sum grew by about 1%. Returns
 * work's code on this rank (not agreed: call mpi_agree).
 */
int mpi_work(struct mpi_ctx *m, int (*work)(void *arg, atomic_size_t *done), void *arg,
             size_t total);

/* Rank 0: writes one line (without newline, borrowed) to standard output
 * and flushes it; other ranks do nothing. Returns 0 or QN_EIO. */
int mpi_emit(const struct mpi_ctx *m, const char *line);

#endif
