/*
 * device.h: device models, the "almost neurons" of Quasineuron.
 *
 * A device maps its inputs to one output, out = f(inputs; params). What the
 * inputs are depends on the drive:
 *   dot     1 input  u1 = sum a_i x_i + b (the caller forms the sum)
 *   dot_sq  2 inputs u1 = sum a_i x_i + b, u2 = sum a_i x_i^2
 *   full    2k inputs x1..xk, a1..ak (fixed fan-in k; u1 = sum a_i x_i + b
 *           with b the parameter "b", for kinds that think in drives)
 * Analytic kinds (neuron, almost_neuron) are closed forms; every other kind is
 * an ODE system solved with GSL's odeiv2 and read out (steady state, final
 * state, time average, peak, spike rate).
 *
 * Trade-off: a model is a plain struct that the schema layer fills in from
 * JSON and then hands to dev_model_prepare, which validates it and compiles
 * expressions and reactions once. After that the model is immutable and
 * shared by every thread; all mutable solver state lives in a per-thread
 * struct dev_work.
 */
#ifndef QN_DEVICE_H
#define QN_DEVICE_H

#include <stdatomic.h>
#include <stddef.h>

#include "act.h"

#define DEV_NAME_MAX 32   /* bytes of a state, species or parameter name, with NUL */
#define DEV_MAX_STATES 32 /* states (ode) or species (reactions) */
#define DEV_MAX_PARAMS 32 /* named parameters */
#define DEV_MAX_FANIN 16  /* k of a full drive */
#define DEV_MAX_INPUTS (2 * DEV_MAX_FANIN)
#define DEV_MAX_REACTIONS 64

enum dev_kind { DEV_NEURON, DEV_ALMOST_NEURON, DEV_CRN_RELU, DEV_HODGKIN_HUXLEY, DEV_ODE, DEV_REACTIONS };
enum dev_drive { DRIVE_DOT, DRIVE_DOT_SQ, DRIVE_FULL };
enum dev_readout_kind {
    READ_STEADY_STATE,
    READ_FINAL,
    READ_TIME_AVERAGE,
    READ_PEAK,
    READ_SPIKE_RATE,
    READ_SPIKE_COUNT
};
enum dev_method { ODE_RK8PD, ODE_RKF45, ODE_MSBDF };
/* What a spike readout does once the spike train is periodic or has come to
 * rest (dev_solve.c): skip the repeated cycles and the rest (the same value
 * to the solver's tolerance), or integrate every step to t_max. */
enum dev_cycles { DEV_CYCLES_SKIP, DEV_CYCLES_INTEGRATE };
/* How one parameter spreads from device instance to device instance (chip.h draws it). */
enum dev_dist { DEV_DIST_NONE, DEV_DIST_NORMAL, DEV_DIST_LOGNORMAL, DEV_DIST_UNIFORM };
#define DEV_CV_MAX 5.0 /* the largest relative spread a spec may ask for */

/* How the output is read from the trajectory. */
struct dev_readout {
    enum dev_readout_kind kind;
    double t_max;     /* integration horizon (model time units; ms for hodgkin_huxley) */
    double tol;       /* steady_state: max-norm of the right-hand side that counts as steady */
    double threshold; /* spike_rate, spike_count: upward crossings of this level are spikes */
    double transient; /* spike_rate: spikes before this time are the onset, not counted (ms) */
    int transient_set; /* 0: transient is the default, min(50, t_max / 2) (dev_transient) */
    enum dev_cycles cycles; /* spike_rate, spike_count: skip (default) or integrate the
                               cycles of a periodic spike train and a rest state */
};

/* Which GSL stepper and how tightly. */
struct dev_solver {
    enum dev_method method;
    double rtol;      /* relative tolerance */
    double atol;      /* absolute tolerance */
    double h0;        /* first step size */
    size_t max_steps; /* cap on accepted steps per solve; exceeding it fails the solve */
};

/* Per-instance spread of one named parameter: mean the nominal value (lognormal:
 * median), standard deviation cv times its magnitude. */
struct dev_spread {
    enum dev_dist dist; /* DEV_DIST_NONE: every instance has the nominal value */
    double cv;          /* relative spread in [0, DEV_CV_MAX] */
};

