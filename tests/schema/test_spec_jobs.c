/*
 * test_spec_jobs.c: the fit, train and evaluate spec parsers and dataset
 * references (schema/spec_fit.c, spec_train.c, spec_evaluate.c,
 * spec_dataset.c). Every fit-/train-/evaluate-*.json in schema/examples
 * parses to what it says; a minimal spec gets the documented defaults, and
 * the "default"s of the JSON Schema documents agree with them; each kind of
 * bad input is refused at its exact JSON Pointer path; every field replaced
 * by every JSON type is either accepted or refused under /spec (ASan checks
 * that nothing leaks on either path).
 *
 * Files are found relative to the source tree: $QN_SRC_DIR, else the
 * current directory (make runs tests from the repository root).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_err.h"
#include "spec.h"
#include "spec_test_util.h"

/* ---- helpers ---- */

enum kind { K_FIT, K_TRAIN, K_EVAL, K_DATASET };

/* Parses spec as `kind` (a dataset at "/spec/dataset"); closes on success.
 * Returns the parser's code and fills *err. */
static int parse_any(enum kind kind, const json_t *spec, struct spec_error *err)
{
    int rc;
    switch (kind) {
    case K_FIT: {
        struct fit_spec f;
        if (!(rc = spec_fit_parse(spec, &f, err)))
            spec_fit_close(&f);
        return rc;
    }
    case K_TRAIN: {
        struct train_spec *t = malloc(sizeof *t);
        assert_non_null(t);
        if (!(rc = spec_train_parse(spec, t, err)))
            spec_train_close(t);
        free(t);
        return rc;
    }
    case K_EVAL: {
        struct evaluate_spec e;
        if (!(rc = spec_evaluate_parse(spec, &e, err)))
            spec_evaluate_close(&e);
        return rc;
    }
    default: {
        struct dataset_spec d;
        if (!(rc = spec_dataset_parse(spec, "/spec/dataset", &d, err)))
            spec_dataset_close(&d);
        return rc;
    }
    }
}

static const char *kind_name(enum kind k)
{
    const char *n[] = {"fit", "train", "evaluate", "dataset"};
    return n[k];
}

/* A spec that must be refused (QN_ESPEC, or QN_EPARSE from an inline device) at `path`, the
 * message containing `msg`. */
static void expect_bad(enum kind kind, const char *text, const char *path, const char *msg)
{
    json_t *j = load(text);
    struct spec_error err = {{0}, {0}};
    int rc = parse_any(kind, j, &err);
    json_decref(j);
    if (rc != QN_ESPEC && rc != QN_EPARSE) /* QN_EPARSE: an inline device's expression */
        fail_msg("%s spec gave rc %d, expected an error at %s:\n%s", kind_name(kind), rc,
                 path, text);
    if (strcmp(err.path, path) != 0)
        fail_msg("%s spec refused at '%s' (%s), expected '%s':\n%s", kind_name(kind), err.path,
                 err.msg, path, text);
    if (msg && !strstr(err.msg, msg))
        fail_msg("%s: message '%s' lacks '%s'", path, err.msg, msg);
    if (!err.msg[0])
        fail_msg("%s: empty message", path);
    if (getenv("QN_VERBOSE"))
        printf("%-9s %s: %s\n", kind_name(kind), err.path, err.msg);
}

/* ---- examples ---- */

static void example_fit(const char *name, const json_t *spec)
{
    struct fit_spec f;
    struct spec_error err;
    if (spec_fit_parse(spec, &f, &err))
        fail_msg("%s: %s: %s", name, err.path, err.msg);
    if (strcmp(name, "fit-crn.json") == 0) {
        assert_int_equal(f.dataset.ref.kind, REF_JOB);
        assert_int_equal(f.dataset.ref.id, 1);
        assert_int_equal(f.cfg.n_hidden, 2);
        assert_int_equal(f.cfg.hidden[0], 32);
        assert_int_equal(f.cfg.hidden[1], 32);
        assert_int_equal(f.cfg.act, ACT_TANH);
        assert_int_equal(f.cfg.epochs, 300);
        assert_int_equal(f.cfg.batch, 32);
        assert_double_equal(f.cfg.lr, 0.003, 1e-9);
        assert_double_equal(f.cfg.validation, 0.1, 0);
        assert_int_equal(f.cfg.patience, 50);
        assert_int_equal(f.cfg.seed, 1);
    }
    spec_fit_close(&f);
}

static void check_fashion_crn(const struct train_spec *t)
{
    assert_int_equal(t->dataset.ref.kind, REF_NAME);
    assert_string_equal(t->dataset.ref.name, "fashion-mnist");
    assert_int_equal(t->n_layers, 2);
    assert_int_equal(t->layers[0].devices, 128);
    assert_int_equal(t->layers[0].device.kind, REF_NAME);
    assert_string_equal(t->layers[0].device.name, "crn");
    assert_int_equal(t->layers[0].via, VIA_SURROGATE);
    assert_true(t->layers[0].has_surrogate);
    assert_int_equal(t->layers[0].surrogate.kind, REF_JOB);
    assert_int_equal(t->layers[0].surrogate.id, 2);
    assert_int_equal(t->layers[1].devices, 10);
    assert_int_equal(t->layers[1].device.kind, REF_INLINE);
    assert_non_null(t->layers[1].device.inline_obj);
    assert_int_equal(t->layers[1].via, VIA_EXACT);
    assert_false(t->layers[1].has_surrogate);
    assert_int_equal(t->train.loss, LOSS_CROSS_ENTROPY);
    assert_int_equal(t->optim.kind, OPTIM_ADAM);
    assert_double_equal(t->optim.lr, 0.001, 0);
    assert_int_equal(t->train.epochs, 5);
    assert_int_equal(t->train.batch, 128);
    assert_int_equal(t->train.seed, 1);
    assert_int_equal(t->train.checkpoint_every, 1);
    assert_true(t->calibrate);
}

