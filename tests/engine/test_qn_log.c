/*
 * test_qn_log.c: escaping text for log lines (engine/qn_log.c).
 *
 * Control characters (C0, DEL, C1 in UTF-8), bytes that are not valid UTF-8
 * (stray continuations, overlong forms, surrogates) and the backslash come
 * out as escapes; printable ASCII and valid UTF-8 are copied; a copy that
 * does not fit is cut at a whole escape and always terminated.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "qn_log.h"

/* The escape of in must be want. */
static void expect_escape(const char *in, const char *want)
{
    char out[256];
    assert_string_equal(qn_log_escape(out, sizeof out, in), want);
}

static void test_controls(void **state)
{
    (void)state;
    expect_escape("GET /v1/jobs", "GET /v1/jobs");
    expect_escape("/a\nqn: http forged", "/a\\nqn: http forged");
    expect_escape("\r\t", "\\r\\t");
    expect_escape("\x1b[31mred", "\\x1b[31mred");
    expect_escape("\x01\x7f", "\\x01\\x7f");
    expect_escape("a\\nb", "a\\\\nb"); /* a literal backslash cannot pass for an escape */
    expect_escape(NULL, "-");
    expect_escape("", "");
}

static void test_utf8(void **state)
{
    (void)state;
    expect_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    expect_escape("\xc2\x9b" "2J", "\\u009b2J");         /* C1 CSI */
    expect_escape("\xc2\x85", "\\u0085");               /* C1 next line */
    expect_escape("\xc2\xa0", "\xc2\xa0");              /* U+00A0 is not a control */
    expect_escape("\x9b" "2J", "\\x9b2J");              /* a raw C1 byte */
    expect_escape("\xff\xfe", "\\xff\\xfe");
    expect_escape("\xc0\xaf", "\\xc0\\xaf");            /* overlong '/' */
    expect_escape("\xe0\x80\xaf", "\\xe0\\x80\\xaf");   /* overlong, three bytes */
    expect_escape("\xed\xa0\x80", "\\xed\\xa0\\x80");   /* a surrogate */
    expect_escape("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
    expect_escape("\xc3", "\\xc3");                     /* truncated sequence */
}

static void test_cut(void **state)
{
    (void)state;
    char out[6];
    assert_string_equal(qn_log_escape(out, sizeof out, "abcdefgh"), "abcde");
    assert_string_equal(qn_log_escape(out, sizeof out, "ab\ncd"), "ab\\nc");
    assert_string_equal(qn_log_escape(out, sizeof out, "abcd\n"), "abcd");
    assert_string_equal(qn_log_escape(out, sizeof out, "abc\x1b"), "abc"); /* no half escape */
    char one[1];
    assert_string_equal(qn_log_escape(one, sizeof one, "x"), "");
    /* the bound of the header is enough for the worst input */
    char worst[QN_LOG_ESCAPED_MAX(4)], in[5] = "\x1b\x1b\x1b\x1b";
    assert_string_equal(qn_log_escape(worst, sizeof worst, in), "\\x1b\\x1b\\x1b\\x1b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_controls),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
