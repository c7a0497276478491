/*
 * train.h: training and evaluating device networks.
 *
 * The loop reads like the pseudocode it is: for each epoch, shuffle (a
 * permutation drawn from seed and epoch alone, so a run resumed at epoch k
 * sees exactly the batches an uninterrupted run would), then per batch
 * gather -> forward -> loss -> zero_grad -> backward -> update. Metrics and
 * checkpoints leave through callbacks; the caller decides where they go.
 *
 * With the ES optimizer (evolution strategies) a step does not backpropagate:
 * for pairs k = 0..P/2-1 (P the population) it forwards the batch at
 * theta + sigma eps_k and theta - sigma eps_k (antithetic pairs, eps_k
 * N(0, 1) on the trainable parameters, drawn from the seed, the step and k
 * alone, so a resumed run repeats them), turns the P losses into centred
 * ranks u (0.5 for the lowest down to -0.5) and takes
 * g = -(1 / (P sigma)) sum_k (u+_k - u-_k) eps_k as the gradient of the step
 * (optim.h). Only forward passes are needed, so layers via device may have
 * readouts without a gradient (spike_rate; build them forward_only). The
 * pairs run in parallel, each thread taking whole pairs on its own replica of
 * the network (net_replica.h; min(n_threads, P/2) replicas, built per epoch,
 * the network's threads shared out among them); every member's forward is
 * keyed for noise as the sequential order numbers it (forward 1 + m after the
 * one at theta), so the step is the same bit for bit whatever the number of
 * threads. The step's loss is the loss at theta.
 *
 * With cfg->adapt enabled, the forward passes of each epoch track every
 * layer's mean |output|, and after the epoch's report an extinction event
 * may change the hidden layers' widths (adapt.h): the network and the
 * optimizer are rebuilt in place (net_remap), so n->params, n->n_params and
 * o->state change; read them again after train_run. Each layer's part of an
 * event is four metrics at step (epoch's last step + i), i the layer's
 * index: "structure" (its width after the event), "structure_layer",
 * "structure_grown", "structure_pruned"; an edge layer's part also has
 * "cells" (its cell count after the event; grown and pruned count cells,
 * structure is its unchanged width). A checkpoint taken after an event
 * holds the new widths; to resume, rebuild the network with them and restore
 * *hooks->adapt_state saved with the checkpoint.
 */
#ifndef QN_TRAIN_H
#define QN_TRAIN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "adapt.h"
#include "data.h"
#include "net.h"
#include "optim.h"
#include "shard.h"

enum loss_kind { LOSS_MSE, LOSS_CROSS_ENTROPY };

/* Which device instances training sees (issue 12; net.h's chips and noise). */
enum train_chip {
    TRAIN_NOMINAL,        /* the model's own parameters, no noise (the default) */
    TRAIN_ONE_CHIP,       /* chip `chip` for the whole run (noise off) */
    TRAIN_HARDWARE_AWARE  /* every step a fresh chip and fresh noise, both keyed by (seed,
                             step) alone, so a run (and a resumed run) is reproducible */
};

/* The chip, and the seed of the noise (net_set_noise), of hardware-aware step
 * `step` (0-based, counted over the whole run) of a run seeded `seed`. */
uint64_t train_step_chip(uint64_t seed, uint64_t step);
uint64_t train_step_noise(uint64_t seed, uint64_t step);

struct train_config {
    enum loss_kind loss;
    size_t epochs;           /* total epochs (a resumed run continues to this) */
    size_t batch;            /* rows per step */
    uint64_t seed;           /* shuffles */
    size_t checkpoint_every; /* epochs between checkpoints; 0 = never */
    struct adapt_config adapt; /* growth and pruning; adapt.enabled 0 = fixed structure */
    enum train_chip chip_mode; /* TRAIN_NOMINAL unless set; the epoch's test scores are taken
                                  on the same chip (TRAIN_ONE_CHIP) or nominal, noise off */
    uint64_t chip;             /* TRAIN_ONE_CHIP: the chip */
};

