/*
 * catalog.c: the catalog's connection pool and its queries (see catalog.h).
 *
 * The JSON of every stored thing is built here and nowhere else: the
 * routes reply with it and the command line prints it. A number that is
 * not finite (a diverged fit's RMSE) is null, as jansson cannot write NaN.
 */
#include "catalog.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "job.h"
#include "mlp.h"
#include "queue.h"
#include "qn_err.h"
#include "spec_dumps.h"
#include "surrogate.h"
#include "users.h"

struct catalog {
    char *db;                                  /* database path (owned) */
    pthread_mutex_t mu;                        /* guards pool and n_pool */
    struct store *pool[CATALOG_POOL_IDLE_MAX]; /* idle connections (owned) */
    size_t n_pool;
    struct store_changes changes;              /* counted by every connection it opens */
};

int catalog_create(const char *db, struct catalog **out)
{
    *out = NULL;
    struct catalog *c = calloc(1, sizeof *c);
    if (!c)
        return QN_ENOMEM;
    c->db = strdup(db);
    if (!c->db || pthread_mutex_init(&c->mu, NULL)) {
        free(c->db);
        free(c);
        return QN_ENOMEM;
    }
    *out = c;
    return 0;
}

void catalog_destroy(struct catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        store_close(c->pool[i]);
    pthread_mutex_destroy(&c->mu);
    free(c->db);
    free(c);
}

const char *catalog_db(const struct catalog *c) { return c->db; }

struct store_changes *catalog_changes(struct catalog *c) { return &c->changes; }

int catalog_changes_read(struct catalog *c, enum store_watched t, uint64_t *n)
{
    return store_changes_read(&c->changes, t, n);
}

struct store *catalog_acquire(struct catalog *c)
{
    struct store *s = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->n_pool)
        s = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->mu);
    if (s)
        return s;
    char msg[STORE_MSG_MAX];
    if (store_open(c->db, &s, msg, sizeof msg)) {
        fprintf(stderr, "qn: cannot open %s: %s\n", c->db, msg);
        return NULL;
    }
    store_watch(s, &c->changes); /* a failure marks the count untrusted */
    return s;
}

void catalog_set_owner(struct store *s, const char *owner) { store_set_owner(s, owner); }

