/*
 * test_diskfull.c: a real `qn serve` whose database lives on a 2 MiB tmpfs
 * that the jobs fill up.
 *
 * A sweep whose dataset cannot fit fails with a reason that says "disk full",
 * leaves no dataset behind, and the daemon keeps serving: /healthz answers
 * 200 and a tiny sweep afterwards succeeds (the failed transaction's space in
 * the WAL is reused). A train job whose checkpoints fill the disk fails the
 * same way; once the filesystem has room again (remounted larger, as an
 * administrator would free space) the same daemon, not restarted, runs the
 * job again to success. Each test ends with a clean SIGTERM stop and PRAGMA
 * integrity_check = ok.
 *
 * A full disk (a filler file takes the last byte): an upload, a new device
 * and a job submission each answer 507 disk_full with a message that says
 * so; the one worker's claims of a queued job fail, are logged once and
 * retried with a growing pause; once the filler is deleted the job runs and
 * the recovery is logged once.
 *
 * Mounting needs root (CAP_SYS_ADMIN); without it the tests are skipped with
 * the reason. The mount is detached in the teardown whatever happened.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/mount.h>

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

#define DF_SIZE "size=2m"
#define NEURON "{\"kind\": \"neuron\", \"params\": {\"activation\": \"tanh\"}}"
#define IDENTITY "{\"kind\": \"neuron\", \"params\": {\"activation\": \"identity\"}}"

/* 400 000 rows of 3 float32 columns: 4.8 MB, more than the whole filesystem. */
#define DF_BIG_SWEEP                                                                          \
    "{\"type\": \"sweep\", \"name\": \"too big\", \"spec\": {\"device\": " NEURON ", "       \
    "\"samples\": 400000, \"ranges\": {\"u1\": [-2, 2]}}}"
#define DF_TINY_SWEEP                                                                         \
    "{\"type\": \"sweep\", \"name\": \"tiny\", \"spec\": {\"device\": " NEURON ", "          \
    "\"samples\": 50, \"ranges\": {\"u1\": [-2, 2]}}}"
/* About 0.8 MB of parameters and Adam state per checkpoint, one per epoch. */
#define DF_BIG_TRAIN                                                                          \
    "{\"type\": \"train\", \"name\": \"wide\", \"spec\": {\"dataset\": {\"name\": "          \
    "\"spirals\", \"samples\": 400}, \"network\": [{\"devices\": 256, \"device\": " NEURON   \
    "}, {\"devices\": 256, \"device\": " NEURON "}, {\"devices\": 2, \"device\": " IDENTITY  \
    "}], \"epochs\": 12, \"batch\": 64, \"checkpoint_every\": 1}}"

struct df {
    struct qd d;
    char mnt[600];   /* the tmpfs mount point */
    int mounted;
    char why[256];   /* why mounting failed (the tests skip) */
};

static int df_setup(void **state)
{
    struct df *f = calloc(1, sizeof *f);
    if (!f || qd_init(&f->d, 2) != 0)
        return -1;
    *state = f;
    snprintf(f->mnt, sizeof f->mnt, "%s/mnt", f->d.dir);
    if (mkdir(f->mnt, 0755) != 0)
        return -1;
    if (mount("tmpfs", f->mnt, "tmpfs", 0, DF_SIZE) != 0)
        snprintf(f->why, sizeof f->why, "cannot mount a tmpfs on %s: %s (needs root)", f->mnt,
                 strerror(errno));
    else
        f->mounted = 1;
    snprintf(f->d.db, sizeof f->d.db, "%s/qn.db", f->mnt); /* the log stays outside */
    return 0;
}

static int df_teardown(void **state)
{
    struct df *f = *state;
    qd_kill(&f->d);
    if (f->mounted && umount2(f->mnt, MNT_DETACH) != 0)
        fprintf(stderr, "test_diskfull: cannot unmount %s: %s\n", f->mnt, strerror(errno));
    qt_rmtree(f->d.dir);
    free(f);
    return 0;
}

/* Skips test `test` with the reason when the fixture could not mount its tmpfs. */
static void df_need_mount(struct df *f, const char *test)
{
    if (!f->mounted)
        qt_skip_test(test, f->why);
}

/* GET /healthz answers 200 with database "ok". */
static void df_healthy(struct df *f)
{
    json_t *r = NULL;
    assert_int_equal(qd_http(&f->d, "GET", "/healthz", NULL, NULL, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r, "database")), "ok");
    json_decref(r);
}

