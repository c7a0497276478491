/*
 * import.c: CSV and IDX files into stored datasets (see import.h).
 *
 * A file streams into the store: the engine's reader (data_stream.h)
 * inflates and parses it a chunk of rows at a time (256 KiB of floats)
 * and each chunk is appended to the dataset's writer, which stores a block
 * of STORE_BLOCK_ROWS rows at a time, all in one transaction. Memory is so
 * bounded by a chunk and a block, never by the file; a file refused on its
 * last line leaves nothing (the transaction rolls back, and the WAL it
 * filled is truncated). What a file may hold is checked as early as it can
 * be: an IDX header announces its decompressed bytes and values before any
 * is read; a CSV file's are counted as it inflates and parses.
 * Trade-off: the write transaction stays open while the file is parsed (a
 * parse is a few seconds for the largest uploads), so other writers wait
 * that long for the lock; in exchange no half-parsed dataset is ever seen.
 */
#include "import.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_stream.h"
#include "qn_err.h"
#include "spec.h"

#define IMPORT_MAX_COLS 4096              /* CSV header columns */
#define IMPORT_CHUNK_BYTES ((size_t)256 << 10) /* floats parsed before they are stored */

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

/* The sentence of a refused file: "path: why", with the option that caps it. */
static int import__refuse(int rc, const char *path, const struct data_error *e,
                          const struct import_limits *lim, char *msg, size_t cap)
{
    const char *why = e->msg[0] ? e->msg : qn_err_msg(rc);
    if (rc == QN_ETOOLARGE)
        return import__fail(msg, cap, rc, "%s: %s, more than an upload may hold "
                            "(--max-upload %llu)", path, why,
                            (unsigned long long)lim->max_bytes);
    return import__fail(msg, cap, rc, "%s: %s", path, why);
}

/* Refuses values past the cap (0: none); `more` when only a lower bound is known. */
static int import__values(const char *path, int is_idx, uint64_t values, int more,
                          const struct import_limits *lim, char *msg, size_t cap)
{
    if (!lim->max_values || values <= lim->max_values)
        return 0;
    return import__fail(msg, cap, QN_ELIMIT,
                        "%s: the %s holds %s%llu values%s, more than a dataset may hold "
                        "(--max-dataset-values %llu)",
                        path, is_idx ? "IDX file" : "CSV file", more ? "more than " : "",
                        (unsigned long long)(more ? lim->max_values : values),
                        is_idx ? " once decompressed (one byte each)" : "",
                        (unsigned long long)lim->max_values);
}

/* What a stream's header tells before any row is read: the columns a
 * dataset may have, an IDX file's values. */
static int import__check_header(struct data_stream *ds, const char *path,
                                const struct import_limits *lim, char *msg, size_t cap)
{
    size_t n_cols = data_stream_cols(ds);
    int is_idx = data_stream_is_idx(ds);
    if (n_cols > (is_idx ? STORE_MAX_COLS : IMPORT_MAX_COLS))
        return import__fail(msg, cap, QN_ERANGE, "%s: %zu columns, more than %d", path, n_cols,
                            is_idx ? STORE_MAX_COLS : IMPORT_MAX_COLS);
    uint64_t values = (uint64_t)data_stream_rows_announced(ds) * n_cols;
    return import__values(path, is_idx, values, 0, lim, msg, cap);
}

/* Reads every row of ds into writer w, a chunk at a time. */
static int import__rows(struct data_stream *ds, struct store_dswriter *w, const char *path,
                        const struct import_limits *lim, char *msg, size_t cap)
{
    size_t n_cols = data_stream_cols(ds), k = IMPORT_CHUNK_BYTES / (n_cols * sizeof(float));
    k = k ? k : 1;
    float *chunk = malloc(k * n_cols * sizeof *chunk);
    int rc = chunk ? 0 : QN_ENOMEM;
    uint64_t values = 0;
    for (size_t n = 1; rc == 0 && n > 0;) {
        struct data_error e = {0, 0, {0}};
        rc = data_stream_read(ds, chunk, k, &n, &e);
        if (rc) {
            import__refuse(rc, path, &e, lim, msg, cap);
            break;
        }
        values += (uint64_t)n * n_cols;
        rc = import__values(path, data_stream_is_idx(ds), values, 1, lim, msg, cap);
        if (rc == 0 && n)
            rc = store_dataset_append(w, chunk, n);
    }
    free(chunk);
    return rc;
}

/* Streams path (and labels) into dataset `name`, in one transaction. */
static int import__stream(struct store *s, const char *path, const char *labels,
                          const char *name, const struct import_limits *lim, int64_t *id,
                          char *msg, size_t cap)
{
    struct data_stream *ds = NULL;
    struct data_error e = {0, 0, {0}};
    int rc = data_stream_open(&ds, path, labels, lim->max_bytes, &e);
    if (rc)
        return import__refuse(rc, path, &e, lim, msg, cap);
    rc = import__check_header(ds, path, lim, msg, cap);
    struct store_dswriter *w = NULL;
    if (rc == 0)
        rc = store_dataset_begin(s, name, data_stream_is_idx(ds) ? "idx" : "csv",
                                 data_stream_cols(ds), data_stream_names(ds), 0, &w);
    if (rc == 0)
        rc = import__rows(ds, w, path, lim, msg, cap);
    if (rc == 0)
        rc = store_dataset_finish(w, id);
    else
        store_dataset_abort(w);
    data_stream_close(ds);
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
    static const struct import_limits none = {0, 0};
    return import_file_max(s, path, labels, name, stem, &none, id, msg, cap);
}

int import_file_max(struct store *s, const char *path, const char *labels, const char *name,
                    const char *stem, const struct import_limits *lim, int64_t *id, char *msg,
                    size_t cap)
{
    msg[0] = '\0';
    char chosen[STORE_NAME_MAX];
    int rc = import__name(s, name, stem, chosen, sizeof chosen, msg, cap);
    return rc ? rc : import__stream(s, path, labels, chosen, lim, id, msg, cap);
}
