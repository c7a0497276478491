/*
 * test_page_cache.c: the cache of reply pages (server/http/page_cache.c):
 * a page comes back byte for byte under its (job, key) and generation and
 * under no other; a page put again (at any generation) replaces the old
 * one, so a page of an older generation is never answered; the
 * byte budget holds, dropping the least recently used page first; what
 * cannot be kept (over the budget, a key too long, no cache) is not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "page_cache.h"

/* 1 and the page's bytes equal want[n], or 0 when (job, key) has no page. */
static int has_gen(struct page_cache *c, int64_t job, const char *key, uint64_t gen,
                   const char *want, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    int rc = page_cache_get(c, job, key, gen, &text, &len);
    if (rc != 1)
        return rc;
    int same = len == n && memcmp(text, want, n) == 0;
    free(text);
    return same ? 1 : -1;
}

/* has_gen at generation 0 (pages kept for good). */
static int has(struct page_cache *c, int64_t job, const char *key, const char *want, size_t n)
{
    return has_gen(c, job, key, 0, want, n);
}

static void test_get_what_was_put(void **state)
{
    (void)state;
    struct page_cache *c = NULL;
    assert_int_equal(page_cache_create(1000, &c), 0);
    assert_int_equal(has(c, 1, "0 1001 0 ", "", 0), 0);
    page_cache_put(c, 1, "0 1001 0 ", 0, "{\"a\":1}\n\0x", 10); /* bytes after a NUL too */
    page_cache_put(c, 2, "0 1001 0 ", 0, "{\"b\":2}\n", 8);
    assert_int_equal(has(c, 1, "0 1001 0 ", "{\"a\":1}\n\0x", 10), 1);
    assert_int_equal(has(c, 2, "0 1001 0 ", "{\"b\":2}\n", 8), 1);
    assert_int_equal(has(c, 1, "0 1001 2 ", "", 0), 0); /* another query of the same job */
    assert_int_equal(has(c, 3, "0 1001 0 ", "", 0), 0);
    page_cache_put(c, 1, "0 1001 0 ", 0, "new", 3); /* replaces */
    assert_int_equal(has(c, 1, "0 1001 0 ", "new", 3), 1);
    page_cache_destroy(c);
}

static void test_budget_drops_least_recently_used(void **state)
{
    (void)state;
    struct page_cache *c = NULL;
    char page[400];
    memset(page, 'x', sizeof page);
    assert_int_equal(page_cache_create(1000, &c), 0);
    page_cache_put(c, 1, "k", 0, page, 400);
    page_cache_put(c, 2, "k", 0, page, 400);
    assert_int_equal(has(c, 1, "k", page, 400), 1); /* job 1 is now the more recent */
    page_cache_put(c, 3, "k", 0, page, 400);            /* 1200 > 1000: job 2 goes */
    assert_int_equal(has(c, 2, "k", page, 400), 0);
    assert_int_equal(has(c, 1, "k", page, 400), 1);
    assert_int_equal(has(c, 3, "k", page, 400), 1);
    page_cache_put(c, 4, "k", 0, page, 1001); /* over the whole budget: not kept, nothing dropped */
    assert_int_equal(has(c, 4, "k", page, 1001), 0);
    assert_int_equal(has(c, 1, "k", page, 400), 1);
    page_cache_destroy(c);
}

static void test_more_pages_than_slots(void **state)
{
    (void)state;
    struct page_cache *c = NULL;
    assert_int_equal(page_cache_create(1 << 20, &c), 0);
    for (int64_t j = 1; j <= 1000; j++)
        page_cache_put(c, j, "k", 0, "page", 4);
    assert_int_equal(has(c, 1000, "k", "page", 4), 1); /* the newest stays */
    assert_int_equal(has(c, 1, "k", "page", 4), 0);    /* the oldest went */
    page_cache_destroy(c);
}

static void test_what_is_not_kept(void **state)
{
    (void)state;
    struct page_cache *c = NULL;
    char key[PAGE_CACHE_KEY_MAX + 1];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(page_cache_create(1000, &c), 0);
    page_cache_put(c, 1, key, 0, "p", 1);
    assert_int_equal(has(c, 1, key, "p", 1), 0);
    page_cache_put(c, -1, "k", 0, "p", 1); /* no job -1 */
    assert_int_equal(has(c, -1, "k", "p", 1), 0);
    page_cache_put(NULL, 1, "k", 0, "p", 1);
    assert_int_equal(has(NULL, 1, "k", "p", 1), 0);
    page_cache_destroy(c);
    page_cache_destroy(NULL);
}

static void test_generations(void **state)
{
    (void)state;
    struct page_cache *c = NULL;
    assert_int_equal(page_cache_create(1000, &c), 0);
    page_cache_put(c, 0, "jobs", 7, "list at 7", 9); /* job 0: the job list */
    assert_int_equal(has_gen(c, 0, "jobs", 7, "list at 7", 9), 1);
    assert_int_equal(has_gen(c, 0, "jobs", 8, "", 0), 0); /* made before commit 8 */
    assert_int_equal(has_gen(c, 0, "jobs", 0, "", 0), 0);
    page_cache_put(c, 0, "jobs", 8, "list at 8", 9); /* replaces the older one */
    assert_int_equal(has_gen(c, 0, "jobs", 7, "", 0), 0);
    assert_int_equal(has_gen(c, 0, "jobs", 8, "list at 8", 9), 1);
    page_cache_put(c, 5, "0 1001 0 ", 8, "running", 7);
    page_cache_put(c, 5, "0 1001 0 ", 0, "finished", 8); /* the job ended: kept for good */
    assert_int_equal(has_gen(c, 5, "0 1001 0 ", 8, "", 0), 0);
    assert_int_equal(has(c, 5, "0 1001 0 ", "finished", 8), 1);
    page_cache_destroy(c);
}

/* page_cache_latest answers whatever generation is kept, with its tag: what
 * a growing metric page is extended from. */
static void test_latest_and_tag(void **state)
{
    (void)state;
    struct page_cache *c = NULL;
    char *text = NULL;
    size_t len = 0;
    uint64_t gen = 99, tag = 99;
    assert_int_equal(page_cache_create(1000, &c), 0);
    assert_int_equal(page_cache_latest(c, 4, "k t0", &gen, &tag, &text, &len), 0);
    page_cache_put_tagged(c, 4, "k t0", 12, 3, "three rows", 10);
    assert_int_equal(has_gen(c, 4, "k t0", 13, "", 0), 0); /* not for another generation */
    assert_int_equal(page_cache_latest(c, 4, "k t0", &gen, &tag, &text, &len), 1);
    assert_true(len == 10 && memcmp(text, "three rows", 10) == 0);
    assert_int_equal(gen, 12);
    assert_int_equal(tag, 3);
    free(text);
    page_cache_put(c, 4, "k t0", 13, "untagged", 8); /* replaces it, tag 0 */
    assert_int_equal(page_cache_latest(c, 4, "k t0", &gen, &tag, &text, &len), 1);
    assert_true(gen == 13 && tag == 0 && len == 8);
    free(text);
    assert_int_equal(page_cache_latest(NULL, 4, "k t0", &gen, &tag, &text, &len), 0);
    page_cache_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_what_was_put),
        cmocka_unit_test(test_budget_drops_least_recently_used),
        cmocka_unit_test(test_more_pages_than_slots),
        cmocka_unit_test(test_what_is_not_kept),
        cmocka_unit_test(test_generations),
        cmocka_unit_test(test_latest_and_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
