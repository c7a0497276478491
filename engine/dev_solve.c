/*
 * dev_solve.c: solving a device: integration, readouts, Newton polish, and
 * gradients of the readout with respect to the inputs.
 *
 * One integration loop over GSL's odeiv2 evolve serves every readout. The
 * state vector is the device's ODE, optionally followed by forward
 * sensitivities S_k = dy/din_k (S_k' = J S_k + df/din_k) when a gradient of a
 * time readout is asked for, and by a quadrature q' = out(t, y) (with its own
 * sensitivities) for time averages. Steady states stop as soon as the
 * right-hand side is below tolerance, are polished by Newton's method on the
 * exact Jacobian, and are differentiated by the implicit function theorem
 * (dy_ss/din = -J^-1 df/din), which needs no sensitivities at all.
 *
 * Events between steps: a peak and a spike crossing fall between accepted
 * steps, which for a smooth trajectory are long. Sampling only the accepted
 * points biased the peak (low, with the gradient taken at the wrong time)
 * and the spike times. Readouts that need them keep the previous accepted
 * point and, when a step brackets an event (d out/dt changes from + to -;
 * out crosses the threshold upwards), locate it by the Illinois variant of
 * regula falsi, each trial time reached by integrating from the previous
 * point with a second driver at the same tolerances (a peak must be exact to
 * the solver's accuracy: its value and gradient are the readout); a spike
 * crossing by the cubic Hermite interpolant of the output between the two
 * points (values and slopes; error O(h^4), far below what a rate needs, at
 * the cost of two right-hand sides per spike). At a located interior
 * maximum the peak's gradient is the sensitivity there (the time derivative
 * term vanishes).
 *
 * Periodic spike trains: under a constant drive a system that does not name
 * t is autonomous, so once the state at a threshold crossing repeats, every
 * later crossing is the same one a whole period later. A spike readout (not
 * recording a trajectory; readout.cycles "skip") locates each crossing's time
 * and state on the solution, and once the interval and the state repeat to a
 * tenth of the solver's error scale it moves the current point forward by
 * whole periods (state unchanged), counts the spikes it skipped, and
 * integrates the last two or three periods to t_max as before: about 630
 * steps instead of 2600 for a firing Hodgkin-Huxley device, the same value to
 * the solver's tolerance. Likewise a solve whose state sits on a stable fixed
 * point below the threshold stops there (dev__at_rest): nothing later can
 * cross.
 *
 * Trade-off: a GSL driver is allocated per state dimension in use (plain and
 * with sensitivities) once per dev_work, so a sweep allocates nothing per row.
 */
#include <assert.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "qn_err.h"

#define DEV__HUGE 1e100        /* a state beyond this has diverged */
#define DEV__CANCEL_EVERY 64   /* steps between checks of the cancel flag */
#define DEV__NEWTON_ITERS 30
#define DEV__NEWTON_TRIGGER 1e-5 /* |f| below which a Newton polish is first tried */
#define DEV__LOCATE_ITERS 60     /* regula falsi iterations per event, at most */
#define DEV__LOCATE_TOL 1e-11    /* relative width at which an event's bracket is narrow enough */
#define DEV__CYCLE_KEEP 3        /* crossings kept to recognise a periodic spike train */
#define DEV__CYCLE_TOL 0.1       /* error scales within which successive cycles are the same */
#define DEV__CYCLE_FLOOR 0.01    /* error scales below which a change is rounding */
#define DEV__REST_TOL 100.0      /* error scales from a stable fixed point that count as on it */
#define DEV__REST_EVERY 4        /* accepted steps between looks for a rest state */

/* What the GSL system callbacks see. */
struct dev__ctx {
    const struct dev_model *d; /* borrowed */
    const double *in;          /* borrowed inputs of the current solve */
    int sens;                  /* nonzero: sensitivities follow the state */
    int quad;                  /* nonzero: a time-average quadrature follows */
    double *J;                 /* (n, n) scratch */
    double *Jp;                /* (n, n_in) scratch */
    double *gy;                /* (n) scratch */
    double *gin;               /* (n_in) scratch */
    double u1;                 /* built-in kinds: the drive u1 of the current solve */
};

/* A right-hand side callback as GSL's odeiv2 calls it. */
typedef int (*dev__rhs_fn)(double t, const double y[], double f[], void *params);

/*
 * Accepted points of one solve, for dev_trajectory, thinned as they come:
 * the last point is always the newest; those before it are at least dt
 * apart in time. When all `keep` slots are full, every other kept point is
 * dropped and dt doubles, so at most `keep` points are ever held.
 */
struct dev__rec {
    size_t n, cap;       /* points held, slots allocated */
    size_t keep;         /* the most points held (>= 4); 0: no limit */
    double dt;           /* least spacing of the kept points (0 until the first thinning) */
    double *t, *y, *out; /* (cap), (cap, n_states), (cap) */
};

struct dev_solver_state {
    struct dev__ctx ctx;
    gsl_odeiv2_system sys[2];   /* 0: plain, 1: with sensitivities */
    gsl_odeiv2_driver *drv[2];  /* owned, NULL when unused */
    gsl_odeiv2_driver *loc[2];  /* event location drivers (owned, NULL when unused) */
    double *yp;                 /* (max dim) the previous accepted point, when events are located */
    double *yr;                 /* (max dim) the state at a trial event time */
    double *y;                  /* (max dim) state */
    double *f;                  /* (n) right-hand side */
    double *J, *Jp, *gy, *gin;  /* scratch for ctx */
    double *best;               /* (n_in) gradient at the peak so far */
    double *lu;                 /* (n, n) Newton / IFT factorisation, row-major */
    size_t *piv;                /* (n) its row pivots */
    double *bx;                 /* (n) right-hand side, solved in place */
    gsl_matrix *A;              /* (n, n) copy of J for eigenvalues */
    gsl_vector_complex *eval;   /* (n) eigenvalues */
    gsl_eigen_nonsymm_workspace *eig; /* (n) */
};

/* ---- GSL callbacks ------------------------------------------------------------------------- */

/* Index of the quadrature state. */
static size_t dev__qidx(const struct dev__ctx *x)
{
    size_t n = x->d->compiled->n;
    return n + (x->sens ? n * x->d->compiled->n_in : 0);
}

