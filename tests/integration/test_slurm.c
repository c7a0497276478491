/*
 * test_slurm.c: jobs through a real single-node Slurm (issue 13), started
 * once for the whole program in a temporary directory and stopped after
 * (tests/support/qt_slurm.h).
 *
 * Covers: the cluster itself: `srun --mpi=pmix -n 2` runs an MPI program
 * (an MPI_Allreduce over both ranks, compiled here with mpicc) under
 * Debian's PMIx plugin. Then a real `qn serve --slurm` (QN_BIN, qn-mpi
 * beside it): a sweep in the daemon and the same sweep on 2 ranks as a Slurm
 * batch job both succeed with the same dataset bytes, one batch job
 * completed, and no row keeps a Slurm id after it; a train on 2 ranks (a
 * layer via device) succeeds with its model and metrics stored; a running
 * batch job's cancel over HTTP becomes scancel (Slurm says CANCELLED), the
 * job ends canceled with no dataset and no spool directory; kill -9 of the
 * daemon while its batch job is queued or running, then a restart: the job
 * is attached to again (not submitted again: one batch job) and succeeds with
 * one dataset; SIGTERM of the daemon leaves its running batch job going and
 * the next start attaches to it likewise; a node failure (the node set DOWN
 * under a running job: Slurm ends it NODE_FAIL) submits the job again as a
 * second batch job (which the test then cancels, to stay short: canceled, no
 * dataset). Bad input: --slurm with no sbatch on PATH, --partition without
 * --slurm, --slurm with --launcher and a partition with a space refuse to
 * start, saying why.
 *
 * Where Slurm cannot run (not root, slurm-wlm missing) every test is skipped
 * with the reason; on Debian 12 as root a cluster that does not come up
 * fails them. No fixed sleeps: every wait is a poll with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <inttypes.h>
#include <limits.h>
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
#include "qt_slurm.h"

/* A crn_relu sweep of n points on `ranks` ranks. */
#define CRN_SWEEP(n, ranks)                                                                        \
    "{\"type\":\"sweep\",\"name\":\"crn\",\"resources\":{\"ranks\":" #ranks "},"                   \
    "\"spec\":{\"device\":{\"kind\":\"crn_relu\"},\"samples\":" #n ",\"ranges\":{\"u1\":[-3,3]}}}"
/* A Hodgkin-Huxley sweep of n points on 2 ranks: about n / 2 ms a rank, and
 * several times that under ASan. */
#define HH_SWEEP(n)                                                                                \
    "{\"type\":\"sweep\",\"name\":\"hh\",\"resources\":{\"ranks\":2},"                             \
    "\"spec\":{\"device\":{\"kind\":\"hodgkin_huxley\",\"params\":{\"gain\":1.0},"                 \
    "\"readout\":{\"kind\":\"spike_rate\",\"t_max\":200}},\"samples\":" #n ","                     \
    "\"ranges\":{\"u1\":[0,15]}}}"
/* A train job on 2 ranks: spirals, 4 crn_relu devices via device, 1 epoch. */
#define TRAIN_JOB                                                                                  \
    "{\"type\":\"train\",\"resources\":{\"ranks\":2},\"spec\":{\"dataset\":{\"name\":"            \
    "\"spirals\",\"samples\":300},\"network\":[{\"devices\":4,\"device\":{\"kind\":"            \
    "\"crn_relu\"},\"via\":\"device\"},{\"devices\":2,\"device\":{\"kind\":\"neuron\","           \
    "\"params\":{\"activation\":\"identity\"}}}],\"epochs\":1,\"batch\":64,\"seed\":1,"           \
    "\"checkpoint_every\":1}}"
/* Seconds a job through Slurm may take to end (ASan, a loaded machine). */
#define SLURM_DEADLINE_S 300

/* The cluster of this program (group setup to teardown). */
static struct qt_slurm cluster;
static int cluster_rc;         /* qt_slurm_start's: 0 up, 1 skip, -1 fail */
static char cluster_why[4096]; /* why it is not up */

/* Each test's first line: skips or fails when the cluster is not up. */
static void need_cluster(const char *test)
{
    if (cluster_rc > 0)
        qt_skip_test(test, cluster_why);
    if (cluster_rc < 0)
        fail_msg("%s", cluster_why);
}

