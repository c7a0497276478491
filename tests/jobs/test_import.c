/*
 * test_import.c: CSV and IDX files streamed into stored datasets
 * (server/jobs/import.c over engine/data_stream.c), on a real SQLite store.
 *
 * What is stored is compared, float for float, with the same file parsed
 * whole by the engine's loaders (data_load_csv_mem, data_idx_read_joined
 * with data_idx_to_set, data_load_idx): CSV with quotes, spaces, CRLF and
 * blank lines over several read buffers and blocks, plain and gzip (two
 * concatenated members); IDX with its labels after the images, in a file of
 * their own, or none, plain and gzip. Refusals leave nothing: a bad cell
 * after two blocks were written, truncated labels, a gzip CSV file that
 * inflates past the byte cap (the "gzip bomb"), an IDX header announcing
 * more than the cap (refused before its data is inflated), a CSV past the
 * value cap; no dataset row, no block, and the WAL truncated. Every prefix
 * and one-byte change of a small CSV, IDX and gzip IDX file is stored or
 * refused alike by the stream and the whole-file loaders.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data.h"
#include "import.h"
#include "qn_err.h"
#include "qn_test.h"
#include "qt_daemon.h"
#include "store.h"

/* Writes len bytes to dir/name; the path into path. */
static void put(const struct qt_store *f, const char *name, const void *buf, size_t len,
                char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", f->dir, name);
    FILE *o = fopen(path, "wb");
    assert_non_null(o);
    assert_int_equal(fwrite(buf, 1, len, o), len);
    assert_int_equal(fclose(o), 0);
}

/* buf[len] as `members` concatenated gzip members: a new buffer of *out bytes. */
static unsigned char *gz(const void *buf, size_t len, int members, size_t *out)
{
    size_t cap = len + 1024 * (size_t)members + 64, n = 0;
    unsigned char *z = malloc(cap);
    assert_non_null(z);
    for (int m = 0; m < members; m++) {
        size_t a = len * (size_t)m / (size_t)members, b = len * (size_t)(m + 1) / (size_t)members;
        z_stream s = {0};
        assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
        s.next_in = (unsigned char *)buf + a, s.avail_in = (uInt)(b - a);
        s.next_out = z + n, s.avail_out = (uInt)(cap - n);
        assert_int_equal(deflate(&s, Z_FINISH), Z_STREAM_END);
        n = cap - s.avail_out;
        deflateEnd(&s);
    }
    *out = n;
    return z;
}

/* Imports path (labels may be NULL) within lim; the code, the id in *id. */
static int import_lim(const struct qt_store *f, const char *path, const char *labels,
                      uint64_t max_bytes, uint64_t max_values, int64_t *id, char *msg,
                      size_t cap)
{
    struct import_limits lim = {max_bytes, max_values};
    *id = 0;
    return import_file_max(f->s, path, labels, NULL, NULL, &lim, id, msg, cap);
}

/* The stored rows of dataset id: a new (rows, cols) array. */
static float *stored(const struct qt_store *f, int64_t id, size_t *rows, size_t *cols)
{
    struct store_dataset d;
    assert_int_equal(store_dataset_get(f->s, id, &d), 0);
    *rows = d.n_rows, *cols = d.n_cols;
    float *x = malloc(d.n_rows * d.n_cols * sizeof *x + 1);
    assert_non_null(x);
    assert_int_equal(store_dataset_read(f->s, id, 0, d.n_rows, x), 0);
    store_dataset_free(&d);
    return x;
}

/* Rows of ds as the import lays them out: inputs, then the label or target. */
static float *whole_rows(const struct data_set *ds, size_t cols)
{
    float *x = malloc(ds->n * cols * sizeof *x + 1);
    assert_non_null(x);
    for (size_t i = 0; i < ds->n; i++) {
        memcpy(x + i * cols, ds->x + i * ds->d, ds->d * sizeof *x);
        if (cols > ds->d)
            x[i * cols + ds->d] = ds->labels ? (float)ds->labels[i] : ds->y[i];
    }
    return x;
}

/* Dataset id holds exactly ds's rows (bitwise). */
static void expect_same(const struct qt_store *f, int64_t id, const struct data_set *ds,
                        size_t cols)
{
    size_t rows = 0, c = 0;
    float *got = stored(f, id, &rows, &c);
    float *want = whole_rows(ds, cols);
    assert_int_equal(rows, ds->n);
    assert_int_equal(c, cols);
    assert_memory_equal(got, want, rows * cols * sizeof *got);
    free(got);
    free(want);
}

