/*
 * surrogate.h: frozen MLP surrogates of devices.
 *
 * A surrogate learns a device's response out = f(drives) from a sweep: an
 * MLP from the standardised drives (n_in of them) to the standardised output.
 * Once fitted it is frozen: network training reads it, never writes it. It
 * serialises to one little-endian blob (architecture, scaling, float32
 * weights) so the store keeps it as a BLOB and every reader gets the same
 * bits back.
 */
#ifndef QN_SURROGATE_H
#define QN_SURROGATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "act.h"
#include "device.h"
#include "mlp.h"
#include "shard.h"

#define FIT_MAX_HIDDEN 8

struct surrogate {
    struct mlp *mlp;                /* owned: n_in -> hidden... -> 1 (identity output) */
    size_t n_in;                    /* inputs: the drives (1 for dot, 2 for dot_sq), then
                                       the n_cond parameters it is conditioned on */
    /* A parameter-conditioned surrogate f(u; theta) (fitted on a sweep that also
     * ranged over parameters of the device) takes its last n_cond inputs from
     * the device's parameters cond_names[0..n_cond), so a layer knows what to
     * feed it; 0 for a surrogate of the nominal device alone. */
    size_t n_cond;
    char cond_names[DEV_MAX_PARAMS][DEV_NAME_MAX];
    float in_mean[DEV_MAX_INPUTS];  /* standardisation of the drives */
    float in_std[DEV_MAX_INPUTS];
    float out_mean;                 /* standardisation of the output */
    float out_std;
    /* The domain: the box of the drives (and swept parameters) it was fitted
     * on, the smallest and largest of each input over the usable rows. Outside
     * it the MLP is unconstrained (it extrapolates freely), so callers clamp
     * to it (surrogate_clamp) and count what fell outside. has_domain is 0 for
     * a surrogate read from a version-1 blob, which did not record it. */
    int has_domain;
    float dom_lo[DEV_MAX_INPUTS];
    float dom_hi[DEV_MAX_INPUTS];
    /* One-drive surrogates only: a cubic Hermite table of the frozen MLP's
     * value and slope, built once by one batched forward pass over the knots
     * (surrogate_tabulate). surrogate_eval reads it instead of running the
     * MLP when every row lies inside it; it agrees with the MLP to ~1e-6 of
     * out_std. Derived data: never serialised, rebuilt on load and fit. */
    size_t table_n;                 /* knots (0: no table) */
    float table_lo, table_h;        /* first knot and spacing (raw drive units) */
    float *table;                   /* (table_n, 2) owned: y, dy/du at each knot; or, when
                                       table_m > 0, (table_m, table_n, 3): y, dy/du, dy/dtheta */
    /* One drive and one parameter (n_in 2, n_cond 1): the table is 2-D, table_n
     * drive knots by table_m parameter knots over the parameter's domain (the
     * layer clamps the parameter to it) or in_mean +- 6 in_std without one. */
    size_t table_m;                 /* parameter knots (0: a 1-D table or none) */
    float table_lo2, table_h2;      /* first parameter knot and spacing */
};

struct fit_config {
    size_t n_hidden;                /* hidden layers, 1..FIT_MAX_HIDDEN (default 2) */
    size_t hidden[FIT_MAX_HIDDEN];  /* their widths (default 32, 32) */
    enum act_kind act;              /* hidden activation (default tanh) */
    size_t epochs;                  /* default 300 */
    size_t batch;                   /* default 256 */
    float lr;                       /* Adam learning rate, default 3e-3 */
    double validation;              /* held-out fraction in (0, 0.5], default 0.1 */
    size_t patience;                /* epochs without val improvement before stopping, default 20 */
    uint64_t seed;                  /* default 1 */
};

/* Called once per epoch with "train_loss" and "val_rmse" (value in output units), and
 * every step_metric_every steps with "step_loss" (the step's standardised MSE). */
typedef void (*fit_metric_fn)(const char *name, size_t step, size_t epoch, double value, void *ctx);

struct fit_hooks {
    fit_metric_fn metric;     /* may be NULL */
    void *ctx;                /* borrowed, passed to metric */
    const atomic_int *cancel; /* may be NULL; nonzero stops with QN_ECANCELED */
    size_t step_metric_every; /* steps between step_loss metrics; 0 = none */
    const struct shard *shard; /* may be NULL (one process); borrowed: a data-parallel fit,
                                  see surrogate_fit */
};

