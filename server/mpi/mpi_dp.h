/*
 * mpi_dp.h: what qn-mpi's data-parallel job types (train, fit) share: the
 * engine's shard (engine/shard.h) over MPI_COMM_WORLD, whose sums are
 * MPI_Allreduce, and rank 0's metric and progress lines.
 *
 * MPI_Allreduce hands every rank the same bits (Open MPI's algorithms for
 * MPI_SUM combine the same operands in a fixed tree for a given size and
 * rank count; the ranks' operands differ in order only, and float addition
 * is commutative), so the ranks keep identical parameters, and a run is
 * reproducible for a given rank count. The sums run on the main thread,
 * which is the one that calls MPI (MPI_THREAD_FUNNELED).
 */
#ifndef QN_MPI_DP_H
#define QN_MPI_DP_H

#include <stddef.h>
#include <stdint.h>

#include "qn_mpi.h"
#include "shard.h"

/* This rank's shard of m's ranks (m borrowed: it must outlive the shard). */
void mpi_dp_shard(struct mpi_ctx *m, struct shard *out);

/* Rank 0: a metric line and a progress line (nothing on other ranks; a line
 * that cannot be written is dropped: the job's outcome does not hang on it). */
void mpi_dp_metric(const struct mpi_ctx *m, const char *name, uint64_t step, size_t epoch,
                   double value);
void mpi_dp_progress(const struct mpi_ctx *m, uint64_t done, uint64_t total);

#endif
