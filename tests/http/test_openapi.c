/*
 * test_openapi.c: schema/openapi.yaml and the daemon's route table agree.
 *
 * The routes are what `qn serve` registers (routes_register_all on a
 * server that is created but never started); the document's routes are the
 * method keys under each path of its `paths` map. The test fails when one
 * serves or documents a route the other lacks (HEAD is served by each GET
 * route and documented beside it), and when the table holds a route twice.
 * The YAML is read by indentation (paths at two spaces, methods at four),
 * the layout openapi.yaml's header promises; no YAML
 * library is needed. The error codes documented in the Error schema (its
 * `code` enum, "- name  # statuses" a line) are those of the error table,
 * each with its row's HTTP status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "http.h"
#include "qn_err.h"
#include "qn_test.h"
#include "routes.h"

#define MAX_ROUTES 128

struct route_set {
    size_t n;
    char item[MAX_ROUTES][160]; /* "GET /v1/jobs/{id}" */
};

static int set_has(const struct route_set *s, const char *r)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->item[i], r) == 0)
            return 1;
    return 0;
}

/* openapi.yaml from the repository root (tests run there) or next to this file. */
static char *load_openapi(void)
{
    char *t = qt_read_file("schema/openapi.yaml", NULL);
    if (t)
        return t;
    char path[1024];
    snprintf(path, sizeof path, "%s", __FILE__);
    char *slash = strrchr(path, '/');
    if (slash) {
        snprintf(slash, sizeof path - (size_t)(slash - path), "/../../schema/openapi.yaml");
        t = qt_read_file(path, NULL);
    }
    return t;
}

static size_t indent_of(const char *line)
{
    size_t n = 0;
    while (line[n] == ' ')
        n++;
    return n;
}

/* The documented routes: METHOD + path for each method key under paths. */
static void parse_openapi(char *text, struct route_set *out)
{
    static const char *const methods[] = {"get", "post", "put", "patch", "delete", "head"};
    int in_paths = 0;
    char path[128] = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t ind = indent_of(line);
        const char *l = line + ind;
        if (*l == '#' || *l == '\0')
            continue;
        if (ind == 0) {
            in_paths = strncmp(l, "paths:", 6) == 0;
            continue;
        }
        if (!in_paths)
            continue;
        if (ind == 2 && l[0] == '/') {
            size_t n = strcspn(l, ":");
            assert_true(n < sizeof path);
            memcpy(path, l, n);
            path[n] = '\0';
        } else if (ind == 4) {
            for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
                size_t ml = strlen(methods[m]);
                if (strncmp(l, methods[m], ml) == 0 && l[ml] == ':') {
                    assert_true(path[0] != '\0');
                    assert_true(out->n < MAX_ROUTES);
                    char *r = out->item[out->n++];
                    snprintf(r, sizeof out->item[0], "%s %s", methods[m], path);
                    for (char *p = r; *p != ' '; p++)
                        *p = (char)toupper((unsigned char)*p);
                }
            }
        }
    }
}

/* The served routes, from the daemon's own registration. */
static void served_routes(struct route_set *out)
{
    struct catalog *cat = NULL;
    assert_int_equal(catalog_create(":memory:", &cat), 0);
    struct http_config cfg = {.catalog = cat, .bind = "127.0.0.1", .threads = 1,
                              .max_body = 1024, .max_upload = 1024, .max_connections = 1,
                              .timeout_s = 1};
    struct http_server *srv = NULL;
    char msg[256];
    assert_int_equal(http_create(&cfg, &srv, msg, sizeof msg), 0);
    assert_int_equal(routes_register_all(srv), 0);
    for (size_t i = 0; i < http_route_count(srv); i++) {
        const struct http_route *r = http_route_at(srv, i);
        assert_true(out->n < MAX_ROUTES);
        snprintf(out->item[out->n++], sizeof out->item[0], "%s %s", r->method, r->pattern);
    }
    http_destroy(srv);
    catalog_destroy(cat);
}

