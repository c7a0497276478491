/*
 * test_model.c: a stored model rebuilt by job_model.c, the path both POST
 * /v1/models/{id}/predict and the evaluate job take.
 *
 * The model is made by hand so its outputs are known: one identity neuron,
 * out = w * (x - mean) / std + b, with a scaler (mean 2, std 4) far from the
 * identity, so that inputs standardised twice or not at all give other
 * numbers. Covers: the outputs of job_model_forward are exactly that (the
 * scaler applied once); an evaluate job run on a stored dataset of the same
 * rows reports the loss those very outputs give, and the loss the formula
 * gives (so predict and evaluate compute alike, and evaluate scales once);
 * a model whose spec, scaler or parameter count does not fit is QN_EMODEL
 * and a missing one QN_ENOTFOUND.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import.h"
#include "job.h"
#include "job_model.h"
#include "nn.h"
#include "qn_err.h"
#include "qn_test.h"
#include "store.h"

#define MEAN 2.0f
#define STD 4.0f
#define W 1.5f
#define B 0.25f
#define N_ROWS 10

#define MODEL_SPEC                                                                                 \
    "{\"dataset\": \"sine\", \"network\": [{\"devices\": 1, \"device\": {\"kind\": "               \
    "\"neuron\", \"params\": {\"activation\": \"identity\"}}, \"via\": \"exact\"}], "              \
    "\"loss\": \"mse\", \"seed\": 1}"

struct fx {
    char dir[512];
    struct store *s;
    int64_t model;   /* the hand-made model */
    float x[N_ROWS]; /* raw inputs of the stored dataset "lin" */
    float y[N_ROWS]; /* its targets */
};

/* Stores a model of MODEL_SPEC (spec may differ) with the given parameters and scaler. */
static int64_t put_model(struct store *s, const char *name, const char *spec, const float *params,
                         size_t n_params, const float *scaler, size_t n_scaler)
{
    struct store_model m;
    memset(&m, 0, sizeof m);
    m.has_name = 1;
    snprintf(m.name, sizeof m.name, "%s", name);
    m.spec = (char *)spec;
    m.n_in = 1;
    m.n_out = 1;
    snprintf(m.loss, sizeof m.loss, "mse");
    m.params = (float *)params;
    m.n_params = n_params;
    m.scaler = (float *)scaler;
    m.n_scaler = n_scaler;
    int64_t id = 0;
    assert_int_equal(store_model_insert(s, &m, &id), 0);
    return id;
}

static struct spec_ref ref_id(int64_t id)
{
    struct spec_ref r;
    memset(&r, 0, sizeof r);
    r.kind = REF_ID;
    r.id = id;
    return r;
}

/* The parameters that make the network's one neuron out = W * x + B: a probe
 * model gives the layout (where A, b and the input scale s live). */
static void lin_params(struct store *s, float *p, size_t *n)
{
    static const float zero[8] = {0}, scaler[2] = {MEAN, STD};
    int64_t probe = put_model(s, "probe", MODEL_SPEC, zero, 3, scaler, 2);
    struct spec_ref r = ref_id(probe);
    struct job_model m;
    struct spec_error e = {{0}, {0}};
    assert_int_equal(job_model_open(s, &r, &m, &e), 0);
    struct net *net = NULL;
    int rc = job_model_net(&m, 1, 1, NULL, &net, &e);
    if (rc)
        fail_msg("the probe model does not build (%s): %s", qn_err_name(rc), e.msg);
    const struct net_layer *L = &net->layer[0];
    *n = net->n_params;
    memset(p, 0, *n * sizeof *p);
    p[L->off_w] = W;
    p[L->off_b] = B;
    p[L->off_s] = 1.0f;
    net_destroy(net);
    job_model_close(&m);
}

/* The dataset "lin": x from -6 to 12, y = x / 3 (not the model's outputs, so the loss is not 0). */
static void put_dataset(struct fx *f)
{
    char csv[1024] = "x,y\n", path[600];
    for (int i = 0; i < N_ROWS; i++) {
        f->x[i] = -6.0f + 2.0f * (float)i;
        f->y[i] = f->x[i] / 3.0f;
        size_t len = strlen(csv);
        snprintf(csv + len, sizeof csv - len, "%.9g,%.9g\n", (double)f->x[i], (double)f->y[i]);
    }
    assert_int_equal(qt_write_file(f->dir, "lin.csv", csv), 0);
    snprintf(path, sizeof path, "%s/lin.csv", f->dir);
    char msg[256] = "";
    int64_t id = 0;
    if (import_file(f->s, path, NULL, "lin", NULL, &id, msg, sizeof msg) != 0)
        fail_msg("import: %s", msg);
}

static int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    char db[600], msg[STORE_MSG_MAX];
    if (!f || qt_tmpdir(f->dir, sizeof f->dir) != 0)
        return -1;
    snprintf(db, sizeof db, "%s/m.db", f->dir);
    if (store_open(db, &f->s, msg, sizeof msg) != 0)
        return -1;
    *state = f;
    float p[8];
    size_t n = 0;
    static const float scaler[2] = {MEAN, STD};
    lin_params(f->s, p, &n);
    f->model = put_model(f->s, "lin", MODEL_SPEC, p, n, scaler, 2);
    put_dataset(f);
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    qt_rmtree(f->dir);
    free(f);
    return 0;
}

/* What the model answers for raw x: standardised once, then W x + B. */
static double lin_out(float x)
{
    return (double)(W * ((x - MEAN) / STD) + B);
}

