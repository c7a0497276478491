/* adapt.c: growth, pruning and extinction events of device networks (see adapt.h). */
#include "adapt.h"

#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

static const char *const adapt__score_names[] = {"passthrough", "weight", "hebbian"};

const char *adapt_score_name(enum adapt_score k)
{
    return adapt__score_names[k];
}

void adapt_config_default(struct adapt_config *c)
{
    *c = (struct adapt_config){0, 1, 1, 0.1, 0.1, 4096, 1, ADAPT_PASSTHROUGH, 1e-3, 0.0, 65536};
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
        c->min_devices > c->max_devices || c->max_devices > MLP_MAX_WIDTH ||
        c->max_cells < 1 || c->max_cells > NET_MAX_CELLS)
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

void adapt_cell_scores(const struct net *n, size_t l, enum adapt_score kind, double *score)
{
    const struct net_layer *L = &n->layer[l];
    const float *a = n->params + L->off_w;
    double rows = L->act_rows ? (double)L->act_rows : 1.0;
    for (size_t c = 0; c < L->n_cells; c++)
        score[c] = kind == ADAPT_WEIGHT    ? fabs((double)a[c])
                   : kind == ADAPT_HEBBIAN ? L->cheb[c] / rows
                                           : L->cact[c] / rows;
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

/* Each of w entries' fate by score (0 keep, 1 prune, 2 split; p pruned, g split) into
 * fate. Returns 0 or QN_ENOMEM. */
static int adapt__fates(const double *score, size_t w, size_t p, size_t g, unsigned char *fate)
{
    struct adapt__key *keys = malloc((w ? w : 1) * sizeof *keys);
    if (!keys)
        return QN_ENOMEM;
    for (size_t j = 0; j < w; j++)
        keys[j] = (struct adapt__key){score[j], j}, fate[j] = 0;
    qsort(keys, w, sizeof *keys, adapt__cmp);
    for (size_t i = 0; i < p; i++)
        fate[keys[i].idx] = 1;
    for (size_t i = 0; i < g; i++)
        fate[keys[w - 1 - i].idx] = 2;
    free(keys);
    return QN_OK;
}

int adapt_cell_plan(const double *score, size_t C, const struct adapt_config *c, size_t *from,
                    float *a_fac, float *b_fac, size_t *cells, size_t *grown, size_t *pruned)
{
    struct adapt_config bounds = *c;
    bounds.min_devices = 1, bounds.max_devices = c->max_cells;
    size_t p, g;
    adapt__counts(C, &bounds, &p, &g);
    unsigned char *fate = malloc(C ? C : 1);
    if (!fate || adapt__fates(score, C, p, g, fate)) {
        free(fate);
        return QN_ENOMEM;
    }
    size_t m = 0;
    for (size_t k = 0; k < C; k++) {
        if (fate[k] == 1)
            continue;
        from[m] = k, a_fac[m] = fate[k] == 2 ? 0.5f : 1.0f, b_fac[m++] = 1.0f;
        if (fate[k] == 2) /* the branch B: half of A's a, no bias */
            from[m] = k, a_fac[m] = 0.5f, b_fac[m++] = 0.0f;
    }
    *cells = m, *grown = g, *pruned = p;
    free(fate);
    return QN_OK;
}

int adapt_plan(const double *score, size_t w, const struct adapt_config *c, size_t *src,
               float *share, size_t *width, size_t *grown, size_t *pruned)
{
    size_t p, g;
    adapt__counts(w, c, &p, &g);
    unsigned char *fate = malloc(w ? w : 1); /* 0 keep, 1 prune, 2 split */
    if (!fate || adapt__fates(score, w, p, g, fate)) {
        free(fate);
        return QN_ENOMEM;
    }
    size_t m = 0;
    for (size_t j = 0; j < w; j++) {
        if (fate[j] == 1)
            continue;
        src[m] = j, share[m++] = fate[j] == 2 ? 0.5f : 1.0f;
        if (fate[j] == 2)
            src[m] = j, share[m++] = 0.5f;
    }
    *width = m, *grown = g, *pruned = p;
    free(fate);
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

/* Breaks the symmetry of every split pair of cells (A and its branch B, adjacent with
 * the same from) in edge layer l: a and b get d added on B and subtracted on A, d
 * uniform in [-perturb, perturb]. */
static void adapt__perturb_cells(struct net *n, size_t l, const size_t *from, double perturb,
                                 gsl_rng *r)
{
    struct net_layer *L = &n->layer[l];
    for (size_t c = 1; c < L->n_cells; c++) {
        if (from[c] != from[c - 1])
            continue;
        for (size_t off = L->off_w; off <= L->off_b; off += L->off_b - L->off_w) {
            float d = (float)(perturb * (2 * gsl_rng_uniform(r) - 1));
            n->params[off + c] += d, n->params[off + c - 1] -= d;
        }
    }
}

/* What an event plans, per layer (owned arrays). */
struct adapt__plans {
    size_t *src[NET_MAX_LAYERS];    /* node layers: 2 width entries */
    float *share[NET_MAX_LAYERS];
    size_t *from[NET_MAX_LAYERS];   /* edge layers: 2 n_cells entries each */
    float *a_fac[NET_MAX_LAYERS], *b_fac[NET_MAX_LAYERS];
};

static void adapt__plans_free(struct adapt__plans *p)
{
    for (size_t l = 0; l < NET_MAX_LAYERS; l++)
        free(p->src[l]), free(p->share[l]), free(p->from[l]), free(p->a_fac[l]),
            free(p->b_fac[l]);
}

/* Whether layer l of n adapts: an edge layer (its cells), or a hidden node layer
 * whose next layer is a node layer (its width). */
static int adapt__adapts(const struct net *n, size_t l)
{
    return n->layer[l].edge || (l + 1 < n->n_layers && !n->layer[l + 1].edge);
}

/* Plans hidden node layer l into p and m, its outcome into e. */
static int adapt__plan_nodes(const struct net *n, size_t l, const struct adapt_config *c,
                             struct adapt__plans *p, struct net_remap *m, struct adapt_event *e)
{
    size_t w = n->layer[l].n_out;
    double *score = malloc(w * sizeof *score);
    p->src[l] = malloc(2 * w * sizeof *p->src[l]);
    p->share[l] = malloc(2 * w * sizeof *p->share[l]);
    if (!score || !p->src[l] || !p->share[l]) {
        free(score);
        return QN_ENOMEM;
    }
    adapt_scores(n, l, c->score, score);
    *e = (struct adapt_event){.layer = l};
    int rc = adapt_plan(score, w, c, p->src[l], p->share[l], &m->width[l], &e->grown, &e->pruned);
    e->width = m->width[l];
    m->src[l] = p->src[l], m->share[l] = p->share[l];
    free(score);
    return rc;
}

/* Plans edge layer l's cells into p and m, its outcome into e. */
static int adapt__plan_cells(const struct net *n, size_t l, const struct adapt_config *c,
                             struct adapt__plans *p, struct net_cell_remap *m,
                             struct adapt_event *e)
{
    size_t C = n->layer[l].n_cells;
    double *score = malloc(C * sizeof *score);
    p->from[l] = malloc(2 * C * sizeof *p->from[l]);
    p->a_fac[l] = malloc(2 * C * sizeof *p->a_fac[l]);
    p->b_fac[l] = malloc(2 * C * sizeof *p->b_fac[l]);
    if (!score || !p->from[l] || !p->a_fac[l] || !p->b_fac[l]) {
        free(score);
        return QN_ENOMEM;
    }
    adapt_cell_scores(n, l, c->score, score);
    *e = (struct adapt_event){.layer = l, .width = n->layer[l].n_out};
    int rc = adapt_cell_plan(score, C, c, p->from[l], p->a_fac[l], p->b_fac[l], &m->cells[l],
                             &e->grown, &e->pruned);
    e->cells = m->cells[l];
    m->from[l] = p->from[l], m->a_fac[l] = p->a_fac[l], m->b_fac[l] = p->b_fac[l];
    free(score);
    return rc;
}

/* Plans every layer that adapts (the others keep their widths); outcomes into ev,
 * their number into *n_ev. */
static int adapt__plan_all(const struct net *n, const struct adapt_config *c,
                           struct adapt__plans *p, struct net_remap *m, struct net_cell_remap *cm,
                           struct adapt_event *ev, size_t *n_ev)
{
    for (size_t l = 0; l < n->n_layers; l++) {
        m->width[l] = n->layer[l].n_out;
        if (!adapt__adapts(n, l))
            continue;
        int rc = n->layer[l].edge ? adapt__plan_cells(n, l, c, p, cm, &ev[*n_ev])
                                  : adapt__plan_nodes(n, l, c, p, m, &ev[*n_ev]);
        if (rc)
            return rc;
        ++*n_ev;
    }
    return QN_OK;
}

int adapt_event(struct net *n, struct optim *o, const struct adapt_config *c, uint64_t seed,
                const struct adapt_state *s, struct adapt_event *ev, size_t *n_ev)
{
    *n_ev = 0;
    size_t adapting = 0;
    for (size_t l = 0; l < n->n_layers; l++) {
        if (n->layer[l].k)
            return QN_EINVAL;
        adapting += (size_t)adapt__adapts(n, l);
    }
    if (!adapting)
        return QN_EINVAL;
    struct adapt__plans p = {{0}, {0}, {0}, {0}, {0}};
    struct net_remap m;
    struct net_cell_remap cm;
    memset(&m, 0, sizeof m);
    memset(&cm, 0, sizeof cm);
    size_t planned = 0;
    int rc = adapt__plan_all(n, c, &p, &m, &cm, ev, &planned);
    gsl_rng *r = rc ? NULL : gsl_rng_alloc(gsl_rng_mt19937);
    if (!rc && !r)
        rc = QN_ENOMEM;
    if (!rc)
        rc = net_remap_cells(n, &m, &cm, o);
    if (!rc) {
        gsl_rng_set(r, seed * 6364136223846793005u + 1442695040888963407u * (s->events + 1));
        for (size_t l = 0; l < n->n_layers; l++) {
            if (p.src[l])
                adapt__perturb(n, l, p.src[l], c->perturb, r);
            else if (p.from[l])
                adapt__perturb_cells(n, l, p.from[l], c->perturb, r);
        }
        *n_ev = planned;
    }
    gsl_rng_free(r);
    adapt__plans_free(&p);
    return rc;
}
