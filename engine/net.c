/*
 * net.c: forward and backward passes through layers of devices.
 *
 * Each layer is a dense map to drives followed by the device response; the
 * response also yields dy/du, so backward never needs to know the via.
 * Device solves (via device and physics_aware) are spread over n_threads
 * threads, each with its own dev_work per layer; element ranges are fixed by
 * index, so results do not depend on scheduling.
 *
 * Shapes that the constructor establishes and every pass relies on (each
 * layer reads the width of the one below, the slabs hold every layer's
 * parameters in order, a device's inputs fit DEV_MAX_INPUTS, a batch fits
 * cap) are asserted once per call, never per element; what a spec or a
 * caller's data can get wrong is refused with a code instead.
 */
#include "net.h"

#include <assert.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chip.h"
#include "net_cells.h"
#include "nn.h"
#include "optim.h"
#include "qn_err.h"

static const char *const net__via_names[] = {"exact", "surrogate", "device", "physics_aware"};
static const char *const net__connect_names[] = {"random", "local", "tree"};
static const char *const net__cells_names[] = {"node", "edge"};

const char *net_via_name(enum net_via v)
{
    assert((size_t)v < sizeof net__via_names / sizeof net__via_names[0]);
    return net__via_names[v];
}

const char *net_connect_name(enum net_connect c)
{
    assert((size_t)c < sizeof net__connect_names / sizeof net__connect_names[0]);
    return net__connect_names[c];
}

const char *net_cells_name(enum net_cells c)
{
    assert((size_t)c < sizeof net__cells_names / sizeof net__cells_names[0]);
    return net__cells_names[c];
}

/* ---- construction -------------------------------------------------------------------------- */

/* Whether layer L is a layer of full devices. */
static int net__is_full(const struct net_layer *L)
{
    return L->k > 0;
}

#ifndef NDEBUG
/* Whether layer L's buffers and drive count fit its shape (for asserts). */
static int net__layer_ok(const struct net_layer *L)
{
    int sur = L->via == VIA_SURROGATE || L->via == VIA_PHYSICS_AWARE;
    int solves = L->via == VIA_DEVICE || L->via == VIA_PHYSICS_AWARE ||
                 (L->via == VIA_EXACT && net__is_full(L));
    if (L->edge && (L->n_drive != 1 || L->k || L->n_w != 1 || L->n_elem != L->n_cells ||
                    !L->csrc || !L->cdst || !L->ye || L->ye == L->y))
        return 0;
    if (!L->edge && (L->n_elem != L->n_out || L->ye != L->y))
        return 0;
    return L->n_out > 0 && L->n_in > 0 && L->n_w == (L->edge ? 1 : L->k ? L->k : L->n_in) &&
           L->k <= L->n_in && (L->k ? L->n_drive == 2 * L->k : L->n_drive <= 2) &&
           L->n_drive >= 1 && L->n_drive <= DEV_MAX_INPUTS && L->u && L->g && L->y && L->tmp &&
           L->xs && (L->n_drive != 2 || L->k || (L->xsq && L->tmp2)) && (!L->k || L->conn) &&
           (!sur || (L->sur && surrogate_n_drives(L->sur) == L->n_drive && L->sscratch &&
                     (!L->sur->n_cond || L->gc))) &&
           (!solves || L->works);
}

/* Whether n's shapes hold together: each layer reads the width of the layer below (the
 * first, the network's inputs), the slabs hold every layer's A, b and s in order, and
 * the last layer's width is the network's output (for asserts). */
static int net__shapes_ok(const struct net *n)
{
    if (n->n_layers < 1 || n->n_layers > NET_MAX_LAYERS || !n->params || !n->grads || !n->d0 ||
        !n->d1 || n->cap < 1 || n->n_threads < 1)
        return 0;
    size_t width = n->n_in, off = 0;
    for (size_t l = 0; l < n->n_layers; l++) {
        const struct net_layer *L = &n->layer[l];
        if (L->n_in != width || L->off_w != off || !net__layer_ok(L) ||
            L->off_b != off + L->n_elem * L->n_w ||
            L->off_s != L->off_b + (net__is_full(L) ? 0 : L->n_elem))
            return 0;
        width = L->n_out;
        off = L->off_s + 1;
    }
    return width == n->n_out && off == n->n_params;
}
#endif

/* The index in d->params of each parameter surrogate s is conditioned on into
 * idx[s->n_cond]. Returns 0, or QN_EINVAL when d has no such parameter. */
static int net__cond_index(const struct dev_model *d, const struct surrogate *s, size_t *idx)
{
    for (size_t k = 0; k < s->n_cond; k++) {
        size_t i = 0;
        while (i < d->n_params && strcmp(d->param_names[i], s->cond_names[k]) != 0)
            i++;
        if (i == d->n_params)
            return QN_EINVAL;
        idx[k] = i;
    }
    return QN_OK;
}

/* Whether layer L can be computed with via using surrogate sur. */
static int net__check_via(const struct net_layer *L, enum net_via via, const struct surrogate *sur)
{
    if (net__is_full(L) && (L->k > L->n_in || L->k > DEV_MAX_FANIN))
        return QN_EINVAL;
    if (via == VIA_EXACT && dev_is_ode(L->dev))
        return QN_EINVAL;
    if (L->edge && L->dev->drive != DRIVE_DOT)
        return QN_EINVAL; /* a cell has one drive, a x + b */
    if (via == VIA_DEVICE && !dev_is_differentiable(L->dev) && !L->forward_only)
        return QN_ENOTDIFF;
    size_t idx[DEV_MAX_PARAMS];
    if (via == VIA_SURROGATE || via == VIA_PHYSICS_AWARE)
        if (!sur || surrogate_n_drives(sur) != L->n_drive || net__cond_index(L->dev, sur, idx))
            return QN_EINVAL;
    return QN_OK;
}

