/*
 * spool_train.c: train and fit jobs in the spool (spool.h): the "staged"
 * facts, datasets, parameter vectors, checkpoints and results that the
 * daemon (server/jobs/job_train.c, job_fit.c) and qn-mpi's ranks
 * (server/mpi/mpi_train.c, mpi_fit.c) hand each other; the network and the
 * datasets travel as spool_net.h says. Numbers that may be
 * NaN (an accuracy of a regression, a score never taken) travel as null.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spool.h"
#include "surrogate.h"
#include "train.h"

int spool_staged_take(json_t *spec, json_t **staged)
{
    json_t *s = json_object_get(spec, SPOOL_STAGED);
    *staged = NULL;
    if (!json_is_object(s))
        return QN_EFORMAT;
    *staged = json_incref(s);
    json_object_del(spec, SPOOL_STAGED);
    return 0;
}

int spool_floats_write(const char *dir, const char *name, const float *v, size_t n, char *msg,
                       size_t cap)
{
    return spool_array_write(dir, name, SPOOL_F32, 1, &n, v, msg, cap);
}

int spool_floats_read(const char *dir, const char *name, size_t n, float **out, char *msg,
                      size_t cap)
{
    struct spool_array a = {0};
    *out = NULL;
    int rc = spool_array_read(dir, name, SPOOL_F32, &a, msg, cap);
    if (rc == 0 && a.count != n) {
        if (msg && cap)
            snprintf(msg, cap, "%s holds %zu values; %zu expected", name, a.count, n);
        rc = QN_EFORMAT;
    }
    if (rc == 0) {
        *out = a.data;
        a.data = NULL;
    }
    spool_array_free(&a);
    return rc;
}

/* The file of checkpoint `epoch` with suffix ("params.qna", ...) into buf. */
static void spool__ckpt_name(char *buf, size_t cap, size_t epoch, const char *suffix)
{
    snprintf(buf, cap, "checkpoint-%zu-%s", epoch, suffix);
}

int spool_checkpoint_write(const char *dir, size_t epoch, const float *params, size_t n_params,
                           const float *state, size_t n_state, uint64_t t, char *msg, size_t cap)
{
    char name[64];
    spool__ckpt_name(name, sizeof name, epoch, "params.qna");
    int rc = spool_floats_write(dir, name, params, n_params, msg, cap);
    spool__ckpt_name(name, sizeof name, epoch, "state.qna");
    if (rc == 0)
        rc = spool_floats_write(dir, name, state, n_state, msg, cap);
    json_t *c = rc ? NULL : json_pack("{sI sI}", "epoch", (json_int_t)epoch, "t", (json_int_t)t);
    spool__ckpt_name(name, sizeof name, epoch, "info.json");
    if (rc == 0)
        rc = c ? spool_json_write(dir, name, c, msg, cap) : QN_ENOMEM;
    json_decref(c);
    return rc;
}

/* Copies the float vector dir/name of exactly n values into dst. */
static int spool__floats_into(const char *dir, const char *name, float *dst, size_t n, char *msg,
                              size_t cap)
{
    float *v = NULL;
    int rc = spool_floats_read(dir, name, n, &v, msg, cap);
    if (rc == 0)
        memcpy(dst, v, n * sizeof *v);
    free(v);
    return rc;
}

int spool_checkpoint_read(const char *dir, size_t epoch, float *params, size_t n_params,
                          float *state, size_t n_state, uint64_t *t, char *msg, size_t cap)
{
    char name[64];
    json_t *c = NULL;
    json_int_t e = 0, steps = 0;
    spool__ckpt_name(name, sizeof name, epoch, "info.json");
    int rc = spool_json_read(dir, name, &c, msg, cap);
    if (rc == 0 &&
        (json_unpack(c, "{sI sI}", "epoch", &e, "t", &steps) || (size_t)e != epoch || steps < 0)) {
        if (msg && cap)
            snprintf(msg, cap, "%s is malformed", name);
        rc = QN_EFORMAT;
    }
    json_decref(c);
    spool__ckpt_name(name, sizeof name, epoch, "params.qna");
    if (rc == 0)
        rc = spool__floats_into(dir, name, params, n_params, msg, cap);
    spool__ckpt_name(name, sizeof name, epoch, "state.qna");
    if (rc == 0)
        rc = spool__floats_into(dir, name, state, n_state, msg, cap);
    *t = (uint64_t)steps;
    return rc;
}

void spool_checkpoint_remove(const char *dir, size_t epoch)
{
    static const char *const suffix[] = {"params.qna", "state.qna", "info.json"};
    for (size_t i = 0; i < 3; i++) {
        char name[64], path[SPOOL_PATH_MAX];
        spool__ckpt_name(name, sizeof name, epoch, suffix[i]);
        if (spool_path(path, sizeof path, dir, name) == 0)
            remove(path);
    }
}