/* Cycle-to-cycle noise: a fresh Gaussian draw at every evaluation (absolute sds). */
struct dev_noise {
    double output_sd; /* added to the output */
    double drive_sd;  /* added to the drive u1 (dot and dot_sq drives) */
};

/* A device model. Fill with dev_model_init's defaults, set fields, then prepare. */
struct dev_model {
    char name[64];             /* user's name, may be empty */
    enum dev_kind kind;
    enum dev_drive drive;
    int fan_in;                /* k, full drive only (1..DEV_MAX_FANIN) */
    enum act_kind activation;  /* neuron, almost_neuron */
    double eps;                /* almost_neuron: f(u1 - eps*u2) */

    size_t n_params;                                /* user-visible named parameters */
    char param_names[DEV_MAX_PARAMS][DEV_NAME_MAX]; /* e.g. "kappa", "gain", "tau" */
    double params[DEV_MAX_PARAMS];                  /* their values */

    size_t n_states;                                /* ode: states; reactions: species */
    char state_names[DEV_MAX_STATES][DEV_NAME_MAX];
    double y0[DEV_MAX_STATES];                      /* initial state / amounts */
    char *rhs_src[DEV_MAX_STATES];                  /* ode: right-hand side sources (owned) */
    size_t n_reactions;
    char *reaction_src[DEV_MAX_REACTIONS];          /* reactions: texts (owned) */
    char *output_src;                               /* ode/reactions: output expression (owned) */

    struct dev_readout readout;
    struct dev_solver solver;

    struct dev_spread vary[DEV_MAX_PARAMS]; /* spread of params[i] between instances (none
                                               by default); not part of the physics a
                                               surrogate is matched by (spec_fingerprint.c) */
    struct dev_noise noise;                 /* 0 by default: no noise */

    struct dev_compiled *compiled; /* set by dev_model_prepare (owned) */
};

/* Why a model did not prepare: the field and a sentence. */
struct dev_error {
    char field[64]; /* e.g. "rhs/y", "reactions/2", "params/kappa", "readout/t_max" */
    char msg[200];
};

/*
 * Fills *d with the defaults of `kind` (documented in schema/device.schema.json):
 * drive dot (dot_sq for almost_neuron); activation relu; eps 0.1; crn_relu kappa 0.01, y0 0;
 * hodgkin_huxley gain 1 with readout spike_rate over 500 ms;
 * readout steady_state, t_max 200, tol 1e-10, threshold 0;
 * solver rk8pd, rtol 1e-8, atol 1e-10, h0 1e-3, max_steps 1000000.
 */
void dev_model_init(struct dev_model *d, enum dev_kind kind);

/* Sets (or adds) the named parameter. Returns 0 or QN_ERANGE when full. */
int dev_model_set_param(struct dev_model *d, const char *name, double value);

/* Value of the named parameter into *out; QN_ENOTFOUND if absent. */
int dev_model_param(const struct dev_model *d, const char *name, double *out);

/*
 * Validates the model and compiles its expressions or reactions. Returns 0,
 * or QN_ESPEC / QN_EPARSE with *err naming the field (unknown symbols,
 * readouts the kind cannot have, bad tolerances), or QN_ENOMEM.
 */
int dev_model_prepare(struct dev_model *d, struct dev_error *err);

/* Frees what the model owns (sources, compiled form); the struct stays. */
void dev_model_close(struct dev_model *d);

/* Number of inputs (1 dot, 2 dot_sq, 2k full). */
size_t dev_n_inputs(const struct dev_model *d);

/* Name of input i ("u1", "u2", "x3", "a3") into buf. */
/* Reaction k of a prepared reactions device in canonical text (rxn_format:
 * "2 Y -> Y @ 1" whatever spacing or "Y + Y" it was written with) into buf
 * (cap bytes). QN_EINVAL for another kind or k out of range. */
int dev_reaction_text(const struct dev_model *d, size_t k, char *buf, size_t cap);

void dev_input_name(const struct dev_model *d, size_t i, char *buf, size_t cap);

/* Nonzero when some parameter of d varies between instances. */
int dev_has_variability(const struct dev_model *d);

/* Nonzero when d has output or drive noise. */
int dev_has_noise(const struct dev_model *d);

/* Nonzero when the named parameter may vary between instances: one of the
 * named params (not hodgkin_huxley's v0, which only sets the initial state). */
int dev_param_can_vary(const struct dev_model *d, const char *name);

