/*
 * test_spec_run.c: a resolved train spec made into engine objects with no
 * store (schema/spec_run.h), as qn-mpi's ranks and the daemon's jobs do.
 * The layers come from the inline devices and the surrogate blobs, and the
 * surrogate is the fitted one bit for bit; the network trained through
 * spec_run is, bit for bit, the one built, calibrated and trained with the
 * engine directly from the same parts; a checkpoint restores parameters,
 * optimizer state and step count, and one that does not fit is refused with
 * a reason; a run resumed after its last epoch scores instead of training.
 * A device that is not inline, a missing or broken blob are spec errors at
 * the layer's field.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"
#include "spec_run.h"

/* A crn_relu layer via a surrogate (id 7) and an identity readout of two outputs. */
static const char *resolved =
    "{\"dataset\": \"spirals\", \"network\": ["
    "{\"devices\": 4, \"device\": {\"kind\": \"crn_relu\", \"drive\": \"dot\"},"
    " \"via\": \"surrogate\", \"surrogate\": 7, \"surrogate_matched\": true},"
    "{\"devices\": 2, \"device\": {\"kind\": \"neuron\", \"params\": {\"activation\": "
    "\"identity\"}}}],"
    " \"loss\": \"cross_entropy\", \"epochs\": 2, \"batch\": 16, \"seed\": 3}";

struct fx {
    struct train_spec t;
    struct surrogate sur; /* fitted here: the "stored" surrogate */
    void *blob;
    size_t blob_len;
    struct data_set ds;
};

static void parse(const char *text, struct train_spec *t)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    struct spec_error err;
    assert_non_null(j);
    if (spec_train_parse(j, t, &err))
        fail_msg("%s: %s", err.path, err.msg);
    json_decref(j);
}

