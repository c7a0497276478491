/*
 * optim.c: SGD with momentum and Adam over flat slabs.
 *
 * Steps walk the list of trainable segments, so frozen ranges cost nothing
 * and are provably untouched. The per-element arithmetic is float, in a fixed
 * order with no reductions, so a step is bit-reproducible on any thread count.
 */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

void optim_config_default(struct optim_config *c, enum optim_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->lr = kind == OPTIM_ADAM ? 1e-3 : kind == OPTIM_ES ? 2e-2 : 1e-2;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->decoupled = 1;
    c->population = 64;
    c->sigma = 0.02;
}

static int optim__in01(double x)
{
    return isfinite(x) && x >= 0.0 && x < 1.0;
}

static int optim__config_ok(const struct optim_config *c)
{
    if (!isfinite(c->lr) || c->lr <= 0.0)
        return 0;
    if (!isfinite(c->weight_decay) || c->weight_decay < 0.0)
        return 0;
    if (c->kind == OPTIM_SGD)
        return optim__in01(c->momentum);
    if (c->kind == OPTIM_ADAM)
        return optim__in01(c->beta1) && optim__in01(c->beta2) && isfinite(c->eps) && c->eps > 0;
    if (c->kind == OPTIM_ES)
        return c->population >= 2 && c->population % 2 == 0 && isfinite(c->sigma) &&
               c->sigma > 0 && c->momentum == 0 && c->weight_decay == 0;
    return 0;
}

size_t optim_state_len(const struct optim *o)
{
    return o->cfg.kind == OPTIM_ADAM ? 2 * o->n : o->n;
}

int optim_init(struct optim *o, const struct optim_config *cfg, size_t n)
{
    memset(o, 0, sizeof *o);
    if (!optim__config_ok(cfg))
        return QN_EINVAL;
    if (n > SIZE_MAX / 2 / sizeof(float))
        return QN_ENOMEM;
    o->cfg = *cfg;
    o->n = n;
    size_t len = optim_state_len(o);
    o->state = calloc(len ? len : 1, sizeof *o->state);
    if (!o->state)
        goto fail_state;
    o->seg = malloc(sizeof *o->seg);
    if (!o->seg)
        goto fail_seg;
    o->seg[0] = (struct optim_seg){0, n};
    o->n_seg = n ? 1 : 0;
    o->m = o->state;
    o->v = cfg->kind == OPTIM_ADAM ? o->state + n : NULL;
    return QN_OK;

fail_seg:
    free(o->state);
fail_state:
    memset(o, 0, sizeof *o);
    return QN_ENOMEM;
}

void optim_close(struct optim *o)
{
    free(o->state);
    free(o->seg);
    memset(o, 0, sizeof *o);
}

void optim_reset(struct optim *o)
{
    memset(o->state, 0, optim_state_len(o) * sizeof *o->state);
    o->t = 0;
}

/* Appends segment [off, off+len) to *out (if non-empty). */
static void optim__push(struct optim_seg *out, size_t *k, size_t off, size_t len)
{
    if (len > 0)
        out[(*k)++] = (struct optim_seg){off, len};
}

int optim_freeze(struct optim *o, size_t off, size_t len)
{
    if (off > o->n || len > o->n - off)
        return QN_ERANGE;
    /* Each segment splits into at most two, so n_seg + 1 slots suffice. */
    struct optim_seg *out = malloc((o->n_seg + 1) * sizeof *out);
    if (!out)
        return QN_ENOMEM;
    size_t k = 0, end = off + len;
    for (size_t i = 0; i < o->n_seg; i++) {
        size_t s0 = o->seg[i].off, s1 = s0 + o->seg[i].len;
        if (end <= s0 || off >= s1) {
            optim__push(out, &k, s0, s1 - s0);
            continue;
        }
        optim__push(out, &k, s0, off > s0 ? off - s0 : 0);
        optim__push(out, &k, end, end < s1 ? s1 - end : 0);
    }
    free(o->seg);
    o->seg = out;
    o->n_seg = k;
    return QN_OK;
}

static void optim__sgd(const struct optim_config *c, float *p, const float *g, float *v, size_t n)
{
    const float lr = (float)c->lr, mu = (float)c->momentum, wd = (float)c->weight_decay;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + wd * p[i];
        v[i] = mu * v[i] + gi;
        p[i] -= lr * v[i];
    }
}

/* The float constants of one Adam step, formed in double. */
struct optim__adam_k {
    float step, b1, b2, one_b1, one_b2, eps, l2, shrink, rsqrt_bc2;
};

static struct optim__adam_k optim__adam_consts(const struct optim_config *c, uint64_t t)
{
    struct optim__adam_k k;
    k.step = (float)(c->lr / (1.0 - pow(c->beta1, (double)t)));
    k.b1 = (float)c->beta1;
    k.b2 = (float)c->beta2;
    k.one_b1 = (float)(1.0 - c->beta1);
    k.one_b2 = (float)(1.0 - c->beta2);
    k.eps = (float)c->eps;
    k.l2 = c->decoupled ? 0.0f : (float)c->weight_decay;
    k.shrink = c->decoupled ? (float)(1.0 - c->lr * c->weight_decay) : 1.0f;
    k.rsqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(c->beta2, (double)t)));
    return k;
}

/* One Adam update of n parameters. The constants are copied to locals and
 * the arrays are restrict, so the loop vectorises (with -fno-math-errno for
 * sqrtf, which the Makefile sets). The bias corrections are folded into the
 * constants as PyTorch does (step = lr / (1 - b1^t), denominator
 * sqrt(v) / sqrt(1 - b2^t) + eps): one division and one root per parameter
 * instead of three divisions and a root, which made the update a fifth of a
 * training step (bench_train's per-phase line). */
static void optim__adam(const struct optim__adam_k *k, float *restrict p, const float *restrict g,
                        float *restrict m, float *restrict v, size_t n)
{
    const float l2 = k->l2, b1 = k->b1, b2 = k->b2, one_b1 = k->one_b1, one_b2 = k->one_b2;
    const float step = k->step, rsqrt_bc2 = k->rsqrt_bc2, shrink = k->shrink, eps = k->eps;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + l2 * p[i];
        m[i] = b1 * m[i] + one_b1 * gi;
        v[i] = b2 * v[i] + one_b2 * gi * gi;
        p[i] = p[i] * shrink - step * m[i] / (sqrtf(v[i]) * rsqrt_bc2 + eps);
    }
}

void optim_step(struct optim *o, float *params, const float *grads)
{
    const struct optim_config *c = &o->cfg;
    o->t++;
    struct optim__adam_k k = optim__adam_consts(c, o->t);
    for (size_t s = 0; s < o->n_seg; s++) {
        size_t a = o->seg[s].off, n = o->seg[s].len;
        if (c->kind != OPTIM_ADAM) /* ES: SGD with momentum and weight decay 0 */
            optim__sgd(c, params + a, grads + a, o->m + a, n);
        else
            optim__adam(&k, params + a, grads + a, o->m + a, o->v + a, n);
    }
}

const char *optim_name(enum optim_kind k)
{
    return k == OPTIM_ADAM ? "adam" : k == OPTIM_ES ? "es" : "sgd";
}

int optim_from_name(const char *s, enum optim_kind *out)
{
    if (strcmp(s, "sgd") == 0)
        *out = OPTIM_SGD;
    else if (strcmp(s, "adam") == 0)
        *out = OPTIM_ADAM;
    else if (strcmp(s, "es") == 0)
        *out = OPTIM_ES;
    else
        return QN_ESPEC;
    return QN_OK;
}
