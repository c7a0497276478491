/*
 * test_cli.c: the real `qn` binary (QN_BIN) end to end, in a temp directory.
 *
 * A sweep of an inline crn_relu device stored and exported as CSV whose
 * values match the closed form; the same export whatever the worker count;
 * bad specs refused with their JSON path, exit 2 and no job written; stored
 * devices referred to by name and id; a database newer than the program
 * refused; SIGINT cancels a running job and leaves no dataset; qn job,
 * surrogate and model list and show what was stored (JSON lines), qn job
 * cancel cancels a queued job of a daemon and refuses a running or ended one;
 * datasets get readable default names and refuse used or built-in ones;
 * qn demo passes SIGTERM on to its daemon.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_daemon.h"

/* A crn_relu sweep of n sobol points over u1 in [-3, 3] (kappa defaults to 0.01). */
#define CRN_JOB(n)                                                                              \
    "{\"type\":\"sweep\",\"name\":\"crn\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"        \
    "\"design\":\"sobol\",\"samples\":" #n ",\"seed\":1,\"ranges\":{\"u1\":[-3,3]}}}"

/* Integer at record.result.<key>. */
static long long result_int(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(json_object_get(rec, "result"), key);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

/* Exports dataset id of db; returns the CSV (free it). */
static char *export(const struct qt_dir *f, const char *db, const char *id)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "export", id, "--db", db, NULL), 0);
    qt_expect_status(&r, 0);
    char *csv = r.out;
    r.out = NULL;
    qt_run_free(&r);
    return csv;
}

static void test_sweep_and_export(void **state)
{
    struct qt_dir *f = *state;
    json_t *rec = qt_run_job(f, "q.db", CRN_JOB(500), "2", 0);
    assert_int_equal(json_integer_value(json_object_get(rec, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(rec, "type")), "sweep");
    assert_string_equal(json_string_value(json_object_get(rec, "name")), "crn");
    assert_string_equal(json_string_value(json_object_get(rec, "owner")), "local");
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    assert_true(json_is_null(json_object_get(rec, "error")));
    assert_true(json_is_string(json_object_get(rec, "finished")));
    assert_int_equal(result_int(rec, "rows"), 500);
    assert_int_equal(result_int(rec, "failed"), 0);
    long long ds = result_int(rec, "dataset");
    json_decref(rec);
    assert_int_equal(ds, 1);

    char *csv = export(f, "q.db", "1");
    const char *header = "u1,out,status\n";
    assert_memory_equal(csv, header, strlen(header));
    assert_int_equal(qt_count_lines(csv), 501);
    char *line = strchr(csv, '\n') + 1;
    double worst = 0;
    for (int i = 0; i < 500; i++) {
        double u, out;
        char status[32];
        assert_int_equal(sscanf(line, "%lf,%lf,%31[^\n]", &u, &out, status), 3);
        assert_string_equal(status, "ok");
        assert_true(u >= -3 && u <= 3);
        double want = (u + sqrt(u * u + 0.04)) / 2;
        worst = fmax(worst, fabs(out - want));
        line = strchr(line, '\n') + 1;
    }
    assert_true(worst < 1e-6);
    free(csv);
    assert_int_equal(qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READWRITE, 0, "SELECT count(*) FROM dataset_blocks"), 1);
}

/* Rows that blow up are failed rows with a named status; the job still succeeds. */
static void test_failed_rows(void **state)
{
    struct qt_dir *f = *state;
    const char *job = "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"ode\","
                      "\"state\":{\"y\":1},\"rhs\":{\"y\":\"u1*y^2\"},\"output\":\"y\","
                      "\"readout\":{\"kind\":\"final\",\"t_max\":3}},\"design\":\"grid\","
                      "\"samples\":5,\"ranges\":{\"u1\":[-1,1]}}}";
    json_t *rec = qt_run_job(f, "q.db", job, "2", 0);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    assert_int_equal(result_int(rec, "rows"), 5);
    assert_int_equal(result_int(rec, "failed"), 2); /* y = 1/(1 - u1 t) blows up for u1 >= 1/3 */
    json_decref(rec);
    char *csv = export(f, "q.db", "1");
    assert_int_equal(qt_count_lines(csv), 6);
    char *last = strstr(csv, "\n1,");
    assert_non_null(last);
    assert_non_null(strstr(last, ",nan,"));
    assert_null(strstr(last, ",ok")); /* the reason, not ok */
    assert_non_null(strstr(csv, "\n0,1,ok\n"));
    free(csv);
}

