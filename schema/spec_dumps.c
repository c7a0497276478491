/*
 * spec_dumps.c: jansson's JSON text with the shortest round-trip reals
 * (spec_dumps.h).
 */
#include "spec_dumps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numtext.h"

/* Is c part of a JSON number token? */
static int spec__num_char(char c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

/* The shortest round-trip text of v kept a real ("1.0", not "1") into b
 * (SPEC_DUMPS_REAL_MAX bytes); its length. */
static size_t spec__shortest(char *b, double v)
{
    size_t m = numtext_double(b, v);
    if (!strpbrk(b, ".en")) {
        memcpy(b + m, ".0", 3);
        m += 2;
    }
    return m;
}

/* Writes the shortest form of the real token t[0..n) at w; returns its length
 * (at most n: where the shortest form is longer, jansson's text stays). */
static size_t spec__real(char *w, const char *t, size_t n)
{
    char tok[64], b[SPEC_DUMPS_REAL_MAX];
    if (n >= sizeof tok) {
        memmove(w, t, n);
        return n;
    }
    memcpy(tok, t, n);
    tok[n] = '\0';
    size_t m = spec__shortest(b, strtod(tok, NULL));
    if (m > n) { /* jansson's "%.17g" is shorter for 1e16 <= |v| < 1e17 (positional
                    where numtext takes an exponent): keep it */
        memmove(w, t, n);
        return n;
    }
    memcpy(w, b, m);
    return m;
}

/* v as jansson writes a real (jsonp_dtostr: "%.17g", ".0" when it has
 * neither '.' nor 'e', the exponent without '+' and leading zeros) into b
 * (SPEC_DUMPS_REAL_MAX bytes); its length. */
static size_t spec__jansson(char *b, double v)
{
    int n = snprintf(b, SPEC_DUMPS_REAL_MAX, "%.17g", v);
    if (!strchr(b, '.') && !strchr(b, 'e')) {
        memcpy(b + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(b, 'e');
    if (!e)
        return (size_t)n;
    char *from = e + 1, *to = e + 1;
    if (*from == '+')
        from++;
    else if (*from == '-')
        from++, to++;
    while (*from == '0' && from[1])
        from++;
    memmove(to, from, strlen(from) + 1);
    return strlen(b);
}

size_t spec_dumps_real(char *b, double v)
{
    size_t m = spec__shortest(b, v);
    char j[SPEC_DUMPS_REAL_MAX];
    size_t n;
    if (strchr(b, 'e') && (n = spec__jansson(j, v)) < m) { /* see spec__real */
        memcpy(b, j, n + 1);
        return n;
    }
    return m;
}

size_t spec_dumps_reals(char *text)
{
    char *r = text, *w = text;
    int in_string = 0;
    while (*r) {
        char c = *r;
        if (in_string) {
            *w++ = *r++;
            if (c == '\\' && *r)
                *w++ = *r++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
            *w++ = *r++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t n = 0;
            while (spec__num_char(r[n]))
                n++;
            if (memchr(r, '.', n) || memchr(r, 'e', n) || memchr(r, 'E', n)) {
                w += spec__real(w, r, n);
            } else {
                memmove(w, r, n);
                w += n;
            }
            r += n;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - text);
}

char *spec_dumps(const json_t *v, size_t flags)
{
    char *text = json_dumps(v, flags);
    if (text)
        spec_dumps_reals(text);
    return text;
}