/* The WAL's bytes. */
static long wal_size(const struct qt_store *f)
{
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    return qd_file_size(wal);
}

/* No dataset row nor block in the database, and the WAL no larger than
 * `before` bytes (its size before the refused import). */
static void expect_nothing_stored(const struct qt_store *f, long before)
{
    assert_int_equal(qd_db_file_int(f->dir, "qt.db", SQLITE_OPEN_READONLY, 1,
                                    "SELECT count(*) FROM datasets"),
                     0);
    assert_int_equal(qd_db_file_int(f->dir, "qt.db", SQLITE_OPEN_READONLY, 1,
                                    "SELECT count(*) FROM dataset_blocks"),
                     0);
    long size = wal_size(f);
    if (size > before)
        fail_msg("the WAL grew from %ld to %ld bytes with a refused import", before, size);
}

/* ---- CSV ------------------------------------------------------------------------ */

/* A CSV text of n rows with quoted names, spaces, CRLF and blank lines, no
 * line end after the last row (a new string of *len bytes). */
static char *csv_text(size_t n, size_t *len)
{
    size_t cap = 128 + n * 96, k = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    k += (size_t)snprintf(t, cap, "\"a\", b ,c,\"d e\",target\r\n");
    for (size_t i = 0; i < n; i++) {
        double v = (double)(i * 7919 % 10007) / 37.0 - 100.0;
        k += (size_t)snprintf(t + k, cap - k, "%zu, %.9g ,%g,\"%.3e\",%.17g%s", i, v, -v,
                              v * 1e-5, v * v, i + 1 < n ? (i % 97 ? "\n" : "\r\n") : "");
        if (i % 1000 == 500)
            k += (size_t)snprintf(t + k, cap - k, "   \n");
    }
    *len = k;
    return t;
}

static void test_csv_equals_whole(void **state)
{
    struct qt_store *f = *state;
    size_t len = 0, zlen = 0;
    char *text = csv_text(30000, &len); /* ~1.6 MB: several read buffers, 8 blocks */
    assert_true(len > (1u << 20));
    struct data_set ds;
    struct data_error e;
    static const char *const in[] = {"a", "b", "c", "d e"};
    struct data_csv_opts o = {in, 4, NULL, "target"};
    assert_int_equal(data_load_csv_mem(&ds, text, len, &o, &e), 0);
    assert_int_equal(ds.n, 30000);
    char path[700], msg[512] = "";
    put(f, "t.csv", text, len, path, sizeof path);
    int64_t plain = 0, zipped = 0;
    assert_int_equal(import_lim(f, path, NULL, 0, 0, &plain, msg, sizeof msg), 0);
    expect_same(f, plain, &ds, 5);
    unsigned char *z = gz(text, len, 2, &zlen);
    put(f, "t.csv.gz", z, zlen, path, sizeof path);
    assert_int_equal(import_lim(f, path, NULL, len, 150000, &zipped, msg, sizeof msg), 0);
    expect_same(f, zipped, &ds, 5);
    struct store_dataset d;
    assert_int_equal(store_dataset_get(f->s, zipped, &d), 0);
    assert_string_equal(d.source, "csv");
    assert_string_equal(d.columns, "[\"a\",\"b\",\"c\",\"d e\",\"target\"]");
    store_dataset_free(&d);
    free(z);
    data_close(&ds);
    free(text);
}

/* A bad cell after two blocks were written, and the byte and value caps:
 * refused with the sentence, nothing stored. */
