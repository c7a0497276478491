/*
 * test_from.c: a train job that starts from a stored model ("from", issue
 * 12's fine-tuning in the loop), through the real `qn` binary. A small
 * network of tanh neurons is trained on 60 spiral points (model 1). A train
 * from it with 0 epochs and another seed (so another split, whose own scaler
 * would differ) stores parameters and a scaler byte for byte the model's,
 * and scores the model's split as the model did, exactly; one epoch from it
 * stores other parameters with the model's scaler still. A network of
 * another width or depth, a reference to a sweep job, a model that does not
 * exist (by id and by name), "calibrate": true with "from", and "epochs": 0
 * without it are refused at their paths, storing nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "qn_test.h"
#include "qt_daemon.h"

#define SPIRALS "{\"name\":\"spirals\",\"samples\":60}"

static json_t *run_job(const struct qt_dir *f, const char *job, int want_status)
{
    return qt_run_job(f, "q.db", job, "2", want_status);
}

/* A job that must be refused (exit 2, nothing on stdout) with path and needle in stderr. */
static void expect_refused(const struct qt_dir *f, const char *job, const char *path,
                           const char *needle)
{
    qt_run_refused(f, "q.db", job, path, needle);
}

/* A train job: `hidden` tanh neurons (and `layers` - 1 further layers of 2
 * identity neurons), then extra spec fields (", ..."). */
static void train_text(char *buf, size_t cap, int hidden, int layers, const char *extra)
{
    const char *out = ",{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":"
                      "{\"activation\":\"identity\"}}}";
    snprintf(buf, cap,
             "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":["
             "{\"devices\":%d,\"device\":{\"kind\":\"neuron\",\"params\":{\"activation\":"
             "\"tanh\"}}}%s%s],\"batch\":16,\"checkpoint_every\":0%s}}",
             hidden, out, layers > 2 ? out : "", extra);
}

static double result_num(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(json_object_get(rec, "result"), key);
    if (!json_is_number(v))
        fail_msg("result has no number '%s'", key);
    return json_number_value(v);
}

/* 1 when models a and b have the same bytes in `column` (params, scaler), else 0. */
static long long same_column(const struct qt_dir *f, const char *column, int a, int b)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT (SELECT %s FROM models WHERE id = %d) = "
             "(SELECT %s FROM models WHERE id = %d)", column, a, column, b);
    return qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READONLY, 1, sql);
}

static long long count(const struct qt_dir *f, const char *table)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    return qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READONLY, 1, sql);
}

static void test_train_from_model(void **state)
{
    struct qt_dir *f = *state;
    char job[1024];
    train_text(job, sizeof job, 6, 2, ",\"epochs\":3,\"seed\":1");
    json_t *base = run_job(f, job, 0); /* job 1, model 1 */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(base, "result"),
                                                        "model")), 1);

    /* 0 epochs from it, on another split: the model itself, and its scores */
    train_text(job, sizeof job, 6, 2, ",\"epochs\":0,\"seed\":2,\"from\":{\"model\":{\"job\":1}}");
    json_t *copy = run_job(f, job, 0); /* model 2 */
    assert_int_equal(same_column(f, "params", 1, 2), 1);
    assert_int_equal(same_column(f, "scaler", 1, 2), 1);
    assert_int_equal(result_num(copy, "epochs"), 0);
    /* the same data split (seed 1), scored: exactly the model's last figures */
    train_text(job, sizeof job, 6, 2, ",\"epochs\":0,\"seed\":1,\"from\":{\"model\":1}");
    json_t *same = run_job(f, job, 0); /* model 3 */
    assert_true(result_num(same, "test_loss") == result_num(base, "test_loss"));
    assert_true(result_num(same, "test_accuracy") == result_num(base, "test_accuracy"));
    assert_int_equal(same_column(f, "params", 1, 3), 1);
    /* the saved spec names the model it started from by id */
    assert_int_equal(qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READONLY, 1,
                                    "SELECT json_extract(spec, '$.from.model') FROM models "
                                    "WHERE id = 2"),
                     1);

    /* one epoch from it: other parameters, the model's scaler still */
    train_text(job, sizeof job, 6, 2, ",\"epochs\":1,\"seed\":2,\"from\":{\"model\":1}");
    json_t *tuned = run_job(f, job, 0); /* model 4 */
    assert_int_equal(same_column(f, "params", 1, 4), 0);
    assert_int_equal(same_column(f, "scaler", 1, 4), 1);
    assert_true(result_num(tuned, "test_loss") != result_num(copy, "test_loss"));
    json_decref(tuned);
    json_decref(same);
    json_decref(copy);
    json_decref(base);

    /* refusals: nothing stored */
    json_decref(run_job(f, "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                           "\"samples\":8,\"ranges\":{\"u1\":[-1,1]}}}",
                        0)); /* job 5 */
    long long jobs = count(f, "jobs"), models = count(f, "models");
    train_text(job, sizeof job, 5, 2, ",\"epochs\":1,\"from\":{\"model\":1}");
    expect_refused(f, job, "/spec/from", "has 6 devices in layer 0, this network 5");
    train_text(job, sizeof job, 6, 3, ",\"epochs\":1,\"from\":{\"model\":1}");
    expect_refused(f, job, "/spec/from", "has 2 layers, this network 3");
    train_text(job, sizeof job, 6, 2, ",\"epochs\":1,\"from\":{\"model\":{\"job\":5}}");
    expect_refused(f, job, "/spec/from/model", "job 5 is a sweep job, not a train job");
    train_text(job, sizeof job, 6, 2, ",\"epochs\":1,\"from\":{\"model\":99}");
    expect_refused(f, job, "/spec/from/model", "no model with id 99");
    train_text(job, sizeof job, 6, 2, ",\"epochs\":1,\"from\":{\"model\":\"nope\"}");
    expect_refused(f, job, "/spec/from/model", "no model named 'nope'");
    train_text(job, sizeof job, 6, 2, ",\"epochs\":1,\"from\":{}");
    expect_refused(f, job, "/spec/from/model", "is required");
    train_text(job, sizeof job, 6, 2, ",\"calibrate\":true,\"from\":{\"model\":1}");
    expect_refused(f, job, "/spec/calibrate", "cannot be combined with \"from\"");
    train_text(job, sizeof job, 6, 2, ",\"epochs\":0");
    expect_refused(f, job, "/spec/epochs", "");
    assert_int_equal(count(f, "jobs"), jobs);
    assert_int_equal(count(f, "models"), models);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_train_from_model, qt_dir_setup, qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
