/*
 * surrogate.c: fitting, evaluating and serialising frozen MLP surrogates.
 *
 * Fit: the usable rows (status 0, finite drives and output) are split by a
 * seeded permutation into validation (the first round(validation * n) rows)
 * and training rows. Drives and output are standardised with the mean and
 * population std of the TRAINING rows only (a constant column keeps std 1,
 * as in data.h). An MLP n_in -> hidden... -> 1 is trained with Adam on the
 * MSE of standardised outputs, minibatches drawn from a fresh seeded
 * permutation every epoch. After each epoch the validation RMSE is measured
 * in output units through the same float arithmetic surrogate_eval uses, so
 * the figure reported is the figure a user gets. The best epoch's weights are
 * kept and restored; training stops after `patience` epochs without
 * improvement.
 *
 * Defaults (fit_config_default) differ from the first draft of the interface
 * in two places, measured on a crn_relu sweep of 4000 Sobol' points over
 * u1 in [-4, 4] (product target: held-out RMSE < 2e-3 of the output range):
 * batch 32 instead of 256 (300 epochs of 256 are only ~4500 Adam steps and
 * stall at 3.8e-3 of the range) and patience 50 instead of 20 (while the rate
 * is still high the validation RMSE is noisy, and 20 epochs without a new
 * best stopped fits at epoch 50-200 of 300). With batch 32, lr 3e-3,
 * patience 50, seeds 1-5 reach 2.2e-4 .. 4.9e-4 of the range in about 1 s.
 *
 * Learning-rate schedule (trade-off: fixed and seed-free, so a fit is
 * bit-reproducible and resumable by epoch number alone): cosine decay per
 * epoch from lr down to lr * SURROGATE__LR_FLOOR at the last configured epoch,
 *   lr_e = lr * (f + (1 - f) * (1 + cos(pi * e / epochs)) / 2),  e = 0..epochs-1.
 * Adam with a constant rate stalls at a noise floor set by the rate; the decay
 * lets the last epochs settle into it, which is what brings smooth devices to
 * RMSEs of 1e-4 of their output range.
 *
 * Randomness: one gsl_rng mt19937 seeded with cfg->seed draws the split and
 * then each epoch's permutation; mlp_init_params draws the weights from its
 * own generator seeded with the same seed. Nothing depends on the clock or on
 * threads, so the same data and config give the same bits.
 *
 * Blob (all fields little-endian, fixed width):
 *   "QNSG" | u32 version (2 or 3) | u32 n_in | u32 n_layers | u32 sizes[n_layers+1]
 *   | u32 act[n_layers]
 *   | u32 n_cond | char cond_names[n_cond][32]  (version 3: NUL-padded names)
 *   | f32 in_mean[n_in] | f32 in_std[n_in] | f32 out_mean
 *   | f32 out_std | u64 n_params | f32 params[n_params]
 *   | f32 dom_lo[n_in] | f32 dom_hi[n_in]         (version 2; version 1 ends before)
 * Version 3 is written for a parameter-conditioned surrogate only, so a
 * surrogate of the nominal device keeps the version-2 bytes it always had.
 * The reader checks every count against the bytes that remain before it
 * allocates anything, so a blob can never make it allocate more than its own
 * length, and refuses trailing bytes and non-finite numbers.
 */
#include "surrogate.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "nn.h"
#include "optim.h"
#include "qn_err.h"

#define SURROGATE__MAGIC "QNSG"
#define SURROGATE__VERSION 2u     /* written; version 1 (no domain) is still read */
#define SURROGATE__VERSION_COND 3u /* written when conditioned on parameters */
#define SURROGATE__LR_FLOOR 0.01  /* final learning rate as a fraction of cfg->lr */
#define SURROGATE__STD_MIN 1e-8   /* below this a column counts as constant (std 1) */
#define SURROGATE__N_ACTS 5u      /* enum act_kind values a blob may hold */
#define SURROGATE__VAL_CHUNK 4096 /* validation rows per forward pass (at least the batch) */
#define SURROGATE__PI 3.14159265358979323846

void fit_config_default(struct fit_config *c)
{
    memset(c, 0, sizeof *c);
    c->n_hidden = 2;
    c->hidden[0] = 32;
    c->hidden[1] = 32;
    c->act = ACT_TANH;
    c->epochs = 300;
    c->batch = 32;
    c->lr = 3e-3f;
    c->validation = 0.1;
    c->patience = 50;
    c->seed = 1;
}

void surrogate_close(struct surrogate *s)
{
    if (!s)
        return;
    mlp_destroy(s->mlp);
    free(s->table);
    memset(s, 0, sizeof *s);
}

/* ---- evaluation ---- */

/* x[b,k] = (u[b,k] - mean[k]) / std[k]: the one standardisation used by fit and eval. */
static void surrogate__standardise(const struct surrogate *s, const float *u, size_t B, float *x)
{
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < s->n_in; k++)
            x[b * s->n_in + k] = (u[b * s->n_in + k] - s->in_mean[k]) / s->in_std[k];
}

/* Output units from the standardised network output. */
static float surrogate__destandardise(const struct surrogate *s, float o)
{
    return o * s->out_std + s->out_mean;
}

/* dy_du (B, n_in) from a backward pass with dout = 1; `ones` holds B floats of scratch. */
static int surrogate__grad(const struct surrogate *s, struct mlp_acts *acts, const float *x,
                           size_t B, float *dy_du, float *ones)
{
    for (size_t b = 0; b < B; b++)
        ones[b] = 1.0f;
    memset(dy_du, 0, B * s->n_in * sizeof *dy_du); /* mlp_backward accumulates into dx */
    int rc = mlp_backward(s->mlp, acts, x, ones, B, NULL, dy_du);
    if (rc)
        return rc;
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < s->n_in; k++)
            dy_du[b * s->n_in + k] *= s->out_std / s->in_std[k];
    return QN_OK;
}

