/*
 * test_chips.c: device populations through the real `qn` binary (issue 12).
 * A small network of crn_relu devices with kappa spread lognormal cv 0.3 and
 * output noise is trained (nominally) via device on 60 spiral points; an
 * evaluate job over 3 chips (on 2 worker threads: whole chips in parallel)
 * then gives, chip by chip, exactly what three evaluate jobs of one chip each
 * give and what the same job on 1 thread gives, and its summary is the
 * mean, sample sd, min and max of the list; "noise": false changes the
 * scores; "chip" on a model with no variability is refused with the reason,
 * and so is a chip count out of range. A sweep over (u1, kappa) stores the columns u1, kappa,
 * out, status, each row the fixed point at its own kappa; a range on a
 * parameter the device lacks is refused at its path and stores nothing; a
 * fit on the sweep is conditioned on kappa (its result and record say so);
 * a layer via that surrogate, of a device whose kappa varies, scores each
 * chip at its own kappa (noise off, the chips still differ); a device
 * without kappa is refused that surrogate. Hardware-aware training through
 * the real qn is reproducible from its seed (two runs, the same numbers) and
 * differs from nominal training; "chip" on a network with no variability,
 * "chip" with "hardware_aware", hardware_aware with nothing to draw, and
 * hardware_aware through a surrogate not conditioned on the varying kappa
 * are refused at their paths, storing nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qn_test.h"
#include "qt_daemon.h"

#define CRN_CHIP                                                                            \
    "{\"kind\":\"crn_relu\",\"params\":{\"kappa\":0.01},\"variability\":{\"kappa\":"       \
    "{\"dist\":\"lognormal\",\"cv\":0.3}},\"noise\":{\"output\":{\"sd\":0.05}}}"
#define SPIRALS "{\"name\":\"spirals\",\"samples\":60}"

static json_t *run_job(const struct qt_dir *f, const char *job, int want_status)
{
    return qt_run_job(f, "q.db", job, "2", want_status);
}

/* A job that must be refused (exit 2, nothing on stdout) with needle in stderr. */
static void expect_refused(const struct qt_dir *f, const char *job, const char *needle)
{
    qt_run_refused(f, "q.db", job, needle, NULL);
}

static const json_t *result(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(json_object_get(rec, "result"), key);
    if (!v)
        fail_msg("result has no '%s'", key);
    return v;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("no number '%s'", key);
    return json_number_value(v);
}

/* evaluate of model 1 on the spirals with extra spec fields (", ..." or ""). */
static json_t *evaluate(const struct qt_dir *f, const char *extra)
{
    char job[512];
    snprintf(job, sizeof job,
             "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},\"dataset\":" SPIRALS
             ",\"split\":\"all\"%s}}",
             extra);
    return run_job(f, job, 0);
}

