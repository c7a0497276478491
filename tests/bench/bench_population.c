/*
 * bench_population.c: whole forward passes in parallel (net_replica.h): the
 * chips of an evaluation and the members of an ES step, as ratios of times
 * measured in the same run (best of bench_reps runs, the sides interleaved so that they
 * see the same load on a shared machine).
 *
 * 1. Chips. A 784-128-10 network (hidden crn_relu, kappa 0.01 lognormal cv
 *    0.3 with output noise 0.02, 10 identity outputs) scores C chips of R
 *    rows of 784 inputs (random in [0, 1]: the cost depends on the shapes,
 *    not on the pixels), with the hidden layer
 *      a. via device (real ODE steady states), and
 *      b. via a surrogate of one drive conditioned on kappa (the 2-D table;
 *         a random MLP: the cost is a fitted one's),
 *    three ways: one chip at a time on 1 thread (the reference); one chip
 *    at a time with each chip's device solves spread over T threads
 *    (solve-parallel: what evaluate did before); train_evaluate_chips on T
 *    threads (whole chips in parallel on T replicas; chips left over after
 *    whole rounds run solve-parallel). C = T (whole rounds) and C = T + 1.
 * 2. ES. One epoch of ES training (population 64, batch 64) on 1 thread and
 *    on T threads (pairs in parallel on replicas): 2-16-2 tanh via exact on
 *    1000 spiral points, and 2-8-2 crn_relu via device on 256.
 * T is 2 (this machine's cores) unless QN_BENCH_THREADS says otherwise;
 * bench_reps is 3 unless QN_BENCH_REPS says otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "data.h"
#include "device.h"
#include "net.h"
#include "optim.h"
#include "qn_err.h"
#include "surrogate.h"
#include "train.h"

#include "qt_bench.h"
#include "qt_daemon.h"

#define ROWS 2048 /* rows per chip */
#define CAP 256   /* rows per forward pass, as evaluate's */

static int bench_reps = 3; /* best of; set once in main from QN_BENCH_REPS */

static int check(int rc, const char *what)
{
    if (rc)
        fprintf(stderr, "bench_population: %s: %s\n", what, qn_err_msg(rc));
    return rc;
}

/* The devices and the conditioned surrogate. */
struct models {
    struct dev_model crn, ident, tanh_n, crn_nominal;
    struct surrogate sur;
};

static int prepare(struct dev_model *d)
{
    struct dev_error err;
    int rc = dev_model_prepare(d, &err);
    if (rc)
        fprintf(stderr, "bench_population: prepare: %s: %s\n", err.field, err.msg);
    return rc;
}

static int models_init(struct models *m)
{
    memset(m, 0, sizeof *m);
    dev_model_init(&m->crn, DEV_CRN_RELU);
    dev_model_init(&m->crn_nominal, DEV_CRN_RELU);
    dev_model_init(&m->ident, DEV_NEURON);
    dev_model_init(&m->tanh_n, DEV_NEURON);
    m->ident.activation = ACT_IDENTITY, m->tanh_n.activation = ACT_TANH;
    int rc = dev_model_set_param(&m->crn, "kappa", 0.01);
    for (size_t i = 0; rc == 0 && i < m->crn.n_params; i++)
        if (strcmp(m->crn.param_names[i], "kappa") == 0)
            m->crn.vary[i] = (struct dev_spread){DEV_DIST_LOGNORMAL, 0.3};
    m->crn.noise.output_sd = 0.02;
    if (rc || prepare(&m->crn) || prepare(&m->crn_nominal) || prepare(&m->ident) ||
        prepare(&m->tanh_n))
        return QN_EINVAL;
    size_t sizes[4] = {2, 32, 32, 1};
    enum act_kind act[3] = {ACT_TANH, ACT_TANH, ACT_IDENTITY};
    struct surrogate *s = &m->sur;
    if ((rc = mlp_create(&s->mlp, 3, sizes, act)) || (rc = mlp_init_params(s->mlp, 3)))
        return rc;
    s->n_in = 2;
    s->in_mean[0] = 0.0f, s->in_std[0] = 2.0f, s->in_mean[1] = 0.01f, s->in_std[1] = 0.01f;
    s->out_mean = 1.0f, s->out_std = 1.0f;
    s->has_domain = 1;
    s->dom_lo[0] = -4.0f, s->dom_hi[0] = 4.0f, s->dom_lo[1] = 0.002f, s->dom_hi[1] = 0.05f;
    const char *names[] = {"kappa"};
    return surrogate_set_cond(s, 1, names);
}

