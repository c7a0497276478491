/*
 * test_surrogate.c: fitting, evaluating and serialising surrogates (engine/surrogate.c).
 *
 * - A crn_relu surrogate fitted with the defaults on a sweep of 4000 Sobol'
 *   points over u1 in [-4, 4] has held-out RMSE < 2e-3 of the output range
 *   (the product's requirement), both as reported and on an independent grid
 *   scored against the closed form (z + sqrt(z^2 + 4 kappa)) / 2; the metric
 *   hook sees every epoch and the reported val_rmse is the best one it saw.
 * - dy/du of a dot_sq surrogate agrees with central differences of a float64
 *   re-implementation of the forward pass (and loosely with float ones).
 * - Blobs round-trip bit for bit; every truncation, a list of corrupted
 *   headers and random byte flips are refused (QN_EFORMAT) or load safely.
 * - Failed and non-finite rows are excluded, counted, and have no influence:
 *   the fit equals the fit on the data with those rows removed.
 * - Same seed, same blob; eval never changes the weights; cancel works;
 *   early stopping stops exactly `patience` epochs after the best one.
 * - A parameter-conditioned surrogate f(u1; kappa) fitted with the defaults
 *   on 4000 Sobol' rows of a (u1, kappa) sweep of crn_relu agrees with the
 *   closed form at held-out (u1, kappa) (a grid between the sweep's points)
 *   to the tolerance stated there, and its 2-D table agrees with its MLP to
 *   the tolerance stated at table_vs_mlp; its blob is version 3 and keeps the
 *   parameter names, a nominal surrogate's stays version 2, and malformed
 *   name sections are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "design.h"
#include "device.h"
#include "mlp.h"
#include "qn_err.h"
#include "surrogate.h"
#include "sweep.h"

/* A sweep dataset in the float form surrogate_fit takes. */
struct ds {
    size_t n, n_in;
    float *in;   /* (n, n_in) */
    float *out;  /* (n) */
    int *status; /* (n) */
};

static void ds_free(struct ds *d)
{
    free(d->in);
    free(d->out);
    free(d->status);
}

/* Sweeps a prepared model over a Sobol' design of n points in [lo, hi] into *d. */
static void ds_sweep(struct ds *d, const struct dev_model *m, size_t n, const double *lo,
                     const double *hi)
{
    size_t k = dev_n_inputs(m);
    double *in = malloc(n * k * sizeof *in), *out = malloc(n * sizeof *out);
    d->n = n;
    d->n_in = k;
    d->in = malloc(n * k * sizeof *d->in);
    d->out = malloc(n * sizeof *d->out);
    d->status = malloc(n * sizeof *d->status);
    assert_true(in && out && d->in && d->out && d->status);
    assert_int_equal(design_generate(DESIGN_SOBOL, n, k, lo, hi, 1, in), 0);
    assert_int_equal(sweep_run(m, in, n, 2, out, d->status, NULL), 0);
    for (size_t i = 0; i < n * k; i++)
        d->in[i] = (float)in[i];
    for (size_t i = 0; i < n; i++)
        d->out[i] = (float)out[i];
    free(in);
    free(out);
}

/* crn_relu (defaults, kappa 0.01) over u1 in [lo, hi]. */
static void ds_crn(struct ds *d, size_t n, double lo, double hi)
{
    struct dev_model m;
    struct dev_error err;
    dev_model_init(&m, DEV_CRN_RELU);
    if (dev_model_prepare(&m, &err) != 0)
        fail_msg("prepare: %s: %s", err.field, err.msg);
    ds_sweep(d, &m, n, &lo, &hi);
    dev_model_close(&m);
}

/* almost_neuron, drive dot_sq, sigmoid(u1 - 0.1 u2): a smooth 2-input device. */
static void ds_dot_sq(struct ds *d, size_t n)
{
    struct dev_model m;
    struct dev_error err;
    const double lo[2] = {-3.0, 0.0}, hi[2] = {3.0, 4.0};
    dev_model_init(&m, DEV_ALMOST_NEURON);
    m.drive = DRIVE_DOT_SQ;
    m.activation = ACT_SIGMOID;
    m.eps = 0.1;
    if (dev_model_prepare(&m, &err) != 0)
        fail_msg("prepare: %s: %s", err.field, err.msg);
    ds_sweep(d, &m, n, lo, hi);
    dev_model_close(&m);
}

/* A quick configuration for tests that do not measure accuracy. */
static void quick_config(struct fit_config *c, size_t epochs)
{
    fit_config_default(c);
    c->hidden[0] = c->hidden[1] = 16;
    c->epochs = epochs;
}

/* Fits d with c, failing the test unless it succeeds. */
static void fit_ok(const struct ds *d, const struct fit_config *c, struct surrogate *s,
                   struct fit_result *r)
{
    int rc = surrogate_fit(d->in, d->out, d->status, d->n, d->n_in, c, NULL, s, r);
    if (rc != 0)
        fail_msg("surrogate_fit: %s", qn_err_name(rc));
}

/* ---- accuracy on crn_relu ---- */

/* Records what the metric hook saw. */
struct seen {
    size_t n_loss, n_rmse;
    size_t last_epoch, last_step;
    double min_rmse;
    int order_ok;
};

static void seen_metric(const char *name, size_t step, size_t epoch, double v, void *ctx)
{
    struct seen *s = ctx;
    if (strcmp(name, "train_loss") == 0) {
        s->n_loss++;
        s->order_ok &= epoch == s->last_epoch + 1 && step > s->last_step && isfinite(v);
        s->last_epoch = epoch;
        s->last_step = step;
    } else if (strcmp(name, "val_rmse") == 0) {
        s->n_rmse++;
        s->order_ok &= epoch == s->last_epoch && step == s->last_step;
        s->min_rmse = v < s->min_rmse ? v : s->min_rmse;
    } else {
        s->order_ok = 0;
    }
}

