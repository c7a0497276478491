/*
 * shard.h: data-parallel runs, one shard of every batch per rank.
 *
 * In a data-parallel run, R ranks (processes, or threads in a test) each
 * hold the same model and walk the same batches in the same order; rank r
 * computes the loss and gradient of its own contiguous slice of each
 * batch's rows (shard_rows), the ranks sum what they computed (the caller's
 * sum hooks: MPI_Allreduce in qn-mpi), and every rank applies the same
 * optimizer step. The engine scales a shard's gradient by its share of the
 * batch (rows / B), so the sum over the ranks is the gradient of the mean
 * over the whole batch: the single-process run's, up to the order of the
 * additions. The sum hooks must hand every rank the same bits, and the same
 * bits for the same inputs on every run (a fixed reduction order), so the
 * ranks never drift apart and a run is reproducible for a given rank count.
 *
 * A NULL struct shard, or one of one rank, is the single-process run, and
 * costs nothing.
 */
#ifndef QN_SHARD_H
#define QN_SHARD_H

#include <stddef.h>

/* Sums buf (n values) across the ranks in place; returns 0 or a negative qn_err. */
typedef int (*shard_sum_f32_fn)(float *buf, size_t n, void *ctx);
typedef int (*shard_sum_f64_fn)(double *buf, size_t n, void *ctx);

struct shard {
    size_t rank;            /* this rank, 0..ranks-1 */
    size_t ranks;           /* R >= 1 */
    shard_sum_f32_fn sum;   /* gradients; may be NULL only when ranks is 1 */
    shard_sum_f64_fn sum64; /* loss sums and counts; may be NULL only when ranks is 1 */
    void *ctx;              /* borrowed, passed to both */
};

/* Nonzero when s spreads work over more than one rank. */
int shard_active(const struct shard *s);

/* This rank's rows of a batch of B rows: [*off, *off + *len), contiguous, the
 * ranks' slices in rank order covering the batch (a rank may get none when
 * B < R). s may be NULL (the whole batch). */
void shard_rows(const struct shard *s, size_t B, size_t *off, size_t *len);

/* The sums across ranks, in place; no-ops when s is not active. Return 0, a
 * hook's error, or QN_EINVAL (an active shard without its hook). */
int shard_sum(const struct shard *s, float *buf, size_t n);
int shard_sum64(const struct shard *s, double *buf, size_t n);

/* Checks a shard's fields: rank < ranks, hooks present when ranks > 1. 0 or QN_EINVAL. */
int shard_check(const struct shard *s);

#endif
