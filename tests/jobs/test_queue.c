/*
 * test_queue.c: the persistent job queue on a real SQLite database.
 *
 * Covers: priority before anything else; round-robin across owners (one
 * owner's many jobs interleave with another's few, ties broken by age);
 * waiting jobs promoted when their {"job": N} inputs succeed, failed with
 * the reason when one fails or is canceled, along a whole chain; submission
 * refusing references to missing, failed or canceled jobs, to jobs of the
 * wrong type (queued or running ones too), and bad specs with their JSON
 * path (nothing stored); the references stored as job_deps rows with the
 * job, promotion and failure reading those rows (not the spec), a "job"
 * member that is no reference making nothing wait, and migration 0006
 * giving an old waiting job its rows; cancel of queued, waiting, running and
 * finished jobs; recovery of running jobs at start-up; the order surviving
 * a new struct queue (seeded from start times); two connections claiming
 * concurrently never get the same job.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "qn_err.h"
#include "qn_test.h"
#include "qt_daemon.h"
#include "queue.h"
#include "spec.h"
#include "store.h"

struct fx {
    char dir[512];
    char db[600];
    struct store *s;
    struct queue *q;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char msg[STORE_MSG_MAX];
    if (!f || qt_tmpdir(f->dir, sizeof f->dir) != 0)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/q.db", f->dir);
    if (store_open(f->db, &f->s, msg, sizeof msg) != 0 || queue_create(f->s, NULL, &f->q) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    queue_destroy(f->q);
    store_close(f->s);
    qt_rmtree(f->dir);
    free(f);
    return 0;
}

/* A small valid sweep of an inline analytic device, with a priority. */
static int64_t submit_sweep(struct fx *f, const char *owner, int priority)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\": \"sweep\", \"priority\": %d, \"spec\": {\"device\": {\"kind\": \"neuron\","
             " \"params\": {\"activation\": \"tanh\"}}, \"samples\": 10, \"ranges\": {\"u1\": [-1, 1]}}}",
             priority);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    int64_t id = 0;
    enum store_job_state st;
    struct spec_error err = {{0}, {0}};
    int rc = queue_submit(f->q, f->s, root, owner, &id, &st, &err);
    json_decref(root);
    if (rc)
        fail_msg("submit: %d at '%s': %s", rc, err.path, err.msg);
    assert_int_equal(st, JOB_QUEUED);
    return id;
}

/* Submits JSON text; returns the code, the id and state into *id, *st. */
static int submit_text(struct fx *f, const char *owner, const char *text, int64_t *id,
                       enum store_job_state *st, struct spec_error *err)
{
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    memset(err, 0, sizeof *err);
    int rc = queue_submit(f->q, f->s, root, owner, id, st, err);
    json_decref(root);
    return rc;
}

/* A fit that reads job dep's dataset. */
static int submit_fit(struct fx *f, int64_t dep, int64_t *id, enum store_job_state *st,
                      struct spec_error *err)
{
    char text[256];
    snprintf(text, sizeof text,
             "{\"type\": \"fit\", \"spec\": {\"dataset\": {\"job\": %lld}, \"epochs\": 5}}",
             (long long)dep);
    return submit_text(f, "alice", text, id, st, err);
}

/* A train on `dataset` (JSON) whose crn_relu layer's surrogate is job sur's. */
static int submit_train(struct fx *f, const char *dataset, int64_t sur, int64_t *id,
                        enum store_job_state *st, struct spec_error *err)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\": \"train\", \"spec\": {\"dataset\": %s, \"network\":"
             " [{\"devices\": 2, \"device\": {\"kind\": \"crn_relu\", \"params\": {\"kappa\":"
             " 0.01}}, \"surrogate\": {\"job\": %lld}}]}}",
             dataset, (long long)sur);
    return submit_text(f, "bob", text, id, st, err);
}

static int64_t claim_id(struct fx *f)
{
    struct store_job j;
    int rc = queue_claim(f->q, f->s, &j);
    if (rc)
        fail_msg("claim: %d", rc);
    assert_int_equal(j.state, JOB_RUNNING);
    assert_true(j.started[0] != 0);
    int64_t id = j.id;
    store_job_free(&j);
    return id;
}

