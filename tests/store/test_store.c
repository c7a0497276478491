/*
 * test_store.c: the SQLite store and its migrations.
 *
 * Covers: the embedded migration SQL is byte-identical to the files in migrations/;
 * migrations apply once (also with several processes opening a new database
 * at once) and reopening is a no-op; a database newer than the program is
 * refused; datasets round-trip across block boundaries; a failed or killed
 * dataset write leaves nothing; devices, jobs and metrics; metric ids never
 * reused after a trim, and migration 0005 keeping every metric row and id;
 * CSV export; a checkpoint's arch written and read with it, and the trim
 * of a run resumed inside an epoch; and PRAGMA integrity_check afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "migrate.h"
#include "qn_err.h"
#include "qn_test.h"
#include "qt_daemon.h"
#include "store.h"
#include "store_internal.h" /* store_sqlite: raw access to inspect the database */
#include "store_catalog.h"
#include "store_queue.h"
#include "store_tx.h"

/* Per-test state: a temp dir and the database path in it. */
struct fx {
    char dir[512];
    char db[600];
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || qt_tmpdir(f->dir, sizeof f->dir) != 0)
        return -1;
    snprintf(f->db, sizeof f->db, "%s/t.db", f->dir);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    qt_rmtree(f->dir);
    free(f);
    return 0;
}

/* Opens the fixture's database, failing the test on error. */
static struct store *open_ok(const struct fx *f)
{
    struct store *s = NULL;
    char msg[STORE_MSG_MAX];
    int rc = store_open(f->db, &s, msg, sizeof msg);
    if (rc)
        fail_msg("store_open: %s (%s)", qn_err_name(rc), msg);
    return s;
}

/* Runs one SQL statement returning one integer through a raw connection. */
static long long sql_int(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static void sql_exec(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* Finds the repository's migrations/ folder: the working directory's, or
 * one above the test binary's build directory (QN_BIN). */
static int find_migrations(char *buf, size_t cap)
{
    char path[512];
    snprintf(buf, cap, "migrations");
    if (access("migrations/0001_init.sql", R_OK) == 0)
        return 0;
#ifdef QN_BIN
    snprintf(path, sizeof path, "%s", QN_BIN);
    char *slash;
    while ((slash = strrchr(path, '/')) != NULL) {
        *slash = '\0';
        snprintf(buf, cap, "%s/migrations", path);
        char probe[1200];
        snprintf(probe, sizeof probe, "%s/migrations/0001_init.sql", path);
        if (access(probe, R_OK) == 0)
            return 0;
    }
#endif
    (void)path;
    return -1;
}

static void test_embedded_sql_matches_files(void **state)
{
    (void)state;
    char dir[1024];
    assert_int_equal(find_migrations(dir, sizeof dir), 0);
    assert_true(migrate_count >= 1);
    for (size_t i = 0; i < migrate_count; i++) {
        assert_int_equal(migrate_list[i].version, (int)i + 1);
        char path[1200];
        snprintf(path, sizeof path, "%s/%s.sql", dir, migrate_list[i].name);
        size_t len = 0;
        char *text = qt_read_file(path, &len);
        if (!text)
            fail_msg("%s is embedded but cannot be read", path);
        if (len != strlen(migrate_list[i].sql) || memcmp(text, migrate_list[i].sql, len) != 0)
            fail_msg("server/store/migrations_embed.c differs from %s: regenerate it", path);
        free(text);
    }
    size_t files = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && l > 4 &&
            strcmp(e->d_name + l - 4, ".sql") == 0)
            files++;
    }
    closedir(d);
    if (files != migrate_count)
        fail_msg("%zu migration files but %zu embedded: regenerate server/store/migrations_embed.c",
                 files, migrate_count);
}

static void test_migrations_once_and_idempotent(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int v = 0;
    assert_int_equal(store_schema_version(s, &v), 0);
    assert_int_equal(v, migrate_latest());
    int64_t id = 0;
    assert_int_equal(store_device_insert(s, "d", "crn_relu", "{\"kind\":\"crn_relu\"}", &id), 0);
    store_close(s);
    for (int i = 0; i < 2; i++) {
        s = open_ok(f);
        store_close(s);
    }
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM schema_migrations"), migrate_count);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), migrate_latest());
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM devices"), 1);
    assert_int_equal(sql_int(f->db, "PRAGMA foreign_keys"), 0); /* raw handle: default off */
    s = open_ok(f);
    assert_int_equal(store_integrity_check(s), 0);
    store_close(s);
}

static void test_concurrent_first_open(void **state)
{
    struct fx *f = *state;
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            struct store *s = NULL;
            int rc = store_open(f->db, &s, NULL, 0);
            store_close(s);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st = 0;
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM schema_migrations"), migrate_count);
}