/* A metric: name ("step_loss", "train_loss", "train_accuracy", "test_loss",
 * "test_accuracy", "seconds", "failed_solves", "out_of_domain" and
 * "out_of_domain_<layer>" for the epoch's surrogate layers), the global step, the epoch
 * (1-based), the value. */
typedef void (*train_metric_fn)(const char *name, uint64_t step, size_t epoch, double value,
                                void *ctx);
/* Called after `epoch` epochs when a checkpoint is due: save net->params and
 * the optimizer (state slab and t). Returning non-zero stops training with
 * that code. */
typedef int (*train_checkpoint_fn)(const struct net *n, const struct optim *o, size_t epoch,
                                   void *ctx);

/* Where a run stands inside an epoch: `epoch` epochs done, then `step` steps
 * of the next, whose running loss sum and correct count are kept so that the
 * epoch's train_loss and train_accuracy come out as if nothing had stopped. */
struct train_position {
    size_t epoch;    /* completed epochs */
    size_t step;     /* steps done in epoch `epoch` + 1 (0: at an epoch boundary) */
    double loss_sum; /* sum over those steps of loss * rows */
    size_t correct;  /* rows classified right in those steps */
};

/* Called when a run is canceled in the middle of an epoch (not with adapt):
 * save n->params, the optimizer and *at, and a run started from *at with
 * train_run_from continues exactly where this one stopped. */
typedef int (*train_partial_fn)(const struct net *n, const struct optim *o,
                                const struct train_position *at, void *ctx);

struct train_hooks {
    train_metric_fn metric;         /* may be NULL */
    train_checkpoint_fn checkpoint; /* may be NULL */
    void *ctx;                      /* borrowed, passed to both */
    const atomic_int *cancel;       /* may be NULL */
    size_t step_metric_every;       /* steps between step_loss metrics (0 = 1) */
    struct adapt_state *adapt_state; /* may be NULL (a fresh state); borrowed: the state
                                        to start from (adapt_state_init, or restored with
                                        a checkpoint), updated as epochs pass, so the
                                        checkpoint hook can save it */
    train_partial_fn partial;       /* may be NULL: no checkpoint on cancel */
    const struct shard *shard;      /* may be NULL (one process); borrowed: a data-parallel
                                       run (shard.h), see train_run */
};

struct train_result {
    double train_loss, train_accuracy; /* last epoch (accuracy NaN for mse on targets) */
    double test_loss, test_accuracy;   /* on the test set after the last epoch */
    size_t epochs_done;
    size_t events;                     /* extinction events in this call */
    double out_of_domain;              /* last epoch: fraction of surrogate evaluations whose
                                          drives were outside the surrogate's domain (NaN: no
                                          surrogate layer) */
    double out_of_domain_layer[NET_MAX_LAYERS]; /* the same per layer (NaN: none there) */
};

/*
 * Trains n with optimizer o (initialised over n->n_params) on train,
 * reporting test metrics each epoch on test (may be NULL), from epoch
 * start_epoch (0 for a fresh run; k to resume after k completed epochs).
 * Returns 0, QN_EINVAL (shapes or labels that do not fit the network, a bad
 * adapt config), QN_ECANCELED, QN_ENOMEM, or a hook's or the forward pass's
 * error. n and o may have been rebuilt (adaptive structure), also on failure.
 *
 * Data-parallel (hooks->shard active): every rank calls train_run with the
 * same network, optimizer, data and config. Each step, rank r forwards and
 * backpropagates its rows of the batch (shard_rows; the drive and output
 * noise of hardware-aware steps is keyed by the row's place in the whole
 * batch, so it is the one-process noise), scales its gradient by its share
 * of the batch, and the ranks sum the gradients, the loss and the correct
 * count (shard_sum, shard_sum64); every rank then takes the same optimizer
 * step, so the parameters stay identical. The epoch's test scores are
 * computed the same way over slices of the test set, and the failed-solve
 * and out-of-domain counts are summed, so every rank reports the same
 * metrics and calls its hooks alike (a caller keeps one rank's). Adaptive
 * structure and the ES optimizer are refused (QN_EINVAL): their decisions
 * rest on per-rank statistics. A rank whose forward or backward pass fails
 * still takes part in the step's sums, and every rank then stops (the others
 * with QN_EREMOTE). A cancel must reach every rank (each checks its own flag
 * before each step): a rank that stops alone leaves the others waiting in
 * their sum.
 */