/* Allocates what computing layer L with its current via needs. */
static int net__layer_alloc_via(struct net *n, struct net_layer *L)
{
    size_t rows = L->chunk;
    size_t S = L->sur ? L->sur->n_in : 0; /* the surrogate's inputs: drives, then parameters */
    if (L->sur && !L->sscratch) {
        L->sscratch = malloc(rows * (S + 1) * sizeof *L->sscratch);
        if (!L->sscratch || mlp_acts_init(&L->sacts, L->sur->mlp, rows))
            return QN_ENOMEM;
    }
    if (L->sur && !L->uc && !(L->uc = malloc(rows * S * sizeof *L->uc)))
        return QN_ENOMEM;
    if (L->sur && L->sur->n_cond && !L->gc && !(L->gc = malloc(rows * S * sizeof *L->gc)))
        return QN_ENOMEM;
    int solves = L->via == VIA_DEVICE || L->via == VIA_PHYSICS_AWARE ||
                 (L->via == VIA_EXACT && net__is_full(L)); /* closed forms per device */
    if (solves && !L->works) {
        L->works = calloc(n->n_threads, sizeof *L->works);
        if (!L->works)
            return QN_ENOMEM;
        for (size_t t = 0; t < n->n_threads; t++) {
            if (dev_work_init(&L->works[t], L->dev, n->cancel))
                return QN_ENOMEM;
            /* a chip's solves override the parameters: make the work's view now,
             * so that nothing allocates after net_create */
            if (L->theta && (dev_work_set_params(&L->works[t], L->dev->params) ||
                             dev_work_set_params(&L->works[t], NULL)))
                return QN_ENOMEM;
        }
    }
    return QN_OK;
}

static void net__layer_free(struct net *n, struct net_layer *L)
{
    free(L->u), free(L->y), free(L->g), free(L->xsq), free(L->tmp), free(L->tmp2), free(L->xs);
    free(L->sscratch), free(L->conn), free(L->act_sum), free(L->heb_sum), free(L->uc);
    free(L->gc);
    free(L->theta);
    free(L->csrc), free(L->cdst), free(L->cact), free(L->cheb);
    if (L->edge)
        free(L->ye);
    if (L->sacts.slab)
        mlp_acts_close(&L->sacts);
    for (size_t t = 0; L->works && t < n->n_threads; t++)
        dev_work_close(&L->works[t]);
    free(L->works);
}

/* Sets up layer l from its spec; params offsets are assigned by the caller. */
static int net__layer_init(struct net *n, struct net_layer *L, size_t n_in,
                           const struct net_layer_spec *s, const struct net_cells_spec *cs)
{
    L->n_in = n_in;
    L->n_out = L->n_elem = s->devices;
    L->dev = s->dev;
    L->via = s->via;
    L->sur = s->sur;
    L->forward_only = s->forward_only;
    L->connect = s->connect;
    L->edge = cs && cs->cells == NET_CELLS_EDGE;
    L->k = s->dev->drive == DRIVE_FULL && !L->edge ? (size_t)s->dev->fan_in : 0;
    L->n_drive = L->k ? 2 * L->k : s->dev->drive == DRIVE_DOT_SQ ? 2 : 1;
    L->n_w = L->edge ? 1 : L->k ? L->k : n_in;
    if (s->devices == 0 || s->devices > MLP_MAX_WIDTH || (L->k && L->k < 1))
        return QN_EINVAL;
    int rc = net__check_via(L, s->via, s->sur);
    if (rc == QN_OK && L->edge)
        rc = net_cells_init(L, cs);
    if (rc)
        return rc;
    size_t c = n->cap, E = L->n_elem;
    L->chunk = c * E;
    if (L->edge && L->chunk > NET_SUR_CHUNK)
        L->chunk = NET_SUR_CHUNK;
    L->act_sum = calloc(L->n_out, sizeof *L->act_sum);
    L->heb_sum = calloc(L->n_out, sizeof *L->heb_sum);
    if (!L->act_sum || !L->heb_sum)
        return QN_ENOMEM;
    L->u = malloc(c * E * L->n_drive * sizeof *L->u);
    L->g = malloc(c * E * L->n_drive * sizeof *L->g);
    L->y = malloc(c * L->n_out * sizeof *L->y);
    L->ye = L->edge ? malloc(c * E * sizeof *L->ye) : L->y;
    size_t wide = L->n_out > L->n_in ? L->n_out : L->n_in;
    L->tmp = malloc(c * (E > wide ? E : wide) * sizeof *L->tmp);
    int sq = s->dev->drive == DRIVE_DOT_SQ;
    L->xsq = sq ? malloc(c * n_in * sizeof *L->xsq) : NULL;
    L->tmp2 = sq ? malloc(c * n_in * sizeof *L->tmp2) : NULL;
    L->xs = malloc(c * n_in * sizeof *L->xs);
    L->conn = L->k ? malloc(L->n_out * L->k * sizeof *L->conn) : NULL;
    int vary = dev_has_variability(s->dev);
    L->theta = vary ? calloc(E * s->dev->n_params, sizeof *L->theta) : NULL;
    if (!L->u || !L->g || !L->y || !L->ye || !L->tmp || !L->xs || (sq && (!L->xsq || !L->tmp2)) ||
        (L->k && !L->conn) || (vary && !L->theta))
        return QN_ENOMEM;
    return net__layer_alloc_via(n, L);
}

/* Random wiring: k distinct inputs per device (a partial Fisher-Yates shuffle of
 * perm, n_in entries of scratch), from rng r. */
