/*
 * catalog.c: the catalog's connection pool (see catalog.h).
 */
#include "catalog.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

struct catalog {
    char *db;                                  /* database path (owned) */
    pthread_mutex_t mu;                        /* guards pool and n_pool */
    struct store *pool[CATALOG_POOL_IDLE_MAX]; /* idle connections (owned) */
    size_t n_pool;
};

int catalog_create(const char *db, struct catalog **out)
{
    *out = NULL;
    struct catalog *c = calloc(1, sizeof *c);
    if (!c)
        return QN_ENOMEM;
    c->db = strdup(db);
    if (!c->db || pthread_mutex_init(&c->mu, NULL)) {
        free(c->db);
        free(c);
        return QN_ENOMEM;
    }
    *out = c;
    return 0;
}

void catalog_destroy(struct catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        store_close(c->pool[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->db);
    free(c);
}

const char *catalog_db(const struct catalog *c) { return c->db; }

struct store *catalog_acquire(struct catalog *c)
{
    struct store *s = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n_pool)
        s = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->mu);
    if (s)
        return s;
    char msg[STORE_MSG_MAX];
    if (store_open(c->db, &s, msg, sizeof msg)) {
        fprintf(stderr, "qn: cannot open %s: %s\n", c->db, msg);
        return NULL;
    }
    return s;
}

void catalog_release(struct catalog *c, struct store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->n_pool < CATALOG_POOL_IDLE_MAX) {
        c->pool[c->n_pool++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    store_close(s);
}
