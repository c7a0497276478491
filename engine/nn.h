/*
 * nn.h: the kernels of backpropagation: dense layers, activations, losses.
 *
 * In the manner of llm.c, every layer is a pair of plain functions,
 * x_forward(out, inp, params..., dims) and x_backward(dinp, dparams...,
 * dout, saved inputs..., dims). They never allocate and keep no state, so a
 * model is just slabs of floats plus a list of calls. Gradients are named d*
 * and ACCUMULATE with += (the caller zeroes them once per step); this lets a
 * tensor that feeds two consumers receive both contributions. A gradient
 * pointer that may be NULL says so; NULL skips that product.
 *
 * Tensors are float32, row-major, (batch, features). Matrix products go
 * through CBLAS (OpenBLAS sgemm), so a layer is one sgemm per direction, not a
 * loop over samples. Dimensions must fit in an int (CBLAS's index type); model
 * constructors check this, the kernels only assert it.
 *
 * Losses reduce in double and return the mean; their gradient outputs are
 * WRITTEN (=), not accumulated, because a loss is where backward starts.
 */
#ifndef QN_NN_H
#define QN_NN_H

#include <stddef.h>

#include "act.h"

/*
 * Dense forward: out = inp W^T + b.
 *   out (B, OC)   written
 *   inp (B, IC)   borrowed
 *   w   (OC, IC)  borrowed
 *   b   (OC)      borrowed, may be NULL (no bias)
 * out must not alias inp.
 */
void nn_dense_forward(float *out, const float *inp, const float *w, const float *b, size_t B,
                      size_t IC, size_t OC);

/*
 * Dense backward, accumulating:
 *   dinp (B, IC)   += dout W      (may be NULL: not needed, e.g. the data)
 *   dw   (OC, IC)  += dout^T inp  (may be NULL: frozen weights)
 *   db   (OC)      += sum_b dout  (may be NULL)
 *   dout (B, OC), inp (B, IC), w (OC, IC) borrowed.
 * dinp must not alias dout.
 */
void nn_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                       const float *w, size_t B, size_t IC, size_t OC);

/* Elementwise activation: out[i] = f(inp[i]) for i < n. out may equal inp. */
void nn_act_forward(float *out, const float *inp, size_t n, enum act_kind k);

/*
 * Activation backward: dinp[i] += dout[i] * f'(inp[i]) for i < n.
 * inp is the pre-activation and out = f(inp) the saved forward output (both
 * borrowed): sigmoid and tanh take f' from out, relu and softplus from inp.
 * dinp must not alias dout.
 */
void nn_act_backward(float *dinp, const float *dout, const float *inp, const float *out, size_t n,
                     enum act_kind k);

/*
 * Mean squared error over the batch AND the outputs:
 *   loss = 1/(B*T) * sum_{b,t} (pred[b,t] - target[b,t])^2
 *   dpred[b,t] = 2 (pred[b,t] - target[b,t]) / (B*T)   (written; may be NULL)
 * pred, target (B, T) borrowed. Returns the loss (0 for B*T == 0).
 */
double nn_mse_loss(float *dpred, const float *pred, const float *target, size_t B, size_t T);

/*
 * Softmax cross-entropy with integer labels, mean over the batch:
 *   loss = 1/B * sum_b (logsumexp(logits[b,:]) - logits[b, labels[b]])
 *   dlogits[b,c] = (softmax(logits[b,:])_c - [c == labels[b]]) / B  (written; may be NULL)
 * logits (B, C) and labels (B) borrowed. The log-sum-exp subtracts the row
 * maximum, so large logits do not overflow. *loss gets the loss. dlogits
 * must not alias logits.
 * Returns 0, or QN_ERANGE when a label is outside [0, C) (nothing is written
 * to *loss then; dlogits may be partly written).
 */
int nn_xent_loss(double *loss, float *dlogits, const float *logits, const int *labels, size_t B,
                 size_t C);

/* Row-wise argmax of logits (B, C) into pred (B); ties go to the lowest index. */
void nn_argmax(int *pred, const float *logits, size_t B, size_t C);

/* How many rows of logits (B, C) have their argmax equal to labels[b]. */
size_t nn_count_correct(const float *logits, const int *labels, size_t B, size_t C);

#endif
