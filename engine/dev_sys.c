/*
 * dev_sys.c: the right-hand sides, Jacobians and outputs of every device
 * kind, and the compilation of user-defined kinds.
 *
 * Built-in kinds are written out by hand (crn_relu: dy/dt = kappa + z y - y^2;
 * hodgkin_huxley: the classic squid-axon membrane). User kinds evaluate
 * programs compiled once by expr.c (ode) or a network parsed by rxn.c
 * (reactions). Every Jacobian here is exact; tests compare them with finite
 * differences.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "qn_err.h"

/* ---- drives of built-in kinds ------------------------------------------------------------ */

/* The drives u[2] of a built-in kind and du[2 * n_in] = du/din (row-major). */
static void dev__drives(const struct dev_model *d, const double *in, double u[2], double *du)
{
    size_t n_in = d->compiled->n_in;
    memset(du, 0, 2 * n_in * sizeof *du);
    if (d->drive == DRIVE_DOT) {
        u[0] = in[0], u[1] = 0, du[0] = 1;
        return;
    }
    if (d->drive == DRIVE_DOT_SQ) {
        u[0] = in[0], u[1] = in[1], du[0] = 1, du[n_in + 1] = 1;
        return;
    }
    size_t k = (size_t)d->fan_in;
    const double *x = in, *a = in + k;
    u[0] = d->compiled->p[DEV__P_B], u[1] = 0;
    for (size_t i = 0; i < k; i++) {
        u[0] += a[i] * x[i];
        u[1] += a[i] * x[i] * x[i];
        du[i] = a[i], du[k + i] = x[i];
        du[n_in + i] = 2 * a[i] * x[i], du[n_in + k + i] = x[i] * x[i];
    }
}

/* The drives u[2] only (the right-hand side needs no derivatives). */
void dev__drive_values(const struct dev_model *d, const double *in, double u[2])
{
    if (d->drive != DRIVE_FULL) {
        u[0] = in[0], u[1] = d->drive == DRIVE_DOT_SQ ? in[1] : 0;
        return;
    }
    size_t k = (size_t)d->fan_in;
    u[0] = d->compiled->p[DEV__P_B], u[1] = 0;
    for (size_t i = 0; i < k; i++)
        u[0] += in[k + i] * in[i], u[1] += in[k + i] * in[i] * in[i];
}

void dev__closed_form(const struct dev_model *d, const double *in, double *out, double *dout_din)
{
    double u[2], du[2 * DEV_MAX_INPUTS];
    dev__drives(d, in, u, du);
    double eps = d->kind == DEV_ALMOST_NEURON ? d->eps : 0.0;
    double z = u[0] - eps * u[1];
    *out = act_eval(d->activation, z);
    if (!dout_din)
        return;
    double g = act_deriv(d->activation, z);
    size_t n_in = d->compiled->n_in;
    for (size_t k = 0; k < n_in; k++)
        dout_din[k] = g * (du[k] - eps * du[n_in + k]);
}

/* ---- Hodgkin-Huxley ------------------------------------------------------------------------ */

/*
 * x / (1 - e) with e = exp(-x/10), continuous through x = 0: the series at
 * the removable singularity (exact there: 10 at x = 0), expm1 within 1 mV of
 * it, where 1 - e would cancel (the shared e carries a few ulps, which
 * 1 - e divides by x/10), and the shared exponential e elsewhere.
 */
static inline double dev__vtrap10(double x, double e)
{
    double s = x * 0.1;
    if (fabs(s) < 1e-6)
        return 10 * (1 + s / 2 + s * s / 12);
    return fabs(s) < 0.1 ? x / -expm1(-s) : x / (1 - e);
}

/* d/dx of x / (1 - exp(-x/c)), continuous through x = 0. */
static double dev__dvtrap(double x, double c)
{
    double s = x / c;
    if (fabs(s) < 1e-6)
        return 0.5 + s / 6;
    double e = exp(-s), q = 1 - e;
    return (q - s * e) / (q * q);
}

#define DEV__E1 2.7182818284590452  /* e^1 */
#define DEV__E25 12.182493960703473 /* e^2.5 */
#define DEV__E3 20.085536923187668  /* e^3 */