static void test_newer_database_refused(void **state)
{
    struct fx *f = *state;
    store_close(open_ok(f));
    sql_exec(f->db, "PRAGMA user_version = 999");
    struct store *s = (struct store *)1;
    char msg[STORE_MSG_MAX] = "";
    assert_int_equal(store_open(f->db, &s, msg, sizeof msg), QN_EVERSION);
    assert_null(s);
    assert_non_null(strstr(msg, "999"));
    assert_non_null(strstr(msg, "newer"));
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), 999); /* untouched */
}

static void test_wal_and_foreign_keys(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM pragma_journal_mode WHERE journal_mode"
                                    " = 'wal'"),
                     1);
    /* A dataset naming a job that does not exist violates the foreign key. */
    const char *cols[] = {"a"};
    struct store_dswriter *w = NULL;
    assert_int_equal(store_dataset_begin(s, "x", "csv", 1, cols, 42, &w), QN_EDB);
    assert_null(w);
    store_close(s);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM datasets"), 0);
}

/* Value of row r, column c of the synthetic test dataset. */
static float cell(size_t r, size_t c)
{
    return (float)r * 0.5f + (float)c * 1e-3f - 100.0f;
}

/* Writes n rows of 3 columns in uneven chunks; returns the dataset id. */
static int64_t write_dataset(struct store *s, size_t n)
{
    const char *cols[] = {"u1", "out", "status"};
    struct store_dswriter *w = NULL;
    assert_int_equal(store_dataset_begin(s, "ds", "csv", 3, cols, 0, &w), 0);
    float *rows = malloc(n * 3 * sizeof(float));
    assert_non_null(rows);
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < 3; c++)
            rows[r * 3 + c] = cell(r, c);
    size_t done = 0, chunk = 1000;
    while (done < n) {
        size_t k = n - done < chunk ? n - done : chunk;
        assert_int_equal(store_dataset_append(w, rows + done * 3, k), 0);
        done += k;
        chunk = chunk * 3 + 1; /* 1000, 3001, 9004: chunks straddle block edges */
    }
    free(rows);
    int64_t id = 0;
    assert_int_equal(store_dataset_finish(w, &id), 0);
    return id;
}

static void test_dataset_round_trip(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    const size_t n = 2 * STORE_BLOCK_ROWS + 1808;
    int64_t id = write_dataset(s, n);

    struct store_dataset d;
    assert_int_equal(store_dataset_get(s, id, &d), 0);
    assert_int_equal(d.n_rows, n);
    assert_int_equal(d.n_cols, 3);
    assert_string_equal(d.columns, "[\"u1\",\"out\",\"status\"]");
    assert_string_equal(d.source, "csv");
    assert_int_equal(d.job_id, 0);
    store_dataset_free(&d);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM dataset_blocks"), 3);

    float *all = malloc(n * 3 * sizeof(float));
    assert_non_null(all);
    assert_int_equal(store_dataset_read(s, id, 0, n, all), 0);
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < 3; c++)
            assert_true(all[r * 3 + c] == cell(r, c));
    /* A window across the first block boundary. */
    float win[20 * 3];
    assert_int_equal(store_dataset_read(s, id, STORE_BLOCK_ROWS - 10, 20, win), 0);
    for (size_t r = 0; r < 20; r++)
        assert_true(win[r * 3 + 1] == cell(STORE_BLOCK_ROWS - 10 + r, 1));
    assert_int_equal(store_dataset_read(s, id, n - 5, 6, win), QN_ERANGE);
    assert_int_equal(store_dataset_read(s, id + 1, 0, 1, win), QN_ENOTFOUND);
    free(all);

    /* Corrupt a block's size: the read says so rather than return garbage. */
    sql_exec(f->db, "UPDATE dataset_blocks SET data = substr(data, 1, 8) WHERE block = 1");
    assert_int_equal(store_dataset_read(s, id, STORE_BLOCK_ROWS, 1, win), QN_EFORMAT);
    store_close(s);
}

static void test_failed_write_leaves_nothing(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    const char *cols[] = {"a", "b"};
    float rows[2 * 100];
    for (size_t i = 0; i < 200; i++)
        rows[i] = (float)i;
    struct store_dswriter *w = NULL;
    assert_int_equal(store_dataset_begin(s, "gone", "csv", 2, cols, 0, &w), 0);
    for (int i = 0; i < 100; i++) /* 10000 rows: two blocks written to the db */
        assert_int_equal(store_dataset_append(w, rows, 100), 0);
    store_dataset_abort(w);
    store_dataset_abort(NULL);
    /* The connection is usable again, outside any transaction. */
    assert_int_equal(store_device_insert(s, NULL, "neuron", "{}", NULL), 0);
    store_close(s);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM datasets"), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM dataset_blocks"), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM devices"), 1);
}