static void models_close(struct models *m)
{
    dev_model_close(&m->crn), dev_model_close(&m->crn_nominal);
    dev_model_close(&m->ident), dev_model_close(&m->tanh_n);
    surrogate_close(&m->sur);
}

/* R rows of 784 inputs in [0, 1] with labels 0..9 (seeded). */
static int image_rows(struct data_set *ds, size_t R)
{
    memset(ds, 0, sizeof *ds);
    ds->n = R, ds->d = 784, ds->n_classes = 10;
    ds->x = malloc(R * 784 * sizeof *ds->x);
    ds->labels = malloc(R * sizeof *ds->labels);
    if (!ds->x || !ds->labels)
        return QN_ENOMEM;
    uint64_t z = 12345;
    for (size_t i = 0; i < R * 784; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        ds->x[i] = (float)((z >> 40) & 0xffff) / 65536.0f;
    }
    for (size_t i = 0; i < R; i++)
        ds->labels[i] = (int)(i % 10);
    return QN_OK;
}

/* 784-128-10 with the hidden layer via `via` (the surrogate for VIA_SURROGATE). */
static int image_net(const struct models *m, enum net_via via, size_t threads, struct net **out)
{
    struct net_layer_spec spec[2] = {
        {128, &m->crn, via, via == VIA_SURROGATE ? &m->sur : NULL, 1, 0},
        {10, &m->ident, VIA_EXACT, NULL, 1, 0}};
    return net_create(out, 784, spec, 2, CAP, threads, 1, NULL);
}

/* Seconds to score C chips one at a time on n (its threads spread each chip's solves). */
static int chips_one_by_one(struct net *n, const struct data_set *ds, size_t C, double *secs)
{
    double t0 = qd_now(), l, a;
    for (size_t i = 0; i < C; i++) {
        net_set_chip(n, 1 + i);
        net_set_noise(n, 1, 1 + i);
        int rc = train_evaluate(n, ds, LOSS_CROSS_ENTROPY, &l, &a);
        if (rc)
            return rc;
    }
    *secs = qd_now() - t0;
    return QN_OK;
}

/* Seconds to score C chips with train_evaluate_chips on n. */
static int chips_parallel(struct net *n, const struct data_set *ds, size_t C, double *secs)
{
    double l[64], a[64], t0 = qd_now();
    int rc = train_evaluate_chips(n, ds, LOSS_CROSS_ENTROPY, 1, C, 1, l, a);
    *secs = qd_now() - t0;
    return rc;
}

/* Case 1: best of bench_reps for each of the three ways; prints the ratios. */
static int bench_chips(const struct models *m, enum net_via via, size_t T, size_t C,
                       const struct data_set *ds)
{
    struct net *one = NULL, *many = NULL;
    double best[3] = {INFINITY, INFINITY, INFINITY};
    int rc = image_net(m, via, 1, &one);
    if (rc == 0)
        rc = image_net(m, via, T, &many);
    for (int r = 0; rc == 0 && r < bench_reps; r++) {
        double s[3];
        if ((rc = chips_one_by_one(one, ds, C, &s[0])) ||
            (rc = chips_one_by_one(many, ds, C, &s[1])) ||
            (rc = chips_parallel(many, ds, C, &s[2])))
            break;
        for (int k = 0; k < 3; k++)
            best[k] = fmin(best[k], s[k]);
    }
    if (rc == 0)
        printf("chips via %-9s %zu chips x %d rows: 1 thread %.2f s; %zu threads solve-parallel "
               "%.2f s (%.2fx), chip-parallel %.2f s (%.2fx); chip- over solve-parallel %.2fx\n",
               net_via_name(via), C, ROWS, best[0], T, best[1], best[0] / best[1], best[2],
               best[0] / best[2], best[1] / best[2]);
    net_destroy(one), net_destroy(many);
    return check(rc, "chips");
}

