/*
 * test_limits.c: the bounds of one request's work on a real `qn serve`
 * (QN_BIN) on a loopback port (issue 16).
 *
 * Simulate: a Hodgkin-Huxley device that asks for t_max 1e9 ms and 1e9
 * steps is stopped at --simulate-steps with 422 limit_exceeded, and the
 * daemon's peak memory hardly moves (the trajectory is thinned while the
 * solve runs: a million recorded steps would be ~50 MB); a response curve
 * of a thousand long solves is stopped at --simulate-seconds with 503
 * timeout; a client that gives up frees its compute thread, so that the
 * next request is answered (with one compute thread and no time budget,
 * the abandoned curve would hold it for minutes).
 *
 * Jobs: a train job whose network would need more than --max-job-memory
 * (default half the RAM), such as 15 layers of 65,536 devices, is refused
 * at submission with 422 limit_exceeded and the estimate; nothing is
 * stored; one that fits is accepted and runs.
 *
 * Each test starts its own daemon with the options it needs and stops it
 * with SIGTERM. Nothing here waits on a clock: the one deadline is a
 * client's timeout far beyond what the bounded work takes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_test.h"
#include "qt_daemon.h"

/* Spikes for 1e9 ms: about 2e10 steps, as many as max_steps allows. */
#define HH_ENDLESS                                                                             \
    "{\"name\": \"hh-endless\", \"kind\": \"hodgkin_huxley\", \"readout\": {\"kind\": "       \
    "\"spike_rate\", \"t_max\": 1e9}, \"solver\": {\"max_steps\": 1000000000}}"
/* 50 s of membrane: ~0.15 s a solve here, minutes for a 1000-point curve. */
#define HH_LONG                                                                                \
    "{\"name\": \"hh-long\", \"kind\": \"hodgkin_huxley\", \"readout\": {\"kind\": "          \
    "\"spike_rate\", \"t_max\": 50000}}"
#define HH_CURVE "{\"curve\": {\"input\": \"u1\", \"from\": 0, \"to\": 20, \"points\": 1000}}"

/* The error code and message of a JSON error body (borrowed from j). */
static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *err_msg(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "message"));
}

/* Starts a daemon with `extra` and registers the devices. */
static void start(struct qd *d, const char *const *extra)
{
    qd_start_with(d, extra);
    assert_int_equal(qd_http(d, "POST", "/v1/devices", NULL, HH_ENDLESS, NULL), 201);
    assert_int_equal(qd_http(d, "POST", "/v1/devices", NULL, HH_LONG, NULL), 201);
    assert_int_equal(qd_http(d, "POST", "/v1/devices", NULL,
                             "{\"name\": \"id\", \"kind\": \"neuron\"}", NULL),
                     201);
}

/* The daemon's peak resident memory in kB (VmHWM), -1 when unknown. */
static long peak_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = qt_read_file(path, NULL);
    const char *p = s ? strstr(s, "VmHWM:") : NULL;
    long kb = p ? strtol(p + 6, NULL, 10) : -1;
    free(s);
    return kb;
}

static void stop(struct qd *d)
{
    assert_int_equal(qd_exit_code(qd_stop(d, SIGTERM)), 0);
}

static void test_simulate_step_cap(void **state)
{
    struct qd *d = *state;
    static const char *const extra[] = {"--simulate-seconds", "3600", NULL};
    start(d, extra);
    long before = peak_kb(d->pid);
    json_t *j = NULL;
    long st = qd_http_raw_t(d->port, "POST", "/v1/devices/hh-endless/simulate", NULL,
                            "{\"inputs\": {\"u1\": 10}, \"max_points\": 2}", &j, 600);
    assert_int_equal(st, 422);
    assert_string_equal(err_code(j), "limit_exceeded");
    assert_non_null(strstr(err_msg(j), "1000000 steps"));
    assert_non_null(strstr(err_msg(j), "--simulate-steps"));
    json_decref(j);
    long after = peak_kb(d->pid);
    assert_true(before > 0 && after > 0);
    if (after - before > 24 * 1024)
        fail_msg("a capped simulate raised the peak memory from %ld to %ld kB", before, after);
    /* within the cap the same device answers */
    assert_int_equal(qd_http(d, "POST", "/v1/devices/id/simulate", NULL,
                             "{\"inputs\": {\"u1\": 0.5}}", NULL),
                     200);
    stop(d);
}