static int dev__gsl_rhs(double t, const double y[], double f[], void *params)
{
    struct dev__ctx *x = params;
    const struct dev_model *d = x->d;
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    dev__sys_rhs(d, t, y, x->in, f);
    if (x->sens) {
        dev__sys_jac(d, t, y, x->in, x->J, NULL);
        dev__sys_jin(d, t, y, x->in, x->Jp);
        for (size_t k = 0; k < n_in; k++) {
            const double *S = y + n + k * n;
            double *dS = f + n + k * n;
            for (size_t i = 0; i < n; i++) {
                double s = x->Jp[i * n_in + k];
                for (size_t j = 0; j < n; j++)
                    s += x->J[i * n + j] * S[j];
                dS[i] = s;
            }
        }
    }
    if (x->quad) {
        size_t q = dev__qidx(x);
        f[q] = dev__sys_out(d, t, y, x->in);
        if (x->sens) {
            dev__sys_out_grad(d, t, y, x->in, x->gy, x->gin);
            for (size_t k = 0; k < n_in; k++) {
                double s = x->gin[k];
                for (size_t j = 0; j < n; j++)
                    s += x->gy[j] * y[n + k * n + j];
                f[q + 1 + k] = s;
            }
        }
    }
    return GSL_SUCCESS;
}

/* crn_relu's plain system with the solve's drive (st->ctx.u1): what a
 * hand-written loop would pass GSL, with no dispatch on the kind. */
static int dev__gsl_rhs_crn(double t, const double y[], double f[], void *params)
{
    (void)t;
    const struct dev__ctx *x = params;
    f[0] = dev__crn_rhs(x->d->compiled->p[DEV__P_KAPPA], x->u1, y[0]);
    return GSL_SUCCESS;
}

/* hodgkin_huxley's plain system with the solve's drive, likewise. */
static int dev__gsl_rhs_hh(double t, const double y[], double f[], void *params)
{
    (void)t;
    const struct dev__ctx *x = params;
    const double *p = x->d->compiled->p;
    dev__hh_rhs(p, p[DEV__P_GAIN] * x->u1, y, f);
    return GSL_SUCCESS;
}

/* The Jacobian for implicit steppers: exact for the state and quadrature;
 * block-diagonal J for the sensitivities (their dependence on y through J is
 * left out, which only slows Newton inside the stepper, not the accuracy). */
static int dev__gsl_jac(double t, const double y[], double *dfdy, double dfdt[], void *params)
{
    struct dev__ctx *x = params;
    const struct dev_model *d = x->d;
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    size_t dim = n + (x->sens ? n * n_in : 0) + (x->quad ? 1 + (x->sens ? n_in : 0) : 0);
    memset(dfdy, 0, dim * dim * sizeof *dfdy);
    memset(dfdt, 0, dim * sizeof *dfdt);
    dev__sys_jac(d, t, y, x->in, x->J, dfdt);
    size_t blocks = x->sens ? 1 + n_in : 1;
    for (size_t b = 0; b < blocks; b++)
        for (size_t i = 0; i < n; i++)
            memcpy(dfdy + (b * n + i) * dim + b * n, x->J + i * n, n * sizeof *dfdy);
    if (x->quad) {
        size_t q = dev__qidx(x);
        dev__sys_out_grad(d, t, y, x->in, x->gy, NULL);
        memcpy(dfdy + q * dim, x->gy, n * sizeof *dfdy);
    }
    return GSL_SUCCESS;
}

/* ---- work ---------------------------------------------------------------------------------- */

/* Nonzero when the readout is a spike readout that skips repeated cycles. */
static int dev__skips_cycles(const struct dev_model *d)
{
    enum dev_readout_kind k = d->readout.kind;
    return (k == READ_SPIKE_RATE || k == READ_SPIKE_COUNT) && d->readout.cycles == DEV_CYCLES_SKIP;
}

/* Nonzero when the readout locates events between accepted points (a
 * spike_count that skips cycles locates its crossings to find the period). */
static int dev__locates(const struct dev_model *d)
{
    return d->readout.kind == READ_PEAK || d->readout.kind == READ_SPIKE_RATE ||
           dev__skips_cycles(d);
}

/* Nonzero when neither the right-hand side nor the output names t, so a
 * solution that returns to a state repeats from there: the built-in kinds
 * (their drive is fixed for a solve), reactions (rates name parameters and
 * inputs only; the output may name t) and ode devices whose right-hand sides
 * and output have an identically zero derivative by t (dev_sys.c leaves jt
 * and dout_dt NULL then). */
static int dev__autonomous(const struct dev_model *d)
{
    const struct dev_compiled *c = d->compiled;
    for (size_t i = 0; d->kind == DEV_ODE && i < c->n; i++)
        if (c->jt[i])
            return 0;
    return !((d->kind == DEV_ODE || d->kind == DEV_REACTIONS) && c->dout_dt);
}

/* Dimension of the integrated vector in mode sens. */
static size_t dev__dim(const struct dev_model *d, int sens)
{
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    int quad = d->readout.kind == READ_TIME_AVERAGE;
    return n + (sens ? n * n_in : 0) + (quad ? 1 + (sens ? n_in : 0) : 0);
}

static const gsl_odeiv2_step_type *dev__stepper(enum dev_method m)
{
    switch (m) {
    case ODE_RKF45: return gsl_odeiv2_step_rkf45;
    case ODE_MSBDF: return gsl_odeiv2_step_msbdf;
    case ODE_RK8PD: break;
    }
    return gsl_odeiv2_step_rk8pd;
}

/* A driver of the system of mode `sens` at the model's tolerances; NULL when out of memory. */
static gsl_odeiv2_driver *dev__driver_new(struct dev_solver_state *st, const struct dev_model *d,
                                          int sens)
{
    return gsl_odeiv2_driver_alloc_y_new(&st->sys[sens], dev__stepper(d->solver.method),
                                         d->solver.h0, d->solver.atol, d->solver.rtol);
}

/* The right-hand side callback of mode `sens`. The plain system of a built-in
 * kind (no sensitivities, no quadrature) gets one with its drive fixed per
 * solve: rk8pd calls it 13 times a step, and for a one-state device the
 * general callback's dispatch (mode, kind, drive) cost as much as the
 * formula. The values are the same bits (dev__crn_rhs, dev__hh_rhs). */
static dev__rhs_fn dev__rhs_for(const struct dev_model *d, int sens)
{
    if (sens || d->readout.kind == READ_TIME_AVERAGE)
        return dev__gsl_rhs;
    if (d->kind == DEV_CRN_RELU)
        return dev__gsl_rhs_crn;
    if (d->kind == DEV_HODGKIN_HUXLEY)
        return dev__gsl_rhs_hh;
    return dev__gsl_rhs;
}

/* Allocates the driver of mode `sens` for dimension dim (and the event
 * location driver when the readout locates events). */
