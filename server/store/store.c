/*
 * store.c: the SQLite store (see store.h for the contract): opening and
 * configuring a connection, the error mapping, devices.
 *
 * Statements are prepared per call: the store is not a hot path (a sweep
 * writes a few blocks, a training run a few metrics per second), and this
 * keeps every function self-contained with one cleanup ladder. SQLite's
 * result codes become qn_err codes in store_sqlite_err (store_err.c), the
 * one mapping point.
 *
 * The store is split by concept: store_sql.c holds the statement helpers the
 * files share (store_internal.h) and the transactions (store_tx.h),
 * store_data.c datasets, store_jobs.c jobs and metrics, store_models.c
 * surrogates, models and checkpoints, store_queue.c the job queue's
 * statements, store_users.c users.
 */
#include "store.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "qn_err.h"
#include "store_internal.h"

#define STORE__BUSY_MS 5000 /* how long a connection waits for another's lock */
#define STORE__WAL_KEEP "67108864" /* bytes of WAL file kept after a checkpoint (64 MiB) */

/*
 * Switches db to WAL. On a database that several processes open for the
 * first time at once, this can answer SQLITE_BUSY ("database is locked")
 * at once, without waiting in the busy handler: the switch needs the
 * exclusive lock, and SQLite does not wait where waiting could deadlock.
 * test_store's concurrent first open failed so, under load. So it is tried
 * again for as long as the busy timeout would have waited.
 */
static int store__wal(sqlite3 *db)
{
    int rc = SQLITE_BUSY;
    for (int ms = 0; ms <= STORE__BUSY_MS && rc == SQLITE_BUSY; ms += 2) {
        rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if (rc == SQLITE_BUSY)
            sqlite3_sleep(2);
    }
    return rc;
}

/* Applies the connection settings every handle needs. */
static int store__configure(sqlite3 *db)
{
    sqlite3_extended_result_codes(db, 1); /* tells UNIQUE from other constraints */
    int rc = sqlite3_busy_timeout(db, STORE__BUSY_MS);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = store__wal(db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK) /* after a checkpoint resets the WAL, the file shrinks to this */
        rc = sqlite3_exec(db, "PRAGMA journal_size_limit = " STORE__WAL_KEEP, NULL, NULL, NULL);
    return store_sqlite_err(rc);
}

