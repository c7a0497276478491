/*
 * spool_sweep.c: a sweep job in the spool (spool.h): its resolved spec into
 * engine objects, its design, and its result arrays. The daemon's sweep job
 * (server/jobs/job_sweep.c) generates its design here too, so an in-process
 * sweep and one on several ranks solve the same rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "design.h"
#include "qn_err.h"
#include "spec.h"
#include "spool.h"

int spool_sweep_open(const json_t *spec, struct sweep_spec *sw, struct dev_model *dev,
                     struct spec_error *err)
{
    int rc = spec_sweep_parse(spec, sw, err);
    if (rc)
        return rc;
    if (sw->device.kind != REF_INLINE) {
        spec_sweep_close(sw);
        return spec_fail(err, "/spec/device", "must be the resolved (inline) device");
    }
    rc = spec_device_parse(sw->device.inline_obj, "/spec/device", dev, err);
    if (rc) {
        spec_sweep_close(sw);
        return rc;
    }
    if ((rc = spec_sweep_bind(sw, dev, err))) {
        dev_model_close(dev);
        spec_sweep_close(sw);
    }
    return rc;
}

int spool_sweep_design(const struct sweep_spec *sw, size_t *n, double **in)
{
    size_t dim = sw->n_ranges;
    *in = NULL;
    *n = design_points(sw->design, sw->samples, dim);
    if (*n == 0 || dim == 0 || *n > SIZE_MAX / sizeof(double) / dim)
        return QN_ERANGE;
    *in = malloc(*n * dim * sizeof(double));
    if (!*in)
        return QN_ENOMEM;
    int rc = design_generate(sw->design, sw->samples, dim, sw->lo, sw->hi, sw->seed, *in);
    if (rc) {
        free(*in);
        *in = NULL;
    }
    return rc;
}

int spool_sweep_result_write(const char *dir, size_t n, const double *out, const int *status,
                             char *msg, size_t cap)
{
    _Static_assert(sizeof(int) == 4, "statuses travel as int32");
    int rc = spool_array_write(dir, SPOOL_SWEEP_OUT, SPOOL_F64, 1, &n, out, msg, cap);
    if (rc == 0)
        rc = spool_array_write(dir, SPOOL_SWEEP_STATUS, SPOOL_I32, 1, &n, status, msg, cap);
    return rc;
}

int spool_sweep_result_read(const char *dir, size_t n, double *out, int *status, char *msg,
                            size_t cap)
{
    struct spool_array a = {0}, b = {0};
    int rc = spool_array_read(dir, SPOOL_SWEEP_OUT, SPOOL_F64, &a, msg, cap);
    if (rc == 0)
        rc = spool_array_read(dir, SPOOL_SWEEP_STATUS, SPOOL_I32, &b, msg, cap);
    if (rc == 0 && (a.count != n || b.count != n)) {
        snprintf(msg, cap, "the sweep's result has %zu rows; its design %zu", a.count, n);
        rc = QN_EFORMAT;
    }
    if (rc == 0) {
        memcpy(out, a.data, n * sizeof *out);
        memcpy(status, b.data, n * sizeof *status);
    }
    spool_array_free(&a);
    spool_array_free(&b);
    return rc;
}
