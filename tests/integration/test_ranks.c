/*
 * test_ranks.c: jobs on several ranks through a real `qn serve` (QN_BIN)
 * whose default launcher runs a real mpirun with qn-mpi (beside QN_BIN).
 *
 * Covers: a sweep submitted with "resources": {"ranks": 2} succeeds, its
 * progress reaches the daemon (qn_job_units_total counts its rows) and its
 * spool directory is removed; an evaluation via device on 2 ranks succeeds
 * and its metric rows are served (GET /v1/jobs/{id}/metrics) with the
 * result's accuracy; a running sweep on 2 ranks canceled over HTTP
 * ends `canceled` with no dataset stored, no spool directory and no mpirun
 * or qn-mpi process left; kill -9 of the daemon during a sweep on 2 ranks
 * leaves no mpirun or qn-mpi running (the kernel stops them with the
 * daemon), and the restarted daemon runs the requeued job to the one
 * dataset it should have; bad input: ranks 0 and 5000 (400 at
 * /resources/ranks), ranks 2 with --launcher naming a program that does not
 * exist (422 not_distributed at /resources/ranks, nothing stored), a --spool
 * that cannot be written (the daemon refuses to start, naming it).
 *
 * mpirun missing skips the tests that launch, saying so. Every wait is a
 * poll with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_daemon.h"

#define CRN_SWEEP(n, ranks)                                                                     \
    "{\"type\":\"sweep\",\"name\":\"crn\",\"resources\":{\"ranks\":" #ranks "},"               \
    "\"spec\":{\"device\":{\"kind\":\"crn_relu\"},\"samples\":" #n ",\"ranges\":{\"u1\":[-3,3]}}}"
#define HH_SWEEP(n, ranks)                                                                      \
    "{\"type\":\"sweep\",\"name\":\"hh\",\"resources\":{\"ranks\":" #ranks "},"                \
    "\"spec\":{\"device\":{\"kind\":\"hodgkin_huxley\",\"params\":{\"gain\":1.0},"             \
    "\"readout\":{\"kind\":\"spike_rate\",\"t_max\":200}},\"samples\":" #n ","                 \
    "\"ranges\":{\"u1\":[0,15]}}}"

#define SPIRALS "{\"name\":\"spirals\",\"samples\":300}"
#define TRAIN_JOB                                                                                \
    "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":[{\"devices\":4,"           \
    "\"device\":{\"kind\":\"crn_relu\"},\"via\":\"device\"},{\"devices\":2,\"device\":"            \
    "{\"kind\":\"neuron\",\"params\":{\"activation\":\"identity\"}}}],\"epochs\":1,\"batch\":64,"  \
    "\"seed\":1,\"checkpoint_every\":0}}"
#define EVALUATE_JOB                                                                             \
    "{\"type\":\"evaluate\",\"resources\":{\"ranks\":2},\"spec\":{\"model\":{\"job\":1},"          \
    "\"dataset\":" SPIRALS ",\"split\":\"all\",\"via\":{\"0\":\"device\"}}}"

struct fx {
    struct qd d; /* first (qd_fixture_new) */
};

static int fx_setup(void **state)
{
    *state = qd_fixture_new(sizeof(struct fx), 1);
    return *state ? 0 : -1;
}

static int fx_teardown(void **state)
{
    qd_fixture_free(*state);
    return 0;
}

/* Polls until no process names `needle`; fails after timeout s. */
static void wait_no_process(const char *needle, double timeout)
{
    double t0 = qd_now();
    while (qt_processes_with(needle) > 0) {
        if (qd_now() - t0 > timeout)
            fail_msg("%d process(es) still run with '%s' in their command line",
                     qt_processes_with(needle), needle);
        qd_nap_ms(50);
    }
}

/* The value of Prometheus line `name` in GET /metrics, -1 when absent. */
static long long prom_value(const struct fx *f, const char *name)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", f->d.port);
    CURL *c = curl_easy_init();
    struct qd_buf b = {0};
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, qd_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    const char *at = b.p ? strstr(b.p, name) : NULL;
    long long v = at ? strtoll(at + strlen(name), NULL, 10) : -1;
    free(b.p);
    return v;
}

