/*
 * bench_train.c: training throughput of device networks on Fashion-MNIST,
 * against bounds measured in the same run.
 *
 * 1. 784-256-128-10 of ideal neurons (relu, relu, identity; via exact),
 *    batch 128, Adam, cross-entropy: samples/s of train_run over one epoch
 *    (60000 rows: shuffle, gather, forward, loss, backward, update), best of
 *    REPS. The bound is the time of exactly the sgemms those passes make
 *    (cblas_sgemm on the same shapes and transpositions: 3 forward, 2 + 2 + 1
 *    backward - the first layer needs no input gradient), timed alone for
 *    as many steps as the epoch has, interleaved with the epochs (best of
 *    REPS each); the fraction is bound time / measured time (target >= 0.5). Also given: the
 *    brief's FLOP count (forward 2 sum(in*out), backward 2x that), which
 *    overstates the work by the missing first-layer input gradient.
 *    Run with OpenBLAS's default threads and again with 1 thread.
 * 2. One epoch of 784-128-10 with the hidden layer crn_relu via surrogate
 *    (fitted here on a 2000-point Sobol' sweep) against the same network of
 *    ideal relu neurons: ratio of times (target <= 1.5), and the share of the
 *    surrogate's own evaluation (surrogate_eval on batch * 128 rows); best of
 *    SUR_REPS interleaved epochs.
 *
 * Per-phase times (gather, forward, loss, backward, update) come from a
 * hand-written copy of train_run's step, so a gap to the bound has a name.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "blas_env.h"
#include "data.h"
#include "design.h"
#include "device.h"
#include "net.h"
#include "nn.h"
#include "optim.h"
#include "qn_err.h"
#include "surrogate.h"
#include "sweep.h"
#include "train.h"

#define REPS 3     /* epochs timed for the throughput figure (best of) */
#define SUR_REPS 2 /* epochs timed per network in the surrogate comparison */
#define BATCH 128

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the sgemm bound --------------------------------------------------------------------------
 */

/* Buffers for one network's sgemms at batch B: activations, weights, gradients per layer. */
struct gemm_set {
    size_t L, B, w[NET_MAX_LAYERS + 1]; /* layers, batch, widths w[0..L] */
    float *x[NET_MAX_LAYERS + 1];       /* (B, w[l]) activations, and their gradients */
    float *dx[NET_MAX_LAYERS + 1];
    float *W[NET_MAX_LAYERS], *dW[NET_MAX_LAYERS]; /* (w[l+1], w[l]) */
};

static void gemm_set_free(struct gemm_set *g)
{
    for (size_t l = 0; l <= g->L; l++) {
        free(g->x[l]), free(g->dx[l]);
        if (l < g->L)
            free(g->W[l]), free(g->dW[l]);
    }
}

static int gemm_set_init(struct gemm_set *g, const size_t *w, size_t L, size_t B)
{
    memset(g, 0, sizeof *g);
    g->L = L, g->B = B;
    int ok = 1;
    for (size_t l = 0; l <= L; l++) {
        g->w[l] = w[l];
        g->x[l] = calloc(B * w[l], sizeof(float));
        g->dx[l] = calloc(B * w[l], sizeof(float));
        ok &= g->x[l] && g->dx[l];
        if (l < L) {
            g->W[l] = calloc(w[l + 1] * w[l], sizeof(float));
            g->dW[l] = calloc(w[l + 1] * w[l], sizeof(float));
            ok &= g->W[l] && g->dW[l];
        }
    }
    for (size_t l = 0; ok && l < L; l++)
        for (size_t i = 0; i < w[l + 1] * w[l]; i++)
            g->W[l][i] = (float)((i * 7919u) % 1000) * 1e-4f - 0.05f;
    for (size_t i = 0; ok && i < B * w[0]; i++)
        g->x[0][i] = (float)((i * 104729u) % 1000) * 1e-3f;
    if (!ok)
        gemm_set_free(g);
    return ok ? QN_OK : QN_ENOMEM;
}

/* One step's sgemms, as nn.h issues them: forward NT per layer, then backward NN (input
 * gradient, not for layer 0) and TN (weight gradient) per layer. Returns the FLOPs. */
