/*
 * users.c: lab members, their hashed tokens, and request authentication
 * (see users.h). The rows are the store's (store_users.h); the tokens, their
 * hashing and the rules are here.
 */
#include "users.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "qn_err.h"
#include "sha256.h"
#include "store_users.h"

#define USERS_DEFAULT_DB "quasineuron.db"

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
    rc = store_user_insert(s, name, admin, hash, id);
    if (rc)
        memset(token, 0, USERS_TOKEN_HEX);
    return rc;
}

int users_revoke(struct store *s, const char *name)
{
    return store_user_revoke(s, name);
}

/* s as a JSON string, or null for "". */
static json_t *users__text(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

/* The users rows[n] as a new JSON array of {"id","name","admin","created","revoked"}. */
static json_t *users__json(const struct store_user *rows, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        const struct store_user *r = &rows[i];
        json_t *u = json_pack("{sI ss sb so so}", "id", (json_int_t)r->id, "name", r->name,
                              "admin", r->admin, "created", users__text(r->created), "revoked",
                              users__text(r->revoked));
        if (!u || json_array_append_new(arr, u)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return arr;
}

int users_list(struct store *s, json_t **out)
{
    struct store_user *rows = NULL;
    size_t n = 0;
    int rc = store_user_list(s, &rows, &n);
    if (rc)
        return rc;
    *out = users__json(rows, n);
    free(rows);
    return *out ? 0 : QN_ENOMEM;
}

int users_count(struct store *s, int64_t *n)
{
    return store_user_count_active(s, n);
}

int users_active(struct store *s, int64_t id, int *active)
{
    *active = 1;
    return id > 0 ? store_user_active(s, id, active) : 0;
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
    struct store_user row;
    int rc = store_user_by_token_hash(s, hash, &row);
    if (rc)
        return rc == QN_ENOTFOUND ? QN_EAUTH : rc;
    user->id = row.id;
    snprintf(user->name, sizeof user->name, "%s", row.name);
    user->admin = row.admin;
    return 0;
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
