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

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_fills_the_disk, df_setup, df_teardown),
        cmocka_unit_test_setup_teardown(test_train_fills_the_disk_then_space_is_freed, df_setup,
                                        df_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
