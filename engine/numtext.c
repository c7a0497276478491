/*
 * numtext.c: the shortest round-trip text of a double or a float
 * (numtext.h): the fewest significant digits that read back, written
 * positionally or with an exponent by the size of the number.
 */
#include "numtext.h"

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

/* The shortest text of v with at most max_digits significant digits. */
static size_t numtext__shortest(char *buf, double v, int max_digits, int is_float)
{
    if (isnan(v))
        return (size_t)snprintf(buf, NUMTEXT_MAX, "nan");
    if (isinf(v))
        return (size_t)snprintf(buf, NUMTEXT_MAX, v < 0 ? "-inf" : "inf");
    char e[NUMTEXT_MAX], f[NUMTEXT_MAX];
    int p = 1;
    for (; p < max_digits; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (numtext__reads_back(e, v, is_float))
            break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, v);
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