/*
 * The six HH rate functions at V: order am bm ah bh an bn. Three exp calls,
 * independent of one another, instead of six: e10 = exp(-(V+65)/10) gives the
 * (V+40), (V+35), (V+55) terms times the constants e^2.5, e^3, e^1; e80 =
 * exp(-(V+65)/80) gives beta_n and, squared twice, alpha_h's e20; beta_m
 * keeps its own. Each rate is within a few ulps of the textbook form. The
 * right-hand side is evaluated stage after dependent stage, so what counts
 * is its latency: no squaring chain ahead of e10's division.
 */
static inline void dev__hh_rates_at(double V, double r[6])
{
    double x = V + 65, e10 = exp(x * -0.1), e80 = exp(x * (-1.0 / 80)), e40 = e80 * e80;
    r[0] = 0.1 * dev__vtrap10(V + 40, e10 * DEV__E25);
    r[1] = 4 * exp(x * (-1.0 / 18));
    r[2] = 0.07 * (e40 * e40);
    r[3] = 1 / (1 + e10 * DEV__E3);
    r[4] = 0.01 * dev__vtrap10(V + 55, e10 * DEV__E1);
    r[5] = 0.125 * e80;
}

void dev__hh_rates0(double V, double r[6])
{
    dev__hh_rates_at(V, r);
}

/* The rates at V (dev__hh_rates0) and their derivatives dr/dV. */
static void dev__hh_rates(double V, double r[6], double dr[6])
{
    dev__hh_rates0(V, r);
    dr[0] = 0.1 * dev__dvtrap(V + 40, 10);
    dr[1] = -r[1] / 18;
    dr[2] = -r[2] / 20;
    dr[3] = r[3] * (1 - r[3]) / 10; /* beta_h = 1/(1+e): beta_h' = beta_h^2 e / 10 */
    dr[4] = 0.01 * dev__dvtrap(V + 55, 10);
    dr[5] = -r[5] / 80;
}

void dev__hh_initial_state(struct dev_model *d)
{
    double v0 = -65, r[6];
    dev_model_param(d, "v0", &v0);
    dev__hh_rates0(v0, r);
    static const char names[4][2] = {"V", "m", "h", "n"};
    d->n_states = 4;
    for (int i = 0; i < 4; i++)
        memcpy(d->state_names[i], names[i], 2);
    d->y0[0] = v0;
    for (int g = 0; g < 3; g++)
        d->y0[1 + g] = r[2 * g] / (r[2 * g] + r[2 * g + 1]);
}

void dev__hh_rhs(const double *p, double I, const double *y, double *f)
{
    double V = y[0], m = y[1], h = y[2], n = y[3], r[6];
    dev__hh_rates_at(V, r);
    double ina = p[DEV__P_GNA] * m * m * m * h * (V - p[DEV__P_ENA]);
    double ik = p[DEV__P_GK] * n * n * n * n * (V - p[DEV__P_EK]);
    double il = p[DEV__P_GL] * (V - p[DEV__P_EL]);
    f[0] = (I - ina - ik - il) / p[DEV__P_CM];
    f[1] = r[0] * (1 - m) - r[1] * m;
    f[2] = r[2] * (1 - h) - r[3] * h;
    f[3] = r[4] * (1 - n) - r[5] * n;
}

static void dev__hh_jac(const double *p, const double *y, double *J)
{
    double V = y[0], m = y[1], h = y[2], n = y[3], r[6], dr[6];
    dev__hh_rates(V, r, dr);
    double cm = p[DEV__P_CM], gna = p[DEV__P_GNA], gk = p[DEV__P_GK];
    double m3 = m * m * m, n3 = n * n * n;
    J[0] = -(gna * m3 * h + gk * n3 * n + p[DEV__P_GL]) / cm;
    J[1] = -3 * gna * m * m * h * (V - p[DEV__P_ENA]) / cm;
    J[2] = -gna * m3 * (V - p[DEV__P_ENA]) / cm;
    J[3] = -4 * gk * n3 * (V - p[DEV__P_EK]) / cm;
    const double gate[3] = {m, h, n};
    for (int g = 0; g < 3; g++) {
        double *row = J + 4 * (1 + g);
        row[0] = dr[2 * g] * (1 - gate[g]) - dr[2 * g + 1] * gate[g];
        row[1] = row[2] = row[3] = 0;
        row[1 + g] = -(r[2 * g] + r[2 * g + 1]);
    }
}

