/* qt_engine.c: engine test helpers (see qt_engine.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "qt_engine.h"

#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "nn.h"
#include "optim.h"
#include "surrogate.h"

void qt_dev_prepare(struct dev_model *d)
{
    struct dev_error err;
    if (dev_model_prepare(d, &err))
        fail_msg("prepare: %s: %s", err.field, err.msg);
}

void qt_neuron(struct dev_model *d, enum act_kind act)
{
    dev_model_init(d, DEV_NEURON);
    d->activation = act;
    qt_dev_prepare(d);
}

void qt_crn(struct dev_model *d)
{
    dev_model_init(d, DEV_CRN_RELU);
    qt_dev_prepare(d);
}

void qt_make_surrogate(struct surrogate *s, size_t n_in, uint64_t seed)
{
    memset(s, 0, sizeof *s);
    size_t sizes[3] = {n_in, 6, 1};
    enum act_kind act[2] = {ACT_TANH, ACT_IDENTITY};
    assert_int_equal(mlp_create(&s->mlp, 2, sizes, act), 0);
    assert_int_equal(mlp_init_params(s->mlp, seed), 0);
    s->n_in = n_in;
    for (size_t k = 0; k < n_in; k++)
        s->in_mean[k] = 0.1f * (float)(k + 1), s->in_std[k] = 1.5f + (float)k;
    s->out_mean = 0.3f, s->out_std = 2.0f;
}

double qt_ref_surrogate(const struct surrogate *s, const double *u)
{
    const struct mlp *m = s->mlp;
    double a[64], z[64];
    size_t w = s->n_in;
    for (size_t k = 0; k < w; k++)
        a[k] = (u[k] - s->in_mean[k]) / s->in_std[k];
    for (size_t l = 0; l < m->n_layers; l++) {
        struct mlp_layer_view v = mlp_layer_view(m, m->params, l);
        size_t out = m->sizes[l + 1];
        for (size_t j = 0; j < out; j++) {
            double acc = v.b[j];
            for (size_t i = 0; i < w; i++)
                acc += (double)v.w[j * w + i] * a[i];
            z[j] = act_eval(m->act[l], acc);
        }
        memcpy(a, z, out * sizeof *a);
        w = out;
    }
    return a[0] * s->out_std + s->out_mean;
}

void qt_snap_take(struct qt_snap *s, const struct net *n, const struct optim *o)
{
    s->n_params = n->n_params, s->n_state = optim_state_len(o), s->t = o->t;
    s->params = malloc(s->n_params * sizeof *s->params);
    s->state = malloc(s->n_state * sizeof *s->state);
    memcpy(s->params, n->params, s->n_params * sizeof *s->params);
    memcpy(s->state, o->state, s->n_state * sizeof *s->state);
}

void qt_snap_restore(const struct qt_snap *s, struct net *n, struct optim *o)
{
    memcpy(n->params, s->params, s->n_params * sizeof(float));
    memcpy(o->state, s->state, s->n_state * sizeof(float));
    o->t = s->t;
}

void qt_snap_free(struct qt_snap *s)
{
    free(s->params), free(s->state);
    s->params = s->state = NULL;
}
