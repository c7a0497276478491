/*
 * test_spool.c: the spool's files (schema/spool.h, spool_net.h).
 *
 * Covers: arrays of every element kind read back as written; a file cut
 * short, one with a byte too many, another element kind or a bad magic
 * refused (QN_EFORMAT); the job file's envelope round trip and a version
 * or rank count out of range refused; rank 0's progress and metric lines
 * parsed back (a null value is NaN), and lines that are not ours refused;
 * a dataset round trip with labels; spool_remove leaves nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_err.h"
#include "qn_test.h"
#include "spool.h"
#include "spool_net.h"

static void test_arrays(void **state)
{
    struct qt_dir *f = *state;
    char msg[256];
    float x[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    double y[2] = {0.1, -1e300};
    int z[3] = {0, -7, 42};
    size_t d2[2] = {2, 3}, d1 = 2, d3 = 3;
    assert_int_equal(spool_array_write(f->dir, "x.qna", SPOOL_F32, 2, d2, x, msg, sizeof msg), 0);
    assert_int_equal(spool_array_write(f->dir, "y.qna", SPOOL_F64, 1, &d1, y, msg, sizeof msg), 0);
    assert_int_equal(spool_array_write(f->dir, "z.qna", SPOOL_I32, 1, &d3, z, msg, sizeof msg), 0);
    struct spool_array a;
    assert_int_equal(spool_array_read(f->dir, "x.qna", SPOOL_F32, &a, msg, sizeof msg), 0);
    assert_int_equal(a.rank, 2);
    assert_int_equal(a.dims[0], 2);
    assert_int_equal(a.dims[1], 3);
    assert_memory_equal(a.data, x, sizeof x);
    spool_array_free(&a);
    assert_int_equal(spool_array_read(f->dir, "y.qna", SPOOL_F64, &a, msg, sizeof msg), 0);
    assert_memory_equal(a.data, y, sizeof y);
    spool_array_free(&a);
    assert_int_equal(spool_array_read(f->dir, "z.qna", SPOOL_I32, &a, msg, sizeof msg), 0);
    assert_memory_equal(a.data, z, sizeof z);
    spool_array_free(&a);
    /* another kind than asked, a missing file */
    assert_int_equal(spool_array_read(f->dir, "z.qna", SPOOL_F32, &a, msg, sizeof msg),
                     QN_EFORMAT);
    assert_int_equal(spool_array_read(f->dir, "w.qna", SPOOL_F32, &a, msg, sizeof msg), QN_EIO);
    assert_non_null(strstr(msg, "w.qna"));
}

/* Writes the file dir/name as the first `keep` bytes of dir/from plus `extra` bytes. */
static void copy_cut(const char *dir, const char *from, const char *name, long keep, int extra)
{
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/%s", dir, from);
    snprintf(b, sizeof b, "%s/%s", dir, name);
    size_t len = 0;
    char *text = qt_read_file(a, &len);
    assert_non_null(text);
    FILE *out = fopen(b, "wb");
    assert_non_null(out);
    size_t n = keep < 0 ? len : (size_t)keep;
    assert_int_equal(fwrite(text, 1, n, out), n);
    for (int i = 0; i < extra; i++)
        fputc(0, out);
    fclose(out);
    free(text);
}

static void test_bad_arrays(void **state)
{
    struct qt_dir *f = *state;
    char msg[256];
    double y[4] = {1, 2, 3, 4};
    size_t d = 4;
    struct spool_array a;
    assert_int_equal(spool_array_write(f->dir, "y.qna", SPOOL_F64, 1, &d, y, msg, sizeof msg), 0);
    copy_cut(f->dir, "y.qna", "short.qna", 8 + 8 + 8 + 31, 0); /* header, then 3 and a bit */
    copy_cut(f->dir, "y.qna", "long.qna", -1, 1);
    copy_cut(f->dir, "y.qna", "head.qna", 12, 0);
    assert_int_equal(spool_array_read(f->dir, "short.qna", SPOOL_F64, &a, msg, sizeof msg),
                     QN_EFORMAT);
    assert_int_equal(spool_array_read(f->dir, "long.qna", SPOOL_F64, &a, msg, sizeof msg),
                     QN_EFORMAT);
    assert_int_equal(spool_array_read(f->dir, "head.qna", SPOOL_F64, &a, msg, sizeof msg),
                     QN_EFORMAT);
    assert_int_equal(qt_write_file(f->dir, "magic.qna", "QNARRAY2........................"), 0);
    assert_int_equal(spool_array_read(f->dir, "magic.qna", SPOOL_F64, &a, msg, sizeof msg),
                     QN_EFORMAT);
    assert_int_equal(spool_array_read(f->dir, "y.qna", SPOOL_F64, &a, msg, sizeof msg), 0);
    spool_array_free(&a);
}

