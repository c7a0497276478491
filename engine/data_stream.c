/*
 * data_stream.c: CSV and IDX files read a few rows at a time (see
 * data_stream.h).
 *
 * Trade-off: an IDX file that carries its labels after its images is read
 * by two zlib readers of the same file, the second one having skipped
 * (inflated and dropped) the images once at open, so the images are
 * inflated twice; in exchange neither the images nor the labels (a byte a
 * row) are ever held whole. CSV text is inflated into a buffer of whole
 * lines (1 MiB, growing to at most one line of DATA_STREAM_LINE_MAX bytes)
 * and parsed by data.c's own line, header and row parsers.
 */
#include "data_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "qn_err.h"

#define STREAM__BUF ((size_t)1 << 20)  /* bytes of CSV text inflated at once */
#define STREAM__SKIP ((size_t)1 << 16) /* bytes dropped at once when skipping images */

struct data_stream {
    int is_idx;            /* IDX images (1) or CSV (0) */
    uint64_t max_bytes;    /* decompressed bytes allowed, 0: no cap */
    size_t n_cols;         /* columns of a row */
    char **names;          /* IDX: (n_cols) column names, owned; CSV: csv.names */
    size_t rows;           /* rows read so far */
    struct data__src main; /* the file: images, or CSV text */
    /* IDX */
    struct data__src lab; /* its labels (lab.gz NULL when none) */
    int joined;           /* the labels follow the images in the same file */
    size_t n_items, d;    /* images announced, pixels per image */
    unsigned char *px;    /* (px_cap) image bytes then labels of one read, owned */
    size_t px_cap;
    /* CSV */
    struct data__csv csv;  /* names, roles and line number; p and end point into buf */
    char *buf;             /* (cap) inflated text, owned */
    size_t cap, len, pos;  /* buf's size, bytes held, first unread byte */
    size_t scanned;        /* bytes from pos already searched for a line end */
    int eof;               /* the file has given its last byte */
    uint64_t inflated;     /* bytes inflated so far */
    struct data_set chunk; /* (chunk.n, n_cols - 1) inputs and (chunk.n) targets of a read */
};

/* ---- helpers ---------------------------------------------------------------- */

/* Grows s->px to hold n bytes. */
static int stream__px(struct data_stream *s, size_t n)
{
    if (n <= s->px_cap)
        return QN_OK;
    unsigned char *p = realloc(s->px, n);
    if (!p)
        return QN_ENOMEM;
    s->px = p;
    s->px_cap = n;
    return QN_OK;
}

/* Refuses `bytes` decompressed bytes when they pass the cap. */
static int stream__cap(const struct data_stream *s, uint64_t bytes, const char *what,
                       struct data_error *err)
{
    if (!s->max_bytes || bytes <= s->max_bytes)
        return QN_OK;
    return data__fail(err, QN_ETOOLARGE, 0, 0, "%s %llu bytes once decompressed, more than %llu",
                      what, (unsigned long long)bytes, (unsigned long long)s->max_bytes);
}

/* Rewrites err's sentence as one about the labels that follow the images. */
static int stream__about_labels(int rc, struct data_error *err)
{
    if (!err || rc == QN_OK)
        return rc;
    char why[sizeof err->msg];
    const char *m = strncmp(err->msg, "IDX: ", 5) == 0 ? err->msg + 5 : err->msg;
    snprintf(why, sizeof why, "%s", m);
    snprintf(err->msg, sizeof err->msg, "IDX: the labels after the images: %s", why);
    return rc;
}

/* ---- IDX ---------------------------------------------------------------------- */

