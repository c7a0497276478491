/*
 * test_store_catalog.c: the catalog's reads of the store (store_catalog.h).
 *
 * Covers: the job list's filters (state, type, owner, together) and its
 * pages (cursor and limit); jobs by state; metric rows after a row id, by
 * name, with a limit, and decimated (max_points keeps each name's first and
 * last rows and exactly max_points rows of a long history, every row of a
 * short one); surrogate and model lists and model summaries without their
 * arrays; the data version moving when another connection commits.
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
#include "qn_test.h"
#include "store.h"
#include "store_catalog.h"


static int64_t job_add(struct store *s, const char *type, const char *owner,
                       enum store_job_state st)
{
    int64_t id = 0;
    assert_int_equal(store_job_insert(s, type, "j", owner, 0, st, "{}", &id), 0);
    return id;
}

/* The ids of a job list into ids[] (at most 16); returns how many. */
static size_t job_ids(struct store *s, const struct store_job_filter *f, int64_t after,
                      size_t limit, int64_t *ids)
{
    struct store_job *list = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(s, f, after, limit, &list, &n), 0);
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++)
        ids[i] = list[i].id;
    store_job_list_free(list, n);
    return n;
}

static void test_job_list_filters(void **state)
{
    struct qt_store *f = *state;
    int64_t a = job_add(f->s, "sweep", "ann", JOB_QUEUED);
    int64_t b = job_add(f->s, "fit", "bob", JOB_QUEUED);
    int64_t c = job_add(f->s, "sweep", "bob", JOB_RUNNING);
    int64_t d = job_add(f->s, "train", "ann", JOB_WAITING);
    int64_t ids[16];

    assert_int_equal(job_ids(f->s, NULL, 0, 0, ids), 4);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[3], d);
    struct store_job_filter by_state = {.state = "queued"};
    assert_int_equal(job_ids(f->s, &by_state, 0, 0, ids), 2);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[1], b);
    struct store_job_filter by_type = {.type = "sweep"};
    assert_int_equal(job_ids(f->s, &by_type, 0, 0, ids), 2);
    assert_int_equal(ids[1], c);
    struct store_job_filter by_owner = {.owner = "ann"};
    assert_int_equal(job_ids(f->s, &by_owner, 0, 0, ids), 2);
    assert_int_equal(ids[1], d);
    struct store_job_filter all3 = {.state = "running", .type = "sweep", .owner = "bob"};
    assert_int_equal(job_ids(f->s, &all3, 0, 0, ids), 1);
    assert_int_equal(ids[0], c);
    struct store_job_filter none = {.state = "done"};
    assert_int_equal(job_ids(f->s, &none, 0, 0, ids), 0);

    /* Pages: the cursor is the last id of the page before. */
    assert_int_equal(job_ids(f->s, NULL, 0, 3, ids), 3);
    assert_int_equal(ids[2], c);
    assert_int_equal(job_ids(f->s, NULL, ids[2], 3, ids), 1);
    assert_int_equal(ids[0], d);
    assert_int_equal(job_ids(f->s, NULL, d, 3, ids), 0);
    assert_int_equal(job_ids(f->s, &by_state, a, 1, ids), 1); /* filter and cursor together */
    assert_int_equal(ids[0], b);

    struct store_job *list = NULL;
    size_t n = 0;
    assert_int_equal(store_job_list(f->s, &by_owner, 0, 0, &list, &n), 0);
    assert_string_equal(list[0].type, "sweep");
    assert_string_equal(list[0].spec, "{}");
    assert_int_equal(list[1].state, JOB_WAITING);
    store_job_list_free(list, n);
}

static void test_job_counts(void **state)
{
    struct qt_store *f = *state;
    int64_t counts[JOB_CANCELED + 1];
    assert_int_equal(store_job_counts(f->s, counts), 0);
    for (int i = 0; i <= JOB_CANCELED; i++)
        assert_int_equal(counts[i], 0);
    job_add(f->s, "sweep", NULL, JOB_QUEUED);
    job_add(f->s, "sweep", NULL, JOB_QUEUED);
    int64_t r = job_add(f->s, "fit", NULL, JOB_RUNNING);
    assert_int_equal(store_job_set_state(f->s, r, JOB_FAILED, NULL, "x"), 0);
    job_add(f->s, "train", NULL, JOB_WAITING);
    assert_int_equal(store_job_counts(f->s, counts), 0);
    assert_int_equal(counts[JOB_QUEUED], 2);
    assert_int_equal(counts[JOB_FAILED], 1);
    assert_int_equal(counts[JOB_WAITING], 1);
    assert_int_equal(counts[JOB_RUNNING], 0);
    assert_int_equal(counts[JOB_SUCCEEDED], 0);
}

