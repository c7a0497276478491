/*
 * data.c: dataset loaders (IDX, CSV), generators, splits, standardisation.
 *
 * Loaders treat every byte as hostile: sizes are multiplied with overflow
 * checks and capped (DATA_MAX_ELEMS) before anything is allocated, reads are
 * checked for truncation and trailing bytes, and a refused file leaves the
 * output empty. IDX goes through zlib: gzopen/gzread read gzip and raw files
 * alike; for buffers, inflate is used when the gzip magic is present.
 */
#include "data.h"

#include <errno.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <gsl/gsl_randist.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data_internal.h"
#include "qn_err.h"

/* Fills *err (if any) with a printf-style message; returns code. */
int data__fail(struct data_error *err, int code, size_t line, size_t col, const char *fmt,
                      ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->line = line;
        err->column = col;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* a*b into *out unless it overflows or exceeds cap; returns 0 or -1. */
static int data__mul(size_t a, size_t b, size_t cap, size_t *out)
{
    if (a != 0 && b > cap / a)
        return -1;
    *out = a * b;
    return 0;
}

int data_alloc(struct data_set *ds, size_t n, size_t d, size_t n_classes, size_t t)
{
    size_t nx, ny;
    memset(ds, 0, sizeof *ds);
    if (d == 0 || (n_classes == 0) == (t == 0) || n_classes > DATA_MAX_CLASSES)
        return QN_EINVAL;
    if (data__mul(n, d, DATA_MAX_ELEMS, &nx) || data__mul(n, t, DATA_MAX_ELEMS, &ny))
        return QN_ERANGE;
    ds->x = calloc(nx ? nx : 1, sizeof *ds->x);
    if (n_classes)
        ds->labels = calloc(n ? n : 1, sizeof *ds->labels);
    else
        ds->y = calloc(ny ? ny : 1, sizeof *ds->y);
    if (!ds->x || (!ds->labels && !ds->y)) {
        data_close(ds);
        return QN_ENOMEM;
    }
    ds->n = n;
    ds->d = d;
    ds->n_classes = n_classes;
    ds->t = t;
    return QN_OK;
}

void data_close(struct data_set *ds)
{
    free(ds->x);
    free(ds->labels);
    free(ds->y);
    memset(ds, 0, sizeof *ds);
}

/* Index of the first non-finite value of a[0..n), or n. */
static size_t data__first_nonfinite(const float *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]))
            return i;
    return n;
}

int data_check(const struct data_set *ds, struct data_error *err)
{
    size_t i = data__first_nonfinite(ds->x, ds->n * ds->d);
    if (i < ds->n * ds->d)
        return data__fail(err, QN_EFORMAT, 0, 0, "row %zu, input %zu: value is not finite",
                          i / ds->d + 1, i % ds->d + 1);
    if (ds->y) {
        i = data__first_nonfinite(ds->y, ds->n * ds->t);
        if (i < ds->n * ds->t)
            return data__fail(err, QN_EFORMAT, 0, 0, "row %zu, target %zu: value is not finite",
                              i / ds->t + 1, i % ds->t + 1);
    }
    for (i = 0; ds->labels && i < ds->n; i++)
        if (ds->labels[i] < 0 || (size_t)ds->labels[i] >= ds->n_classes)
            return data__fail(err, QN_ERANGE, 0, 0, "row %zu: label %d outside [0, %zu)", i + 1,
                              ds->labels[i], ds->n_classes);
    return QN_OK;
}

/* ---- IDX ---- */


/* Reads up to n bytes from a gzip buffer; returns bytes read or -1 on corrupt data. */
static long long data__inflate(struct data__src *s, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n && !s->z_end) {
        size_t chunk = n - got < UINT_MAX ? n - got : UINT_MAX;
        s->zs.next_out = buf + got;
        s->zs.avail_out = (unsigned)chunk;
        int zr = inflate(&s->zs, Z_NO_FLUSH);
        got += chunk - s->zs.avail_out;
        if (zr == Z_STREAM_END)
            s->z_end = 1;
        else if (zr != Z_OK)
            return zr == Z_BUF_ERROR && s->zs.avail_in == 0 ? (long long)got : -1;
    }
    return (long long)got;
}

/* Reads up to n bytes; returns the count (short at end of input) or -1 on error. */
long long data__read(struct data__src *s, void *buf, size_t n)
{
    if (s->gz) {
        size_t got = 0;
        while (got < n) {
            unsigned chunk = n - got < (1u << 30) ? (unsigned)(n - got) : (1u << 30);
            int r = gzread(s->gz, (unsigned char *)buf + got, chunk);
            if (r < 0)
                return -1;
            if (r == 0)
                break;
            got += (size_t)r;
        }
        return (long long)got;
    }
    if (s->inflating)
        return data__inflate(s, buf, n);
    size_t k = s->len - s->pos < n ? s->len - s->pos : n;
    memcpy(buf, s->mem + s->pos, k);
    s->pos += k;
    return (long long)k;
}