static double gemm_step(struct gemm_set *g)
{
    int B = (int)g->B;
    double flops = 0;
    for (size_t l = 0; l < g->L; l++) {
        int in = (int)g->w[l], out = (int)g->w[l + 1];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, g->x[l], in, g->W[l],
                    in, 0.0f, g->x[l + 1], out);
        flops += 2.0 * B * in * out;
    }
    for (size_t l = g->L; l-- > 0;) {
        int in = (int)g->w[l], out = (int)g->w[l + 1];
        if (l > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, g->dx[l + 1],
                        out, g->W[l], in, 0.0f, g->dx[l], in);
            flops += 2.0 * B * in * out;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, g->dx[l + 1], out,
                    g->x[l], in, 1.0f, g->dW[l], in);
        flops += 2.0 * B * in * out;
    }
    return flops;
}

/* Seconds per step of the sgemms alone over `steps` steps, lowered into *secs (min);
 * *flops gets the FLOPs per step. */
static int gemm_bound(const size_t *w, size_t L, size_t B, size_t steps, double *secs,
                      double *flops)
{
    struct gemm_set g;
    int rc = gemm_set_init(&g, w, L, B);
    if (rc)
        return rc;
    gemm_step(&g); /* warm-up */
    double t0 = now();
    for (size_t s = 0; s < steps; s++)
        *flops = gemm_step(&g);
    *secs = fmin(*secs, (now() - t0) / (double)steps);
    gemm_set_free(&g);
    return QN_OK;
}

/* ---- networks -----------------------------------------------------------------------------------
 */

/* Prepared ideal neurons: relu and identity. */
struct models {
    struct dev_model relu, ident, crn;
    struct surrogate sur;
    int have_sur;
};

static int models_init(struct models *m)
{
    struct dev_error err;
    memset(m, 0, sizeof *m);
    dev_model_init(&m->relu, DEV_NEURON);
    dev_model_init(&m->ident, DEV_NEURON);
    m->ident.activation = ACT_IDENTITY;
    dev_model_init(&m->crn, DEV_CRN_RELU);
    int rc = dev_model_prepare(&m->relu, &err);
    if (!rc)
        rc = dev_model_prepare(&m->ident, &err);
    if (!rc)
        rc = dev_model_prepare(&m->crn, &err);
    if (rc)
        fprintf(stderr, "bench_train: device: %s: %s\n", err.field, err.msg);
    return rc;
}

static void models_close(struct models *m)
{
    dev_model_close(&m->relu), dev_model_close(&m->ident), dev_model_close(&m->crn);
    if (m->have_sur)
        surrogate_close(&m->sur);
}

/* A crn_relu surrogate from a 2000-point Sobol' sweep over u1 in [-4, 4]. */
static int fit_crn(struct models *m, double *fit_secs, double *rmse)
{
    enum { N = 2000 };
    static double u[N], y[N];
    static float uf[N], yf[N];
    static int st[N];
    double lo = -4, hi = 4, t0 = now();
    int rc = design_generate(DESIGN_SOBOL, N, 1, &lo, &hi, 1, u);
    if (!rc)
        rc = sweep_run(&m->crn, u, N, 2, y, st, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < N; i++)
        uf[i] = (float)u[i], yf[i] = (float)y[i];
    struct fit_config cfg;
    struct fit_result res;
    fit_config_default(&cfg);
    cfg.epochs = 100;
    rc = surrogate_fit(uf, yf, st, N, 1, &cfg, NULL, &m->sur, &res);
    m->have_sur = rc == 0;
    *fit_secs = now() - t0;
    *rmse = res.val_rmse;
    return rc;
}

/* Trains n for one epoch of `train` with a fresh Adam; *secs and *acc get time and accuracy. */
static int epoch(struct net *n, const struct data_set *train, uint64_t seed, double *secs,
                 double *acc)
{
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    int rc = optim_init(&o, &oc, n->n_params);
    if (rc)
        return rc;
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 1, BATCH, seed, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result res;
    double t0 = now();
    rc = train_run(n, &o, train, NULL, &cfg, NULL, 0, &res);
    *secs = now() - t0;
    *acc = res.train_accuracy;
    optim_close(&o);
    return rc;
}

/* Builds a network of hidden widths h[0..nh) over `hid` devices (via, sur) plus 10 identity
 * outputs, calibrated on the first batch of train. */
