/*
 * job.c: the table of job types, the life of one job, and helpers job
 * types share (device references, the job record).
 *
 * The life of a job is split so that nothing is written for a spec that is
 * wrong: prepare (pure validation and look-ups) comes before the insert, and
 * only a job that exists can fail. A run that is canceled ends "canceled";
 * any other failure ends "failed" with the reason in the record.
 */
#include "job.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job_data.h"
#include "job_remote.h"
#include "qn_err.h"
#include "spec_dumps.h"

/* The job types, each defined in its own file (job_<name>.c). */
extern const struct job_type job_sweep_type, job_fit_type, job_train_type, job_evaluate_type;

/* Every job type this build can run; a row's position is its counter index. */
static const struct job_type *const job__types[] = {
    &job_sweep_type,
    &job_fit_type,
    &job_train_type,
    &job_evaluate_type,
};

#define JOB__N_TYPES (sizeof job__types / sizeof job__types[0])
_Static_assert(JOB__N_TYPES <= JOB_TYPES_MAX, "raise JOB_TYPES_MAX");

const struct job_type *job_type_find(const char *name)
{
    for (size_t i = 0; i < JOB__N_TYPES; i++)
        if (strcmp(job__types[i]->name, name) == 0)
            return job__types[i];
    return NULL;
}

size_t job_type_count(void)
{
    return JOB__N_TYPES;
}

const struct job_type *job_type_at(size_t i)
{
    assert(i < JOB__N_TYPES);
    return job__types[i];
}

size_t job_type_index(const struct job_type *t)
{
    size_t i = 0;
    while (i < JOB__N_TYPES && job__types[i] != t)
        i++;
    assert(i < JOB__N_TYPES); /* t came from this table */
    return i;
}

void job_type_names(char *buf, size_t cap)
{
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < JOB__N_TYPES && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? ", " : "",
                                 job__types[i]->name);
}

int job_spec_parse(const json_t *root, struct job_spec *out, struct spec_error *err)
{
    const char *names[JOB__N_TYPES];
    for (size_t i = 0; i < JOB__N_TYPES; i++)
        names[i] = job__types[i]->name;
    return spec_job_parse(root, names, JOB__N_TYPES, out, err);
}

void job_refs_add(struct job_refs *refs, const struct spec_ref *ref, const char *path,
                  const char *type)
{
    if (ref->kind != REF_JOB)
        return;
    assert(refs->n < JOB_REFS_MAX); /* a spec holds at most JOB_REFS_MAX references */
    struct job_ref *r = &refs->v[refs->n++];
    r->job = ref->id;
    snprintf(r->path, sizeof r->path, "%s", path);
    r->type = type;
}

/* ---- device references --------------------------------------------------- */

/* Loads device ref (id or name) from the store into *d (store_device_free it). */
static int job__load_device(struct store *s, const struct spec_ref *ref, const char *path,
                            struct store_device *d, struct spec_error *err)
{
    int rc = ref->kind == REF_ID ? store_device_get(s, ref->id, d)
                                 : store_device_get_by_name(s, ref->name, d);
    if (rc == QN_ENOTFOUND) {
        if (ref->kind == REF_ID)
            return spec_fail(err, path, "no device with id %" PRId64, ref->id);
        return spec_fail(err, path, "no device named '%s'", ref->name);
    }
    if (rc)
        spec_fail(err, path, "cannot read the device: %s", store_errmsg(s));
    return rc;
}

/* Parses a stored device's JSON into *obj and *out; errors name the stored device. */
static int job__parse_stored(const struct store_device *d, const char *path,
                             struct dev_model *out, json_t **obj, struct spec_error *err)
{
    struct spec_error e = {{0}, {0}};
    int rc = spec_load(d->spec, strlen(d->spec), obj, &e);
    if (rc == 0)
        rc = spec_device_parse(*obj, "", out, &e);
    if (rc) {
        json_decref(*obj);
        *obj = NULL;
        return spec_fail(err, path, "stored device %" PRId64 " is not valid at '%s': %s", d->id,
                         e.path, e.msg);
    }
    return 0;
}

