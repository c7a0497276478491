/*
 * expr.c: parser, symbolic differentiator, simplifier and bytecode compiler
 * for the right-hand sides of user-defined ODEs (see expr.h).
 *
 * Design. Source text is parsed by recursive descent into a DAG of nodes kept
 * in one growable array. Nodes are hash-consed: building a node that already
 * exists returns the existing index, so equal subtrees are equal indices and
 * the simplifier can see x - x or x + x. Every node is built through "smart
 * constructors" that fold constants and drop neutral elements (x + 0, x * 1,
 * x * 0, 0 / x, x ^ 1, x ^ 0), so parsing and differentiation both produce
 * simplified trees without a separate pass. Children always have smaller
 * indices than their parents, which lets differentiation, reachability and
 * the Ershov numbers used for operand ordering run as plain loops.
 *
 * The DAG (only the nodes reachable from the root) is kept inside the
 * compiled program so that expr_diff can differentiate a program, including
 * a derivative. Evaluation runs a flat array of ops through one switch: the
 * top of the stack lives in a local (the accumulator), constants and variable
 * indices are inline in the ops, a leaf operand of a binary operator is folded
 * into the operator (MULV: acc *= vars[i]), small integer powers become
 * multiplications, and min/max derivatives branch with a compare-and-jump.
 *
 * Trade-offs. Simplifications such as x * 0 -> 0 and 0 / x -> 0 are not
 * IEEE-exact when x is infinite, NaN or zero (they apply to constants too, so
 * "0 * (1/0)" is 0); they are what a symbolic Jacobian needs. The compiled code
 * re-evaluates shared subtrees (no common-subexpression slots), which keeps
 * the evaluator stack-only and allocation-free; programs whose expansion would
 * exceed EXPR__MAX_OPS ops, whose trees are deeper than EXPR__MAX_DEPTH, or
 * that need more than EXPR_MAX_STACK stack slots are refused.
 *
 * Semantics of min and max: min(a, b) is a when a <= b, b when b < a, and NaN
 * when either is NaN (so a diverging state is not hidden); max likewise. Their
 * derivatives are those of the selected branch (a on ties).
 */
#include "expr.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

#define EXPR__NIL UINT32_MAX
#define EXPR__MAX_NEST 200       /* parentheses, calls, unary signs and ^ nested */
#define EXPR__MAX_DEPTH 2000     /* longest path in any tree (bounds recursion) */
#define EXPR__MAX_PARSE_DEPTH 500 /* the same, for trees read from source text */
#define EXPR__MAX_NODES (1u << 20)
#define EXPR__MAX_OPS (1u << 18)
#define EXPR__POWI_MAX 64 /* integer exponents up to this become multiplications */

/* Node kinds of the expression DAG. */
enum expr__kind {
    EK_NUM, /* constant k */
    EK_VAR, /* variable a */
    EK_NEG, EK_EXP, EK_LOG, EK_SQRT, EK_SIN, EK_COS, EK_TANH, /* unary f(a) */
    EK_ADD, EK_SUB, EK_MUL, EK_DIV, EK_POW, EK_MIN, EK_MAX,   /* binary a op b */
    EK_SEL  /* a <= b ? c : d */
};

/* One node of the DAG; children are indices of older nodes. */
struct expr__node {
    uint8_t kind;   /* enum expr__kind */
    uint32_t depth; /* 1 + the depth of the deepest child */
    uint32_t a, b, c, d; /* children (EXPR__NIL when unused); a is the index of EK_VAR */
    double k;       /* the value of EK_NUM, else 0 */
};

/* Opcodes of the stack machine; "acc" is the top of the stack, st[] the rest. */
enum expr__opcode {
    OP_END,
    OP_K, OP_V,                                   /* push acc; acc = k or vars[i] */
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW,       /* acc = pop op acc */
    OP_RSUB, OP_RDIV, OP_RPOW,                    /* acc = acc op pop */
    OP_MIN, OP_MAX,                               /* acc = min/max(pop, acc) */
    OP_ADDK, OP_SUBK, OP_MULK, OP_DIVK, OP_POWK,  /* acc = acc op k */
    OP_KSUB, OP_KDIV, OP_KPOW,                    /* acc = k op acc */
    OP_ADDV, OP_SUBV, OP_MULV, OP_DIVV, OP_POWV,  /* acc = acc op vars[i] */
    OP_VSUB, OP_VDIV, OP_VPOW,                    /* acc = vars[i] op acc */
    OP_NEG, OP_SQR, OP_POWI,                      /* -acc, acc*acc, acc^i */
    OP_EXP, OP_LOG, OP_SQRT, OP_SIN, OP_COS, OP_TANH,
    OP_JNLE, /* c = st[sp-1] <= acc; acc = st[sp-2]; sp -= 2; if !c goto i */
    OP_JMP,  /* goto i */
    /* fused leaf-leaf forms: push acc; acc = vars[i] op vars[j] / vars[i] op k / k op vars[i] */
    OP_VVADD, OP_VVSUB, OP_VVMUL, OP_VVDIV,
    OP_VKADD, OP_VKSUB, OP_VKMUL, OP_VKDIV,
    OP_KVSUB, OP_KVDIV,
    OP_VSQR /* push acc; acc = vars[i] * vars[i] */
};

/* One instruction: 16 bytes, operands inline. */
struct expr__op {
    int32_t code;  /* enum expr__opcode */
    int32_t i;     /* variable index, integer exponent or jump target */
    union {
        double k;  /* constant operand */
        int32_t j; /* second variable index of the OP_VV* forms */
    } u;
};

struct expr {
    struct expr__node *nodes; /* [n_nodes], reachable from the root only; root last */
    uint32_t n_nodes;
    size_t n_names;           /* number of variables vars[] must hold */
    struct expr__op *ops;     /* [n_ops], the last one OP_END */
    uint32_t n_ops;
    uint32_t max_stack;       /* st[] slots the program needs (<= EXPR_MAX_STACK) */
};

/* ---------------------------------------------------------------------- */
/* Scalar semantics shared by constant folding and evaluation.             */

static inline double expr__min(double a, double b)
{
    return a <= b ? a : (b < a ? b : a + b);
}

static inline double expr__max(double a, double b)
{
    return a >= b ? a : (b > a ? b : a + b);
}

/* x^n by repeated squaring; n may be negative. */
static inline double expr__powi(double x, int n)
{
    unsigned m = n < 0 ? (unsigned)(-(long)n) : (unsigned)n;
    double r = 1;
    while (m) {
        if (m & 1)
            r *= x;
        x *= x;
        m >>= 1;
    }
    return n < 0 ? 1 / r : r;
}

