/*
 * store_err.c: SQLite result codes as qn_err codes (see store_err.h). Its
 * own file because migrate.c, which store.c calls, maps them too.
 */
#include "store_err.h"

#include <sqlite3.h>

#include "qn_err.h"

int store_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return 0;
    case SQLITE_FULL: return QN_EFULL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return QN_EBUSY;
    case SQLITE_NOMEM: return QN_ENOMEM;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY ? QN_EEXIST
                                                                                    : QN_EDB;
    default: return QN_EDB;
    }
}
