/*
 * mpi_evaluate.c: an evaluation on several ranks. Every rank builds the
 * model's network from the spool (spool_net.h) and reads the standardised
 * rows; then either
 *   - nominal or one chip: the rows are split into contiguous slices that
 *     start at multiples of the batch, each rank scores its slice
 *     (train_evaluate_rows, its noise counted from its first batch) and rank
 *     0 gathers every batch's loss sum (MPI_Gatherv) and adds them in batch
 *     order, and the rows classified right (MPI_Reduce), so loss and
 *     accuracy are the bits of the same evaluation in one process; or
 *   - "chips": the chips are split across ranks, each rank scores its chips
 *     on every row as the daemon would, and rank 0 gathers their losses and
 *     accuracies in chip order.
 * Solve counts and the surrogate layers' domain counts are summed on rank
 * 0, which writes result.json for the daemon's collect (job_evaluate.c).
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "net.h"
#include "qn_err.h"
#include "qn_mpi.h"
#include "spool_net.h"
#include "train.h"

#define MPI_EVAL_PARAMS "model_params.qna" /* as job_evaluate.c stages them */
#define MPI_EVAL_DATA "eval"

/* Counters summed over ranks: solves, failed solves, then each layer's
 * surrogate rows and out-of-domain rows. */
#define MPI_EVAL_TALLY (2 + 2 * NET_MAX_LAYERS)

/* One rank's evaluation. */
struct mpi_eval {
    struct mpi_ctx *m;
    struct spool_net sn;
    struct net *net;
    struct data_set ds;
    enum loss_kind loss;
    size_t batch;          /* rows per forward pass: the daemon's */
    int noise;             /* draw the devices' noise */
    int has_chip;          /* score chip `chip` */
    uint64_t chip;
    size_t chips;          /* > 0: score chips chips_seed .. + chips - 1 */
    uint64_t chips_seed;
};

/* The staged spec's figures into e; QN_EFORMAT when one is missing. */
static int mpi_eval__figures(struct mpi_eval *e, json_t *spec, size_t *n_in, uint64_t *seed,
                             size_t *n_classes)
{
    json_int_t in = 0, sd = 0, batch = 0, classes = 0;
    const char *loss = NULL;
    int noise = 0;
    if (json_unpack(spec, "{sI sI ss sI sI sb}", "n_in", &in, "seed", &sd, "loss", &loss, "batch",
                    &batch, "n_classes", &classes, "noise", &noise) ||
        in < 1 || batch < 1 || classes < 0)
        return QN_EFORMAT;
    *n_in = (size_t)in, *seed = (uint64_t)sd, *n_classes = (size_t)classes;
    e->batch = (size_t)batch;
    e->noise = noise;
    e->loss = strcmp(loss, "mse") == 0 ? LOSS_MSE : LOSS_CROSS_ENTROPY;
    const json_t *chip = json_object_get(spec, "chip"), *chips = json_object_get(spec, "chips");
    e->has_chip = json_is_integer(chip);
    e->chip = (uint64_t)json_integer_value(chip);
    e->chips = (size_t)json_integer_value(json_object_get(chips, "count"));
    e->chips_seed = (uint64_t)json_integer_value(json_object_get(chips, "seed"));
    return 0;
}

/* The trained parameters into e->net; QN_EFORMAT when they do not fit it. */
static int mpi_eval__params(struct mpi_eval *e)
{
    struct mpi_ctx *m = e->m;
    struct spool_array a = {0};
    int rc = spool_array_read(m->dir, MPI_EVAL_PARAMS, SPOOL_F32, &a, m->reason,
                              sizeof m->reason);
    if (rc == 0 && a.count != e->net->n_params) {
        snprintf(m->reason, sizeof m->reason, "the model has %zu parameters; its network %zu",
                 a.count, e->net->n_params);
        rc = QN_EFORMAT;
    }
    if (rc == 0)
        memcpy(e->net->params, a.data, a.count * sizeof(float));
    spool_array_free(&a);
    return rc;
}

/* The network, its parameters and the rows. */
static int mpi_eval__setup(struct mpi_eval *e)
{
    struct mpi_ctx *m = e->m;
    size_t n_in = 0, n_classes = 0;
    uint64_t seed = 0;
    json_t *spec = m->job.spec;
    int rc = mpi_eval__figures(e, spec, &n_in, &seed, &n_classes);
    if (rc) {
        snprintf(m->reason, sizeof m->reason, "the staged evaluation's figures are malformed");
        return rc;
    }
    rc = spool_net_open(m->dir, json_object_get(spec, "network"), 1, &e->sn, m->reason,
                        sizeof m->reason);
    if (rc == 0 && (rc = net_create_cells(&e->net, n_in, e->sn.ls, e->sn.cells, e->sn.n_layers,
                                          e->batch, m->job.threads, seed, NULL)))
        snprintf(m->reason, sizeof m->reason, "cannot build the network: %s", qn_err_msg(rc));
    if (rc == 0)
        rc = mpi_eval__params(e);
    if (rc == 0)
        rc = spool_data_read(m->dir, MPI_EVAL_DATA, n_classes, &e->ds, m->reason,
                             sizeof m->reason);
    return rc;
}

