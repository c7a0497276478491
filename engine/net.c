/*
 * net.c: forward and backward passes through layers of devices.
 *
 * Each layer is a dense map to drives followed by the device response; the
 * response also yields dy/du, so backward never needs to know the via.
 * Device solves (via device and physics_aware) are spread over n_threads
 * threads, each with its own dev_work per layer; element ranges are fixed by
 * index, so results do not depend on scheduling.
 */
#include "net.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "optim.h"
#include "qn_err.h"

static const char *const net__via_names[] = {"exact", "surrogate", "device", "physics_aware"};

const char *net_via_name(enum net_via v)
{
    return net__via_names[v];
}

int net_via_from_name(const char *s, enum net_via *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, net__via_names[i]) == 0) {
            *out = (enum net_via)i;
            return QN_OK;
        }
    }
    return QN_ESPEC;
}

/* ---- construction -------------------------------------------------------------------------- */

/* Whether layer L can be computed with via using surrogate sur. */
static int net__check_via(const struct net_layer *L, enum net_via via, const struct surrogate *sur)
{
    if (L->dev->drive == DRIVE_FULL)
        return QN_EINVAL;
    if (via == VIA_EXACT && dev_is_ode(L->dev))
        return QN_EINVAL;
    if (via == VIA_DEVICE && !dev_is_differentiable(L->dev) && !L->forward_only)
        return QN_ENOTDIFF;
    if (via == VIA_SURROGATE || via == VIA_PHYSICS_AWARE)
        if (!sur || sur->n_in != L->n_drive)
            return QN_EINVAL;
    return QN_OK;
}

/* Allocates what computing layer L with its current via needs. */
static int net__layer_alloc_via(struct net *n, struct net_layer *L)
{
    size_t rows = n->cap * L->n_out;
    if (L->sur && !L->sscratch) {
        L->sscratch = malloc(rows * (L->n_drive + 1) * sizeof *L->sscratch);
        if (!L->sscratch || mlp_acts_init(&L->sacts, L->sur->mlp, rows))
            return QN_ENOMEM;
    }
    int solves = L->via == VIA_DEVICE || L->via == VIA_PHYSICS_AWARE;
    if (solves && !L->works) {
        L->works = calloc(n->n_threads, sizeof *L->works);
        if (!L->works)
            return QN_ENOMEM;
        for (size_t t = 0; t < n->n_threads; t++)
            if (dev_work_init(&L->works[t], L->dev, n->cancel))
                return QN_ENOMEM;
    }
    return QN_OK;
}

static void net__layer_free(struct net *n, struct net_layer *L)
{
    free(L->u), free(L->y), free(L->g), free(L->xsq), free(L->tmp), free(L->tmp2), free(L->xs);
    free(L->sscratch);
    if (L->sacts.slab)
        mlp_acts_close(&L->sacts);
    for (size_t t = 0; L->works && t < n->n_threads; t++)
        dev_work_close(&L->works[t]);
    free(L->works);
}

/* Sets up layer l from its spec; params offsets are assigned by the caller. */
static int net__layer_init(struct net *n, struct net_layer *L, size_t n_in,
                           const struct net_layer_spec *s)
{
    L->n_in = n_in;
    L->n_out = s->devices;
    L->dev = s->dev;
    L->via = s->via;
    L->sur = s->sur;
    L->forward_only = s->forward_only;
    L->n_drive = s->dev->drive == DRIVE_DOT_SQ ? 2 : 1;
    if (s->devices == 0 || s->devices > MLP_MAX_WIDTH)
        return QN_EINVAL;
    int rc = net__check_via(L, s->via, s->sur);
    if (rc)
        return rc;
    size_t c = n->cap;
    L->u = malloc(c * L->n_out * L->n_drive * sizeof *L->u);
    L->g = malloc(c * L->n_out * L->n_drive * sizeof *L->g);
    L->y = malloc(c * L->n_out * sizeof *L->y);
    L->tmp = malloc(c * (L->n_out > L->n_in ? L->n_out : L->n_in) * sizeof *L->tmp);
    L->xsq = L->n_drive == 2 ? malloc(c * n_in * sizeof *L->xsq) : NULL;
    L->tmp2 = L->n_drive == 2 ? malloc(c * n_in * sizeof *L->tmp2) : NULL;
    L->xs = malloc(c * n_in * sizeof *L->xs);
    if (!L->u || !L->g || !L->y || !L->tmp || !L->xs || (L->n_drive == 2 && (!L->xsq || !L->tmp2)))
        return QN_ENOMEM;
    return net__layer_alloc_via(n, L);
}

