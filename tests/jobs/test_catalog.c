/*
 * test_catalog.c: the catalog API (server/jobs/catalog.h) on a real SQLite
 * database, the one the command line and HTTP both call.
 *
 * Covers: device add refusing a bad device with the field's path and
 * storing nothing, and a taken name at "/name"; the device, dataset,
 * surrogate, model, job and metric records with exactly the API's fields in
 * the API's order; lists that are pages (cursor, limit, last id) of the
 * same records as one record; references by id and by name; a surrogate's
 * weights; job records with and without priority and spec; job counts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "mlp.h"
#include "qn_err.h"
#include "qn_test.h"
#include "spec_dumps.h"
#include "surrogate.h"


/* Fails unless object o has exactly the keys of the NULL-ended list, in that order. */
static void expect_keys(const json_t *o, ...)
{
    assert_true(json_is_object(o));
    va_list ap;
    va_start(ap, o);
    size_t n = 0;
    void *it = json_object_iter((json_t *)o);
    for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *), n++) {
        assert_non_null(it);
        assert_string_equal(json_object_iter_key(it), k);
        it = json_object_iter_next((json_t *)o, it);
    }
    va_end(ap);
    assert_null(it);
    assert_int_equal(json_object_size(o), n);
}

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

#define CRN "{\"name\":\"crn\",\"kind\":\"crn_relu\",\"drive\":\"dot\",\"params\":{\"kappa\":0.01}}"

static void test_device_add_refuses_bad_spec(void **state)
{
    struct qt_store *f = *state;
    json_t *bad = parse("{\"name\":\"x\",\"kind\":\"crn_relu\",\"drive\":\"dot\","
                        "\"params\":{\"kappa\":0.01},\"readout\":{\"kind\":\"sideways\"}}");
    struct spec_error e = {{0}, {0}};
    assert_int_equal(catalog_device_check(bad, &e), QN_ESPEC);
    assert_string_equal(e.path, "/readout/kind");
    assert_true(e.msg[0] != '\0');
    memset(&e, 0, sizeof e);
    json_t *record = NULL;
    assert_int_equal(catalog_device_add(f->s, bad, &record, &e), QN_ESPEC);
    assert_string_equal(e.path, "/readout/kind");
    assert_null(record);
    json_decref(bad);

    json_t *items = NULL;
    int64_t last = -1;
    assert_int_equal(catalog_device_list(f->s, 0, 0, &items, &last), 0);
    assert_int_equal(json_array_size(items), 0); /* nothing stored */
    assert_int_equal(last, 0);
    json_decref(items);
}

