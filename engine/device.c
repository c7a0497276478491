/*
 * device.c: device models, their preparation, and the closed-form kinds.
 *
 * A prepared model carries a compiled form (struct dev_compiled): for `ode`
 * the right-hand sides and every nonzero partial derivative compiled by
 * expr.c, for `reactions` the parsed network from rxn.c, and for both the
 * output expression with its gradient. Built-in kinds (crn_relu,
 * hodgkin_huxley) are written out by hand in dev_sys.c. Solving lives in
 * dev_solve.c; this file holds what a model is and how it is checked.
 *
 * Expression variables are laid out as [states, params, inputs, t], so one
 * vector serves right-hand sides, Jacobians and outputs alike.
 */
#include "device_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

static const char *const dev__kind_names[] = {"neuron", "almost_neuron", "crn_relu",
                                              "hodgkin_huxley", "ode", "reactions"};
static const char *const dev__drive_names[] = {"dot", "dot_sq", "full"};
static const char *const dev__readout_names[] = {"steady_state", "final", "time_average", "peak",
                                                 "spike_rate", "spike_count"};
static const char *const dev__method_names[] = {"rk8pd", "rkf45", "msbdf"};
static const char *const dev__cycles_names[] = {"skip", "integrate"};

const char *dev_kind_name(enum dev_kind k)
{
    return dev__kind_names[k];
}

const char *dev_drive_name(enum dev_drive k)
{
    return dev__drive_names[k];
}

double dev_transient(const struct dev_readout *r)
{
    return r->transient_set ? r->transient : fmin(r->transient, r->t_max / 2);
}

const char *dev_readout_name(enum dev_readout_kind k)
{
    return dev__readout_names[k];
}

const char *dev_method_name(enum dev_method k)
{
    return dev__method_names[k];
}

const char *dev_cycles_name(enum dev_cycles k)
{
    return dev__cycles_names[k];
}

/* The built-in parameters of each kind with their defaults. */
struct dev__param_default {
    enum dev_kind kind;
    const char *name;
    double value;
};

static const struct dev__param_default dev__defaults[] = {
    {DEV_NEURON, "b", 0.0},
    {DEV_ALMOST_NEURON, "b", 0.0},
    {DEV_CRN_RELU, "kappa", 0.01},
    {DEV_CRN_RELU, "b", 0.0},
    {DEV_HODGKIN_HUXLEY, "gain", 1.0},
    {DEV_HODGKIN_HUXLEY, "b", 0.0},
    {DEV_HODGKIN_HUXLEY, "cm", 1.0},
    {DEV_HODGKIN_HUXLEY, "gna", 120.0},
    {DEV_HODGKIN_HUXLEY, "gk", 36.0},
    {DEV_HODGKIN_HUXLEY, "gl", 0.3},
    {DEV_HODGKIN_HUXLEY, "ena", 50.0},
    {DEV_HODGKIN_HUXLEY, "ek", -77.0},
    {DEV_HODGKIN_HUXLEY, "el", -54.4},
    {DEV_HODGKIN_HUXLEY, "v0", -65.0},
};

void dev_model_init(struct dev_model *d, enum dev_kind kind)
{
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->drive = kind == DEV_ALMOST_NEURON ? DRIVE_DOT_SQ : DRIVE_DOT;
    d->activation = ACT_RELU;
    d->eps = 0.1;
    for (size_t i = 0; i < sizeof dev__defaults / sizeof dev__defaults[0]; i++)
        if (dev__defaults[i].kind == kind)
            dev_model_set_param(d, dev__defaults[i].name, dev__defaults[i].value);
    d->readout = (struct dev_readout){READ_STEADY_STATE, 200.0, 1e-10, 0.0, 50.0, 0,
                                      DEV_CYCLES_SKIP};
    d->solver = (struct dev_solver){ODE_RK8PD, 1e-8, 1e-10, 1e-3, 1000000};
    if (kind == DEV_CRN_RELU) {
        d->n_states = 1;
        strcpy(d->state_names[0], "y");
        d->y0[0] = 0.0;
    } else if (kind == DEV_HODGKIN_HUXLEY) {
        d->readout.kind = READ_SPIKE_RATE;
        d->readout.t_max = 500.0;
        d->readout.tol = 1e-6;
        d->solver.h0 = 1e-2;
        d->solver.rtol = 1e-6;
        d->solver.atol = 1e-8;
    }
}

