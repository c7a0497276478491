/*
 * fuzz_csv.c: the CSV loader (data_load_csv_mem) and what a fit or train job
 * does next with the rows (data_check, data_split, standardisation).
 *
 * Input: one byte choosing the column options (low 3 bits: one of eight
 * combinations of inputs, label and target naming the seed corpus's columns
 * x1, x2, y, label, including a duplicate and a missing name), then the CSV
 * text. The buffer handed to the loader is an exact-size copy, so a read
 * past its end is caught.
 */
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fuzz.h"

static const char *const fuzz_csv__x12[] = {"x1", "x2"};
static const char *const fuzz_csv__x2[] = {"x2"};
static const char *const fuzz_csv__x11[] = {"x1", "x1"};
static const char *const fuzz_csv__x1[] = {"x1"};

static const struct data_csv_opts fuzz_csv__opts[8] = {
    {NULL, 0, "label", NULL},      {NULL, 0, NULL, "y"},
    {fuzz_csv__x12, 2, "label", NULL}, {fuzz_csv__x2, 1, NULL, "y"},
    {fuzz_csv__x11, 2, "label", NULL}, {NULL, 0, "nope", NULL},
    {NULL, 0, NULL, "x1"},         {fuzz_csv__x1, 1, "y", NULL},
};

/* What a job does with a loaded set: check, split, scale. */
static void fuzz_csv__use(const struct data_set *ds)
{
    struct data_error err;
    if (data_check(ds, &err) != 0)
        return;
    struct data_set train, test;
    if (data_split(ds, 0.25, 7, &train, &test) != 0)
        return;
    struct data_scaler sc;
    if (train.n > 0 && data_scaler_fit(&sc, &train) == 0) {
        (void)data_scaler_apply(&sc, &train);
        (void)data_scaler_apply(&sc, &test);
        data_scaler_close(&sc);
    }
    data_close(&train);
    data_close(&test);
}

int fuzz_csv_one(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct data_csv_opts *o = &fuzz_csv__opts[data[0] & 7u];
    size_t len = size - 1;
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, len);
    struct data_set ds;
    struct data_error err;
    if (data_load_csv_mem(&ds, buf, len, o, &err) == 0)
        fuzz_csv__use(&ds);
    data_close(&ds);
    free(buf);
    return 0;
}

#ifndef QN_FUZZ_REPLAY
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_csv_one(data, size);
}
#endif