/* Nonzero (and *n set) when y is an integer exponent compiled as multiplications. */
static int expr__small_int(double y, int *n)
{
    if (!(y >= -EXPR__POWI_MAX && y <= EXPR__POWI_MAX) || y != floor(y))
        return 0;
    *n = (int)y;
    return 1;
}

static double expr__pow(double x, double y)
{
    int n;
    return expr__small_int(y, &n) ? expr__powi(x, n) : pow(x, y);
}

/* ---------------------------------------------------------------------- */
/* The node builder: a growable, hash-consed node array.                   */

struct expr__build {
    struct expr__node *nodes; /* [cap] */
    uint32_t n, cap;
    uint32_t *hash;           /* [hcap] node indices, EXPR__NIL when empty */
    uint32_t hcap;            /* a power of two, at least 2 * n */
    uint32_t max_depth;       /* deepest tree allowed */
    int status;               /* 0, QN_ENOMEM or QN_ERANGE (too deep or large) */
};

static uint64_t expr__hash_node(const struct expr__node *x)
{
    uint64_t kb;
    memcpy(&kb, &x->k, sizeof kb);
    uint64_t h = x->kind * 0x9E3779B97F4A7C15ull;
    h = (h ^ x->a) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ x->b) * 0x94D049BB133111EBull;
    h = (h ^ x->c) * 0x9E3779B97F4A7C15ull;
    h = (h ^ x->d) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ kb) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

static int expr__same_node(const struct expr__node *x, const struct expr__node *y)
{
    return x->kind == y->kind && x->a == y->a && x->b == y->b && x->c == y->c &&
           x->d == y->d && memcmp(&x->k, &y->k, sizeof x->k) == 0;
}

/* Inserts node index i into the hash table (which has room). */
static void expr__hash_put(struct expr__build *b, uint32_t i)
{
    uint32_t mask = b->hcap - 1;
    uint32_t h = (uint32_t)expr__hash_node(&b->nodes[i]) & mask;
    while (b->hash[h] != EXPR__NIL)
        h = (h + 1) & mask;
    b->hash[h] = i;
}

/* Grows the node array and the hash table so one more node fits. */
static int expr__build_grow(struct expr__build *b)
{
    if (b->n >= EXPR__MAX_NODES)
        return QN_ERANGE;
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? b->cap * 2 : 64;
        struct expr__node *nn = realloc(b->nodes, (size_t)cap * sizeof *nn);
        if (!nn)
            return QN_ENOMEM;
        b->nodes = nn;
        b->cap = cap;
    }
    if ((size_t)(b->n + 1) * 2 > b->hcap) {
        uint32_t hcap = b->hcap ? b->hcap * 2 : 128;
        uint32_t *h = malloc((size_t)hcap * sizeof *h);
        if (!h)
            return QN_ENOMEM;
        memset(h, 0xff, (size_t)hcap * sizeof *h);
        free(b->hash);
        b->hash = h;
        b->hcap = hcap;
        for (uint32_t i = 0; i < b->n; i++)
            expr__hash_put(b, i);
    }
    return 0;
}

static uint32_t expr__child_depth(const struct expr__build *b, uint32_t c)
{
    return c == EXPR__NIL ? 0 : b->nodes[c].depth;
}

/* The index of the node (kind, a, b, c, d, k), created when new; EXPR__NIL on failure. */
static uint32_t expr__mk(struct expr__build *b, int kind, uint32_t x, uint32_t y, uint32_t z,
                         uint32_t w, double k)
{
    if (b->status)
        return EXPR__NIL;
    struct expr__node nd = {(uint8_t)kind, 1, x, y, z, w, k};
    if (kind != EK_VAR) {
        uint32_t cs[4] = {x, y, z, w}, m = 0;
        for (int i = 0; i < 4; i++) {
            uint32_t dc = expr__child_depth(b, cs[i]);
            m = dc > m ? dc : m;
        }
        nd.depth = m + 1;
    }
    if (nd.depth > b->max_depth) {
        b->status = QN_ERANGE;
        return EXPR__NIL;
    }
    if (b->hcap) {
        uint32_t mask = b->hcap - 1;
        for (uint32_t h = (uint32_t)expr__hash_node(&nd) & mask; b->hash[h] != EXPR__NIL;
             h = (h + 1) & mask)
            if (expr__same_node(&b->nodes[b->hash[h]], &nd))
                return b->hash[h];
    }
    int rc = expr__build_grow(b);
    if (rc) {
        b->status = rc;
        return EXPR__NIL;
    }
    b->nodes[b->n] = nd;
    expr__hash_put(b, b->n);
    return b->n++;
}

static void expr__build_close(struct expr__build *b)
{
    free(b->nodes);
    free(b->hash);
}

/* ---------------------------------------------------------------------- */
/* Smart constructors: build simplified nodes.                             */

static uint32_t expr__num(struct expr__build *b, double k)
{
    return expr__mk(b, EK_NUM, EXPR__NIL, EXPR__NIL, EXPR__NIL, EXPR__NIL, k);
}

static uint32_t expr__var(struct expr__build *b, size_t v)
{
    return expr__mk(b, EK_VAR, (uint32_t)v, EXPR__NIL, EXPR__NIL, EXPR__NIL, 0);
}

static int expr__is_num(const struct expr__build *b, uint32_t i)
{
    return b->nodes[i].kind == EK_NUM;
}

static int expr__is_k(const struct expr__build *b, uint32_t i, double k)
{
    return b->nodes[i].kind == EK_NUM && b->nodes[i].k == k;
}

static double expr__fold1(int kind, double x)
{
    switch (kind) {
    case EK_NEG: return -x;
    case EK_EXP: return exp(x);
    case EK_LOG: return log(x);
    case EK_SQRT: return sqrt(x);
    case EK_SIN: return sin(x);
    case EK_COS: return cos(x);
    default: return tanh(x);
    }
}

static double expr__fold2(int kind, double x, double y)
{
    switch (kind) {
    case EK_ADD: return x + y;
    case EK_SUB: return x - y;
    case EK_MUL: return x * y;
    case EK_DIV: return x / y;
    case EK_POW: return expr__pow(x, y);
    case EK_MIN: return expr__min(x, y);
    default: return expr__max(x, y);
    }
}

static uint32_t expr__un(struct expr__build *b, int kind, uint32_t x);
static uint32_t expr__bin(struct expr__build *b, int kind, uint32_t x, uint32_t y);

