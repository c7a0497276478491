/*
 * import.c: CSV and IDX files into stored datasets (see import.h).
 *
 * Trade-off: the file is parsed whole into an engine dataset first (the
 * engine's loaders check every cell), then written to the store in one
 * transaction; a file is held twice in memory for a moment (as text or
 * bytes, then as floats) in exchange for one parser and one set of
 * messages. The CSV loader wants one target column, so every column but the
 * last is read as an input and the last as the target; together they are
 * every column in the header's order.
 */
#include "import.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "qn_err.h"
#include "spec.h"

#define IMPORT_MAX_COLS 4096 /* CSV header columns */
#define IMPORT_NAME_MAX 256  /* bytes of a CSV column name */

static int import__fail(char *msg, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int import__fail(char *msg, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* 1 when the file starts like IDX: gzip magic, or 00 00 08 (unsigned bytes). */
static int import__is_idx(const char *path, int *is_idx)
{
    unsigned char b[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return QN_EIO;
    size_t n = fread(b, 1, 4, f);
    fclose(f);
    *is_idx = n >= 2 && ((b[0] == 0x1f && b[1] == 0x8b) ||
                         (n == 4 && b[0] == 0 && b[1] == 0 && b[2] == 0x08));
    return 0;
}

/* Column names of a CSV header into names (each a new string). */
static int import__csv_header(const char *path, char **names, size_t *n, char *msg, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return import__fail(msg, cap, QN_EIO, "%s: cannot open", path);
    char field[IMPORT_NAME_MAX];
    size_t len = 0;
    int c, rc = 0;
    *n = 0;
    for (;;) {
        c = fgetc(f);
        if (c != ',' && c != '\n' && c != EOF) {
            if (c != '"' && c != '\r' && !(c == ' ' && len == 0) && len + 1 < sizeof field)
                field[len++] = (char)c;
            continue;
        }
        while (len && field[len - 1] == ' ')
            len--;
        field[len] = '\0';
        if (*n >= IMPORT_MAX_COLS)
            rc = import__fail(msg, cap, QN_ERANGE, "more than %d columns", IMPORT_MAX_COLS);
        else if (!(names[(*n)++] = strdup(field)))
            rc = QN_ENOMEM;
        len = 0;
        if (rc || c != ',')
            break;
    }
    fclose(f);
    return rc;
}

/* Writes x (n, d) and, when given, labels (n) or y (n) as rows of d + 1 columns. */
static int import__write(struct store *s, const char *name, const char *source,
                         const struct data_set *ds, const char *const *cols, size_t n_cols,
                         int64_t *id)
{
    struct store_dswriter *w = NULL;
    int rc = store_dataset_begin(s, name, source, n_cols, cols, 0, &w);
    if (rc)
        return rc;
    float *row = malloc(n_cols * sizeof *row);
    rc = row ? 0 : QN_ENOMEM;
    for (size_t i = 0; rc == 0 && i < ds->n; i++) {
        memcpy(row, ds->x + i * ds->d, ds->d * sizeof *row);
        if (n_cols > ds->d)
            row[ds->d] = ds->labels ? (float)ds->labels[i] : ds->y[i];
        rc = store_dataset_append(w, row, 1);
    }
    free(row);
    if (rc) {
        store_dataset_abort(w);
        return rc;
    }
    return store_dataset_finish(w, id);
}

static int import__csv(struct store *s, const char *path, const char *name, int64_t *id,
                       char *msg, size_t cap)
{
    char **names = calloc(IMPORT_MAX_COLS, sizeof *names);
    size_t n = 0;
    struct data_set ds = {0};
    int rc = names ? import__csv_header(path, names, &n, msg, cap) : QN_ENOMEM;
    if (rc == 0 && n < 2)
        rc = import__fail(msg, cap, QN_EFORMAT, "%s: a CSV dataset needs a header of at least "
                          "two columns", path);
    if (rc == 0) {
        struct data_csv_opts o = {(const char *const *)names, n - 1, NULL, names[n - 1]};
        struct data_error e = {0, 0, {0}};
        rc = data_load_csv(&ds, path, &o, &e);
        if (rc)
            import__fail(msg, cap, rc, "%s: %s", path, e.msg[0] ? e.msg : qn_err_msg(rc));
    }
    if (rc == 0)
        rc = import__write(s, name, "csv", &ds, (const char *const *)names, n, id);
    data_close(&ds);
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* An images file, followed in the same file by its labels or not. */
static int import__idx_joined(struct data_set *ds, const char *path, char *msg, size_t cap)
{
    struct data_idx img, lab;
    struct data_error e = {0, 0, {0}};
    int rc = data_idx_read_joined(&img, &lab, path, &e);
    if (rc == 0) {
        rc = data_idx_to_set(ds, &img, lab.len ? &lab : NULL, &e);
        data_idx_close(&img);
        data_idx_close(&lab);
    }
    return rc ? import__fail(msg, cap, rc, "%s: %s", path, e.msg[0] ? e.msg : qn_err_msg(rc)) : 0;
}

static int import__idx(struct store *s, const char *path, const char *labels, const char *name,
                       int64_t *id, char *msg, size_t cap)
{
    struct data_set ds = {0};
    struct data_error e = {0, 0, {0}};
    int rc = 0;
    if (labels) {
        rc = data_load_idx(&ds, path, labels, &e);
        if (rc)
            import__fail(msg, cap, rc, "%s: %s", path, e.msg[0] ? e.msg : qn_err_msg(rc));
    } else {
        rc = import__idx_joined(&ds, path, msg, cap);
    }
    size_t n_cols = ds.d + (ds.labels ? 1 : 0);
    char **cols = rc ? NULL : calloc(n_cols, sizeof *cols);
    if (rc == 0 && !cols)
        rc = QN_ENOMEM;
    for (size_t j = 0; rc == 0 && j < n_cols; j++) {
        char b[32];
        snprintf(b, sizeof b, j < ds.d ? "p%zu" : "label", j);
        rc = (cols[j] = strdup(b)) ? 0 : QN_ENOMEM;
    }
    if (rc == 0)
        rc = import__write(s, name, "idx", &ds, (const char *const *)cols, n_cols, id);
    for (size_t j = 0; cols && j < n_cols; j++)
        free(cols[j]);
    free(cols);
    data_close(&ds);
    return rc;
}

/* Is `name` taken (a built-in dataset's or a stored one's)? 1 or 0, or a store code. */
static int import__taken(struct store *s, const char *name)
{
    if (spec_dataset_is_builtin(name))
        return 1;
    struct store_dataset d;
    int rc = store_dataset_get_by_name(s, name, &d);
    if (rc == 0)
        store_dataset_free(&d);
    return rc == 0 ? 1 : rc == QN_ENOTFOUND ? 0 : rc;
}

/* Checks a given name, or picks a free readable one from stem, into buf. */
static int import__name(struct store *s, const char *name, const char *stem, char *buf,
                        size_t size, char *msg, size_t cap)
{
    if (name) {
        int t = import__taken(s, name);
        if (t == 1)
            return import__fail(msg, cap, QN_EEXIST,
                                spec_dataset_is_builtin(name)
                                    ? "'%s' is a built-in dataset: import under another name"
                                    : "a dataset named '%s' already exists: import under "
                                      "another name",
                                name);
        if (t == 0)
            snprintf(buf, size, "%s", name);
        return t;
    }
    const char *base = stem && *stem ? stem : "upload";
    for (int k = 1; k < 10000; k++) {
        if (k == 1)
            snprintf(buf, size, "%.*s", STORE_NAME_MAX - 8, base);
        else
            snprintf(buf, size, "%.*s %d", STORE_NAME_MAX - 8, base, k);
        int t = import__taken(s, buf);
        if (t != 1)
            return t;
    }
    return import__fail(msg, cap, QN_EEXIST, "no free name from '%s'", base);
}

int import_file(struct store *s, const char *path, const char *labels, const char *name,
                const char *stem, int64_t *id, char *msg, size_t cap)
{
    msg[0] = '\0';
    char chosen[STORE_NAME_MAX];
    int rc = import__name(s, name, stem, chosen, sizeof chosen, msg, cap);
    if (rc)
        return rc;
    name = chosen;
    int is_idx = 0;
    if (import__is_idx(path, &is_idx))
        return import__fail(msg, cap, QN_EIO, "%s: cannot open", path);
    if (!is_idx && labels)
        return import__fail(msg, cap, QN_EINVAL, "--labels applies to IDX images files; %s "
                            "is not IDX", path);
    return is_idx ? import__idx(s, path, labels, name, id, msg, cap)
                  : import__csv(s, path, name, id, msg, cap);
}