static int data__src_mem(struct data__src *s, const void *buf, size_t len)
{
    memset(s, 0, sizeof *s);
    s->mem = buf;
    s->len = len;
    if (len >= 2 && s->mem[0] == 0x1f && s->mem[1] == 0x8b) {
        if (len > UINT_MAX)
            return QN_ERANGE;
        s->zs.next_in = (unsigned char *)(uintptr_t)buf; /* zlib does not write it */
        s->zs.avail_in = (unsigned)len;
        if (inflateInit2(&s->zs, 15 + 16) != Z_OK)
            return QN_ENOMEM;
        s->inflating = 1;
    }
    return QN_OK;
}

/* Opens path (plain or gzip) as a file source. */
int data__src_file(struct data__src *s, const char *path, struct data_error *err)
{
    memset(s, 0, sizeof *s);
    s->gz = gzopen(path, "rb");
    if (!s->gz)
        return data__fail(err, QN_EIO, 0, 0, "cannot open %s: %s", path,
                          errno ? strerror(errno) : "out of memory");
    return QN_OK;
}

void data__src_close(struct data__src *s)
{
    if (s->gz)
        gzclose(s->gz);
    if (s->inflating)
        inflateEnd(&s->zs);
    memset(s, 0, sizeof *s);
}

/* Big-endian 32-bit integer at p. */
static uint32_t data__be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads and checks the magic and dimensions; sets ndims, dims, len. */
int data__idx_header(struct data__src *s, struct data_idx *out, size_t want,
                            struct data_error *err)
{
    unsigned char h[4 + 4 * 4];
    if (data__read(s, h, 4) != 4)
        return data__fail(err, QN_EFORMAT, 0, 0, "IDX: file too short for a header");
    if (h[0] != 0 || h[1] != 0 || h[2] != 0x08 || h[3] != want)
        return data__fail(err, QN_EFORMAT, 0, 0,
                          "IDX: bad magic %02x%02x%02x%02x (expected 000008%02zx: unsigned "
                          "bytes, %zu dimensions)",
                          h[0], h[1], h[2], h[3], want, want);
    if (data__read(s, h + 4, 4 * want) != (long long)(4 * want))
        return data__fail(err, QN_EFORMAT, 0, 0, "IDX: truncated header");
    out->ndims = want;
    out->len = 1;
    for (size_t i = 0; i < want; i++) {
        out->dims[i] = data__be32(h + 4 + 4 * i);
        if (out->dims[i] == 0)
            return data__fail(err, QN_EFORMAT, 0, 0, "IDX: dimension %zu is zero", i + 1);
        if (data__mul(out->len, out->dims[i], DATA_MAX_ELEMS, &out->len))
            return data__fail(err, QN_EFORMAT, 0, 0,
                              "IDX: dimensions too large (more than %zu values)",
                              (size_t)DATA_MAX_ELEMS);
    }
    return QN_OK;
}

/* Reads up to out->len data bytes into out->data, growing the buffer as the
 * bytes arrive (from 1 MiB, doubling), so a header that claims a gigabyte
 * costs memory only when the gigabyte is there. Returns the bytes read, -1
 * for corrupt data, -2 when out of memory. */
