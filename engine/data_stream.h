/*
 * data_stream.h: a CSV or IDX file read a few rows at a time, so that what
 * it holds can be stored as it is parsed, in memory bounded by those rows
 * and not by the file.
 *
 * Files are read through zlib, so gzip and raw files alike (concatenated
 * gzip members read as one stream); which kind a file is, is told from its
 * decompressed first bytes (00 00 08: IDX, else CSV).
 *   - IDX: an images file (n, rows, cols) gives rows of rows*cols inputs
 *     "p0".."p{rows*cols-1}" scaled to [0, 1], then a "label" column when
 *     labels follow the images in the same file or come in a labels file of
 *     their own. The labels are read by a second reader of the same file,
 *     in step with the images, so neither is ever held whole.
 *   - CSV: a header row of at least two column names, then numeric rows;
 *     every column is read as a number, in the header's order.
 * Values, and the sentences a bad file is refused with, are those of the
 * whole-file loaders of data.h (data_load_idx, data_idx_read_joined with
 * data_idx_to_set, data_load_csv with the last column as the target),
 * whose parsers this reuses.
 *
 * A cap on the decompressed bytes (max_bytes) is checked against what an
 * IDX header announces before any data is read, and counted as a CSV file
 * inflates: a small gzip file that would inflate to gigabytes is refused
 * having inflated at most max_bytes (QN_ETOOLARGE).
 */
#ifndef QN_DATA_STREAM_H
#define QN_DATA_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

#define DATA_STREAM_LINE_MAX ((size_t)4 << 20) /* bytes of one CSV line */
#define DATA_STREAM_MAX_COLS ((size_t)1 << 20) /* columns of a row (IDX pixels + label) */

struct data_stream; /* an open file being read (opaque) */

/*
 * Opens path (labels: an IDX labels file for an IDX images file, else
 * NULL) and reads its header(s). max_bytes: the decompressed bytes the file
 * (with its labels file) may hold, 0 for no cap. Returns 0 and a new
 * stream in *out, or QN_EIO (cannot open or read), QN_EFORMAT (bad header,
 * labels that do not match, no CSV header of two columns, corrupt gzip),
 * QN_EINVAL (labels given for a CSV file), QN_ETOOLARGE (an IDX header
 * announcing more than max_bytes), QN_ERANGE (more columns than
 * DATA_STREAM_MAX_COLS, or than a CSV header may have) or
 * QN_ENOMEM, with a sentence in *err.
 */
int data_stream_open(struct data_stream **out, const char *path, const char *labels,
                     uint64_t max_bytes, struct data_error *err);

/* Columns of a row; their names (n_cols, borrowed until close). */
size_t data_stream_cols(const struct data_stream *s);
const char *const *data_stream_names(const struct data_stream *s);

/* 1 for an IDX file, 0 for CSV. */
int data_stream_is_idx(const struct data_stream *s);

/* The rows an IDX header announces; 0 for CSV (not known before the end). */
size_t data_stream_rows_announced(const struct data_stream *s);

/*
 * Reads the next rows, at most max_rows, into rows (max_rows, n_cols):
 * *n gets how many (0 at the end of the file, once it has been checked to
 * end there). Returns 0, or QN_EFORMAT (a bad cell or row naming line and
 * column, truncated or trailing data, no data rows), QN_ETOOLARGE (a CSV
 * file inflating past max_bytes), QN_EIO, QN_ENOMEM with *err.
 */
int data_stream_read(struct data_stream *s, float *rows, size_t max_rows, size_t *n,
                     struct data_error *err);

/* Closes the files and frees everything (NULL is fine). */
void data_stream_close(struct data_stream *s);

#endif