static void test_job_file(void **state)
{
    struct qt_dir *f = *state;
    char msg[256];
    json_t *spec = json_pack("{si}", "samples", 5);
    assert_int_equal(spool_job_write(f->dir, 12, "sweep", "crn", 4, 2, spec, msg, sizeof msg), 0);
    struct spool_job j;
    assert_int_equal(spool_job_read(f->dir, &j, msg, sizeof msg), 0);
    assert_int_equal(j.job, 12);
    assert_string_equal(j.type, "sweep");
    assert_string_equal(j.name, "crn");
    assert_int_equal(j.ranks, 4);
    assert_int_equal(j.threads, 2);
    assert_true(json_equal(j.spec, spec));
    spool_job_close(&j);
    json_decref(spec);
    assert_int_equal(qt_write_file(f->dir, SPOOL_JOB,
                                   "{\"version\":2,\"job\":1,\"type\":\"sweep\",\"name\":\"a\","
                                   "\"ranks\":2,\"threads\":1,\"spec\":{}}"),
                     0);
    assert_int_equal(spool_job_read(f->dir, &j, msg, sizeof msg), QN_EFORMAT);
    spool_job_close(&j);
    assert_int_equal(qt_write_file(f->dir, SPOOL_JOB,
                                   "{\"version\":1,\"job\":1,\"type\":\"sweep\",\"name\":\"a\","
                                   "\"ranks\":5000,\"threads\":1,\"spec\":{}}"),
                     0);
    assert_int_equal(spool_job_read(f->dir, &j, msg, sizeof msg), QN_EFORMAT);
    spool_job_close(&j);
}

static void test_lines(void **state)
{
    (void)state;
    struct spool_line l;
    char *p = spool_line_progress(3, 10);
    assert_int_equal(spool_line_parse(p, strlen(p), &l), 0);
    assert_int_equal(l.kind, SPOOL_LINE_PROGRESS);
    assert_int_equal(l.done, 3);
    assert_int_equal(l.total, 10);
    free(p);
    p = spool_line_metric(7, 2, "step_loss", 0.783);
    assert_int_equal(spool_line_parse(p, strlen(p), &l), 0);
    assert_int_equal(l.kind, SPOOL_LINE_METRIC);
    assert_int_equal(l.step, 7);
    assert_int_equal(l.epoch, 2);
    assert_string_equal(l.name, "step_loss");
    assert_true(l.value == 0.783);
    free(p);
    p = spool_line_metric(1, 0, "loss", NAN);
    assert_int_equal(spool_line_parse(p, strlen(p), &l), 0);
    assert_true(isnan(l.value));
    free(p);
    const char *bad[] = {"", "Warning: something from mpirun", "{\"progress\":[1]}",
                         "{\"progress\":[-1,2]}", "{\"metric\":{\"step\":1}}", "[1,2]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(spool_line_parse(bad[i], strlen(bad[i]), &l), QN_EFORMAT);
}

static void test_data_and_remove(void **state)
{
    struct qt_dir *f = *state;
    char msg[256], dir[700];
    snprintf(dir, sizeof dir, "%s/job-3", f->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    struct data_set ds = {0}, back = {0};
    assert_int_equal(data_alloc(&ds, 3, 2, 4, 0), 0);
    for (size_t i = 0; i < 6; i++)
        ds.x[i] = (float)i / 7.0f;
    ds.labels[0] = 3, ds.labels[1] = 0, ds.labels[2] = 2;
    assert_int_equal(spool_data_write(dir, "eval", &ds, msg, sizeof msg), 0);
    assert_int_equal(spool_data_read(dir, "eval", 4, &back, msg, sizeof msg), 0);
    assert_int_equal(back.n, 3);
    assert_int_equal(back.d, 2);
    assert_memory_equal(back.x, ds.x, 6 * sizeof(float));
    assert_memory_equal(back.labels, ds.labels, 3 * sizeof(int));
    data_close(&back);
    /* read as a regression set, the labels file is not there */
    assert_int_equal(spool_data_read(dir, "eval", 0, &back, msg, sizeof msg), QN_EIO);
    data_close(&back);
    data_close(&ds);
    assert_int_equal(spool_remove(dir), 0);
    struct stat st;
    assert_int_not_equal(stat(dir, &st), 0);
    assert_int_equal(spool_remove(dir), 0); /* gone already: fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_arrays, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arrays, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_job_file, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test(test_lines),
        cmocka_unit_test_setup_teardown(test_data_and_remove, qt_dir_setup, qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