static int dev__driver_alloc(struct dev_solver_state *st, const struct dev_model *d, int sens,
                             size_t dim)
{
    st->sys[sens] = (gsl_odeiv2_system){dev__rhs_for(d, sens), dev__gsl_jac, dim, &st->ctx};
    /* peaks, and the crossings that find a spike train's period, are located
     * by integrating; counted spikes by interpolation */
    int reach = d->readout.kind == READ_PEAK || (dev__skips_cycles(d) && !sens);
    st->drv[sens] = dev__driver_new(st, d, sens);
    if (st->drv[sens] && reach)
        st->loc[sens] = dev__driver_new(st, d, sens);
    return st->drv[sens] && (st->loc[sens] || !reach) ? QN_OK : QN_ENOMEM;
}

int dev_work_init(struct dev_work *w, const struct dev_model *d, const atomic_int *cancel)
{
    memset(w, 0, sizeof *w);
    w->model = d;
    w->nominal = d;
    w->cancel = cancel;
    if (!dev_is_ode(d))
        return QN_OK;
    struct dev_solver_state *st = calloc(1, sizeof *st);
    if (!st)
        return QN_ENOMEM;
    w->st = st;
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    int sens = dev_is_differentiable(d) && d->readout.kind != READ_STEADY_STATE;
    size_t maxdim = dev__dim(d, sens);
    st->y = calloc(maxdim, sizeof *st->y);
    st->f = calloc(n, sizeof *st->f);
    st->J = calloc(n * n, sizeof *st->J);
    st->Jp = calloc(n * n_in, sizeof *st->Jp);
    st->gy = calloc(n, sizeof *st->gy);
    st->gin = calloc(n_in, sizeof *st->gin);
    st->best = calloc(n_in, sizeof *st->best);
    if (dev__locates(d)) {
        st->yp = calloc(maxdim, sizeof *st->yp);
        st->yr = calloc(maxdim, sizeof *st->yr);
        if (!st->yp || !st->yr)
            goto fail;
    }
    st->lu = calloc(n * n, sizeof *st->lu);
    st->piv = calloc(n, sizeof *st->piv);
    st->bx = calloc(n, sizeof *st->bx);
    st->A = gsl_matrix_alloc(n, n);
    st->eval = gsl_vector_complex_alloc(n);
    st->eig = gsl_eigen_nonsymm_alloc(n);
    st->ctx = (struct dev__ctx){d, NULL, 0, 0, st->J, st->Jp, st->gy, st->gin, 0};
    if (!st->y || !st->f || !st->J || !st->Jp || !st->gy || !st->gin || !st->best || !st->lu ||
        !st->piv || !st->bx || !st->A || !st->eval || !st->eig)
        goto fail;
    if (dev__driver_alloc(st, d, 0, dev__dim(d, 0)))
        goto fail;
    if (sens && dev__driver_alloc(st, d, 1, dev__dim(d, 1)))
        goto fail;
    return QN_OK;
fail:
    dev_work_close(w);
    return QN_ENOMEM;
}

/* The work's view of its model, made on first use. Returns it or NULL (out of memory). */
static struct dev_view *dev__view(struct dev_work *w)
{
    if (w->view)
        return w->view;
    struct dev_view *v = malloc(sizeof *v);
    if (!v)
        return NULL;
    v->m = *w->nominal;
    v->c = *w->nominal->compiled;
    v->m.compiled = &v->c;
    dev__builtin_slots(&v->m, v->slot);
    return w->view = v;
}

int dev_work_set_params(struct dev_work *w, const double *theta)
{
    const struct dev_model *d = w->nominal;
    if (theta) {
        struct dev_view *v = dev__view(w);
        if (!v)
            return QN_ENOMEM;
        for (size_t i = 0; i < d->n_params; i++) {
            v->m.params[i] = theta[i];
            if (v->slot[i] >= 0)
                v->c.p[v->slot[i]] = theta[i];
        }
        d = &v->m;
    }
    w->model = d;
    if (w->st)
        w->st->ctx.d = d;
    return QN_OK;
}

void dev_work_close(struct dev_work *w)
{
    free(w->view);
    w->view = NULL;
    w->model = w->nominal;
    struct dev_solver_state *st = w->st;
    if (!st)
        return;
    for (int i = 0; i < 2; i++) {
        if (st->drv[i])
            gsl_odeiv2_driver_free(st->drv[i]);
        if (st->loc[i])
            gsl_odeiv2_driver_free(st->loc[i]);
    }
    free(st->yp), free(st->yr);
    free(st->y), free(st->f), free(st->J), free(st->Jp), free(st->gy), free(st->gin);
    free(st->best);
    free(st->lu), free(st->piv), free(st->bx);
    if (st->A)
        gsl_matrix_free(st->A);
    if (st->eval)
        gsl_vector_complex_free(st->eval);
    if (st->eig)
        gsl_eigen_nonsymm_free(st->eig);
    free(st);
    w->st = NULL;
}

/* ---- the integration loop ------------------------------------------------------------------ */

/* An upward threshold crossing: where it is, and where it is counted. */
struct dev__crossing {
    double t;                 /* its time, located on the integrated solution */
    double counted;           /* its time as the spike readout counts it (Hermite) */
    double y[DEV_MAX_STATES]; /* the state at t */
};

/* What the loop tracks for the readouts. */
struct dev__track {
    double peak;     /* largest output seen */
    size_t spikes;   /* upward threshold crossings */
    double last_out; /* output at the previous accepted point */
    int steady;      /* steady_state: the right-hand side fell below tol */
    double try_below; /* steady_state: attempt a Newton polish when |f| falls below this */
    double t_prev;   /* time of the previous accepted point (st->yp), when events are located */
    double rate_prev; /* peak: d out/dt at the previous accepted point */
    size_t n_late;   /* spike_rate: spikes located after the transient */
    double first_late, last_late; /* spike_rate: their first and last times */
    int skip;        /* nonzero: this solve may skip the cycles of a periodic train */
    int fresh;       /* a crossing was noted since the last periodicity check */
    int rest;        /* nonzero: this solve may stop at a rest state (dev__at_rest) */
    double rest_below; /* try dev__at_rest when |f| falls below this */
    size_t n_cross;  /* crossings noted (the last DEV__CYCLE_KEEP are kept) */
    double change;   /* dev__cycle_change at the previous crossing (HUGE_VAL: none yet) */
    struct dev__crossing cross[DEV__CYCLE_KEEP]; /* the newest last */
};

static double dev__maxabs(const double *v, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs(v[i]);
        if (!(a <= m))
            m = a; /* NaN propagates */
    }
    return m;
}

/* Moves point `from` of rec to slot `to`. */
static void dev__rec_move(struct dev__rec *rec, size_t n, size_t to, size_t from)
{
    rec->t[to] = rec->t[from];
    memmove(rec->y + to * n, rec->y + from * n, n * sizeof *rec->y);
    rec->out[to] = rec->out[from];
}

