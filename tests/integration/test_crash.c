/*
 * test_crash.c: kill -9 a real `qn serve` again and again while sweeps, fits
 * and trainings that reference each other run; restart it on the same
 * database each time; in the end every job has succeeded and nothing was lost
 * or written twice.
 *
 * Each round starts the daemon, submits one "wave" of jobs over HTTP (a
 * crn_relu sweep, a fit on it, a train through that surrogate; every other
 * wave a small hodgkin_huxley sweep, fit and xor train through it; a plain
 * train; from the second wave on, a train through the previous wave's
 * surrogate, so references cross restarts), waits a random time (seeded) and
 * kills the daemon with SIGKILL. After the last kill the daemon runs until
 * every job has ended, stops with SIGTERM, and the database is checked with
 * the SQLite C API:
 *   - PRAGMA integrity_check and foreign_key_check;
 *   - every job `succeeded`;
 *   - each sweep made exactly one dataset, of the sweep's rows, its blocks
 *     0..k-1 each once, all full but the last, of the right byte length;
 *   - each fit made one surrogate, each train one model;
 *   - metric histories are continuous: per fit, each metric at epochs 1..E
 *     once in order; per train, each epoch metric at epochs 1..N once in
 *     order, step_loss at steps 20, 40, ... without holes or repeats; a
 *     checkpoint for every epoch 1..N.
 *
 * QN_CRASH_KILLS (default 3; `make crashtest` sets 20) is the number of
 * kills; QN_CRASH_SEED fixes the seed of the kill moments (default: from the
 * clock; it is printed, so a failing run can be repeated with it; the kill
 * moments are reproduced, the thread timing is not). The job sizes are
 * smaller under AddressSanitizer, which is several times slower.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_daemon.h"

#if defined(__SANITIZE_ADDRESS__) /* the solvers are slower; BLAS is not */
#define CR_CRN_SAMPLES 30000  /* rows of a crn_relu sweep */
#define CR_HH_SAMPLES 150     /* rows of a hodgkin_huxley sweep */
#define CR_FIT_EPOCHS 30
#define CR_TRAIN_SAMPLES 6000 /* spirals points */
#define CR_TRAIN_EPOCHS 20
#define CR_KILL_MAX_MS 3000   /* kill moments are uniform in [0, this] after start-up */
#else
/* Sweeps of a few tenths of a second, so that most finish between kills and
 * the kills also find fits and trains running. */
#define CR_CRN_SAMPLES 50000
#define CR_HH_SAMPLES 300
#define CR_FIT_EPOCHS 40
#define CR_TRAIN_SAMPLES 10000
#define CR_TRAIN_EPOCHS 30
#define CR_KILL_MAX_MS 2500
#endif
#define CR_MAX_JOBS 1024
#define CR_STEP_EVERY 20  /* train jobs record step_loss every 20 steps (job_train.c) */
#define CR_DRAIN_S 600.0  /* the last run must finish everything within this */

#define CRN "{\"kind\": \"crn_relu\", \"drive\": \"dot\", \"params\": {\"kappa\": 0.01}}"
#define HH                                                                                    \
    "{\"kind\": \"hodgkin_huxley\", \"params\": {\"gain\": 1.0}, \"readout\": {\"kind\": "   \
    "\"spike_rate\", \"t_max\": 200}}"
#define IDENTITY "{\"kind\": \"neuron\", \"params\": {\"activation\": \"identity\"}}"
#define TANH "{\"kind\": \"neuron\", \"params\": {\"activation\": \"tanh\"}}"

struct crash {
    struct qd d;
    uint64_t rng;           /* splitmix64 state of the kill moments */
    int64_t last_crn_fit;   /* the previous wave's crn fit (0 before the first) */
    size_t n_jobs;          /* submitted */
    size_t hit[4];          /* kills that found a sweep, fit, train running; none */
};

