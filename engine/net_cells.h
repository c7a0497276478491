/*
 * net_cells.h: the kernels of layers of edge cells (net.h), for net.c only.
 *
 * An edge layer's cells are a flat list: cell c connects input csrc[c] to
 * output cdst[c] with its own a_c and b_c. These kernels walk that list
 * (build it, form the drives, sum the cells into their nodes, track the
 * scores' statistics, backpropagate, remap it in a change of architecture);
 * evaluating the devices is net.c's, through the same paths as node layers.
 * None allocates except net_cells_init and net_cells_remap_list.
 */
#ifndef QN_NET_CELLS_H
#define QN_NET_CELLS_H

#include <stddef.h>

#include "net.h"

/* The cell list of edge layer L (n_in and n_out set) from spec s: s's list,
 * or one cell per edge, cell j n_in + i on i -> j; allocates L->csrc, cdst,
 * cact and cheb (freed with the layer). Returns 0, QN_EINVAL (too many cells,
 * an index out of range, a half-given list), or QN_ENOMEM. */
int net_cells_init(struct net_layer *L, const struct net_cells_spec *s);

/* The drives u_c = a_c x_src + b_c of every cell for B rows of L->xs into L->u;
 * a and b (n_cells) borrowed. */
void net_cells_drives(struct net_layer *L, const float *a, const float *b, size_t B);

/* The outputs of B rows: y_j = the sum of L->ye over the cells with dst j. */
void net_cells_sum(struct net_layer *L, size_t B);

/* Adds each cell's |output| into L->cact and |x_src| |y_dst| into L->cheb (B rows). */
void net_cells_track(struct net_layer *L, size_t B);

/* Backward for B rows: with d = dy_dst g_c, da_c += d x_src, db_c += d, and
 * dx_src += d a_c (dx may be NULL; the caller clears it). a (n_cells) borrowed. */
void net_cells_backward(const struct net_layer *L, const float *a, float *da, float *db,
                        const float *dy, float *dx, size_t B);

/* For every a and b of new edge layer N, the old parameter of layer O it
 * comes from (map) and its factor (fac), as cm says for layer l (cm NULL:
 * the cells stay); the input scale too. */
void net_cells_remap_index(const struct net_layer *O, const struct net_layer *N,
                           const struct net_cell_remap *cm, size_t l, size_t *map, float *fac);

/* The new cell list of edge layer L under cm (layer l) into s: src then dst
 * in *buf (new, 2 n_cells entries; the caller frees it). Returns 0 or
 * QN_ENOMEM. */
int net_cells_remap_list(const struct net_layer *L, const struct net_cell_remap *cm, size_t l,
                         struct net_cells_spec *s, size_t **buf);

#endif