static void test_csv_refusals(void **state)
{
    struct qt_store *f = *state;
    long wal = wal_size(f);
    size_t len = 0, zlen = 0;
    char *text = csv_text(16000, &len);
    char *p = text;
    for (size_t line = 1; line < 13501; line++) /* row 13486 (a chunk, 3 blocks stored before) */
        p = strchr(p, '\n') + 1;
    memcpy(strchr(p, ',') + 1, "oops", 4);
    char path[700], msg[512] = "";
    put(f, "bad.csv", text, len, path, sizeof path);
    int64_t id = 0;
    assert_int_equal(import_lim(f, path, NULL, 0, 0, &id, msg, sizeof msg), QN_EFORMAT);
    assert_non_null(strstr(msg, "bad.csv: line 13501, column 2 ('b'): "));
    expect_nothing_stored(f, wal);
    free(text);

    /* 40 MB of "1,2" lines from a gzip of ~40 KB, against a cap of 1 MiB. */
    size_t big = 40u << 20;
    char *bomb = malloc(big);
    assert_non_null(bomb);
    memcpy(bomb, "x,y\n", 4);
    for (size_t i = 4; i + 4 <= big; i += 4)
        memcpy(bomb + i, "1,2\n", 4);
    unsigned char *z = gz(bomb, big, 1, &zlen);
    free(bomb);
    assert_true(zlen < 64 * 1024);
    put(f, "bomb.csv.gz", z, zlen, path, sizeof path);
    free(z);
    assert_int_equal(import_lim(f, path, NULL, 1u << 20, 0, &id, msg, sizeof msg), QN_ETOOLARGE);
    assert_non_null(strstr(msg, "the CSV file inflates to more than 1048576 bytes, more than "
                                "an upload may hold (--max-upload 1048576)"));
    expect_nothing_stored(f, wal);
    assert_int_equal(import_lim(f, path, NULL, 0, 100000, &id, msg, sizeof msg), QN_ELIMIT);
    assert_non_null(strstr(msg, "the CSV file holds more than 100000 values"));
    assert_non_null(strstr(msg, "(--max-dataset-values 100000)"));
    expect_nothing_stored(f, wal);
    assert_int_equal(import_lim(f, path, path, 0, 0, &id, msg, sizeof msg), QN_EINVAL);
    expect_nothing_stored(f, wal);
}

/* ---- IDX ------------------------------------------------------------------------ */

/* Big-endian 32-bit integers into p. */
static void be32(unsigned char *p, const uint32_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < 4; b++)
            p[4 * i + b] = (unsigned char)(v[i] >> (24 - 8 * b));
}

/* An IDX images file of n rows x cols images (seeded bytes), optionally
 * followed by n labels: a new buffer of *len bytes; *img_len: the images' part. */
static unsigned char *idx_file(uint32_t n, uint32_t rows, uint32_t cols, int labels,
                               size_t *len, size_t *img_len)
{
    size_t px = (size_t)n * rows * cols;
    *img_len = 16 + px;
    *len = *img_len + (labels ? 8 + n : 0);
    unsigned char *b = malloc(*len);
    assert_non_null(b);
    const uint32_t head[] = {0x00000803, n, rows, cols}, lhead[] = {0x00000801, n};
    be32(b, head, 4);
    uint32_t x = 12345;
    for (size_t i = 0; i < px; i++) {
        x = x * 1103515245u + 12345u;
        b[16 + i] = (unsigned char)(x >> 16) & (i % 5 ? 0xff : 0x0f); /* some runs compress */
    }
    if (labels) {
        be32(b + *img_len, lhead, 2);
        for (size_t i = 0; i < n; i++)
            b[*img_len + 8 + i] = (unsigned char)(i * 7 % 10);
    }
    return b;
}

/* The whole-file parse of a joined file (images, then labels or not). */
static void idx_whole(const char *path, struct data_set *ds)
{
    struct data_idx img, lab;
    struct data_error e;
    assert_int_equal(data_idx_read_joined(&img, &lab, path, &e), 0);
    assert_int_equal(data_idx_to_set(ds, &img, lab.len ? &lab : NULL, &e), 0);
    data_idx_close(&img);
    data_idx_close(&lab);
}

static void test_idx_equals_whole(void **state)
{
    struct qt_store *f = *state;
    size_t len = 0, img_len = 0, zlen = 0;
    unsigned char *raw = idx_file(5000, 7, 9, 1, &len, &img_len); /* 2 chunks, 2 blocks */
    char path[700], lpath[700], msg[512] = "";
    int64_t id = 0;
    struct data_set ds;
    struct data_error e;
    put(f, "joined.idx", raw, len, path, sizeof path);
    idx_whole(path, &ds);
    assert_int_equal(import_lim(f, path, NULL, len, 0, &id, msg, sizeof msg), 0);
    expect_same(f, id, &ds, 64);
    unsigned char *z = gz(raw, len, 2, &zlen);
    put(f, "joined.idx.gz", z, zlen, path, sizeof path);
    free(z);
    assert_int_equal(import_lim(f, path, NULL, len, 5000 * 64, &id, msg, sizeof msg), 0);
    expect_same(f, id, &ds, 64);
    data_close(&ds);
    /* Labels in a file of their own, images gzip'd. */
    z = gz(raw, img_len, 1, &zlen);
    put(f, "images.gz", z, zlen, path, sizeof path);
    free(z);
    put(f, "labels", raw + img_len, len - img_len, lpath, sizeof lpath);
    assert_int_equal(data_load_idx(&ds, path, lpath, &e), 0);
    assert_int_equal(import_lim(f, path, lpath, 0, 0, &id, msg, sizeof msg), 0);
    expect_same(f, id, &ds, 64);
    data_close(&ds);
    /* Images alone: 63 columns, no label. */
    free(raw);
    raw = idx_file(300, 7, 9, 0, &len, &img_len);
    z = gz(raw, len, 1, &zlen);
    put(f, "alone.gz", z, zlen, path, sizeof path);
    idx_whole(path, &ds);
    assert_int_equal(import_lim(f, path, NULL, 0, 0, &id, msg, sizeof msg), 0);
    expect_same(f, id, &ds, 63);
    struct store_dataset d;
    assert_int_equal(store_dataset_get(f->s, id, &d), 0);
    assert_string_equal(d.source, "idx");
    assert_non_null(strstr(d.columns, "\"p62\"]"));
    store_dataset_free(&d);
    data_close(&ds);
    free(z);
    free(raw);
}