static uint64_t cr_next(struct crash *c)
{
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned long cr_env(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    char *end = NULL;
    unsigned long x = v && *v ? strtoul(v, &end, 10) : dflt;
    return end && *end ? dflt : x;
}

static int cr_setup(void **state)
{
    struct crash *c = calloc(1, sizeof *c);
    if (!c || qd_init(&c->d, 2) != 0)
        return -1;
    *state = c;
    return 0;
}

static int cr_teardown(void **state)
{
    struct crash *c = *state;
    qd_kill(&c->d);
    qt_rmtree(c->d.dir);
    free(c);
    return 0;
}

/* ---- the jobs ------------------------------------------------------------------------ */

static int64_t cr_submit(struct crash *c, const char *fmt, ...)
{
    char job[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(job, sizeof job, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof job);
    c->n_jobs++;
    return qd_submit(&c->d, NULL, job);
}

static int64_t cr_sweep(struct crash *c, const char *dev, int samples, const char *range,
                        int seed)
{
    return cr_submit(c,
                     "{\"type\": \"sweep\", \"name\": \"sweep\", \"spec\": {\"device\": %s, "
                     "\"samples\": %d, \"seed\": %d, \"ranges\": {\"u1\": %s}}}",
                     dev, samples, seed, range);
}

static int64_t cr_fit(struct crash *c, int64_t sweep, int seed)
{
    return cr_submit(c,
                     "{\"type\": \"fit\", \"name\": \"fit\", \"spec\": {\"dataset\": {\"job\": "
                     "%" PRId64 "}, \"hidden\": [16], \"epochs\": %d, \"batch\": 128, \"seed\": "
                     "%d}}",
                     sweep, CR_FIT_EPOCHS, seed);
}

/* A train through the surrogate of fit job `fit` (device dev) on dataset ds. */
static int64_t cr_train_via(struct crash *c, const char *ds, const char *dev, int64_t fit,
                            int seed)
{
    return cr_submit(c,
                     "{\"type\": \"train\", \"name\": \"train\", \"spec\": {\"dataset\": %s, "
                     "\"network\": [{\"devices\": 16, \"device\": %s, \"via\": \"surrogate\", "
                     "\"surrogate\": {\"job\": %" PRId64 "}}, {\"devices\": 2, \"device\": " IDENTITY
                     "}], \"epochs\": %d, \"batch\": 32, \"seed\": %d, \"checkpoint_every\": 1}}",
                     ds, dev, fit, CR_TRAIN_EPOCHS, seed);
}

/* One wave of jobs (see the file comment). */
static void cr_wave(struct crash *c, int w)
{
    char spirals[128];
    snprintf(spirals, sizeof spirals, "{\"name\": \"spirals\", \"samples\": %d}",
             CR_TRAIN_SAMPLES);
    int64_t s = cr_sweep(c, CRN, CR_CRN_SAMPLES, "[-4, 4]", w + 1);
    int64_t f = cr_fit(c, s, w + 1);
    cr_train_via(c, spirals, CRN, f, w + 1);
    if (w % 2 == 0) {
        int64_t hs = cr_sweep(c, HH, CR_HH_SAMPLES, "[0, 15]", w + 1);
        int64_t hf = cr_fit(c, hs, w + 1);
        cr_train_via(c, "{\"name\": \"xor\", \"samples\": 400}", HH, hf, w + 1);
    }
    if (c->last_crn_fit)
        cr_train_via(c, spirals, CRN, c->last_crn_fit, w + 100);
    c->last_crn_fit = f;
    cr_submit(c,
              "{\"type\": \"train\", \"name\": \"plain\", \"spec\": {\"dataset\": %s, "
              "\"network\": [{\"devices\": 64, \"device\": " TANH "}, {\"devices\": 64, "
              "\"device\": " TANH "}, {\"devices\": 2, \"device\": " IDENTITY "}], \"epochs\": "
              "%d, \"batch\": 32, \"seed\": %d, \"checkpoint_every\": 1}}",
              spirals, CR_TRAIN_EPOCHS, w + 1);
}

/* Every job record, over all pages (new reference: an array). */
static json_t *cr_jobs(struct crash *c, const char *filter)
{
    json_t *all = json_array();
    int64_t cursor = 0;
    for (;;) {
        char path[160];
        json_t *r = NULL;
        snprintf(path, sizeof path, "/v1/jobs?limit=1000&cursor=%" PRId64 "%s", cursor, filter);
        assert_int_equal(qd_http(&c->d, "GET", path, NULL, NULL, &r), 200);
        json_array_extend(all, json_object_get(r, "jobs"));
        json_t *next = json_object_get(r, "next");
        cursor = json_is_integer(next) ? json_integer_value(next) : 0;
        json_decref(r);
        if (!cursor)
            return all;
    }
}

/* Notes which job types run now (just before a kill). */
static void cr_note_running(struct crash *c)
{
    json_t *run = cr_jobs(c, "&state=running");
    int seen[3] = {0, 0, 0};
    size_t i;
    json_t *j;
    json_array_foreach(run, i, j)
    {
        const char *t = json_string_value(json_object_get(j, "type"));
        seen[0] |= t && !strcmp(t, "sweep");
        seen[1] |= t && !strcmp(t, "fit");
        seen[2] |= t && !strcmp(t, "train");
    }
    for (int k = 0; k < 3; k++)
        c->hit[k] += (size_t)seen[k];
    c->hit[3] += json_array_size(run) == 0;
    json_decref(run);
}

/* Polls until no job is waiting, queued or running; the seconds it took. */
static double cr_drain(struct crash *c)
{
    double t0 = qd_now();
    for (;;) {
        json_t *all = cr_jobs(c, "");
        size_t open = 0, i;
        json_t *j;
        json_array_foreach(all, i, j)
            open += !qd_is_final(json_string_value(json_object_get(j, "state")));
        size_t n = json_array_size(all);
        json_decref(all);
        if (open == 0 && n == c->n_jobs)
            return qd_now() - t0;
        if (qd_now() - t0 > CR_DRAIN_S)
            fail_msg("%zu of %zu jobs still open after %.0f s", open, n, CR_DRAIN_S);
        qd_nap_ms(20);
    }
}

/* ---- the checks ---------------------------------------------------------------------- */

/* What the checks need of one job. */
struct cr_job {
    int64_t id;
    char type[16];
    int64_t epochs;     /* train: the spec's; fit: the result's (early stopping) */
    int64_t rows;       /* sweep: the result's */
    int64_t samples;    /* sweep: the spec's */
    int64_t dataset;    /* sweep: the result's */
};

/* Every job, each asserted `succeeded`; the count into *n. */
static struct cr_job *cr_load_jobs(sqlite3 *db, size_t *n)
{
    struct cr_job *jobs = calloc(CR_MAX_JOBS, sizeof *jobs);
    assert_non_null(jobs);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT id, type, state, coalesce(error, ''),"
                                        " CASE type WHEN 'train' THEN json_extract(spec, '$.epochs')"
                                        " ELSE json_extract(result, '$.epochs') END,"
                                        " json_extract(result, '$.rows'),"
                                        " json_extract(spec, '$.samples'),"
                                        " json_extract(result, '$.dataset') FROM jobs ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    size_t k = 0, bad = 0;
    while (sqlite3_step(st) == SQLITE_ROW && k < CR_MAX_JOBS) {
        struct cr_job *j = &jobs[k++];
        j->id = sqlite3_column_int64(st, 0);
        snprintf(j->type, sizeof j->type, "%s", (const char *)sqlite3_column_text(st, 1));
        const char *state = (const char *)sqlite3_column_text(st, 2);
        if (strcmp(state, "succeeded") != 0) {
            fprintf(stderr, "job %" PRId64 " (%s) is %s: %s\n", j->id, j->type, state,
                    (const char *)sqlite3_column_text(st, 3));
            bad++;
        }
        j->epochs = sqlite3_column_int64(st, 4);
        j->rows = sqlite3_column_int64(st, 5);
        j->samples = sqlite3_column_int64(st, 6);
        j->dataset = sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    if (bad)
        fail_msg("%zu of %zu jobs did not succeed", bad, k);
    *n = k;
    return jobs;
}

/* The sweep's one dataset: its rows and blocks. */
static void cr_check_dataset(sqlite3 *db, const struct cr_job *j)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM datasets WHERE job_id = %" PRId64, j->id);
    int64_t n = qd_db_int(db, sql);
    if (n != 1)
        fail_msg("sweep job %" PRId64 " has %" PRId64 " datasets", j->id, n);
    snprintf(sql, sizeof sql, "SELECT id FROM datasets WHERE job_id = %" PRId64, j->id);
    int64_t ds = qd_db_int(db, sql);
    assert_int_equal(ds, j->dataset);
    assert_int_equal(j->rows, j->samples);
    snprintf(sql, sizeof sql, "SELECT n_rows FROM datasets WHERE id = %" PRId64, ds);
    assert_int_equal(qd_db_int(db, sql), j->samples);
    /* Blocks 0..k-1 once each (UNIQUE (dataset_id, block) rules out repeats). */
    snprintf(sql, sizeof sql,
             "SELECT count(*) = 1 + max(block) AND min(block) = 0 AND sum(b.n_rows) = d.n_rows"
             " AND sum(length(data) = b.n_rows * d.n_cols * 4) = count(*)"
             " AND sum(b.n_rows = d.block_rows OR b.block = (d.n_rows - 1) / d.block_rows)"
             " = count(*) FROM dataset_blocks b JOIN datasets d ON d.id = b.dataset_id"
             " WHERE d.id = %" PRId64,
             ds);
    if (qd_db_int(db, sql) != 1)
        fail_msg("dataset %" PRId64 " of sweep job %" PRId64 ": its blocks do not add up", ds,
                 j->id);
}

/* Exactly one row in `table` made by job j. */
static void cr_check_one(sqlite3 *db, const char *table, const struct cr_job *j)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE job_id = %" PRId64, table, j->id);
    int64_t n = qd_db_int(db, sql);
    if (n != 1)
        fail_msg("%s job %" PRId64 " has %" PRId64 " rows in %s", j->type, j->id, n, table);
}

/* One (job, name) history, in insertion order: epochs 1..E once each, or (step_loss)
 * steps 20, 40, ... with epochs not decreasing. */
static void cr_check_history(sqlite3 *db, const struct cr_job *j, const char *name)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT step, epoch FROM metrics WHERE job_id = ?1 AND"
                                        " name = ?2 ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, j->id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int steps = strcmp(name, "step_loss") == 0;
    int64_t k = 0, last_epoch = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t step = sqlite3_column_int64(st, 0), epoch = sqlite3_column_int64(st, 1);
        k++;
        if (steps && (step != k * CR_STEP_EVERY || epoch < last_epoch || epoch > j->epochs))
            fail_msg("job %" PRId64 " step_loss #%" PRId64 ": step %" PRId64 " epoch %" PRId64
                     " (want step %" PRId64 ", epoch >= %" PRId64 ")",
                     j->id, k, step, epoch, k * CR_STEP_EVERY, last_epoch);
        if (!steps && epoch != k)
            fail_msg("job %" PRId64 " %s #%" PRId64 " is at epoch %" PRId64, j->id, name, k,
                     epoch);
        last_epoch = epoch;
    }
    sqlite3_finalize(st);
    if (!steps && k != j->epochs)
        fail_msg("job %" PRId64 " %s: %" PRId64 " epochs recorded, %" PRId64 " run", j->id, name,
                 k, j->epochs);
    if (steps && k == 0)
        fail_msg("job %" PRId64 " has no step_loss", j->id);
}