/* Uniform initial weights U(-s, s) with s = sqrt(3 / n_in) (unit drive variance for unit inputs). */
static void net__init_params(struct net *n, uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return;
    gsl_rng_set(r, seed);
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        float s = (float)sqrt(3.0 / (double)L->n_in);
        for (size_t i = 0; i < L->n_out * L->n_in; i++)
            n->params[L->off_w + i] = (float)((2 * gsl_rng_uniform(r) - 1) * s);
        n->params[L->off_s] = 1.0f;
    }
    gsl_rng_free(r);
}

int net_create(struct net **out, size_t n_in, const struct net_layer_spec *spec, size_t n_layers,
               size_t cap, size_t n_threads, uint64_t seed, const atomic_int *cancel)
{
    *out = NULL;
    if (n_layers < 1 || n_layers > NET_MAX_LAYERS || cap < 1 || n_in < 1 || n_in > MLP_MAX_WIDTH)
        return QN_EINVAL;
    struct net *n = calloc(1, sizeof *n);
    if (!n)
        return QN_ENOMEM;
    n->n_layers = n_layers, n->n_in = n_in, n->cap = cap, n->cancel = cancel;
    n->n_threads = n_threads ? n_threads : 1;
    size_t width = n_in, off = 0, maxw = n_in;
    int rc = QN_OK;
    for (size_t l = 0; l < n_layers && rc == QN_OK; l++) {
        struct net_layer *L = &n->layer[l];
        rc = net__layer_init(n, L, width, &spec[l]);
        L->off_w = off;
        L->off_b = off + L->n_out * L->n_in;
        L->off_s = L->off_b + L->n_out;
        off = L->off_s + 1;
        width = L->n_out;
        maxw = width > maxw ? width : maxw;
    }
    n->n_out = width;
    n->n_params = off;
    if (rc == QN_OK) {
        n->params = calloc(off, sizeof *n->params);
        n->grads = calloc(off, sizeof *n->grads);
        n->d0 = malloc(cap * maxw * sizeof *n->d0);
        n->d1 = malloc(cap * maxw * sizeof *n->d1);
        if (!n->params || !n->grads || !n->d0 || !n->d1)
            rc = QN_ENOMEM;
    }
    if (rc) {
        net_destroy(n);
        return rc;
    }
    net__init_params(n, seed);
    *out = n;
    return QN_OK;
}

void net_destroy(struct net *n)
{
    if (!n)
        return;
    for (size_t l = 0; l < n->n_layers; l++)
        net__layer_free(n, &n->layer[l]);
    free(n->params), free(n->grads), free(n->d0), free(n->d1);
    free(n);
}

int net_set_via(struct net *n, size_t l, enum net_via via, const struct surrogate *sur)
{
    if (l >= n->n_layers)
        return QN_EINVAL;
    struct net_layer *L = &n->layer[l];
    const struct surrogate *s = sur ? sur : L->sur;
    int rc = net__check_via(L, via, s);
    if (rc)
        return rc;
    if (s != L->sur && L->sscratch) {
        mlp_acts_close(&L->sacts);
        free(L->sscratch);
        L->sscratch = NULL;
    }
    L->via = via;
    L->sur = s;
    return net__layer_alloc_via(n, L);
}

/* ---- the device response ------------------------------------------------------------------- */

/* A slice of a layer's elements for one thread. */
struct net__job {
    struct net_layer *L;
    struct dev_work *w;
    size_t lo, hi;         /* elements [lo, hi) of (B, n_out) */
    int grad;              /* also write g */
    size_t failed;         /* solves that failed (out) */
    int canceled;          /* a solve saw the cancel flag (out) */
};

/* Solves elements [lo, hi) of a layer on the real device (or closed form). */
static void *net__solve_range(void *arg)
{
    struct net__job *j = arg;
    struct net_layer *L = j->L;
    size_t k = L->n_drive;
    for (size_t e = j->lo; e < j->hi; e++) {
        double in[2] = {L->u[e * k], k == 2 ? L->u[e * k + 1] : 0}, out = 0, g[2] = {0, 0};
        int rc = j->grad ? dev_eval_grad(j->w, in, &out, g) : dev_eval(j->w, in, &out);
        if (rc == QN_ECANCELED) {
            j->canceled = 1;
            return NULL;
        }
        if (rc || !isfinite(out)) {
            j->failed++;
            out = 0, g[0] = g[1] = 0;
        }
        L->y[e] = (float)out;
        for (size_t d = 0; j->grad && d < k; d++)
            L->g[e * k + d] = (float)g[d];
    }
    return NULL;
}

