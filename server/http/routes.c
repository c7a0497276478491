/*
 * routes.c: the daemon's routes other than jobs: health, Prometheus metrics,
 * devices (and one-off simulations), datasets (upload, list, CSV download),
 * surrogates, models (and inference). The job routes live in routes_jobs.c.
 *
 * Stored things are addressed by id or by name in {id} ("/v1/devices/crn"),
 * as everywhere else in Quasineuron. Lists are pages ordered by id:
 * {"<things>": [...], "next": <cursor or null>}.
 *
 * simulate, predict and uploads compute: they are HTTP_F_SLOW (a compute
 * thread runs them, so they never hold up other connections), their size
 * is capped (SPEC_SIM_* and SPEC_PREDICT_ROWS_MAX in spec.h, whose parsers
 * read their bodies), and simulate and predict stop when the daemon shuts
 * down (the daemon's stopping flag is their cancel flag).
 */
#include "routes.h"

#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "job_model.h"
#include "qn_err.h"
#include "routes_jobs.h"
#include "spec.h"
#include "users.h"
#include "web_assets.h"

#define ROUTES_CSV_CHUNK (256u << 10) /* bytes of CSV formatted per read */

/* ---- helpers ------------------------------------------------------------------ */

static json_t *routes__real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *routes__str_or_null(int has, const char *s)
{
    return has ? json_string(s) : json_null();
}

static json_t *routes__id_or_null(int64_t id) { return id ? json_integer(id) : json_null(); }

/* 400 invalid_spec at the spec error's path. */
static int routes__spec_error(struct http_req *req, const struct spec_error *e)
{
    return http_reply_err(req, QN_ESPEC, e->path, "%s", e->msg[0] ? e->msg : "invalid");
}

/* A page: {"<key>": items (stolen), "next": last id when the page is full}. */
static int routes__page(struct http_req *req, const char *key, json_t *items, size_t limit,
                        int64_t last)
{
    if (!items)
        return QN_ENOMEM;
    json_t *next = json_array_size(items) == limit && last ? json_integer(last) : json_null();
    return http_reply_json(req, 200, json_pack("{so so}", key, items, "next", next));
}

/* Whether an {id} is a number (an id) or a name. */
static int routes__is_id(const char *v, int64_t *id)
{
    if (!v || !*v || strlen(v) > 18 || strspn(v, "0123456789") != strlen(v))
        return 0;
    *id = strtoll(v, NULL, 10);
    return *id > 0;
}

/* Replies for a store error code rc (not 0). */
static int routes__store_fail(struct http_req *req, struct store *s, int rc, const char *what)
{
    if (rc == QN_ENOTFOUND)
        return http_reply_err(req, QN_ENOTFOUND, NULL, "no such %s: '%s'", what,
                              http_req_param(req, "id") ? http_req_param(req, "id") : "");
    return http_reply_err(req, rc, NULL, "%s: %s", qn_err_msg(rc), s ? store_errmsg(s) : "");
}

/* ---- health and metrics --------------------------------------------------------- */

static int routes__healthz(struct http_req *req)
{
    struct store *s = http_req_store(req);
    int version = 0;
    int rc = s ? store_schema_version(s, &version) : QN_EDB;
    if (rc)
        return http_reply_err(req, QN_EDBDOWN, NULL, "database unreachable: %s",
                              s ? store_errmsg(s) : "cannot open it");
    int64_t users = 0;
    if (users_count(s, &users))
        return http_reply_err(req, QN_EDBDOWN, NULL, "database unreachable: %s", store_errmsg(s));
    struct routes_ctx *d = routes_ctx(req);
    int stopping = d ? atomic_load(&d->stopping) : 0;
    return http_reply_json(req, stopping ? 503 : 200,
                           json_pack("{ss ss si ss}", "status", stopping ? "stopping" : "ok",
                                     "database", "ok", "schema", version, "auth",
                                     users ? "token" : "none"));
}

/* Who the request is signed in as: {"name", "admin"}. */
static int routes__whoami(struct http_req *req)
{
    const struct user *u = http_req_user(req);
    return http_reply_json(req, 200, json_pack("{ss sb}", "name", u ? u->name : "",
                                               "admin", u && u->admin));
}