static void example_train(const char *name, const json_t *spec)
{
    struct train_spec *t = malloc(sizeof *t);
    assert_non_null(t);
    struct spec_error err;
    if (spec_train_parse(spec, t, &err))
        fail_msg("%s: %s: %s", name, err.path, err.msg);
    if (strcmp(name, "train-fashion-crn.json") == 0)
        check_fashion_crn(t);
    if (strcmp(name, "train-xor.json") == 0) {
        assert_string_equal(t->dataset.ref.name, "xor");
        assert_int_equal(t->dataset.samples, 0); /* the four exact corners */
        assert_false(t->calibrate);
        assert_int_equal(t->train.checkpoint_every, 0);
    }
    if (strcmp(name, "train-xor-classic.json") == 0) {
        assert_int_equal(t->train.loss, LOSS_MSE); /* on the label: one output */
        assert_int_equal(t->layers[1].devices, 1);
        assert_int_equal(t->layers[0].init, NET_INIT_NORMAL);
        assert_int_equal(t->layers[1].init, NET_INIT_NORMAL);
        assert_false(t->calibrate); /* an explicit init turns calibration's default off */
        assert_int_equal(t->optim.kind, OPTIM_SGD);
        assert_double_equal(t->optim.momentum, 0.9, 0);
    }
    if (strcmp(name, "train-lotka-volterra.json") == 0) {
        assert_string_equal(t->dataset.ref.name, "lotka_volterra");
        assert_int_equal(t->dataset.samples, 2000);
        assert_true(t->calibrate);
    }
    if (strcmp(name, "train-sine.json") == 0) {
        assert_int_equal(t->dataset.samples, 2000);
        assert_int_equal(t->train.loss, LOSS_MSE);
        assert_int_equal(t->layers[0].devices, 16);
    }
    spec_train_close(t);
    free(t);
}

static void example_evaluate(const char *name, const json_t *spec)
{
    struct evaluate_spec e;
    struct spec_error err;
    if (spec_evaluate_parse(spec, &e, &err))
        fail_msg("%s: %s: %s", name, err.path, err.msg);
    if (strcmp(name, "evaluate-crn-device.json") == 0) {
        assert_int_equal(e.model.kind, REF_JOB);
        assert_int_equal(e.model.id, 3);
        assert_string_equal(e.dataset.ref.name, "fashion-mnist");
        assert_int_equal(e.split, SPLIT_TEST);
        assert_int_equal(e.n_via, 1);
        assert_int_equal(e.via_layer[0], 0);
        assert_int_equal(e.via[0], VIA_DEVICE);
        assert_false(e.has_seed);
        for (int i = 0; i < NET_MAX_LAYERS; i++)
            assert_false(e.has_surrogate[i]);
    }
    spec_evaluate_close(&e);
}

/* One file of schema/examples: a fit/train/evaluate job is parsed and checked
 * (example_fit, example_train, example_evaluate) and counted in ctx (int[3]). */
static void example_file(const char *name, json_t *root, void *ctx)
{
    int *n = ctx;
    const char *prefix[3] = {"fit", "train", "evaluate"};
    struct job_spec js;
    struct spec_error err;
    const json_t *type = json_object_get(root, "type");
    for (int k = 0; k < 3 && type; k++) {
        if (strcmp(json_string_value(type), prefix[k]) != 0)
            continue;
        if (strncmp(name, prefix[k], strlen(prefix[k])) != 0)
            fail_msg("%s: a %s job should be named %s-*.json", name, prefix[k], prefix[k]);
        if (job_parse(root, &js, &err))
            fail_msg("%s: %s: %s", name, err.path, err.msg);
        if (k == 0)
            example_fit(name, js.spec);
        else if (k == 1)
            example_train(name, js.spec);
        else
            example_evaluate(name, js.spec);
        json_decref(js.spec);
        n[k]++;
    }
}

static void test_example_files(void **state)
{
    (void)state;
    int n[3] = {0, 0, 0};
    for_each_example(example_file, n);
    assert_true(n[0] >= 1);
    assert_true(n[1] >= 3);
    assert_true(n[2] >= 1);
}

/* ---- defaults ---- */

static void assert_optim_equal(const struct optim_config *a, const struct optim_config *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_double_equal(a->lr, b->lr, 0);
    assert_double_equal(a->momentum, b->momentum, 0);
    assert_double_equal(a->beta1, b->beta1, 0);
    assert_double_equal(a->beta2, b->beta2, 0);
    assert_double_equal(a->eps, b->eps, 0);
    assert_double_equal(a->weight_decay, b->weight_decay, 0);
    assert_int_equal(a->decoupled, b->decoupled);
}

static void test_fit_defaults(void **state)
{
    (void)state;
    json_t *j = load("{\"dataset\": {\"job\": 7}}");
    struct fit_spec f;
    struct spec_error err;
    assert_int_equal(spec_fit_parse(j, &f, &err), 0);
    struct fit_config want;
    fit_config_default(&want);
    assert_int_equal(f.cfg.n_hidden, want.n_hidden);
    for (size_t i = 0; i < want.n_hidden; i++)
        assert_int_equal(f.cfg.hidden[i], want.hidden[i]);
    assert_int_equal(f.cfg.act, want.act);
    assert_int_equal(f.cfg.epochs, want.epochs);
    assert_int_equal(f.cfg.batch, want.batch);
    assert_true(f.cfg.lr == want.lr);
    assert_true(f.cfg.validation == want.validation);
    assert_int_equal(f.cfg.patience, want.patience);
    assert_int_equal(f.cfg.seed, want.seed);
    assert_int_equal(f.dataset.ref.kind, REF_JOB);
    assert_int_equal(f.dataset.ref.id, 7);
    assert_double_equal(f.dataset.test_fraction, 0.2, 0);
    assert_int_equal(f.dataset.n_inputs, 0);
    assert_string_equal(f.dataset.target, "");
    assert_string_equal(f.dataset.label, "");
    spec_fit_close(&f);
    json_decref(j);
}