/* An MPI program: every rank adds its rank + 1; rank 0 prints the sum and the size. */
static const char *const MPI_SUM_C =
    "#include <mpi.h>\n"
    "#include <stdio.h>\n"
    "int main(int argc, char **argv) {\n"
    "    int rank = 0, size = 0, mine, sum = 0;\n"
    "    MPI_Init(&argc, &argv);\n"
    "    MPI_Comm_rank(MPI_COMM_WORLD, &rank);\n"
    "    MPI_Comm_size(MPI_COMM_WORLD, &size);\n"
    "    mine = rank + 1;\n"
    "    MPI_Allreduce(&mine, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);\n"
    "    if (rank == 0) printf(\"size %d sum %d\\n\", size, sum);\n"
    "    MPI_Finalize();\n"
    "    return 0;\n"
    "}\n";

/* srun --mpi=pmix -n 2 of an MPI program: both ranks meet in one MPI_Allreduce. */
static void test_srun_pmix_two_ranks(void **state)
{
    struct qt_dir *f = *state;
    need_cluster(__func__);
    if (access("/usr/bin/mpicc", X_OK) != 0)
        qt_skip("mpicc is not installed (Debian: libopenmpi-dev; make deps)");
    assert_int_equal(qt_write_file(f->dir, "sum.c", MPI_SUM_C), 0);
    struct qt_run r;
    const char *cc[] = {"/usr/bin/mpicc", "-o", "sum", "sum.c", NULL};
    assert_int_equal(qt_run(f->dir, cc, NULL, &r), 0);
    qt_expect_status(&r, 0);
    qt_run_free(&r);
    const char *srun[] = {"/usr/bin/srun", "--mpi=pmix", "-n", "2", "-t", "1", "./sum", NULL};
    assert_int_equal(qt_run(f->dir, srun, NULL, &r), 0);
    qt_expect_status(&r, 0);
    assert_string_equal(r.out, "size 2 sum 3\n");
    qt_run_free(&r);
}

/* ---- through the daemon ------------------------------------------------------------ */

static int fx_setup(void **state)
{
    *state = qd_fixture_new(sizeof(struct qd), 1);
    return *state ? 0 : -1;
}

static int fx_teardown(void **state)
{
    qd_fixture_free(*state);
    return 0;
}

/* Starts `qn serve --slurm` on the fixture's database. */
static void start_slurm_daemon(struct qd *d)
{
    const char *extra[] = {"--slurm", NULL};
    qd_start_with(d, extra);
}

/* The text the SQL query answers on the daemon's database into buf ("" for
 * NULL or no row). */
static void db_text(const struct qd *d, const char *sql, char *buf, size_t cap)
{
    sqlite3 *db = qd_db_open(d->db);
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* The Slurm job id on job id's row into buf ("" when none). */
static void row_handle(const struct qd *d, int64_t id, char *buf, size_t cap)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT launch_handle FROM jobs WHERE id = %" PRId64, id);
    db_text(d, sql, buf, cap);
}

/* Polls until job id's row has a Slurm id (into buf); fails after 60 s. */
static void wait_handle(const struct qd *d, int64_t id, char *buf, size_t cap)
{
    double until = qd_now() + 60;
    for (row_handle(d, id, buf, cap); !buf[0]; row_handle(d, id, buf, cap)) {
        if (qd_now() > until)
            fail_msg("job %" PRId64 " got no Slurm job id in 60 s", id);
        qd_nap_ms(20);
    }
}

/* Runs a Slurm command (absolute path) and returns its stdout (a new string). */
static char *slurm_out(const char *const *argv)
{
    struct qt_run r;
    assert_int_equal(qt_run(NULL, argv, NULL, &r), 0);
    qt_expect_status(&r, 0);
    free(r.err);
    return r.out;
}

