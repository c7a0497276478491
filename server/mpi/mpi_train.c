/*
 * mpi_train.c: a train run on several ranks, data-parallel. Every rank
 * builds the same network from the resolved spec, the staged layers and
 * rows (spool_net.h) with schema/spec_run.h (the functions the daemon's
 * in-process train job calls), starts from the staged parameters and optimizer state
 * (the daemon has calibrated the network, or restored a checkpoint or the
 * "from" model), and trains with the shard of mpi_dp.h: each rank
 * forwards and backpropagates its slice of every batch (device solves
 * included: via device and physics_aware spread their solves over the
 * ranks), the ranks sum gradients, losses and counts with MPI_Allreduce,
 * and all take the same optimizer step. Rank 0 writes the metric lines,
 * each checkpoint (and its line, on which the daemon stores it), the
 * model's parameters and result.json (spool.h, "train and fit jobs").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_dp.h"
#include "qn_err.h"
#include "spec.h"
#include "spec_run.h"
#include "spool_net.h"

/* One rank's run. */
struct mpi_train {
    struct mpi_ctx *m;
    struct train_spec t;
    int have_t;
    json_t *staged;          /* the daemon's facts (new reference) */
    struct spool_net layers; /* devices and surrogates */
    size_t n_classes;        /* of the datasets (0: regression) */
    struct data_set train, test;
    struct net *net;
    struct optim o;
    int have_o;
    struct train_position from; /* where the run starts */
    uint64_t opt_t;             /* the optimizer's steps at the start */
    size_t every;               /* steps between step_loss metrics */
    uint64_t steps;             /* steps of the whole run, for progress */
    int ckpt_rc;                /* rank 0: the first checkpoint that could not be written */
};

/* train_hooks.metric: rank 0's lines; progress with each step_loss. */
static void mpi_train__metric(const char *name, uint64_t step, size_t epoch, double value,
                              void *ctx)
{
    struct mpi_train *s = ctx;
    mpi_dp_metric(s->m, name, step, epoch, value);
    if (strcmp(name, "step_loss") == 0)
        mpi_dp_progress(s->m, step < s->steps ? step : s->steps, s->steps);
}

/* train_hooks.checkpoint: rank 0 writes it. A failure is kept for the end
 * (returning it here would stop rank 0 alone, and the others would wait for
 * it in their next sum). */
static int mpi_train__checkpoint(const struct net *n, const struct optim *o, size_t epoch,
                                 void *ctx)
{
    struct mpi_train *s = ctx;
    struct mpi_ctx *m = s->m;
    if (m->rank != 0 || s->ckpt_rc)
        return 0;
    s->ckpt_rc = spool_checkpoint_write(m->dir, epoch, n->params, n->n_params, o->state,
                                        optim_state_len(o), o->t, m->reason, sizeof m->reason);
    char *line = s->ckpt_rc ? NULL : spool_line_checkpoint((int64_t)epoch);
    if (line)
        mpi_emit(m, line); /* the daemon stores it now */
    free(line);
    return 0;
}

/* The staged facts: the start position, the optimizer's steps, the interval,
 * the datasets' classes. */
static int mpi_train__staged(struct mpi_train *s)
{
    json_int_t epoch = -1, step = -1, correct = -1, t = -1, every = -1, classes = -1;
    double sum = 0;
    if (json_unpack(s->staged, "{sI sI sF sI sI sI sI}", "epoch", &epoch, "step", &step, "loss_sum",
                    &sum, "correct", &correct, "t", &t, "step_metric_every", &every, "n_classes",
                    &classes) ||
        epoch < 0 || step < 0 || correct < 0 || t < 0 || every < 0 || classes < 0)
        return QN_EFORMAT;
    s->from = (struct train_position){(size_t)epoch, (size_t)step, sum, (size_t)correct};
    s->opt_t = (uint64_t)t, s->every = (size_t)every, s->n_classes = (size_t)classes;
    return 0;
}

/* The spec (without "staged"). */
static int mpi_train__spec(struct mpi_train *s)
{
    struct mpi_ctx *m = s->m;
    struct spec_error e = {{0}, {0}};
    int rc = spool_staged_take(m->job.spec, &s->staged);
    if (rc == 0)
        rc = mpi_train__staged(s);
    if (rc) {
        snprintf(m->reason, sizeof m->reason, "the staged run's \"%s\" is malformed", SPOOL_STAGED);
        return rc;
    }
    if ((rc = spec_train_parse(m->job.spec, &s->t, &e)))
        snprintf(m->reason, sizeof m->reason, "the staged run is not valid: %s: %s", e.path, e.msg);
    s->have_t = rc == 0;
    return rc;
}

