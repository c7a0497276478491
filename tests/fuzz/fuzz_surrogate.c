/*
 * fuzz_surrogate.c: the surrogate blob reader (surrogate_from_blob), as the
 * store hands it a BLOB from the database, and what a reader does next:
 * evaluate it (table and MLP paths, with slopes) and write it out again.
 *
 * Input: the blob. An accepted blob must serialise back to the same bytes
 * (the format has no slack: the parameters fill it exactly), checked here;
 * a difference traps, so the fuzzer reports it as a crash. A version-1 blob
 * (no domain) is written back as version 2: the same bytes but the version,
 * then a domain of infinities.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mlp.h"
#include "surrogate.h"

#define FUZZ_SURR__B 4

static void fuzz_surr__eval(const struct surrogate *s)
{
    struct mlp_acts acts;
    if (mlp_acts_init(&acts, s->mlp, FUZZ_SURR__B) != 0)
        return;
    size_t n_in = s->n_in;
    float *u = calloc(FUZZ_SURR__B * n_in, sizeof *u);
    float *dy = calloc(FUZZ_SURR__B * n_in, sizeof *dy);
    float *scratch = calloc(FUZZ_SURR__B * (n_in + 1), sizeof *scratch);
    float y[FUZZ_SURR__B];
    if (u && dy && scratch) {
        /* Rows at the mean, inside the table, far outside it, and at 0. */
        for (size_t k = 0; k < n_in; k++) {
            u[0 * n_in + k] = s->in_mean[k];
            u[1 * n_in + k] = s->in_mean[k] + 2.5f * s->in_std[k];
            u[2 * n_in + k] = s->in_mean[k] - 1e3f * s->in_std[k];
            u[3 * n_in + k] = 0.0f;
        }
        (void)surrogate_eval(s, &acts, u, FUZZ_SURR__B, y, dy, scratch);
        (void)surrogate_eval(s, &acts, u, 1, y, NULL, scratch);
        (void)surrogate_eval_mlp(s, &acts, u, FUZZ_SURR__B, y, dy, scratch);
    }
    free(u);
    free(dy);
    free(scratch);
    mlp_acts_close(&acts);
}

/* Nonzero when `out` is not what the accepted blob `in` must write back. */
static int fuzz_surr__differs(const unsigned char *in, size_t size, const unsigned char *out,
                              size_t len)
{
    if (in[4] != 1)
        return len != size || memcmp(out, in, size) != 0;
    return len <= size || memcmp(out, in, 4) != 0 || out[4] != 2 ||
           memcmp(out + 5, in + 5, size - 5) != 0;
}

int fuzz_surrogate_one(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    struct surrogate s;
    if (surrogate_from_blob(buf, size, &s) == 0) {
        fuzz_surr__eval(&s);
        void *out = NULL;
        size_t len = 0;
        if (surrogate_to_blob(&s, &out, &len) == 0) {
            if (fuzz_surr__differs(buf, size, out, len))
                __builtin_trap(); /* an accepted blob must round-trip */
            free(out);
        }
        surrogate_close(&s);
    }
    free(buf);
    return 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_surrogate_one(data, size);
}
#endif
