/*
 * rxn.c: mass-action reaction networks written as text (see rxn.h).
 *
 * Each reaction text is read by a small hand-written recursive-descent parser
 * (complex "->" complex "@" rate) that never reads past the terminating NUL
 * and reports the first problem with its byte position and token. The parsed
 * network is stored compactly: per reaction, its rate (a number or a symbol
 * index), its reactants as (species, coefficient) terms and its net change as
 * (species, delta) terms, all in one term pool. Species repeated within a
 * complex are merged ("Y + Y" is "2 Y"), and species whose net change is zero
 * are dropped from the change list, so evaluation touches only what matters.
 *
 * Trade-off: coefficients are capped at RXN_MAX_COEFF. Real chemistry has
 * small coefficients; the cap keeps integer arithmetic and powers safe on
 * adversarial input.
 */
#include "rxn.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

#define RXN_MAX_COEFF 1000 /* largest stoichiometric coefficient (also after merging) */
#define RXN_MAX_NUMBER 63  /* longest rate literal, in bytes */
#define RXN__FORMAT_MAX 64 /* species rxn_format writes (DEV_MAX_STATES is far below) */

/* One (species, coefficient) pair: a reactant or a net change. */
struct rxn_term {
    size_t sp; /* species index */
    int c;     /* reactant coefficient (> 0) or net change (!= 0) */
};

/* One parsed reaction. */
/* How a symbol rate is read: as it is, or its positive or negative part. */
enum rxn_part { RXN_PLAIN, RXN_POS, RXN_NEG };

struct rxn_reaction {
    long sym;     /* symbol index of the rate, or -1 for a numeric rate */
    enum rxn_part part; /* a symbol rate: plain, pos(symbol) or neg(symbol) */
    double rate;  /* the numeric rate (sym == -1) */
    size_t r_off; /* first reactant term in the pool */
    size_t r_n;   /* number of reactant terms */
    size_t d_off; /* first net-change term in the pool */
    size_t d_n;   /* number of net-change terms */
};

struct rxn_net {
    size_t n_species;          /* species, the ODE dimension */
    size_t n_symbols;          /* symbols the rates may name */
    size_t n_rx;               /* reactions */
    struct rxn_reaction *rx;   /* (n_rx) reactions (owned) */
    struct rxn_term *terms;    /* (n_terms) term pool (owned) */
    size_t n_terms;            /* terms in use */
    size_t cap_terms;          /* terms allocated */
};

/* Parser state for one reaction text. */
struct rxn_parser {
    const char *s;                 /* the text (borrowed) */
    size_t pos;                    /* cursor */
    const char *const *species;    /* borrowed */
    size_t n_species;
    const char *const *symbols;    /* borrowed */
    size_t n_symbols;
    int *coef[2];                  /* (n_species) reactant / product coefficients (scratch) */
    struct rxn_error *err;         /* where problems go (may be NULL) */
    size_t index;                  /* reaction index, for errors */
};

static int rxn__is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int rxn__is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int rxn__is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int rxn__is_ident(char c)
{
    return rxn__is_ident_start(c) || rxn__is_digit(c);
}

static void rxn__skip_ws(struct rxn_parser *p)
{
    while (rxn__is_space(p->s[p->pos]))
        p->pos++;
}

/* Length of the token starting at s (identifier, number, "->" or one character). */
static size_t rxn__token_len(const char *s)
{
    size_t n = 0;
    if (s[0] == '\0')
        return 0;
    if (rxn__is_ident(s[0]) || s[0] == '.') {
        while (rxn__is_ident(s[n]) || s[n] == '.')
            n++;
        return n;
    }
    if (s[0] == '-' && s[1] == '>')
        return 2;
    return 1;
}

/* Copies the token at s into buf[cap] as printable ASCII: other bytes become
 * \xNN, so the token is safe to place in JSON and logs; long tokens are cut. */
