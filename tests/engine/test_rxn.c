/*
 * test_rxn.c: reaction-network parsing and mass-action evaluation (engine/rxn.c).
 *
 * The smoothed-ReLU network must give dy/dt = kappa + u1*y - y^2 exactly; the
 * Jacobians of a larger network with second- and third-order reactions are
 * checked against central finite differences; every parse error names its
 * reaction, position and token; random byte strings never crash the parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qn_err.h"
#include "rxn.h"

static void test_relu_network(void **state)
{
    (void)state;
    const char *texts[] = {"0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ u1"};
    const char *species[] = {"Y"};
    const char *symbols[] = {"kappa", "u1"};
    struct rxn_net *r = NULL;
    struct rxn_error err;
    assert_int_equal(rxn_parse(texts, 3, species, 1, symbols, 2, &r, &err), 0);
    assert_int_equal(rxn_n_reactions(r), 3);
    const double ys[] = {0.0, 0.3, 1.7, 12.5};
    const double us[] = {-4.0, -0.5, 0.0, 2.25, 4.0};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 5; j++) {
            double y = ys[i], sym[2] = {0.01, us[j]}, f, jac, js[2];
            rxn_rhs(r, &y, sym, &f);
            /* bit-exact in the reactions' summation order, and within
             * rounding of the textbook order */
            assert_true(f == (sym[0] - y * y) + sym[1] * y);
            assert_true(fabs(f - (sym[0] + sym[1] * y - y * y)) <= 4e-16 * fmax(1.0, y * y));
            rxn_jac(r, &y, sym, &jac);
            assert_true(fabs(jac - (sym[1] - 2 * y)) <= 1e-15 * fmax(1.0, fabs(jac)));
            rxn_jac_sym(r, &y, sym, js);
            assert_true(js[0] == 1.0);
            assert_true(js[1] == y);
        }
    }
    rxn_destroy(r);
}

/* The signed drive as mass action: pos(u1) and neg(u1) split u1 into two
 * non-negative rates, so the network is valid for every u1 and its ODE is
 * still kappa + u1*y - y^2; the plain "@ u1" form is flagged when u1 < 0. */
static void test_signed_drive(void **state)
{
    (void)state;
    const char *texts[] = {"0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ pos(u1)",
                           "Y -> 0 @ neg( u1 )"};
    const char *plain[] = {"0 -> Y @ kappa", "2 Y -> Y @ 1", "Y -> 2 Y @ u1"};
    const char *species[] = {"Y"};
    const char *symbols[] = {"kappa", "u1"};
    struct rxn_net *r = NULL, *rp = NULL;
    struct rxn_error err;
    assert_int_equal(rxn_parse(texts, 4, species, 1, symbols, 2, &r, &err), 0);
    assert_int_equal(rxn_parse(plain, 3, species, 1, symbols, 2, &rp, &err), 0);
    const double us[] = {-4.0, -0.5, 0.0, 2.25};
    for (size_t j = 0; j < 4; j++) {
        double y = 0.7, sym[2] = {0.01, us[j]}, f, jac, js[2];
        rxn_rhs(r, &y, sym, &f);
        assert_true(fabs(f - (0.01 + us[j] * y - y * y)) <= 1e-15);
        rxn_jac(r, &y, sym, &jac);
        assert_true(fabs(jac - (us[j] - 2 * y)) <= 1e-15);
        rxn_jac_sym(r, &y, sym, js);
        assert_true(js[0] == 1.0);
        /* d f / d u1 = y on both sides; at the kink (u1 = 0) one-sided: 0 */
        assert_true(js[1] == (us[j] == 0.0 ? 0.0 : y));
        assert_int_equal(rxn_check_rates(r, sym), -1);
        assert_int_equal(rxn_check_rates(rp, sym), us[j] < 0 ? 2 : -1);
    }
    rxn_destroy(r);
    rxn_destroy(rp);
    /* a symbol named like the functions is still a symbol */
    const char *syms2[] = {"pos", "neg"};
    const char *t2[] = {"Y -> 0 @ pos", "0 -> Y @ neg"};
    assert_int_equal(rxn_parse(t2, 2, species, 1, syms2, 2, &r, &err), 0);
    rxn_destroy(r);
    /* malformed part functions name the token */
    const char *bad[][2] = {{"Y -> 0 @ pos(u1", "expected ')' at end of input"},
                            {"Y -> 0 @ neg()", "expected a symbol, found ')'"},
                            {"Y -> 0 @ pos(zz)", "unknown rate symbol 'zz'"},
                            {"Y -> 0 @ pos(u1) x", "unexpected 'x' after the rate"}};
    for (size_t i = 0; i < 4; i++) {
        const char *one[] = {bad[i][0]};
        r = NULL;
        assert_int_equal(rxn_parse(one, 1, species, 1, symbols, 2, &r, &err), QN_EPARSE);
        assert_null(r);
        if (strcmp(err.msg, bad[i][1]) != 0)
            fail_msg("'%s': got '%s', want '%s'", bad[i][0], err.msg, bad[i][1]);
    }
}

