/*
 * import.h: storing a CSV or IDX file as a dataset (`qn dataset import`,
 * and later POST /v1/datasets).
 *
 * CSV: a header row of column names, then numeric rows; every column is
 * stored (source "csv"). IDX (the MNIST format, gzip or raw, recognised by
 * its magic): an images file (n, rows, cols) becomes columns p0..p{rows*cols-1}
 * scaled to [0, 1], plus "label" from an optional labels file, given apart
 * or following the images in the same file (source "idx").
 * Parsing is the engine's (engine/data.h), so a bad file is refused with the
 * loader's sentence naming line and column, and nothing is stored.
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

#endif