static enum store_job_state state_of(struct fx *f, int64_t id, char *error, size_t cap)
{
    struct store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    enum store_job_state st = j.state;
    if (error)
        snprintf(error, cap, "%s", j.error ? j.error : "");
    store_job_free(&j);
    return st;
}

static void test_priority_first(void **state)
{
    struct fx *f = *state;
    int64_t low = submit_sweep(f, "alice", 0);
    int64_t high = submit_sweep(f, "alice", 5);
    int64_t mid = submit_sweep(f, "bob", 2);
    assert_int_equal(claim_id(f), high);
    assert_int_equal(claim_id(f), mid);
    assert_int_equal(claim_id(f), low);
    struct store_job j;
    assert_int_equal(queue_claim(f->q, f->s, &j), QN_ENOTFOUND);
}

/* Alice queues 6 jobs, then Bob 3: claims alternate while both have work. */
static void test_round_robin(void **state)
{
    struct fx *f = *state;
    int64_t a[6], b[3];
    for (int i = 0; i < 6; i++)
        a[i] = submit_sweep(f, "alice", 0);
    for (int i = 0; i < 3; i++)
        b[i] = submit_sweep(f, "bob", 0);
    int64_t want[9] = {a[0], b[0], a[1], b[1], a[2], b[2], a[3], a[4], a[5]};
    for (int i = 0; i < 9; i++)
        assert_int_equal(claim_id(f), want[i]);
    /* A third owner arriving late goes before the two who were just served. */
    int64_t a7 = submit_sweep(f, "alice", 0);
    int64_t c1 = submit_sweep(f, "carol", 0);
    int64_t b4 = submit_sweep(f, "bob", 0);
    assert_int_equal(claim_id(f), c1);
    assert_int_equal(claim_id(f), b4); /* bob's last claim is older than alice's */
    assert_int_equal(claim_id(f), a7);
}

/* A new struct queue (daemon restart) orders owners by their last start. */
static void test_round_robin_after_restart(void **state)
{
    struct fx *f = *state;
    submit_sweep(f, "alice", 0);
    submit_sweep(f, "bob", 0);
    assert_true(claim_id(f) > 0); /* alice's */
    struct timespec ms = {0, 20000000L};
    nanosleep(&ms, NULL);          /* start times have millisecond resolution */
    assert_true(claim_id(f) > 0); /* bob's */
    int64_t a2 = submit_sweep(f, "alice", 0);
    int64_t b2 = submit_sweep(f, "bob", 0);
    (void)b2;
    queue_destroy(f->q);
    assert_int_equal(queue_create(f->s, NULL, &f->q), 0);
    assert_int_equal(claim_id(f), a2); /* alice was served longest ago */
}

static void test_waiting_promoted(void **state)
{
    struct fx *f = *state;
    int64_t sweep = submit_sweep(f, "alice", 0);
    int64_t fit = 0;
    enum store_job_state st;
    struct spec_error err;
    assert_int_equal(submit_fit(f, sweep, &fit, &st, &err), 0);
    assert_int_equal(st, JOB_WAITING);
    assert_int_equal(claim_id(f), sweep); /* the waiting fit is not claimable */
    struct store_job j;
    assert_int_equal(queue_claim(f->q, f->s, &j), QN_ENOTFOUND);
    assert_int_equal(queue_finish(f->q, f->s, sweep, JOB_SUCCEEDED, "{\"dataset\": 1}", NULL), 0);
    assert_int_equal(state_of(f, fit, NULL, 0), JOB_QUEUED);
    assert_int_equal(claim_id(f), fit);
}