int job_resolve_device_json(struct store *s, const struct spec_ref *ref, const char *path,
                            struct dev_model *out, json_t **json, struct spec_error *err)
{
    if (json)
        *json = NULL;
    if (ref->kind == REF_INLINE) {
        int rc = spec_device_parse(ref->inline_obj, path, out, err);
        if (rc == 0 && json)
            *json = json_incref(ref->inline_obj);
        return rc;
    }
    if (ref->kind == REF_JOB)
        return spec_fail(err, path, "a job's output is not a device; give an id, a name or an "
                                    "inline device");
    struct store_device d;
    int rc = job__load_device(s, ref, path, &d, err);
    if (rc)
        return rc;
    json_t *obj = NULL;
    rc = job__parse_stored(&d, path, out, &obj, err);
    store_device_free(&d);
    if (json)
        *json = obj;
    else
        json_decref(obj);
    return rc;
}

int job_resolve_device(struct store *s, const struct spec_ref *ref, const char *path,
                       struct dev_model *out, struct spec_error *err)
{
    return job_resolve_device_json(s, ref, path, out, NULL, err);
}

/* ---- surrogate references ------------------------------------------------------- */

/* Loads the surrogate row a reference names. */
static int job__surrogate_row(struct store *s, const struct spec_ref *ref, const char *path,
                              struct store_surrogate *row, struct spec_error *err)
{
    int rc;
    if (ref->kind == REF_JOB) {
        if ((rc = job_ref_check(s, ref->id, "fit", path, err)))
            return rc;
        rc = store_surrogate_get_by_job(s, ref->id, row);
    } else if (ref->kind == REF_ID) {
        rc = store_surrogate_get(s, ref->id, row);
    } else if (ref->kind == REF_NAME) {
        rc = store_surrogate_get_by_name(s, ref->name, row);
    } else {
        return spec_fail(err, path, "a surrogate is an id, a name or {\"job\": N}");
    }
    if (rc == QN_ENOTFOUND) {
        if (ref->kind == REF_NAME)
            return spec_fail(err, path, "no surrogate named '%s'", ref->name);
        return spec_fail(err, path, "no surrogate %s %" PRId64,
                         ref->kind == REF_JOB ? "made by job" : "with id", ref->id);
    }
    if (rc)
        return spec_fail(err, path, "cannot read the surrogate: %s", qn_err_msg(rc));
    return 0;
}

/* Refuses a surrogate fitted to a device other than dev, naming the differences. */
static int job__surrogate_other(const struct store_surrogate *row, const char *path,
                                const char *diff, struct spec_error *err)
{
    return spec_fail(err, path,
                     "surrogate %" PRId64 " was fitted to another device (the surrogate's vs "
                     "this layer's: %s); say \"twin\": true on the layer if that is intended",
                     row->id, diff);
}

/* The parameters sur is conditioned on must be dev's; their values in the
 * surrogate's device m become dev's, since the surrogate answers for any. */
static int job__surrogate_cond(const struct store_surrogate *row, const char *path,
                               const struct surrogate *sur, const struct dev_model *dev,
                               struct dev_model *m, struct spec_error *err)
{
    for (size_t k = 0; k < sur->n_cond; k++) {
        double v;
        const char *name = sur->cond_names[k];
        if (dev_model_param(dev, name, &v) != 0)
            return spec_fail(err, path, "surrogate %" PRId64 " is conditioned on '%s', which "
                             "this layer's %s device does not have", row->id, name,
                             dev_kind_name(dev->kind));
        if (dev_model_set_param(m, name, v) != 0)
            return spec_fail(err, path, "surrogate %" PRId64 " has too many parameters",
                             row->id);
    }
    return 0;
}

/* The surrogate's device must take dev's drives; it must be dev itself (the
 * same fingerprint, but for the parameters a conditioned sur takes) unless
 * twin. *matched: the fingerprints agree. */
