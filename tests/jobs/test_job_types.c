/*
 * test_job_types.c: the table of job types (job.c) and what derives from it.
 *
 * Covers: every row has all its functions and a unique name, and its index
 * round-trips; the type list and the envelope parser come from the table
 * (an unknown type is refused at /type with the table's names); validate
 * parses a spec without a store and lists its {"job": N} references with
 * their JSON path and the type each must name (a fit's dataset a sweep, a
 * train's dataset a sweep and its surrogates fits, an evaluation's model a
 * train, its dataset a sweep and its surrogates fits), and nothing else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "job.h"
#include "qn_err.h"
#include "spec.h"

static json_t *load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j)
        fail_msg("bad test JSON: %s", text);
    return j;
}

static void test_table_rows(void **state)
{
    (void)state;
    assert_true(job_type_count() >= 4 && job_type_count() <= JOB_TYPES_MAX);
    for (size_t i = 0; i < job_type_count(); i++) {
        const struct job_type *t = job_type_at(i);
        assert_non_null(t->name);
        assert_true(strlen(t->name) < sizeof((struct job_spec *)0)->type);
        assert_non_null(t->validate);
        assert_non_null(t->prepare);
        assert_non_null(t->run);
        assert_non_null(t->release);
        assert_ptr_equal(job_type_find(t->name), t);
        assert_int_equal(job_type_index(t), i);
        for (size_t k = 0; k < i; k++)
            assert_true(strcmp(job_type_at(k)->name, t->name) != 0);
    }
    assert_null(job_type_find("bake"));
    assert_true(job_type_find("train")->resumes);
    assert_false(job_type_find("sweep")->resumes);
    char names[128];
    job_type_names(names, sizeof names);
    assert_string_equal(names, "sweep, fit, train, evaluate");
}

static void test_envelope_types_from_table(void **state)
{
    (void)state;
    struct job_spec js;
    struct spec_error err = {{0}, {0}};
    json_t *j = load("{\"type\": \"evaluate\", \"spec\": {}}");
    assert_int_equal(job_spec_parse(j, &js, &err), 0);
    assert_string_equal(js.type, "evaluate");
    json_decref(js.spec);
    json_decref(j);
    j = load("{\"type\": \"bake\", \"spec\": {}}");
    assert_int_equal(job_spec_parse(j, &js, &err), QN_ESPEC);
    assert_string_equal(err.path, "/type");
    assert_string_equal(err.msg, "must be one of sweep, fit, train, evaluate");
    json_decref(j);
}

/* Validates the spec of type `type` with the table's row; 0 or the code. */
static int validate(const char *type, const char *spec, struct job_refs *refs,
                    struct spec_error *err)
{
    json_t *j = load(spec);
    memset(refs, 0, sizeof *refs);
    int rc = job_type_find(type)->validate(j, refs, err);
    json_decref(j);
    return rc;
}

static void assert_ref(const struct job_ref *r, int64_t job, const char *path, const char *type)
{
    assert_int_equal(r->job, job);
    assert_string_equal(r->path, path);
    assert_string_equal(r->type, type);
}

static void test_validate_lists_references(void **state)
{
    (void)state;
    struct job_refs refs;
    struct spec_error err = {{0}, {0}};
    assert_int_equal(validate("sweep",
                              "{\"device\": {\"kind\": \"neuron\"}, \"samples\": 4,"
                              " \"ranges\": {\"u1\": [0, 1]}}",
                              &refs, &err),
                     0);
    assert_int_equal(refs.n, 0);

    assert_int_equal(validate("fit", "{\"dataset\": {\"job\": 7}}", &refs, &err), 0);
    assert_int_equal(refs.n, 1);
    assert_ref(&refs.v[0], 7, "/spec/dataset", "sweep");
    assert_int_equal(validate("fit", "{\"dataset\": 7}", &refs, &err), 0);
    assert_int_equal(refs.n, 0); /* a dataset id is not a job */

    assert_int_equal(
        validate(
            "train",
            "{\"dataset\": {\"job\": 1, \"target\": \"out\"}, \"loss\": \"mse\","
            " \"network\": ["
            "{\"devices\": 2, \"device\": {\"kind\": \"crn_relu\"}, \"surrogate\": {\"job\": 2}},"
            "{\"devices\": 2, \"device\": {\"kind\": \"crn_relu\"}, \"surrogate\": 5},"
            "{\"devices\": 1, \"device\": {\"kind\": \"crn_relu\"}, \"surrogate\": {\"job\": 3}}]}",
            &refs, &err),
        0);
    assert_int_equal(refs.n, 3);
    assert_ref(&refs.v[0], 1, "/spec/dataset", "sweep");
    assert_ref(&refs.v[1], 2, "/spec/network/0/surrogate", "fit");
    assert_ref(&refs.v[2], 3, "/spec/network/2/surrogate", "fit");

    assert_int_equal(validate("evaluate",
                              "{\"model\": {\"job\": 4}, \"dataset\": \"xor\","
                              " \"surrogates\": {\"1\": {\"job\": 6}}}",
                              &refs, &err),
                     0);
    assert_int_equal(refs.n, 2);
    assert_ref(&refs.v[0], 4, "/spec/model", "train");
    assert_ref(&refs.v[1], 6, "/spec/surrogates/1", "fit");

    /* A spec that does not parse is refused at its path. */
    assert_int_equal(validate("fit", "{\"dataset\": {\"job\": 7}, \"epochs\": 0}", &refs, &err),
                     QN_ESPEC);
    assert_string_equal(err.path, "/spec/epochs");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_rows),
        cmocka_unit_test(test_envelope_types_from_table),
        cmocka_unit_test(test_validate_lists_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