/* Status counts in the result; a sweep whose every row failed fails, saying
 * how, and stores no dataset. */
static void test_sweep_statuses(void **state)
{
    struct qt_dir *f = *state;
    const char *some = "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"reactions\","
                       "\"species\":{\"Y\":1},\"params\":{\"kappa\":0.01},\"reactions\":"
                       "[\"0 -> Y @ kappa\",\"2 Y -> Y @ 1\",\"Y -> 2 Y @ u1\"],"
                       "\"output\":\"Y\"},\"design\":\"grid\",\"samples\":5,"
                       "\"ranges\":{\"u1\":[-1,1]}}}";
    json_t *rec = qt_run_job(f, "s.db", some, "1", 0);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    json_t *st = json_object_get(json_object_get(rec, "result"), "statuses");
    assert_int_equal(json_integer_value(json_object_get(st, "ok")), 3); /* u1 = 0, 0.5, 1 */
    assert_int_equal(json_integer_value(json_object_get(st, "invalid_rate")), 2);
    assert_int_equal(json_object_size(st), 2);
    assert_int_equal(result_int(rec, "failed"), 2);
    json_decref(rec);
    const char *none = "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"reactions\","
                       "\"species\":{\"Y\":1},\"params\":{\"kappa\":0.01},\"reactions\":"
                       "[\"0 -> Y @ kappa\",\"2 Y -> Y @ 1\",\"Y -> 2 Y @ u1\"],"
                       "\"output\":\"Y\"},\"design\":\"grid\",\"samples\":4,"
                       "\"ranges\":{\"u1\":[-2,-1]}}}";
    rec = qt_run_job(f, "s.db", none, "1", 1);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "failed");
    assert_string_equal(json_string_value(json_object_get(rec, "error")),
                        "no usable row: all 4 solves failed (invalid_rate 4)");
    json_decref(rec);
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "list", "--db", "s.db", NULL), 0);
    qt_expect_status(&r, 0);
    assert_int_equal(qt_count_lines(r.out), 1); /* only the first sweep's dataset */
    qt_run_free(&r);
}

static void test_workers_identical(void **state)
{
    struct qt_dir *f = *state;
    json_decref(qt_run_job(f, "w1.db", CRN_JOB(3000), "1", 0));
    json_decref(qt_run_job(f, "w2.db", CRN_JOB(3000), "2", 0));
    char *a = export(f, "w1.db", "1"), *b = export(f, "w2.db", "1");
    assert_int_equal(qt_count_lines(a), 3001);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

/* Runs a bad job file; checks exit 2, the path on stderr, and no job rows. */
static void expect_spec_error(const struct qt_dir *f, const char *job, const char *path)
{
    struct qt_run r;
    assert_int_equal(qt_write_file(f->dir, "bad.json", job), 0);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "run", "bad.json", NULL), 0);
    qt_expect_status(&r, 2);
    assert_string_equal(r.out, "");
    if (!strstr(r.err, path))
        fail_msg("stderr lacks %s: %s", path, r.err);
    assert_memory_equal(r.err, "qn: ", 4);
    qt_run_free(&r);
    long long jobs = qd_db_file_int(f->dir, "quasineuron.db", SQLITE_OPEN_READWRITE, 0, "SELECT count(*) FROM jobs");
    assert_true(jobs == -1 || jobs == 0);
}

static void test_bad_specs(void **state)
{
    struct qt_dir *f = *state;
    expect_spec_error(f,
                      "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                      "\"sampels\":10,\"ranges\":{\"u1\":[-3,3]}}}",
                      "/spec/sampels");
    expect_spec_error(f,
                      "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                      "\"samples\":-1,\"ranges\":{\"u1\":[-3,3]}}}",
                      "/spec/samples");
    expect_spec_error(f,
                      "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_rulu\"},"
                      "\"samples\":5,\"ranges\":{\"u1\":[-3,3]}}}",
                      "/spec/device/kind");
    expect_spec_error(f,
                      "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                      "\"samples\":5,\"ranges\":{\"u2\":[-3,3]}}}",
                      "/spec/ranges");
    /* Found only after the store is open: the database exists, no job does. */
    expect_spec_error(f,
                      "{\"type\":\"sweep\",\"spec\":{\"device\":\"nope\",\"samples\":5,"
                      "\"ranges\":{\"u1\":[-3,3]}}}",
                      "/spec/device");
    assert_int_equal(qd_db_file_int(f->dir, "quasineuron.db", SQLITE_OPEN_READWRITE, 0, "SELECT count(*) FROM jobs"), 0);
    expect_spec_error(f, "{\"type\":\"sweep\",\"spec\":{}, \"type\":\"fit\"}", "duplicate");
    expect_spec_error(f, "{\"type\":\"fit\",\"spec\":{}}", "/spec/dataset");
    expect_spec_error(f, "{\"type\":\"sweep\"", "bad.json");
}