static void net__connect_random(struct net_layer *L, gsl_rng *r, size_t *perm)
{
    assert(L->k >= 1 && L->k <= L->n_in); /* net__check_via refused the rest */
    for (size_t j = 0; j < L->n_out; j++) {
        for (size_t i = 0; i < L->n_in; i++)
            perm[i] = i;
        for (size_t i = 0; i < L->k; i++) {
            size_t pick = i + gsl_rng_uniform_int(r, L->n_in - i);
            size_t t = perm[i];
            perm[i] = perm[pick], perm[pick] = t;
            L->conn[j * L->k + i] = perm[i];
        }
    }
}

/* Local wiring: device j reads k consecutive inputs from a start sliding evenly from 0
 * to n_in - k over the devices. */
static void net__connect_local(struct net_layer *L)
{
    assert(L->k >= 1 && L->k <= L->n_in); /* net__check_via refused the rest */
    size_t span = L->n_in - L->k, last = L->n_out > 1 ? L->n_out - 1 : 1;
    for (size_t j = 0; j < L->n_out; j++) {
        size_t start = (size_t)(((uint64_t)j * span + last / 2) / last);
        for (size_t i = 0; i < L->k; i++)
            L->conn[j * L->k + i] = start + i;
    }
}

/* Tree wiring: the inputs form ceil(n_in / k) blocks of k consecutive inputs (the last
 * block ends at the last input); device j reads block floor(j * blocks / n_out), so
 * consecutive devices share a block and blocks are disjoint when k divides n_in. */
static void net__connect_tree(struct net_layer *L)
{
    assert(L->k >= 1 && L->k <= L->n_in); /* net__check_via refused the rest */
    size_t blocks = (L->n_in + L->k - 1) / L->k;
    for (size_t j = 0; j < L->n_out; j++) {
        size_t blk = (size_t)((uint64_t)j * blocks / L->n_out);
        size_t start = blk * L->k + L->k > L->n_in ? L->n_in - L->k : blk * L->k;
        for (size_t i = 0; i < L->k; i++)
            L->conn[j * L->k + i] = start + i;
    }
}

/* The wiring of every full layer (random: from seed and the layer index). */
static int net__connect(struct net *n, uint64_t seed)
{
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        if (!net__is_full(L))
            continue;
        if (L->connect == NET_CONNECT_LOCAL)
            net__connect_local(L);
        else if (L->connect == NET_CONNECT_TREE)
            net__connect_tree(L);
        else {
            gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
            size_t *perm = malloc(L->n_in * sizeof *perm);
            if (r && perm) {
                gsl_rng_set(r, seed * 2654435761u + 17 * (l + 1));
                net__connect_random(L, r, perm);
            }
            gsl_rng_free(r);
            free(perm);
            if (!r || !perm)
                return QN_ENOMEM;
        }
    }
    return QN_OK;
}

/* Layer L's initial weights from r: uniform U(-s, s) with s = sqrt(3 / n_w) (unit
 * drive variance for unit inputs; n_w = n_in, k for full layers, 1 for a cell's
 * a) and biases 0; normal, weights and biases N(0, 1); or unit (edge layers):
 * weights 1, biases 0. */
static void net__draw_layer(struct net *n, const struct net_layer *L, enum net_init init,
                            gsl_rng *r)
{
    assert(L->n_w > 0);
    float s = (float)sqrt(3.0 / (double)L->n_w);
    size_t n_wb = L->off_s - L->off_w, n_a = L->n_elem * L->n_w; /* A, then b (none: full) */
    for (size_t i = 0; i < n_wb; i++) {
        if (init == NET_INIT_NORMAL)
            n->params[L->off_w + i] = (float)gsl_ran_ugaussian(r);
        else if (init == NET_INIT_UNIT)
            n->params[L->off_w + i] = i < n_a ? 1.0f : 0.0f;
        else
            n->params[L->off_w + i] = i < n_a ? (float)((2 * gsl_rng_uniform(r) - 1) * s) : 0.0f;
    }
}

int net_init_layer(struct net *n, size_t l, enum net_init init, uint64_t seed)
{
    if (l >= n->n_layers || (init == NET_INIT_UNIT && !n->layer[l].edge))
        return QN_EINVAL; /* every weight 1 on a node layer: identical devices */
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return QN_ENOMEM;
    gsl_rng_set(r, seed * 2654435761u + 101 * (l + 1));
    net__draw_layer(n, &n->layer[l], init, r);
    gsl_rng_free(r);
    return QN_OK;
}

/* Initial weights: every layer uniform (net__draw_layer) from one generator. */
static int net__init_params(struct net *n, uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r)
        return QN_ENOMEM;
    gsl_rng_set(r, seed);
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        net__draw_layer(n, L, NET_INIT_UNIFORM, r);
        n->params[L->off_s] = 1.0f;
    }
    gsl_rng_free(r);
    return net__connect(n, seed);
}

int net_create(struct net **out, size_t n_in, const struct net_layer_spec *spec, size_t n_layers,
               size_t cap, size_t n_threads, uint64_t seed, const atomic_int *cancel)
{
    return net_create_cells(out, n_in, spec, NULL, n_layers, cap, n_threads, seed, cancel);
}

