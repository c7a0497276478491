/*
 * spec_fingerprint.c: a device's canonical form, the fingerprint a surrogate
 * is matched by, and the differences between two of them.
 *
 * The canonical form is built from the prepared model, not from the JSON a
 * user wrote, so every default is filled in and two spellings of the same
 * device ("kappa": 0.01 and "kappa": 1e-2; a readout left out and the same
 * readout written out) have the same form, while any difference in the
 * physics (kind, drive, a parameter, the readout, the solver, a right-hand
 * side, a reaction) shows. The name is not part of it: renaming a device
 * does not change what it computes; nor are readout fields the readout does
 * not read (tol outside steady_state, threshold outside the spike readouts).
 * Nor are a device's variability and noise (issue 12): they describe how
 * instances of the device spread around it and how noisy each evaluation is,
 * not the nominal system a surrogate is fitted to, so a surrogate of the
 * nominal device still matches a device that only adds variability or noise
 * (tests/schema/test_spec.c checks it).
 * Expressions compare without their whitespace (not algebraically: "a+b"
 * and "b+a" differ); reactions compare in their parsed form ("Y + Y" is
 * "2 Y"), as a set (their order does not matter). Numbers are written with
 * 17 significant digits (exact for a double); object keys are sorted.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

/* Sets key to a new value (NULL: out of memory, reported by the caller's last check). */
static void spec_fp__set(json_t *o, const char *key, json_t *v)
{
    if (o && v)
        json_object_set_new(o, key, v);
    else
        json_decref(v);
}

/* The named parameters, and the analytic kinds' activation and eps. */
static json_t *spec_fp__params(const struct dev_model *d)
{
    json_t *p = json_object();
    for (size_t i = 0; i < d->n_params; i++)
        spec_fp__set(p, d->param_names[i], json_real(d->params[i]));
    if (d->kind == DEV_NEURON || d->kind == DEV_ALMOST_NEURON)
        spec_fp__set(p, "activation", json_string(act_name(d->activation)));
    if (d->kind == DEV_ALMOST_NEURON)
        spec_fp__set(p, "eps", json_real(d->eps));
    return p;
}

/* The ODE kinds' readout and solver, as they are in force. */
static void spec_fp__ode(json_t *o, const struct dev_model *d)
{
    const struct dev_readout *r = &d->readout;
    const struct dev_solver *s = &d->solver;
    json_t *ro = json_pack("{ss sf}", "kind", dev_readout_name(r->kind), "t_max", r->t_max);
    if (ro && r->kind == READ_STEADY_STATE)
        spec_fp__set(ro, "tol", json_real(r->tol));
    if (ro && (r->kind == READ_SPIKE_RATE || r->kind == READ_SPIKE_COUNT))
        spec_fp__set(ro, "threshold", json_real(r->threshold));
    if (ro && r->kind == READ_SPIKE_RATE)
        spec_fp__set(ro, "transient", json_real(dev_transient(r)));
    spec_fp__set(o, "readout", ro);
    spec_fp__set(o, "solver", json_pack("{ss sf sf sf sI}", "method", dev_method_name(s->method),
                                        "rtol", s->rtol, "atol", s->atol, "h0", s->h0,
                                        "max_steps", (json_int_t)s->max_steps));
}

/* An expression's source without its whitespace, as a new JSON string. */
static json_t *spec_fp__expr(const char *src)
{
    size_t n = strlen(src), k = 0;
    char *t = malloc(n + 1);
    if (!t)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)src[i]))
            t[k++] = src[i];
    t[k] = '\0';
    json_t *s = json_string(t);
    free(t);
    return s;
}