int surrogate_eval_mlp(const struct surrogate *s, struct mlp_acts *acts, const float *u, size_t B,
                       float *y, float *dy_du, float *scratch)
{
    if (!s->mlp || B > acts->cap || acts->n_layers != s->mlp->n_layers)
        return QN_EINVAL;
    float *x = scratch;                  /* (B, n_in) standardised drives */
    float *ones = scratch + B * s->n_in; /* (B) dout for the backward pass */
    surrogate__standardise(s, u, B, x);
    int rc = mlp_forward(s->mlp, acts, x, B);
    if (rc)
        return rc;
    const float *o = mlp_output(s->mlp, acts);
    for (size_t b = 0; b < B; b++)
        y[b] = surrogate__destandardise(s, o[b]);
    return dy_du ? surrogate__grad(s, acts, x, B, dy_du, ones) : QN_OK;
}

/* The table at drive u: y by cubic Hermite interpolation of the knots'
 * values and slopes (error O(h^4)), and dy/du (when dy is non-NULL) by linear
 * interpolation of the slopes (error O(h^2), and free of the cancellation
 * that differentiating the cubic suffers in float). Returns 0 when u lies
 * inside the table, 1 otherwise. */
static int surrogate__table_at(const struct surrogate *s, float u, float *y, float *dy)
{
    float t = (u - s->table_lo) / s->table_h;
    if (!(t >= 0.0f) || !(t < (float)(s->table_n - 1)))
        return 1;
    size_t i = (size_t)t;
    float r = t - (float)i, h = s->table_h;
    const float *k = s->table + 2 * i;
    float y0 = k[0], d0 = k[1] * h, y1 = k[2], d1 = k[3] * h;
    float r2 = r * r, r3 = r2 * r;
    *y = (2 * r3 - 3 * r2 + 1) * y0 + (r3 - 2 * r2 + r) * d0 + (-2 * r3 + 3 * r2) * y1 +
         (r3 - r2) * d1;
    if (dy)
        *dy = k[1] + r * (k[3] - k[1]);
    return 0;
}

/* Runs the MLP on the rows of u that lie beyond the table, in chunks of c
 * rows laid out in scratch (2B floats) as [u | y | dy | mlp scratch (2c)]. */
static int surrogate__beyond_table(const struct surrogate *s, struct mlp_acts *acts, const float *u,
                              size_t B, float *y, float *dy_du, float *scratch)
{
    size_t c = B / 5, next = 0;
    float *cu = scratch, *cy = scratch + c, *cd = scratch + 2 * c, *cs = scratch + 3 * c;
    size_t rows[64];
    if (c > 64)
        c = 64;
    while (next < B) {
        size_t m = 0;
        float yy;
        for (; next < B && m < c; next++)
            if (surrogate__table_at(s, u[next], &yy, NULL))
                rows[m] = next, cu[m++] = u[next];
        if (m == 0)
            break;
        int rc = surrogate_eval_mlp(s, acts, cu, m, cy, dy_du ? cd : NULL, cs);
        if (rc)
            return rc;
        for (size_t j = 0; j < m; j++) {
            y[rows[j]] = cy[j];
            if (dy_du)
                dy_du[rows[j]] = cd[j];
        }
    }
    return QN_OK;
}

/* The 2-D table at drive u and parameter p: along the drive, the cubic Hermite
 * of the 1-D table at the two parameter knots around p; along the parameter, a
 * cubic Hermite of those two values with the parameter slopes of the knots
 * (interpolated linearly along the drive). The slopes dy/du and dy/dp (when
 * dy is non-NULL, into dy[0..2)) are bilinear in the knots' slopes. Returns 0
 * when (u, p) lies inside the table, 1 otherwise. */
static int surrogate__table2_at(const struct surrogate *s, float u, float p, float *y, float *dy)
{
    float t = (u - s->table_lo) / s->table_h, q = (p - s->table_lo2) / s->table_h2;
    if (!(t >= 0.0f) || !(t < (float)(s->table_n - 1)) || !(q >= 0.0f) ||
        !(q <= (float)(s->table_m - 1)))
        return 1;
    size_t i = (size_t)t, k = (size_t)q;
    k = k >= s->table_m - 1 ? s->table_m - 2 : k; /* p on the last knot: the last cell */
    float r = t - (float)i, w = q - (float)k, h = s->table_h, h2 = s->table_h2;
    float r2 = r * r, r3 = r2 * r, w2 = w * w, w3 = w2 * w;
    float yv[2], sp[2], su[2];
    for (size_t c = 0; c < 2; c++) {
        const float *a = s->table + 3 * ((k + c) * s->table_n + i), *b = a + 3;
        yv[c] = (2 * r3 - 3 * r2 + 1) * a[0] + (r3 - 2 * r2 + r) * a[1] * h +
                (-2 * r3 + 3 * r2) * b[0] + (r3 - r2) * b[1] * h;
        su[c] = a[1] + r * (b[1] - a[1]);
        sp[c] = a[2] + r * (b[2] - a[2]);
    }
    *y = (2 * w3 - 3 * w2 + 1) * yv[0] + (w3 - 2 * w2 + w) * sp[0] * h2 +
         (-2 * w3 + 3 * w2) * yv[1] + (w3 - w2) * sp[1] * h2;
    if (dy) {
        dy[0] = su[0] + w * (su[1] - su[0]);
        dy[1] = sp[0] + w * (sp[1] - sp[0]);
    }
    return 0;
}

/* surrogate_eval through the 2-D table; a batch with a row beyond it (a drive
 * more than 6 std from the sweep's mean) runs the MLP on every row. */
static int surrogate__eval_table2(const struct surrogate *s, struct mlp_acts *acts, const float *u,
                                  size_t B, float *y, float *dy_du, float *scratch)
{
    if (!s->mlp || B > acts->cap)
        return QN_EINVAL;
    for (size_t b = 0; b < B; b++)
        if (surrogate__table2_at(s, u[2 * b], u[2 * b + 1], &y[b], dy_du ? &dy_du[2 * b] : NULL))
            return surrogate_eval_mlp(s, acts, u, B, y, dy_du, scratch);
    return QN_OK;
}

