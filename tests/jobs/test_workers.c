/*
 * test_workers.c: the worker pool against a real database and real jobs.
 *
 * Covers: jobs submitted to the queue run to success on the pool's threads,
 * a dependent fit starts once its sweep succeeded; a running sweep is
 * canceled within a second and ends `canceled` (latency printed); stopping
 * the pool with requeue puts the running job back to `queued` (started
 * kept) and a new pool picks it up again; progress is visible while a job
 * runs; the /metrics lines; a sweep run again after a crash replaces the
 * dataset its first attempt stored.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qn_err.h"
#include "qn_test.h"
#include "queue.h"
#include "store.h"
#include "store_internal.h" /* store_sqlite: raw access to inspect the database */
#include "workers.h"

/* A hodgkin_huxley sweep long enough to still run when we look. */
#define LONG_SWEEP                                                                         \
    "{\"type\": \"sweep\", \"name\": \"long\", \"spec\": {\"device\": {\"kind\": "          \
    "\"hodgkin_huxley\", \"params\": {\"gain\": 1.0}, \"readout\": {\"kind\": \"spike_rate\"," \
    " \"t_max\": 500}}, \"samples\": 100000, \"ranges\": {\"u1\": [0, 20]}}}"

/* Seconds LONG_SWEEP may take to report its first progress (see its test). */
#define FIRST_PROGRESS_S 120

#define QUICK_SWEEP                                                                      \
    "{\"type\": \"sweep\", \"spec\": {\"device\": {\"kind\": \"neuron\", \"params\": "    \
    "{\"activation\": \"tanh\"}}, \"samples\": 64, \"ranges\": {\"u1\": [-2, 2]}}}"