static void test_train_defaults(void **state)
{
    (void)state;
    json_t *j = load("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 5}]}");
    struct train_spec *t = malloc(sizeof *t);
    assert_non_null(t);
    struct spec_error err;
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    struct optim_config adam;
    optim_config_default(&adam, OPTIM_ADAM);
    assert_optim_equal(&t->optim, &adam);
    assert_int_equal(t->train.loss, LOSS_CROSS_ENTROPY);
    assert_int_equal(t->train.epochs, 5);
    assert_int_equal(t->train.batch, 128);
    assert_int_equal(t->train.seed, 1);
    assert_int_equal(t->train.checkpoint_every, 1);
    assert_true(t->calibrate);
    assert_int_equal(t->n_layers, 1);
    assert_int_equal(t->layers[0].via, VIA_EXACT);
    assert_int_equal(t->layers[0].device.kind, REF_ID);
    assert_int_equal(t->layers[0].device.id, 5);
    assert_false(t->layers[0].has_surrogate);
    spec_train_close(t);
    json_decref(j);

    /* A surrogate without "via" means via surrogate; "sgd" gets SGD's defaults. */
    j = load("{\"dataset\": 1, \"optimizer\": {\"name\": \"sgd\", \"momentum\": 0.9},"
             " \"network\": [{\"devices\": 3, \"device\": \"crn\", \"surrogate\": 4}]}");
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    assert_int_equal(t->layers[0].via, VIA_SURROGATE);
    assert_int_equal(t->layers[0].surrogate.kind, REF_ID);
    assert_int_equal(t->layers[0].surrogate.id, 4);
    struct optim_config sgd;
    optim_config_default(&sgd, OPTIM_SGD);
    sgd.momentum = 0.9;
    assert_optim_equal(&t->optim, &sgd);
    spec_train_close(t);
    json_decref(j);

    j = load("{\"dataset\": 1, \"optimizer\": \"sgd\", \"network\": [{\"devices\": 1, "
             "\"device\": \"n\"}]}");
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    sgd.momentum = 0;
    assert_optim_equal(&t->optim, &sgd);
    spec_train_close(t);
    json_decref(j);
    free(t);
}

static void test_evaluate_defaults(void **state)
{
    (void)state;
    json_t *j = load("{\"model\": {\"job\": 3}, \"dataset\": {\"id\": 9, \"label\": \"y\"},"
                     " \"via\": {\"2\": \"physics_aware\", \"0\": \"device\", \"15\": \"exact\"},"
                     " \"surrogates\": {\"2\": {\"job\": 5}}, \"seed\": 0}");
    struct evaluate_spec e;
    struct spec_error err;
    assert_int_equal(spec_evaluate_parse(j, &e, &err), 0);
    assert_int_equal(e.split, SPLIT_TEST);
    assert_int_equal(e.dataset.ref.kind, REF_ID);
    assert_int_equal(e.dataset.ref.id, 9);
    assert_string_equal(e.dataset.label, "y");
    assert_int_equal(e.n_via, 3); /* in the spec's order */
    assert_int_equal(e.via_layer[0], 2);
    assert_int_equal(e.via[0], VIA_PHYSICS_AWARE);
    assert_int_equal(e.via_layer[1], 0);
    assert_int_equal(e.via[1], VIA_DEVICE);
    assert_int_equal(e.via_layer[2], 15);
    assert_int_equal(e.via[2], VIA_EXACT);
    assert_true(e.has_surrogate[2]);
    assert_int_equal(e.surrogate[2].kind, REF_JOB);
    assert_int_equal(e.surrogate[2].id, 5);
    assert_false(e.has_surrogate[0]);
    assert_true(e.has_seed);
    assert_int_equal(e.seed, 0);
    assert_string_equal(spec_split_name(e.split), "test");
    spec_evaluate_close(&e);
    json_decref(j);

    j = load("{\"model\": \"m\", \"dataset\": \"sine\", \"split\": \"all\"}");
    assert_int_equal(spec_evaluate_parse(j, &e, &err), 0);
    assert_int_equal(e.split, SPLIT_ALL);
    assert_int_equal(e.n_via, 0);
    assert_false(e.has_seed);
    assert_false(e.has_chip);
    assert_int_equal(e.chips, 0);
    assert_false(e.noise); /* nominal, as before chips */
    spec_evaluate_close(&e);
    json_decref(j);

    j = load("{\"model\": \"m\", \"dataset\": \"sine\", \"chips\": {\"count\": 20, \"seed\": 1}}");
    assert_int_equal(spec_evaluate_parse(j, &e, &err), 0);
    assert_int_equal(e.chips, 20);
    assert_int_equal(e.chips_seed, 1);
    assert_true(e.noise); /* on with chips */
    spec_evaluate_close(&e);
    json_decref(j);
    j = load("{\"model\": \"m\", \"dataset\": \"sine\", \"chip\": 7, \"noise\": false}");
    assert_int_equal(spec_evaluate_parse(j, &e, &err), 0);
    assert_true(e.has_chip);
    assert_int_equal(e.chip, 7);
    assert_false(e.noise);
    spec_evaluate_close(&e);
    json_decref(j);
}

/* Parses a dataset reference; fails the test on error. */
static void dataset_ok(const char *text, struct dataset_spec *d)
{
    json_t *j = load(text);
    struct spec_error err = {{0}, {0}};
    if (spec_dataset_parse(j, "/spec/dataset", d, &err))
        fail_msg("dataset refused: %s: %s\n%s", err.path, err.msg, text);
    json_decref(j);
}

