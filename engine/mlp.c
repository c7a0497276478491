/*
 * mlp.c: multilayer perceptron: slab layout, seeded init, forward, backward.
 *
 * Backward runs layer by layer from the output, ping-ponging two scratch
 * buffers: the gradient at a layer's output (post-activation) is in one, the
 * gradient at its pre-activation goes to the other, and the dense backward
 * then writes the gradient at the layer's input into the first, which is free
 * by then. All of it is sgemm-sized work; nothing loops over samples.
 */
#include "mlp.h"

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "qn_err.h"

/* Lays out the slab offsets; returns 0 or QN_EINVAL on overflow. */
static int mlp__layout(struct mlp *m)
{
    size_t n = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t in = m->sizes[l], out = m->sizes[l + 1];
        size_t len = out * in + out; /* sizes are < 2^20, so this cannot overflow */
        if (n > (size_t)INT_MAX - len)
            return QN_EINVAL;
        m->offset[l] = n;
        n += len;
    }
    m->n_params = n;
    return QN_OK;
}

static int mlp__check(size_t n_layers, const size_t *sizes)
{
    if (n_layers == 0 || n_layers > MLP_MAX_LAYERS)
        return QN_EINVAL;
    for (size_t l = 0; l <= n_layers; l++)
        if (sizes[l] == 0 || sizes[l] > MLP_MAX_WIDTH)
            return QN_EINVAL;
    return QN_OK;
}

int mlp_create(struct mlp **out, size_t n_layers, const size_t *sizes, const enum act_kind *act)
{
    int rc = mlp__check(n_layers, sizes);
    if (rc)
        return rc;
    struct mlp *m = calloc(1, sizeof *m);
    if (!m)
        return QN_ENOMEM;
    m->n_layers = n_layers;
    memcpy(m->sizes, sizes, (n_layers + 1) * sizeof *sizes);
    memcpy(m->act, act, n_layers * sizeof *act);
    rc = mlp__layout(m);
    if (rc)
        goto fail_layout;
    rc = QN_ENOMEM;
    m->params = calloc(m->n_params, sizeof *m->params);
    if (!m->params)
        goto fail_params;
    m->grads = calloc(m->n_params, sizeof *m->grads);
    if (!m->grads)
        goto fail_grads;
    *out = m;
    return QN_OK;

fail_grads:
    free(m->params);
fail_params:
fail_layout:
    free(m);
    return rc;
}

void mlp_destroy(struct mlp *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->grads);
    free(m);
}

struct mlp_layer_view mlp_layer_view(const struct mlp *m, float *slab, size_t l)
{
    struct mlp_layer_view v;
    v.w = slab + m->offset[l];
    v.b = v.w + m->sizes[l + 1] * m->sizes[l];
    return v;
}

/* Fills w (out, in) for activation k: He normal or Xavier uniform. */
static void mlp__init_weights(float *w, size_t in, size_t out, enum act_kind k, gsl_rng *r)
{
    size_t n = in * out;
    if (k == ACT_RELU || k == ACT_SOFTPLUS) {
        double sd = sqrt(2.0 / (double)in);
        for (size_t i = 0; i < n; i++)
            w[i] = (float)gsl_ran_gaussian(r, sd);
    } else {
        double a = sqrt(6.0 / (double)(in + out));
        for (size_t i = 0; i < n; i++)
            w[i] = (float)(a * (2.0 * gsl_rng_uniform(r) - 1.0));
    }
}

int mlp_init_params(struct mlp *m, uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return QN_ENOMEM;
    gsl_rng_set(r, (unsigned long)seed);
    for (size_t l = 0; l < m->n_layers; l++) {
        struct mlp_layer_view v = mlp_layer_view(m, m->params, l);
        mlp__init_weights(v.w, m->sizes[l], m->sizes[l + 1], m->act[l], r);
        memset(v.b, 0, m->sizes[l + 1] * sizeof *v.b);
    }
    gsl_rng_free(r);
    return QN_OK;
}