static uint32_t expr__neg(struct expr__build *b, uint32_t x)
{
    const struct expr__node *n = &b->nodes[x];
    if (n->kind == EK_NEG)
        return n->a;
    if (n->kind == EK_SUB)
        return expr__bin(b, EK_SUB, n->b, n->a);
    return expr__mk(b, EK_NEG, x, EXPR__NIL, EXPR__NIL, EXPR__NIL, 0);
}

/* f(x) for a unary kind, folded when x is constant. */
static uint32_t expr__un(struct expr__build *b, int kind, uint32_t x)
{
    if (x == EXPR__NIL)
        return EXPR__NIL;
    if (expr__is_num(b, x))
        return expr__num(b, expr__fold1(kind, b->nodes[x].k));
    if (kind == EK_NEG)
        return expr__neg(b, x);
    return expr__mk(b, kind, x, EXPR__NIL, EXPR__NIL, EXPR__NIL, 0);
}

static uint32_t expr__add(struct expr__build *b, uint32_t x, uint32_t y)
{
    if (expr__is_k(b, x, 0))
        return y;
    if (expr__is_k(b, y, 0))
        return x;
    if (x == y)
        return expr__bin(b, EK_MUL, expr__num(b, 2), x);
    if (b->nodes[y].kind == EK_NEG)
        return expr__bin(b, EK_SUB, x, b->nodes[y].a);
    if (b->nodes[x].kind == EK_NEG)
        return expr__bin(b, EK_SUB, y, b->nodes[x].a);
    return expr__mk(b, EK_ADD, x, y, EXPR__NIL, EXPR__NIL, 0);
}

static uint32_t expr__sub(struct expr__build *b, uint32_t x, uint32_t y)
{
    if (expr__is_k(b, y, 0))
        return x;
    if (expr__is_k(b, x, 0))
        return expr__neg(b, y);
    if (x == y)
        return expr__num(b, 0);
    if (b->nodes[y].kind == EK_NEG)
        return expr__add(b, x, b->nodes[y].a);
    return expr__mk(b, EK_SUB, x, y, EXPR__NIL, EXPR__NIL, 0);
}

static uint32_t expr__mul(struct expr__build *b, uint32_t x, uint32_t y)
{
    if (expr__is_num(b, y) && !expr__is_num(b, x)) {
        uint32_t t = x; /* constants go left */
        x = y;
        y = t;
    }
    if (expr__is_k(b, x, 0))
        return x;
    if (expr__is_k(b, x, 1))
        return y;
    if (expr__is_k(b, x, -1))
        return expr__neg(b, y);
    struct expr__node nx = b->nodes[x], ny = b->nodes[y]; /* copies: mk may move nodes */
    if (nx.kind == EK_NUM && ny.kind == EK_MUL && expr__is_num(b, ny.a))
        return expr__bin(b, EK_MUL, expr__num(b, nx.k * b->nodes[ny.a].k), ny.b);
    if (nx.kind == EK_NUM && ny.kind == EK_NEG)
        return expr__bin(b, EK_MUL, expr__num(b, -nx.k), ny.a);
    if (nx.kind == EK_NEG && ny.kind == EK_NEG)
        return expr__bin(b, EK_MUL, nx.a, ny.a);
    if (x == y)
        return expr__bin(b, EK_POW, x, expr__num(b, 2));
    return expr__mk(b, EK_MUL, x, y, EXPR__NIL, EXPR__NIL, 0);
}

static uint32_t expr__div(struct expr__build *b, uint32_t x, uint32_t y)
{
    if (expr__is_k(b, x, 0) || expr__is_k(b, y, 1))
        return x;
    if (expr__is_k(b, y, -1))
        return expr__neg(b, x);
    return expr__mk(b, EK_DIV, x, y, EXPR__NIL, EXPR__NIL, 0);
}

static uint32_t expr__powe(struct expr__build *b, uint32_t x, uint32_t y)
{
    if (expr__is_k(b, y, 0) || expr__is_k(b, x, 1))
        return expr__num(b, 1);
    if (expr__is_k(b, y, 1))
        return x;
    return expr__mk(b, EK_POW, x, y, EXPR__NIL, EXPR__NIL, 0);
}

/* x op y for a binary kind, simplified. */
static uint32_t expr__bin(struct expr__build *b, int kind, uint32_t x, uint32_t y)
{
    if (x == EXPR__NIL || y == EXPR__NIL)
        return EXPR__NIL;
    /* A symbolic zero wins even over inf or NaN constants: the derivative of
     * c^y by x is 0 * log(c) * ..., which must stay 0 when c is 0. */
    if (kind == EK_MUL && (expr__is_k(b, x, 0) || expr__is_k(b, y, 0)))
        return expr__num(b, 0);
    if (kind == EK_DIV && expr__is_k(b, x, 0))
        return x;
    if (expr__is_num(b, x) && expr__is_num(b, y))
        return expr__num(b, expr__fold2(kind, b->nodes[x].k, b->nodes[y].k));
    switch (kind) {
    case EK_ADD: return expr__add(b, x, y);
    case EK_SUB: return expr__sub(b, x, y);
    case EK_MUL: return expr__mul(b, x, y);
    case EK_DIV: return expr__div(b, x, y);
    case EK_POW: return expr__powe(b, x, y);
    default:
        if (x == y)
            return x;
        return expr__mk(b, kind, x, y, EXPR__NIL, EXPR__NIL, 0);
    }
}

/* x <= y ? t : f, simplified. */
static uint32_t expr__sel(struct expr__build *b, uint32_t x, uint32_t y, uint32_t t, uint32_t f)
{
    if (x == EXPR__NIL || y == EXPR__NIL || t == EXPR__NIL || f == EXPR__NIL)
        return EXPR__NIL;
    if (t == f)
        return t;
    if (expr__is_num(b, x) && expr__is_num(b, y))
        return b->nodes[x].k <= b->nodes[y].k ? t : f;
    return expr__mk(b, EK_SEL, x, y, t, f, 0);
}

/* ---------------------------------------------------------------------- */
/* The parser.                                                             */

enum expr__tok { T_END, T_NUM, T_NAME, T_OP, T_BAD };

struct expr__parser {
    const char *src;
    size_t pos;                /* start of the current token */
    size_t len;                /* its length in bytes */
    int tok;                   /* enum expr__tok */
    double num;                /* value of a T_NUM */
    int nest;                  /* current nesting */
    const char *const *names;  /* [n_names], borrowed */
    size_t n_names;
    struct expr__build *b;
    struct expr_error *err;
    int status;                /* 0, QN_EPARSE or QN_ENOMEM */
};

