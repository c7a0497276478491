/*
 * net_replica.h: copies of a network, for whole forward passes in parallel.
 *
 * Some work is made of independent forward passes of one network: the chips
 * of an evaluation (train_evaluate_chips) and the members of an ES population
 * (train.h). Spreading each pass's device solves over threads (net.h) leaves
 * the dense products, the surrogates and the closed forms on one thread and
 * starts and joins threads at every layer of every pass; giving each thread
 * whole passes on its own copy of the network keeps every thread busy for the
 * whole pass. A replica is such a copy: the same layers, vias, surrogates
 * (borrowed, read-only, shared), wiring and parameters as its source, with
 * its own buffers and device solvers. A pass on a replica computes bit for
 * bit what the same pass on its source computes (the same code on the same
 * shapes, chips and noise keyed by the same counters), so results do not
 * depend on how the passes are spread over threads.
 *
 * Trade-off: a replica copies the parameter slab (a 784-128-10 network's is
 * 0.4 MB) rather than borrowing it: an ES member needs its own perturbed
 * parameters anyway, and one copy per thread costs less than a forward pass.
 */
#ifndef QN_NET_REPLICA_H
#define QN_NET_REPLICA_H

#include <stddef.h>

#include "net.h"

/*
 * A replica of src with n_threads device threads (0 = 1) into *out
 * (net_destroy it): src's current layers (widths, vias, surrogates, wiring, cell lists)
 * with its parameters, chip and noise settings (net_replica_sync). src is
 * borrowed; its devices and surrogates must outlive the replica. Returns 0
 * or what net_create returns (QN_ENOMEM).
 */
int net_replica_create(struct net **out, const struct net *src, size_t n_threads);

/*
 * Makes dst, a replica of src, compute what src computes now: parameters,
 * the chip (drawn parameters and seed) and noise settings (on, seed, step,
 * first row) copied; dst's tracking off and its counters (solves, failed solves, each
 * layer's surrogate and out-of-domain rows) zero. Does not allocate.
 */
void net_replica_sync(struct net *dst, const struct net *src);

/* Adds replica r's counters (solves, failed solves, each layer's surrogate
 * and out-of-domain rows) into n and sets them to zero in r. */
void net_replica_absorb(struct net *n, struct net *r);

/* Work item `item` of net_replica_run, computed on replica r by thread t
 * (0 .. n_reps - 1, for per-thread scratch in ctx). Returns 0 or a code. */
typedef int (*net_replica_fn)(struct net *r, size_t t, size_t item, void *ctx);

/*
 * Computes items 0 .. n_items - 1 over n_reps threads, thread t on reps[t]
 * (the caller's thread is thread 0), each taking the lowest item not yet
 * taken until none is left or an item has failed. Returns 0, or the code of
 * the lowest-numbered item that failed (items are taken in order, so every
 * item below it ran; items above it may not have). fn must write only what
 * its item and its thread own.
 */
int net_replica_run(struct net *const *reps, size_t n_reps, size_t n_items, net_replica_fn fn,
                    void *ctx);

#endif