/* Truncated labels, trailing bytes, a header announcing more than the cap:
 * refused with the loader's sentences, nothing stored. */
static void test_idx_refusals(void **state)
{
    struct qt_store *f = *state;
    long wal = wal_size(f);
    size_t len = 0, img_len = 0, zlen = 0;
    unsigned char *raw = idx_file(5000, 7, 9, 1, &len, &img_len);
    char path[700], msg[512] = "";
    int64_t id = 0;
    put(f, "short.idx", raw, len - 1, path, sizeof path);
    assert_int_equal(import_lim(f, path, NULL, 0, 0, &id, msg, sizeof msg), QN_EFORMAT);
    assert_non_null(strstr(msg, "IDX: the labels after the images: truncated: 4999 of 5000 "
                                "data bytes"));
    expect_nothing_stored(f, wal);
    unsigned char *more = malloc(len + 1);
    memcpy(more, raw, len);
    more[len] = 7;
    put(f, "more.idx", more, len + 1, path, sizeof path);
    free(more);
    assert_int_equal(import_lim(f, path, NULL, 0, 0, &id, msg, sizeof msg), QN_EFORMAT);
    assert_non_null(strstr(msg, "IDX: the labels after the images: trailing bytes after 5000 "
                                "data bytes"));
    expect_nothing_stored(f, wal);
    unsigned char *z = gz(raw, len, 1, &zlen);
    put(f, "ok.gz", z, zlen, path, sizeof path);
    free(z);
    assert_int_equal(import_lim(f, path, NULL, img_len - 1, 0, &id, msg, sizeof msg),
                     QN_ETOOLARGE);
    assert_non_null(strstr(msg, "IDX: the images header announces 315016 bytes once "
                                "decompressed, more than 315015"));
    assert_int_equal(import_lim(f, path, NULL, len - 1, 0, &id, msg, sizeof msg), QN_ETOOLARGE);
    assert_non_null(strstr(msg, "(--max-upload 320023)"));
    assert_int_equal(import_lim(f, path, NULL, 0, 5000 * 64 - 1, &id, msg, sizeof msg),
                     QN_ELIMIT);
    assert_non_null(strstr(msg, "the IDX file holds 320000 values once decompressed"));
    expect_nothing_stored(f, wal);
    /* One image of 1024 x 1024 pixels: more columns than a row may have,
     * refused from the header before a name is made. */
    const uint32_t wide[] = {0x00000803, 1, 1024, 1024};
    unsigned char head[16];
    be32(head, wide, 4);
    put(f, "wide.idx", head, sizeof head, path, sizeof path);
    assert_int_equal(import_lim(f, path, NULL, 0, 0, &id, msg, sizeof msg), QN_ERANGE);
    assert_non_null(strstr(msg, "IDX: images of 1048576 pixels, more than 1048575 columns"));
    expect_nothing_stored(f, wal);
    free(raw);
}

/* ---- every cut and flip: the stream agrees with the whole-file loaders ---------- */

/* Imports buf[len] as a file; 0 and the dataset's id, or the code. */
static int import_buf(const struct qt_store *f, const void *buf, size_t len, int64_t *id)
{
    char path[700], msg[512];
    put(f, "cut", buf, len, path, sizeof path);
    return import_lim(f, path, NULL, 0, 0, id, msg, sizeof msg);
}

/* The whole-file parse of buf[len] as import reads it (CSV: every column,
 * the last as the target; IDX: images, then labels or none); 0 or a code. */