static int build(struct net **out, const struct data_set *train, const size_t *h, size_t nh,
                 const struct dev_model *hid, enum net_via via, const struct surrogate *sur,
                 const struct dev_model *ident)
{
    struct net_layer_spec spec[NET_MAX_LAYERS];
    for (size_t l = 0; l < nh; l++)
        spec[l] = (struct net_layer_spec){h[l], hid, via, sur, 0, 0};
    spec[nh] = (struct net_layer_spec){10, ident, VIA_EXACT, NULL, 0, 0};
    int rc = net_create(out, train->d, spec, nh + 1, BATCH, 1, 7, NULL);
    if (!rc)
        rc = net_calibrate(*out, train->x, BATCH);
    return rc;
}

/* Seconds per step of each phase of train_run's step, over `steps` sequential batches. */
struct phases {
    double gather, forward, loss, backward, update;
};

static int profile(struct net *n, const struct data_set *ds, size_t steps, struct phases *p)
{
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    size_t *idx = malloc(BATCH * sizeof *idx);
    float *x = malloc(BATCH * ds->d * sizeof *x), *dout = malloc(BATCH * 10 * sizeof *dout);
    int *lab = malloc(BATCH * sizeof *lab), rc = QN_ENOMEM;
    memset(p, 0, sizeof *p);
    if (!idx || !x || !dout || !lab || optim_init(&o, &oc, n->n_params))
        goto done;
    for (size_t s = 0; s < steps; s++) {
        for (size_t k = 0; k < BATCH; k++)
            idx[k] = (s * BATCH + k * 7919) % ds->n;
        double t0 = now(), l;
        data_gather(ds, idx, BATCH, x, lab, NULL);
        double t1 = now();
        rc = net_forward(n, x, BATCH);
        double t2 = now();
        if (!rc)
            rc = nn_xent_loss(&l, dout, net_output(n), lab, BATCH, 10) ? QN_EINVAL : 0;
        double t3 = now();
        memset(n->grads, 0, n->n_params * sizeof *n->grads);
        net_backward(n, x, dout, BATCH);
        double t4 = now();
        optim_step(&o, n->params, n->grads);
        double t5 = now();
        if (rc)
            break;
        p->gather += t1 - t0, p->forward += t2 - t1, p->loss += t3 - t2;
        p->backward += t4 - t3, p->update += t5 - t4;
    }
    double k = 1e3 / (double)steps; /* to ms per step */
    p->gather *= k, p->forward *= k, p->loss *= k, p->backward *= k, p->update *= k;
    optim_close(&o);
done:
    free(idx), free(x), free(dout), free(lab);
    return rc;
}

static void print_phases(const char *name, const struct phases *p)
{
    printf("  %-22s ms/step: gather %.3f  forward %.3f  loss %.3f  backward %.3f  update %.3f"
           "  (sum %.3f)\n",
           name, p->gather, p->forward, p->loss, p->backward, p->update,
           p->gather + p->forward + p->loss + p->backward + p->update);
}

/* ---- section 1: throughput against the sgemm bound ------------------------------------------ */

static int bench_throughput(struct models *m, const struct data_set *train, int threads)
{
    static const size_t w[4] = {784, 256, 128, 10}, h[2] = {256, 128};
    openblas_set_num_threads(threads);
    size_t steps = (train->n + BATCH - 1) / BATCH;
    double gsecs = HUGE_VAL, gflops = 0, best = HUGE_VAL, acc = NAN, secs = 0;
    int rc = QN_OK;
    struct net *n = NULL;
    for (int r = 0; !rc && r < REPS; r++) { /* bound and epoch interleaved: same load */
        net_destroy(n);
        rc = gemm_bound(w, 3, BATCH, steps, &gsecs, &gflops);
        if (!rc)
            rc = build(&n, train, h, 2, &m->relu, VIA_EXACT, NULL, &m->ident);
        if (!rc)
            rc = epoch(n, train, 1, &secs, &acc);
        best = fmin(best, secs);
    }
    struct phases ph;
    if (!rc)
        rc = profile(n, train, 100, &ph);
    net_destroy(n);
    if (rc)
        return rc;
    double sps = (double)train->n / best, bound_sps = BATCH / gsecs;
    double fwd = 2.0 * (784 * 256 + 256 * 128 + 128 * 10), brief_flops = 3 * fwd;
    double gf = gflops / gsecs / 1e9;
    printf("784-256-128-10 relu, batch %d, Adam, OpenBLAS threads %d (core %s):\n", BATCH, threads,
           blas_env_corename());
    printf("  train_run: %.0f samples/s (epoch of %zu in %.3f s, best of %d; train acc %.3f)\n",
           sps, train->n, best, REPS, acc);
    printf("  sgemm bound: the step's 8 sgemms alone %.3f ms/step = %.1f GFLOP/s -> %.0f "
           "samples/s\n",
           gsecs * 1e3, gf, bound_sps);
    printf("  fraction of sgemm bound: %.2f (target >= 0.5)\n", sps / bound_sps);
    printf("  FLOPs/sample: actual sgemm work %.0f; brief's formula (fwd + 2x fwd) %.0f -> "
           "fraction by that formula %.2f\n",
           gflops / BATCH, brief_flops, sps * brief_flops / (gf * 1e9));
    print_phases("per phase (100 steps)", &ph);
    return QN_OK;
}

