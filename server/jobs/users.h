/*
 * users.h: lab members and their bearer tokens (`qn user add|list|revoke`,
 * and the check of every authenticated request).
 *
 * A token is 32 bytes from getrandom(2) written as 64 hex digits; it is
 * printed once when the user is made and only its SHA-256 is stored, so a
 * stolen database grants nothing. Revoking marks the row (the name becomes
 * free again); it takes effect on the next request, as every request looks
 * its token up (one indexed query).
 *
 * Names: 1..63 bytes of letters, digits, '.', '_', '-', starting with a
 * letter or digit; "local" (the owner of `qn run` jobs and of requests to a
 * daemon without users) and "anonymous" are reserved.
 */
#ifndef QN_USERS_H
#define QN_USERS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define USERS_TOKEN_HEX 64 /* hex digits of a token */
#define USERS_NAME_MAX 64  /* bytes of a user name, with NUL */

/* A signed-in user: who a request acts as. */
struct user {
    int64_t id;                 /* users.id; 0 for the built-in "local" */
    char name[USERS_NAME_MAX];  /* owner name of the jobs this user submits */
    int admin;                  /* 1: may cancel anyone's job, use high priorities */
};

/* 0 when name is a valid user name, QN_EINVAL otherwise. */
int users_name_check(const char *name);

/*
 * Adds user `name` with a new token, written into token[USERS_TOKEN_HEX + 1]
 * (show it once; it is not stored). QN_EINVAL for a bad name, QN_EEXIST when
 * an active user has that name, QN_EIO when no random bytes can be had.
 */
int users_add(struct store *s, const char *name, int admin, char *token, int64_t *id);

/* Revokes the active user `name`; QN_ENOTFOUND when there is none. */
int users_revoke(struct store *s, const char *name);

/* Every user (revoked ones too) as a new JSON array of {"id","name","admin",
 * "created","revoked"} into *out. */
int users_list(struct store *s, json_t **out);

/* Number of active users into *n. */
int users_count(struct store *s, int64_t *n);

/* Whether user id (struct user's) may still act: 1 into *active unless it
 * was revoked since it signed in; the built-in "local" (id 0) always may. */
int users_active(struct store *s, int64_t id, int *active);

/*
 * Checks an Authorization header value (may be NULL) and fills *user.
 * With no active users: the built-in admin "local" when `loopback`, else
 * QN_EAUTH (a daemon reachable from the network needs users). With users:
 * 0 for a valid "Bearer <token>", QN_EAUTH otherwise; msg (cap bytes) says
 * why. Other codes are database errors.
 */
int users_authenticate(struct store *s, const char *authorization, int loopback,
                       struct user *user, char *msg, size_t cap);

#endif
