/*
 * test_adapt.c: adaptive structure and full-drive layers through the real
 * `qn` binary (QN_BIN): a train job with "adapt" records "structure" metric
 * rows and reports "widths"; the saved model has the final widths and an
 * evaluate job rebuilds it; a run resumed (`qn resume`) from a checkpoint
 * taken after extinction events ends with the same parameters, byte for
 * byte, as the uninterrupted run; a network of full devices (random and tree
 * wiring) trains and is scored via device; specs that cannot work are
 * refused with the field's path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_test.h"
#include "qt_daemon.h"

/* Runs sql on dir/db (read-write); the first column of the first row as an
 * integer (-1: none); an SQLite error fails the test. */
static long long db_int(const struct qt_dir *f, const char *db, const char *sql)
{
    return qd_db_file_int(f->dir, db, SQLITE_OPEN_READWRITE, 1, sql);
}

/* Two tanh hidden layers (12 and 8) that adapt after every epoch from the first. */
static const char adapt_job[] =
    "{\"type\":\"train\",\"name\":\"adaptive\",\"spec\":{\"dataset\":{\"name\":\"spirals\","
    "\"samples\":600},\"network\":[{\"devices\":12,\"device\":{\"kind\":\"neuron\",\"params\":"
    "{\"activation\":\"tanh\"}}},{\"devices\":8,\"device\":{\"kind\":\"neuron\",\"params\":"
    "{\"activation\":\"tanh\"}}},{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":"
    "{\"activation\":\"identity\"}}}],\"optimizer\":{\"name\":\"adam\",\"lr\":0.01},"
    "\"epochs\":6,\"batch\":32,\"seed\":4,\"adapt\":{\"after_epochs\":1,\"patience\":0,"
    "\"grow\":0.5,\"prune\":0.25,\"max_devices\":20,\"min_devices\":4}}}";

/* The widths array of a train record as w[0..3). */
static void widths_of(const json_t *rec, long long *w)
{
    const json_t *a = qd_result(rec, "widths");
    assert_int_equal(json_array_size(a), 3);
    for (size_t l = 0; l < 3; l++)
        w[l] = json_integer_value(json_array_get(a, l));
}

static void test_adapt_run(void **state)
{
    struct qt_dir *f = *state;
    json_t *rec = qd_qn_job(f, "a.db", adapt_job, NULL, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    long long w[3];
    widths_of(rec, w);
    assert_int_equal(w[2], 2);
    assert_true(w[0] >= 4 && w[0] <= 20 && w[1] >= 4 && w[1] <= 20);
    assert_true(w[0] != 12 || w[1] != 8);
    assert_int_equal(json_integer_value(qd_result(rec, "events")), 5); /* after epochs 1..5 */
    /* one structure row per event and hidden layer, with layer, grown, pruned beside it */
    assert_int_equal(db_int(f, "a.db", "SELECT count(*) FROM metrics WHERE name = 'structure'"),
                     10);
    assert_int_equal(db_int(f, "a.db", "SELECT count(*) FROM metrics m JOIN metrics g ON "
                                       "g.job_id = m.job_id AND g.step = m.step AND g.name = "
                                       "'structure_grown' WHERE m.name = 'structure'"),
                     10);
    char q[256];
    snprintf(q, sizeof q, "SELECT value FROM metrics WHERE name = 'structure' AND epoch = 5 "
             "AND step = (SELECT step FROM metrics WHERE name = 'structure_layer' AND epoch = 5 "
             "AND value = 1)");
    assert_int_equal(db_int(f, "a.db", q), w[1]);
    /* the model has the final widths: params and spec */
    long long n_params = (2 * w[0] + w[0] + 1) + (w[0] * w[1] + w[1] + 1) + (w[1] * 2 + 2 + 1);
    assert_int_equal(json_integer_value(qd_result(rec, "params")), n_params);
    assert_int_equal(db_int(f, "a.db", "SELECT json_extract(spec, '$.network[0].devices') "
                                       "FROM models"), w[0]);
    /* checkpoints carry the architecture */
    assert_int_equal(db_int(f, "a.db", "SELECT json_extract(arch, '$.widths[1]') FROM "
                                       "checkpoints WHERE epoch = 6"), w[1]);
    json_decref(rec);
    /* an evaluation rebuilds the adapted model */
    rec = qd_qn_job(f, "a.db",
                    "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},\"dataset\":"
                    "{\"name\":\"spirals\",\"samples\":600}}}",
                    NULL, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    json_decref(rec);
}

/* Resumed from the checkpoint of epoch 3 (after the events of epochs 1, 2 and 3). */
static void test_adapt_resume(void **state)
{
    struct qt_dir *f = *state;
    json_t *a = qd_qn_job(f, "a.db", adapt_job, NULL, 0, NULL),
           *b = qd_qn_job(f, "b.db", adapt_job, NULL, 0, NULL);
    json_decref(b);
    /* as if job 1 of b.db had died after its epoch-3 checkpoint */
    db_int(f, "b.db", "DELETE FROM checkpoints WHERE epoch > 3");
    db_int(f, "b.db", "DELETE FROM models");
    db_int(f, "b.db", "UPDATE jobs SET state = 'failed'");
    assert_true(db_int(f, "b.db", "SELECT json_extract(arch, '$.widths[0]') FROM checkpoints "
                                  "WHERE epoch = 3") != 12);
    b = qd_qn_job(f, "b.db", NULL, "1", 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "state")), "succeeded");
    assert_int_equal(json_integer_value(qd_result(b, "resumed_from")), 3);
    long long wa[3], wb[3];
    widths_of(a, wa);
    widths_of(b, wb);
    assert_memory_equal(wa, wb, sizeof wa);
    assert_true(json_equal(qd_result(a, "test_accuracy"), qd_result(b, "test_accuracy")));
    size_t la, lb;
    void *pa = qd_db_model_params(f->dir, "a.db", &la), *pb = qd_db_model_params(f->dir, "b.db", &lb);
    assert_non_null(pa);
    assert_non_null(pb);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    free(pa), free(pb);
    const char *q = "SELECT count(*) FROM metrics WHERE name LIKE 'structure%'";
    assert_int_equal(db_int(f, "b.db", q), db_int(f, "a.db", q));
    json_decref(a), json_decref(b);
}