/* sweep <- fit <- train: the sweep fails, both dependents fail with the reason. */
static void test_failure_propagates_along_chain(void **state)
{
    struct fx *f = *state;
    int64_t sweep = submit_sweep(f, "alice", 0);
    int64_t fit = 0, train = 0;
    enum store_job_state st;
    struct spec_error err;
    assert_int_equal(submit_fit(f, sweep, &fit, &st, &err), 0);
    char text[512];
    assert_int_equal(submit_train(f, "\"xor\"", fit, &train, &st, &err), 0);
    assert_int_equal(st, JOB_WAITING);
    assert_int_equal(claim_id(f), sweep);
    assert_int_equal(queue_finish(f->q, f->s, sweep, JOB_FAILED, NULL, "disk on fire"), 0);
    char why[256];
    assert_int_equal(state_of(f, fit, why, sizeof why), JOB_FAILED);
    snprintf(text, sizeof text, "job %lld failed: disk on fire", (long long)sweep);
    assert_string_equal(why, text);
    assert_int_equal(state_of(f, train, why, sizeof why), JOB_FAILED);
    assert_non_null(strstr(why, text));
    char head[64];
    snprintf(head, sizeof head, "job %lld failed: ", (long long)fit);
    assert_memory_equal(why, head, strlen(head));
}