static void rxn__copy_token(const char *s, char *buf, size_t cap)
{
    size_t len = rxn__token_len(s), o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            buf[o++] = (char)c;
        } else if (o + 5 < cap) {
            snprintf(buf + o, cap - o, "\\x%02x", c);
            o += 4;
        } else {
            break;
        }
    }
    buf[o] = '\0';
}

/* Fills the error for the token at `pos`: msg is a format with one %s for the
 * token (or none). Returns QN_EPARSE. */
static int rxn__fail(struct rxn_parser *p, size_t pos, const char *fmt)
{
    if (p->err) {
        p->err->reaction = p->index;
        p->err->pos = pos;
        rxn__copy_token(p->s + pos, p->err->token, sizeof p->err->token);
        snprintf(p->err->msg, sizeof p->err->msg, fmt, p->err->token);
    }
    return QN_EPARSE;
}

/* Index of the name s[0..len) in names[0..n), or -1. */
static long rxn__lookup(const char *const *names, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (names[i] && strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
            return (long)i;
    return -1;
}

/* Reads an unsigned integer coefficient at the cursor into *c (capped). */
static int rxn__coeff(struct rxn_parser *p, int *c)
{
    size_t start = p->pos;
    long v = 0;
    while (rxn__is_digit(p->s[p->pos])) {
        v = v * 10 + (p->s[p->pos] - '0');
        if (v > RXN_MAX_COEFF)
            return rxn__fail(p, start, "coefficient '%s' is too large (at most 1000)");
        p->pos++;
    }
    *c = (int)v;
    return 0;
}

/* One term "[coeff] Species" of complex `side`, merged into p->coef[side]. */
static int rxn__term(struct rxn_parser *p, int side)
{
    int c = 1;
    size_t start = p->pos;
    if (rxn__is_digit(p->s[p->pos])) {
        int rc = rxn__coeff(p, &c);
        if (rc)
            return rc;
        if (c == 0)
            return rxn__fail(p, start, "coefficient '%s' must be a positive integer");
        rxn__skip_ws(p);
    }
    size_t at = p->pos;
    if (!rxn__is_ident_start(p->s[at]))
        return rxn__fail(p, at, p->s[at] ? "expected a species name, found '%s'"
                                          : "expected a species name at end of input%s");
    while (rxn__is_ident(p->s[p->pos]))
        p->pos++;
    long sp = rxn__lookup(p->species, p->n_species, p->s + at, p->pos - at);
    if (sp < 0)
        return rxn__fail(p, at, "unknown species '%s'");
    if (p->coef[side][sp] + c > RXN_MAX_COEFF)
        return rxn__fail(p, at, "coefficient of '%s' is too large (at most 1000)");
    p->coef[side][sp] += c;
    return 0;
}

/* A complex: "0" (empty) or terms joined by '+'. */
static int rxn__complex(struct rxn_parser *p, int side)
{
    rxn__skip_ws(p);
    if (p->s[p->pos] == '0') {
        size_t q = p->pos + 1;
        while (rxn__is_digit(p->s[q]))
            q++;
        size_t r = q;
        while (rxn__is_space(p->s[r]))
            r++;
        int all_zero = 1;
        for (size_t i = p->pos; i < q; i++)
            all_zero &= p->s[i] == '0';
        if (all_zero && !rxn__is_ident_start(p->s[r])) {
            p->pos = q;
            return 0;
        }
    }
    for (;;) {
        int rc = rxn__term(p, side);
        if (rc)
            return rc;
        rxn__skip_ws(p);
        if (p->s[p->pos] != '+')
            return 0;
        p->pos++;
        rxn__skip_ws(p);
    }
}

/* Scans a non-negative decimal literal (digits, optional fraction and
 * exponent) at the cursor into *v. */
static int rxn__number(struct rxn_parser *p, double *v)
{
    size_t start = p->pos, q = p->pos, digits = 0;
    while (rxn__is_digit(p->s[q]))
        q++, digits++;
    if (p->s[q] == '.') {
        q++;
        while (rxn__is_digit(p->s[q]))
            q++, digits++;
    }
    if (digits == 0)
        return rxn__fail(p, start, "malformed number '%s'");
    if (p->s[q] == 'e' || p->s[q] == 'E') {
        size_t e = q + 1;
        if (p->s[e] == '+' || p->s[e] == '-')
            e++;
        if (!rxn__is_digit(p->s[e]))
            return rxn__fail(p, start, "malformed number '%s'");
        while (rxn__is_digit(p->s[e]))
            e++;
        q = e;
    }
    if (rxn__is_ident(p->s[q]) || p->s[q] == '.')
        return rxn__fail(p, start, "malformed number '%s'");
    if (q - start > RXN_MAX_NUMBER)
        return rxn__fail(p, start, "number '%s' is too long");
    char buf[RXN_MAX_NUMBER + 1];
    memcpy(buf, p->s + start, q - start);
    buf[q - start] = '\0';
    *v = strtod(buf, NULL);
    if (!isfinite(*v))
        return rxn__fail(p, start, "rate '%s' is out of range");
    p->pos = q;
    return 0;
}

/* A symbol name at the cursor into rx->sym. */
static int rxn__symbol(struct rxn_parser *p, struct rxn_reaction *rx)
{
    size_t at = p->pos;
    if (!rxn__is_ident_start(p->s[at]))
        return rxn__fail(p, at, p->s[at] ? "expected a symbol, found '%s'"
                                         : "expected a symbol at end of input%s");
    while (rxn__is_ident(p->s[p->pos]))
        p->pos++;
    rx->sym = rxn__lookup(p->symbols, p->n_symbols, p->s + at, p->pos - at);
    rx->rate = 0.0;
    return rx->sym < 0 ? rxn__fail(p, at, "unknown rate symbol '%s'") : 0;
}

/* The part function of a rate at the cursor ("pos(" or "neg("), consumed; RXN_PLAIN when none. */
static enum rxn_part rxn__part(struct rxn_parser *p)
{
    const char *s = p->s + p->pos;
    enum rxn_part part = strncmp(s, "pos", 3) == 0 ? RXN_POS
                         : strncmp(s, "neg", 3) == 0 ? RXN_NEG
                                                     : RXN_PLAIN;
    size_t q = 3;
    while (part != RXN_PLAIN && (s[q] == ' ' || s[q] == '\t'))
        q++;
    if (part == RXN_PLAIN || s[q] != '(')
        return RXN_PLAIN;
    p->pos += q + 1;
    return part;
}

/* pos(symbol) or neg(symbol), after its "(". */
static int rxn__part_rate(struct rxn_parser *p, struct rxn_reaction *rx)
{
    rxn__skip_ws(p);
    int rc = rxn__symbol(p, rx);
    if (rc)
        return rc;
    rxn__skip_ws(p);
    if (p->s[p->pos] != ')')
        return rxn__fail(p, p->pos, p->s[p->pos] ? "expected ')', found '%s'"
                                                 : "expected ')' at end of input%s");
    p->pos++;
    return 0;
}

/* The rate after '@': a number, a symbol name, pos(symbol) or neg(symbol). */
static int rxn__rate(struct rxn_parser *p, struct rxn_reaction *rx)
{
    rxn__skip_ws(p);
    size_t at = p->pos;
    char c = p->s[at];
    rx->part = RXN_PLAIN;
    if (rxn__is_digit(c) || c == '.') {
        rx->sym = -1;
        return rxn__number(p, &rx->rate);
    }
    if (rxn__is_ident_start(c)) {
        rx->part = rxn__part(p);
        return rx->part == RXN_PLAIN ? rxn__symbol(p, rx) : rxn__part_rate(p, rx);
    }
    if (c == '-')
        return rxn__fail(p, at, "rate must be non-negative, found '%s'");
    return rxn__fail(p, at, c ? "expected a rate (a number or a symbol), found '%s'"
                              : "expected a rate (a number or a symbol) at end of input%s");
}

/* Parses the whole reaction text into rx and p->coef[0..1]. */
static int rxn__reaction(struct rxn_parser *p, struct rxn_reaction *rx)
{
    int rc = rxn__complex(p, 0);
    if (rc)
        return rc;
    rxn__skip_ws(p);
    if (p->s[p->pos] != '-' || p->s[p->pos + 1] != '>')
        return rxn__fail(p, p->pos, p->s[p->pos] ? "missing '->', found '%s'"
                                                 : "missing '->' at end of input%s");
    p->pos += 2;
    rc = rxn__complex(p, 1);
    if (rc)
        return rc;
    rxn__skip_ws(p);
    if (p->s[p->pos] != '@')
        return rxn__fail(p, p->pos, p->s[p->pos] ? "missing '@', found '%s'"
                                                 : "missing '@ rate' at end of input%s");
    p->pos++;
    rc = rxn__rate(p, rx);
    if (rc)
        return rc;
    rxn__skip_ws(p);
    if (p->s[p->pos] != '\0')
        return rxn__fail(p, p->pos, "unexpected '%s' after the rate");
    return 0;
}

/* Appends a term to the pool, growing it. */
static int rxn__push(struct rxn_net *r, size_t sp, int c)
{
    if (r->n_terms == r->cap_terms) {
        size_t cap = r->cap_terms ? r->cap_terms * 2 : 16;
        if (cap > SIZE_MAX / sizeof *r->terms)
            return QN_ENOMEM;
        struct rxn_term *t = realloc(r->terms, cap * sizeof *t);
        if (!t)
            return QN_ENOMEM;
        r->terms = t;
        r->cap_terms = cap;
    }
    r->terms[r->n_terms].sp = sp;
    r->terms[r->n_terms].c = c;
    r->n_terms++;
    return 0;
}

/* Moves the scratch coefficients of one parsed reaction into the pool and
 * clears the scratch. */
static int rxn__emit(struct rxn_net *r, struct rxn_reaction *rx, int *coef[2])
{
    int rc = 0;
    rx->r_off = r->n_terms;
    for (size_t i = 0; i < r->n_species && !rc; i++)
        if (coef[0][i])
            rc = rxn__push(r, i, coef[0][i]);
    rx->r_n = r->n_terms - rx->r_off;
    rx->d_off = r->n_terms;
    for (size_t i = 0; i < r->n_species && !rc; i++)
        if (coef[1][i] != coef[0][i])
            rc = rxn__push(r, i, coef[1][i] - coef[0][i]);
    rx->d_n = r->n_terms - rx->d_off;
    memset(coef[0], 0, r->n_species * sizeof *coef[0]);
    memset(coef[1], 0, r->n_species * sizeof *coef[1]);
    return rc;
}

int rxn_parse(const char *const *texts, size_t n_texts, const char *const *species,
              size_t n_species, const char *const *symbols, size_t n_symbols,
              struct rxn_net **out, struct rxn_error *err)
{
    if (!out || (n_texts && !texts) || (n_species && !species) || (n_symbols && !symbols))
        return QN_EINVAL;
    *out = NULL;
    int rc = QN_ENOMEM;
    struct rxn_net *r = calloc(1, sizeof *r);
    if (!r)
        goto fail_net;
    r->n_species = n_species;
    r->n_symbols = n_symbols;
    r->n_rx = n_texts;
    r->rx = calloc(n_texts ? n_texts : 1, sizeof *r->rx);
    if (!r->rx)
        goto fail_rx;
    /* The term pool is never NULL, even for networks without terms ("0 -> 0"):
     * evaluation forms r->terms + offset, undefined on a null pointer. */
    r->cap_terms = 16;
    r->terms = malloc(r->cap_terms * sizeof *r->terms);
    if (!r->terms)
        goto fail_scratch;
    int *scratch = calloc(n_species ? 2 * n_species : 1, sizeof *scratch);
    if (!scratch)
        goto fail_scratch;
    struct rxn_parser p = {.species = species, .n_species = n_species, .symbols = symbols,
                           .n_symbols = n_symbols, .coef = {scratch, scratch + n_species},
                           .err = err};
    for (size_t k = 0; k < n_texts; k++) {
        p.s = texts[k] ? texts[k] : "";
        p.pos = 0;
        p.index = k;
        rc = rxn__reaction(&p, &r->rx[k]);
        if (!rc)
            rc = rxn__emit(r, &r->rx[k], p.coef);
        if (rc)
            goto fail_parse;
    }
    free(scratch);
    *out = r;
    return 0;

fail_parse:
    free(scratch);
fail_scratch:
    free(r->terms);
    free(r->rx);
fail_rx:
    free(r);
fail_net:
    return rc;
}

/* x^n for a small non-negative integer n, by repeated squaring (0^0 = 1). */
static double rxn__ipow(double x, int n)
{
    double acc = 1.0;
    while (n > 0) {
        if (n & 1)
            acc *= x;
        x *= x;
        n >>= 1;
    }
    return acc;
}

static double rxn__rate_of(const struct rxn_reaction *rx, const double *sym)
{
    if (rx->sym < 0)
        return rx->rate;
    double v = sym[rx->sym];
    return rx->part == RXN_POS ? fmax(v, 0) : rx->part == RXN_NEG ? fmax(-v, 0) : v;
}

/* d rate / d symbol (one-sided 0 at the kink of pos and neg). */
static double rxn__drate(const struct rxn_reaction *rx, const double *sym)
{
    double v = sym[rx->sym];
    return rx->part == RXN_POS ? (v > 0 ? 1.0 : 0.0)
           : rx->part == RXN_NEG ? (v < 0 ? -1.0 : 0.0)
                                 : 1.0;
}

/* prod y_i^c_i over the reactants of rx. */
static double rxn__monomial(const struct rxn_net *r, const struct rxn_reaction *rx,
                            const double *y)
{
    const struct rxn_term *t = r->terms + rx->r_off;
    double m = 1.0;
    for (size_t i = 0; i < rx->r_n; i++)
        m *= rxn__ipow(y[t[i].sp], t[i].c);
    return m;
}

/* d monomial / d y_{t[j].sp}: c_j y_j^(c_j - 1) times the other factors. */
static double rxn__dmonomial(const struct rxn_net *r, const struct rxn_reaction *rx,
                             const double *y, size_t j)
{
    const struct rxn_term *t = r->terms + rx->r_off;
    double m = t[j].c * rxn__ipow(y[t[j].sp], t[j].c - 1);
    for (size_t i = 0; i < rx->r_n; i++)
        if (i != j)
            m *= rxn__ipow(y[t[i].sp], t[i].c);
    return m;
}

/* Adds scale * (net change of rx) to v[sp * stride + col]. */
static void rxn__scatter(const struct rxn_net *r, const struct rxn_reaction *rx, double scale,
                         double *v, size_t stride, size_t col)
{
    const struct rxn_term *d = r->terms + rx->d_off;
    for (size_t i = 0; i < rx->d_n; i++)
        v[d[i].sp * stride + col] += d[i].c * scale;
}

void rxn_rhs(const struct rxn_net *r, const double *y, const double *sym, double *dydt)
{
    for (size_t i = 0; i < r->n_species; i++)
        dydt[i] = 0.0;
    for (size_t k = 0; k < r->n_rx; k++) {
        const struct rxn_reaction *rx = &r->rx[k];
        double flux = rxn__rate_of(rx, sym) * rxn__monomial(r, rx, y);
        rxn__scatter(r, rx, flux, dydt, 1, 0);
    }
}

void rxn_jac(const struct rxn_net *r, const double *y, const double *sym, double *jac)
{
    size_t n = r->n_species;
    for (size_t i = 0; i < n * n; i++)
        jac[i] = 0.0;
    for (size_t k = 0; k < r->n_rx; k++) {
        const struct rxn_reaction *rx = &r->rx[k];
        double rate = rxn__rate_of(rx, sym);
        for (size_t j = 0; j < rx->r_n; j++) {
            double dflux = rate * rxn__dmonomial(r, rx, y, j);
            rxn__scatter(r, rx, dflux, jac, n, r->terms[rx->r_off + j].sp);
        }
    }
}

void rxn_jac_sym(const struct rxn_net *r, const double *y, const double *sym, double *jsym)
{
    size_t m = r->n_symbols;
    for (size_t i = 0; i < r->n_species * m; i++)
        jsym[i] = 0.0;
    for (size_t k = 0; k < r->n_rx; k++) {
        const struct rxn_reaction *rx = &r->rx[k];
        if (rx->sym >= 0)
            rxn__scatter(r, rx, rxn__drate(rx, sym) * rxn__monomial(r, rx, y), jsym, m,
                         (size_t)rx->sym);
    }
}

/* Appends one complex, coefficient c[i] of species i, to buf at *len. */
static void rxn__format_complex(const int *c, size_t n, const char *const *species, char *buf,
                                size_t cap, size_t *len)
{
    int any = 0;
    for (size_t i = 0; i < n && *len < cap; i++) {
        if (c[i] == 0)
            continue;
        const char *sep = any ? " + " : "";
        if (c[i] == 1)
            *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s", sep, species[i]);
        else
            *len += (size_t)snprintf(buf + *len, cap - *len, "%s%d %s", sep, c[i], species[i]);
        any = 1;
    }
    if (!any && *len < cap)
        *len += (size_t)snprintf(buf + *len, cap - *len, "0");
}

void rxn_format(const struct rxn_net *r, size_t k, const char *const *species,
                const char *const *symbols, char *buf, size_t cap)
{
    const struct rxn_reaction *rx = &r->rx[k];
    int in[RXN__FORMAT_MAX] = {0}, out[RXN__FORMAT_MAX] = {0};
    size_t n = r->n_species < RXN__FORMAT_MAX ? r->n_species : RXN__FORMAT_MAX, len = 0;
    for (size_t i = 0; i < rx->r_n; i++)
        if (r->terms[rx->r_off + i].sp < n)
            in[r->terms[rx->r_off + i].sp] += r->terms[rx->r_off + i].c;
    memcpy(out, in, sizeof out);
    for (size_t i = 0; i < rx->d_n; i++)
        if (r->terms[rx->d_off + i].sp < n)
            out[r->terms[rx->d_off + i].sp] += r->terms[rx->d_off + i].c;
    buf[0] = '\0';
    rxn__format_complex(in, n, species, buf, cap, &len);
    if (len < cap)
        len += (size_t)snprintf(buf + len, cap - len, " -> ");
    rxn__format_complex(out, n, species, buf, cap, &len);
    if (len >= cap)
        return;
    if (rx->sym < 0)
        snprintf(buf + len, cap - len, " @ %.17g", rx->rate);
    else
        snprintf(buf + len, cap - len, rx->part == RXN_POS ? " @ pos(%s)"
                                       : rx->part == RXN_NEG ? " @ neg(%s)"
                                                             : " @ %s",
                 symbols[rx->sym]);
}

long rxn_check_rates(const struct rxn_net *r, const double *sym)
{
    for (size_t k = 0; k < r->n_rx; k++)
        if (!(rxn__rate_of(&r->rx[k], sym) >= 0))
            return (long)k;
    return -1;
}

size_t rxn_n_reactions(const struct rxn_net *r)
{
    return r ? r->n_rx : 0;
}

void rxn_destroy(struct rxn_net *r)
{
    if (!r)
        return;
    free(r->terms);
    free(r->rx);
    free(r);
}