static void test_dataset_forms(void **state)
{
    (void)state;
    struct dataset_spec d;
    dataset_ok("\"xor\"", &d);
    assert_int_equal(d.ref.kind, REF_NAME);
    assert_int_equal(d.samples, 0);
    assert_double_equal(d.noise, 0, 0);
    spec_dataset_close(&d);

    /* every logic gate is a generator of the four exact corners by default */
    const char *gates[] = {"\"and\"", "\"or\"", "\"nand\"", "\"nor\"", "\"xnor\""};
    for (size_t i = 0; i < 5; i++) {
        dataset_ok(gates[i], &d);
        assert_int_equal(d.samples, 0);
        spec_dataset_close(&d);
    }
    dataset_ok("{\"name\": \"nand\", \"samples\": 40, \"noise\": 0.2}", &d);
    assert_int_equal(d.samples, 40);
    assert_double_equal(d.noise, 0.2, 0);
    spec_dataset_close(&d);
    dataset_ok("{\"name\": \"lotka_volterra\", \"samples\": 300}", &d);
    assert_int_equal(d.samples, 300);
    spec_dataset_close(&d);
    dataset_ok("\"lotka_volterra\"", &d);
    assert_int_equal(d.samples, 1000);
    spec_dataset_close(&d);
    /* the list in messages names every built-in, in order */
    char list[256] = "";
    for (size_t i = 0; spec_dataset_builtin(i); i++) {
        assert_true(spec_dataset_is_builtin(spec_dataset_builtin(i)));
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 spec_dataset_builtin(i));
    }
    assert_string_equal(list, spec_dataset_builtin_list());

    dataset_ok("\"spirals\"", &d);
    assert_int_equal(d.samples, 1000);
    assert_double_equal(d.noise, 0.1, 0);
    assert_int_equal(d.arms, 2);
    spec_dataset_close(&d);

    dataset_ok("{\"name\": \"spirals\", \"samples\": 600, \"noise\": 0.3, \"arms\": 3,"
               " \"limit\": 100, \"test_limit\": 50, \"test_fraction\": 0.5}", &d);
    assert_int_equal(d.ref.kind, REF_NAME);
    assert_string_equal(d.ref.name, "spirals");
    assert_non_null(d.ref.inline_obj);
    assert_int_equal(d.samples, 600);
    assert_double_equal(d.noise, 0.3, 0);
    assert_int_equal(d.arms, 3);
    assert_int_equal(d.limit, 100);
    assert_int_equal(d.test_limit, 50);
    assert_double_equal(d.test_fraction, 0.5, 0);
    spec_dataset_close(&d);

    dataset_ok("{\"name\": \"fashion-mnist\", \"limit\": 1000, \"test_fraction\": 0.3}", &d);
    assert_int_equal(d.limit, 1000);
    assert_int_equal(d.samples, 0);
    spec_dataset_close(&d);

    dataset_ok("{\"id\": 7, \"inputs\": [\"x1\", \"x2\"], \"label\": \"y\", \"test_fraction\": 0.25}",
               &d);
    assert_int_equal(d.ref.kind, REF_ID);
    assert_int_equal(d.ref.id, 7);
    assert_int_equal(d.n_inputs, 2);
    assert_string_equal(d.inputs[0], "x1");
    assert_string_equal(d.inputs[1], "x2");
    assert_string_equal(d.label, "y");
    assert_string_equal(d.target, "");
    assert_double_equal(d.test_fraction, 0.25, 0);
    spec_dataset_close(&d);

    dataset_ok("{\"job\": 1, \"inputs\": [\"u1\"], \"target\": \"out\"}", &d);
    assert_int_equal(d.ref.kind, REF_JOB);
    assert_string_equal(d.target, "out");
    spec_dataset_close(&d);

    dataset_ok("12", &d);
    assert_int_equal(d.ref.kind, REF_ID);
    assert_int_equal(d.ref.id, 12);
    assert_null(d.ref.inline_obj);
    spec_dataset_close(&d);

    dataset_ok("\"my table\"", &d); /* a stored dataset's name */
    assert_false(spec_dataset_is_builtin(d.ref.name));
    spec_dataset_close(&d);
    assert_true(spec_dataset_is_builtin("fashion-mnist"));
    assert_true(spec_dataset_is_builtin("sine"));
}

/* ---- bad inputs ---- */

struct bad {
    enum kind kind;
    const char *text, *path, *msg;
};

/* A train spec with one layer `L` (JSON text). */
#define NET1(L) "{\"dataset\": \"xor\", \"network\": [" L "]}"
#define DEV_N "{\"kind\": \"neuron\"}"

