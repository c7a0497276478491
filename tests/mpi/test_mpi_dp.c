/*
 * test_mpi_dp.c: train and fit on two ranks of qn-mpi through the real
 * `qn run` and mpirun (the default launcher), against the same jobs in one
 * process, all in one database. For a fit, a train through a surrogate and
 * a train with a crn_relu layer via device (the ODE solves spread over the
 * ranks), and a fit conditioned on a swept parameter (its name travels with
 * it): every step_loss the one-process run recorded is there on two
 * ranks within 1e-5 relative, and so are the final parameters (surrogate
 * weights, model parameters) relative to their largest; two runs on two
 * ranks give the same bits (step losses, blob, parameters); a 2-rank train
 * stores a checkpoint every epoch, as in one process, the last one holding
 * the model's parameters. A 2-rank train stopped (SIGINT to qn run) once it
 * has stored a checkpoint, then resumed in one process (`qn resume`), ends
 * with the uninterrupted run's step losses and model. Through `qn serve`, a
 * 2-rank train's metrics and checkpoints are stored and served. adapt and
 * es asked on two ranks are refused at submission, naming the field.
 * Without mpirun (or qn-mpi) the tests skip, saying which is missing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_daemon.h"

#define REL_TOL 1e-5
#define MAX_ROWS 256

/* Skips the test when this machine cannot run jobs on ranks. */
static void need_mpi(const char *test)
{
    struct qt_run r;
    const char *const argv[] = {"/bin/sh", "-c", "command -v mpirun", NULL};
    if (qt_run(NULL, argv, NULL, &r) != 0 || r.status != 0)
        qt_skip_test(test, "mpirun is not on PATH (Debian: openmpi-bin)");
    qt_run_free(&r);
    if (access(QN_MPI_BIN, X_OK) != 0)
        qt_skip_test(test, "build/qn-mpi is not built (make builds it with mpicc)");
}

/* Runs one job (text) and returns its id; the run must succeed. */
static long long run(const struct qt_dir *f, const char *job)
{
    json_t *rec = qt_run_job(f, "q.db", job, "2", 0);
    json_t *state = json_object_get(rec, "state");
    if (!json_is_string(state) || strcmp(json_string_value(state), "succeeded") != 0)
        fail_msg("job did not succeed: %s", job);
    long long id = (long long)json_integer_value(json_object_get(rec, "id"));
    json_decref(rec);
    return id;
}

/* A job's step_loss values in step order into v (at most MAX_ROWS); their count. */
static size_t step_losses(const struct qt_dir *f, long long job, double *v)
{
    char path[600];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/q.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT value FROM metrics WHERE job_id = ?1 AND "
                                        "name = 'step_loss' ORDER BY step",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, job);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < MAX_ROWS)
        v[n++] = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The last `last` floats (0: all) of the blob column `col` of the newest row
 * of `table` that job made, into a new buffer *out; their count. */
static size_t job_floats(const struct qt_dir *f, const char *table, const char *col, long long job,
                         size_t last, float **out)
{
    char path[600], sql[160];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/q.db", f->dir);
    snprintf(sql, sizeof sql, "SELECT %s FROM %s WHERE job_id = ?1 ORDER BY rowid DESC", col,
             table);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, job);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    size_t len = (size_t)sqlite3_column_bytes(st, 0), n = len / sizeof(float);
    assert_true(n >= last);
    size_t skip = last ? len - last * sizeof(float) : 0;
    n = last ? last : n;
    *out = malloc(n * sizeof **out);
    assert_non_null(*out);
    memcpy(*out, (const char *)sqlite3_column_blob(st, 0) + skip, n * sizeof **out);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Rows of `table` for job (checkpoints: how many the run stored). */
static long long count_rows(const struct qt_dir *f, const char *table, long long job)
{
    char path[600], sql[160];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/q.db", f->dir);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE job_id = ?1", table);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, job);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* One process (job one) against two ranks (jobs two, again): step losses and
 * the stored floats (the last `last` of table.col; 0: all). */
