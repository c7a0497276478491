/*
 * test_qn_mpi.c: qn-mpi (QN_MPI_BIN) on two ranks of a real mpirun, started
 * by the real `qn run --ranks 2` (QN_BIN) and by hand.
 *
 * Covers: a sweep on 2 ranks (of 1 or 2 threads each) stores the same
 * dataset bytes (the blocks in SQLite and the CSV export) as the same sweep
 * in one process, and leaves
 * no spool directory behind; an evaluation via device of a model of
 * crn_relu devices with variability and noise gives on 2 ranks exactly the
 * result of one process (accuracy, loss, solves), nominal (its 700 rows are
 * 3 batches, split 1 + 2), on one chip with noise (a rank's noise counted
 * from its first batch) and over 3 chips (split 1 + 2), and stores the same
 * metric rows; so does an evaluation via surrogate and via physics_aware of
 * a model trained on a fitted surrogate (its blob staged, its out-of-domain
 * fractions summed over the ranks); qn-mpi given a spool directory without a job
 * file fails on every rank with the reason in error.txt; `qn run --ranks 0`
 * is a usage error.
 *
 * mpirun missing (Debian's openmpi-bin not installed) skips, saying so.
 * Open MPI refuses to run as root without --allow-run-as-root, which the
 * default launcher adds when qn runs as root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_test.h"

/* A crn_relu sweep of n sobol points over u1 in [-3, 3]: about a second. */
#define CRN_JOB(n)                                                                                 \
    "{\"type\":\"sweep\",\"name\":\"crn\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"           \
    "\"design\":\"sobol\",\"samples\":" #n ",\"seed\":3,\"ranges\":{\"u1\":[-3,3]}}}"

/* mpirun's path (found on PATH) into mpirun_path; skips the test when there is none. */
static char mpirun_path[1024];
static void need_mpirun(const char *test)
{
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(mpirun_path, sizeof mpirun_path, "%.*s/mpirun", (int)n, p);
        if (access(mpirun_path, X_OK) == 0)
            return;
        p += n + (p[n] == ':');
    }
    qt_skip_test(test, "mpirun is not on PATH (Debian's openmpi-bin): qn-mpi cannot be launched");
}

/* The bytes of every block of dataset 1 of dir/db, in block order (free it). */
static char *blocks(const char *dir, const char *db, size_t *len)
{
    char path[1200];
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, db);
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT data FROM dataset_blocks WHERE dataset_id = 1 "
                                           "ORDER BY block", -1, &st, NULL),
                     SQLITE_OK);
    char *all = NULL;
    *len = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 0);
        all = realloc(all, *len + n + 1);
        assert_non_null(all);
        memcpy(all + *len, sqlite3_column_blob(st, 0), n);
        *len += n;
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    assert_true(*len > 0);
    return all;
}

/* `qn dataset export 1` of db (free it). */
static char *export(const struct qt_dir *f, const char *db)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "export", "1", "--db", db, NULL), 0);
    qt_expect_status(&r, 0);
    char *csv = r.out;
    r.out = NULL;
    qt_run_free(&r);
    return csv;
}

/* The same sweep asking 2 threads on each of its ranks. */
#define CRN_JOB_THREADS(n)                                                                         \
    "{\"type\":\"sweep\",\"name\":\"crn\",\"resources\":{\"threads\":2},\"spec\":{\"device\":"     \
    "{\"kind\":\"crn_relu\"},\"design\":\"sobol\",\"samples\":" #n ",\"seed\":3,"                  \
    "\"ranges\":{\"u1\":[-3,3]}}}"

/* Runs job (a sweep of 2000 rows) with `qn run --ranks ranks`; checks it succeeded. */
static void run_sweep(const struct qt_dir *f, const char *db, const char *job, const char *ranks)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, job, &r, "run", "-", "--db", db, "--workers", "1",
                           "--ranks", ranks, NULL),
                     0);
    qt_expect_status(&r, 0);
    json_t *rec = qt_one_record(&r);
    qt_run_free(&r);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    json_t *res = json_object_get(rec, "result");
    assert_int_equal(json_integer_value(json_object_get(res, "rows")), 2000);
    json_decref(rec);
}

/* Spirals of 700 rows (3 batches of the evaluation's 256) and a model of 6
 * crn_relu devices with a spread kappa and output noise, trained via device. */
