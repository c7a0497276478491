/*
 * catalog.h: what the lab has stored, as the command line and HTTP ask for
 * it, and the pool of database connections they ask through.
 *
 * A catalog is one database path and a mutex-protected stack of idle store
 * connections. A caller borrows a connection only while it works (a request
 * handler, one CSV chunk), so a thousand idle SSE streams hold none. The
 * catalog's queries (catalog_*) take that borrowed connection; the layers
 * above the jobs layer never speak to the store themselves.
 */
#ifndef QN_CATALOG_H
#define QN_CATALOG_H

#include <stddef.h>

#include "store.h"

#define CATALOG_POOL_IDLE_MAX 16 /* idle connections kept */

struct catalog; /* opaque; thread-safe */

/* A catalog of database `db` (copied; nothing is opened yet) into *out
 * (new: catalog_destroy it). QN_ENOMEM. */
int catalog_create(const char *db, struct catalog **out);
/* Closes the idle connections and frees c (NULL is fine). Give back every
 * borrowed connection first. */
void catalog_destroy(struct catalog *c);
/* The database path (borrowed, lives as long as c). */
const char *catalog_db(const struct catalog *c);

/* Borrows a connection (opens one when none is idle); NULL when the
 * database cannot be opened (the reason goes to stderr). Give it back with
 * catalog_release. */
struct store *catalog_acquire(struct catalog *c);
/* Gives s back (NULL is fine): kept idle, or closed beyond the pool's size. */
void catalog_release(struct catalog *c, struct store *s);

#endif
