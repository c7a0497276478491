/* adapt.c: growth, pruning and extinction events of device networks (see adapt.h). */
#include "adapt.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>

#include "qn_err.h"

static const char *const adapt__score_names[] = {"passthrough", "weight", "hebbian"};

const char *adapt_score_name(enum adapt_score k)
{
    return adapt__score_names[k];
}

void adapt_config_default(struct adapt_config *c)
{
    *c = (struct adapt_config){0, 1, 1, 0.1, 0.1, 4096, 1, ADAPT_PASSTHROUGH, 1e-3, 0.0};
}

void adapt_state_init(struct adapt_state *s)
{
    *s = (struct adapt_state){INFINITY, 0, 0};
}

int adapt_config_check(const struct adapt_config *c)
{
    if (!(c->grow >= 0 && c->grow <= 1) || !(c->prune >= 0 && c->prune < 1) ||
        !(c->perturb >= 0 && c->perturb <= 1e-3) || !(c->min_delta >= 0 && c->min_delta < 1) ||
        c->min_devices < 1 ||
        c->min_devices > c->max_devices || c->max_devices > MLP_MAX_WIDTH)
        return QN_EINVAL;
    return QN_OK;
}

int adapt_due(const struct adapt_config *c, struct adapt_state *s, size_t epoch, size_t total,
              double loss)
{
    if (loss < s->best_loss * (1.0 - c->min_delta))
        s->best_loss = loss, s->stale = 0;
    else
        s->stale++;
    if (!c->enabled || epoch < c->after_epochs || epoch >= total || s->stale < c->patience)
        return 0;
    s->best_loss = isfinite(loss) ? loss : INFINITY;
    s->stale = 0;
    s->events++;
    return 1;
}

void adapt_scores(const struct net *n, size_t l, enum adapt_score kind, double *score)
{
    const struct net_layer *L = &n->layer[l], *N = &n->layer[l + 1];
    const float *A = n->params + N->off_w; /* (N->n_out, L->n_out) */
    for (size_t j = 0; j < L->n_out; j++) {
        double ss = 0;
        for (size_t o = 0; o < N->n_out; o++)
            ss += (double)A[o * N->n_w + j] * A[o * N->n_w + j];
        double act = L->act_rows ? L->act_sum[j] / (double)L->act_rows : 0.0;
        double heb = L->act_rows ? L->heb_sum[j] / (double)L->act_rows : 0.0;
        score[j] = kind == ADAPT_WEIGHT ? sqrt(ss) : kind == ADAPT_HEBBIAN ? heb : act * sqrt(ss);
    }
}

/* Sort key: score, ties to the lower index. */
struct adapt__key {
    double score;
    size_t idx;
};

