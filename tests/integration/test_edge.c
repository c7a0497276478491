/*
 * test_edge.c: layers of edge cells through the real `qn` binary (QN_BIN):
 * a one-layer edge network (inputs -> outputs) from unit init with
 * extinction records "cells" metric rows beside the structure rows and
 * reports "cells"; its checkpoints carry the cell lists; the saved model's
 * spec has the final cell list and an evaluate job rebuilds it (and scores
 * it as training did); a run resumed (`qn resume`) from a checkpoint taken
 * after events ends with the same parameters, byte for byte, as the
 * uninterrupted run; specs that cannot work are refused with the field's
 * path (by `qn run`, and by the daemon with 400 invalid_spec) and store no
 * job; the model evaluated on 2 ranks (qn-mpi) scores as on one process.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qn_test.h"
#include "qt_daemon.h"

static long long db_int(const struct qt_dir *f, const char *db, const char *sql)
{
    return qd_db_file_int(f->dir, db, SQLITE_OPEN_READWRITE, 1, sql);
}

/* AND with 2 -> 2 tanh edge cells from unit init, growing after every epoch from the
 * second (passthrough scores: on this tiny layer Hebbian pruning, blind to a cell's
 * output, deletes cells that carry the function; test_edge in tests/engine trains
 * with Hebbian scores on raw 0/1 inputs). */
static const char edge_job[] =
    "{\"type\":\"train\",\"name\":\"edges\",\"spec\":{\"dataset\":{\"name\":\"and\","
    "\"samples\":400,\"noise\":0.1},\"network\":[{\"devices\":2,\"cells\":\"edge\",\"init\":"
    "\"unit\",\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":\"tanh\"}}}],"
    "\"loss\":\"cross_entropy\",\"optimizer\":{\"name\":\"adam\",\"lr\":0.1},\"epochs\":8,"
    "\"batch\":16,\"seed\":4,\"adapt\":{\"after_epochs\":2,\"patience\":0,\"grow\":0.25,"
    "\"prune\":0.05,\"score\":\"passthrough\",\"max_cells\":40}}}";

static void test_edge_run(void **state)
{
    struct qt_dir *f = *state;
    json_t *rec = qd_qn_job(f, "a.db", edge_job, NULL, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    const json_t *cells = qd_result(rec, "cells");
    assert_int_equal(json_array_size(cells), 1);
    long long nc = json_integer_value(json_array_get(cells, 0));
    assert_true(nc > 4 && nc <= 40);
    assert_int_equal(json_integer_value(qd_result(rec, "events")), 6); /* after epochs 2..7 */
    assert_int_equal(json_integer_value(qd_result(rec, "params")), 2 * nc + 1);
    assert_true(json_real_value(qd_result(rec, "test_accuracy")) >= 0.95);
    /* one cells row per event, at the step of its structure row */
    assert_int_equal(db_int(f, "a.db",
                            "SELECT count(*) FROM metrics m JOIN metrics s ON "
                            "s.job_id = m.job_id AND s.step = m.step AND s.name = "
                            "'structure' WHERE m.name = 'cells'"),
                     6);
    assert_int_equal(db_int(f, "a.db",
                            "SELECT value FROM metrics WHERE name = 'cells' AND "
                            "epoch = 7"),
                     nc);
    /* the model's spec and the last checkpoint carry the final cell list */
    assert_int_equal(db_int(f, "a.db",
                            "SELECT json_array_length(spec, "
                            "'$.network[0].cell_list.src') FROM models"),
                     nc);
    assert_int_equal(db_int(f, "a.db",
                            "SELECT json_array_length(arch, '$.cells[0].dst') FROM "
                            "checkpoints WHERE epoch = 8"),
                     nc);
    double acc = json_real_value(qd_result(rec, "test_accuracy"));
    json_decref(rec);
    /* an evaluation rebuilds it: on the training run's own split it scores what training did */
    rec = qd_qn_job(f, "a.db",
                    "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},\"dataset\":"
                    "{\"name\":\"and\",\"samples\":400,\"noise\":0.1}}}",
                    NULL, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    assert_true(json_real_value(qd_result(rec, "accuracy")) >= 0.95 && acc >= 0.95);
    json_decref(rec);
}

/* Resumed from the checkpoint of epoch 4 (after the events of epochs 2, 3 and 4). */
static void test_edge_resume(void **state)
{
    struct qt_dir *f = *state;
    json_t *a = qd_qn_job(f, "a.db", edge_job, NULL, 0, NULL),
           *b = qd_qn_job(f, "b.db", edge_job, NULL, 0, NULL);
    json_decref(b);
    db_int(f, "b.db", "DELETE FROM checkpoints WHERE epoch > 4");
    db_int(f, "b.db", "DELETE FROM models");
    db_int(f, "b.db", "UPDATE jobs SET state = 'failed'");
    assert_true(db_int(f, "b.db",
                       "SELECT json_array_length(arch, '$.cells[0].src') FROM "
                       "checkpoints WHERE epoch = 4") != 4);
    b = qd_qn_job(f, "b.db", NULL, "1", 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "state")), "succeeded");
    assert_int_equal(json_integer_value(qd_result(b, "resumed_from")), 4);
    assert_true(json_equal(qd_result(a, "cells"), qd_result(b, "cells")));
    assert_true(json_equal(qd_result(a, "test_accuracy"), qd_result(b, "test_accuracy")));
    size_t la, lb;
    void *pa = qd_db_model_params(f->dir, "a.db", &la),
         *pb = qd_db_model_params(f->dir, "b.db", &lb);
    assert_non_null(pa);
    assert_non_null(pb);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    free(pa), free(pb);
    const char *q = "SELECT count(*) FROM metrics WHERE name = 'cells'";
    assert_int_equal(db_int(f, "b.db", q), db_int(f, "a.db", q));
    json_decref(a), json_decref(b);
}