static long long data__idx_data(struct data__src *s, struct data_idx *out)
{
    size_t cap = out->len < ((size_t)1 << 20) ? out->len : ((size_t)1 << 20), got = 0;
    out->data = malloc(cap);
    if (!out->data)
        return -2;
    while (got < out->len) {
        if (got == cap) {
            size_t ncap = cap > out->len / 2 ? out->len : 2 * cap;
            unsigned char *p = realloc(out->data, ncap);
            if (!p)
                return -2;
            out->data = p, cap = ncap;
        }
        long long r = data__read(s, out->data + got, cap - got);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

/* Header, then exactly len bytes of data (what follows is the caller's). */
static int data__idx_body(struct data__src *s, struct data_idx *out, size_t want,
                          struct data_error *err)
{
    memset(out, 0, sizeof *out);
    if (want < 1 || want > 4)
        return data__fail(err, QN_EINVAL, 0, 0, "IDX: unsupported rank %zu", want);
    int rc = data__idx_header(s, out, want, err);
    if (rc)
        return rc;
    long long got = data__idx_data(s, out);
    if (got == -2)
        rc = data__fail(err, QN_ENOMEM, 0, 0, "IDX: out of memory for %zu bytes", out->len);
    else if (got < 0)
        rc = data__fail(err, QN_EFORMAT, 0, 0, "IDX: corrupt compressed data");
    else if ((size_t)got != out->len)
        rc = data__fail(err, QN_EFORMAT, 0, 0, "IDX: truncated: %lld of %zu data bytes", got,
                        out->len);
    if (rc)
        data_idx_close(out);
    return rc;
}

/* The end of the input must follow out's data. */
static int data__idx_end(struct data__src *s, struct data_idx *out, struct data_error *err)
{
    unsigned char extra;
    if (data__read(s, &extra, 1) == 0)
        return QN_OK;
    data_idx_close(out);
    return data__fail(err, QN_EFORMAT, 0, 0, "IDX: trailing bytes after %zu data bytes",
                      out->len);
}

/* Header, then exactly len bytes of data and nothing after them. */
static int data__idx_parse(struct data__src *s, struct data_idx *out, size_t want,
                           struct data_error *err)
{
    int rc = data__idx_body(s, out, want, err);
    return rc ? rc : data__idx_end(s, out, err);
}

int data_idx_read(struct data_idx *out, const char *path, size_t want_ndims, struct data_error *err)
{
    struct data__src s;
    memset(out, 0, sizeof *out);
    int rc = data__src_file(&s, path, err);
    if (rc)
        return rc;
    rc = data__idx_parse(&s, out, want_ndims, err);
    data__src_close(&s);
    return rc;
}

int data_idx_read_mem(struct data_idx *out, const void *buf, size_t len, size_t want_ndims,
                      struct data_error *err)
{
    struct data__src s;
    memset(out, 0, sizeof *out);
    int rc = data__src_mem(&s, buf, len);
    if (rc)
        return data__fail(err, rc, 0, 0, "IDX: cannot read the buffer (%s)", qn_err_msg(rc));
    rc = data__idx_parse(&s, out, want_ndims, err);
    data__src_close(&s);
    return rc;
}

/* 1 when more input follows (the byte peeked is put back), 0 at its end. */
int data__gz_more(gzFile gz)
{
    int c = gzgetc(gz);
    if (c < 0)
        return 0;
    return gzungetc(c, gz) >= 0;
}

int data_idx_read_joined(struct data_idx *images, struct data_idx *labels, const char *path,
                         struct data_error *err)
{
    struct data__src s;
    memset(images, 0, sizeof *images);
    memset(labels, 0, sizeof *labels);
    int rc = data__src_file(&s, path, err);
    if (rc)
        return rc;
    rc = data__idx_body(&s, images, 3, err);
    if (rc == 0 && data__gz_more(s.gz)) {
        rc = data__idx_parse(&s, labels, 1, err);
        if (rc) {
            data_idx_close(images);
            char why[sizeof err->msg];
            const char *m = strncmp(err->msg, "IDX: ", 5) == 0 ? err->msg + 5 : err->msg;
            snprintf(why, sizeof why, "%s", m);
            snprintf(err->msg, sizeof err->msg, "IDX: the labels after the images: %s", why);
        }
    }
    data__src_close(&s);
    return rc;
}

void data_idx_close(struct data_idx *idx)
{
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

int data_idx_to_set(struct data_set *out, const struct data_idx *img, const struct data_idx *lab,
                    struct data_error *err)
{
    size_t n = img->dims[0], d = img->dims[1] * img->dims[2], max = 0;
    memset(out, 0, sizeof *out);
    if (lab && lab->dims[0] != n)
        return data__fail(err, QN_EFORMAT, 0, 0, "IDX: %zu images but %zu labels", n, lab->dims[0]);
    for (size_t i = 0; lab && i < n; i++)
        max = lab->data[i] > max ? lab->data[i] : max;
    int rc = lab ? data_alloc(out, n, d, max + 1, 0) : data_alloc(out, n, d, 0, 1);
    if (rc)
        return data__fail(err, rc, 0, 0, "IDX: cannot allocate %zu x %zu inputs", n, d);
    for (size_t i = 0; i < n * d; i++)
        out->x[i] = (float)img->data[i] / 255.0f;
    for (size_t i = 0; lab && i < n; i++)
        out->labels[i] = lab->data[i];
    return QN_OK;
}

int data_load_idx(struct data_set *out, const char *images_path, const char *labels_path,
                  struct data_error *err)
{
    struct data_idx img, lab;
    memset(out, 0, sizeof *out);
    int rc = data_idx_read(&img, images_path, 3, err);
    if (rc)
        goto fail_images;
    rc = data_idx_read(&lab, labels_path, 1, err);
    if (rc)
        goto fail_labels;
    rc = data_idx_to_set(out, &img, &lab, err);
    data_idx_close(&lab);
fail_labels:
    data_idx_close(&img);
fail_images:
    return rc;
}

int data_load_idx_mem(struct data_set *out, const void *images, size_t images_len,
                      const void *labels, size_t labels_len, struct data_error *err)
{
    struct data_idx img, lab;
    memset(out, 0, sizeof *out);
    int rc = data_idx_read_mem(&img, images, images_len, 3, err);
    if (rc)
        goto fail_images;
    rc = data_idx_read_mem(&lab, labels, labels_len, 1, err);
    if (rc)
        goto fail_labels;
    rc = data_idx_to_set(out, &img, &lab, err);
    data_idx_close(&lab);
fail_labels:
    data_idx_close(&img);
fail_images:
    return rc;
}

/* Loads dir/<prefix>-images-idx3-ubyte.gz and its labels into out. */
static int data__fashion_part(struct data_set *out, const char *dir, const char *prefix,
                              struct data_error *err)
{
    char img[512], lab[512];
    int a = snprintf(img, sizeof img, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    int b = snprintf(lab, sizeof lab, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    if (a < 0 || b < 0 || (size_t)a >= sizeof img || (size_t)b >= sizeof lab)
        return data__fail(err, QN_EINVAL, 0, 0, "dataset directory name too long");
    return data_load_idx(out, img, lab, err);
}

int data_load_fashion_mnist(struct data_set *train, struct data_set *test, const char *dir,
                            struct data_error *err)
{
    int rc = QN_OK;
    if (!dir)
        dir = DATA_FASHION_MNIST_DIR;
    if (train)
        rc = data__fashion_part(train, dir, "train", err);
    if (!rc && test) {
        rc = data__fashion_part(test, dir, "t10k", err);
        if (rc && train)
            data_close(train);
    }
    return rc;
}

/* ---- CSV ---- */

#define DATA_CSV_MAX_COLS 65536
#define DATA_CSV_CELL_MAX 256


/* Next line [*b, *e) without its end-of-line; returns 0 at end of input. */
int data__csv_line(struct data__csv *c, const char **b, const char **e)
{
    if (c->p >= c->end)
        return 0;
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    *b = c->p;
    *e = nl ? nl : c->end;
    c->p = nl ? nl + 1 : c->end;
    if (*e > *b && (*e)[-1] == '\r')
        (*e)--;
    return 1;
}

/* Trims spaces, tabs and one pair of surrounding double quotes. */
static void data__trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
    if (*e - *b >= 2 && **b == '"' && (*e)[-1] == '"') {
        (*b)++;
        (*e)--;
    }
}

/* Number of comma-separated fields in [b, e). */
static size_t data__count_fields(const char *b, const char *e)
{
    size_t n = 1;
    for (const char *q = b; q < e; q++)
        n += *q == ',';
    return n;
}

int data__blank(const char *b, const char *e)
{
    data__trim(&b, &e);
    return b == e;
}

void data__csv_close(struct data__csv *c)
{
    for (size_t i = 0; c->names && i < c->n_cols; i++)
        free(c->names[i]);
    free(c->names);
    free(c->role);
}

/* Index of the column named `name`, or -1. */
static long data__col(const struct data__csv *c, const char *name)
{
    for (size_t j = 0; j < c->n_cols; j++)
        if (strcmp(c->names[j], name) == 0)
            return (long)j;
    return -1;
}

/* Reads the header row into c->names. */
int data__csv_header(struct data__csv *c, struct data_error *err)
{
    const char *b, *e;
    if (!data__csv_line(c, &b, &e) || data__blank(b, e))
        return data__fail(err, QN_EFORMAT, 1, 0, "line 1: missing header row");
    c->n_cols = data__count_fields(b, e);
    if (c->n_cols > DATA_CSV_MAX_COLS)
        return data__fail(err, QN_ERANGE, 1, 0, "line 1: more than %d columns", DATA_CSV_MAX_COLS);
    c->names = calloc(c->n_cols, sizeof *c->names);
    c->role = malloc(c->n_cols * sizeof *c->role);
    if (!c->names || !c->role)
        return QN_ENOMEM;
    for (size_t j = 0; j < c->n_cols; j++) {
        const char *fe = memchr(b, ',', (size_t)(e - b));
        fe = fe ? fe : e;
        const char *nb = b, *ne = fe;
        data__trim(&nb, &ne);
        c->names[j] = strndup(nb, (size_t)(ne - nb));
        if (!c->names[j])
            return QN_ENOMEM;
        if (nb == ne)
            return data__fail(err, QN_EFORMAT, 1, j + 1, "line 1, column %zu: empty column name",
                              j + 1);
        c->role[j] = ROLE_SKIP;
        b = fe + 1;
    }
    c->line = 2;
    return QN_OK;
}

/* Gives column `name` the role r; QN_ESPEC if absent or already used. */
static int data__assign(struct data__csv *c, const char *name, int r, struct data_error *err)
{
    long j = data__col(c, name);
    if (j < 0)
        return data__fail(err, QN_ESPEC, 1, 0, "no column named '%s' in the header", name);
    if (c->role[j] != ROLE_SKIP)
        return data__fail(err, QN_ESPEC, 1, (size_t)j + 1, "column '%s' is chosen twice", name);
    c->role[j] = r;
    return QN_OK;
}

/* Sets roles from opts; *d gets the number of inputs. */
int data__csv_roles(struct data__csv *c, const struct data_csv_opts *o, size_t *d,
                           struct data_error *err)
{
    if ((o->label == NULL) == (o->target == NULL))
        return data__fail(err, QN_ESPEC, 0, 0, "choose exactly one of a label or a target column");
    int rc =
        data__assign(c, o->label ? o->label : o->target, o->label ? ROLE_LABEL : ROLE_TARGET, err);
    for (size_t k = 0; !rc && o->inputs && k < o->n_inputs; k++)
        rc = data__assign(c, o->inputs[k], (int)k, err);
    if (rc)
        return rc;
    *d = 0;
    for (size_t j = 0; j < c->n_cols; j++) {
        if (!o->inputs && c->role[j] == ROLE_SKIP)
            c->role[j] = (int)(*d);
        *d += c->role[j] >= 0;
    }
    if (*d == 0)
        return data__fail(err, QN_ESPEC, 0, 0, "no input columns");
    return QN_OK;
}

/* Parses a numeric cell [b, e) of column j into *v. */
static int data__cell(const struct data__csv *c, size_t j, const char *b, const char *e, double *v,
                      struct data_error *err)
{
    char tmp[DATA_CSV_CELL_MAX];
    data__trim(&b, &e);
    size_t n = (size_t)(e - b);
    if (n == 0)
        return data__fail(err, QN_EFORMAT, c->line, j + 1,
                          "line %zu, column %zu ('%s'): empty cell", c->line, j + 1, c->names[j]);
    if (n >= sizeof tmp)
        return data__fail(err, QN_EFORMAT, c->line, j + 1,
                          "line %zu, column %zu ('%s'): cell too long for a number", c->line, j + 1,
                          c->names[j]);
    memcpy(tmp, b, n);
    tmp[n] = 0;
    char *stop;
    *v = strtod(tmp, &stop);
    if (stop != tmp + n || n == 0)
        return data__fail(err, QN_EFORMAT, c->line, j + 1,
                          "line %zu, column %zu ('%s'): '%s' is not a number", c->line, j + 1,
                          c->names[j], tmp);
    if (!isfinite(*v) || !isfinite((float)*v))
        return data__fail(err, QN_EFORMAT, c->line, j + 1,
                          "line %zu, column %zu ('%s'): '%s' is not a finite float", c->line, j + 1,
                          c->names[j], tmp);
    return QN_OK;
}

/* Stores value v of column j into row r of out. */
static int data__store(const struct data__csv *c, size_t j, double v, struct data_set *out,
                       size_t r, struct data_error *err)
{
    int role = c->role[j];
    if (role >= 0)
        out->x[r * out->d + (size_t)role] = (float)v;
    else if (role == ROLE_TARGET)
        out->y[r] = (float)v;
    else if (v < 0 || v >= DATA_MAX_CLASSES || v != floor(v))
        return data__fail(err, QN_EFORMAT, c->line, j + 1,
                          "line %zu, column %zu ('%s'): label must be an integer in [0, %d)",
                          c->line, j + 1, c->names[j], DATA_MAX_CLASSES);
    else
        out->labels[r] = (int)v;
    return QN_OK;
}

/* Parses one data line [b, e) into row r. */
int data__csv_row(const struct data__csv *c, const char *b, const char *e,
                         struct data_set *out, size_t r, struct data_error *err)
{
    size_t nf = data__count_fields(b, e);
    if (nf != c->n_cols)
        return data__fail(err, QN_EFORMAT, c->line, 0, "line %zu: %zu fields, the header has %zu",
                          c->line, nf, c->n_cols);
    for (size_t j = 0; j < c->n_cols; j++) {
        const char *fe = memchr(b, ',', (size_t)(e - b));
        fe = fe ? fe : e;
        if (c->role[j] != ROLE_SKIP) {
            double v = 0.0;
            int rc = data__cell(c, j, b, fe, &v, err);
            if (!rc)
                rc = data__store(c, j, v, out, r, err);
            if (rc)
                return rc;
        }
        b = fe + 1;
    }
    return QN_OK;
}

/* Upper bound on the data rows: lines after the header. */
static size_t data__count_lines(const char *p, const char *end)
{
    size_t n = 1;
    for (; p < end; p++)
        n += *p == '\n';
    return n;
}

/* Parses every data row into out (allocated for an upper bound of rows). */
static int data__csv_rows(struct data__csv *c, struct data_set *out, struct data_error *err)
{
    const char *b, *e;
    size_t r = 0;
    for (; data__csv_line(c, &b, &e); c->line++) {
        if (data__blank(b, e))
            continue;
        int rc = data__csv_row(c, b, e, out, r++, err);
        if (rc)
            return rc;
    }
    if (r == 0)
        return data__fail(err, QN_EFORMAT, c->line, 0, "no data rows after the header");
    out->n = r;
    return QN_OK;
}

/* Sets n_classes to the largest label + 1. */
static void data__count_classes(struct data_set *ds)
{
    int max = 0;
    for (size_t i = 0; i < ds->n; i++)
        max = ds->labels[i] > max ? ds->labels[i] : max;
    ds->n_classes = (size_t)max + 1;
}

int data_load_csv_mem(struct data_set *out, const char *buf, size_t len,
                      const struct data_csv_opts *opts, struct data_error *err)
{
    struct data__csv c = {.p = buf, .end = buf + len, .line = 1};
    size_t d = 0;
    memset(out, 0, sizeof *out);
    int rc = data__csv_header(&c, err);
    if (!rc)
        rc = data__csv_roles(&c, opts, &d, err);
    if (!rc)
        rc = data_alloc(out, data__count_lines(c.p, c.end), d, opts->label ? DATA_MAX_CLASSES : 0,
                        opts->label ? 0 : 1);
    if (rc == QN_ERANGE)
        data__fail(err, rc, 0, 0, "too many values (more than %zu)", (size_t)DATA_MAX_ELEMS);
    if (!rc)
        rc = data__csv_rows(&c, out, err);
    if (!rc && out->labels)
        data__count_classes(out);
    if (rc)
        data_close(out);
    data__csv_close(&c);
    return rc;
}

/* Reads a whole file into a new buffer *buf of *len bytes. */
static int data__slurp(const char *path, char **buf, size_t *len, struct data_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return data__fail(err, QN_EIO, 0, 0, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    int rc = p ? QN_OK : QN_ENOMEM;
    while (!rc) {
        n += fread(p + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *q = cap <= DATA_MAX_ELEMS ? realloc(p, cap * 2) : NULL;
        rc = q ? QN_OK : cap <= DATA_MAX_ELEMS ? QN_ENOMEM : QN_ERANGE;
        p = q ? q : p;
        cap *= 2;
    }
    if (!rc && ferror(f))
        rc = data__fail(err, QN_EIO, 0, 0, "cannot read %s", path);
    else if (rc)
        data__fail(err, rc, 0, 0, "cannot read %s: %s", path, qn_err_msg(rc));
    fclose(f);
    if (rc)
        free(p);
    *buf = rc ? NULL : p;
    *len = n;
    return rc;
}

int data_load_csv(struct data_set *out, const char *path, const struct data_csv_opts *opts,
                  struct data_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    int rc = data__slurp(path, &buf, &len, err);
    if (rc)
        return rc;
    rc = data_load_csv_mem(out, buf, len, opts, err);
    free(buf);
    return rc;
}

/* ---- generators ---- */

static gsl_rng *data__rng(uint64_t seed)
{
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (r)
        gsl_rng_set(r, (unsigned long)seed);
    return r;
}

/* The truth table of gate op at inputs a, b in {0, 1}. */
static int data__gate(enum data_gate op, int a, int b)
{
    switch (op) {
    case DATA_GATE_AND: return a & b;
    case DATA_GATE_OR: return a | b;
    case DATA_GATE_NAND: return !(a & b);
    case DATA_GATE_NOR: return !(a | b);
    case DATA_GATE_XNOR: return !(a ^ b);
    case DATA_GATE_XOR: break;
    }
    return a ^ b;
}

int data_gen_gate(struct data_set *out, enum data_gate op, size_t n, double noise, uint64_t seed)
{
    memset(out, 0, sizeof *out);
    if ((unsigned)op > DATA_GATE_XNOR)
        return QN_EINVAL;
    if (n == 0)
        n = 4;
    int rc = data_alloc(out, n, 2, 2, 0);
    if (rc)
        return rc;
    gsl_rng *r = n == 4 ? NULL : data__rng(seed);
    if (n != 4 && !r) {
        data_close(out);
        return QN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int a = (int)(i & 1), b = (int)((i >> 1) & 1);
        out->x[2 * i] = (float)(a + (r ? gsl_ran_gaussian(r, noise) : 0.0));
        out->x[2 * i + 1] = (float)(b + (r ? gsl_ran_gaussian(r, noise) : 0.0));
        out->labels[i] = data__gate(op, a, b);
    }
    gsl_rng_free(r);
    return QN_OK;
}

int data_gen_xor(struct data_set *out, size_t n, double noise, uint64_t seed)
{
    return data_gen_gate(out, DATA_GATE_XOR, n, noise, seed);
}

int data_gen_sine(struct data_set *out, size_t n, uint64_t seed)
{
    int rc = data_alloc(out, n, 1, 0, 1);
    if (rc)
        return rc;
    gsl_rng *r = data__rng(seed);
    if (!r) {
        data_close(out);
        return QN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        double x = -M_PI + 2.0 * M_PI * gsl_rng_uniform(r);
        out->x[i] = (float)x;
        out->y[i] = (float)sin(x);
    }
    gsl_rng_free(r);
    return QN_OK;
}

int data_gen_spirals(struct data_set *out, size_t n, size_t arms, double noise, uint64_t seed)
{
    if (arms != 2 && arms != 3)
        return QN_EINVAL;
    int rc = data_alloc(out, n, 2, arms, 0);
    if (rc)
        return rc;
    gsl_rng *r = data__rng(seed);
    if (!r) {
        data_close(out);
        return QN_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        size_t k = i % arms;
        double u = gsl_rng_uniform(r);
        double th = 2.0 * M_PI * (double)k / (double)arms + 3.0 * M_PI * u;
        th += noise > 0 ? gsl_ran_gaussian(r, noise) : 0.0;
        out->x[2 * i] = (float)(u * cos(th));
        out->x[2 * i + 1] = (float)(u * sin(th));
        out->labels[i] = (int)k;
    }
    gsl_rng_free(r);
    return QN_OK;
}

/* The Lotka-Volterra right-hand side: prey y[0], predators y[1]. */
static int data__lv_rhs(double t, const double y[], double dydt[], void *params)
{
    (void)t, (void)params;
    dydt[0] = DATA_LV_ALPHA * y[0] - DATA_LV_BETA * y[0] * y[1];
    dydt[1] = DATA_LV_DELTA * y[0] * y[1] - DATA_LV_GAMMA * y[1];
    return GSL_SUCCESS;
}

int data_lotka_volterra_prey(double prey0, double pred0, double t, double *out)
{
    gsl_odeiv2_system sys = {data__lv_rhs, NULL, 2, NULL};
    gsl_odeiv2_driver *drv = gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-3,
                                                           DATA_LV_TOL, DATA_LV_TOL);
    if (!drv)
        return QN_ENOMEM;
    double y[2] = {prey0, pred0}, t0 = 0.0;
    int st = t > 0.0 ? gsl_odeiv2_driver_apply(drv, &t0, t, y) : GSL_SUCCESS;
    gsl_odeiv2_driver_free(drv);
    if (st != GSL_SUCCESS || !isfinite(y[0]))
        return QN_ESOLVER;
    *out = y[0];
    return QN_OK;
}

int data_gen_lotka_volterra(struct data_set *out, size_t n, uint64_t seed)
{
    int rc = data_alloc(out, n, 3, 0, 1);
    if (rc)
        return rc;
    gsl_rng *r = data__rng(seed);
    if (!r) {
        data_close(out);
        return QN_ENOMEM;
    }
    for (size_t i = 0; rc == QN_OK && i < n; i++) {
        double x0 = DATA_LV_POP_LO + (DATA_LV_POP_HI - DATA_LV_POP_LO) * gsl_rng_uniform(r);
        double y0 = DATA_LV_POP_LO + (DATA_LV_POP_HI - DATA_LV_POP_LO) * gsl_rng_uniform(r);
        double t = DATA_LV_T_MAX * gsl_rng_uniform(r), prey = 0;
        rc = data_lotka_volterra_prey(x0, y0, t, &prey);
        out->x[3 * i] = (float)x0;
        out->x[3 * i + 1] = (float)y0;
        out->x[3 * i + 2] = (float)t;
        out->y[i] = (float)prey;
    }
    gsl_rng_free(r);
    if (rc)
        data_close(out);
    return rc;
}

/* ---- splits, subsets, batches ---- */

void data_permute(size_t *idx, size_t n, gsl_rng *r)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (n > 1)
        gsl_ran_shuffle(r, idx, n, sizeof *idx);
}

void data_gather(const struct data_set *ds, const size_t *idx, size_t B, float *x, int *labels,
                 float *y)
{
    for (size_t b = 0; b < B; b++) {
        size_t i = idx[b];
        if (x)
            memcpy(x + b * ds->d, ds->x + i * ds->d, ds->d * sizeof *x);
        if (labels && ds->labels)
            labels[b] = ds->labels[i];
        if (y && ds->y)
            memcpy(y + b * ds->t, ds->y + i * ds->t, ds->t * sizeof *y);
    }
}

/* A dataset of B rows idx[0..B) of src, shaped like src. */
static int data__take(const struct data_set *src, const size_t *idx, size_t B, struct data_set *out)
{
    int rc = data_alloc(out, B, src->d, src->n_classes, src->t);
    if (!rc)
        data_gather(src, idx, B, out->x, out->labels, out->y);
    return rc;
}

int data_split(const struct data_set *src, double test_fraction, uint64_t seed,
               struct data_set *train, struct data_set *test)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!(test_fraction >= 0.0 && test_fraction < 1.0))
        return QN_EINVAL;
    size_t n_test = (size_t)llround(test_fraction * (double)src->n);
    size_t *idx = malloc((src->n ? src->n : 1) * sizeof *idx);
    gsl_rng *r = data__rng(seed);
    int rc = idx && r ? QN_OK : QN_ENOMEM;
    if (!rc) {
        data_permute(idx, src->n, r);
        rc = data__take(src, idx, n_test, test);
    }
    if (!rc)
        rc = data__take(src, idx + n_test, src->n - n_test, train);
    if (rc) {
        data_close(train);
        data_close(test);
    }
    gsl_rng_free(r);
    free(idx);
    return rc;
}

int data_subset(const struct data_set *src, size_t n, struct data_set *out)
{
    n = n < src->n ? n : src->n;
    int rc = data_alloc(out, n, src->d, src->n_classes, src->t);
    if (rc)
        return rc;
    memcpy(out->x, src->x, n * src->d * sizeof *out->x);
    if (src->labels)
        memcpy(out->labels, src->labels, n * sizeof *out->labels);
    if (src->y)
        memcpy(out->y, src->y, n * src->t * sizeof *out->y);
    return QN_OK;
}

/* ---- standardisation ---- */

int data_scaler_init(struct data_scaler *s, size_t d)
{
    memset(s, 0, sizeof *s);
    if (d == 0 || d > DATA_MAX_ELEMS)
        return QN_EINVAL;
    s->slab = malloc(2 * d * sizeof *s->slab);
    if (!s->slab)
        return QN_ENOMEM;
    s->d = d;
    s->mean = s->slab;
    s->std = s->slab + d;
    for (size_t j = 0; j < d; j++) {
        s->mean[j] = 0.0f;
        s->std[j] = 1.0f;
    }
    return QN_OK;
}

/* Column sums of x and of squared deviations, in double. */
static void data__moments(const struct data_set *ds, double *mean, double *var)
{
    size_t n = ds->n, d = ds->d;
    memset(mean, 0, d * sizeof *mean);
    memset(var, 0, d * sizeof *var);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            mean[j] += ds->x[i * d + j];
    for (size_t j = 0; j < d; j++)
        mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) {
            double e = ds->x[i * d + j] - mean[j];
            var[j] += e * e;
        }
    for (size_t j = 0; j < d; j++)
        var[j] /= (double)n;
}

int data_scaler_fit(struct data_scaler *s, const struct data_set *train)
{
    memset(s, 0, sizeof *s);
    if (train->n == 0 || train->d == 0)
        return QN_EINVAL;
    int rc = data_scaler_init(s, train->d);
    if (rc)
        return rc;
    double *mom = malloc(2 * train->d * sizeof *mom);
    if (!mom) {
        data_scaler_close(s);
        return QN_ENOMEM;
    }
    data__moments(train, mom, mom + train->d);
    for (size_t j = 0; j < train->d; j++) {
        double sd = sqrt(mom[train->d + j]);
        s->mean[j] = (float)mom[j];
        s->std[j] = sd < 1e-8 ? 1.0f : (float)sd;
    }
    free(mom);
    return QN_OK;
}

int data_scaler_apply_rows(const struct data_scaler *s, float *x, size_t n, size_t d)
{
    if (s->d != d)
        return QN_EINVAL;
    for (size_t i = 0; i < n; i++) {
        float *row = x + i * d;
        for (size_t j = 0; j < d; j++)
            row[j] = (row[j] - s->mean[j]) / s->std[j];
    }
    return QN_OK;
}

int data_scaler_apply(const struct data_scaler *s, struct data_set *ds)
{
    return data_scaler_apply_rows(s, ds->x, ds->n, ds->d);
}

void data_scaler_close(struct data_scaler *s)
{
    free(s->slab);
    memset(s, 0, sizeof *s);
}