struct fx {
    char dir[512];
    char db[600];
    struct store *s;
    struct workers *w;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char msg[STORE_MSG_MAX];
    if (!f || qt_tmpdir(f->dir, sizeof f->dir) != 0)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/w.db", f->dir);
    if (store_open(f->db, &f->s, msg, sizeof msg) != 0)
        return -1;
    struct workers_config cfg = {.db = f->db, .n = 2, .job_threads = 1, .log = NULL};
    if (workers_create(&cfg, &f->w, msg, sizeof msg) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    workers_stop(f->w, 1);
    store_close(f->s);
    qt_rmtree(f->dir);
    free(f);
    return 0;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int64_t submit(struct fx *f, const char *owner, const char *text)
{
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    int64_t id = 0;
    enum store_job_state st;
    struct spec_error err = {{0}, {0}};
    int rc = queue_submit(workers_queue(f->w), f->s, root, owner, &id, &st, &err);
    json_decref(root);
    if (rc)
        fail_msg("submit: %d at '%s': %s", rc, err.path, err.msg);
    workers_wake(f->w);
    return id;
}

static enum store_job_state state_of(struct fx *f, int64_t id)
{
    struct store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    enum store_job_state st = j.state;
    store_job_free(&j);
    return st;
}

/* Polls until job id is in state `want` (1 ms steps); seconds it took, or -1 on timeout. */
static double wait_state(struct fx *f, int64_t id, enum store_job_state want, double timeout)
{
    double t0 = now_s();
    while (now_s() - t0 < timeout) {
        if (state_of(f, id) == want)
            return now_s() - t0;
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    return -1;
}

/* The pool's Prometheus text (caller frees). */
static char *metrics_text(struct fx *f)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_non_null(m);
    workers_metrics(m, f->w);
    fclose(m);
    return text;
}

/* Polls until the metrics contain `line` (1 ms steps); seconds it took, or -1 on timeout. */
static double wait_metric(struct fx *f, const char *line, double timeout)
{
    double t0 = now_s();
    while (now_s() - t0 < timeout) {
        char *text = metrics_text(f);
        int found = strstr(text, line) != NULL;
        free(text);
        if (found)
            return now_s() - t0;
        struct timespec ms = {0, 1000000L};
        nanosleep(&ms, NULL);
    }
    return -1;
}

static void test_runs_jobs_and_dependencies(void **state)
{
    struct fx *f = *state;
    int64_t a = submit(f, "alice", QUICK_SWEEP);
    char fit[256];
    snprintf(fit, sizeof fit,
             "{\"type\": \"fit\", \"spec\": {\"dataset\": {\"job\": %lld}, \"hidden\": [4],"
             " \"epochs\": 3, \"batch\": 16}}",
             (long long)a);
    int64_t b = submit(f, "bob", fit);
    int64_t c = submit(f, "bob", QUICK_SWEEP);
    assert_true(wait_state(f, a, JOB_SUCCEEDED, 20) >= 0);
    assert_true(wait_state(f, c, JOB_SUCCEEDED, 20) >= 0);
    assert_true(wait_state(f, b, JOB_SUCCEEDED, 20) >= 0);
    struct store_job j;
    assert_int_equal(store_job_get(f->s, a, &j), 0);
    assert_non_null(j.result);
    assert_non_null(strstr(j.result, "\"rows\":64"));
    assert_true(j.finished[0] != 0);
    store_job_free(&j);
    /* A worker counts the end just after it stores it: the counter may trail the row. */
    assert_true(wait_metric(f, "qn_jobs_ended_total{state=\"succeeded\"} 3\n", 5) >= 0);
    char *text = metrics_text(f);
    assert_non_null(strstr(text, "qn_workers 2\n"));
    assert_non_null(strstr(text, "qn_job_units_total{type=\"sweep\"} 128\n"));
    free(text);
}

static void test_cancel_running_within_a_second(void **state)
{
    struct fx *f = *state;
    int64_t id = submit(f, "alice", LONG_SWEEP);
    assert_true(wait_state(f, id, JOB_RUNNING, 10) >= 0);
    /* Progress shows up while it runs. The first report comes after 1% of the
     * rows (1000 HH solves): about a second plainly, but over 10 s under ASan on
     * a loaded 2-CPU machine, hence the generous deadline (the sweep itself is
     * 100 times longer, so it still runs when we cancel). */
    uint64_t done = 0, total = 0;
    double t0 = now_s();
    while (now_s() - t0 < FIRST_PROGRESS_S &&
           (workers_progress(f->w, id, &done, &total) != 0 || done == 0)) {
        struct timespec ms = {0, 5000000L};
        nanosleep(&ms, NULL);
    }
    assert_true(done > 0);
    assert_int_equal(total, 100000);
    enum store_job_state st;
    double t1 = now_s();
    assert_int_equal(workers_cancel(f->w, f->s, id, &st), 0);
    assert_int_equal(st, JOB_RUNNING);
    double took = wait_state(f, id, JOB_CANCELED, 5);
    assert_true(took >= 0);
    double total_s = now_s() - t1;
    printf("cancel of a running sweep: %.1f ms to `canceled`\n", 1e3 * total_s);
    assert_true(total_s < 1.0);
    assert_int_equal(workers_cancel(f->w, f->s, id, &st), QN_EEXIST);
    assert_int_equal(st, JOB_CANCELED);
    assert_int_equal(workers_busy(f->w) <= 2, 1);
}

static void test_stop_requeues_and_restart_resumes(void **state)
{
    struct fx *f = *state;
    int64_t id = submit(f, "alice", LONG_SWEEP);
    assert_true(wait_state(f, id, JOB_RUNNING, 10) >= 0);
    double t0 = now_s();
    workers_stop(f->w, 1);
    printf("stop with one running job: %.1f ms\n", 1e3 * (now_s() - t0));
    f->w = NULL;
    struct store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    assert_int_equal(j.state, JOB_QUEUED);
    assert_true(j.started[0] != 0);
    assert_null(j.error);
    store_job_free(&j);
    /* A new pool (the next start) takes it again. */
    struct workers_config cfg = {.db = f->db, .n = 1, .job_threads = 1, .log = NULL};
    char msg[STORE_MSG_MAX];
    assert_int_equal(workers_create(&cfg, &f->w, msg, sizeof msg), 0);
    assert_true(wait_state(f, id, JOB_RUNNING, 10) >= 0);
    enum store_job_state st;
    assert_int_equal(workers_cancel(f->w, f->s, id, &st), 0);
    assert_true(wait_state(f, id, JOB_CANCELED, 5) >= 0);
}

/* A job left running by a crash is requeued when a pool starts. */
static void test_recovers_running_jobs(void **state)
{
    struct fx *f = *state;
    workers_stop(f->w, 1);
    f->w = NULL;
    int64_t id = 0;
    assert_int_equal(store_job_insert(f->s, "sweep", "orphan", "alice", 0, JOB_RUNNING,
                                      "{\"device\": {\"kind\": \"neuron\"}, \"samples\": 8,"
                                      " \"ranges\": {\"u1\": [0, 1]}}",
                                      &id),
                     0);
    /* Metrics of the dead attempt must not survive the rerun. */
    assert_int_equal(store_metric_insert(f->s, id, 1, 1, "solves", 8.0), 0);
    struct workers_config cfg = {.db = f->db, .n = 1, .job_threads = 1, .log = NULL};
    char msg[STORE_MSG_MAX];
    assert_int_equal(workers_create(&cfg, &f->w, msg, sizeof msg), 0);
    assert_true(wait_state(f, id, JOB_SUCCEEDED, 10) >= 0);
    assert_int_equal(store_metric_insert(f->s, id, 1, 1, "solves", 8.0), 0);
}

/* The datasets job id made: how many, and their rows in all. */
static int64_t job_datasets(struct fx *f, int64_t id, int64_t *rows)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(store_sqlite(f->s),
                           "SELECT count(*), total(n_rows) FROM datasets WHERE job_id = ?1", -1,
                           &st, NULL),
        SQLITE_OK);
    sqlite3_bind_int64(st, 1, id);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    *rows = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    return n;
}

