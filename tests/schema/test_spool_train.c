/*
 * test_spool_train.c: the train and fit files of the spool (spool_train.c)
 * and the checkpoint line. A checkpoint written by rank 0 reads back with
 * the same bits, refuses a vector of the wrong length, and is gone after
 * spool_checkpoint_remove; two checkpoints of different epochs live side by
 * side. The checkpoint line parses to its epoch and a negative one is
 * refused. Train and fit results keep their numbers (NaN as null), and a
 * result of the wrong layer count is refused. "staged" is taken out of a
 * spec, and a spec without it is refused.
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
#include <unistd.h>

#include "qn_err.h"
#include "qn_test.h"
#include "spool.h"
#include "surrogate.h"
#include "train.h"

static void test_checkpoint(void **state)
{
    const struct qt_dir *f = *state;
    float p1[5] = {1, -2, 3.5f, 0, 1e-30f}, s1[3] = {0.25f, 7, -1};
    float p2[5] = {9, 9, 9, 9, 9}, s2[3] = {8, 8, 8};
    float p[5], s[3], big[6];
    uint64_t t = 0;
    char msg[256];
    assert_int_equal(spool_checkpoint_write(f->dir, 1, p1, 5, s1, 3, 42, msg, sizeof msg), 0);
    assert_int_equal(spool_checkpoint_write(f->dir, 2, p2, 5, s2, 3, 84, msg, sizeof msg), 0);
    assert_int_equal(spool_checkpoint_read(f->dir, 1, p, 5, s, 3, &t, msg, sizeof msg), 0);
    assert_memory_equal(p, p1, sizeof p1);
    assert_memory_equal(s, s1, sizeof s1);
    assert_int_equal(t, 42);
    assert_int_equal(spool_checkpoint_read(f->dir, 1, big, 6, s, 3, &t, msg, sizeof msg),
                     QN_EFORMAT);
    spool_checkpoint_remove(f->dir, 1);
    assert_int_not_equal(spool_checkpoint_read(f->dir, 1, p, 5, s, 3, &t, msg, sizeof msg), 0);
    assert_int_equal(spool_checkpoint_read(f->dir, 2, p, 5, s, 3, &t, msg, sizeof msg), 0);
    assert_memory_equal(p, p2, sizeof p2);
    assert_int_equal(t, 84);
}

static void test_line(void **state)
{
    (void)state;
    struct spool_line l;
    char *text = spool_line_checkpoint(7);
    assert_non_null(text);
    assert_int_equal(spool_line_parse(text, strlen(text), &l), 0);
    assert_int_equal(l.kind, SPOOL_LINE_CHECKPOINT);
    assert_int_equal(l.epoch, 7);
    free(text);
    const char *bad = "{\"checkpoint\": -1}", *str = "{\"checkpoint\": \"3\"}";
    assert_int_equal(spool_line_parse(bad, strlen(bad), &l), QN_EFORMAT);
    assert_int_equal(spool_line_parse(str, strlen(str), &l), QN_EFORMAT);
}

static void test_results(void **state)
{
    const struct qt_dir *f = *state;
    char msg[256];
    struct train_result a = {.train_loss = 0.5,
                             .train_accuracy = NAN,
                             .test_loss = 0.625,
                             .test_accuracy = 0.75,
                             .epochs_done = 3,
                             .out_of_domain = NAN},
                        b;
    a.out_of_domain_layer[0] = 0.125, a.out_of_domain_layer[1] = NAN;
    size_t failed = 0;
    assert_int_equal(spool_train_result_write(f->dir, &a, 2, 11, msg, sizeof msg), 0);
    assert_int_equal(spool_train_result_read(f->dir, &b, 2, &failed, msg, sizeof msg), 0);
    assert_true(b.train_loss == 0.5 && isnan(b.train_accuracy) && b.test_loss == 0.625);
    assert_true(b.test_accuracy == 0.75 && isnan(b.out_of_domain));
    assert_true(b.out_of_domain_layer[0] == 0.125 && isnan(b.out_of_domain_layer[1]));
    assert_int_equal(b.epochs_done, 3);
    assert_int_equal(failed, 11);
    assert_int_equal(spool_train_result_read(f->dir, &b, 3, &failed, msg, sizeof msg), QN_EFORMAT);

    struct fit_result x = {.val_rmse = 0.01,
                           .max_error = NAN,
                           .n_train = 90,
                           .n_val = 10,
                           .n_excluded = 2,
                           .epochs_run = 7,
                           .best_epoch = 5},
                      y;
    assert_int_equal(spool_fit_result_write(f->dir, &x, msg, sizeof msg), 0);
    assert_int_equal(spool_fit_result_read(f->dir, &y, msg, sizeof msg), 0);
    assert_true(y.val_rmse == 0.01 && isnan(y.max_error));
    assert_true(y.n_train == 90 && y.n_val == 10 && y.n_excluded == 2 && y.epochs_run == 7 &&
                y.best_epoch == 5);
}

static void test_staged(void **state)
{
    (void)state;
    json_t *spec = json_pack("{ss s{si}}", "dataset", "xor", SPOOL_STAGED, "t", 3), *staged;
    assert_int_equal(spool_staged_take(spec, &staged), 0);
    assert_null(json_object_get(spec, SPOOL_STAGED));
    assert_int_equal(json_integer_value(json_object_get(staged, "t")), 3);
    json_decref(staged);
    assert_int_equal(spool_staged_take(spec, &staged), QN_EFORMAT);
    assert_null(staged);
    json_decref(spec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoint, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test(test_line),
        cmocka_unit_test_setup_teardown(test_results, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test(test_staged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
