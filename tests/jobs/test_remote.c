/*
 * test_remote.c: the local launcher (server/jobs/launch_local.c) and the
 * runner of jobs on several ranks (job_remote.c), on real processes.
 *
 * Covers: templates refused without {cmd} or too long, the default naming
 * mpirun (with --allow-run-as-root as root); check finds a program on PATH
 * and refuses a missing one, naming it; a run of a template that prints
 * progress, a line that is not ours and a metric, then fails: next_line
 * gives every line then the end, wait reports stderr's last line with a
 * word in it, or error.txt when the run wrote one; cancel of a run whose
 * process group has a child ends it within the grace period, the child
 * too; job_remote_check refuses a type without stage and a missing launcher
 * at /resources/ranks; job_remote_init refuses a spool that is a file; a
 * sweep through job_run_with and a launcher that prints a metric line
 * before starting mpirun: the job succeeds, the metric row is stored for it,
 * its dataset too, and its spool directory is gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "job_remote.h"
#include "launch.h"
#include "qn_err.h"
#include "qn_test.h"
#include "spec.h"
#include "store.h"
#include "store_catalog.h"

static void test_templates(void **state)
{
    (void)state;
    struct launcher L;
    char msg[256], big[LAUNCH_TEMPLATE_MAX + 10];
    assert_int_equal(launch_local_init(&L, "mpirun -n {ranks}", msg, sizeof msg), QN_EINVAL);
    assert_non_null(strstr(msg, "{cmd}"));
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(launch_local_init(&L, big, msg, sizeof msg), QN_EINVAL);
    assert_int_equal(launch_local_init(&L, NULL, msg, sizeof msg), 0);
    assert_non_null(strstr(L.template_, "mpirun"));
    assert_int_equal(strstr(L.template_, "--allow-run-as-root") != NULL, geteuid() == 0);
    assert_int_equal(launch_local_init(&L, "sh {cmd}", msg, sizeof msg), 0);
    assert_int_equal(L.ops->check(&L, msg, sizeof msg), 0);
    assert_int_equal(launch_local_init(&L, "/nonexistent/mpirun -n {ranks} {cmd}", msg,
                                       sizeof msg),
                     0);
    assert_int_equal(L.ops->check(&L, msg, sizeof msg), QN_EREMOTE);
    assert_non_null(strstr(msg, "/nonexistent/mpirun"));
}

/* A launcher running `/bin/sh dir/script {cmd}` and a job for it in dir/job-1. */
static void script_launcher(const struct qt_dir *f, const char *script, struct launcher *L,
                            struct launch_job *job, char *jobdir, size_t cap)
{
    char tmpl[700], msg[256];
    assert_int_equal(qt_write_file(f->dir, "script.sh", script), 0);
    snprintf(tmpl, sizeof tmpl, "/bin/sh %s/script.sh {threads} {cmd}", f->dir);
    assert_int_equal(launch_local_init(L, tmpl, msg, sizeof msg), 0);
    snprintf(jobdir, cap, "%s/job-1", f->dir);
    mkdir(jobdir, 0755);
    *job = (struct launch_job){.id = 1, .dir = jobdir, .qn_mpi = "/bin/true", .ranks = 2,
                               .threads = 3};
}