static void compare(const struct qt_dir *f, long long one, long long two, long long again,
                    const char *table, const char *col, size_t last)
{
    double a[MAX_ROWS], b[MAX_ROWS], c[MAX_ROWS];
    size_t na = step_losses(f, one, a), nb = step_losses(f, two, b), nc = step_losses(f, again, c);
    assert_true(na >= 3);
    assert_int_equal(nb, na);
    assert_int_equal(nc, na);
    double worst = 0;
    for (size_t i = 0; i < na; i++) {
        double rel = fabs(a[i] - b[i]) / fabs(a[i]);
        worst = fmax(worst, rel);
        if (!(rel <= REL_TOL))
            fail_msg("step_loss #%zu: one process %.17g, two ranks %.17g", i + 1, a[i], b[i]);
    }
    assert_memory_equal(b, c, nb * sizeof *b);
    float *pa, *pb, *pc;
    size_t n = job_floats(f, table, col, one, last, &pa);
    assert_int_equal(job_floats(f, table, col, two, last, &pb), n);
    assert_int_equal(job_floats(f, table, col, again, last, &pc), n);
    double big = 0, diff = 0;
    for (size_t k = 0; k < n; k++) {
        big = fmax(big, fabs(pa[k]));
        diff = fmax(diff, fabs((double)pa[k] - (double)pb[k]));
    }
    if (!(diff <= REL_TOL * big))
        fail_msg("%s.%s: largest difference %.3g of largest value %.3g", table, col, diff, big);
    assert_memory_equal(pb, pc, n * sizeof *pb);
    print_message("%s on 2 ranks: %zu step losses within %.2g relative, %zu parameters within "
                  "%.2g of the largest\n",
                  table, na, worst, n, diff / big);
    free(pa), free(pb), free(pc);
}

#define SWEEP                                                                                      \
    "{\"type\": \"sweep\", \"spec\": {\"device\": {\"kind\": \"crn_relu\", \"drive\": \"dot\", "   \
    "\"params\": {\"kappa\": 0.01}}, \"samples\": 700, \"ranges\": {\"u1\": [-4, 4]}}}"
#define FIT(res)                                                                                   \
    "{\"type\": \"fit\", " res "\"spec\": {\"dataset\": {\"job\": 1}, \"hidden\": [16], "          \
    "\"epochs\": 8, \"batch\": 32, \"seed\": 2}}"
#define RANKS2 "\"resources\": {\"ranks\": 2}, "

/* A fit: job 2 in one process, jobs 3 and 4 on two ranks. */
static void test_fit(void **state)
{
    const struct qt_dir *f = *state;
    need_mpi(__func__);
    run(f, SWEEP);
    long long one = run(f, FIT("")), two = run(f, FIT(RANKS2)), again = run(f, FIT(RANKS2));
    /* The surrogate blob ends with its 49 weights (1-16-1) and its domain (2 floats). */
    compare(f, one, two, again, "surrogates", "blob", 49 + 2);
}

#define PSWEEP                                                                                     \
    "{\"type\": \"sweep\", \"spec\": {\"device\": {\"kind\": \"crn_relu\", \"drive\": \"dot\", "   \
    "\"params\": {\"kappa\": 0.01}}, \"samples\": 600, \"ranges\": {\"u1\": [-4, 4], "             \
    "\"kappa\": [0.002, 0.05]}}}"

/* A fit conditioned on kappa (a parameter sweep): the surrogate of 2 ranks names
 * its parameter and matches one process's. */
static void test_fit_conditioned(void **state)
{
    const struct qt_dir *f = *state;
    need_mpi(__func__);
    run(f, PSWEEP);
    long long one = run(f, FIT("")), two = run(f, FIT(RANKS2)), again = run(f, FIT(RANKS2));
    /* 2-16-1: 65 weights, then the domain of 2 inputs (4 floats). */
    compare(f, one, two, again, "surrogates", "blob", 65 + 4);
    json_t *rec = qt_run_job(f, "q.db", FIT(RANKS2), "2", 0);
    json_t *cond = json_object_get(json_object_get(rec, "result"), "conditioned_on");
    assert_int_equal(json_array_size(cond), 1);
    assert_string_equal(json_string_value(json_array_get(cond, 0)), "kappa");
    json_decref(rec);
}

#define TRAIN(res, layer0, data, epochs)                                                           \
    "{\"type\": \"train\", " res "\"spec\": {\"dataset\": " data ", \"network\": [" layer0         \
    ", {\"devices\": 2, \"device\": {\"kind\": \"neuron\", \"params\": {\"activation\": "          \
    "\"identity\"}}}], \"optimizer\": {\"name\": \"adam\", \"lr\": 0.01}, \"epochs\": " epochs     \
    ", \"batch\": 16, \"seed\": 1}}"