static int job__surrogate_match(const struct store_surrogate *row, const char *path,
                                const struct surrogate *sur, const struct dev_model *dev,
                                int twin, int *matched, struct spec_error *err)
{
    struct store_device d = {.id = row->id, .spec = row->device};
    struct dev_model m;
    json_t *obj = NULL;
    char diff[320];
    int rc = job__parse_stored(&d, path, &m, &obj, err);
    if (rc)
        return rc;
    json_decref(obj);
    rc = job__surrogate_cond(row, path, sur, dev, &m, err);
    if (rc == 0 && dev_n_inputs(&m) != dev_n_inputs(dev))
        rc = spec_fail(err, path,
                       "surrogate %" PRId64 " models a %s device with drive %s (%zu drive%s); "
                       "this layer's device is %s with drive %s (%zu)",
                       row->id, dev_kind_name(m.kind), dev_drive_name(m.drive), dev_n_inputs(&m),
                       dev_n_inputs(&m) == 1 ? "" : "s", dev_kind_name(dev->kind),
                       dev_drive_name(dev->drive), dev_n_inputs(dev));
    else if (rc == 0 && (rc = spec_device_differences(&m, dev, diff, sizeof diff)) >= 0)
        *matched = rc == 0, rc = rc && !twin ? job__surrogate_other(row, path, diff, err) : 0;
    dev_model_close(&m);
    return rc;
}

int job_resolve_surrogate(struct store *s, const struct spec_ref *ref, const char *path,
                          const struct dev_model *dev, int twin, struct surrogate *out,
                          int64_t *id, int *matched, struct spec_error *err)
{
    struct store_surrogate row;
    int same = 0;
    int rc = job__surrogate_row(s, ref, path, &row, err);
    if (rc)
        return rc;
    if (surrogate_from_blob(row.blob, row.blob_len, out) != 0) {
        rc = spec_fail(err, path, "surrogate %" PRId64 " has a corrupt blob", row.id);
        store_surrogate_free(&row);
        return rc;
    }
    rc = job__surrogate_match(&row, path, out, dev, twin, &same, err);
    if (matched)
        *matched = same;
    if (rc == 0 && surrogate_n_drives(out) != dev_n_inputs(dev))
        rc = spec_fail(err, path, "surrogate %" PRId64 " takes %zu drives, the device %zu",
                       row.id, surrogate_n_drives(out), dev_n_inputs(dev));
    if (rc)
        surrogate_close(out);
    if (rc == 0)
        *id = row.id;
    store_surrogate_free(&row);
    return rc;
}

int job_check_via(const struct dev_model *d, enum net_via via, int have_sur, int forward_only,
                  const char *path, struct spec_error *err)
{
    if (via == VIA_EXACT && dev_is_ode(d))
        return spec_fail(err, path, "\"exact\" needs an analytic device (neuron, almost_neuron); "
                         "a %s device is computed via surrogate, device or physics_aware",
                         dev_kind_name(d->kind));
    if (via == VIA_DEVICE && !dev_is_differentiable(d) && !forward_only)
        return spec_fail(err, path, "the %s readout cannot be differentiated, so \"device\" is "
                         "refused; use surrogate or physics_aware (its forward pass is the "
                         "device)", dev_readout_name(d->readout.kind));
    if ((via == VIA_SURROGATE || via == VIA_PHYSICS_AWARE) && !have_sur)
        return spec_fail(err, path, "via %s needs a surrogate for this layer",
                         net_via_name(via));
    return 0;
}

int job_fail(struct job_ctx *ctx, int rc, const char *what)
{
    if (rc == QN_EFULL || rc == QN_EDB || rc == QN_EBUSY)
        snprintf(ctx->reason, sizeof ctx->reason, "%s: %s (%s)", what, qn_err_msg(rc),
                 store_errmsg(ctx->store));
    else
        snprintf(ctx->reason, sizeof ctx->reason, "%s: %s", what, qn_err_msg(rc));
    return rc;
}

json_t *job_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* ---- the job record -------------------------------------------------------- */

/* A string, or null for "" / NULL. */
static json_t *job__str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