static int adapt__cmp(const void *a, const void *b)
{
    const struct adapt__key *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* round(f * w), at most w. */
static size_t adapt__count(double f, size_t w)
{
    double c = floor(f * (double)w + 0.5);
    return c <= 0 ? 0 : c >= (double)w ? w : (size_t)c;
}

/* How many of w devices to prune and grow under the bounds of c. */
static void adapt__counts(size_t w, const struct adapt_config *c, size_t *pruned, size_t *grown)
{
    size_t p = adapt__count(c->prune, w);
    if (w <= c->min_devices)
        p = 0;
    else if (w - p < c->min_devices)
        p = w - c->min_devices;
    size_t left = w - p, g = adapt__count(c->grow, w);
    if (g > left)
        g = left;
    if (left >= c->max_devices)
        g = 0;
    else if (left + g > c->max_devices)
        g = c->max_devices - left;
    *pruned = p, *grown = g;
}

int adapt_plan(const double *score, size_t w, const struct adapt_config *c, size_t *src,
               float *share, size_t *width, size_t *grown, size_t *pruned)
{
    size_t p, g;
    adapt__counts(w, c, &p, &g);
    struct adapt__key *keys = malloc((w ? w : 1) * sizeof *keys);
    unsigned char *fate = malloc(w ? w : 1); /* 0 keep, 1 prune, 2 split */
    if (!keys || !fate) {
        free(keys), free(fate);
        return QN_ENOMEM;
    }
    for (size_t j = 0; j < w; j++)
        keys[j] = (struct adapt__key){score[j], j}, fate[j] = 0;
    qsort(keys, w, sizeof *keys, adapt__cmp);
    for (size_t i = 0; i < p; i++)
        fate[keys[i].idx] = 1;
    for (size_t i = 0; i < g; i++)
        fate[keys[w - 1 - i].idx] = 2;
    size_t m = 0;
    for (size_t j = 0; j < w; j++) {
        if (fate[j] == 1)
            continue;
        src[m] = j, share[m++] = fate[j] == 2 ? 0.5f : 1.0f;
        if (fate[j] == 2)
            src[m] = j, share[m++] = 0.5f;
    }
    *width = m, *grown = g, *pruned = p;
    free(keys), free(fate);
    return QN_OK;
}

/* Breaks the symmetry of every split pair (a device and its copy, adjacent with the
 * same src) in layer l: each incoming weight and the bias get d added on the copy and
 * subtracted on the original, d uniform in [-perturb, perturb] (absolute). The pair's
 * summed contribution then changes only to second order in d. */
static void adapt__perturb(struct net *n, size_t l, const size_t *src, double perturb, gsl_rng *r)
{
    struct net_layer *L = &n->layer[l];
    for (size_t j = 1; j < L->n_out; j++) {
        if (src[j] != src[j - 1])
            continue;
        float *orig = n->params + L->off_w + (j - 1) * L->n_w, *copy = orig + L->n_w;
        for (size_t i = 0; i < L->n_w; i++) {
            float d = (float)(perturb * (2 * gsl_rng_uniform(r) - 1));
            copy[i] += d, orig[i] -= d;
        }
        float d = (float)(perturb * (2 * gsl_rng_uniform(r) - 1));
        n->params[L->off_b + j] += d, n->params[L->off_b + j - 1] -= d;
    }
}

/* Plans every hidden layer into src/share (2 * width entries each). */
static int adapt__plan_all(const struct net *n, const struct adapt_config *c, size_t **src,
                           float **share, struct net_remap *m, struct adapt_event *ev)
{
    for (size_t l = 0; l + 1 < n->n_layers; l++) {
        size_t w = n->layer[l].n_out;
        double *score = malloc(w * sizeof *score);
        src[l] = malloc(2 * w * sizeof *src[l]);
        share[l] = malloc(2 * w * sizeof *share[l]);
        if (!score || !src[l] || !share[l]) {
            free(score);
            return QN_ENOMEM;
        }
        adapt_scores(n, l, c->score, score);
        ev[l].layer = l;
        int rc = adapt_plan(score, w, c, src[l], share[l], &m->width[l], &ev[l].grown,
                            &ev[l].pruned);
        ev[l].width = m->width[l];
        m->src[l] = src[l], m->share[l] = share[l];
        free(score);
        if (rc)
            return rc;
    }
    return QN_OK;
}

int adapt_event(struct net *n, struct optim *o, const struct adapt_config *c, uint64_t seed,
                const struct adapt_state *s, struct adapt_event *ev, size_t *n_ev)
{
    *n_ev = 0;
    if (n->n_layers < 2)
        return QN_EINVAL;
    for (size_t l = 0; l < n->n_layers; l++)
        if (n->layer[l].k)
            return QN_EINVAL;
    size_t *src[NET_MAX_LAYERS] = {0};
    float *share[NET_MAX_LAYERS] = {0};
    struct net_remap m = {{0}, {0}, {0}};
    size_t last = n->n_layers - 1;
    m.width[last] = n->layer[last].n_out;
    int rc = adapt__plan_all(n, c, src, share, &m, ev);
    gsl_rng *r = rc ? NULL : gsl_rng_alloc(gsl_rng_mt19937);
    if (!rc && !r)
        rc = QN_ENOMEM;
    if (!rc)
        rc = net_remap(n, &m, o);
    if (!rc) {
        gsl_rng_set(r, seed * 6364136223846793005u + 1442695040888963407u * (s->events + 1));
        for (size_t l = 0; l < last; l++)
            adapt__perturb(n, l, src[l], c->perturb, r);
        *n_ev = last;
    }
    gsl_rng_free(r);
    for (size_t l = 0; l < NET_MAX_LAYERS; l++)
        free(src[l]), free(share[l]);
    return rc;
}
