/*
 * test_spec_dumps.c: JSON text with the shortest round-trip reals.
 *
 * A document with reals, integers and strings that look like numbers comes
 * out exactly as written by hand; 20 000 random doubles read back bit for
 * bit, still reals, from text no longer than jansson's own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spec_dumps.h"

static void test_known_document(void **state)
{
    (void)state;
    json_t *v = json_pack("{s:f, s:s, s:[f, f, f, i, f, f], s:i, s:s}", "a", 0.783, "b",
                          "x 0.78300000000000003 \"2.50000000000000001\"", "c", 1.0, 120.0, 1e-5,
                          (json_int_t)-2, 0.1 + 0.2, -0.0, "d", (json_int_t)5, "e", "\xc3\xa9");
    assert_non_null(v);
    char *t = spec_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(t, "{\"a\":0.783,\"b\":\"x 0.78300000000000003 \\\"2.50000000000000001\\\"\","
                           "\"c\":[1.0,120.0,1e-5,-2,0.30000000000000004,-0.0],\"d\":5,\"e\":\"\xc3\xa9\"}");
    free(t);
    t = spec_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    assert_non_null(strstr(t, "\"e\":\"\\u00")); /* escaped, whatever the hex case */
    free(t);
    json_decref(v);
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_random_round_trip(void **state)
{
    (void)state;
    uint64_t seed = 0xdeadbeefcafef00du;
    json_t *arr = json_array();
    while (json_array_size(arr) < 20000) {
        uint64_t bits = rng(&seed);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (isfinite(d))
            json_array_append_new(arr, json_real(d));
    }
    char *ours = spec_dumps(arr, JSON_COMPACT), *theirs = json_dumps(arr, JSON_COMPACT);
    assert_true(strlen(ours) <= strlen(theirs));
    assert_true(strlen(ours) < strlen(theirs)); /* 17 digits are rarely all needed */
    json_error_t err;
    json_t *back = json_loads(ours, 0, &err);
    assert_non_null(back);
    assert_int_equal(json_array_size(back), json_array_size(arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *b = json_array_get(back, i);
        assert_true(json_is_real(b));
        double x = json_real_value(json_array_get(arr, i)), y = json_real_value(b);
        assert_memory_equal(&x, &y, sizeof x);
    }
    json_decref(back);
    json_decref(arr);
    free(ours);
    free(theirs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_document),
        cmocka_unit_test(test_random_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
