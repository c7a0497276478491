/*
 * bench_chips.c: the cost of device populations (issue 12) in training, as
 * ratios against nominal networks timed in the same run.
 *
 * Both figures train 784-128-10 (hidden layer crn_relu, 10 identity outputs;
 * batch 128, Adam, cross-entropy) for one epoch of Fashion-MNIST's 60000
 * training rows, best of REPS epochs interleaved so that both sides of a
 * ratio see the same load on a shared machine (the whole bench takes seconds).
 *
 * 1. Per-instance parameters through a conditioned surrogate: the hidden
 *    layer through a surrogate f(u1; kappa) (one drive and one parameter:
 *    the 2-D table) of crn_relu with kappa lognormal cv 0.3, trained on chip 7
 *    (every device its own kappa), against the same network through the
 *    nominal surrogate f(u1) (the 1-D table). Target: ratio <= 2.
 * 2. Hardware-aware training (a fresh chip and fresh output noise sd 0.02
 *    every step) against nominal training of the same conditioned network.
 *    Target: ratio <= 2.5.
 *
 * The surrogates are fitted here: f(u1) on 2000 Sobol' points over u1 in
 * [-4, 4], f(u1; kappa) on 4000 over u1 in [-4, 4] and kappa in
 * [0.002, 0.05] (kappa 0.01's lognormal cv 0.3 stays inside it), 100 epochs each.
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
#include "optim.h"
#include "qn_err.h"
#include "surrogate.h"
#include "sweep.h"
#include "train.h"

#include "qt_bench.h"
#include "qt_daemon.h"

#define REPS 3        /* epochs timed per network (best of) */
#define BATCH 128
#define N_SWEEP1 2000 /* sweep points of the nominal surrogate */
#define N_SWEEP2 4000 /* sweep points of the conditioned surrogate */

/* The devices: nominal crn_relu, the same with kappa lognormal cv 0.3 and
 * output noise 0.02, and identity outputs; the surrogates fitted to crn_relu. */
struct models {
    struct dev_model crn, vary, ident;
    struct surrogate sur1, sur2;
    int have1, have2;
    double rmse1, rmse2, fit_secs;
};

static size_t param_index(const struct dev_model *d, const char *name)
{
    size_t k = 0;
    while (k < d->n_params && strcmp(d->param_names[k], name) != 0)
        k++;
    return k;
}

static int models_init(struct models *m)
{
    struct dev_error err;
    memset(m, 0, sizeof *m);
    dev_model_init(&m->crn, DEV_CRN_RELU);
    dev_model_init(&m->vary, DEV_CRN_RELU);
    dev_model_init(&m->ident, DEV_NEURON);
    m->ident.activation = ACT_IDENTITY;
    int rc = dev_model_prepare(&m->crn, &err);
    if (!rc)
        rc = dev_model_prepare(&m->vary, &err);
    if (!rc) {
        size_t k = param_index(&m->vary, "kappa");
        if (k == m->vary.n_params)
            return QN_EINVAL;
        m->vary.vary[k] = (struct dev_spread){DEV_DIST_LOGNORMAL, 0.3};
        m->vary.noise = (struct dev_noise){0.02, 0.0};
        rc = dev_model_prepare(&m->ident, &err);
    }
    if (rc)
        fprintf(stderr, "bench_chips: device: %s: %s\n", err.field, err.msg);
    return rc;
}

static void models_close(struct models *m)
{
    dev_model_close(&m->crn), dev_model_close(&m->vary), dev_model_close(&m->ident);
    if (m->have1)
        surrogate_close(&m->sur1);
    if (m->have2)
        surrogate_close(&m->sur2);
}

/* Fits *s to crn_relu on n Sobol' points over u1 in [-4, 4] and, when cond,
 * kappa in [0.002, 0.05] (then conditioned on kappa); *rmse gets the
 * validation RMSE. */
static int fit(const struct dev_model *crn, size_t n, int cond, struct surrogate *s, double *rmse)
{
    size_t dim = cond ? 2 : 1, kidx = param_index(crn, "kappa");
    double lo[2] = {-4, 0.002}, hi[2] = {4, 0.05};
    double *u = malloc(n * dim * sizeof *u), *y = malloc(n * sizeof *y);
    float *uf = malloc(n * dim * sizeof *uf), *yf = malloc(n * sizeof *yf);
    int *st = malloc(n * sizeof *st), rc = QN_ENOMEM;
    if (!u || !y || !uf || !yf || !st)
        goto done;
    rc = design_generate(DESIGN_SOBOL, n, dim, lo, hi, 1, u);
    if (!rc)
        rc = sweep_run_params(crn, u, n, dim - 1, &kidx, 2, y, st, NULL);
    if (rc)
        goto done;
    for (size_t i = 0; i < n * dim; i++)
        uf[i] = (float)u[i];
    for (size_t i = 0; i < n; i++)
        yf[i] = (float)y[i];
    struct fit_config cfg;
    struct fit_result res;
    fit_config_default(&cfg);
    cfg.epochs = 100;
    rc = surrogate_fit(uf, yf, st, n, dim, &cfg, NULL, s, &res);
    if (rc)
        goto done;
    *rmse = res.val_rmse;
    const char *names[] = {"kappa"};
    if (cond && (rc = surrogate_set_cond(s, 1, names)))
        surrogate_close(s);
done:
    free(u), free(y), free(uf), free(yf), free(st);
    return rc;
}

