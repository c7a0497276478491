/*
 * device_internal.h: what device.c, dev_sys.c and dev_solve.c share and
 * nobody else sees: the compiled form of a model and the system functions.
 */
#ifndef QN_DEVICE_INTERNAL_H
#define QN_DEVICE_INTERNAL_H

#include "device.h"
#include "expr.h"
#include "rxn.h"

/* Expression variables: states, params, inputs, then t. */
#define DEV__MAX_VARS (DEV_MAX_STATES + DEV_MAX_PARAMS + DEV_MAX_INPUTS + 1)

/* The compiled form of a prepared model (owned by the model). */
struct dev_compiled {
    size_t n;         /* states of the ODE (0 for closed forms) */
    size_t n_in;      /* inputs */
    size_t n_vars;    /* expression variables: n + n_params + n_in + 1 */
    size_t out_state; /* built-in ODE kinds: the state that is the output */
    struct expr *rhs[DEV_MAX_STATES];                   /* ode: right-hand sides */
    struct expr *jac[DEV_MAX_STATES * DEV_MAX_STATES];  /* ode: d rhs_i/d y_j (NULL if 0) */
    struct expr *jin[DEV_MAX_STATES * DEV_MAX_INPUTS];  /* ode: d rhs_i/d in_k (NULL if 0) */
    struct expr *jt[DEV_MAX_STATES];                    /* ode: d rhs_i/d t (NULL if 0) */
    struct rxn_net *rxn;                                /* reactions: the network */
    struct expr *out;                                   /* ode, reactions: output */
    struct expr *dout_dy[DEV_MAX_STATES];               /* its gradient (NULL if 0) */
    struct expr *dout_din[DEV_MAX_INPUTS];
    struct expr *dout_dt;
    double p[16]; /* built-ins: parameters by DEV__P_* index */
};

/* Indices into dev_compiled.p for built-in kinds. */
enum { DEV__P_KAPPA, DEV__P_GAIN, DEV__P_B, DEV__P_CM, DEV__P_GNA, DEV__P_GK, DEV__P_GL,
       DEV__P_ENA, DEV__P_EK, DEV__P_EL };

/* A work's copy of its model carrying one instance's parameter values
 * (dev_work_set_params): shallow copies whose pointers are the nominal model's
 * (borrowed; the view never frees them). */
struct dev_view {
    struct dev_model m;       /* the nominal model with other params; m.compiled is &c */
    struct dev_compiled c;    /* the nominal compiled form with other built-in slots p */
    int slot[DEV_MAX_PARAMS]; /* built-ins: the index in c.p of params[i], or -1 */
};

/* slot[i] = the dev_compiled.p index of d's parameter i, or -1 (user kinds, v0). */
void dev__builtin_slots(const struct dev_model *d, int *slot);

/* Compiles d (checked) into d->compiled. Returns 0, QN_EPARSE/QN_ESPEC with err, QN_ENOMEM. */
int dev__compile(struct dev_model *d, struct dev_error *err);
void dev__compiled_free(struct dev_compiled *c);

/* Sets hodgkin_huxley's initial state: v0 and the gates at their steady state. */
void dev__hh_initial_state(struct dev_model *d);

/* The six Hodgkin-Huxley rates at membrane potential V (mV), in the order
 * alpha_m beta_m alpha_h beta_h alpha_n beta_n, into r[6]. */
void dev__hh_rates0(double V, double r[6]);

/* crn_relu's right-hand side kappa + u y - y^2: the one formula that
 * dev__sys_rhs and the solver's fixed-drive callback share, so both give the
 * same bits. */
static inline double dev__crn_rhs(double kappa, double u, double y)
{
    return kappa + u * y - y * y;
}

/* hodgkin_huxley's right-hand side f[4] at the state y[4] (V, m, h, n) with
 * the applied current I (gain times the drive); parameters p by DEV__P_*. */
void dev__hh_rhs(const double *p, double I, const double *y, double *f);

/* The drives u[2] of a built-in kind at inputs in[n_in]: u1 and (dot_sq) u2;
 * a full drive's sums. They are fixed for a whole solve. */
void dev__drive_values(const struct dev_model *d, const double *in, double u[2]);

/* The base ODE system of a prepared model at time t, state y[n], inputs in[n_in]. */
void dev__sys_rhs(const struct dev_model *d, double t, const double *y, const double *in,
                  double *f);
/* J[n*n] = df/dy (row-major); dfdt[n] = df/dt (may be NULL). */
void dev__sys_jac(const struct dev_model *d, double t, const double *y, const double *in,
                  double *J, double *dfdt);
/* Jp[n*n_in] = df/din (row-major). */
void dev__sys_jin(const struct dev_model *d, double t, const double *y, const double *in,
                  double *Jp);
/* The output at (t, y), and its gradient gy[n], gin[n_in] (either may be NULL). */
double dev__sys_out(const struct dev_model *d, double t, const double *y, const double *in);
void dev__sys_out_grad(const struct dev_model *d, double t, const double *y, const double *in,
                       double *gy, double *gin);

/* reactions: QN_ERATE when a rate is negative at inputs in (its parameter
 * or drive is), else 0. Rates do not change during a solve: checked once. */
int dev__sys_check_rates(const struct dev_model *d, const double *in);

/* The time in [t0, t1] where the cubic Hermite interpolant of an output
 * (o0, o1 with slopes d0, d1 at t0, t1; o0 < thr <= o1) crosses thr: a spike
 * time between two solver steps (dev_solve.c; the benchmarks' direct loop
 * locates its crossings with it too). */
double dev_hermite_cross(double t0, double o0, double d0, double t1, double o1, double d1,
                         double thr);

/* d out/dt along the solution at (t, y): dout/dy . f + the explicit dout/dt.
 * gy[n] and f[n] are scratch (they hold dout/dy and f on return). */
double dev__sys_out_rate(const struct dev_model *d, double t, const double *y, const double *in,
                         double *gy, double *f);

/* Closed forms (neuron, almost_neuron): out and (if non-NULL) dout_din. */
void dev__closed_form(const struct dev_model *d, const double *in, double *out, double *dout_din);

#endif
