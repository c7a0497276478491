/*
 * job_net.c: network layers of a train spec resolved against the store (see
 * job_net.h).
 */
#include "job_net.h"

#include <stdio.h>
#include <string.h>

#include "job.h"
#include "qn_err.h"
#include "spool_net.h"

/* "/spec/network/<l>/<key>" into p. */
static void job_net__path(char *p, size_t cap, size_t l, const char *key)
{
    snprintf(p, cap, "/spec/network/%zu/%s", l, key);
}

/* Resolves layer l: its device, its surrogate, its via (es: trained by forward passes
 * only, so via device takes any readout). */
static int job_net__layer(struct store *s, const struct train_layer_spec *L, size_t l, int es,
                          struct job_netdef *nd, struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    job_net__path(p, sizeof p, l, "device");
    int rc = job_resolve_device_json(s, &L->device, p, &nd->dev[l], &nd->dev_json[l], err);
    if (rc)
        return rc;
    nd->have_dev[l] = 1;
    nd->devices[l] = L->devices;
    nd->via[l] = L->via;
    nd->connect[l] = L->connect;
    nd->init[l] = L->init;
    nd->twin[l] = L->twin;
    nd->cells[l] = (struct net_cells_spec){L->cells, L->n_cells, L->cell_src, L->cell_dst};
    snprintf(p, sizeof p, "/spec/network/%zu", l);
    if ((rc = spec_layer_wiring(L, &nd->dev[l], p, err)))
        return rc;
    if (L->has_surrogate) {
        job_net__path(p, sizeof p, l, "surrogate");
        rc = job_resolve_surrogate(s, &L->surrogate, p, &nd->dev[l], L->twin, &nd->sur[l],
                                   &nd->sur_id[l], &nd->sur_matched[l], err);
        if (rc)
            return rc;
        nd->have_sur[l] = 1;
    }
    job_net__path(p, sizeof p, l, "via");
    return job_check_via(&nd->dev[l], L->via, nd->have_sur[l], es, p, err);
}

int job_netdef_resolve(struct store *s, const struct train_spec *t, struct job_netdef *nd,
                       struct spec_error *err)
{
    memset(nd, 0, sizeof *nd);
    nd->n_layers = t->n_layers;
    size_t in = 0; /* inputs of layer l (0: the data's, unknown here) */
    for (size_t l = 0; l < t->n_layers; l++) {
        int rc = job_net__layer(s, &t->layers[l], l, t->optim.kind == OPTIM_ES, nd, err);
        if (rc)
            return rc;
        char p[SPEC_PATH_MAX];
        snprintf(p, sizeof p, "/spec/network/%zu", l);
        if (nd->dev[l].drive == DRIVE_FULL && t->train.adapt.enabled)
            return spec_fail(err, p, "a layer of full devices has a fixed wiring; \"adapt\" "
                             "needs dot or dot_sq layers");
        if (nd->dev[l].drive == DRIVE_FULL && in && (size_t)nd->dev[l].fan_in > in)
            return spec_fail(err, p, "fan_in %d exceeds the %zu devices of layer %zu",
                             nd->dev[l].fan_in, in, l - 1);
        in = nd->devices[l];
    }
    return 0;
}

void job_netdef_close(struct job_netdef *nd)
{
    for (size_t l = 0; l < NET_MAX_LAYERS; l++) {
        if (nd->have_dev[l])
            dev_model_close(&nd->dev[l]);
        if (nd->have_sur[l])
            surrogate_close(&nd->sur[l]);
        json_decref(nd->dev_json[l]);
    }
    memset(nd, 0, sizeof *nd);
}

void job_netdef_layers(const struct job_netdef *nd, struct net_layer_spec *out)
{
    for (size_t l = 0; l < nd->n_layers; l++) {
        out[l].devices = nd->devices[l];
        out[l].dev = &nd->dev[l];
        out[l].via = nd->via[l];
        out[l].sur = nd->have_sur[l] ? &nd->sur[l] : NULL;
        out[l].forward_only = 0;
        out[l].connect = nd->connect[l];
    }
}

int job_netdef_has_edges(const struct job_netdef *nd)
{
    for (size_t l = 0; l < nd->n_layers; l++)
        if (nd->cells[l].cells == NET_CELLS_EDGE)
            return 1;
    return 0;
}

json_t *job_net_cell_list(const struct net_layer *L)
{
    return spool_cell_list(L->csrc, L->cdst, L->n_cells);
}

json_t *job_netdef_spec(const struct job_netdef *nd, const json_t *spec, uint64_t seed)
{
    json_t *copy = json_deep_copy(spec);
    json_t *net = json_object_get(copy, "network");
    int bad = !copy || json_array_size(net) != nd->n_layers;
    for (size_t l = 0; !bad && l < nd->n_layers; l++) {
        json_t *L = json_array_get(net, l);
        bad = json_object_set(L, "device", nd->dev_json[l]) != 0;
        if (!bad && nd->have_sur[l]) /* the id, and whether it is this device's own */
            bad = json_object_set_new(L, "surrogate", json_integer(nd->sur_id[l])) != 0 ||
                  json_object_set_new(L, "surrogate_matched",
                                      json_boolean(nd->sur_matched[l])) != 0;
    }
    if (!bad)
        bad = json_object_set_new(copy, "seed", json_integer((json_int_t)seed)) != 0;
    if (bad) {
        json_decref(copy);
        return NULL;
    }
    return copy;
}

/* Nonzero when surrogate s is conditioned on the parameter `name`. */
static int job_net__cond_on(const struct surrogate *s, const char *name)
{
    for (size_t k = 0; k < s->n_cond; k++)
        if (strcmp(s->cond_names[k], name) == 0)
            return 1;
    return 0;
}

int job_netdef_sur_covers(const struct job_netdef *nd, size_t l)
{
    const struct dev_model *d = &nd->dev[l];
    if (!nd->have_sur[l] || !dev_has_variability(d))
        return 0;
    for (size_t i = 0; i < d->n_params; i++)
        if (d->vary[i].dist != DEV_DIST_NONE && !job_net__cond_on(&nd->sur[l], d->param_names[i]))
            return 0;
    return 1;
}

/* Nonzero when layer l's surrogate is conditioned on some parameter that varies. */
static int job_net__sur_varies(const struct job_netdef *nd, size_t l)
{
    const struct dev_model *d = &nd->dev[l];
    for (size_t i = 0; nd->have_sur[l] && i < d->n_params; i++)
        if (d->vary[i].dist != DEV_DIST_NONE && job_net__cond_on(&nd->sur[l], d->param_names[i]))
            return 1;
    return 0;
}

int job_netdef_chip_matters(const struct job_netdef *nd, size_t l)
{
    enum net_via v = nd->via[l];
    if (!dev_has_variability(&nd->dev[l]))
        return 0;
    return v == VIA_DEVICE || v == VIA_PHYSICS_AWARE ||
           (v == VIA_EXACT && nd->dev[l].drive == DRIVE_FULL) ||
           (v == VIA_SURROGATE && job_net__sur_varies(nd, l));
}
