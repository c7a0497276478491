/*
 * bench_sweep_floor.c: a whole `qn run` of a crn_relu sweep against a bare
 * GSL rk8pd loop over the same rows, in the same run (issue 13, "Before
 * distributing, one rank must be near the floor").
 *
 * The workload: crn_relu (dy/dt = kappa + u1 y - y^2, kappa 0.01, y0 0) at
 * 400,000 Sobol' points u1 in [-4, 4] (seed 1), read out `final` at t_max
 * FLOOR_T_MAX with rk8pd at the default tolerances (rtol 1e-8, atol 1e-10,
 * h0 1e-3). `final` makes the two like for like: both integrate every row
 * from 0 to t_max with the same stepper, steps and tolerances, and read y
 * there (steady_state would not be: its Newton polish stops our solves
 * earlier than any bare loop that must reach |f| < tol, see bench_sweep).
 *
 * The reference is the bare loop on one thread in this process: one GSL
 * driver, a hand-written right-hand side, gsl_odeiv2_evolve_apply to t_max
 * for each row. The measured program is the build's `qn run JOB.json --db
 * DB --workers W` as a child process (fork to exit, with a fresh database
 * each time): process start, spec parsing, design generation, the solves,
 * and the dataset written to SQLite. Timings are interleaved (bare, qn 1
 * worker, qn 2 workers), best of FLOOR_REPS. Printed: solves/s, the wall
 * time ratios qn(1)/bare (target >= 0.95) and qn(2)/bare (target >= 1.85),
 * the CPU and the load average (other processes on the machine make the
 * ratios low, never high); the CPU seconds of each (what the load of others
 * barely moves, so the per-solve overhead shows even on a busy machine); and
 * a check that the stored dataset is the bare loop's values as float32
 * (rows that differ, largest difference).
 *
 * QN_BENCH_FLOOR_POINTS overrides the number of points. A missed target is
 * reported, not fatal; the program fails when a run fails.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>

#include "design.h"
#include "qn_err.h"
#include "qn_test.h"
#include "qt_bench.h"
#include "qt_daemon.h"
#include "store.h"

#define FLOOR_POINTS 400000
#define FLOOR_REPS 3
#define FLOOR_T_MAX 50.0
#define FLOOR_KAPPA 0.01
#define FLOOR_LO -4.0
#define FLOOR_HI 4.0

static double clock_secs(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One timing: wall and CPU (user + system) seconds. */
struct span {
    double wall, cpu;
};

/* ---- the bare loop ------------------------------------------------------------------------- */

static int crn_rhs(double t, const double y[], double f[], void *params)
{
    (void)t;
    const double *p = params; /* kappa, u */
    f[0] = p[0] + p[1] * y[0] - y[0] * y[0];
    return GSL_SUCCESS;
}

/* Integrates each row from y = 0 to t_max; out[i] = y(t_max), NaN when a step fails. */
static int bare_loop(const double *u, size_t n, double *out)
{
    double p[2] = {FLOOR_KAPPA, 0.0};
    gsl_odeiv2_system sys = {crn_rhs, NULL, 1, p};
    gsl_odeiv2_driver *drv =
        gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-3, 1e-10, 1e-8);
    if (!drv)
        return QN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        p[1] = u[i];
        gsl_odeiv2_driver_reset(drv);
        double t = 0, h = 1e-3, y = 0;
        int s = GSL_SUCCESS;
        while (t < FLOOR_T_MAX && s == GSL_SUCCESS)
            s = gsl_odeiv2_evolve_apply(drv->e, drv->c, drv->s, &sys, &t, FLOOR_T_MAX, &h, &y);
        out[i] = s == GSL_SUCCESS ? y : NAN;
    }
    gsl_odeiv2_driver_free(drv);
    return 0;
}

/* ---- qn run as a child ------------------------------------------------------------------- */

/* Writes the sweep job of n points to dir/job.json; 0 or -1. */
static int write_job(const char *dir, size_t n)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\": \"sweep\", \"name\": \"floor\", \"spec\": {"
             "\"device\": {\"kind\": \"crn_relu\", \"params\": {\"kappa\": %.17g},"
             " \"readout\": {\"kind\": \"final\", \"t_max\": %.17g},"
             " \"solver\": {\"method\": \"rk8pd\", \"rtol\": 1e-8, \"atol\": 1e-10, \"h0\": 1e-3}},"
             " \"design\": \"sobol\", \"samples\": %zu, \"seed\": 1,"
             " \"ranges\": {\"u1\": [%.17g, %.17g]}}}",
             FLOOR_KAPPA, FLOOR_T_MAX, n, FLOOR_LO, FLOOR_HI);
    return qt_write_file(dir, "job.json", text);
}

/* Runs `qn run job.json --db floor.db --workers w` in dir on a fresh database,
 * its output to /dev/null; the wall time from fork to exit and the child's
 * CPU time into *sp. 0, or -1 when it could not run or did not exit 0. */