/* A network with 2nd- and 3rd-order reactions, coefficients 2 and 3, a
 * repeated species and "2Y"-style coefficients without a space. */
static const char *big_texts[] = {
    "X1 + Y -> X1 + 2 Y @ k1",
    "2 X1 + Z -> 3Z @ k2",
    "3 Y -> Y + X1 @ 0.25",
    "0 -> X1 @ 1.5e-1",
    "Z -> 0 @ k3",
    "Y + Y + Z -> 2 X1 + Z @ k1",
    "X1 + Z -> X1 + Z @ 7",
};
static const char *big_species[] = {"X1", "Y", "Z"};
static const char *big_symbols[] = {"k1", "k2", "k3", "unused"};

static struct rxn_net *big_net(void)
{
    struct rxn_net *r = NULL;
    struct rxn_error err;
    int rc = rxn_parse(big_texts, 7, big_species, 3, big_symbols, 4, &r, &err);
    if (rc)
        fail_msg("parse failed: reaction %zu pos %zu: %s", err.reaction, err.pos, err.msg);
    return r;
}

/* |a - b| within rel relative to max(|a|, |b|, 1). */
static void assert_close(double a, double b, double rel)
{
    double scale = fmax(1.0, fmax(fabs(a), fabs(b)));
    if (fabs(a - b) > rel * scale)
        fail_msg("%.17g vs %.17g (rel %g)", a, b, fabs(a - b) / scale);
}

static void test_big_rhs_by_hand(void **state)
{
    (void)state;
    struct rxn_net *r = big_net();
    double y[3] = {0.7, 1.3, 0.4}, sym[4] = {0.9, 1.1, 0.6, 42.0}, f[3];
    rxn_rhs(r, y, sym, f);
    double x = y[0], yy = y[1], z = y[2];
    double f1 = 0.9 * x * yy, f2 = 1.1 * x * x * z, f3 = 0.25 * yy * yy * yy;
    double f4 = 0.15, f5 = 0.6 * z, f6 = 0.9 * yy * yy * z;
    assert_close(f[0], -2 * f2 + f3 + f4 + 2 * f6, 1e-14);
    assert_close(f[1], f1 - 2 * f3 - 2 * f6, 1e-14);
    assert_close(f[2], 2 * f2 - f5, 1e-14);
    rxn_destroy(r);
}

static void test_big_jacobian_fd(void **state)
{
    (void)state;
    struct rxn_net *r = big_net();
    const double points[][3] = {{0.7, 1.3, 0.4}, {2.0, 0.1, 3.0}, {0.0, 1.0, 0.5}};
    double sym[4] = {0.9, 1.1, 0.6, 42.0};
    for (size_t p = 0; p < 3; p++) {
        double y[3], jac[9], fp[3], fm[3];
        memcpy(y, points[p], sizeof y);
        rxn_jac(r, y, sym, jac);
        for (size_t j = 0; j < 3; j++) {
            double h = 1e-5 * fmax(1.0, fabs(y[j])), yj = y[j];
            y[j] = yj + h;
            rxn_rhs(r, y, sym, fp);
            y[j] = yj - h;
            rxn_rhs(r, y, sym, fm);
            y[j] = yj;
            for (size_t i = 0; i < 3; i++)
                assert_close(jac[i * 3 + j], (fp[i] - fm[i]) / (2 * h), 1e-6);
        }
    }
    rxn_destroy(r);
}