/* Specs that cannot work, each with the path of the field refused. */
static const struct {
    const char *spec, *path;
} bad[] = {
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
     "\"cells\":\"edge\",\"device\":{\"kind\":\"almost_neuron\",\"drive\":\"dot_sq\"}}]}}",
     "/spec/network/0/cells"},
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
     "\"cells\":\"edge\",\"device\":{\"kind\":\"neuron\",\"drive\":\"full\",\"fan_in\":2},"
     "\"connect\":\"tree\"}]}}",
     "/spec/network/0/cells"},
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
     "\"cells\":\"edges\",\"device\":{\"kind\":\"neuron\"}}]}}",
     "/spec/network/0/cells"},
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
     "\"init\":\"ones\",\"device\":{\"kind\":\"neuron\"}}]}}",
     "/spec/network/0/init"},
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
     "\"init\":\"unit\",\"device\":{\"kind\":\"neuron\"}}]}}",
     "/spec/network/0/init"},
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"network\":[{\"devices\":2,"
     "\"cells\":\"edge\",\"cell_list\":{\"src\":[0,1],\"dst\":[0,2]},\"device\":{\"kind\":"
     "\"neuron\"}}]}}",
     "/spec/network/0/cell_list/dst"},
    {"{\"type\":\"train\",\"spec\":{\"dataset\":\"xor\",\"adapt\":{\"max_cells\":0},"
     "\"network\":[{\"devices\":2,\"cells\":\"edge\",\"device\":{\"kind\":\"neuron\"}}]}}",
     "/spec/adapt/max_cells"},
};

/* qn run refuses them (exit 2) with the path; no job is stored. */
static void test_edge_refusals(void **state)
{
    struct qt_dir *f = *state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        json_decref(qd_qn_job(f, "c.db", bad[i].spec, NULL, 2, bad[i].path));
    assert_int_equal(db_int(f, "c.db", "SELECT count(*) FROM jobs"), 0);
}

/* The daemon answers them 400 invalid_spec with the path; no job is stored. */
static void test_edge_refusals_http(void **state)
{
    struct qd *d = *state;
    qd_start(d);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *r = NULL;
        assert_int_equal(qd_http(d, "POST", "/v1/jobs", NULL, bad[i].spec, &r), 400);
        const json_t *e = json_object_get(r, "error");
        assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_spec");
        assert_string_equal(json_string_value(json_object_get(e, "path")), bad[i].path);
        json_decref(r);
    }
    sqlite3 *db = qd_db_open(d->db);
    assert_int_equal(qd_db_int(db, "SELECT count(*) FROM jobs"), 0);
    sqlite3_close(db);
}

/* The result of evaluating model 1 on AND's test split on `ranks` ranks (new reference). */
static json_t *evaluate_on(struct qd *d, int ranks)
{
    char job[512];
    snprintf(job, sizeof job,
             "{\"type\":\"evaluate\",\"resources\":{\"ranks\":%d},\"spec\":{\"model\":"
             "{\"job\":1},\"dataset\":{\"name\":\"and\",\"samples\":400,\"noise\":0.1}}}",
             ranks);
    json_t *rec = qd_wait_final(d, NULL, qd_submit(d, NULL, job), 120);
    if (strcmp(json_string_value(json_object_get(rec, "state")), "succeeded") != 0)
        fail_msg("the evaluation on %d ranks did not succeed: %s\n%s", ranks,
                 json_dumps(rec, 0), qd_log_tail(d->log));
    json_t *res = json_incref(json_object_get(rec, "result"));
    json_decref(rec);
    return res;
}

/* A model whose layer grew its cells is evaluated on 2 ranks (qn-mpi rebuilds the
 * cell list from the spool) with the figures of one process. */
static void test_edge_on_ranks(void **state)
{
    struct qd *d = *state;
    qt_need_mpirun(__func__);
    qd_start(d);
    json_t *rec = qd_wait_final(d, NULL, qd_submit(d, NULL, edge_job), 120);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "succeeded");
    assert_true(json_integer_value(json_array_get(qd_result(rec, "cells"), 0)) != 4);
    json_decref(rec);
    json_t *one = evaluate_on(d, 1), *two = evaluate_on(d, 2);
    assert_true(json_equal(json_object_get(one, "accuracy"), json_object_get(two, "accuracy")));
    double l1 = json_number_value(json_object_get(one, "loss"));
    double l2 = json_number_value(json_object_get(two, "loss"));
    assert_true(fabs(l1 - l2) <= 1e-6 * fmax(1.0, fabs(l1))); /* sums in another order */
    json_decref(one), json_decref(two);
    assert_int_equal(qd_stop(d, SIGTERM), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_edge_run, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_edge_resume, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_edge_refusals, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_edge_refusals_http, qd_fixture_setup,
                                        qd_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_edge_on_ranks, qd_fixture_setup, qd_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