static void test_device_records(void **state)
{
    struct qt_store *f = *state;
    json_t *root = parse(CRN), *record = NULL;
    struct spec_error e = {{0}, {0}};
    assert_int_equal(catalog_device_check(root, &e), 0);
    assert_int_equal(catalog_device_add(f->s, root, &record, &e), 0);
    expect_keys(record, "id", "name", "kind", "spec", "created", "owner", NULL);
    assert_string_equal(json_string_value(json_object_get(record, "name")), "crn");
    assert_string_equal(json_string_value(json_object_get(record, "kind")), "crn_relu");
    assert_true(json_equal(json_object_get(record, "spec"), root));
    json_int_t id = json_integer_value(json_object_get(record, "id"));
    assert_true(id > 0);

    /* The same name again: refused at /name, nothing stored. */
    json_t *again = NULL;
    memset(&e, 0, sizeof e);
    assert_int_equal(catalog_device_add(f->s, root, &again, &e), QN_EEXIST);
    assert_string_equal(e.path, "/name");
    assert_string_equal(e.msg, "a device named 'crn' already exists");
    assert_null(again);
    json_decref(root);

    /* An unnamed one, twice. */
    root = parse("{\"kind\":\"neuron\",\"drive\":\"dot\",\"params\":{\"activation\":\"relu\"}}");
    assert_int_equal(catalog_device_add(f->s, root, &again, &e), 0);
    assert_true(json_is_null(json_object_get(again, "name")));
    json_decref(again);
    assert_int_equal(catalog_device_add(f->s, root, &again, &e), 0);
    json_decref(again);
    json_decref(root);

    /* By id, by name, and absent. */
    json_t *one = NULL;
    char ref[32];
    snprintf(ref, sizeof ref, "%lld", (long long)id);
    assert_int_equal(catalog_device_get(f->s, ref, &one), 0);
    assert_true(json_equal(one, record));
    json_decref(one);
    assert_int_equal(catalog_device_get(f->s, "crn", &one), 0);
    assert_true(json_equal(one, record));
    json_decref(one);
    assert_int_equal(catalog_device_get(f->s, "nope", &one), QN_ENOTFOUND);
    assert_int_equal(catalog_device_get(f->s, "999", &one), QN_ENOTFOUND);
    struct store_device d;
    assert_int_equal(catalog_device_find(f->s, "crn", &d), 0);
    assert_int_equal(d.id, id);
    catalog_device_free(&d);

    /* The list is the same records, paged. */
    json_t *items = NULL;
    int64_t last = 0;
    assert_int_equal(catalog_device_list(f->s, 0, 0, &items, &last), 0);
    assert_int_equal(json_array_size(items), 3);
    assert_true(json_equal(json_array_get(items, 0), record));
    assert_int_equal(last, json_integer_value(json_object_get(json_array_get(items, 2), "id")));
    json_decref(items);
    assert_int_equal(catalog_device_list(f->s, id, 1, &items, &last), 0);
    assert_int_equal(json_array_size(items), 1);
    expect_keys(json_array_get(items, 0), "id", "name", "kind", "spec", "created", "owner",
                NULL);
    assert_int_equal(last, id + 1);
    json_decref(items);
    json_decref(record);
}

static void test_dataset_records(void **state)
{
    struct qt_store *f = *state;
    assert_int_equal(qt_write_file(f->dir, "xy.csv", "x,y\n1,2\n3,4\n5,6\n"), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/xy.csv", f->dir);
    char msg[512] = "";
    json_t *record = NULL;
    assert_int_equal(catalog_dataset_import(f->s, path, NULL, "xy", NULL, &record, msg, sizeof msg), 0);
    expect_keys(record, "id", "name", "source", "rows", "cols", "columns", "job", "created",
                "owner", NULL);
    assert_string_equal(json_string_value(json_object_get(record, "source")), "csv");
    assert_int_equal(json_integer_value(json_object_get(record, "rows")), 3);
    assert_int_equal(json_integer_value(json_object_get(record, "cols")), 2);
    assert_true(json_is_null(json_object_get(record, "job")));
    json_t *cols = parse("[\"x\",\"y\"]");
    assert_true(json_equal(json_object_get(record, "columns"), cols));
    json_decref(cols);

    assert_int_equal(qt_write_file(f->dir, "bad.csv", "x,y\n1,oops\n"), 0);
    snprintf(path, sizeof path, "%s/bad.csv", f->dir);
    json_t *none = NULL;
    assert_int_equal(catalog_dataset_import(f->s, path, NULL, NULL, NULL, &none, msg, sizeof msg),
                     QN_EFORMAT);
    assert_null(none);
    assert_non_null(strstr(msg, "bad.csv"));

    json_t *one = NULL, *items = NULL;
    int64_t last = 0;
    assert_int_equal(catalog_dataset_get(f->s, "xy", &one), 0);
    assert_true(json_equal(one, record));
    json_decref(one);
    assert_int_equal(catalog_dataset_list(f->s, 0, 0, &items, &last), 0);
    assert_int_equal(json_array_size(items), 1); /* the bad file stored nothing */
    assert_true(json_equal(json_array_get(items, 0), record));
    json_decref(items);

    struct store_dataset d;
    assert_int_equal(catalog_dataset_find(f->s, "xy", &d), 0);
    float rows[4];
    assert_int_equal(catalog_dataset_read(f->s, d.id, 1, 2, rows), 0);
    assert_true(rows[0] == 3 && rows[3] == 6);
    catalog_dataset_free(&d);
    json_decref(record);

    /* A built-in dataset's name, or a stored one's, is refused and nothing is stored;
     * without a name the dataset gets the stem, then "stem 2", ... */
    snprintf(path, sizeof path, "%s/xy.csv", f->dir);
    none = NULL;
    const char *taken[] = {"xor", "fashion-mnist", "xy"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(catalog_dataset_import(f->s, path, NULL, taken[i], NULL, &none, msg,
                                                sizeof msg),
                         QN_EEXIST);
        assert_null(none);
        assert_non_null(strstr(msg, taken[i]));
        assert_non_null(strstr(msg, i < 2 ? "built-in" : "already exists"));
    }
    const char *want[] = {"xy 2", "xy 3", "upload"};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(catalog_dataset_import(f->s, path, NULL, NULL, i < 2 ? "xy" : NULL, &none,
                                                msg, sizeof msg),
                         0);
        assert_string_equal(json_string_value(json_object_get(none, "name")), want[i]);
        json_decref(none);
        none = NULL;
    }
    assert_int_equal(catalog_dataset_import(f->s, path, NULL, NULL, "xor", &none, msg, sizeof msg), 0);
    assert_string_equal(json_string_value(json_object_get(none, "name")), "xor 2"); /* never a built-in */
    json_decref(none);
    none = NULL;
}