static void test_devices_by_name_and_id(void **state)
{
    struct qt_dir *f = *state;
    struct qt_run r;
    assert_int_equal(qt_write_file(f->dir, "dev.json",
                                   "{\"name\":\"crn\",\"kind\":\"crn_relu\","
                                   "\"params\":{\"kappa\":0.04}}"),
                     0);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "device", "add", "dev.json", NULL), 0);
    qt_expect_status(&r, 0);
    json_t *rec = qt_one_record(&r);
    assert_int_equal(json_integer_value(json_object_get(rec, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(rec, "name")), "crn");
    json_decref(rec);
    qt_run_free(&r);

    assert_int_equal(qt_qn(f->dir, NULL, &r, "device", "add", "dev.json", NULL), 0);
    qt_expect_status(&r, 2); /* the name is taken: bad input */
    assert_non_null(strstr(r.err, "already exists"));
    qt_run_free(&r);
    assert_int_equal(qt_write_file(f->dir, "bad.json", "{\"kind\":\"crn_relu\",\"knd\":1}"), 0);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "device", "add", "bad.json", NULL), 0);
    qt_expect_status(&r, 2);
    assert_non_null(strstr(r.err, "/knd"));
    qt_run_free(&r);

    assert_int_equal(qt_qn(f->dir, NULL, &r, "device", "list", NULL), 0);
    qt_expect_status(&r, 0);
    rec = qt_one_record(&r);
    assert_string_equal(json_string_value(json_object_get(rec, "kind")), "crn_relu");
    json_decref(rec);
    qt_run_free(&r);

    const char *by_name = "{\"type\":\"sweep\",\"spec\":{\"device\":\"crn\",\"samples\":64,"
                          "\"ranges\":{\"u1\":[0,2]}}}";
    rec = qt_run_job(f, "quasineuron.db", by_name, "2", 0);
    assert_int_equal(result_int(rec, "rows"), 64);
    json_decref(rec);
    const char *by_id = "{\"type\":\"sweep\",\"spec\":{\"device\":1,\"samples\":4,"
                        "\"design\":\"grid\",\"ranges\":{\"u1\":[0,0]}}}";
    rec = qt_run_job(f, "quasineuron.db", by_id, "1", 0);
    assert_int_equal(result_int(rec, "dataset"), 2);
    json_decref(rec);
    /* kappa 0.04 from the stored device: out(0) = sqrt(kappa) = 0.2. */
    char *csv = export(f, "quasineuron.db", "2");
    /* The float 0.2f as the shortest text that reads back to it (not %.9g's 0.200000003). */
    assert_string_equal(strchr(csv, '\n') + 1, "0,0.2,ok\n0,0.2,ok\n0,0.2,ok\n0,0.2,ok\n");
    free(csv);

    assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "list", NULL), 0);
    qt_expect_status(&r, 0);
    assert_int_equal(qt_count_lines(r.out), 2);
    qt_run_free(&r);
}

static void test_newer_database_refused(void **state)
{
    struct qt_dir *f = *state;
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "device", "list", "--db", "v.db", NULL), 0);
    qt_expect_status(&r, 0);
    qt_run_free(&r);
    char path[700];
    sqlite3 *h = NULL;
    snprintf(path, sizeof path, "%s/v.db", f->dir);
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "PRAGMA user_version = 999", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    assert_int_equal(qd_db_file_int(f->dir, "v.db", SQLITE_OPEN_READWRITE, 0, "PRAGMA user_version"), 999);
    assert_int_equal(qt_qn(f->dir, CRN_JOB(5), &r, "run", "-", "--db", "v.db", NULL), 0);
    qt_expect_status(&r, 1);
    assert_non_null(strstr(r.err, "newer"));
    assert_string_equal(r.out, "");
    qt_run_free(&r);
}

