/*
 * test_spec_run.c: a resolved train spec made into engine objects with no
 * store (schema/spec_run.h), as qn-mpi's ranks and the daemon's jobs do.
 * The network trained through spec_run is, bit for bit, the one built,
 * calibrated and trained with the engine directly from the same parts; a
 * checkpoint restores parameters, optimizer state and step count, and one
 * that does not fit is refused with a reason; a run resumed after its last
 * epoch scores instead of training. adapt and es on several ranks are spec
 * errors at their fields; on one rank they are fine.
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
    assert_int_equal(data_gen_spirals(&f->ds, 48, 2, 0.1, 5), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    spec_train_close(&f->t);
    surrogate_close(&f->sur);
    data_close(&f->ds);
    free(f);
    return 0;
}

/* The layers of the spec: its inline devices (dev, prepared) and the fitted surrogate. */
static void layers_of(struct fx *f, struct dev_model *dev, struct net_layer_spec *ls)
{
    struct spec_error err;
    for (size_t l = 0; l < f->t.n_layers; l++) {
        if (spec_device_parse(f->t.layers[l].device.inline_obj, "/device", &dev[l], &err))
            fail_msg("%s: %s", err.path, err.msg);
        ls[l] = (struct net_layer_spec){f->t.layers[l].devices,  &dev[l], f->t.layers[l].via,
                                        l == 0 ? &f->sur : NULL, 0,       f->t.layers[l].connect};
    }
}

/* spec_run's network, trained two epochs, against the engine's own steps. */
static void test_same_as_engine(void **state)
{
    struct fx *f = *state;
    struct dev_model dev[2];
    struct net_layer_spec ls[NET_MAX_LAYERS];
    layers_of(f, dev, ls);
    assert_int_equal(dev[0].kind, DEV_CRN_RELU);
    assert_int_equal(ls[0].via, VIA_SURROGATE);

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
    assert_int_equal(spec_run_start(&f->t, a, &oa, &cp, &f->ds, reason, sizeof reason), QN_EFORMAT);
    assert_non_null(strstr(reason, "checkpoint does not fit"));

    net_destroy(a), net_destroy(b);
    optim_close(&oa), optim_close(&ob);
    dev_model_close(&dev[0]), dev_model_close(&dev[1]);
}

/* adapt and es: refused on several ranks at their fields, fine on one. */
static void test_ranks(void **state)
{
    (void)state;
    struct train_spec t;
    struct spec_error err;
    parse("{\"dataset\": \"xor\", \"network\": [{\"devices\": 4, \"device\": "
          "{\"kind\": \"neuron\"}}, {\"devices\": 2, \"device\": {\"kind\": "
          "\"neuron\"}}], \"adapt\": {}}",
          &t);
    assert_int_equal(spec_run_train_ranks(&t, 1, &err), 0);
    assert_int_equal(spec_run_train_ranks(&t, 2, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/adapt");
    spec_train_close(&t);
    parse("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": "
          "{\"kind\": \"neuron\"}}], \"optimizer\": {\"name\": \"es\"}}",
          &t);
    assert_int_equal(spec_run_train_ranks(&t, 3, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/optimizer/name");
    spec_train_close(&t);
    parse("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": "
          "{\"kind\": \"neuron\"}}]}",
          &t);
    assert_int_equal(spec_run_train_ranks(&t, 4096, &err), 0);
    spec_train_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_as_engine, setup, teardown),
        cmocka_unit_test(test_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