static void test_openapi_matches_router(void **state)
{
    (void)state;
    char *text = load_openapi();
    assert_non_null(text);
    static struct route_set doc, srv;
    memset(&doc, 0, sizeof doc);
    memset(&srv, 0, sizeof srv);
    parse_openapi(text, &doc);
    free(text);
    served_routes(&srv);
    assert_true(doc.n >= 10);
    int bad = 0;
    for (size_t i = 0; i < srv.n; i++)
        if (!set_has(&doc, srv.item[i])) {
            fprintf(stderr, "served but not in openapi.yaml: %s\n", srv.item[i]);
            bad++;
        }
    /* HEAD is served by each GET route; the document lists it for each. */
    for (size_t i = 0; i < srv.n; i++) {
        char head[sizeof srv.item[0] + 1];
        if (strncmp(srv.item[i], "GET ", 4) != 0)
            continue;
        snprintf(head, sizeof head, "HEAD %s", srv.item[i] + 4);
        if (!set_has(&doc, head)) {
            fprintf(stderr, "served but not in openapi.yaml: %s\n", head);
            bad++;
        }
    }
    for (size_t i = 0; i < doc.n; i++) {
        char get[sizeof doc.item[0]];
        if (strncmp(doc.item[i], "HEAD ", 5) == 0) {
            snprintf(get, sizeof get, "GET %s", doc.item[i] + 5);
            if (set_has(&srv, get))
                continue;
        }
        if (!set_has(&srv, doc.item[i])) {
            fprintf(stderr, "in openapi.yaml but not served: %s\n", doc.item[i]);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_router_has_no_duplicates(void **state)
{
    (void)state;
    static struct route_set srv;
    memset(&srv, 0, sizeof srv);
    served_routes(&srv);
    for (size_t i = 0; i < srv.n; i++)
        for (size_t j = i + 1; j < srv.n; j++)
            if (strcmp(srv.item[i], srv.item[j]) == 0)
                fail_msg("route registered twice: %s", srv.item[i]);
}

/* Every route of the REST table in DESIGN.md is served (the issue's list). */
static void test_design_routes_served(void **state)
{
    (void)state;
    static const char *const want[] = {
        "GET /healthz", "GET /metrics", "POST /v1/devices", "GET /v1/devices",
        "GET /v1/devices/{id}", "POST /v1/devices/{id}/simulate", "POST /v1/jobs",
        "GET /v1/jobs", "GET /v1/jobs/{id}", "POST /v1/jobs/{id}/cancel",
        "GET /v1/jobs/{id}/metrics", "GET /v1/jobs/{id}/events", "POST /v1/datasets",
        "GET /v1/datasets", "GET /v1/datasets/{id}", "GET /v1/datasets/{id}/data",
        "GET /v1/surrogates", "GET /v1/surrogates/{id}", "GET /v1/models",
        "GET /v1/models/{id}", "POST /v1/models/{id}/predict"};
    static struct route_set srv;
    memset(&srv, 0, sizeof srv);
    served_routes(&srv);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!set_has(&srv, want[i]))
            fail_msg("DESIGN.md route not served: %s", want[i]);
}

/* One documented error code: its name and the comment that gives its statuses. */
struct doc_code {
    char name[64];
    char note[256];
};

/* The items of the Error schema's `code` enum: after "  schemas:", "    Error:",
 * then "enum:", each following "- name  # note" line; returns how many. */
static size_t parse_error_codes(char *text, struct doc_code *out, size_t cap)
{
    char *p = strstr(text, "\n  schemas:\n");
    p = p ? strstr(p, "\n    Error:\n") : NULL;
    p = p ? strstr(p, "enum:\n") : NULL;
    if (!p)
        return 0;
    size_t n = 0;
    for (char *line = strtok(p + 6, "\n"); line && n < cap; line = strtok(NULL, "\n")) {
        const char *l = line + indent_of(line);
        if (strncmp(l, "- ", 2) != 0)
            break;
        const char *hash = strchr(l, '#');
        snprintf(out[n].name, sizeof out[n].name, "%.*s", (int)strcspn(l + 2, " #"), l + 2);
        snprintf(out[n].note, sizeof out[n].note, "%s", hash ? hash + 1 : "");
        n++;
    }
    return n;
}

static const struct doc_code *doc_code_find(const struct doc_code *c, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, name) == 0)
            return &c[i];
    return NULL;
}

/* Every row of the error table but QN_OK is documented with its status, and
 * nothing else is. */
static void test_openapi_error_codes(void **state)
{
    (void)state;
    char *text = load_openapi();
    assert_non_null(text);
    static struct doc_code doc[QN_ERR_COUNT + 16];
    size_t n = parse_error_codes(text, doc, sizeof doc / sizeof doc[0]);
    free(text);
    assert_true(n >= 10);
    int bad = 0;
    int code = 0;
    for (int i = 0; i < QN_ERR_COUNT; i++) {
        assert_int_equal(qn_err_at(i, &code), 0);
        if (code == QN_OK)
            continue;
        const struct doc_code *d = doc_code_find(doc, n, qn_err_wire(code));
        char status[8];
        snprintf(status, sizeof status, "%u", qn_err_status(code));
        if (!d || !strstr(d->note, status)) {
            fprintf(stderr, "%s (%s, %s) is not in openapi.yaml's error codes with status %s\n",
                    qn_err_wire(code), qn_err_name(code), qn_err_msg(code), status);
            bad++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (int k = 0; k < QN_ERR_COUNT && !found; k++)
            found = qn_err_at(k, &code) == 0 && strcmp(qn_err_wire(code), doc[i].name) == 0;
        if (!found) {
            fprintf(stderr, "openapi.yaml documents error code %s, which no row has\n",
                    doc[i].name);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    assert_int_equal(qn_err_at(QN_ERR_COUNT, &code), QN_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openapi_matches_router),
        cmocka_unit_test(test_router_has_no_duplicates),
        cmocka_unit_test(test_design_routes_served),
        cmocka_unit_test(test_openapi_error_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
