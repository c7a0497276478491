/*
 * spec_job.c: the job envelope {"type", "name", "priority", "resources", "spec"}.
 *
 * Only the envelope is checked here; the "spec" object is handed on (as a new
 * reference) to the parser of the job's type, so each type's rules live in
 * one place and the envelope never needs to change when a type grows fields.
 * Which types exist is the caller's to say (the jobs layer's type table).
 */
#include <stdio.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"
#include "spool.h"

#define SPEC__PRIORITY_MAX 100

static const char *const spec__job_fields[] = {"type", "name", "priority", "resources", "spec"};
static const char *const spec__resource_fields[] = {"ranks", "threads"};

#define SPEC__N(a) (sizeof(a) / sizeof((a)[0]))

/* The optional "name" (default: the type) and "priority" (default 0). */
static int spec__job_name_priority(const json_t *root, struct job_spec *out,
                                   struct spec_error *err)
{
    const json_t *v = json_object_get(root, "name");
    int rc;
    if (v) {
        const char *s;
        if ((rc = spec_get_string(v, "/name", sizeof out->name - 1, &s, err)))
            return rc;
        memcpy(out->name, s, strlen(s) + 1);
    } else {
        memcpy(out->name, out->type, sizeof out->type);
    }
    if ((v = json_object_get(root, "priority"))) {
        int64_t p;
        if ((rc = spec_get_int(v, "/priority", -SPEC__PRIORITY_MAX, SPEC__PRIORITY_MAX, &p,
                               err)))
            return rc;
        out->priority = (int)p;
    }
    return 0;
}

int spec_resources_parse(const json_t *v, const char *path, size_t *ranks, size_t *threads,
                         struct spec_error *err)
{
    char p[SPEC_PATH_MAX];
    int64_t x;
    int rc;
    *ranks = 1, *threads = 1;
    if ((rc = spec_check_fields(v, path, spec__resource_fields, SPEC__N(spec__resource_fields),
                                err)))
        return rc;
    const json_t *r = json_object_get(v, "ranks"), *t = json_object_get(v, "threads");
    snprintf(p, sizeof p, "%s/ranks", path);
    if (r && (rc = spec_get_int(r, p, 1, SPOOL_RANKS_MAX, &x, err)))
        return rc;
    if (r)
        *ranks = (size_t)x;
    snprintf(p, sizeof p, "%s/threads", path);
    if (t && (rc = spec_get_int(t, p, 1, SPOOL_THREADS_MAX, &x, err)))
        return rc;
    if (t)
        *threads = (size_t)x;
    return 0;
}

int spec_job_parse(const json_t *root, const char *const *types, size_t n_types,
                   struct job_spec *out, struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    int rc = spec_check_fields(root, "", spec__job_fields, SPEC__N(spec__job_fields), err);
    if (rc)
        return rc;
    const json_t *type = json_object_get(root, "type");
    if (!type)
        return spec_fail(err, "/type", "is required");
    int t;
    if ((rc = spec_get_enum(type, "/type", types, n_types, &t, err)))
        return rc;
    snprintf(out->type, sizeof out->type, "%s", types[t]);
    if ((rc = spec__job_name_priority(root, out, err)))
        return rc;
    const json_t *res = json_object_get(root, "resources");
    if (res && (rc = spec_resources_parse(res, "/resources", &out->ranks, &out->threads, err)))
        return rc;
    if (!res)
        out->ranks = 1, out->threads = 1;
    const json_t *spec = json_object_get(root, "spec");
    if (!spec)
        return spec_fail(err, "/spec", "is required");
    if (!json_is_object(spec))
        return spec_fail(err, "/spec", "must be an object");
    out->spec = json_incref((json_t *)spec);
    return 0;
}