/* Jobs by state and the queue depth, from the database. */
static void routes__metrics_jobs(struct store *s, FILE *out)
{
    static const char *const states[] = {"waiting", "queued", "running",
                                         "succeeded", "failed", "canceled"};
    int64_t n[6] = {0};
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(store_sqlite(s), "SELECT state, count(*) FROM jobs GROUP BY state", -1,
                           &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            for (size_t i = 0; name && i < 6; i++)
                if (strcmp(name, states[i]) == 0)
                    n[i] = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    fputs("# HELP qn_jobs Jobs by state.\n# TYPE qn_jobs gauge\n", out);
    for (size_t i = 0; i < 6; i++)
        fprintf(out, "qn_jobs{state=\"%s\"} %" PRId64 "\n", states[i], n[i]);
    fprintf(out, "# HELP qn_queue_depth Jobs waiting for a worker (queued).\n"
                 "# TYPE qn_queue_depth gauge\nqn_queue_depth %" PRId64 "\n", n[1]);
}

static int routes__metrics(struct http_req *req)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return QN_ENOMEM;
    struct store *s = http_req_store(req);
    fprintf(out, "# HELP qn_up 1 when the database answers.\n# TYPE qn_up gauge\nqn_up %d\n",
            s ? 1 : 0);
    if (s)
        routes__metrics_jobs(s, out);
    http_metrics_write(http_req_server(req), out);
    if (fclose(out) != 0) {
        free(text);
        return QN_ENOMEM;
    }
    int rc = http_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return rc;
}

/* ---- devices -------------------------------------------------------------------- */

json_t *routes_device_json(const struct store_device *d)
{
    json_t *spec = json_loads(d->spec, 0, NULL);
    return json_pack("{sI so ss so ss}", "id", (json_int_t)d->id, "name",
                     routes__str_or_null(d->has_name, d->name), "kind", d->kind, "spec",
                     spec ? spec : json_null(), "created", d->created);
}

/* The device named by {id} (an id or a name); replies 404 itself. */
static int routes__device_get(struct http_req *req, struct store *s, struct store_device *out)
{
    const char *v = http_req_param(req, "id");
    int64_t id;
    int rc = routes__is_id(v, &id) ? store_device_get(s, id, out)
                                   : store_device_get_by_name(s, v, out);
    if (rc)
        routes__store_fail(req, s, rc, "device");
    return rc;
}

static int routes__device_create(struct http_req *req)
{
    json_t *root = http_req_json(req);
    struct dev_model m;
    struct spec_error e = {{0}, {0}};
    if (spec_device_parse(root, "", &m, &e))
        return routes__spec_error(req, &e);
    dev_model_close(&m);
    const char *name = json_string_value(json_object_get(root, "name"));
    const char *kind = json_string_value(json_object_get(root, "kind"));
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    char *text = json_dumps(root, JSON_COMPACT);
    if (!text)
        return QN_ENOMEM;
    int64_t id = 0;
    int rc = store_device_insert(s, name && *name ? name : NULL, kind, text, &id);
    free(text);
    if (rc == QN_EEXIST)
        return http_reply_err(req, QN_EEXIST, "/name", "a device named '%s' already exists", name);
    if (rc)
        return routes__store_fail(req, s, rc, "device");
    struct store_device d;
    if ((rc = store_device_get(s, id, &d)))
        return routes__store_fail(req, s, rc, "device");
    rc = http_reply_json(req, 201, routes_device_json(&d));
    store_device_free(&d);
    return rc;
}

static int routes__device_list(struct http_req *req)
{
    size_t limit;
    int64_t after;
    struct store *s;
    if (http_req_page(req, &limit, &after) || http_req_store_or_reply(req, &s))
        return 0;
    struct store_device *list = NULL;
    size_t n = 0;
    int rc = store_device_list(s, after, limit, &list, &n);
    if (rc)
        return routes__store_fail(req, s, rc, "device");
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, routes_device_json(&list[i]));
    int64_t last = n ? list[n - 1].id : 0;
    store_device_list_free(list, n);
    return routes__page(req, "devices", items, limit, last);
}

static int routes__device_one(struct http_req *req)
{
    struct store *s;
    struct store_device d;
    if (http_req_store_or_reply(req, &s) || routes__device_get(req, s, &d))
        return 0;
    int rc = http_reply_json(req, 200, routes_device_json(&d));
    store_device_free(&d);
    return rc;
}

/* ---- simulate ---------------------------------------------------------------------- */

/* The states of a trajectory as names (the model's when it has them). */
static json_t *routes__state_names(const struct dev_model *m, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        char buf[32];
        if (m->n_states == n)
            json_array_append_new(a, json_string(m->state_names[i]));
        else {
            snprintf(buf, sizeof buf, "s%zu", i + 1);
            json_array_append_new(a, json_string(buf));
        }
    }
    return a;
}