/* The network and optimizer, at the staged parameters and state. */
static int mpi_train__network(struct mpi_train *s)
{
    struct mpi_ctx *m = s->m;
    const char *what;
    int rc = spool_net_open(m->dir, json_object_get(s->staged, "network"), 0, &s->layers, m->reason,
                            sizeof m->reason);
    if (rc == 0 && s->layers.n_layers != s->t.n_layers) {
        snprintf(m->reason, sizeof m->reason, "the staged network is not the spec's");
        rc = QN_EFORMAT;
    }
    if (rc)
        return rc;
    rc = spec_run_build(&s->t, s->layers.ls, s->train.d, m->job.threads, NULL, &s->net, &s->o,
                        &what);
    if (rc) {
        snprintf(m->reason, sizeof m->reason, "rank %d: %s: %s", m->rank, what, qn_err_msg(rc));
        return rc;
    }
    s->have_o = 1;
    float *params = NULL, *state = NULL;
    size_t n_state = optim_state_len(&s->o);
    rc = spool_floats_read(m->dir, SPOOL_START_PARAMS, s->net->n_params, &params, m->reason,
                           sizeof m->reason);
    if (rc == 0)
        rc = spool_floats_read(m->dir, SPOOL_START_STATE, n_state, &state, m->reason,
                               sizeof m->reason);
    struct spec_run_start st = {params, s->net->n_params, state, n_state, s->opt_t};
    if (rc == 0)
        rc = spec_run_start(&s->t, s->net, &s->o, &st, &s->train, m->reason, sizeof m->reason);
    free(params);
    free(state);
    return rc;
}

static int mpi_train__setup(struct mpi_train *s)
{
    struct mpi_ctx *m = s->m;
    int rc = mpi_train__spec(s);
    if (rc == 0)
        rc = spool_data_read(m->dir, SPOOL_TRAIN_SET, s->n_classes, &s->train, m->reason,
                             sizeof m->reason);
    if (rc == 0)
        rc = spool_data_read(m->dir, SPOOL_TEST_SET, s->n_classes, &s->test, m->reason,
                             sizeof m->reason);
    if (rc == 0)
        rc = mpi_train__network(s);
    size_t batch = s->t.train.batch;
    if (rc == 0)
        s->steps = (uint64_t)((s->train.n + batch - 1) / batch) * s->t.train.epochs;
    return rc;
}

static void mpi_train__close(struct mpi_train *s)
{
    net_destroy(s->net);
    if (s->have_o)
        optim_close(&s->o);
    data_close(&s->train);
    data_close(&s->test);
    spool_net_close(&s->layers);
    if (s->have_t)
        spec_train_close(&s->t);
    json_decref(s->staged);
}

/* Rank 0: the model's parameters, then result.json (written last). */
static int mpi_train__write(struct mpi_train *s, const struct train_result *res)
{
    struct mpi_ctx *m = s->m;
    if (m->rank != 0)
        return 0;
    if (s->ckpt_rc)
        return s->ckpt_rc; /* its reason is in m->reason */
    int rc = spool_floats_write(m->dir, SPOOL_MODEL_PARAMS, s->net->params, s->net->n_params,
                                m->reason, sizeof m->reason);
    if (rc == 0)
        rc = spool_train_result_write(m->dir, res, s->net->n_layers, s->net->failed_solves,
                                      m->reason, sizeof m->reason);
    return rc;
}

static int mpi_train_run(struct mpi_ctx *m)
{
    struct mpi_train s = {.m = m};
    struct train_result res;
    struct shard sh;
    int rc = mpi_agree(m, mpi_train__setup(&s));
    if (rc == 0) { /* collective: every rank walks the same steps */
        mpi_dp_shard(m, &sh);
        struct train_hooks h = {.metric = mpi_train__metric,
                                .checkpoint = mpi_train__checkpoint,
                                .ctx = &s,
                                .step_metric_every = s.every,
                                .shard = &sh};
        rc = spec_run_train(&s.t, s.net, &s.o, &s.train, &s.test, &h, &s.from, &res);
        if (rc)
            snprintf(m->reason, sizeof m->reason, "training stopped: %s", qn_err_msg(rc));
        rc = mpi_agree(m, rc);
    }
    if (rc == 0)
        rc = mpi_agree(m, mpi_train__write(&s, &res));
    mpi_train__close(&s);
    return rc;
}

const struct mpi_type mpi_train_type = {.name = "train", .run = mpi_train_run};
