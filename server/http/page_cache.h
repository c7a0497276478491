/*
 * page_cache.h: replies kept as their text while what they show stays the same.
 *
 * A finished job's metrics never change, so the page GET
 * /v1/jobs/{id}/metrics answers for one query is the same every time; a
 * dashboard asks it again and again. A running job's pages and the job
 * list change only when a commit changes jobs or metrics (store_changes,
 * store.h): they are kept under the count they were made at and are not
 * answered for another. The cache keeps pages by (job, query key) with that
 * generation (0: for good), up to a byte budget, dropping the least
 * recently used. It is thread-safe (one mutex); the cache owns its copies,
 * callers own theirs.
 */
#ifndef QN_PAGE_CACHE_H
#define QN_PAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define PAGE_CACHE_KEY_MAX 160 /* bytes of a key, its NUL included */

struct page_cache; /* opaque */

/* A cache of at most max_bytes of pages into *out (page_cache_destroy it). QN_ENOMEM. */
int page_cache_create(size_t max_bytes, struct page_cache **out);
/* Frees c and its pages (NULL is fine). */
void page_cache_destroy(struct page_cache *c);
/* A copy of the page of (job, key) made at generation gen into *text, *len
 * (the caller frees it; job 0 is a page of no one job, such as the list):
 * 1 when there is one, 0 when not (or c is NULL), QN_ENOMEM. */
int page_cache_get(struct page_cache *c, int64_t job, const char *key, uint64_t gen, char **text,
                   size_t *len);
/* Keeps a copy of text[len] as the page of (job, key) at generation gen, in
 * place of any other generation's (c NULL, a key too long, a page over the
 * budget or no memory: nothing is kept). */
void page_cache_put(struct page_cache *c, int64_t job, const char *key, uint64_t gen,
                    const char *text, size_t len);
/* page_cache_put with a number kept beside the page (what a caller needs to
 * extend it: the rows in a metric page). */
void page_cache_put_tagged(struct page_cache *c, int64_t job, const char *key, uint64_t gen,
                           uint64_t tag, const char *text, size_t len);
/* A copy of the page of (job, key) whatever its generation, into *text, *len
 * (the caller frees it), with its generation and tag into *gen, *tag: 1 when
 * there is one, 0 when not (or c is NULL), QN_ENOMEM. */
int page_cache_latest(struct page_cache *c, int64_t job, const char *key, uint64_t *gen,
                      uint64_t *tag, char **text, size_t *len);

#endif
