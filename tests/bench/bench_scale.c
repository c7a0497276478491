/*
 * bench_scale.c: the costs the README's "Scale on paper" model is fitted to,
 * measured here, and the model's predictions (issue 13).
 *
 * Measured, on one core unless said:
 *   - per-solve time per device kind: crn_relu (steady_state), neuron (closed
 *     form), hodgkin_huxley (spike_rate over 500 ms, the default), each over
 *     Sobol' drives (crn u1 in [-4, 4], HH u1 in [0, 20]), with the
 *     coefficient of variation of the single solve times (what makes slices
 *     of rows uneven);
 *   - per-row serial costs of a distributed sweep: the design (Sobol', made
 *     by every rank and by the daemon), the daemon's store of a row (float32
 *     conversion and SQLite append in one transaction), and rank 0's gather
 *     of a row (MPI_Gatherv of an 8-byte output and a 4-byte status from 2
 *     ranks);
 *   - MPI_Allreduce at 2 ranks (Open MPI, shared memory) of 1 float
 *     (latency) and of the 101,770 parameters of a 784-128-10 network (float
 *     sums), per call;
 *   - a training step of 784-128-10 (relu, identity) on one thread:
 *     forward + backward at per-rank batches 128, 16 and 2, and Adam's update;
 *   - the start of a run on R = 1, 2 and 4 ranks (mpirun --oversubscribe):
 *     `qn run --ranks 2` of a 16-point sweep with mpirun's -n made R (a
 *     wrapper first on PATH), less `qn run --workers 2` of it, medians of 5
 *     (staging, mpirun, MPI_Init, the relay, collecting), fitted as
 *     start(R) = a + b log2 R by least squares: a the fixed costs, b those of
 *     a doubling of the launch;
 *   - 2 ranks x 1 thread (`qn run --ranks 2`) against 1 process x 2 threads
 *     (`qn run --workers 2`) on the same HH sweep (QN_BENCH_SCALE_HH points,
 *     default 20000, about 10 s here: at 4000 the 0.3 s start is a tenth of
 *     the run; goal: time(1x2) / time(2x1) >= 0.9), best of 2.
 * The MPI parts compile a small program with mpicc and run it with mpirun
 * -n 2; without them they are skipped, saying so.
 *
 * The model (printed for P = 8, 64, 512; its terms are documented in
 * README.md, "Scale on paper"):
 *   sweep of N = 10^6 HH points, P ranks of 1 thread against 1 process:
 *     T1 = N (t_hh + c_design + c_store)
 *     TP = N t_hh / P * (1 + imbalance(P)) + N (c_design + c_gather + c_store)
 *          + a + b log2 P
 *     imbalance(P) = cv * sqrt(2 ln P) / sqrt(N / P)   (the slowest of P
 *     slices of independent rows; Sobol' slices are more even than that)
 *     E = T1 / (P TP)
 *   data-parallel training of 784-128-10 (Adam), per step:
 *     allreduce(P) = 2 (P - 1) alpha + 2 (P - 1) / P * n beta  (ring), with
 *     alpha = the 1-float allreduce / 2 and n beta = the full one less it;
 *     global batch 128 split over P: E = T(128) / (P (T(128 / P) + allreduce(P)
 *     + t_adam)), T(b) interpolated in log b from the measured batches (a
 *     rank with less than one row has nothing to do: P > 128 is not run);
 *     128 rows per rank (global batch 128 P): E = (T(128) + t_adam) /
 *     (T(128) + allreduce(P) + t_adam); the same for the hidden layer
 *     crn_relu via device, whose step adds b * 128 solves (t_crn each).
 * These are this machine's costs (shared memory between 2 cores); on a
 * cluster alpha and beta are the network's, and the README says what that
 * changes.
 */
#include <cblas.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "design.h"
#include "device.h"
#include "net.h"
#include "optim.h"
#include "qn_err.h"
#include "qn_test.h"
#include "qt_bench.h"
#include "qt_daemon.h"
#include "store.h"