static void test_simulate_time_budget(void **state)
{
    struct qd *d = *state;
    static const char *const extra[] = {"--simulate-seconds", "1", NULL};
    start(d, extra);
    json_t *j = NULL;
    long st = qd_http_raw_t(d->port, "POST", "/v1/devices/hh-long/simulate", NULL, HH_CURVE, &j,
                            600);
    assert_int_equal(st, 503);
    assert_string_equal(err_code(j), "timeout");
    assert_non_null(strstr(err_msg(j), "--simulate-seconds"));
    json_decref(j);
    assert_int_equal(qd_http(d, "GET", "/healthz", NULL, NULL, NULL), 200);
    stop(d);
}

static void test_simulate_client_gone(void **state)
{
    struct qd *d = *state;
    static const char *const extra[] = {"--simulate-seconds", "3600", "--compute-threads", "1",
                                        NULL};
    start(d, extra);
    /* the client gives up after a second (curl fails: status 0) */
    assert_int_equal(qd_http_raw_t(d->port, "POST", "/v1/devices/hh-long/simulate", NULL,
                                   HH_CURVE, NULL, 1),
                     0);
    /* the only compute thread is free again for the next request */
    json_t *j = NULL;
    long st = qd_http_raw_t(d->port, "POST", "/v1/devices/id/simulate", NULL,
                            "{\"inputs\": {\"u1\": 0.5}}", &j, 60);
    if (st != 200) {
        char *tail = qd_log_tail(d->log);
        fail_msg("the request after an abandoned simulate: status %ld; log:\n%s", st, tail);
    }
    assert_true(json_real_value(json_object_get(j, "output")) == 0.5);
    json_decref(j);
    stop(d);
}

/* A train job of `layers` layers of `width` neuron devices on xor (a new string). */
static char *train_job(size_t layers, size_t width)
{
    json_t *net = json_array();
    for (size_t l = 0; l < layers; l++)
        json_array_append_new(net, json_pack("{sI s{ss s{ss}}}", "devices",
                                             (json_int_t)(l + 1 == layers ? 2 : width), "device",
                                             "kind", "neuron", "params", "activation", "tanh"));
    json_t *job = json_pack("{ss s{ss so si}}", "type", "train", "spec", "dataset", "xor",
                            "network", net, "epochs", 1);
    char *text = json_dumps(job, JSON_COMPACT);
    json_decref(job);
    return text;
}

/* The number of jobs the daemon has. */
static size_t job_count(struct qd *d)
{
    json_t *j = NULL;
    assert_int_equal(qd_http(d, "GET", "/v1/jobs?limit=1000", NULL, NULL, &j), 200);
    size_t n = json_array_size(json_object_get(j, "jobs"));
    json_decref(j);
    return n;
}

/* A network too large for the memory budget is refused at submission, with
 * the estimate; one that fits is accepted. */
static void test_job_memory_budget(void **state)
{
    struct qd *d = *state;
    qd_start(d); /* the default budget: half the RAM */
    char *huge = train_job(15, 65536); /* 13 x 65536^2 weights: 5.58e10 parameters */
    json_t *j = NULL;
    assert_int_equal(qd_http(d, "POST", "/v1/jobs", NULL, huge, &j), 422);
    free(huge);
    assert_string_equal(err_code(j), "limit_exceeded");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "path")),
                        "/spec/network");
    assert_non_null(strstr(err_msg(j), "needs at least"));
    assert_non_null(strstr(err_msg(j), "5.58e+10 parameters"));
    assert_non_null(strstr(err_msg(j), "--max-job-memory"));
    json_decref(j);
    assert_int_equal(job_count(d), 0); /* nothing stored */
    stop(d);
    static const char *const small[] = {"--max-job-memory", "16M", NULL};
    qd_start_with(d, small);
    char *big = train_job(3, 4096); /* 16.8M parameters: about 540 MB */
    assert_int_equal(qd_http(d, "POST", "/v1/jobs", NULL, big, &j), 422);
    free(big);
    assert_non_null(strstr(err_msg(j), "(--max-job-memory 16 MiB)"));
    json_decref(j);
    char *fits = train_job(2, 8);
    int64_t id = qd_submit(d, NULL, fits);
    free(fits);
    json_decref(qd_wait_final(d, NULL, id, 120));
    assert_int_equal(job_count(d), 1);
    stop(d);
}

static int setup(void **state)
{
    *state = qd_fixture_new(sizeof(struct qd), 1);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    qd_fixture_free(*state);
    return 0;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simulate_step_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simulate_time_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simulate_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_memory_budget, setup, teardown),
    };
    int fails = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return fails;
}