/* Runs job to its end; asserts the final state; the record (new reference). */
static json_t *df_run(struct df *f, const char *job, const char *want)
{
    int64_t id = qd_submit(&f->d, NULL, job);
    json_t *r = qd_wait_final(&f->d, NULL, id, 120);
    const char *st = json_string_value(json_object_get(r, "state"));
    if (strcmp(st, want) != 0)
        fail_msg("job %" PRId64 " is %s, expected %s: %s", id, st, want, json_dumps(r, 0));
    return r;
}

/* The job failed and its reason says the disk is full. */
static void df_failed_full(json_t *r, const char *what)
{
    const char *err = json_string_value(json_object_get(r, "error"));
    printf("%s failed: \"%s\"\n", what, err ? err : "(no reason)");
    assert_non_null(err);
    assert_non_null(strstr(err, "disk full"));
}

/* After a SIGTERM stop: PRAGMA integrity_check, and the count of `sql`'s rows. */
static int64_t df_check_db(struct df *f, const char *sql)
{
    sqlite3 *db = qd_db_open(f->d.db);
    qd_db_integrity_ok(db);
    int64_t n = qd_db_int(db, sql);
    sqlite3_close(db);
    return n;
}

static void test_sweep_fills_the_disk(void **state)
{
    struct df *f = *state;
    df_need_mount(f, __func__);
    qd_start(&f->d);
    df_healthy(f);
    json_t *r = df_run(f, DF_BIG_SWEEP, "failed");
    df_failed_full(r, "a 4.8 MB sweep on a 2 MiB filesystem");
    json_decref(r);
    df_healthy(f);
    /* Nothing of it was kept. */
    assert_int_equal(qd_http(&f->d, "GET", "/v1/datasets", NULL, NULL, &r), 200);
    assert_int_equal(json_array_size(json_object_get(r, "datasets")), 0);
    json_decref(r);
    r = df_run(f, DF_TINY_SWEEP, "succeeded");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "result"), "rows")),
                     50);
    json_decref(r);
    df_healthy(f);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    assert_int_equal(df_check_db(f, "SELECT count(*) FROM datasets"), 1);
}

static void test_train_fills_the_disk_then_space_is_freed(void **state)
{
    struct df *f = *state;
    df_need_mount(f, __func__);
    qd_start(&f->d);
    json_t *r = df_run(f, DF_BIG_TRAIN, "failed");
    df_failed_full(r, "a train job writing 0.8 MB checkpoints on a 2 MiB filesystem");
    json_decref(r);
    df_healthy(f);
    /* The administrator makes room; the daemon carries on without a restart. */
    assert_int_equal(mount("tmpfs", f->mnt, "tmpfs", MS_REMOUNT, "size=64m"), 0);
    r = df_run(f, DF_BIG_TRAIN, "succeeded");
    json_decref(r);
    r = df_run(f, DF_TINY_SWEEP, "succeeded");
    json_decref(r);
    df_healthy(f);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    assert_int_equal(df_check_db(f, "SELECT count(*) FROM models"), 1);
}

/* Fills the filesystem at dir with dir/filler until it has no byte left. */
static void df_fill(const char *dir, char *filler, size_t cap)
{
    snprintf(filler, cap, "%s/filler", dir);
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static char block[1 << 16];
    for (size_t size = sizeof block; size >= 512; size /= 2)
        while (write(fd, block, size) == (ssize_t)size)
            ;
    assert_int_equal(errno, ENOSPC);
    close(fd);
}

/* A POST with a file body (Content-Type application/octet-stream): its status,
 * the reply's error message into msg. */
static long df_upload(struct df *f, const char *body, char *msg, size_t cap)
{
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/datasets", f->d.port);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: text/csv");
    struct qd_buf b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, qd_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    long st = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    snprintf(msg, cap, "%s", m ? m : "");
    json_decref(j);
    free(b.p);
    return st;
}

/* POSTs bodies made by fmt (with a counter) until one is not 201 (at most
 * 4000); that reply must be 507 disk_full with an honest message. */
static void df_until_full(struct df *f, const char *path, const char *fmt)
{
    json_t *r = NULL;
    long st = 201;
    char body[2048];
    for (int i = 0; i < 4000 && st == 201; i++) {
        json_decref(r);
        r = NULL;
        snprintf(body, sizeof body, fmt, i);
        st = qd_http(&f->d, "POST", path, NULL, body, &r);
    }
    json_t *e = json_object_get(r, "error");
    const char *msg = json_string_value(json_object_get(e, "message"));
    printf("POST %s on a full disk: %ld \"%s\"\n", path, st, msg ? msg : "");
    assert_int_equal(st, 507);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "disk_full");
    assert_non_null(strstr(msg, "disk"));
    assert_null(strstr(msg, "rollback"));
    json_decref(r);
}