#define HH_POINTS 20000   /* the 2x1 against 1x2 sweep, by default */
#define SWEEP_N 1e6       /* the modelled sweep */
#define NET_PARAMS 101770 /* 784-128-10: 784*128 + 128 + 128*10 + 10 */

/* What was measured (seconds unless said). */
struct costs {
    double t_crn, t_neuron, t_hh; /* per solve */
    double cv_hh;                 /* coefficient of variation of HH solve times */
    double c_design, c_store;     /* per row */
    double c_gather;              /* per row, 2 ranks (0: not measured) */
    double ar_1, ar_n;            /* allreduce of 1 float, of NET_PARAMS floats (0: not measured) */
    double step[3];               /* forward + backward at batches 128, 16, 2 */
    double adam;                  /* Adam's update of NET_PARAMS */
    double start[3];              /* a run's start on 1, 2, 4 ranks (0: not measured) */
    double start_a, start_b;      /* start(R) = a + b log2 R, fitted to them */
    double t_1x2, t_2x1;          /* the HH sweep: 1 process x 2 threads, 2 ranks x 1 thread */
};

/* ---- solves ---------------------------------------------------------------------------- */

/* Mean time of a solve of d over n Sobol' drives in [lo, hi]; the
 * coefficient of variation of single solves into *cv (may be NULL). */
static int solve_cost(struct dev_model *d, size_t n, double lo, double hi, double *mean, double *cv)
{
    double *u = malloc(n * sizeof *u), s = 0, s2 = 0, out;
    struct dev_work w;
    int rc = u ? design_generate(DESIGN_SOBOL, n, 1, &lo, &hi, 1, u) : QN_ENOMEM;
    if (rc == 0)
        rc = dev_work_init(&w, d, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        double t0 = qd_now();
        dev_eval(&w, &u[i], &out);
        double dt = qd_now() - t0;
        s += dt, s2 += dt * dt;
    }
    if (rc == 0) {
        dev_work_close(&w);
        *mean = s / (double)n;
        if (cv)
            *cv = sqrt(fmax(0, s2 / (double)n - *mean * *mean)) / *mean;
    }
    free(u);
    return rc;
}

static int measure_solves(struct costs *c)
{
    struct dev_model crn, neuron, hh;
    struct dev_error err;
    dev_model_init(&crn, DEV_CRN_RELU);
    dev_model_init(&neuron, DEV_NEURON);
    dev_model_init(&hh, DEV_HODGKIN_HUXLEY);
    int rc = dev_model_prepare(&crn, &err) || dev_model_prepare(&neuron, &err) ||
             dev_model_prepare(&hh, &err);
    if (rc == 0)
        rc = solve_cost(&crn, 20000, -4, 4, &c->t_crn, NULL);
    if (rc == 0)
        rc = solve_cost(&neuron, 200000, -4, 4, &c->t_neuron, NULL);
    if (rc == 0)
        rc = solve_cost(&hh, 800, 0, 20, &c->t_hh, &c->cv_hh);
    dev_model_close(&crn);
    dev_model_close(&neuron);
    dev_model_close(&hh);
    return rc ? -1 : 0;
}

/* ---- serial per-row costs --------------------------------------------------------------- */

/* Per row: the Sobol' design and the daemon's store of n rows (u1, out, status). */
static int measure_rows(struct costs *c, const char *dir)
{
    enum { N = 1000000, CHUNK = 1024 };
    double lo = -4, hi = 4, *u = malloc(N * sizeof *u);
    float buf[CHUNK * 3];
    if (!u)
        return -1;
    double t0 = qd_now();
    int rc = design_generate(DESIGN_SOBOL, N, 1, &lo, &hi, 1, u);
    c->c_design = (qd_now() - t0) / N;
    char db[600], msg[256];
    snprintf(db, sizeof db, "%s/rows.db", dir);
    struct store *s = NULL;
    struct store_dswriter *w = NULL;
    const char *cols[] = {"u1", "out", "status"};
    if (rc == 0)
        rc = store_open(db, &s, msg, sizeof msg);
    t0 = qd_now();
    if (rc == 0)
        rc = store_dataset_begin(s, "rows", "sweep", 3, cols, 0, &w);
    for (size_t r0 = 0; rc == 0 && r0 < N; r0 += CHUNK) {
        for (size_t i = 0; i < CHUNK; i++)
            buf[3 * i] = (float)u[r0 + i], buf[3 * i + 1] = (float)(0.5 * u[r0 + i]),
                    buf[3 * i + 2] = 0;
        rc = store_dataset_append(w, buf, N - r0 < CHUNK ? N - r0 : CHUNK);
    }
    if (rc == 0)
        rc = store_dataset_finish(w, NULL);
    c->c_store = (qd_now() - t0) / N;
    store_close(s);
    free(u);
    return rc ? -1 : 0;
}

