/*
 * test_cpu_budget.c: requests admitted at the pace of a CPU budget
 * (server/http/cpu_budget.c).
 *
 * Pace: a thread that burns CPU for each request and waits whenever it is
 * told to is held to the budget while it holds. Every request comes in
 * only when the clock of paid CPU is at most CPU_BUDGET_SLACK ahead of now,
 * and the clock starts CPU_BUDGET_BURST / rate behind and moves by the CPU
 * the thread charged over the rate, so a run that used U CPU seconds (the
 * last request's E not yet charged when it came in) lasts at least
 * (U - E - CPU_BUDGET_BURST) / rate - CPU_BUDGET_SLACK: a lower bound the
 * waits guarantee (a wait never ends early), not a timing. While it does
 * not hold (no job runs), or with no budget, nobody waits.
 *
 * The queue: waiting requests are held before they are queued, released
 * in the order they came with what was booked for them; after a stop
 * everyone comes in at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
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

static void nap(void)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

static size_t jobs_running;
static size_t busy(void *ctx)
{
    (void)ctx;
    return jobs_running;
}

/* A request: held, then released (by the pacing thread) with its booking. */
struct item {
    atomic_int held, released;
    double booked;
};
static struct item *order[8];
static atomic_size_t n_released;
static void hold(void *p) { atomic_store(&((struct item *)p)->held, 1); }
static void release(void *p, double booked)
{
    struct item *it = p;
    it->booked = booked;
    size_t k = atomic_load(&n_released);
    if (k < 8)
        order[k] = it;
    atomic_store(&n_released, k + 1);
    atomic_store(&it->released, 1);
}

/* `requests` requests of `each` CPU seconds, each waiting when told to; the
 * CPU they used into *used, the wall time from t0 into the return value,
 * how many waited into *waited. */
static double serve(struct cpu_budget *b, int requests, double each, double t0, double *used,
                    int *waited)
{
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    *waited = 0;
    for (int i = 0; i < requests; i++) {
        struct item it = {0};
        if (cpu_budget_admit(b, &it, hold)) {
            assert_true(atomic_load(&it.held));
            while (!atomic_load(&it.released))
                nap();
            cpu_budget_ran(b, it.booked);
            (*waited)++;
        }
        burn(each);
    }
    *used = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    return clock_s(CLOCK_MONOTONIC) - t0;
}

static void test_pace_holds_the_budget(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    double t0 = clock_s(CLOCK_MONOTONIC), used;
    int waited;
    atomic_store(&n_released, 0);
    assert_int_equal(cpu_budget_create(20, release, &b), 0);
    jobs_running = 2;
    cpu_budget_set_busy(b, busy, NULL);
    double wall = serve(b, 100, 0.0005, t0, &used, &waited);
    double floor = (used - 0.0006 - CPU_BUDGET_BURST) / 0.20 - CPU_BUDGET_SLACK;
    printf("used %.1f ms of CPU in %.1f ms (at least %.1f at 20%%), %d of 100 waited\n",
           used * 1e3, wall * 1e3, floor * 1e3, waited);
    assert_true(used >= 0.05);
    assert_true(wall >= floor);
    assert_true(waited > 20);
    assert_true(cpu_budget_waited(b) > 0);
    cpu_budget_destroy(b);
}

static void test_nobody_waits_without_jobs_or_budget(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    double used;
    int waited;
    assert_int_equal(cpu_budget_create(20, release, &b), 0);
    jobs_running = 0;
    cpu_budget_set_busy(b, busy, NULL);
    serve(b, 60, 0.0005, clock_s(CLOCK_MONOTONIC), &used, &waited);
    assert_int_equal(waited, 0);
    cpu_budget_destroy(b);
    assert_int_equal(cpu_budget_create(0, release, &b), 0); /* --http-cpu 0 */
    serve(b, 60, 0.0005, clock_s(CLOCK_MONOTONIC), &used, &waited);
    assert_int_equal(waited, 0);
    cpu_budget_destroy(b);
    struct item it = {0};
    assert_int_equal(cpu_budget_admit(NULL, &it, hold), 0);
    cpu_budget_destroy(NULL);
}

static void test_queue_in_order_and_stop(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    struct item first = {0}, it[3] = {{0}}, late = {0};
    atomic_store(&n_released, 0);
    assert_int_equal(cpu_budget_create(1, release, &b), 0); /* 1%: 1 ms of CPU is 0.1 s */
    jobs_running = 1;
    cpu_budget_set_busy(b, busy, NULL);
    assert_int_equal(cpu_budget_admit(b, &first, hold), 0); /* the burst: in at once */
    burn(0.008); /* 0.8 s at the next charge: past the burst's 0.5, so 0.3 s owed */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cpu_budget_admit(b, &it[i], hold), 1);
        assert_true(atomic_load(&it[i].held));
    }
    while (atomic_load(&n_released) < 3)
        nap();
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(order[i], &it[i]);
        assert_true(it[i].booked > 0); /* the average had the 8 ms request in it */
    }
    cpu_budget_stop(b);
    assert_int_equal(cpu_budget_admit(b, &late, hold), 0); /* stopped: in at once */
    assert_false(atomic_load(&late.held));
    cpu_budget_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pace_holds_the_budget),
        cmocka_unit_test(test_nobody_waits_without_jobs_or_budget),
        cmocka_unit_test(test_queue_in_order_and_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