static json_t *routes__traj_json(const struct dev_model *m, const struct dev_traj *tr)
{
    json_t *t = json_array(), *y = json_array(), *o = json_array();
    for (size_t i = 0; t && y && o && i < tr->n; i++) {
        json_array_append_new(t, routes__real(tr->t[i]));
        json_array_append_new(o, routes__real(tr->out[i]));
        json_t *row = json_array();
        for (size_t j = 0; row && j < tr->n_states; j++)
            json_array_append_new(row, routes__real(tr->y[i * tr->n_states + j]));
        json_array_append_new(y, row);
    }
    return json_pack("{so so so so}", "states", routes__state_names(m, tr->n_states), "t",
                     t ? t : json_null(), "y", y ? y : json_null(), "out", o ? o : json_null());
}

static json_t *routes__inputs_json(const struct dev_model *m, const double *in)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < dev_n_inputs(m); i++) {
        char name[DEV_NAME_MAX];
        dev_input_name(m, i, name, sizeof name);
        json_object_set_new(o, name, routes__real(in[i]));
    }
    return o;
}

/* One solve with its trajectory. */
static int routes__sim_one(struct http_req *req, const struct store_device *d, struct dev_work *w,
                           const struct dev_model *m, const struct simulate_spec *sim)
{
    struct dev_traj tr;
    double out = NAN;
    int rc = dev_trajectory(w, sim->in, sim->max_points, &tr, &out);
    if (rc == QN_ENOMEM || rc == QN_ECANCELED) {
        dev_traj_free(&tr);
        return rc == QN_ECANCELED ? QN_EBUSY : rc;
    }
    json_t *body = json_pack("{sI so so ss so}", "device", (json_int_t)d->id, "inputs",
                             routes__inputs_json(m, sim->in), "output", routes__real(out),
                             "status", qn_err_name(rc), "trajectory",
                             tr.n ? routes__traj_json(m, &tr) : json_null());
    dev_traj_free(&tr);
    return http_reply_json(req, 200, body);
}

/* A response curve: the output over `points` values of one input. */
static int routes__sim_curve_run(struct http_req *req, const struct store_device *d,
                                 struct dev_work *w, const struct dev_model *m,
                                 struct simulate_spec *sim)
{
    json_t *xs = json_array(), *ys = json_array(), *st = json_array();
    for (size_t i = 0; xs && ys && st && i < sim->points; i++) {
        double x = sim->from + (sim->to - sim->from) * (double)i / (double)(sim->points - 1);
        sim->in[sim->curve_input] = x;
        double y = NAN;
        int rc = dev_eval(w, sim->in, &y);
        if (rc == QN_ECANCELED || rc == QN_ENOMEM) {
            json_decref(xs), json_decref(ys), json_decref(st);
            return rc == QN_ECANCELED ? QN_EBUSY : rc;
        }
        json_array_append_new(xs, json_real(x));
        json_array_append_new(ys, rc ? json_null() : routes__real(y));
        json_array_append_new(st, json_string(qn_err_name(rc)));
    }
    char name[DEV_NAME_MAX];
    dev_input_name(m, sim->curve_input, name, sizeof name);
    json_t *inputs = routes__inputs_json(m, sim->in);
    json_object_del(inputs, name);
    return http_reply_json(req, 200,
                           json_pack("{sI so s{ss so so so}}", "device", (json_int_t)d->id,
                                     "inputs", inputs, "curve", "input", name, "x", xs, "out", ys,
                                     "status", st));
}

static int routes__device_simulate(struct http_req *req)
{
    struct store *s;
    struct store_device d;
    if (http_req_store_or_reply(req, &s) || routes__device_get(req, s, &d))
        return 0;
    struct dev_model m;
    struct spec_error e = {{0}, {0}};
    json_t *spec = json_loads(d.spec, 0, NULL);
    int rc = spec ? spec_device_parse(spec, "", &m, &e) : QN_ENOMEM;
    json_decref(spec);
    if (rc) {
        store_device_free(&d);
        return http_reply_err(req, QN_ESTORED, NULL,
                              "the stored device does not parse any more: %s: %s", e.path, e.msg);
    }
    struct simulate_spec sim;
    struct dev_work w;
    if (spec_simulate_parse(http_req_json(req), &m, &sim, &e)) {
        rc = routes__spec_error(req, &e);
    } else if ((rc = dev_work_init(&w, &m, &routes_ctx(req)->stopping)) == 0) {
        rc = sim.curve ? routes__sim_curve_run(req, &d, &w, &m, &sim)
                       : routes__sim_one(req, &d, &w, &m, &sim);
        dev_work_close(&w);
    }
    dev_model_close(&m);
    store_device_free(&d);
    return rc;
}