static int whole_buf(const struct qt_store *f, const unsigned char *buf, size_t len, int idx,
                     struct data_set *ds, size_t *cols)
{
    char path[700];
    struct data_error e;
    memset(ds, 0, sizeof *ds);
    if (idx) {
        put(f, "cut", buf, len, path, sizeof path);
        struct data_idx img, lab;
        int rc = data_idx_read_joined(&img, &lab, path, &e);
        if (rc == 0) {
            rc = data_idx_to_set(ds, &img, lab.len ? &lab : NULL, &e);
            *cols = ds->d + (lab.len ? 1 : 0);
            data_idx_close(&img);
            data_idx_close(&lab);
        }
        return rc;
    }
    const char *nl = memchr(buf, '\n', len), *p = (const char *)buf;
    size_t hl = nl ? (size_t)(nl - p) : len, n = 1;
    for (size_t i = 0; i < hl; i++)
        n += p[i] == ',';
    if (n < 2)
        return QN_EFORMAT;
    char **names = calloc(n, sizeof *names);
    assert_non_null(names);
    const char *b = p;
    for (size_t j = 0; j < n; j++) { /* names as the loader trims them */
        const char *fe = memchr(b, ',', (size_t)(p + hl - b));
        fe = fe ? fe : p + hl;
        const char *nb = b, *ne = fe;
        while (nb < ne && (*nb == ' ' || *nb == '\t'))
            nb++;
        while (ne > nb && (ne[-1] == ' ' || ne[-1] == '\t' || ne[-1] == '\r'))
            ne--;
        if (ne - nb >= 2 && *nb == '"' && ne[-1] == '"')
            nb++, ne--;
        names[j] = strndup(nb, (size_t)(ne - nb));
        b = fe + 1;
    }
    struct data_csv_opts o = {(const char *const *)names, n - 1, NULL, names[n - 1]};
    int rc = data_load_csv_mem(ds, p, len, &o, &e);
    *cols = n;
    for (size_t j = 0; j < n; j++)
        free(names[j]);
    free(names);
    return rc;
}

/* buf[len] stored or refused as the whole-file loaders take or refuse it. */
static void expect_agree(const struct qt_store *f, const unsigned char *buf, size_t len, int idx,
                         const char *what, size_t at)
{
    struct data_set ds;
    size_t cols = 0;
    int64_t id = 0;
    int whole = whole_buf(f, buf, len, idx, &ds, &cols);
    int streamed = import_buf(f, buf, len, &id);
    if ((whole == 0) != (streamed == 0))
        fail_msg("%s at %zu: the whole-file loader says %d, the stream %d", what, at, whole,
                 streamed);
    if (whole == 0)
        expect_same(f, id, &ds, cols);
    data_close(&ds);
}

/* Every prefix and every one-byte change of a small CSV and IDX file (raw
 * and gzip) is stored, or refused, alike by the stream and the loaders. */
static void test_cuts_and_flips_agree(void **state)
{
    struct qt_store *f = *state;
    static const char csv[] = "x, \"y\" ,t\r\n1,2,3\n\n-4.5,5e-3, 6 \r\n7,8,9";
    size_t len = sizeof csv - 1, img_len = 0, zlen = 0;
    unsigned char *buf = malloc(4096);
    assert_non_null(buf);
    for (size_t cut = 0; cut <= len; cut++)
        expect_agree(f, (const unsigned char *)csv, cut, 0, "CSV cut", cut);
    static const char flips[] = {',', '\n', 'a'};
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof flips; k++) {
            memcpy(buf, csv, len);
            buf[i] = (unsigned char)flips[k];
            expect_agree(f, buf, len, 0, "CSV flip", i);
        }
    unsigned char *idx = idx_file(3, 2, 2, 1, &len, &img_len);
    for (size_t cut = 0; cut <= len; cut++)
        expect_agree(f, idx, cut, 1, "IDX cut", cut);
    for (size_t i = 0; i < len; i++)
        for (unsigned v = 1; v < 256; v += 254) { /* the low bit, then all */
            memcpy(buf, idx, len);
            buf[i] = (unsigned char)(buf[i] ^ v);
            expect_agree(f, buf, len, 1, "IDX flip", i);
        }
    unsigned char *z = gz(idx, len, 1, &zlen);
    for (size_t cut = 0; cut <= zlen; cut++)
        expect_agree(f, z, cut, 1, "gzip IDX cut", cut);
    free(z);
    free(idx);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csv_equals_whole, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_csv_refusals, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_idx_equals_whole, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_idx_refusals, qt_store_setup, qt_store_teardown),
        cmocka_unit_test_setup_teardown(test_cuts_and_flips_agree, qt_store_setup,
                                        qt_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
