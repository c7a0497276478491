/*
 * spool_net.c: networks and datasets in the spool (spool_net.h).
 */
#include "spool_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"
#include "spool.h"

/* "surrogate-L.bin" into name. */
static void spool__sur_name(char *name, size_t cap, size_t l)
{
    snprintf(name, cap, "surrogate-%zu.bin", l);
}

/* A JSON array of the n indices v (new reference; NULL: no memory). */
static json_t *spool__indices(const size_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer((json_int_t)v[i])))
            json_decref(a), a = NULL;
    return a;
}

json_t *spool_cell_list(const size_t *src, const size_t *dst, size_t n)
{
    return json_pack("{so so}", "src", spool__indices(src, n), "dst", spool__indices(dst, n));
}

int spool_cell_list_read(const json_t *list, size_t **buf, struct net_cells_spec *out)
{
    const json_t *src = json_object_get(list, "src"), *dst = json_object_get(list, "dst");
    size_t k = json_array_size(src);
    if (k < 1 || k > NET_MAX_CELLS || json_array_size(dst) != k)
        return QN_EFORMAT;
    if (!(*buf = malloc(2 * k * sizeof **buf)))
        return QN_ENOMEM;
    for (size_t i = 0; i < 2 * k; i++) {
        const json_t *x = json_array_get(i < k ? src : dst, i % k);
        if (!json_is_integer(x) || json_integer_value(x) < 0)
            return QN_EFORMAT;
        (*buf)[i] = (size_t)json_integer_value(x);
    }
    *out = (struct net_cells_spec){NET_CELLS_EDGE, k, *buf, *buf + k};
    return 0;
}

/* "cells": "edge" and the "cell_list" of an edge layer into o. Returns 0 or QN_ENOMEM. */
static int spool__cells_write(const struct net_cells_spec *c, json_t *o)
{
    if (!c || c->cells != NET_CELLS_EDGE)
        return 0;
    if (json_object_set_new(o, "cells", json_string(net_cells_name(NET_CELLS_EDGE))))
        return QN_ENOMEM;
    if (!c->src)
        return 0;
    json_t *list = spool_cell_list(c->src, c->dst, c->n_cells);
    return !list || json_object_set_new(o, "cell_list", list) ? QN_ENOMEM : 0;
}

/* One layer's object, and its surrogate into dir. */
static int spool__layer_write(const char *dir, const struct spool_layer *L, size_t l,
                              json_t **out, char *msg, size_t cap)
{
    *out = json_pack("{sI sO ss ss sb}", "devices", (json_int_t)L->devices, "device", L->device,
                     "via", net_via_name(L->via), "connect", net_connect_name(L->connect),
                     "surrogate", L->sur != NULL);
    if (!*out)
        return QN_ENOMEM;
    if (spool__cells_write(L->cells, *out))
        return QN_ENOMEM;
    if (!L->sur)
        return 0;
    void *blob = NULL;
    size_t len = 0;
    char name[32];
    spool__sur_name(name, sizeof name, l);
    int rc = surrogate_to_blob(L->sur, &blob, &len);
    if (rc == 0)
        rc = spool_blob_write(dir, name, blob, len, msg, cap);
    free(blob);
    return rc;
}

int spool_net_write(const char *dir, const struct spool_layer *L, size_t n_layers,
                    json_t **network, char *msg, size_t cap)
{
    json_t *arr = json_array();
    int rc = arr ? 0 : QN_ENOMEM;
    for (size_t l = 0; rc == 0 && l < n_layers; l++) {
        json_t *o = NULL;
        rc = spool__layer_write(dir, &L[l], l, &o, msg, cap);
        if (rc == 0 && json_array_append_new(arr, o))
            rc = QN_ENOMEM;
        else if (rc)
            json_decref(o);
    }
    if (rc) {
        json_decref(arr);
        arr = NULL;
    }
    *network = arr;
    return rc;
}

/* The index of `name` among the n names of name_of, or -1. */
static int spool__find(const char *name, const char *(*name_of)(int), int n)
{
    for (int i = 0; name && i < n; i++)
        if (strcmp(name_of(i), name) == 0)
            return i;
    return -1;
}

static const char *spool__via(int i) { return net_via_name((enum net_via)i); }
static const char *spool__connect(int i) { return net_connect_name((enum net_connect)i); }

/* An edge layer's "cells" and "cell_list" of o into n (layer l); a node layer's
 * absence of them. Returns 0, QN_EFORMAT, or QN_ENOMEM. */
static int spool__cells_open(const json_t *o, size_t l, struct spool_net *n)
{
    const json_t *c = json_object_get(o, "cells"), *list = json_object_get(o, "cell_list");
    n->cells[l] = (struct net_cells_spec){NET_CELLS_NODE, 0, NULL, NULL};
    if (!c && !list)
        return 0;
    if (!json_is_string(c) || strcmp(json_string_value(c), net_cells_name(NET_CELLS_EDGE)) != 0)
        return QN_EFORMAT;
    n->cells[l].cells = NET_CELLS_EDGE;
    return list ? spool_cell_list_read(list, &n->cell_buf[l], &n->cells[l]) : 0;
}

