/* net_replica.c: copies of a network and whole passes over threads (see net_replica.h). */
#include "net_replica.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "qn_err.h"

#define NET_REPLICA_MAX_THREADS 64

int net_replica_create(struct net **out, const struct net *src, size_t n_threads)
{
    struct net_layer_spec spec[NET_MAX_LAYERS];
    struct net_cells_spec cells[NET_MAX_LAYERS]; /* edge layers: their cell lists as they are */
    for (size_t l = 0; l < src->n_layers; l++) {
        const struct net_layer *L = &src->layer[l];
        spec[l] =
            (struct net_layer_spec){L->n_out, L->dev, L->via, L->sur, L->forward_only, L->connect};
        cells[l] = L->edge ? (struct net_cells_spec){NET_CELLS_EDGE, L->n_cells, L->csrc, L->cdst}
                           : (struct net_cells_spec){NET_CELLS_NODE, 0, NULL, NULL};
    }
    struct net *r = NULL;
    int rc = net_create_cells(&r, src->n_in, spec, cells, src->n_layers, src->cap, n_threads,
                              src->seed, src->cancel);
    if (rc)
        return rc;
    for (size_t l = 0; l < src->n_layers; l++) /* the wiring as it is now */
        if (src->layer[l].conn)
            memcpy(r->layer[l].conn, src->layer[l].conn,
                   src->layer[l].n_out * src->layer[l].k * sizeof *r->layer[l].conn);
    net_replica_sync(r, src);
    *out = r;
    return QN_OK;
}

void net_replica_sync(struct net *dst, const struct net *src)
{
    memcpy(dst->params, src->params, src->n_params * sizeof *dst->params);
    for (size_t l = 0; l < src->n_layers; l++) {
        const struct net_layer *S = &src->layer[l];
        struct net_layer *D = &dst->layer[l];
        if (S->theta)
            memcpy(D->theta, S->theta, S->n_elem * S->dev->n_params * sizeof *D->theta);
        D->sur_rows = D->ood_rows = 0;
    }
    dst->chip_on = src->chip_on, dst->chip_seed = src->chip_seed;
    dst->noise_on = src->noise_on, dst->noise_seed = src->noise_seed;
    dst->noise_step = src->noise_step, dst->noise_row0 = src->noise_row0;
    dst->track = 0;
    dst->solves = dst->failed_solves = 0;
}

void net_replica_absorb(struct net *n, struct net *r)
{
    n->solves += r->solves, n->failed_solves += r->failed_solves;
    r->solves = r->failed_solves = 0;
    for (size_t l = 0; l < n->n_layers; l++) {
        n->layer[l].sur_rows += r->layer[l].sur_rows;
        n->layer[l].ood_rows += r->layer[l].ood_rows;
        r->layer[l].sur_rows = r->layer[l].ood_rows = 0;
    }
}

/* What the threads of one net_replica_run share. */
struct net_replica__run {
    struct net *const *reps;
    size_t n_items;
    net_replica_fn fn;
    void *ctx;
    atomic_size_t next;   /* the lowest item not yet taken */
    atomic_size_t failed; /* the lowest item that failed (n_items: none) */
};

/* One thread's part: its index (and replica), and the lowest item it saw fail, with its code. */
struct net_replica__thread {
    struct net_replica__run *run;
    size_t t;
    size_t failed_item; /* run->n_items: none */
    int code;
};

/* Lowers *at to v unless it is already lower. */
static void net_replica__lower(atomic_size_t *at, size_t v)
{
    size_t cur = atomic_load(at);
    while (v < cur && !atomic_compare_exchange_weak(at, &cur, v))
        ;
}

static void *net_replica__work(void *arg)
{
    struct net_replica__thread *th = arg;
    struct net_replica__run *run = th->run;
    for (;;) {
        if (atomic_load(&run->failed) < run->n_items)
            break; /* an item failed: take no more */
        size_t item = atomic_fetch_add(&run->next, 1);
        if (item >= run->n_items)
            break;
        int rc = run->fn(run->reps[th->t], th->t, item, run->ctx);
        if (rc && item < th->failed_item) {
            th->failed_item = item, th->code = rc;
            net_replica__lower(&run->failed, item);
        }
    }
    return NULL;
}

int net_replica_run(struct net *const *reps, size_t n_reps, size_t n_items, net_replica_fn fn,
                    void *ctx)
{
    struct net_replica__run run = {.reps = reps, .n_items = n_items, .fn = fn, .ctx = ctx};
    struct net_replica__thread th[NET_REPLICA_MAX_THREADS];
    pthread_t tid[NET_REPLICA_MAX_THREADS];
    size_t T = n_reps < NET_REPLICA_MAX_THREADS ? n_reps : NET_REPLICA_MAX_THREADS, started = 1;
    atomic_init(&run.next, 0);
    atomic_init(&run.failed, n_items);
    for (size_t t = 0; t < T; t++)
        th[t] = (struct net_replica__thread){&run, t, n_items, 0};
    for (; started < T; started++) /* threads that cannot start leave their items to others */
        if (pthread_create(&tid[started], NULL, net_replica__work, &th[started]) != 0)
            break;
    net_replica__work(&th[0]);
    for (size_t t = 1; t < started; t++)
        pthread_join(tid[t], NULL);
    size_t worst = n_items;
    int rc = QN_OK;
    for (size_t t = 0; t < started; t++)
        if (th[t].failed_item < worst)
            worst = th[t].failed_item, rc = th[t].code;
    return rc;
}