/* A surrogate of softplus-like data over u in [-4, 4]. */
static void fit_surrogate(struct surrogate *s)
{
    float in[64], out[64];
    for (size_t i = 0; i < 64; i++) {
        double u = -4.0 + 8.0 * (double)i / 63.0;
        in[i] = (float)u, out[i] = (float)log1p(exp(u));
    }
    struct fit_config c;
    fit_config_default(&c);
    c.n_hidden = 1, c.hidden[0] = 6, c.epochs = 3;
    struct fit_result r;
    assert_int_equal(surrogate_fit(in, out, NULL, 64, 1, &c, NULL, s, &r), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    parse(resolved, &f->t);
    fit_surrogate(&f->sur);
    assert_int_equal(surrogate_to_blob(&f->sur, &f->blob, &f->blob_len), 0);
    assert_int_equal(data_gen_spirals(&f->ds, 48, 2, 0.1, 5), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    spec_train_close(&f->t);
    surrogate_close(&f->sur);
    free(f->blob);
    data_close(&f->ds);
    free(f);
    return 0;
}

static void net_of(struct fx *f, struct spec_run_net *rn, struct net_layer_spec *ls)
{
    const void *blobs[2] = {f->blob, NULL};
    size_t lens[2] = {f->blob_len, 0};
    struct spec_error err;
    if (spec_run_net_init(rn, &f->t, blobs, lens, &err))
        fail_msg("%s: %s", err.path, err.msg);
    spec_run_net_layers(rn, &f->t, ls);
}

/* spec_run's network, trained two epochs, against the engine's own steps. */
static void test_same_as_engine(void **state)
{
    struct fx *f = *state;
    struct spec_run_net rn;
    struct net_layer_spec ls[NET_MAX_LAYERS];
    net_of(f, &rn, ls);
    assert_int_equal(rn.dev[0].kind, DEV_CRN_RELU);
    assert_int_equal(ls[0].via, VIA_SURROGATE);
    assert_null(ls[1].sur);
    assert_int_equal(rn.sur[0].mlp->n_params, f->sur.mlp->n_params);
    assert_memory_equal(rn.sur[0].mlp->params, f->sur.mlp->params,
                        f->sur.mlp->n_params * sizeof(float));

    struct net *a = NULL, *b = NULL;
    struct optim oa, ob;
    const char *what;
    char reason[128] = "";
    struct train_result ra, rb;
    struct spec_run_start fresh = {0};
    struct train_position from = {0, 0, 0, 0};
    assert_int_equal(spec_run_build(&f->t, ls, 2, 1, NULL, &a, &oa, &what), 0);
    assert_int_equal(spec_run_start(&f->t, a, &oa, &fresh, &f->ds, reason, sizeof reason), 0);
    assert_int_equal(spec_run_train(&f->t, a, &oa, &f->ds, &f->ds, NULL, &from, &ra), 0);

    assert_int_equal(net_create(&b, 2, ls, 2, 16, 1, 3, NULL), 0);
    assert_int_equal(optim_init(&ob, &f->t.optim, b->n_params), 0);
    assert_int_equal(net_calibrate(b, f->ds.x, 16), 0);
    assert_int_equal(train_run(b, &ob, &f->ds, &f->ds, &f->t.train, NULL, 0, &rb), 0);

    assert_int_equal(ra.epochs_done, 2);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_true(ra.test_loss == rb.test_loss);

    /* Resumed after the last epoch: nothing to train, the scores of the network as it is. */
    struct train_position done = {2, 0, 0, 0};
    double loss, acc;
    assert_int_equal(spec_run_train(&f->t, a, &oa, &f->ds, &f->ds, NULL, &done, &ra), 0);
    assert_int_equal(ra.epochs_done, 2);
    assert_int_equal(train_evaluate(a, &f->ds, LOSS_CROSS_ENTROPY, &loss, &acc), 0);
    assert_true(ra.test_loss == loss && ra.train_accuracy == acc);

    /* A checkpoint: parameters, state and step count; one of another size is refused. */
    struct spec_run_start cp = {b->params, b->n_params, ob.state, optim_state_len(&ob), ob.t};
    memset(a->params, 0, a->n_params * sizeof(float));
    oa.t = 0;
    assert_int_equal(spec_run_start(&f->t, a, &oa, &cp, &f->ds, reason, sizeof reason), 0);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float));
    assert_memory_equal(oa.state, ob.state, optim_state_len(&ob) * sizeof(float));
    assert_true(oa.t == ob.t && oa.t > 0);
    cp.n_params--;
    assert_int_equal(spec_run_start(&f->t, a, &oa, &cp, &f->ds, reason, sizeof reason),
                     QN_EFORMAT);
    assert_non_null(strstr(reason, "checkpoint does not fit"));

    net_destroy(a), net_destroy(b);
    optim_close(&oa), optim_close(&ob);
    spec_run_net_close(&rn);
}

/* Each refusal of spec_run_net_init names the layer's field. */
static void test_refused(void **state)
{
    struct fx *f = *state;
    struct spec_run_net rn;
    struct spec_error err;
    const void *none[2] = {NULL, NULL}, *broken[2] = {f->blob, NULL};
    size_t lens[2] = {0, 0}, short_len[2] = {f->blob_len / 2, 0};
    assert_int_equal(spec_run_net_init(&rn, &f->t, none, lens, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/network/0/surrogate");
    spec_run_net_close(&rn);
    assert_int_not_equal(spec_run_net_init(&rn, &f->t, broken, short_len, &err), 0);
    assert_string_equal(err.path, "/spec/network/0/surrogate");
    spec_run_net_close(&rn);

    struct train_spec t;
    parse("{\"dataset\": \"spirals\", \"network\": [{\"devices\": 2, \"device\": \"crn\"}]}", &t);
    assert_int_equal(spec_run_net_init(&rn, &t, none, lens, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/network/0/device");
    spec_run_net_close(&rn);
    spec_train_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_as_engine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
