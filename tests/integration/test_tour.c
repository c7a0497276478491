/*
 * test_tour.c: README.md's "A short tour", run as written.
 *
 * Every command of the tour's sh blocks ("$ ..." lines, with their
 * continuation lines while a quote is open or a line ends with "\") runs through /bin/sh in a
 * temporary directory holding build/qn (the binary under test) and
 * schema/ (the repository's); a file a command reads that the tour shows
 * as a json block just before (sweep.json) is written from that block.
 * What the tour prints after a command is checked against what the
 * command printed, so the tour cannot drift from the program:
 *   - a JSON record (lines from "{", "..." eliding parts): every key shown
 *     is in the output record; every integer, string, true/false/null value
 *     shown is the output's (timestamps excepted); every real shown is the
 *     output's within 5% (the tour rounds);
 *   - "qn: ..." lines are the command's stderr (a refused spec; exit 2);
 *   - other lines (CSV) are the output's lines, exactly;
 * and every command exits 0 except one whose output shows a "qn:" error.
 * Skipped (qt_skip) when the dataset-fashion-mnist package is missing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qn_test.h"

#define TOUR_FASHION "/usr/share/datasets/fashion-mnist"
#define TOUR_MAX_LINES 4096

/* README.md's lines from "## A short tour" to the next "## " heading (new array). */
static char **tour_lines(size_t *n)
{
    char *text = qt_read_file("README.md", NULL);
    assert_non_null(text);
    char **lines = calloc(TOUR_MAX_LINES, sizeof *lines);
    assert_non_null(lines);
    int in = 0;
    *n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (strncmp(l, "## ", 3) == 0) {
            if (in)
                break;
            in = strcmp(l, "## A short tour") == 0;
            continue;
        }
        if (in && *n < TOUR_MAX_LINES)
            lines[(*n)++] = strdup(l);
    }
    free(text);
    assert_true(*n > 0);
    return lines;
}

/* Appends s to the growing string *buf. */
static void append(char **buf, const char *s)
{
    size_t a = *buf ? strlen(*buf) : 0, b = strlen(s);
    char *p = realloc(*buf, a + b + 2);
    assert_non_null(p);
    memcpy(p + a, s, b + 1);
    *buf = p;
}

/* Number of single quotes in s. */
static int quotes(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\'';
    return n;
}

/* Every (key, value) of a JSON value, recursively, into obj (key -> array of values). */
static void collect(const json_t *v, json_t *pairs)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) {
            json_t *list = json_object_get(pairs, k);
            if (!list)
                json_object_set_new(pairs, k, list = json_array());
            json_array_append(list, x);
            collect(x, pairs);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) collect(x, pairs);
    }
}

/* Does one of the values the output has under key match the tour's literal? */
static int matches(const json_t *values, const char *lit)
{
    json_error_t e;
    json_t *want = json_loads(lit, JSON_DECODE_ANY, &e);
    assert_non_null(want);
    int ok = 0;
    size_t i;
    json_t *got;
    json_array_foreach(values, i, got) {
        if (json_is_real(want) && json_is_number(got)) {
            double w = json_real_value(want), g = json_number_value(got);
            ok |= fabs(g - w) <= 0.05 * fabs(w) + 1e-12;
        } else {
            ok |= json_equal(want, got);
        }
    }
    json_decref(want);
    return ok;
}

/* Checks the tour's JSON record text (with "..." elisions) against the output's record. */
static void check_record(const char *cmd, const char *shown, const char *out)
{
    json_error_t e;
    json_t *rec = json_loads(out, JSON_DISABLE_EOF_CHECK, &e);
    if (!rec)
        fail_msg("%s: the output is not a JSON record: %s", cmd, out);
    json_t *pairs = json_object();
    collect(rec, pairs);
    for (const char *p = shown; (p = strchr(p, '"'));) {
        const char *q = strchr(p + 1, '"');
        assert_non_null(q);
        if (q[1] != ':') { /* a string value or an elided one: skip past it */
            p = q + 1;
            continue;
        }
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)(q - p - 1), p + 1);
        const json_t *values = json_object_get(pairs, key);
        if (!values)
            fail_msg("%s: the tour shows \"%s\" but the output has none: %s", cmd, key, out);
        const char *v = q + 2, *end = v;
        if (*v == '"') {
            end = strchr(v + 1, '"') + 1;
        } else {
            while (*end && (isalnum((unsigned char)*end) || strchr("+-.", *end)))
                end++;
        }
        char lit[256];
        snprintf(lit, sizeof lit, "%.*s", (int)(end - v), v);
        int timestamp = !strcmp(key, "created") || !strcmp(key, "started") || !strcmp(key, "finished");
        int elided = !strcmp(lit, "\"...\"") || lit[0] == '\0';
        if (!timestamp && !elided && !matches(values, lit))
            fail_msg("%s: the tour shows \"%s\":%s but the output says %s", cmd, key, lit, out);
        p = end;
    }
    json_decref(pairs);
    json_decref(rec);
}