/* Every metric name of a fit or train job is continuous; a train has every checkpoint. */
static void cr_check_metrics(sqlite3 *db, const struct cr_job *j)
{
    static const char *const fit_names[] = {"train_loss", "val_rmse", NULL};
    static const char *const train_names[] = {"step_loss", "train_loss", "train_accuracy",
                                              "test_loss", "test_accuracy", "seconds", NULL};
    int train = strcmp(j->type, "train") == 0;
    assert_true(j->epochs >= 1);
    for (const char *const *n = train ? train_names : fit_names; *n; n++)
        cr_check_history(db, j, *n);
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM metrics WHERE job_id = %" PRId64 " AND name NOT IN (%s",
             j->id,
             train ? "'step_loss', 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy',"
                     " 'seconds') AND name NOT LIKE 'out_of_domain%%'"
                   : "'train_loss', 'val_rmse', 'step_loss')");
    assert_int_equal(qd_db_int(db, sql), 0); /* nothing unexpected (checked above) */
    if (!train)
        return;
    snprintf(sql, sizeof sql,
             "SELECT count(*) > 0 FROM metrics WHERE job_id = %" PRId64
             " AND name = 'out_of_domain'",
             j->id);
    if (qd_db_int(db, sql)) /* a surrogate layer: its domain counts are per epoch too */
        cr_check_history(db, j, "out_of_domain");
    snprintf(sql, sizeof sql,
             "SELECT count(*) = %" PRId64 " AND min(epoch) = 1 AND max(epoch) = %" PRId64
             " FROM checkpoints WHERE job_id = %" PRId64,
             j->epochs, j->epochs, j->id);
    if (qd_db_int(db, sql) != 1)
        fail_msg("train job %" PRId64 ": checkpoints are not epochs 1..%" PRId64, j->id,
                 j->epochs);
}