/* RMSE of s against the crn_relu closed form on a uniform grid of n points in [lo, hi]. */
static double crn_grid_rmse(const struct surrogate *s, double lo, double hi, size_t n,
                            double *max_err)
{
    const double kappa = 0.01;
    struct mlp_acts acts;
    float *u = malloc(n * sizeof *u), *y = malloc(n * sizeof *y);
    float *scratch = malloc(2 * n * sizeof *scratch);
    assert_true(u && y && scratch);
    assert_int_equal(mlp_acts_init(&acts, s->mlp, n), 0);
    for (size_t i = 0; i < n; i++)
        u[i] = (float)(lo + (hi - lo) * (double)i / (double)(n - 1));
    assert_int_equal(surrogate_eval(s, &acts, u, n, y, NULL, scratch), 0);
    double ss = 0.0, mx = 0.0;
    for (size_t i = 0; i < n; i++) {
        double z = u[i], want = (z + sqrt(z * z + 4.0 * kappa)) / 2.0;
        double e = fabs(y[i] - want);
        ss += e * e;
        mx = e > mx ? e : mx;
    }
    mlp_acts_close(&acts);
    free(u);
    free(y);
    free(scratch);
    *max_err = mx;
    return sqrt(ss / (double)n);
}

static void test_crn_fit_accuracy(void **state)
{
    (void)state;
    struct ds d;
    ds_crn(&d, 4000, -4.0, 4.0);
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < d.n; i++) {
        assert_int_equal(d.status[i], 0);
        lo = d.out[i] < lo ? d.out[i] : lo;
        hi = d.out[i] > hi ? d.out[i] : hi;
    }
    double range = (double)hi - (double)lo, bound = 2e-3 * range;
    struct fit_config c;
    fit_config_default(&c);
    struct seen seen = {0, 0, 0, 0, INFINITY, 1};
    struct fit_hooks hooks = {seen_metric, &seen, NULL, 0, NULL};
    struct surrogate s;
    struct fit_result r;
    assert_int_equal(surrogate_fit(d.in, d.out, d.status, d.n, 1, &c, &hooks, &s, &r), 0);
    double grid_max, grid_rmse = crn_grid_rmse(&s, -4.0, 4.0, 2001, &grid_max);
    printf("crn_relu fit: range %.4f, val_rmse %.3g (%.3g of range), max_error %.3g, "
           "grid rmse %.3g max %.3g, epochs %zu, best %zu\n",
           range, r.val_rmse, r.val_rmse / range, r.max_error, grid_rmse, grid_max, r.epochs_run,
           r.best_epoch);
    assert_int_equal(r.n_excluded, 0);
    assert_int_equal(r.n_val, 400);
    assert_int_equal(r.n_train, 3600);
    assert_true(r.val_rmse < bound);
    assert_true(grid_rmse < bound);
    assert_true(r.max_error >= r.val_rmse && r.max_error < 10 * bound);
    /* The hook saw every epoch in order; the reported figure is the best epoch's. */
    assert_true(seen.order_ok);
    assert_int_equal(seen.n_loss, r.epochs_run);
    assert_int_equal(seen.n_rmse, r.epochs_run);
    assert_true(r.best_epoch >= 1 && r.best_epoch <= r.epochs_run);
    assert_true(r.val_rmse == seen.min_rmse);
    surrogate_close(&s);
    ds_free(&d);
}

/* ---- gradients ---- */

/* Float64 forward of the surrogate at one row u (n_in), from its float parameters. */
static double forward64(const struct surrogate *s, const double *u)
{
    const struct mlp *m = s->mlp;
    double a[64], z[64];
    for (size_t k = 0; k < s->n_in; k++)
        a[k] = (u[k] - s->in_mean[k]) / s->in_std[k];
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t IC = m->sizes[l], OC = m->sizes[l + 1];
        assert_true(OC <= 64);
        struct mlp_layer_view v = mlp_layer_view(m, m->params, l);
        for (size_t o = 0; o < OC; o++) {
            z[o] = v.b[o];
            for (size_t i = 0; i < IC; i++)
                z[o] += (double)v.w[o * IC + i] * a[i];
        }
        for (size_t o = 0; o < OC; o++)
            a[o] = act_eval(m->act[l], z[o]);
    }
    return a[0] * s->out_std + s->out_mean;
}

