/*
 * qn_log.h: text made safe for a log line.
 *
 * Logs carry text that clients chose (request paths, user and job names,
 * error messages that quote a spec). Written raw, a newline in such text
 * forges a log line and an escape sequence drives the terminal that shows
 * the log. qn_log_escape writes a copy in which every control character
 * (C0, DEL, and C1 in its UTF-8 form), every byte that is not part of valid
 * UTF-8, and the backslash itself appear as escapes ("\n", "\x1b",
 * "\u009b", "\\"), so one logged line is one line and reads back
 * unambiguously.
 */
#ifndef QN_LOG_H
#define QN_LOG_H

#include <stddef.h>

/* Bytes of out a text of n bytes can need at most (its escape is 4 bytes a
 * byte, "\x00", or 6 for two, "\u0080"), plus its NUL. */
#define QN_LOG_ESCAPED_MAX(n) (4 * (n) + 1)

/*
 * Writes the escaped copy of in (NUL-terminated; NULL is written as "-")
 * into out (cap bytes, cap >= 1), cut at a whole escape when it does not
 * fit, always NUL-terminated. Returns out.
 */
char *qn_log_escape(char *out, size_t cap, const char *in);

#endif