/* Layer l of the network: its device prepared, its surrogate loaded. */
static int spool__layer_open(const char *dir, json_t *o, size_t l, int forward_only,
                             struct spool_net *n, char *msg, size_t cap)
{
    json_int_t devices = 0;
    json_t *device = NULL;
    const char *via = NULL, *connect = NULL;
    int has_sur = 0;
    struct spec_error e = {{0}, {0}};
    if (json_unpack(o, "{sI so ss ss sb}", "devices", &devices, "device", &device, "via", &via,
                    "connect", &connect, "surrogate", &has_sur) ||
        devices < 1 || spool__find(via, spool__via, 4) < 0 ||
        spool__find(connect, spool__connect, 3) < 0) {
        snprintf(msg, cap, "network layer %zu of the job file is malformed", l);
        return QN_EFORMAT;
    }
    int rc = spool__cells_open(o, l, n);
    if (rc) {
        snprintf(msg, cap, "network layer %zu of the job file has a malformed cell list", l);
        return rc;
    }
    if (spec_device_parse(device, "/device", &n->dev[l], &e)) {
        snprintf(msg, cap, "network layer %zu: %s: %s", l, e.path, e.msg);
        return QN_EFORMAT;
    }
    n->have_dev[l] = 1;
    if (has_sur) {
        char name[32];
        void *blob = NULL;
        size_t len = 0;
        spool__sur_name(name, sizeof name, l);
        int rc = spool_blob_read(dir, name, &blob, &len, msg, cap);
        if (rc == 0 && (rc = surrogate_from_blob(blob, len, &n->sur[l])))
            snprintf(msg, cap, "%s/%s is not a surrogate", dir, name);
        free(blob);
        if (rc)
            return rc;
        n->have_sur[l] = 1;
    }
    n->ls[l] = (struct net_layer_spec){
        .devices = (size_t)devices, .dev = &n->dev[l],
        .via = (enum net_via)spool__find(via, spool__via, 4),
        .sur = has_sur ? &n->sur[l] : NULL, .forward_only = forward_only,
        .connect = (enum net_connect)spool__find(connect, spool__connect, 3)};
    return 0;
}

int spool_net_open(const char *dir, const json_t *network, int forward_only,
                   struct spool_net *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    size_t n = json_array_size(network);
    if (n < 1 || n > NET_MAX_LAYERS) {
        snprintf(msg, cap, "the job file's network has %zu layers", n);
        return QN_EFORMAT;
    }
    out->n_layers = n;
    for (size_t l = 0; l < n; l++) {
        int rc = spool__layer_open(dir, json_array_get(network, l), l, forward_only, out, msg,
                                   cap);
        if (rc)
            return rc;
    }
    return 0;
}

void spool_net_close(struct spool_net *n)
{
    for (size_t l = 0; l < NET_MAX_LAYERS; l++) {
        if (n->have_dev[l])
            dev_model_close(&n->dev[l]);
        if (n->have_sur[l])
            surrogate_close(&n->sur[l]);
        free(n->cell_buf[l]);
    }
    memset(n, 0, sizeof *n);
}

json_t *spool_net_domain(const struct net *n)
{
    json_t *o = json_object();
    for (size_t l = 0; o && l < n->n_layers; l++) {
        double f;
        char key[24];
        if (net_domain_fraction(n, l, &f))
            continue;
        snprintf(key, sizeof key, "%zu", l);
        if (json_object_set_new(o, key, json_real(f))) {
            json_decref(o);
            return NULL;
        }
    }
    if (o && json_object_size(o) == 0) {
        json_decref(o);
        return json_null();
    }
    return o;
}

/* prefix + suffix into name. */
static void spool__data_name(char *name, size_t cap, const char *prefix, const char *suffix)
{
    snprintf(name, cap, "%s_%s.qna", prefix, suffix);
}

int spool_data_write(const char *dir, const char *prefix, const struct data_set *ds, char *msg,
                     size_t cap)
{
    _Static_assert(sizeof(int) == 4, "labels travel as int32");
    char name[128];
    size_t dx[2] = {ds->n, ds->d}, dy[2] = {ds->n, ds->t};
    spool__data_name(name, sizeof name, prefix, "x");
    int rc = spool_array_write(dir, name, SPOOL_F32, 2, dx, ds->x, msg, cap);
    if (rc)
        return rc;
    spool__data_name(name, sizeof name, prefix, ds->labels ? "labels" : "y");
    if (ds->labels)
        return spool_array_write(dir, name, SPOOL_I32, 1, &ds->n, ds->labels, msg, cap);
    return spool_array_write(dir, name, SPOOL_F32, 2, dy, ds->y, msg, cap);
}

int spool_data_read(const char *dir, const char *prefix, size_t n_classes, struct data_set *out,
                    char *msg, size_t cap)
{
    struct spool_array x = {0}, y = {0};
    char name[128];
    memset(out, 0, sizeof *out);
    spool__data_name(name, sizeof name, prefix, "x");
    int rc = spool_array_read(dir, name, SPOOL_F32, &x, msg, cap);
    spool__data_name(name, sizeof name, prefix, n_classes ? "labels" : "y");
    if (rc == 0)
        rc = spool_array_read(dir, name, n_classes ? SPOOL_I32 : SPOOL_F32, &y, msg, cap);
    int shapes = rc == 0 && x.rank == 2 && y.dims[0] == x.dims[0] &&
                 (n_classes ? y.rank == 1 : y.rank == 2);
    if (rc == 0 && !shapes) {
        snprintf(msg, cap, "the staged %s dataset's arrays disagree in shape", prefix);
        rc = QN_EFORMAT;
    }
    if (rc == 0)
        rc = data_alloc(out, x.dims[0], x.dims[1], n_classes, n_classes ? 0 : y.dims[1]);
    if (rc == 0) {
        memcpy(out->x, x.data, x.count * sizeof(float));
        memcpy(n_classes ? (void *)out->labels : (void *)out->y, y.data, y.count * 4);
    }
    spool_array_free(&x);
    spool_array_free(&y);
    return rc;
}