int surrogate_eval(const struct surrogate *s, struct mlp_acts *acts, const float *u, size_t B,
                   float *y, float *dy_du, float *scratch)
{
    if (s->table && s->table_m)
        return surrogate__eval_table2(s, acts, u, B, y, dy_du, scratch);
    if (!s->table || B < 5)
        return surrogate_eval_mlp(s, acts, u, B, y, dy_du, scratch);
    if (!s->mlp || B > acts->cap)
        return QN_EINVAL;
    size_t outside = 0;
    for (size_t b = 0; b < B; b++)
        outside += (size_t)surrogate__table_at(s, u[b], &y[b], dy_du ? &dy_du[b] : NULL);
    /* drives beyond the table (rare: > 6 std from the sweep's mean) take the MLP */
    return outside ? surrogate__beyond_table(s, acts, u, B, y, dy_du, scratch) : QN_OK;
}

/* One row of the 2-D table: the drive knots at parameter p into row (table_n, 3),
 * with u (2 n) and y, dy (n, 2 n) and scratch (3 n) as work space. */
static int surrogate__table2_row(const struct surrogate *s, struct mlp_acts *acts, float lo,
                                 float h, float p, float *row, float *u, float *y, float *dy,
                                 float *scratch)
{
    size_t n = SURROGATE_TABLE2_KNOTS;
    for (size_t i = 0; i < n; i++)
        u[2 * i] = lo + h * (float)i, u[2 * i + 1] = p;
    int rc = surrogate_eval_mlp(s, acts, u, n, y, dy, scratch);
    for (size_t i = 0; rc == QN_OK && i < n; i++)
        row[3 * i] = y[i], row[3 * i + 1] = dy[2 * i], row[3 * i + 2] = dy[2 * i + 1];
    return rc;
}

/* The 2-D table of a surrogate of one drive and one parameter. */
static int surrogate__tabulate2(struct surrogate *s)
{
    size_t n = SURROGATE_TABLE2_KNOTS, m = SURROGATE_TABLE2_PARAMS;
    float lo = s->in_mean[0] - 6 * s->in_std[0], h = 12 * s->in_std[0] / (float)(n - 1);
    float lo2 = s->has_domain ? s->dom_lo[1] : s->in_mean[1] - 6 * s->in_std[1];
    float hi2 = s->has_domain ? s->dom_hi[1] : s->in_mean[1] + 6 * s->in_std[1];
    float h2 = hi2 > lo2 ? (hi2 - lo2) / (float)(m - 1) : 1.0f; /* a constant parameter */
    float *u = malloc(2 * n * sizeof *u), *scratch = malloc(3 * n * sizeof *scratch);
    float *y = malloc(n * sizeof *y), *dy = malloc(2 * n * sizeof *dy);
    float *table = malloc(3 * n * m * sizeof *table);
    struct mlp_acts acts;
    memset(&acts, 0, sizeof acts);
    int rc = u && scratch && y && dy && table ? mlp_acts_init(&acts, s->mlp, n) : QN_ENOMEM;
    for (size_t k = 0; rc == QN_OK && k < m; k++)
        rc = surrogate__table2_row(s, &acts, lo, h, lo2 + h2 * (float)k, table + 3 * n * k, u,
                                   y, dy, scratch);
    if (rc == QN_OK) {
        s->table = table, s->table_n = n, s->table_lo = lo, s->table_h = h;
        s->table_m = m, s->table_lo2 = lo2, s->table_h2 = h2;
        table = NULL;
    }
    if (acts.slab)
        mlp_acts_close(&acts);
    free(u), free(scratch), free(y), free(dy), free(table);
    return rc;
}

int surrogate_tabulate(struct surrogate *s)
{
    if (s->mlp && s->n_in == 2 && s->n_cond == 1 && !s->table)
        return surrogate__tabulate2(s);
    if (!s->mlp || s->n_in != 1 || s->table)
        return QN_OK;
    size_t n = SURROGATE_TABLE_KNOTS;
    float lo = s->in_mean[0] - 6 * s->in_std[0], h = 12 * s->in_std[0] / (float)(n - 1);
    float *u = malloc(n * sizeof *u), *scratch = malloc(2 * n * sizeof *scratch);
    float *y = malloc(n * sizeof *y), *dy = malloc(n * sizeof *dy);
    float *table = malloc(2 * n * sizeof *table);
    struct mlp_acts acts;
    memset(&acts, 0, sizeof acts);
    int rc = u && scratch && y && dy && table ? mlp_acts_init(&acts, s->mlp, n) : QN_ENOMEM;
    for (size_t i = 0; rc == QN_OK && i < n; i++)
        u[i] = lo + h * (float)i;
    if (rc == QN_OK)
        rc = surrogate_eval_mlp(s, &acts, u, n, y, dy, scratch);
    for (size_t i = 0; rc == QN_OK && i < n; i++)
        table[2 * i] = y[i], table[2 * i + 1] = dy[i];
    if (rc == QN_OK) {
        s->table = table, s->table_n = n, s->table_lo = lo, s->table_h = h;
        table = NULL;
    }
    if (acts.slab)
        mlp_acts_close(&acts);
    free(u), free(scratch), free(y), free(dy), free(table);
    return rc;
}

/* ---- fitting: configuration and data preparation ---- */

static int surrogate__config_ok(const struct fit_config *c, size_t n_in)
{
    if (n_in == 0 || n_in > DEV_MAX_INPUTS)
        return 0;
    if (c->n_hidden < 1 || c->n_hidden > FIT_MAX_HIDDEN)
        return 0;
    for (size_t l = 0; l < c->n_hidden; l++)
        if (c->hidden[l] == 0 || c->hidden[l] > MLP_MAX_WIDTH)
            return 0;
    if ((unsigned)c->act >= SURROGATE__N_ACTS)
        return 0;
    if (c->epochs == 0 || c->batch == 0 || c->batch > MLP_MAX_WIDTH)
        return 0;
    if (!isfinite(c->lr) || c->lr <= 0.0f)
        return 0;
    return isfinite(c->validation) && c->validation > 0.0 && c->validation <= 0.5;
}