static const struct bad bad_cases[] = {
    /* fit */
    {K_FIT, "[]", "/spec", "must be an object"},
    {K_FIT, "{}", "/spec/dataset", "is required"},
    {K_FIT, "{\"dataset\": 1, \"hiden\": [3]}", "/spec/hiden", "unknown field"},
    {K_FIT, "{\"dataset\": 1, \"hidden\": []}", "/spec/hidden", "1 to 8"},
    {K_FIT, "{\"dataset\": 1, \"hidden\": [1,1,1,1,1,1,1,1,1]}", "/spec/hidden", "1 to 8"},
    {K_FIT, "{\"dataset\": 1, \"hidden\": [32, 4097]}", "/spec/hidden/1", "1 to 4096"},
    {K_FIT, "{\"dataset\": 1, \"hidden\": [0]}", "/spec/hidden/0", NULL},
    {K_FIT, "{\"dataset\": 1, \"activation\": \"gelu\"}", "/spec/activation", "tanh"},
    {K_FIT, "{\"dataset\": 1, \"epochs\": 0}", "/spec/epochs", "1 to 100000"},
    {K_FIT, "{\"dataset\": 1, \"epochs\": 100001}", "/spec/epochs", NULL},
    {K_FIT, "{\"dataset\": 1, \"batch\": 65537}", "/spec/batch", "1 to 65536"},
    {K_FIT, "{\"dataset\": 1, \"lr\": 0}", "/spec/lr", "> 0"},
    {K_FIT, "{\"dataset\": 1, \"lr\": -0.1}", "/spec/lr", NULL},
    {K_FIT, "{\"dataset\": 1, \"lr\": \"fast\"}", "/spec/lr", "number"},
    {K_FIT, "{\"dataset\": 1, \"validation\": 0}", "/spec/validation", "(0, 0.5]"},
    {K_FIT, "{\"dataset\": 1, \"validation\": 0.6}", "/spec/validation", NULL},
    {K_FIT, "{\"dataset\": 1, \"patience\": 0}", "/spec/patience", NULL},
    {K_FIT, "{\"dataset\": 1, \"seed\": -1}", "/spec/seed", NULL},
    {K_FIT, "{\"dataset\": {\"job\": 0}}", "/spec/dataset/job", NULL},
    /* datasets */
    {K_DATASET, "null", "/spec/dataset", "dataset id"},
    {K_DATASET, "0", "/spec/dataset", ">= 1"},
    {K_DATASET, "\"\"", "/spec/dataset", "empty"},
    {K_DATASET, "{\"limit\": 5}", "/spec/dataset", "\"id\", \"job\" or \"name\""},
    {K_DATASET, "{\"id\": 1, \"job\": 2}", "/spec/dataset/job", "only one"},
    {K_DATASET, "{\"id\": 1, \"colums\": []}", "/spec/dataset/colums", "unknown field"},
    {K_DATASET, "{\"id\": 1, \"inputs\": []}", "/spec/dataset/inputs", "1 to 64"},
    {K_DATASET, "{\"id\": 1, \"inputs\": [\"a\", 3]}", "/spec/dataset/inputs/1", "string"},
    {K_DATASET, "{\"id\": 1, \"inputs\": [\"a\", \"b\", \"a\"]}", "/spec/dataset/inputs/2",
     "twice"},
    {K_DATASET, "{\"id\": 1, \"inputs\": [\"a\", \"y\"], \"label\": \"y\"}",
     "/spec/dataset/inputs/1", "label"},
    {K_DATASET, "{\"id\": 1, \"label\": \"y\", \"target\": \"z\"}", "/spec/dataset/target",
     "not both"},
    {K_DATASET, "{\"id\": 1, \"test_fraction\": 1}", "/spec/dataset/test_fraction", "(0, 1)"},
    {K_DATASET, "{\"id\": 1, \"test_fraction\": 0}", "/spec/dataset/test_fraction", NULL},
    {K_DATASET, "{\"id\": 1, \"limit\": -1}", "/spec/dataset/limit", NULL},
    {K_DATASET, "{\"id\": 1, \"samples\": 10}", "/spec/dataset/samples", "generators"},
    {K_DATASET, "{\"name\": \"sine\", \"noise\": 0.1}", "/spec/dataset/noise", "xnor and spirals"},
    {K_DATASET, "{\"name\": \"lotka_volterra\", \"noise\": 0.1}", "/spec/dataset/noise",
     "and, or, nand"},
    {K_DATASET, "{\"name\": \"and\", \"arms\": 3}", "/spec/dataset/arms", "spirals"},
    {K_DATASET, "{\"name\": \"nor\", \"inputs\": [\"a\"]}", "/spec/dataset/inputs",
     "no named columns"},
    {K_DATASET, "{\"name\": \"xor\", \"arms\": 3}", "/spec/dataset/arms", "spirals"},
    {K_DATASET, "{\"name\": \"spirals\", \"arms\": 4}", "/spec/dataset/arms", "2 to 3"},
    {K_DATASET, "{\"name\": \"spirals\", \"noise\": -1}", "/spec/dataset/noise", NULL},
    {K_DATASET, "{\"name\": \"sine\", \"samples\": 0}", "/spec/dataset/samples", NULL},
    {K_DATASET, "{\"name\": \"fashion-mnist\", \"label\": \"y\"}", "/spec/dataset/label",
     "no named columns"},
    /* train */
    {K_TRAIN, "{\"network\": []}", "/spec/dataset", "is required"},
    {K_TRAIN, "{\"dataset\": \"xor\"}", "/spec/network", "is required"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": []}", "/spec/network", "1 to 16"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": {\"layers\": []}}", "/spec/network", NULL},
    {K_TRAIN, NET1("{\"devices\": 2, \"device\": 1}, {\"devices\": 0, \"device\": 1}"),
     "/spec/network/1/devices", NULL},
    {K_TRAIN, NET1("{\"devices\": 65537, \"device\": 1}"), "/spec/network/0/devices", NULL},
    {K_TRAIN, NET1("{\"device\": 1}"), "/spec/network/0/devices", "is required"},
    {K_TRAIN, NET1("{\"devices\": 1}"), "/spec/network/0/device", "is required"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": 1, \"size\": 3}"), "/spec/network/0/size",
     "unknown field"},
    {K_TRAIN, NET1("3"), "/spec/network/0", "must be an object"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": 1, \"via\": \"magic\"}"),
     "/spec/network/0/via", "physics_aware"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": \"crn\", \"via\": \"surrogate\"}"),
     "/spec/network/0/surrogate", "required for via surrogate"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": \"crn\", \"via\": \"physics_aware\"}"),
     "/spec/network/0/surrogate", "required for via physics_aware"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": 1, \"via\": \"surrogate\", \"surrogate\": "
                   "{\"kind\": \"x\"}}"),
     "/spec/network/0/surrogate", "not allowed"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": {\"kind\": \"crn_relu\"}, \"via\": \"exact\"}"),
     "/spec/network/0/via", "analytic"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": {\"kind\": \"crn_relu\"}}"),
     "/spec/network/0/via", "analytic"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": {\"kind\": \"hodgkin_huxley\"}, \"via\": "
                   "\"device\"}"),
     "/spec/network/0/via", "spike_rate"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": {\"kind\": \"neuron\", \"drive\": \"full\", "
                   "\"fan_in\": 2}}"),
     "/spec/network/0/connect", "is required"},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": {\"kind\": \"nueron\"}}"),
     "/spec/network/0/device/kind", NULL},
    {K_TRAIN, NET1("{\"devices\": 1, \"device\": {\"kind\": \"ode\", \"state\": {\"y\": 0}, "
                   "\"rhs\": {\"y\": \"-y +\"}, \"output\": \"y\"}, \"via\": \"device\"}"),
     "/spec/network/0/device/rhs/y", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [" DEV_N "]}", "/spec/network/0/kind",
     "unknown field"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1}, "
              "{\"devices\": 1, \"device\": 1}], \"adapt\": {\"min_delta\": -0.01}}",
     "/spec/adapt/min_delta", "[0, 1)"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1}, "
              "{\"devices\": 1, \"device\": 1}], \"adapt\": {\"min_delta\": 1}}",
     "/spec/adapt/min_delta", "[0, 1)"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1}, "
              "{\"devices\": 1, \"device\": 1}], \"adapt\": {\"score\": \"hebb\"}}",
     "/spec/adapt/score", "hebbian"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"init\": \"zeros\"}]}",
     "/spec/network/0/init", "normal"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"init\": \"unit\"}]}",
     "/spec/network/0/init", "edge cells only"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"cells\": \"edges\"}]}",
     "/spec/network/0/cells", "edge"},
    {K_TRAIN, NET1("{\"devices\": 1, \"cells\": \"edge\", \"device\": {\"kind\": "
                   "\"almost_neuron\", \"drive\": \"dot_sq\"}}"),
     "/spec/network/0/cells", "two drives"},
    {K_TRAIN, NET1("{\"devices\": 1, \"cells\": \"edge\", \"device\": {\"kind\": "
                   "\"neuron\", \"drive\": \"full\", \"fan_in\": 2}, \"connect\": \"tree\"}"),
     "/spec/network/0/cells", "fan-in"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"cell_list\": {\"src\": [0], \"dst\": [0]}}]}",
     "/spec/network/0/cell_list", "edge"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"cells\": \"edge\", \"cell_list\": {\"src\": [0, 1], \"dst\": [0]}}]}",
     "/spec/network/0/cell_list/dst", "2 cell indices"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1}, "
              "{\"devices\": 1, \"device\": 1, \"cells\": \"edge\", \"cell_list\": "
              "{\"src\": [0, 2], \"dst\": [0, 0]}}]}",
     "/spec/network/1/cell_list/src", "layer 0 has 2 devices"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"adapt\": {}}",
     "/spec/adapt", "edge cells"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"cells\": \"edge\"}], \"adapt\": {\"max_cells\": 0}}",
     "/spec/adapt/max_cells", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1, "
              "\"init\": 1}]}",
     "/spec/network/0/init", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"loss\": \"hinge\"}",
     "/spec/loss", "mse"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"es\", \"population\": 63}}",
     "/spec/optimizer/population", "antithetic pairs"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"es\", \"population\": 1}}",
     "/spec/optimizer/population", "2 to 10000"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"es\", \"sigma\": 0}}",
     "/spec/optimizer/sigma", "(0, 10]"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"es\", \"weight_decay\": 0.1}}",
     "/spec/optimizer/weight_decay", "sgd and adam"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"es\", \"momentum\": 0.9}}",
     "/spec/optimizer/momentum", "sgd"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"adam\", \"population\": 8}}",
     "/spec/optimizer/population", "es"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"rmsprop\"}}",
     "/spec/optimizer/name", "adam"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": \"rmsprop\"}",
     "/spec/optimizer", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": 3}",
     "/spec/optimizer", "or an object"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"lr\": 0}}",
     "/spec/optimizer/lr", "(0, 1000]"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"momentum\": 0.9}}",
     "/spec/optimizer/momentum", "sgd"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"sgd\", \"beta1\": 0.5}}",
     "/spec/optimizer/beta1", "adam"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"name\": \"sgd\", \"momentum\": 1}}",
     "/spec/optimizer/momentum", "[0, 1)"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"beta2\": 1}}",
     "/spec/optimizer/beta2", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"eps\": 0}}",
     "/spec/optimizer/eps", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"weight_decay\": -1}}",
     "/spec/optimizer/weight_decay", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"decoupled\": 1}}",
     "/spec/optimizer/decoupled", "true or false"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"optimizer\": {\"lr\": 0.1, \"lr2\": 1}}",
     "/spec/optimizer/lr2", "unknown field"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"epochs\": 0}",
     "/spec/epochs", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"batch\": 0}",
     "/spec/batch", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"checkpoint_every\": -1}",
     "/spec/checkpoint_every", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"calibrate\": \"yes\"}",
     "/spec/calibrate", "true or false"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"chip\": -1}",
     "/spec/chip", NULL},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"hardware_aware\": 1}",
     "/spec/hardware_aware", "true or false"},
    {K_TRAIN, "{\"dataset\": \"xor\", \"network\": [{\"devices\": 1, \"device\": 1}], "
              "\"chip\": 2, \"hardware_aware\": true}",
     "/spec/hardware_aware", "cannot be combined"},
    {K_TRAIN, "{\"dataset\": {\"name\": \"xor\", \"inputs\": [\"a\"]}, \"network\": []}",
     "/spec/dataset/inputs", "no named columns"},
    /* evaluate */
    {K_EVAL, "{\"dataset\": \"xor\"}", "/spec/model", "is required"},
    {K_EVAL, "{\"model\": 3}", "/spec/dataset", "is required"},
    {K_EVAL, "{\"model\": {\"kind\": \"neuron\"}, \"dataset\": \"xor\"}", "/spec/model",
     "not allowed"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"split\": \"validation\"}", "/spec/split",
     "test, train, all"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": [\"device\"]}", "/spec/via",
     "layer index"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": {\"first\": \"device\"}}",
     "/spec/via/first", "0 to 15"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": {\"16\": \"device\"}}",
     "/spec/via/16", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": {\"01\": \"device\"}}",
     "/spec/via/01", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": {\"-1\": \"device\"}}",
     "/spec/via/-1", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": {\"a/b\": \"device\"}}",
     "/spec/via/a~1b", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"via\": {\"1\": \"ode\"}}", "/spec/via/1",
     "exact"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"surrogates\": {\"x\": 1}}",
     "/spec/surrogates/x", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"surrogates\": {\"0\": 1, \"1\": true}}",
     "/spec/surrogates/1", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"seed\": 1.5}", "/spec/seed", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"spilt\": \"test\"}", "/spec/spilt",
     "unknown field"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chips\": {\"count\": 0}}",
     "/spec/chips/count", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chips\": {\"count\": 1001}}",
     "/spec/chips/count", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chips\": {\"seed\": 1}}",
     "/spec/chips/count", "is required"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chips\": {\"count\": 2, \"seed\": -1}}",
     "/spec/chips/seed", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chips\": {\"count\": 2, \"n\": 1}}",
     "/spec/chips/n", "unknown field"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chip\": 1, \"chips\": {\"count\": 2}}",
     "/spec/chips", "not both"},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"chip\": -1}", "/spec/chip", NULL},
    {K_EVAL, "{\"model\": 3, \"dataset\": \"xor\", \"noise\": 0}", "/spec/noise",
     "true or false"},
};