/* Everything the file comment promises, on the stopped daemon's database. */
static void cr_check_db(struct crash *c)
{
    sqlite3 *db = qd_db_open(c->d.db);
    qd_db_integrity_ok(db);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    size_t n = 0, types[3] = {0, 0, 0};
    struct cr_job *jobs = cr_load_jobs(db, &n);
    assert_int_equal(n, c->n_jobs);
    for (size_t i = 0; i < n; i++) {
        const struct cr_job *j = &jobs[i];
        if (strcmp(j->type, "sweep") == 0) {
            cr_check_dataset(db, j);
            types[0]++;
        } else if (strcmp(j->type, "fit") == 0) {
            cr_check_one(db, "surrogates", j);
            cr_check_metrics(db, j);
            types[1]++;
        } else {
            assert_string_equal(j->type, "train");
            cr_check_one(db, "models", j);
            cr_check_metrics(db, j);
            types[2]++;
        }
    }
    /* No dataset, surrogate or model that no job accounts for. */
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM datasets"), (int64_t)types[0]);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM surrogates"), (int64_t)types[1]);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM models"), (int64_t)types[2]);
    printf("checked %zu jobs (%zu sweeps, %zu fits, %zu trains): all succeeded, datasets, "
           "surrogates, models and metric histories complete, integrity ok\n",
           n, types[0], types[1], types[2]);
    free(jobs);
    sqlite3_close(db);
}

