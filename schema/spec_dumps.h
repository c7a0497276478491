/*
 * spec_dumps.h: JSON text as Quasineuron writes it: jansson's json_dumps,
 * with every real number the shortest text that reads back to the same
 * double (engine/numtext.h): 0.783, not 0.78300000000000003.
 *
 * Trade-off: jansson prints reals with "%.17g" (or a fixed precision) and
 * has no hook for its number formatting, so the text it writes is scanned
 * once and each real token rewritten. A real stays a real when read back
 * ("1.0", never "1"). The result is never longer than jansson's.
 */
#ifndef QN_SPEC_DUMPS_H
#define QN_SPEC_DUMPS_H

#include <jansson.h>
#include <stddef.h>

/* As json_dumps(v, flags) (flags: JSON_COMPACT, JSON_ENSURE_ASCII, ...), the
 * reals shortest; a new string (free it), NULL when out of memory. */
char *spec_dumps(const json_t *v, size_t flags);

/* Rewrites the real number tokens of JSON text in place (outside strings);
 * returns the new length. */
size_t spec_dumps_reals(char *text);

#define SPEC_DUMPS_REAL_MAX 40 /* bytes of a real's text, its NUL included */
/* The text spec_dumps writes for json_real(v) (v finite) into b
 * (SPEC_DUMPS_REAL_MAX bytes), without making one: for rows written
 * straight to text. Its length. */
size_t spec_dumps_real(char *b, double v);

#endif
