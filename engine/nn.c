/*
 * nn.c: dense layers through CBLAS, float activations, losses.
 *
 * The activation loops are written over whole arrays with one switch outside
 * the loop, so the compiler can vectorise the cheap ones (identity, relu) and
 * the transcendental ones cost one expf/tanhf per element. Losses accumulate
 * in double: a batch of 60000 float terms summed in float loses digits that
 * the early-stopping logic of surrogate fits would notice.
 *
 * The callers (mlp.c, net.c) size every buffer from shapes they checked, so
 * the kernels only assert them: once per call, outside the element loops.
 */
#include "nn.h"

#include <assert.h>
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qn_err.h"

/* The CBLAS index type is int; model constructors refuse larger shapes. */
static int nn__i(size_t n)
{
    assert(n <= (size_t)INT_MAX);
    return (int)n;
}

void nn_dense_forward(float *out, const float *inp, const float *w, const float *b, size_t B,
                      size_t IC, size_t OC)
{
    float beta = 0.0f;
    if (B == 0 || OC == 0)
        return;
    assert(out && (IC == 0 || (inp && w && out != inp)));
    if (b) {
        for (size_t r = 0; r < B; r++)
            memcpy(out + r * OC, b, OC * sizeof *out);
        beta = 1.0f;
    }
    if (IC == 0) {
        if (!b)
            memset(out, 0, B * OC * sizeof *out);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nn__i(B), nn__i(OC), nn__i(IC), 1.0f, inp,
                nn__i(IC), w, nn__i(IC), beta, out, nn__i(OC));
}

/* db[o] += sum over rows of dout[:, o]. */
static void nn__bias_backward(float *db, const float *dout, size_t B, size_t OC)
{
    for (size_t r = 0; r < B; r++) {
        const float *row = dout + r * OC;
        for (size_t o = 0; o < OC; o++)
            db[o] += row[o];
    }
}

void nn_dense_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                       const float *w, size_t B, size_t IC, size_t OC)
{
    if (B == 0 || OC == 0)
        return;
    assert(dout && (IC == 0 || ((!dinp || (w && dinp != dout)) && (!dw || inp))));
    if (dinp && IC > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nn__i(B), nn__i(IC), nn__i(OC), 1.0f,
                    dout, nn__i(OC), w, nn__i(IC), 1.0f, dinp, nn__i(IC));
    if (dw && IC > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nn__i(OC), nn__i(IC), nn__i(B), 1.0f,
                    dout, nn__i(OC), inp, nn__i(IC), 1.0f, dw, nn__i(IC));
    if (db)
        nn__bias_backward(db, dout, B, OC);
}

static float nn__sigmoidf(float z)
{
    if (z >= 0)
        return 1.0f / (1.0f + expf(-z));
    float e = expf(z);
    return e / (1.0f + e);
}

static float nn__softplusf(float z)
{
    return z > 0 ? z + log1pf(expf(-z)) : log1pf(expf(z));
}

void nn_act_forward(float *out, const float *inp, size_t n, enum act_kind k)
{
    assert(n == 0 || (out && inp));
    switch (k) {
    case ACT_IDENTITY:
        if (out != inp)
            memmove(out, inp, n * sizeof *out);
        return;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
        return;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            out[i] = nn__sigmoidf(inp[i]);
        return;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            out[i] = tanhf(inp[i]);
        return;
    case ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++)
            out[i] = nn__softplusf(inp[i]);
        return;
    }
    assert(!"unknown activation");
}

void nn_act_backward(float *dinp, const float *dout, const float *inp, const float *out, size_t n,
                     enum act_kind k)
{
    assert(n == 0 || (dinp && dout && inp && out && dinp != dout));
    switch (k) {
    case ACT_IDENTITY:
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i];
        return;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++)
            dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
        return;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
        return;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
        return;
    case ACT_SOFTPLUS:
        for (size_t i = 0; i < n; i++)
            dinp[i] += dout[i] * nn__sigmoidf(inp[i]);
        return;
    }
    assert(!"unknown activation");
}

double nn_mse_loss(float *dpred, const float *pred, const float *target, size_t B, size_t T)
{
    assert(T == 0 || B <= SIZE_MAX / T);
    size_t n = B * T;
    double sum = 0.0;
    if (n == 0)
        return 0.0;
    assert(pred && target);
    float scale = (float)(2.0 / (double)n);
    for (size_t i = 0; i < n; i++) {
        float e = pred[i] - target[i];
        sum += (double)e * (double)e;
        if (dpred)
            dpred[i] = scale * e;
    }
    return sum / (double)n;
}

/* Loss of one row; writes its gradient (already divided by B) when drow is set. */
static double nn__xent_row(float *drow, const float *row, int label, size_t C, float inv_b)
{
    float mx = row[0];
    for (size_t c = 1; c < C; c++)
        mx = row[c] > mx ? row[c] : mx;
    double sum = 0.0;
    for (size_t c = 0; c < C; c++)
        sum += exp((double)(row[c] - mx));
    double lse = (double)mx + log(sum);
    if (drow) {
        for (size_t c = 0; c < C; c++)
            drow[c] = (float)(exp((double)row[c] - lse)) * inv_b;
        drow[label] -= inv_b;
    }
    return lse - (double)row[label];
}

int nn_xent_loss(double *loss, float *dlogits, const float *logits, const int *labels, size_t B,
                 size_t C)
{
    double sum = 0.0;
    float inv_b = B ? (float)(1.0 / (double)B) : 0.0f;
    assert(loss && (B == 0 || (logits && labels && dlogits != logits)));
    for (size_t b = 0; b < B; b++)
        if (labels[b] < 0 || (size_t)labels[b] >= C)
            return QN_ERANGE;
    for (size_t b = 0; b < B; b++)
        sum += nn__xent_row(dlogits ? dlogits + b * C : NULL, logits + b * C, labels[b], C, inv_b);
    *loss = B ? sum / (double)B : 0.0;
    return QN_OK;
}

/* Index of the largest entry of row[0..C); ties go to the lowest index. */
static size_t nn__argmax_row(const float *row, size_t C)
{
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
        if (row[c] > row[best])
            best = c;
    return best;
}

void nn_argmax(int *pred, const float *logits, size_t B, size_t C)
{
    assert(B == 0 || (pred && logits && C > 0));
    for (size_t b = 0; b < B; b++)
        pred[b] = (int)nn__argmax_row(logits + b * C, C);
}

size_t nn_count_correct(const float *logits, const int *labels, size_t B, size_t C)
{
    assert(B == 0 || (logits && labels && C > 0));
    size_t n = 0;
    for (size_t b = 0; b < B; b++)
        n += labels[b] >= 0 && (size_t)labels[b] == nn__argmax_row(logits + b * C, C);
    return n;
}