/* ---- section 2: crn_relu surrogate against ideal neurons --------------------------------------
 */

static int bench_surrogate(struct models *m, const struct data_set *train)
{
    static const size_t h[1] = {128};
    double fit_secs, rmse, t_ideal = HUGE_VAL, t_sur = HUGE_VAL, s, acc_i = NAN, acc_s = NAN;
    int rc = fit_crn(m, &fit_secs, &rmse);
    if (rc)
        return rc;
    struct net *ni = NULL, *ns = NULL;
    rc = build(&ni, train, h, 1, &m->relu, VIA_EXACT, NULL, &m->ident);
    if (!rc)
        rc = build(&ns, train, h, 1, &m->crn, VIA_SURROGATE, &m->sur, &m->ident);
    for (int r = 0; !rc && r < SUR_REPS; r++) { /* interleaved */
        rc = epoch(ni, train, 2, &s, &acc_i);
        t_ideal = fmin(t_ideal, s);
        if (!rc)
            rc = epoch(ns, train, 2, &s, &acc_s);
        t_sur = fmin(t_sur, s);
    }
    struct phases pi, ps;
    if (!rc)
        rc = profile(ni, train, 50, &pi);
    if (!rc)
        rc = profile(ns, train, 50, &ps);
    /* the surrogate alone, on the drives of the last forward */
    struct net_layer *L = &ns->layer[0];
    double t_eval = HUGE_VAL;
    for (int r = 0; !rc && r < 20; r++) {
        double t0 = now();
        rc = surrogate_eval(L->sur, &L->sacts, L->u, BATCH * L->n_out, L->y, L->g, L->sscratch);
        t_eval = fmin(t_eval, now() - t0);
    }
    net_destroy(ni), net_destroy(ns);
    if (rc)
        return rc;
    printf("784-128-10, one epoch, batch %d, Adam, threads %d: crn_relu via surrogate vs ideal "
           "relu\n",
           BATCH, openblas_get_num_threads());
    printf("  surrogate: 1-32-32-1 tanh fitted on 2000 Sobol' points in %.2f s, val RMSE %.2e\n",
           fit_secs, rmse);
    printf("  ideal %.3f s (acc %.3f) | surrogate %.3f s (acc %.3f) | ratio %.2f (target <= "
           "1.5)\n",
           t_ideal, acc_i, t_sur, acc_s, t_sur / t_ideal);
    print_phases("ideal", &pi);
    print_phases("surrogate", &ps);
    printf("  surrogate_eval alone (y and dy/du on %d x 128 rows): %.3f ms/step\n", BATCH,
           t_eval * 1e3);
    return QN_OK;
}

int main(int argc, char **argv)
{
    int state = blas_env_select(argc, argv);
    gsl_set_error_handler_off();
    printf("OpenBLAS core %s (%s)\n", blas_env_corename(), blas_env_state_name(state));
    struct data_set train;
    struct data_error err;
    int rc = data_load_fashion_mnist(&train, NULL, NULL, &err);
    if (rc) {
        fprintf(stderr, "bench_train: Fashion-MNIST: %s\n", err.msg);
        return 1;
    }
    struct models m;
    int threads = openblas_get_num_threads();
    rc = models_init(&m);
    if (!rc)
        rc = bench_throughput(&m, &train, threads);
    if (!rc && threads > 1)
        rc = bench_throughput(&m, &train, 1);
    openblas_set_num_threads(threads);
    if (!rc)
        rc = bench_surrogate(&m, &train);
    models_close(&m);
    data_close(&train);
    if (rc)
        fprintf(stderr, "bench_train: %s\n", qn_err_msg(rc));
    return rc ? 1 : 0;
}