/* The rows of q into list (store_metric_list_free it); returns how many. */
static size_t metrics(struct store *s, const struct store_metric_query *q,
                      struct store_metric **list)
{
    size_t n = 0;
    assert_int_equal(store_metric_list(s, q, list, &n), 0);
    for (size_t i = 1; i < n; i++)
        assert_true((*list)[i].id > (*list)[i - 1].id);
    return n;
}

static void test_metrics_after_an_id(void **state)
{
    struct qt_store *f = *state;
    int64_t job = job_add(f->s, "train", NULL, JOB_RUNNING);
    int64_t other = job_add(f->s, "train", NULL, JOB_RUNNING);
    for (int i = 1; i <= 5; i++) {
        assert_int_equal(store_metric_insert(f->s, job, i, i / 3, "step_loss", 1.0 / i), 0);
        assert_int_equal(store_metric_insert(f->s, other, i, 0, "step_loss", 9), 0);
    }
    assert_int_equal(store_metric_insert(f->s, job, 5, 1, "test_accuracy", NAN), 0);

    struct store_metric *m = NULL;
    struct store_metric_query q = {.job = job};
    assert_int_equal(metrics(f->s, &q, &m), 6);
    assert_int_equal(m[1].step, 2);
    assert_int_equal(m[2].epoch, 1);
    assert_string_equal(m[4].name, "step_loss");
    assert_true(m[4].value == 0.2);
    assert_true(m[4].time > 1.7e9);
    assert_string_equal(m[5].name, "test_accuracy");
    assert_true(isnan(m[5].value)); /* stored as NULL */
    int64_t third = m[2].id, last = m[5].id;
    store_metric_list_free(m, 6);

    q.after = third;
    assert_int_equal(metrics(f->s, &q, &m), 3);
    assert_int_equal(m[0].step, 4);
    store_metric_list_free(m, 3);
    q.limit = 2;
    assert_int_equal(metrics(f->s, &q, &m), 2);
    store_metric_list_free(m, 2);
    q.limit = 0;
    q.name = "test_accuracy";
    assert_int_equal(metrics(f->s, &q, &m), 1);
    assert_int_equal(m[0].id, last);
    store_metric_list_free(m, 1);
    q.after = last;
    q.name = NULL;
    assert_int_equal(metrics(f->s, &q, &m), 0);
    assert_null(m);
    q.job = 999;
    q.after = 0;
    assert_int_equal(metrics(f->s, &q, &m), 0);
    q.max_points = 1;
    size_t n = 7;
    assert_int_equal(store_metric_list(f->s, &q, &m, &n), QN_EINVAL);
    assert_int_equal(n, 0);
}

static void test_metrics_decimated(void **state)
{
    struct qt_store *f = *state;
    int64_t job = job_add(f->s, "train", NULL, JOB_RUNNING);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(store_metric_insert(f->s, job, i, i / 100, "step_loss", i), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(store_metric_insert(f->s, job, i, i, "test_loss", 10 + i), 0);

    struct store_metric *m = NULL;
    struct store_metric_query q = {.job = job, .max_points = 10};
    size_t n = metrics(f->s, &q, &m);
    assert_int_equal(n, 14); /* 10 of 1000 step_loss, all 4 test_loss */
    size_t steps = 0, tests = 0;
    int64_t first = -1, lastv = -1;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].name, "test_loss") == 0) {
            tests++;
            continue;
        }
        if (steps++ == 0)
            first = m[i].step;
        lastv = m[i].step;
    }
    assert_int_equal(steps, 10);
    assert_int_equal(tests, 4);
    assert_int_equal(first, 0);
    assert_int_equal(lastv, 999);
    store_metric_list_free(m, n);

    /* By name, and after a row id: the buckets span the rows after it. */
    q.name = "step_loss";
    q.max_points = 2;
    n = metrics(f->s, &q, &m);
    assert_int_equal(n, 2);
    assert_int_equal(m[0].step, 0);
    assert_int_equal(m[1].step, 999);
    q.after = m[0].id + 499;
    store_metric_list_free(m, n);
    q.max_points = 5;
    n = metrics(f->s, &q, &m);
    assert_int_equal(n, 5);
    assert_int_equal(m[0].step, 500);
    assert_int_equal(m[4].step, 999);
    store_metric_list_free(m, n);

    /* Without max_points every row comes back. */
    q.max_points = 0;
    q.after = 0;
    n = metrics(f->s, &q, &m);
    assert_int_equal(n, 1000);
    store_metric_list_free(m, n);
}

