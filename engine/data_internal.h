/*
 * data_internal.h: what data.c's loaders share with data_stream.c, which
 * reads the same IDX and CSV files a block of rows at a time. Not part of
 * the engine's interface: only engine/data*.c include it.
 *
 * Sharing the byte source, the IDX header and the CSV line, header and row
 * parsers (rather than writing them twice) is what makes a streamed file
 * read to the very values, and be refused with the very sentences, of the
 * same file parsed whole.
 */
#ifndef QN_DATA_INTERNAL_H
#define QN_DATA_INTERNAL_H

#include <stddef.h>
#include <zlib.h>

#include "data.h"

/* Fills *err (if any) with a printf-style message; returns code. */
int data__fail(struct data_error *err, int code, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---- IDX ---- */

/* A byte source: a zlib file, or a buffer (raw or gzip through inflate). */
struct data__src {
    gzFile gz;                /* file source, or NULL */
    const unsigned char *mem; /* buffer source */
    size_t len, pos;          /* buffer length and read position (raw) */
    int inflating;            /* buffer holds gzip: zs is live */
    int z_end;                /* inflate reached the end of the stream */
    z_stream zs;
};

/* Opens path (plain or gzip: zlib reads both) as a file source. */
int data__src_file(struct data__src *s, const char *path, struct data_error *err);

/* Reads up to n (decompressed) bytes; returns the count (short at end of
 * input) or -1 on error (corrupt compressed data). */
long long data__read(struct data__src *s, void *buf, size_t n);

void data__src_close(struct data__src *s);

/* Reads and checks an IDX magic and dimensions of rank want; sets ndims,
 * dims and len (the data bytes announced, at most DATA_MAX_ELEMS). */
int data__idx_header(struct data__src *s, struct data_idx *out, size_t want,
                     struct data_error *err);

/* 1 when more input follows (the byte peeked is put back), 0 at its end. */
int data__gz_more(gzFile gz);

/* ---- CSV ---- */

/* What a column is used for. */
enum data__role { ROLE_SKIP = -1, ROLE_LABEL = -2, ROLE_TARGET = -3 };

/* A parse over a buffer of whole lines: position and line number. */
struct data__csv {
    const char *p, *end; /* unread text */
    size_t line;         /* 1-based number of the line at p */
    size_t n_cols;       /* header fields */
    char **names;        /* (n_cols) header names, owned */
    int *role;           /* (n_cols) input index >= 0, or an enum data__role */
};

/* Next line [*b, *e) without its end-of-line (LF or CRLF); 0 at the end. */
int data__csv_line(struct data__csv *c, const char **b, const char **e);

/* 1 when [b, e) holds only spaces, tabs and a pair of quotes. */
int data__blank(const char *b, const char *e);

/* Reads the header row into c->names (roles ROLE_SKIP); c->line becomes 2. */
int data__csv_header(struct data__csv *c, struct data_error *err);

/* Sets the roles from opts; *d gets the number of inputs. */
int data__csv_roles(struct data__csv *c, const struct data_csv_opts *o, size_t *d,
                    struct data_error *err);

/* Parses data line [b, e) (line c->line) into row r of out, which has the
 * inputs, label or target the roles name. */
int data__csv_row(const struct data__csv *c, const char *b, const char *e, struct data_set *out,
                  size_t r, struct data_error *err);

/* Frees the names and roles. */
void data__csv_close(struct data__csv *c);

#endif