static void test_bad_inputs(void **state)
{
    (void)state;
    size_t n = sizeof bad_cases / sizeof bad_cases[0];
    for (size_t i = 0; i < n; i++)
        expect_bad(bad_cases[i].kind, bad_cases[i].text, bad_cases[i].path, bad_cases[i].msg);
    assert_true(n >= 30);
}

/* A failure after earlier layers and refs were taken must release them (ASan). */
static void test_failures_release(void **state)
{
    (void)state;
    expect_bad(K_TRAIN,
               "{\"dataset\": {\"id\": 3, \"label\": \"y\"}, \"network\": ["
               "{\"devices\": 4, \"device\": {\"kind\": \"neuron\"}, \"surrogate\": {\"job\": 2},"
               " \"via\": \"exact\"},"
               "{\"devices\": 4, \"device\": {\"id\": 2, \"x\": 1}, \"surrogate\": {\"id\": 2}},"
               "{\"devices\": 4, \"device\": {\"kind\": \"neuron\"}, \"surrogate\": {\"job\": 2},"
               " \"via\": \"warp\"}]}",
               "/spec/network/2/via", NULL);
    expect_bad(K_TRAIN,
               "{\"dataset\": {\"id\": 3}, \"network\": [{\"devices\": 4, \"device\": "
               "{\"kind\": \"neuron\"}}], \"epochs\": -3}",
               "/spec/epochs", NULL);
    expect_bad(K_EVAL,
               "{\"model\": {\"id\": 3, \"x\": 1}, \"dataset\": {\"job\": 2}, \"surrogates\": "
               "{\"0\": {\"job\": 1}, \"1\": {\"id\": 2}, \"2\": \"\"}}",
               "/spec/surrogates/2", NULL);
    expect_bad(K_FIT, "{\"dataset\": {\"job\": 2, \"inputs\": [\"u1\"]}, \"lr\": 1e9}",
               "/spec/lr", NULL);
}