static void test_surrogate_and_model_lists(void **state)
{
    struct qt_store *f = *state;
    int64_t job = job_add(f->s, "fit", NULL, JOB_RUNNING);
    unsigned char blob[3] = {1, 2, 3};
    struct store_surrogate in = {.has_name = 1, .job_id = job, .device = "{\"kind\":\"neuron\"}",
                                 .n_in = 2, .val_rmse = 0.5, .max_error = NAN, .blob = blob,
                                 .blob_len = sizeof blob};
    snprintf(in.name, sizeof in.name, "sur");
    int64_t sid = 0;
    assert_int_equal(store_surrogate_insert(f->s, &in, &sid), 0);
    in.has_name = 0;
    in.job_id = 0;
    assert_int_equal(store_surrogate_insert(f->s, &in, NULL), 0);
    struct store_surrogate *sl = NULL;
    size_t n = 0;
    assert_int_equal(store_surrogate_list(f->s, 0, 0, &sl, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sl[0].id, sid);
    assert_string_equal(sl[0].name, "sur");
    assert_int_equal(sl[0].job_id, job);
    assert_string_equal(sl[0].device, "{\"kind\":\"neuron\"}");
    assert_int_equal(sl[0].n_in, 2);
    assert_true(sl[0].val_rmse == 0.5);
    assert_true(isnan(sl[0].max_error));
    assert_null(sl[0].blob); /* the weights stay in the database */
    assert_int_equal(sl[0].blob_len, 0);
    assert_int_equal(sl[1].has_name, 0);
    assert_int_equal(sl[1].job_id, 0);
    store_surrogate_list_free(sl, n);
    assert_int_equal(store_surrogate_list(f->s, sid, 1, &sl, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sl[0].id, sid + 1);
    store_surrogate_list_free(sl, n);

    float params[5] = {1, 2, 3, 4, 5}, scaler[2] = {0, 1};
    struct store_model m = {.has_name = 1, .job_id = job, .spec = "{\"a\":1}", .n_in = 1,
                            .n_out = 3, .n_classes = 3, .params = params, .n_params = 5,
                            .scaler = scaler, .n_scaler = 2};
    snprintf(m.name, sizeof m.name, "net");
    snprintf(m.loss, sizeof m.loss, "cross_entropy");
    int64_t mid = 0;
    assert_int_equal(store_model_insert(f->s, &m, &mid), 0);
    m.job_id = 0;
    m.n_params = 2;
    assert_int_equal(store_model_insert(f->s, &m, NULL), 0); /* a newer "net" */
    struct store_model *ml = NULL;
    assert_int_equal(store_model_list(f->s, 0, 0, &ml, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ml[0].id, mid);
    assert_int_equal(ml[0].n_params, 5);
    assert_null(ml[0].params);
    assert_null(ml[0].scaler);
    assert_int_equal(ml[0].n_scaler, 0);
    assert_string_equal(ml[0].spec, "{\"a\":1}");
    assert_string_equal(ml[0].loss, "cross_entropy");
    assert_int_equal(ml[0].n_classes, 3);
    assert_int_equal(ml[1].n_params, 2);
    store_model_list_free(ml, n);

    struct store_model one;
    assert_int_equal(store_model_summary(f->s, mid, &one), 0);
    assert_int_equal(one.n_params, 5);
    assert_null(one.params);
    store_model_free(&one);
    assert_int_equal(store_model_summary_by_name(f->s, "net", &one), 0);
    assert_int_equal(one.id, mid + 1); /* the newest of the name */
    assert_int_equal(one.n_params, 2);
    store_model_free(&one);
    assert_int_equal(store_model_summary(f->s, 99, &one), QN_ENOTFOUND);
    assert_int_equal(store_model_summary_by_name(f->s, "none", &one), QN_ENOTFOUND);
}

/* Another connection's commit moves the version; one's own does not. */
static void test_data_version(void **state)
{
    struct qt_store *f = *state;
    struct store *other = NULL;
    char msg[STORE_MSG_MAX];
    assert_int_equal(store_open(f->db, &other, msg, sizeof msg), 0);
    int64_t v0 = -1, v1 = -1, v2 = -1;
    assert_int_equal(store_data_version(f->s, &v0), 0);
    job_add(f->s, "sweep", NULL, JOB_QUEUED);
    assert_int_equal(store_data_version(f->s, &v1), 0);
    assert_true(v1 == v0);
    job_add(other, "sweep", NULL, JOB_QUEUED);
    assert_int_equal(store_data_version(f->s, &v2), 0);
    assert_true(v2 != v1);
    store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_list_filters, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_job_counts, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_after_an_id, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_decimated, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_surrogate_and_model_lists, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_data_version, qt_store_setup, qt_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