/* ---- datasets ------------------------------------------------------------------------ */

json_t *routes_dataset_json(const struct store_dataset *d)
{
    json_t *cols = json_loads(d->columns, 0, NULL);
    return json_pack("{sI so ss sI sI so so ss}", "id", (json_int_t)d->id, "name",
                     routes__str_or_null(d->has_name, d->name), "source", d->source, "rows",
                     (json_int_t)d->n_rows, "cols", (json_int_t)d->n_cols, "columns",
                     cols ? cols : json_null(), "job", routes__id_or_null(d->job_id), "created",
                     d->created);
}

static int routes__dataset_get(struct http_req *req, struct store *s, struct store_dataset *out)
{
    const char *v = http_req_param(req, "id");
    int64_t id;
    int rc = routes__is_id(v, &id) ? store_dataset_get(s, id, out)
                                   : store_dataset_get_by_name(s, v, out);
    if (rc)
        routes__store_fail(req, s, rc, "dataset");
    return rc;
}

/* The importer's sentence about the temp file at path, as one about "the body". */
static const char *routes__body_msg(const char *msg, const char *path, char *buf, size_t cap)
{
    size_t n = strlen(path);
    if (strncmp(msg, path, n) != 0)
        return msg;
    snprintf(buf, cap, "the body%s", msg + n);
    return buf;
}

static int routes__dataset_upload(struct http_req *req)
{
    size_t size = 0;
    FILE *f = http_req_upload(req, &size);
    if (!f || size == 0)
        return http_reply_err(req, QN_EFORMAT, NULL,
                              "the body must be a CSV file (a header row of column names, "
                              "then numeric rows) or an IDX images file, optionally "
                              "followed by its labels file");
    const char *name = http_req_query(req, "name");
    if (name && (!*name || strlen(name) >= STORE_NAME_MAX))
        return http_reply_err(req, QN_EINVAL, "?name", "name must be 1 to %d bytes",
                              STORE_NAME_MAX - 1);
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    char path[64], msg[STORE_MSG_MAX + 256] = "";
    snprintf(path, sizeof path, "/proc/self/fd/%d", fileno(f)); /* the unlinked temp file */
    int64_t id = 0;
    int rc = import_file(s, path, NULL, name, &id, msg, sizeof msg);
    char said[sizeof msg + 16];
    if (rc == QN_EFORMAT || rc == QN_EIO || rc == QN_ERANGE || rc == QN_EINVAL || rc == QN_ESPEC)
        return http_reply_err(req, QN_EFORMAT, NULL, "%s",
                              msg[0] ? routes__body_msg(msg, path, said, sizeof said)
                                     : qn_err_msg(rc));
    if (rc)
        return http_reply_err(req, rc, NULL, "cannot store the dataset: %s",
                              msg[0] ? msg : store_errmsg(s));
    struct store_dataset d;
    if ((rc = store_dataset_get(s, id, &d)))
        return routes__store_fail(req, s, rc, "dataset");
    rc = http_reply_json(req, 201, routes_dataset_json(&d));
    store_dataset_free(&d);
    return rc;
}

static int routes__dataset_list(struct http_req *req)
{
    size_t limit;
    int64_t after;
    struct store *s;
    if (http_req_page(req, &limit, &after) || http_req_store_or_reply(req, &s))
        return 0;
    struct store_dataset *list = NULL;
    size_t n = 0;
    int rc = store_dataset_list(s, after, limit, &list, &n);
    if (rc)
        return routes__store_fail(req, s, rc, "dataset");
    json_t *items = json_array();
    for (size_t i = 0; items && i < n; i++)
        json_array_append_new(items, routes_dataset_json(&list[i]));
    int64_t last = n ? list[n - 1].id : 0;
    store_dataset_list_free(list, n);
    return routes__page(req, "datasets", items, limit, last);
}

static int routes__dataset_one(struct http_req *req)
{
    struct store *s;
    struct store_dataset d;
    if (http_req_store_or_reply(req, &s) || routes__dataset_get(req, s, &d))
        return 0;
    int rc = http_reply_json(req, 200, routes_dataset_json(&d));
    store_dataset_free(&d);
    return rc;
}

/* The state of one CSV download: rows are read and formatted a chunk at a
 * time, each chunk with a connection borrowed from the pool. */
struct routes_csv {
    struct catalog *cat;        /* where the rows are read (borrowed) */
    int64_t id;
    size_t n_rows, n_cols, row; /* next row to format */
    long status_col;            /* a sweep's status column, else -1 */
    size_t chunk_rows;          /* rows per read */
    float *vals;                /* (chunk_rows, n_cols) */
    char *buf;                  /* formatted text */
    size_t len, off, cap;
};