int dev_model_set_param(struct dev_model *d, const char *name, double value)
{
    for (size_t i = 0; i < d->n_params; i++) {
        if (strcmp(d->param_names[i], name) == 0) {
            d->params[i] = value;
            return QN_OK;
        }
    }
    if (d->n_params >= DEV_MAX_PARAMS || strlen(name) >= DEV_NAME_MAX)
        return QN_ERANGE;
    strcpy(d->param_names[d->n_params], name);
    d->params[d->n_params++] = value;
    return QN_OK;
}

int dev_model_param(const struct dev_model *d, const char *name, double *out)
{
    for (size_t i = 0; i < d->n_params; i++) {
        if (strcmp(d->param_names[i], name) == 0) {
            *out = d->params[i];
            return QN_OK;
        }
    }
    return QN_ENOTFOUND;
}

int dev_has_variability(const struct dev_model *d)
{
    for (size_t i = 0; i < d->n_params; i++)
        if (d->vary[i].dist != DEV_DIST_NONE)
            return 1;
    return 0;
}

int dev_has_noise(const struct dev_model *d)
{
    return d->noise.output_sd > 0 || d->noise.drive_sd > 0;
}

int dev_param_can_vary(const struct dev_model *d, const char *name)
{
    double unused;
    if (d->kind == DEV_HODGKIN_HUXLEY && strcmp(name, "v0") == 0)
        return 0;
    return dev_model_param(d, name, &unused) == QN_OK;
}

int dev_param_value_ok(const struct dev_model *d, const char *name, double v)
{
    if (!isfinite(v))
        return 0;
    if ((d->kind == DEV_CRN_RELU && strcmp(name, "kappa") == 0) ||
        (d->kind == DEV_HODGKIN_HUXLEY && strcmp(name, "cm") == 0))
        return v > 0;
    return 1;
}

size_t dev_n_inputs(const struct dev_model *d)
{
    switch (d->drive) {
    case DRIVE_DOT: return 1;
    case DRIVE_DOT_SQ: return 2;
    case DRIVE_FULL: return 2 * (size_t)d->fan_in;
    }
    return 1;
}

void dev_input_name(const struct dev_model *d, size_t i, char *buf, size_t cap)
{
    if (d->drive != DRIVE_FULL)
        snprintf(buf, cap, "u%zu", i + 1);
    else if (i < (size_t)d->fan_in)
        snprintf(buf, cap, "x%zu", i + 1);
    else
        snprintf(buf, cap, "a%zu", i - (size_t)d->fan_in + 1);
}

int dev_is_ode(const struct dev_model *d)
{
    return d->kind != DEV_NEURON && d->kind != DEV_ALMOST_NEURON;
}

int dev_is_differentiable(const struct dev_model *d)
{
    return !dev_is_ode(d) ||
           (d->readout.kind != READ_SPIKE_RATE && d->readout.kind != READ_SPIKE_COUNT);
}

/* Fills err and returns code. */
static int dev__fail(struct dev_error *err, int code, const char *field, const char *msg)
{
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->msg, sizeof err->msg, "%s", msg);
    return code;
}

/* Checks that every parameter of a built-in kind is one it knows. */
static int dev__check_builtin_params(const struct dev_model *d, struct dev_error *err)
{
    for (size_t i = 0; i < d->n_params; i++) {
        int known = 0;
        for (size_t k = 0; k < sizeof dev__defaults / sizeof dev__defaults[0]; k++)
            known |= dev__defaults[k].kind == d->kind &&
                     strcmp(dev__defaults[k].name, d->param_names[i]) == 0;
        if (!known) {
            char field[64], msg[128];
            snprintf(field, sizeof field, "params/%s", d->param_names[i]);
            snprintf(msg, sizeof msg, "unknown parameter for kind %s", dev_kind_name(d->kind));
            return dev__fail(err, QN_ESPEC, field, msg);
        }
        if (!isfinite(d->params[i])) {
            char field[64];
            snprintf(field, sizeof field, "params/%s", d->param_names[i]);
            return dev__fail(err, QN_ESPEC, field, "must be a finite number");
        }
    }
    return QN_OK;
}

