/*
 * data_blob.c: a dataset as one little-endian blob, so the daemon can stage
 * the split and standardised rows of a training run in a file that every
 * rank of qn-mpi reads back with the same bits (see data.h).
 *
 * Layout: "QNDS", u32 version 1, u64 n, d, n_classes, t, then x (n * d
 * float32), then labels (n int32) when n_classes > 0, else y (n * t
 * float32). Nothing else; a blob of any other length is refused.
 */
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "qn_err.h"

#define DATA__BLOB_MAGIC "QNDS"
#define DATA__BLOB_VERSION 1u
#define DATA__BLOB_HEAD (4 + 4 + 4 * 8)

static void data__put(unsigned char **p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        (*p)[i] = (unsigned char)(v >> (8 * i));
    *p += bytes;
}

static uint64_t data__get(const unsigned char **p, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)(*p)[i] << (8 * i);
    *p += bytes;
    return v;
}

/* 32-bit values (float bits or int32) of n elements, out or in. */
static void data__put_words(unsigned char **p, const void *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, (const char *)src + 4 * i, 4);
        data__put(p, w, 4);
    }
}

static void data__get_words(const unsigned char **p, void *dst, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t w = (uint32_t)data__get(p, 4);
        memcpy((char *)dst + 4 * i, &w, 4);
    }
}

/* The blob's length for a set of these sizes (sizes already bounded by data_alloc). */
static size_t data__blob_len(size_t n, size_t d, size_t n_classes, size_t t)
{
    return DATA__BLOB_HEAD + 4 * (n * d + (n_classes ? n : n * t));
}

int data_to_blob(const struct data_set *ds, void **blob, size_t *len)
{
    *len = data__blob_len(ds->n, ds->d, ds->n_classes, ds->t);
    unsigned char *b = malloc(*len), *p = b;
    if (!b)
        return QN_ENOMEM;
    memcpy(p, DATA__BLOB_MAGIC, 4), p += 4;
    data__put(&p, DATA__BLOB_VERSION, 4);
    data__put(&p, ds->n, 8), data__put(&p, ds->d, 8);
    data__put(&p, ds->n_classes, 8), data__put(&p, ds->t, 8);
    data__put_words(&p, ds->x, ds->n * ds->d);
    if (ds->n_classes)
        data__put_words(&p, ds->labels, ds->n);
    else
        data__put_words(&p, ds->y, ds->n * ds->t);
    *blob = b;
    return QN_OK;
}

int data_from_blob(const void *blob, size_t len, struct data_set *out)
{
    const unsigned char *p = blob;
    memset(out, 0, sizeof *out);
    if (len < DATA__BLOB_HEAD || memcmp(p, DATA__BLOB_MAGIC, 4) != 0)
        return QN_EFORMAT;
    p += 4;
    if (data__get(&p, 4) != DATA__BLOB_VERSION)
        return QN_EFORMAT;
    uint64_t n = data__get(&p, 8), d = data__get(&p, 8), k = data__get(&p, 8),
             t = data__get(&p, 8);
    if (n > DATA_MAX_ELEMS || d > DATA_MAX_ELEMS || t > DATA_MAX_ELEMS || n == 0)
        return QN_EFORMAT;
    int rc = data_alloc(out, (size_t)n, (size_t)d, (size_t)k, (size_t)t);
    if (rc)
        return rc == QN_ENOMEM ? rc : QN_EFORMAT;
    if (len != data__blob_len(out->n, out->d, out->n_classes, out->t)) {
        data_close(out);
        return QN_EFORMAT;
    }
    data__get_words(&p, out->x, out->n * out->d);
    if (out->n_classes)
        data__get_words(&p, out->labels, out->n);
    else
        data__get_words(&p, out->y, out->n * out->t);
    struct data_error err;
    if (data_check(out, &err)) {
        data_close(out);
        return QN_EFORMAT;
    }
    return QN_OK;
}
