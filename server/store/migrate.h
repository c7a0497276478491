/*
 * migrate.h: numbered schema migrations, applied in order when a database
 * is opened.
 *
 * The SQL of migrations/NNNN_name.sql is compiled into the program (see
 * server/store/migrations_embed.c) so `qn` works from any working directory. The
 * applied version is PRAGMA user_version (authoritative; set inside each
 * migration's transaction) and a row in schema_migrations (version, name,
 * applied_at) for the record. A database whose version is newer than the
 * newest compiled-in migration is refused with QN_EVERSION.
 */
#ifndef QN_MIGRATE_H
#define QN_MIGRATE_H

#include <stddef.h>

struct store;

/* One migration: migrations/<name>.sql, version = its number. */
struct migration {
    int version;      /* NNNN of the file name, 1, 2, ... without gaps */
    const char *name; /* file name without ".sql", e.g. "0001_init" */
    const char *sql;  /* the file's bytes, NUL-terminated (static) */
};

/* The compiled-in migrations in version order (server/store/migrations_embed.c). */
extern const struct migration migrate_list[];
extern const size_t migrate_count;

/* The newest version this program knows (the last migration's version). */
int migrate_latest(void);

/*
 * Brings the database up to migrate_latest(): each pending migration runs in
 * its own BEGIN IMMEDIATE transaction, re-checking the version inside it so
 * two processes opening a new database at once apply each migration once.
 * Returns 0, QN_EVERSION (database newer than the program), QN_EBUSY,
 * QN_EFULL or QN_EDB; msg (cap bytes, may be NULL) receives a sentence.
 */
int migrate_apply(struct store *s, char *msg, size_t cap);

/* The database's applied version (PRAGMA user_version) into *out. */
int migrate_version(struct store *s, int *out);

#endif