/* Full devices: a random then a tree layer; evaluated via device; refusals. */
static void test_full_layers(void **state)
{
    struct qt_dir *f = *state;
    const char *job =
        "{\"type\":\"train\",\"spec\":{\"dataset\":{\"name\":\"xor\",\"samples\":400,\"noise\":"
        "0.1},\"epochs\":150,\"batch\":32,\"optimizer\":{\"name\":\"adam\",\"lr\":0.01},"
        "\"network\":[{\"devices\":6,\"device\":{\"kind\":\"neuron\",\"drive\":\"full\","
        "\"fan_in\":2,\"params\":{\"activation\":\"tanh\",\"b\":0.1}},\"connect\":\"random\"},"
        "{\"devices\":8,\"device\":{\"kind\":\"neuron\",\"drive\":\"full\",\"fan_in\":3,"
        "\"params\":{\"activation\":\"tanh\"}},\"connect\":\"tree\",\"fan_in\":3},"
        "{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":"
        "\"identity\"}}}]}}";
    json_t *rec = qd_qn_job(f, "c.db", job, NULL, 0, NULL);
    assert_true(json_real_value(qd_result(rec, "test_accuracy")) >= 0.95);
    assert_int_equal(json_integer_value(qd_result(rec, "params")),
                     6 * 2 + 1 + 8 * 3 + 1 + 8 * 2 + 2 + 1);
    json_decref(rec);
    rec = qd_qn_job(f, "c.db",
                    "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},\"dataset\":"
                    "{\"name\":\"xor\",\"samples\":400,\"noise\":0.1},\"via\":{\"1\":"
                    "\"device\"}}}",
                    NULL, 0, NULL);
    assert_true(json_real_value(qd_result(rec, "accuracy")) >= 0.95);
    json_decref(rec);
    /* Specs qn run refuses (exit 2), each with words its message must hold. */
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
         "\"device\":{\"kind\":\"neuron\",\"drive\":\"full\",\"fan_in\":2}},{\"devices\":2,"
         "\"device\":{\"kind\":\"neuron\"}}]}}",
         "/spec/network/0/connect"},
        {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
         "\"device\":{\"kind\":\"neuron\",\"drive\":\"full\",\"fan_in\":2},\"connect\":\"local\","
         "\"fan_in\":3},{\"devices\":2,\"device\":{\"kind\":\"neuron\"}}]}}",
         "/spec/network/0/fan_in"},
        {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"adapt\":{},\"network\":[{\"devices\":"
         "2,\"device\":{\"kind\":\"neuron\",\"drive\":\"full\",\"fan_in\":2},\"connect\":\"tree\"},"
         "{\"devices\":2,\"device\":{\"kind\":\"neuron\"}}]}}",
         "fixed wiring"},
        {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
         "\"device\":{\"kind\":\"neuron\"},\"connect\":\"tree\"},{\"devices\":2,\"device\":"
         "{\"kind\":\"neuron\"}}]}}",
         "only to layers of full devices"},
        {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"adapt\":{\"max_devices\":4},"
         "\"network\":[{\"devices\":8,\"device\":{\"kind\":\"neuron\"}},{\"devices\":2,\"device\":"
         "{\"kind\":\"neuron\"}}]}}",
         "/spec/network/0/devices"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        json_decref(qd_qn_job(f, "c.db", bad[i].spec, NULL, 2, bad[i].says));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_adapt_run, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_adapt_resume, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_full_layers, qt_dir_setup, qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