/* ---- type confusion ---- */

/* Replaces field `key` of `at` (inside `spec`) by each JSON type: never a
 * crash or leak, and every refusal names a path under /spec. */
static void confuse(enum kind kind, json_t *spec, json_t *at, const char *key)
{
    json_t *vals[] = {json_null(), json_true(), json_integer(-1), json_real(1e308),
                      json_string("x"), json_array(), json_object(), json_integer(0),
                      json_real(0.5)};
    json_t *orig = json_incref(json_object_get(at, key));
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        json_object_set_new(at, key, vals[i]);
        struct spec_error err = {{0}, {0}};
        int rc = parse_any(kind, spec, &err);
        if (rc && (strncmp(err.path, "/spec", 5) != 0 || !err.msg[0]))
            fail_msg("%s field %s: bad error '%s: %s'", kind_name(kind), key, err.path, err.msg);
    }
    json_object_set_new(at, key, orig);
}

/* Confuses every field of obj and of the objects one level down. */
static void confuse_all(enum kind kind, json_t *spec, json_t *obj)
{
    const char *key;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(obj, tmp, key, val) {
        if (json_is_object(val))
            confuse_all(kind, spec, val);
        if (json_is_array(val)) {
            size_t i;
            json_t *el;
            json_array_foreach(val, i, el) if (json_is_object(el)) confuse_all(kind, spec, el);
        }
        confuse(kind, spec, obj, key);
    }
}

static void test_type_confusion(void **state)
{
    (void)state;
    struct {
        const char *file;
        enum kind kind;
    } f[] = {{"fit-crn.json", K_FIT},
             {"train-fashion-crn.json", K_TRAIN},
             {"train-sine.json", K_TRAIN},
             {"evaluate-crn-device.json", K_EVAL}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "schema/examples/%s", f[i].file);
        json_t *root = load_file(rel);
        json_t *spec = json_object_get(root, "spec");
        /* Richer dataset and evaluate objects than the examples carry. */
        if (f[i].kind != K_TRAIN)
            json_object_set_new(spec, "dataset",
                                load("{\"id\": 2, \"inputs\": [\"a\"], \"label\": \"y\","
                                     " \"test_fraction\": 0.2, \"limit\": 3}"));
        if (f[i].kind == K_EVAL)
            json_object_set_new(spec, "surrogates", load("{\"0\": {\"job\": 1}}"));
        confuse_all(f[i].kind, spec, spec);
        json_decref(root);
    }
}

/* ---- the JSON Schema documents ---- */

/* The "default" of property `key` in schema object `props`. */
static const json_t *default_of(const json_t *props, const char *key)
{
    const json_t *d = json_object_get(json_object_get(props, key), "default");
    if (!d)
        fail_msg("schema property %s documents no default", key);
    return d;
}

static void check_int_default(const json_t *props, const char *key, long long got)
{
    const json_t *d = default_of(props, key);
    if (!json_is_integer(d) || json_integer_value(d) != got)
        fail_msg("%s: schema default differs from the parser's %lld", key, got);
}

static void check_num_default(const json_t *props, const char *key, double got)
{
    const json_t *d = default_of(props, key);
    if (!json_is_number(d) || fabs(json_number_value(d) - got) > 1e-7 * fabs(got)) /* fit lr is a float */
        fail_msg("%s: schema default %g differs from the parser's %g", key,
                 json_number_value(d), got);
}

static void check_str_default(const json_t *props, const char *key, const char *got)
{
    const json_t *d = default_of(props, key);
    if (!json_is_string(d) || strcmp(json_string_value(d), got) != 0)
        fail_msg("%s: schema default differs from the parser's %s", key, got);
}

static void test_schema_defaults_fit(void **state)
{
    (void)state;
    json_t *s = load_file("schema/fit.schema.json");
    assert_string_equal(json_string_value(json_object_get(s, "$schema")),
                        "https://json-schema.org/draft/2020-12/schema");
    const json_t *props = json_object_get(s, "properties");
    struct fit_config c;
    fit_config_default(&c);
    const json_t *h = default_of(props, "hidden");
    assert_int_equal(json_array_size(h), c.n_hidden);
    for (size_t i = 0; i < c.n_hidden; i++)
        assert_int_equal(json_integer_value(json_array_get(h, i)), c.hidden[i]);
    check_str_default(props, "activation", act_name(c.act));
    check_int_default(props, "epochs", (long long)c.epochs);
    check_int_default(props, "batch", (long long)c.batch);
    check_num_default(props, "lr", c.lr);
    check_num_default(props, "validation", c.validation);
    check_int_default(props, "patience", (long long)c.patience);
    check_int_default(props, "seed", (long long)c.seed);

    /* Dataset options, checked against a parsed reference of each kind. */
    const json_t *dprops =
        json_object_get(json_object_get(json_object_get(s, "$defs"), "dataset_object"),
                        "properties");
    struct dataset_spec d;
    dataset_ok("{\"name\": \"sine\"}", &d);
    check_num_default(dprops, "test_fraction", d.test_fraction);
    check_int_default(dprops, "limit", (long long)d.limit);
    check_int_default(dprops, "test_limit", (long long)d.test_limit);
    check_int_default(dprops, "samples", (long long)d.samples);
    check_num_default(dprops, "noise", d.noise);
    spec_dataset_close(&d);
    dataset_ok("{\"name\": \"spirals\"}", &d);
    check_int_default(dprops, "arms", (long long)d.arms);
    spec_dataset_close(&d);
    json_decref(s);
}

