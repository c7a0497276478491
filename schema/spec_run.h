/*
 * spec_run.h: a resolved train or fit spec made into engine objects and run,
 * with no store: what the daemon's in-process jobs and build/qn-mpi (which
 * sees only the engine and the schema, never the database) both call, so a
 * job computes the same whichever runs it.
 *
 * "Resolved" means what the daemon has checked and staged: every layer's
 * device inline (spec_train_parse then keeps its object) and every
 * surrogate an id whose blob the caller holds; the dataset as arrays,
 * already split and standardised; the parameters a run starts from (a
 * checkpoint, or the model of "from"). Resolving references and reporting
 * spec errors at their JSON paths stays with the daemon (server/jobs).
 */
#ifndef QN_SPEC_RUN_H
#define QN_SPEC_RUN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"
#include "train.h"

/* The layers of a resolved train spec: devices parsed from their inline
 * objects, surrogates read from their blobs. Every field is owned. */
struct spec_run_net {
    size_t n_layers;
    struct dev_model dev[NET_MAX_LAYERS]; /* prepared (have_dev) */
    int have_dev[NET_MAX_LAYERS];
    struct surrogate sur[NET_MAX_LAYERS]; /* loaded (have_sur) */
    int have_sur[NET_MAX_LAYERS];
};

/*
 * Parses every layer's inline device of t (borrowed) and reads the
 * surrogate of layer l from blob[l] (blob_len[l] bytes; NULL for a layer
 * without one; both arrays borrowed, of t->n_layers entries). Returns 0,
 * QN_ESPEC (a device that is not inline or does not parse; a layer that
 * names a surrogate without its blob; *err at the layer's field), or
 * surrogate_from_blob's codes. spec_run_net_close(rn) whatever the result.
 */
int spec_run_net_init(struct spec_run_net *rn, const struct train_spec *t,
                      const void *const *blob, const size_t *blob_len, struct spec_error *err);
void spec_run_net_close(struct spec_run_net *rn);

/* The engine's layer specs of t over rn (pointing into rn, which must outlive
 * the network), at the spec's widths. */
void spec_run_net_layers(const struct spec_run_net *rn, const struct train_spec *t,
                         struct net_layer_spec *out);

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

/* What a train run starts from, besides a fresh network. */
struct spec_run_start {
    const float *params; /* (n_params) borrowed: a checkpoint's or the "from" model's
                            parameters; NULL: a fresh network (calibrated if t says so) */
    size_t n_params;
    const float *state;  /* (n_state) borrowed: the checkpoint's optimizer state; NULL for
                            the "from" model (its optimizer starts afresh) */
    size_t n_state;
    uint64_t t;          /* the checkpoint's optimizer steps */
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
