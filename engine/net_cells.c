/* net_cells.c: the kernels of layers of edge cells (see net_cells.h). */
#include "net_cells.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

/* The cell list of edge layer L from spec s: s's list (checked against L's
 * widths), or one cell per edge, cell j n_in + i on i -> j. */
int net_cells_init(struct net_layer *L, const struct net_cells_spec *s)
{
    int given = s->src && s->dst;
    if ((!given && (s->src || s->dst || s->n_cells)) || (given && !s->n_cells))
        return QN_EINVAL;
    size_t nc = given ? s->n_cells : L->n_in * L->n_out;
    if (!given && L->n_out > NET_MAX_CELLS / L->n_in)
        return QN_EINVAL;
    if (nc > NET_MAX_CELLS)
        return QN_EINVAL;
    L->n_cells = L->n_elem = nc;
    L->csrc = malloc(nc * sizeof *L->csrc);
    L->cdst = malloc(nc * sizeof *L->cdst);
    L->cact = calloc(nc, sizeof *L->cact);
    L->cheb = calloc(nc, sizeof *L->cheb);
    if (!L->csrc || !L->cdst || !L->cact || !L->cheb)
        return QN_ENOMEM;
    for (size_t c = 0; c < nc; c++) {
        L->csrc[c] = given ? s->src[c] : c % L->n_in;
        L->cdst[c] = given ? s->dst[c] : c / L->n_in;
        if (L->csrc[c] >= L->n_in || L->cdst[c] >= L->n_out)
            return QN_EINVAL;
    }
    return QN_OK;
}

/* The drives u_c = a_c x_src + b_c of every cell of edge layer L for B rows of L->xs. */
void net_cells_drives(struct net_layer *L, const float *a, const float *b, size_t B)
{
    size_t nc = L->n_cells;
    for (size_t r = 0; r < B; r++) {
        const float *x = L->xs + r * L->n_in;
        float *u = L->u + r * nc;
        for (size_t c = 0; c < nc; c++)
            u[c] = a[c] * x[L->csrc[c]] + b[c];
    }
}

/* The outputs of edge layer L: y_j = the sum of its cells' outputs with dst j. */
void net_cells_sum(struct net_layer *L, size_t B)
{
    size_t nc = L->n_cells;
    memset(L->y, 0, B * L->n_out * sizeof *L->y);
    for (size_t r = 0; r < B; r++) {
        const float *ye = L->ye + r * nc;
        float *y = L->y + r * L->n_out;
        for (size_t c = 0; c < nc; c++)
            y[L->cdst[c]] += ye[c];
    }
}

/* Adds each cell's |output| into L->cact and |x_src| |y_dst| into L->cheb (edge
 * layer L, B rows). */
void net_cells_track(struct net_layer *L, size_t B)
{
    size_t nc = L->n_cells;
    for (size_t r = 0; r < B; r++) {
        const float *x = L->xs + r * L->n_in, *y = L->y + r * L->n_out, *ye = L->ye + r * nc;
        for (size_t c = 0; c < nc; c++) {
            L->cact[c] += fabs((double)ye[c]);
            L->cheb[c] += fabs((double)x[L->csrc[c]]) * fabs((double)y[L->cdst[c]]);
        }
    }
}

/* Backward through edge layer L: with d = dy_dst g_c, da_c += d x_src, db_c += d,
 * dx_src += d a_c. */
void net_cells_backward(const struct net_layer *L, const float *a, float *da, float *db,
                        const float *dy, float *dx, size_t B)
{
    size_t nc = L->n_cells;
    for (size_t r = 0; r < B; r++) {
        const float *x = L->xs + r * L->n_in, *g = L->g + r * nc, *dyr = dy + r * L->n_out;
        float *dxr = dx ? dx + r * L->n_in : NULL;
        for (size_t c = 0; c < nc; c++) {
            float d = dyr[L->cdst[c]] * g[c];
            da[c] += d * x[L->csrc[c]];
            db[c] += d;
            if (dxr)
                dxr[L->csrc[c]] += d * a[c];
        }
    }
}

/* The map of edge layer l's cells from O to N (see net_remap). */
void net_cells_remap_index(const struct net_layer *O, const struct net_layer *N,
                           const struct net_cell_remap *cm, size_t l, size_t *map, float *fac)
{
    const size_t *from = cm ? cm->from[l] : NULL;
    for (size_t c = 0; c < N->n_cells; c++) {
        size_t f = from ? from[c] : c;
        map[N->off_w + c] = O->off_w + f;
        fac[N->off_w + c] = from && cm->a_fac[l] ? cm->a_fac[l][c] : 1.0f;
        map[N->off_b + c] = O->off_b + f;
        fac[N->off_b + c] = from && cm->b_fac[l] ? cm->b_fac[l][c] : 1.0f;
    }
    map[N->off_s] = O->off_s, fac[N->off_s] = 1.0f;
}

/* The new cell list of edge layer L under m into spec s: src then dst in *buf (new,
 * 2 n_cells entries; free() it). */
int net_cells_remap_list(const struct net_layer *L, const struct net_cell_remap *cm, size_t l,
                         struct net_cells_spec *s, size_t **buf)
{
    const size_t *from = cm ? cm->from[l] : NULL;
    size_t nc = from ? cm->cells[l] : L->n_cells;
    *buf = malloc(2 * nc * sizeof **buf);
    if (!*buf)
        return QN_ENOMEM;
    for (size_t c = 0; c < nc; c++) {
        size_t f = from ? from[c] : c;
        (*buf)[c] = L->csrc[f], (*buf)[nc + c] = L->cdst[f];
    }
    *s = (struct net_cells_spec){NET_CELLS_EDGE, nc, *buf, *buf + nc};
    return QN_OK;
}
