/*
 * optim.h: optimizers over flat parameter slabs: SGD with momentum, Adam.
 *
 * An optimizer updates n floats of parameters from n floats of gradients.
 * Its state (SGD velocity; Adam first and second moments) is one contiguous
 * slab of floats plus a step counter, so a checkpoint saves and restores it
 * byte for byte (optim_state / optim_state_len / o->t) and a resumed run
 * continues bit-identically.
 *
 * Frozen parameters: optim_freeze marks ranges of the slab that a step must
 * never touch (a frozen surrogate's weights B); neither the parameters nor
 * their state change there, whatever the gradient holds.
 *
 * Update rules (g = gradient, p = parameter, all per element):
 *   SGD (PyTorch convention):  g' = g + weight_decay * p   (L2)
 *                              v  = momentum * v + g'
 *                              p -= lr * v
 *   Adam: t += 1
 *         decoupled (AdamW, the default): p -= lr * weight_decay * p first;
 *         L2 (decoupled = 0):             g' = g + weight_decay * p
 *         m = beta1 m + (1 - beta1) g';   v = beta2 v + (1 - beta2) g'^2
 *         p -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * Hyperparameters are doubles; the per-step constants (1 - beta, the bias
 * corrections, 1 - lr * weight_decay) are formed in double once per step and
 * rounded to float, so 1 - beta2 is not lost to float cancellation. The
 * element-wise arithmetic is float.
 *   ES (evolution strategies): the gradient comes from train.c's estimator
 *   (population antithetic pairs theta +- sigma eps, rank-shaped fitness; see
 *   train.h), never from backprop; the step is p -= lr * g (SGD without
 *   momentum or weight decay); the state holds the last estimate.
 */
#ifndef QN_OPTIM_H
#define QN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

enum optim_kind { OPTIM_SGD, OPTIM_ADAM, OPTIM_ES };

struct optim_config {
    enum optim_kind kind;
    double lr;           /* learning rate (> 0) */
    double momentum;     /* SGD: in [0, 1); 0 is plain SGD */
    double beta1;        /* Adam: default 0.9 */
    double beta2;        /* Adam: default 0.999 */
    double eps;          /* Adam: default 1e-8 */
    double weight_decay; /* >= 0; default 0 */
    int decoupled;       /* Adam: 1 = AdamW (default), 0 = L2 added to the gradient */
    size_t population;   /* ES: members per step, even (antithetic pairs), >= 2; default 64 */
    double sigma;        /* ES: perturbation standard deviation (> 0); default 0.02 */
};

/* A trainable stretch [off, off + len) of the parameter slab. */
struct optim_seg {
    size_t off;
    size_t len;
};

struct optim {
    struct optim_config cfg;
    size_t n;              /* parameters */
    uint64_t t;            /* steps taken (Adam's bias correction); save it with the state */
    float *state;          /* (optim_state_len) owned: SGD velocity (n); Adam m (n) then v (n) */
    float *m;              /* (n) view: SGD velocity or Adam first moment */
    float *v;              /* (n) view: Adam second moment; NULL for SGD */
    size_t n_seg;          /* trainable segments */
    struct optim_seg *seg; /* (n_seg) owned, sorted, disjoint; initially [0, n) */
};

/* Defaults for `kind`: lr 1e-3 (Adam), 1e-2 (SGD) or 2e-2 (ES), momentum 0,
 * betas 0.9 and 0.999, eps 1e-8, weight_decay 0, decoupled 1, population 64,
 * sigma 0.02. */
void optim_config_default(struct optim_config *c, enum optim_kind kind);

/*
 * Prepares an optimizer for n parameters with zeroed state and t = 0 (*cfg is
 * copied). Returns 0, QN_EINVAL for a bad configuration (lr <= 0 or not
 * finite, momentum or betas outside [0, 1), eps <= 0, weight_decay < 0; ES:
 * population odd or below 2, sigma <= 0, momentum or weight_decay not 0),
 * or QN_ENOMEM.
 */
int optim_init(struct optim *o, const struct optim_config *cfg, size_t n);

/* Frees the state; the struct may be optim_init'ed again. */
void optim_close(struct optim *o);

/* Excludes [off, off + len) from every later step. Returns 0, QN_ERANGE when
 * the range exceeds n, or QN_ENOMEM. */
int optim_freeze(struct optim *o, size_t off, size_t len);

/* One update of params (n) from grads (n), both borrowed; t += 1. */
void optim_step(struct optim *o, float *params, const float *grads);

/* Sets the state to zero and t to 0 (frozen ranges stay frozen). */
void optim_reset(struct optim *o);

/* Number of floats in o->state (n for SGD and ES, 2n for Adam): what to checkpoint. */
size_t optim_state_len(const struct optim *o);

/* Name of an optimizer kind ("sgd", "adam", "es") and back; from_name gives QN_ESPEC. */
const char *optim_name(enum optim_kind k);
int optim_from_name(const char *s, enum optim_kind *out);

#endif
