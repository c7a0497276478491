/*
 * store_users.h: the rows of the users table (migration 0003). Tokens,
 * their hashing and the checks of a request are the jobs layer's (users.c);
 * the store keeps the hash only.
 *
 * Every function returns 0 or a qn_err code (store_err.h).
 */
#ifndef QN_STORE_USERS_H
#define QN_STORE_USERS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define STORE_USER_NAME_MAX 64 /* bytes of a user name, with NUL */

/* One row of users. */
struct store_user {
    int64_t id;
    char name[STORE_USER_NAME_MAX];
    int admin; /* 1: an administrator */
    char created[STORE_TIME_MAX];
    char revoked[STORE_TIME_MAX]; /* "" while active */
};

/* Inserts an active user with the SHA-256 (64 hex digits) of its token; the
 * new id into *id (may be NULL). QN_EEXIST when an active user has the name. */
int store_user_insert(struct store *s, const char *name, int admin, const char *token_hash,
                      int64_t *id);

/* Marks the active user `name` revoked now; QN_ENOTFOUND when there is none. */
int store_user_revoke(struct store *s, const char *name);

/* Every user, revoked ones too, by id, as a new array *out of *n (free() it;
 * NULL when there are none). */
int store_user_list(struct store *s, struct store_user **out, size_t *n);

/* The number of active users into *n. */
int store_user_count_active(struct store *s, int64_t *n);

/* Whether user `id` exists and is not revoked: 1 or 0 into *active. */
int store_user_active(struct store *s, int64_t id, int *active);

/* The active user whose token hashes to token_hash into *out; QN_ENOTFOUND
 * when there is none. */
int store_user_by_token_hash(struct store *s, const char *token_hash, struct store_user *out);

#endif