/* Slurm's state of batch job `sid` ("COMPLETED", "CANCELLED", ...) into buf. */
static void slurm_state(const char *sid, char *buf, size_t cap)
{
    const char *argv[] = {"/usr/bin/squeue", "-h", "-t", "all", "-j", sid, "-o", "%T", NULL};
    char *out = slurm_out(argv);
    snprintf(buf, cap, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
}

/* How many batch jobs Slurm knows (since the cluster started) that ran in
 * job id's spool directory: the daemon's submissions of that job. */
static size_t slurm_jobs_of(const struct qd *d, int64_t id)
{
    char dir[800], real[PATH_MAX];
    snprintf(dir, sizeof dir, "%s.spool", d->db);
    assert_non_null(realpath(dir, real));
    snprintf(dir, sizeof dir, "%s/job-%" PRId64, real, id);
    const char *argv[] = {"/usr/bin/squeue", "-h", "-t", "all", "-o", "%Z", NULL};
    char *out = slurm_out(argv);
    size_t n = 0;
    for (const char *l = out; *l; l += strcspn(l, "\n"), l += *l == '\n') {
        size_t len = strcspn(l, "\n");
        n += len == strlen(dir) && strncmp(l, dir, len) == 0;
    }
    free(out);
    return n;
}

/* Polls until Slurm says batch job sid is `state`; fails after 60 s. */
static void wait_slurm_state(const char *sid, const char *state)
{
    char now[64];
    double until = qd_now() + 60;
    for (slurm_state(sid, now, sizeof now); strcmp(now, state) != 0;
         slurm_state(sid, now, sizeof now)) {
        if (qd_now() > until)
            fail_msg("Slurm job %s is %s, not %s, after 60 s", sid, now, state);
        qd_nap_ms(50);
    }
}

/* Waits for job id to be final and checks it is `want`; the record is freed. */
static void expect_final(const struct qd *d, int64_t id, const char *want)
{
    json_t *j = qd_wait_final(d, NULL, id, SLURM_DEADLINE_S);
    const char *state = json_string_value(json_object_get(j, "state"));
    if (strcmp(state, want) != 0) {
        char *tail = qd_log_tail(d->log);
        fail_msg("job %" PRId64 " is %s (%s), not %s; daemon log:\n%s", id, state,
                 json_string_value(json_object_get(j, "error")), want, tail);
    }
    json_decref(j);
}

/* Datasets job id made. */
static int64_t datasets_of(const struct qd *d, int64_t id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM datasets WHERE job_id = %" PRId64, id);
    sqlite3 *db = qd_db_open(d->db);
    int64_t n = qd_db_int(db, sql);
    sqlite3_close(db);
    return n;
}

/* The bytes of job id's dataset blocks, in order, as hex text (a new string). */
static char *dataset_bytes(const struct qd *d, int64_t id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT hex(group_concat(data, x'')) FROM (SELECT b.data FROM dataset_blocks b"
             " JOIN datasets s ON s.id = b.dataset_id WHERE s.job_id = %" PRId64
             " ORDER BY b.block)",
             id);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    db_text(d, sql, buf, 1 << 20);
    return buf;
}

/* Whether job id's spool directory is there (DB.spool/job-ID). */
static int spool_dir_exists(const struct qd *d, int64_t id)
{
    char path[800];
    struct stat st;
    snprintf(path, sizeof path, "%s.spool/job-%" PRId64, d->db, id);
    return stat(path, &st) == 0;
}

/* A sweep in the daemon and the same sweep on 2 ranks through Slurm: both
 * succeed with the same bytes; one batch job, completed; no id left on the row. */
static void test_sweep_two_ranks(void **state)
{
    struct qd *d = *state;
    need_cluster(__func__);
    start_slurm_daemon(d);
    int64_t one = qd_submit(d, NULL, CRN_SWEEP(3000, 1));
    int64_t two = qd_submit(d, NULL, CRN_SWEEP(3000, 2));
    expect_final(d, one, "succeeded");
    expect_final(d, two, "succeeded");
    assert_int_equal(slurm_jobs_of(d, one), 0); /* one rank runs in the daemon */
    assert_int_equal(slurm_jobs_of(d, two), 1);
    char sid[64], st[64], sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE launch_handle IS NOT NULL");
    sqlite3 *db = qd_db_open(d->db);
    assert_int_equal(qd_db_int(db, sql), 0);
    sqlite3_close(db);
    const char *argv[] = {"/usr/bin/squeue", "-h", "-t", "all", "-o", "%i %Z", NULL};
    char *out = slurm_out(argv), *line = strstr(out, "/job-2\n");
    assert_non_null(line);
    while (line > out && line[-1] != '\n')
        line--;
    snprintf(sid, sizeof sid, "%.*s", (int)strcspn(line, " "), line);
    free(out);
    slurm_state(sid, st, sizeof st);
    assert_string_equal(st, "COMPLETED");
    char *a = dataset_bytes(d, one), *b = dataset_bytes(d, two);
    assert_true(strlen(a) == 3000 * 3 * 4 * 2); /* u1, out, status as float32, in hex */
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_false(spool_dir_exists(d, two));
}

/* A train on 2 ranks through Slurm: one batch job, a model and its metrics stored. */
static void test_train_two_ranks(void **state)
{
    struct qd *d = *state;
    need_cluster(__func__);
    start_slurm_daemon(d);
    int64_t id = qd_submit(d, NULL, TRAIN_JOB);
    expect_final(d, id, "succeeded");
    assert_int_equal(slurm_jobs_of(d, id), 1);
    char sql[128];
    sqlite3 *db = qd_db_open(d->db);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM models WHERE job_id = %" PRId64, id);
    assert_int_equal(qd_db_int(db, sql), 1);
    snprintf(sql, sizeof sql, "SELECT count(*) > 0 FROM metrics WHERE job_id = %" PRId64, id);
    assert_int_equal(qd_db_int(db, sql), 1);
    sqlite3_close(db);
    assert_false(spool_dir_exists(d, id));
}

/* A running batch job canceled over HTTP: scancel, canceled, nothing stored. */
static void test_cancel_is_scancel(void **state)
{
    struct qd *d = *state;
    need_cluster(__func__);
    start_slurm_daemon(d);
    int64_t id = qd_submit(d, NULL, HH_SWEEP(200000));
    char sid[64], path[64];
    wait_handle(d, id, sid, sizeof sid);
    wait_slurm_state(sid, "RUNNING");
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/cancel", id);
    assert_int_equal(qd_http(d, "POST", path, NULL, NULL, NULL), 202);
    expect_final(d, id, "canceled");
    wait_slurm_state(sid, "CANCELLED");
    assert_int_equal(datasets_of(d, id), 0);
    assert_false(spool_dir_exists(d, id));
    char left[64];
    row_handle(d, id, left, sizeof left);
    assert_string_equal(left, "");
}

/* kill -9 of the daemon while its batch job is queued or running; a restart
 * attaches to it: one batch job, one dataset, succeeded. */
static void test_kill_daemon_attaches(void **state)
{
    struct qd *d = *state;
    need_cluster(__func__);
    start_slurm_daemon(d);
    int64_t id = qd_submit(d, NULL, HH_SWEEP(3000));
    char sid[64], again[64];
    wait_handle(d, id, sid, sizeof sid);
    qd_stop(d, SIGKILL);
    start_slurm_daemon(d);
    expect_final(d, id, "succeeded");
    assert_int_equal(slurm_jobs_of(d, id), 1);
    slurm_state(sid, again, sizeof again);
    assert_string_equal(again, "COMPLETED");
    assert_int_equal(datasets_of(d, id), 1);
    assert_true(qd_file_size(d->log) > 0);
    char *log = qt_read_file(d->log, NULL);
    assert_non_null(strstr(log, "queued again"));
    free(log);
}

/* SIGTERM of the daemon while its batch job runs: the batch job goes on (not
 * CANCELLED), the job is requeued with its Slurm id, and the next start
 * attaches to it: one batch job, one dataset, succeeded. */
static void test_sigterm_leaves_batch_job(void **state)
{
    struct qd *d = *state;
    need_cluster(__func__);
    start_slurm_daemon(d);
    int64_t id = qd_submit(d, NULL, HH_SWEEP(6000));
    char sid[64], st[64], kept[64];
    wait_handle(d, id, sid, sizeof sid);
    wait_slurm_state(sid, "RUNNING");
    assert_int_equal(qd_exit_code(qd_stop(d, SIGTERM)), 0);
    slurm_state(sid, st, sizeof st);
    if (strcmp(st, "RUNNING") != 0 && strcmp(st, "COMPLETING") != 0 && strcmp(st, "COMPLETED") != 0)
        fail_msg("Slurm job %s is %s after the daemon stopped", sid, st);
    row_handle(d, id, kept, sizeof kept);
    assert_string_equal(kept, sid);
    start_slurm_daemon(d);
    expect_final(d, id, "succeeded");
    assert_int_equal(slurm_jobs_of(d, id), 1);
    assert_int_equal(datasets_of(d, id), 1);
}

/* The node fails under a running batch job (set DOWN: Slurm ends the job
 * NODE_FAIL): the job runs again as a second batch job and succeeds once. */
static void test_node_failure_runs_again(void **state)
{
    struct qd *d = *state;
    need_cluster(__func__);
    start_slurm_daemon(d);
    int64_t id = qd_submit(d, NULL, HH_SWEEP(200000));
    char sid[64], node[128], arg[160], st[64];
    wait_handle(d, id, sid, sizeof sid);
    wait_slurm_state(sid, "RUNNING");
    const char *nodes[] = {"/usr/bin/squeue", "-h", "-j", sid, "-o", "%N", NULL};
    char *out = slurm_out(nodes);
    snprintf(node, sizeof node, "nodename=%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    const char *down[] = {"/usr/bin/scontrol", "update",         node,
                          "state=down",        "reason=qn-test", NULL};
    free(slurm_out(down));
    wait_slurm_state(sid, "NODE_FAIL");
    snprintf(arg, sizeof arg, "%s", node);
    /* back in service; Slurm may have put it back itself when slurmd
     * registered again (ReturnToService=2), and then refuses "resume" */
    const char *resume[] = {"/usr/bin/scontrol", "update", arg, "state=resume", NULL};
    struct qt_run r;
    assert_int_equal(qt_run(NULL, resume, NULL, &r), 0);
    qt_run_free(&r);
    /* the second run: cancel it once it runs, so the test stays short; the
     * job ends canceled, which is what a second run's cancel is */
    double until = qd_now() + 60;
    char now[64];
    for (row_handle(d, id, now, sizeof now); !now[0] || strcmp(now, sid) == 0;
         row_handle(d, id, now, sizeof now)) {
        if (qd_now() > until)
            fail_msg("job %" PRId64 " was not submitted again after NODE_FAIL of %s", id, sid);
        qd_nap_ms(50);
    }
    assert_int_equal(slurm_jobs_of(d, id), 2);
    slurm_state(sid, st, sizeof st);
    assert_string_equal(st, "NODE_FAIL");
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/cancel", id);
    assert_int_equal(qd_http(d, "POST", path, NULL, NULL, NULL), 202);
    expect_final(d, id, "canceled");
    assert_int_equal(datasets_of(d, id), 0);
}

/* Runs `qn serve ARGS` on a fresh database in f's directory and expects it
 * to refuse to start with exit code `code` and `words` in what it says. */
static void expect_refused(const struct qd *d, int code, const char *words, const char *a1,
                           const char *a2, const char *a3)
{
    struct qt_run r;
    assert_int_equal(
        qt_qn(d->dir, NULL, &r, "serve", "--db", d->db, "--port", "0", a1, a2, a3, NULL), 0);
    if (r.status != code || !strstr(r.err, words))
        fail_msg("qn serve %s %s %s: status %d, said: %s", a1, a2 ? a2 : "", a3 ? a3 : "", r.status,
                 r.err);
    qt_run_free(&r);
}

/* --slurm and its options refused at start with the reason. */
static void test_bad_options(void **state)
{
    struct qd *d = *state;
    expect_refused(d, 2, "--partition needs --slurm", "--partition", "qn", NULL);
    expect_refused(d, 2, "give one of them", "--slurm", "--launcher", "mpirun {cmd}");
    expect_refused(d, 2, "--partition 'a b'", "--slurm", "--partition", "a b");
    char empty[600], *path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    snprintf(empty, sizeof empty, "%s/empty-bin", d->dir);
    assert_int_equal(mkdir(empty, 0755), 0);
    setenv("PATH", empty, 1); /* qn itself is started by its full path */
    expect_refused(d, 1, "'sbatch' is not an executable on PATH", "--slurm", NULL, NULL);
    if (path)
        setenv("PATH", path, 1);
    free(path);
}

static int group_setup(void **state)
{
    (void)state;
    cluster_rc = qt_slurm_start(&cluster, cluster_why, sizeof cluster_why);
    if (cluster_rc < 0)
        fprintf(stderr, "test_slurm: %s\n", cluster_why);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    qt_slurm_stop(&cluster);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_srun_pmix_two_ranks, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_two_ranks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_train_two_ranks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_is_scancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_kill_daemon_attaches, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_leaves_batch_job, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_node_failure_runs_again, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