static void test_lines_and_failure(void **state)
{
    struct qt_dir *f = *state;
    struct launcher L;
    struct launch_job job;
    struct launch_run *run = NULL;
    char dir[700], line[LAUNCH_LINE_MAX], msg[256], reason[256];
    script_launcher(f,
                    "echo \"{\\\"progress\\\":[1,$1]}\"\n" /* {threads} is 3 */
                    "echo 'mpirun: a warning of its own'\n"
                    "echo \"{\\\"metric\\\":{\\\"step\\\":1,\\\"epoch\\\":0,\\\"name\\\":\\\"x\\\","
                    "\\\"value\\\":2}}\"\n"
                    "echo \"args $2 $3\" >&2\necho 'why it failed' >&2\necho '-----' >&2\n"
                    "exit 3\n",
                    &L, &job, dir, sizeof dir);
    assert_int_equal(L.ops->start(&L, &job, &run, msg, sizeof msg), 0);
    assert_null(L.ops->handle(run));
    const char *want[] = {"{\"progress\":[1,3]}", "mpirun: a warning of its own",
                          "{\"metric\":{\"step\":1,\"epoch\":0,\"name\":\"x\",\"value\":2}}"};
    for (size_t i = 0; i < 3;) {
        int got = L.ops->next_line(run, line, sizeof line, 1000);
        assert_int_not_equal(got, 2);
        if (got == 1)
            assert_string_equal(line, want[i++]);
    }
    int got;
    while ((got = L.ops->next_line(run, line, sizeof line, 1000)) != 2)
        assert_int_equal(got, 0);
    assert_int_equal(L.ops->wait(run, reason, sizeof reason), QN_EREMOTE);
    assert_string_equal(reason, "why it failed");
    L.ops->destroy(run);
    char path[800];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    char *err = qt_read_file(path, NULL);
    char args[800];
    snprintf(args, sizeof args, "args /bin/true %s", dir); /* {cmd} is two words */
    assert_non_null(strstr(err, args));
    free(err);

    /* qn-mpi's own reason (error.txt) comes first. */
    assert_int_equal(L.ops->start(&L, &job, &run, msg, sizeof msg), 0);
    assert_int_equal(qt_write_file(dir, "error.txt", "the rank's reason\n"), 0);
    while (L.ops->next_line(run, line, sizeof line, 1000) != 2)
        ;
    assert_int_equal(L.ops->wait(run, reason, sizeof reason), QN_EREMOTE);
    assert_string_equal(reason, "the rank's reason");
    L.ops->destroy(run);
}

static void test_cancel_group(void **state)
{
    struct qt_dir *f = *state;
    struct launcher L;
    struct launch_job job;
    struct launch_run *run = NULL;
    char dir[700], line[LAUNCH_LINE_MAX], msg[256], reason[256];
    /* A child in the launcher's group that ignores nothing, and a parent
     * that ignores SIGTERM: SIGKILL after the grace period ends both. */
    script_launcher(f,
                    "sh -c 'sleep 60; :' \"$3\" &\ntrap '' TERM\necho started\n"
                    "while :; do sleep 1; done\n",
                    &L, &job, dir, sizeof dir);
    assert_int_equal(L.ops->start(&L, &job, &run, msg, sizeof msg), 0);
    int got;
    while ((got = L.ops->next_line(run, line, sizeof line, 1000)) == 0)
        ;
    assert_int_equal(got, 1);
    assert_string_equal(line, "started");
    /* The script and its child (whose command line is briefly empty while it execs). */
    for (int i = 0; i < 200 && qt_processes_with(dir) < 2; i++) {
        struct timespec t = {0, 50000000L};
        nanosleep(&t, NULL);
    }
    assert_true(qt_processes_with(dir) >= 2);
    L.ops->cancel(run);
    assert_int_equal(L.ops->wait(run, reason, sizeof reason), QN_EREMOTE);
    assert_non_null(strstr(reason, "signal 9"));
    L.ops->destroy(run);
    for (int i = 0; i < 200 && qt_processes_with(dir) > 0; i++) {
        struct timespec t = {0, 50000000L};
        nanosleep(&t, NULL);
    }
    assert_int_equal(qt_processes_with(dir), 0);
}

static int no_stage_validate(const json_t *spec, struct job_refs *refs, struct spec_error *err)
{
    (void)spec, (void)refs, (void)err;
    return 0;
}

