/*
 * import.h: storing a CSV or IDX file as a dataset (`qn dataset import`,
 * and later POST /v1/datasets).
 *
 * CSV: a header row of column names, then numeric rows; every column is
 * stored (source "csv"). IDX (the MNIST format, gzip or raw, recognised by
 * its magic): an images file (n, rows, cols) becomes columns p0..p{rows*cols-1}
 * scaled to [0, 1], plus "label" from an optional labels file, given apart
 * or following the images in the same file (source "idx").
 * Parsing is the engine's (engine/data_stream.h), so a bad file is refused
 * with the loader's sentence naming line and column, and nothing is stored.
 * Either file may be gzip-compressed. The file streams into the store: the
 * memory an import takes does not grow with the file.
 */
#ifndef QN_IMPORT_H
#define QN_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/*
 * Imports `path` (labels: an IDX labels file for an IDX images file, else
 * NULL) as dataset `name`. A name a spec could not tell from another
 * dataset is refused with QN_EEXIST and a sentence: a built-in dataset's
 * ("xor", spec_dataset_is_builtin) or one a stored dataset has. Without a
 * name (NULL) the dataset gets a readable one: `stem` (NULL: "upload"),
 * else "stem 2", "stem 3", ... the first that is free. Returns 0 and the
 * id in *id, or QN_EFORMAT / QN_EIO / QN_ERANGE / QN_EINVAL (bad file or
 * options) or QN_EEXIST with a sentence in msg (cap bytes), or a store code.
 * Trade-off: the name is checked before the write, outside its transaction,
 * so two imports racing under one new name may both succeed.
 */
int import_file(struct store *s, const char *path, const char *labels, const char *name,
                const char *stem, int64_t *id, char *msg, size_t cap);

/* What one upload may hold; 0 in a field: no limit. */
struct import_limits {
    uint64_t max_bytes;  /* decompressed bytes of the file (--max-upload) */
    uint64_t max_values; /* values of the dataset (--max-dataset-values) */
};

/*
 * As import_file within lim (borrowed): a file that decompresses to more
 * than max_bytes is refused with QN_ETOOLARGE, one that holds more than
 * max_values values with QN_ELIMIT, each with a sentence naming the
 * option in msg. An IDX file is refused by what its header announces,
 * before its data is read (so a small gzip file that would inflate to
 * gigabytes is never inflated); a CSV file as soon as the bytes inflated
 * or the values parsed pass the limit. Nothing is stored then.
 */
int import_file_max(struct store *s, const char *path, const char *labels, const char *name,
                    const char *stem, const struct import_limits *lim, int64_t *id, char *msg,
                    size_t cap);

#endif