/* ---- user kinds ---------------------------------------------------------------------------- */

/* The expression variables [y, params, in, t] into v. */
static void dev__vars(const struct dev_model *d, double t, const double *y, const double *in,
                      double *v)
{
    size_t n = d->compiled->n, np = d->n_params, n_in = d->compiled->n_in;
    /* plain loops: these are a handful of values, and a memcpy call each costs more */
    for (size_t i = 0; i < n; i++)
        v[i] = y[i];
    for (size_t i = 0; i < np; i++)
        v[n + i] = d->params[i];
    for (size_t i = 0; i < n_in; i++)
        v[n + np + i] = in[i];
    v[n + np + n_in] = t;
}

/* Evaluates a possibly-NULL (zero) program. */
static double dev__eval0(const struct expr *e, const double *v)
{
    return e ? expr_eval(e, v) : 0.0;
}

/* ---- the system functions ------------------------------------------------------------------ */

void dev__sys_rhs(const struct dev_model *d, double t, const double *y, const double *in,
                  double *f)
{
    const struct dev_compiled *c = d->compiled;
    double u[2], v[DEV__MAX_VARS];
    switch (d->kind) {
    case DEV_CRN_RELU:
        dev__drive_values(d, in, u);
        f[0] = dev__crn_rhs(c->p[DEV__P_KAPPA], u[0], y[0]);
        return;
    case DEV_HODGKIN_HUXLEY:
        dev__drive_values(d, in, u);
        dev__hh_rhs(c->p, c->p[DEV__P_GAIN] * u[0], y, f);
        return;
    case DEV_ODE:
        dev__vars(d, t, y, in, v);
        for (size_t i = 0; i < c->n; i++)
            f[i] = expr_eval(c->rhs[i], v);
        return;
    case DEV_REACTIONS:
        dev__vars(d, t, y, in, v);
        rxn_rhs(c->rxn, y, v + c->n, f);
        return;
    case DEV_NEURON:
    case DEV_ALMOST_NEURON: return;
    }
}

void dev__sys_jac(const struct dev_model *d, double t, const double *y, const double *in,
                  double *J, double *dfdt)
{
    const struct dev_compiled *c = d->compiled;
    size_t n = c->n;
    double u[2], v[DEV__MAX_VARS];
    if (dfdt)
        memset(dfdt, 0, n * sizeof *dfdt);
    switch (d->kind) {
    case DEV_CRN_RELU:
        dev__drive_values(d, in, u);
        J[0] = u[0] - 2 * y[0];
        return;
    case DEV_HODGKIN_HUXLEY: dev__hh_jac(c->p, y, J); return;
    case DEV_ODE:
        dev__vars(d, t, y, in, v);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < n; j++)
                J[i * n + j] = dev__eval0(c->jac[i * n + j], v);
            if (dfdt)
                dfdt[i] = dev__eval0(c->jt[i], v);
        }
        return;
    case DEV_REACTIONS:
        dev__vars(d, t, y, in, v);
        rxn_jac(c->rxn, y, v + n, J);
        return;
    case DEV_NEURON:
    case DEV_ALMOST_NEURON: return;
    }
}