static void routes__csv_free(void *cls)
{
    struct routes_csv *c = cls;
    free(c->vals);
    free(c->buf);
    free(c);
}

/* Appends a CSV field (quoted when it needs to be). */
static void routes__csv_field(struct routes_csv *c, const char *t)
{
    int q = strpbrk(t, ",\"\r\n") != NULL;
    if (q)
        c->buf[c->len++] = '"';
    for (; *t && c->len + 3 < c->cap; t++) {
        if (*t == '"')
            c->buf[c->len++] = '"';
        c->buf[c->len++] = *t;
    }
    if (q)
        c->buf[c->len++] = '"';
}

/* Formats the next chunk of rows into c->buf; 0 or a code. */
static int routes__csv_fill(struct routes_csv *c)
{
    size_t n = c->n_rows - c->row < c->chunk_rows ? c->n_rows - c->row : c->chunk_rows;
    struct store *s = catalog_acquire(c->cat);
    int rc = s ? store_dataset_read(s, c->id, c->row, n, c->vals) : QN_EDB;
    catalog_release(c->cat, s);
    if (rc)
        return rc;
    c->len = c->off = 0;
    for (size_t r = 0; r < n; r++) {
        for (size_t j = 0; j < c->n_cols; j++) {
            float v = c->vals[r * c->n_cols + j];
            char *p = c->buf + c->len;
            size_t room = c->cap - c->len;
            int w = (long)j == c->status_col ? snprintf(p, room, "%s", qn_err_name((int)v))
                    : isnan(v)               ? snprintf(p, room, "nan")
                                             : snprintf(p, room, "%.9g", (double)v);
            c->len += (size_t)w;
            c->buf[c->len++] = j + 1 < c->n_cols ? ',' : '\n';
        }
    }
    c->row += n;
    return 0;
}

static ssize_t routes__csv_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    struct routes_csv *c = cls;
    if (c->off == c->len) {
        if (c->row == c->n_rows)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = routes__csv_fill(c);
        if (rc) {
            fprintf(stderr, "qn: dataset %" PRId64 " download stopped at row %zu: %s\n", c->id,
                    c->row, qn_err_msg(rc));
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = c->len - c->off < max ? c->len - c->off : max;
    memcpy(out, c->buf + c->off, n);
    c->off += n;
    return (ssize_t)n;
}

/* The header line into c->buf; finds the status column of a sweep. */
static int routes__csv_header(struct routes_csv *c, const struct store_dataset *d)
{
    json_t *cols = json_loads(d->columns, 0, NULL);
    int rc = json_is_array(cols) && json_array_size(cols) == d->n_cols ? 0 : QN_EFORMAT;
    for (size_t i = 0; rc == 0 && i < d->n_cols; i++) {
        const char *name = json_string_value(json_array_get(cols, i));
        if (!name || c->len + 2 * strlen(name) + 4 > c->cap) {
            rc = QN_EFORMAT;
            break;
        }
        routes__csv_field(c, name);
        c->buf[c->len++] = i + 1 < d->n_cols ? ',' : '\n';
        if (strcmp(name, "status") == 0 && strcmp(d->source, "sweep") == 0)
            c->status_col = (long)i;
    }
    json_decref(cols);
    return rc;
}

static int routes__dataset_data(struct http_req *req)
{
    struct store *s;
    struct store_dataset d;
    if (http_req_store_or_reply(req, &s) || routes__dataset_get(req, s, &d))
        return 0;
    struct routes_csv *c = calloc(1, sizeof *c);
    /* A value takes at most 16 bytes ("-1.23456791e+38,"); names are at most 128. */
    size_t row_bytes = d.n_cols * 17 + 1;
    size_t chunk = ROUTES_CSV_CHUNK / row_bytes ? ROUTES_CSV_CHUNK / row_bytes : 1;
    size_t head = d.n_cols * (2 * STORE_NAME_MAX + 3) + 1;
    if (c) {
        c->cat = http_req_catalog(req);
        c->id = d.id;
        c->n_rows = d.n_rows;
        c->n_cols = d.n_cols;
        c->status_col = -1;
        c->chunk_rows = chunk;
        c->cap = chunk * row_bytes > head ? chunk * row_bytes : head;
        c->vals = malloc(chunk * d.n_cols * sizeof *c->vals);
        c->buf = malloc(c->cap);
    }
    int rc = c && c->vals && c->buf ? routes__csv_header(c, &d) : QN_ENOMEM;
    store_dataset_free(&d);
    struct MHD_Response *resp =
        rc ? NULL
           : MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, routes__csv_read, c,
                                               routes__csv_free);
    if (!resp) {
        if (c)
            routes__csv_free(c);
        return rc ? rc : QN_ENOMEM;
    }
    MHD_add_response_header(resp, "Content-Type", "text/csv; charset=utf-8");
    return http_reply_response(req, 200, resp);
}

