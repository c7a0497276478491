/*
 * qn_log.c: escaping text for log lines (see qn_log.h).
 *
 * A byte-level scan: printable ASCII and whole valid UTF-8 sequences are
 * copied, everything else is written as an escape. Valid UTF-8 is kept so
 * that names and messages in other scripts stay readable in the log.
 */
#include "qn_log.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (lead byte >= 0x80), 0 when the
 * bytes are not one (overlong forms, surrogates and values past U+10FFFF
 * included). */
static size_t qn_log__utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* The escape of the control byte c ("\n", "\x1b") into e (8 bytes). */
static void qn_log__ctl(char e[8], unsigned char c)
{
    if (c == '\n')
        strcpy(e, "\\n");
    else if (c == '\r')
        strcpy(e, "\\r");
    else if (c == '\t')
        strcpy(e, "\\t");
    else if (c == '\\')
        strcpy(e, "\\\\");
    else
        snprintf(e, 8, "\\x%02x", c);
}

char *qn_log_escape(char *out, size_t cap, const char *in)
{
    const unsigned char *s = (const unsigned char *)(in ? in : "-");
    size_t o = 0;
    while (*s) {
        char e[8];
        size_t take = 1, len;
        const char *src = e;
        if (*s >= 0x20 && *s < 0x7f && *s != '\\') {
            src = (const char *)s;
            len = 1;
        } else if (*s >= 0x80 && (take = qn_log__utf8_len(s)) != 0) {
            if (s[0] == 0xc2 && s[1] < 0xa0) /* U+0080..U+009F: C1 controls */
                snprintf(e, sizeof e, "\\u%04x", (unsigned)s[1]);
            else
                src = (const char *)s;
            len = src == e ? strlen(e) : take;
        } else {
            take = 1;
            qn_log__ctl(e, *s);
            len = strlen(e);
        }
        if (len >= cap - o)
            break;
        memcpy(out + o, src, len);
        o += len;
        s += take;
    }
    out[o] = '\0';
    return out;
}
