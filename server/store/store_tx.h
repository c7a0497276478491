/*
 * store_tx.h: write transactions on a store connection, the one pair of
 * helpers every multi-statement write uses (the store's own, and the job
 * queue's transitions in server/jobs/queue.c).
 *
 * store_begin takes the write lock at once (BEGIN IMMEDIATE), waiting up to
 * the connection's busy timeout: a transaction that reads and then writes
 * never fails to upgrade its lock, so it does not meet SQLITE_BUSY in the
 * middle. Transactions do not nest.
 */
#ifndef QN_STORE_TX_H
#define QN_STORE_TX_H

#include "store.h"

/* Starts a write transaction on s. 0, QN_EBUSY (the lock stayed taken), or
 * another store code. */
int store_begin(struct store *s);

/* Ends the transaction: commits when rc (the work's result) is 0, rolls back
 * otherwise. Returns rc, or the commit's failure (then rolled back). */
int store_end(struct store *s, int rc);

#endif