static void test_chips_equal_one_by_one(void **state)
{
    struct qt_dir *f = *state;
    json_t *rec = run_job(f,
                          "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":["
                          "{\"devices\":6,\"device\":" CRN_CHIP ",\"via\":\"device\"},"
                          "{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":"
                          "{\"activation\":\"identity\"}}}],\"epochs\":3,\"batch\":16,"
                          "\"seed\":1,\"checkpoint_every\":0}}",
                          0);
    json_decref(rec);
    rec = evaluate(f, ",\"chips\":{\"count\":3,\"seed\":5}");
    const json_t *chips = result(rec, "chips");
    assert_int_equal(json_array_size(chips), 3);
    double acc[3], sum = 0, lo = INFINITY, hi = -INFINITY, distinct = 0;
    for (size_t i = 0; i < 3; i++) {
        const json_t *c = json_array_get(chips, i);
        assert_int_equal(json_integer_value(json_object_get(c, "chip")), 5 + (json_int_t)i);
        acc[i] = num(c, "accuracy");
        sum += acc[i], lo = fmin(lo, acc[i]), hi = fmax(hi, acc[i]);
        char extra[64];
        snprintf(extra, sizeof extra, ",\"chip\":%zu", 5 + i);
        json_t *one = evaluate(f, extra);
        assert_int_equal(json_integer_value(result(one, "chip")), 5 + (json_int_t)i);
        /* the same chip and the same noise: the same numbers, exactly */
        assert_true(num(json_object_get(one, "result"), "accuracy") == acc[i]);
        assert_true(num(json_object_get(one, "result"), "loss") == num(c, "loss"));
        distinct += i > 0 && num(c, "loss") != num(json_array_get(chips, 0), "loss");
        json_decref(one);
    }
    assert_true(distinct > 0); /* the chips differ */
    /* one worker thread scores the chips one at a time: the same list, bit for bit */
    json_t *seq = qt_run_job(f, "q.db",
                             "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},"
                             "\"dataset\":" SPIRALS ",\"split\":\"all\","
                             "\"chips\":{\"count\":3,\"seed\":5}}}",
                             "1", 0);
    assert_true(json_equal(result(seq, "chips"), chips));
    assert_true(json_equal(result(seq, "solves"), result(rec, "solves")));
    json_decref(seq);
    const json_t *r = json_object_get(rec, "result");
    double mean = sum / 3, ss = 0;
    for (size_t i = 0; i < 3; i++)
        ss += (acc[i] - mean) * (acc[i] - mean);
    assert_true(fabs(num(r, "accuracy_mean") - mean) < 1e-12);
    assert_true(fabs(num(r, "accuracy_sd") - sqrt(ss / 2)) < 1e-12);
    assert_true(num(r, "accuracy_min") == lo && num(r, "accuracy_max") == hi);
    assert_true(fabs(num(r, "accuracy") - mean) < 1e-12);
    assert_true(json_is_true(result(rec, "noise")));

    /* noise off: chip 5 scores otherwise (the noise is drawn by default) */
    json_t *quiet = evaluate(f, ",\"chip\":5,\"noise\":false");
    assert_true(num(json_object_get(quiet, "result"), "loss") !=
                num(json_array_get(chips, 0), "loss"));
    json_decref(quiet);
    json_decref(rec);

    /* a chip count out of range, or "chip" and "chips" together: refused */
    expect_refused(f, "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},\"dataset\":"
                      SPIRALS ",\"chips\":{\"count\":0}}}", "/spec/chips/count");
    expect_refused(f, "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":1},\"dataset\":"
                      SPIRALS ",\"chips\":{\"count\":1001}}}", "/spec/chips/count");

    /* a model with no variability: "chip" is refused with the reason, not ignored */
    rec = run_job(f,
                  "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":["
                  "{\"devices\":4,\"device\":{\"kind\":\"crn_relu\"},\"via\":\"device\"},"
                  "{\"devices\":2,\"device\":{\"kind\":\"neuron\",\"params\":"
                  "{\"activation\":\"identity\"}}}],\"epochs\":1,\"batch\":16,"
                  "\"checkpoint_every\":0}}",
                  0);
    json_int_t job = json_integer_value(json_object_get(rec, "id"));
    json_decref(rec);
    char text[512];
    snprintf(text, sizeof text,
             "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":%lld},\"dataset\":" SPIRALS
             ",\"chip\":3}}",
             (long long)job);
    expect_refused(f, text, "/spec/chip");
    expect_refused(f, text, "no layer that solves a device with variability");
}

/* Checks the CSV of a (u1, kappa) sweep: the header, and every row the fixed point
 * (u + sqrt(u^2 + 4 kappa)) / 2 at its own (float32) u1 and kappa, to 1e-5 relative
 * (float32 storage of out). Returns the rows. */