/* Reads past n bytes of s->lab; the bytes it got into *got. */
static int stream__skip(struct data_stream *s, size_t n, size_t *got)
{
    int rc = stream__px(s, STREAM__SKIP);
    for (*got = 0; rc == QN_OK && *got < n;) {
        size_t want = n - *got < STREAM__SKIP ? n - *got : STREAM__SKIP;
        long long r = data__read(&s->lab, s->px, want);
        if (r < 0)
            return QN_EFORMAT;
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    return rc;
}

/* The labels header, from its own file or after the images of path; none
 * (s->lab closed) when the file ends with its images. */
static int stream__labels_open(struct data_stream *s, const char *path, const char *labels,
                               size_t img_len, struct data_error *err)
{
    int rc = data__src_file(&s->lab, labels ? labels : path, err);
    if (rc)
        return rc;
    s->joined = !labels;
    size_t got = 0;
    if (s->joined) {
        rc = stream__skip(s, 16 + img_len, &got);
        if (rc == QN_EFORMAT)
            return data__fail(err, rc, 0, 0, "IDX: corrupt compressed data");
        if (rc == QN_OK && (got < 16 + img_len || !data__gz_more(s->lab.gz))) {
            data__src_close(&s->lab); /* no labels: reading the images tells the rest */
            return QN_OK;
        }
    }
    struct data_idx h;
    if (rc == QN_OK)
        rc = data__idx_header(&s->lab, &h, 1, err);
    if (rc)
        return s->joined ? stream__about_labels(rc, err) : rc;
    if (h.dims[0] != s->n_items)
        return data__fail(err, QN_EFORMAT, 0, 0, "IDX: %zu images but %zu labels", s->n_items,
                          h.dims[0]);
    return QN_OK;
}

/* The column names p0..p{d-1} and, with labels, "label". */
static int stream__idx_names(struct data_stream *s)
{
    s->n_cols = s->d + (s->lab.gz ? 1 : 0);
    s->names = calloc(s->n_cols, sizeof *s->names);
    if (!s->names)
        return QN_ENOMEM;
    for (size_t j = 0; j < s->n_cols; j++) {
        char b[32];
        snprintf(b, sizeof b, j < s->d ? "p%zu" : "label", j);
        if (!(s->names[j] = strdup(b)))
            return QN_ENOMEM;
    }
    return QN_OK;
}

static int stream__idx_open(struct data_stream *s, const char *path, const char *labels,
                            struct data_error *err)
{
    struct data_idx h;
    int rc = data__idx_header(&s->main, &h, 3, err);
    if (rc)
        return rc;
    s->n_items = h.dims[0];
    s->d = h.dims[1] * h.dims[2];
    if (s->d >= DATA_STREAM_MAX_COLS)
        return data__fail(err, QN_ERANGE, 0, 0, "IDX: images of %zu pixels, more than %zu columns",
                          s->d, DATA_STREAM_MAX_COLS - 1);
    uint64_t bytes = 16 + (uint64_t)h.len;
    rc = stream__cap(s, bytes, "IDX: the images header announces", err);
    if (rc == QN_OK)
        rc = stream__labels_open(s, path, labels, h.len, err);
    if (rc == QN_OK && s->lab.gz)
        rc = stream__cap(s, bytes + 8 + s->n_items, "IDX: the images and labels headers announce",
                         err);
    return rc ? rc : stream__idx_names(s);
}

/* Nothing may follow n data bytes of src. */
static int stream__idx_ends(struct data__src *src, size_t n, struct data_error *err)
{
    unsigned char extra;
    if (data__read(src, &extra, 1) == 0)
        return QN_OK;
    return data__fail(err, QN_EFORMAT, 0, 0, "IDX: trailing bytes after %zu data bytes", n);
}

/* At the end: the images' file ends after them (unless labels follow), the
 * labels' after the labels. */
static int stream__idx_end(struct data_stream *s, struct data_error *err)
{
    int rc = QN_OK;
    if (!s->joined)
        rc = stream__idx_ends(&s->main, s->n_items * s->d, err);
    if (rc == QN_OK && s->lab.gz) {
        rc = stream__idx_ends(&s->lab, s->n_items, err);
        if (s->joined)
            stream__about_labels(rc, err);
    }
    return rc;
}

/* Reads n bytes of src into p; a truncated or corrupt read is refused
 * naming the bytes done of the total. */
static int stream__idx_bytes(struct data__src *src, unsigned char *p, size_t n, size_t done,
                             size_t total, struct data_error *err)
{
    long long got = data__read(src, p, n);
    if (got < 0)
        return data__fail(err, QN_EFORMAT, 0, 0, "IDX: corrupt compressed data");
    if ((size_t)got != n)
        return data__fail(err, QN_EFORMAT, 0, 0, "IDX: truncated: %zu of %zu data bytes",
                          done + (size_t)got, total);
    return QN_OK;
}

static int stream__idx_read(struct data_stream *s, float *rows, size_t max_rows, size_t *n,
                            struct data_error *err)
{
    size_t k = s->n_items - s->rows < max_rows ? s->n_items - s->rows : max_rows;
    if (k == 0)
        return stream__idx_end(s, err);
    size_t d = s->d, nc = s->n_cols; /* k * d <= n_items * d <= DATA_MAX_ELEMS */
    int rc = stream__px(s, k * d + k);
    if (rc == QN_OK)
        rc = stream__idx_bytes(&s->main, s->px, k * d, s->rows * d, s->n_items * d, err);
    if (rc == QN_OK && s->lab.gz) {
        rc = stream__idx_bytes(&s->lab, s->px + k * d, k, s->rows, s->n_items, err);
        if (s->joined)
            stream__about_labels(rc, err);
    }
    if (rc)
        return rc;
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < d; j++)
            rows[i * nc + j] = (float)s->px[i * d + j] / 255.0f;
        if (nc > d)
            rows[i * nc + d] = (float)s->px[k * d + i];
    }
    s->rows += k;
    *n = k;
    return QN_OK;
}