/* The id of the dataset `ref` names on f->s, -1 when none. */
static int64_t dataset_id(struct qt_store *f, const char *ref)
{
    struct store_dataset d;
    if (catalog_dataset_find(f->s, ref, &d) != 0)
        return -1;
    int64_t id = d.id;
    catalog_dataset_free(&d);
    return id;
}

/* Imports dir/xy.csv as `name` for `owner`; the new id. */
static int64_t import_as(struct qt_store *f, const char *owner, const char *name)
{
    char path[700], msg[512] = "";
    snprintf(path, sizeof path, "%s/xy.csv", f->dir);
    json_t *record = NULL;
    catalog_set_owner(f->s, owner);
    assert_int_equal(catalog_dataset_import(f->s, path, NULL, name, NULL, &record, msg,
                                            sizeof msg), 0);
    assert_string_equal(json_string_value(json_object_get(record, "owner")),
                        owner ? owner : "local");
    int64_t id = json_integer_value(json_object_get(record, "id"));
    json_decref(record);
    return id;
}

/* A name resolves within the connection's owner, then local's; another
 * owner's by owner/name; a device name is unique per owner. */
static void test_owned_names(void **state)
{
    struct qt_store *f = *state;
    assert_int_equal(qt_write_file(f->dir, "xy.csv", "x,y\n1,2\n"), 0);
    int64_t shared = import_as(f, NULL, "shared");
    int64_t alice = import_as(f, "alice", "data");
    int64_t bob = import_as(f, "bob", "data"); /* newer, same name */
    catalog_set_owner(f->s, "alice");
    assert_int_equal(dataset_id(f, "data"), alice);
    assert_int_equal(dataset_id(f, "bob/data"), bob);
    assert_int_equal(dataset_id(f, "shared"), shared); /* local's, for everyone */
    assert_int_equal(dataset_id(f, "carol/data"), -1);
    catalog_set_owner(f->s, "bob");
    assert_int_equal(dataset_id(f, "data"), bob);
    catalog_set_owner(f->s, "carol");
    assert_int_equal(dataset_id(f, "data"), -1); /* not another member's by a bare name */
    struct spec_error e;
    json_t *dev = parse("{\"name\": \"d\", \"kind\": \"neuron\"}"), *r1 = NULL, *r2 = NULL;
    catalog_set_owner(f->s, "alice");
    assert_int_equal(catalog_device_add(f->s, dev, &r1, &e), 0);
    assert_int_equal(catalog_device_add(f->s, dev, &r2, &e), QN_EEXIST);
    catalog_set_owner(f->s, "bob");
    assert_int_equal(catalog_device_add(f->s, dev, &r2, &e), 0);
    assert_string_equal(json_string_value(json_object_get(r2, "owner")), "bob");
    json_decref(dev);
    json_decref(r1);
    json_decref(r2);
    catalog_set_owner(f->s, NULL);
}

