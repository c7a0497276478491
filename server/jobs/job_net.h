/*
 * job_net.h: the network of a train spec resolved against the store: each
 * layer's device (a prepared model and its JSON), its via, and its frozen
 * surrogate. Shared by train jobs (from the user's spec) and job_model.c
 * (from a model's stored spec, where every device is inline and every
 * surrogate an id: what evaluate jobs and predict rebuild).
 */
#ifndef QN_JOB_NET_H
#define QN_JOB_NET_H

#include <jansson.h>
#include <stdint.h>

#include "net.h"
#include "spec.h"
#include "store.h"

struct job_netdef {
    size_t n_layers;
    size_t devices[NET_MAX_LAYERS];          /* devices per layer */
    enum net_via via[NET_MAX_LAYERS];
    enum net_connect connect[NET_MAX_LAYERS]; /* full layers: the wiring */
    enum net_init init[NET_MAX_LAYERS];      /* initial weights */
    struct dev_model dev[NET_MAX_LAYERS];    /* prepared (have_dev) */
    int have_dev[NET_MAX_LAYERS];
    json_t *dev_json[NET_MAX_LAYERS];        /* the device object (new references) */
    struct surrogate sur[NET_MAX_LAYERS];    /* loaded (have_sur) */
    int have_sur[NET_MAX_LAYERS];
    int64_t sur_id[NET_MAX_LAYERS];          /* its id in the store */
    int twin[NET_MAX_LAYERS];                /* the layer said "twin": another device's surrogate */
    int sur_matched[NET_MAX_LAYERS];         /* the surrogate's fingerprint is the device's */
    struct net_cells_spec cells[NET_MAX_LAYERS]; /* node devices or edge cells; a cell list
                                                    borrowed from the train spec */
};

/*
 * Resolves t's layers (borrowed) into *nd: devices by reference or inline,
 * surrogates by reference (checked against the device), each via checked.
 * Returns 0 or QN_ESPEC with *err at the layer's field. job_netdef_close(nd)
 * whatever the result.
 */
int job_netdef_resolve(struct store *s, const struct train_spec *t, struct job_netdef *nd,
                       struct spec_error *err);
void job_netdef_close(struct job_netdef *nd);

/* Nonzero when the surrogate of layer l is conditioned on every parameter of
 * its device that varies between instances (and the device has some): it
 * then answers for each instance of a chip. */
int job_netdef_sur_covers(const struct job_netdef *nd, size_t l);

/* Nonzero when a chip changes layer l: its device has variability and the
 * layer solves it per instance (via device or physics_aware, a full closed
 * form) or computes it via a surrogate conditioned on a varying parameter. */
int job_netdef_chip_matters(const struct job_netdef *nd, size_t l);

/* The engine's layer specs (pointing into nd, which must outlive the net). */
void job_netdef_layers(const struct job_netdef *nd, struct net_layer_spec *out);

/* Nonzero when some layer of nd is a layer of edge cells. */
int job_netdef_has_edges(const struct job_netdef *nd);

/* {"src": [..], "dst": [..]} of edge layer L's cells (new reference; NULL: no memory). */
json_t *job_net_cell_list(const struct net_layer *L);

/* A copy of the spec object `spec` (borrowed) with every network layer's
 * device inline and surrogate an id, and the seed explicit: what a model
 * stores so it can be rebuilt. New reference, NULL when out of memory. */
json_t *job_netdef_spec(const struct job_netdef *nd, const json_t *spec, uint64_t seed);

#endif