/* Nonzero when row i is usable: status ok and every value finite. */
static int surrogate__row_ok(const float *in, const float *out, const int *status, size_t i,
                             size_t n_in)
{
    if (status && status[i] != 0)
        return 0;
    if (!isfinite(out[i]))
        return 0;
    for (size_t k = 0; k < n_in; k++)
        if (!isfinite(in[i * n_in + k]))
            return 0;
    return 1;
}

/* Mean and population std of column `col` (of stride `stride`) over rows idx[0..n), in double. */
static void surrogate__moments(const float *v, size_t stride, size_t col, const size_t *idx,
                               size_t n, float *mean, float *std)
{
    double m = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++)
        m += v[idx[i] * stride + col];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = v[idx[i] * stride + col] - m;
        ss += d * d;
    }
    double sd = sqrt(ss / (double)n);
    *mean = (float)m;
    *std = (sd < SURROGATE__STD_MIN || !isfinite((float)sd)) ? 1.0f : (float)sd;
}

/* Everything a fit allocates, freed at once by surrogate__work_close. */
struct surrogate__work {
    size_t n_train, n_val;
    size_t *rows;   /* (n_usable) usable row indices, permuted: val first, then train */
    size_t *perm;   /* (n_train) this epoch's permutation */
    float *x_train; /* (n_train, n_in) standardised drives */
    float *t_train; /* (n_train) standardised outputs */
    float *x_val;   /* (n_val, n_in) standardised drives */
    float *y_val;   /* (n_val) outputs, output units */
    float *xb, *tb; /* (batch, n_in), (batch): one minibatch */
    float *dpred;   /* (batch) loss gradient at the output */
    float *best;    /* (n_params) the best epoch's parameters */
    gsl_rng *rng;   /* split and shuffles */
    struct mlp_acts acts;
    struct optim opt;
};

static void surrogate__work_close(struct surrogate__work *w)
{
    free(w->rows);
    free(w->perm);
    free(w->x_train);
    free(w->t_train);
    free(w->x_val);
    free(w->y_val);
    free(w->xb);
    free(w->tb);
    free(w->dpred);
    free(w->best);
    if (w->rng)
        gsl_rng_free(w->rng);
    mlp_acts_close(&w->acts);
    optim_close(&w->opt);
}

/* calloc of n * size bytes (at least one element) with the overflow check calloc does. */
static void *surrogate__alloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

/* Lists usable rows into w->rows and counts them; shuffles them with the seeded rng and
 * fixes the split sizes. Returns 0, QN_EINVAL (fewer than 2 usable rows), QN_ENOMEM. */
static int surrogate__split(struct surrogate__work *w, const float *in, const float *out,
                            const int *status, size_t n, size_t n_in, const struct fit_config *cfg,
                            size_t *n_excluded)
{
    w->rows = surrogate__alloc(n, sizeof *w->rows);
    if (!w->rows)
        return QN_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (surrogate__row_ok(in, out, status, i, n_in))
            w->rows[m++] = i;
    *n_excluded = n - m;
    if (m < 2)
        return QN_EINVAL;
    w->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (!w->rng)
        return QN_ENOMEM;
    gsl_rng_set(w->rng, (unsigned long)cfg->seed);
    size_t *perm = surrogate__alloc(m, sizeof *perm);
    if (!perm)
        return QN_ENOMEM;
    data_permute(perm, m, w->rng);
    for (size_t i = 0; i < m; i++)
        perm[i] = w->rows[perm[i]];
    free(w->rows);
    w->rows = perm;
    double nv = floor(cfg->validation * (double)m + 0.5);
    w->n_val = nv < 1.0 ? 1 : (size_t)nv;
    if (w->n_val >= m)
        w->n_val = m - 1;
    w->n_train = m - w->n_val;
    return QN_OK;
}

/* Fits the standardisation on the training rows (after the val rows in w->rows). */
static void surrogate__scaling(struct surrogate *s, const struct surrogate__work *w,
                               const float *in, const float *out, size_t n_in)
{
    const size_t *train = w->rows + w->n_val;
    s->n_in = n_in;
    for (size_t k = 0; k < n_in; k++)
        surrogate__moments(in, n_in, k, train, w->n_train, &s->in_mean[k], &s->in_std[k]);
    surrogate__moments(out, 1, 0, train, w->n_train, &s->out_mean, &s->out_std);
    for (size_t k = 0; k < n_in; k++) { /* the domain: every usable row, held-out ones too */
        s->dom_lo[k] = HUGE_VALF, s->dom_hi[k] = -HUGE_VALF;
        for (size_t i = 0; i < w->n_train + w->n_val; i++) {
            float v = in[w->rows[i] * n_in + k];
            s->dom_lo[k] = fminf(s->dom_lo[k], v), s->dom_hi[k] = fmaxf(s->dom_hi[k], v);
        }
    }
    s->has_domain = 1;
}

/* Fills the standardised training arrays and the validation arrays. */
static void surrogate__fill(const struct surrogate *s, struct surrogate__work *w, const float *in,
                       const float *out)
{
    size_t n_in = s->n_in;
    for (size_t i = 0; i < w->n_val; i++) {
        size_t r = w->rows[i];
        surrogate__standardise(s, in + r * n_in, 1, w->x_val + i * n_in);
        w->y_val[i] = out[r];
    }
    for (size_t i = 0; i < w->n_train; i++) {
        size_t r = w->rows[w->n_val + i];
        surrogate__standardise(s, in + r * n_in, 1, w->x_train + i * n_in);
        w->t_train[i] = (out[r] - s->out_mean) / s->out_std;
    }
}

/* Allocates the per-fit arrays once the split sizes are known. */
static int surrogate__alloc_arrays(struct surrogate__work *w, size_t n_in, size_t batch)
{
    w->perm = surrogate__alloc(w->n_train, sizeof *w->perm);
    w->x_train = surrogate__alloc(w->n_train, n_in * sizeof *w->x_train);
    w->t_train = surrogate__alloc(w->n_train, sizeof *w->t_train);
    w->x_val = surrogate__alloc(w->n_val, n_in * sizeof *w->x_val);
    w->y_val = surrogate__alloc(w->n_val, sizeof *w->y_val);
    w->xb = surrogate__alloc(batch, n_in * sizeof *w->xb);
    w->tb = surrogate__alloc(batch, sizeof *w->tb);
    w->dpred = surrogate__alloc(batch, sizeof *w->dpred);
    if (!w->perm || !w->x_train || !w->t_train || !w->x_val || !w->y_val || !w->xb || !w->tb ||
        !w->dpred)
        return QN_ENOMEM;
    return QN_OK;
}