/* Halves the kept points of a full rec (0, 2, 4, ... and the newest) and
 * sets dt to their spacing, at least twice what it was. */
static void dev__rec_thin(struct dev__rec *rec, size_t n)
{
    size_t last = rec->n - 1, k = 0;
    for (size_t i = 0; i < last; i += 2)
        dev__rec_move(rec, n, k++, i);
    dev__rec_move(rec, n, k++, last);
    rec->n = k;
    double span = (rec->t[k - 1] - rec->t[0]) / (double)(k - 1);
    rec->dt = span > 2 * rec->dt ? span : 2 * rec->dt;
}

/* Appends the point (t, y) to rec, growing it up to rec->keep slots; the
 * newest point replaces the previous newest when that one is closer than
 * dt to the point before it. */
static int dev__record(struct dev__rec *rec, size_t n, double t, const double *y, double out)
{
    if (rec->n >= 2 && rec->t[rec->n - 1] - rec->t[rec->n - 2] < rec->dt)
        rec->n--; /* the previous newest was only there as the newest */
    if (rec->keep && rec->n == rec->keep)
        dev__rec_thin(rec, n);
    if (rec->n == rec->cap) {
        size_t cap = rec->cap ? 2 * rec->cap : 256;
        double *tt = realloc(rec->t, cap * sizeof *tt);
        if (tt)
            rec->t = tt;
        double *yy = realloc(rec->y, cap * n * sizeof *yy);
        if (yy)
            rec->y = yy;
        double *oo = realloc(rec->out, cap * sizeof *oo);
        if (oo)
            rec->out = oo;
        if (!tt || !yy || !oo)
            return QN_ENOMEM;
        rec->cap = cap;
    }
    rec->t[rec->n] = t;
    memcpy(rec->y + rec->n * n, y, n * sizeof *y);
    rec->out[rec->n++] = out;
    return QN_OK;
}

/* d out / d in at the point (t, y) from the sensitivities that follow y, into
 * st->best (the peak readout keeps the one at its maximum; final, the last). */
static void dev__point_grad(struct dev_solver_state *st, const struct dev_model *d, double t,
                           const double *y, const double *in)
{
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    dev__sys_out_grad(d, t, y, in, st->gy, st->gin);
    for (size_t k = 0; k < n_in; k++) {
        double s = st->gin[k];
        for (size_t j = 0; j < n; j++)
            s += st->gy[j] * y[n + k * n + j];
        st->best[k] = s;
    }
}

static void dev__steady_check(struct dev_work *w, struct dev__track *tr, double t,
                              const double *in);
static int dev__at_rest(struct dev_work *w, struct dev__track *tr, double t, const double *in);

/* Integrates from the previous accepted point (t0, st->yp) to t1 into st->yr. */
static int dev__reach(struct dev_work *w, int sens, double t0, double t1)
{
    struct dev_solver_state *st = w->st;
    memcpy(st->yr, st->yp, dev__dim(w->model, sens) * sizeof *st->yr);
    if (!(t1 > t0))
        return QN_OK;
    gsl_odeiv2_driver *drv = st->loc[sens];
    gsl_odeiv2_driver_reset_hstart(drv, t1 - t0);
    double t = t0;
    return gsl_odeiv2_driver_apply(drv, &t, t1, st->yr) == GSL_SUCCESS ? QN_OK : QN_ESOLVER;
}

/* The event function: d out/dt for a peak, out - threshold for a spike. */
static double dev__event(struct dev_work *w, double t, const double *y, const double *in)
{
    const struct dev_model *d = w->model;
    if (d->readout.kind == READ_PEAK)
        return dev__sys_out_rate(d, t, y, in, w->st->gy, w->st->f);
    return dev__sys_out(d, t, y, in) - d->readout.threshold;
}

/*
 * Locates the event in [a, b] (a: the previous accepted point; fa, fb: the
 * event function there, of opposite signs) by the Illinois variant of regula
 * falsi. The time into *tc, the state there in st->yr.
 */
static int dev__locate(struct dev_work *w, int sens, const double *in, double a, double fa,
                       double b, double fb, double *tc)
{
    double t0 = a, c = b;
    for (int it = 0; it < DEV__LOCATE_ITERS; it++) {
        c = (a * fb - b * fa) / (fb - fa);
        if (!(c > fmin(a, b) && c < fmax(a, b)))
            c = 0.5 * (a + b);
        int rc = dev__reach(w, sens, t0, c);
        if (rc)
            return rc;
        double fc = dev__event(w, c, w->st->yr, in);
        if (fc == 0 || !isfinite(fc))
            break;
        if ((fc > 0) == (fb > 0)) {
            fa /= 2; /* the same end moved twice: halve the other's weight */
        } else {
            a = b;
            fa = fb;
        }
        b = c;
        fb = fc;
        if (fabs(b - a) <= DEV__LOCATE_TOL * (1 + fabs(b)))
            break;
    }
    *tc = c;
    return QN_OK;
}

double dev_hermite_cross(double t0, double o0, double d0, double t1, double o1, double d1,
                         double thr)
{
    double h = t1 - t0, lo = 0, hi = 1;
    for (int it = 0; it < 52; it++) { /* bisection: the bracket holds, the cubic is cheap */
        double s = 0.5 * (lo + hi), s2 = s * s, s3 = s2 * s;
        double p = (2 * s3 - 3 * s2 + 1) * o0 + (s3 - 2 * s2 + s) * h * d0 +
                   (-2 * s3 + 3 * s2) * o1 + (s3 - s2) * h * d1;
        if (p < thr)
            lo = s;
        else
            hi = s;
    }
    return t0 + h * 0.5 * (lo + hi);
}

/* peak: the step just taken brackets an interior maximum; locates it and
 * keeps it (and its gradient) when it is the largest so far. */
static int dev__peak_between(struct dev_work *w, struct dev__track *tr, double t, double rate,
                             const double *in, int sens)
{
    const struct dev_model *d = w->model;
    double tc;
    int rc = dev__locate(w, sens, in, tr->t_prev, tr->rate_prev, t, rate, &tc);
    if (rc)
        return rc;
    double out = dev__sys_out(d, tc, w->st->yr, in);
    if (out > tr->peak) {
        tr->peak = out;
        if (sens)
            dev__point_grad(w->st, d, tc, w->st->yr, in);
    }
    return QN_OK;
}