static int spec_fp__cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The reactions in canonical text (dev_reaction_text), sorted: a set. */
static json_t *spec_fp__reactions(const struct dev_model *d)
{
    char text[DEV_MAX_REACTIONS][256];
    const char *order[DEV_MAX_REACTIONS];
    for (size_t k = 0; k < d->n_reactions; k++) {
        if (dev_reaction_text(d, k, text[k], sizeof text[k]))
            snprintf(text[k], sizeof text[k], "%s", d->reaction_src[k]);
        order[k] = text[k];
    }
    qsort(order, d->n_reactions, sizeof *order, spec_fp__cmp);
    json_t *rx = json_array();
    for (size_t k = 0; rx && k < d->n_reactions; k++)
        json_array_append_new(rx, json_string(order[k]));
    return rx;
}

/* The user-written system of ode and reactions: states, sources, output. */
static void spec_fp__system(json_t *o, const struct dev_model *d)
{
    json_t *state = json_object(), *rhs = json_object();
    for (size_t i = 0; i < d->n_states; i++) {
        spec_fp__set(state, d->state_names[i], json_real(d->y0[i]));
        if (d->rhs_src[i])
            spec_fp__set(rhs, d->state_names[i], spec_fp__expr(d->rhs_src[i]));
    }
    spec_fp__set(o, "state", state);
    if (d->kind == DEV_REACTIONS) {
        json_decref(rhs);
        spec_fp__set(o, "reactions", spec_fp__reactions(d));
    } else {
        spec_fp__set(o, "rhs", rhs);
    }
    spec_fp__set(o, "output", d->output_src ? spec_fp__expr(d->output_src) : json_null());
}

json_t *spec_device_canonical(const struct dev_model *d)
{
    json_t *o = json_pack("{ss ss}", "kind", dev_kind_name(d->kind), "drive",
                          dev_drive_name(d->drive));
    if (o && d->drive == DRIVE_FULL)
        spec_fp__set(o, "fan_in", json_integer(d->fan_in));
    spec_fp__set(o, "params", spec_fp__params(d));
    if (o && dev_is_ode(d))
        spec_fp__ode(o, d);
    if (o && (d->kind == DEV_ODE || d->kind == DEV_REACTIONS))
        spec_fp__system(o, d);
    return o;
}

char *spec_device_fingerprint(const struct dev_model *d)
{
    json_t *o = spec_device_canonical(d);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    return text;
}

/* Appends "path a vs b" for every leaf where a and b differ (a missing side is "-"). */
static void spec_fp__diff(const json_t *a, const json_t *b, const char *path, char *buf,
                          size_t cap, size_t *len)
{
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        char sub[SPEC_PATH_MAX];
        json_object_foreach((json_t *)a, k, v) {
            spec_path_key(sub, sizeof sub, path, k);
            spec_fp__diff(v, json_object_get(b, k), sub, buf, cap, len);
        }
        json_object_foreach((json_t *)b, k, v) {
            spec_path_key(sub, sizeof sub, path, k);
            if (!json_object_get(a, k))
                spec_fp__diff(NULL, v, sub, buf, cap, len);
        }
        return;
    }
    if (a && b && json_equal((json_t *)a, (json_t *)b))
        return;
    char *ta = a ? json_dumps(a, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)) : NULL;
    char *tb = b ? json_dumps(b, JSON_ENCODE_ANY | JSON_REAL_PRECISION(10)) : NULL;
    if (*len < cap)
        *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s %s vs %s", *len ? "; " : "",
                                 path[0] ? path + 1 : "(device)", ta ? ta : "-", tb ? tb : "-");
    free(ta);
    free(tb);
}

int spec_device_differences(const struct dev_model *a, const struct dev_model *b, char *buf,
                            size_t cap)
{
    json_t *ca = spec_device_canonical(a), *cb = spec_device_canonical(b);
    size_t len = 0;
    buf[0] = '\0';
    int rc = ca && cb ? QN_OK : QN_ENOMEM;
    if (rc == QN_OK)
        spec_fp__diff(ca, cb, "", buf, cap, &len);
    json_decref(ca);
    json_decref(cb);
    return rc ? rc : len > 0;
}