json_t *job_record_json(const struct store_job *j)
{
    json_t *r = json_object();
    if (!r || json_object_set_new(r, "id", json_integer(j->id)) ||
        json_object_set_new(r, "type", json_string(j->type)) ||
        json_object_set_new(r, "name", json_string(j->name)) ||
        json_object_set_new(r, "owner", json_string(j->owner)) ||
        json_object_set_new(r, "state", json_string(store_job_state_name(j->state))) ||
        json_object_set_new(r, "created", job__str_or_null(j->created)) ||
        json_object_set_new(r, "started", job__str_or_null(j->started)) ||
        json_object_set_new(r, "finished", job__str_or_null(j->finished)) ||
        json_object_set_new(r, "error", job__str_or_null(j->error)))
        goto fail;
    /* A stored result that does not parse is shown as null, not as a failure. */
    json_t *result = j->result ? json_loads(j->result, 0, NULL) : NULL;
    if (json_object_set_new(r, "result", result ? result : json_null()))
        goto fail;
    return r;
fail:
    json_decref(r);
    return NULL;
}

/* ---- the life of one job --------------------------------------------------- */

/* Records how the run ended: succeeded with the result, canceled, or failed. */
static int job__finish(struct store *s, struct job_ctx *ctx, int run_rc)
{
    if (run_rc == 0) {
        char *text = ctx->result ? spec_dumps(ctx->result, JSON_COMPACT) : NULL;
        int rc = text ? store_job_set_state(s, ctx->job_id, JOB_SUCCEEDED, text, NULL)
                      : QN_ENOMEM;
        free(text);
        if (rc == 0)
            return 0;
        run_rc = rc;
        snprintf(ctx->reason, sizeof ctx->reason, "cannot store the result: %s",
                 qn_err_msg(rc));
    }
    if (run_rc == QN_ECANCELED)
        return store_job_set_state(s, ctx->job_id, JOB_CANCELED, NULL, "canceled");
    if (!ctx->reason[0])
        snprintf(ctx->reason, sizeof ctx->reason, "%s", qn_err_msg(run_rc));
    return store_job_set_state(s, ctx->job_id, JOB_FAILED, NULL, ctx->reason);
}

char *job_spec_text(const struct job_spec *js)
{
    if (js->ranks <= 1)
        return json_dumps(js->spec, JSON_COMPACT);
    json_t *copy = json_copy(js->spec); /* shallow: only the top level changes */
    json_t *res = json_pack("{sI sI}", "ranks", (json_int_t)js->ranks, "threads",
                            (json_int_t)js->threads);
    char *text = NULL;
    if (copy && res && json_object_set(copy, "resources", res) == 0)
        text = json_dumps(copy, JSON_COMPACT);
    json_decref(res);
    json_decref(copy);
    return text;
}

int job_spec_take_resources(json_t *spec, size_t *ranks, size_t *threads,
                            struct spec_error *err)
{
    *ranks = 1, *threads = 1;
    json_t *res = json_object_get(spec, "resources");
    if (!res)
        return 0;
    int rc = spec_resources_parse(res, "/resources", ranks, threads, err);
    json_object_del(spec, "resources");
    return rc;
}

/* Inserts the job as running; its spec is stored as compact JSON. */
static int job__insert(struct store *s, const struct job_spec *js, const char *owner,
                       int64_t *id)
{
    char *text = job_spec_text(js);
    if (!text)
        return QN_ENOMEM;
    int rc = store_job_insert(s, js->type, js->name, owner, js->priority, JOB_RUNNING, text, id);
    free(text);
    return rc;
}

/* Prepares and runs ctx as type t, inserting js as a new running job, or (js NULL)
 * setting the job ctx->job_id back to running; records the end. */
static int job__prepare_run(struct store *s, const struct job_type *t, struct job_ctx *ctx,
                            const struct job_spec *js, int64_t *job_id, struct spec_error *err)
{
    store_set_owner(s, ctx->owner); /* names resolve, and outputs belong, to its owner */
    int rc = t->prepare(ctx);
    if (rc) {
        *err = ctx->err;
        return rc;
    }
    rc = js ? job__insert(s, js, ctx->owner, &ctx->job_id) : store_job_restart(s, ctx->job_id);
    if (rc) {
        spec_fail(err, "", "cannot record the job: %s", store_errmsg(s));
        return rc;
    }
    if (job_id)
        *job_id = ctx->job_id;
    rc = job__finish(s, ctx, job_execute(t, ctx));
    if (rc)
        spec_fail(err, "", "cannot record the job's end: %s", store_errmsg(s));
    return rc;
}