/* Solves all B * n_out elements over the layer's threads. */
static int net__solve_all(struct net *n, struct net_layer *L, size_t B, int grad)
{
    size_t total = B * L->n_out, T = n->n_threads;
    struct net__job jobs[64];
    pthread_t tid[64];
    if (T > 64)
        T = 64;
    for (size_t t = 0; t < T; t++)
        jobs[t] = (struct net__job){L, &L->works[t], total * t / T, total * (t + 1) / T, grad, 0, 0};
    size_t started = 0;
    for (size_t t = 1; t < T; t++, started++)
        if (pthread_create(&tid[t], NULL, net__solve_range, &jobs[t]) != 0)
            break;
    net__solve_range(&jobs[0]);
    for (size_t t = 1; t <= started; t++)
        pthread_join(tid[t], NULL);
    for (size_t t = 1 + started; t < T; t++) /* threads that could not start */
        net__solve_range(&jobs[t]);
    int canceled = 0;
    for (size_t t = 0; t < T; t++) {
        n->failed_solves += jobs[t].failed;
        canceled |= jobs[t].canceled;
    }
    return canceled ? QN_ECANCELED : QN_OK;
}

/* f'(z) given z and y = f(z), for the float closed forms. */
static float net__act_slope(enum act_kind k, float z, float y)
{
    switch (k) {
    case ACT_IDENTITY: return 1.0f;
    case ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
    case ACT_SIGMOID: return y * (1.0f - y);
    case ACT_TANH: return 1.0f - y * y;
    case ACT_SOFTPLUS: return 1.0f / (1.0f + expf(-z));
    }
    return 1.0f;
}

/* Closed forms (neuron, almost_neuron) over the whole layer at once:
 * z = u1 - eps u2, y = f(z), dy/du = f'(z) (1, -eps). */
static void net__exact(struct net_layer *L, size_t B)
{
    size_t E = B * L->n_out, k = L->n_drive;
    float eps = L->dev->kind == DEV_ALMOST_NEURON ? (float)L->dev->eps : 0.0f;
    float *z = L->tmp;
    for (size_t e = 0; e < E; e++)
        z[e] = k == 2 ? L->u[2 * e] - eps * L->u[2 * e + 1] : L->u[e];
    nn_act_forward(L->y, z, E, L->dev->activation);
    enum act_kind act = L->dev->activation;
    if (k == 1) {
        for (size_t e = 0; e < E; e++)
            L->g[e] = net__act_slope(act, z[e], L->y[e]);
        return;
    }
    for (size_t e = 0; e < E; e++) {
        float slope = net__act_slope(act, z[e], L->y[e]);
        L->g[2 * e] = slope;
        L->g[2 * e + 1] = -eps * slope;
    }
}

/* y and g of layer L for B rows whose drives are in L->u. */
static int net__respond(struct net *n, struct net_layer *L, size_t B)
{
    size_t rows = B * L->n_out;
    switch (L->via) {
    case VIA_EXACT: net__exact(L, B); return QN_OK;
    case VIA_SURROGATE:
        return surrogate_eval(L->sur, &L->sacts, L->u, rows, L->y, L->g, L->sscratch);
    case VIA_DEVICE:
        if (!dev_is_differentiable(L->dev)) /* a forward-only layer: dy/du is 0 */
            memset(L->g, 0, rows * L->n_drive * sizeof *L->g);
        return net__solve_all(n, L, B, dev_is_differentiable(L->dev));
    case VIA_PHYSICS_AWARE: {
        int rc = surrogate_eval(L->sur, &L->sacts, L->u, rows, L->tmp, L->g, L->sscratch);
        return rc ? rc : net__solve_all(n, L, B, 0);
    }
    }
    return QN_EINVAL;
}

/* ---- forward and backward ------------------------------------------------------------------ */

/* The drives of layer L from inputs x (B, n_in) into L->u (L->xs keeps s * x). */
static void net__drives(const struct net *n, struct net_layer *L, const float *x_raw, size_t B)
{
    const float *A = n->params + L->off_w, *b = n->params + L->off_b;
    const float scale = n->params[L->off_s];
    for (size_t i = 0; i < B * L->n_in; i++)
        L->xs[i] = scale * x_raw[i];
    const float *x = L->xs;
    if (L->n_drive == 1) {
        nn_dense_forward(L->u, x, A, b, B, L->n_in, L->n_out);
        return;
    }
    for (size_t i = 0; i < B * L->n_in; i++)
        L->xsq[i] = x[i] * x[i];
    nn_dense_forward(L->tmp, x, A, b, B, L->n_in, L->n_out);
    nn_dense_forward(L->y, L->xsq, A, NULL, B, L->n_in, L->n_out);
    for (size_t e = 0; e < B * L->n_out; e++) {
        L->u[2 * e] = L->tmp[e];
        L->u[2 * e + 1] = L->y[e];
    }
}