static void test_check_and_init(void **state)
{
    struct qt_dir *f = *state;
    const struct job_type plain = {.name = "plain", .validate = no_stage_validate};
    struct job_remote r;
    struct launcher L;
    struct spec_error err = {{0}, {0}};
    char msg[SPOOL_PATH_MAX + 128], file[700], db[700];
    assert_int_equal(job_remote_check(NULL, &plain, 1, &err), 0);
    assert_int_equal(job_remote_check(NULL, &plain, 2, &err), QN_EREMOTE);
    assert_string_equal(err.path, "/resources/ranks");
    assert_non_null(strstr(err.msg, "type plain does not run on several ranks yet"));
    assert_int_equal(job_remote_check(NULL, job_type_find("sweep"), 2, &err), QN_EREMOTE);
    assert_string_equal(err.path, "/resources/ranks");
    assert_int_equal(launch_local_init(&L, "/nonexistent/mpirun {cmd}", msg, sizeof msg), 0);
    snprintf(db, sizeof db, "%s/q.db", f->dir);
    assert_int_equal(job_remote_init(&r, &L, NULL, db, msg, sizeof msg), 0);
    assert_non_null(strstr(r.spool, "q.db.spool"));
    assert_int_equal(job_remote_check(&r, job_type_find("sweep"), 2, &err), QN_EREMOTE);
    assert_non_null(strstr(err.msg, "/nonexistent/mpirun"));
    snprintf(file, sizeof file, "%s/a-file", f->dir);
    assert_int_equal(qt_write_file(NULL, file, "x"), 0);
    assert_int_equal(job_remote_init(&r, &L, file, db, msg, sizeof msg), QN_EIO);
    assert_non_null(strstr(msg, file));
}

static void test_metric_lines_stored(void **state)
{
    struct qt_store *f = *state;
    qt_need_mpirun(__func__);
    char tmpl[700], msg[SPOOL_PATH_MAX + 128];
    assert_int_equal(qt_write_file(f->dir, "wrap.sh",
                                   "echo '{\"metric\":{\"step\":4,\"epoch\":1,\"name\":\"probe\","
                                   "\"value\":2.5}}'\n"
                                   "exec mpirun --allow-run-as-root --oversubscribe -n 2 \"$@\"\n"),
                     0);
    snprintf(tmpl, sizeof tmpl, "/bin/sh %s/wrap.sh {cmd}", f->dir);
    struct launcher L;
    struct job_remote r;
    assert_int_equal(launch_local_init(&L, tmpl, msg, sizeof msg), 0);
    assert_int_equal(job_remote_init(&r, &L, NULL, f->db, msg, sizeof msg), 0);
    snprintf(r.qn_mpi, sizeof r.qn_mpi, "%s", QN_MPI_BIN); /* the tests are not beside it */
    json_t *root = json_loads("{\"type\":\"sweep\",\"resources\":{\"ranks\":2},\"spec\":{"
                              "\"device\":{\"kind\":\"crn_relu\"},\"samples\":300,"
                              "\"ranges\":{\"u1\":[-3,3]}}}",
                              0, NULL);
    struct job_spec js;
    struct spec_error err = {{0}, {0}};
    assert_int_equal(job_spec_parse(root, &js, &err), 0);
    json_decref(root);
    int64_t id = 0;
    assert_int_equal(job_run_with(f->s, &js, NULL, 1, &r, NULL, NULL, NULL, &id, &err), 0);
    json_decref(js.spec);
    struct store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    if (j.state != JOB_SUCCEEDED)
        fail_msg("the job ended %s: %s", store_job_state_name(j.state), j.error);
    store_job_free(&j);
    struct store_metric_query q = {.job = id, .name = "probe"};
    struct store_metric *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_metric_list(f->s, &q, &rows, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].step, 4);
    assert_int_equal(rows[0].epoch, 1);
    assert_true(rows[0].value == 2.5);
    store_metric_list_free(rows, n);
    struct store_dataset ds;
    assert_int_equal(store_dataset_get_by_job(f->s, id, &ds), 0);
    assert_int_equal(ds.n_rows, 300);
    store_dataset_free(&ds);
    char dir[SPOOL_PATH_MAX + 32];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/job-%" PRId64, r.spool, id);
    assert_int_not_equal(stat(dir, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test_setup_teardown(test_lines_and_failure, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_group, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_check_and_init, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_metric_lines_stored, qt_store_setup,
                                        qt_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