void mlp_zero_grad(struct mlp *m)
{
    memset(m->grads, 0, m->n_params * sizeof *m->grads);
}

size_t mlp_max_width(const struct mlp *m)
{
    size_t w = 0;
    for (size_t l = 0; l <= m->n_layers; l++)
        w = m->sizes[l] > w ? m->sizes[l] : w;
    return w;
}

/* Floats the activations of cap rows need; 0 on overflow. */
static size_t mlp__acts_len(const struct mlp *m, size_t cap)
{
    size_t per_row = 2 * mlp_max_width(m);
    for (size_t l = 0; l < m->n_layers; l++)
        per_row += 2 * m->sizes[l + 1];
    if (cap > SIZE_MAX / sizeof(float) / per_row)
        return 0;
    return per_row * cap;
}

int mlp_acts_init(struct mlp_acts *a, const struct mlp *m, size_t cap)
{
    memset(a, 0, sizeof *a);
    if (cap == 0)
        return QN_EINVAL;
    size_t len = mlp__acts_len(m, cap);
    if (len == 0)
        return QN_ENOMEM;
    a->slab = malloc(len * sizeof *a->slab);
    if (!a->slab)
        return QN_ENOMEM;
    a->cap = cap;
    a->n_layers = m->n_layers;
    float *p = a->slab;
    for (size_t l = 0; l < m->n_layers; l++) {
        a->z[l] = p;
        p += cap * m->sizes[l + 1];
        a->a[l] = p;
        p += cap * m->sizes[l + 1];
    }
    a->d0 = p;
    a->d1 = p + cap * mlp_max_width(m);
    return QN_OK;
}

void mlp_acts_close(struct mlp_acts *a)
{
    free(a->slab);
    memset(a, 0, sizeof *a);
}

int mlp_forward(const struct mlp *m, struct mlp_acts *a, const float *x, size_t B)
{
    if (B > a->cap || a->n_layers != m->n_layers)
        return QN_EINVAL;
    const float *inp = x;
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t IC = m->sizes[l], OC = m->sizes[l + 1];
        struct mlp_layer_view v = mlp_layer_view(m, m->params, l);
        nn_dense_forward(a->z[l], inp, v.w, v.b, B, IC, OC);
        nn_act_forward(a->a[l], a->z[l], B * OC, m->act[l]);
        inp = a->a[l];
    }
    return QN_OK;
}

const float *mlp_output(const struct mlp *m, const struct mlp_acts *a)
{
    return a->a[m->n_layers - 1];
}

int mlp_backward(const struct mlp *m, struct mlp_acts *a, const float *x, const float *dout,
                 size_t B, float *dparams, float *dx)
{
    if (B > a->cap || a->n_layers != m->n_layers)
        return QN_EINVAL;
    const float *dpost = dout; /* gradient at layer l's output */
    for (size_t l = m->n_layers; l-- > 0;) {
        size_t IC = m->sizes[l], OC = m->sizes[l + 1];
        /* dz must differ from dpost; dpost's buffer is free once dz is made. */
        float *dz = dpost == a->d0 ? a->d1 : a->d0;
        memset(dz, 0, B * OC * sizeof *dz);
        nn_act_backward(dz, dpost, a->z[l], a->a[l], B * OC, m->act[l]);
        float *dinp = l > 0 ? (dz == a->d0 ? a->d1 : a->d0) : dx;
        if (l > 0)
            memset(dinp, 0, B * IC * sizeof *dinp);
        struct mlp_layer_view w = mlp_layer_view(m, m->params, l);
        struct mlp_layer_view g = {NULL, NULL};
        if (dparams)
            g = mlp_layer_view(m, dparams, l);
        nn_dense_backward(dinp, g.w, g.b, dz, l > 0 ? a->a[l - 1] : x, w.w, B, IC, OC);
        dpost = dinp;
    }
    return QN_OK;
}
