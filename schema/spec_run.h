/*
 * spec_run.h: a resolved train or fit spec made into engine objects and run,
 * with no store: what the daemon's in-process jobs and build/qn-mpi (which
 * sees only the engine and the schema, never the database) both call, so a
 * job computes the same whichever runs it.
 *
 * "Resolved" means what the daemon has checked and staged: the layers as
 * engine layer specs (the daemon's from the store, qn-mpi's from the spool:
 * spool_net.h); the dataset as arrays, already split and standardised; the
 * parameters a run starts from (a checkpoint, or the model of "from").
 * Resolving references and reporting spec errors at their JSON paths stays
 * with the daemon (server/jobs).
 */
#ifndef QN_SPEC_RUN_H
#define QN_SPEC_RUN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"
#include "train.h"

/*
 * Builds t's network on n_in inputs from the layer specs ls (borrowed; their
 * widths are used, forward_only is set for the es optimizer), for batches of
 * t's batch size, with n_threads device threads and the cancel flag
 * (borrowed, may be NULL); draws the layers that ask for another "init";
 * sets up t's optimizer. Returns 0 with a new network in *net (net_destroy
 * it) and *o initialised (optim_close it); or an error, with nothing to
 * free and *what saying which step failed ("cannot build the network", ...).
 */
int spec_run_build(const struct train_spec *t, const struct net_layer_spec *ls, size_t n_in,
                   size_t n_threads, const atomic_int *cancel, struct net **net, struct optim *o,
                   const char **what);

/* As spec_run_build, with cells[l] saying what layer l's devices sit on (edge
 * cells and their lists: a checkpoint's, say); cells NULL: the spec's own
 * ("cells" and "cell_list" of each layer). */
int spec_run_build_cells(const struct train_spec *t, const struct net_layer_spec *ls,
                         const struct net_cells_spec *cells, size_t n_in, size_t n_threads,
                         const atomic_int *cancel, struct net **net, struct optim *o,
                         const char **what);

/* What a train run starts from, besides a fresh network. */
struct spec_run_start {
    const float *params; /* (n_params) borrowed: a checkpoint's or the "from" model's
                            parameters; NULL: a fresh network (calibrated if t says so) */
    size_t n_params;
    const float *state; /* (n_state) borrowed: the checkpoint's optimizer state; NULL for
                           the "from" model (its optimizer starts afresh) */
    size_t n_state;
    uint64_t t; /* the checkpoint's optimizer steps */
};

/*
 * Puts n and o where the run starts: the parameters (and optimizer state)
 * of st, or, for a fresh network whose spec asks for calibration, the
 * calibration on the first rows of train. Returns 0; QN_EFORMAT when st does
 * not fit the network or optimizer (reason, cap bytes, says so); or
 * net_calibrate's codes.
 */
int spec_run_start(const struct train_spec *t, struct net *n, struct optim *o,
                   const struct spec_run_start *st, const struct data_set *train, char *reason,
                   size_t cap);

/*
 * Trains from `from` to t's last epoch (train_run_from with hooks, whose
 * shard may spread it over ranks); when every epoch was done before (a run
 * resumed after its last checkpoint), scores the network on train and test
 * instead, so res always holds the final figures. Returns train_run_from's
 * or train_evaluate's codes.
 */
int spec_run_train(const struct train_spec *t, struct net *n, struct optim *o,
                   const struct data_set *train, const struct data_set *test,
                   const struct train_hooks *hooks, const struct train_position *from,
                   struct train_result *res);

/* What a train spec asks that data-parallel ranks cannot share (engine/
 * train.h): "adapt" (structure events decided on per-rank statistics) and
 * the es optimizer. 0 for ranks <= 1; else QN_ESPEC with *err at the field. */
int spec_run_train_ranks(const struct train_spec *t, size_t ranks, struct spec_error *err);

/*
 * Fits f's surrogate to n rows of a sweep: in (n, n_in), out (n), status (n,
 * may be NULL), all borrowed; the last n_cond inputs are the device's
 * parameters names[0..n_cond) (borrowed), which the surrogate records.
 * Returns surrogate_fit's codes, or surrogate_set_cond's (*what says which
 * step failed); on success *s is filled (surrogate_close it).
 */
int spec_run_fit(const struct fit_spec *f, const float *in, const float *out, const int *status,
                 size_t n, size_t n_in, size_t n_cond, const char *const *names,
                 const struct fit_hooks *hooks, struct surrogate *s, struct fit_result *res,
                 const char **what);

#endif
