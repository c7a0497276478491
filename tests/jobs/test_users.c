/*
 * test_users.c: users.c and sha256.c on a real temporary database.
 *
 * SHA-256 against the FIPS 180-4 examples (including the two-block padding
 * case and a million 'a's); tokens are 64 hex digits, different each time,
 * and only their hash is stored; authentication accepts exactly the active
 * tokens; revocation frees the name; without users only loopback is served.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "qn_test.h"
#include "sha256.h"
#include "store.h"
#include "store_internal.h" /* store_sqlite: raw access to inspect the database */
#include "users.h"

struct fx {
    char dir[512];
    struct store *s;
};

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || qt_tmpdir(f->dir, sizeof f->dir))
        return -1;
    char db[600], msg[256];
    snprintf(db, sizeof db, "%s/u.db", f->dir);
    if (store_open(db, &f->s, msg, sizeof msg))
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    qt_rmtree(f->dir);
    free(f);
    return 0;
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    char *m = malloc(1000000);
    memset(m, 'a', 1000000);
    sha256_hex(m, 1000000, hex);
    free(m);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(users_name_check("alice"), 0);
    assert_int_equal(users_name_check("a.b_c-9"), 0);
    assert_int_equal(users_name_check(""), QN_EINVAL);
    assert_int_equal(users_name_check("-x"), QN_EINVAL);
    assert_int_equal(users_name_check("a b"), QN_EINVAL);
    assert_int_equal(users_name_check("local"), QN_EINVAL);
    assert_int_equal(users_name_check("anonymous"), QN_EINVAL);
    char longname[80];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(users_name_check(longname), QN_EINVAL);
}

/* The token_hash stored for `name` (active). */
static void stored_hash(struct store *s, const char *name, char *out)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(store_sqlite(s),
                                        "SELECT token_hash FROM users WHERE name = ?1 AND "
                                        "revoked IS NULL", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, 65, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static void test_add_auth_revoke(void **state)
{
    struct fx *f = *state;
    struct user u;
    char msg[256], a[65], b[65], hash[65], want[65];
    int64_t n = -1, id = 0;
    /* no users: local admin on loopback, nothing elsewhere */
    assert_int_equal(users_authenticate(f->s, NULL, 1, &u, msg, sizeof msg), 0);
    assert_string_equal(u.name, "local");
    assert_int_equal(u.admin, 1);
    assert_int_equal(users_authenticate(f->s, NULL, 0, &u, msg, sizeof msg), QN_EAUTH);
    assert_non_null(strstr(msg, "qn user add"));

    assert_int_equal(users_add(f->s, "alice", 0, a, &id), 0);
    assert_true(id > 0);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);
    assert_int_equal(users_add(f->s, "bob", 1, b, NULL), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(users_add(f->s, "alice", 0, hash, NULL), QN_EEXIST);
    assert_int_equal(users_count(f->s, &n), 0);
    assert_int_equal(n, 2);
    stored_hash(f->s, "alice", hash);
    sha256_hex(a, 64, want);
    assert_string_equal(hash, want);

    char h[100];
    snprintf(h, sizeof h, "Bearer %s", a);
    assert_int_equal(users_authenticate(f->s, h, 1, &u, msg, sizeof msg), 0);
    assert_string_equal(u.name, "alice");
    assert_int_equal(u.admin, 0);
    snprintf(h, sizeof h, "bearer   %s  ", b); /* scheme is case-insensitive; spaces tolerated */
    assert_int_equal(users_authenticate(f->s, h, 0, &u, msg, sizeof msg), 0);
    assert_string_equal(u.name, "bob");
    assert_int_equal(u.admin, 1);
    /* with users, loopback needs a token too */
    assert_int_equal(users_authenticate(f->s, NULL, 1, &u, msg, sizeof msg), QN_EAUTH);
    assert_int_equal(users_authenticate(f->s, "Bearer ", 1, &u, msg, sizeof msg), QN_EAUTH);
    assert_int_equal(users_authenticate(f->s, a, 1, &u, msg, sizeof msg), QN_EAUTH);
    snprintf(h, sizeof h, "Bearer %s", hash); /* the stored hash is not a token */
    assert_int_equal(users_authenticate(f->s, h, 1, &u, msg, sizeof msg), QN_EAUTH);

    assert_int_equal(users_revoke(f->s, "alice"), 0);
    assert_int_equal(users_revoke(f->s, "alice"), QN_ENOTFOUND);
    snprintf(h, sizeof h, "Bearer %s", a);
    assert_int_equal(users_authenticate(f->s, h, 1, &u, msg, sizeof msg), QN_EAUTH);
    assert_int_equal(users_add(f->s, "alice", 0, a, NULL), 0); /* the name is free again */
    json_t *list = NULL;
    assert_int_equal(users_list(f->s, &list), 0);
    assert_int_equal(json_array_size(list), 3);
    assert_true(json_is_string(json_object_get(json_array_get(list, 0), "revoked")));
    json_decref(list);
    /* the last user revoked: a non-loopback daemon stays closed */
    assert_int_equal(users_revoke(f->s, "alice"), 0);
    assert_int_equal(users_revoke(f->s, "bob"), 0);
    assert_int_equal(users_authenticate(f->s, NULL, 0, &u, msg, sizeof msg), QN_EAUTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_add_auth_revoke, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