/* ---- MPI -------------------------------------------------------------------------------- */

/* Gathers `rows` rows per rank (a double and an int each, as a sweep does),
 * then allreduces 1 and NET_PARAMS floats; rank 0 prints seconds per call. */
static const char *const MPI_BENCH_C =
    "#include <mpi.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#define N 101770\n"
    "int main(int argc, char **argv) {\n"
    "    int rank, size, rows = 500000, reps = 200;\n"
    "    MPI_Init(&argc, &argv);\n"
    "    MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n"
    "    MPI_Comm_size(MPI_COMM_WORLD, &size);\n"
    "    double *out = calloc(rows, sizeof *out), *all = calloc((size_t)rows * size, sizeof "
    "*all);\n"
    "    int *st = calloc(rows, sizeof *st), *sta = calloc((size_t)rows * size, sizeof *sta);\n"
    "    int *cnt = calloc(size, sizeof *cnt), *dsp = calloc(size, sizeof *dsp);\n"
    "    float *g = calloc(N, sizeof *g), *r = calloc(N, sizeof *r), one = 1, sum;\n"
    "    for (int i = 0; i < size; i++) cnt[i] = rows, dsp[i] = i * rows;\n"
    "    for (int i = 0; i < N; i++) g[i] = (float)(i % 7) * 0.5f;\n"
    "    double best = 1e30;\n"
    "    for (int k = 0; k < 5; k++) {\n"
    "        MPI_Barrier(MPI_COMM_WORLD);\n"
    "        double t0 = MPI_Wtime();\n"
    "        MPI_Gatherv(out, rows, MPI_DOUBLE, all, cnt, dsp, MPI_DOUBLE, 0, MPI_COMM_WORLD);\n"
    "        MPI_Gatherv(st, rows, MPI_INT, sta, cnt, dsp, MPI_INT, 0, MPI_COMM_WORLD);\n"
    "        double t = MPI_Wtime() - t0;\n"
    "        best = t < best ? t : best;\n"
    "    }\n"
    "    double t1 = 1e30, tn = 1e30;\n"
    "    for (int k = 0; k < 5; k++) {\n"
    "        MPI_Barrier(MPI_COMM_WORLD);\n"
    "        double t0 = MPI_Wtime();\n"
    "        for (int i = 0; i < reps * 10; i++)\n"
    "            MPI_Allreduce(&one, &sum, 1, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);\n"
    "        double a = (MPI_Wtime() - t0) / (reps * 10);\n"
    "        MPI_Barrier(MPI_COMM_WORLD);\n"
    "        t0 = MPI_Wtime();\n"
    "        for (int i = 0; i < reps; i++)\n"
    "            MPI_Allreduce(g, r, N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);\n"
    "        double b = (MPI_Wtime() - t0) / reps;\n"
    "        t1 = a < t1 ? a : t1, tn = b < tn ? b : tn;\n"
    "    }\n"
    "    if (rank == 0)\n"
    "        printf(\"gather_row %.6e\\nallreduce_1 %.6e\\nallreduce_n %.6e\\n\",\n"
    "               best / ((double)rows * size), t1, tn);\n"
    "    MPI_Finalize();\n"
    "    return 0;\n"
    "}\n";

