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

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"

/* Every job type this build can run. fit, train and evaluate join here. */
static const struct job_type job__types[] = {
    {"sweep", job_sweep_prepare, job_sweep_run, job_sweep_release},
};

const struct job_type *job_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof job__types / sizeof job__types[0]; i++)
        if (strcmp(job__types[i].name, name) == 0)
            return &job__types[i];
    return NULL;
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

/* Parses a stored device's JSON; its errors name the stored device. */
static int job__parse_stored(const struct store_device *d, const char *path,
                             struct dev_model *out, struct spec_error *err)
{
    json_t *obj = NULL;
    struct spec_error e = {{0}, {0}};
    int rc = spec_load(d->spec, strlen(d->spec), &obj, &e);
    if (rc == 0)
        rc = spec_device_parse(obj, "", out, &e);
    json_decref(obj);
    if (rc)
        return spec_fail(err, path, "stored device %" PRId64 " is not valid at '%s': %s", d->id,
                         e.path, e.msg);
    return 0;
}

int job_resolve_device(struct store *s, const struct spec_ref *ref, const char *path,
                       struct dev_model *out, struct spec_error *err)
{
    if (ref->kind == REF_INLINE)
        return spec_device_parse(ref->inline_obj, path, out, err);
    if (ref->kind == REF_JOB)
        return spec_fail(err, path, "a job's output is not a device; give an id, a name or an "
                                    "inline device");
    struct store_device d;
    int rc = job__load_device(s, ref, path, &d, err);
    if (rc)
        return rc;
    rc = job__parse_stored(&d, path, out, err);
    store_device_free(&d);
    return rc;
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
        char *text = ctx->result ? json_dumps(ctx->result, JSON_COMPACT) : NULL;
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

/* Inserts the job as running; its spec is stored as compact JSON. */
static int job__insert(struct store *s, const struct job_spec *js, const char *owner,
                       int64_t *id)
{
    char *text = json_dumps(js->spec, JSON_COMPACT);
    if (!text)
        return QN_ENOMEM;
    int rc = store_job_insert(s, js->type, js->name, owner, js->priority, JOB_RUNNING, text, id);
    free(text);
    return rc;
}

int job_run_local(struct store *s, const struct job_spec *js, const char *owner, size_t workers,
                  const atomic_int *cancel, job_progress_fn progress, void *progress_ctx,
                  int64_t *job_id, struct spec_error *err)
{
    *job_id = 0;
    const struct job_type *t = job_type_find(js->type);
    if (!t) {
        spec_fail(err, "/type", "type '%s' is not supported yet", js->type);
        return QN_EINVAL;
    }
    struct job_ctx ctx = {.store = s, .name = js->name, .spec = js->spec,
                          .workers = workers ? workers : 1, .cancel = cancel,
                          .progress = progress, .progress_ctx = progress_ctx};
    int rc = t->prepare(&ctx);
    if (rc) {
        *err = ctx.err;
        goto out;
    }
    rc = job__insert(s, js, owner, &ctx.job_id);
    if (rc) {
        spec_fail(err, "", "cannot record the job: %s", store_errmsg(s));
        goto out;
    }
    *job_id = ctx.job_id;
    rc = job__finish(s, &ctx, t->run(&ctx));
    if (rc)
        spec_fail(err, "", "cannot record the job's end: %s", store_errmsg(s));
out:
    t->release(&ctx);
    json_decref(ctx.result);
    return rc;
}