#define SPIRALS "{\"name\":\"spirals\",\"samples\":700}"
#define TRAIN_JOB                                                                                  \
    "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":[{\"devices\":6,"           \
    "\"device\":{\"kind\":\"crn_relu\",\"params\":{\"kappa\":0.01},\"variability\":{\"kappa\":"    \
    "{\"dist\":\"lognormal\",\"cv\":0.3}},\"noise\":{\"output\":{\"sd\":0.05}}},"                  \
    "\"via\":\"device\"},"                                                                         \
    "{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":\"identity\"}}}],"  \
    "\"epochs\":1,\"batch\":64,\"seed\":1,\"checkpoint_every\":0}}"

static char *metric_rows(const struct qt_dir *f, long long id);

/* Runs an evaluation of the model of job `model` with extra spec fields on `ranks`; the record. */
static json_t *evaluate_model(const struct qt_dir *f, int model, const char *extra,
                              const char *ranks)
{
    char job[512];
    struct qt_run r;
    snprintf(job, sizeof job,
             "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":%d},\"dataset\":" SPIRALS
             ",\"split\":\"all\",%s}}",
             model, extra);
    assert_int_equal(qt_qn(f->dir, job, &r, "run", "-", "--db", "q.db", "--workers", "1",
                           "--ranks", ranks, NULL),
                     0);
    qt_expect_status(&r, 0);
    json_t *rec = qt_one_record(&r);
    qt_run_free(&r);
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") != 0)
        fail_msg("%s on %s rank(s): %s", extra, ranks, json_dumps(rec, 0));
    return rec;
}

/* Evaluates model `model` with `extra` on 1 process and on 2 ranks: the
 * same result and the same metric rows. */
static void evaluate_equal(const struct qt_dir *f, int model, const char *extra)
{
    json_t *one = evaluate_model(f, model, extra, "1"), *two = evaluate_model(f, model, extra, "2");
    json_t *r1 = json_object_get(one, "result"), *r2 = json_object_get(two, "result");
    if (!json_equal(r1, r2))
        fail_msg("%s:\n  1 process: %s\n  2 ranks:   %s", extra, json_dumps(r1, 0),
                 json_dumps(r2, 0));
    assert_true(json_integer_value(json_object_get(r1, "rows")) == 700);
    char *m1 = metric_rows(f, json_integer_value(json_object_get(one, "id")));
    char *m2 = metric_rows(f, json_integer_value(json_object_get(two, "id")));
    assert_string_equal(m1, m2);
    assert_non_null(strstr(m1, "accuracy="));
    free(m1), free(m2);
    json_decref(one), json_decref(two);
}

/* The metric rows (name, value) of job id as one text, ordered by name. */
static char *metric_rows(const struct qt_dir *f, long long id)
{
    char path[1200], sql[200];
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof path, "%s/q.db", f->dir);
    snprintf(sql, sizeof sql, "SELECT group_concat(name || '=' || quote(value), ';') FROM "
                              "(SELECT name, value FROM metrics WHERE job_id = %lld ORDER BY name)",
             id);
    assert_int_equal(sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char *text = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return text;
}

static void test_evaluate_equal(void **state)
{
    struct qt_dir *f = *state;
    need_mpirun(__func__);
    json_decref(qt_run_job(f, "q.db", TRAIN_JOB, "1", 0));
    evaluate_equal(f, 1, "\"via\":{\"0\":\"device\"},\"noise\":false");
    evaluate_equal(f, 1, "\"via\":{\"0\":\"device\"},\"chip\":4");
    evaluate_equal(f, 1, "\"via\":{\"0\":\"device\"},\"chips\":{\"count\":3,\"seed\":5}");
}

/* A crn sweep over [-0.5, 0.5] only, a small surrogate fitted to it, and a
 * model of 6 crn devices trained through it from weights drawn N(0, 1): the
 * spirals drive it out of its domain (two thirds of its evaluations). */
#define SUR_SWEEP                                                                                  \
    "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},\"samples\":200,"            \
    "\"ranges\":{\"u1\":[-0.5,0.5]}}}"
#define SUR_FIT                                                                                    \
    "{\"type\":\"fit\",\"spec\":{\"dataset\":{\"job\":1},\"hidden\":[8],\"epochs\":20,"            \
    "\"batch\":32,\"seed\":1}}"
#define SUR_TRAIN                                                                                  \
    "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":[{\"devices\":6,"           \
    "\"device\":{\"kind\":\"crn_relu\"},\"via\":\"surrogate\",\"surrogate\":{\"job\":2},"          \
    "\"init\":\"normal\"},"                                                                        \
    "{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":\"identity\"}}}],"  \
    "\"epochs\":1,\"batch\":64,\"seed\":1,\"checkpoint_every\":0}}"

static void test_evaluate_surrogate_equal(void **state)
{
    struct qt_dir *f = *state;
    need_mpirun(__func__);
    json_decref(qt_run_job(f, "q.db", SUR_SWEEP, "1", 0));
    json_decref(qt_run_job(f, "q.db", SUR_FIT, "1", 0));
    json_decref(qt_run_job(f, "q.db", SUR_TRAIN, "1", 0));
    json_t *rec = evaluate_model(f, 3, "\"noise\":false", "2");
    const json_t *ood = json_object_get(json_object_get(rec, "result"), "out_of_domain");
    /* Out of its domain: the fractions summed over the ranks are tested below. */
    assert_true(json_number_value(json_object_get(ood, "0")) > 0);
    json_decref(rec);
    evaluate_equal(f, 3, "\"noise\":false");
    evaluate_equal(f, 3, "\"via\":{\"0\":\"physics_aware\"}");
}

static void test_sweep_bytes_equal(void **state)
{
    struct qt_dir *f = *state;
    need_mpirun(__func__);
    assert_int_equal(access(QN_MPI_BIN, X_OK), 0);
    run_sweep(f, "one.db", CRN_JOB(2000), "1");
    run_sweep(f, "two.db", CRN_JOB(2000), "2");
    run_sweep(f, "threads.db", CRN_JOB_THREADS(2000), "2");
    size_t n1, n2;
    char *b1 = blocks(f->dir, "one.db", &n1), *b2 = blocks(f->dir, "two.db", &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b2);
    b2 = blocks(f->dir, "threads.db", &n2); /* 2 ranks of 2 threads */
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    char *c1 = export(f, "one.db"), *c2 = export(f, "two.db");
    assert_string_equal(c1, c2);
    free(c1);
    free(c2);
    /* The job's spool directory is gone; the spool itself stays for the next. */
    char path[1200];
    struct stat st;
    snprintf(path, sizeof path, "%s/two.db.spool", f->dir);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/two.db.spool/job-1", f->dir);
    assert_int_not_equal(stat(path, &st), 0);
}

/* qn-mpi on a spool directory with no job.json: exit 1 on every rank, the
 * reason in error.txt, no result. */
static void test_missing_job_file(void **state)
{
    struct qt_dir *f = *state;
    need_mpirun(__func__);
    char dir[1200], path[1300];
    snprintf(dir, sizeof dir, "%s/job-7", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *argv[] = {mpirun_path, "--allow-run-as-root", "--oversubscribe", "-n", "2",
                          QN_MPI_BIN, dir, NULL};
    struct qt_run r;
    assert_int_equal(qt_run(f->dir, argv, NULL, &r), 0);
    assert_int_not_equal(r.status, 0);
    if (!strstr(r.err, "qn-mpi: cannot read"))
        fail_msg("stderr: %s\nstdout: %s", r.err, r.out);
    qt_run_free(&r);
    snprintf(path, sizeof path, "%s/error.txt", dir);
    char *why = qt_read_file(path, NULL);
    assert_non_null(why);
    assert_non_null(strstr(why, "job.json"));
    free(why);
    snprintf(path, sizeof path, "%s/result.json", dir);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void test_ranks_option_refused(void **state)
{
    struct qt_dir *f = *state;
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, CRN_JOB(10), &r, "run", "-", "--db", "q.db", "--ranks", "0",
                           NULL),
                     0);
    qt_expect_status(&r, 2);
    qt_run_free(&r);
    assert_int_equal(qt_qn(f->dir, CRN_JOB(10), &r, "run", "-", "--db", "q.db", "--ranks",
                           "5000", NULL),
                     0);
    qt_expect_status(&r, 2);
    qt_run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_bytes_equal, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_evaluate_equal, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_evaluate_surrogate_equal, qt_dir_setup,
                                        qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_missing_job_file, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_ranks_option_refused, qt_dir_setup,
                                        qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
