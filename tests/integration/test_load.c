/*
 * test_load.c: 200 jobs from 4 users submitted at once to a real `qn serve`
 * with 2 workers: every job completes, and the scheduler shares the workers
 * fairly.
 *
 * The users are made with `qn user add`; alice POSTs her 50 jobs first (a
 * backlog that a first-come-first-served queue would make the others wait
 * behind), then three threads (one per other user, started together behind a
 * barrier) each POST 50 at once: the whole burst takes about 0.1 s, much
 * less than running it. The jobs are tiny sweeps (12 points of a
 * hodgkin_huxley membrane, some milliseconds each). The test polls until all
 * 200 succeeded, then reads every record (owner, created, started) and the daemon's transition
 * log, and checks fairness in the start order (started, ties broken by the
 * order of the log's "queued -> running" lines): between two consecutive
 * starts of an owner X, and before X's first start, no other owner starts
 * more than one job after X's next job was submitted (from then on X was
 * waiting); a start in the same millisecond as one of X's two is not counted,
 * since the log lines of two claims a moment apart may come out swapped. That is "no owner waits more than one job's length behind
 * another's backlog" with round-robin across owners.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>

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

#define LD_USERS 4
#define LD_PER_USER 50
#define LD_JOBS (LD_USERS * LD_PER_USER)
#define LD_TIMEOUT_S 120.0

/* A hodgkin_huxley sweep of 12 points: some milliseconds, so the backlog builds up. */
#define LD_JOB                                                                                \
    "{\"type\": \"sweep\", \"name\": \"tiny\", \"spec\": {\"device\": {\"kind\": "         \
    "\"hodgkin_huxley\", \"params\": {\"gain\": 1.0}, \"readout\": {\"kind\": \"spike_rate\", " \
    "\"t_max\": 100}}, \"samples\": 12, \"ranges\": {\"u1\": [0, 15]}}}"
#define LD_ROWS 12

static const char *const ld_names[LD_USERS] = {"alice", "bob", "carol", "dave"};

/* One submitting user (a thread). */
struct ld_user {
    unsigned port;
    char token[80];
    pthread_barrier_t *go;
    int64_t ids[LD_PER_USER];
    size_t n;          /* submitted with 201 */
    long bad_status;   /* the first other status (0: none) */
};

/* One job as the checks see it. */
struct ld_job {
    int64_t id;
    int owner;                  /* index into ld_names */
    char created[32], started[32];
    size_t log_pos;             /* order of its "queued -> running" line */
};

struct ld {
    struct qd d; /* first (qd_fixture_new) */
    struct ld_user users[LD_USERS];
};

static int ld_setup(void **state)
{
    *state = qd_fixture_new(sizeof(struct ld), 2);
    return *state ? 0 : -1;
}

static int ld_teardown(void **state)
{
    qd_fixture_free(*state);
    return 0;
}

/* qn user add NAME; its token into tok. */
static void ld_user_add(struct ld *l, const char *name, char *tok, size_t cap)
{
    struct qt_run r;
    assert_int_equal(qt_qn(l->d.dir, NULL, &r, "user", "add", name, "--db", l->d.db,
                           (char *)NULL),
                     0);
    assert_int_equal(r.status, 0);
    size_t n = strcspn(r.out, "\n");
    assert_true(n > 0 && n < cap);
    memcpy(tok, r.out, n);
    tok[n] = 0;
    qt_run_free(&r);
}

static void *ld_submitter(void *arg)
{
    struct ld_user *u = arg;
    pthread_barrier_wait(u->go);
    for (size_t i = 0; i < LD_PER_USER; i++) {
        json_t *r = NULL;
        long st = qd_http_raw(u->port, "POST", "/v1/jobs", u->token, LD_JOB, &r);
        if (st == 201)
            u->ids[u->n++] = json_integer_value(json_object_get(r, "id"));
        else if (!u->bad_status)
            u->bad_status = st;
        json_decref(r);
    }
    return NULL;
}