static void test_submit_refuses_bad_references(void **state)
{
    struct fx *f = *state;
    int64_t id = 0;
    enum store_job_state st;
    struct spec_error err;
    int64_t before = 0;
    int64_t c[6];
    /* No such job. */
    assert_int_equal(submit_fit(f, 999, &id, &st, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/dataset");
    assert_non_null(strstr(err.msg, "no job with id 999"));
    /* A failed job. */
    int64_t sweep = submit_sweep(f, "alice", 0);
    assert_int_equal(claim_id(f), sweep);
    assert_int_equal(queue_finish(f->q, f->s, sweep, JOB_FAILED, NULL, "boom"), 0);
    assert_int_equal(submit_fit(f, sweep, &id, &st, &err), QN_ESPEC);
    assert_non_null(strstr(err.msg, "failed: boom"));
    /* A canceled job. */
    int64_t s2 = submit_sweep(f, "alice", 0);
    assert_int_equal(queue_cancel_pending(f->q, f->s, s2, &st), 0);
    assert_int_equal(submit_fit(f, s2, &id, &st, &err), QN_ESPEC);
    assert_non_null(strstr(err.msg, "was canceled"));
    /* A bad spec, an unknown device name (resolved at submit when nothing is pending). */
    assert_int_equal(queue_counts(f->s, c), 0);
    for (int i = 0; i < 6; i++)
        before += c[i];
    assert_int_equal(submit_text(f, "alice",
                                 "{\"type\": \"sweep\", \"spec\": {\"device\": \"nope\","
                                 " \"samples\": 10, \"ranges\": {\"u1\": [0, 1]}}}",
                                 &id, &st, &err),
                     QN_ESPEC);
    assert_string_equal(err.path, "/spec/device");
    assert_int_equal(submit_text(f, "alice",
                                 "{\"type\": \"sweep\", \"spec\": {\"device\": \"nope\","
                                 " \"samples\": -3, \"ranges\": {\"u1\": [0, 1]}}}",
                                 &id, &st, &err),
                     QN_ESPEC);
    assert_string_equal(err.path, "/spec/samples");
    assert_int_equal(submit_text(f, "alice", "{\"type\": \"bake\", \"spec\": {}}", &id, &st, &err),
                     QN_ESPEC);
    assert_string_equal(err.path, "/type");
    /* A waiting job's spec is parsed too. */
    int64_t s3 = submit_sweep(f, "alice", 0);
    char text[256];
    snprintf(text, sizeof text,
             "{\"type\": \"fit\", \"spec\": {\"dataset\": {\"job\": %lld}, \"epochs\": 0}}",
             (long long)s3);
    assert_int_equal(submit_text(f, "alice", text, &id, &st, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/epochs");
    /* Nothing was stored by the refused submissions. */
    int64_t after = 0;
    assert_int_equal(queue_counts(f->s, c), 0);
    for (int i = 0; i < 6; i++)
        after += c[i];
    assert_int_equal(after, before + 1);
}

/* Runs one SQL statement on the fixture's database through a connection of
 * its own; the integer it answers (-1: no row). */
static long long sql_int(const struct fx *f, const char *sql)
{
    return qd_db_file_int(f->dir, strrchr(f->db, '/') + 1, SQLITE_OPEN_READWRITE, 1, sql);
}

static int64_t jobs_stored(struct fx *f)
{
    int64_t c[6], n = 0;
    assert_int_equal(queue_counts(f->s, c), 0);
    for (int i = 0; i < 6; i++)
        n += c[i];
    return n;
}

/* A reference naming a job of another type is refused at once with its path,
 * whether that job is queued, running or done: a surrogate is a fit's, a
 * model a train's, a dataset a sweep's. */
static void test_submit_refuses_wrong_type(void **state)
{
    struct fx *f = *state;
    int64_t id = 0;
    enum store_job_state st;
    struct spec_error err;
    int64_t running = submit_sweep(f, "alice", 1);
    int64_t queued = submit_sweep(f, "alice", 0);
    assert_int_equal(claim_id(f), running);
    int64_t fit = 0;
    assert_int_equal(submit_fit(f, queued, &fit, &st, &err), 0);
    assert_int_equal(st, JOB_WAITING);
    int64_t before = jobs_stored(f);
    assert_int_equal(submit_train(f, "\"xor\"", queued, &id, &st, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/network/0/surrogate");
    char want[64];
    snprintf(want, sizeof want, "job %lld is a sweep job, not a fit job", (long long)queued);
    assert_string_equal(err.msg, want);
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\": \"evaluate\", \"spec\": {\"model\": {\"job\": %lld},"
             " \"dataset\": \"xor\"}}",
             (long long)running);
    assert_int_equal(submit_text(f, "bob", text, &id, &st, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/model");
    assert_non_null(strstr(err.msg, "is a sweep job, not a train job"));
    /* A fit (waiting) is not a dataset either. */
    snprintf(text, sizeof text, "{\"type\": \"fit\", \"spec\": {\"dataset\": {\"job\": %lld}}}",
             (long long)fit);
    assert_int_equal(submit_text(f, "bob", text, &id, &st, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/dataset");
    assert_non_null(strstr(err.msg, "is a fit job, not a sweep job"));
    assert_int_equal(jobs_stored(f), before);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM job_deps"), 1); /* the fit's */
}

/* The references are stored with the job; the waiting logic reads those rows. */
static void test_dependencies_stored(void **state)
{
    struct fx *f = *state;
    int64_t sweep = submit_sweep(f, "alice", 0);
    int64_t fit = 0, train = 0;
    enum store_job_state st;
    struct spec_error err;
    assert_int_equal(submit_fit(f, sweep, &fit, &st, &err), 0);
    char dataset[64], sql[256];
    snprintf(dataset, sizeof dataset, "{\"job\": %lld, \"target\": \"out\"}", (long long)sweep);
    assert_int_equal(submit_train(f, dataset, fit, &train, &st, &err), 0);
    assert_int_equal(st, JOB_WAITING);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM job_deps"), 3);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM job_deps WHERE (job, dependency, path, expected_type) IN"
             " (VALUES (%lld, %lld, '/spec/dataset', 'sweep'), (%lld, %lld, '/spec/dataset',"
             " 'sweep'), (%lld, %lld, '/spec/network/0/surrogate', 'fit'))",
             (long long)fit, (long long)sweep, (long long)train, (long long)sweep,
             (long long)train, (long long)fit);
    assert_int_equal(sql_int(f, sql), 3);
    /* The rows decide, not the spec: without its row for the fit, the train
     * is promoted once the sweep succeeds although its spec still names it. */
    snprintf(sql, sizeof sql,
             "DELETE FROM job_deps WHERE job = %lld AND dependency = %lld RETURNING 1",
             (long long)train, (long long)fit);
    assert_int_equal(sql_int(f, sql), 1);
    assert_int_equal(claim_id(f), sweep);
    assert_int_equal(queue_finish(f->q, f->s, sweep, JOB_SUCCEEDED, "{}", NULL), 0);
    assert_int_equal(state_of(f, fit, NULL, 0), JOB_QUEUED);
    assert_int_equal(state_of(f, train, NULL, 0), JOB_QUEUED);
}

/* Only the references the type's parser reads are dependencies: a device
 * given as {"job": N} makes nothing wait (the walk of every integer "job"
 * member did); with nothing pending the job is resolved now and refused. */
static void test_only_references_wait(void **state)
{
    struct fx *f = *state;
    int64_t sweep = submit_sweep(f, "alice", 0);
    int64_t id = 0;
    enum store_job_state st;
    struct spec_error err;
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\": \"train\", \"spec\": {\"dataset\": \"xor\", \"network\": [{\"devices\": 2,"
             " \"device\": {\"job\": %lld}}]}}",
             (long long)sweep);
    assert_int_equal(submit_text(f, "bob", text, &id, &st, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/network/0/device");
    assert_non_null(strstr(err.msg, "not a device"));
    assert_int_equal(sql_int(f, "SELECT count(*) FROM job_deps"), 0);
}

/* A database of version 5 with waiting jobs: opening it migrates, the
 * waiting jobs get their job_deps rows from their specs, and promotion and
 * failure work through them. */
static void test_migration_backfills_dependencies(void **state)
{
    struct fx *f = *state;
    queue_destroy(f->q);
    store_close(f->s);
    f->q = NULL;
    f->s = NULL;
    snprintf(f->db, sizeof f->db, "%s/old.db", f->dir);
    assert_true(migrate_count >= 6 && migrate_list[5].version == 6);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(sqlite3_exec(h, migrate_list[i].sql, NULL, NULL, NULL), SQLITE_OK);
    const char *sweep = "{\"device\": {\"kind\": \"neuron\"}, \"samples\": 10,"
                        " \"ranges\": {\"u1\": [-1, 1]}}";
    char sql[1024];
    snprintf(sql, sizeof sql,
             "PRAGMA user_version = 5;"
             "INSERT INTO jobs (id, type, name, owner, state, spec) VALUES"
             " (1, 'sweep', 's1', 'alice', 'queued', '%s'),"
             " (2, 'sweep', 's2', 'alice', 'queued', '%s'),"
             " (3, 'fit', 'f1', 'bob', 'waiting', '{\"dataset\": {\"job\": 1}}'),"
             " (4, 'fit', 'f2', 'bob', 'waiting', '{\"dataset\": {\"job\": 2}}'),"
             " (5, 'train', 't', 'bob', 'waiting', '{\"dataset\": \"xor\", \"network\":"
             " [{\"devices\": 2, \"device\": {\"kind\": \"crn_relu\"},"
             " \"surrogate\": {\"job\": 3}}]}')",
             sweep, sweep);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    char msg[STORE_MSG_MAX];
    assert_int_equal(store_open(f->db, &f->s, msg, sizeof msg), 0);
    assert_int_equal(queue_create(f->s, NULL, &f->q), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM job_deps"), 3);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM job_deps WHERE (job, dependency, path,"
                                " expected_type) IN (VALUES (3, 1, '/spec/dataset', 'sweep'),"
                                " (4, 2, '/spec/dataset', 'sweep'),"
                                " (5, 3, '/spec/network/0/surrogate', 'fit'))"),
                     3);
    assert_int_equal(claim_id(f), 1);
    assert_int_equal(claim_id(f), 2);
    assert_int_equal(queue_finish(f->q, f->s, 1, JOB_SUCCEEDED, "{}", NULL), 0);
    assert_int_equal(state_of(f, 3, NULL, 0), JOB_QUEUED);
    assert_int_equal(state_of(f, 5, NULL, 0), JOB_WAITING);
    assert_int_equal(queue_finish(f->q, f->s, 2, JOB_FAILED, NULL, "boom"), 0);
    char why[256];
    assert_int_equal(state_of(f, 4, why, sizeof why), JOB_FAILED);
    assert_string_equal(why, "job 2 failed: boom");
    assert_int_equal(store_integrity_check(f->s), 0);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    int64_t running = submit_sweep(f, "alice", 1);
    int64_t queued = submit_sweep(f, "alice", 0);
    int64_t fit = 0;
    enum store_job_state st;
    struct spec_error err;
    assert_int_equal(submit_fit(f, queued, &fit, &st, &err), 0);
    assert_int_equal(claim_id(f), running);
    /* Running: the worker has to be told. */
    assert_int_equal(queue_cancel_pending(f->q, f->s, running, &st), QN_EBUSY);
    assert_int_equal(st, JOB_RUNNING);
    /* Queued: at once; its waiting dependent fails with the reason. */
    assert_int_equal(queue_cancel_pending(f->q, f->s, queued, &st), 0);
    assert_int_equal(st, JOB_CANCELED);
    char why[256], want[64];
    assert_int_equal(state_of(f, fit, why, sizeof why), JOB_FAILED);
    snprintf(want, sizeof want, "job %lld was canceled", (long long)queued);
    assert_string_equal(why, want);
    /* Ended: refused with the state. */
    assert_int_equal(queue_cancel_pending(f->q, f->s, queued, &st), QN_EEXIST);
    assert_int_equal(st, JOB_CANCELED);
    assert_int_equal(queue_cancel_pending(f->q, f->s, 12345, &st), QN_ENOTFOUND);
    /* A waiting job can be canceled too. */
    int64_t s2 = submit_sweep(f, "bob", 0);
    int64_t fit2 = 0;
    assert_int_equal(submit_fit(f, s2, &fit2, &st, &err), 0);
    assert_int_equal(queue_cancel_pending(f->q, f->s, fit2, &st), 0);
    assert_int_equal(state_of(f, fit2, why, sizeof why), JOB_CANCELED);
    assert_int_equal(queue_finish(f->q, f->s, running, JOB_CANCELED, NULL, "canceled"), 0);
    assert_int_equal(queue_finish(f->q, f->s, running, JOB_QUEUED, NULL, NULL), QN_EINVAL);
}

static void test_recover_and_requeue(void **state)
{
    struct fx *f = *state;
    int64_t a = submit_sweep(f, "alice", 0);
    int64_t b = submit_sweep(f, "bob", 0);
    int64_t c = submit_sweep(f, "carol", 0);
    assert_int_equal(claim_id(f), a);
    assert_int_equal(claim_id(f), b);
    assert_int_equal(claim_id(f), c);
    assert_int_equal(queue_requeue(f->q, f->s, c), 0);
    assert_int_equal(queue_requeue(f->q, f->s, c), QN_ENOTFOUND); /* not running any more */
    size_t n = 0;
    assert_int_equal(queue_recover(f->q, f->s, &n), 0);
    assert_int_equal(n, 2);
    int64_t counts[6];
    assert_int_equal(queue_counts(f->s, counts), 0);
    assert_int_equal(counts[JOB_QUEUED], 3);
    assert_int_equal(counts[JOB_RUNNING], 0);
    /* started is kept across the requeue. */
    struct store_job j;
    assert_int_equal(store_job_get(f->s, a, &j), 0);
    assert_true(j.started[0] != 0);
    assert_int_equal(j.finished[0], 0);
    store_job_free(&j);
    assert_int_equal(store_integrity_check(f->s), 0);
}

/* Two threads, two connections: every job is claimed exactly once. */
struct claimer {
    const char *db;
    struct queue *q;
    int64_t got[64];
    size_t n;
};

static void *claimer_main(void *arg)
{
    struct claimer *c = arg;
    struct store *s = NULL;
    char msg[STORE_MSG_MAX];
    if (store_open(c->db, &s, msg, sizeof msg) != 0)
        return NULL;
    for (;;) {
        struct store_job j;
        int rc = queue_claim(c->q, s, &j);
        if (rc == QN_ENOTFOUND)
            break;
        if (rc == 0) {
            c->got[c->n++] = j.id;
            store_job_free(&j);
        }
    }
    store_close(s);
    return NULL;
}

static void test_concurrent_claims(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 40; i++)
        submit_sweep(f, i % 3 ? "alice" : "bob", 0);
    struct claimer c[2] = {{f->db, f->q, {0}, 0}, {f->db, f->q, {0}, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, claimer_main, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(c[0].n + c[1].n, 40);
    int seen[41] = {0};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < c[k].n; i++) {
            assert_true(c[k].got[i] >= 1 && c[k].got[i] <= 40);
            assert_int_equal(seen[c[k].got[i]]++, 0);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_priority_first, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_round_robin, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_after_restart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_waiting_promoted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failure_propagates_along_chain, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_submit_refuses_bad_references, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_submit_refuses_wrong_type, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dependencies_stored, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_only_references_wait, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_migration_backfills_dependencies, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_recover_and_requeue, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