#define SUR_LAYER                                                                                  \
    "{\"devices\": 8, \"device\": {\"kind\": \"crn_relu\", \"drive\": \"dot\", \"params\": "       \
    "{\"kappa\": 0.01}}, \"via\": \"surrogate\", \"surrogate\": {\"job\": 2}}"
#define DEV_LAYER                                                                                  \
    "{\"devices\": 3, \"device\": {\"kind\": \"crn_relu\", \"drive\": \"dot\", \"params\": "       \
    "{\"kappa\": 0.01}}, \"via\": \"device\"}"
#define SPIRALS "\"spirals\""
#define SPIRALS_SMALL "{\"name\": \"spirals\", \"samples\": 400}"

/* A train through the fit's surrogate: job 3 in one process, 4 and 5 on two ranks. */
static void test_train_surrogate(void **state)
{
    const struct qt_dir *f = *state;
    need_mpi(__func__);
    run(f, SWEEP);
    run(f, FIT(""));
    long long one = run(f, TRAIN("", SUR_LAYER, SPIRALS, "3"));
    long long two = run(f, TRAIN(RANKS2, SUR_LAYER, SPIRALS, "3"));
    long long again = run(f, TRAIN(RANKS2, SUR_LAYER, SPIRALS, "3"));
    compare(f, one, two, again, "models", "params", 0);
    assert_int_equal(count_rows(f, "checkpoints", one), 3);
    assert_int_equal(count_rows(f, "checkpoints", two), 3);
    float *model, *last;
    size_t n = job_floats(f, "models", "params", two, 0, &model);
    assert_int_equal(job_floats(f, "checkpoints", "params", two, 0, &last), n);
    assert_memory_equal(last, model, n * sizeof *model); /* epoch 3's: the model */
    free(model), free(last);
}

/* The real ODE in the loop: each rank solves its rows' devices. */
static void test_train_device(void **state)
{
    const struct qt_dir *f = *state;
    need_mpi(__func__);
    long long one = run(f, TRAIN("", DEV_LAYER, SPIRALS_SMALL, "3"));
    long long two = run(f, TRAIN(RANKS2, DEV_LAYER, SPIRALS_SMALL, "3"));
    long long again = run(f, TRAIN(RANKS2, DEV_LAYER, SPIRALS_SMALL, "3"));
    compare(f, one, two, again, "models", "params", 0);
}

/* A job's state from the jobs table into buf (cap bytes). */
static void job_state(const struct qt_dir *f, long long job, char *buf, size_t cap)
{
    char path[600];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/q.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT state FROM jobs WHERE id = ?1", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, job);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* `qn run FILE --db q.db` in f->dir, started in the background; its pid. */
static pid_t start_qn(const struct qt_dir *f, const char *file)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(f->dir) != 0 || !freopen("/dev/null", "w", stdout) ||
            !freopen("/dev/null", "w", stderr))
            _exit(127);
        execl(QN_BIN, "qn", "run", file, "--db", "q.db", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A 2-rank train (job 2) stopped by SIGINT once it has stored a checkpoint, then
 * resumed in one process: the one-process run's (job 1) model and step losses. */
static void test_resume(void **state)
{
    const struct qt_dir *f = *state;
    need_mpi(__func__);
    long long one = run(f, TRAIN("", DEV_LAYER, SPIRALS_SMALL, "30"));
    assert_int_equal(
        qt_write_file(f->dir, "two.json", TRAIN(RANKS2, DEV_LAYER, SPIRALS_SMALL, "30")), 0);
    pid_t pid = start_qn(f, "two.json");
    long long seen = 0;
    for (int i = 0; i < 6000 && seen == 0; i++) { /* the job row and a checkpoint appear */
        usleep(10000);
        seen = count_rows(f, "checkpoints", 2);
    }
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    char st[32];
    job_state(f, 2, st, sizeof st);
    if (!seen || strcmp(st, "canceled") != 0)
        fail_msg("the 2-rank run was not stopped after a checkpoint (state %s, checkpoints %lld)",
                 st, count_rows(f, "checkpoints", 2));
    long long stored = count_rows(f, "checkpoints", 2);
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "resume", "2", "--db", "q.db", NULL), 0);
    qt_expect_status(&r, 0);
    qt_run_free(&r);
    double a[MAX_ROWS], b[MAX_ROWS];
    size_t na = step_losses(f, one, a);
    assert_int_equal(step_losses(f, 2, b), na);
    for (size_t i = 0; i < na; i++)
        if (!(fabs(a[i] - b[i]) <= REL_TOL * fabs(a[i])))
            fail_msg("step_loss #%zu: %.17g uninterrupted, %.17g resumed", i + 1, a[i], b[i]);
    float *pa, *pb;
    size_t n = job_floats(f, "models", "params", one, 0, &pa);
    assert_int_equal(job_floats(f, "models", "params", 2, 0, &pb), n);
    double big = 0, diff = 0;
    for (size_t k = 0; k < n; k++)
        big = fmax(big, fabs(pa[k])), diff = fmax(diff, fabs((double)pa[k] - pb[k]));
    if (!(diff <= REL_TOL * big))
        fail_msg("resumed model: largest difference %.3g of largest value %.3g", diff, big);
    print_message("stopped after %lld of 30 checkpoints on 2 ranks, resumed in one process: "
                  "%zu step losses and the model within %.2g\n",
                  stored, na, diff / big);
    free(pa), free(pb);
}