/* The number of lines of the daemon log that contain needle. */
static size_t df_log_count(struct df *f, const char *needle)
{
    char *log = qt_read_file(f->d.log, NULL);
    size_t n = 0;
    for (const char *p = log; p && (p = strstr(p, needle)); p++)
        n++;
    free(log);
    return n;
}

/* The counter `name` of GET /metrics. */
static double df_metric(struct df *f, const char *name)
{
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", f->d.port);
    struct qd_buf b = {NULL, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, qd_buf_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_cleanup(c);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = b.p ? strstr(b.p, key) : NULL;
    double v = p ? strtod(p + strlen(key), NULL) : -1;
    free(b.p);
    return v;
}

/*
 * A full disk: every write answers 507 disk_full with a message that says
 * so (an upload, a device, a job; no "cannot rollback"); a queued job's
 * claims fail, logged once, retried with a growing pause; once space is
 * freed the job runs and the worker says so once.
 */
static void test_full_disk_answers_507_and_recovers(void **state)
{
    struct df *f = *state;
    df_need_mount(f, __func__);
    f->d.workers = 1;
    qd_start(&f->d);
    /* the one worker busy, a tiny job queued behind it */
    int64_t busy = qd_submit(&f->d, NULL,
                             "{\"type\": \"sweep\", \"name\": \"long\", \"spec\": {\"device\": "
                             "{\"kind\": \"hodgkin_huxley\", \"readout\": {\"kind\": "
                             "\"spike_rate\", \"t_max\": 500}}, \"samples\": 200000, \"ranges\": "
                             "{\"u1\": [0, 20]}}}");
    for (double t0 = qd_now(); qd_now() - t0 < 60; qd_nap_ms(20)) {
        json_t *j = qd_job(&f->d, NULL, busy);
        int running = strcmp(json_string_value(json_object_get(j, "state")), "running") == 0;
        json_decref(j);
        if (running)
            break;
    }
    int64_t queued = qd_submit(&f->d, NULL, DF_TINY_SWEEP);
    char filler[700], msg[512];
    df_fill(f->mnt, filler, sizeof filler);
    assert_int_equal(df_upload(f, "a,b\n1,2\n3,4\n", msg, sizeof msg), 507);
    printf("an upload on a full disk: \"%s\"\n", msg);
    assert_non_null(strstr(msg, "the disk is full"));
    /* devices of ~1 KB each (a long right-hand side) */
    char dev[1400] = "{\"name\": \"filler-%d\", \"kind\": \"ode\", \"drive\": \"dot\", "
                     "\"state\": {\"y\": 0}, \"output\": \"y\", \"rhs\": {\"y\": \"u1 - y";
    for (int i = 0; i < 250; i++)
        strcat(dev, " + 0");
    strcat(dev, "\"}}");
    df_until_full(f, "/v1/devices", dev);
    df_until_full(f, "/v1/jobs",
                  "{\"type\": \"sweep\", \"name\": \"more-%d\", \"spec\": {\"device\": " NEURON
                  ", \"samples\": 5, \"ranges\": {\"u1\": [-2, 2]}}}");
    /* the worker, free again, cannot claim the queued job: it backs off */
    char cancel[64];
    snprintf(cancel, sizeof cancel, "/v1/jobs/%" PRId64 "/cancel", busy);
    qd_http(&f->d, "POST", cancel, NULL, NULL, NULL);
    double fails = 0;
    for (double t0 = qd_now(); qd_now() - t0 < 60 && fails < 4; qd_nap_ms(50))
        fails = df_metric(f, "qn_worker_claim_failures_total");
    assert_true(fails >= 4);
    assert_int_equal(unlink(filler), 0); /* the administrator frees space */
    json_t *r = qd_wait_final(&f->d, NULL, queued, 120);
    assert_string_equal(json_string_value(json_object_get(r, "state")), "succeeded");
    json_decref(r);
    size_t lines = df_log_count(f, "cannot claim a job");
    printf("%.0f failed claims, %zu log lines about them\n", df_metric(f,
           "qn_worker_claim_failures_total"), lines);
    assert_int_equal(lines, 1);
    assert_int_equal(df_log_count(f, "claims jobs again"), 1);
    df_healthy(f);
    assert_int_equal(qd_stop(&f->d, SIGTERM), 0);
    df_check_db(f, "SELECT count(*) FROM jobs");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_fills_the_disk, df_setup, df_teardown),
        cmocka_unit_test_setup_teardown(test_train_fills_the_disk_then_space_is_freed, df_setup,
                                        df_teardown),
        cmocka_unit_test_setup_teardown(test_full_disk_answers_507_and_recovers, df_setup,
                                        df_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