void dev__sys_jin(const struct dev_model *d, double t, const double *y, const double *in,
                  double *Jp)
{
    const struct dev_compiled *c = d->compiled;
    size_t n = c->n, n_in = c->n_in, np = d->n_params;
    double u[2], du[2 * DEV_MAX_INPUTS], v[DEV__MAX_VARS];
    double js[DEV_MAX_STATES * (DEV_MAX_PARAMS + DEV_MAX_INPUTS)];
    switch (d->kind) {
    case DEV_CRN_RELU:
        dev__drives(d, in, u, du);
        for (size_t k = 0; k < n_in; k++)
            Jp[k] = y[0] * du[k];
        return;
    case DEV_HODGKIN_HUXLEY:
        dev__drives(d, in, u, du);
        memset(Jp, 0, n * n_in * sizeof *Jp);
        for (size_t k = 0; k < n_in; k++)
            Jp[k] = c->p[DEV__P_GAIN] / c->p[DEV__P_CM] * du[k];
        return;
    case DEV_ODE:
        dev__vars(d, t, y, in, v);
        for (size_t i = 0; i < n * n_in; i++)
            Jp[i] = dev__eval0(c->jin[i], v);
        return;
    case DEV_REACTIONS:
        dev__vars(d, t, y, in, v);
        rxn_jac_sym(c->rxn, y, v + n, js);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < n_in; k++)
                Jp[i * n_in + k] = js[i * (np + n_in) + np + k];
        return;
    case DEV_NEURON:
    case DEV_ALMOST_NEURON: return;
    }
}

double dev__sys_out(const struct dev_model *d, double t, const double *y, const double *in)
{
    const struct dev_compiled *c = d->compiled;
    if (!c->out)
        return y[c->out_state];
    double v[DEV__MAX_VARS];
    dev__vars(d, t, y, in, v);
    return expr_eval(c->out, v);
}

void dev__sys_out_grad(const struct dev_model *d, double t, const double *y, const double *in,
                       double *gy, double *gin)
{
    const struct dev_compiled *c = d->compiled;
    double v[DEV__MAX_VARS];
    if (!c->out) {
        if (gy) {
            memset(gy, 0, c->n * sizeof *gy);
            gy[c->out_state] = 1;
        }
        if (gin)
            memset(gin, 0, c->n_in * sizeof *gin);
        return;
    }
    dev__vars(d, t, y, in, v);
    for (size_t i = 0; gy && i < c->n; i++)
        gy[i] = dev__eval0(c->dout_dy[i], v);
    for (size_t k = 0; gin && k < c->n_in; k++)
        gin[k] = dev__eval0(c->dout_din[k], v);
}

int dev__sys_check_rates(const struct dev_model *d, const double *in)
{
    const struct dev_compiled *c = d->compiled;
    if (d->kind != DEV_REACTIONS)
        return QN_OK;
    double v[DEV__MAX_VARS];
    dev__vars(d, 0.0, d->y0, in, v);
    return rxn_check_rates(c->rxn, v + c->n) < 0 ? QN_OK : QN_ERATE;
}

double dev__sys_out_rate(const struct dev_model *d, double t, const double *y, const double *in,
                         double *gy, double *f)
{
    const struct dev_compiled *c = d->compiled;
    dev__sys_rhs(d, t, y, in, f);
    dev__sys_out_grad(d, t, y, in, gy, NULL);
    double r = 0;
    for (size_t i = 0; i < c->n; i++)
        r += gy[i] * f[i];
    if (c->out && c->dout_dt) {
        double v[DEV__MAX_VARS];
        dev__vars(d, t, y, in, v);
        r += expr_eval(c->dout_dt, v);
    }
    return r;
}

/* ---- compilation --------------------------------------------------------------------------- */

/* The variable names [states, params, inputs, t] of d into names/storage. */
static size_t dev__var_names(const struct dev_model *d, const char **names,
                             char inbuf[DEV_MAX_INPUTS][DEV_NAME_MAX])
{
    size_t k = 0;
    for (size_t i = 0; i < d->n_states; i++)
        names[k++] = d->state_names[i];
    for (size_t i = 0; i < d->n_params; i++)
        names[k++] = d->param_names[i];
    for (size_t i = 0; i < dev_n_inputs(d); i++) {
        dev_input_name(d, i, inbuf[i], DEV_NAME_MAX);
        names[k++] = inbuf[i];
    }
    names[k++] = "t";
    return k;
}

/* Compiles src into *out, or fills err for `field`. */
static int dev__compile_expr(const char *src, const char **names, size_t n_names,
                             const char *field, struct expr **out, struct dev_error *err)
{
    struct expr_error ee;
    int rc = expr_compile(src, names, n_names, out, &ee);
    if (rc == QN_EPARSE) {
        snprintf(err->field, sizeof err->field, "%s", field);
        snprintf(err->msg, sizeof err->msg, "%s (at position %zu, near '%s')", ee.msg, ee.pos,
                 ee.token);
    }
    return rc;
}