static void test_big_symbol_derivative_fd(void **state)
{
    (void)state;
    struct rxn_net *r = big_net();
    double y[3] = {0.7, 1.3, 0.4}, sym[4] = {0.9, 1.1, 0.6, 42.0};
    double js[12], fp[3], fm[3];
    rxn_jac_sym(r, y, sym, js);
    for (size_t k = 0; k < 4; k++) {
        double h = 1e-5, sk = sym[k];
        sym[k] = sk + h;
        rxn_rhs(r, y, sym, fp);
        sym[k] = sk - h;
        rxn_rhs(r, y, sym, fm);
        sym[k] = sk;
        for (size_t i = 0; i < 3; i++)
            assert_close(js[i * 4 + k], (fp[i] - fm[i]) / (2 * h), 1e-6);
    }
    for (size_t i = 0; i < 3; i++)
        assert_true(js[i * 4 + 3] == 0.0); /* "unused" is referenced by no rate */
    rxn_destroy(r);
}

static void test_zero_amounts(void **state)
{
    (void)state;
    /* At y = 0 the Jacobian of a first-order term is the rate, with no 0/0. */
    const char *texts[] = {"A -> B @ 2", "2 A -> 0 @ 1"};
    const char *species[] = {"A", "B"};
    struct rxn_net *r = NULL;
    assert_int_equal(rxn_parse(texts, 2, species, 2, NULL, 0, &r, NULL), 0);
    double y[2] = {0.0, 0.0}, jac[4];
    rxn_jac(r, y, NULL, jac);
    assert_true(jac[0] == -2.0 && jac[1] == 0.0 && jac[2] == 2.0 && jac[3] == 0.0);
    rxn_destroy(r);
}

struct bad_case {
    const char *text;
    size_t pos;
    const char *token;
    const char *msg_part;
};

static void test_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"A + Q -> B @ 1", 4, "Q", "unknown species 'Q'"},
        {"A -> B @ kk", 9, "kk", "unknown rate symbol 'kk'"},
        {"A B @ 1", 2, "B", "missing '->'"},
        {"A -> B 1", 7, "1", "missing '@'"},
        {"A -> B", 6, "", "missing '@"},
        {"A -> B @ 1 junk", 11, "junk", "unexpected 'junk'"},
        {"A -> B @", 8, "", "expected a rate"},
        {"A -> B @ -1", 9, "-", "non-negative"},
        {"-> B @ 1", 0, "->", "expected a species"},
        {"A + -> B @ 1", 4, "->", "expected a species"},
        {"0 A -> B @ 1", 0, "0", "positive integer"},
        {"2000 A -> B @ 1", 0, "2000", "too large"},
        {"A -> B @ 1e", 9, "1e", "malformed number"},
        {"A -> B @ 1x", 9, "1x", "malformed number"},
        {"A -> B @ 1e999", 9, "1e999", "out of range"},
        {"A -> B @ k $", 11, "$", "unexpected '$'"},
        {"A -> \xc3\xa9 @ 1", 5, "\\xc3", "expected a species"},
        {"", 0, "", "expected a species"},
    };
    const char *species[] = {"A", "B"};
    const char *symbols[] = {"k"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *texts[] = {"A -> B @ k", cases[i].text};
        struct rxn_net *r = (struct rxn_net *)&r; /* must be reset to NULL */
        struct rxn_error err;
        memset(&err, 0x5a, sizeof err);
        int rc = rxn_parse(texts, 2, species, 2, symbols, 1, &r, &err);
        if (rc != QN_EPARSE)
            fail_msg("case %zu '%s': rc %d", i, cases[i].text, rc);
        assert_null(r);
        assert_int_equal(err.reaction, 1);
        if (err.pos != cases[i].pos || strcmp(err.token, cases[i].token) != 0 ||
            !strstr(err.msg, cases[i].msg_part))
            fail_msg("case %zu '%s': pos %zu token '%s' msg '%s'", i, cases[i].text, err.pos,
                     err.token, err.msg);
    }
}