/* Seconds of one ES epoch (population 64, batch 64) of a fresh network on ds. */
static int es_epoch(const struct net_layer_spec *spec, size_t threads, const struct data_set *ds,
                    double *secs)
{
    struct net *n = NULL;
    struct optim o;
    struct optim_config oc;
    optim_config_default(&oc, OPTIM_ES);
    int rc = net_create(&n, 2, spec, 2, 64, threads, 1, NULL);
    if (rc)
        return rc;
    if ((rc = optim_init(&o, &oc, n->n_params))) {
        net_destroy(n);
        return rc;
    }
    struct train_config cfg = {LOSS_CROSS_ENTROPY, 1, 64, 1, 0, {0}, TRAIN_NOMINAL, 0};
    struct train_result res;
    double t0 = qd_now();
    rc = train_run(n, &o, ds, NULL, &cfg, NULL, 0, &res);
    *secs = qd_now() - t0;
    optim_close(&o);
    net_destroy(n);
    return rc;
}

/* Case 2: best of bench_reps on 1 and on T threads; prints the speed-up. */
static int bench_es(const char *what, const struct net_layer_spec *spec, size_t T,
                    const struct data_set *ds)
{
    double best1 = INFINITY, bestT = INFINITY, s;
    int rc = 0;
    for (int r = 0; rc == 0 && r < bench_reps; r++) {
        if ((rc = es_epoch(spec, 1, ds, &s)))
            break;
        best1 = fmin(best1, s);
        if ((rc = es_epoch(spec, T, ds, &s)))
            break;
        bestT = fmin(bestT, s);
    }
    if (rc == 0)
        printf("es %s, %zu rows: 1 thread %.3f s/epoch; %zu threads %.3f s/epoch (%.2fx)\n", what,
               ds->n, best1, T, bestT, best1 / bestT);
    return check(rc, "es");
}

int main(void)
{
    gsl_set_error_handler_off();
    char cpu[128];
    qb_cpu_name(cpu, sizeof cpu);
    const char *env = getenv("QN_BENCH_THREADS");
    size_t T = env && atoi(env) > 1 ? (size_t)atoi(env) : 2;
    const char *reps = getenv("QN_BENCH_REPS");
    bench_reps = reps && atoi(reps) > 0 ? atoi(reps) : 3;
    printf("bench_population on %s, %zu threads (best of %d)\n", cpu, T, bench_reps);
    struct models m;
    struct data_set img = {0}, spirals = {0}, small = {0};
    int rc = check(models_init(&m), "models");
    if (rc == 0)
        rc = check(image_rows(&img, ROWS), "rows");
    size_t counts[2] = {T, T + 1};
    for (size_t c = 0; rc == 0 && c < 2; c++) {
        rc = bench_chips(&m, VIA_DEVICE, T, counts[c], &img);
        if (rc == 0)
            rc = bench_chips(&m, VIA_SURROGATE, T, counts[c], &img);
    }
    if (rc == 0)
        rc = check(data_gen_spirals(&spirals, 1000, 2, 0.1, 1), "spirals");
    if (rc == 0)
        rc = check(data_gen_spirals(&small, 256, 2, 0.1, 2), "spirals");
    struct net_layer_spec exact[2] = {{16, &m.tanh_n, VIA_EXACT, NULL, 1, 0},
                                      {2, &m.ident, VIA_EXACT, NULL, 1, 0}};
    struct net_layer_spec device[2] = {{8, &m.crn_nominal, VIA_DEVICE, NULL, 1, 0},
                                       {2, &m.ident, VIA_EXACT, NULL, 1, 0}};
    if (rc == 0)
        rc = bench_es("2-16-2 tanh via exact", exact, T, &spirals);
    if (rc == 0)
        rc = bench_es("2-8-2 crn_relu via device", device, T, &small);
    data_close(&img), data_close(&spirals), data_close(&small);
    models_close(&m);
    return rc ? 1 : 0;
}
