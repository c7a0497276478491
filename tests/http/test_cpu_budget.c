/*
 * test_cpu_budget.c: the request threads' CPU budget (server/http/cpu_budget.c).
 *
 * A thread that burns CPU between paces is held to the budget while it holds:
 * the bucket starts with CPU_BUDGET_BURST, fills at `percent` of a CPU and is
 * never left owing more than CPU_BUDGET_SLACK after a pace, so over a run
 * that used U CPU seconds the wall time is at least (U - burst - slack) /
 * rate. That is a lower bound the sleeps guarantee (a sleep never ends
 * early), not a timing. While it does not hold (no job runs), or with no
 * budget, nothing sleeps at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <time.h>

#include "cpu_budget.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Burns about `sec` of this thread's CPU. */
static void burn(double sec)
{
    volatile double x = 0;
    for (double end = clock_s(CLOCK_THREAD_CPUTIME_ID) + sec;
         clock_s(CLOCK_THREAD_CPUTIME_ID) < end;)
        for (int i = 0; i < 1000; i++)
            x += i;
}

static size_t jobs_running;
static size_t busy(void *ctx)
{
    (void)ctx;
    return jobs_running;
}

/* Paces `requests` requests of `each` CPU seconds on b; the CPU they used
 * into *used, the wall time from `t0` into the return value. */
static double serve(struct cpu_budget *b, int requests, double each, double t0, double *used)
{
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < requests; i++) {
        cpu_budget_pace(b);
        burn(each);
    }
    cpu_budget_pace(b);
    *used = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    return clock_s(CLOCK_MONOTONIC) - t0;
}

static void test_holds_while_jobs_run(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    double t0 = clock_s(CLOCK_MONOTONIC), used;
    assert_int_equal(cpu_budget_create(20, &b), 0);
    jobs_running = 2;
    cpu_budget_set_busy(b, busy, NULL);
    double wall = serve(b, 80, 0.0005, t0, &used);
    double floor = (used - CPU_BUDGET_BURST - CPU_BUDGET_SLACK) / 0.20;
    printf("used %.1f ms of CPU in %.1f ms (at least %.1f at 20%%), slept %.1f ms\n",
           used * 1e3, wall * 1e3, floor * 1e3, cpu_budget_slept(b) * 1e3);
    assert_true(used >= 0.04);
    assert_true(wall >= floor);
    assert_true(cpu_budget_slept(b) > 0);
    cpu_budget_destroy(b);
}

static void test_free_while_no_job_runs(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    double used;
    assert_int_equal(cpu_budget_create(20, &b), 0);
    jobs_running = 0;
    cpu_budget_set_busy(b, busy, NULL);
    serve(b, 80, 0.0005, clock_s(CLOCK_MONOTONIC), &used);
    assert_true(used >= 0.04);
    assert_true(cpu_budget_slept(b) == 0);
    /* Jobs start: the idle time before is not a credit beyond the burst. */
    jobs_running = 1;
    double t0 = clock_s(CLOCK_MONOTONIC);
    double wall = serve(b, 40, 0.0005, t0, &used);
    /* (less the moments between the last pace before t0 and t0) */
    assert_true(wall >= (used - CPU_BUDGET_BURST - CPU_BUDGET_SLACK) / 0.20 - 0.001);
    cpu_budget_destroy(b);
}

static void test_no_budget(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    double used;
    assert_int_equal(cpu_budget_create(0, &b), 0); /* --http-cpu 0 */
    serve(b, 40, 0.0005, clock_s(CLOCK_MONOTONIC), &used);
    assert_true(cpu_budget_slept(b) == 0);
    cpu_budget_destroy(b);
    assert_true(cpu_budget_pace(NULL) == 0);
    cpu_budget_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holds_while_jobs_run),
        cmocka_unit_test(test_free_while_no_job_runs),
        cmocka_unit_test(test_no_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
