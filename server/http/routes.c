/*
 * routes.c: the daemon's routes other than jobs: health, Prometheus metrics,
 * devices (and one-off simulations), datasets (upload, list, CSV download),
 * surrogates, models (and inference). The job routes live in routes_jobs.c.
 *
 * Stored things are addressed by id or by name in {id} ("/v1/devices/crn"),
 * as everywhere else in Quasineuron. Lists are pages ordered by id:
 * {"<things>": [...], "next": <cursor or null>}. The records, their JSON
 * and the lookups are the catalog's (catalog.h); this file maps them to
 * HTTP and never speaks to the store.
 *
 * simulate, predict and uploads compute: they are HTTP_F_SLOW (a compute
 * thread runs them, so they never hold up other connections), their size
 * is capped (SPEC_SIM_* and SPEC_PREDICT_ROWS_MAX in spec.h, whose parsers
 * read their bodies), and simulate and predict stop when the daemon shuts
 * down (the daemon's stopping flag is their cancel flag). A simulate request
 * is bounded besides: each solve takes at most --simulate-steps steps (422
 * limit_exceeded beyond), the request computes for at most
 * --simulate-seconds (503 timeout), it stops when its client has left, and
 * its trajectory is thinned as the solve runs (dev_trajectory), so neither
 * its time nor its memory grows with what the device asks (t_max,
 * max_steps).
 */
#include "routes.h"

#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "job_model.h"
#include "numtext.h"
#include "qn_err.h"
#include "routes_jobs.h"
#include "spec.h"
#include "users.h"
#include "web_assets.h"

#define ROUTES_CSV_CHUNK (256u << 10) /* bytes of CSV formatted per read */

/* ---- helpers ------------------------------------------------------------------ */

static json_t *routes__real(double v) { return isfinite(v) ? json_real(v) : json_null(); }

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

/* Replies for a store error code rc (not 0). */
static int routes__store_fail(struct http_req *req, struct store *s, int rc, const char *what)
{
    if (rc == QN_ENOTFOUND)
        return http_reply_err(req, QN_ENOTFOUND, NULL, "no such %s: '%s'", what,
                              http_req_param(req, "id") ? http_req_param(req, "id") : "");
    return http_reply_err(req, rc, NULL, "%s: cannot store or read the %s (%s)", qn_err_msg(rc),
                          what, s ? catalog_errmsg(s) : "no database connection");
}

/* A list route: the page of `key` that list() reads. */
static int routes__list(struct http_req *req, const char *key,
                        int (*list)(struct store *, int64_t, size_t, json_t **, int64_t *))
{
    size_t limit;
    int64_t after, last = 0;
    struct store *s;
    if (http_req_page(req, &limit, &after) || http_req_store_or_reply(req, &s))
        return 0;
    json_t *items = NULL;
    int rc = list(s, after, limit, &items, &last);
    if (rc)
        return routes__store_fail(req, s, rc, key);
    return routes__page(req, key, items, limit, last);
}

/* A record route: the record of the `what` that {id} names, as get() makes it. */
static int routes__one(struct http_req *req, const char *what,
                       int (*get)(struct store *, const char *, json_t **))
{
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    json_t *record = NULL;
    int rc = get(s, http_req_param(req, "id"), &record);
    if (rc)
        return routes__store_fail(req, s, rc, what);
    return http_reply_json(req, 200, record);
}

/* ---- health and metrics --------------------------------------------------------- */

