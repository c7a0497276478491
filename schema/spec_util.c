/*
 * spec_util.c: the building blocks every spec parser uses: one error shape
 * (spec_fail), JSON Pointer paths, and typed getters that refuse wrong types,
 * non-finite numbers, out-of-range integers and unknown fields. Also the
 * reference parser (id, name, {"job": N}, {"id": N, ...}, inline object).
 *
 * Trade-off: each getter reports its own error at the path it was given, so a
 * parser is a flat list of "get field, or return" lines and every message
 * reaching a user has the same shape ("/spec/samples: must be ...").
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

int spec_fail(struct spec_error *err, const char *path, const char *fmt, ...)
{
    if (!err)
        return QN_ESPEC;
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return QN_ESPEC;
}

int spec_load(const char *text, size_t len, json_t **out, struct spec_error *err)
{
    json_error_t je;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (*out)
        return 0;
    return spec_fail(err, "", "invalid JSON at line %d column %d: %s", je.line, je.column,
                     je.text);
}

void spec_path_key(char *out, size_t cap, const char *base, const char *key)
{
    size_t n = (size_t)snprintf(out, cap, "%s/", base);
    for (const char *k = key; *k && n + 1 < cap; k++) {
        if (*k == '~' || *k == '/') {
            if (n + 2 >= cap)
                break;
            out[n++] = '~';
            out[n++] = *k == '~' ? '0' : '1';
        } else {
            out[n++] = *k;
        }
    }
    if (n < cap)
        out[n] = '\0';
}

void spec_path_index(char *out, size_t cap, const char *base, size_t i)
{
    snprintf(out, cap, "%s/%zu", base, i);
}

int spec_check_fields(const json_t *v, const char *path, const char *const *allowed,
                      size_t n_allowed, struct spec_error *err)
{
    if (!json_is_object(v))
        return spec_fail(err, path, "must be an object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        size_t i = 0;
        while (i < n_allowed && strcmp(key, allowed[i]) != 0)
            i++;
        if (i == n_allowed) {
            char p[SPEC_PATH_MAX];
            spec_path_key(p, sizeof p, path, key);
            return spec_fail(err, p, "unknown field");
        }
    }
    return 0;
}

int spec_get_int(const json_t *v, const char *path, int64_t lo, int64_t hi, int64_t *out,
                 struct spec_error *err)
{
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double r = json_real_value(v);
        /* 2^63 bounds the conversion; anything outside [lo, hi] is refused below. */
        if (!isfinite(r) || r != floor(r) || fabs(r) >= 9.2e18)
            goto bad;
        x = (int64_t)r;
    } else {
        goto bad;
    }
    if (x < lo || x > hi)
        goto bad;
    *out = x;
    return 0;
bad:
    if (hi == INT64_MAX)
        return spec_fail(err, path, "must be an integer >= %lld", (long long)lo);
    return spec_fail(err, path, "must be an integer from %lld to %lld", (long long)lo,
                     (long long)hi);
}

int spec_get_number(const json_t *v, const char *path, double *out, struct spec_error *err)
{
    if (!json_is_number(v))
        return spec_fail(err, path, "must be a number");
    double x = json_number_value(v);
    if (!isfinite(x))
        return spec_fail(err, path, "must be a finite number");
    *out = x;
    return 0;
}

int spec_get_string(const json_t *v, const char *path, size_t max_len, const char **out,
                    struct spec_error *err)
{
    if (!json_is_string(v))
        return spec_fail(err, path, "must be a string");
    size_t n = json_string_length(v);
    if (n == 0)
        return spec_fail(err, path, "must not be empty");
    if (n > max_len)
        return spec_fail(err, path, "must be at most %zu bytes long", max_len);
    if (strlen(json_string_value(v)) != n)
        return spec_fail(err, path, "must not contain NUL characters");
    *out = json_string_value(v);
    return 0;
}

int spec_get_enum(const json_t *v, const char *path, const char *const *names, size_t n,
                  int *out, struct spec_error *err)
{
    if (json_is_string(v)) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = (int)i;
                return 0;
            }
        }
    }
    char list[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 names[i]);
    return spec_fail(err, path, "must be one of %s", list);
}

/* {"job": N}, or {"id": N, ...options}: the object form of a reference. */
static int spec__ref_object(const json_t *v, const char *path, int allow_inline,
                            struct spec_ref *out, struct spec_error *err)
{
    const json_t *id = json_object_get(v, "id");
    const json_t *job = json_object_get(v, "job");
    char p[SPEC_PATH_MAX];
    int rc;
    if (id && job) {
        spec_path_key(p, sizeof p, path, "job");
        return spec_fail(err, p, "give either \"id\" or \"job\", not both");
    }
    if (id || job) {
        spec_path_key(p, sizeof p, path, id ? "id" : "job");
        if ((rc = spec_get_int(id ? id : job, p, 1, INT64_MAX, &out->id, err)))
            return rc;
        out->kind = id ? REF_ID : REF_JOB;
        out->inline_obj = json_incref((json_t *)v);
        return 0;
    }
    if (!allow_inline)
        return spec_fail(err, path,
                         "must be an id, a name, {\"job\": N} or {\"id\": N}; inline objects "
                         "are not allowed here");
    out->kind = REF_INLINE;
    out->inline_obj = json_incref((json_t *)v);
    return 0;
}

int spec_ref_parse(const json_t *v, const char *path, int allow_inline, struct spec_ref *out,
                   struct spec_error *err)
{
    memset(out, 0, sizeof *out);
    if (json_is_object(v))
        return spec__ref_object(v, path, allow_inline, out, err);
    if (json_is_string(v)) {
        const char *s;
        int rc = spec_get_string(v, path, sizeof out->name - 1, &s, err);
        if (rc)
            return rc;
        out->kind = REF_NAME;
        memcpy(out->name, s, strlen(s) + 1);
        return 0;
    }
    if (json_is_number(v)) {
        out->kind = REF_ID;
        return spec_get_int(v, path, 1, INT64_MAX, &out->id, err);
    }
    return spec_fail(err, path, allow_inline
                                    ? "must be an id, a name, {\"job\": N}, {\"id\": N} or an "
                                      "inline object"
                                    : "must be an id, a name, {\"job\": N} or {\"id\": N}");
}

void spec_ref_close(struct spec_ref *r)
{
    if (!r)
        return;
    json_decref(r->inline_obj);
    r->inline_obj = NULL;
}