/* The derivative of e by variable var, or NULL when it is identically zero. */
static int dev__diff(const struct expr *e, size_t var, struct expr **out)
{
    *out = NULL;
    if (!expr_uses(e, var))
        return QN_OK;
    struct expr *de = NULL;
    int rc = expr_diff(e, var, &de);
    if (rc)
        return rc;
    if (expr_is_zero(de)) {
        expr_destroy(de);
        de = NULL;
    }
    *out = de;
    return QN_OK;
}

/* Compiles the output expression and its gradient (ode, reactions). */
static int dev__compile_output(struct dev_model *d, const char **names, size_t n_names,
                               struct dev_error *err)
{
    struct dev_compiled *c = d->compiled;
    const char *src = d->output_src ? d->output_src : d->state_names[0];
    int rc = dev__compile_expr(src, names, n_names, "output", &c->out, err);
    for (size_t i = 0; rc == QN_OK && i < c->n; i++)
        rc = dev__diff(c->out, i, &c->dout_dy[i]);
    for (size_t k = 0; rc == QN_OK && k < c->n_in; k++)
        rc = dev__diff(c->out, c->n + d->n_params + k, &c->dout_din[k]);
    if (rc == QN_OK)
        rc = dev__diff(c->out, n_names - 1, &c->dout_dt);
    return rc;
}

/* Compiles the right-hand sides of an ode kind and all their partial derivatives. */
static int dev__compile_ode(struct dev_model *d, const char **names, size_t n_names,
                            struct dev_error *err)
{
    struct dev_compiled *c = d->compiled;
    size_t n = c->n, n_in = c->n_in;
    char field[64];
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof field, "rhs/%s", d->state_names[i]);
        if (!d->rhs_src[i]) {
            snprintf(err->field, sizeof err->field, "%s", field);
            snprintf(err->msg, sizeof err->msg, "state has no right-hand side");
            return QN_ESPEC;
        }
        int rc = dev__compile_expr(d->rhs_src[i], names, n_names, field, &c->rhs[i], err);
        for (size_t j = 0; rc == QN_OK && j < n; j++)
            rc = dev__diff(c->rhs[i], j, &c->jac[i * n + j]);
        for (size_t k = 0; rc == QN_OK && k < n_in; k++)
            rc = dev__diff(c->rhs[i], n + d->n_params + k, &c->jin[i * n_in + k]);
        if (rc == QN_OK)
            rc = dev__diff(c->rhs[i], n_names - 1, &c->jt[i]);
        if (rc)
            return rc;
    }
    return QN_OK;
}

/* Parses the reactions of a reactions kind; rates may name params and inputs. */
static int dev__compile_rxn(struct dev_model *d, const char **names, struct dev_error *err)
{
    struct dev_compiled *c = d->compiled;
    if (d->n_reactions == 0) {
        snprintf(err->field, sizeof err->field, "reactions");
        snprintf(err->msg, sizeof err->msg, "at least one reaction is needed");
        return QN_ESPEC;
    }
    struct rxn_error re;
    int rc = rxn_parse((const char *const *)d->reaction_src, d->n_reactions, names, c->n,
                       names + c->n, d->n_params + c->n_in, &c->rxn, &re);
    if (rc == QN_EPARSE) {
        snprintf(err->field, sizeof err->field, "reactions/%zu", re.reaction);
        snprintf(err->msg, sizeof err->msg, "%s (at position %zu, near '%s')", re.msg, re.pos,
                 re.token);
    }
    if (rc)
        return rc;
    /* A parameter rate is fixed: negative, no input can make it a mass-action rate. */
    double sym[DEV_MAX_PARAMS + DEV_MAX_INPUTS] = {0};
    memcpy(sym, d->params, d->n_params * sizeof *sym);
    long k = rxn_check_rates(c->rxn, sym);
    if (k >= 0) {
        snprintf(err->field, sizeof err->field, "reactions/%ld", k);
        snprintf(err->msg, sizeof err->msg,
                 "its rate is a negative parameter; a mass-action rate is >= 0");
        return QN_ESPEC;
    }
    return QN_OK;
}