/* Reads "name value" from text into *v; 0 when found. */
static int read_value(const char *text, const char *name, double *v)
{
    const char *p = text ? strstr(text, name) : NULL;
    return p && sscanf(p + strlen(name), " %lf", v) == 1 ? 0 : -1;
}

static void measure_mpi(struct costs *c, const char *dir)
{
    if (access("/usr/bin/mpicc", X_OK) != 0 || access("/usr/bin/mpirun", X_OK) != 0) {
        printf("scale: MPI costs not measured: mpicc or mpirun missing (make deps)\n");
        return;
    }
    struct qt_run r;
    const char *cc[] = {"/usr/bin/mpicc", "-O2", "-o", "mpi_bench", "mpi_bench.c", NULL};
    const char *run[] = {"/usr/bin/mpirun",
                         "--allow-run-as-root",
                         "--oversubscribe",
                         "-n",
                         "2",
                         "./mpi_bench",
                         NULL};
    if (qt_write_file(dir, "mpi_bench.c", MPI_BENCH_C) || qt_run(dir, cc, NULL, &r)) {
        printf("scale: MPI costs not measured: cannot compile\n");
        return;
    }
    int ok = r.status == 0;
    qt_run_free(&r);
    if (!ok || qt_run(dir, run, NULL, &r)) {
        printf("scale: MPI costs not measured: mpicc or mpirun failed\n");
        return;
    }
    if (r.status != 0 || read_value(r.out, "gather_row", &c->c_gather) ||
        read_value(r.out, "allreduce_1", &c->ar_1) || read_value(r.out, "allreduce_n", &c->ar_n))
        printf("scale: MPI costs not measured: %s%s\n", r.out, r.err);
    qt_run_free(&r);
}

/* ---- training steps --------------------------------------------------------------------- */

/* Best time of forward + backward at batch b (one BLAS thread). */
static double step_time(struct net *n, const float *x, const float *dout, size_t b)
{
    double best = HUGE_VAL;
    int reps = b >= 128 ? 50 : 400;
    for (int k = 0; k < 3; k++) {
        double t0 = qd_now();
        for (int i = 0; i < reps; i++) {
            net_forward(n, x, b);
            net_backward(n, x, dout, b);
        }
        best = fmin(best, (qd_now() - t0) / reps);
    }
    return best;
}