void catalog_release(struct catalog *c, struct store *s)
{
    if (!s)
        return;
    store_set_owner(s, NULL);
    pthread_mutex_lock(&c->mu);
    if (c->n_pool < CATALOG_POOL_IDLE_MAX) {
        c->pool[c->n_pool++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    store_close(s);
}

/* ---- helpers ------------------------------------------------------------------- */

/* Whether a reference is an id (digits, at most 18 of them) rather than a name. */
static int catalog__is_id(const char *ref, int64_t *id)
{
    size_t n = ref ? strlen(ref) : 0;
    if (n == 0 || n > 18 || strspn(ref, "0123456789") != n)
        return 0;
    *id = strtoll(ref, NULL, 10);
    return *id > 0;
}

int catalog_ref(const char *text, struct spec_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    ref->kind = catalog__is_id(text, &ref->id) ? REF_ID : REF_NAME;
    if (ref->kind == REF_ID)
        return 0;
    if (!text || strlen(text) >= sizeof ref->name)
        return QN_ENOTFOUND;
    snprintf(ref->name, sizeof ref->name, "%s", text);
    return 0;
}

static json_t *catalog__str_or_null(int has, const char *s)
{
    return has ? json_string(s) : json_null();
}

static json_t *catalog__id_or_null(int64_t id) { return id ? json_integer(id) : json_null(); }

/* Stored JSON text as a value; null when it is absent or does not parse. */
static json_t *catalog__parsed(const char *text)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_null();
}

/*
 * The records of an array of n `size`-byte records into a new JSON array
 * *items (each made by `json`), and the id of the last into *last (0: none).
 * Every record struct of the store starts with its int64_t id.
 */
static int catalog__items(const void *arr, size_t n, size_t size,
                          json_t *(*json)(const void *), json_t **items, int64_t *last)
{
    json_t *a = json_array();
    int rc = a ? 0 : QN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = json_array_append_new(a, json((const char *)arr + i * size)) ? QN_ENOMEM : 0;
    if (rc) {
        json_decref(a);
        return rc;
    }
    *items = a;
    *last = n ? *(const int64_t *)(const void *)((const char *)arr + (n - 1) * size) : 0;
    return 0;
}

/* *out = record (stolen): 0, or QN_ENOMEM when it is NULL. */
static int catalog__one(json_t *record, json_t **out)
{
    *out = record;
    return record ? 0 : QN_ENOMEM;
}

/* ---- the database ------------------------------------------------------------- */

const char *catalog_errmsg(const struct store *s) { return store_errmsg(s); }

int catalog_health(struct store *s, int *schema, int64_t *users)
{
    int rc = store_schema_version(s, schema);
    return rc ? rc : users_count(s, users);
}

int catalog_data_version(struct store *s, int64_t *out) { return store_data_version(s, out); }

/* ---- devices ------------------------------------------------------------------- */

static json_t *catalog__device_json(const void *p)
{
    const struct store_device *d = p;
    json_t *o = json_pack("{sI so ss so ss}", "id", (json_int_t)d->id, "name",
                          catalog__str_or_null(d->has_name, d->name), "kind", d->kind, "spec",
                          catalog__parsed(d->spec), "created", d->created);
    if (o)
        json_object_set_new(o, "owner", json_string(d->owner[0] ? d->owner : "local"));
    return o;
}

/* The record of device *d that a lookup returning rc filled (then freed). */
static int catalog__device_record(struct store_device *d, int rc, json_t **out)
{
    if (rc)
        return rc;
    rc = catalog__one(catalog__device_json(d), out);
    store_device_free(d);
    return rc;
}

int catalog_device_check(const json_t *root, struct spec_error *err)
{
    struct dev_model m;
    int rc = spec_device_parse(root, "", &m, err);
    if (rc == 0)
        dev_model_close(&m);
    return rc;
}

int catalog_device_add(struct store *s, const json_t *root, json_t **record,
                       struct spec_error *err)
{
    *record = NULL;
    int rc = catalog_device_check(root, err);
    if (rc)
        return rc;
    const char *name = json_string_value(json_object_get(root, "name"));
    const char *kind = json_string_value(json_object_get(root, "kind"));
    char *text = json_dumps(root, JSON_COMPACT);
    if (!text)
        return QN_ENOMEM;
    int64_t id = 0;
    rc = store_device_insert(s, name && *name ? name : NULL, kind, text, &id);
    free(text);
    if (rc == QN_EEXIST) {
        spec_fail(err, "/name", "a device named '%s' already exists", name);
        return QN_EEXIST;
    }
    struct store_device d;
    return rc ? rc : catalog__device_record(&d, store_device_get(s, id, &d), record);
}

int catalog_device_find(struct store *s, const char *ref, struct store_device *out)
{
    int64_t id;
    return catalog__is_id(ref, &id) ? store_device_get(s, id, out)
                                    : store_device_get_by_name(s, ref, out);
}

void catalog_device_free(struct store_device *d) { store_device_free(d); }

int catalog_device_get(struct store *s, const char *ref, json_t **out)
{
    struct store_device d;
    return catalog__device_record(&d, catalog_device_find(s, ref, &d), out);
}

int catalog_device_list(struct store *s, int64_t after, size_t limit, json_t **items,
                        int64_t *last)
{
    struct store_device *list = NULL;
    size_t n = 0;
    int rc = store_device_list(s, after, limit, &list, &n);
    if (rc == 0)
        rc = catalog__items(list, n, sizeof *list, catalog__device_json, items, last);
    store_device_list_free(list, n);
    return rc;
}

/* ---- datasets ------------------------------------------------------------------ */

static json_t *catalog__dataset_json(const void *p)
{
    const struct store_dataset *d = p;
    json_t *o = json_pack("{sI so ss sI sI so so ss}", "id", (json_int_t)d->id, "name",
                          catalog__str_or_null(d->has_name, d->name), "source", d->source, "rows",
                          (json_int_t)d->n_rows, "cols", (json_int_t)d->n_cols, "columns",
                          catalog__parsed(d->columns), "job", catalog__id_or_null(d->job_id),
                          "created", d->created);
    if (o)
        json_object_set_new(o, "owner", json_string(d->owner[0] ? d->owner : "local"));
    return o;
}

/* The record of dataset *d that a lookup returning rc filled (then freed). */
static int catalog__dataset_record(struct store_dataset *d, int rc, json_t **out)
{
    if (rc)
        return rc;
    rc = catalog__one(catalog__dataset_json(d), out);
    store_dataset_free(d);
    return rc;
}

int catalog_dataset_import(struct store *s, const char *path, const char *labels,
                           const char *name, const char *stem, json_t **record, char *msg,
                           size_t cap)
{
    *record = NULL;
    int64_t id = 0;
    int rc = import_file(s, path, labels, name, stem, &id, msg, cap);
    struct store_dataset d;
    return rc ? rc : catalog__dataset_record(&d, store_dataset_get(s, id, &d), record);
}

int catalog_dataset_upload(struct store *s, const char *path, const char *name,
                           uint64_t max_bytes, uint64_t max_values, json_t **record, char *msg,
                           size_t cap)
{
    *record = NULL;
    int64_t id = 0;
    struct import_limits lim = {max_bytes, max_values};
    int rc = import_file_max(s, path, NULL, name, NULL, &lim, &id, msg, cap);
    struct store_dataset d;
    return rc ? rc : catalog__dataset_record(&d, store_dataset_get(s, id, &d), record);
}

int catalog_dataset_find(struct store *s, const char *ref, struct store_dataset *out)
{
    int64_t id;
    return catalog__is_id(ref, &id) ? store_dataset_get(s, id, out)
                                    : store_dataset_get_by_name(s, ref, out);
}

void catalog_dataset_free(struct store_dataset *d) { store_dataset_free(d); }

int catalog_dataset_read(struct store *s, int64_t id, size_t row0, size_t n, float *out)
{
    return store_dataset_read(s, id, row0, n, out);
}

int catalog_dataset_export_csv(struct store *s, int64_t id, FILE *f)
{
    return store_dataset_export_csv(s, id, f);
}

int catalog_dataset_get(struct store *s, const char *ref, json_t **out)
{
    struct store_dataset d;
    return catalog__dataset_record(&d, catalog_dataset_find(s, ref, &d), out);
}

int catalog_dataset_list(struct store *s, int64_t after, size_t limit, json_t **items,
                         int64_t *last)
{
    struct store_dataset *list = NULL;
    size_t n = 0;
    int rc = store_dataset_list(s, after, limit, &list, &n);
    if (rc == 0)
        rc = catalog__items(list, n, sizeof *list, catalog__dataset_json, items, last);
    store_dataset_list_free(list, n);
    return rc;
}

/* ---- surrogates ---------------------------------------------------------------- */

static json_t *catalog__surrogate_json(const void *p)
{
    const struct store_surrogate *x = p;
    json_t *o = json_pack("{sI so so so so sI so so ss}", "id", (json_int_t)x->id, "name",
                          catalog__str_or_null(x->has_name, x->name), "job",
                          catalog__id_or_null(x->job_id), "device", catalog__parsed(x->device),
                          "dataset", catalog__id_or_null(x->dataset_id), "inputs",
                          (json_int_t)x->n_in, "val_rmse", job_real(x->val_rmse), "max_error",
                          job_real(x->max_error), "created", x->created);
    if (o)
        json_object_set_new(o, "owner", json_string(x->owner[0] ? x->owner : "local"));
    return o;
}

/* A float array as JSON. */
static json_t *catalog__floats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, job_real((double)v[i]));
    return a;
}