int net_forward(struct net *n, const float *x, size_t B)
{
    if (B > n->cap)
        return QN_EINVAL;
    const float *in = x;
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        net__drives(n, L, in, B);
        int rc = net__respond(n, L, B);
        if (rc)
            return rc;
        in = L->y;
    }
    return QN_OK;
}

const float *net_output(const struct net *n)
{
    return n->layer[n->n_layers - 1].y;
}

/* Backward through layer L: dy (B, n_out) -> dx (B, n_in) (dx may be NULL),
 * with x = L->xs the scaled inputs of the forward pass. */
static void net__layer_backward(struct net *n, struct net_layer *L, const float *dy, float *dx,
                                size_t B)
{
    const float *x = L->xs;
    const float *A = n->params + L->off_w;
    float *dA = n->grads + L->off_w, *db = n->grads + L->off_b, *du = L->tmp;
    size_t k = L->n_drive, E = B * L->n_out;
    if (dx)
        memset(dx, 0, B * L->n_in * sizeof *dx);
    for (size_t e = 0; e < E; e++)
        du[e] = dy[e] * L->g[e * k];
    nn_dense_backward(dx, dA, db, du, x, A, B, L->n_in, L->n_out);
    if (k == 1)
        return;
    for (size_t e = 0; e < E; e++)
        du[e] = dy[e] * L->g[e * k + 1];
    /* u2 = A x^2: dA += du2^T x^2; dx += 2 x (du2 A) */
    float *t = L->tmp2;
    memset(t, 0, B * L->n_in * sizeof *t);
    nn_dense_backward(dx ? t : NULL, dA, NULL, du, L->xsq, A, B, L->n_in, L->n_out);
    for (size_t i = 0; dx && i < B * L->n_in; i++)
        dx[i] += 2 * x[i] * t[i];
}

/* Backward through layer L, then from d(s x) to dx. */
static void net__layer_backward_scaled(struct net *n, struct net_layer *L, const float *dy,
                                       float *dx, size_t B)
{
    net__layer_backward(n, L, dy, dx, B);
    const float scale = n->params[L->off_s];
    for (size_t i = 0; dx && scale != 1.0f && i < B * L->n_in; i++)
        dx[i] *= scale;
}

void net_backward(struct net *n, const float *x, const float *dout, size_t B)
{
    (void)x; /* each layer kept its scaled input in L->xs */
    const float *dy = dout;
    for (size_t l = n->n_layers; l-- > 0;) {
        struct net_layer *L = &n->layer[l];
        float *dx = l ? (dy == n->d0 ? n->d1 : n->d0) : NULL;
        net__layer_backward_scaled(n, L, dy, dx, B);
        dy = dx;
    }
}

int net_freeze_fixed(const struct net *n, struct optim *o)
{
    for (size_t l = 0; l < n->n_layers; l++) {
        int rc = optim_freeze(o, n->layer[l].off_s, 1);
        if (rc)
            return rc;
    }
    return QN_OK;
}

/* Mean and standard deviation of the first drive of layer L over B rows. */
static void net__drive_stats(const struct net_layer *L, size_t B, double *mean, double *std)
{
    size_t E = B * L->n_out, k = L->n_drive;
    double s = 0, ss = 0;
    for (size_t e = 0; e < E; e++) {
        double u = L->u[e * k];
        s += u, ss += u * u;
    }
    *mean = s / (double)E;
    double var = ss / (double)E - *mean * *mean;
    *std = var > 0 ? sqrt(var) : 0;
}

/* Root mean square of v[0..n). */
static double net__rms(const float *v, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    return n ? sqrt(ss / (double)n) : 0;
}

int net_calibrate(struct net *n, const float *x, size_t B)
{
    if (B > n->cap || B == 0)
        return QN_EINVAL;
    const float *in = x;
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        double in_rms = net__rms(in, B * L->n_in);
        n->params[L->off_s] = in_rms > 1e-12 ? (float)(1.0 / in_rms) : 1.0f;
        net__drives(n, L, in, B);
        double mean, std;
        net__drive_stats(L, B, &mean, &std);
        double want_mean = L->sur ? L->sur->in_mean[0] : 0.0;
        double want_std = L->sur ? 0.5 * L->sur->in_std[0] : 1.0;
        double scale = std > 1e-12 ? want_std / std : 1.0;
        float *A = n->params + L->off_w, *b = n->params + L->off_b;
        for (size_t i = 0; i < L->n_out * L->n_in; i++)
            A[i] = (float)(A[i] * scale);
        for (size_t j = 0; j < L->n_out; j++)
            b[j] = (float)(want_mean - (mean - b[j]) * scale);
        net__drives(n, L, in, B);
        int rc = net__respond(n, L, B);
        if (rc)
            return rc;
        in = L->y;
    }
    return QN_OK;
}
