/*
 * adapt.h: adaptive structure of device networks: growth, pruning and
 * extinction events.
 *
 * Some users grow networks the way a Hebbian picture suggests: devices that
 * carry a lot of signal split, devices that carry little die, and this
 * happens in bursts when training stalls. Every hidden layer (all but the
 * last) adapts; layers of full devices do not (their wiring is fixed).
 *
 * When: after an epoch whose training loss is not below the best so far by
 * more than the relative margin min_delta (loss >= best * (1 - min_delta);
 * the best is only updated by an epoch that is not stale, as in early
 * stopping), the epoch is "stale": a loss that still falls a little is a
 * plateau. After epoch e (1-based), when e >= after_epochs and
 * at least `patience` consecutive epochs were stale (patience 0: after every
 * epoch from after_epochs on), an extinction event happens in every hidden
 * layer, and the count restarts with the loss of that epoch as the best.
 * Never after the last epoch (the reported figures are of the saved net).
 *
 * Scores: passthrough of device j of layer l = (mean |y_j| over the rows of
 * the last epoch) x (L2 norm of its outgoing weights, column j of layer
 * l + 1's A); "weight" is the norm alone; "hebbian" is the mean co-activity
 * of the device's incoming connections over the rows r of the last epoch,
 * mean_r (|y_j(r)| x mean_i |x_i(r)|), x the layer's (scaled) inputs: each
 * connection i -> j contributes |pre| x |post|, "fire together, wire
 * together" (no weight enters).
 *
 * An event in a layer of width w: the round(prune * w) lowest-scoring
 * devices are removed with their incoming and outgoing weights (fewer if the
 * width would fall below min_devices); then the round(grow * w)
 * highest-scoring survivors split (fewer if the width would exceed
 * max_devices). A split device and its copy keep the same incoming weights
 * and bias and each take half of the outgoing weights, so the network
 * computes the same function; then, to break the symmetry, each incoming
 * weight and the bias get d added on the copy and subtracted on the original,
 * d uniform in [-perturb, perturb] (absolute, seeded; default 1e-3). The
 * pair's summed contribution changes only to second order in d, so the
 * outputs move by far less than 1e-3 (test_adapt checks 1e-3 on a batch);
 * with perturb 0 the function is unchanged (to float rounding: the sums run
 * in another order).
 * Ties in score go to the lower index. Copies sit right after their
 * originals. Adam (or SGD) moments follow the devices: copied on split,
 * dropped on prune (net_remap).
 *
 * Edge layers (net.h) adapt their cells instead, the last layer too; their
 * nodes keep their number, and so does a hidden node layer that feeds an
 * edge layer (its devices are the cells' inputs). Scores of cell c on edge
 * i -> j, over the rows r of the last epoch: passthrough = mean_r |f(u_c(r))|
 * (the cell's output: what it passes to node j); weight = |a_c|; hebbian =
 * mean_r |x_i(r)| |y_j(r)|, x the layer's (scaled) inputs and y its node
 * outputs (the co-activity of the cell's two ends; cells on one edge tie).
 * An event in an edge layer of C cells: the round(prune * C) lowest-scoring
 * cells are deleted (at least one cell stays), then the round(grow * C)
 * highest-scoring survivors split (fewer if the count would exceed
 * max_cells): cell A (a, b) becomes A (a / 2, b) and a branch B (a / 2, 0)
 * on the same edge, right after A. A device linear in its drive, f(u) =
 * k u, computes the same sum (k (a x + b)); others change (relu cells: not
 * at all where a x / 2 + b and a x / 2 are both >= 0). The perturbation
 * (as for devices: d added to B's a and b, subtracted from A's) keeps a
 * linear sum exact.
 *
 * Everything is a function of the network, the last epoch's statistics,
 * the seed and the event count, so a run resumed from a checkpoint (which
 * must store the widths and struct adapt_state) repeats the same events.
 */
#ifndef QN_ADAPT_H
#define QN_ADAPT_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "optim.h"

enum adapt_score { ADAPT_PASSTHROUGH, ADAPT_WEIGHT, ADAPT_HEBBIAN };

