/*
 * test_cpu_budget.c: turns for requests under the CPU budget
 * (server/http/cpu_budget.c).
 *
 * Turns: a thread that burns CPU between turns and waits for each is held to
 * the budget while it holds. The turns advance by the moving average of a
 * request's cost over the rate, and that average starts at 0 and lags the
 * real cost c by at most c / CPU_BUDGET_AVERAGE in all, so over a run that
 * used U CPU seconds the wall time is at least
 * (U - c / CPU_BUDGET_AVERAGE - CPU_BUDGET_BURST) / rate: a lower bound the
 * waits guarantee (a wait never ends early), not a timing. While it does not
 * hold (no job runs), or with no budget, every turn is now.
 *
 * The queue: waiting items are held before they are queued, released in
 * the order they came and never before their turns; stopping releases what
 * waits at once (an item an hour away) and refuses later waits.
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
#include "qn_err.h"

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

static void wait_until(double t)
{
    struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static size_t jobs_running;
static size_t busy(void *ctx)
{
    (void)ctx;
    return jobs_running;
}

/* What the queue did: items held, and released in order with the time. */
struct item {
    int held, released;
    double turn, at;
};
static struct item *order[8];
static _Atomic size_t n_released; /* written by the pacing thread */
static void hold(void *p) { ((struct item *)p)->held = 1; }
static void release(void *p)
{
    struct item *it = p;
    it->released = 1;
    it->at = clock_s(CLOCK_MONOTONIC);
    size_t k = atomic_load(&n_released);
    if (k < 8)
        order[k] = it;
    atomic_store(&n_released, k + 1);
}

/* `requests` requests of `each` CPU seconds, each waiting for its turn; the
 * CPU they used into *used, the wall time from t0 into the return value. */
static double serve(struct cpu_budget *b, int requests, double each, double t0, double *used,
                    int *waited)
{
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    *waited = 0;
    for (int i = 0; i < requests; i++) {
        double turn = cpu_budget_turn(b);
        if (turn > 0) {
            (*waited)++;
            wait_until(turn);
        }
        burn(each);
    }
    *used = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    return clock_s(CLOCK_MONOTONIC) - t0;
}

static void test_turns_hold_the_budget(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    double t0 = clock_s(CLOCK_MONOTONIC), used;
    int waited;
    assert_int_equal(cpu_budget_create(20, release, &b), 0);
    jobs_running = 2;
    cpu_budget_set_busy(b, busy, NULL);
    double wall = serve(b, 100, 0.0005, t0, &used, &waited);
    double lag = 0.0006 / CPU_BUDGET_AVERAGE; /* a request costs 0.5 ms and a little */
    double floor = (used - lag - CPU_BUDGET_BURST) / 0.20;
    printf("used %.1f ms of CPU in %.1f ms (at least %.1f at 20%%), %d of 100 waited\n",
           used * 1e3, wall * 1e3, floor * 1e3, waited);
    assert_true(used >= 0.05);
    assert_true(wall >= floor);
    assert_true(waited > 20); /* the first ones spend the burst */
    cpu_budget_destroy(b);
}

static void test_no_turns_without_jobs_or_budget(void **state)
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
    struct item it = {0};
    assert_int_equal(cpu_budget_wait(b, &it, clock_s(CLOCK_MONOTONIC) + 1, hold), QN_EBUSY);
    assert_false(it.held);
    cpu_budget_destroy(b);
    assert_true(cpu_budget_turn(NULL) == 0);
    cpu_budget_destroy(NULL);
}

static void test_queue_in_order_at_turns(void **state)
{
    (void)state;
    struct cpu_budget *b = NULL;
    struct item it[4] = {{0}};
    atomic_store(&n_released, 0);
    assert_int_equal(cpu_budget_create(20, release, &b), 0);
    double now = clock_s(CLOCK_MONOTONIC);
    for (int i = 0; i < 3; i++) {
        it[i].turn = now + 0.02 * (i + 1);
        assert_int_equal(cpu_budget_wait(b, &it[i], it[i].turn, hold), 0);
        assert_true(it[i].held);
    }
    it[3].turn = now + 3600; /* an hour away: released by the stop */
    assert_int_equal(cpu_budget_wait(b, &it[3], it[3].turn, hold), 0);
    while (atomic_load(&n_released) < 3)
        wait_until(clock_s(CLOCK_MONOTONIC) + 0.005);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(order[i], &it[i]);
        assert_true(it[i].at >= it[i].turn);
    }
    assert_false(it[3].released);
    cpu_budget_stop(b);
    assert_true(it[3].released);
    assert_int_equal(atomic_load(&n_released), 4);
    struct item late = {0};
    assert_int_equal(cpu_budget_wait(b, &late, now, hold), QN_EBUSY);
    assert_false(late.held);
    cpu_budget_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turns_hold_the_budget),
        cmocka_unit_test(test_no_turns_without_jobs_or_budget),
        cmocka_unit_test(test_queue_in_order_at_turns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