static int expr__is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int expr__is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of the number syntax at s: digits [. digits] [e [+-] digits]. */
static size_t expr__scan_number(const char *s)
{
    size_t i = 0;
    while (expr__is_digit(s[i]))
        i++;
    if (s[i] == '.') {
        i++;
        while (expr__is_digit(s[i]))
            i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        size_t j = i + 1;
        if (s[j] == '+' || s[j] == '-')
            j++;
        if (expr__is_digit(s[j])) {
            while (expr__is_digit(s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* Writes the current token, printable and at most 31 bytes, into out[32]. */
static void expr__token_text(const struct expr__parser *p, char out[32])
{
    size_t o = 0;
    for (size_t i = 0; i < p->len && o < 31; i++) {
        unsigned char c = (unsigned char)p->src[p->pos + i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out[o++] = (char)c;
        } else {
            if (o + 4 > 31)
                break;
            snprintf(out + o, 5, "\\x%02x", c);
            o += 4;
        }
    }
    out[o] = '\0';
}

/* Records a parse error at the current token (err->pos, err->token); the
 * message quotes the token when `quote` is set. Positions stay out of the
 * message: callers print err->pos themselves. */
static void expr__fail(struct expr__parser *p, int status, const char *what, int quote)
{
    if (p->status)
        return;
    p->status = status;
    if (!p->err)
        return;
    p->err->pos = p->pos;
    expr__token_text(p, p->err->token);
    if (status == QN_ENOMEM)
        snprintf(p->err->msg, sizeof p->err->msg, "out of memory");
    else if (quote)
        snprintf(p->err->msg, sizeof p->err->msg, "%s '%s'", what, p->err->token);
    else
        snprintf(p->err->msg, sizeof p->err->msg, "%s", what);
}

/* Reports the builder's failure (out of memory, too deep, too large). */
static void expr__fail_build(struct expr__parser *p)
{
    if (p->b->status == QN_ENOMEM)
        expr__fail(p, QN_ENOMEM, "out of memory", 0);
    else
        expr__fail(p, QN_EPARSE, "expression too deep or too large", 0);
}

/* Reads the next token into p->tok/pos/len/num. */
static void expr__next(struct expr__parser *p)
{
    const char *s = p->src;
    size_t i = p->pos + p->len;
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    p->pos = i;
    char c = s[i];
    if (c == '\0') {
        p->tok = T_END;
        p->len = 0;
    } else if (expr__is_digit(c) || (c == '.' && expr__is_digit(s[i + 1]))) {
        p->tok = T_NUM;
        p->len = expr__scan_number(s + i);
    } else if (expr__is_alpha(c)) {
        size_t n = 1;
        while (expr__is_alpha(s[i + n]) || expr__is_digit(s[i + n]))
            n++;
        p->tok = T_NAME;
        p->len = n;
    } else {
        p->tok = strchr("+-*/^(),", c) ? T_OP : T_BAD;
        p->len = 1;
    }
}

static int expr__is_op(const struct expr__parser *p, char c)
{
    return p->tok == T_OP && p->src[p->pos] == c;
}

static void expr__unexpected(struct expr__parser *p)
{
    if (p->tok == T_END)
        expr__fail(p, QN_EPARSE, "unexpected end of input", 0);
    else if (p->tok == T_BAD)
        expr__fail(p, QN_EPARSE, "invalid character", 1);
    else
        expr__fail(p, QN_EPARSE, "unexpected token", 1);
}

static int expr__name_is(const struct expr__parser *p, const char *name)
{
    return name && strlen(name) == p->len && memcmp(name, p->src + p->pos, p->len) == 0;
}

/* Bumps the nesting depth; 0 when it is over the limit (error recorded). */
static int expr__enter(struct expr__parser *p)
{
    if (++p->nest > EXPR__MAX_NEST) {
        expr__fail(p, QN_EPARSE, "expression nested more than 200 levels deep", 0);
        return 0;
    }
    return 1;
}

static uint32_t expr__parse_expr(struct expr__parser *p);
static uint32_t expr__parse_unary(struct expr__parser *p);

/* Checks a builder result; NIL becomes a recorded error. */
static uint32_t expr__built(struct expr__parser *p, uint32_t x)
{
    if (x == EXPR__NIL && !p->status)
        expr__fail_build(p);
    return p->status ? EXPR__NIL : x;
}

struct expr__func {
    const char *name;
    int kind;
    int arity;
};

static const struct expr__func expr__funcs[] = {
    {"exp", EK_EXP, 1},  {"log", EK_LOG, 1}, {"sqrt", EK_SQRT, 1},
    {"sin", EK_SIN, 1},  {"cos", EK_COS, 1}, {"tanh", EK_TANH, 1},
    {"pow", EK_POW, 2},  {"min", EK_MIN, 2}, {"max", EK_MAX, 2},
};

/* Parses "( args )" of function f whose name token is at name_pos/name_len. */
static uint32_t expr__parse_call(struct expr__parser *p, const struct expr__func *f,
                                 size_t name_pos, size_t name_len)
{
    uint32_t args[2] = {EXPR__NIL, EXPR__NIL};
    int n = 0;
    expr__next(p); /* '(' */
    if (!expr__is_op(p, ')')) {
        for (;;) {
            uint32_t a = expr__parse_expr(p);
            if (p->status)
                return EXPR__NIL;
            if (n < 2)
                args[n] = a;
            n++;
            if (!expr__is_op(p, ','))
                break;
            expr__next(p);
        }
    }
    if (!expr__is_op(p, ')')) {
        expr__fail(p, QN_EPARSE, "expected ')' or ','", 0);
        return EXPR__NIL;
    }
    if (n != f->arity) {
        char what[64];
        snprintf(what, sizeof what, "function '%s' takes %d argument%s", f->name, f->arity,
                 f->arity == 1 ? "" : "s");
        p->pos = name_pos;
        p->len = name_len;
        expr__fail(p, QN_EPARSE, what, 0);
        return EXPR__NIL;
    }
    expr__next(p);
    if (f->arity == 1)
        return expr__built(p, expr__un(p->b, f->kind, args[0]));
    return expr__built(p, expr__bin(p->b, f->kind, args[0], args[1]));
}

/* name: a variable, or a function call when followed by '('. */
static uint32_t expr__parse_name(struct expr__parser *p)
{
    size_t pos = p->pos, len = p->len;
    struct expr__parser save = *p;
    expr__next(p);
    if (expr__is_op(p, '(')) {
        for (size_t i = 0; i < sizeof expr__funcs / sizeof *expr__funcs; i++)
            if (len == strlen(expr__funcs[i].name) &&
                memcmp(p->src + pos, expr__funcs[i].name, len) == 0)
                return expr__parse_call(p, &expr__funcs[i], pos, len);
        *p = save;
        expr__fail(p, QN_EPARSE, "unknown function", 1);
        return EXPR__NIL;
    }
    *p = save;
    for (size_t i = 0; i < p->n_names; i++) {
        if (expr__name_is(p, p->names[i])) {
            expr__next(p);
            return expr__built(p, expr__var(p->b, i));
        }
    }
    for (size_t i = 0; i < sizeof expr__funcs / sizeof *expr__funcs; i++)
        if (expr__name_is(p, expr__funcs[i].name)) {
            expr__fail(p, QN_EPARSE, "expected '(' after function", 1);
            return EXPR__NIL;
        }
    expr__fail(p, QN_EPARSE, "unknown symbol", 1);
    return EXPR__NIL;
}

/* Converts the current T_NUM token; overflow to infinity is an error. */
static uint32_t expr__parse_number(struct expr__parser *p)
{
    char buf[64], *end;
    char *heap = NULL;
    char *s = buf;
    if (p->len >= sizeof buf) {
        heap = malloc(p->len + 1);
        if (!heap) {
            expr__fail(p, QN_ENOMEM, "", 0);
            return EXPR__NIL;
        }
        s = heap;
    }
    memcpy(s, p->src + p->pos, p->len);
    s[p->len] = '\0';
    double v = strtod(s, &end);
    int ok = (size_t)(end - s) == p->len && isfinite(v);
    free(heap);
    if (!ok) {
        expr__fail(p, QN_EPARSE, "number out of range", 1);
        return EXPR__NIL;
    }
    expr__next(p);
    return expr__built(p, expr__num(p->b, v));
}

/* primary := number | name | name '(' args ')' | '(' expr ')' */
static uint32_t expr__parse_primary(struct expr__parser *p)
{
    if (p->tok == T_NUM)
        return expr__parse_number(p);
    if (p->tok == T_NAME)
        return expr__parse_name(p);
    if (expr__is_op(p, '(')) {
        expr__next(p);
        uint32_t x = expr__parse_expr(p);
        if (p->status)
            return EXPR__NIL;
        if (!expr__is_op(p, ')')) {
            expr__fail(p, QN_EPARSE, "expected ')'", 0);
            return EXPR__NIL;
        }
        expr__next(p);
        return x;
    }
    expr__unexpected(p);
    return EXPR__NIL;
}

/* power := primary [ '^' unary ]   (right associative) */
static uint32_t expr__parse_power(struct expr__parser *p)
{
    uint32_t x = expr__parse_primary(p);
    if (p->status || !expr__is_op(p, '^'))
        return x;
    expr__next(p);
    uint32_t y = expr__parse_unary(p);
    if (p->status)
        return EXPR__NIL;
    return expr__built(p, expr__bin(p->b, EK_POW, x, y));
}

/* unary := ('-' | '+') unary | power */
static uint32_t expr__parse_unary(struct expr__parser *p)
{
    if (!expr__enter(p))
        return EXPR__NIL;
    uint32_t x;
    if (expr__is_op(p, '-') || expr__is_op(p, '+')) {
        int neg = expr__is_op(p, '-');
        expr__next(p);
        x = expr__parse_unary(p);
        if (!p->status && neg)
            x = expr__built(p, expr__un(p->b, EK_NEG, x));
    } else {
        x = expr__parse_power(p);
    }
    p->nest--;
    return p->status ? EXPR__NIL : x;
}

/* A left-associative chain: operand ((op1 | op2) operand)*. */
static uint32_t expr__parse_chain(struct expr__parser *p, char op1, int k1, char op2, int k2,
                                  uint32_t (*operand)(struct expr__parser *))
{
    uint32_t x = operand(p);
    while (!p->status && (expr__is_op(p, op1) || expr__is_op(p, op2))) {
        int kind = expr__is_op(p, op1) ? k1 : k2;
        expr__next(p);
        uint32_t y = operand(p);
        if (p->status)
            break;
        x = expr__built(p, expr__bin(p->b, kind, x, y));
    }
    return p->status ? EXPR__NIL : x;
}

static uint32_t expr__parse_term(struct expr__parser *p)
{
    return expr__parse_chain(p, '*', EK_MUL, '/', EK_DIV, expr__parse_unary);
}

/* expr := term (('+' | '-') term)* */
static uint32_t expr__parse_expr(struct expr__parser *p)
{
    return expr__parse_chain(p, '+', EK_ADD, '-', EK_SUB, expr__parse_term);
}

/* ---------------------------------------------------------------------- */
/* Compilation to bytecode.                                                */

struct expr__emit {
    const struct expr__node *nodes; /* the compacted DAG */
    const uint32_t *need;           /* [n_nodes] Ershov numbers */
    struct expr__op *ops;           /* growable */
    uint32_t n, cap;
    uint32_t sp, max_sp;            /* simulated stack depth */
    int status;
};

static int expr__leaf(const struct expr__node *n)
{
    return n->kind == EK_NUM || n->kind == EK_VAR;
}

static void expr__op(struct expr__emit *m, int code, int32_t i, double k)
{
    if (m->status)
        return;
    if (m->n == m->cap) {
        if (m->cap >= EXPR__MAX_OPS) {
            m->status = QN_ERANGE;
            return;
        }
        uint32_t cap = m->cap ? m->cap * 2 : 32;
        struct expr__op *o = realloc(m->ops, (size_t)cap * sizeof *o);
        if (!o) {
            m->status = QN_ENOMEM;
            return;
        }
        m->ops = o;
        m->cap = cap;
    }
    m->ops[m->n++] = (struct expr__op){code, i, {.k = k}};
}

static void expr__push(struct expr__emit *m)
{
    if (++m->sp > m->max_sp)
        m->max_sp = m->sp;
}

/* Emits a leaf-operand op: base is the K form, the V form is base + OP_ADDV - OP_ADDK. */
static void expr__op_leaf(struct expr__emit *m, int kcode, const struct expr__node *leaf)
{
    if (leaf->kind == EK_NUM)
        expr__op(m, kcode, 0, leaf->k);
    else
        expr__op(m, kcode + (OP_ADDV - OP_ADDK), (int32_t)leaf->a, 0);
}

static void expr__emit_node(struct expr__emit *m, uint32_t i);

/* Ops of a binary kind: general, reversed, leaf right (K form), leaf left (K form). */
static const int expr__binops[][4] = {
    [EK_ADD] = {OP_ADD, OP_ADD, OP_ADDK, OP_ADDK},
    [EK_SUB] = {OP_SUB, OP_RSUB, OP_SUBK, OP_KSUB},
    [EK_MUL] = {OP_MUL, OP_MUL, OP_MULK, OP_MULK},
    [EK_DIV] = {OP_DIV, OP_RDIV, OP_DIVK, OP_KDIV},
    [EK_POW] = {OP_POW, OP_RPOW, OP_POWK, OP_KPOW},
};

static void expr__emit_pow_const(struct expr__emit *m, const struct expr__node *x, double k)
{
    int n;
    if (x->kind == EK_VAR && k == 2) {
        expr__push(m);
        expr__op(m, OP_VSQR, (int32_t)x->a, 0);
        return;
    }
    expr__emit_node(m, (uint32_t)(x - m->nodes));
    if (k == 2)
        expr__op(m, OP_SQR, 0, 0);
    else if (expr__small_int(k, &n))
        expr__op(m, OP_POWI, n, 0);
    else
        expr__op(m, OP_POWK, 0, k);
}

/* Emits x op y for two leaves (not both constants) as one fused op; 0 when there is none. */
static int expr__emit_fused(struct expr__emit *m, int kind, const struct expr__node *x,
                            const struct expr__node *y)
{
    static const int vv[] = {[EK_ADD] = OP_VVADD, [EK_SUB] = OP_VVSUB, [EK_MUL] = OP_VVMUL,
                             [EK_DIV] = OP_VVDIV};
    static const int vk[] = {[EK_ADD] = OP_VKADD, [EK_SUB] = OP_VKSUB, [EK_MUL] = OP_VKMUL,
                             [EK_DIV] = OP_VKDIV};
    static const int kv[] = {[EK_ADD] = OP_VKADD, [EK_SUB] = OP_KVSUB, [EK_MUL] = OP_VKMUL,
                             [EK_DIV] = OP_KVDIV};
    if (kind > EK_DIV || !expr__leaf(x) || !expr__leaf(y))
        return 0;
    expr__push(m);
    if (x->kind == EK_VAR && y->kind == EK_VAR) {
        expr__op(m, vv[kind], (int32_t)x->a, 0);
        if (!m->status)
            m->ops[m->n - 1].u.j = (int32_t)y->a;
    } else if (x->kind == EK_VAR) {
        expr__op(m, vk[kind], (int32_t)x->a, y->k);
    } else {
        expr__op(m, kv[kind], (int32_t)y->a, x->k);
    }
    return 1;
}

static void expr__emit_bin(struct expr__emit *m, const struct expr__node *n)
{
    const struct expr__node *x = &m->nodes[n->a], *y = &m->nodes[n->b];
    if (n->kind == EK_POW && y->kind == EK_NUM) {
        expr__emit_pow_const(m, x, y->k);
        return;
    }
    if (n->kind == EK_MIN || n->kind == EK_MAX) { /* commutative: deeper operand first */
        int swap = m->need[n->b] > m->need[n->a];
        expr__emit_node(m, swap ? n->b : n->a);
        expr__emit_node(m, swap ? n->a : n->b);
        expr__op(m, n->kind == EK_MIN ? OP_MIN : OP_MAX, 0, 0);
        m->sp--;
        return;
    }
    if (expr__emit_fused(m, n->kind, x, y))
        return;
    const int *ops = expr__binops[n->kind];
    if (expr__leaf(y)) {
        expr__emit_node(m, n->a);
        expr__op_leaf(m, ops[2], y);
    } else if (expr__leaf(x)) {
        expr__emit_node(m, n->b);
        expr__op_leaf(m, ops[3], x);
    } else {
        int swap = m->need[n->b] > m->need[n->a];
        expr__emit_node(m, swap ? n->b : n->a);
        expr__emit_node(m, swap ? n->a : n->b);
        expr__op(m, ops[swap], 0, 0);
        m->sp--;
    }
}

/* a <= b ? c : d as compare-and-jump; only the taken branch runs. */
static void expr__emit_sel(struct expr__emit *m, const struct expr__node *n)
{
    expr__emit_node(m, n->a);
    expr__emit_node(m, n->b);
    uint32_t jnle = m->n;
    expr__op(m, OP_JNLE, 0, 0);
    m->sp -= 2;
    uint32_t sp = m->sp;
    expr__emit_node(m, n->c);
    uint32_t jmp = m->n;
    expr__op(m, OP_JMP, 0, 0);
    if (m->status)
        return;
    m->ops[jnle].i = (int32_t)m->n;
    m->sp = sp;
    expr__emit_node(m, n->d);
    if (!m->status)
        m->ops[jmp].i = (int32_t)m->n;
}

static const int expr__unops[] = {
    [EK_NEG] = OP_NEG, [EK_EXP] = OP_EXP, [EK_LOG] = OP_LOG, [EK_SQRT] = OP_SQRT,
    [EK_SIN] = OP_SIN, [EK_COS] = OP_COS, [EK_TANH] = OP_TANH,
};

/* Emits code leaving node i in acc (the previous acc pushed). */
static void expr__emit_node(struct expr__emit *m, uint32_t i)
{
    const struct expr__node *n = &m->nodes[i];
    if (m->status)
        return;
    switch (n->kind) {
    case EK_NUM:
        expr__push(m);
        expr__op(m, OP_K, 0, n->k);
        break;
    case EK_VAR:
        expr__push(m);
        expr__op(m, OP_V, (int32_t)n->a, 0);
        break;
    case EK_SEL: expr__emit_sel(m, n); break;
    default:
        if (n->kind <= EK_TANH) {
            expr__emit_node(m, n->a);
            expr__op(m, expr__unops[n->kind], 0, 0);
        } else {
            expr__emit_bin(m, n);
        }
    }
}

/* Ershov numbers: stack needed by each node, for ordering commutative operands. */
static uint32_t *expr__needs(const struct expr__node *nodes, uint32_t n_nodes)
{
    uint32_t *need = malloc((size_t)n_nodes * sizeof *need);
    if (!need)
        return NULL;
    for (uint32_t i = 0; i < n_nodes; i++) {
        const struct expr__node *n = &nodes[i];
        uint32_t r = 1;
        if (n->kind == EK_SEL) {
            uint32_t l = need[n->a] > need[n->b] ? need[n->a] : need[n->b] + 1;
            r = need[n->c] > need[n->d] ? need[n->c] : need[n->d];
            r = l > r ? l : r;
        } else if (n->kind >= EK_ADD) {
            uint32_t l = need[n->a], q = need[n->b];
            r = l == q ? l + 1 : (l > q ? l : q);
        } else if (n->kind > EK_VAR) {
            r = need[n->a];
        }
        need[i] = r;
    }
    return need;
}

/* Fills e->ops from e->nodes. Returns 0, QN_ENOMEM or QN_ERANGE. */
static int expr__compile_ops(struct expr *e)
{
    struct expr__emit m = {.nodes = e->nodes};
    uint32_t *need = expr__needs(e->nodes, e->n_nodes);
    if (!need)
        return QN_ENOMEM;
    m.need = need;
    expr__emit_node(&m, e->n_nodes - 1);
    expr__op(&m, OP_END, 0, 0);
    free(need);
    if (!m.status && m.max_sp > EXPR_MAX_STACK)
        m.status = QN_ERANGE;
    if (m.status) {
        free(m.ops);
        return m.status;
    }
    e->ops = m.ops;
    e->n_ops = m.n;
    e->max_stack = m.max_sp;
    return 0;
}

/* Makes a program from the builder's nodes reachable from root: 0, QN_ENOMEM or QN_ERANGE. */
static int expr__finish(const struct expr__build *b, uint32_t root, size_t n_names,
                        struct expr **out)
{
    int rc = QN_ENOMEM;
    uint32_t *map = malloc((size_t)b->n * sizeof *map);
    struct expr *e = calloc(1, sizeof *e);
    if (!map || !e)
        goto fail;
    memset(map, 0, (size_t)b->n * sizeof *map);
    map[root] = 1;
    for (uint32_t i = root + 1; i-- > 0;) {
        if (!map[i])
            continue;
        const struct expr__node *n = &b->nodes[i];
        uint32_t cs[4] = {n->a, n->b, n->c, n->d};
        for (int j = 0; j < 4; j++)
            if (n->kind != EK_VAR && cs[j] != EXPR__NIL)
                map[cs[j]] = 1;
    }
    uint32_t cnt = 0;
    for (uint32_t i = 0; i <= root; i++)
        map[i] = map[i] ? cnt++ : EXPR__NIL;
    e->nodes = malloc((size_t)cnt * sizeof *e->nodes);
    if (!e->nodes)
        goto fail;
    for (uint32_t i = 0; i <= root; i++) {
        if (map[i] == EXPR__NIL)
            continue;
        struct expr__node n = b->nodes[i];
        if (n.kind != EK_VAR) {
            uint32_t *cs[4] = {&n.a, &n.b, &n.c, &n.d};
            for (int j = 0; j < 4; j++)
                if (*cs[j] != EXPR__NIL)
                    *cs[j] = map[*cs[j]];
        }
        e->nodes[map[i]] = n;
    }
    e->n_nodes = cnt;
    e->n_names = n_names;
    rc = expr__compile_ops(e);
    if (rc)
        goto fail;
    free(map);
    *out = e;
    return 0;
fail:
    free(map);
    expr_destroy(e);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Public API.                                                             */

static void expr__set_error(struct expr_error *err, size_t pos, const char *msg)
{
    if (!err)
        return;
    err->pos = pos;
    err->token[0] = '\0';
    snprintf(err->msg, sizeof err->msg, "%s", msg);
}

int expr_compile(const char *src, const char *const *names, size_t n_names,
                 struct expr **out, struct expr_error *err)
{
    if (err)
        expr__set_error(err, 0, "");
    if (!src || !out || (n_names && !names) || n_names >= EXPR__NIL) {
        expr__set_error(err, 0, "invalid arguments");
        return QN_EINVAL;
    }
    *out = NULL;
    struct expr__build b = {.max_depth = EXPR__MAX_PARSE_DEPTH};
    struct expr__parser p = {.src = src, .names = names, .n_names = n_names, .b = &b, .err = err};
    expr__next(&p);
    uint32_t root = expr__parse_expr(&p);
    if (!p.status && p.tok != T_END)
        expr__unexpected(&p);
    int rc = p.status;
    if (!rc) {
        rc = expr__finish(&b, root, n_names, out);
        if (rc == QN_ERANGE) {
            expr__set_error(err, 0, "expression needs more than 64 stack slots or is too large");
            rc = QN_EPARSE;
        } else if (rc) {
            expr__set_error(err, 0, "out of memory");
        }
    }
    expr__build_close(&b);
    return rc;
}

/* Adds the derivative of node i (children's derivatives in d[]) to the builder. */
static uint32_t expr__diff_node(struct expr__build *b, uint32_t i, const uint32_t *d,
                                size_t var)
{
    const struct expr__node n = b->nodes[i];
    uint32_t a = n.a, y = n.b, da = EXPR__NIL, db = EXPR__NIL;
    if (n.kind > EK_VAR)
        da = d[a];
    if (n.kind >= EK_ADD && n.kind <= EK_MAX)
        db = d[y];
    switch (n.kind) {
    case EK_NUM: return expr__num(b, 0);
    case EK_VAR: return expr__num(b, n.a == var ? 1 : 0);
    case EK_NEG: return expr__un(b, EK_NEG, da);
    case EK_EXP: return expr__bin(b, EK_MUL, i, da);
    case EK_LOG: return expr__bin(b, EK_DIV, da, a);
    case EK_SQRT: return expr__bin(b, EK_DIV, da, expr__bin(b, EK_MUL, expr__num(b, 2), i));
    case EK_SIN: return expr__bin(b, EK_MUL, expr__un(b, EK_COS, a), da);
    case EK_COS: return expr__un(b, EK_NEG, expr__bin(b, EK_MUL, expr__un(b, EK_SIN, a), da));
    case EK_TANH: {
        uint32_t t2 = expr__bin(b, EK_POW, i, expr__num(b, 2));
        return expr__bin(b, EK_MUL, expr__bin(b, EK_SUB, expr__num(b, 1), t2), da);
    }
    case EK_ADD: return expr__bin(b, EK_ADD, da, db);
    case EK_SUB: return expr__bin(b, EK_SUB, da, db);
    case EK_MUL:
        return expr__bin(b, EK_ADD, expr__bin(b, EK_MUL, da, y), expr__bin(b, EK_MUL, a, db));
    case EK_DIV:
        if (expr__is_k(b, db, 0))
            return expr__bin(b, EK_DIV, da, y);
        return expr__bin(b, EK_DIV,
                         expr__bin(b, EK_SUB, expr__bin(b, EK_MUL, da, y),
                                   expr__bin(b, EK_MUL, a, db)),
                         expr__bin(b, EK_POW, y, expr__num(b, 2)));
    case EK_POW:
        if (expr__is_num(b, y)) { /* n * a^(n-1) * a' */
            double k = b->nodes[y].k;
            uint32_t p = expr__bin(b, EK_POW, a, expr__num(b, k - 1));
            return expr__bin(b, EK_MUL, expr__bin(b, EK_MUL, y, p), da);
        } else if (expr__is_k(b, a, 0)) { /* 0^b is 0, 1 or inf: flat where finite */
            return expr__num(b, 0);
        } else { /* a^b * (b' log a + b a' / a) */
            uint32_t t1 = expr__bin(b, EK_MUL, db, expr__un(b, EK_LOG, a));
            uint32_t t2 = expr__bin(b, EK_DIV, expr__bin(b, EK_MUL, y, da), a);
            return expr__bin(b, EK_MUL, i, expr__bin(b, EK_ADD, t1, t2));
        }
    case EK_MIN: return expr__sel(b, a, y, da, db);
    case EK_MAX: return expr__sel(b, y, a, da, db);
    default: return expr__sel(b, a, y, d[n.c], d[n.d]);
    }
}

int expr_diff(const struct expr *e, size_t var, struct expr **out)
{
    if (!out)
        return QN_EINVAL;
    *out = NULL;
    if (!e || var >= e->n_names)
        return QN_EINVAL;
    struct expr__build b = {.max_depth = EXPR__MAX_DEPTH};
    int rc = QN_ENOMEM;
    uint32_t *d = malloc((size_t)e->n_nodes * sizeof *d);
    if (!d)
        goto done;
    for (uint32_t i = 0; i < e->n_nodes; i++) {
        int rg = expr__build_grow(&b);
        if (rg) {
            rc = rg;
            goto done;
        }
        b.nodes[b.n] = e->nodes[i];
        expr__hash_put(&b, b.n++);
    }
    for (uint32_t i = 0; i < e->n_nodes && !b.status; i++)
        d[i] = expr__diff_node(&b, i, d, var);
    rc = b.status ? b.status : expr__finish(&b, d[e->n_nodes - 1], e->n_names, out);
done:
    free(d);
    expr__build_close(&b);
    return rc;
}

double expr_eval(const struct expr *e, const double *vars)
{
    double st[EXPR_MAX_STACK];
    double acc = 0;
    uint32_t sp = 0;
    const struct expr__op *ops = e->ops, *next = ops;
    for (;;) {
        const struct expr__op *o = next++;
        switch (o->code) {
        case OP_END: return acc;
        case OP_K: st[sp++] = acc; acc = o->u.k; break;
        case OP_V: st[sp++] = acc; acc = vars[o->i]; break;
        case OP_ADD: acc = st[--sp] + acc; break;
        case OP_SUB: acc = st[--sp] - acc; break;
        case OP_MUL: acc = st[--sp] * acc; break;
        case OP_DIV: acc = st[--sp] / acc; break;
        case OP_POW: acc = pow(st[--sp], acc); break;
        case OP_RSUB: acc = acc - st[--sp]; break;
        case OP_RDIV: acc = acc / st[--sp]; break;
        case OP_RPOW: acc = pow(acc, st[--sp]); break;
        case OP_MIN: acc = expr__min(st[--sp], acc); break;
        case OP_MAX: acc = expr__max(st[--sp], acc); break;
        case OP_ADDK: acc += o->u.k; break;
        case OP_SUBK: acc -= o->u.k; break;
        case OP_MULK: acc *= o->u.k; break;
        case OP_DIVK: acc /= o->u.k; break;
        case OP_POWK: acc = expr__pow(acc, o->u.k); break;
        case OP_KSUB: acc = o->u.k - acc; break;
        case OP_KDIV: acc = o->u.k / acc; break;
        case OP_KPOW: acc = pow(o->u.k, acc); break;
        case OP_ADDV: acc += vars[o->i]; break;
        case OP_SUBV: acc -= vars[o->i]; break;
        case OP_MULV: acc *= vars[o->i]; break;
        case OP_DIVV: acc /= vars[o->i]; break;
        case OP_POWV: acc = expr__pow(acc, vars[o->i]); break;
        case OP_VSUB: acc = vars[o->i] - acc; break;
        case OP_VDIV: acc = vars[o->i] / acc; break;
        case OP_VPOW: acc = pow(vars[o->i], acc); break;
        case OP_NEG: acc = -acc; break;
        case OP_SQR: acc *= acc; break;
        case OP_POWI: acc = expr__powi(acc, o->i); break;
        case OP_EXP: acc = exp(acc); break;
        case OP_LOG: acc = log(acc); break;
        case OP_SQRT: acc = sqrt(acc); break;
        case OP_SIN: acc = sin(acc); break;
        case OP_COS: acc = cos(acc); break;
        case OP_TANH: acc = tanh(acc); break;
        case OP_JNLE: {
            int c = st[sp - 1] <= acc;
            acc = st[sp - 2];
            sp -= 2;
            if (!c)
                next = ops + o->i;
            break;
        }
        case OP_JMP: next = ops + o->i; break;
        case OP_VVADD: st[sp++] = acc; acc = vars[o->i] + vars[o->u.j]; break;
        case OP_VVSUB: st[sp++] = acc; acc = vars[o->i] - vars[o->u.j]; break;
        case OP_VVMUL: st[sp++] = acc; acc = vars[o->i] * vars[o->u.j]; break;
        case OP_VVDIV: st[sp++] = acc; acc = vars[o->i] / vars[o->u.j]; break;
        case OP_VKADD: st[sp++] = acc; acc = vars[o->i] + o->u.k; break;
        case OP_VKSUB: st[sp++] = acc; acc = vars[o->i] - o->u.k; break;
        case OP_VKMUL: st[sp++] = acc; acc = vars[o->i] * o->u.k; break;
        case OP_VKDIV: st[sp++] = acc; acc = vars[o->i] / o->u.k; break;
        case OP_KVSUB: st[sp++] = acc; acc = o->u.k - vars[o->i]; break;
        case OP_KVDIV: st[sp++] = acc; acc = o->u.k / vars[o->i]; break;
        case OP_VSQR: st[sp++] = acc; acc = vars[o->i] * vars[o->i]; break;
        }
    }
}

int expr_uses(const struct expr *e, size_t var)
{
    for (uint32_t i = 0; i < e->n_nodes; i++)
        if (e->nodes[i].kind == EK_VAR && e->nodes[i].a == var)
            return 1;
    return 0;
}

int expr_is_zero(const struct expr *e)
{
    const struct expr__node *r = &e->nodes[e->n_nodes - 1];
    return r->kind == EK_NUM && r->k == 0;
}

size_t expr_n_ops(const struct expr *e)
{
    return e->n_ops - 1;
}

void expr_destroy(struct expr *e)
{
    if (!e)
        return;
    free(e->nodes);
    free(e->ops);
    free(e);
}