int net_create_cells(struct net **out, size_t n_in, const struct net_layer_spec *spec,
                     const struct net_cells_spec *cells, size_t n_layers, size_t cap,
                     size_t n_threads, uint64_t seed, const atomic_int *cancel)
{
    *out = NULL;
    if (n_layers < 1 || n_layers > NET_MAX_LAYERS || cap < 1 || n_in < 1 || n_in > MLP_MAX_WIDTH)
        return QN_EINVAL;
    struct net *n = calloc(1, sizeof *n);
    if (!n)
        return QN_ENOMEM;
    n->n_layers = n_layers, n->n_in = n_in, n->cap = cap, n->cancel = cancel, n->seed = seed;
    n->n_threads = n_threads ? n_threads : 1;
    size_t width = n_in, off = 0, maxw = n_in;
    int rc = QN_OK;
    for (size_t l = 0; l < n_layers && rc == QN_OK; l++) {
        struct net_layer *L = &n->layer[l];
        rc = net__layer_init(n, L, width, &spec[l], cells ? &cells[l] : NULL);
        L->off_w = off;
        L->off_b = off + L->n_elem * L->n_w;
        L->off_s = L->off_b + (net__is_full(L) ? 0 : L->n_elem);
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
    if (rc == QN_OK)
        rc = net__init_params(n, seed);
    if (rc) {
        net_destroy(n);
        return rc;
    }
    assert(net__shapes_ok(n));
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
        free(L->uc);
        L->uc = NULL;
        free(L->gc);
        L->gc = NULL;
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
    const double *theta;   /* (n_out, n_params) the chip's parameters, or NULL: nominal */
    size_t lo, hi;         /* elements [lo, hi) of (B, n_out) */
    int grad;              /* also write g */
    size_t failed;         /* solves that failed (out) */
    size_t solved;         /* solves attempted (out) */
    int canceled;          /* a solve saw the cancel flag (out) */
};

/* Solves elements [lo, hi) of a layer on the real device (or closed form). */
static void *net__solve_range(void *arg)
{
    struct net__job *j = arg;
    struct net_layer *L = j->L;
    size_t k = L->n_drive, np = L->dev->n_params;
    for (size_t e = j->lo; e < j->hi; e++) {
        double in[DEV_MAX_INPUTS], out = 0, g[DEV_MAX_INPUTS] = {0};
        for (size_t d = 0; d < k; d++)
            in[d] = L->u[e * k + d];
        int rc = j->theta ? dev_work_set_params(j->w, j->theta + (e % L->n_elem) * np) : 0;
        if (!rc)
            rc = j->grad ? dev_eval_grad(j->w, in, &out, g) : dev_eval(j->w, in, &out);
        j->solved++;
        if (rc == QN_ECANCELED) {
            j->canceled = 1;
            break;
        }
        if (rc || !isfinite(out)) {
            j->failed++;
            out = 0;
            memset(g, 0, sizeof g);
        }
        L->ye[e] = (float)out;
        for (size_t d = 0; j->grad && d < k; d++)
            L->g[e * k + d] = (float)g[d];
    }
    if (j->theta)
        dev_work_set_params(j->w, NULL); /* no allocation: the view exists */
    return NULL;
}

/* Solves all B * n_elem elements over the layer's threads. */
static int net__solve_all(struct net *n, struct net_layer *L, size_t B, int grad)
{
    size_t total = B * L->n_elem, T = n->n_threads;
    struct net__job jobs[64];
    pthread_t tid[64];
    assert(L->works && T >= 1);
    assert(L->n_drive <= DEV_MAX_INPUTS); /* net__solve_range's in[] and g[] */
    if (T > 64)
        T = 64;
    for (size_t t = 0; t < T; t++)
        jobs[t] = (struct net__job){L,    &L->works[t], n->chip_on ? L->theta : NULL,
                                    total * t / T, total * (t + 1) / T, grad, 0, 0, 0};
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
    int ode = dev_is_ode(L->dev); /* closed forms are not solves */
    for (size_t t = 0; t < T; t++) {
        n->failed_solves += jobs[t].failed;
        n->solves += ode ? jobs[t].solved - (size_t)jobs[t].canceled : 0;
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
    size_t E = B * L->n_elem, k = L->n_drive;
    float eps = L->dev->kind == DEV_ALMOST_NEURON ? (float)L->dev->eps : 0.0f;
    float *z = L->tmp;
    for (size_t e = 0; e < E; e++)
        z[e] = k == 2 ? L->u[2 * e] - eps * L->u[2 * e + 1] : L->u[e];
    nn_act_forward(L->ye, z, E, L->dev->activation);
    enum act_kind act = L->dev->activation;
    if (k == 1) {
        for (size_t e = 0; e < E; e++)
            L->g[e] = net__act_slope(act, z[e], L->ye[e]);
        return;
    }
    for (size_t e = 0; e < E; e++) {
        float slope = net__act_slope(act, z[e], L->ye[e]);
        L->g[2 * e] = slope;
        L->g[2 * e + 1] = -eps * slope;
    }
}

/*
 * The inputs of a parameter-conditioned surrogate for elements [e0, e0 +
 * rows) of layer l into L->uc (rows, sur->n_in): each element's drives, then
 * the parameters the surrogate takes, at its device instance's values
 * (device or cell j of the chip of net_set_chip; the nominal values when no
 * chip is set or the device has no variability).
 */
static void net__cond_inputs(const struct net *n, struct net_layer *L, size_t e0, size_t rows)
{
    const struct surrogate *s = L->sur;
    size_t K = L->n_drive, S = s->n_in, np = L->dev->n_params, idx[DEV_MAX_PARAMS];
    int rc = net__cond_index(L->dev, s, idx);
    assert(rc == QN_OK); /* net__check_via refused the rest */
    (void)rc;
    for (size_t e = 0; e < rows; e++) {
        size_t j = (e0 + e) % L->n_elem;
        const double *theta = n->chip_on && L->theta ? L->theta + j * np : L->dev->params;
        memcpy(L->uc + e * S, L->u + (e0 + e) * K, K * sizeof *L->uc);
        for (size_t k = 0; k < s->n_cond; k++)
            L->uc[e * S + K + k] = (float)theta[idx[k]];
    }
}

/*
 * The surrogate's answer for elements [e0, e0 + rows) of L->u (rows at most
 * L->chunk) into y + e0 and L->g, with the drives beyond its domain clamped
 * into it (in L->uc; L->u stays as it was, for the device) and counted: the
 * slope across a clamped input is 0. A conditioned surrogate also gets each
 * instance's parameters (clamped and counted alike); only the slopes with
 * respect to the drives are kept.
 */
static int net__surrogate_rows(const struct net *n, struct net_layer *L, size_t e0, size_t rows,
                               float *y)
{
    const struct surrogate *s = L->sur;
    size_t K = L->n_drive, S = s->n_in;
    const float *u = L->u + e0 * K;
    float *gu = L->g + e0 * K;
    assert(rows <= L->chunk); /* the surrogate's buffers hold a chunk */
    if (!s->n_cond && !s->has_domain) /* nothing to add, clamp or count: no copy */
        return surrogate_eval(s, &L->sacts, u, rows, y + e0, gu, L->sscratch);
    if (s->n_cond)
        net__cond_inputs(n, L, e0, rows);
    else
        memcpy(L->uc, u, rows * K * sizeof *L->uc);
    size_t outside = surrogate_clamp(s, L->uc, rows, NULL);
    float *g = s->n_cond ? L->gc : gu; /* (rows, S) */
    int rc = surrogate_eval(s, &L->sacts, L->uc, rows, y + e0, g, L->sscratch);
    for (size_t e = 0; rc == QN_OK && (outside || s->n_cond) && e < rows; e++)
        for (size_t d = 0; d < K; d++)
            gu[e * K + d] = L->uc[e * S + d] != u[e * K + d] ? 0.0f : g[e * S + d];
    if (L->sur->has_domain) { /* without one nothing can be said: the fraction stays unknown */
        L->sur_rows += rows;
        L->ood_rows += outside;
    }
    return rc;
}

/* The surrogate's answer for the first `rows` elements of L->u into y and L->g,
 * a chunk of rows at a time (one chunk for node layers). */
static int net__surrogate(const struct net *n, struct net_layer *L, size_t rows, float *y)
{
    int rc = QN_OK;
    for (size_t e0 = 0; rc == QN_OK && e0 < rows; e0 += L->chunk)
        rc = net__surrogate_rows(n, L, e0, rows - e0 < L->chunk ? rows - e0 : L->chunk, y);
    return rc;
}

/* y and g of layer L for B rows whose drives are in L->u. */
static int net__respond(struct net *n, struct net_layer *L, size_t B)
{
    size_t rows = B * L->n_elem;
    switch (L->via) {
    case VIA_EXACT:
        if (net__is_full(L))
            return net__solve_all(n, L, B, 1);
        net__exact(L, B);
        return QN_OK;
    case VIA_SURROGATE:
        assert(L->sur && L->sscratch && L->uc && surrogate_n_drives(L->sur) == L->n_drive);
        return net__surrogate(n, L, rows, L->ye);
    case VIA_DEVICE: {
        int grad = dev_is_differentiable(L->dev) && !L->forward_only;
        if (!grad) /* a forward-only layer: dy/du is 0, and no sensitivities are solved */
            memset(L->g, 0, rows * L->n_drive * sizeof *L->g);
        return net__solve_all(n, L, B, grad);
    }
    case VIA_PHYSICS_AWARE: {
        assert(L->sur && L->sscratch && L->uc && surrogate_n_drives(L->sur) == L->n_drive);
        int rc = net__surrogate(n, L, rows, L->tmp);
        return rc ? rc : net__solve_all(n, L, B, 0);
    }
    }
    return QN_EINVAL;
}

/* ---- forward and backward ------------------------------------------------------------------ */

/* The inputs (x_1..x_k, a_1..a_k) of every full device for B rows of L->xs into L->u. */
static void net__drives_full(struct net_layer *L, const float *A, size_t B)
{
    size_t k = L->k, K = L->n_drive;
    for (size_t r = 0; r < B; r++) {
        const float *x = L->xs + r * L->n_in;
        for (size_t j = 0; j < L->n_out; j++) {
            float *u = L->u + (r * L->n_out + j) * K;
            for (size_t i = 0; i < k; i++)
                u[i] = x[L->conn[j * k + i]], u[k + i] = A[j * k + i];
        }
    }
}

/* Adds |y| of B rows into L->act_sum, and |y_j| times the row's mean |x_i| (the
 * scaled inputs L->xs) into L->heb_sum (tracking for adaptive structure); edge
 * layers also track their cells. */
static void net__track(struct net_layer *L, size_t B)
{
    if (L->edge)
        net_cells_track(L, B);
    for (size_t r = 0; r < B; r++) {
        double pre = 0;
        for (size_t i = 0; i < L->n_in; i++)
            pre += fabs((double)L->xs[r * L->n_in + i]);
        pre /= (double)L->n_in;
        for (size_t j = 0; j < L->n_out; j++) {
            double post = fabs((double)L->y[r * L->n_out + j]);
            L->act_sum[j] += post;
            L->heb_sum[j] += post * pre;
        }
    }
    L->act_rows += B;
}

void net_track_reset(struct net *n)
{
    for (size_t l = 0; l < n->n_layers; l++) {
        memset(n->layer[l].act_sum, 0, n->layer[l].n_out * sizeof *n->layer[l].act_sum);
        memset(n->layer[l].heb_sum, 0, n->layer[l].n_out * sizeof *n->layer[l].heb_sum);
        if (n->layer[l].edge) {
            memset(n->layer[l].cact, 0, n->layer[l].n_cells * sizeof *n->layer[l].cact);
            memset(n->layer[l].cheb, 0, n->layer[l].n_cells * sizeof *n->layer[l].cheb);
        }
        n->layer[l].act_rows = 0;
    }
}

void net_domain_reset(struct net *n)
{
    for (size_t l = 0; l < n->n_layers; l++)
        n->layer[l].sur_rows = n->layer[l].ood_rows = 0;
}

int net_domain_fraction(const struct net *n, size_t l, double *out)
{
    if (l >= n->n_layers || n->layer[l].sur_rows == 0)
        return QN_ENOTFOUND;
    *out = (double)n->layer[l].ood_rows / (double)n->layer[l].sur_rows;
    return QN_OK;
}

/* The drives of layer L from inputs x (B, n_in) into L->u (L->xs keeps s * x). */
static void net__drives(const struct net *n, struct net_layer *L, const float *x_raw, size_t B)
{
    const float *A = n->params + L->off_w, *b = n->params + L->off_b;
    const float scale = n->params[L->off_s];
    for (size_t i = 0; i < B * L->n_in; i++)
        L->xs[i] = scale * x_raw[i];
    const float *x = L->xs;
    if (net__is_full(L)) {
        net__drives_full(L, A, B);
        return;
    }
    if (L->edge) {
        net_cells_drives(L, A, b, B);
        return;
    }
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

/* ---- chips and noise ------------------------------------------------------------------------ */

void net_set_chip(struct net *n, uint64_t seed)
{
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        size_t np = L->dev->n_params;
        for (size_t j = 0; L->theta && j < L->n_elem; j++)
            chip_draw(L->dev, seed, l, j, L->theta + j * np);
    }
    n->chip_on = 1;
    n->chip_seed = seed;
}

void net_set_nominal(struct net *n)
{
    n->chip_on = 0;
}

int net_has_variability(const struct net *n)
{
    for (size_t l = 0; l < n->n_layers; l++)
        if (n->layer[l].theta)
            return 1;
    return 0;
}

void net_set_noise(struct net *n, int on, uint64_t seed)
{
    n->noise_on = on;
    n->noise_seed = seed;
    n->noise_step = 0;
}

/* Adds layer l's drive noise to u1 of its B * n_elem elements (dot and dot_sq drives). */
static void net__noise_drive(const struct net *n, size_t l, struct net_layer *L, size_t B)
{
    double sd = L->dev->noise.drive_sd;
    if (!(sd > 0) || net__is_full(L))
        return;
    size_t e0 = n->noise_row0 * L->n_elem;
    for (size_t e = 0; e < B * L->n_elem; e++)
        L->u[e * L->n_drive] += (float)(sd * chip_normal(CHIP_TAG_NOISE_DRIVE, n->noise_seed,
                                                         n->noise_step, l, e0 + e));
}

/* Adds layer l's output noise to its B * n_elem device outputs. */
static void net__noise_output(const struct net *n, size_t l, struct net_layer *L, size_t B)
{
    double sd = L->dev->noise.output_sd;
    size_t e0 = n->noise_row0 * L->n_elem;
    for (size_t e = 0; sd > 0 && e < B * L->n_elem; e++)
        L->ye[e] += (float)(sd * chip_normal(CHIP_TAG_NOISE_OUTPUT, n->noise_seed, n->noise_step,
                                             l, e0 + e));
}

int net_forward(struct net *n, const float *x, size_t B)
{
    assert(net__shapes_ok(n));
    assert(x || B == 0);
    if (B > n->cap)
        return QN_EINVAL;
    const float *in = x;
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        net__drives(n, L, in, B);
        if (n->noise_on)
            net__noise_drive(n, l, L, B);
        int rc = net__respond(n, L, B);
        if (rc)
            return rc;
        if (n->noise_on)
            net__noise_output(n, l, L, B);
        if (L->edge)
            net_cells_sum(L, B);
        if (n->track)
            net__track(L, B);
        in = L->y;
    }
    n->noise_step += n->noise_on != 0;
    return QN_OK;
}

const float *net_output(const struct net *n)
{
    assert(n->n_layers >= 1);
    return n->layer[n->n_layers - 1].y;
}

/* Backward through a full layer: dA[j][i] += dy * dout/da_i; dx[conn[j][i]] += dy * dout/dx_i. */
static void net__layer_backward_full(const struct net_layer *L, float *dA, const float *dy,
                                     float *dx, size_t B)
{
    size_t k = L->k, K = L->n_drive;
    for (size_t r = 0; r < B; r++) {
        for (size_t j = 0; j < L->n_out; j++) {
            size_t e = r * L->n_out + j;
            const float *g = L->g + e * K;
            float d = dy[e];
            for (size_t i = 0; i < k; i++) {
                dA[j * k + i] += d * g[k + i];
                if (dx)
                    dx[r * L->n_in + L->conn[j * k + i]] += d * g[i];
            }
        }
    }
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
    if (net__is_full(L)) {
        net__layer_backward_full(L, dA, dy, dx, B);
        return;
    }
    if (L->edge) {
        net_cells_backward(L, A, dA, db, dy, dx, B);
        return;
    }
    for (size_t e = 0; e < E; e++)
        du[e] = dy[e] * L->g[e * k];
    nn_dense_backward(dx, dA, db, du, x, A, B, L->n_in, L->n_out);
    if (k == 1)
        return;
    for (size_t e = 0; e < E; e++)
        du[e] = dy[e] * L->g[e * k + 1];
    /* u2 = A x^2: dA += du2^T x^2; dx += 2 x (du2 A) */
    float *t = L->tmp2;
    if (dx) /* t is read only for dx: the first layer (dx NULL) skips the clear */
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
    assert(net__shapes_ok(n));
    assert(B <= n->cap); /* as the net_forward before it, which refuses more */
    assert(dout || B == 0);
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
    assert(o->n == n->n_params);
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
    assert(E > 0); /* net_calibrate refuses B == 0 */
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

/* Calibrates full layer L on B rows of its inputs `in` (see net_calibrate). */
static void net__calibrate_full(struct net *n, struct net_layer *L, const float *in, size_t B)
{
    assert(net__is_full(L) && B > 0); /* the divisions by k and by B n_out below */
    double in_rms = net__rms(in, B * L->n_in), unit = sqrt(3.0 / (double)L->k);
    float *A = n->params + L->off_w;
    size_t k = L->k, W = L->n_out * k;
    if (L->sur) {
        double x_std = 0;
        for (size_t i = 0; i < k; i++)
            x_std += L->sur->in_std[i] / (double)k;
        n->params[L->off_s] = in_rms > 1e-12 ? (float)(0.5 * x_std / in_rms) : 1.0f;
        for (size_t w = 0; w < W; w++) {
            size_t i = w % k;
            A[w] = (float)(L->sur->in_mean[k + i] + 0.5 * L->sur->in_std[k + i] * A[w] / unit);
        }
        return;
    }
    n->params[L->off_s] = in_rms > 1e-12 ? (float)(1.0 / in_rms) : 1.0f;
    net__drives(n, L, in, B);
    double s = 0, ss = 0; /* z = sum a_i x_i over rows and devices */
    for (size_t e = 0; e < B * L->n_out; e++) {
        const float *u = L->u + e * L->n_drive;
        double z = 0;
        for (size_t i = 0; i < k; i++)
            z += (double)u[i] * u[k + i];
        s += z, ss += z * z;
    }
    double E = (double)(B * L->n_out), mean = s / E, var = ss / E - mean * mean;
    double scale = var > 1e-24 ? 1.0 / sqrt(var) : 1.0;
    for (size_t w = 0; w < W; w++)
        A[w] = (float)(A[w] * scale);
}

/*
 * Shrinks layer L's weights about the drives' mean `mean` so that the first
 * drive of every row of the last net__drives lies inside the surrogate's
 * domain (u1 - mean scales by the same factor; see net_calibrate).
 */
static void net__calibrate_domain(struct net *n, struct net_layer *L, size_t B, double mean)
{
    const struct surrogate *s = L->sur;
    if (!s || !s->has_domain || !(mean > s->dom_lo[0] && mean < s->dom_hi[0]))
        return;
    double lo = HUGE_VAL, hi = -HUGE_VAL, f = 1.0;
    for (size_t e = 0; e < B * L->n_out; e++) {
        double u = L->u[e * L->n_drive];
        lo = fmin(lo, u), hi = fmax(hi, u);
    }
    if (hi > s->dom_hi[0])
        f = fmin(f, 0.999 * (s->dom_hi[0] - mean) / (hi - mean));
    if (lo < s->dom_lo[0])
        f = fmin(f, 0.999 * (mean - s->dom_lo[0]) / (mean - lo));
    if (f >= 1.0)
        return;
    float *A = n->params + L->off_w, *b = n->params + L->off_b;
    for (size_t i = 0; i < L->n_out * L->n_in; i++)
        A[i] = (float)(A[i] * f);
    for (size_t j = 0; j < L->n_out; j++)
        b[j] = (float)(f * b[j] + (1 - f) * mean);
}

/* Calibrates edge layer L on B rows of its inputs `in`: the input scale makes
 * s x of rms 1 (with a surrogate, half the spread of the drives it was
 * fitted on) and every cell's b is 0 (the surrogate's mean drive); a stays. */
static void net__calibrate_edge(struct net *n, struct net_layer *L, const float *in, size_t B)
{
    double in_rms = net__rms(in, B * L->n_in);
    double want_std = L->sur ? 0.5 * L->sur->in_std[0] : 1.0;
    n->params[L->off_s] = in_rms > 1e-12 ? (float)(want_std / in_rms) : 1.0f;
    float *b = n->params + L->off_b;
    for (size_t c = 0; c < L->n_cells; c++)
        b[c] = L->sur ? (float)L->sur->in_mean[0] : 0.0f;
}

int net_calibrate(struct net *n, const float *x, size_t B)
{
    assert(net__shapes_ok(n));
    if (B > n->cap || B == 0)
        return QN_EINVAL;
    assert(x);
    const float *in = x;
    for (size_t l = 0; l < n->n_layers; l++) {
        struct net_layer *L = &n->layer[l];
        if (net__is_full(L) || L->edge) {
            if (L->edge)
                net__calibrate_edge(n, L, in, B);
            else
                net__calibrate_full(n, L, in, B);
            net__drives(n, L, in, B);
            int rc = net__respond(n, L, B);
            if (rc)
                return rc;
            if (L->edge)
                net_cells_sum(L, B);
            in = L->y;
            continue;
        }
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
        net__calibrate_domain(n, L, B, want_mean);
        net__drives(n, L, in, B);
        int rc = net__respond(n, L, B);
        if (rc)
            return rc;
        in = L->y;
    }
    return QN_OK;
}

/* ---- changes of architecture --------------------------------------------------------------- */

/* Whether remap m and cm fit n (see net_remap_cells). */
static int net__remap_check(const struct net *n, const struct net_remap *m,
                            const struct net_cell_remap *cm)
{
    for (size_t l = 0; l < n->n_layers; l++) {
        const struct net_layer *L = &n->layer[l];
        size_t w = m->width[l];
        if (w == 0 || w > MLP_MAX_WIDTH || (!m->src[l] && w != L->n_out))
            return QN_EINVAL;
        if (l + 1 == n->n_layers && m->src[l])
            return QN_EINVAL; /* the outputs are the task's */
        if (net__is_full(L) && (m->src[l] || (l > 0 && m->src[l - 1])))
            return QN_EINVAL; /* the wiring is not remapped */
        if (L->edge && (m->src[l] || (l > 0 && m->src[l - 1])))
            return QN_EINVAL; /* an edge layer's nodes stay; its cells change */
        const size_t *from = cm ? cm->from[l] : NULL;
        if (!L->edge && from)
            return QN_EINVAL;
        for (size_t j = 0; m->src[l] && j < w; j++)
            if (m->src[l][j] >= L->n_out)
                return QN_EINVAL;
        size_t nc = from ? cm->cells[l] : 0;
        if (from && (nc == 0 || nc > NET_MAX_CELLS))
            return QN_EINVAL;
        for (size_t c = 0; from && c < nc; c++)
            if (from[c] >= L->n_cells)
                return QN_EINVAL;
    }
    return QN_OK;
}

/* For every parameter i of the new network nn, the old parameter map[i] it comes from
 * and the factor fac[i] it is multiplied by. */
static void net__remap_index(const struct net *n, const struct net *nn, const struct net_remap *m,
                             const struct net_cell_remap *cm, size_t *map, float *fac)
{
    assert(nn->n_layers == n->n_layers && nn->n_in == n->n_in && nn->n_out == n->n_out);
    for (size_t l = 0; l < nn->n_layers; l++) {
        const struct net_layer *O = &n->layer[l], *N = &nn->layer[l];
        if (N->edge) {
            net_cells_remap_index(O, N, cm, l, map, fac);
            continue;
        }
        const size_t *src = m->src[l], *psrc = l ? m->src[l - 1] : NULL;
        const float *psh = l ? m->share[l - 1] : NULL;
        for (size_t j = 0; j < N->n_out; j++) {
            size_t sj = src ? src[j] : j;
            for (size_t i = 0; i < N->n_w; i++) {
                size_t to = N->off_w + j * N->n_w + i;
                map[to] = O->off_w + sj * O->n_w + (psrc && !net__is_full(N) ? psrc[i] : i);
                fac[to] = psh && !net__is_full(N) ? psh[i] : 1.0f;
            }
            if (!net__is_full(N))
                map[N->off_b + j] = O->off_b + sj, fac[N->off_b + j] = 1.0f;
        }
        map[N->off_s] = O->off_s, fac[N->off_s] = 1.0f;
    }
}

/* The optimizer of nn from o through map: moments follow their parameters. */
static int net__remap_optim(const struct net *nn, const struct optim *o, const size_t *map,
                            struct optim *out)
{
    int rc = optim_init(out, &o->cfg, nn->n_params);
    if (rc)
        return rc;
    out->t = o->t;
    for (size_t i = 0; i < nn->n_params; i++) {
        out->m[i] = o->m[map[i]];
        if (out->v)
            out->v[i] = o->v[map[i]];
    }
    rc = net_freeze_fixed(nn, out);
    if (rc)
        optim_close(out);
    return rc;
}

int net_remap(struct net *n, const struct net_remap *m, struct optim *o)
{
    return net_remap_cells(n, m, NULL, o);
}

int net_remap_cells(struct net *n, const struct net_remap *m, const struct net_cell_remap *cm,
                    struct optim *o)
{
    assert(!o || o->n == n->n_params); /* o was built over n's slab */
    int rc = net__remap_check(n, m, cm);
    if (rc)
        return rc;
    struct net_layer_spec spec[NET_MAX_LAYERS];
    struct net_cells_spec cs[NET_MAX_LAYERS];
    size_t *cells[NET_MAX_LAYERS] = {0};
    struct net *nn = NULL;
    size_t *map = NULL;
    float *fac = NULL;
    struct optim no;
    for (size_t l = 0; l < n->n_layers; l++) {
        const struct net_layer *L = &n->layer[l];
        spec[l] = (struct net_layer_spec){m->width[l], L->dev, L->via, L->sur, L->forward_only,
                                          L->connect};
        cs[l] = (struct net_cells_spec){NET_CELLS_NODE, 0, NULL, NULL};
        if (L->edge && (rc = net_cells_remap_list(L, cm, l, &cs[l], &cells[l])))
            goto fail;
    }
    rc = net_create_cells(&nn, n->n_in, spec, cs, n->n_layers, n->cap, n->n_threads, n->seed,
                          n->cancel);
    if (rc)
        goto fail;
    map = malloc(nn->n_params * sizeof *map);
    fac = malloc(nn->n_params * sizeof *fac);
    if (!map || !fac) {
        rc = QN_ENOMEM;
        goto fail;
    }
    net__remap_index(n, nn, m, cm, map, fac);
    for (size_t i = 0; i < nn->n_params; i++)
        nn->params[i] = n->params[map[i]] * fac[i];
    if (o && (rc = net__remap_optim(nn, o, map, &no)))
        goto fail;
    nn->failed_solves = n->failed_solves;
    nn->solves = n->solves;
    nn->track = n->track;
    if (n->chip_on)
        net_set_chip(nn, n->chip_seed);
    nn->noise_on = n->noise_on, nn->noise_seed = n->noise_seed, nn->noise_step = n->noise_step;
    struct net old = *n;
    *n = *nn, *nn = old; /* nn now holds the old network's buffers */
    assert(net__shapes_ok(n));
    if (o) {
        optim_close(o);
        *o = no;
    }
fail:
    free(map), free(fac);
    for (size_t l = 0; l < NET_MAX_LAYERS; l++)
        free(cells[l]);
    net_destroy(nn);
    return rc;
}