/* ---- surrogates and models (SQL of their own: the store has no list calls) ----------- */

static int routes__sql_rc(int rc)
{
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? QN_EBUSY
           : rc == SQLITE_NOMEM                     ? QN_ENOMEM
                                                    : QN_EDB;
}

static json_t *routes__col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : routes__real(sqlite3_column_double(st, i));
}

static json_t *routes__col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

static json_t *routes__col_id(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : json_integer(sqlite3_column_int64(st, i));
}

#define ROUTES_SUR_COLS "SELECT id, name, job_id, device, dataset_id, n_in, val_rmse, max_error, created FROM surrogates "

static json_t *routes__surrogate_row(sqlite3_stmt *st)
{
    const char *dev = (const char *)sqlite3_column_text(st, 3);
    json_t *device = dev ? json_loads(dev, 0, NULL) : NULL;
    return json_pack("{sI so so so so sI so so so}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "name", routes__col_text(st, 1), "job", routes__col_id(st, 2), "device",
                     device ? device : json_null(), "dataset", routes__col_id(st, 4), "inputs",
                     (json_int_t)sqlite3_column_int64(st, 5), "val_rmse", routes__col_real(st, 6),
                     "max_error", routes__col_real(st, 7), "created", routes__col_text(st, 8));
}

#define ROUTES_MODEL_COLS "SELECT id, name, job_id, spec, n_in, n_out, n_classes, loss, length(params) / 4, created FROM models "

static json_t *routes__model_row(sqlite3_stmt *st)
{
    const char *sp = (const char *)sqlite3_column_text(st, 3);
    json_t *spec = sp ? json_loads(sp, 0, NULL) : NULL;
    return json_pack("{sI so so so sI sI sI so sI so}", "id",
                     (json_int_t)sqlite3_column_int64(st, 0), "name", routes__col_text(st, 1),
                     "job", routes__col_id(st, 2), "spec", spec ? spec : json_null(), "inputs",
                     (json_int_t)sqlite3_column_int64(st, 4), "outputs",
                     (json_int_t)sqlite3_column_int64(st, 5), "classes",
                     (json_int_t)sqlite3_column_int64(st, 6), "loss", routes__col_text(st, 7),
                     "params", (json_int_t)sqlite3_column_int64(st, 8), "created",
                     routes__col_text(st, 9));
}

/* A page of rows of `cols` ("SELECT ... FROM t ") with id > after. */
static int routes__sql_list(struct http_req *req, const char *cols, const char *key,
                            json_t *(*row)(sqlite3_stmt *))
{
    size_t limit;
    int64_t after;
    struct store *s;
    if (http_req_page(req, &limit, &after) || http_req_store_or_reply(req, &s))
        return 0;
    char sql[512];
    snprintf(sql, sizeof sql, "%sWHERE id > ?1 ORDER BY id LIMIT ?2", cols);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store_sqlite(s), sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return routes__store_fail(req, s, routes__sql_rc(rc), key);
    sqlite3_bind_int64(st, 1, after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    json_t *items = json_array();
    int64_t last = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        json_array_append_new(items, row(st));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(items);
        return routes__store_fail(req, s, routes__sql_rc(rc), key);
    }
    return routes__page(req, key, items, limit, last);
}

/* One row of `cols` by {id} (an id, or the newest of that name); 404 itself. */
static int routes__sql_one(struct http_req *req, const char *cols, const char *what,
                           json_t *(*row)(sqlite3_stmt *))
{
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    const char *v = http_req_param(req, "id");
    int64_t id = 0;
    int by_id = routes__is_id(v, &id);
    char sql[512];
    snprintf(sql, sizeof sql, "%s%s", cols,
             by_id ? "WHERE id = ?1" : "WHERE name = ?1 ORDER BY id DESC LIMIT 1");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(store_sqlite(s), sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return routes__store_fail(req, s, routes__sql_rc(rc), what);
    if (by_id)
        sqlite3_bind_int64(st, 1, id);
    else
        sqlite3_bind_text(st, 1, v, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    json_t *obj = rc == SQLITE_ROW ? row(st) : NULL;
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return routes__store_fail(req, s, QN_ENOTFOUND, what);
    if (rc != SQLITE_ROW)
        return routes__store_fail(req, s, routes__sql_rc(rc), what);
    return http_reply_json(req, 200, obj);
}

/* A float array as JSON. */
static json_t *routes__floats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, routes__real((double)v[i]));
    return a;
}