/* ---- the test ------------------------------------------------------------------------- */

static void test_kill9_again_and_again(void **state)
{
    struct crash *c = *state;
    unsigned long kills = cr_env("QN_CRASH_KILLS", 3);
    uint64_t seed = cr_env("QN_CRASH_SEED", (unsigned long)time(NULL) ^ (unsigned long)getpid());
    c->rng = seed;
    printf("crash test: %lu kills, seed %" PRIu64 " (QN_CRASH_SEED=%" PRIu64
           " repeats the kill moments)\n",
           kills, seed, seed);
    double t0 = qd_now();
    unsigned long survived = 0;
    for (unsigned long k = 0; k < kills; k++) {
        qd_start(&c->d);
        cr_wave(c, (int)k);
        long ms = (long)(cr_next(c) % (CR_KILL_MAX_MS + 1));
        double until = qd_now() + ms / 1000.0;
        while (qd_now() < until)
            qd_nap_ms(until - qd_now() > 0.005 ? 5 : 1); /* the kill moment itself */
        cr_note_running(c);
        int st = qd_stop(&c->d, SIGKILL);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        survived++;
    }
    qd_start(&c->d);
    double drain = cr_drain(c);
    assert_int_equal(qd_stop(&c->d, SIGTERM), 0);
    printf("survived %lu kills -9 (running at the kill: a sweep %zu times, a fit %zu, a train "
           "%zu, nothing %zu); %zu jobs; the last run finished the rest in %.1f s; %.1f s in "
           "all\n",
           survived, c->hit[0], c->hit[1], c->hit[2], c->hit[3], c->n_jobs, drain,
           qd_now() - t0);
    char *log = qt_read_file(c->d.log, NULL);
    size_t requeued = 0;
    for (const char *p = log; p && (p = strstr(p, "requeued at start-up")); p++)
        requeued++;
    printf("jobs requeued at start-up: %zu\n", requeued);
    free(log);
    cr_check_db(c);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_again_and_again, cr_setup, cr_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
