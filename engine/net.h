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
 * A layer of `full` devices (fixed fan-in k, DESIGN.md) is not a matrix
 * product: device j is wired to k inputs conn[j][0..k) of the layer below
 * (connect random: k distinct inputs drawn from the seed; local: a window of
 * k consecutive inputs sliding evenly over the layer below; tree: disjoint
 * blocks of k consecutive inputs, consecutive devices sharing a block, as the
 * children of one node in a neural tree). Its weights A are (n_out, k), one
 * row of k weights per device, and it has no trained bias (a full device's
 * bias is its parameter "b"). The device's inputs are (x_1..x_k, a_1..a_k);
 * every via yields d out / d x_i and d out / d a_i (the layer's g), so the
 * backward pass scatters dy * dout/dx_i to input conn[j][i] and accumulates
 * dy * dout/da_i into dA[j][i]. Surrogates of full devices take 2k inputs.
 *
 * A surrogate answers only inside its domain (the box of the drives it was
 * fitted on): drives beyond it are clamped to the box before the surrogate
 * sees them (the response of the nearest point it knows, with slope 0
 * across the boundary, instead of an unconstrained extrapolation), and
 * counted per layer (ood_rows of sur_rows since net_domain_reset), for
 * surrogate and physics_aware layers alike (physics_aware's forward is the
 * device's own; only its slope is clamped).
 *
 * A layer of edge cells (`cells` NET_CELLS_EDGE, one-drive devices only)
 * is a sparse list of cells instead: cell c connects input src[c] to output
 * dst[c] and is a device of its own with drive u_c = a_c (s x_src) + b_c;
 * output j is the sum of the outputs of the cells with dst j (0 when none).
 * Its parameters are a (n_cells) at off_w and b (n_cells) at off_b. The
 * cells' drives are evaluated as one batch of (B, n_cells) elements through
 * the same paths as a node layer's (closed forms, surrogate, device solves);
 * a cell is a device instance of its own (chips, noise). Several cells may
 * share an edge (branches); an edge without cells costs nothing.
 *
 * Parameters (every layer's A, b, s) and gradients are two float slabs, so
 * optimizers and checkpoints treat the whole network as one array; the s
 * entries are frozen (net_freeze_fixed, which train_run calls). Nothing
 * allocates after net_create. A solve that fails during a forward pass gives
 * y = 0 and dy/du = 0 for that device and sample, and is counted
 * (net->failed_solves, of net->solves): training goes on, and the count is
 * reported.
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

/* How a layer's weights start: uniform (the default, see net_create) or
 * normal, every weight and bias drawn from N(0, 1) as in the classic
 * networks (no fan-in scaling). */
enum net_init { NET_INIT_UNIFORM, NET_INIT_NORMAL, NET_INIT_UNIT };

/* What a layer is made of: devices at its nodes (the default) or cells on its edges. */
enum net_cells { NET_CELLS_NODE, NET_CELLS_EDGE };

/* The most cells an edge layer may hold. */
#define NET_MAX_CELLS ((size_t)1 << 20)

/* Rows of drives an edge layer hands its surrogate at once (bounds its MLP buffers). */
#define NET_SUR_CHUNK ((size_t)1 << 16)

/* How a layer of full devices is wired to the layer below (see above). */
enum net_connect { NET_CONNECT_RANDOM, NET_CONNECT_LOCAL, NET_CONNECT_TREE };

/* What a layer is made of (all pointers borrowed; they must outlive the net). */
struct net_layer_spec {
    size_t devices;               /* n */
    const struct dev_model *dev;  /* prepared model */
    enum net_via via;
    const struct surrogate *sur;  /* surrogate and physics_aware; NULL otherwise. Its drives
                                     must be the device's; a parameter-conditioned surrogate
                                     (sur->n_cond) is fed each instance's parameters, which
                                     must all be parameters of dev */
    int forward_only;             /* nonzero: only evaluated, never backpropagated through
                                     (evaluation, ES training); via device then solves no
                                     sensitivities and accepts readouts without a gradient
                                     (spike_rate): dy/du is taken as 0 */
    enum net_connect connect;     /* full drive only: the wiring (fan-in is dev->fan_in) */
};

/* What a layer's devices sit on (net_create_cells); all zero: node devices. Kept
 * apart from net_layer_spec so that its positional initialisers stay valid. */
struct net_cells_spec {
    enum net_cells cells;         /* node devices (the default) or edge cells (one-drive
                                     devices only) */
    size_t n_cells;               /* edge: the cells of src/dst; 0 with both NULL: one cell
                                     per edge, cell j * n_in + i on edge i -> j */
    const size_t *src;            /* (n_cells) borrowed: each cell's input, < n_in */
    const size_t *dst;            /* (n_cells) borrowed: each cell's output, < devices */
};

struct net_layer {
    size_t n_in, n_out;           /* inputs from the layer below, devices */
    size_t n_drive;               /* inputs per device: 1 (dot), 2 (dot_sq) or 2k (full) */
    size_t k;                     /* fan-in of a full layer; 0 for dot and dot_sq */
    size_t n_w;                   /* weights per device: n_in (dot, dot_sq) or k (full) */
    enum net_connect connect;     /* full only */
    size_t *conn;                 /* (n_out, k) owned: input index of device j's i-th input (full) */
    const struct dev_model *dev;  /* borrowed */
    enum net_via via;
    const struct surrogate *sur;  /* borrowed */
    int forward_only;             /* see net_layer_spec */
    int edge;                     /* nonzero: a layer of edge cells (n_drive 1) */
    size_t n_cells;               /* edge: cells */
    size_t *csrc, *cdst;          /* (n_cells) owned: each cell's input and output (edge) */
    size_t n_elem;                /* devices evaluated per row: n_out, or n_cells (edge) */
    float *ye;                    /* (cap, n_elem) the devices' outputs: y itself for node
                                     layers (not owned), the cells' outputs for edge layers
                                     (owned) */
    size_t chunk;                 /* rows per surrogate call: cap * n_elem, at most
                                     NET_SUR_CHUNK for edge layers */
    size_t off_w, off_b, off_s;   /* A (n_out, n_w), b (n_out; none for full), s (1) in the slabs */
    float *xs;                    /* (cap, n_in) the scaled inputs s * x of the last forward */
    float *u;                     /* (cap, n_elem, n_drive) drives (full: the device inputs x, a)
                                     of the last forward */
    float *y;                     /* (cap, n_out) outputs */
    float *g;                     /* (cap, n_elem, n_drive) dy/du (full: dy/dx_i, dy/da_i) */
    float *xsq;                   /* (cap, n_in) squared inputs (dot_sq) */
    float *tmp;                   /* (cap, max(n_in, n_out)) scratch */
    float *tmp2;                  /* (cap, n_in) backward scratch (dot_sq) */
    struct mlp_acts sacts;        /* surrogate activations for chunk rows */
    float *uc;                    /* (chunk, sur->n_in) the surrogate's inputs (the drives,
                                     then a conditioned surrogate's parameters), clamped to its
                                     domain */
    float *gc;                    /* (chunk, sur->n_in) a conditioned surrogate's slopes
                                     (NULL for others: they write g directly) */
    size_t sur_rows;              /* device evaluations through the surrogate since net_domain_reset */
    size_t ood_rows;              /* of which had a drive outside its domain (and were clamped) */
    float *sscratch;              /* surrogate scratch */
    struct dev_work *works;       /* (n_threads) per-thread device solvers */
    double *act_sum;              /* (n_out) sum of |y| over the rows forwarded while tracking */
    double *heb_sum;              /* (n_out) sum over those rows of |y_j| times the mean |x_i| of
                                     the layer's (scaled) inputs: Hebbian co-activity */
    size_t act_rows;              /* rows in act_sum */
    double *cact;                 /* (n_cells) edge: sum of each cell's |output| while tracking */
    double *cheb;                 /* (n_cells) edge: sum of |x_src| |y_dst| while tracking */
    double *theta;                /* (n_elem, dev->n_params) owned: each device's parameters on
                                     the chip of net_set_chip; NULL when the device has no
                                     variability */
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
    size_t solves;                /* device (ODE) solves performed since creation */
    size_t failed_solves;         /* of which failed */
    float *d0, *d1;               /* (cap, max width) backward scratch */
    uint64_t seed;                /* of net_create: initial weights, random connectivity */
    int track;                    /* nonzero: net_forward adds |y| into every layer's act_sum
                                     (and the co-activity into heb_sum) */
    int chip_on;                  /* nonzero: device solves use each instance's theta */
    uint64_t chip_seed;           /* the chip of net_set_chip */
    int noise_on;                 /* nonzero: the devices' cycle-to-cycle noise is drawn */
    uint64_t noise_seed;          /* of net_set_noise */
    uint64_t noise_step;          /* forward passes since net_set_noise (part of every key) */
    size_t noise_row0;            /* the place in its batch of the next forward's first row (a
                                     data-parallel shard's offset, shard.h; 0 otherwise):
                                     the noise of element e is keyed by e + noise_row0 * n_elem */
};

/*
 * Builds a network with n_in inputs and layers spec[0..n_layers), for
 * batches of up to cap rows, with n_threads device threads (0 = 1).
 * Parameters are initialised from seed (uniform in +-sqrt(3 / fan-in): unit
 * drive variance for unit inputs; fan-in k for full layers; biases 0; see
 * net_init_layer for others), and random connectivity
 * from seed and the layer's index. Returns 0 and a new network in *out
 * (net_destroy it), QN_EINVAL (a via the device cannot do: exact on an ODE
 * kind, device on spike_rate (QN_ENOTDIFF), a missing or mismatched
 * surrogate, a full layer whose fan-in exceeds the layer below), or QN_ENOMEM.
 */
int net_create(struct net **out, size_t n_in, const struct net_layer_spec *spec,
               size_t n_layers, size_t cap, size_t n_threads, uint64_t seed,
               const atomic_int *cancel);

/* As net_create, with cells[l] saying what layer l's devices sit on (cells may
 * be NULL: every layer of node devices). Also QN_EINVAL for an edge layer of a
 * device whose drive is not dot, more than NET_MAX_CELLS cells, or a cell's
 * input or output out of range. */
int net_create_cells(struct net **out, size_t n_in, const struct net_layer_spec *spec,
                     const struct net_cells_spec *cells, size_t n_layers, size_t cap,
                     size_t n_threads, uint64_t seed, const atomic_int *cancel);
void net_destroy(struct net *n);

/*
 * Draws layer l's weights and biases again as `init` says (uniform: as
 * net_create does; normal: every weight and bias N(0, 1); unit: every
 * weight 1 and bias 0, edge layers only) from a generator seeded with seed
 * and l. Returns 0, QN_EINVAL (l out of range, unit on a node layer),
 * QN_ENOMEM.
 */
int net_init_layer(struct net *n, size_t l, enum net_init init, uint64_t seed);

/*
 * Data-dependent initialisation: runs B rows of x through the network layer
 * by layer and rescales each layer's A (and sets b) so the drive u1 has, over
 * the batch and the layer's devices, the mean and spread the device expects:
 * the surrogate's training range (mean and std of its sweep) when the layer
 * has one, else mean 0 and std 1. Deterministic for a given batch.
 * A full layer has no drive to rescale: its input scale s makes the inputs
 * x_i of unit size (or, with a surrogate, of half the spread of the x inputs
 * it was fitted on, centred weights then scaled to half the spread of its a
 * inputs around their mean); without a surrogate its A is rescaled so that
 * sum a_i x_i has unit spread. A dot or dot_sq layer whose surrogate has a
 * domain is then shrunk about that mean until the batch's u1 lies inside it,
 * so training starts where the surrogate was fitted.
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

/*
 * Device populations (issue 12). net_set_chip makes the network chip `seed`:
 * in every layer whose device has variability, device j of layer l gets the
 * parameters chip_draw(dev, seed, l, j) (chip.h) for every solve of the real
 * device (via device, physics_aware's forward, full closed forms) and as
 * the parameters a conditioned surrogate takes (via surrogate, and
 * physics_aware's slopes); a surrogate of the nominal device alone stays
 * nominal. net_set_nominal returns to the model's own parameters. Neither
 * allocates. Chip and noise settings survive net_remap (a device then has
 * the draw of its new index).
 */
void net_set_chip(struct net *n, uint64_t seed);
void net_set_nominal(struct net *n);

/* Nonzero when some layer's device has variability (a chip changes something). */
int net_has_variability(const struct net *n);

/*
 * Turns the devices' cycle-to-cycle noise on (from `seed`, counting forward
 * passes from 0) or off. With noise on, forward pass k adds to element e
 * (row-major (B, n_elem): devices, or an edge layer's cells) of layer l
 * the drive noise drive_sd times
 * chip_normal(CHIP_TAG_NOISE_DRIVE, seed, k, l, e) to u1 before the device
 * answers, and the output noise output_sd times chip_normal(
 * CHIP_TAG_NOISE_OUTPUT, seed, k, l, e) to y after, whatever the layer's via.
 * dy/du is the slope at the noisy drive; output noise does not change it.
 */
void net_set_noise(struct net *n, int on, uint64_t seed);

/* The output of the last forward, (B, n_out), borrowed. */
const float *net_output(const struct net *n);

/* The name of a via ("exact", "surrogate", "device", "physics_aware"). */
const char *net_via_name(enum net_via v);

/* The name of a connectivity ("random", "local", "tree"). */
const char *net_connect_name(enum net_connect c);

/* The name of what a layer is made of ("node", "edge"). */
const char *net_cells_name(enum net_cells c);

/* Sets every layer's act_sum and act_rows to zero. */
void net_track_reset(struct net *n);

/* Sets every layer's sur_rows and ood_rows to zero. */
void net_domain_reset(struct net *n);

/* The fraction of layer l's surrogate evaluations since net_domain_reset whose
 * drives were outside the surrogate's domain into *out; QN_ENOTFOUND when the
 * layer made none (it has no surrogate, or nothing ran). */
int net_domain_fraction(const struct net *n, size_t l, double *out);

/*
 * A change of architecture (growth and pruning, adapt.h). Device j of layer
 * l in the new network is device src[l][j] of the old one (NULL: the
 * identity; the width must then be unchanged); its incoming weights and bias
 * are copied from that device, and its outgoing weights (the columns of
 * layer l + 1) are the old device's times share[l][j] (NULL: 1). Input
 * scales are kept. Both arrays are borrowed, of width[l] entries.
 */
struct net_remap {
    size_t width[NET_MAX_LAYERS];
    const size_t *src[NET_MAX_LAYERS];
    const float *share[NET_MAX_LAYERS];
};

/* Edge layers' cells in a change of architecture: new cell c of layer l is old
 * cell from[l][c] (NULL: the cells stay) on the same edge, with a = a_old *
 * a_fac[l][c] and b = b_old * b_fac[l][c] (NULL: 1); cells[l] new cells. The
 * layer below an edge layer keeps its width. Arrays borrowed. */
struct net_cell_remap {
    size_t cells[NET_MAX_LAYERS];
    const size_t *from[NET_MAX_LAYERS];
    const float *a_fac[NET_MAX_LAYERS];
    const float *b_fac[NET_MAX_LAYERS];
};

/*
 * Rebuilds n in place with the architecture m (same devices, vias,
 * surrogates, cap, threads, seed). When o is not NULL the optimizer is
 * rebuilt over the new slab: the moments of every new parameter are the
 * moments of the old parameter it was copied from (split: copied; pruned:
 * dropped), t is kept, and the fixed input scales are frozen again (other
 * frozen ranges are not carried over). Returns 0, QN_EINVAL (a full layer
 * whose wiring would change, widths out of range, the last layer's width
 * changed, the width below an edge layer changed, an index out of range,
 * cells out of range), or QN_ENOMEM; on failure n and o are unchanged.
 */
int net_remap(struct net *n, const struct net_remap *m, struct optim *o);

/* As net_remap, with edge layers' cells remapped as cm says (cm may be NULL:
 * every cell stays). */
int net_remap_cells(struct net *n, const struct net_remap *m, const struct net_cell_remap *cm,
                    struct optim *o);

#endif
