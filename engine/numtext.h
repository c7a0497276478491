/*
 * numtext.h: numbers as the shortest text that reads back to the same value.
 *
 * 0.783 prints as "0.783", not %.17g's "0.78300000000000003"; 0.1 + 0.2
 * as "0.30000000000000004", the 17 digits it needs. The significant digits
 * are the fewest p (1..17 for a double, 1..9 for a float) whose correctly
 * rounded "%.*e" reads back (strtod, strtof) to the same value. They are
 * written positionally ("120", "0.0625", "0.0001") for decimal exponents in
 * [-4, 16), with an exponent outside ("1e16", "2.5e-7": no "+", no leading
 * zeros), as Python's repr and JavaScript do. Used for every number we print
 * as a real: JSON (records, the API, events, the command line) and CSV.
 *
 * Trade-off: a few snprintf/strtod pairs per number (one try answers for
 * up to 15 digits, then 16 and 17 are tried; subnormals count up from 1)
 * rather than a dedicated shortest-digits algorithm (Ryu, Grisu): C has no
 * such routine. A metric page's reals are most of its request's CPU.
 */
#ifndef QN_NUMTEXT_H
#define QN_NUMTEXT_H

#include <stddef.h>

#define NUMTEXT_MAX 32 /* bytes of any numtext output, with its NUL */

/* Writes v into buf (NUMTEXT_MAX bytes); returns the length. NaN and the
 * infinities are "nan", "inf" and "-inf" (not JSON: callers decide). */
size_t numtext_double(char *buf, double v);
/* As numtext_double for a float: the shortest text strtof reads back to v. */
size_t numtext_float(char *buf, float v);

#endif
