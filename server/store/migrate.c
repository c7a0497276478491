/*
 * migrate.c: applies the compiled-in migrations to a database.
 *
 * Each migration runs in one BEGIN IMMEDIATE transaction together with the
 * bump of PRAGMA user_version and its schema_migrations row, so a crash or a
 * failing statement leaves the database at the previous version, never
 * half-migrated. The version is read again inside the write transaction:
 * another process may have migrated while this one waited for the lock.
 */
#include "migrate.h"

#include <stdarg.h>
#include <stdio.h>

#include "qn_err.h"
#include "store_internal.h"

static const char migrate__history_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))";

/* printf into msg when the caller wants a message. */
static void migrate__say(char *msg, size_t cap, const char *fmt, ...)
{
    if (!msg || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

int migrate_latest(void)
{
    return migrate_count ? migrate_list[migrate_count - 1].version : 0;
}

int migrate_version(struct store *s, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) { /* the pragma always answers a row */
            rc = SQLITE_ERROR;
        }
    }
    sqlite3_finalize(st);
    return store_sqlite_err(rc);
}

/* Runs migration m and records it; the caller holds the transaction. */
static int migrate__run_one(sqlite3 *db, const struct migration *m, char *msg, size_t cap)
{
    char *emsg = NULL;
    int rc = sqlite3_exec(db, m->sql, NULL, NULL, &emsg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, migrate__history_sql, NULL, NULL, &emsg);
    if (rc == SQLITE_OK) {
        char sql[160];
        /* m->name is compiled in, never user input; it has no quotes. */
        snprintf(sql, sizeof sql,
                 "INSERT INTO schema_migrations (version, name) VALUES (%d, '%s');"
                 "PRAGMA user_version = %d",
                 m->version, m->name, m->version);
        rc = sqlite3_exec(db, sql, NULL, NULL, &emsg);
    }
    if (rc != SQLITE_OK)
        migrate__say(msg, cap, "migration %s failed: %s", m->name,
                     emsg ? emsg : sqlite3_errstr(rc));
    sqlite3_free(emsg);
    return store_sqlite_err(rc);
}

/* Applies migration m in its own transaction if the database, its version
 * re-read under the write lock, lacks it. */
static int migrate__step(struct store *s, const struct migration *m, char *msg, size_t cap)
{
    sqlite3 *db = s->db;
    int rc = store_begin(s);
    if (rc) {
        migrate__say(msg, cap, "cannot lock the database to migrate: %s", sqlite3_errmsg(db));
        return rc;
    }
    int v = 0;
    rc = migrate_version(s, &v);
    if (rc == 0 && v < m->version) {
        if (v != m->version - 1) {
            migrate__say(msg, cap, "database at version %d cannot take migration %s", v, m->name);
            rc = QN_EDB;
        } else {
            rc = migrate__run_one(db, m, msg, cap);
        }
    }
    rc = store_end(s, rc);
    if (rc && msg && cap && !msg[0])
        migrate__say(msg, cap, "migration %s failed: %s", m->name, sqlite3_errmsg(db));
    return rc;
}

int migrate_apply(struct store *s, char *msg, size_t cap)
{
    if (msg && cap)
        msg[0] = '\0';
    int v = 0;
    int rc = migrate_version(s, &v);
    if (rc) {
        migrate__say(msg, cap, "cannot read the schema version: %s", sqlite3_errmsg(s->db));
        return rc;
    }
    if (v > migrate_latest()) {
        migrate__say(msg, cap,
                     "database schema version %d is newer than this program (which knows "
                     "up to %d); use a newer qn",
                     v, migrate_latest());
        return QN_EVERSION;
    }
    for (size_t i = 0; i < migrate_count && rc == 0; i++)
        if (migrate_list[i].version > v)
            rc = migrate__step(s, &migrate_list[i], msg, cap);
    return rc;
}