/* This rank's counters into t (MPI_EVAL_TALLY of them). */
static void mpi_eval__tally(const struct net *n, uint64_t *t)
{
    memset(t, 0, MPI_EVAL_TALLY * sizeof *t);
    t[0] = n->solves, t[1] = n->failed_solves;
    for (size_t l = 0; l < n->n_layers; l++)
        t[2 + 2 * l] = n->layer[l].sur_rows, t[3 + 2 * l] = n->layer[l].ood_rows;
}

/* Sums the ranks' counters on rank 0, and puts them back into its network
 * (so its domain fractions are the whole evaluation's). */
static void mpi_eval__sum_tally(struct mpi_eval *e)
{
    uint64_t mine[MPI_EVAL_TALLY], all[MPI_EVAL_TALLY];
    mpi_eval__tally(e->net, mine);
    MPI_Reduce(mine, all, MPI_EVAL_TALLY, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    if (e->m->rank != 0)
        return;
    e->net->solves = all[0], e->net->failed_solves = all[1];
    for (size_t l = 0; l < e->net->n_layers; l++)
        e->net->layer[l].sur_rows = all[2 + 2 * l], e->net->layer[l].ood_rows = all[3 + 2 * l];
}

/* Rank 0: result.json with the tally beside `scores` (stolen). */
static int mpi_eval__write(struct mpi_eval *e, json_t *scores)
{
    struct mpi_ctx *m = e->m;
    json_t *ood = spool_net_domain(e->net);
    int rc = scores && ood ? 0 : QN_ENOMEM;
    if (rc == 0 &&
        (json_object_set_new(scores, "solves", json_integer((json_int_t)e->net->solves)) ||
         json_object_set_new(scores, "failed_solves",
                             json_integer((json_int_t)e->net->failed_solves)) ||
         json_object_set_new(scores, "rows", json_integer((json_int_t)e->ds.n)) ||
         json_object_set(scores, "out_of_domain", ood)))
        rc = QN_ENOMEM;
    if (rc == 0)
        rc = spool_json_write(m->dir, SPOOL_RESULT, scores, m->reason, sizeof m->reason);
    json_decref(ood);
    json_decref(scores);
    return rc;
}

static json_t *mpi_eval__real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* ---- nominal or one chip: rows across ranks ---- */

/* Scores this rank's batches; rank 0 gets every batch's loss sum in order. */
static int mpi_eval__rows(struct mpi_eval *e, double *all_sums, size_t *correct)
{
    struct mpi_ctx *m = e->m;
    size_t lo, hi;
    mpi_slice(m, e->ds.n, e->batch, &lo, &hi);
    size_t mine = (hi - lo + e->batch - 1) / e->batch;
    double *sums = malloc((mine ? mine : 1) * sizeof *sums);
    int *counts = calloc((size_t)m->size, sizeof *counts);
    int *displs = calloc((size_t)m->size, sizeof *displs);
    uint64_t c = 0, c_all = 0;
    size_t ok = 0;
    int rc = sums && counts && displs ? 0 : QN_ENOMEM;
    net_set_noise(e->net, e->noise, e->has_chip ? e->chip : 0);
    e->net->noise_step = lo / e->batch; /* the forward passes before this slice's first */
    if (rc == 0 && (rc = train_evaluate_rows(e->net, &e->ds, e->loss, lo, hi, sums, &ok)))
        snprintf(m->reason, sizeof m->reason, "rank %d: evaluation stopped: %s", m->rank,
                 qn_err_msg(rc));
    if ((rc = mpi_agree(m, rc)) == 0) {
        for (int r = 0; r < m->size; r++) {
            struct mpi_ctx other = {.rank = r, .size = m->size};
            size_t a, b;
            mpi_slice(&other, e->ds.n, e->batch, &a, &b);
            counts[r] = (int)((b - a + e->batch - 1) / e->batch), displs[r] = (int)(a / e->batch);
        }
        MPI_Gatherv(sums, (int)mine, MPI_DOUBLE, all_sums, counts, displs, MPI_DOUBLE, 0,
                    MPI_COMM_WORLD);
        c = ok;
        MPI_Reduce(&c, &c_all, 1, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        *correct = (size_t)c_all;
    }
    free(sums), free(counts), free(displs);
    return rc;
}

static int mpi_eval__single(struct mpi_eval *e)
{
    struct mpi_ctx *m = e->m;
    size_t nb = (e->ds.n + e->batch - 1) / e->batch, correct = 0;
    double *sums = m->rank == 0 ? malloc((nb ? nb : 1) * sizeof *sums) : NULL, sum = 0;
    int rc = m->rank == 0 && !sums ? QN_ENOMEM : 0;
    if (e->has_chip)
        net_set_chip(e->net, e->chip);
    if ((rc = mpi_agree(m, rc)) == 0)
        rc = mpi_eval__rows(e, sums, &correct);
    if (rc == 0)
        mpi_eval__sum_tally(e);
    if (rc == 0 && m->rank == 0) {
        for (size_t k = 0; k < nb; k++)
            sum += sums[k];
        double loss = sum / (double)e->ds.n;
        double acc = e->loss == LOSS_CROSS_ENTROPY || e->ds.labels
                         ? (double)correct / (double)e->ds.n
                         : NAN;
        rc = mpi_eval__write(e, json_pack("{so so}", "loss", mpi_eval__real(loss), "accuracy",
                                          mpi_eval__real(acc)));
    }
    free(sums);
    return mpi_agree(m, rc);
}

/* ---- chips across ranks ---- */

/* Scores this rank's chips into loss and acc (rank 0 gathers all of them), whole chips in
 * parallel on the rank's threads (train_evaluate_chips: each chip's scores bit for bit). */
static int mpi_eval__my_chips(struct mpi_eval *e, size_t lo, size_t hi, double *loss, double *acc)
{
    int rc = hi > lo ? train_evaluate_chips(e->net, &e->ds, e->loss, e->chips_seed + lo, hi - lo,
                                            e->noise, loss, acc)
                     : 0;
    if (rc)
        snprintf(e->m->reason, sizeof e->m->reason, "evaluation of chips %llu to %llu stopped: %s",
                 (unsigned long long)(e->chips_seed + lo),
                 (unsigned long long)(e->chips_seed + hi - 1), qn_err_msg(rc));
    return rc;
}

/* One array of chip scores (mine: this rank's k) into rank 0's all, in chip order. */
static void mpi_eval__gather_chips(struct mpi_eval *e, const double *mine, int k, double *all)
{
    struct mpi_ctx *m = e->m;
    int counts[SPOOL_RANKS_MAX], displs[SPOOL_RANKS_MAX];
    for (int r = 0; r < m->size; r++) {
        struct mpi_ctx other = {.rank = r, .size = m->size};
        size_t a, b;
        mpi_slice(&other, e->chips, 1, &a, &b);
        counts[r] = (int)(b - a), displs[r] = (int)a;
    }
    MPI_Gatherv(mine, k, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

/* The chips' scores as result.json's two arrays. */
static json_t *mpi_eval__chip_json(const double *loss, const double *acc, size_t n)
{
    json_t *L = json_array(), *A = json_array();
    for (size_t i = 0; L && A && i < n; i++)
        if (json_array_append_new(L, mpi_eval__real(loss[i])) ||
            json_array_append_new(A, mpi_eval__real(acc[i])))
            json_decref(L), L = NULL;
    if (!L || !A) {
        json_decref(L), json_decref(A);
        return NULL;
    }
    return json_pack("{so so}", "chips_loss", L, "chips_accuracy", A);
}

static int mpi_eval__chips(struct mpi_eval *e)
{
    struct mpi_ctx *m = e->m;
    size_t lo, hi, N = e->chips, all = m->rank == 0 ? N : 0;
    mpi_slice(m, N, 1, &lo, &hi);
    size_t k = hi - lo;
    double *loss = calloc(k + all + 1, sizeof *loss), *acc = calloc(k + all + 1, sizeof *acc);
    int rc = loss && acc ? 0 : QN_ENOMEM;
    if (rc == 0)
        rc = mpi_eval__my_chips(e, lo, hi, loss, acc);
    if ((rc = mpi_agree(m, rc)) == 0) {
        mpi_eval__gather_chips(e, loss, (int)k, loss + k);
        mpi_eval__gather_chips(e, acc, (int)k, acc + k);
        mpi_eval__sum_tally(e);
        if (m->rank == 0)
            rc = mpi_eval__write(e, mpi_eval__chip_json(loss + k, acc + k, N));
        rc = mpi_agree(m, rc);
    }
    free(loss);
    free(acc);
    return rc;
}

static int mpi_evaluate_run(struct mpi_ctx *m)
{
    struct mpi_eval e = {.m = m};
    int rc = mpi_agree(m, mpi_eval__setup(&e));
    if (rc == 0)
        rc = e.chips ? mpi_eval__chips(&e) : mpi_eval__single(&e);
    net_destroy(e.net);
    spool_net_close(&e.sn);
    data_close(&e.ds);
    return rc;
}

const struct mpi_type mpi_evaluate_type = {.name = "evaluate", .run = mpi_evaluate_run};
