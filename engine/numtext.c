/*
 * numtext.c: the shortest round-trip text of a double or a float
 * (numtext.h): the fewest significant digits that read back, written
 * positionally or with an exponent by the size of the number.
 */
#include "numtext.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Positional form for decimal exponents in [-4, 16), exponent form outside
 * (as Python's repr and JavaScript write numbers). */
#define NUMTEXT_POS_MIN (-4)
#define NUMTEXT_POS_MAX 15

/* Does text read back to v (as a float when is_float)? */
static int numtext__reads_back(const char *text, double v, int is_float)
{
    return is_float ? strtof(text, NULL) == (float)v : strtod(text, NULL) == v;
}

/* "1.5e+07" -> "1.5e7", "1e-07" -> "1e-7" in place; returns the length. */
static size_t numtext__tidy_exponent(char *s)
{
    char *e = strchr(s, 'e');
    if (!e)
        return strlen(s);
    char *r = e + 1, *w = e + 1;
    if (*r == '+')
        r++;
    else if (*r == '-')
        *w++ = *r++;
    while (*r == '0' && r[1])
        r++;
    memmove(w, r, strlen(r) + 1);
    return strlen(s);
}

/* The integer whose digits are those of the exponent form e ("-1.25e15")
 * followed by `zeros` zeros ("-1250000000000000"), into f; its length.
 * ("%.0f" would print the exact value's digits, not the rounded ones.) */
static int numtext__integer(char *f, const char *e, int zeros)
{
    int n = 0;
    for (const char *c = e; *c && *c != 'e'; c++)
        if (*c == '-' || (*c >= '0' && *c <= '9'))
            f[n++] = *c;
    while (zeros-- > 0 && n < NUMTEXT_MAX - 1)
        f[n++] = '0';
    f[n] = '\0';
    return n;
}

/* Significant digits of the mantissa of e ("-1.2500e3" has 3). */
static int numtext__mantissa_digits(const char *e)
{
    int n = 0, last = 0;
    for (const char *c = e; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') {
            n++;
            if (*c != '0')
                last = n;
        }
    return last ? last : 1;
}

/*
 * The fewest significant digits p (1..max_digits) whose correctly rounded
 * "%.*e" reads back to v, with the text into e (NUMTEXT_MAX bytes).
 *
 * Every decimal of at most `exact` digits (DBL_DIG 15, FLT_DIG 6) survives
 * the trip to a normal double (float) and back to that many digits. So when
 * the `exact`-digit rounding of a normal v reads back, its digits without
 * the trailing zeros are the shortest: a shorter text that read back would
 * be that rounding. One try answers for 1..exact digits, where counting up
 * from 1 took up to 15 snprintf/strtod pairs (a metric page's reals cost
 * most of a request's CPU that way). Subnormals, whose precision is less,
 * still count up.
 */
static int numtext__digits(char *e, double v, int max_digits, int is_float)
{
    int exact = is_float ? FLT_DIG : DBL_DIG;
    double a = fabs(v);
    int normal = is_float ? a >= (double)FLT_MIN : a >= DBL_MIN;
    int p = 1;
    if (normal) {
        snprintf(e, NUMTEXT_MAX, "%.*e", exact - 1, v);
        if (numtext__reads_back(e, v, is_float)) {
            p = numtext__mantissa_digits(e);
            snprintf(e, NUMTEXT_MAX, "%.*e", p - 1, v);
            return p;
        }
        p = exact + 1;
    }
    for (; p < max_digits; p++) {
        snprintf(e, NUMTEXT_MAX, "%.*e", p - 1, v);
        if (numtext__reads_back(e, v, is_float))
            return p;
    }
    snprintf(e, NUMTEXT_MAX, "%.*e", p - 1, v);
    return p;
}

/* The shortest text of v with at most max_digits significant digits. */
static size_t numtext__shortest(char *buf, double v, int max_digits, int is_float)
{
    if (isnan(v))
        return (size_t)snprintf(buf, NUMTEXT_MAX, "nan");
    if (isinf(v))
        return (size_t)snprintf(buf, NUMTEXT_MAX, v < 0 ? "-inf" : "inf");
    char e[NUMTEXT_MAX], f[NUMTEXT_MAX];
    int p = numtext__digits(e, v, max_digits, is_float);
    int exp10 = atoi(strchr(e, 'e') + 1);
    size_t le = numtext__tidy_exponent(e);
    if (exp10 >= NUMTEXT_POS_MIN && exp10 <= NUMTEXT_POS_MAX) {
        int decimals = p - 1 - exp10;
        int lf = decimals >= 0 ? snprintf(f, sizeof f, "%.*f", decimals, v)
                               : numtext__integer(f, e, -decimals);
        if (lf > 0 && (size_t)lf < sizeof f && numtext__reads_back(f, v, is_float)) {
            memcpy(buf, f, (size_t)lf + 1);
            return (size_t)lf;
        }
    }
    memcpy(buf, e, le + 1);
    return le;
}

size_t numtext_double(char *buf, double v)
{
    return numtext__shortest(buf, v, 17, 0);
}

size_t numtext_float(char *buf, float v)
{
    return numtext__shortest(buf, (double)v, 9, 1);
}
