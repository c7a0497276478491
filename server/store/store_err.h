/*
 * store_err.h: SQLite result codes as qn_err codes, the one mapping every
 * file of the store uses (store.c, migrate.c, ...): SQLITE_FULL ->
 * QN_EFULL, SQLITE_BUSY/LOCKED -> QN_EBUSY, SQLITE_NOMEM -> QN_ENOMEM, a
 * UNIQUE or PRIMARY KEY violation -> QN_EEXIST, anything else -> QN_EDB.
 */
#ifndef QN_STORE_ERR_H
#define QN_STORE_ERR_H

/* sqlite_rc (a primary or extended SQLite result code) as a qn_err code:
 * 0 for OK, ROW and DONE. */
int store_sqlite_err(int sqlite_rc);

#endif