/* ---- CSV ---------------------------------------------------------------------- */

/* Inflates more text into buf after moving the unread part to its start. */
static int stream__fill(struct data_stream *s, struct data_error *err)
{
    if (s->pos) {
        memmove(s->buf, s->buf + s->pos, s->len - s->pos);
        s->len -= s->pos;
        s->pos = 0;
    }
    if (s->len >= DATA_STREAM_LINE_MAX)
        return data__fail(err, QN_EFORMAT, s->csv.line, 0, "line %zu: longer than %zu bytes",
                          s->csv.line, DATA_STREAM_LINE_MAX);
    if (s->len == s->cap) {
        size_t ncap = 2 * s->cap < DATA_STREAM_LINE_MAX ? 2 * s->cap : DATA_STREAM_LINE_MAX;
        char *p = realloc(s->buf, ncap);
        if (!p)
            return QN_ENOMEM;
        s->buf = p;
        s->cap = ncap;
    }
    size_t want = s->cap - s->len;
    if (s->max_bytes && want > s->max_bytes + 1 - s->inflated)
        want = (size_t)(s->max_bytes + 1 - s->inflated); /* one byte past the cap tells */
    long long r = data__read(&s->main, s->buf + s->len, want);
    if (r < 0)
        return data__fail(err, QN_EFORMAT, s->csv.line, 0,
                          "line %zu: the compressed data is corrupt", s->csv.line);
    s->eof = r == 0;
    s->len += (size_t)r;
    s->inflated += (uint64_t)r;
    if (s->max_bytes && s->inflated > s->max_bytes)
        return data__fail(err, QN_ETOOLARGE, s->csv.line, 0,
                          "the CSV file inflates to more than %llu bytes",
                          (unsigned long long)s->max_bytes);
    return QN_OK;
}

/* Makes buf[pos, *end) the next whole line, with its line end; *end == pos
 * at the end of the file. */
static int stream__line(struct data_stream *s, size_t *end, struct data_error *err)
{
    for (;;) {
        size_t from = s->pos + s->scanned;
        const char *nl = memchr(s->buf + from, '\n', s->len - from);
        if (nl || s->eof) {
            *end = nl ? (size_t)(nl - s->buf) + 1 : s->len;
            s->scanned = 0;
            return QN_OK;
        }
        s->scanned = s->len - s->pos;
        int rc = stream__fill(s, err);
        if (rc)
            return rc;
    }
}

/* Points the parser at line buf[pos, end) and consumes it into [*b, *e). */
static void stream__take_line(struct data_stream *s, size_t end, const char **b, const char **e)
{
    s->csv.p = s->buf + s->pos;
    s->csv.end = s->buf + end;
    data__csv_line(&s->csv, b, e);
    s->pos = end;
}

static int stream__csv_open(struct data_stream *s, struct data_error *err)
{
    s->cap = STREAM__BUF;
    s->buf = malloc(s->cap);
    if (!s->buf)
        return QN_ENOMEM;
    size_t end = 0;
    s->csv.line = 1;
    int rc = stream__line(s, &end, err);
    if (rc)
        return rc;
    s->csv.p = s->buf + s->pos;
    s->csv.end = s->buf + end;
    rc = data__csv_header(&s->csv, err);
    s->pos = end;
    if (rc)
        return rc;
    if (s->csv.n_cols < 2)
        return data__fail(err, QN_EFORMAT, 1, 0,
                          "line 1: a CSV dataset needs a header of at least two columns");
    struct data_csv_opts o = {(const char *const *)s->csv.names, s->csv.n_cols - 1, NULL,
                              s->csv.names[s->csv.n_cols - 1]};
    size_t d = 0;
    rc = data__csv_roles(&s->csv, &o, &d, err);
    s->n_cols = s->csv.n_cols;
    return rc;
}

/* Copies the chunk's first k rows (inputs, then the target) into rows. */
static void stream__csv_copy(const struct data_stream *s, float *rows, size_t k)
{
    size_t d = s->chunk.d, nc = s->n_cols;
    for (size_t i = 0; i < k; i++) {
        memcpy(rows + i * nc, s->chunk.x + i * d, d * sizeof *rows);
        rows[i * nc + d] = s->chunk.y[i];
    }
}

