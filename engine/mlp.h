/*
 * mlp.h: multilayer perceptrons built from the nn.h kernels.
 *
 * An MLP is L dense layers; layer l maps sizes[l] inputs to sizes[l+1]
 * outputs and applies act[l] (the last one is usually identity: logits or a
 * regression output). Its parameters live in ONE float slab, layer by layer,
 * weights then bias:
 *   [ w0 (sizes[1], sizes[0]) | b0 (sizes[1]) | w1 (sizes[2], sizes[1]) | b1 | ... ]
 * so the whole model saves and loads as one float32 blob (params, n_params),
 * and an optimizer runs on it directly. The gradient slab has the same layout;
 * mlp_layer_view names the pieces of any slab laid out that way (parameters,
 * gradients, Adam moments).
 *
 * Trade-off: the model (architecture and slabs) is kept apart from the
 * activations of a batch (struct mlp_acts). A frozen surrogate is then one
 * read-only struct mlp shared by every layer and thread that uses it, each
 * with its own mlp_acts; forward and backward never allocate.
 */
#ifndef QN_MLP_H
#define QN_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "act.h"

#define MLP_MAX_LAYERS 16
#define MLP_MAX_WIDTH (1u << 20) /* refuse layers wider than this */

struct mlp {
    size_t n_layers;                   /* L, 1..MLP_MAX_LAYERS */
    size_t sizes[MLP_MAX_LAYERS + 1];  /* sizes[0] inputs, sizes[L] outputs */
    enum act_kind act[MLP_MAX_LAYERS]; /* activation after layer l */
    size_t n_params;                   /* floats in params (and grads) */
    size_t offset[MLP_MAX_LAYERS];     /* where layer l's w starts in a slab; b follows it */
    float *params;                     /* (n_params) owned */
    float *grads;                      /* (n_params) owned; backward's usual dparams */
};

/* Named views of one layer inside a slab with the MLP's layout. */
struct mlp_layer_view {
    float *w; /* (sizes[l+1], sizes[l]) */
    float *b; /* (sizes[l+1]) */
};

/*
 * Creates an MLP of n_layers layers: sizes[0..n_layers] (borrowed) and
 * act[0..n_layers) (borrowed). Parameters and gradients are zero; call
 * mlp_init_params. Returns 0 and a new model in *out (free with
 * mlp_destroy), QN_EINVAL (0 or too many layers, a size of 0 or above
 * MLP_MAX_WIDTH, parameter count overflow), or QN_ENOMEM.
 */
int mlp_create(struct mlp **out, size_t n_layers, const size_t *sizes, const enum act_kind *act);

/* Frees the model; NULL is allowed. */
void mlp_destroy(struct mlp *m);

/*
 * Seeded initialisation from a gsl_rng mt19937 seeded with `seed`, layer by
 * layer in slab order, biases zero. Weights are He normal,
 * N(0, 2 / fan_in), for relu and softplus layers, and Xavier uniform,
 * U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), for identity, sigmoid and
 * tanh. Returns 0 or QN_ENOMEM. Same seed, same bits.
 */
int mlp_init_params(struct mlp *m, uint64_t seed);

/* Views of layer l in `slab` (params, grads or an optimizer moment), borrowed. */
struct mlp_layer_view mlp_layer_view(const struct mlp *m, float *slab, size_t l);

/* Sets m->grads to zero. */
void mlp_zero_grad(struct mlp *m);

/* Width of the widest layer output. */
size_t mlp_max_width(const struct mlp *m);

/* The activations of one batch of up to `cap` rows. */
struct mlp_acts {
    size_t cap;               /* rows the buffers hold */
    size_t n_layers;          /* copied from the model */
    float *z[MLP_MAX_LAYERS]; /* (cap, sizes[l+1]) pre-activations, views */
    float *a[MLP_MAX_LAYERS]; /* (cap, sizes[l+1]) post-activations, views */
    float *d0;                /* (cap, max_width) backward scratch */
    float *d1;                /* (cap, max_width) backward scratch */
    float *slab;              /* owned memory behind every view above */
};

/* Allocates activations of m for batches of up to cap rows. Returns 0,
 * QN_EINVAL (cap 0), or QN_ENOMEM (including size overflow). */
int mlp_acts_init(struct mlp_acts *a, const struct mlp *m, size_t cap);
void mlp_acts_close(struct mlp_acts *a);

/*
 * Forward on B rows of x (B, sizes[0]) (borrowed). The output is
 * a->a[L-1] (B, sizes[L]), valid until the next forward on `a`.
 * Returns 0 or QN_EINVAL when B > a->cap.
 */
int mlp_forward(const struct mlp *m, struct mlp_acts *a, const float *x, size_t B);

/* The output of the last forward on a: (B, sizes[L]), borrowed. */
const float *mlp_output(const struct mlp *m, const struct mlp_acts *a);

/*
 * Backward after mlp_forward(m, a, x, B) with the same x and B:
 *   dout    (B, sizes[L])      gradient of the loss at the output, borrowed
 *   dparams (n_params)         += parameter gradients; NULL for a frozen model
 *                              (usually m->grads)
 *   dx      (B, sizes[0])      += gradient at the input; NULL when not needed
 * Returns 0 or QN_EINVAL when B > a->cap.
 */
int mlp_backward(const struct mlp *m, struct mlp_acts *a, const float *x, const float *dout,
                 size_t B, float *dparams, float *dx);

#endif