/* Starts submitter threads for users [from, to) together; joins them. */
static void ld_submit_users(struct ld *l, int from, int to)
{
    pthread_barrier_t go;
    pthread_t th[LD_USERS];
    assert_int_equal(pthread_barrier_init(&go, NULL, (unsigned)(to - from + 1)), 0);
    for (int i = from; i < to; i++) {
        l->users[i].port = l->d.port;
        l->users[i].go = &go;
        assert_int_equal(pthread_create(&th[i], NULL, ld_submitter, &l->users[i]), 0);
    }
    pthread_barrier_wait(&go);
    for (int i = from; i < to; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

/* Alice's backlog first, then the three others' at once; the seconds it took. */
static double ld_submit_all(struct ld *l)
{
    double t0 = qd_now();
    ld_submit_users(l, 0, 1);
    ld_submit_users(l, 1, LD_USERS);
    double took = qd_now() - t0;
    for (int i = 0; i < LD_USERS; i++) {
        if (l->users[i].bad_status)
            fail_msg("%s: a submission answered %ld", ld_names[i], l->users[i].bad_status);
        assert_int_equal(l->users[i].n, LD_PER_USER);
    }
    return took;
}

/* Every job record (new reference: an array), read as alice. */
static json_t *ld_list(struct ld *l, const char *filter)
{
    json_t *all = json_array();
    int64_t cursor = 0;
    do {
        char path[160];
        json_t *r = NULL;
        snprintf(path, sizeof path, "/v1/jobs?limit=1000&cursor=%" PRId64 "%s", cursor, filter);
        assert_int_equal(qd_http(&l->d, "GET", path, l->users[0].token, NULL, &r), 200);
        json_array_extend(all, json_object_get(r, "jobs"));
        json_t *next = json_object_get(r, "next");
        cursor = json_is_integer(next) ? json_integer_value(next) : 0;
        json_decref(r);
    } while (cursor);
    return all;
}

/* Polls until every job succeeded (fails on a failed one or at the deadline). */
static void ld_wait_all(struct ld *l)
{
    double t0 = qd_now();
    for (;;) {
        json_t *all = ld_list(l, "");
        size_t ok = 0, i;
        json_t *j;
        json_array_foreach(all, i, j)
        {
            const char *st = json_string_value(json_object_get(j, "state"));
            if (!strcmp(st, "failed") || !strcmp(st, "canceled"))
                fail_msg("a job ended %s: %s", st, json_dumps(j, 0));
            ok += !strcmp(st, "succeeded");
        }
        json_decref(all);
        if (ok == LD_JOBS)
            return;
        if (qd_now() - t0 > LD_TIMEOUT_S)
            fail_msg("%zu of %d jobs succeeded after %.0f s", ok, LD_JOBS, LD_TIMEOUT_S);
        qd_nap_ms(20);
    }
}

static int ld_owner(const char *name)
{
    for (int i = 0; i < LD_USERS; i++)
        if (name && !strcmp(ld_names[i], name))
            return i;
    return -1;
}

/* Where each job's "queued -> running" line is in the daemon's log. */
static void ld_log_positions(struct ld *l, struct ld_job *jobs, size_t n)
{
    char *text = qt_read_file(l->d.log, NULL);
    size_t pos = 0;
    for (const char *p = text; p && (p = strstr(p, "qn: job ")); p++) {
        const char *eol = strchr(p, '\n');
        const char *run = strstr(p, ": queued -> running");
        if (!run || (eol && run > eol))
            continue;
        int64_t id = strtoll(p + 8, NULL, 10);
        pos++;
        for (size_t i = 0; i < n; i++)
            if (jobs[i].id == id && !jobs[i].log_pos)
                jobs[i].log_pos = pos;
    }
    free(text);
}

static int ld_by_start(const void *a, const void *b)
{
    const struct ld_job *x = a, *y = b;
    int c = strcmp(x->started, y->started);
    return c ? c : (x->log_pos > y->log_pos) - (x->log_pos < y->log_pos);
}

/* The records, in start order. */
static struct ld_job *ld_start_order(struct ld *l)
{
    json_t *all = ld_list(l, "");
    assert_int_equal(json_array_size(all), LD_JOBS);
    struct ld_job *jobs = calloc(LD_JOBS, sizeof *jobs);
    assert_non_null(jobs);
    size_t i;
    json_t *j;
    json_array_foreach(all, i, j)
    {
        jobs[i].id = json_integer_value(json_object_get(j, "id"));
        jobs[i].owner = ld_owner(json_string_value(json_object_get(j, "owner")));
        assert_true(jobs[i].owner >= 0);
        snprintf(jobs[i].created, sizeof jobs[i].created, "%s",
                 json_string_value(json_object_get(j, "created")));
        snprintf(jobs[i].started, sizeof jobs[i].started, "%s",
                 json_string_value(json_object_get(j, "started")));
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(j, "result"), "rows")), LD_ROWS);
    }
    json_decref(all);
    ld_log_positions(l, jobs, LD_JOBS);
    for (i = 0; i < LD_JOBS; i++)
        assert_true(jobs[i].log_pos > 0); /* every start was logged once */
    qsort(jobs, LD_JOBS, sizeof *jobs, ld_by_start);
    return jobs;
}