static void test_usage(void **state)
{
    struct qt_dir *f = *state;
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "--help", NULL), 0);
    qt_expect_status(&r, 0);
    assert_non_null(strstr(r.out, "qn run"));
    qt_run_free(&r);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "--version", NULL), 0);
    qt_expect_status(&r, 0);
    assert_memory_equal(r.out, "qn ", 3);
    qt_run_free(&r);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "frobnicate", NULL), 0);
    qt_expect_status(&r, 2);
    qt_run_free(&r);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "run", "x.json", "--workers", "0", NULL), 0);
    qt_expect_status(&r, 2);
    qt_run_free(&r);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "export", "7", NULL), 0);
    qt_expect_status(&r, 1);
    assert_non_null(strstr(r.err, "no dataset with id 7"));
    qt_run_free(&r);
}

/* Sleeps ms milliseconds. */
static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_sigint_cancels(void **state)
{
    struct qt_dir *f = *state;
    /* Hodgkin-Huxley over 500 ms is slow enough to be interrupted. */
    assert_int_equal(qt_write_file(f->dir, "hh.json",
                                   "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":"
                                   "\"hodgkin_huxley\"},\"samples\":100000,"
                                   "\"ranges\":{\"u1\":[0,20]}}}"),
                     0);
    char out_path[700];
    snprintf(out_path, sizeof out_path, "%s/out.txt", f->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDWR);
        if (fd < 0 || null < 0 || chdir(f->dir) || dup2(fd, 1) < 0 || dup2(null, 0) < 0 ||
            dup2(null, 2) < 0)
            _exit(126);
        execl(QN_BIN, QN_BIN, "run", "hh.json", "--workers", "2", (char *)NULL);
        _exit(127);
    }
    /* Wait until the job is running (its row exists), then interrupt. */
    int seen = 0;
    for (int i = 0; i < 400 && !seen; i++) {
        nap(25);
        seen = qd_db_file_int(f->dir, "quasineuron.db", SQLITE_OPEN_READWRITE, 0, "SELECT count(*) FROM jobs WHERE state = "
                                                "'running'") == 1;
    }
    assert_true(seen);
    nap(100);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(kill(pid, SIGINT), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(secs < 2.0);
    char *out = qt_read_file(out_path, NULL);
    assert_non_null(out);
    struct qt_run fake = {.out = out};
    json_t *rec = qt_one_record(&fake);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "canceled");
    assert_true(json_is_null(json_object_get(rec, "result")));
    json_decref(rec);
    free(out);
    assert_int_equal(qd_db_file_int(f->dir, "quasineuron.db", SQLITE_OPEN_READWRITE, 0, "SELECT count(*) FROM datasets"), 0);
    assert_int_equal(qd_db_file_int(f->dir, "quasineuron.db", SQLITE_OPEN_READWRITE, 0, "SELECT count(*) FROM dataset_blocks"), 0);
}

/* qn demo stopped with SIGTERM (not only Ctrl-C) stops its daemon too. */
static void test_demo_sigterm_stops_daemon(void **state)
{
    struct qt_dir *f = *state;
    char out_path[700], port0[16];
    snprintf(out_path, sizeof out_path, "%s/demo.out", f->dir);
    snprintf(port0, sizeof port0, "%d", 20000 + (int)(getpid() % 20000));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDWR);
        if (fd < 0 || null < 0 || chdir(f->dir) || dup2(fd, 1) < 0 || dup2(null, 0) < 0 ||
            dup2(null, 2) < 0)
            _exit(126);
        execl(QN_BIN, QN_BIN, "demo", "--db", "demo.db", "--port", port0, (char *)NULL);
        _exit(127);
    }
    unsigned port = 0;
    for (int i = 0; i < 600 && !port; i++) { /* until it says where its daemon is */
        nap(50);
        char *out = qt_read_file(out_path, NULL);
        const char *at = out ? strstr(out, "daemon on http://127.0.0.1:") : NULL;
        if (at)
            port = (unsigned)atoi(at + strlen("daemon on http://127.0.0.1:"));
        free(out);
    }
    assert_true(port > 0);
    assert_int_equal(qd_http_raw_t(port, "GET", "/healthz", NULL, NULL, NULL, 5), 200);
    assert_int_equal(kill(pid, SIGTERM), 0);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st)); /* it passed the signal on instead of dying of it */
    long answer = 200;
    for (int i = 0; i < 600 && answer != 0; i++) { /* the daemon ended: nothing answers */
        answer = qd_http_raw_t(port, "GET", "/healthz", NULL, NULL, NULL, 2);
        if (answer)
            nap(50);
    }
    assert_int_equal(answer, 0);
}