/* The surrogate's network: layers of {"w" (out, in) row-major, "b", "activation"}
 * and the standardisation, so a page can evaluate it. */
static json_t *catalog__surrogate_weights(const struct surrogate *sur)
{
    const struct mlp *m = sur->mlp;
    json_t *layers = json_array();
    for (size_t l = 0; layers && l < m->n_layers; l++) {
        struct mlp_layer_view lv = mlp_layer_view(m, m->params, l);
        json_array_append_new(
            layers, json_pack("{sI sI so so ss}", "in", (json_int_t)m->sizes[l], "out",
                              (json_int_t)m->sizes[l + 1], "w",
                              catalog__floats(lv.w, m->sizes[l] * m->sizes[l + 1]), "b",
                              catalog__floats(lv.b, m->sizes[l + 1]), "activation",
                              act_name(m->act[l])));
    }
    return json_pack("{so so so sf sf}", "layers", layers ? layers : json_null(), "in_mean",
                     catalog__floats(sur->in_mean, sur->n_in), "in_std",
                     catalog__floats(sur->in_std, sur->n_in), "out_mean", (double)sur->out_mean,
                     "out_std", (double)sur->out_std);
}

/* The parameters a conditioned surrogate takes after its drives ([] for none). */
static json_t *catalog__surrogate_cond(const struct surrogate *sur)
{
    json_t *a = json_array();
    for (size_t k = 0; a && k < sur->n_cond; k++)
        if (json_array_append_new(a, json_string(sur->cond_names[k])))
            json_decref(a), a = NULL;
    return a;
}