static size_t check_kappa_csv(const char *csv)
{
    const char *header = "u1,kappa,out,status\n";
    if (strncmp(csv, header, strlen(header)) != 0)
        fail_msg("header: %.40s", csv);
    const char *p = csv + strlen(header);
    size_t rows = 0;
    double k_lo = INFINITY, k_hi = -INFINITY;
    while (*p) {
        double u, kappa, out;
        int used = 0; /* set only when the row ends in status ok */
        if (sscanf(p, "%lf,%lf,%lf,ok\n%n", &u, &kappa, &out, &used) != 3 || !used)
            fail_msg("row %zu: %.60s", rows, p);
        double want = (u + sqrt(u * u + 4 * kappa)) / 2;
        if (fabs(out - want) > 1e-5 * fmax(1.0, want))
            fail_msg("row %zu: u1 %g kappa %g out %g want %g", rows, u, kappa, out, want);
        k_lo = fmin(k_lo, kappa), k_hi = fmax(k_hi, kappa);
        p += used, rows++;
    }
    assert_true(k_lo >= 0.002 && k_hi <= 0.05 && k_hi - k_lo > 0.03); /* kappa was swept */
    return rows;
}

static void test_parameter_sweep(void **state)
{
    struct qt_dir *f = *state;
    const char *bad = "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                      "\"samples\":64,\"ranges\":{\"u1\":[-4,4],\"gain\":[1,2]}}}";
    expect_refused(f, bad, "/spec/ranges/gain");
    assert_int_equal(qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READWRITE, 0,
                                    "SELECT count(*) FROM jobs"),
                     0);
    json_decref(run_job(f,
                        "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                        "\"samples\":64,\"ranges\":{\"kappa\":[0.002,0.05],\"u1\":[-4,4]}}}",
                        0));
    struct qt_run r;
    assert_int_equal(qt_qn(f->dir, NULL, &r, "dataset", "export", "1", "--db", "q.db", NULL), 0);
    qt_expect_status(&r, 0);
    assert_int_equal(check_kappa_csv(r.out), 64);
    qt_run_free(&r);

    /* a fit on it is conditioned on kappa, and says so in its result and record */
    json_t *rec = run_job(f,
                          "{\"type\":\"fit\",\"spec\":{\"dataset\":{\"job\":1},"
                          "\"epochs\":5}}",
                          0);
    const json_t *cond = result(rec, "conditioned_on");
    assert_int_equal(json_array_size(cond), 1);
    assert_string_equal(json_string_value(json_array_get(cond, 0)), "kappa");
    json_decref(rec);
    assert_int_equal(qt_qn(f->dir, NULL, &r, "surrogate", "show", "1", "--db", "q.db", NULL), 0);
    qt_expect_status(&r, 0);
    json_t *sur = json_loads(r.out, 0, NULL);
    assert_non_null(sur);
    cond = json_object_get(sur, "conditioned_on");
    assert_int_equal(json_array_size(cond), 1);
    assert_string_equal(json_string_value(json_array_get(cond, 0)), "kappa");
    assert_int_equal(json_array_size(json_object_get(json_object_get(sur, "domain"), "lo")), 2);
    json_decref(sur);
    qt_run_free(&r);

    /* a layer via that surrogate answers per instance: chips score differently */
    json_decref(run_job(f,
                        "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":["
                        "{\"devices\":6,\"device\":" CRN_CHIP ",\"via\":\"surrogate\","
                        "\"surrogate\":{\"job\":2}},{\"devices\":2,\"device\":{\"kind\":"
                        "\"neuron\",\"params\":{\"activation\":\"identity\"}}}],\"epochs\":2,"
                        "\"batch\":16,\"seed\":1,\"checkpoint_every\":0}}",
                        0));
    rec = run_job(f,
                  "{\"type\":\"evaluate\",\"spec\":{\"model\":{\"job\":3},\"dataset\":"
                  SPIRALS ",\"split\":\"all\",\"noise\":false,\"chips\":{\"count\":3,"
                  "\"seed\":5}}}",
                  0);
    const json_t *chips = result(rec, "chips");
    assert_int_equal(json_array_size(chips), 3);
    assert_true(num(json_array_get(chips, 0), "loss") != num(json_array_get(chips, 1), "loss"));
    json_decref(rec);
    /* a device without kappa cannot use it */
    expect_refused(f,
                   "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":["
                   "{\"devices\":6,\"device\":{\"kind\":\"hodgkin_huxley\"},\"via\":"
                   "\"surrogate\",\"surrogate\":{\"job\":2}},{\"devices\":2,\"device\":"
                   "{\"kind\":\"neuron\"}}],\"epochs\":1}}",
                   "conditioned on 'kappa', which this layer's hodgkin_huxley device does not "
                   "have");
}

/* A train on the spirals: layer 0 six `device` via `via` (with ", \"surrogate\": ..."
 * when given), then 2 identity neurons, 3 epochs, seed 1, and extra spec fields. */
static void train_text(char *buf, size_t cap, const char *device, const char *via,
                       const char *extra)
{
    snprintf(buf, cap,
             "{\"type\":\"train\",\"spec\":{\"dataset\":" SPIRALS ",\"network\":["
             "{\"devices\":6,\"device\":%s,\"via\":%s},{\"devices\":2,\"device\":"
             "{\"kind\":\"neuron\",\"params\":{\"activation\":\"identity\"}}}],"
             "\"epochs\":3,\"batch\":16,\"seed\":1,\"checkpoint_every\":0%s}}",
             device, via, extra);
}

static void test_train_on_chips(void **state)
{
    struct qt_dir *f = *state;
    char job[1024];
    double loss[4];
    const char *extra[4] = {",\"hardware_aware\":true", ",\"hardware_aware\":true", "",
                            ",\"chip\":3"};
    for (size_t i = 0; i < 4; i++) {
        train_text(job, sizeof job, CRN_CHIP, "\"device\"", extra[i]);
        json_t *rec = run_job(f, job, 0);
        loss[i] = num(json_object_get(rec, "result"), "test_loss");
        json_decref(rec);
    }
    assert_true(loss[0] == loss[1]); /* reproducible from its seed */
    assert_true(loss[0] != loss[2]); /* and not nominal training */
    assert_true(loss[3] != loss[2]);  /* one chip trains (and scores) that chip */

    long long jobs = qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READWRITE, 0,
                                    "SELECT count(*) FROM jobs");
    train_text(job, sizeof job, "{\"kind\":\"crn_relu\"}", "\"device\"", ",\"chip\":3");
    expect_refused(f, job, "/spec/chip");
    expect_refused(f, job, "no layer that a chip changes");
    train_text(job, sizeof job, CRN_CHIP, "\"device\"", ",\"chip\":3,\"hardware_aware\":true");
    expect_refused(f, job, "/spec/hardware_aware");
    train_text(job, sizeof job, "{\"kind\":\"crn_relu\"}", "\"device\"",
               ",\"hardware_aware\":true");
    expect_refused(f, job, "nothing to draw");
    assert_int_equal(qd_db_file_int(f->dir, "q.db", SQLITE_OPEN_READWRITE, 0,
                                    "SELECT count(*) FROM jobs"),
                     jobs);

    /* a surrogate of the nominal device cannot stand for a fresh chip every step */
    json_decref(run_job(f,
                        "{\"type\":\"sweep\",\"spec\":{\"device\":{\"kind\":\"crn_relu\"},"
                        "\"samples\":64,\"ranges\":{\"u1\":[-4,4]}}}",
                        0));
    char fit[128];
    snprintf(fit, sizeof fit,
             "{\"type\":\"fit\",\"spec\":{\"dataset\":{\"job\":%lld},\"epochs\":3}}",
             jobs + 1);
    json_decref(run_job(f, fit, 0));
    char via[96];
    snprintf(via, sizeof via, "\"surrogate\",\"surrogate\":{\"job\":%lld}", jobs + 2);
    train_text(job, sizeof job, CRN_CHIP, via, ",\"hardware_aware\":true");
    expect_refused(f, job, "/spec/network/0/surrogate");
    expect_refused(f, job, "conditioned on every parameter of the device that varies");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chips_equal_one_by_one, qt_dir_setup,
                                        qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_parameter_sweep, qt_dir_setup, qt_dir_teardown),
        cmocka_unit_test_setup_teardown(test_train_on_chips, qt_dir_setup, qt_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
