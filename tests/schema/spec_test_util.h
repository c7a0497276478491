/*
 * spec_test_util.h: helpers shared by the schema test programs (test_spec.c,
 * test_spec_jobs.c), each of which includes it once. Include after cmocka.h,
 * jansson (via spec.h) and the libc headers it uses.
 *
 * Files are found relative to the source tree: $QN_SRC_DIR, else the
 * current directory (make runs tests from the repository root).
 */
#ifndef SPEC_TEST_UTIL_H
#define SPEC_TEST_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

/* |a - b| <= eps in double precision (cmocka 1.1's float compare casts to float). */
#define assert_double_equal(a, b, eps) check_double((double)(a), (double)(b), (eps), #a, __LINE__)
static void check_double(double a, double b, double eps, const char *what, int line)
{
    if (!(fabs(a - b) <= eps))
        fail_msg("line %d: %s = %.17g, expected %.17g", line, what, a, b);
}

/* spec_job_parse with the job types of this build (the jobs layer's table
 * is the list the daemon and `qn run` pass; the schema layer takes it as a
 * parameter). */
static int job_parse(const json_t *root, struct job_spec *out, struct spec_error *err)
{
    static const char *const types[] = {"sweep", "fit", "train", "evaluate"};
    return spec_job_parse(root, types, sizeof types / sizeof types[0], out, err);
}

static const char *src_dir(void)
{
    const char *d = getenv("QN_SRC_DIR");
    return d && *d ? d : ".";
}

/* Parses JSON text through spec_load; fails the test on error. */
static json_t *load(const char *text)
{
    json_t *j = NULL;
    struct spec_error err;
    if (spec_load(text, strlen(text), &j, &err))
        fail_msg("bad test JSON: %s: %s\n%s", err.path, err.msg, text);
    return j;
}

/* Loads a file relative to the source tree; fails the test on error. */
static json_t *load_file(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", src_dir(), rel);
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        fail_msg("%s: %s (line %d)", path, je.text, je.line);
    return j;
}

/* Calls fn(file name, document, ctx) for every *.json in schema/examples
 * (the document is released after the call); returns how many. */
static int for_each_example(void (*fn)(const char *name, json_t *root, void *ctx), void *ctx)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/schema/examples", src_dir());
    DIR *dh = opendir(dir);
    if (!dh)
        fail_msg("cannot open %s (run from the repository root or set QN_SRC_DIR)", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char rel[600];
        snprintf(rel, sizeof rel, "schema/examples/%s", e->d_name);
        json_t *root = load_file(rel);
        fn(e->d_name, root, ctx);
        json_decref(root);
        n++;
    }
    closedir(dh);
    return n;
}

#endif