/* 128 devices through sur, then 10 identity outputs, calibrated on the first batch. */
static int build(struct net **out, const struct data_set *train, const struct dev_model *hid,
                 const struct surrogate *sur, const struct dev_model *ident)
{
    struct net_layer_spec spec[2] = {{128, hid, VIA_SURROGATE, sur, 0, 0},
                                     {10, ident, VIA_EXACT, NULL, 0, 0}};
    int rc = net_create(out, train->d, spec, 2, BATCH, 1, 7, NULL);
    if (!rc)
        rc = net_calibrate(*out, train->x, BATCH);
    return rc;
}

/* One epoch of `train` in chip mode `mode` (chip 7 for TRAIN_ONE_CHIP) with a
 * fresh Adam; *secs is lowered to the epoch's time, *acc gets its accuracy. */
static int epoch(struct net *n, const struct data_set *train, enum train_chip mode, double *secs,
                 double *acc)
{
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ADAM);
    int rc = optim_init(&o, &oc, n->n_params);
    if (rc)
        return rc;
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 1, BATCH, 2, 0, {0}, mode, 7};
    struct train_result res;
    double t0 = qd_now();
    rc = train_run(n, &o, train, NULL, &cfg, NULL, 0, &res);
    *secs = fmin(*secs, qd_now() - t0);
    *acc = res.train_accuracy;
    optim_close(&o);
    return rc;
}

static int bench(struct models *m, const struct data_set *train)
{
    double t0 = qd_now();
    int rc = fit(&m->crn, N_SWEEP1, 0, &m->sur1, &m->rmse1);
    m->have1 = rc == 0;
    if (!rc)
        rc = fit(&m->crn, N_SWEEP2, 1, &m->sur2, &m->rmse2);
    m->have2 = m->have1 && rc == 0;
    m->fit_secs = qd_now() - t0;
    if (rc)
        return rc;
    struct net *nom = NULL, *cond = NULL;
    rc = build(&nom, train, &m->crn, &m->sur1, &m->ident);
    if (!rc)
        rc = build(&cond, train, &m->vary, &m->sur2, &m->ident);
    double t_nom = HUGE_VAL, t_chip = HUGE_VAL, t_cnom = HUGE_VAL, t_hw = HUGE_VAL;
    double a_nom = NAN, a_chip = NAN, a_cnom = NAN, a_hw = NAN;
    for (int r = 0; !rc && r < REPS; r++) { /* interleaved: the same load on every side */
        rc = epoch(nom, train, TRAIN_NOMINAL, &t_nom, &a_nom);
        if (!rc)
            rc = epoch(cond, train, TRAIN_ONE_CHIP, &t_chip, &a_chip);
        if (!rc) {
            net_set_nominal(cond);
            net_set_noise(cond, 0, 0);
            rc = epoch(cond, train, TRAIN_NOMINAL, &t_cnom, &a_cnom);
        }
        if (!rc)
            rc = epoch(cond, train, TRAIN_HARDWARE_AWARE, &t_hw, &a_hw);
    }
    net_destroy(nom), net_destroy(cond);
    if (rc)
        return rc;
    printf("784-128-10 crn_relu (kappa 0.01) via surrogate, one epoch of %zu Fashion-MNIST "
           "training rows, batch %d, Adam, best of %d interleaved epochs:\n",
           train->n, BATCH, REPS);
    printf("  surrogates (fitted in %.1f s): f(u1) on %d Sobol' points, val RMSE %.2e; "
           "f(u1; kappa) on %d, val RMSE %.2e (2-D table)\n",
           m->fit_secs, N_SWEEP1, m->rmse1, N_SWEEP2, m->rmse2);
    printf("1. nominal surrogate %.3f s (train acc %.3f) | conditioned surrogate on chip 7, "
           "kappa lognormal cv 0.3 per instance %.3f s (train acc %.3f)\n",
           t_nom, a_nom, t_chip, a_chip);
    printf("   ratio conditioned / nominal: %.2f (target <= 2)\n", t_chip / t_nom);
    printf("2. conditioned network trained nominal %.3f s (train acc %.3f) | hardware-aware "
           "(fresh chip and output noise sd 0.02 every step) %.3f s (train acc %.3f)\n",
           t_cnom, a_cnom, t_hw, a_hw);
    printf("   ratio hardware-aware / nominal: %.2f (target <= 2.5); against the nominal "
           "surrogate network: %.2f\n",
           t_hw / t_cnom, t_hw / t_nom);
    return QN_OK;
}

int main(int argc, char **argv)
{
    int state = blas_env_select(argc, argv);
    gsl_set_error_handler_off();
    char cpu[128];
    qb_cpu_name(cpu, sizeof cpu);
    printf("CPU %s; OpenBLAS core %s (%s), threads %d\n", cpu, blas_env_corename(),
           blas_env_state_name(state), openblas_get_num_threads());
    struct data_set train;
    struct data_error err;
    int rc = data_load_fashion_mnist(&train, NULL, NULL, &err);
    if (rc) {
        fprintf(stderr, "bench_chips: Fashion-MNIST: %s\n", err.msg);
        return 1;
    }
    struct models m;
    rc = models_init(&m);
    if (!rc)
        rc = bench(&m, &train);
    models_close(&m);
    data_close(&train);
    if (rc)
        fprintf(stderr, "bench_chips: %s\n", qn_err_msg(rc));
    return rc ? 1 : 0;
}