int train_run(struct net *n, struct optim *o, const struct data_set *train,
              const struct data_set *test, const struct train_config *cfg,
              const struct train_hooks *hooks, size_t start_epoch, struct train_result *res);

/* As train_run, from a position inside an epoch (a partial checkpoint). */
int train_run_from(struct net *n, struct optim *o, const struct data_set *train,
                   const struct data_set *test, const struct train_config *cfg,
                   const struct train_hooks *hooks, const struct train_position *from,
                   struct train_result *res);

/*
 * Loss and accuracy (NaN for regression; with mse on a labelled set, the
 * fraction of rows whose one output is within 0.5 of the label) of n on ds in batches of up to
 * n->cap rows. Returns 0, QN_EINVAL (shapes), QN_ECANCELED.
 */
int train_evaluate(struct net *n, const struct data_set *ds, enum loss_kind loss, double *out_loss,
                   double *out_accuracy);

/*
 * The part of train_evaluate over rows [lo, hi) of ds, in batches of n->cap
 * rows from lo: batch k's loss times its rows into sums[k] (the caller's,
 * (hi - lo + cap - 1) / cap of them) and the rows classified right added to
 * *correct. Summing every batch of [0, n) in order is train_evaluate's loss,
 * so slices that start at multiples of cap, evaluated apart (on several
 * ranks), give the same bits. With noise on, forward passes are counted from
 * n->noise_step as it is. Returns as train_evaluate; QN_EINVAL for a bad range.
 */
int train_evaluate_rows(struct net *n, const struct data_set *ds, enum loss_kind loss, size_t lo,
                        size_t hi, double *sums, size_t *correct);

/* As train_evaluate, each rank of the data-parallel run sh (may be NULL: one
 * process) scoring its slice of ds's rows (train_evaluate_rows), the sums
 * shared: every rank gets the scores of the whole set. Returns as
 * train_evaluate, a sum's error, or QN_EREMOTE when another rank failed. */
int train_evaluate_shard(struct net *n, const struct data_set *ds, enum loss_kind loss,
                         const struct shard *sh, double *out_loss, double *out_accuracy);

/*
 * Scores n on chips seed .. seed + count - 1 of its device population: chip
 * i is net_set_chip(seed + i) with noise net_set_noise(noise, seed + i), its
 * loss and accuracy into out_loss[i] and out_accuracy[i] (count each), the
 * numbers train_evaluate gives on that chip alone, bit for bit. With T =
 * n->n_threads > 1, whole chips run in parallel in rounds of T on T replicas
 * of n (net_replica.h) with one device thread each; the count mod T chips
 * left over run one at a time on n, their solves spread over its T threads.
 * n's counters (solves, failed solves, surrogate rows) gain every chip's; its
 * chip and noise settings are left as the last chip run on it set them.
 * Returns 0, QN_EINVAL (shapes), QN_ECANCELED, QN_ENOMEM; on failure, the
 * lowest-numbered failing chip's code.
 */
int train_evaluate_chips(struct net *n, const struct data_set *ds, enum loss_kind loss,
                         uint64_t seed, size_t count, int noise, double *out_loss,
                         double *out_accuracy);

/* Checks that ds fits n under loss: inputs, outputs or classes, labels.
 * mse takes targets (one per output) or, with a single output, labels (the
 * label is the target). */
int train_check_data(const struct net *n, const struct data_set *ds, enum loss_kind loss);

const char *train_loss_name(enum loss_kind k);

#endif