static void test_killed_write_leaves_nothing(void **state)
{
    struct fx *f = *state;
    store_close(open_ok(f));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *s = NULL;
        const char *cols[] = {"a"};
        float rows[STORE_BLOCK_ROWS] = {0};
        struct store_dswriter *w = NULL;
        if (store_open(f->db, &s, NULL, 0) || store_dataset_begin(s, "k", "csv", 1, cols, 0, &w))
            _exit(1);
        for (int i = 0; i < 3; i++)
            if (store_dataset_append(w, rows, STORE_BLOCK_ROWS))
                _exit(1);
        _exit(0); /* dies mid-write, like kill -9: no finish, no close */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct store *s = open_ok(f);
    assert_int_equal(store_integrity_check(s), 0);
    size_t n = 99;
    struct store_dataset *list = NULL;
    assert_int_equal(store_dataset_list(s, 0, 0, &list, &n), 0);
    assert_int_equal(n, 0);
    store_dataset_list_free(list, n);
    store_close(s);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM dataset_blocks"), 0);
}

/* Exports dataset id into a new string. */
static char *export_csv(struct store *s, int64_t id)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    assert_int_equal(store_dataset_export_csv(s, id, m), 0);
    fclose(m);
    return buf;
}

static void test_export_csv(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t job = 0;
    assert_int_equal(store_job_insert(s, "sweep", "j", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    const char *cols[] = {"u1", "out", "status"};
    float rows[] = {-1.5f, 0.1f, 0.0f, 2.0f, NAN, (float)QN_ENOTCONV};
    struct store_dswriter *w = NULL;
    int64_t id = 0;
    assert_int_equal(store_dataset_begin(s, "sw", "sweep", 3, cols, job, &w), 0);
    assert_int_equal(store_dataset_append(w, rows, 2), 0);
    assert_int_equal(store_dataset_finish(w, &id), 0);
    char *csv = export_csv(s, id);
    assert_string_equal(csv, "u1,out,status\n-1.5,0.1,ok\n2,nan,not_converged\n");
    free(csv);

    /* Column names that need CSV quoting; "status" of a csv dataset is a number. */
    const char *cols2[] = {"a,b", "say \"hi\"", "status"};
    float r2[] = {1, 2, 3};
    assert_int_equal(store_dataset_begin(s, NULL, "csv", 3, cols2, 0, &w), 0);
    assert_int_equal(store_dataset_append(w, r2, 1), 0);
    assert_int_equal(store_dataset_finish(w, &id), 0);
    csv = export_csv(s, id);
    assert_string_equal(csv, "\"a,b\",\"say \"\"hi\"\"\",status\n1,2,3\n");
    free(csv);

    /* A big one: header plus one line per row, across blocks. */
    id = write_dataset(s, STORE_BLOCK_ROWS + 7);
    csv = export_csv(s, id);
    assert_int_equal(qt_count_lines(csv), STORE_BLOCK_ROWS + 8);
    free(csv);
    store_close(s);
}

static void test_devices(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t a = 0, b = 0, c = 0;
    assert_int_equal(store_device_insert(s, "crn", "crn_relu", "{\"kind\":\"crn_relu\"}", &a), 0);
    assert_int_equal(store_device_insert(s, "crn", "neuron", "{}", NULL), QN_EEXIST);
    assert_int_equal(store_device_insert(s, NULL, "neuron", "{}", &b), 0);
    assert_int_equal(store_device_insert(s, NULL, "neuron", "{}", &c), 0);
    assert_int_equal(store_device_insert(s, "bad", "neuron", "{not json", NULL), QN_EDB);

    struct store_device d;
    assert_int_equal(store_device_get_by_name(s, "crn", &d), 0);
    assert_int_equal(d.id, a);
    assert_true(d.has_name);
    assert_string_equal(d.kind, "crn_relu");
    assert_string_equal(d.spec, "{\"kind\":\"crn_relu\"}");
    assert_int_equal(strlen(d.created), 24); /* 2026-11-23T11:01:20.123Z */
    assert_int_equal(d.created[23], 'Z');
    store_device_free(&d);
    assert_int_equal(store_device_get(s, b, &d), 0);
    assert_false(d.has_name);
    store_device_free(&d);
    assert_int_equal(store_device_get(s, 999, &d), QN_ENOTFOUND);
    assert_int_equal(store_device_get_by_name(s, "nope", &d), QN_ENOTFOUND);

    struct store_device *list = NULL;
    size_t n = 0;
    assert_int_equal(store_device_list(s, 0, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[2].id, c);
    store_device_list_free(list, n);
    assert_int_equal(store_device_list(s, a, 1, &list, &n), 0); /* a page */
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, b);
    store_device_list_free(list, n);
    store_close(s);
}

static void test_jobs_and_metrics(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t id = 0, id2 = 0;
    assert_int_equal(store_job_insert(s, "sweep", "first", NULL, 3, JOB_RUNNING, "{\"a\":1}", &id),
                     0);
    assert_int_equal(store_job_insert(s, "fit", "second", "ann", 0, JOB_QUEUED, "{}", &id2), 0);
    struct store_job j;
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(j.owner, "local");
    assert_int_equal(j.priority, 3);
    assert_int_equal(j.state, JOB_RUNNING);
    assert_int_not_equal(j.started[0], '\0');
    assert_string_equal(j.finished, "");
    assert_null(j.result);
    assert_null(j.error);
    store_job_free(&j);

    assert_int_equal(store_job_set_state(s, id, JOB_SUCCEEDED, "{\"rows\":5}", NULL), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_int_equal(j.state, JOB_SUCCEEDED);
    assert_string_equal(j.result, "{\"rows\":5}");
    assert_int_equal(strlen(j.finished), 24);
    assert_true(strcmp(j.finished, j.started) >= 0);
    store_job_free(&j);
    assert_int_equal(store_job_set_state(s, 12345, JOB_FAILED, NULL, "x"), QN_ENOTFOUND);
    assert_int_equal(store_job_set_state(s, id2, JOB_FAILED, NULL, "no such dataset"), 0);

    struct store_job *list = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(s, NULL, 0, 0, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[1].owner, "ann");
    assert_int_equal(list[1].state, JOB_FAILED);
    assert_string_equal(list[1].error, "no such dataset");
    assert_string_equal(list[1].started, "");
    store_job_list_free(list, n);

    enum store_job_state st;
    assert_int_equal(store_job_state_from_name("canceled", &st), 0);
    assert_int_equal(st, JOB_CANCELED);
    assert_string_equal(store_job_state_name(JOB_WAITING), "waiting");
    assert_int_equal(store_job_state_from_name("done", &st), QN_EINVAL);

    assert_int_equal(store_metric_insert(s, id, 1, 0, "step_loss", 0.5), 0);
    assert_int_equal(store_metric_insert(s, id, 2, 0, "step_loss", NAN), 0);
    assert_int_equal(store_metric_insert(s, id, 2, 0, "step_loss", 0.25), QN_EEXIST);
    assert_int_equal(store_metric_insert(s, 999, 1, 0, "step_loss", 1.0), QN_EDB);
    assert_int_equal(store_integrity_check(s), 0);
    store_close(s);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics WHERE value IS NULL"), 1);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics WHERE time > 1.7e9"), 2);
}

/* A job's launch handle (a Slurm job id) is stored, read back, kept when the
 * job is requeued at start-up (the restarted daemon attaches with it) and
 * cleared; one too long, or of no such job, is refused. */
static int requeue_move(void *ctx, int64_t id, const char *type, const char *owner,
                        enum store_job_state from, enum store_job_state to, const char *why)
{
    (void)ctx, (void)id, (void)type, (void)owner, (void)from, (void)to, (void)why;
    return 0;
}

static void test_job_launch_handle(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t id = 0;
    struct store_job j;
    char big[STORE_HANDLE_MAX + 1];
    assert_int_equal(store_job_insert(s, "sweep", "slurm", NULL, 0, JOB_RUNNING, "{}", &id), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(j.handle, "");
    store_job_free(&j);
    assert_int_equal(store_job_set_handle(s, id, "4711"), 0);
    size_t n = 0;
    assert_int_equal(store_queue_requeue_all(s, requeue_move, NULL, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_int_equal(j.state, JOB_QUEUED);
    assert_string_equal(j.handle, "4711");
    store_job_free(&j);
    assert_int_equal(store_job_set_handle(s, id, NULL), 0);
    assert_int_equal(store_job_get(s, id, &j), 0);
    assert_string_equal(j.handle, "");
    store_job_free(&j);
    memset(big, '7', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(store_job_set_handle(s, id, big), QN_ERANGE);
    assert_int_equal(store_job_set_handle(s, id + 1, "1"), QN_ENOTFOUND);
    store_close(s);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM jobs WHERE launch_handle IS NULL"), 1);
}

/* Metric ids are SSE event ids: after store_metric_delete_after (a resumed
 * train job) the rows written next get ids above every id ever given. */
static void test_metric_ids_never_reused(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t job = 0;
    assert_int_equal(store_job_insert(s, "train", "t", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    long long max_given = 0;
    for (int round = 0; round < 3; round++) {
        /* Epochs 1..3, then 2..3 again after each trim, two metrics each. */
        for (int64_t e = round ? 2 : 1; e <= 3; e++) {
            assert_int_equal(store_metric_insert(s, job, e, e, "step_loss", 1.0 / (double)e), 0);
            assert_int_equal(store_metric_insert(s, job, e, e, "train_loss", 0.5), 0);
        }
        if (round > 0) /* the rewritten rows */
            assert_true(sql_int(f->db, "SELECT min(id) FROM metrics WHERE epoch > 1") > max_given);
        long long mx = sql_int(f->db, "SELECT max(id) FROM metrics");
        assert_true(mx > max_given);
        max_given = mx;
        assert_int_equal(store_metric_delete_after(s, job, 1), 0); /* epochs 2, 3 go */
        assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics"), 2);
    }
    /* Even with every row gone the next id is new. */
    assert_int_equal(store_metric_delete_after(s, job, 0), 0);
    assert_int_equal(store_metric_insert(s, job, 1, 1, "step_loss", 0.1), 0);
    assert_true(sql_int(f->db, "SELECT max(id) FROM metrics") > max_given);
    assert_int_equal(store_integrity_check(s), 0);
    store_close(s);
}

/* f's database as the first `version` migrations leave it (user_version
 * set), then `rows` run on it: what an older qn left behind. */
static void db_at_version(struct fx *f, size_t version, const char *rows)
{
    assert_true(migrate_count > version);
    sqlite3 *h = NULL;
    char v[40];
    assert_int_equal(sqlite3_open(f->db, &h), SQLITE_OK);
    for (size_t i = 0; i < version; i++)
        assert_int_equal(sqlite3_exec(h, migrate_list[i].sql, NULL, NULL, NULL), SQLITE_OK);
    snprintf(v, sizeof v, "PRAGMA user_version = %zu", version);
    assert_int_equal(sqlite3_exec(h, v, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, rows, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

/* 0008_model_owners on a version-7 database gives each model its train
 * job's owner, 'local' when the job is gone, and resolves names by owner. */
static void test_model_owners_migration(void **state)
{
    struct fx *f = *state;
    db_at_version(f, 7,
                  "INSERT INTO jobs (id, type, name, owner, state, spec) VALUES"
                  " (1, 'train', 'm', 'alice', 'succeeded', '{}'),"
                  " (2, 'train', 'm', 'bob', 'succeeded', '{}');"
                  "INSERT INTO models (id, name, job_id, spec, n_in, n_out,"
                  " n_classes, loss, params, scaler) VALUES"
                  " (10, 'm', 1, '{}', 1, 1, 0, 'mse', x'', x''),"
                  " (11, 'm', 2, '{}', 1, 1, 0, 'mse', x'', x''),"
                  " (12, 'old', NULL, '{}', 1, 1, 0, 'mse', x'', x'')");
    struct store *s = open_ok(f);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), migrate_latest());
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM models WHERE (id, owner) IN (VALUES"
                                    " (10, 'alice'), (11, 'bob'), (12, 'local'))"),
                     3);
    struct store_model m;
    store_set_owner(s, "alice");
    assert_int_equal(store_model_get_by_name(s, "m", &m), 0);
    assert_int_equal(m.id, 10); /* hers, though bob's is newer */
    assert_string_equal(m.owner, "alice");
    store_model_free(&m);
    assert_int_equal(store_model_get_by_name(s, "bob/m", &m), 0);
    assert_int_equal(m.id, 11);
    store_model_free(&m);
    assert_int_equal(store_model_get_by_name(s, "old", &m), 0); /* local's, for everyone */
    store_model_free(&m);
    store_set_owner(s, "carol");
    assert_int_equal(store_model_get_by_name(s, "m", &m), QN_ENOTFOUND);
    store_close(s);
}

/* 0005_metric_ids on a version-4 database keeps every row and id, the UNIQUE
 * index and the foreign key, continues the ids after the largest, and gives
 * the metric query its (job_id, id) index. */
static void test_metric_ids_migration_keeps_rows(void **state)
{
    struct fx *f = *state;
    db_at_version(f, 4,
                  "INSERT INTO jobs (id, type, name, state, spec) VALUES"
                  " (1, 'train', 'a', 'running', '{}'),"
                  " (2, 'train', 'b', 'running', '{}');"
                  "INSERT INTO metrics (id, job_id, step, epoch, name, value, time)"
                  " VALUES (3, 1, 10, 0, 'step_loss', 0.5, 1.8e9),"
                  " (7, 2, 10, 0, 'step_loss', NULL, 1.8e9),"
                  " (40, 1, 20, 1, 'step_loss', 0.25, 1.8e9)");

    struct store *s = open_ok(f);
    assert_int_equal(sql_int(f->db, "PRAGMA user_version"), migrate_latest());
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics WHERE (id, job_id, step, epoch,"
                                    " name, value IS NULL, coalesce(value, 0), time) IN (VALUES"
                                    " (3, 1, 10, 0, 'step_loss', 0, 0.5, 1.8e9),"
                                    " (7, 2, 10, 0, 'step_loss', 1, 0, 1.8e9),"
                                    " (40, 1, 20, 1, 'step_loss', 0, 0.25, 1.8e9))"),
                     3);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics"), 3);
    assert_int_equal(sql_int(f->db, "SELECT seq FROM sqlite_sequence WHERE name = 'metrics'"), 40);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE name IN"
                                    " ('sqlite_autoindex_metrics_1', 'metrics_by_job')"),
                     2);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE"
                                    " '%metrics_new%' OR sql LIKE '%metrics_new%'"),
                     0);
    assert_int_equal(store_metric_insert(s, 1, 20, 1, "step_loss", 0.1), QN_EEXIST); /* UNIQUE */
    assert_int_equal(store_metric_insert(s, 3, 1, 0, "step_loss", 0.1), QN_EDB); /* no job 3 */
    assert_int_equal(store_metric_insert(s, 2, 20, 1, "step_loss", 0.1), 0);
    assert_int_equal(sql_int(f->db, "SELECT max(id) FROM metrics"), 41);

    sqlite3_stmt *st = NULL; /* the metric route's query walks the new index */
    assert_int_equal(sqlite3_prepare_v2(store_sqlite(s),
                                        "EXPLAIN QUERY PLAN SELECT id FROM metrics WHERE job_id ="
                                        " ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int uses = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        uses |= strstr((const char *)sqlite3_column_text(st, 3), "metrics_by_job") != NULL;
    sqlite3_finalize(st);
    assert_true(uses);

    assert_int_equal(sqlite3_exec(store_sqlite(s), "DELETE FROM jobs WHERE id = 1", NULL, NULL,
                                  NULL),
                     SQLITE_OK); /* ON DELETE CASCADE */
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics"), 2);
    assert_int_equal(store_integrity_check(s), 0);
    store_close(s);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
}

/* Surrogates, models and checkpoints round-trip their blobs bit for bit; the
 * newest of a name wins; the last checkpoint is the largest epoch. */
static void test_surrogates_models_checkpoints(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t job = 0, job2 = 0, id = 0;
    assert_int_equal(store_job_insert(s, "fit", "f", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    assert_int_equal(store_job_insert(s, "fit", "f2", NULL, 0, JOB_RUNNING, "{}", &job2), 0);
    unsigned char blob[5] = {1, 0, 2, 255, 7};
    struct store_surrogate in = {.has_name = 1, .job_id = job, .device = "{\"kind\":\"crn_relu\"}",
                                 .n_in = 1, .val_rmse = 1e-3, .max_error = NAN, .blob = blob,
                                 .blob_len = sizeof blob};
    snprintf(in.name, sizeof in.name, "crn");
    assert_int_equal(store_surrogate_insert(s, &in, &id), 0);
    in.job_id = job2; /* another fit of the same name (a rerun of `job` would replace) */
    assert_int_equal(store_surrogate_insert(s, &in, NULL), 0);
    in.job_id = job;
    struct store_surrogate out;
    assert_int_equal(store_surrogate_get(s, id, &out), 0);
    assert_int_equal(out.blob_len, sizeof blob);
    assert_memory_equal(out.blob, blob, sizeof blob);
    assert_true(isnan(out.max_error));
    assert_true(out.val_rmse == 1e-3);
    assert_string_equal(out.device, "{\"kind\":\"crn_relu\"}");
    store_surrogate_free(&out);
    assert_int_equal(store_surrogate_get_by_name(s, "crn", &out), 0);
    assert_int_equal(out.id, id + 1); /* the newest */
    store_surrogate_free(&out);
    assert_int_equal(store_surrogate_get_by_job(s, job, &out), 0);
    store_surrogate_free(&out);
    assert_int_equal(store_surrogate_get(s, 99, &out), QN_ENOTFOUND);
    in.device = "not json";
    assert_int_equal(store_surrogate_insert(s, &in, NULL), QN_EDB);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM surrogates"), 2); /* rolled back */

    float params[3] = {1.5f, -0.0f, 3e-38f}, scaler[4] = {0, 1, 2, 3};
    struct store_model m = {.has_name = 1, .job_id = job, .spec = "{}", .n_in = 2, .n_out = 1,
                            .n_classes = 0, .params = params, .n_params = 3, .scaler = scaler,
                            .n_scaler = 4};
    snprintf(m.name, sizeof m.name, "net");
    snprintf(m.loss, sizeof m.loss, "mse");
    assert_int_equal(store_model_insert(s, &m, &id), 0);
    struct store_model mo;
    assert_int_equal(store_model_get_by_job(s, job, &mo), 0);
    assert_int_equal(mo.id, id);
    assert_int_equal(mo.n_params, 3);
    assert_memory_equal(mo.params, params, sizeof params);
    assert_int_equal(mo.n_scaler, 4);
    assert_memory_equal(mo.scaler, scaler, sizeof scaler);
    assert_string_equal(mo.loss, "mse");
    store_model_free(&mo);
    assert_int_equal(store_model_get_by_name(s, "nope", &mo), QN_ENOTFOUND);

    struct store_checkpoint cp = {.job_id = job, .epoch = 1, .params = params, .n_params = 3,
                                  .state = scaler, .n_state = 4, .t = 10};
    struct store_checkpoint co;
    assert_int_equal(store_checkpoint_last(s, job, &co), QN_ENOTFOUND);
    assert_int_equal(store_checkpoint_put(s, &cp), 0);
    cp.epoch = 3;
    cp.t = 30;
    assert_int_equal(store_checkpoint_put(s, &cp), 0);
    cp.epoch = 2;
    assert_int_equal(store_checkpoint_put(s, &cp), 0);
    assert_int_equal(store_checkpoint_put(s, &cp), 0); /* replaced, not duplicated */
    assert_int_equal(store_checkpoint_last(s, job, &co), 0);
    assert_int_equal(co.epoch, 3);
    assert_int_equal(co.t, 30);
    assert_memory_equal(co.params, params, sizeof params);
    assert_memory_equal(co.state, scaler, sizeof scaler);
    store_checkpoint_free(&co);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM checkpoints"), 3);

    /* Metrics of later epochs are trimmed; a restarted job loses its end. */
    for (int e = 1; e <= 3; e++)
        assert_int_equal(store_metric_insert(s, job, e * 10, e, "train_loss", 1.0 / e), 0);
    assert_int_equal(store_metric_delete_after(s, job, 1), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics"), 1);
    assert_int_equal(store_job_set_state(s, job, JOB_FAILED, NULL, "boom"), 0);
    assert_int_equal(store_job_restart(s, job), 0);
    struct store_job j;
    assert_int_equal(store_job_get(s, job, &j), 0);
    assert_int_equal(j.state, JOB_RUNNING);
    assert_null(j.error);
    assert_string_equal(j.finished, "");
    store_job_free(&j);
    assert_int_equal(store_job_restart(s, 999), QN_ENOTFOUND);
    store_close(s);
}

/* A checkpoint's arch is written with it and read back with the last one
 * (NULL when none was given); a resumed run's trim keeps the steps it had. */
static void test_checkpoint_arch_and_step_trim(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t job = 0;
    assert_int_equal(store_job_insert(s, "train", "t", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    float params[2] = {1, 2}, optim[2] = {3, 4};
    struct store_checkpoint cp = {.job_id = job, .epoch = 1, .params = params, .n_params = 2,
                                  .state = optim, .n_state = 2, .t = 5};
    struct store_checkpoint co;
    assert_int_equal(store_checkpoint_put(s, &cp), 0);
    assert_int_equal(store_checkpoint_last(s, job, &co), 0);
    assert_null(co.arch);
    store_checkpoint_free(&co);
    cp.epoch = 2;
    cp.arch = "{\"widths\":[3,1],\"best_loss\":null,\"stale\":0,\"events\":0}";
    assert_int_equal(store_checkpoint_put(s, &cp), 0);
    assert_int_equal(store_checkpoint_last(s, job, &co), 0);
    assert_int_equal(co.epoch, 2);
    assert_string_equal(co.arch, cp.arch);
    store_checkpoint_free(&co);
    assert_null(co.arch);
    cp.arch = "not json"; /* the column's CHECK */
    assert_int_equal(store_checkpoint_put(s, &cp), QN_EDB);

    for (int step = 1; step <= 6; step++)
        assert_int_equal(store_metric_insert(s, job, step, (step + 1) / 2, "step_loss", 1), 0);
    /* Resumed after epoch 1 plus one step of epoch 2 (step 3): steps 4..6 go. */
    assert_int_equal(store_metric_delete_after_step(s, job, 1, 3), 0);
    assert_int_equal(sql_int(f->db, "SELECT count(*) FROM metrics"), 3);
    assert_int_equal(sql_int(f->db, "SELECT max(step) FROM metrics"), 3);
    store_close(s);
}

/* Datasets by name (newest wins) and by job. */
static void test_dataset_lookups(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f);
    int64_t job = 0;
    assert_int_equal(store_job_insert(s, "sweep", "s", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    const char *cols[] = {"a"};
    float row = 1;
    int64_t ids[2];
    for (int i = 0; i < 2; i++) {
        struct store_dswriter *w = NULL;
        assert_int_equal(store_dataset_begin(s, "d", "csv", 1, cols, i ? job : 0, &w), 0);
        assert_int_equal(store_dataset_append(w, &row, 1), 0);
        assert_int_equal(store_dataset_finish(w, &ids[i]), 0);
    }
    struct store_dataset d;
    assert_int_equal(store_dataset_get_by_name(s, "d", &d), 0);
    assert_int_equal(d.id, ids[1]);
    store_dataset_free(&d);
    assert_int_equal(store_dataset_get_by_job(s, job, &d), 0);
    assert_int_equal(d.id, ids[1]);
    store_dataset_free(&d);
    assert_int_equal(store_dataset_get_by_name(s, "e", &d), QN_ENOTFOUND);
    assert_int_equal(store_dataset_get_by_job(s, job + 1, &d), QN_ENOTFOUND);
    store_close(s);
}

/* The count of table t in c (it must be trusted). */
static uint64_t changes(struct store_changes *c, enum store_watched t)
{
    uint64_t n = 0;
    assert_int_equal(store_changes_read(c, t, &n), 0);
    return n;
}

/* The counts of jobs and metrics are (jobs, metrics). */
static void expect_changes(struct store_changes *c, uint64_t jobs, uint64_t metrics)
{
    assert_int_equal(changes(c, STORE_WATCH_JOBS), jobs);
    assert_int_equal(changes(c, STORE_WATCH_METRICS), metrics);
}

/* store_watch: a table's count moves once per commit that changed it, on
 * any watched connection, and only after the commit; not for a rollback, a
 * read or another table; metric trims only for deleted rows. A connection that cannot be watched (not WAL)
 * makes the counts untrusted. */
static void test_watch_counts_commits(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f), *t = open_ok(f), *m = NULL;
    struct store_changes c = {0};
    int64_t job = 0;
    assert_int_equal(store_watch(s, &c), 0);
    assert_int_equal(store_watch(t, &c), 0);
    expect_changes(&c, 0, 0);
    assert_int_equal(store_job_insert(s, "sweep", "j", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    expect_changes(&c, 1, 0);
    assert_int_equal(store_begin(t), 0); /* another watched connection, in a transaction */
    assert_int_equal(store_metric_insert(t, job, 1, 1, "loss", 0.5), 0);
    assert_int_equal(store_metric_insert(t, job, 2, 1, "loss", 0.25), 0);
    expect_changes(&c, 1, 0); /* not committed yet: pages made now are still true */
    assert_int_equal(store_end(t, 0), 0);
    expect_changes(&c, 1, 1); /* one commit */
    assert_int_equal(store_begin(t), 0);
    assert_int_equal(store_metric_insert(t, job, 3, 1, "loss", 0.125), 0);
    assert_int_equal(store_end(t, QN_EINVAL), QN_EINVAL); /* rolled back */
    expect_changes(&c, 1, 1);
    assert_int_equal(store_device_insert(s, "d", "neuron", "{}", NULL), 0); /* another table */
    struct store_job j;
    assert_int_equal(store_job_get(t, job, &j), 0); /* a read */
    store_job_free(&j);
    expect_changes(&c, 1, 1);
    assert_int_equal(store_job_set_state(t, job, JOB_SUCCEEDED, "{}", NULL), 0);
    expect_changes(&c, 2, 1);
    /* The WAL hook stands in for SQLite's automatic checkpoint: commits of
     * thousands of pages in all leave a WAL of about 1000 pages, not all. */
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(store_metric_insert(s, job, 10 + i, 2, "loss", 1.0 / (i + 1)), 0);
    expect_changes(&c, 2, 2001);
    /* Appends leave the trims alone; a delete of metric rows (a resumed train
     * trims its own) moves them, once per commit, and the metrics too. */
    assert_int_equal(changes(&c, STORE_WATCH_TRIMS), 0);
    assert_int_equal(store_metric_delete_after(t, job, 1), 0);
    assert_int_equal(changes(&c, STORE_WATCH_TRIMS), 1);
    expect_changes(&c, 2, 2002);
    assert_int_equal(store_metric_delete_after(t, job, 5), 0); /* deletes nothing */
    assert_int_equal(changes(&c, STORE_WATCH_TRIMS), 1);
    long wal_pages = qd_file_size(wal) / 4096;
    printf("WAL after 2000 commits: %ld pages\n", wal_pages);
    assert_true(wal_pages > 0 && wal_pages < 1500);
    /* An in-memory database has no WAL: its commits could not be counted. */
    char msg[STORE_MSG_MAX];
    assert_int_equal(store_open(":memory:", &m, msg, sizeof msg), 0);
    assert_int_equal(store_watch(m, &c), QN_EINVAL);
    uint64_t n = 0;
    assert_int_equal(store_changes_read(&c, STORE_WATCH_JOBS, &n), QN_EINVAL);
    store_close(m);
    store_close(t);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_sql_matches_files),
        cmocka_unit_test_setup_teardown(test_migrations_once_and_idempotent, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_wal_and_foreign_keys, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dataset_round_trip, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_leaves_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_killed_write_leaves_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_export_csv, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_devices, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_jobs_and_metrics, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_job_launch_handle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_metric_ids_never_reused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_model_owners_migration, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_metric_ids_migration_keeps_rows, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_surrogates_models_checkpoints, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dataset_lookups, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_arch_and_step_trim, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_counts_commits, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