static void test_dot_sq_gradient(void **state)
{
    (void)state;
    enum { B = 64 };
    struct ds d;
    ds_dot_sq(&d, 1000);
    struct fit_config c;
    quick_config(&c, 40);
    struct surrogate s;
    struct fit_result r;
    fit_ok(&d, &c, &s, &r);
    assert_int_equal(s.n_in, 2);

    struct mlp_acts acts;
    assert_int_equal(mlp_acts_init(&acts, s.mlp, B), 0);
    float u[B * 2], y[B], g[B * 2], scratch[B * 3], up[B * 2], yp[B], ym[B];
    for (size_t b = 0; b < B; b++) {
        u[2 * b] = (float)(-3.0 + 6.0 * (double)b / (B - 1));
        u[2 * b + 1] = (float)(4.0 * (double)((b * 37) % B) / (B - 1));
    }
    assert_int_equal(surrogate_eval(&s, &acts, u, B, y, g, scratch), 0);
    double worst64 = 0.0, worst32 = 0.0;
    for (size_t b = 0; b < B; b++) {
        double u64[2] = {u[2 * b], u[2 * b + 1]};
        /* The float forward agrees with the float64 one. */
        double y64 = forward64(&s, u64);
        assert_true(fabs(y[b] - y64) <= 1e-5 * (fabs(y64) + 1.0));
        for (size_t k = 0; k < 2; k++) {
            const double h = 1e-5;
            double up64[2] = {u64[0], u64[1]}, um64[2] = {u64[0], u64[1]};
            up64[k] += h;
            um64[k] -= h;
            double fd = (forward64(&s, up64) - forward64(&s, um64)) / (2 * h);
            /* Relative error with a floor of 1e-2 of the drive's gradient scale. */
            double scale = fabs(fd) + 1e-2 * s.out_std / s.in_std[k];
            double e = fabs(g[2 * b + k] - fd) / scale;
            worst64 = e > worst64 ? e : worst64;
        }
    }
    /* Float central differences of surrogate_eval itself, h = 2e-2: float roundoff dominates below.
     */
    for (size_t k = 0; k < 2; k++) {
        const float h = 2e-2f;
        memcpy(up, u, sizeof u);
        for (size_t b = 0; b < B; b++)
            up[2 * b + k] = u[2 * b + k] + h;
        assert_int_equal(surrogate_eval(&s, &acts, up, B, yp, NULL, scratch), 0);
        for (size_t b = 0; b < B; b++)
            up[2 * b + k] = u[2 * b + k] - h;
        assert_int_equal(surrogate_eval(&s, &acts, up, B, ym, NULL, scratch), 0);
        for (size_t b = 0; b < B; b++) {
            double fd = ((double)yp[b] - (double)ym[b]) / (2.0 * h);
            double scale = fabs(fd) + 1e-2 * s.out_std / s.in_std[k];
            double e = fabs(g[2 * b + k] - fd) / scale;
            worst32 = e > worst32 ? e : worst32;
        }
    }
    printf("dot_sq dy/du: worst relative error vs float64 FD %.2g, vs float FD %.2g\n", worst64,
           worst32);
    assert_true(worst64 < 1e-4);
    assert_true(worst32 < 1e-3);
    mlp_acts_close(&acts);
    surrogate_close(&s);
    ds_free(&d);
}

static void test_eval_keeps_weights(void **state)
{
    (void)state;
    enum { B = 100 };
    struct ds d;
    ds_dot_sq(&d, 300);
    struct fit_config c;
    quick_config(&c, 5);
    struct surrogate s;
    struct fit_result r;
    fit_ok(&d, &c, &s, &r);
    size_t np = s.mlp->n_params;
    float *p0 = malloc(np * sizeof *p0), *g0 = malloc(np * sizeof *g0);
    assert_true(p0 && g0);
    memcpy(p0, s.mlp->params, np * sizeof *p0);
    memcpy(g0, s.mlp->grads, np * sizeof *g0);
    struct mlp_acts acts;
    assert_int_equal(mlp_acts_init(&acts, s.mlp, B), 0);
    float y[B], g[2 * B], scratch[3 * B];
    for (int rep = 0; rep < 3; rep++) {
        assert_int_equal(surrogate_eval(&s, &acts, d.in, B, y, g, scratch), 0);
        assert_int_equal(surrogate_eval(&s, &acts, d.in, B / 2, y, NULL, scratch), 0);
    }
    assert_memory_equal(p0, s.mlp->params, np * sizeof *p0);
    assert_memory_equal(g0, s.mlp->grads, np * sizeof *g0);
    /* B above the activations' capacity is refused, not overrun. */
    assert_int_equal(surrogate_eval(&s, &acts, d.in, B + 1, y, NULL, scratch), QN_EINVAL);
    mlp_acts_close(&acts);
    free(p0);
    free(g0);
    surrogate_close(&s);
    ds_free(&d);
}

/* ---- blobs ---- */

/* A fitted dot_sq surrogate and its blob. */
static void blob_fixture(struct surrogate *s, void **blob, size_t *len)
{
    struct ds d;
    ds_dot_sq(&d, 300);
    struct fit_config c;
    quick_config(&c, 5);
    struct fit_result r;
    fit_ok(&d, &c, s, &r);
    assert_int_equal(surrogate_to_blob(s, blob, len), 0);
    ds_free(&d);
}

/* from_blob on an exact-length heap copy, so ASan sees any read past the end. */
static int load_copy(const void *blob, size_t len, struct surrogate *s)
{
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, blob, len);
    int rc = surrogate_from_blob(copy, len, s);
    free(copy);
    return rc;
}

