/*
 * job_model.h: a stored model made usable again: its row, its train spec,
 * its layers resolved against the store, its input scaler, and the network
 * built from them with the trained parameters.
 *
 * This is the one way from a stored model to outputs. POST
 * /v1/models/{id}/predict and the evaluate job both open the model here,
 * build its network here and standardise their inputs here, through the
 * engine's data_scaler (the function training used), so the two cannot
 * compute differently and every input is standardised exactly once.
 *
 * A stored model that cannot be rebuilt (its spec no longer parses or names
 * a surrogate that is gone, its scaler or parameter count does not fit its
 * network) is QN_EMODEL, with the reason in a struct spec_error, so callers
 * can tell it from a missing model (QN_ENOTFOUND) and from a database error.
 */
#ifndef QN_JOB_MODEL_H
#define QN_JOB_MODEL_H

#include <stdatomic.h>
#include <stddef.h>

#include "data.h"
#include "job_net.h"
#include "net.h"
#include "spec.h"
#include "store.h"
#include "train.h"

/* An opened model. Every field is owned; job_model_close frees them. */
struct job_model {
    struct store_model row; /* id, n_in, n_out, n_classes, loss, params (n_params) */
    int have_row;
    struct train_spec t; /* its stored train spec (t.train.seed: its seed) */
    int have_t;
    struct job_netdef nd;      /* its layers: a caller may change a layer's via and
                                  surrogate (evaluate's overrides) before job_model_net */
    struct data_scaler scaler; /* (2, n_in): the training split's mean and std */
    enum loss_kind loss;       /* from row.loss */
};

/*
 * Opens the stored model `ref` names (borrowed): REF_ID, REF_NAME (the newest
 * of that name) or REF_JOB (what train job N made; the caller checks the job
 * first). Rebuilds its layers from its stored spec and loads its scaler.
 * Returns 0; QN_ENOTFOUND (no such model); QN_EMODEL (stored but unusable,
 * err->msg says why); QN_ENOMEM; or the store's code for a database error
 * (err->msg says so). job_model_close(m) whatever the result.
 */
int job_model_open(struct store *s, const struct spec_ref *ref, struct job_model *m,
                   struct spec_error *err);

/*
 * Builds m's network for batches of up to cap rows with n_threads device
 * threads and the cancel flag (borrowed, may be NULL), every layer
 * forward-only, and copies the trained parameters in. Returns 0 and a new
 * network in *out (net_destroy it); QN_EMODEL when the stored parameters do
 * not fit the network (err->msg says why; nothing in *out); or net_create's
 * codes (QN_EINVAL for a via the device cannot do, QN_ENOMEM).
 */
int job_model_net(const struct job_model *m, size_t cap, size_t n_threads, const atomic_int *cancel,
                  struct net **out, struct spec_error *err);

/* Standardises ds's inputs with m's scaler (data_scaler_apply). Returns 0 or
 * QN_EINVAL (ds has not n_in inputs). */
int job_model_scale(const struct job_model *m, struct data_set *ds);

/*
 * Runs n raw rows x (n, n_in), standardised here with m's scaler (x is
 * changed in place), through net (from job_model_net(m), cap >= n). The
 * outputs are net_output(net), (n, n_out). Returns 0, QN_EINVAL (n > cap),
 * QN_ECANCELED, or QN_ENOMEM.
 */
int job_model_forward(const struct job_model *m, struct net *net, float *x, size_t n);

/*
 * job_model_open for a spec's reference found at JSON path `path`: a
 * {"job": N} must name a succeeded train job (job_ref_check), and every
 * failure to find or rebuild the model is QN_ESPEC with *err at path ("no
 * model named 'x'", "no model with id N", ...). job_model_close(m) after,
 * also on failure.
 */
int job_model_resolve(struct store *s, const struct spec_ref *ref, const char *path,
                      struct job_model *m, struct spec_error *err);

void job_model_close(struct job_model *m);

#endif