/* The domain the surrogate answers in: {"lo": [...], "hi": [...]} per input
 * (the box of the sweep rows it was fitted on), null when it predates domains. */
static json_t *catalog__surrogate_domain(const struct surrogate *sur)
{
    if (!sur->has_domain)
        return json_null();
    return json_pack("{so so}", "lo", catalog__floats(sur->dom_lo, sur->n_in), "hi",
                     catalog__floats(sur->dom_hi, sur->n_in));
}

int catalog_surrogate_get(struct store *s, const char *ref, json_t **out)
{
    int64_t id;
    struct store_surrogate x;
    int rc = catalog__is_id(ref, &id) ? store_surrogate_get(s, id, &x)
                                      : store_surrogate_get_by_name(s, ref, &x);
    if (rc)
        return rc;
    struct surrogate sur;
    json_t *weights = NULL, *domain = NULL, *cond = NULL, *o = catalog__surrogate_json(&x);
    if (o && surrogate_from_blob(x.blob, x.blob_len, &sur) == 0) {
        weights = catalog__surrogate_weights(&sur);
        domain = catalog__surrogate_domain(&sur);
        cond = catalog__surrogate_cond(&sur);
        surrogate_close(&sur);
    }
    store_surrogate_free(&x);
    if (o && (json_object_set_new(o, "weights", weights ? weights : json_null()) ||
              json_object_set_new(o, "domain", domain ? domain : json_null()) ||
              json_object_set_new(o, "conditioned_on", cond ? cond : json_null()))) {
        json_decref(o);
        o = NULL;
    }
    return catalog__one(o, out);
}

int catalog_surrogate_list(struct store *s, int64_t after, size_t limit, json_t **items,
                           int64_t *last)
{
    struct store_surrogate *list = NULL;
    size_t n = 0;
    int rc = store_surrogate_list(s, after, limit, &list, &n);
    if (rc == 0)
        rc = catalog__items(list, n, sizeof *list, catalog__surrogate_json, items, last);
    store_surrogate_list_free(list, n);
    return rc;
}

/* ---- models -------------------------------------------------------------------- */

static json_t *catalog__model_json(const void *p)
{
    const struct store_model *m = p;
    return json_pack("{sI so so so sI sI sI ss sI ss ss}", "id", (json_int_t)m->id, "name",
                     catalog__str_or_null(m->has_name, m->name), "job",
                     catalog__id_or_null(m->job_id), "spec", catalog__parsed(m->spec), "inputs",
                     (json_int_t)m->n_in, "outputs", (json_int_t)m->n_out, "classes",
                     (json_int_t)m->n_classes, "loss", m->loss, "params",
                     (json_int_t)m->n_params, "created", m->created, "owner", m->owner);
}

int catalog_model_find(struct store *s, const char *ref, struct store_model *out)
{
    int64_t id;
    return catalog__is_id(ref, &id) ? store_model_get(s, id, out)
                                    : store_model_get_by_name(s, ref, out);
}

void catalog_model_free(struct store_model *m) { store_model_free(m); }

int catalog_model_get(struct store *s, const char *ref, json_t **out)
{
    int64_t id;
    struct store_model m;
    int rc = catalog__is_id(ref, &id) ? store_model_summary(s, id, &m)
                                      : store_model_summary_by_name(s, ref, &m);
    if (rc)
        return rc;
    rc = catalog__one(catalog__model_json(&m), out);
    store_model_free(&m);
    return rc;
}

int catalog_model_list(struct store *s, int64_t after, size_t limit, json_t **items,
                       int64_t *last)
{
    struct store_model *list = NULL;
    size_t n = 0;
    int rc = store_model_list(s, after, limit, &list, &n);
    if (rc == 0)
        rc = catalog__items(list, n, sizeof *list, catalog__model_json, items, last);
    store_model_list_free(list, n);
    return rc;
}

/* ---- jobs ---------------------------------------------------------------------- */

/* A stored job as a catalog job (j is left to the caller to free). */
static int catalog__job(const struct store_job *j, unsigned with, struct catalog_job *out)
{
    memset(out, 0, sizeof *out);
    out->id = j->id;
    out->state = j->state;
    out->ended = store_job_state_final(j->state);
    snprintf(out->owner, sizeof out->owner, "%s", j->owner);
    out->record = job_record_json(j);
    int rc = out->record ? 0 : QN_ENOMEM;
    if (rc == 0 && (with & CATALOG_JOB_PRIORITY) &&
        json_object_set_new(out->record, "priority", json_integer(j->priority)))
        rc = QN_ENOMEM;
    if (rc == 0 && (with & CATALOG_JOB_SPEC))
        out->spec = catalog__parsed(j->spec);
    if (rc)
        catalog_job_close(out);
    return rc;
}

