/*
 * job_model.c: a stored model rebuilt into a network (see job_model.h).
 *
 * A model's stored spec has every device inline and every surrogate as an
 * id, so the layers are resolved from it alone (job_netdef_resolve); its
 * saved scaler is loaded into an engine data_scaler, never refitted. The
 * network's parameter layout does not depend on the via of a layer, which
 * is why an evaluate job may change vias between job_model_open and
 * job_model_net.
 */
#include "job_model.h"

#include <inttypes.h>
#include <string.h>

#include "job_data.h"
#include "qn_err.h"

/* Reads the model row ref names into m->row. */
static int job_model__row(struct store *s, const struct spec_ref *ref, struct job_model *m,
                          struct spec_error *err)
{
    int rc;
    if (ref->kind == REF_ID)
        rc = store_model_get(s, ref->id, &m->row);
    else if (ref->kind == REF_NAME)
        rc = store_model_get_by_name(s, ref->name, &m->row);
    else if (ref->kind == REF_JOB)
        rc = store_model_get_by_job(s, ref->id, &m->row);
    else
        return spec_fail(err, "", "a model is an id, a name or {\"job\": N}");
    if (rc && rc != QN_ENOTFOUND)
        spec_fail(err, "", "cannot read the model: %s", qn_err_msg(rc));
    m->have_row = rc == 0;
    return rc;
}

/* Parses the stored train spec and resolves its layers; QN_EMODEL when they
 * cannot be rebuilt. */
static int job_model__layers(struct store *s, struct job_model *m, struct spec_error *err)
{
    struct spec_error e = {{0}, {0}};
    json_t *root = NULL;
    int rc = spec_load(m->row.spec, strlen(m->row.spec), &root, &e);
    if (rc == 0)
        rc = spec_train_parse(root, &m->t, &e);
    json_decref(root);
    m->have_t = rc == 0;
    if (rc == 0) {
        /* A stored model is rebuilt as it was trained: its surrogates were
         * checked against its devices then (a model from before fingerprints
         * may pair a surrogate with a device spelled otherwise). They resolve
         * as twins; the layers keep what they said for later checks. */
        int twin[NET_MAX_LAYERS];
        for (size_t l = 0; l < m->t.n_layers; l++)
            twin[l] = m->t.layers[l].twin, m->t.layers[l].twin = 1;
        rc = job_netdef_resolve(s, &m->t, &m->nd, &e);
        for (size_t l = 0; l < m->t.n_layers; l++)
            m->t.layers[l].twin = m->nd.twin[l] = twin[l];
    }
    if (rc == QN_ENOMEM)
        return QN_ENOMEM;
    if (rc) {
        spec_fail(err, "", "model %" PRId64 " cannot be rebuilt: %s: %s", m->row.id, e.path, e.msg);
        return QN_EMODEL;
    }
    return 0;
}

/* Loads the saved scaler (2, n_in) into m->scaler; QN_EMODEL when its size is wrong. */
static int job_model__scaler(struct job_model *m, struct spec_error *err)
{
    const struct store_model *r = &m->row;
    if (r->n_in == 0 || r->n_scaler != 2 * r->n_in) {
        spec_fail(err, "", "model %" PRId64 " has a corrupt scaler", r->id);
        return QN_EMODEL;
    }
    int rc = data_scaler_init(&m->scaler, r->n_in);
    if (rc == 0)
        memcpy(m->scaler.slab, r->scaler, 2 * r->n_in * sizeof *m->scaler.slab);
    return rc;
}

int job_model_open(struct store *s, const struct spec_ref *ref, struct job_model *m,
                   struct spec_error *err)
{
    memset(m, 0, sizeof *m);
    int rc = job_model__row(s, ref, m, err);
    if (rc == 0)
        rc = job_model__scaler(m, err);
    if (rc == 0)
        rc = job_model__layers(s, m, err);
    if (rc == 0)
        m->loss = strcmp(m->row.loss, "mse") == 0 ? LOSS_MSE : LOSS_CROSS_ENTROPY;
    return rc;
}

int job_model_net(const struct job_model *m, size_t cap, size_t n_threads, const atomic_int *cancel,
                  struct net **out, struct spec_error *err)
{
    struct net_layer_spec ls[NET_MAX_LAYERS];
    job_netdef_layers(&m->nd, ls);
    for (size_t l = 0; l < m->nd.n_layers; l++)
        ls[l].forward_only = 1; /* only scored: a spike-rate device may be used via device */
    struct net *n = NULL;
    int rc = net_create_cells(&n, m->row.n_in, ls, m->nd.cells, m->nd.n_layers, cap, n_threads,
                              m->t.train.seed, cancel);
    if (rc)
        return rc;
    if (n->n_params != m->row.n_params || n->n_out != m->row.n_out) {
        spec_fail(err, "", "model %" PRId64 " has %zu parameters; its network has %zu", m->row.id,
                  m->row.n_params, n->n_params);
        net_destroy(n);
        return QN_EMODEL;
    }
    memcpy(n->params, m->row.params, m->row.n_params * sizeof *m->row.params);
    *out = n;
    return 0;
}

int job_model_scale(const struct job_model *m, struct data_set *ds)
{
    return data_scaler_apply(&m->scaler, ds);
}

int job_model_forward(const struct job_model *m, struct net *net, float *x, size_t n)
{
    int rc = data_scaler_apply_rows(&m->scaler, x, n, m->row.n_in);
    return rc ? rc : net_forward(net, x, n);
}

int job_model_resolve(struct store *s, const struct spec_ref *ref, const char *path,
                      struct job_model *m, struct spec_error *err)
{
    int rc;
    if (ref->kind == REF_JOB && (rc = job_ref_check(s, ref->id, "train", path, err)))
        return rc;
    struct spec_error e = {{0}, {0}};
    rc = job_model_open(s, ref, m, &e);
    if (rc == QN_ENOTFOUND)
        return ref->kind == REF_NAME
                   ? spec_fail(err, path, "no model named '%s'", ref->name)
                   : spec_fail(err, path, "no model %s %" PRId64,
                               ref->kind == REF_JOB ? "made by job" : "with id", ref->id);
    if (rc)
        return spec_fail(err, path, "%s", e.msg[0] ? e.msg : qn_err_msg(rc));
    return 0;
}

void job_model_close(struct job_model *m)
{
    data_scaler_close(&m->scaler);
    job_netdef_close(&m->nd);
    if (m->have_t)
        spec_train_close(&m->t);
    if (m->have_row)
        store_model_free(&m->row);
    memset(m, 0, sizeof *m);
}
