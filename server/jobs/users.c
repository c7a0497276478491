/*
 * users.c: lab members, their hashed tokens, and request authentication
 * (see users.h). The SQL lives here, next to its logic, on the connection's
 * raw handle (store_sqlite).
 */
#include "users.h"

#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "qn_err.h"
#include "sha256.h"

#define USERS_DEFAULT_DB "quasineuron.db"

static int users__rc(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW: return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return QN_EBUSY;
    case SQLITE_FULL: return QN_EFULL;
    case SQLITE_CONSTRAINT: return QN_EEXIST;
    case SQLITE_NOMEM: return QN_ENOMEM;
    default: return QN_EDB;
    }
}

int users_name_check(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= USERS_NAME_MAX || !isalnum((unsigned char)name[0]))
        return QN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && !strchr("._-", name[i]))
            return QN_EINVAL;
    if (strcmp(name, "local") == 0 || strcmp(name, "anonymous") == 0)
        return QN_EINVAL;
    return 0;
}

/* 32 random bytes as 64 hex digits. */
static int users__token(char *hex)
{
    uint8_t b[USERS_TOKEN_HEX / 2];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return QN_EIO;
        got += (size_t)r;
    }
    sha256_hex_encode(b, sizeof b, hex);
    return 0;
}

int users_add(struct store *s, const char *name, int admin, char *token, int64_t *id)
{
    if (users_name_check(name))
        return QN_EINVAL;
    int rc = users__token(token);
    if (rc)
        return rc;
    char hash[2 * SHA256_LEN + 1];
    sha256_hex(token, USERS_TOKEN_HEX, hash);
    sqlite3 *db = store_sqlite(s);
    sqlite3_stmt *st = NULL;
    rc = users__rc(sqlite3_prepare_v2(
        db, "INSERT INTO users (name, admin, token_hash) VALUES (?1, ?2, ?3)", -1, &st, NULL));
    if (rc == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, admin ? 1 : 0);
        sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
        rc = users__rc(sqlite3_step(st));
    }
    sqlite3_finalize(st);
    if (rc == 0 && id)
        *id = sqlite3_last_insert_rowid(db);
    if (rc)
        memset(token, 0, USERS_TOKEN_HEX);
    return rc;
}

int users_revoke(struct store *s, const char *name)
{
    sqlite3 *db = store_sqlite(s);
    sqlite3_stmt *st = NULL;
    int rc = users__rc(sqlite3_prepare_v2(
        db,
        "UPDATE users SET revoked = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
        "WHERE name = ?1 AND revoked IS NULL",
        -1, &st, NULL));
    if (rc == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = users__rc(sqlite3_step(st));
    }
    sqlite3_finalize(st);
    if (rc == 0 && sqlite3_changes(db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

static json_t *users__text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? json_string((const char *)t) : json_null();
}

int users_list(struct store *s, json_t **out)
{
    sqlite3_stmt *st = NULL;
    json_t *arr = json_array();
    int rc = arr ? users__rc(sqlite3_prepare_v2(
                       store_sqlite(s),
                       "SELECT id, name, admin, created, revoked FROM users ORDER BY id", -1, &st,
                       NULL))
                 : QN_ENOMEM;
    int step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *u = json_pack("{sI so sb so so}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                              "name", users__text(st, 1), "admin", sqlite3_column_int(st, 2),
                              "created", users__text(st, 3), "revoked", users__text(st, 4));
        if (!u || json_array_append_new(arr, u))
            rc = QN_ENOMEM;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = users__rc(step);
    sqlite3_finalize(st);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int users_count(struct store *s, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int rc = users__rc(sqlite3_prepare_v2(
        store_sqlite(s), "SELECT count(*) FROM users WHERE revoked IS NULL", -1, &st, NULL));
    if (rc == 0) {
        int step = sqlite3_step(st);
        rc = step == SQLITE_ROW ? 0 : users__rc(step == SQLITE_DONE ? SQLITE_ERROR : step);
        if (rc == 0)
            *n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

/* The token of "Bearer <token>" (borrowed into h), or NULL. */
static const char *users__bearer(const char *h)
{
    if (!h)
        return NULL;
    while (*h == ' ')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ')
        return NULL;
    h += 6;
    while (*h == ' ')
        h++;
    return h;
}

/* Looks a token up; 0 and *user, QN_EAUTH, or a database code. */
static int users__lookup(struct store *s, const char *token, struct user *user)
{
    size_t n = strlen(token);
    while (n && token[n - 1] == ' ')
        n--;
    if (n != USERS_TOKEN_HEX)
        return QN_EAUTH;
    char hash[2 * SHA256_LEN + 1];
    sha256_hex(token, n, hash);
    sqlite3_stmt *st = NULL;
    int rc = users__rc(sqlite3_prepare_v2(
        store_sqlite(s),
        "SELECT id, name, admin FROM users WHERE token_hash = ?1 AND revoked IS NULL", -1, &st,
        NULL));
    if (rc == 0) {
        sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW) {
            user->id = sqlite3_column_int64(st, 0);
            snprintf(user->name, sizeof user->name, "%s",
                     (const char *)sqlite3_column_text(st, 1));
            user->admin = sqlite3_column_int(st, 2) != 0;
        } else {
            rc = step == SQLITE_DONE ? QN_EAUTH : users__rc(step);
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int users_authenticate(struct store *s, const char *authorization, int loopback,
                       struct user *user, char *msg, size_t cap)
{
    memset(user, 0, sizeof *user);
    int64_t n = 0;
    int rc = users_count(s, &n);
    if (rc) {
        snprintf(msg, cap, "%s", store_errmsg(s));
        return rc;
    }
    if (n == 0) {
        if (!loopback) {
            snprintf(msg, cap, "this daemon has no users; add one with `qn user add NAME`");
            return QN_EAUTH;
        }
        snprintf(user->name, sizeof user->name, "local");
        user->admin = 1;
        return 0;
    }
    const char *token = users__bearer(authorization);
    if (!token) {
        snprintf(msg, cap, "%s", authorization ? "the Authorization header must be "
                                                 "\"Bearer <token>\""
                                               : "sign in: send Authorization: Bearer <token> "
                                                 "(tokens come from `qn user add NAME`)");
        return QN_EAUTH;
    }
    rc = users__lookup(s, token, user);
    if (rc == QN_EAUTH)
        snprintf(msg, cap, "invalid or revoked token");
    else if (rc)
        snprintf(msg, cap, "%s", store_errmsg(s));
    return rc;
}