/*
 * Keeps the crossing in the step just taken (ending at t with output out;
 * counted at time `counted`) for recognising a periodic train, dropping the
 * oldest: its time and state located by regula falsi on the integrated
 * solution (dev__locate), as accurate as the solver. The Hermite interpolant
 * that times the counted spikes is not: its O(h^4) error over a long step
 * through the upstroke jitters the interval by tens of the solver's error
 * scales from spike to spike, which would hide that the orbit repeats. (The
 * skipped spikes are still counted from the counted time, so that they
 * carry the same interpolation error as those integrated before and after.)
 */
static int dev__note_crossing(struct dev_work *w, struct dev__track *tr, double t, double out,
                              double counted, const double *in)
{
    struct dev_solver_state *st = w->st;
    double thr = w->model->readout.threshold, tc = t;
    size_t n = w->model->compiled->n;
    const double *y = st->y;
    if (out > thr) {
        int rc = dev__locate(w, 0, in, tr->t_prev, tr->last_out - thr, t, out - thr, &tc);
        if (rc)
            return rc;
        y = st->yr;
    }
    size_t k = tr->n_cross < DEV__CYCLE_KEEP ? tr->n_cross : DEV__CYCLE_KEEP - 1;
    if (tr->n_cross >= DEV__CYCLE_KEEP)
        memmove(tr->cross, tr->cross + 1, (DEV__CYCLE_KEEP - 1) * sizeof tr->cross[0]);
    tr->cross[k].t = tc;
    tr->cross[k].counted = counted;
    memcpy(tr->cross[k].y, y, n * sizeof *y);
    tr->n_cross++;
    tr->fresh = 1;
    return QN_OK;
}

/* Counts a spike_rate crossing at tc when it falls after the transient (the
 * step that holds it ended at t). */
static void dev__count_late(struct dev__track *tr, double t, double tc, double transient)
{
    if (!(t > transient) || !(tc >= transient))
        return;
    if (tr->n_late++ == 0)
        tr->first_late = tc;
    tr->last_late = tc;
}

/* spike_rate (and spike_count when it skips cycles): the step just taken
 * crossed the threshold upwards; locates the crossing, counts it when it
 * falls after the transient, and when cycles may be skipped keeps it with
 * the state there. */
static int dev__spike_between(struct dev_work *w, struct dev__track *tr, double t, double out,
                              const double *in)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    double thr = d->readout.threshold, tc = t, transient = dev_transient(&d->readout);
    if (!tr->skip && !(t > transient))
        return QN_OK;
    if (out > thr) { /* the slopes at both ends: the interpolant is exact to O(h^4) */
        double d0 = dev__sys_out_rate(d, tr->t_prev, st->yp, in, st->gy, st->f);
        double d1 = dev__sys_out_rate(d, t, st->y, in, st->gy, st->f);
        tc = dev_hermite_cross(tr->t_prev, tr->last_out, d0, t, out, d1, thr);
    }
    if (tr->skip) {
        int rc = dev__note_crossing(w, tr, t, out, tc, in);
        if (rc)
            return rc;
    }
    if (d->readout.kind == READ_SPIKE_RATE)
        dev__count_late(tr, t, tc, transient);
    return QN_OK;
}

/* Updates the readout trackers after an accepted point (t, y); the previous
 * one is (tr->t_prev, st->yp) when the readout locates events. */
static int dev__observe(struct dev_work *w, struct dev__track *tr, double t, const double *y,
                        const double *in, int sens, int first)
{
    const struct dev_model *d = w->model;
    enum dev_readout_kind k = d->readout.kind;
    double out = dev__sys_out(d, t, y, in);
    int rc = QN_OK;
    if ((k == READ_SPIKE_RATE || k == READ_SPIKE_COUNT) && !first &&
        tr->last_out < d->readout.threshold && out >= d->readout.threshold) {
        tr->spikes++;
        if (k == READ_SPIKE_RATE || tr->skip)
            rc = dev__spike_between(w, tr, t, out, in);
    }
    if (k == READ_PEAK) {
        double rate = dev__sys_out_rate(d, t, y, in, w->st->gy, w->st->f);
        /* a maximum the step could hold: a rise the solver's tolerance can see
         * (a settled output's rate changes sign on rounding alone) */
        double rise = tr->rate_prev * (t - tr->t_prev);
        if (!first && rate <= 0 && rise > d->solver.atol + d->solver.rtol * fabs(out))
            rc = dev__peak_between(w, tr, t, rate, in, sens);
        tr->rate_prev = rate;
        if (out > tr->peak) {
            tr->peak = out;
            if (sens)
                dev__point_grad(w->st, d, t, y, in);
        }
    }
    if (k == READ_STEADY_STATE)
        dev__steady_check(w, tr, t, in);
    tr->last_out = out;
    return rc;
}

/* Nonzero when the readout looks at every accepted point; final and
 * time_average read the end of the integration only (a recorded trajectory
 * still observes every point, for its outputs). */
static int dev__watches(const struct dev_model *d)
{
    return d->readout.kind != READ_FINAL && d->readout.kind != READ_TIME_AVERAGE;
}

static int dev__canceled(const struct dev_work *w)
{
    return (w->cancel && atomic_load(w->cancel)) || (w->should_stop && w->should_stop(w->stop_ctx));
}

/* The largest difference between the states a[n] and b[n] in units of the
 * solver's error scale atol + rtol |a_i| (what its step control holds each
 * component's local error to); NaN counts as infinitely far. */
static double dev__scaled_diff(const struct dev_solver *s, const double *a, const double *b,
                               size_t n)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / (s->atol + s->rtol * fabs(a[i]));
        if (!(r <= e))
            e = r;
    }
    return e;
}

/*
 * How far the newest crossing is from repeating the one before, in the
 * solver's error scales: the larger of the change of the interspike interval
 * T, scaled by atol + rtol T, and of each state component, scaled by
 * atol + rtol (|y_i| + T |f_i|). The state's scale has the move that a shift
 * in time of rtol T makes along the orbit: a crossing is located only to
 * about the solver's accuracy, and through the upstroke that moves the
 * voltage by far more than rtol |V| (V is near the threshold, maybe 0 there).
 */
static double dev__cycle_change(struct dev_work *w, const struct dev__track *tr, const double *in)
{
    const struct dev_model *d = w->model;
    const struct dev_solver *s = &d->solver;
    const struct dev__crossing *c = tr->cross;
    size_t n = d->compiled->n;
    double T1 = c[1].t - c[0].t, T2 = c[2].t - c[1].t;
    if (!(T2 > 0))
        return HUGE_VAL;
    double e = fabs(T2 - T1) / (s->atol + s->rtol * T2);
    dev__sys_rhs(d, c[2].t, c[2].y, in, w->st->f);
    for (size_t i = 0; i < n; i++) {
        double scale = s->atol + s->rtol * (fabs(c[2].y[i]) + T2 * fabs(w->st->f[i]));
        double r = fabs(c[2].y[i] - c[1].y[i]) / scale;
        if (!(r <= e))
            e = r; /* NaN propagates: never periodic */
    }
    return e;
}