static int routes__healthz(struct http_req *req)
{
    struct store *s = http_req_store(req);
    int version = 0;
    int64_t users = 0;
    int rc = s ? catalog_health(s, &version, &users) : QN_EDB;
    if (rc)
        return http_reply_err(req, QN_EDBDOWN, NULL, "database unreachable: %s",
                              s ? catalog_errmsg(s) : "cannot open it");
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

/* Jobs by state and the queue depth, from the database (zeros when it cannot say). */
static void routes__metrics_jobs(struct store *s, FILE *out)
{
    int64_t n[JOB_CANCELED + 1];
    if (catalog_job_counts(s, n))
        memset(n, 0, sizeof n);
    fputs("# HELP qn_jobs Jobs by state.\n# TYPE qn_jobs gauge\n", out);
    for (int i = 0; i <= JOB_CANCELED; i++)
        fprintf(out, "qn_jobs{state=\"%s\"} %" PRId64 "\n",
                catalog_job_state_name((enum store_job_state)i), n[i]);
    fprintf(out, "# HELP qn_queue_depth Jobs waiting for a worker (queued).\n"
                 "# TYPE qn_queue_depth gauge\nqn_queue_depth %" PRId64 "\n", n[JOB_QUEUED]);
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

/* The device named by {id} (an id or a name); replies 404 itself. */
static int routes__device_get(struct http_req *req, struct store *s, struct store_device *out)
{
    int rc = catalog_device_find(s, http_req_param(req, "id"), out);
    if (rc)
        routes__store_fail(req, s, rc, "device");
    return rc;
}

/* A device is validated before the database is reached (then stored by
 * catalog_device_add, which validates it again). */
static int routes__device_create(struct http_req *req)
{
    json_t *root = http_req_json(req);
    struct spec_error e = {{0}, {0}};
    if (catalog_device_check(root, &e))
        return routes__spec_error(req, &e);
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    json_t *record = NULL;
    int rc = catalog_device_add(s, root, &record, &e);
    if (rc == QN_ESPEC)
        return routes__spec_error(req, &e);
    if (rc == QN_EEXIST)
        return http_reply_err(req, QN_EEXIST, e.path, "%s", e.msg);
    if (rc)
        return routes__store_fail(req, s, rc, "device");
    return http_reply_json(req, 201, record);
}

static int routes__device_list(struct http_req *req)
{
    return routes__list(req, "devices", catalog_device_list);
}

static int routes__device_one(struct http_req *req)
{
    return routes__one(req, "device", catalog_device_get);
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

/*
 * What ends a simulate request early, asked by the solver every few dozen
 * steps and by a curve between its points: the daemon stopping, the
 * request's time budget (--simulate-seconds), its client having left (the
 * socket is looked at every ROUTES_SIM_LOOK_S at most).
 */
struct routes_sim_guard {
    struct http_req *req;
    const struct routes_ctx *ctx;
    double deadline;  /* monotonic seconds; 0: none */
    double next_look; /* when to look at the client's socket again */
    int why;          /* 0; QN_EBUSY (stopping), QN_ETIMEOUT, QN_ECANCELED (client gone) */
};

#define ROUTES_SIM_LOOK_S 0.01

static double routes__now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* dev_work's should_stop for a simulate request: nonzero (and g->why set) to stop. */
static int routes__sim_should_stop(void *ctx)
{
    struct routes_sim_guard *g = ctx;
    if (g->why)
        return 1;
    double now = routes__now();
    if (atomic_load(&g->ctx->stopping))
        g->why = QN_EBUSY;
    else if (g->deadline > 0 && now >= g->deadline)
        g->why = QN_ETIMEOUT;
    else if (now >= g->next_look) {
        g->next_look = now + ROUTES_SIM_LOOK_S;
        if (http_req_gone(g->req))
            g->why = QN_ECANCELED;
    }
    return g->why != 0;
}

/* The reply of a simulate request that a bound stopped (rc: the solve's code). */
static int routes__sim_stopped(struct http_req *req, const struct routes_sim_guard *g, int rc)
{
    const struct routes_ctx *c = g->ctx;
    if (rc == QN_ELIMIT)
        return http_reply_err(req, QN_ELIMIT, NULL,
                              "the solve needs more than %zu steps, the most one simulate "
                              "request may take (--simulate-steps): shorten readout.t_max, "
                              "or run it as a sweep job",
                              c->simulate_steps);
    if (g->why == QN_ETIMEOUT)
        return http_reply_err(req, QN_ETIMEOUT, NULL,
                              "stopped after %g s, the most one simulate request may compute "
                              "(--simulate-seconds): ask for fewer curve points or a shorter "
                              "readout.t_max, or run it as a sweep job",
                              c->simulate_seconds);
    if (g->why == QN_ECANCELED)
        return http_reply_err(req, QN_EBUSY, NULL, "the client closed the connection");
    return http_reply_err(req, QN_EUNAVAIL, NULL, "the daemon is shutting down");
}

/* Whether a solve's code ends the whole request (a bound, or no memory). */
static int routes__sim_ends(int rc)
{
    return rc == QN_ENOMEM || rc == QN_ECANCELED || rc == QN_ELIMIT;
}

/* One solve with its trajectory. */
static int routes__sim_one(struct http_req *req, const struct store_device *d, struct dev_work *w,
                           const struct dev_model *m, const struct simulate_spec *sim)
{
    struct dev_traj tr;
    double out = NAN;
    int rc = dev_trajectory(w, sim->in, sim->max_points, &tr, &out);
    if (routes__sim_ends(rc)) {
        dev_traj_free(&tr);
        return rc == QN_ENOMEM ? rc : routes__sim_stopped(req, w->stop_ctx, rc);
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
        int rc = routes__sim_should_stop(w->stop_ctx) ? QN_ECANCELED : dev_eval(w, sim->in, &y);
        if (routes__sim_ends(rc)) {
            json_decref(xs), json_decref(ys), json_decref(st);
            return rc == QN_ENOMEM ? rc : routes__sim_stopped(req, w->stop_ctx, rc);
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
        catalog_device_free(&d);
        return http_reply_err(req, QN_ESTORED, NULL,
                              "the stored device does not parse any more: %s: %s", e.path, e.msg);
    }
    struct simulate_spec sim;
    struct dev_work w;
    const struct routes_ctx *c = routes_ctx(req);
    struct routes_sim_guard g = {.req = req, .ctx = c};
    if (c->simulate_seconds > 0)
        g.deadline = routes__now() + c->simulate_seconds;
    if (spec_simulate_parse(http_req_json(req), &m, &sim, &e)) {
        rc = routes__spec_error(req, &e);
    } else if ((rc = dev_work_init(&w, &m, &c->stopping)) == 0) {
        w.step_cap = c->simulate_steps;
        w.should_stop = routes__sim_should_stop;
        w.stop_ctx = &g;
        rc = sim.curve ? routes__sim_curve_run(req, &d, &w, &m, &sim)
                       : routes__sim_one(req, &d, &w, &m, &sim);
        dev_work_close(&w);
    }
    dev_model_close(&m);
    catalog_device_free(&d);
    return rc;
}

/* ---- datasets ------------------------------------------------------------------------ */

/* The dataset named by {id}; replies 404 itself. */
static int routes__dataset_get(struct http_req *req, struct store *s, struct store_dataset *out)
{
    int rc = catalog_dataset_find(s, http_req_param(req, "id"), out);
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
    json_t *record = NULL;
    int rc = catalog_dataset_upload(s, path, name, routes_ctx(req)->max_upload,
                                    routes_ctx(req)->max_dataset_values, &record, msg, sizeof msg);
    char said[sizeof msg + 16];
    if (rc == QN_EEXIST)
        return http_reply_err(req, QN_EEXIST, "?name", "%s", msg);
    if (rc == QN_ELIMIT || rc == QN_ETOOLARGE)
        return http_reply_err(req, rc, NULL, "%s",
                              routes__body_msg(msg, path, said, sizeof said));
    if (rc == QN_EFORMAT || rc == QN_EIO || rc == QN_ERANGE || rc == QN_EINVAL || rc == QN_ESPEC)
        return http_reply_err(req, QN_EFORMAT, NULL, "%s",
                              msg[0] ? routes__body_msg(msg, path, said, sizeof said)
                                     : qn_err_msg(rc));
    if (rc)
        return http_reply_err(req, rc, NULL, "%scannot store the dataset: %s",
                              rc == QN_EFULL ? "the disk is full: " : "",
                              msg[0] ? msg : catalog_errmsg(s));
    return http_reply_json(req, 201, record);
}

static int routes__dataset_list(struct http_req *req)
{
    return routes__list(req, "datasets", catalog_dataset_list);
}

static int routes__dataset_one(struct http_req *req)
{
    return routes__one(req, "dataset", catalog_dataset_get);
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
    int rc = s ? catalog_dataset_read(s, c->id, c->row, n, c->vals) : QN_EDB;
    catalog_release(c->cat, s);
    if (rc)
        return rc;
    c->len = c->off = 0;
    for (size_t r = 0; r < n; r++) {
        for (size_t j = 0; j < c->n_cols; j++) {
            float v = c->vals[r * c->n_cols + j];
            char *p = c->buf + c->len;
            size_t room = c->cap - c->len;
            char num[NUMTEXT_MAX]; /* the shortest text that reads back to v */
            int w = (long)j == c->status_col ? snprintf(p, room, "%s", qn_err_name((int)v))
                    : isnan(v)               ? snprintf(p, room, "nan")
                                             : (numtext_float(num, v), snprintf(p, room, "%s", num));
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
    /* A value takes at most NUMTEXT_MAX bytes with its comma; names are at most 128. */
    size_t row_bytes = d.n_cols * NUMTEXT_MAX + 1;
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
    catalog_dataset_free(&d);
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
    return http_reply_stream(req, 200, resp);
}

/* ---- surrogates and models ---------------------------------------------------------- */

static int routes__surrogate_list(struct http_req *req)
{
    return routes__list(req, "surrogates", catalog_surrogate_list);
}

static int routes__surrogate_one(struct http_req *req)
{
    return routes__one(req, "surrogate", catalog_surrogate_get);
}

static int routes__model_list(struct http_req *req)
{
    return routes__list(req, "models", catalog_model_list);
}

static int routes__model_one(struct http_req *req)
{
    return routes__one(req, "model", catalog_model_get);
}

/* A float array as JSON. */
static json_t *routes__floats(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, routes__real((double)v[i]));
    return a;
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

static int routes__model_predict(struct http_req *req)
{
    struct store *s;
    if (http_req_store_or_reply(req, &s))
        return 0;
    struct spec_ref ref;
    if (catalog_ref(http_req_param(req, "id"), &ref))
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