/* A sweep killed after it stored its dataset, before its end was stored, runs
 * again at the next start: the new dataset replaces the old one (the crash
 * test once found two). */
static void test_rerun_replaces_earlier_dataset(void **state)
{
    struct fx *f = *state;
    workers_stop(f->w, 1);
    f->w = NULL;
    int64_t id = 0, old = 0, rows = 0;
    assert_int_equal(store_job_insert(f->s, "sweep", "orphan", "alice", 0, JOB_RUNNING,
                                      "{\"device\": {\"kind\": \"neuron\"}, \"samples\": 8,"
                                      " \"ranges\": {\"u1\": [0, 1]}}",
                                      &id),
                     0);
    const char *cols[] = {"u1", "out", "status"};
    const float row[3] = {0.5f, 0.5f, 0.0f}; /* the earlier attempt: one row */
    struct store_dswriter *w = NULL;
    assert_int_equal(store_dataset_begin(f->s, "orphan", "sweep", 3, cols, id, &w), 0);
    assert_int_equal(store_dataset_append(w, row, 1), 0);
    assert_int_equal(store_dataset_finish(w, &old), 0);
    struct workers_config cfg = {.db = f->db, .n = 1, .job_threads = 1, .log = NULL};
    char msg[STORE_MSG_MAX];
    assert_int_equal(workers_create(&cfg, &f->w, msg, sizeof msg), 0);
    assert_true(wait_state(f, id, JOB_SUCCEEDED, 10) >= 0);
    assert_int_equal(job_datasets(f, id, &rows), 1);
    assert_int_equal(rows, 8); /* the rerun's 8 rows, not the 1 stored before */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_jobs_and_dependencies, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running_within_a_second, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_requeues_and_restart_resumes, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_recovers_running_jobs, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_rerun_replaces_earlier_dataset, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