/* Line i (from 0) of JSON lines text as an object (new reference). */
static json_t *json_line(const char *text, size_t i)
{
    const char *p = text;
    for (size_t k = 0; k < i && p; k++)
        p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
    assert_non_null(p);
    const char *e = strchr(p, '\n');
    json_error_t err;
    json_t *v = json_loadb(p, e ? (size_t)(e - p) : strlen(p), 0, &err);
    if (!json_is_object(v))
        fail_msg("line %zu is not a JSON object: %s", i, err.text);
    return v;
}

/* Every real number of JSON text (outside strings) is written with the fewest
 * significant digits that read back to it: one digit fewer does not. Returns
 * how many reals there were. */
static int assert_reals_shortest(const char *t)
{
    int reals = 0, in_string = 0;
    for (const char *p = t; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_string = 0;
            continue;
        }
        if (*p == '"') {
            in_string = 1;
            continue;
        }
        if (*p != '-' && (*p < '0' || *p > '9'))
            continue;
        size_t n = strspn(p, "0123456789+-.eE");
        char tok[64];
        assert_true(n < sizeof tok);
        memcpy(tok, p, n);
        tok[n] = '\0';
        p += n - 1;
        if (!strpbrk(tok, ".eE"))
            continue;
        reals++;
        /* Significant digits: the mantissa's, without leading or trailing zeros
         * (those of "120.0" are two). */
        char sig[64];
        int digits = 0;
        for (const char *c = tok; *c && *c != 'e' && *c != 'E'; c++)
            if (*c >= '0' && *c <= '9' && (digits || *c != '0'))
                sig[digits++] = *c;
        while (digits > 1 && sig[digits - 1] == '0')
            digits--;
        double v = strtod(tok, NULL);
        char shorter[64];
        if (digits > 1) {
            snprintf(shorter, sizeof shorter, "%.*e", digits - 2, v);
            if (strtod(shorter, NULL) == v)
                fail_msg("%s is not the shortest text of its value (%s reads back)", tok, shorter);
        }
    }
    return reals;
}

/* Runs qn with args in f->dir and checks the exit status; returns stdout (free it). */
static char *qn_out(const struct qt_dir *f, int want, const char *a1, const char *a2,
                    const char *a3)
{
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, a1, a2, a3, NULL), 0);
    qt_expect_status(&r, want);
    char *out = r.out;
    r.out = NULL;
    qt_run_free(&r);
    return out;
}

