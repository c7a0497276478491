/*
 * test_data.c: dataset loaders, generators, splits and scaling.
 *
 * IDX: Fashion-MNIST as installed by Debian, and small hand-made files
 * (raw and gzip, in memory and on disk) including malformed ones, each of
 * which must be refused with QN_EFORMAT. CSV: good files in their variants
 * and every kind of bad cell, with the line and column in the message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"
#include "qn_err.h"
#include "qn_test.h"

/* ---- IDX ---- */

static void test_fashion_mnist(void **state)
{
    (void)state;
    struct data_set tr, te;
    struct data_error err;
    if (access(DATA_FASHION_MNIST_DIR "/train-labels-idx1-ubyte.gz", R_OK) != 0)
        qt_skip("the package dataset-fashion-mnist is not installed (no " DATA_FASHION_MNIST_DIR
                "/train-labels-idx1-ubyte.gz; `make deps` installs it)");
    int rc = data_load_fashion_mnist(&tr, &te, NULL, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(tr.n, 60000);
    assert_int_equal(tr.d, 784);
    assert_int_equal(te.n, 10000);
    assert_int_equal(te.d, 784);
    assert_int_equal(tr.n_classes, 10);
    assert_int_equal(te.n_classes, 10);
    assert_null(tr.y);
    assert_int_equal(tr.labels[0], 9); /* the first training image is an ankle boot */
    assert_int_equal(data_check(&tr, &err), QN_OK);
    assert_int_equal(data_check(&te, &err), QN_OK);
    float lo = 1, hi = 0;
    for (size_t i = 0; i < tr.n * tr.d; i++) {
        lo = tr.x[i] < lo ? tr.x[i] : lo;
        hi = tr.x[i] > hi ? tr.x[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    size_t count[10] = {0};
    for (size_t i = 0; i < te.n; i++)
        count[te.labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(count[c], 1000);
    data_close(&tr);
    data_close(&te);
}

/* A raw IDX buffer: header of `ndims` dims then len bytes 0, 1, 2, ... */
static size_t make_idx(unsigned char *buf, unsigned magic, size_t ndims, const uint32_t *dims,
                       size_t len)
{
    size_t k = 0;
    buf[k++] = (unsigned char)(magic >> 24);
    buf[k++] = (unsigned char)(magic >> 16);
    buf[k++] = (unsigned char)(magic >> 8);
    buf[k++] = (unsigned char)magic;
    for (size_t i = 0; i < ndims; i++) {
        buf[k++] = (unsigned char)(dims[i] >> 24);
        buf[k++] = (unsigned char)(dims[i] >> 16);
        buf[k++] = (unsigned char)(dims[i] >> 8);
        buf[k++] = (unsigned char)dims[i];
    }
    for (size_t i = 0; i < len; i++)
        buf[k++] = (unsigned char)(i % 3);
    return k;
}

/* gzip-compresses src into dst (capacity cap); returns the length. */
static size_t gzip_mem(unsigned char *dst, size_t cap, const unsigned char *src, size_t len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (unsigned char *)src;
    zs.avail_in = (unsigned)len;
    zs.next_out = dst;
    zs.avail_out = (unsigned)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t n = zs.total_out;
    deflateEnd(&zs);
    return n;
}

/* Two 2x3 images and their labels (classes 0..2). */
static size_t small_images(unsigned char *buf)
{
    const uint32_t dims[3] = {2, 2, 3};
    return make_idx(buf, 0x0803, 3, dims, 12);
}

static size_t small_labels(unsigned char *buf, uint32_t n)
{
    return make_idx(buf, 0x0801, 1, &n, n);
}

static void test_idx_mem(void **state)
{
    (void)state;
    unsigned char img[64], lab[64], gimg[256], glab[256];
    size_t ni = small_images(img), nl = small_labels(lab, 2);
    struct data_set ds;
    struct data_error err;
    assert_int_equal(data_load_idx_mem(&ds, img, ni, lab, nl, &err), QN_OK);
    assert_int_equal(ds.n, 2);
    assert_int_equal(ds.d, 6);
    assert_int_equal(ds.n_classes, 2);
    assert_true(ds.x[1] == 1.0f / 255.0f && ds.x[2] == 2.0f / 255.0f);
    assert_int_equal(ds.labels[1], 1);
    data_close(&ds);
    /* the same through gzip */
    size_t gi = gzip_mem(gimg, sizeof gimg, img, ni), gl = gzip_mem(glab, sizeof glab, lab, nl);
    assert_int_equal(data_load_idx_mem(&ds, gimg, gi, glab, gl, &err), QN_OK);
    assert_int_equal(ds.n, 2);
    assert_true(ds.x[5] == 2.0f / 255.0f);
    data_close(&ds);
}

/* Every malformed variant is QN_EFORMAT with an empty output. */
static void expect_bad(const unsigned char *img, size_t ni, const unsigned char *lab, size_t nl,
                       const char *what)
{
    struct data_set ds;
    struct data_error err = {0};
    int rc = data_load_idx_mem(&ds, img, ni, lab, nl, &err);
    if (rc != QN_EFORMAT)
        fail_msg("%s: expected QN_EFORMAT, got %d (%s)", what, rc, err.msg);
    assert_null(ds.x);
    assert_true(err.msg[0] != 0);
}

static void test_idx_malformed(void **state)
{
    (void)state;
    unsigned char img[64], lab[64], bad[64], gz[256];
    size_t ni = small_images(img), nl = small_labels(lab, 2);
    const uint32_t huge[3] = {0xffffffffu, 0xffffffffu, 0xffffffffu}, zero[3] = {2, 0, 3};
    const uint32_t mid[3] = {65536, 65536, 2};

    memcpy(bad, img, ni);
    bad[3] = 0x01; /* labels magic where images belong */
    expect_bad(bad, ni, lab, nl, "bad magic");
    bad[3] = 0x03;
    bad[2] = 0x0d; /* float type */
    expect_bad(bad, ni, lab, nl, "float type");
    expect_bad(img, 3, lab, nl, "short magic");
    expect_bad(img, 10, lab, nl, "truncated header");
    expect_bad(img, ni - 1, lab, nl, "truncated data");
    memcpy(bad, img, ni);
    bad[ni] = 7;
    expect_bad(bad, ni + 1, lab, nl, "trailing byte");
    expect_bad(bad, make_idx(bad, 0x0803, 3, huge, 0), lab, nl, "dims overflow");
    expect_bad(bad, make_idx(bad, 0x0803, 3, mid, 0), lab, nl, "dims above the cap");
    expect_bad(bad, make_idx(bad, 0x0803, 3, zero, 0), lab, nl, "zero dim");
    expect_bad(img, ni, bad, small_labels(bad, 3), "count mismatch");
    expect_bad(img, ni, img, ni, "images as labels");
    expect_bad(img, 0, lab, nl, "empty");
    /* gzip: truncated stream, corrupt stream */
    size_t g = gzip_mem(gz, sizeof gz, img, ni);
    expect_bad(gz, g / 2, lab, nl, "truncated gzip");
    gz[g / 2] ^= 0x55;
    gz[g / 2 + 1] ^= 0xaa;
    expect_bad(gz, g, lab, nl, "corrupt gzip");
}

/* Writes len bytes to a new temp file; path into buf. gz: through gzopen. */
static void write_temp(char *path, const unsigned char *data, size_t len, int gz)
{
    strcpy(path, "/tmp/qn_test_data_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(data, 1, len, f), len);
        fclose(f);
    }
}

static void test_idx_files(void **state)
{
    (void)state;
    unsigned char img[64], lab[64];
    size_t ni = small_images(img), nl = small_labels(lab, 2);
    char pi[64], pl[64], pt[64];
    struct data_set ds;
    struct data_error err;
    write_temp(pi, img, ni, 1); /* gzip images, raw labels */
    write_temp(pl, lab, nl, 0);
    write_temp(pt, img, ni - 5, 0);
    assert_int_equal(data_load_idx(&ds, pi, pl, &err), QN_OK);
    assert_int_equal(ds.n, 2);
    assert_true(ds.x[4] == 1.0f / 255.0f);
    data_close(&ds);
    assert_int_equal(data_load_idx(&ds, pt, pl, &err), QN_EFORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(data_load_idx(&ds, "/nonexistent/images.gz", pl, &err), QN_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/images.gz"));
    struct data_idx idx;
    assert_int_equal(data_idx_read(&idx, pl, 1, &err), QN_OK);
    assert_int_equal(idx.ndims, 1);
    assert_int_equal(idx.dims[0], 2);
    data_idx_close(&idx);
    unlink(pi);
    unlink(pl);
    unlink(pt);
}

/* Images followed by their labels in one file: raw + raw, and two gzip members
 * (`cat images.gz labels.gz`); images alone; images followed by junk. */
static void test_idx_joined(void **state)
{
    (void)state;
    unsigned char img[64], lab[64], both[128], gz[512], junk[128];
    size_t ni = small_images(img), nl = small_labels(lab, 2);
    memcpy(both, img, ni);
    memcpy(both + ni, lab, nl);
    size_t gi = gzip_mem(gz, sizeof gz, img, ni);
    size_t gl = gzip_mem(gz + gi, sizeof gz - gi, lab, nl);
    char p_raw[64], p_gz[64], p_img[64], p_junk[64];
    write_temp(p_raw, both, ni + nl, 0);
    write_temp(p_gz, gz, gi + gl, 0); /* already two gzip members: written as they are */
    write_temp(p_img, img, ni, 1);
    memcpy(junk, img, ni);
    memcpy(junk + ni, img, ni); /* images where the labels belong */
    write_temp(p_junk, junk, 2 * ni, 0);
    const char *const joined[] = {p_raw, p_gz};
    struct data_idx im, lb;
    struct data_error err = {0};
    struct data_set ds;
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(data_idx_read_joined(&im, &lb, joined[k], &err), QN_OK);
        assert_int_equal(im.dims[0], 2);
        assert_int_equal(lb.len, 2);
        assert_int_equal(data_idx_to_set(&ds, &im, &lb, &err), QN_OK);
        assert_int_equal(ds.n_classes, 2);
        assert_int_equal(ds.labels[0], 0);
        assert_int_equal(ds.labels[1], 1);
        assert_true(ds.x[5] == 2.0f / 255.0f);
        data_close(&ds);
        data_idx_close(&im);
        data_idx_close(&lb);
    }
    assert_int_equal(data_idx_read_joined(&im, &lb, p_img, &err), QN_OK);
    assert_int_equal(lb.len, 0);
    assert_null(lb.data);
    assert_int_equal(data_idx_to_set(&ds, &im, NULL, &err), QN_OK);
    assert_int_equal(ds.n_classes, 0);
    assert_null(ds.labels);
    data_close(&ds);
    data_idx_close(&im);
    assert_int_equal(data_idx_read_joined(&im, &lb, p_junk, &err), QN_EFORMAT);
    assert_non_null(strstr(err.msg, "IDX: the labels after the images: bad magic 00000803"));
    assert_null(im.data);
    assert_null(lb.data);
    unlink(p_raw);
    unlink(p_gz);
    unlink(p_img);
    unlink(p_junk);
}

/* ---- CSV ---- */

static const char *const two_inputs[] = {"b", "a"};

static void test_csv_good(void **state)
{
    (void)state;
    const char *text = "\"a\", b ,label,note\r\n1,2,0,x\r\n\r\n3.5, -4e-1 ,2,yy\r\n5,6,1,\n";
    struct data_set ds;
    struct data_error err;
    struct data_csv_opts o = {.label = "label"};
    o.inputs = two_inputs;
    o.n_inputs = 2;
    int rc = data_load_csv_mem(&ds, text, strlen(text), &o, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(ds.n, 3);
    assert_int_equal(ds.d, 2);
    assert_int_equal(ds.n_classes, 3);
    assert_true(ds.x[0] == 2.0f && ds.x[1] == 1.0f); /* inputs in the order asked */
    assert_true(ds.x[2] == -0.4f && ds.x[3] == 3.5f);
    assert_int_equal(ds.labels[1], 2);
    data_close(&ds);
    /* regression, inputs default to every other column, no final newline */
    const char *reg = "x,y,t\n1,2,3\n4,5,6";
    struct data_csv_opts r = {.target = "t"};
    assert_int_equal(data_load_csv_mem(&ds, reg, strlen(reg), &r, &err), QN_OK);
    assert_int_equal(ds.n, 2);
    assert_int_equal(ds.d, 2);
    assert_int_equal(ds.t, 1);
    assert_null(ds.labels);
    assert_true(ds.y[1] == 6.0f && ds.x[3] == 5.0f);
    data_close(&ds);
}

/* Expects `text` to be refused with code, and msg to contain `needle`. */
static void csv_bad(const char *text, const struct data_csv_opts *o, int code, const char *needle)
{
    struct data_set ds;
    struct data_error err = {0};
    int rc = data_load_csv_mem(&ds, text, strlen(text), o, &err);
    if (rc != code || !strstr(err.msg, needle))
        fail_msg("'%s': got %d '%s', expected %d with '%s'", text, rc, err.msg, code, needle);
    assert_null(ds.x);
}

static void test_csv_errors(void **state)
{
    (void)state;
    struct data_csv_opts o = {.label = "y"};
    struct data_csv_opts t = {.target = "y"};
    csv_bad("a,y\n1,0\n2,abc\n", &t, QN_EFORMAT, "line 3, column 2 ('y'): 'abc' is not a number");
    csv_bad("a,y\n1,0\nfoo,1\n", &o, QN_EFORMAT, "line 3, column 1 ('a')");
    csv_bad("a,y\n1,0\nnan,1\n", &o, QN_EFORMAT, "not a finite");
    csv_bad("a,y\n1,0\n1e39,1\n", &o, QN_EFORMAT, "not a finite");
    csv_bad("a,y\n1,0\ninf,1\n", &o, QN_EFORMAT, "not a finite");
    csv_bad("a,y\n1,0\n2\n", &o, QN_EFORMAT, "line 3: 1 fields, the header has 2");
    csv_bad("a,y\n1,0\n2,1,3\n", &o, QN_EFORMAT, "line 3: 3 fields");
    csv_bad("a,y\n1,\n", &o, QN_EFORMAT, "line 2, column 2 ('y'): empty cell");
    csv_bad("a,y\n1,0.5\n", &o, QN_EFORMAT, "label must be an integer");
    csv_bad("a,y\n1,-1\n", &o, QN_EFORMAT, "label must be an integer");
    csv_bad("a,y\n", &o, QN_EFORMAT, "no data rows");
    csv_bad("", &o, QN_EFORMAT, "missing header");
    csv_bad("a,,y\n1,2,3\n", &o, QN_EFORMAT, "empty column name");
    csv_bad("a,b\n1,2\n", &o, QN_ESPEC, "no column named 'y'");
    struct data_csv_opts both = {.label = "y", .target = "a"};
    csv_bad("a,y\n1,2\n", &both, QN_ESPEC, "exactly one");
    const char *const dup[] = {"a", "y"};
    struct data_csv_opts twice = {.label = "y", .inputs = dup, .n_inputs = 2};
    csv_bad("a,y\n1,2\n", &twice, QN_ESPEC, "chosen twice");
    struct data_csv_opts none = {.label = "y"};
    csv_bad("y\n1\n", &none, QN_ESPEC, "no input columns");
    /* the line number and column are also in the struct */
    struct data_set ds;
    struct data_error err;
    const char *bad = "a,y\n1,0\n2,1\n3,x\n";
    assert_int_equal(data_load_csv_mem(&ds, bad, strlen(bad), &t, &err), QN_EFORMAT);
    assert_int_equal(err.line, 4);
    assert_int_equal(err.column, 2);
    /* a NUL inside the buffer is just a bad cell */
    const char nul[] = "a,y\n1,0\n2\0,1\n";
    assert_int_equal(data_load_csv_mem(&ds, nul, sizeof nul - 1, &o, &err), QN_EFORMAT);
}

static void test_csv_file(void **state)
{
    (void)state;
    const char *text = "x1,x2,y\n0.5,1.5,1\n2,3,0\n";
    char path[64];
    struct data_set ds;
    struct data_error err;
    struct data_csv_opts o = {.label = "y"};
    write_temp(path, (const unsigned char *)text, strlen(text), 0);
    assert_int_equal(data_load_csv(&ds, path, &o, &err), QN_OK);
    assert_int_equal(ds.n, 2);
    assert_true(ds.x[1] == 1.5f);
    data_close(&ds);
    unlink(path);
    assert_int_equal(data_load_csv(&ds, path, &o, &err), QN_EIO);
}

/* ---- generators ---- */

static void test_generators(void **state)
{
    (void)state;
    struct data_set a, b;
    assert_int_equal(data_gen_xor(&a, 4, 0.3, 1), QN_OK);
    const float want[8] = {0, 0, 1, 0, 0, 1, 1, 1};
    const int lab[4] = {0, 1, 1, 0};
    assert_memory_equal(a.x, want, sizeof want);
    assert_memory_equal(a.labels, lab, sizeof lab);
    data_close(&a);
    assert_int_equal(data_gen_xor(&a, 400, 0.1, 1), QN_OK);
    assert_int_equal(data_gen_xor(&b, 400, 0.1, 1), QN_OK);
    assert_memory_equal(a.x, b.x, 800 * sizeof(float));
    for (size_t i = 0; i < 400; i++) /* noise 0.1: every point stays in its quadrant */
        assert_int_equal(a.labels[i], (a.x[2 * i] > 0.5f) ^ (a.x[2 * i + 1] > 0.5f));
    data_close(&a);
    data_close(&b);

    assert_int_equal(data_gen_sine(&a, 1000, 3), QN_OK);
    assert_int_equal(a.t, 1);
    for (size_t i = 0; i < a.n; i++) {
        assert_true(a.x[i] >= -(float)M_PI && a.x[i] <= (float)M_PI);
        assert_true(fabsf(a.y[i] - sinf(a.x[i])) < 1e-6f);
    }
    data_close(&a);

    assert_int_equal(data_gen_spirals(&a, 300, 3, 0.1, 4), QN_OK);
    assert_int_equal(a.n_classes, 3);
    assert_int_equal(data_check(&a, NULL), QN_OK);
    assert_int_equal(a.labels[4], 1);
    for (size_t i = 0; i < a.n; i++)
        assert_true(hypotf(a.x[2 * i], a.x[2 * i + 1]) <= 1.0f + 1e-6f);
    data_close(&a);
    assert_int_equal(data_gen_spirals(&a, 10, 4, 0.1, 4), QN_EINVAL);
}

/* ---- splits, subsets, scaling ---- */

static void test_split(void **state)
{
    (void)state;
    struct data_set src, tr, te, tr2, te2;
    assert_int_equal(data_alloc(&src, 100, 2, 0, 1), QN_OK);
    for (size_t i = 0; i < 100; i++) {
        src.x[2 * i] = (float)i; /* a row id */
        src.x[2 * i + 1] = (float)(i * i);
        src.y[i] = -(float)i;
    }
    assert_int_equal(data_split(&src, 0.2, 7, &tr, &te), QN_OK);
    assert_int_equal(tr.n, 80);
    assert_int_equal(te.n, 20);
    int seen[100] = {0};
    for (size_t i = 0; i < tr.n; i++)
        seen[(int)tr.x[2 * i]]++;
    for (size_t i = 0; i < te.n; i++) {
        seen[(int)te.x[2 * i]]++;
        assert_true(te.y[i] == -te.x[2 * i]); /* rows stay whole */
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(data_split(&src, 0.2, 7, &tr2, &te2), QN_OK);
    assert_memory_equal(te.x, te2.x, 40 * sizeof(float));
    data_close(&tr2);
    data_close(&te2);
    assert_int_equal(data_split(&src, 1.0, 7, &tr2, &te2), QN_EINVAL);
    assert_int_equal(data_split(&src, NAN, 7, &tr2, &te2), QN_EINVAL);

    struct data_set sub;
    assert_int_equal(data_subset(&src, 10, &sub), QN_OK);
    assert_int_equal(sub.n, 10);
    assert_true(sub.x[18] == 9.0f && sub.y[9] == -9.0f);
    data_close(&sub);
    data_close(&tr);
    data_close(&te);
    data_close(&src);
}

static void test_scaler(void **state)
{
    (void)state;
    struct data_set tr, te;
    struct data_scaler s;
    assert_int_equal(data_alloc(&tr, 4, 2, 2, 0), QN_OK);
    assert_int_equal(data_alloc(&te, 1, 2, 2, 0), QN_OK);
    const float x[8] = {1, 5, 2, 5, 3, 5, 4, 5}; /* column 2 is constant */
    memcpy(tr.x, x, sizeof x);
    te.x[0] = 2.5f;
    te.x[1] = 7.0f;
    assert_int_equal(data_scaler_fit(&s, &tr), QN_OK);
    assert_true(s.mean[0] == 2.5f && s.mean[1] == 5.0f);
    assert_true(fabsf(s.std[0] - sqrtf(1.25f)) < 1e-6f);
    assert_true(s.std[1] == 1.0f); /* constant: only centred */
    assert_ptr_equal(s.std, s.slab + 2);
    assert_int_equal(data_scaler_apply(&s, &tr), QN_OK);
    assert_int_equal(data_scaler_apply(&s, &te), QN_OK);
    double m = 0, v = 0;
    for (int i = 0; i < 4; i++)
        m += tr.x[2 * i];
    for (int i = 0; i < 4; i++)
        v += (tr.x[2 * i] - m / 4) * (tr.x[2 * i] - m / 4);
    assert_true(fabs(m) < 1e-6 && fabs(v / 4 - 1) < 1e-6);
    assert_true(te.x[0] == 0.0f && te.x[1] == 2.0f); /* test rows use the train statistics */
    float rows[4] = {2.5f, 7.0f, 1.0f, 5.0f}; /* rows outside a data_set: the same arithmetic */
    assert_int_equal(data_scaler_apply_rows(&s, rows, 2, 2), QN_OK);
    assert_true(rows[0] == te.x[0] && rows[1] == te.x[1] && rows[3] == 0.0f);
    assert_true(rows[2] == (1.0f - 2.5f) / s.std[0]);
    assert_int_equal(data_scaler_apply_rows(&s, rows, 1, 3), QN_EINVAL);
    struct data_set wrong;
    assert_int_equal(data_alloc(&wrong, 1, 3, 0, 1), QN_OK);
    assert_int_equal(data_scaler_apply(&s, &wrong), QN_EINVAL);
    data_close(&wrong);
    data_scaler_close(&s);
    data_close(&tr);
    data_close(&te);
}

static void test_check_and_alloc(void **state)
{
    (void)state;
    struct data_set ds;
    struct data_error err;
    assert_int_equal(data_alloc(&ds, 3, 2, 0, 0), QN_EINVAL);
    assert_int_equal(data_alloc(&ds, 3, 2, 2, 1), QN_EINVAL);
    assert_int_equal(data_alloc(&ds, 3, 0, 2, 0), QN_EINVAL);
    assert_int_equal(data_alloc(&ds, (size_t)1 << 40, 1 << 20, 2, 0), QN_ERANGE);
    assert_int_equal(data_alloc(&ds, 3, 2, 2, 0), QN_OK);
    ds.labels[2] = 2;
    assert_int_equal(data_check(&ds, &err), QN_ERANGE);
    assert_non_null(strstr(err.msg, "row 3"));
    ds.labels[2] = 1;
    ds.x[3] = NAN;
    assert_int_equal(data_check(&ds, &err), QN_EFORMAT);
    assert_non_null(strstr(err.msg, "row 2, input 2"));
    data_close(&ds);
    data_close(&ds); /* closing twice is safe */
}

/* Gather follows the index and the permutation is a seeded shuffle. */
static void test_gather_permute(void **state)
{
    (void)state;
    struct data_set ds;
    assert_int_equal(data_gen_spirals(&ds, 50, 2, 0, 1), QN_OK);
    size_t idx[50], idx2[50];
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(r, 5);
    data_permute(idx, 50, r);
    gsl_rng_set(r, 5);
    data_permute(idx2, 50, r);
    assert_memory_equal(idx, idx2, sizeof idx);
    int seen[50] = {0};
    for (int i = 0; i < 50; i++)
        seen[idx[i]]++;
    for (int i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    float xb[6];
    int lb[3];
    data_gather(&ds, idx, 3, xb, lb, NULL);
    assert_true(xb[2] == ds.x[2 * idx[1]] && lb[2] == ds.labels[idx[2]]);
    gsl_rng_free(r);
    data_close(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_mnist),   cmocka_unit_test(test_idx_mem),
        cmocka_unit_test(test_idx_malformed),   cmocka_unit_test(test_idx_files),
        cmocka_unit_test(test_idx_joined),
        cmocka_unit_test(test_csv_good),        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_file),        cmocka_unit_test(test_generators),
        cmocka_unit_test(test_split),           cmocka_unit_test(test_scaler),
        cmocka_unit_test(test_check_and_alloc), cmocka_unit_test(test_gather_permute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