static int measure_steps(struct costs *c)
{
    struct dev_model relu, ident;
    struct dev_error err;
    dev_model_init(&relu, DEV_NEURON);
    dev_model_init(&ident, DEV_NEURON);
    ident.activation = ACT_IDENTITY;
    struct net *n = NULL;
    struct optim o = {0};
    struct optim_config cfg;
    float *x = malloc(128 * 784 * sizeof *x), *dout = malloc(128 * 10 * sizeof *dout);
    int rc = !x || !dout || dev_model_prepare(&relu, &err) || dev_model_prepare(&ident, &err);
    struct net_layer_spec spec[2] = {{128, &relu, VIA_EXACT, NULL, 0, 0},
                                     {10, &ident, VIA_EXACT, NULL, 0, 0}};
    if (rc == 0)
        rc = net_create(&n, 784, spec, 2, 128, 1, 1, NULL);
    for (size_t i = 0; rc == 0 && i < 128 * 784; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    for (size_t i = 0; rc == 0 && i < 128 * 10; i++)
        dout[i] = (float)((int)(i % 5) - 2) * 0.01f;
    openblas_set_num_threads(1);
    const size_t batch[3] = {128, 16, 2};
    for (int k = 0; rc == 0 && k < 3; k++)
        c->step[k] = step_time(n, x, dout, batch[k]);
    optim_config_default(&cfg, OPTIM_ADAM);
    if (rc == 0)
        rc = optim_init(&o, &cfg, n->n_params);
    if (rc == 0) {
        double best = HUGE_VAL;
        for (int k = 0; k < 5; k++) {
            double t0 = qd_now();
            for (int i = 0; i < 100; i++)
                optim_step(&o, n->params, n->grads);
            best = fmin(best, (qd_now() - t0) / 100);
        }
        c->adam = best;
        optim_close(&o);
    }
    net_destroy(n);
    free(x);
    free(dout);
    dev_model_close(&relu);
    dev_model_close(&ident);
    return rc ? -1 : 0;
}

/* ---- qn run on ranks and on threads ------------------------------------------------------ */

/* Runs `qn run JOB --db DB ARG VALUE` in dir on a fresh database; its wall time. */
static int qn_timed(const char *dir, const char *job, const char *arg, const char *value,
                    double *secs)
{
    char db[600];
    snprintf(db, sizeof db, "%s/scale-%s.db", dir, arg + 2);
    const char *suffix[] = {"", "-wal", "-shm", ".lock"};
    for (size_t i = 0; i < 4; i++) {
        char p[640];
        snprintf(p, sizeof p, "%s%s", db, suffix[i]);
        unlink(p);
    }
    struct qt_run r;
    double t0 = qd_now();
    int rc = qt_qn(dir, NULL, &r, "run", job, "--db", db, arg, value, NULL);
    *secs = qd_now() - t0;
    if (rc == 0 && r.status != 0)
        fprintf(stderr, "bench_scale: qn run %s %s %s: %s\n", job, arg, value, r.err), rc = -1;
    if (rc == 0)
        qt_run_free(&r);
    return rc;
}

/* mpirun with the number after -n replaced by $QN_BENCH_NP: put first on
 * PATH, it makes `qn run --ranks 2` run on any number of ranks, 1 included
 * (--ranks 1 would run in qn's own process). */
static const char MPIRUN_WRAPPER[] =
    "#!/bin/sh\n"
    "np=\n"
    "for a do\n"
    "    shift\n"
    "    if [ -n \"$np\" ]; then set -- \"$@\" \"$QN_BENCH_NP\"; np=\n"
    "    elif [ \"$a\" = -n ]; then set -- \"$@\" -n; np=1\n"
    "    else set -- \"$@\" \"$a\"; fi\n"
    "done\n"
    "exec /usr/bin/mpirun \"$@\"\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The start of a run on 1, 2 and 4 ranks (the median of 5 runs of the tiny
 * sweep through the wrapper less that of the same in one process) and its
 * least-squares fit a + b log2 R. */
static int measure_start(struct costs *c, const char *dir)
{
    char bin[600], wrapper[640], path[8192];
    const char *old = getenv("PATH");
    snprintf(bin, sizeof bin, "%s/bin", dir);
    snprintf(wrapper, sizeof wrapper, "%s/mpirun", bin);
    snprintf(path, sizeof path, "%s:%s", bin, old ? old : "/usr/bin:/bin");
    char *saved = old ? strdup(old) : NULL;
    double one = 0;
    int rc = mkdir(bin, 0755) || qt_write_file(bin, "mpirun", MPIRUN_WRAPPER) ||
             chmod(wrapper, 0755) || (old && !saved) || setenv("PATH", path, 1);
    /* Rounds of the four runs in turn, so that the others' load moves them alike. */
    double t[4][5] = {{0}}; /* 1, 2, 4 ranks, one process; by round */
    for (int round = 0; rc == 0 && round < 5; round++)
        for (int k = 0; rc == 0 && k < 4; k++) {
            char np[8];
            snprintf(np, sizeof np, "%d", 1 << k);
            rc = k < 3 ? setenv("QN_BENCH_NP", np, 1) ||
                             qn_timed(dir, "tiny.json", "--ranks", "2", &t[k][round])
                       : qn_timed(dir, "tiny.json", "--workers", "2", &t[k][round]);
        }
    if (saved)
        setenv("PATH", saved, 1);
    free(saved);
    unsetenv("QN_BENCH_NP");
    if (rc) {
        printf("scale: qn run --ranks failed: the start of a run not measured\n");
        return -1;
    }
    for (int k = 0; k < 4; k++)
        qsort(t[k], 5, sizeof t[k][0], cmp_double);
    one = t[3][2];
    for (int k = 0; k < 3; k++)
        c->start[k] = fmax(0, t[k][2] - one);
    /* Least squares over x = log2 R = 0, 1, 2. */
    double mx = 1, my = (c->start[0] + c->start[1] + c->start[2]) / 3;
    c->start_b = ((0 - mx) * (c->start[0] - my) + (1 - mx) * (c->start[1] - my) +
                  (2 - mx) * (c->start[2] - my)) / 2;
    c->start_a = my - c->start_b * mx;
    printf("scale: a run's start (qn run --ranks less --workers 2, 16-point sweep, medians of 5; "
           "one process %.3f s): 1 rank %.3f s, 2 ranks %.3f s, 4 ranks %.3f s; fit a + b log2 R: "
           "a %.3f s, b %.3f s\n",
           one, c->start[0], c->start[1], c->start[2], c->start_a, c->start_b);
    return 0;
}