int store_open(const char *path, struct store **out, char *msg, size_t cap)
{
    *out = NULL;
    if (msg && cap)
        msg[0] = '\0';
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        return QN_ENOMEM;
    int rc = store_sqlite_err(sqlite3_open_v2(path, &s->db,
                                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                            SQLITE_OPEN_NOMUTEX,
                                        NULL));
    if (rc) {
        if (msg && cap)
            snprintf(msg, cap, "cannot open database %s: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    rc = store__configure(s->db);
    if (rc) {
        if (msg && cap)
            snprintf(msg, cap, "cannot configure database %s: %s", path, sqlite3_errmsg(s->db));
        goto fail;
    }
    rc = migrate_apply(s, msg, cap);
    if (rc)
        goto fail;
    *out = s;
    return 0;
fail:
    sqlite3_close(s->db);
    free(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    sqlite3_close(s->db);
    free(s);
}

const char *store_errmsg(const struct store *s)
{
    return sqlite3_errmsg(s->db);
}

int store_schema_version(struct store *s, int *out)
{
    return migrate_version(s, out);
}

int store_integrity_check(struct store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "PRAGMA integrity_check", &st);
    if (rc)
        return rc;
    rc = QN_EDB;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (t && strcmp((const char *)t, "ok") == 0 && sqlite3_step(st) == SQLITE_DONE)
            rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int store_wal_truncate(struct store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "PRAGMA wal_checkpoint(TRUNCATE)", &st);
    if (rc)
        return rc;
    int sr = sqlite3_step(st);
    if (sr == SQLITE_ROW) /* (busy, pages in the WAL, pages checkpointed) */
        rc = sqlite3_column_int(st, 0) ? QN_EBUSY : 0;
    else
        rc = store_sqlite_err(sr == SQLITE_DONE ? SQLITE_ERROR : sr);
    sqlite3_finalize(st);
    return rc;
}

/* The update hook of a watched connection: notes a change to jobs or metrics
 * (and a metric row deleted or changed, which is more than an append). */
static void store__on_update(void *arg, int op, const char *db, const char *table,
                             sqlite3_int64 rowid)
{
    (void)db, (void)rowid;
    struct store *s = arg;
    if (strcmp(table, "jobs") == 0)
        s->dirty |= 1u << STORE_WATCH_JOBS;
    else if (strcmp(table, "metrics") == 0)
        s->dirty |= 1u << STORE_WATCH_METRICS | (op != SQLITE_INSERT ? 1u << STORE_WATCH_TRIMS : 0);
}

/* The rollback hook of a watched connection: what it changed is gone. */
static void store__on_rollback(void *arg) { ((struct store *)arg)->dirty = 0; }

/*
 * The WAL hook of a watched connection, called after each commit (the write
 * lock released): moves the count of each table the commit changed.
 * It replaces SQLite's automatic checkpoint, so it checkpoints as that did
 * (passively, once the WAL holds autockpt pages).
 */
static int store__on_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct store *s = arg;
    for (int t = 0; t < STORE_WATCH_N; t++)
        if (s->dirty & (1u << t))
            atomic_fetch_add(&s->changes->n[t], 1);
    s->dirty = 0;
    if (s->autockpt > 0 && pages >= s->autockpt)
        sqlite3_wal_checkpoint(db, name);
    return SQLITE_OK;
}

/* The connection's PRAGMA text value (first column of the first row) into buf. */
static void store__pragma(struct store *s, const char *sql, char *buf, size_t cap)
{
    sqlite3_stmt *st = NULL;
    buf[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        store__col_text(st, 0, buf, cap);
    sqlite3_finalize(st);
}

int store_watch(struct store *s, struct store_changes *c)
{
    char mode[16], ckpt[16];
    store__pragma(s, "PRAGMA journal_mode", mode, sizeof mode);
    if (strcmp(mode, "wal") != 0) {
        atomic_store(&c->broken, 1);
        return QN_EINVAL;
    }
    store__pragma(s, "PRAGMA wal_autocheckpoint", ckpt, sizeof ckpt);
    s->autockpt = atoi(ckpt);
    s->changes = c;
    s->dirty = 0;
    sqlite3_update_hook(s->db, store__on_update, s);
    sqlite3_rollback_hook(s->db, store__on_rollback, s);
    sqlite3_wal_hook(s->db, store__on_commit, s);
    return 0;
}

int store_changes_read(struct store_changes *c, enum store_watched t, uint64_t *n)
{
    *n = atomic_load(&c->n[t]);
    return atomic_load(&c->broken) ? QN_EINVAL : 0;
}

void store_set_owner(struct store *s, const char *owner)
{
    snprintf(s->owner, sizeof s->owner, "%s", owner && strcmp(owner, "local") ? owner : "");
}

/* ---- devices ---------------------------------------------------------- */

int store_device_insert(struct store *s, const char *name, const char *kind, const char *spec,
                        int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "INSERT INTO devices (name, kind, spec, owner) VALUES (?1, ?2, ?3, ?4)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, name);
    store__bind_text(st, 2, kind);
    store__bind_text(st, 3, spec);
    store__bind_text(st, 4, store__owner(s));
    return store__exec_insert(s, st, 0, id);
}

#define STORE__DEVICE_COLS "SELECT id, name, kind, spec, created, owner FROM devices "

/* Fills *d from the current row of a STORE__DEVICE_COLS query. */
static int store__device_row(sqlite3_stmt *st, void *p)
{
    struct store_device *d = p;
    int err = 0;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(st, 0);
    d->has_name = sqlite3_column_type(st, 1) != SQLITE_NULL;
    store__col_text(st, 1, d->name, sizeof d->name);
    store__col_text(st, 2, d->kind, sizeof d->kind);
    d->spec = store__col_dup(st, 3, &err);
    store__col_text(st, 4, d->created, sizeof d->created);
    store__col_text(st, 5, d->owner, sizeof d->owner);
    return err;
}

static void store__device_free_v(void *p) { store_device_free(p); }

int store_device_get(struct store *s, int64_t id, struct store_device *out)
{
    return store__get_by(s, STORE__DEVICE_COLS STORE__BY_ID, id, NULL, store__device_row,
                         store__device_free_v, out);
}

int store_device_get_by_name(struct store *s, const char *name, struct store_device *out)
{
    return store__get_by_name(s, STORE__DEVICE_COLS, name, store__device_row,
                              store__device_free_v, out);
}

void store_device_free(struct store_device *d)
{
    if (d) {
        free(d->spec);
        d->spec = NULL;
    }
}

void store_device_list_free(struct store_device *list, size_t n)
{
    store__free_array(list, n, sizeof *list, store__device_free_v);
}

int store_device_list(struct store *s, int64_t after, size_t limit, struct store_device **out,
                      size_t *n)
{
    void *arr = NULL;
    int rc = store__list(s, STORE__DEVICE_COLS STORE__PAGE, after, limit, sizeof **out,
                         store__device_row, store__device_free_v, &arr, n);
    *out = arr;
    return rc;
}

struct sqlite3 *store_sqlite(struct store *s)
{
    return s->db;
}
