/* page_cache.c: kept reply pages by (job, key, generation), least recently used dropped first. */
#include "page_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

#define PAGE_CACHE_SLOTS 128 /* pages kept at most (a linear scan stays cheap) */

struct page_cache_entry {
    int64_t job;                  /* 0: a page of no one job */
    char key[PAGE_CACHE_KEY_MAX];
    uint64_t gen;                 /* the generation it was made at (0: for good) */
    uint64_t tag;                 /* the caller's number kept with it */
    char *text;                   /* (len) owned; NULL: a free slot */
    size_t len;
    uint64_t used;                /* the tick of its last use */
};

struct page_cache {
    pthread_mutex_t mu;
    size_t max_bytes, bytes;
    uint64_t tick;
    struct page_cache_entry e[PAGE_CACHE_SLOTS];
};

int page_cache_create(size_t max_bytes, struct page_cache **out)
{
    struct page_cache *c = calloc(1, sizeof *c);
    if (!c)
        return QN_ENOMEM;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return QN_ENOMEM;
    }
    c->max_bytes = max_bytes;
    *out = c;
    return 0;
}

void page_cache_destroy(struct page_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < PAGE_CACHE_SLOTS; i++)
        free(c->e[i].text);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The slot of (job, key), or NULL. Under the mutex. */
static struct page_cache_entry *page_cache__find(struct page_cache *c, int64_t job,
                                                 const char *key)
{
    for (size_t i = 0; i < PAGE_CACHE_SLOTS; i++)
        if (c->e[i].text && c->e[i].job == job && strcmp(c->e[i].key, key) == 0)
            return &c->e[i];
    return NULL;
}

/* A copy of the page of (job, key) when its generation is *gen (any_gen 0)
 * or any (any_gen 1: its generation and tag into *gen, *tag). */
static int page_cache__copy(struct page_cache *c, int64_t job, const char *key, int any_gen,
                            uint64_t *gen, uint64_t *tag, char **text, size_t *len)
{
    if (!c || job < 0)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    struct page_cache_entry *e = page_cache__find(c, job, key);
    if (e && (any_gen || e->gen == *gen)) {
        *text = malloc(e->len ? e->len : 1);
        if (*text) {
            memcpy(*text, e->text, e->len);
            *len = e->len;
            *gen = e->gen;
            *tag = e->tag;
            e->used = ++c->tick;
            rc = 1;
        } else {
            rc = QN_ENOMEM;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int page_cache_get(struct page_cache *c, int64_t job, const char *key, uint64_t gen, char **text,
                   size_t *len)
{
    uint64_t tag;
    return page_cache__copy(c, job, key, 0, &gen, &tag, text, len);
}

int page_cache_latest(struct page_cache *c, int64_t job, const char *key, uint64_t *gen,
                      uint64_t *tag, char **text, size_t *len)
{
    return page_cache__copy(c, job, key, 1, gen, tag, text, len);
}

/* Empties slot e. Under the mutex. */
static void page_cache__drop(struct page_cache *c, struct page_cache_entry *e)
{
    c->bytes -= e->len;
    free(e->text);
    memset(e, 0, sizeof *e);
}

/* The free slot, or the least recently used one emptied. Under the mutex. */
static struct page_cache_entry *page_cache__victim(struct page_cache *c)
{
    struct page_cache_entry *v = &c->e[0];
    for (size_t i = 0; i < PAGE_CACHE_SLOTS; i++) {
        if (!c->e[i].text)
            return &c->e[i];
        if (c->e[i].used < v->used)
            v = &c->e[i];
    }
    page_cache__drop(c, v);
    return v;
}

void page_cache_put(struct page_cache *c, int64_t job, const char *key, uint64_t gen,
                    const char *text, size_t len)
{
    page_cache_put_tagged(c, job, key, gen, 0, text, len);
}

void page_cache_put_tagged(struct page_cache *c, int64_t job, const char *key, uint64_t gen,
                           uint64_t tag, const char *text, size_t len)
{
    if (!c || job < 0 || strlen(key) >= PAGE_CACHE_KEY_MAX || len > c->max_bytes)
        return;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return;
    memcpy(copy, text, len);
    pthread_mutex_lock(&c->mu);
    struct page_cache_entry *e = page_cache__find(c, job, key);
    if (e)
        page_cache__drop(c, e);
    while (c->bytes + len > c->max_bytes) { /* the least recently used go first */
        struct page_cache_entry *v = NULL;
        for (size_t i = 0; i < PAGE_CACHE_SLOTS; i++)
            if (c->e[i].text && (!v || c->e[i].used < v->used))
                v = &c->e[i];
        page_cache__drop(c, v);
    }
    e = page_cache__victim(c);
    e->job = job;
    e->gen = gen;
    e->tag = tag;
    strcpy(e->key, key);
    e->text = copy;
    e->len = len;
    e->used = ++c->tick;
    c->bytes += len;
    pthread_mutex_unlock(&c->mu);
}