static void measure_ranks(struct costs *c, const char *dir)
{
    const char *e = getenv("QN_BENCH_SCALE_HH");
    long n = e ? strtol(e, NULL, 10) : HH_POINTS;
    char job[512];
    snprintf(job, sizeof job,
             "{\"type\": \"sweep\", \"name\": \"hh\", \"spec\": {\"device\": {\"kind\": "
             "\"hodgkin_huxley\"}, \"design\": \"sobol\", \"samples\": %ld, \"seed\": 1, "
             "\"ranges\": {\"u1\": [0, 20]}}}",
             n > 0 ? n : HH_POINTS);
    const char *tiny = "{\"type\": \"sweep\", \"name\": \"tiny\", \"spec\": {\"device\": "
                       "{\"kind\": \"crn_relu\"}, \"samples\": 16, \"ranges\": {\"u1\": [0, 1]}}}";
    if (qt_write_file(dir, "hh.json", job) || qt_write_file(dir, "tiny.json", tiny))
        return;
    if (measure_start(c, dir))
        return;
    double a = 0, b = 0;
    c->t_1x2 = c->t_2x1 = HUGE_VAL;
    for (int k = 0; k < 2; k++) {
        if (qn_timed(dir, "hh.json", "--workers", "2", &a) ||
            qn_timed(dir, "hh.json", "--ranks", "2", &b))
            return;
        c->t_1x2 = fmin(c->t_1x2, a), c->t_2x1 = fmin(c->t_2x1, b);
    }
    printf("scale: HH sweep of %ld points (spike_rate over 500 ms): 1 process x 2 threads "
           "%.2f s, 2 ranks x 1 thread %.2f s: ratio %.3f (goal >= 0.9)\n",
           n > 0 ? n : HH_POINTS, c->t_1x2, c->t_2x1, c->t_1x2 / c->t_2x1);
}

/* ---- the model --------------------------------------------------------------------------- */

/* Forward + backward at batch b, interpolated in log b between the measured batches. */
static double step_at(const struct costs *c, double b)
{
    const double x[3] = {log(128), log(16), log(2)};
    double lb = log(b);
    int k = lb >= x[1] ? 0 : 1; /* the segment [x[k+1], x[k]] */
    double f = (lb - x[k + 1]) / (x[k] - x[k + 1]);
    return exp(log(c->step[k + 1]) + f * (log(c->step[k]) - log(c->step[k + 1])));
}

/* Ring allreduce of NET_PARAMS floats on P ranks, from the 2-rank fit. */
static double allreduce_at(const struct costs *c, double P)
{
    double alpha = c->ar_1 / 2, nbeta = fmax(0, c->ar_n - c->ar_1);
    return 2 * (P - 1) * alpha + 2 * (P - 1) / P * nbeta;
}

/* The start of a run on P ranks, from the fit. */
static double start_at(const struct costs *c, double P)
{
    return c->start_a + c->start_b * log2(P);
}

static double sweep_eff(const struct costs *c, double P)
{
    double N = SWEEP_N, t1 = N * (c->t_hh + c->c_design + c->c_store);
    double imb = c->cv_hh * sqrt(2 * log(P)) / sqrt(N / P);
    double tp = N * c->t_hh / P * (1 + imb) + N * (c->c_design + c->c_gather + c->c_store) +
                start_at(c, P);
    return t1 / (P * tp);
}