/* The surrogate's network: layers of {"w" (out, in) row-major, "b", "activation"}
 * and the standardisation, so a page can evaluate it. */
static json_t *routes__surrogate_weights(const struct surrogate *sur)
{
    const struct mlp *m = sur->mlp;
    json_t *layers = json_array();
    for (size_t l = 0; layers && l < m->n_layers; l++) {
        struct mlp_layer_view lv = mlp_layer_view(m, m->params, l);
        json_array_append_new(
            layers, json_pack("{sI sI so so ss}", "in", (json_int_t)m->sizes[l], "out",
                              (json_int_t)m->sizes[l + 1], "w",
                              routes__floats(lv.w, m->sizes[l] * m->sizes[l + 1]), "b",
                              routes__floats(lv.b, m->sizes[l + 1]), "activation",
                              act_name(m->act[l])));
    }
    return json_pack("{so so so sf sf}", "layers", layers ? layers : json_null(), "in_mean",
                     routes__floats(sur->in_mean, sur->n_in), "in_std",
                     routes__floats(sur->in_std, sur->n_in), "out_mean", (double)sur->out_mean,
                     "out_std", (double)sur->out_std);
}

static int routes__surrogate_list(struct http_req *req)
{
    return routes__sql_list(req, ROUTES_SUR_COLS, "surrogates", routes__surrogate_row);
}

static int routes__surrogate_one(struct http_req *req)
{
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    const char *v = http_req_param(req, "id");
    int64_t id = 0;
    struct store_surrogate x;
    int rc = routes__is_id(v, &id) ? store_surrogate_get(s, id, &x)
                                   : store_surrogate_get_by_name(s, v, &x);
    if (rc)
        return routes__store_fail(req, s, rc, "surrogate");
    struct surrogate sur;
    json_t *weights = NULL;
    if (surrogate_from_blob(x.blob, x.blob_len, &sur) == 0) {
        weights = routes__surrogate_weights(&sur);
        surrogate_close(&sur);
    }
    json_t *device = json_loads(x.device, 0, NULL);
    json_t *body = json_pack(
        "{sI so so so so sI so so ss so}", "id", (json_int_t)x.id, "name",
        routes__str_or_null(x.has_name, x.name), "job", routes__id_or_null(x.job_id), "device",
        device ? device : json_null(), "dataset", routes__id_or_null(x.dataset_id), "inputs",
        (json_int_t)x.n_in, "val_rmse", routes__real(x.val_rmse), "max_error",
        routes__real(x.max_error), "created", x.created, "weights",
        weights ? weights : json_null());
    store_surrogate_free(&x);
    return http_reply_json(req, 200, body);
}

static int routes__model_list(struct http_req *req)
{
    return routes__sql_list(req, ROUTES_MODEL_COLS, "models", routes__model_row);
}

static int routes__model_one(struct http_req *req)
{
    return routes__sql_one(req, ROUTES_MODEL_COLS, "model", routes__model_row);
}

/* ---- predict ------------------------------------------------------------------------ */

/* {"outputs": [[...]], "classes": [...], "probabilities": [[...]]} of a forward pass. */
static json_t *routes__predict_json(const struct store_model *m, const float *y, size_t B)
{
    json_t *outs = json_array(), *cls = m->n_classes ? json_array() : NULL,
           *prob = m->n_classes && strcmp(m->loss, "cross_entropy") == 0 ? json_array() : NULL;
    for (size_t i = 0; outs && i < B; i++) {
        const float *r = y + i * m->n_out;
        json_array_append_new(outs, routes__floats(r, m->n_out));
        size_t best = 0;
        float mx = r[0];
        for (size_t k = 1; k < m->n_out; k++)
            if (r[k] > mx)
                mx = r[k], best = k;
        if (cls)
            json_array_append_new(cls, json_integer((json_int_t)best));
        if (prob) {
            double z = 0;
            for (size_t k = 0; k < m->n_out; k++)
                z += exp((double)(r[k] - mx));
            json_t *pr = json_array();
            for (size_t k = 0; pr && k < m->n_out; k++)
                json_array_append_new(pr, json_real(exp((double)(r[k] - mx)) / z));
            json_array_append_new(prob, pr);
        }
    }
    json_t *o = json_pack("{sI so}", "model", (json_int_t)m->id, "outputs", outs);
    if (o && cls)
        json_object_set_new(o, "classes", cls);
    if (o && prob)
        json_object_set_new(o, "probabilities", prob);
    return o;
}