/* A double as JSON: null for NaN and infinities. */
static json_t *spool__real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Member key of o as a double: NaN for null or a missing key. */
static double spool__num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

int spool_train_result_write(const char *dir, const struct train_result *res, size_t n_layers,
                             size_t failed_solves, char *msg, size_t cap)
{
    json_t *ood = json_array();
    for (size_t l = 0; ood && l < n_layers; l++)
        if (json_array_append_new(ood, spool__real(res->out_of_domain_layer[l])))
            json_decref(ood), ood = NULL;
    json_t *r =
        ood ? json_pack("{so so so so sI sI so so}", "train_loss", spool__real(res->train_loss),
                        "train_accuracy", spool__real(res->train_accuracy), "test_loss",
                        spool__real(res->test_loss), "test_accuracy",
                        spool__real(res->test_accuracy), "epochs_done",
                        (json_int_t)res->epochs_done, "failed_solves", (json_int_t)failed_solves,
                        "out_of_domain", spool__real(res->out_of_domain), "out_of_domain_layer",
                        ood)
            : NULL;
    int rc = r ? spool_json_write(dir, SPOOL_RESULT, r, msg, cap) : QN_ENOMEM;
    json_decref(r);
    return rc;
}

int spool_train_result_read(const char *dir, struct train_result *res, size_t n_layers,
                            size_t *failed_solves, char *msg, size_t cap)
{
    json_t *r = NULL;
    memset(res, 0, sizeof *res);
    int rc = spool_json_read(dir, SPOOL_RESULT, &r, msg, cap);
    json_t *ood = json_object_get(r, "out_of_domain_layer");
    json_t *done = json_object_get(r, "epochs_done"), *failed = json_object_get(r, "failed_solves");
    if (rc == 0 && (json_array_size(ood) != n_layers || !json_is_integer(done) ||
                    json_integer_value(done) < 0 || !json_is_integer(failed) ||
                    json_integer_value(failed) < 0))
        rc = QN_EFORMAT;
    if (rc == 0) {
        res->train_loss = spool__num(r, "train_loss");
        res->train_accuracy = spool__num(r, "train_accuracy");
        res->test_loss = spool__num(r, "test_loss");
        res->test_accuracy = spool__num(r, "test_accuracy");
        res->out_of_domain = spool__num(r, "out_of_domain");
        res->epochs_done = (size_t)json_integer_value(done);
        *failed_solves = (size_t)json_integer_value(failed);
        for (size_t l = 0; l < NET_MAX_LAYERS; l++) {
            json_t *v = json_array_get(ood, l);
            res->out_of_domain_layer[l] = json_is_number(v) ? json_number_value(v) : NAN;
        }
    }
    if (rc == QN_EFORMAT && msg && cap)
        snprintf(msg, cap, "the train run's %s is malformed", SPOOL_RESULT);
    json_decref(r);
    return rc;
}

int spool_fit_result_write(const char *dir, const struct fit_result *res, char *msg, size_t cap)
{
    json_t *r =
        json_pack("{so so sI sI sI sI sI}", "val_rmse", spool__real(res->val_rmse), "max_error",
                  spool__real(res->max_error), "n_train", (json_int_t)res->n_train, "n_val",
                  (json_int_t)res->n_val, "n_excluded", (json_int_t)res->n_excluded, "epochs_run",
                  (json_int_t)res->epochs_run, "best_epoch", (json_int_t)res->best_epoch);
    int rc = r ? spool_json_write(dir, SPOOL_RESULT, r, msg, cap) : QN_ENOMEM;
    json_decref(r);
    return rc;
}

int spool_fit_result_read(const char *dir, struct fit_result *res, char *msg, size_t cap)
{
    json_t *r = NULL;
    json_int_t nt = -1, nv = -1, ne = -1, er = -1, be = -1;
    memset(res, 0, sizeof *res);
    int rc = spool_json_read(dir, SPOOL_RESULT, &r, msg, cap);
    if (rc == 0 && (json_unpack(r, "{sI sI sI sI sI}", "n_train", &nt, "n_val", &nv, "n_excluded",
                                &ne, "epochs_run", &er, "best_epoch", &be) ||
                    nt < 0 || nv < 0 || ne < 0 || er < 0 || be < 0)) {
        if (msg && cap)
            snprintf(msg, cap, "the fit's %s is malformed", SPOOL_RESULT);
        rc = QN_EFORMAT;
    }
    if (rc == 0) {
        res->val_rmse = spool__num(r, "val_rmse");
        res->max_error = spool__num(r, "max_error");
        res->n_train = (size_t)nt, res->n_val = (size_t)nv, res->n_excluded = (size_t)ne;
        res->epochs_run = (size_t)er, res->best_epoch = (size_t)be;
    }
    json_decref(r);
    return rc;
}