/* The predict path: open, build, forward raw rows; outputs into out (n). */
static void predict(struct fx *f, const float *x, size_t n, float *out)
{
    struct spec_ref r = ref_id(f->model);
    struct job_model m;
    struct spec_error e = {{0}, {0}};
    int rc = job_model_open(f->s, &r, &m, &e);
    if (rc)
        fail_msg("job_model_open: %s: %s", qn_err_name(rc), e.msg);
    struct net *net = NULL;
    assert_int_equal(job_model_net(&m, n, 1, NULL, &net, &e), 0);
    float *rows = malloc(n * sizeof *rows);
    assert_non_null(rows);
    memcpy(rows, x, n * sizeof *rows);
    assert_int_equal(job_model_forward(&m, net, rows, n), 0);
    memcpy(out, net_output(net), n * sizeof *out);
    free(rows);
    net_destroy(net);
    job_model_close(&m);
}

/* Runs an evaluate job in-process; its result's loss. */
static double evaluate(struct fx *f, const char *spec)
{
    char text[512];
    snprintf(text, sizeof text, "{\"type\": \"evaluate\", \"spec\": %s}", spec);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    struct job_spec js;
    struct spec_error e = {{0}, {0}};
    assert_int_equal(job_spec_parse(root, &js, &e), 0);
    int64_t id = 0;
    int rc = job_run_local(f->s, &js, NULL, 1, NULL, NULL, NULL, &id, &e);
    json_decref(js.spec);
    json_decref(root);
    if (rc)
        fail_msg("evaluate refused (%s): %s: %s", qn_err_name(rc), e.path, e.msg);
    struct store_job j;
    assert_int_equal(store_job_get(f->s, id, &j), 0);
    if (j.state != JOB_SUCCEEDED)
        fail_msg("evaluate %s: %s", store_job_state_name(j.state), j.error ? j.error : "");
    json_t *res = json_loads(j.result, 0, NULL);
    double loss = json_real_value(json_object_get(res, "loss"));
    json_decref(res);
    store_job_free(&j);
    return loss;
}

/* Predict's outputs are the formula's: inputs standardised exactly once. */
static void test_predict_scales_once(void **state)
{
    struct fx *f = *state;
    float out[N_ROWS];
    predict(f, f->x, N_ROWS, out);
    for (int i = 0; i < N_ROWS; i++) {
        double want = lin_out(f->x[i]);
        if (fabs((double)out[i] - want) > 1e-6)
            fail_msg("x = %g: out %.9g, wanted %.9g (twice scaled: %.9g, unscaled: %.9g)",
                     (double)f->x[i], (double)out[i], want,
                     (double)(W * (((f->x[i] - MEAN) / STD - MEAN) / STD) + B),
                     (double)(W * f->x[i] + B));
    }
}

/* The evaluate job's loss on the same rows is the loss of predict's outputs,
 * and the loss the formula gives. */
static void test_evaluate_agrees_with_predict(void **state)
{
    struct fx *f = *state;
    char spec[256];
    snprintf(spec, sizeof spec,
             "{\"model\": %" PRId64 ", \"dataset\": {\"name\": \"lin\", \"target\": \"y\"}, "
             "\"split\": \"all\"}",
             f->model);
    double loss = evaluate(f, spec);
    float out[N_ROWS];
    predict(f, f->x, N_ROWS, out);
    double from_predict = nn_mse_loss(NULL, out, f->y, N_ROWS, 1);
    double formula = 0;
    for (int i = 0; i < N_ROWS; i++)
        formula += (lin_out(f->x[i]) - f->y[i]) * (lin_out(f->x[i]) - f->y[i]) / N_ROWS;
    assert_true(from_predict > 0.1); /* not a vacuous comparison */
    if (fabs(loss - from_predict) > 1e-9 * from_predict || fabs(loss - formula) > 1e-5 * formula)
        fail_msg("evaluate's loss %.12g; predict's outputs give %.12g, the formula %.12g", loss,
                 from_predict, formula);
}

/* Models that cannot be rebuilt are QN_EMODEL with a reason; a missing one QN_ENOTFOUND. */
static void test_unusable_models(void **state)
{
    struct fx *f = *state;
    static const float p[8] = {0}, scaler[2] = {MEAN, STD}, bad_scaler[3] = {MEAN, STD, 1};
    struct {
        int64_t id;
        int at_open; /* refused by job_model_open, else by job_model_net */
    } bad[] = {
        {put_model(f->s, "bad-spec", "{\"dataset\": \"sine\"}", p, 3, scaler, 2), 1},
        {put_model(f->s, "bad-scaler", MODEL_SPEC, p, 3, bad_scaler, 3), 1},
        {put_model(f->s, "bad-params", MODEL_SPEC, p, 2, scaler, 2), 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct spec_ref r = ref_id(bad[i].id);
        struct job_model m;
        struct spec_error e = {{0}, {0}};
        int rc = job_model_open(f->s, &r, &m, &e);
        struct net *net = NULL;
        if (!bad[i].at_open) {
            assert_int_equal(rc, 0);
            rc = job_model_net(&m, 4, 1, NULL, &net, &e);
            assert_null(net);
        }
        assert_int_equal(rc, QN_EMODEL);
        assert_non_null(strstr(e.msg, "model"));
        job_model_close(&m);
    }
    struct spec_ref r = ref_id(424242);
    struct job_model m;
    struct spec_error e = {{0}, {0}};
    assert_int_equal(job_model_open(f->s, &r, &m, &e), QN_ENOTFOUND);
    job_model_close(&m);
    memset(&r, 0, sizeof r);
    r.kind = REF_NAME;
    snprintf(r.name, sizeof r.name, "lin");
    assert_int_equal(job_model_open(f->s, &r, &m, &e), 0);
    assert_int_equal(m.row.id, f->model);
    job_model_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_scales_once),
        cmocka_unit_test(test_evaluate_agrees_with_predict),
        cmocka_unit_test(test_unusable_models),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