struct fit_result {
    double val_rmse;   /* RMSE on the held-out rows, output units, best epoch */
    double max_error;  /* max |error| on the held-out rows */
    size_t n_train, n_val;
    size_t n_excluded; /* rows with a failed status or non-finite values */
    size_t epochs_run; /* epochs before stopping */
    size_t best_epoch;
};

void fit_config_default(struct fit_config *c);

/*
 * Fits a surrogate to n rows: in (n, n_in) drives, out (n) outputs, status
 * (n) row statuses (0 = ok; others are excluded and counted; NULL = all ok).
 * All borrowed. Adam on MSE of standardised values, seeded split and
 * shuffles, early stopping that keeps the best epoch's weights. Returns 0,
 * QN_EINVAL (too few usable rows, bad config), QN_ECANCELED, or QN_ENOMEM.
 * On success *s is filled (surrogate_close it).
 *
 * Data-parallel (hooks->shard active, shard.h): every rank calls
 * surrogate_fit with the same rows and config; the split and the shuffles
 * come from the seed alone, so every rank walks the same batches. Each step,
 * rank r backpropagates its rows of the batch, scales its gradient by its
 * share of the batch, and the ranks sum the gradients and the loss; every
 * rank then takes the same Adam step. Validation (a forward of the frozen
 * rows) is repeated on every rank and gives the same bits, so early stopping
 * decides alike everywhere. A cancel must reach every rank.
 */
int surrogate_fit(const float *in, const float *out, const int *status, size_t n, size_t n_in,
                  const struct fit_config *cfg, const struct fit_hooks *hooks,
                  struct surrogate *s, struct fit_result *res);

/*
 * Evaluates the surrogate on B rows of raw drives u (B, n_in) into y (B), and
 * when dy_du is non-NULL also dy/du (B, n_in). acts must be initialised for
 * s->mlp with cap >= B; scratch holds at least B * (n_in + 1) floats. Never
 * allocates. Returns 0 or QN_EINVAL (B > cap).
 */
int surrogate_eval(const struct surrogate *s, struct mlp_acts *acts, const float *u, size_t B,
                   float *y, float *dy_du, float *scratch);

/* Builds the table of a one-drive surrogate over in_mean +- 6 in_std with
 * SURROGATE_TABLE_KNOTS knots, or of a surrogate of one drive conditioned on
 * one parameter, SURROGATE_TABLE2_KNOTS drive knots by SURROGATE_TABLE2_PARAMS
 * parameter knots (a no-op for other surrogates). Called by surrogate_fit,
 * surrogate_set_cond and surrogate_from_blob. Returns 0 or QN_ENOMEM. */
#define SURROGATE_TABLE_KNOTS 8192
#define SURROGATE_TABLE2_KNOTS 1024
#define SURROGATE_TABLE2_PARAMS 64
int surrogate_tabulate(struct surrogate *s);

/* Evaluates with the MLP alone (what the table stands for); as surrogate_eval. */
int surrogate_eval_mlp(const struct surrogate *s, struct mlp_acts *acts, const float *u, size_t B,
                       float *y, float *dy_du, float *scratch);

/*
 * Clamps the B rows of u (B, n_in) in place into the surrogate's domain and
 * returns how many rows had an input outside it (0, touching nothing, when
 * the surrogate has no domain). mask (B, n_in), when non-NULL, gets 1 for an
 * input that was inside and 0 for one that was clamped: the derivative of
 * the clamped response with respect to that input is 0.
 */
size_t surrogate_clamp(const struct surrogate *s, float *u, size_t B, float *mask);

/* Serialises into a new buffer *blob of *len bytes (free() it). Returns 0 or QN_ENOMEM. */
int surrogate_to_blob(const struct surrogate *s, void **blob, size_t *len);

/* The number of drives of s: its inputs that are not conditioning parameters. */
size_t surrogate_n_drives(const struct surrogate *s);

/*
 * Makes s conditioned on the n named parameters names[0..n) (borrowed; each
 * 1 to DEV_NAME_MAX - 1 bytes): its last n inputs are their values, and
 * builds its table when it has one drive and one parameter. Returns 0,
 * QN_EINVAL (n not below s->n_in, or a bad name) or QN_ENOMEM.
 */
int surrogate_set_cond(struct surrogate *s, size_t n, const char *const *names);

/* Reads a blob (borrowed). Returns 0, QN_EFORMAT (bad magic, truncated, sizes), QN_ENOMEM. */
int surrogate_from_blob(const void *blob, size_t len, struct surrogate *s);

void surrogate_close(struct surrogate *s);

#endif