/* Runs the raw rows x (B, n_in) through the opened model (job_model.h
 * standardises them) and replies with the outputs. */
static int routes__predict_run(struct http_req *req, const struct job_model *m, float *x, size_t B)
{
    struct spec_error e = {{0}, {0}};
    struct net *n = NULL;
    int rc = job_model_net(m, B, 1, &routes_ctx(req)->stopping, &n, &e);
    if (rc == QN_EMODEL)
        return http_reply_err(req, QN_EMODEL, NULL, "%s", e.msg);
    if (rc == 0 && (rc = job_model_forward(m, n, x, B)) == 0)
        rc = http_reply_json(req, 200, routes__predict_json(&m->row, net_output(n), B));
    net_destroy(n);
    return rc == QN_ECANCELED ? QN_EBUSY : rc;
}

/* The model {id} names: an id, or the newest model of that name; QN_ENOTFOUND
 * for a name longer than any stored one. */
static int routes__model_ref(const char *v, struct spec_ref *ref)
{
    memset(ref, 0, sizeof *ref);
    ref->kind = routes__is_id(v, &ref->id) ? REF_ID : REF_NAME;
    if (ref->kind == REF_ID)
        return 0;
    if (!v || strlen(v) >= sizeof ref->name)
        return QN_ENOTFOUND;
    snprintf(ref->name, sizeof ref->name, "%s", v);
    return 0;
}

static int routes__model_predict(struct http_req *req)
{
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    struct spec_ref ref;
    if (routes__model_ref(http_req_param(req, "id"), &ref))
        return routes__store_fail(req, s, QN_ENOTFOUND, "model");
    struct job_model m;
    struct spec_error e = {{0}, {0}};
    int rc = job_model_open(s, &ref, &m, &e);
    struct predict_spec rows = {0, 0, NULL};
    if (rc == QN_EMODEL)
        rc = http_reply_err(req, QN_EMODEL, NULL, "%s", e.msg);
    else if (rc)
        rc = routes__store_fail(req, s, rc, "model");
    else if ((rc = spec_predict_parse(http_req_json(req), m.row.n_in, &rows, &e)) == QN_ESPEC)
        rc = routes__spec_error(req, &e);
    else if (rc == 0)
        rc = routes__predict_run(req, &m, rows.x, rows.n);
    spec_predict_close(&rows);
    job_model_close(&m);
    return rc;
}

/* ---- the table -------------------------------------------------------------------------- */

static const struct http_route routes__table[] = {
    {"GET", "/healthz", routes__healthz, HTTP_F_PUBLIC},
    {"GET", "/v1/whoami", routes__whoami, 0},
    {"GET", "/metrics", routes__metrics, HTTP_F_PUBLIC},
    {"POST", "/v1/devices", routes__device_create, HTTP_F_JSON},
    {"GET", "/v1/devices", routes__device_list, 0},
    {"GET", "/v1/devices/{id}", routes__device_one, 0},
    {"POST", "/v1/devices/{id}/simulate", routes__device_simulate, HTTP_F_JSON | HTTP_F_SLOW},
    {"POST", "/v1/datasets", routes__dataset_upload, HTTP_F_UPLOAD | HTTP_F_SLOW},
    {"GET", "/v1/datasets", routes__dataset_list, 0},
    {"GET", "/v1/datasets/{id}", routes__dataset_one, 0},
    {"GET", "/v1/datasets/{id}/data", routes__dataset_data, 0},
    {"GET", "/v1/surrogates", routes__surrogate_list, 0},
    {"GET", "/v1/surrogates/{id}", routes__surrogate_one, 0},
    {"GET", "/v1/models", routes__model_list, 0},
    {"GET", "/v1/models/{id}", routes__model_one, 0},
    {"POST", "/v1/models/{id}/predict", routes__model_predict, HTTP_F_JSON | HTTP_F_SLOW},
};

struct routes_ctx *routes_ctx(struct http_req *req) { return http_req_app(req); }

int routes_register_all(struct http_server *srv)
{
    int rc = routes_register(srv);
    if (rc == 0)
        rc = routes_jobs_register(srv);
    if (rc == 0)
        rc = web_routes_register(srv); /* the page: GET /, GET /assets/{name} */
    return rc;
}

int routes_register(struct http_server *srv)
{
    return http_routes_add(srv, routes__table, sizeof routes__table / sizeof routes__table[0]);
}