/*
 * Nonzero when the spike train has become periodic: the newest crossing
 * repeats the one before to DEV__CYCLE_TOL error scales, and what is left of
 * the approach to the cycle is as small. The approach is geometric (the
 * cycle's Floquet multiplier lambda; about 0.1 to 0.2 per period for
 * Hodgkin-Huxley), so after a change c2 that followed c1 what is left is
 * c2 lambda / (1 - lambda) = c2^2 / (c1 - c2); below DEV__CYCLE_FLOOR the
 * change is the integration's own rounding and no estimate is needed.
 */
static int dev__periodic(struct dev_work *w, struct dev__track *tr, const double *in)
{
    if (tr->n_cross < DEV__CYCLE_KEEP)
        return 0;
    double c1 = tr->change, c2 = dev__cycle_change(w, tr, in);
    tr->change = c2;
    if (!(c2 <= DEV__CYCLE_TOL))
        return 0;
    return c2 <= DEV__CYCLE_FLOOR || (c2 < c1 && c2 * c2 <= DEV__CYCLE_TOL * (c1 - c2));
}

/*
 * A periodic solve at the accepted point *t: moves it forward by m whole
 * periods T, leaving at least two periods before t_max to be integrated, with
 * the state unchanged (it is the state m periods later), and counts the m
 * crossings skipped, the newest crossing's counted time plus jT (j = 1..m). The
 * stepper starts afresh from there (keeping its step size).
 */
static void dev__skip_cycles(struct dev_work *w, struct dev__track *tr, gsl_odeiv2_driver *drv,
                             double *t)
{
    const struct dev_readout *r = &w->model->readout;
    double tc = tr->cross[DEV__CYCLE_KEEP - 1].counted;
    double T = tr->cross[DEV__CYCLE_KEEP - 1].t - tr->cross[DEV__CYCLE_KEEP - 2].t;
    double periods = floor((r->t_max - *t) / T) - 2;
    if (!(periods >= 1))
        return;
    size_t m = (size_t)periods;
    *t += (double)m * T;
    tr->spikes += m;
    double transient = dev_transient(r), j0 = fmax(1, ceil((transient - tc) / T));
    if (r->kind == READ_SPIKE_RATE && j0 <= (double)m) {
        if (tr->n_late == 0)
            tr->first_late = tc + j0 * T;
        tr->n_late += m - (size_t)j0 + 1;
        tr->last_late = tc + (double)m * T;
    }
    tr->skip = 0; /* one jump: at most three periods are left */
    gsl_odeiv2_evolve_reset(drv->e);
    gsl_odeiv2_step_reset(drv->s);
}

/* Integrates from the initial state until t_max (or a steady state). On
 * return *t is the final time and st->y the state. */
static int dev__integrate(struct dev_work *w, const double *in, int sens, struct dev__track *tr,
                          struct dev__rec *rec, double *t)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n, dim = dev__dim(d, sens);
    gsl_odeiv2_driver *drv = st->drv[sens];
    st->ctx.in = in;
    st->ctx.sens = sens;
    st->ctx.quad = d->readout.kind == READ_TIME_AVERAGE;
    if (d->kind == DEV_CRN_RELU || d->kind == DEV_HODGKIN_HUXLEY) {
        double u[2];
        dev__drive_values(d, in, u);
        st->ctx.u1 = u[0];
    }
    memset(st->y, 0, dim * sizeof *st->y);
    memcpy(st->y, d->y0, n * sizeof *st->y);
    gsl_odeiv2_driver_reset(drv);
    double h = d->solver.h0, t_max = d->readout.t_max;
    *t = 0;
    *tr = (struct dev__track){.peak = -HUGE_VAL, .try_below = DEV__NEWTON_TRIGGER,
                              .skip = !rec && !sens && dev__skips_cycles(d) &&
                                      dev__autonomous(d),
                              .rest_below = HUGE_VAL,
                              .change = HUGE_VAL};
    tr->rest = tr->skip;
    int rc = dev__observe(w, tr, *t, st->y, in, sens, 1);
    if (rc == QN_OK && rec && dev__record(rec, n, *t, st->y, tr->last_out))
        rc = QN_ENOMEM;
    int locates = dev__locates(d), watch = rec || dev__watches(d);
    assert(!locates || st->yp); /* dev_work_init allocated it for this readout */
    for (size_t steps = 0; rc == QN_OK && *t < t_max && !tr->steady; steps++) {
        if (steps >= d->solver.max_steps)
            return QN_ESOLVER;
        if (w->step_cap && steps >= w->step_cap)
            return QN_ELIMIT;
        if (steps % DEV__CANCEL_EVERY == 0 && dev__canceled(w))
            return QN_ECANCELED;
        if (locates) {
            memcpy(st->yp, st->y, dim * sizeof *st->yp);
            tr->t_prev = *t;
        }
        int s = gsl_odeiv2_evolve_apply(drv->e, drv->c, drv->s, &st->sys[sens], t, t_max, &h,
                                        st->y);
        double m = dev__maxabs(st->y, dim);
        if (!(m < DEV__HUGE))
            return QN_EDIVERGED;
        if (s != GSL_SUCCESS)
            return QN_ESOLVER;
        if (watch)
            rc = dev__observe(w, tr, *t, st->y, in, sens, 0);
        if (rc == QN_OK && tr->fresh) {
            tr->fresh = 0;
            if (dev__periodic(w, tr, in))
                dev__skip_cycles(w, tr, drv, t);
        }
        if (rc == QN_OK && tr->rest && steps % DEV__REST_EVERY == 0 && dev__at_rest(w, tr, *t, in))
            break; /* nothing later is counted */
        if (rc == QN_OK && rec && dev__record(rec, n, *t, st->y, tr->last_out))
            rc = QN_ENOMEM;
    }
    return rc;
}

/* ---- steady states ------------------------------------------------------------------------- */

/* In-place LU with partial pivoting of the row-major (n, n) matrix a. A
 * hand-written one: these systems are tiny, and OpenBLAS's dtrsv (under GSL's
 * LU) takes a process-wide lock that serialises the sweep threads. */