int dev_reaction_text(const struct dev_model *d, size_t k, char *buf, size_t cap)
{
    const struct dev_compiled *c = d->compiled;
    if (d->kind != DEV_REACTIONS || !c || !c->rxn || k >= d->n_reactions)
        return QN_EINVAL;
    const char *names[DEV__MAX_VARS];
    char inbuf[DEV_MAX_INPUTS][DEV_NAME_MAX];
    dev__var_names(d, names, inbuf);
    rxn_format(c->rxn, k, names, names + c->n, buf, cap);
    return QN_OK;
}

/* The names of the built-in parameter slots, by DEV__P_* index. */
static const char *const dev__slot_names[] = {"kappa", "gain", "b",  "cm", "gna",
                                              "gk",    "gl",   "ena", "ek", "el"};
#define DEV__N_SLOTS (sizeof dev__slot_names / sizeof dev__slot_names[0])

/* Copies built-in parameters into the compiled slots. */
static void dev__compile_builtin(struct dev_model *d)
{
    for (size_t i = 0; i < DEV__N_SLOTS; i++)
        dev_model_param(d, dev__slot_names[i], &d->compiled->p[i]);
}

void dev__builtin_slots(const struct dev_model *d, int *slot)
{
    int user = d->kind == DEV_ODE || d->kind == DEV_REACTIONS;
    for (size_t i = 0; i < d->n_params; i++) {
        slot[i] = -1;
        for (size_t k = 0; !user && k < DEV__N_SLOTS; k++)
            if (strcmp(d->param_names[i], dev__slot_names[k]) == 0)
                slot[i] = (int)k;
    }
}

int dev__compile(struct dev_model *d, struct dev_error *err)
{
    struct dev_compiled *c = calloc(1, sizeof *c);
    if (!c)
        return QN_ENOMEM;
    d->compiled = c;
    c->n = dev_is_ode(d) ? d->n_states : 0;
    c->n_in = dev_n_inputs(d);
    if (dev_is_ode(d) && (d->n_states < 1 || d->n_states > DEV_MAX_STATES)) {
        snprintf(err->field, sizeof err->field, d->kind == DEV_REACTIONS ? "species" : "state");
        snprintf(err->msg, sizeof err->msg, "needs 1 to %d entries", DEV_MAX_STATES);
        return QN_ESPEC;
    }
    const char *names[DEV__MAX_VARS];
    char inbuf[DEV_MAX_INPUTS][DEV_NAME_MAX];
    c->n_vars = dev__var_names(d, names, inbuf);
    int rc = QN_OK;
    if (d->kind == DEV_ODE)
        rc = dev__compile_ode(d, names, c->n_vars, err);
    else if (d->kind == DEV_REACTIONS)
        rc = dev__compile_rxn(d, names, err);
    else
        dev__compile_builtin(d);
    if (rc == QN_OK && (d->kind == DEV_ODE || d->kind == DEV_REACTIONS))
        rc = dev__compile_output(d, names, c->n_vars, err);
    if (rc) {
        dev__compiled_free(c);
        d->compiled = NULL;
    }
    return rc;
}

void dev__compiled_free(struct dev_compiled *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < DEV_MAX_STATES; i++) {
        expr_destroy(c->rhs[i]);
        expr_destroy(c->jt[i]);
        expr_destroy(c->dout_dy[i]);
    }
    for (size_t i = 0; i < DEV_MAX_STATES * DEV_MAX_STATES; i++)
        expr_destroy(c->jac[i]);
    for (size_t i = 0; i < DEV_MAX_STATES * DEV_MAX_INPUTS; i++)
        expr_destroy(c->jin[i]);
    for (size_t i = 0; i < DEV_MAX_INPUTS; i++)
        expr_destroy(c->dout_din[i]);
    expr_destroy(c->out);
    expr_destroy(c->dout_dt);
    rxn_destroy(c->rxn);
    free(c);
}