/* A one-input surrogate blob (1 -> 3 tanh -> 1) into *blob (free it). */
static void surrogate_blob(void **blob, size_t *len)
{
    size_t sizes[3] = {1, 3, 1};
    enum act_kind act[2] = {ACT_TANH, ACT_IDENTITY};
    struct surrogate sur;
    memset(&sur, 0, sizeof sur);
    assert_int_equal(mlp_create(&sur.mlp, 2, sizes, act), 0);
    assert_int_equal(mlp_init_params(sur.mlp, 1), 0);
    sur.n_in = 1;
    sur.in_std[0] = 1;
    sur.out_std = 2;
    sur.has_domain = 1, sur.dom_lo[0] = -4, sur.dom_hi[0] = 3.5f;
    assert_int_equal(surrogate_to_blob(&sur, blob, len), 0);
    surrogate_close(&sur);
}

static void test_surrogate_records(void **state)
{
    struct qt_store *f = *state;
    void *blob = NULL;
    size_t len = 0;
    surrogate_blob(&blob, &len);
    struct store_surrogate in = {.has_name = 1, .device = "{\"kind\":\"crn_relu\"}", .n_in = 1,
                                 .val_rmse = 0.25, .max_error = NAN, .blob = blob,
                                 .blob_len = len};
    snprintf(in.name, sizeof in.name, "sur");
    int64_t id = 0;
    assert_int_equal(store_surrogate_insert(f->s, &in, &id), 0);
    free(blob);

    json_t *one = NULL, *items = NULL;
    int64_t last = 0;
    assert_int_equal(catalog_surrogate_get(f->s, "sur", &one), 0);
    expect_keys(one, "id", "name", "job", "device", "dataset", "inputs", "val_rmse", "max_error",
                "created", "owner", "weights", "domain", "conditioned_on", NULL);
    assert_true(json_is_null(json_object_get(one, "max_error")));
    assert_int_equal(json_array_size(json_object_get(one, "conditioned_on")), 0); /* nominal */
    assert_true(json_real_value(json_object_get(one, "val_rmse")) == 0.25);
    json_t *w = json_object_get(one, "weights");
    expect_keys(w, "layers", "in_mean", "in_std", "out_mean", "out_std", NULL);
    json_t *dom = json_object_get(one, "domain");
    expect_keys(dom, "lo", "hi", NULL);
    assert_true(json_real_value(json_array_get(json_object_get(dom, "lo"), 0)) == -4.0);
    assert_true(json_real_value(json_array_get(json_object_get(dom, "hi"), 0)) == 3.5);
    json_t *layers = json_object_get(w, "layers");
    assert_int_equal(json_array_size(layers), 2);
    expect_keys(json_array_get(layers, 0), "in", "out", "w", "b", "activation", NULL);
    assert_int_equal(json_array_size(json_object_get(json_array_get(layers, 0), "w")), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(layers, 1),
                                                          "activation")),
                        "identity");

    /* A list row is the record without its weights. */
    assert_int_equal(catalog_surrogate_list(f->s, 0, 0, &items, &last), 0);
    assert_int_equal(json_array_size(items), 1);
    assert_int_equal(last, id);
    json_object_del(one, "weights");
    json_object_del(one, "domain");
    json_object_del(one, "conditioned_on");
    assert_true(json_equal(json_array_get(items, 0), one));
    json_decref(items);
    json_decref(one);

    /* A blob that does not parse shows weights null. */
    unsigned char junk[4] = {1, 2, 3, 4};
    in.blob = junk;
    in.blob_len = sizeof junk;
    assert_int_equal(store_surrogate_insert(f->s, &in, &id), 0);
    char ref[32];
    snprintf(ref, sizeof ref, "%lld", (long long)id);
    assert_int_equal(catalog_surrogate_get(f->s, ref, &one), 0);
    assert_true(json_is_null(json_object_get(one, "weights")));
    assert_true(json_is_null(json_object_get(one, "domain")));
    json_decref(one);
    assert_int_equal(catalog_surrogate_get(f->s, "none", &one), QN_ENOTFOUND);
}

