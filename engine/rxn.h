/*
 * rxn.h: mass-action reaction networks written as text.
 *
 * A reaction is "A + 2 B -> C @ k": reactant and product complexes of species
 * with integer stoichiometric coefficients ("0" is the empty complex), and a
 * rate that is a non-negative number, a symbol (a parameter or a drive such
 * as u1), or pos(symbol) / neg(symbol): max(symbol, 0) and max(-symbol, 0),
 * the construction the CRN literature uses to feed a signed drive to a mass
 * action network ("Y -> 2 Y @ pos(u1)", "Y -> 0 @ neg(u1)"). Their derivative
 * is one-sided at 0 (taken as 0 there). A plain symbol rate must not be
 * negative when the network is evaluated: rxn_check_rates says which one is.
 * The flux of a reaction is rate * prod(amount_i ^ coefficient_i) over its
 * reactants; each species changes by (product coeff - reactant coeff) * flux.
 * From the parsed network this module evaluates the ODE right-hand side, its
 * exact Jacobian with respect to the amounts, and its derivative with respect
 * to the symbols (what a drive-driven gradient needs). Evaluation never
 * allocates; a parsed network is immutable and shareable across threads.
 */
#ifndef QN_RXN_H
#define QN_RXN_H

#include <stddef.h>

/* Where and why a reaction did not parse. */
struct rxn_error {
    size_t reaction; /* index of the offending reaction text */
    size_t pos;      /* 0-based byte offset of the offending token in it */
    char token[32];  /* the offending token ("" at end of input) */
    char msg[160];   /* a sentence: "unknown species 'Z'" */
};

struct rxn_net; /* a parsed network (opaque) */

/*
 * Parses `n_texts` reactions over `species[0..n_species)` whose rates may name
 * `symbols[0..n_symbols)`. All arrays are borrowed. Returns 0 and a new
 * network in *out (free with rxn_destroy), QN_EPARSE with *err filled, or
 * QN_ENOMEM.
 */
int rxn_parse(const char *const *texts, size_t n_texts, const char *const *species,
              size_t n_species, const char *const *symbols, size_t n_symbols,
              struct rxn_net **out, struct rxn_error *err);

/* dydt[n_species] = the mass-action right-hand side at amounts y[n_species]
 * with symbol values sym[n_symbols]. */
void rxn_rhs(const struct rxn_net *r, const double *y, const double *sym, double *dydt);

/* jac[n_species * n_species], row-major: jac[i*n+j] = d dydt_i / d y_j. */
void rxn_jac(const struct rxn_net *r, const double *y, const double *sym, double *jac);

/* jsym[n_species * n_symbols], row-major: d dydt_i / d sym_k. */
void rxn_jac_sym(const struct rxn_net *r, const double *y, const double *sym, double *jsym);

size_t rxn_n_reactions(const struct rxn_net *r);

/*
 * Reaction k in a canonical text (len written into buf of cap bytes, cut
 * when longer): the species of each complex in index order with their
 * merged coefficients ("2 Y", never "Y + Y"), "0" for the empty complex, and
 * the rate as a number with 17 significant digits, a symbol, or pos()/neg()
 * of one. Two texts of the same reaction give the same canonical text.
 * species[n_species] and symbols[n_symbols] are the names rxn_parse saw.
 */
void rxn_format(const struct rxn_net *r, size_t k, const char *const *species,
                const char *const *symbols, char *buf, size_t cap);

/* The index of the first reaction whose rate is negative at symbol values
 * sym[n_symbols] (a plain symbol rate: not a mass-action network), or -1. */
long rxn_check_rates(const struct rxn_net *r, const double *sym);

/* Frees a network; NULL is allowed. */
void rxn_destroy(struct rxn_net *r);

#endif