/* Checks drive, readout and solver fields common to all kinds. */
static int dev__check_common(const struct dev_model *d, struct dev_error *err)
{
    if (d->drive == DRIVE_FULL && (d->fan_in < 1 || d->fan_in > DEV_MAX_FANIN))
        return dev__fail(err, QN_ESPEC, "fan_in", "must be an integer from 1 to 16 for drive full");
    if (d->kind == DEV_ALMOST_NEURON && d->drive == DRIVE_DOT)
        return dev__fail(err, QN_ESPEC, "drive", "almost_neuron needs drive dot_sq or full");
    if (!isfinite(d->eps))
        return dev__fail(err, QN_ESPEC, "params/eps", "must be a finite number");
    if (!dev_is_ode(d))
        return QN_OK;
    const struct dev_readout *r = &d->readout;
    if (!(r->t_max > 0) || !isfinite(r->t_max))
        return dev__fail(err, QN_ESPEC, "readout/t_max", "must be a positive number");
    if (!(r->tol > 0) || !isfinite(r->tol))
        return dev__fail(err, QN_ESPEC, "readout/tol", "must be a positive number");
    if (!isfinite(r->threshold))
        return dev__fail(err, QN_ESPEC, "readout/threshold", "must be a finite number");
    if (!(r->transient >= 0) || !isfinite(r->transient))
        return dev__fail(err, QN_ESPEC, "readout/transient", "must be a number >= 0");
    if (r->kind == READ_SPIKE_RATE && !(dev_transient(r) < r->t_max))
        return dev__fail(err, QN_ESPEC, "readout/transient",
                         "must be below t_max: the rate is measured after the transient");
    const struct dev_solver *s = &d->solver;
    if (!(s->rtol >= 0) || !(s->atol >= 0) || s->rtol + s->atol <= 0 || !isfinite(s->rtol) ||
        !isfinite(s->atol))
        return dev__fail(err, QN_ESPEC, "solver/rtol", "rtol and atol must be >= 0, not both 0");
    if (!(s->h0 > 0) || !isfinite(s->h0))
        return dev__fail(err, QN_ESPEC, "solver/h0", "must be a positive number");
    if (s->max_steps < 1)
        return dev__fail(err, QN_ESPEC, "solver/max_steps", "must be a positive integer");
    for (size_t i = 0; i < d->n_states; i++)
        if (!isfinite(d->y0[i]))
            return dev__fail(err, QN_ESPEC, "state", "initial values must be finite");
    return QN_OK;
}

/* Checks parameters specific to the built-in ODE kinds. */
static int dev__check_builtin(const struct dev_model *d, struct dev_error *err)
{
    int rc = dev__check_builtin_params(d, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < d->n_params; i++)
        if (!dev_param_value_ok(d, d->param_names[i], d->params[i])) {
            char field[64];
            snprintf(field, sizeof field, "params/%s", d->param_names[i]);
            return dev__fail(err, QN_ESPEC, field, "must be positive");
        }
    return QN_OK;
}

int dev_model_prepare(struct dev_model *d, struct dev_error *err)
{
    if (d->compiled) {
        dev__compiled_free(d->compiled);
        d->compiled = NULL;
    }
    int rc = dev__check_common(d, err);
    if (rc)
        return rc;
    switch (d->kind) {
    case DEV_NEURON:
    case DEV_ALMOST_NEURON:
    case DEV_CRN_RELU:
    case DEV_HODGKIN_HUXLEY: rc = dev__check_builtin(d, err); break;
    case DEV_ODE:
    case DEV_REACTIONS: rc = QN_OK; break;
    }
    if (rc)
        return rc;
    if (d->kind == DEV_HODGKIN_HUXLEY)
        dev__hh_initial_state(d);
    return dev__compile(d, err);
}

void dev_model_close(struct dev_model *d)
{
    for (size_t i = 0; i < DEV_MAX_STATES; i++) {
        free(d->rhs_src[i]);
        d->rhs_src[i] = NULL;
    }
    for (size_t i = 0; i < DEV_MAX_REACTIONS; i++) {
        free(d->reaction_src[i]);
        d->reaction_src[i] = NULL;
    }
    free(d->output_src);
    d->output_src = NULL;
    dev__compiled_free(d->compiled);
    d->compiled = NULL;
}