static void test_model_records(void **state)
{
    struct qt_store *f = *state;
    float params[7] = {0}, scaler[4] = {0, 0, 1, 1};
    struct store_model m = {.has_name = 1, .spec = "{\"epochs\":1}", .n_in = 2, .n_out = 2,
                            .n_classes = 2, .params = params, .n_params = 7, .scaler = scaler,
                            .n_scaler = 4};
    snprintf(m.name, sizeof m.name, "net");
    snprintf(m.loss, sizeof m.loss, "cross_entropy");
    int64_t id = 0;
    assert_int_equal(store_model_insert(f->s, &m, &id), 0);
    json_t *one = NULL, *items = NULL;
    int64_t last = 0;
    assert_int_equal(catalog_model_get(f->s, "net", &one), 0);
    expect_keys(one, "id", "name", "job", "spec", "inputs", "outputs", "classes", "loss",
                "params", "created", "owner", NULL);
    assert_int_equal(json_integer_value(json_object_get(one, "params")), 7);
    assert_string_equal(json_string_value(json_object_get(one, "loss")), "cross_entropy");
    assert_true(json_is_null(json_object_get(one, "job")));
    assert_int_equal(catalog_model_list(f->s, 0, 0, &items, &last), 0);
    assert_int_equal(json_array_size(items), 1);
    assert_true(json_equal(json_array_get(items, 0), one));
    assert_int_equal(last, id);
    json_decref(items);
    json_decref(one);

    struct store_model full;
    assert_int_equal(catalog_model_find(f->s, "net", &full), 0);
    assert_int_equal(full.n_params, 7);
    assert_non_null(full.params);
    assert_int_equal(full.n_scaler, 4);
    catalog_model_free(&full);
    assert_int_equal(catalog_model_find(f->s, "2", &full), QN_ENOTFOUND);
}

#define JOB_KEYS                                                                                \
    "id", "type", "name", "owner", "state", "created", "started", "finished", "error", "result"

static void test_job_records(void **state)
{
    struct qt_store *f = *state;
    int64_t a = 0, b = 0;
    assert_int_equal(store_job_insert(f->s, "sweep", "a", "ann", 3, JOB_RUNNING, "{\"x\":1}", &a),
                     0);
    assert_int_equal(store_job_insert(f->s, "fit", "b", NULL, 0, JOB_QUEUED, "{}", &b), 0);
    assert_int_equal(store_job_set_state(f->s, a, JOB_FAILED, NULL, "boom"), 0);

    struct catalog_job j;
    assert_int_equal(catalog_job_get(f->s, a, 0, &j), 0);
    expect_keys(j.record, JOB_KEYS, NULL);
    assert_int_equal(j.id, a);
    assert_int_equal(j.state, JOB_FAILED);
    assert_int_equal(j.ended, 1);
    assert_string_equal(j.owner, "ann");
    assert_null(j.spec);
    assert_string_equal(json_string_value(json_object_get(j.record, "error")), "boom");
    catalog_job_close(&j);
    assert_int_equal(catalog_job_get(f->s, a, CATALOG_JOB_PRIORITY | CATALOG_JOB_SPEC, &j), 0);
    expect_keys(j.record, JOB_KEYS, "priority", NULL);
    assert_int_equal(json_integer_value(json_object_get(j.record, "priority")), 3);
    json_t *spec = parse("{\"x\":1}");
    assert_true(json_equal(j.spec, spec));
    json_decref(spec);
    catalog_job_close(&j);
    catalog_job_close(&j); /* twice is fine */
    assert_int_equal(catalog_job_get(f->s, 99, 0, &j), QN_ENOTFOUND);

    struct catalog_job *list = NULL;
    size_t n = 0;
    struct store_job_filter queued = {.state = "queued"};
    assert_int_equal(catalog_job_list(f->s, &queued, 0, 0, CATALOG_JOB_PRIORITY, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].id, b);
    assert_int_equal(list[0].ended, 0);
    assert_string_equal(list[0].owner, "local");
    expect_keys(list[0].record, JOB_KEYS, "priority", NULL);
    catalog_job_list_free(list, n);
    assert_int_equal(catalog_job_list(f->s, NULL, a, 5, 0, &list, &n), 0);
    assert_int_equal(n, 1);
    catalog_job_list_free(list, n);

    enum store_job_state st;
    assert_int_equal(catalog_job_state_from_name("waiting", &st), 0);
    assert_int_equal(st, JOB_WAITING);
    assert_int_equal(catalog_job_state_from_name("gone", &st), QN_EINVAL);
    assert_string_equal(catalog_job_state_name(JOB_SUCCEEDED), "succeeded");
    int64_t counts[JOB_CANCELED + 1];
    assert_int_equal(catalog_job_counts(f->s, counts), 0);
    assert_int_equal(counts[JOB_FAILED], 1);
    assert_int_equal(counts[JOB_QUEUED], 1);
}

