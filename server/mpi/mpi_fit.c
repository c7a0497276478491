/*
 * mpi_fit.c: a surrogate fit on several ranks, data-parallel. Every rank
 * reads the sweep's rows from the spool and runs the same fit
 * (spec_run_fit, as the daemon's in-process fit does) with the shard of
 * mpi_dp.h: each computes the gradient of its slice of every batch, the
 * ranks sum gradients and losses with MPI_Allreduce, and all take the same
 * Adam step. Rank 0 writes the metric lines, the surrogate and result.json
 * (spool.h, "train and fit jobs").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_dp.h"
#include "qn_err.h"
#include "spec.h"
#include "spec_run.h"
#include "surrogate.h"

/* One rank's fit. */
struct mpi_fit {
    struct mpi_ctx *m;
    struct fit_spec f;
    int have_f;
    json_t *staged; /* the daemon's facts (new reference) */
    struct spool_array in, out, status;
    size_t n_cond;
    const char *cond[DEV_MAX_PARAMS]; /* borrowed from staged */
    size_t every;                     /* steps between step_loss metrics */
};

/* fit_hooks.metric: rank 0's lines; a progress line per epoch. */
static void mpi_fit__metric(const char *name, size_t step, size_t epoch, double value, void *ctx)
{
    struct mpi_fit *s = ctx;
    mpi_dp_metric(s->m, name, step, epoch, value);
    if (strcmp(name, "val_rmse") == 0)
        mpi_dp_progress(s->m, epoch, s->f.cfg.epochs);
}

/* The staged facts: the conditioning names and the step_loss interval. */
static int mpi_fit__staged(struct mpi_fit *s)
{
    json_t *cond = json_object_get(s->staged, "conditioned_on");
    json_t *every = json_object_get(s->staged, "step_metric_every");
    if (!json_is_array(cond) || json_array_size(cond) > DEV_MAX_PARAMS || !json_is_integer(every) ||
        json_integer_value(every) < 0)
        return QN_EFORMAT;
    s->n_cond = json_array_size(cond);
    for (size_t k = 0; k < s->n_cond; k++)
        if (!(s->cond[k] = json_string_value(json_array_get(cond, k))))
            return QN_EFORMAT;
    s->every = (size_t)json_integer_value(every);
    return 0;
}

/* The spec and the arrays, checked against each other. */
static int mpi_fit__setup(struct mpi_fit *s)
{
    struct mpi_ctx *m = s->m;
    struct spec_error e = {{0}, {0}};
    char *why = m->reason;
    size_t cap = sizeof m->reason;
    int rc = spool_staged_take(m->job.spec, &s->staged);
    if (rc == 0 && (rc = mpi_fit__staged(s)))
        snprintf(why, cap, "the staged fit's \"%s\" is malformed", SPOOL_STAGED);
    if (rc == 0 && (rc = spec_fit_parse(m->job.spec, &s->f, &e)) == 0)
        s->have_f = 1;
    else if (rc && !why[0])
        snprintf(why, cap, "the staged fit is not valid: %s: %s", e.path, e.msg);
    if (rc == 0)
        rc = spool_array_read(m->dir, SPOOL_FIT_IN, SPOOL_F32, &s->in, why, cap);
    if (rc == 0)
        rc = spool_array_read(m->dir, SPOOL_FIT_OUT, SPOOL_F32, &s->out, why, cap);
    if (rc == 0)
        rc = spool_array_read(m->dir, SPOOL_FIT_STATUS, SPOOL_I32, &s->status, why, cap);
    if (rc == 0 && (s->in.rank != 2 || s->out.count != s->in.dims[0] ||
                    s->status.count != s->in.dims[0] || s->in.dims[1] <= s->n_cond)) {
        snprintf(why, cap, "the staged fit's arrays do not agree");
        rc = QN_EFORMAT;
    }
    return rc;
}

static void mpi_fit__close(struct mpi_fit *s)
{
    if (s->have_f)
        spec_fit_close(&s->f);
    json_decref(s->staged);
    spool_array_free(&s->in);
    spool_array_free(&s->out);
    spool_array_free(&s->status);
}

/* Rank 0: the surrogate and result.json (written last). */
static int mpi_fit__write(struct mpi_fit *s, const struct surrogate *sur,
                          const struct fit_result *res)
{
    struct mpi_ctx *m = s->m;
    if (m->rank != 0)
        return 0;
    void *blob = NULL;
    size_t len = 0;
    int rc = surrogate_to_blob(sur, &blob, &len);
    if (rc == 0)
        rc = spool_blob_write(m->dir, SPOOL_SURROGATE, blob, len, m->reason, sizeof m->reason);
    if (rc == 0)
        rc = spool_fit_result_write(m->dir, res, m->reason, sizeof m->reason);
    free(blob);
    return rc;
}

static int mpi_fit_run(struct mpi_ctx *m)
{
    struct mpi_fit s = {.m = m};
    struct surrogate sur = {0};
    struct fit_result res;
    struct shard sh;
    const char *what = "";
    int rc = mpi_agree(m, mpi_fit__setup(&s));
    if (rc == 0) { /* collective: every rank walks the same steps */
        mpi_dp_shard(m, &sh);
        struct fit_hooks h = {
            .metric = mpi_fit__metric, .ctx = &s, .step_metric_every = s.every, .shard = &sh};
        rc = spec_run_fit(&s.f, s.in.data, s.out.data, s.status.data, s.in.dims[0], s.in.dims[1],
                          s.n_cond, s.cond, &h, &sur, &res, &what);
        if (rc)
            snprintf(m->reason, sizeof m->reason, "%s: %s",
                     rc == QN_EINVAL ? "cannot fit: too "
                                       "few usable rows or a bad configuration"
                                     : what,
                     qn_err_msg(rc));
        rc = mpi_agree(m, rc);
    }
    if (rc == 0)
        rc = mpi_agree(m, mpi_fit__write(&s, &sur, &res));
    if (sur.mlp)
        surrogate_close(&sur);
    mpi_fit__close(&s);
    return rc;
}

const struct mpi_type mpi_fit_type = {.name = "fit", .run = mpi_fit_run};