static void test_job_surrogate_model_commands(void **state)
{
    struct qt_dir *f = *state;
    json_decref(qt_run_job(f, "quasineuron.db", CRN_JOB(64), "2", 0));
    json_decref(qt_run_job(f, "quasineuron.db",
                           "{\"type\":\"fit\",\"name\":\"crn fit\",\"spec\":{\"dataset\":{\"job\":1},"
                           "\"hidden\":[4],\"epochs\":3,\"seed\":1}}",
                           "1", 0));
    json_decref(qt_run_job(f, "quasineuron.db",
                           "{\"type\":\"train\",\"name\":\"xor net\",\"spec\":{\"dataset\":\"xor\","
                           "\"network\":[{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":"
                           "{\"activation\":\"identity\"}},\"via\":\"exact\"}],\"epochs\":2}}",
                           "1", 0));

    char *out = qn_out(f, 0, "job", "list", NULL);
    assert_int_equal(qt_count_lines(out), 3);
    const char *types[] = {"sweep", "fit", "train"};
    for (size_t i = 0; i < 3; i++) {
        json_t *j = json_line(out, i);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(j, "type")), types[i]);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "succeeded");
        json_decref(j);
    }
    free(out);
    out = qn_out(f, 0, "job", "show", "2");
    json_t *j = json_line(out, 0);
    assert_int_equal(qt_count_lines(out), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(j, "spec"),
                                                                         "dataset"), "job")), 1);
    long long sur = json_integer_value(json_object_get(json_object_get(j, "result"), "surrogate"));
    assert_true(assert_reals_shortest(out) >= 2); /* val_rmse, max_error */
    json_decref(j);
    free(out);
    free(qn_out(f, 2, "job", "show", "9"));
    free(qn_out(f, 2, "job", "show", "x"));
    free(qn_out(f, 2, "job", "cancel", "1")); /* it has ended */

    out = qn_out(f, 0, "surrogate", "list", NULL);
    assert_int_equal(qt_count_lines(out), 1);
    j = json_line(out, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), sur);
    assert_int_equal(json_integer_value(json_object_get(j, "job")), 2);
    json_decref(j);
    free(out);
    out = qn_out(f, 0, "surrogate", "show", "crn fit"); /* by name */
    j = json_line(out, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), sur);
    assert_true(json_is_object(json_object_get(j, "weights")));
    json_decref(j);
    free(out);
    free(qn_out(f, 2, "surrogate", "show", "nope"));

    out = qn_out(f, 0, "model", "list", NULL);
    assert_int_equal(qt_count_lines(out), 1);
    free(out);
    out = qn_out(f, 0, "model", "show", "1");
    j = json_line(out, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "job")), 3);
    assert_string_equal(json_string_value(json_object_get(j, "loss")), "cross_entropy");
    json_decref(j);
    free(out);
    free(qn_out(f, 2, "model", "show", "2"));

    /* Datasets: a readable default name from the file; a used or built-in name exits 2. */
    assert_int_equal(qt_write_file(f->dir, "iris.csv", "a,b\n1,2\n3,4\n"), 0);
    const char *want_names[] = {"iris", "iris 2"};
    for (size_t i = 0; i < 2; i++) {
        out = qn_out(f, 0, "dataset", "import", "iris.csv");
        j = json_line(out, 0);
        assert_string_equal(json_string_value(json_object_get(j, "name")), want_names[i]);
        json_decref(j);
        free(out);
    }
    const char *taken[][2] = {{"iris", "already exists"}, {"sine", "built-in"}};
    for (size_t i = 0; i < 2; i++) {
        struct qt_run r;
        assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "import", "iris.csv", "--name",
                               taken[i][0], NULL), 0);
        qt_expect_status(&r, 2);
        assert_non_null(strstr(r.err, taken[i][1]));
        assert_string_equal(r.out, "");
        qt_run_free(&r);
    }
}

/* A long sweep (running) and one queued behind it in a one-worker daemon. */
#define SLOW_SWEEP                                                                              \
    "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},\"samples\":2000000,"       \
    "\"ranges\":{\"u1\":[-3,3]}}}"

static void test_job_cancel_queued(void **state)
{
    struct qd *d = *state;
    d->workers = 1;
    qd_start(d);
    int64_t a = qd_submit(d, NULL, SLOW_SWEEP), b = qd_submit(d, NULL, CRN_JOB(5));
    for (int i = 0; i < 200; i++) { /* until the first runs (a poll with a deadline) */
        json_t *ja = qd_job(d, NULL, a);
        int running = strcmp(json_string_value(json_object_get(ja, "state")), "running") == 0;
        json_decref(ja);
        if (running)
            break;
        qd_nap_ms(50);
    }
    char id[24];
    struct qt_run r;
    snprintf(id, sizeof id, "%lld", (long long)b);
    assert_int_equal(qt_qn(d->dir, NULL, &r, "job", "cancel", id, "--db", d->db, NULL), 0);
    qt_expect_status(&r, 0);
    json_t *rec = qt_one_record(&r);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "canceled");
    json_decref(rec);
    qt_run_free(&r);
    snprintf(id, sizeof id, "%lld", (long long)a);
    assert_int_equal(qt_qn(d->dir, NULL, &r, "job", "cancel", id, "--db", d->db, NULL), 0);
    qt_expect_status(&r, 1); /* running: only the daemon can stop it */
    assert_non_null(strstr(r.err, "is running"));
    qt_run_free(&r);
    json_t *jb = qd_job(d, NULL, b);
    assert_string_equal(json_string_value(json_object_get(jb, "state")), "canceled");
    json_decref(jb);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%lld/cancel", (long long)a);
    qd_http(d, "POST", path, NULL, NULL, NULL);
    json_decref(qd_wait_final(d, NULL, a, 30));
    assert_int_equal(qd_stop(d, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_and_export, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_failed_rows, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_statuses, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_workers_identical, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_bad_specs, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_devices_by_name_and_id, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_usage, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_sigint_cancels, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_job_surrogate_model_commands, qt_dir_setup,
                                        qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_job_cancel_queued, qd_fixture_setup,
                                        qd_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_demo_sigterm_stops_daemon, qt_dir_setup,
                                        qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