int catalog_job_get(struct store *s, int64_t id, unsigned with, struct catalog_job *out)
{
    struct store_job j;
    memset(out, 0, sizeof *out);
    int rc = store_job_get(s, id, &j);
    if (rc)
        return rc;
    rc = catalog__job(&j, with, out);
    store_job_free(&j);
    return rc;
}

int catalog_job_list(struct store *s, const struct store_job_filter *f, int64_t after,
                     size_t limit, unsigned with, struct catalog_job **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct store_job *list = NULL;
    size_t len = 0;
    int rc = store_job_list(s, f, after, limit, &list, &len);
    struct catalog_job *jobs = rc || len == 0 ? NULL : calloc(len, sizeof *jobs);
    if (rc == 0 && len && !jobs)
        rc = QN_ENOMEM;
    size_t done = 0;
    for (; rc == 0 && done < len; done++)
        rc = catalog__job(&list[done], with, &jobs[done]);
    store_job_list_free(list, len);
    if (rc) {
        catalog_job_list_free(jobs, done);
        return rc;
    }
    *out = jobs;
    *n = len;
    return 0;
}

int catalog_job_cancel(struct store *s, int64_t id, enum store_job_state *state)
{
    struct queue *q = NULL;
    int rc = queue_create(s, NULL, &q);
    if (rc)
        return rc;
    rc = queue_cancel_pending(q, s, id, state);
    queue_destroy(q);
    return rc;
}

void catalog_job_close(struct catalog_job *j)
{
    if (!j)
        return;
    json_decref(j->record);
    json_decref(j->spec);
    j->record = j->spec = NULL;
}

void catalog_job_list_free(struct catalog_job *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        catalog_job_close(&list[i]);
    free(list);
}

const char *catalog_job_state_name(enum store_job_state st) { return store_job_state_name(st); }

int catalog_job_state_from_name(const char *name, enum store_job_state *out)
{
    return store_job_state_from_name(name, out);
}

int catalog_job_counts(struct store *s, int64_t counts[JOB_CANCELED + 1])
{
    return store_job_counts(s, counts);
}

/* ---- metrics ------------------------------------------------------------------- */

int catalog_metric_list(struct store *s, const struct store_metric_query *q,
                        struct store_metric **out, size_t *n)
{
    return store_metric_list(s, q, out, n);
}

void catalog_metric_list_free(struct store_metric *list, size_t n)
{
    store_metric_list_free(list, n);
}

/* A real as spec_dumps writes it; null when not finite (job_real). */
static const char *catalog__real(char *buf, double v)
{
    if (!isfinite(v))
        return "null";
    spec_dumps_real(buf, v);
    return buf;
}

/* s as a JSON string (quoted) in jansson's ASCII form into *out: as it is
 * when it needs no escape, else by jansson (a new string in *owned). */
static const char *catalog__quoted(const char *s, char *buf, size_t cap, char **owned)
{
    *owned = NULL;
    size_t n = strlen(s);
    int plain = n + 3 <= cap;
    for (const char *c = s; plain && *c; c++)
        plain = *c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\';
    if (plain) {
        buf[0] = '"';
        memcpy(buf + 1, s, n);
        memcpy(buf + 1 + n, "\"", 2);
        return buf;
    }
    json_t *j = json_string(s);
    *owned = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(j);
    return *owned;
}

size_t catalog_metric_text(const struct store_metric *m, char *buf, size_t cap)
{
    char value[SPEC_DUMPS_REAL_MAX], time[SPEC_DUMPS_REAL_MAX], name[96], *owned;
    const char *q = catalog__quoted(m->name, name, sizeof name, &owned);
    int n = q ? snprintf(buf, cap,
                         "{\"id\":%" PRId64 ",\"step\":%" PRId64 ",\"epoch\":%" PRId64
                         ",\"name\":%s,\"value\":%s,\"time\":%s}",
                         m->id, m->step, m->epoch, q, catalog__real(value, m->value),
                         catalog__real(time, m->time))
               : -1;
    free(owned);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

json_t *catalog_metric_json(const struct store_metric *m)
{
    return json_pack("{sI sI sI ss so sf}", "id", (json_int_t)m->id, "step",
                     (json_int_t)m->step, "epoch", (json_int_t)m->epoch, "name", m->name,
                     "value", job_real(m->value), "time", m->time);
}