/* Whether start m is surely after start prev (-1: none): the times have
 * milliseconds, and two claims in the same millisecond are in either order. */
static int ld_after(const struct ld_job *jobs, long prev, long m)
{
    return prev < 0 || strcmp(jobs[m].started, jobs[prev].started) > 0;
}

/*
 * The largest number of starts of one other owner between consecutive starts
 * of the same owner (or before its first), counting only starts after that
 * owner's next job was submitted, and not those in the same millisecond as
 * either of the owner's two starts (their order is not known). Prints the
 * worst case.
 */
static size_t ld_worst_wait(const struct ld_job *jobs)
{
    size_t worst = 0;
    for (int x = 0; x < LD_USERS; x++) {
        long prev = -1;
        for (long k = 0; k < LD_JOBS; k++) {
            if (jobs[k].owner != x)
                continue;
            size_t others[LD_USERS] = {0};
            for (long m = prev + 1; m < k; m++)
                if (strcmp(jobs[m].started, jobs[k].created) > 0 && ld_after(jobs, prev, m) &&
                    strcmp(jobs[m].started, jobs[k].started) < 0)
                    others[jobs[m].owner]++;
            for (int y = 0; y < LD_USERS; y++) {
                if (others[y] > worst) {
                    worst = others[y];
                    printf("  %s's job %" PRId64 " (start #%ld at %s) waited behind %zu "
                           "starts of %s\n",
                           ld_names[x], jobs[k].id, k + 1, jobs[k].started, others[y],
                           ld_names[y]);
                }
            }
            prev = k;
        }
    }
    return worst;
}

/* Starts at which two owners or more were waiting (where fairness had a choice). */
static size_t ld_contested(const struct ld_job *jobs)
{
    size_t n = 0;
    for (long k = 0; k < LD_JOBS; k++) {
        int waiting[LD_USERS] = {0}, owners = 0;
        for (long m = k; m < LD_JOBS; m++) /* not started before k, submitted by then */
            if (strcmp(jobs[m].created, jobs[k].started) <= 0)
                waiting[jobs[m].owner] = 1;
        for (int y = 0; y < LD_USERS; y++)
            owners += waiting[y];
        n += owners >= 2;
    }
    return n;
}

static void test_200_jobs_from_4_users(void **state)
{
    struct ld *l = *state;
    for (int i = 0; i < LD_USERS; i++)
        ld_user_add(l, ld_names[i], l->users[i].token, sizeof l->users[i].token);
    qd_start(&l->d);
    double t0 = qd_now();
    double submit_s = ld_submit_all(l);
    ld_wait_all(l);
    double all_s = qd_now() - t0;
    struct ld_job *jobs = ld_start_order(l);
    printf("200 jobs from 4 users (2 workers): submitted in %.2f s, all succeeded %.2f s after "
           "the first submission (%.0f jobs/s)\nstart order:",
           submit_s, all_s, LD_JOBS / all_s);
    for (int k = 0; k < LD_JOBS; k++)
        printf("%s%c", k % 60 ? "" : "\n  ", ld_names[jobs[k].owner][0]);
    printf("\n");
    size_t worst = ld_worst_wait(jobs);
    size_t contested = ld_contested(jobs);
    printf("fairness: %zu of %d starts had two owners or more waiting; a waiting owner saw at "
           "most %zu start%s of another owner between two of its own (1 allowed)\n",
           contested, LD_JOBS, worst, worst == 1 ? "" : "s");
    assert_true(worst <= 1);
    free(jobs);
    assert_int_equal(qd_stop(&l->d, SIGTERM), 0);
    sqlite3 *db = qd_db_open(l->d.db);
    qd_db_integrity_ok(db);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM datasets"), LD_JOBS);
    sqlite3_close(db);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_200_jobs_from_4_users, ld_setup, ld_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