static void test_metric_records(void **state)
{
    struct qt_store *f = *state;
    int64_t job = 0;
    assert_int_equal(store_job_insert(f->s, "train", "t", NULL, 0, JOB_RUNNING, "{}", &job), 0);
    assert_int_equal(store_metric_insert(f->s, job, 1, 0, "step_loss", 0.5), 0);
    assert_int_equal(store_metric_insert(f->s, job, 2, 0, "step_loss", INFINITY), 0);
    struct store_metric_query q = {.job = job};
    struct store_metric *rows = NULL;
    size_t n = 0;
    assert_int_equal(catalog_metric_list(f->s, &q, &rows, &n), 0);
    assert_int_equal(n, 2);
    json_t *m0 = catalog_metric_json(&rows[0]), *m1 = catalog_metric_json(&rows[1]);
    expect_keys(m0, "id", "step", "epoch", "name", "value", "time", NULL);
    assert_int_equal(json_integer_value(json_object_get(m0, "id")), rows[0].id);
    assert_true(json_real_value(json_object_get(m0, "value")) == 0.5);
    assert_true(json_is_null(json_object_get(m1, "value"))); /* a diverged value */
    assert_true(json_real_value(json_object_get(m1, "time")) > 1.7e9);
    json_decref(m0);
    json_decref(m1);
    catalog_metric_list_free(rows, n);
}

/* catalog_metric_text is the text spec_dumps makes of catalog_metric_json,
 * byte for byte: 20,000 rows of doubles from random bit patterns (every
 * exponent, subnormals, values not finite), the edge values and names that
 * need escapes. */
static void test_metric_text_is_the_json(void **state)
{
    (void)state;
    static const double edge[] = {0.0, -0.0, 1.0, 2.0, -3.0, 0.1, 1e-300, 5e-324, 2.2250738585072014e-308,
                                  1.7976931348623157e308, 1e15, 1e16, 123456789012345678.0,
                                  1764619535.123456, 0.30000000000000004, NAN, INFINITY, -INFINITY};
    static const char *const names[] = {"step_loss", "a\"b", "back\\slash", "tab\there", "/x",
                                        "\x7f", "caf\xc3\xa9", "\x01"};
    uint64_t x = 88172645463325252ull;
    char text[600];
    for (size_t i = 0; i < 20000 + sizeof edge / sizeof edge[0]; i++) {
        double v[2];
        for (int k = 0; k < 2; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            memcpy(&v[k], &x, sizeof v[k]);
        }
        if (i < sizeof edge / sizeof edge[0])
            v[0] = edge[i], v[1] = edge[(i + 3) % (sizeof edge / sizeof edge[0])];
        if (!isfinite(v[1]))
            v[1] = 1764619535.25; /* a time is a time (json_real refuses the rest) */
        struct store_metric m = {(int64_t)(x >> 1), -(int64_t)i, (int64_t)i * 7,
                                 (char *)names[i % (sizeof names / sizeof names[0])], v[0], v[1]};
        json_t *j = catalog_metric_json(&m);
        char *want = spec_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
        size_t n = catalog_metric_text(&m, text, sizeof text);
        if (n != strlen(want) || strcmp(text, want) != 0)
            fail_msg("row %zu: %s, not %s", i, text, want);
        free(want);
        json_decref(j);
    }
    struct store_metric m = {1, 2, 3, "step_loss", 0.5, 1.5};
    assert_int_equal(catalog_metric_text(&m, text, 20), 0); /* does not fit */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_text_is_the_json),
        cmocka_unit_test_setup_teardown(test_device_add_refuses_bad_spec, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_device_records, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_dataset_records, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_owned_names, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_surrogate_records, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_model_records, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_job_records, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_metric_records, qt_store_setup, qt_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