static int stream__csv_read(struct data_stream *s, float *rows, size_t max_rows, size_t *n,
                            struct data_error *err)
{
    if (!s->chunk.x) {
        int rc = data_alloc(&s->chunk, max_rows, s->n_cols - 1, 0, 1);
        if (rc)
            return data__fail(err, rc, 0, 0, "cannot allocate %zu rows", max_rows);
    }
    size_t k = max_rows < s->chunk.n ? max_rows : s->chunk.n, r = 0;
    while (r < k) {
        size_t end = 0;
        const char *b, *e;
        int rc = stream__line(s, &end, err);
        if (rc)
            return rc;
        if (end == s->pos)
            break;
        stream__take_line(s, end, &b, &e);
        if (!data__blank(b, e) && (rc = data__csv_row(&s->csv, b, e, &s->chunk, r++, err)))
            return rc;
        s->csv.line++;
    }
    if (r == 0 && s->rows == 0)
        return data__fail(err, QN_EFORMAT, s->csv.line, 0, "no data rows after the header");
    stream__csv_copy(s, rows, r);
    s->rows += r;
    *n = r;
    return QN_OK;
}

/* ---- the interface ----------------------------------------------------------------- */

/* Tells IDX from CSV by the first decompressed bytes, then rewinds. */
static int stream__sniff(struct data_stream *s, struct data_error *err)
{
    unsigned char m[4] = {0};
    long long got = data__read(&s->main, m, 4);
    if (got < 0)
        return data__fail(err, QN_EFORMAT, 0, 0, "the compressed data is corrupt");
    s->is_idx = got == 4 && m[0] == 0 && m[1] == 0 && m[2] == 0x08;
    if (gzrewind(s->main.gz) != 0)
        return data__fail(err, QN_EIO, 0, 0, "cannot read the file again from its start");
    return QN_OK;
}

int data_stream_open(struct data_stream **out, const char *path, const char *labels,
                     uint64_t max_bytes, struct data_error *err)
{
    *out = NULL;
    if (err)
        memset(err, 0, sizeof *err);
    struct data_stream *s = calloc(1, sizeof *s);
    if (!s)
        return QN_ENOMEM;
    s->max_bytes = max_bytes;
    int rc = data__src_file(&s->main, path, err);
    if (rc == QN_OK)
        rc = stream__sniff(s, err);
    if (rc == QN_OK && !s->is_idx && labels)
        rc = data__fail(err, QN_EINVAL, 0, 0,
                        "a labels file goes with an IDX images file; this file is not IDX");
    if (rc == QN_OK)
        rc = s->is_idx ? stream__idx_open(s, path, labels, err) : stream__csv_open(s, err);
    if (rc == QN_ENOMEM && err && !err->msg[0])
        data__fail(err, rc, 0, 0, "out of memory");
    if (rc) {
        data_stream_close(s);
        return rc;
    }
    *out = s;
    return QN_OK;
}

size_t data_stream_cols(const struct data_stream *s) { return s->n_cols; }

const char *const *data_stream_names(const struct data_stream *s)
{
    return (const char *const *)(s->is_idx ? s->names : s->csv.names);
}

int data_stream_is_idx(const struct data_stream *s) { return s->is_idx; }

size_t data_stream_rows_announced(const struct data_stream *s)
{
    return s->is_idx ? s->n_items : 0;
}

int data_stream_read(struct data_stream *s, float *rows, size_t max_rows, size_t *n,
                     struct data_error *err)
{
    *n = 0;
    if (err)
        memset(err, 0, sizeof *err);
    if (max_rows == 0)
        return data__fail(err, QN_EINVAL, 0, 0, "a read of no rows");
    int rc = s->is_idx ? stream__idx_read(s, rows, max_rows, n, err)
                       : stream__csv_read(s, rows, max_rows, n, err);
    if (rc == QN_ENOMEM && err && !err->msg[0])
        data__fail(err, rc, 0, 0, "out of memory");
    return rc;
}

void data_stream_close(struct data_stream *s)
{
    if (!s)
        return;
    data__src_close(&s->main);
    if (s->lab.gz)
        data__src_close(&s->lab);
    for (size_t j = 0; s->names && j < s->n_cols; j++)
        free(s->names[j]);
    free(s->names);
    data__csv_close(&s->csv);
    free(s->buf);
    free(s->px);
    data_close(&s->chunk);
    free(s);
}
