/*
 * fuzz_rxn.c: the reaction parser (rxn_parse) and its evaluators (rxn_rhs,
 * rxn_jac, rxn_jac_sym).
 *
 * Input: one byte choosing the species (low 2 bits: 1..4 of a fixed list)
 * and the symbols rates may name (bits 2-3: 0..3 of a fixed list), then the
 * reaction texts one per line (at most DEV_MAX_REACTIONS lines of at most
 * SPEC_SRC_MAX bytes, the limits the device spec enforces; each cut at a
 * NUL). A network that parses is evaluated at a few amounts.
 */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "fuzz.h"
#include "rxn.h"
#include "spec.h"

static const char *const fuzz_rxn__species[] = {"Y", "A", "B", "C_2"};
static const char *const fuzz_rxn__symbols[] = {"kappa", "u1", "k"};

/* Splits text (NUL-terminated, modified) at '\n' into at most cap lines. */
static size_t fuzz_rxn__lines(char *text, const char **lines, size_t cap)
{
    size_t n = 0;
    char *p = text;
    while (n < cap) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return n;
}

static void fuzz_rxn__eval(const struct rxn_net *r, size_t ns, size_t nk)
{
    static const double ys[][4] = {{0, 0, 0, 0}, {1, 0.5, 2, 1e-3}, {-1, 1e200, 3, 0}};
    static const double syms[][3] = {{0, 0, 0}, {0.01, -2, 1.5}, {1e300, 1, -1}};
    double dydt[4], jac[16], jsym[12];
    for (size_t p = 0; p < sizeof ys / sizeof ys[0]; p++) {
        rxn_rhs(r, ys[p], syms[p], dydt);
        rxn_jac(r, ys[p], syms[p], jac);
        if (nk)
            rxn_jac_sym(r, ys[p], syms[p], jsym);
    }
    (void)ns;
    (void)rxn_n_reactions(r);
}

int fuzz_rxn_one(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > DEV_MAX_REACTIONS * (SPEC_SRC_MAX + 1))
        return 0;
    size_t ns = 1 + (data[0] & 3u), nk = (data[0] >> 2) & 3u;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    const char *lines[DEV_MAX_REACTIONS];
    size_t n = fuzz_rxn__lines(text, lines, DEV_MAX_REACTIONS);
    for (size_t i = 0; i < n; i++)
        if (strlen(lines[i]) > SPEC_SRC_MAX)
            goto out;
    struct rxn_net *r = NULL;
    struct rxn_error err;
    if (rxn_parse(lines, n, fuzz_rxn__species, ns, fuzz_rxn__symbols, nk, &r, &err) == 0) {
        fuzz_rxn__eval(r, ns, nk);
        rxn_destroy(r);
    }
out:
    free(text);
    return 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_rxn_one(data, size);
}
#endif
