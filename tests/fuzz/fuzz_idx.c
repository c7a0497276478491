/*
 * fuzz_idx.c: the IDX loader (data_idx_read_mem, data_load_idx_mem), raw and
 * gzip (a buffer starting 1f 8b goes through zlib).
 *
 * Input: one mode byte, then the file bytes. Mode bits 0-1: 0 reads a labels
 * file (rank 1), 1 an images file (rank 3), 2 a file of rank 1 + bits 2-3,
 * 3 an images file and a labels file together (data_load_idx_mem): the next
 * two bytes (big-endian) say where the images end (clamped to the input).
 * Every buffer handed over is an exact-size copy, so a read past its end is
 * caught.
 */
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fuzz.h"

static void fuzz_idx__one_file(const uint8_t *p, size_t len, size_t rank)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return;
    memcpy(buf, p, len);
    struct data_idx idx;
    struct data_error err;
    if (data_idx_read_mem(&idx, buf, len, rank, &err) == 0)
        data_idx_close(&idx);
    free(buf);
}

static void fuzz_idx__pair(const uint8_t *p, size_t len)
{
    if (len < 2)
        return;
    size_t cut = ((size_t)p[0] << 8) | p[1];
    p += 2;
    len -= 2;
    if (cut > len)
        cut = len;
    uint8_t *img = malloc(cut ? cut : 1), *lab = malloc(len - cut ? len - cut : 1);
    if (img && lab) {
        memcpy(img, p, cut);
        memcpy(lab, p + cut, len - cut);
        struct data_set ds;
        struct data_error err;
        if (data_load_idx_mem(&ds, img, cut, lab, len - cut, &err) == 0)
            (void)data_check(&ds, &err);
        data_close(&ds);
    }
    free(img);
    free(lab);
}

int fuzz_idx_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0] & 3u;
    if (mode == 0)
        fuzz_idx__one_file(data + 1, size - 1, 1);
    else if (mode == 1)
        fuzz_idx__one_file(data + 1, size - 1, 3);
    else if (mode == 2)
        fuzz_idx__one_file(data + 1, size - 1, 1 + ((data[0] >> 2) & 3u));
    else
        fuzz_idx__pair(data + 1, size - 1);
    return 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_idx_one(data, size);
}
#endif