/* Creates the MLP n_in -> hidden... -> 1 with seeded weights into s->mlp. */
static int surrogate__make_mlp(struct surrogate *s, const struct fit_config *cfg)
{
    size_t sizes[FIT_MAX_HIDDEN + 2];
    enum act_kind act[FIT_MAX_HIDDEN + 1];
    size_t L = cfg->n_hidden + 1;
    sizes[0] = s->n_in;
    for (size_t l = 0; l < cfg->n_hidden; l++) {
        sizes[l + 1] = cfg->hidden[l];
        act[l] = cfg->act;
    }
    sizes[L] = 1;
    act[L - 1] = ACT_IDENTITY;
    int rc = mlp_create(&s->mlp, L, sizes, act);
    return rc ? rc : mlp_init_params(s->mlp, cfg->seed);
}

/* Sets up the optimizer, activations and best-parameter copy. */
static int surrogate__train_state(struct surrogate__work *w, const struct surrogate *s,
                             const struct fit_config *cfg)
{
    /* Validation runs in chunks of cap rows, so it need not hold them all at once. */
    size_t cap = w->n_val < SURROGATE__VAL_CHUNK ? w->n_val : SURROGATE__VAL_CHUNK;
    cap = cap > cfg->batch ? cap : cfg->batch;
    int rc = mlp_acts_init(&w->acts, s->mlp, cap);
    if (rc)
        return rc;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    oc.lr = cfg->lr;
    oc.weight_decay = 0;
    rc = optim_init(&w->opt, &oc, s->mlp->n_params);
    if (rc)
        return rc;
    w->best = malloc(s->mlp->n_params * sizeof *w->best);
    if (!w->best)
        return QN_ENOMEM;
    memcpy(w->best, s->mlp->params, s->mlp->n_params * sizeof *w->best);
    return QN_OK;
}

/* ---- fitting: the loop ---- */

static int surrogate__canceled(const struct fit_hooks *h)
{
    return h && h->cancel && atomic_load(h->cancel) != 0;
}

static void surrogate__metric(const struct fit_hooks *h, const char *name, size_t step,
                              size_t epoch, double v)
{
    if (h && h->metric)
        h->metric(name, step, epoch, v, h->ctx);
}

/* The learning rate of epoch e (0-based) of `epochs`: cosine decay to SURROGATE__LR_FLOOR * lr. */
static double surrogate__lr(double lr, size_t e, size_t epochs)
{
    double c = 0.5 * (1.0 + cos(SURROGATE__PI * (double)e / (double)epochs));
    return lr * (SURROGATE__LR_FLOOR + (1.0 - SURROGATE__LR_FLOOR) * c);
}

/* The gradient of the mean loss of rows perm[0..B) of the training set into
 * s->mlp->grads; adds B * loss to *sum. */
static int surrogate__batch_grad(struct surrogate *s, struct surrogate__work *w, const size_t *perm,
                                 size_t B, double *sum)
{
    size_t n_in = s->n_in;
    for (size_t b = 0; b < B; b++) {
        memcpy(w->xb + b * n_in, w->x_train + perm[b] * n_in, n_in * sizeof *w->xb);
        w->tb[b] = w->t_train[perm[b]];
    }
    int rc = mlp_forward(s->mlp, &w->acts, w->xb, B);
    if (rc)
        return rc;
    *sum += (double)B * nn_mse_loss(w->dpred, mlp_output(s->mlp, &w->acts), w->tb, B, 1);
    mlp_zero_grad(s->mlp);
    return mlp_backward(s->mlp, &w->acts, w->xb, w->dpred, B, s->mlp->grads, NULL);
}

/* This rank's rows of the batch perm[0..B) (shard.h): their gradient scaled by
 * their share of the batch, then the gradients and the loss summed across the
 * ranks; adds B * the batch's loss to *sum. */
static int surrogate__shard_grad(struct surrogate *s, struct surrogate__work *w,
                                 const struct shard *sh, const size_t *perm, size_t B, double *sum)
{
    size_t off, len, n = s->mlp->n_params;
    double part[2] = {0, 0}; /* loss times rows, ranks that failed */
    shard_rows(sh, B, &off, &len);
    int rc = len ? surrogate__batch_grad(s, w, perm + off, len, &part[0]) : QN_OK;
    if (!len || rc) /* a rank that failed still takes part in the sums, with zeros */
        mlp_zero_grad(s->mlp);
    part[0] = rc ? 0 : part[0], part[1] = rc != QN_OK;
    float share = (float)((double)len / (double)B);
    for (size_t k = 0; k < n; k++)
        s->mlp->grads[k] *= share;
    int src = shard_sum(sh, s->mlp->grads, n);
    if (src == QN_OK)
        src = shard_sum64(sh, part, 2);
    *sum += part[0];
    if (rc || src)
        return rc ? rc : src;
    return part[1] > 0 ? QN_EREMOTE : QN_OK; /* another rank failed */
}

/* One step on rows perm[0..B) of the training set (this rank's share of them in a
 * data-parallel fit); adds B * loss to *sum. */
static int surrogate__step(struct surrogate *s, struct surrogate__work *w, const struct shard *sh,
                           const size_t *perm, size_t B, double *sum)
{
    int rc = shard_active(sh) ? surrogate__shard_grad(s, w, sh, perm, B, sum)
                              : surrogate__batch_grad(s, w, perm, B, sum);
    if (rc)
        return rc;
    optim_step(&w->opt, s->mlp->params, s->mlp->grads);
    return QN_OK;
}

