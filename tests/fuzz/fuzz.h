/*
 * fuzz.h: the entry points of the libFuzzer targets in tests/fuzz/.
 *
 * Each fuzz_<target>.c defines fuzz_<target>_one (one input through the
 * code under test, the same calls the server makes) and, unless
 * QN_FUZZ_REPLAY is defined, the LLVMFuzzerTestOneInput that calls it. `make
 * fuzz` builds each file with clang and libFuzzer; the regression test
 * (tests/fuzz_regress/test_fuzz_regressions.c) defines QN_FUZZ_REPLAY,
 * includes every target, and replays the seed corpora and every input that
 * once crashed through the same functions, built with gcc.
 *
 * An entry point never fails on bad input (refusing it is the point); it
 * returns 0. A crash, a sanitizer report, or a leak is the finding.
 */
#ifndef QN_FUZZ_H
#define QN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fuzz_spec_one(const uint8_t *data, size_t size);
int fuzz_expr_one(const uint8_t *data, size_t size);
int fuzz_rxn_one(const uint8_t *data, size_t size);
int fuzz_csv_one(const uint8_t *data, size_t size);
int fuzz_idx_one(const uint8_t *data, size_t size);
int fuzz_surrogate_one(const uint8_t *data, size_t size);

/* The HTTP target needs an in-process daemon: fuzz_http_init starts it once
 * (loopback, ephemeral port, a database in a fresh temporary directory);
 * fuzz_http_fini stops it and removes the directory. 0 or a qn_err code. */
int fuzz_http_init(void);
int fuzz_http_one(const uint8_t *data, size_t size);
void fuzz_http_fini(void);

#endif