static int dev__lu(double *a, size_t n, size_t *piv)
{
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[p * n + k]))
                p = i;
        piv[k] = p;
        if (!(fabs(a[p * n + k]) > 1e-300))
            return QN_ESINGULAR;
        for (size_t j = 0; p != k && j < n; j++) {
            double t = a[k * n + j];
            a[k * n + j] = a[p * n + j], a[p * n + j] = t;
        }
        for (size_t i = k + 1; i < n; i++) {
            double f = a[i * n + k] /= a[k * n + k];
            for (size_t j = k + 1; j < n; j++)
                a[i * n + j] -= f * a[k * n + j];
        }
    }
    return QN_OK;
}

/* Solves (LU) x = b in place in b, with the pivots of dev__lu. */
static void dev__lu_solve(const double *a, size_t n, const size_t *piv, double *b)
{
    for (size_t k = 0; k < n; k++) {
        double t = b[k];
        b[k] = b[piv[k]], b[piv[k]] = t;
        for (size_t i = k + 1; i < n; i++)
            b[i] -= a[i * n + k] * b[k];
    }
    for (size_t k = n; k-- > 0;) {
        for (size_t j = k + 1; j < n; j++)
            b[k] -= a[k * n + j] * b[j];
        b[k] /= a[k * n + k];
    }
}

/* LU-factorises J(y) into st->lu. QN_ESINGULAR when it is singular. */
static int dev__factor(struct dev_solver_state *st, const struct dev_model *d, double t,
                       const double *y, const double *in)
{
    size_t n = d->compiled->n;
    dev__sys_jac(d, t, y, in, st->lu, NULL);
    return dev__lu(st->lu, n, st->piv);
}

/* Newton's method on f(y) = 0 from y[n], in place. Returns 0 when it
 * converged (f vanished, or the last step was at rounding level), else
 * QN_ENOTCONV (a singular Jacobian, or DEV__NEWTON_ITERS steps). */
static int dev__newton_iterate(struct dev_work *w, double t, const double *in, double *y)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n;
    for (int it = 0; it < DEV__NEWTON_ITERS; it++) {
        dev__sys_rhs(d, t, y, in, st->f);
        if (dev__maxabs(st->f, n) == 0)
            return QN_OK;
        if (dev__factor(st, d, t, y, in))
            return QN_ENOTCONV;
        for (size_t i = 0; i < n; i++)
            st->bx[i] = -st->f[i];
        dev__lu_solve(st->lu, n, st->piv, st->bx);
        double step = 0, size = 0;
        for (size_t i = 0; i < n; i++) {
            y[i] += st->bx[i];
            step = fmax(step, fabs(st->bx[i]));
            size = fmax(size, fabs(y[i]));
        }
        if (!(step > 1e-15 * (1 + size)))
            return QN_OK;
    }
    return QN_ENOTCONV;
}

/* Polishes the near-steady state st->y with Newton's method into y_out[n].
 * The polish counts only when |f| ends below tol and the state moved little
 * (a jump would mean another fixed point): QN_ENOTCONV otherwise. */
static int dev__newton(struct dev_work *w, double t, const double *in, double *y_out)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n;
    double y[DEV_MAX_STATES];
    memcpy(y, st->y, n * sizeof *y);
    (void)dev__newton_iterate(w, t, in, y); /* judged by where it ends, below */
    dev__sys_rhs(d, t, y, in, st->f);
    double moved = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        moved = fmax(moved, fabs(y[i] - st->y[i]));
        scale = fmax(scale, fabs(st->y[i]));
    }
    if (!(dev__maxabs(st->f, n) < d->readout.tol) || moved > 1e-3 * (1 + scale))
        return QN_ENOTCONV;
    memcpy(y_out, y, n * sizeof *y);
    return QN_OK;
}

/* Nonzero when every eigenvalue of J(y) has a negative real part. */
static int dev__stable(struct dev_solver_state *st, const struct dev_model *d, double t,
                       const double *y, const double *in)
{
    size_t n = d->compiled->n;
    dev__sys_jac(d, t, y, in, st->J, NULL);
    if (n == 1)
        return st->J[0] < 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            gsl_matrix_set(st->A, i, j, st->J[i * n + j]);
    if (gsl_eigen_nonsymm(st->A, st->eval, st->eig) != GSL_SUCCESS)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(GSL_REAL(gsl_vector_complex_get(st->eval, i)) < 0))
            return 0;
    return 1;
}

/*
 * Nonzero when the state st->y at t rests: it lies within DEV__REST_TOL of
 * the solver's error scales (atol + rtol |y_i|) of a fixed point y* (Newton
 * converged) that is stable (every eigenvalue of J(y*) has a negative real
 * part) and whose output is below the threshold by ten times as many of the
 * output's error scales. From there the solution only decays into y*, in its
 * linearisation's regime (for Hodgkin-Huxley 100 scales are about 0.01 mV
 * and at most 1e-4 of a gate; the rest state's basin shrinks to that only
 * right next to the drive where it loses stability, which the equivalence
 * test tests/engine/test_device_cycles.c samples densely), so no later
 * crossing can come. Why not 1: rk8pd at its stability limit (a hyperpolarised HH is
 * stiff) holds the state only to about one scale of y*, so it would never
 * rest. Tried when |f(y)| has fallen below a quarter of where it was last
 * tried (Newton and the eigenvalues cost a few right-hand sides).
 */
static int dev__at_rest(struct dev_work *w, struct dev__track *tr, double t, const double *in)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n;
    double thr = d->readout.threshold, y[DEV_MAX_STATES];
    if (!(tr->last_out < thr))
        return 0;
    dev__sys_rhs(d, t, st->y, in, st->f);
    double fn = dev__maxabs(st->f, n);
    if (!(fn < tr->rest_below))
        return 0;
    tr->rest_below = fn / 4;
    memcpy(y, st->y, n * sizeof *y);
    memcpy(y, st->y, n * sizeof *y);
    if (dev__newton_iterate(w, t, in, y) ||
        !(dev__scaled_diff(&d->solver, st->y, y, n) <= DEV__REST_TOL))
        return 0;
    double out = dev__sys_out(d, t, y, in);
    double margin = 10 * DEV__REST_TOL * (d->solver.atol + d->solver.rtol * fabs(out));
    return thr - out > margin && dev__stable(st, d, t, y, in);
}

/* Decides whether the integration has reached a steady state: the right-hand
 * side is below tol, or a Newton polish from here lands on a stable fixed
 * point (large explicit steps near a fixed point jitter above tol, so the
 * polish is what finishes the job). Tries again each time |f| drops 16x. */
static void dev__steady_check(struct dev_work *w, struct dev__track *tr, double t,
                              const double *in)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n;
    double y[DEV_MAX_STATES];
    dev__sys_rhs(d, t, st->y, in, st->f);
    double fn = dev__maxabs(st->f, n);
    if (fn < d->readout.tol) {
        tr->steady = 1;
        return;
    }
    if (!(fn < tr->try_below))
        return;
    tr->try_below = fn / 16;
    if (dev__newton(w, t, in, y) == QN_OK && dev__stable(st, d, t, y, in)) {
        memcpy(st->y, y, n * sizeof *y);
        tr->steady = 1;
    }
}