/* One epoch over a fresh permutation; *loss gets the mean standardised MSE. */
static int surrogate__epoch(struct surrogate *s, struct surrogate__work *w,
                            const struct fit_config *cfg, const struct fit_hooks *hooks,
                            size_t *step, size_t epoch, double *loss)
{
    double sum = 0.0;
    const struct shard *sh = hooks ? hooks->shard : NULL;
    size_t every = hooks ? hooks->step_metric_every : 0;
    data_permute(w->perm, w->n_train, w->rng);
    for (size_t i = 0; i < w->n_train; i += cfg->batch) {
        if (surrogate__canceled(hooks))
            return QN_ECANCELED;
        size_t B = w->n_train - i < cfg->batch ? w->n_train - i : cfg->batch;
        double part = 0.0;
        int rc = surrogate__step(s, w, sh, w->perm + i, B, &part);
        if (rc)
            return rc;
        sum += part;
        (*step)++;
        if (every && *step % every == 0)
            surrogate__metric(hooks, "step_loss", *step, epoch, part / (double)B);
    }
    *loss = sum / (double)w->n_train;
    return QN_OK;
}

/* RMSE and max |error| on the validation rows, in output units, as surrogate_eval computes. */
static int surrogate__validate(const struct surrogate *s, struct surrogate__work *w, double *rmse,
                          double *max_err)
{
    double ss = 0.0, mx = 0.0;
    for (size_t i = 0; i < w->n_val; i += w->acts.cap) {
        size_t B = w->n_val - i < w->acts.cap ? w->n_val - i : w->acts.cap;
        int rc = mlp_forward(s->mlp, &w->acts, w->x_val + i * s->n_in, B);
        if (rc)
            return rc;
        const float *o = mlp_output(s->mlp, &w->acts);
        for (size_t b = 0; b < B; b++) {
            double e = (double)surrogate__destandardise(s, o[b]) - (double)w->y_val[i + b];
            ss += e * e;
            mx = fabs(e) > mx ? fabs(e) : mx;
        }
    }
    *rmse = sqrt(ss / (double)w->n_val);
    *max_err = mx;
    return QN_OK;
}

/* Epochs with early stopping; leaves the best parameters in s->mlp and fills res. */
static int surrogate__train(struct surrogate *s, struct surrogate__work *w,
                            const struct fit_config *cfg, const struct fit_hooks *hooks,
                            struct fit_result *res)
{
    size_t step = 0, since_best = 0, n_params = s->mlp->n_params;
    double best = INFINITY, rmse, mx, loss;
    int rc = QN_OK;
    for (size_t e = 0; e < cfg->epochs; e++) {
        w->opt.cfg.lr = surrogate__lr(cfg->lr, e, cfg->epochs);
        if ((rc = surrogate__epoch(s, w, cfg, hooks, &step, e + 1, &loss)) ||
            (rc = surrogate__validate(s, w, &rmse, &mx)))
            return rc;
        res->epochs_run = e + 1;
        surrogate__metric(hooks, "train_loss", step, e + 1, loss);
        surrogate__metric(hooks, "val_rmse", step, e + 1, rmse);
        if (rmse < best) {
            best = rmse;
            res->best_epoch = e + 1;
            memcpy(w->best, s->mlp->params, n_params * sizeof *w->best);
            since_best = 0;
        } else if (++since_best >= cfg->patience) {
            break; /* patience 0 stops at the first epoch that does not improve */
        }
    }
    memcpy(s->mlp->params, w->best, n_params * sizeof *w->best);
    mlp_zero_grad(s->mlp);
    return surrogate__validate(s, w, &res->val_rmse, &res->max_error);
}

int surrogate_fit(const float *in, const float *out, const int *status, size_t n, size_t n_in,
                  const struct fit_config *cfg, const struct fit_hooks *hooks, struct surrogate *s,
                  struct fit_result *res)
{
    struct surrogate__work w;
    memset(&w, 0, sizeof w);
    memset(s, 0, sizeof *s);
    memset(res, 0, sizeof *res);
    if (!surrogate__config_ok(cfg, n_in) || (n > 0 && (!in || !out)) ||
        shard_check(hooks ? hooks->shard : NULL))
        return QN_EINVAL;
    if (n > SIZE_MAX / sizeof(float) / n_in)
        return QN_ENOMEM;
    int rc = surrogate__split(&w, in, out, status, n, n_in, cfg, &res->n_excluded);
    if (rc)
        goto fail;
    surrogate__scaling(s, &w, in, out, n_in);
    if ((rc = surrogate__alloc_arrays(&w, n_in, cfg->batch)))
        goto fail;
    surrogate__fill(s, &w, in, out);
    if ((rc = surrogate__make_mlp(s, cfg)) || (rc = surrogate__train_state(&w, s, cfg)) ||
        (rc = surrogate__train(s, &w, cfg, hooks, res)))
        goto fail;
    res->n_train = w.n_train;
    res->n_val = w.n_val;
    if ((rc = surrogate_tabulate(s)))
        goto fail;
    surrogate__work_close(&w);
    return QN_OK;

fail:
    surrogate__work_close(&w);
    surrogate_close(s);
    return rc;
}

/* ---- blob ---- */

/* A cursor writing little-endian fields into a buffer sized in advance. */
struct surrogate__wr {
    unsigned char *p;
};

static void surrogate__put_u32(struct surrogate__wr *c, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *c->p++ = (unsigned char)(v >> (8 * i));
}

static void surrogate__put_u64(struct surrogate__wr *c, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *c->p++ = (unsigned char)(v >> (8 * i));
}

static void surrogate__put_f32(struct surrogate__wr *c, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    surrogate__put_u32(c, v);
}

/* Bytes of the blob of s: fixed header, architecture, scaling, parameters. */
static int surrogate__blob_len(const struct surrogate *s, size_t *len)
{
    const struct mlp *m = s->mlp;
    size_t head = 4 + 4 + 4 + 4 + 4 * (m->n_layers + 1) + 4 * m->n_layers;
    if (s->n_cond)
        head += 4 + (size_t)DEV_NAME_MAX * s->n_cond;
    size_t scale = 4 * (2 * s->n_in + 2) + 4 * 2 * s->n_in; /* scaling and domain */
    if (m->n_params > (SIZE_MAX - head - scale - 8) / 4)
        return QN_ENOMEM;
    *len = head + scale + 8 + 4 * m->n_params;
    return QN_OK;
}