static void test_merge_and_spacing(void **state)
{
    (void)state;
    /* "Y + Y" is "2 Y", "2Y" is "2 Y", and tabs are whitespace. */
    const char *a[] = {"Y+Y->0@3"}, *b[] = {"\t2Y  ->\t0 @3 "};
    const char *species[] = {"Y"};
    struct rxn_net *ra = NULL, *rb = NULL;
    assert_int_equal(rxn_parse(a, 1, species, 1, NULL, 0, &ra, NULL), 0);
    assert_int_equal(rxn_parse(b, 1, species, 1, NULL, 0, &rb, NULL), 0);
    double y = 1.5, fa, fb;
    rxn_rhs(ra, &y, NULL, &fa);
    rxn_rhs(rb, &y, NULL, &fb);
    assert_true(fa == -2 * 3 * y * y);
    assert_true(fb == fa);
    rxn_destroy(ra);
    rxn_destroy(rb);
    rxn_destroy(NULL);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const char *species[] = {"Y"};
    struct rxn_net *r = NULL;
    assert_int_equal(rxn_parse(NULL, 1, species, 1, NULL, 0, &r, NULL), QN_EINVAL);
    assert_int_equal(rxn_parse(NULL, 0, species, 1, NULL, 0, NULL, NULL), QN_EINVAL);
    assert_int_equal(rxn_n_reactions(NULL), 0);
}

/* Random strings from an alphabet rich in the grammar's characters, and
 * random mutations of valid reactions: parse must return 0 or QN_EPARSE and,
 * on success, evaluate to finite numbers. Run under ASan this is a small fuzz. */
static void test_fuzz(void **state)
{
    (void)state;
    static const char alphabet[] = "AB0129 +->@.eE-k\t$\xff";
    static const char *seeds[] = {"A + 2 B -> 3 A @ 0.5", "0 -> A @ k", "2A->B@1e-3"};
    const char *species[] = {"A", "B"};
    const char *symbols[] = {"k"};
    uint64_t s = 0x9e3779b97f4a7c15u;
    char buf[48];
    for (int it = 0; it < 20000; it++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t len = s % (sizeof buf - 1);
        if (it % 2) {
            strcpy(buf, seeds[(s >> 8) % 3]);
            len = strlen(buf);
            for (int m = 0; m < 3; m++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                buf[(s >> 16) % len] = alphabet[(s >> 32) % (sizeof alphabet - 1)];
            }
        } else {
            for (size_t i = 0; i < len; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                buf[i] = alphabet[(s >> 20) % (sizeof alphabet - 1)];
            }
            buf[len] = '\0';
        }
        const char *texts[] = {buf};
        struct rxn_net *r = NULL;
        struct rxn_error err;
        int rc = rxn_parse(texts, 1, species, 2, symbols, 1, &r, &err);
        assert_true(rc == 0 || rc == QN_EPARSE);
        if (rc == 0) {
            double y[2] = {0.5, 0.25}, sym[1] = {2.0}, f[2], jac[4], js[2];
            rxn_rhs(r, y, sym, f);
            rxn_jac(r, y, sym, jac);
            rxn_jac_sym(r, y, sym, js);
            assert_true(isfinite(f[0]) && isfinite(f[1]));
            rxn_destroy(r);
        } else {
            assert_true(err.pos <= strlen(buf));
            assert_true(strlen(err.token) < sizeof err.token);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu_network),
        cmocka_unit_test(test_signed_drive),
        cmocka_unit_test(test_big_rhs_by_hand),
        cmocka_unit_test(test_big_jacobian_fd),
        cmocka_unit_test(test_big_symbol_derivative_fd),
        cmocka_unit_test(test_zero_amounts),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_merge_and_spacing),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