/* The spool directory of job id of the fixture's daemon (default: DB.spool). */
static void job_dir(const struct fx *f, int64_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s.spool/job-%" PRId64, f->d.db, id);
}

static void test_sweep_on_two_ranks(void **state)
{
    struct fx *f = *state;
    qt_need_mpirun(__func__);
    qd_start(&f->d);
    int64_t id = qd_submit(&f->d, NULL, CRN_SWEEP(2000, 2));
    json_t *rec = qd_wait_final(&f->d, NULL, id, 120);
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") != 0)
        fail_msg("the sweep on 2 ranks did not succeed: %s\n%s", json_dumps(rec, 0),
                 qd_log_tail(f->d.log));
    json_t *res = json_object_get(rec, "result");
    assert_int_equal(json_integer_value(json_object_get(res, "rows")), 2000);
    assert_int_equal(json_integer_value(json_object_get(res, "failed")), 0);
    json_decref(rec);
    /* Rank 0's progress lines reached the worker: every row is counted. */
    assert_int_equal(prom_value(f, "qn_job_units_total{type=\"sweep\"} "), 2000);
    char dir[1024];
    struct stat st;
    job_dir(f, id, dir, sizeof dir);
    assert_int_not_equal(stat(dir, &st), 0);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    sqlite3 *db = qd_db_open(f->d.db);
    assert_int_equal(qd_db_int(db, "SELECT n_rows FROM datasets WHERE job_id = 1"), 2000);
    sqlite3_close(db);
}

static void test_evaluate_metrics_served(void **state)
{
    struct fx *f = *state;
    qt_need_mpirun(__func__);
    qd_start(&f->d);
    json_decref(qd_wait_final(&f->d, NULL, qd_submit(&f->d, NULL, TRAIN_JOB), 120));
    int64_t id = qd_submit(&f->d, NULL, EVALUATE_JOB);
    json_t *rec = qd_wait_final(&f->d, NULL, id, 120);
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") != 0)
        fail_msg("the evaluation on 2 ranks did not succeed: %s\n%s", json_dumps(rec, 0),
                 qd_log_tail(f->d.log));
    double acc = json_number_value(json_object_get(json_object_get(rec, "result"), "accuracy"));
    json_decref(rec);
    char path[80];
    json_t *page = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/metrics", id);
    assert_int_equal(qd_http(&f->d, "GET", path, NULL, NULL, &page), 200);
    json_t *rows = json_object_get(page, "metrics");
    int seen = 0;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *m = json_array_get(rows, i);
        if (strcmp(json_string_value(json_object_get(m, "name")), "accuracy") == 0) {
            assert_true(json_number_value(json_object_get(m, "value")) == acc);
            seen++;
        }
    }
    assert_int_equal(seen, 1);
    json_decref(page);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
}

static void test_cancel_on_two_ranks(void **state)
{
    struct fx *f = *state;
    qt_need_mpirun(__func__);
    qd_start(&f->d);
    int64_t id = qd_submit(&f->d, NULL, HH_SWEEP(200000, 2));
    char spool[1024];
    snprintf(spool, sizeof spool, "%s.spool/job-%" PRId64, f->d.db, id);
    double t0 = qd_now();
    while (qt_processes_with(spool) < 3) { /* mpirun and two ranks of qn-mpi */
        if (qd_now() - t0 > 60)
            fail_msg("qn-mpi did not start on 2 ranks within 60 s:\n%s", qd_log_tail(f->d.log));
        qd_nap_ms(20);
    }
    char path[64];
    json_t *r = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/cancel", id);
    assert_int_equal(qd_http(&f->d, "POST", path, NULL, NULL, &r), 202);
    json_decref(r);
    json_t *rec = qd_wait_final(&f->d, NULL, id, 60);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "canceled");
    json_decref(rec);
    wait_no_process(spool, 30);
    struct stat st;
    assert_int_not_equal(stat(spool, &st), 0);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    sqlite3 *db = qd_db_open(f->d.db);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM datasets"), 0);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM dataset_blocks"), 0);
    sqlite3_close(db);
}

