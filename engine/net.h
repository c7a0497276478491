/*
 * net.h: networks of devices, the product's reason to exist.
 *
 * A network is a stack of layers; layer l holds n devices of one model. Each
 * device sees the previous layer through trainable weights A (n, n_in) and
 * biases b (n) as its drives: u1 = A x + b (dot), and also u2 = A x^2
 * (dot_sq). The device then answers y = f(u). Only A and b are trained; how f
 * is computed and differentiated is the layer's `via`:
 *   exact          closed forms (neuron, almost_neuron)
 *   surrogate      the frozen surrogate MLP, forward and backward, batched
 *   device         the real ODE, gradients by the implicit function theorem or
 *                  forward sensitivities (dev_eval_grad), in parallel threads
 *   physics_aware  forward on the real ODE, backward through the surrogate
 * The forward pass records dy/du per device, so the backward pass is the
 * same for every via: du = dy * dy/du, then the dense backward.
 *
 * Each layer also has a fixed input scale s (one float, not trained): the
 * layer sees s * x. net_calibrate sets it so every layer's inputs are of unit
 * size whatever the device below outputs (spike rates of 50 Hz, say), which
 * keeps A of order 1/sqrt(n_in) and Adam's fixed step size meaningful.
 *
 * Parameters (every layer's A, b, s) and gradients are two float slabs, so
 * optimizers and checkpoints treat the whole network as one array; the s
 * entries are frozen (net_freeze_fixed, which train_run calls). Nothing
 * allocates after net_create. A solve that fails during a forward pass gives
 * y = 0 and dy/du = 0 for that device and sample, and is counted
 * (net->failed_solves): training goes on, and the count is reported.
 */
#ifndef QN_NET_H
#define QN_NET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "mlp.h"
#include "surrogate.h"

#define NET_MAX_LAYERS 16

enum net_via { VIA_EXACT, VIA_SURROGATE, VIA_DEVICE, VIA_PHYSICS_AWARE };

/* What a layer is made of (all pointers borrowed; they must outlive the net). */
struct net_layer_spec {
    size_t devices;               /* n */
    const struct dev_model *dev;  /* prepared model */
    enum net_via via;
    const struct surrogate *sur;  /* surrogate and physics_aware; NULL otherwise */
    int forward_only;             /* nonzero: only evaluated, never trained through; via
                                     device then accepts readouts without a gradient
                                     (spike_rate), whose dy/du is taken as 0 */
};

struct net_layer {
    size_t n_in, n_out;           /* inputs from the layer below, devices */
    size_t n_drive;               /* drives per device: 1 (dot) or 2 (dot_sq) */
    const struct dev_model *dev;  /* borrowed */
    enum net_via via;
    const struct surrogate *sur;  /* borrowed */
    int forward_only;             /* see net_layer_spec */
    size_t off_w, off_b, off_s;   /* A (n_out, n_in), b (n_out), s (1) in the slabs */
    float *xs;                    /* (cap, n_in) the scaled inputs s * x of the last forward */
    float *u;                     /* (cap, n_out, n_drive) drives of the last forward */
    float *y;                     /* (cap, n_out) outputs */
    float *g;                     /* (cap, n_out, n_drive) dy/du */
    float *xsq;                   /* (cap, n_in) squared inputs (dot_sq) */
    float *tmp;                   /* (cap, max(n_in, n_out)) scratch */
    float *tmp2;                  /* (cap, n_in) backward scratch (dot_sq) */
    struct mlp_acts sacts;        /* surrogate activations for cap * n_out rows */
    float *sscratch;              /* surrogate scratch */
    struct dev_work *works;       /* (n_threads) per-thread device solvers */
};

struct net {
    size_t n_layers;
    struct net_layer layer[NET_MAX_LAYERS];
    size_t n_in, n_out;           /* network inputs and outputs */
    size_t n_params;
    float *params;                /* (n_params) owned: layer 0 A, b, s, layer 1 A, b, s, ... */
    float *grads;                 /* (n_params) owned, same layout */
    size_t cap;                   /* largest batch */
    size_t n_threads;             /* threads for device layers */
    const atomic_int *cancel;     /* borrowed, may be NULL */
    size_t failed_solves;         /* device solves that failed since creation */
    float *d0, *d1;               /* (cap, max width) backward scratch */
};

/*
 * Builds a network with n_in inputs and layers spec[0..n_layers), for
 * batches of up to cap rows, with n_threads device threads (0 = 1).
 * Parameters are initialised from seed (uniform, scaled by 1/sqrt(n_in) as
 * for linear layers; He for relu neurons). Returns 0 and a new network in
 * *out (net_destroy it), QN_EINVAL (a via the device cannot do: exact on an
 * ODE kind, device on spike_rate (QN_ENOTDIFF), a missing or mismatched
 * surrogate, a full drive), or QN_ENOMEM.
 */
int net_create(struct net **out, size_t n_in, const struct net_layer_spec *spec,
               size_t n_layers, size_t cap, size_t n_threads, uint64_t seed,
               const atomic_int *cancel);
void net_destroy(struct net *n);

/*
 * Data-dependent initialisation: runs B rows of x through the network layer
 * by layer and rescales each layer's A (and sets b) so the drive u1 has, over
 * the batch and the layer's devices, the mean and spread the device expects:
 * the surrogate's training range (mean and std of its sweep) when the layer
 * has one, else mean 0 and std 1. Deterministic for a given batch.
 * Returns 0 or what net_forward returns.
 */
int net_calibrate(struct net *n, const float *x, size_t B);

struct optim;
/* Excludes every layer's fixed input scale from the optimizer o (built over
 * n->n_params). Returns 0 or QN_ENOMEM. Idempotent. */
int net_freeze_fixed(const struct net *n, struct optim *o);

/* Changes how layer l is computed (evaluation with another via). Returns 0 or
 * QN_EINVAL as net_create would. sur may be NULL when not needed. */
int net_set_via(struct net *n, size_t l, enum net_via via, const struct surrogate *sur);

/*
 * Forward on B rows of x (B, n_in) (borrowed). The output is
 * n->layer[L-1].y (B, n_out). Returns 0, QN_EINVAL (B > cap), QN_ECANCELED,
 * or QN_ENOMEM (threads).
 */
int net_forward(struct net *n, const float *x, size_t B);

/* Backward after net_forward(n, x, B): dout (B, n_out) borrowed; gradients
 * accumulate into n->grads. */
void net_backward(struct net *n, const float *x, const float *dout, size_t B);

/* The output of the last forward, (B, n_out), borrowed. */
const float *net_output(const struct net *n);

/* Names of vias both ways; from_name returns QN_ESPEC. */
const char *net_via_name(enum net_via v);
int net_via_from_name(const char *s, enum net_via *out);

#endif