/* Forward + backward of 784-128-10 with its hidden layer crn_relu via device
 * at batch b: the exact network's step and b * 128 device solves (a steady
 * state's gradient by the implicit function theorem costs about a solve). */
static double device_step_at(const struct costs *c, double b)
{
    return step_at(c, b) + b * 128 * c->t_crn;
}

/* Efficiency of a step of time `whole` on one process split over P ranks
 * whose share takes `part`, plus the allreduce and Adam on every rank. */
static double split_eff(const struct costs *c, double P, double whole, double part)
{
    return whole / (P * (part + allreduce_at(c, P) + c->adam));
}

static void print_model(const struct costs *c)
{
    printf("scale: model inputs: HH solve %.3f ms (cv %.2f), crn_relu %.2f us, neuron %.3f us; "
           "per row: design %.3f us, store %.3f us, gather %.4f us; allreduce at 2 ranks: "
           "1 float %.2f us, %d floats %.3f ms; 784-128-10 forward+backward %.3f / %.3f / %.3f ms "
           "at batch 128 / 16 / 2, Adam %.3f ms; start a %.3f s + b %.3f s log2 P\n",
           c->t_hh * 1e3, c->cv_hh, c->t_crn * 1e6, c->t_neuron * 1e6, c->c_design * 1e6,
           c->c_store * 1e6, c->c_gather * 1e6, c->ar_1 * 1e6, NET_PARAMS, c->ar_n * 1e3,
           c->step[0] * 1e3, c->step[1] * 1e3, c->step[2] * 1e3, c->adam * 1e3, c->start_a, c->start_b);
    printf("scale: efficiency at P ranks | HH sweep, 10^6 points | train 784-128-10 exact: "
           "batch 128 split, 128 a rank | crn_relu via device: batch 128 split, 128 a rank "
           "| allreduce | start\n");
    const double ranks[3] = {8, 64, 512};
    for (int k = 0; k < 3; k++) {
        double P = ranks[k], ar = allreduce_at(c, P), t = step_at(c, 128);
        double td = device_step_at(c, 128);
        char exact[32] = "-", device[32] = "-"; /* a rank with less than a row: not run */
        if (P <= 128) {
            snprintf(exact, sizeof exact, "%.1f%%", 100 * split_eff(c, P, t, step_at(c, 128 / P)));
            snprintf(device, sizeof device, "%.1f%%",
                     100 * split_eff(c, P, td, device_step_at(c, 128 / P)));
        }
        printf("scale: P = %-4.0f | %5.1f%% | %6s, %5.1f%% | %6s, %5.1f%% | %.2f ms | %.2f s\n", P,
               100 * sweep_eff(c, P), exact, 100 * (t + c->adam) / (t + ar + c->adam), device,
               100 * (td + c->adam) / (td + ar + c->adam), ar * 1e3, start_at(c, P));
    }
}

int main(void)
{
    struct costs c;
    char dir[512] = "", cpu[200];
    double load[3] = {0, 0, 0};
    memset(&c, 0, sizeof c);
    gsl_set_error_handler_off();
    qb_cpu_name(cpu, sizeof cpu);
    getloadavg(load, 3);
    printf("scale: %s; load average %.2f %.2f %.2f\n", cpu, load[0], load[1], load[2]);
    int rc = qt_tmpdir(dir, sizeof dir) ? -1 : 0;
    if (rc == 0)
        rc = measure_solves(&c);
    if (rc == 0)
        rc = measure_rows(&c, dir);
    if (rc == 0)
        rc = measure_steps(&c);
    if (rc == 0) {
        measure_mpi(&c, dir);
        measure_ranks(&c, dir);
        print_model(&c);
    }
    if (dir[0])
        qt_rmtree(dir);
    if (rc)
        fprintf(stderr, "bench_scale: a measurement failed\n");
    return rc ? 1 : 0;
}