static void test_kill9_leaves_no_ranks(void **state)
{
    struct fx *f = *state;
    qt_need_mpirun(__func__);
    qd_start(&f->d);
    int64_t id = qd_submit(&f->d, NULL, HH_SWEEP(4000, 2));
    char spool[1024];
    job_dir(f, id, spool, sizeof spool);
    double t0 = qd_now();
    while (qt_processes_with(spool) < 3) {
        if (qd_now() - t0 > 60)
            fail_msg("qn-mpi did not start on 2 ranks within 60 s:\n%s", qd_log_tail(f->d.log));
        qd_nap_ms(20);
    }
    qd_stop(&f->d, SIGKILL);
    wait_no_process(spool, 30);
    qd_start(&f->d);
    json_t *rec = qd_wait_final(&f->d, NULL, id, 300);
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") != 0)
        fail_msg("the requeued sweep did not succeed: %s\n%s", json_dumps(rec, 0),
                 qd_log_tail(f->d.log));
    json_decref(rec);
    char *log = qt_read_file(f->d.log, NULL);
    assert_non_null(strstr(log, "1 job that were running are queued again"));
    free(log);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    sqlite3 *db = qd_db_open(f->d.db);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM datasets"), 1);
    assert_int_equal(qd_db_int(db, "SELECT n_rows FROM datasets"), 4000);
    sqlite3_close(db);
}

/* POST /v1/jobs answers `status` with error code `code` at `where`. */
static void refused(const struct fx *f, const char *job, long status, const char *code,
                    const char *where, const char *words)
{
    json_t *r = NULL;
    long st = qd_http(&f->d, "POST", "/v1/jobs", NULL, job, &r);
    json_t *e = json_object_get(r, "error");
    if (st != status || strcmp(json_string_value(json_object_get(e, "code")), code) != 0 ||
        strcmp(json_string_value(json_object_get(e, "path")), where) != 0 ||
        (words && !strstr(json_string_value(json_object_get(e, "message")), words)))
        fail_msg("%s\n  answered %ld %s; expected %ld %s at %s", job, st, json_dumps(r, 0),
                 status, code, where);
    json_decref(r);
}

static void test_bad_resources(void **state)
{
    struct fx *f = *state;
    const char *const launcher[] = {"--launcher", "/nonexistent/mpirun -n {ranks} {cmd}", NULL};
    qd_start_with(&f->d, launcher);
    refused(f, CRN_SWEEP(10, 0), 400, "invalid_spec", "/resources/ranks", NULL);
    refused(f, CRN_SWEEP(10, 5000), 400, "invalid_spec", "/resources/ranks", NULL);
    refused(f, CRN_SWEEP(10, 2), 422, "not_distributed", "/resources/ranks",
            "/nonexistent/mpirun");
    /* One rank needs no launcher. */
    int64_t id = qd_submit(&f->d, NULL, CRN_SWEEP(10, 1));
    json_t *rec = qd_wait_final(&f->d, NULL, id, 60);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    json_decref(rec);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    sqlite3 *db = qd_db_open(f->d.db);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM jobs"), 1);
    sqlite3_close(db);
}

static void test_spool_not_writable(void **state)
{
    struct fx *f = *state;
    char file[800];
    snprintf(file, sizeof file, "%s/not-a-dir", f->d.dir);
    assert_int_equal(qt_write_file(NULL, file, "x"), 0);
    struct qt_run r;
    assert_int_equal(qt_qn(f->d.dir, NULL, &r, "serve", "--db", f->d.db, "--port", "0",
                           "--spool", file, NULL),
                     0);
    assert_int_equal(r.status, 1);
    if (!strstr(r.err, file) || !strstr(r.err, "not writable"))
        fail_msg("qn serve --spool FILE said: %s", r.err);
    qt_run_free(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_on_two_ranks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_evaluate_metrics_served, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_on_two_ranks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_kill9_leaves_no_ranks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_resources, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_spool_not_writable, fx_setup, fx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