/* Nonzero when v is a value the named parameter of d may take: finite, and
 * positive for crn_relu's kappa and hodgkin_huxley's cm (as dev_model_prepare
 * checks); a sweep's range of a parameter must lie where this holds. */
int dev_param_value_ok(const struct dev_model *d, const char *name, double v);

/* Nonzero when the kind is solved as an ODE (not a closed form). */
int dev_is_ode(const struct dev_model *d);

/* Nonzero when dev_eval_grad can differentiate the readout. */
int dev_is_differentiable(const struct dev_model *d);

/* Per-thread scratch for solving a model: GSL stepper objects and buffers. */
struct dev_work {
    const struct dev_model *model; /* borrowed */
    const atomic_int *cancel;      /* borrowed, may be NULL: nonzero stops solves */
    struct dev_solver_state *st;   /* owned */
    size_t step_cap;               /* 0: none; else a solve stops with QN_ELIMIT after this
                                      many steps (a bound of the caller's, beside the
                                      model's own max_steps, which is QN_ESOLVER) */
    int (*should_stop)(void *ctx); /* may be NULL: asked every few dozen steps; nonzero
                                      stops the solve with QN_ECANCELED */
    void *stop_ctx;                /* passed to should_stop (borrowed) */
    const struct dev_model *nominal; /* borrowed: the model of dev_work_init (model is it,
                                        or the view while parameters are overridden) */
    struct dev_view *view;         /* owned, NULL until dev_work_set_params first needs it */
};

/* Prepares scratch for `d` (prepared, borrowed for the work's lifetime);
 * step_cap and should_stop start unset (the caller may set them after). */
int dev_work_init(struct dev_work *w, const struct dev_model *d, const atomic_int *cancel);
void dev_work_close(struct dev_work *w);

/*
 * Makes the following solves of w use the parameter values theta[n_params]
 * (in the order of the model's params; read during the call only) instead of
 * the model's own: one device instance of a chip (chip.h). NULL returns to the
 * model's own values. The work keeps its own copy of the model for this (the
 * model itself stays shared and immutable). Returns 0 or QN_ENOMEM.
 */
int dev_work_set_params(struct dev_work *w, const double *theta);

/*
 * Solves the device at inputs in[dev_n_inputs] and writes the readout to
 * *out. Returns 0, or the reason this input has no output: QN_ENOTCONV (no
 * steady state by t_max, or Newton polish failed), QN_EDIVERGED (non-finite
 * state), QN_ESOLVER (step failure or max_steps), QN_ECANCELED. On failure
 * *out is NaN; it is never a guess.
 */
int dev_eval(struct dev_work *w, const double *in, double *out);

/*
 * As dev_eval, and also d out / d in into dout_din[dev_n_inputs]: closed
 * forms exactly; steady states by the implicit function theorem
 * (dy_ss/dp = -J_y^-1 J_p); final/time_average/peak by forward sensitivities.
 * QN_ENOTDIFF for spike_rate.
 */
int dev_eval_grad(struct dev_work *w, const double *in, double *out, double *dout_din);

/* One solve's trajectory: accepted step times and states, for plotting. */
struct dev_traj {
    size_t n;        /* points */
    size_t n_states; /* states per point */
    double *t;       /* (n) times (owned) */
    double *y;       /* (n, n_states) states (owned) */
    double *out;     /* (n) output at each point (owned) */
};

/* Solves once recording at most max_points points (decimated evenly in
 * time). Fills *tr (free with dev_traj_free) and *out as dev_eval would.
 * The points are thinned while the solve runs (at most 2 max_points + 1 are
 * held), so memory does not grow with the number of steps. */
int dev_trajectory(struct dev_work *w, const double *in, size_t max_points,
                   struct dev_traj *tr, double *out);
void dev_traj_free(struct dev_traj *tr);

/* The names of kinds, drives, readouts and methods as the specs spell them
 * (the schema layer parses names against these). */
const char *dev_kind_name(enum dev_kind k);
const char *dev_drive_name(enum dev_drive k);
/* The spike_rate transient in force: readout.transient when set, else
 * min(50, t_max / 2) (a short simulation still has a second half to measure). */
double dev_transient(const struct dev_readout *r);
const char *dev_readout_name(enum dev_readout_kind k);
const char *dev_method_name(enum dev_method k);
const char *dev_cycles_name(enum dev_cycles k);

#endif