int surrogate_to_blob(const struct surrogate *s, void **blob, size_t *len)
{
    const struct mlp *m = s->mlp;
    size_t n;
    if (!m || surrogate__blob_len(s, &n))
        return QN_ENOMEM;
    unsigned char *buf = malloc(n);
    if (!buf)
        return QN_ENOMEM;
    struct surrogate__wr c = {buf};
    memcpy(c.p, SURROGATE__MAGIC, 4);
    c.p += 4;
    surrogate__put_u32(&c, s->n_cond ? SURROGATE__VERSION_COND : SURROGATE__VERSION);
    surrogate__put_u32(&c, (uint32_t)s->n_in);
    surrogate__put_u32(&c, (uint32_t)m->n_layers);
    for (size_t l = 0; l <= m->n_layers; l++)
        surrogate__put_u32(&c, (uint32_t)m->sizes[l]);
    for (size_t l = 0; l < m->n_layers; l++)
        surrogate__put_u32(&c, (uint32_t)m->act[l]);
    if (s->n_cond) {
        surrogate__put_u32(&c, (uint32_t)s->n_cond);
        for (size_t k = 0; k < s->n_cond; k++) {
            memset(c.p, 0, DEV_NAME_MAX);
            memcpy(c.p, s->cond_names[k], strlen(s->cond_names[k]));
            c.p += DEV_NAME_MAX;
        }
    }
    for (size_t k = 0; k < s->n_in; k++)
        surrogate__put_f32(&c, s->in_mean[k]);
    for (size_t k = 0; k < s->n_in; k++)
        surrogate__put_f32(&c, s->in_std[k]);
    surrogate__put_f32(&c, s->out_mean);
    surrogate__put_f32(&c, s->out_std);
    surrogate__put_u64(&c, (uint64_t)m->n_params);
    for (size_t i = 0; i < m->n_params; i++)
        surrogate__put_f32(&c, m->params[i]);
    for (size_t k = 0; k < s->n_in; k++)
        surrogate__put_f32(&c, s->has_domain ? s->dom_lo[k] : -HUGE_VALF);
    for (size_t k = 0; k < s->n_in; k++)
        surrogate__put_f32(&c, s->has_domain ? s->dom_hi[k] : HUGE_VALF);
    *blob = buf;
    *len = n;
    return QN_OK;
}

/* A cursor reading little-endian fields; every read checks the bytes left. */
struct surrogate__rd {
    const unsigned char *p;
    size_t left;
};

static int surrogate__get_u32(struct surrogate__rd *c, uint32_t *v)
{
    if (c->left < 4)
        return QN_EFORMAT;
    *v = 0;
    for (int i = 0; i < 4; i++)
        *v |= (uint32_t)c->p[i] << (8 * i);
    c->p += 4;
    c->left -= 4;
    return QN_OK;
}

static int surrogate__get_u64(struct surrogate__rd *c, uint64_t *v)
{
    if (c->left < 8)
        return QN_EFORMAT;
    *v = 0;
    for (int i = 0; i < 8; i++)
        *v |= (uint64_t)c->p[i] << (8 * i);
    c->p += 8;
    c->left -= 8;
    return QN_OK;
}

/* Reads a finite float. */
static int surrogate__get_f32(struct surrogate__rd *c, float *f)
{
    uint32_t v;
    int rc = surrogate__get_u32(c, &v);
    if (rc)
        return rc;
    memcpy(f, &v, sizeof *f);
    return isfinite(*f) ? QN_OK : QN_EFORMAT;
}

/* The architecture read from a blob, validated, before anything is allocated. */
struct surrogate__arch {
    uint32_t version;
    size_t n_in, n_layers;
    size_t sizes[MLP_MAX_LAYERS + 1];
    enum act_kind act[MLP_MAX_LAYERS];
};

/* Magic, version, n_in, layers, sizes and activations. */
static int surrogate__get_arch(struct surrogate__rd *c, struct surrogate__arch *a)
{
    uint32_t v, n_in, L;
    if (c->left < 4 || memcmp(c->p, SURROGATE__MAGIC, 4) != 0)
        return QN_EFORMAT;
    c->p += 4;
    c->left -= 4;
    if (surrogate__get_u32(c, &v) || v < 1 || v > SURROGATE__VERSION_COND ||
        surrogate__get_u32(c, &n_in) || surrogate__get_u32(c, &L))
        return QN_EFORMAT;
    a->version = v;
    if (n_in == 0 || n_in > DEV_MAX_INPUTS || L == 0 || L > MLP_MAX_LAYERS)
        return QN_EFORMAT;
    a->n_in = n_in;
    a->n_layers = L;
    for (size_t l = 0; l <= L; l++) {
        if (surrogate__get_u32(c, &v) || v == 0 || v > MLP_MAX_WIDTH)
            return QN_EFORMAT;
        a->sizes[l] = v;
    }
    if (a->sizes[0] != n_in || a->sizes[L] != 1)
        return QN_EFORMAT;
    for (size_t l = 0; l < L; l++) {
        if (surrogate__get_u32(c, &v) || v >= SURROGATE__N_ACTS)
            return QN_EFORMAT;
        a->act[l] = (enum act_kind)v;
    }
    return QN_OK;
}

/* The conditioning parameters of a version-3 blob: a count below n_in, then that
 * many names, each non-empty and NUL-padded to DEV_NAME_MAX bytes. */