/* Through `qn serve`: a 2-rank train succeeds, its metrics (from rank 0's
 * lines) are served with the job, and its checkpoints are stored. */
static void test_train_daemon(void **state)
{
    struct qd *d = *state;
    need_mpi(__func__);
    qd_start(d);
    int64_t id = qd_submit(d, NULL, TRAIN(RANKS2, DEV_LAYER, SPIRALS_SMALL, "2"));
    json_t *rec = qd_wait_final(d, NULL, id, 120);
    const char *st = json_string_value(json_object_get(rec, "state"));
    if (!st || strcmp(st, "succeeded") != 0)
        fail_msg("the 2-rank train ended %s: %s", st ? st : "?",
                 json_string_value(json_object_get(rec, "error")));
    assert_true(json_integer_value(json_object_get(json_object_get(rec, "result"), "model")) > 0);
    json_decref(rec);
    char path[64];
    json_t *m = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%lld/metrics", (long long)id);
    assert_int_equal(qd_http(d, "GET", path, NULL, NULL, &m), 200);
    size_t steps = 0, tests = 0;
    json_t *row;
    size_t i;
    json_array_foreach(json_object_get(m, "metrics"), i, row)
    {
        const char *name = json_string_value(json_object_get(row, "name"));
        steps += name && strcmp(name, "step_loss") == 0;
        tests += name && strcmp(name, "test_loss") == 0;
    }
    json_decref(m);
    assert_int_equal(steps, 2); /* 20 steps an epoch, one step_loss every 20 */
    assert_int_equal(tests, 2);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM checkpoints WHERE job_id = %lld",
             (long long)id);
    assert_int_equal(qd_db_file_int(d->dir, "qn.db", SQLITE_OPEN_READONLY, 1, sql), 2);
}

/* What the ranks cannot share is refused at submission, at its field. */
static void test_refused(void **state)
{
    const struct qt_dir *f = *state;
    need_mpi(__func__);
    static const struct {
        const char *extra, *path;
    } cases[] = {
        {"\"adapt\": {}", "/spec/adapt"},
        {"\"optimizer\": {\"name\": \"es\"}", "/spec/optimizer/name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char job[1024];
        snprintf(job, sizeof job,
                 "{\"type\": \"train\", " RANKS2 "\"spec\": {\"dataset\": \"xor\", \"network\": "
                 "[{\"devices\": 4, \"device\": {\"kind\": \"neuron\", \"params\": "
                 "{\"activation\": \"tanh\"}}}, {\"devices\": 2, \"device\": {\"kind\": "
                 "\"neuron\"}}], %s}}",
                 cases[i].extra);
        struct qt_run r;
        assert_int_equal(qt_qn(f->dir, job, &r, "run", "-", "--db", "q.db", NULL), 0);
        qt_expect_status(&r, 2);
        if (!strstr(r.err, cases[i].path))
            fail_msg("want %s in: %s", cases[i].path, r.err);
        qt_run_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fit, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_fit_conditioned, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_train_surrogate, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_train_device, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_resume, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_train_daemon, qd_fixture_setup, qd_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_refused, qt_dir_setup, qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