static int qn_run(const char *dir, size_t w, struct span *sp)
{
    char db[600], workers[24];
    snprintf(db, sizeof db, "%s/floor.db", dir);
    snprintf(workers, sizeof workers, "%zu", w);
    const char *suffix[] = {"", "-wal", "-shm", "-journal", ".lock"};
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        char path[640];
        snprintf(path, sizeof path, "%s%s", db, suffix[i]);
        unlink(path);
    }
    double t0 = qd_now();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || chdir(dir) != 0)
            _exit(127);
        dup2(null, STDOUT_FILENO);
        execl(QN_BIN, QN_BIN, "run", "job.json", "--db", db, "--workers", workers, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid)
        return -1;
    sp->wall = qd_now() - t0;
    sp->cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
              (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Compares the out column of the stored dataset (the only one in dir/floor.db)
 * with the bare loop's values as float32: rows that differ into *bad, the
 * largest absolute difference into *worst. 0 or a qn_err code. */
static int check_dataset(const char *dir, const double *bare, size_t n, size_t *bad, double *worst)
{
    char db[600], msg[256];
    snprintf(db, sizeof db, "%s/floor.db", dir);
    struct store *s = NULL;
    int rc = store_open(db, &s, msg, sizeof msg);
    float *rows = rc ? NULL : malloc(n * 3 * sizeof *rows);
    if (!rc && !rows)
        rc = QN_ENOMEM;
    if (!rc)
        rc = store_dataset_read(s, 1, 0, n, rows);
    *bad = 0;
    *worst = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        float want = (float)bare[i];
        if (memcmp(&rows[i * 3 + 1], &want, sizeof want) != 0)
            (*bad)++;
        *worst = fmax(*worst, fabs((double)rows[i * 3 + 1] - bare[i]));
    }
    free(rows);
    store_close(s);
    return rc;
}

/* ---- main ---------------------------------------------------------------------------------- */

/* The number of points: QN_BENCH_FLOOR_POINTS, else FLOOR_POINTS. */
static size_t floor_points(void)
{
    const char *e = getenv("QN_BENCH_FLOOR_POINTS");
    long v = e ? strtol(e, NULL, 10) : 0;
    return v > 0 ? (size_t)v : FLOOR_POINTS;
}

/* Keeps the smaller wall and CPU times of *best and sp in *best. */
static void span_min(struct span *best, struct span sp)
{
    best->wall = fmin(best->wall, sp.wall);
    best->cpu = fmin(best->cpu, sp.cpu);
}

/* The best of FLOOR_REPS interleaved timings: best[0] bare, best[w] qn with w workers. */
static int measure(const char *dir, const double *u, size_t n, double *bare, struct span best[3])
{
    for (int k = 0; k < 3; k++)
        best[k] = (struct span){HUGE_VAL, HUGE_VAL};
    for (int r = 0; r < FLOOR_REPS; r++) {
        double t0 = qd_now(), c0 = clock_secs(CLOCK_PROCESS_CPUTIME_ID);
        if (bare_loop(u, n, bare))
            return -1;
        span_min(&best[0], (struct span){qd_now() - t0, clock_secs(CLOCK_PROCESS_CPUTIME_ID) - c0});
        for (size_t w = 1; w <= 2; w++) {
            struct span sp;
            if (qn_run(dir, w, &sp)) {
                fprintf(stderr, "bench_sweep_floor: %s run failed (%zu workers)\n", QN_BIN, w);
                return -1;
            }
            span_min(&best[w], sp);
        }
    }
    return 0;
}

static void report(size_t n, const struct span best[3], size_t bad, double worst)
{
    char cpu[200];
    double load[3] = {0, 0, 0};
    qb_cpu_name(cpu, sizeof cpu);
    getloadavg(load, 3);
    printf("sweep floor: crn_relu final at t_max %g, %zu Sobol' points, rk8pd; %s; "
           "load average %.2f %.2f %.2f\n",
           FLOOR_T_MAX, n, cpu, load[0], load[1], load[2]);
    printf("sweep floor: bare GSL loop (1 thread) %.3f s, %.0f solves/s | qn run 1 worker "
           "%.3f s | 2 workers %.3f s (wall, best of %d)\n",
           best[0].wall, (double)n / best[0].wall, best[1].wall, best[2].wall, FLOOR_REPS);
    printf("sweep floor: ratios qn(1)/bare %.3f (target >= 0.95), qn(2)/bare %.3f "
           "(target >= 1.85)\n",
           best[0].wall / best[1].wall, best[0].wall / best[2].wall);
    printf("sweep floor: CPU seconds (user + system; the load of other processes barely "
           "moves them): bare %.3f, qn 1 worker %.3f (ratio %.3f), 2 workers %.3f\n",
           best[0].cpu, best[1].cpu, best[0].cpu / best[1].cpu, best[2].cpu);
    printf("sweep floor: check: stored out differs from the bare loop's float32 in %zu of %zu "
           "rows (largest difference %.3g)\n",
           bad, n, worst);
}

int main(void)
{
    size_t n = floor_points(), bad = 0;
    double lo = FLOOR_LO, hi = FLOOR_HI, worst = 0;
    struct span best[3];
    char dir[512] = "";
    gsl_set_error_handler_off();
    double *u = malloc(n * sizeof *u), *bare = malloc(n * sizeof *bare);
    int rc = !u || !bare || qt_tmpdir(dir, sizeof dir) ? -1 : 0;
    if (rc == 0)
        rc = design_generate(DESIGN_SOBOL, n, 1, &lo, &hi, 1, u) || write_job(dir, n) ? -1 : 0;
    if (rc == 0)
        rc = measure(dir, u, n, bare, best);
    if (rc == 0)
        rc = check_dataset(dir, bare, n, &bad, &worst) ? -1 : 0;
    if (rc == 0)
        report(n, best, bad, worst);
    if (dir[0])
        qt_rmtree(dir);
    free(u);
    free(bare);
    return rc ? 1 : 0;
}