struct adapt_config {
    int enabled;          /* 0: fixed structure (the default) */
    size_t after_epochs;  /* no event before this many epochs (default 1) */
    size_t patience;      /* stale epochs before an event (default 1; 0 = every epoch) */
    double grow;          /* fraction of a layer's devices that split, [0, 1] (default 0.1) */
    double prune;         /* fraction removed, [0, 1) (default 0.1) */
    size_t max_devices;   /* width bound of every hidden layer (default 4096) */
    size_t min_devices;   /* lower bound (default 1) */
    enum adapt_score score; /* default passthrough */
    double perturb;       /* absolute +-perturbation of a split pair's incoming weights, [0, 1e-3]
                             (default 1e-3); 0 = exact copies */
    double min_delta;     /* relative improvement an epoch needs not to be stale, [0, 1)
                             (default 0) */
    size_t max_cells;     /* cells an edge layer may grow to, [1, NET_MAX_CELLS] (default
                             65536) */
};

/* What survives between epochs (and must be checkpointed). */
struct adapt_state {
    double best_loss;     /* best training loss since the last event (+inf at first) */
    size_t stale;         /* consecutive epochs without improvement */
    size_t events;        /* events so far (seeds the perturbation) */
};

/* One layer's part of an event. */
struct adapt_event {
    size_t layer;         /* layer index */
    size_t width;         /* width after the event */
    size_t grown;         /* devices (edge layers: cells) that split */
    size_t pruned;        /* devices (edge layers: cells) removed */
    size_t cells;         /* edge layers: cells after the event; 0 for node layers */
};

void adapt_config_default(struct adapt_config *c);
void adapt_state_init(struct adapt_state *s);

/* Checks c (bounds and fractions; min <= max). Returns 0 or QN_EINVAL. */
int adapt_config_check(const struct adapt_config *c);

/* Records the training loss of epoch `epoch` (1-based, of `total`) in s and says
 * whether an event is due now (then s is rebaselined and s->events counts it). */
int adapt_due(const struct adapt_config *c, struct adapt_state *s, size_t epoch, size_t total,
              double loss);

/* Scores of layer l's devices into score (n_out) (l must not be the last layer). */
void adapt_scores(const struct net *n, size_t l, enum adapt_score kind, double *score);

/* Scores of edge layer l's cells into score (n_cells). */
void adapt_cell_scores(const struct net *n, size_t l, enum adapt_score kind, double *score);

/*
 * The plan for an edge layer of C cells with scores score[C] (borrowed):
 * for each new cell the old cell it comes from (from, at least 2C entries)
 * and the factors of its a and b (a_fac, b_fac, as many), their number in
 * *cells, and the counts. Returns 0 or QN_ENOMEM.
 */
int adapt_cell_plan(const double *score, size_t C, const struct adapt_config *c, size_t *from,
                    float *a_fac, float *b_fac, size_t *cells, size_t *grown, size_t *pruned);

/*
 * The plan for one layer of width w with scores score[w] (borrowed): src
 * (at least 2w entries) and share (as many) of the new devices, their number
 * in *width, and the counts. Used by adapt_event and by tests. Returns 0 or
 * QN_ENOMEM (sort scratch).
 */
int adapt_plan(const double *score, size_t w, const struct adapt_config *c, size_t *src,
               float *share, size_t *width, size_t *grown, size_t *pruned);

/*
 * An extinction event in every hidden layer of n (and its optimizer o, may be
 * NULL), with scores from the statistics net_forward tracked since the last
 * net_track_reset. seed and s->events seed the perturbation. The layers'
 * outcomes go into ev (NET_MAX_LAYERS entries) and their number into *n_ev.
 * Returns 0, QN_EINVAL (a full layer, nothing that adapts), or QN_ENOMEM (then
 * n and o are unchanged).
 */
int adapt_event(struct net *n, struct optim *o, const struct adapt_config *c, uint64_t seed,
                const struct adapt_state *s, struct adapt_event *ev, size_t *n_ev);

/* A score's name: "passthrough" or "weight". */
const char *adapt_score_name(enum adapt_score k);

#endif