/* "adapt": min_delta parsed, default 0 as the JSON Schema says; score hebbian. */
static void test_adapt_min_delta(void **state)
{
    (void)state;
    json_t *s = load_file("schema/train.schema.json");
    const json_t *aprops =
        json_object_get(json_object_get(json_object_get(s, "properties"), "adapt"), "properties");
    struct train_spec *t = malloc(sizeof *t);
    assert_non_null(t);
    struct spec_error err;
    json_t *j = load("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1}, "
                     "{\"devices\": 1, \"device\": 1}], \"adapt\": {}}");
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    check_num_default(aprops, "min_delta", t->train.adapt.min_delta);
    assert_double_equal(t->train.adapt.min_delta, 0, 0);
    spec_train_close(t);
    json_decref(j);
    j = load("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1}, "
             "{\"devices\": 1, \"device\": 1}], \"adapt\": {\"min_delta\": 0.02, "
             "\"score\": \"hebbian\"}}");
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    assert_double_equal(t->train.adapt.min_delta, 0.02, 0);
    assert_int_equal(t->train.adapt.score, ADAPT_HEBBIAN);
    spec_train_close(t);
    json_decref(j);
    /* edge cells: one layer may adapt; max_cells defaults as the schema says; a cell list */
    j = load("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": 1, "
             "\"cells\": \"edge\", \"init\": \"unit\", \"cell_list\": {\"src\": [1, 0, 0], "
             "\"dst\": [0, 1, 1]}}], \"adapt\": {}}");
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    check_int_default(aprops, "max_cells", (long long)t->train.adapt.max_cells);
    assert_int_equal(t->layers[0].cells, NET_CELLS_EDGE);
    assert_int_equal(t->layers[0].init, NET_INIT_UNIT);
    assert_int_equal(t->layers[0].n_cells, 3);
    assert_int_equal(t->layers[0].cell_src[0], 1);
    assert_int_equal(t->layers[0].cell_dst[2], 1);
    spec_train_close(t);
    json_decref(j);
    /* es: its fields, and a spike_rate layer via device, which backprop refuses */
    j = load("{\"dataset\": \"xor\", \"network\": [{\"devices\": 2, \"device\": "
             "{\"kind\": \"hodgkin_huxley\"}, \"via\": \"device\"}, {\"devices\": 2, "
             "\"device\": 1}], \"optimizer\": {\"name\": \"es\", \"population\": 8, "
             "\"sigma\": 0.1}}");
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    assert_int_equal(t->optim.kind, OPTIM_ES);
    assert_int_equal(t->optim.population, 8);
    assert_double_equal(t->optim.sigma, 0.1, 0);
    assert_double_equal(t->optim.lr, 0.02, 0);
    spec_train_close(t);
    json_object_set_new(j, "optimizer", json_string("adam"));
    assert_int_equal(spec_train_parse(j, t, &err), QN_ESPEC);
    assert_string_equal(err.path, "/spec/network/0/via");
    json_object_set_new(j, "optimizer", json_string("es"));
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    assert_int_equal(t->optim.population, 64);
    spec_train_close(t);
    json_decref(j);
    free(t);
    json_decref(s);
}

static void test_schema_defaults_train_evaluate(void **state)
{
    (void)state;
    json_t *s = load_file("schema/train.schema.json");
    const json_t *props = json_object_get(s, "properties");
    json_t *j = load("{\"dataset\": 1, \"network\": [{\"devices\": 1, \"device\": 1}]}");
    struct train_spec *t = malloc(sizeof *t);
    assert_non_null(t);
    struct spec_error err;
    assert_int_equal(spec_train_parse(j, t, &err), 0);
    check_str_default(props, "loss", train_loss_name(t->train.loss));
    check_int_default(props, "epochs", (long long)t->train.epochs);
    check_int_default(props, "batch", (long long)t->train.batch);
    check_int_default(props, "seed", (long long)t->train.seed);
    check_int_default(props, "checkpoint_every", (long long)t->train.checkpoint_every);
    assert_true(json_is_true(default_of(props, "calibrate")) == (t->calibrate != 0));
    assert_true(json_is_false(default_of(props, "hardware_aware")));
    assert_int_equal(t->train.chip_mode, TRAIN_NOMINAL);
    const json_t *od = default_of(props, "optimizer");
    assert_string_equal(json_string_value(json_object_get(od, "name")), optim_name(t->optim.kind));
    assert_double_equal(json_number_value(json_object_get(od, "lr")), t->optim.lr, 0);
    const json_t *defs = json_object_get(s, "$defs");
    const json_t *oprops = json_object_get(json_object_get(defs, "optimizer"), "properties");
    check_str_default(oprops, "name", optim_name(t->optim.kind));
    check_num_default(oprops, "lr", t->optim.lr);
    check_num_default(oprops, "beta1", t->optim.beta1);
    check_num_default(oprops, "beta2", t->optim.beta2);
    check_num_default(oprops, "eps", t->optim.eps);
    check_num_default(oprops, "weight_decay", t->optim.weight_decay);
    check_num_default(oprops, "momentum", 0.0);
    assert_true(json_is_true(default_of(oprops, "decoupled")) == (t->optim.decoupled != 0));
    const json_t *lprops = json_object_get(json_object_get(defs, "layer"), "properties");
    check_str_default(lprops, "via", net_via_name(t->layers[0].via));
    check_str_default(lprops, "init", "uniform");
    assert_int_equal(t->layers[0].init, NET_INIT_UNIFORM);
    spec_train_close(t);
    free(t);
    json_decref(j);
    json_decref(s);

    s = load_file("schema/evaluate.schema.json");
    props = json_object_get(s, "properties");
    j = load("{\"model\": 1, \"dataset\": 1}");
    struct evaluate_spec e;
    assert_int_equal(spec_evaluate_parse(j, &e, &err), 0);
    check_str_default(props, "split", spec_split_name(e.split));
    assert_int_equal(json_object_size(default_of(props, "via")), e.n_via);
    spec_evaluate_close(&e);
    json_decref(j);
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_files),
        cmocka_unit_test(test_fit_defaults),
        cmocka_unit_test(test_train_defaults),
        cmocka_unit_test(test_evaluate_defaults),
        cmocka_unit_test(test_dataset_forms),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_failures_release),
        cmocka_unit_test(test_type_confusion),
        cmocka_unit_test(test_schema_defaults_fit),
        cmocka_unit_test(test_schema_defaults_train_evaluate),
        cmocka_unit_test(test_adapt_min_delta),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