static void test_blob_round_trip(void **state)
{
    (void)state;
    enum { B = 257 };
    struct surrogate a, b;
    void *blob, *blob2;
    size_t len, len2;
    blob_fixture(&a, &blob, &len);
    assert_memory_equal(blob, "QNSG", 4);
    assert_int_equal(load_copy(blob, len, &b), 0);
    assert_int_equal(b.n_in, a.n_in);
    assert_int_equal(b.mlp->n_params, a.mlp->n_params);
    assert_memory_equal(a.mlp->params, b.mlp->params, a.mlp->n_params * sizeof(float));
    /* Same outputs and gradients bit for bit, and the same blob again. */
    struct mlp_acts acts;
    assert_int_equal(mlp_acts_init(&acts, a.mlp, B), 0);
    float u[2 * B], ya[B], yb[B], ga[2 * B], gb[2 * B], scratch[3 * B];
    for (size_t i = 0; i < 2 * B; i++)
        u[i] = (float)(-5.0 + 10.0 * (double)((i * 7919) % (2 * B)) / (2 * B));
    assert_int_equal(surrogate_eval(&a, &acts, u, B, ya, ga, scratch), 0);
    assert_int_equal(surrogate_eval(&b, &acts, u, B, yb, gb, scratch), 0);
    assert_memory_equal(ya, yb, sizeof ya);
    assert_memory_equal(ga, gb, sizeof ga);
    assert_int_equal(surrogate_to_blob(&b, &blob2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(blob, blob2, len);
    mlp_acts_close(&acts);
    free(blob2);
    surrogate_close(&b);
    surrogate_close(&a);
    free(blob);
}

/* The domain is the box of the usable rows, survives the blob, and a
 * version-1 blob (written before domains) still loads, without one. */
static void test_domain(void **state)
{
    (void)state;
    struct ds d;
    ds_dot_sq(&d, 300);
    float lo[2] = {HUGE_VALF, HUGE_VALF}, hi[2] = {-HUGE_VALF, -HUGE_VALF};
    d.status[7] = QN_ENOTCONV;
    d.in[7 * 2] = -100.0f; /* a failed row is not part of the domain */
    for (size_t i = 0; i < d.n; i++)
        for (size_t k = 0; i != 7 && k < 2; k++)
            lo[k] = fminf(lo[k], d.in[i * 2 + k]), hi[k] = fmaxf(hi[k], d.in[i * 2 + k]);
    struct fit_config c;
    quick_config(&c, 3);
    struct surrogate s, b;
    struct fit_result r;
    fit_ok(&d, &c, &s, &r);
    assert_true(s.has_domain);
    for (int k = 0; k < 2; k++)
        assert_true(s.dom_lo[k] == lo[k] && s.dom_hi[k] == hi[k]);
    assert_true(lo[0] > -3.01f && lo[0] < -2.9f && hi[1] > 3.9f && hi[1] < 4.01f);
    /* clamping: rows inside untouched, outside pulled to the box, mask says which */
    float u[6] = {0.5f, 1.0f, -7.0f, 2.0f, 1.0f, 9.0f}, mask[6];
    assert_int_equal(surrogate_clamp(&s, u, 3, mask), 2);
    assert_true(u[0] == 0.5f && u[1] == 1.0f && mask[0] == 1 && mask[1] == 1);
    assert_true(u[2] == lo[0] && mask[2] == 0 && u[3] == 2.0f && mask[3] == 1);
    assert_true(u[5] == hi[1] && mask[5] == 0 && mask[4] == 1);
    /* the blob keeps it */
    void *blob;
    size_t len;
    assert_int_equal(surrogate_to_blob(&s, &blob, &len), 0);
    assert_int_equal(load_copy(blob, len, &b), 0);
    assert_true(b.has_domain && b.dom_lo[0] == lo[0] && b.dom_hi[1] == hi[1]);
    surrogate_close(&b);
    /* version 1: the same bytes without the domain, version field 1 */
    unsigned char *v1 = malloc(len - 16);
    assert_non_null(v1);
    memcpy(v1, blob, len - 16);
    v1[4] = 1;
    assert_int_equal(load_copy(v1, len - 16, &b), 0);
    assert_false(b.has_domain);
    float w[2] = {-7.0f, 9.0f};
    assert_int_equal(surrogate_clamp(&b, w, 1, NULL), 0);
    assert_true(w[0] == -7.0f && w[1] == 9.0f);
    surrogate_close(&b);
    free(v1);
    free(blob);
    surrogate_close(&s);
    ds_free(&d);
}

static void test_blob_truncated(void **state)
{
    (void)state;
    struct surrogate a, b;
    void *blob;
    size_t len;
    blob_fixture(&a, &blob, &len);
    for (size_t n = 0; n < len; n++) {
        int rc = load_copy(blob, n, &b);
        if (rc != QN_EFORMAT)
            fail_msg("length %zu of %zu: %s", n, len, qn_err_name(rc));
        assert_null(b.mlp);
    }
    /* A trailing byte is refused too, and a NULL blob. */
    unsigned char *longer = calloc(len + 1, 1);
    assert_non_null(longer);
    memcpy(longer, blob, len);
    assert_int_equal(surrogate_from_blob(longer, len + 1, &b), QN_EFORMAT);
    assert_int_equal(surrogate_from_blob(NULL, 0, &b), QN_EFORMAT);
    free(longer);
    surrogate_close(&a);
    free(blob);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void putf(unsigned char *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put32(p, v);
}

static void test_blob_corrupted_headers(void **state)
{
    (void)state;
    struct surrogate a, b;
    void *blob;
    size_t len;
    blob_fixture(&a, &blob, &len);
    /* Layout for n_in 2, 3 layers: sizes at 16..31, acts 32..43, scaling 44..67, n_params 68. */
    assert_int_equal(a.mlp->n_layers, 3);
    const size_t o_sizes = 16, o_acts = 32, o_std = 52, o_ostd = 64, o_np = 68;
    struct {
        size_t off;
        int width; /* 4: u32, 8: u64, -4: float */
        double v;
        const char *what;
    } bad[] = {
        {0, 4, 0x47534e52, "magic"},
        {4, 4, 3, "version 3"},
        {4, 4, 1, "version 1 (no domain) with a domain behind the weights"},
        {4, 4, 0, "version 0"},
        {8, 4, 0, "n_in 0"},
        {8, 4, 33, "n_in 33"},
        {8, 4, 0xffffffffu, "n_in 2^32-1"},
        {12, 4, 0, "0 layers"},
        {12, 4, 17, "17 layers"},
        {12, 4, 0xffffffffu, "2^32-1 layers"},
        {12, 4, 2, "2 layers (shifts every field)"},
        {o_sizes, 4, 3, "sizes[0] != n_in"},
        {o_sizes + 4, 4, 0, "width 0"},
        {o_sizes + 4, 4, (1u << 20) + 1, "width above MLP_MAX_WIDTH"},
        {o_sizes + 4, 4, 17, "width changes n_params"},
        {o_sizes + 12, 4, 2, "2 outputs"},
        {o_acts, 4, 5, "activation 5"},
        {o_acts + 8, 4, 0xffffffffu, "activation 2^32-1"},
        {o_std, -4, 0.0, "input std 0"},
        {o_std + 4, -4, -1.0, "input std negative"},
        {o_ostd, -4, NAN, "output std NaN"},
        {o_ostd, -4, INFINITY, "output std inf"},
        {44, -4, NAN, "input mean NaN"},
        {o_np, 8, 0, "n_params 0"},
        {o_np, 8, 1e18, "n_params huge"},
        {o_np + 8, -4, NAN, "a NaN weight"},
        {len - 4 - 16, -4, INFINITY, "an infinite bias"},
        {len - 16, -4, NAN, "a NaN domain bound"},
        {len - 16, -4, 10.0, "a domain whose low is above its high"},
    };
    unsigned char *c = malloc(len);
    assert_non_null(c);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(c, blob, len);
        if (bad[i].width == 4)
            put32(c + bad[i].off, (uint32_t)bad[i].v);
        else if (bad[i].width == 8)
            put64(c + bad[i].off, (uint64_t)bad[i].v);
        else
            putf(c + bad[i].off, (float)bad[i].v);
        int rc = load_copy(c, len, &b);
        if (rc != QN_EFORMAT)
            fail_msg("%s: %s", bad[i].what, qn_err_name(rc));
    }
    /* n_params off by one in either direction, with the bytes to match. */
    memcpy(c, blob, len);
    put64(c + o_np, a.mlp->n_params - 1);
    assert_int_equal(load_copy(c, len - 4, &b), QN_EFORMAT);
    free(c);
    /* A header claiming 16 layers of width 2^20 with no weights behind it. */
    unsigned char big[4 * 4 + 17 * 4 + 16 * 4 + 4 * 4 + 8];
    memset(big, 0, sizeof big);
    memcpy(big, "QNSG", 4);
    put32(big + 4, 1);
    put32(big + 8, 1);
    put32(big + 12, 16);
    put32(big + 16, 1);
    for (size_t l = 1; l < 16; l++)
        put32(big + 16 + 4 * l, 1u << 20);
    put32(big + 16 + 4 * 16, 1);
    putf(big + 152, 1.0f); /* in_std (in_mean at 148) */
    putf(big + 160, 1.0f); /* out_std (out_mean at 156) */
    put64(big + 164, 14ull * ((1ull << 40) + (1ull << 20)) + (1ull << 21) + (1ull << 20) + 1);
    assert_int_equal(load_copy(big, sizeof big, &b), QN_EFORMAT);
    surrogate_close(&a);
    free(blob);
}

/* Random byte flips: each load fails with QN_EFORMAT or yields a surrogate that evaluates. */
static void test_blob_random_flips(void **state)
{
    (void)state;
    struct surrogate a, b;
    void *blob;
    size_t len, loaded = 0;
    blob_fixture(&a, &blob, &len);
    unsigned char *c = malloc(len);
    assert_non_null(c);
    uint64_t x = 88172645463325252ull; /* xorshift64 */
    for (int it = 0; it < 2000; it++) {
        memcpy(c, blob, len);
        for (int f = 0; f < 1 + it % 4; f++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t off = (it % 3 == 0) ? (size_t)(x % 76) : (size_t)(x % len);
            c[off] ^= (unsigned char)(1u << ((x >> 32) % 8));
        }
        int rc = load_copy(c, len, &b);
        assert_true(rc == 0 || rc == QN_EFORMAT);
        if (rc == 0) {
            struct mlp_acts acts;
            float u[4] = {0.5f, 1.0f, -2.0f, 3.0f}, y[2], g[4], scratch[6];
            assert_int_equal(mlp_acts_init(&acts, b.mlp, 2), 0);
            assert_int_equal(surrogate_eval(&b, &acts, u, 2, y, g, scratch), 0);
            mlp_acts_close(&acts);
            surrogate_close(&b);
            loaded++;
        }
    }
    assert_true(loaded > 0); /* flips in the weights still load */
    free(c);
    surrogate_close(&a);
    free(blob);
}

/* ---- data handling, determinism, control ---- */

static void test_failed_rows_excluded(void **state)
{
    (void)state;
    struct ds d;
    ds_crn(&d, 600, -4.0, 4.0);
    /* Mark rows failed in several ways; keep a compacted copy of the good ones. */
    size_t bad = 0;
    for (size_t i = 0; i < d.n; i++) {
        if (i % 17 == 3) {
            d.status[i] = QN_ENOTCONV;
            d.out[i] = NAN;
        } else if (i % 23 == 5) {
            d.out[i] = NAN; /* status says ok, value does not */
        } else if (i % 31 == 7) {
            d.in[i] = INFINITY;
        } else if (i % 37 == 11) {
            d.status[i] = QN_ESOLVER; /* a finite value with a failed status */
        } else {
            continue;
        }
        bad++;
    }
    struct ds g = {0, 1, malloc(d.n * sizeof(float)), malloc(d.n * sizeof(float)), NULL};
    assert_true(g.in && g.out);
    for (size_t i = 0; i < d.n; i++)
        if (d.status[i] == 0 && isfinite(d.out[i]) && isfinite(d.in[i])) {
            g.in[g.n] = d.in[i];
            g.out[g.n++] = d.out[i];
        }
    assert_int_equal(g.n + bad, d.n);
    struct fit_config c;
    quick_config(&c, 10);
    struct surrogate s1, s2;
    struct fit_result r1, r2;
    fit_ok(&d, &c, &s1, &r1);
    fit_ok(&g, &c, &s2, &r2); /* status NULL: all rows ok */
    assert_int_equal(r1.n_excluded, bad);
    assert_int_equal(r1.n_train + r1.n_val, d.n - bad);
    assert_int_equal(r2.n_excluded, 0);
    /* The bad rows had no influence: the same fit as on the good rows alone. */
    void *b1, *b2;
    size_t l1, l2;
    assert_int_equal(surrogate_to_blob(&s1, &b1, &l1), 0);
    assert_int_equal(surrogate_to_blob(&s2, &b2, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    assert_true(r1.val_rmse == r2.val_rmse);
    free(b1);
    free(b2);
    surrogate_close(&s1);
    surrogate_close(&s2);
    /* Fewer than two usable rows: refused, with the count. */
    for (size_t i = 1; i < d.n; i++)
        d.status[i] = QN_EDIVERGED;
    struct surrogate s3;
    struct fit_result r3;
    assert_int_equal(surrogate_fit(d.in, d.out, d.status, d.n, 1, &c, NULL, &s3, &r3), QN_EINVAL);
    assert_null(s3.mlp);
    ds_free(&g);
    ds_free(&d);
}

static void test_bad_config(void **state)
{
    (void)state;
    float in[8] = {0, 1, 2, 3, 4, 5, 6, 7}, out[8] = {0, 1, 4, 9, 16, 25, 36, 49};
    struct surrogate s;
    struct fit_result r;
    struct fit_config c;
    const size_t n_cases = 9;
    for (size_t k = 0; k < n_cases; k++) {
        fit_config_default(&c);
        size_t n_in = 1;
        switch (k) {
        case 0: c.n_hidden = 0; break;
        case 1: c.n_hidden = FIT_MAX_HIDDEN + 1; break;
        case 2: c.hidden[1] = 0; break;
        case 3: c.epochs = 0; break;
        case 4: c.batch = 0; break;
        case 5: c.lr = NAN; break;
        case 6: c.validation = 0.0; break;
        case 7: c.validation = 0.75; break;
        case 8: n_in = 0; break;
        }
        assert_int_equal(
            surrogate_fit(in, out, NULL, 8 / (n_in ? n_in : 1), n_in, &c, NULL, &s, &r), QN_EINVAL);
        assert_null(s.mlp);
    }
}

static void test_same_seed_same_blob(void **state)
{
    (void)state;
    struct ds d;
    ds_dot_sq(&d, 400);
    struct fit_config c;
    quick_config(&c, 8);
    void *blob[3];
    size_t len[3];
    for (int i = 0; i < 3; i++) {
        struct surrogate s;
        struct fit_result r;
        c.seed = i < 2 ? 7 : 8;
        fit_ok(&d, &c, &s, &r);
        assert_int_equal(surrogate_to_blob(&s, &blob[i], &len[i]), 0);
        surrogate_close(&s);
    }
    assert_int_equal(len[0], len[1]);
    assert_memory_equal(blob[0], blob[1], len[0]);
    assert_int_equal(len[0], len[2]);
    assert_memory_not_equal(blob[0], blob[2], len[0]);
    for (int i = 0; i < 3; i++)
        free(blob[i]);
    ds_free(&d);
}

/* Sets the cancel flag once epoch 3 has reported. */
static void cancel_at_3(const char *name, size_t step, size_t epoch, double v, void *ctx)
{
    (void)name;
    (void)step;
    (void)v;
    if (epoch == 3)
        atomic_store((atomic_int *)ctx, 1);
}

static void test_cancel(void **state)
{
    (void)state;
    struct ds d;
    ds_dot_sq(&d, 400);
    struct fit_config c;
    quick_config(&c, 50);
    atomic_int flag = 1;
    struct fit_hooks hooks = {NULL, NULL, &flag, 0, NULL};
    struct surrogate s;
    struct fit_result r;
    assert_int_equal(surrogate_fit(d.in, d.out, d.status, d.n, 2, &c, &hooks, &s, &r),
                     QN_ECANCELED);
    assert_null(s.mlp);
    atomic_store(&flag, 0);
    hooks.metric = cancel_at_3;
    hooks.ctx = &flag;
    assert_int_equal(surrogate_fit(d.in, d.out, d.status, d.n, 2, &c, &hooks, &s, &r),
                     QN_ECANCELED);
    assert_int_equal(r.epochs_run, 3);
    assert_null(s.mlp);
    ds_free(&d);
}

static void test_early_stopping(void **state)
{
    (void)state;
    struct ds d;
    ds_dot_sq(&d, 400);
    struct fit_config c;
    quick_config(&c, 400);
    c.lr = 0.05f; /* noisy on purpose, so some epoch fails to improve soon */
    size_t stopped = 0;
    for (size_t p = 0; p < 4; p++) {
        struct surrogate s;
        struct fit_result r;
        c.patience = p;
        fit_ok(&d, &c, &s, &r);
        assert_true(r.best_epoch >= 1 && r.best_epoch <= r.epochs_run && r.epochs_run <= c.epochs);
        if (r.epochs_run < c.epochs) {
            /* patience 0 stops at the first epoch without improvement, like patience 1 */
            assert_int_equal(r.epochs_run - r.best_epoch, p ? p : 1);
            stopped++;
        }
        surrogate_close(&s);
    }
    assert_true(stopped > 0);
    ds_free(&d);
}

/* The Hermite table of a one-drive surrogate agrees with its MLP, and rows
 * beyond the table fall back to the MLP exactly. */
static void test_table_matches_mlp(void **state)
{
    (void)state;
    struct surrogate s;
    memset(&s, 0, sizeof s);
    size_t sizes[4] = {1, 32, 32, 1};
    enum act_kind act[3] = {ACT_TANH, ACT_TANH, ACT_IDENTITY};
    assert_int_equal(mlp_create(&s.mlp, 3, sizes, act), 0);
    assert_int_equal(mlp_init_params(s.mlp, 11), 0);
    s.n_in = 1;
    s.in_mean[0] = 0.5f, s.in_std[0] = 2.0f, s.out_mean = 1.0f, s.out_std = 3.0f;
    assert_int_equal(surrogate_tabulate(&s), 0);
    assert_non_null(s.table);
    enum { N = 4001 };
    static float u[N], yt[N], dt[N], ym[N], dm[N], scratch[2 * N];
    for (int i = 0; i < N; i++)
        u[i] = 0.5f - 10.0f + 20.0f * (float)i / (N - 1); /* mean +- 5 std */
    struct mlp_acts acts;
    assert_int_equal(mlp_acts_init(&acts, s.mlp, N), 0);
    assert_int_equal(surrogate_eval(&s, &acts, u, N, yt, dt, scratch), 0);
    assert_int_equal(surrogate_eval_mlp(&s, &acts, u, N, ym, dm, scratch), 0);
    double ey = 0, ed = 0, dmax = 0;
    for (int i = 0; i < N; i++) {
        ey = fmax(ey, fabs(yt[i] - ym[i]));
        ed = fmax(ed, fabs(dt[i] - dm[i]));
        dmax = fmax(dmax, fabs(dm[i]));
    }
    assert_true(ey < 1e-5 * s.out_std);
    assert_true(ed < 1e-4 * dmax);
    /* rows beyond the table come from the MLP (run on those rows alone, so equal
     * to the full-batch MLP up to sgemm blocking: 1e-6); the others from the table */
    u[7] = 100.0f, u[4000] = -90.0f;
    assert_int_equal(surrogate_eval(&s, &acts, u, N, yt, dt, scratch), 0);
    assert_int_equal(surrogate_eval_mlp(&s, &acts, u, N, ym, dm, scratch), 0);
    assert_true(fabs(yt[7] - ym[7]) < 1e-6 * fabs(ym[7]) + 1e-6 && fabs(dt[7] - dm[7]) < 1e-6);
    assert_true(fabs(yt[4000] - ym[4000]) < 1e-6 * fabs(ym[4000]) + 1e-6 &&
                fabs(dt[4000] - dm[4000]) < 1e-6);
    assert_true(fabs(yt[8] - ym[8]) < 1e-5 * s.out_std);
    mlp_acts_close(&acts);
    surrogate_close(&s);
}

/* ---- parameter-conditioned surrogates ---- */

/* crn_relu swept over (u1, kappa) in [-4, 4] x [0.002, 0.05]: 3 inputs per row. */
static void ds_crn_kappa(struct ds *d, size_t n)
{
    struct dev_model m;
    struct dev_error err;
    dev_model_init(&m, DEV_CRN_RELU);
    if (dev_model_prepare(&m, &err) != 0)
        fail_msg("prepare: %s: %s", err.field, err.msg);
    const double lo[2] = {-4.0, 0.002}, hi[2] = {4.0, 0.05};
    double *in = malloc(n * 2 * sizeof *in), *out = malloc(n * sizeof *out);
    d->n = n, d->n_in = 2;
    d->in = malloc(n * 2 * sizeof *d->in);
    d->out = malloc(n * sizeof *d->out);
    d->status = malloc(n * sizeof *d->status);
    assert_true(in && out && d->in && d->out && d->status);
    assert_int_equal(design_generate(DESIGN_SOBOL, n, 2, lo, hi, 1, in), 0);
    size_t kappa = 0;
    assert_string_equal(m.param_names[kappa], "kappa");
    assert_int_equal(sweep_run_params(&m, in, n, 1, &kappa, 2, out, d->status, NULL), 0);
    for (size_t i = 0; i < n * 2; i++)
        d->in[i] = (float)in[i];
    for (size_t i = 0; i < n; i++)
        d->out[i] = (float)out[i];
    free(in), free(out);
    dev_model_close(&m);
}

/* The 2-D table of s against its MLP at the B rows u (B, 2) (all inside the table):
 * values within 1e-5 of out_std, slopes dy/du within 1e-3 of the largest (measured on
 * the crn_relu fit: 2.1e-6 and 5.0e-4, AMD EPYC). */
static void table_vs_mlp(const struct surrogate *s, struct mlp_acts *acts, const float *u,
                         size_t B)
{
    float *yt = malloc(B * sizeof *yt), *ym = malloc(B * sizeof *ym);
    float *gt = malloc(2 * B * sizeof *gt), *gm = malloc(2 * B * sizeof *gm);
    float *scratch = malloc(3 * B * sizeof *scratch);
    assert_true(yt && ym && gt && gm && scratch);
    assert_int_equal(surrogate_eval(s, acts, u, B, yt, gt, scratch), 0);
    assert_int_equal(surrogate_eval_mlp(s, acts, u, B, ym, gm, scratch), 0);
    double ey = 0, eg = 0, gmax = 0;
    for (size_t b = 0; b < B; b++) {
        ey = fmax(ey, fabs(yt[b] - ym[b]));
        eg = fmax(eg, fabs(gt[2 * b] - gm[2 * b]));
        gmax = fmax(gmax, fabs(gm[2 * b]));
    }
    printf("2-D table vs MLP: value %.3g (%.3g of out_std), slope %.3g (%.3g of max %.3g)\n",
           ey, ey / s->out_std, eg, eg / gmax, gmax);
    assert_true(ey < 1e-5 * s->out_std);
    assert_true(eg < 1e-3 * gmax);
    free(yt), free(ym), free(gt), free(gm), free(scratch);
}

/* The conditioned fit against the closed form (z + sqrt(z^2 + 4 kappa)) / 2 on a
 * 161 x 13 grid of held-out points (u1 in [-3.95, 3.95], kappa in [0.004, 0.048],
 * offsets that no Sobol' row of the sweep shares). Tolerance: RMSE 1e-3 and max
 * error 1e-2 of the output range (3.96); measured RMSE 1.25e-3 (3.2e-4 of the range),
 * max 0.0154 (3.9e-3 of the range) on AMD EPYC. */
static void test_conditioned_fit(void **state)
{
    (void)state;
    struct ds d;
    ds_crn_kappa(&d, 4000);
    struct fit_config c;
    fit_config_default(&c);
    struct surrogate s;
    struct fit_result r;
    fit_ok(&d, &c, &s, &r);
    const char *names[] = {"kappa"};
    assert_int_equal(surrogate_set_cond(&s, 1, names), 0);
    assert_int_equal(surrogate_n_drives(&s), 1);
    assert_non_null(s.table); /* one drive and one parameter: a 2-D table */
    assert_int_equal(s.table_m, SURROGATE_TABLE2_PARAMS);
    enum { NU = 161, NK = 13, B = NU * NK };
    static float u[2 * B], y[B], scratch[3 * B];
    for (size_t i = 0; i < NU; i++)
        for (size_t k = 0; k < NK; k++) {
            u[2 * (i * NK + k)] = (float)(-3.95 + 7.9 * (double)i / (NU - 1));
            u[2 * (i * NK + k) + 1] = (float)(0.004 + 0.044 * (double)k / (NK - 1));
        }
    struct mlp_acts acts;
    assert_int_equal(mlp_acts_init(&acts, s.mlp, B), 0);
    assert_int_equal(surrogate_eval(&s, &acts, u, B, y, NULL, scratch), 0);
    table_vs_mlp(&s, &acts, u, B);
    double ss = 0, worst = 0, range = 0;
    for (size_t b = 0; b < B; b++) {
        double z = u[2 * b], kappa = u[2 * b + 1];
        double want = (z + sqrt(z * z + 4 * kappa)) / 2;
        range = fmax(range, want);
        ss += (y[b] - want) * (y[b] - want);
        worst = fmax(worst, fabs(y[b] - want));
    }
    double rmse = sqrt(ss / B);
    printf("conditioned crn_relu fit: val_rmse %.3g, held-out rmse %.3g max %.3g (range %.3f)\n",
           r.val_rmse, rmse, worst, range);
    assert_true(rmse < 1e-3 * range);
    assert_true(worst < 1e-2 * range);
    mlp_acts_close(&acts);
    surrogate_close(&s);
    ds_free(&d);
}

/* Version 3 keeps the parameter names; a nominal surrogate stays version 2; a bad
 * name section is refused. */
static void test_conditioned_blob(void **state)
{
    (void)state;
    struct ds d;
    ds_crn_kappa(&d, 256);
    struct fit_config c;
    quick_config(&c, 2);
    struct surrogate s, t;
    struct fit_result r;
    fit_ok(&d, &c, &s, &r);
    void *blob, *blob2;
    size_t len, len2;
    assert_int_equal(surrogate_to_blob(&s, &blob, &len), 0);
    assert_int_equal(((unsigned char *)blob)[4], 2); /* not conditioned: version 2 */
    free(blob);
    const char *names[] = {"kappa"}, *two[] = {"kappa", "b"}, *empty[] = {""};
    assert_int_equal(surrogate_set_cond(&s, 2, two), QN_EINVAL); /* no drive left */
    assert_int_equal(surrogate_set_cond(&s, 1, empty), QN_EINVAL);
    assert_int_equal(surrogate_set_cond(&s, 1, names), 0);
    assert_int_equal(surrogate_to_blob(&s, &blob, &len), 0);
    unsigned char *p = blob;
    assert_int_equal(p[4], 3);
    assert_int_equal(load_copy(blob, len, &t), 0);
    assert_int_equal(t.n_cond, 1);
    assert_string_equal(t.cond_names[0], "kappa");
    assert_int_equal(surrogate_to_blob(&t, &blob2, &len2), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(blob, blob2, len);
    free(blob2);
    surrogate_close(&t);
    /* the name section follows magic, version, n_in, n_layers, sizes and acts */
    size_t at = 16 + 4 * (s.mlp->n_layers + 1) + 4 * s.mlp->n_layers;
    assert_int_equal(p[at], 1);
    p[at] = 2; /* as many parameters as inputs */
    assert_int_equal(load_copy(blob, len, &t), QN_EFORMAT);
    p[at] = 1;
    p[at + 4] = 0; /* an empty name */
    assert_int_equal(load_copy(blob, len, &t), QN_EFORMAT);
    p[at + 4] = 'k';
    p[at + 4 + DEV_NAME_MAX - 1] = 'x'; /* not NUL-terminated within its field */
    assert_int_equal(load_copy(blob, len, &t), QN_EFORMAT);
    free(blob);
    surrogate_close(&s);
    ds_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crn_fit_accuracy),
        cmocka_unit_test(test_dot_sq_gradient),
        cmocka_unit_test(test_eval_keeps_weights),
        cmocka_unit_test(test_blob_round_trip),
        cmocka_unit_test(test_domain),
        cmocka_unit_test(test_blob_truncated),
        cmocka_unit_test(test_blob_corrupted_headers),
        cmocka_unit_test(test_blob_random_flips),
        cmocka_unit_test(test_failed_rows_excluded),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_same_seed_same_blob),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_early_stopping),
        cmocka_unit_test(test_table_matches_mlp),
        cmocka_unit_test(test_conditioned_fit),
        cmocka_unit_test(test_conditioned_blob),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
