/*
 * spec_predict.c: the body of POST /v1/models/{id}/predict into struct
 * predict_spec: {"rows": [[n_in numbers], ...]}.
 *
 * The rows stay raw: standardising them is the model's business
 * (server/jobs/job_model.c applies its saved scaler), so the numbers here
 * are exactly the ones the client sent, as floats.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"

#define SPEC__FLOAT_MAX 3e38 /* |v| a float holds (FLT_MAX is 3.40e38) */

/* Reads row i (at path p) of n_in numbers into x (n_in). */
static int spec__predict_row(const json_t *r, const char *p, size_t n_in, float *x,
                             struct spec_error *err)
{
    if (!json_is_array(r) || json_array_size(r) != n_in)
        return spec_fail(err, p, "must be an array of %zu numbers (the model's inputs)", n_in);
    for (size_t j = 0; j < n_in; j++) {
        char pj[SPEC_PATH_MAX];
        double v;
        spec_path_index(pj, sizeof pj, p, j);
        if (spec_get_number(json_array_get(r, j), pj, &v, err))
            return QN_ESPEC;
        if (fabs(v) > SPEC__FLOAT_MAX)
            return spec_fail(err, pj, "must fit in a float");
        x[j] = (float)v;
    }
    return 0;
}

int spec_predict_parse(const json_t *body, size_t n_in, struct predict_spec *out,
                       struct spec_error *err)
{
    static const char *const fields[] = {"rows"};
    memset(out, 0, sizeof *out);
    if (n_in == 0)
        return QN_EINVAL;
    if (spec_check_fields(body, "", fields, 1, err))
        return QN_ESPEC;
    const json_t *rows = json_object_get(body, "rows");
    if (!json_is_array(rows) || json_array_size(rows) == 0)
        return spec_fail(err, "/rows", "required: a non-empty array of rows of %zu numbers", n_in);
    if (json_array_size(rows) > SPEC_PREDICT_ROWS_MAX)
        return spec_fail(err, "/rows", "at most %d rows per request", SPEC_PREDICT_ROWS_MAX);
    size_t n = json_array_size(rows);
    float *x = malloc(n * n_in * sizeof *x);
    if (!x)
        return QN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char p[SPEC_PATH_MAX];
        spec_path_index(p, sizeof p, "/rows", i);
        int rc = spec__predict_row(json_array_get(rows, i), p, n_in, x + i * n_in, err);
        if (rc) {
            free(x);
            return rc;
        }
    }
    out->x = x;
    out->n = n;
    out->d = n_in;
    return 0;
}

void spec_predict_close(struct predict_spec *p)
{
    free(p->x);
    memset(p, 0, sizeof *p);
}