/* Runs one command of the tour in dir and checks it against what the tour shows. */
static void run_step(const char *dir, const char *cmd, const char *shown, const char *last_json)
{
    /* A file the command reads that the tour showed as a json block. */
    const char *arg = strstr(cmd, "build/qn run ");
    if (arg && last_json) {
        char file[128];
        if (sscanf(arg + strlen("build/qn run "), "%127s", file) == 1 && strstr(file, ".json")) {
            char path[800];
            snprintf(path, sizeof path, "%s/%s", dir, file);
            if (access(path, F_OK) != 0)
                assert_int_equal(qt_write_file(dir, file, last_json), 0);
        }
    }
    struct qt_run r;
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    assert_int_equal(qt_run(dir, argv, NULL, &r), 0);
    int refusal = shown && strncmp(shown, "qn: ", 4) == 0;
    if (r.status != (refusal ? 2 : 0))
        fail_msg("%s: exit status %d; stderr: %s", cmd, r.status, r.err);
    if (shown && refusal) {
        if (strncmp(r.err, shown, strlen(shown)) != 0)
            fail_msg("%s: the tour shows '%s' but qn said '%s'", cmd, shown, r.err);
    } else if (shown && shown[0] == '{') {
        check_record(cmd, shown, r.out);
    } else if (shown) {
        if (strcmp(r.out, shown) != 0)
            fail_msg("%s: the tour shows\n%s\nbut the output is\n%s", cmd, shown, r.out);
    }
    printf("ok   %s\n", cmd);
    qt_run_free(&r);
}

static void test_tour(void **state)
{
    (void)state;
    struct stat st;
    if (stat(TOUR_FASHION, &st) != 0)
        qt_skip("the package dataset-fashion-mnist is not installed (no " TOUR_FASHION ")");
    struct qt_dir f;
    assert_int_equal(qt_tmpdir(f.dir, sizeof f.dir), 0);
    char cwd[512], link[800], target[800];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(link, sizeof link, "%s/build", f.dir);
    assert_int_equal(mkdir(link, 0755), 0);
    snprintf(link, sizeof link, "%s/build/qn", f.dir);
    assert_int_equal(symlink(QN_BIN, link), 0);
    snprintf(link, sizeof link, "%s/schema", f.dir);
    snprintf(target, sizeof target, "%s/schema", cwd);
    assert_int_equal(symlink(target, link), 0);

    size_t n = 0;
    char **lines = tour_lines(&n);
    char *last_json = NULL, *block = NULL;
    int in_sh = 0, in_json = 0, steps = 0;
    char *cmd = NULL, *shown = NULL;
    for (size_t i = 0; i <= n; i++) {
        const char *l = i < n ? lines[i] : "```";
        int fence = strncmp(l, "```", 3) == 0;
        int starts = in_sh && strncmp(l, "$ ", 2) == 0;
        int open_quote = cmd && (quotes(cmd) % 2 == 1 || cmd[strlen(cmd) - 1] == '\\');
        if (in_sh && cmd && open_quote && !fence && !shown) { /* a continuation line */
            append(&cmd, "\n");
            append(&cmd, l);
            continue;
        }
        if (in_sh && cmd && (fence || starts)) { /* the command before ends here */
            run_step(f.dir, cmd, shown, last_json);
            steps++;
            free(cmd), free(shown);
            cmd = shown = NULL;
        }
        if (fence) {
            if (in_json) {
                free(last_json);
                last_json = block;
                block = NULL;
            }
            in_sh = !in_sh && !in_json && strcmp(l, "```sh") == 0;
            in_json = !in_json && !in_sh && strcmp(l, "```json") == 0 ? 1 : 0;
            continue;
        }
        if (in_json) {
            append(&block, l);
            append(&block, "\n");
        } else if (starts) {
            const char *c = l + 2, *hash = strstr(c, "  # ");
            cmd = strndup(c, hash ? (size_t)(hash - c) : strlen(c));
        } else if (in_sh && cmd && l[0] != '[') { /* the progress bar goes to a terminal only */
            append(&shown, l);
            append(&shown, "\n");
        }
    }
    assert_true(steps >= 8);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(last_json);
    free(block);
    qt_rmtree(f.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tour),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
