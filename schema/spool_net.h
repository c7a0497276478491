/*
 * spool_net.h: networks and datasets in the spool (spool.h), for the job
 * types that build a network on qn-mpi's ranks (evaluate; train later).
 *
 * A network travels as job.json's "network" array, one object per layer:
 *   {"devices": N, "device": {...inline device...}, "via": "device",
 *    "connect": "random", "surrogate": true}
 * and, for a layer of edge cells, "cells": "edge" and its "cell_list"
 * {"src": [..], "dst": [..]} (absent: one cell per edge)
 * with the layer's frozen surrogate, when "surrogate" is true, in
 * surrogate-L.bin (L the layer's index; the store's blob bytes). The
 * parameters of a trained model go in an array file of their own (f32).
 *
 * A dataset travels as three array files under one prefix P: P_x.qna (f32,
 * (n, d)) and either P_labels.qna (i32, (n)) or P_y.qna (f32, (n, t));
 * its number of classes is the caller's to put in job.json.
 */
#ifndef QN_SPOOL_NET_H
#define QN_SPOOL_NET_H

#include <jansson.h>
#include <stddef.h>

#include "data.h"
#include "device.h"
#include "net.h"
#include "surrogate.h"

/* One layer as the daemon describes it (all borrowed). */
struct spool_layer {
    size_t devices;
    const json_t *device;          /* the inline device object */
    enum net_via via;
    enum net_connect connect;
    const struct surrogate *sur;   /* NULL: none */
    const struct net_cells_spec *cells; /* NULL: node devices */
};

/* A network's layers rebuilt from the spool: what net_create takes. */
struct spool_net {
    size_t n_layers;
    struct net_layer_spec ls[NET_MAX_LAYERS]; /* pointing into dev and sur below */
    struct net_cells_spec cells[NET_MAX_LAYERS]; /* what net_create_cells takes: node devices,
                                                    or edge cells (lists in cell_buf) */
    size_t *cell_buf[NET_MAX_LAYERS];         /* owned: an edge layer's src then dst */
    struct dev_model dev[NET_MAX_LAYERS];     /* prepared (have_dev) */
    int have_dev[NET_MAX_LAYERS];
    struct surrogate sur[NET_MAX_LAYERS];     /* loaded (have_sur) */
    int have_sur[NET_MAX_LAYERS];
};

/*
 * The daemon: writes each layer's surrogate into dir and the "network"
 * array into *network (new reference). 0, QN_ENOMEM, or the spool's I/O
 * codes with msg.
 */
int spool_net_write(const char *dir, const struct spool_layer *L, size_t n_layers,
                    json_t **network, char *msg, size_t cap);

/*
 * qn-mpi: parses `network` (borrowed) and loads its surrogates from dir into
 * *out, every layer forward-only when forward_only. 0, QN_EFORMAT (msg
 * names the layer and field), QN_ENOMEM, I/O codes. spool_net_close(out)
 * whatever the result.
 */
int spool_net_open(const char *dir, const json_t *network, int forward_only,
                   struct spool_net *out, char *msg, size_t cap);
void spool_net_close(struct spool_net *n);

/* An edge layer's cell list as JSON, {"src": [..], "dst": [..]} from the n
 * indices src and dst (what the spool, checkpoints' "arch" and results
 * carry). New reference, NULL when out of memory. */
json_t *spool_cell_list(const size_t *src, const size_t *dst, size_t n);

/*
 * Reads such a cell list (borrowed) into *out, NET_CELLS_EDGE with its
 * src and dst pointing into *buf: a new array of 2 n indices (src then dst)
 * that the caller owns and frees, also when this fails (left as it was when
 * nothing was allocated). 0; QN_EFORMAT when the lists are empty, longer than
 * NET_MAX_CELLS, of different lengths or hold anything but indices >= 0
 * (*out untouched); QN_ENOMEM.
 */
int spool_cell_list_read(const json_t *list, size_t **buf, struct net_cells_spec *out);

/* The out-of-domain fraction of every layer that evaluated a surrogate since
 * net_domain_reset ({"0": 0.012}), or null when none did: what an evaluate
 * job reports, on one process or several. New reference, NULL when out of
 * memory. */
json_t *spool_net_domain(const struct net *n);

/* Writes ds (borrowed) as prefix_x.qna and prefix_labels.qna or prefix_y.qna. */
int spool_data_write(const char *dir, const char *prefix, const struct data_set *ds, char *msg,
                     size_t cap);
/* Reads them back into *out (data_close it, also on failure), with
 * n_classes for a labelled set; QN_EFORMAT when the shapes disagree. */
int spool_data_read(const char *dir, const char *prefix, size_t n_classes, struct data_set *out,
                    char *msg, size_t cap);

#endif