/* d out/d in at a steady state by the implicit function theorem. */
static int dev__steady_grad(struct dev_work *w, double t, const double *in, double *g)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    int rc = dev__factor(st, d, t, st->y, in);
    if (rc)
        return rc;
    dev__sys_jin(d, t, st->y, in, st->Jp);
    dev__sys_out_grad(d, t, st->y, in, st->gy, st->gin);
    for (size_t k = 0; k < n_in; k++) {
        for (size_t i = 0; i < n; i++)
            st->bx[i] = -st->Jp[i * n_in + k];
        dev__lu_solve(st->lu, n, st->piv, st->bx);
        double s = st->gin[k];
        for (size_t i = 0; i < n; i++)
            s += st->gy[i] * st->bx[i];
        g[k] = s;
    }
    return QN_OK;
}

/* ---- readouts ------------------------------------------------------------------------------ */

/* The readout value (and gradient when g is non-NULL) after integration. */
static int dev__readout(struct dev_work *w, const double *in, const struct dev__track *tr,
                        double t, double *out, double *g)
{
    const struct dev_model *d = w->model;
    struct dev_solver_state *st = w->st;
    size_t n = d->compiled->n, n_in = d->compiled->n_in;
    const double *y = st->y;
    int rc = QN_OK;
    switch (d->readout.kind) {
    case READ_STEADY_STATE:
        if (!tr->steady)
            return QN_ENOTCONV;
        rc = dev__newton(w, t, in, st->y);
        if (rc)
            return rc;
        *out = dev__sys_out(d, t, y, in);
        return g ? dev__steady_grad(w, t, in, g) : QN_OK;
    case READ_FINAL:
        *out = dev__sys_out(d, t, y, in);
        if (g) {
            dev__point_grad(st, d, t, y, in);
            memcpy(g, st->best, n_in * sizeof *g);
        }
        return QN_OK;
    case READ_TIME_AVERAGE: {
        size_t q = n + (g ? n * n_in : 0);
        *out = y[q] / d->readout.t_max;
        for (size_t k = 0; g && k < n_in; k++)
            g[k] = y[q + 1 + k] / d->readout.t_max;
        return QN_OK;
    }
    case READ_PEAK:
        *out = tr->peak;
        if (g)
            memcpy(g, st->best, n_in * sizeof *g);
        return QN_OK;
    case READ_SPIKE_RATE: /* spikes per second, t in ms */
        *out = tr->n_late >= 2
                   ? 1000.0 * (double)(tr->n_late - 1) / (tr->last_late - tr->first_late)
                   : 0.0;
        return QN_OK;
    case READ_SPIKE_COUNT: *out = (double)tr->spikes; return QN_OK;
    }
    return QN_EINVAL;
}

/* Shared body of dev_eval, dev_eval_grad and dev_trajectory. */
static int dev__solve(struct dev_work *w, const double *in, double *out, double *g,
                      struct dev__rec *rec)
{
    const struct dev_model *d = w->model;
    *out = NAN;
    if (!dev_is_ode(d)) {
        dev__closed_form(d, in, out, g);
        return QN_OK;
    }
    if (g && !dev_is_differentiable(d))
        return QN_ENOTDIFF;
    for (size_t k = 0; k < d->compiled->n_in; k++)
        if (!isfinite(in[k]))
            return QN_EINVAL;
    int rc = dev__sys_check_rates(d, in);
    if (rc)
        return rc;
    int sens = g && d->readout.kind != READ_STEADY_STATE;
    struct dev__track tr;
    double t = 0, value = NAN;
    rc = dev__integrate(w, in, sens, &tr, rec, &t);
    if (rc == QN_OK)
        rc = dev__readout(w, in, &tr, t, &value, g);
    if (rc == QN_OK && !isfinite(value))
        rc = QN_EDIVERGED;
    if (rc == QN_OK)
        *out = value;
    return rc;
}

int dev_eval(struct dev_work *w, const double *in, double *out)
{
    return dev__solve(w, in, out, NULL, NULL);
}

int dev_eval_grad(struct dev_work *w, const double *in, double *out, double *dout_din)
{
    return dev__solve(w, in, out, dout_din, NULL);
}

/* Keeps at most max_points of rec, evenly spaced in time, into tr. */
static int dev__decimate(const struct dev__rec *rec, size_t n, size_t max_points,
                         struct dev_traj *tr)
{
    size_t m = rec->n < max_points ? rec->n : max_points;
    if (m < 1)
        m = 1;
    tr->t = malloc(m * sizeof *tr->t);
    tr->y = malloc(m * n * sizeof *tr->y);
    tr->out = malloc(m * sizeof *tr->out);
    if (!tr->t || !tr->y || !tr->out)
        return QN_ENOMEM;
    double t0 = rec->t[0], t1 = rec->t[rec->n - 1];
    size_t src = 0, k = 0;
    for (size_t i = 0; i < m; i++) {
        double target = m > 1 ? t0 + (t1 - t0) * (double)i / (double)(m - 1) : t1;
        while (src + 1 < rec->n && rec->t[src] < target)
            src++;
        if (k > 0 && tr->t[k - 1] == rec->t[src])
            continue; /* an accepted step spans several targets: keep the point once */
        tr->t[k] = rec->t[src];
        memcpy(tr->y + k * n, rec->y + src * n, n * sizeof *tr->y);
        tr->out[k++] = rec->out[src];
    }
    tr->n = k;
    tr->n_states = n;
    return QN_OK;
}

int dev_trajectory(struct dev_work *w, const double *in, size_t max_points, struct dev_traj *tr,
                   double *out)
{
    memset(tr, 0, sizeof *tr);
    *out = NAN;
    if (!dev_is_ode(w->model))
        return dev__solve(w, in, out, NULL, NULL);
    struct dev__rec rec = {.keep = 2 * (max_points > 2 ? max_points : 2) + 1};
    int rc = dev__solve(w, in, out, NULL, &rec);
    int rc2 = rec.n ? dev__decimate(&rec, w->model->compiled->n, max_points, tr) : QN_OK;
    free(rec.t), free(rec.y), free(rec.out);
    if (rc2) {
        dev_traj_free(tr);
        return rc2;
    }
    return rc;
}

void dev_traj_free(struct dev_traj *tr)
{
    free(tr->t), free(tr->y), free(tr->out);
    memset(tr, 0, sizeof *tr);
}
