/*
 * test_fuzz_regressions.c: replays the fuzzers' inputs without libFuzzer.
 *
 * Every file of tests/fuzz/corpus/<target>/ (the seeds) and of
 * tests/fuzz/regressions/<target>/ (inputs that once crashed a target, kept
 * after the fix) goes through the same entry point the fuzzer calls
 * (fuzz_<target>_one, tests/fuzz/fuzz.h), built here with gcc, plainly and
 * under ASan/UBSan by `make test`. A regression comes back as a crash or a
 * sanitizer report in this program. The HTTP inputs go through a daemon
 * started in this process (fuzz_http_init), as the fuzzer does.
 *
 * The directory is found from this file's path (the build compiles it from
 * the repository's root, where `make test` runs it); QN_FUZZ_DIR overrides.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_test.h"

#define QN_FUZZ_REPLAY 1
#include "../fuzz/fuzz_csv.c"
#include "../fuzz/fuzz_expr.c"
#include "../fuzz/fuzz_http.c"
#include "../fuzz/fuzz_idx.c"
#include "../fuzz/fuzz_rxn.c"
#include "../fuzz/fuzz_spec.c"
#include "../fuzz/fuzz_surrogate.c"

typedef int (*fuzz_one_fn)(const uint8_t *data, size_t size);

/* tests/fuzz, from QN_FUZZ_DIR or this file's path. */
static void replay__root(char *out, size_t cap)
{
    const char *env = getenv("QN_FUZZ_DIR");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return;
    }
    snprintf(out, cap, "%s", __FILE__);
    char *slash = strrchr(out, '/');
    if (slash)
        snprintf(slash, cap - (size_t)(slash - out), "/../fuzz");
    else
        snprintf(out, cap, "../fuzz");
}

/* Reads a whole file into a new buffer (exact size; free it). */
static uint8_t *replay__read(const char *path, size_t *len)
{
    size_t n = 0;
    char *buf = qt_read_file(path, &n);
    if (!buf)
        return NULL;
    uint8_t *exact = malloc(n ? n : 1); /* exact size: a read past the end is caught */
    if (exact)
        memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

/* Feeds every regular file of <root>/<kind>/<target>/ to fn; returns how many. */
static size_t replay__dir(const char *kind, const char *target, fuzz_one_fn fn)
{
    char root[1024], dir[1200];
    replay__root(root, sizeof root);
    snprintf(dir, sizeof dir, "%s/%s/%s", root, kind, target);
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* no regressions kept for this target */
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len = 0;
        uint8_t *buf = replay__read(path, &len);
        if (!buf)
            fail_msg("cannot read %s", path);
        assert_int_equal(fn(buf, len), 0);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

/* Replays corpus and regressions; the corpus must not be empty. */
static void replay__target(const char *target, fuzz_one_fn fn)
{
    size_t seeds = replay__dir("corpus", target, fn);
    size_t kept = replay__dir("regressions", target, fn);
    print_message("fuzz_%s: %zu seeds, %zu regressions replayed\n", target, seeds, kept);
    assert_true(seeds > 0);
}

static void test_spec(void **state)
{
    (void)state;
    replay__target("spec", fuzz_spec_one);
}

static void test_expr(void **state)
{
    (void)state;
    replay__target("expr", fuzz_expr_one);
}

static void test_rxn(void **state)
{
    (void)state;
    replay__target("rxn", fuzz_rxn_one);
}

static void test_csv(void **state)
{
    (void)state;
    replay__target("csv", fuzz_csv_one);
}

static void test_idx(void **state)
{
    (void)state;
    replay__target("idx", fuzz_idx_one);
}

static void test_surrogate(void **state)
{
    (void)state;
    replay__target("surrogate", fuzz_surrogate_one);
}

static void test_http(void **state)
{
    (void)state;
    assert_int_equal(fuzz_http_init(), 0);
    replay__target("http", fuzz_http_one);
    /* The daemon must still answer after every input. */
    static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    fuzz_http__exchange((const uint8_t *)probe, sizeof probe - 1);
    assert_non_null(strstr(fuzz_http__g.resp, "200 OK"));
    fuzz_http_fini();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec),      cmocka_unit_test(test_expr),
        cmocka_unit_test(test_rxn),       cmocka_unit_test(test_csv),
        cmocka_unit_test(test_idx),       cmocka_unit_test(test_surrogate),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