int job_run_local(struct store *s, const struct job_spec *js, const char *owner, size_t workers,
                  const atomic_int *cancel, job_progress_fn progress, void *progress_ctx,
                  int64_t *job_id, struct spec_error *err)
{
    return job_run_with(s, js, owner, workers, NULL, cancel, progress, progress_ctx, job_id, err);
}

int job_run_with(struct store *s, const struct job_spec *js, const char *owner, size_t workers,
                 const struct job_remote *remote, const atomic_int *cancel,
                 job_progress_fn progress, void *progress_ctx, int64_t *job_id,
                 struct spec_error *err)
{
    *job_id = 0;
    const struct job_type *t = job_type_find(js->type);
    if (!t) {
        spec_fail(err, "/type", "type '%s' is not supported yet", js->type);
        return QN_EINVAL;
    }
    int rc = js->ranks > 1 ? job_remote_check(remote, t, js->ranks, err) : 0;
    if (rc == 0 && js->ranks > 1 && t->check_ranks)
        rc = t->check_ranks(js->spec, js->ranks, err);
    if (rc)
        return rc;
    struct job_ctx ctx = {.store = s, .name = js->name, .spec = js->spec, .owner = owner,
                          .workers = workers ? workers : 1, .cancel = cancel,
                          .progress = progress, .progress_ctx = progress_ctx,
                          .ranks = js->ranks, .threads = js->threads, .remote = remote};
    rc = job__prepare_run(s, t, &ctx, js, job_id, err);
    t->release(&ctx);
    json_decref(ctx.result);
    return rc;
}

/* A job may be resumed unless it succeeded or never started. */
static int job__resumable(const struct store_job *j, struct spec_error *err)
{
    if (j->state == JOB_SUCCEEDED)
        return spec_fail(err, "", "job %" PRId64 " has already succeeded", j->id), QN_EINVAL;
    if (j->state == JOB_WAITING || j->state == JOB_QUEUED)
        return spec_fail(err, "", "job %" PRId64 " is %s, not started", j->id,
                         store_job_state_name(j->state)),
               QN_EINVAL;
    if (!job_type_find(j->type))
        return spec_fail(err, "", "type '%s' is not supported yet", j->type), QN_EINVAL;
    return 0;
}

int job_resume_local(struct store *s, int64_t id, size_t workers, const atomic_int *cancel,
                     job_progress_fn progress, void *progress_ctx, struct spec_error *err)
{
    struct store_job j;
    int rc = store_job_get(s, id, &j);
    if (rc) {
        spec_fail(err, "", "cannot read job %" PRId64 ": %s", id, qn_err_msg(rc));
        return rc;
    }
    json_t *spec = NULL;
    rc = job__resumable(&j, err);
    if (rc == 0 && spec_load(j.spec, strlen(j.spec), &spec, err) != 0)
        rc = QN_EINVAL;
    size_t ranks = 1, threads = 1; /* no launcher here: the job runs in this process */
    if (rc == 0 && job_spec_take_resources(spec, &ranks, &threads, err) != 0)
        rc = QN_EINVAL;
    const struct job_type *t = job_type_find(j.type);
    struct job_ctx ctx = {.store = s, .job_id = id, .name = j.name, .spec = spec,
                          .owner = j.owner, .workers = workers ? workers : 1, .cancel = cancel,
                          .progress = progress, .progress_ctx = progress_ctx};
    if (rc == 0) {
        rc = job__prepare_run(s, t, &ctx, NULL, NULL, err);
        t->release(&ctx);
    }
    json_decref(ctx.result);
    json_decref(spec);
    store_job_free(&j);
    return rc;
}