static int surrogate__get_cond(struct surrogate__rd *c, struct surrogate *s, size_t n_in)
{
    uint32_t n;
    if (surrogate__get_u32(c, &n) || n == 0 || n >= n_in || n > DEV_MAX_PARAMS ||
        c->left / DEV_NAME_MAX < n)
        return QN_EFORMAT;
    for (size_t k = 0; k < n; k++) {
        const unsigned char *p = c->p + k * DEV_NAME_MAX;
        size_t len = strnlen((const char *)p, DEV_NAME_MAX);
        if (len == 0 || len == DEV_NAME_MAX)
            return QN_EFORMAT;
        for (size_t i = len; i < DEV_NAME_MAX; i++)
            if (p[i] != 0)
                return QN_EFORMAT;
        memcpy(s->cond_names[k], p, DEV_NAME_MAX);
    }
    c->p += (size_t)n * DEV_NAME_MAX;
    c->left -= (size_t)n * DEV_NAME_MAX;
    s->n_cond = n;
    return QN_OK;
}

size_t surrogate_n_drives(const struct surrogate *s)
{
    return s->n_in - s->n_cond;
}

int surrogate_set_cond(struct surrogate *s, size_t n, const char *const *names)
{
    if (n >= s->n_in || n > DEV_MAX_PARAMS)
        return QN_EINVAL;
    for (size_t k = 0; k < n; k++)
        if (!names[k] || names[k][0] == '\0' || strlen(names[k]) >= DEV_NAME_MAX)
            return QN_EINVAL;
    memset(s->cond_names, 0, sizeof s->cond_names);
    for (size_t k = 0; k < n; k++)
        memcpy(s->cond_names[k], names[k], strlen(names[k]));
    s->n_cond = n;
    return surrogate_tabulate(s);
}

/* Means and stds (positive) of the drives and the output. */
static int surrogate__get_scaling(struct surrogate__rd *c, struct surrogate *s, size_t n_in)
{
    for (size_t k = 0; k < n_in; k++)
        if (surrogate__get_f32(c, &s->in_mean[k]))
            return QN_EFORMAT;
    for (size_t k = 0; k < n_in; k++)
        if (surrogate__get_f32(c, &s->in_std[k]) || !(s->in_std[k] > 0.0f))
            return QN_EFORMAT;
    if (surrogate__get_f32(c, &s->out_mean) || surrogate__get_f32(c, &s->out_std) ||
        !(s->out_std > 0.0f))
        return QN_EFORMAT;
    s->n_in = n_in;
    return QN_OK;
}

/* Parameter count of an architecture, in 64 bits (at most 16 * (2^40 + 2^20): no overflow). */
static uint64_t surrogate__arch_params(const struct surrogate__arch *a)
{
    uint64_t n = 0;
    for (size_t l = 0; l < a->n_layers; l++)
        n += (uint64_t)a->sizes[l + 1] * a->sizes[l] + a->sizes[l + 1];
    return n;
}

/* Creates the MLP and reads its n_params finite floats, which must fill the rest exactly. */
static int surrogate__get_params(struct surrogate__rd *c, struct surrogate *s,
                                 const struct surrogate__arch *a)
{
    uint64_t np;
    size_t tail = a->version >= 2 ? 8 * a->n_in : 0; /* the domain after the weights */
    if (surrogate__get_u64(c, &np) || np != surrogate__arch_params(a) || c->left < tail ||
        np != (c->left - tail) / 4 || c->left % 4 != 0)
        return QN_EFORMAT;
    int rc = mlp_create(&s->mlp, a->n_layers, a->sizes, a->act);
    if (rc)
        return rc == QN_ENOMEM ? QN_ENOMEM : QN_EFORMAT;
    if (s->mlp->n_params != np)
        return QN_EFORMAT;
    for (size_t i = 0; i < s->mlp->n_params; i++)
        if (surrogate__get_f32(c, &s->mlp->params[i]))
            return QN_EFORMAT;
    return QN_OK;
}

/* The domain of a version-2 blob: n_in lows then n_in highs, finite with
 * lo <= hi; or every low -inf and every high +inf (written without one). */
static int surrogate__get_domain(struct surrogate__rd *c, struct surrogate *s)
{
    uint32_t v;
    size_t n = s->n_in, finite = 0, open = 0;
    for (size_t k = 0; k < 2 * n; k++) {
        if (surrogate__get_u32(c, &v))
            return QN_EFORMAT;
        float f;
        memcpy(&f, &v, sizeof f);
        (k < n ? s->dom_lo : s->dom_hi)[k % n] = f;
        finite += isfinite(f) != 0;
        open += k < n ? f == -HUGE_VALF : f == HUGE_VALF;
    }
    for (size_t k = 0; finite == 2 * n && k < n; k++)
        if (!(s->dom_lo[k] <= s->dom_hi[k]))
            return QN_EFORMAT;
    if (finite != 2 * n && open != 2 * n)
        return QN_EFORMAT;
    s->has_domain = finite == 2 * n;
    return c->left == 0 ? QN_OK : QN_EFORMAT;
}

size_t surrogate_clamp(const struct surrogate *s, float *u, size_t B, float *mask)
{
    size_t n = s->n_in, outside = 0;
    for (size_t b = 0; b < B; b++) {
        int out = 0;
        for (size_t k = 0; k < n; k++) {
            float *x = &u[b * n + k];
            int lo = s->has_domain && *x < s->dom_lo[k], hi = s->has_domain && *x > s->dom_hi[k];
            if (lo)
                *x = s->dom_lo[k];
            if (hi)
                *x = s->dom_hi[k];
            if (mask)
                mask[b * n + k] = lo || hi ? 0.0f : 1.0f;
            out |= lo | hi;
        }
        outside += (size_t)out;
    }
    return outside;
}

int surrogate_from_blob(const void *blob, size_t len, struct surrogate *s)
{
    struct surrogate__rd c = {blob, blob ? len : 0};
    struct surrogate__arch a;
    memset(s, 0, sizeof *s);
    int rc = surrogate__get_arch(&c, &a);
    if (!rc && a.version >= SURROGATE__VERSION_COND)
        rc = surrogate__get_cond(&c, s, a.n_in);
    if (!rc)
        rc = surrogate__get_scaling(&c, s, a.n_in);
    if (!rc)
        rc = surrogate__get_params(&c, s, &a);
    if (!rc && a.version >= 2)
        rc = surrogate__get_domain(&c, s);
    if (!rc)
        rc = surrogate_tabulate(s);
    if (rc)
        surrogate_close(s);
    return rc;
}
