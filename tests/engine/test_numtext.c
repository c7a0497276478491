/*
 * test_numtext.c: the shortest round-trip text of doubles and floats.
 *
 * Known cases (0.783, 0.1 + 0.2, powers of ten, signed zero, the extremes),
 * then 200 000 random bit patterns of each type: the text reads back to
 * the same value (strtod, strtof), and one significant digit fewer, rounded
 * correctly by printf, does not (so no shorter text exists); decimals of up
 * to 15 digits come back with no more digits than they were written with.
 * The digit count is also checked against counting up from one digit (what
 * numtext did before its one-try shortcut for up to 15 digits) on random
 * bits and on reals such as training computes (sums, quotients, logs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numtext.h"

static void expect_d(double v, const char *want)
{
    char b[NUMTEXT_MAX];
    size_t n = numtext_double(b, v);
    assert_int_equal(n, strlen(b));
    assert_string_equal(b, want);
}

static void expect_f(float v, const char *want)
{
    char b[NUMTEXT_MAX];
    numtext_float(b, v);
    assert_string_equal(b, want);
}

static void test_known(void **state)
{
    (void)state;
    expect_d(0.783, "0.783");
    expect_d(0.1 + 0.2, "0.30000000000000004");
    expect_d(1.0, "1");
    expect_d(120.0, "120");
    expect_d(-2.5, "-2.5");
    expect_d(0.0001, "0.0001");
    expect_d(0.00001, "1e-5");
    expect_d(2.5e-7, "2.5e-7");
    expect_d(1e15, "1000000000000000");
    expect_d(1e16, "1e16");
    expect_d(1.7976931348623157e308, "1.7976931348623157e308");
    expect_d(5e-324, "5e-324");
    expect_d(0.0, "0");
    expect_d(-0.0, "-0");
    expect_d(NAN, "nan");
    expect_d(-INFINITY, "-inf");
    expect_f(0.2f, "0.2");
    expect_f(-0.95f, "-0.95");
    expect_f(FLT_MAX, "3.4028235e38");
    expect_f(16777217.0f, "16777216");
}

/* Significant digits of a numtext output: the mantissa's digits without
 * leading zeros, and without trailing zeros ("120" has two). */
static int sig_digits(const char *s)
{
    char d[64];
    int n = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && (n || *s != '0'))
            d[n++] = *s;
    while (n > 1 && d[n - 1] == '0')
        n--;
    return n;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_random_doubles(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char b[NUMTEXT_MAX], shorter[64];
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = rng(&seed);
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        numtext_double(b, v);
        assert_true(strtod(b, NULL) == v);
        int d = sig_digits(b);
        assert_true(d >= 1 && d <= 17);
        if (d > 1) {
            snprintf(shorter, sizeof shorter, "%.*e", d - 2, v);
            if (strtod(shorter, NULL) == v)
                fail_msg("%.17g: '%s' has %d digits but '%s' reads back", v, b, d, shorter);
        }
    }
}

static void test_random_floats(void **state)
{
    (void)state;
    uint64_t seed = 0x243f6a8885a308d3u;
    char b[NUMTEXT_MAX], shorter[64];
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)rng(&seed);
        float v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        numtext_float(b, v);
        assert_true(strtof(b, NULL) == v);
        int d = sig_digits(b);
        assert_true(d >= 1 && d <= 9);
        if (d > 1) {
            snprintf(shorter, sizeof shorter, "%.*e", d - 2, (double)v);
            if (strtof(shorter, NULL) == v)
                fail_msg("%.9g: '%s' has %d digits but '%s' reads back", (double)v, b, d, shorter);
        }
    }
}

static void test_decimals_come_back(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    char text[64], b[NUMTEXT_MAX];
    for (int i = 0; i < 100000; i++) {
        int digits = 1 + (int)(rng(&seed) % 15);
        long long m = 1 + (long long)(rng(&seed) % 999999999999999ull);
        while (m >= 10 && snprintf(text, sizeof text, "%lld", m) > digits)
            m /= 10;
        int scale = -(int)(rng(&seed) % 12);
        snprintf(text, sizeof text, "%llde%d", m, scale);
        double v = strtod(text, NULL);
        numtext_double(b, v);
        assert_true(strtod(b, NULL) == v);
        snprintf(text, sizeof text, "%lld", m);
        int dm = (int)strlen(text);
        while (dm > 1 && text[dm - 1] == '0')
            dm--;
        if (sig_digits(b) > dm)
            fail_msg("%s (%s) printed as %s", text, "scaled", b);
    }
}

/* The fewest digits whose rounding reads back, counted up from 1 (the reference). */
static int count_up(double v, int max_digits, int is_float)
{
    char t[64];
    for (int p = 1; p < max_digits; p++) {
        snprintf(t, sizeof t, "%.*e", p - 1, v);
        if (is_float ? strtof(t, NULL) == (float)v : strtod(t, NULL) == v)
            return p;
    }
    return max_digits;
}

/* numtext's digits of v (a double, or a float when is_float) are count_up's. */
static void expect_count_up(double v, int is_float)
{
    char b[NUMTEXT_MAX];
    if (is_float)
        numtext_float(b, (float)v);
    else
        numtext_double(b, v);
    int want = count_up(v, is_float ? 9 : 17, is_float);
    if (v == 0 || (is_float && (float)v == 0)) /* "0": no significant digit to count */
        assert_string_equal(b, signbit(v) ? "-0" : "0");
    else if (sig_digits(b) != want)
        fail_msg("%.17g (%s): '%s' has %d digits, counting up gives %d", v,
                 is_float ? "float" : "double", b, sig_digits(b), want);
}

static void test_same_as_counting_up(void **state)
{
    (void)state;
    uint64_t seed = 0x6a09e667f3bcc908u;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = rng(&seed);
        double v;
        float f;
        uint32_t fb = (uint32_t)bits;
        memcpy(&v, &bits, sizeof v);
        memcpy(&f, &fb, sizeof f);
        if (isfinite(v))
            expect_count_up(v, 0);
        if (isfinite(f))
            expect_count_up((double)f, 1);
    }
    double loss = 0;
    for (int i = 1; i <= 20000; i++) { /* short and long reals alike */
        double k = (double)i;
        loss += log(k) / k;
        double cases[] = {k / 8, k / 3, k / 1000, 0.1 * k, loss, 1.7e9 + k / 7, 1e-300 * k,
                          DBL_MIN * k, 4.9e-324 * k};
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            expect_count_up(cases[c], 0);
            expect_count_up((double)(float)cases[c], 1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_random_doubles),
        cmocka_unit_test(test_random_floats),
        cmocka_unit_test(test_decimals_come_back),
        cmocka_unit_test(test_same_as_counting_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
