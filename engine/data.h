/*
 * data.h: datasets for training: loaders, generators, splits, scaling.
 *
 * A dataset is n rows of d float inputs, row-major (n, d), with either an
 * integer label per row (classification, labels in [0, n_classes)) or t float
 * targets per row (regression, (n, t)). Everything that reads a file or a
 * buffer refuses malformed input with an error naming where it went wrong
 * (struct data_error) instead of crashing or guessing:
 *   - IDX (the MNIST format): big-endian header, magic 0x00000803 for images
 *     (n, rows, cols) and 0x00000801 for labels (n), unsigned bytes; read
 *     through zlib so gzip and raw files both work; pixels scaled to [0, 1].
 *   - CSV: a header row naming the columns; inputs and the label or target
 *     chosen by name; numeric cells only.
 *   - generators: the logic gates (and, or, nand, nor, xor, xnor), sine,
 *     spirals, lotka_volterra; seeded.
 * Randomness (generators, splits, shuffles) is GSL's mt19937 seeded from the
 * caller's seed, so the same seed gives the same bits on every machine.
 *
 * Ownership: a struct data_set owns its arrays; functions that fill one
 * (`out`) initialise it first, and on failure leave it empty (all zero), so
 * data_close is always safe after them.
 */
#ifndef QN_DATA_H
#define QN_DATA_H

#include <gsl/gsl_rng.h>
#include <stddef.h>
#include <stdint.h>

#define DATA_MAX_CLASSES 65536           /* labels must be below this */
#define DATA_MAX_ELEMS ((size_t)1 << 30) /* cap on n*d (and n*t) of any dataset */
#define DATA_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

struct data_set {
    size_t n;         /* rows */
    size_t d;         /* inputs per row */
    float *x;         /* (n, d) owned */
    size_t n_classes; /* classification: labels lie in [0, n_classes); 0 for regression */
    int *labels;      /* (n) owned; NULL for regression */
    size_t t;         /* regression: targets per row; 0 for classification */
    float *y;         /* (n, t) owned; NULL for classification */
};

/* Where and why data was refused. */
struct data_error {
    size_t line;   /* CSV: 1-based line (the header is line 1); 0 when not about a line */
    size_t column; /* CSV: 1-based column; 0 when not about a column */
    char msg[256]; /* a sentence naming the place: "line 7, column 3 ('x2'): 'abc' is not a number"
                    */
};

/*
 * Allocates a dataset of n rows and d inputs: with labels when n_classes > 0
 * (t must be 0), else with t > 0 targets. Contents are zero. Returns 0,
 * QN_EINVAL (both or neither of n_classes, t; d == 0; n_classes above
 * DATA_MAX_CLASSES), QN_ERANGE (n*d or n*t above DATA_MAX_ELEMS), QN_ENOMEM.
 */
int data_alloc(struct data_set *ds, size_t n, size_t d, size_t n_classes, size_t t);

/* Frees the arrays and zeroes the struct. */
void data_close(struct data_set *ds);

/* Checks that inputs and targets are finite and labels in range. Returns 0
 * or QN_EFORMAT (non-finite) / QN_ERANGE (label) with *err (may be NULL). */
int data_check(const struct data_set *ds, struct data_error *err);

/* ---- IDX ---- */

/* An IDX file's contents: unsigned bytes with their dimensions. */
struct data_idx {
    size_t ndims;   /* 1..4 */
    size_t dims[4]; /* dims[0] is the item count */
    size_t len;     /* product of dims: bytes in data */
    uint8_t *data;  /* (len) owned */
};

/*
 * Reads one IDX file (gzip or raw) whose magic must be 0x0800 | ndims with
 * ndims == want_ndims. Returns 0, QN_EIO (cannot open or read) or
 * QN_EFORMAT (bad magic, wrong type or rank, zero or overflowing dims,
 * truncated data, trailing bytes, corrupt gzip) with *err, or QN_ENOMEM.
 */
int data_idx_read(struct data_idx *out, const char *path, size_t want_ndims,
                  struct data_error *err);

/* As data_idx_read from a buffer of len bytes (raw, or gzip when it starts
 * with 1f 8b), borrowed. */
int data_idx_read_mem(struct data_idx *out, const void *buf, size_t len, size_t want_ndims,
                      struct data_error *err);

/*
 * One file (gzip or raw) holding an images IDX (n, rows, cols), optionally
 * followed by its labels IDX (n): `cat images.gz labels.gz` makes one, since
 * concatenated gzip members read as one stream. *labels is left empty
 * (len 0) when the file ends after the images. Errors as data_idx_read.
 */
int data_idx_read_joined(struct data_idx *images, struct data_idx *labels, const char *path,
                         struct data_error *err);

void data_idx_close(struct data_idx *idx);

/*
 * Images (n, rows, cols) into a dataset of d = rows*cols inputs scaled to
 * [0, 1]: a classification set when lab (n labels) is given, n_classes =
 * largest label + 1; else one zero target per row. QN_EFORMAT when the
 * counts differ, QN_ENOMEM.
 */
int data_idx_to_set(struct data_set *out, const struct data_idx *img, const struct data_idx *lab,
                    struct data_error *err);

/*
 * An images file (n, rows, cols) and a labels file (n) into a classification
 * dataset with d = rows*cols inputs scaled to [0, 1] and n_classes = largest
 * label + 1. Errors as data_idx_read, and QN_EFORMAT when the counts differ.
 */
int data_load_idx(struct data_set *out, const char *images_path, const char *labels_path,
                  struct data_error *err);
int data_load_idx_mem(struct data_set *out, const void *images, size_t images_len,
                      const void *labels, size_t labels_len, struct data_error *err);

/* Fashion-MNIST's train (60000) and test (10000) sets from dir
 * (NULL: DATA_FASHION_MNIST_DIR). Either out may be NULL to skip it. */
int data_load_fashion_mnist(struct data_set *train, struct data_set *test, const char *dir,
                            struct data_error *err);

/* ---- CSV ---- */

/* Which columns a CSV dataset uses. Exactly one of label and target is set. */
struct data_csv_opts {
    const char *const *inputs; /* (n_inputs) column names, borrowed; NULL: every other column */
    size_t n_inputs;
    const char *label;  /* classification: integer column in [0, DATA_MAX_CLASSES) */
    const char *target; /* regression: numeric column (t = 1) */
};

/*
 * Parses CSV text: a header row of column names (surrounding spaces and
 * double quotes are stripped), then rows of comma-separated numbers; CRLF
 * line ends and blank lines are accepted. Only the chosen columns are parsed
 * (others may hold anything). Returns 0; QN_ESPEC for options naming no
 * column (or a column twice); QN_EFORMAT with *err naming line and column for
 * an empty or non-numeric cell, NaN or Inf, a label that is not a
 * non-negative integer, a row with a different number of fields than the
 * header, or no data rows; QN_ERANGE when too large; QN_ENOMEM.
 * buf (len bytes) and opts are borrowed.
 */
int data_load_csv_mem(struct data_set *out, const char *buf, size_t len,
                      const struct data_csv_opts *opts, struct data_error *err);

/* As data_load_csv_mem from a file; QN_EIO when it cannot be read. */
int data_load_csv(struct data_set *out, const char *path, const struct data_csv_opts *opts,
                  struct data_error *err);

/* ---- generators ---- */

/* The two-input logic gates of the built-in datasets. */
enum data_gate {
    DATA_GATE_AND,
    DATA_GATE_OR,
    DATA_GATE_NAND,
    DATA_GATE_NOR,
    DATA_GATE_XOR,
    DATA_GATE_XNOR
};

/*
 * A logic gate: n == 4 (or 0) gives the four corners of {0,1}^2 exactly,
 * labelled with the gate's truth value at the corner (n_classes 2).
 * Otherwise n points cycling through the corners plus Gaussian noise of
 * standard deviation `noise`, seeded. QN_EINVAL for an unknown op.
 */
int data_gen_gate(struct data_set *out, enum data_gate op, size_t n, double noise, uint64_t seed);

/* XOR: data_gen_gate with DATA_GATE_XOR. */
int data_gen_xor(struct data_set *out, size_t n, double noise, uint64_t seed);

/* Sine: x uniform in [-pi, pi], target sin x (d = 1, t = 1), seeded. */
int data_gen_sine(struct data_set *out, size_t n, uint64_t seed);

/*
 * Spirals: `arms` (2 or 3) interleaved spiral arms in the plane, n points
 * cycling through the arms, label = arm. Point i of arm k has radius
 * u ~ U(0, 1) and angle 2 pi k / arms + 3 pi u + noise * N(0, 1).
 */
int data_gen_spirals(struct data_set *out, size_t n, size_t arms, double noise, uint64_t seed);

/*
 * Lotka-Volterra predator-prey, dx/dt = alpha x - beta x y, dy/dt = delta x y
 * - gamma y (x prey, y predators) with alpha 2/3, beta 4/3, gamma 1, delta 1.
 * Row i: inputs (x0, y0, t), x0 and y0 uniform in [0.5, 1.5], t uniform in
 * [0, 10]; target x(t), solved by GSL's rk8pd at relative and absolute
 * tolerance 1e-10 (d = 3, t = 1), seeded. QN_ESOLVER if a solve fails.
 */
#define DATA_LV_ALPHA (2.0 / 3.0)
#define DATA_LV_BETA (4.0 / 3.0)
#define DATA_LV_GAMMA 1.0
#define DATA_LV_DELTA 1.0
#define DATA_LV_POP_LO 0.5
#define DATA_LV_POP_HI 1.5
#define DATA_LV_T_MAX 10.0
#define DATA_LV_TOL 1e-10
int data_gen_lotka_volterra(struct data_set *out, size_t n, uint64_t seed);

/* The prey x(t) of the system above from (x0, y0) = (prey0, pred0), t >= 0,
 * into *out. Returns 0, QN_ENOMEM or QN_ESOLVER. */
int data_lotka_volterra_prey(double prey0, double pred0, double t, double *out);

/* ---- splits, subsets, batches ---- */

/*
 * Splits src into train and test: a seeded permutation of the rows; its
 * first round(test_fraction * n) rows go to test (in permutation order), the
 * rest to train. test_fraction in [0, 1). Returns 0, QN_EINVAL, QN_ENOMEM.
 */
int data_split(const struct data_set *src, double test_fraction, uint64_t seed,
               struct data_set *train, struct data_set *test);

/* Copies the first min(n, src->n) rows of src into out. */
int data_subset(const struct data_set *src, size_t n, struct data_set *out);

/* idx[0..n) = a seeded shuffle of 0..n-1 drawn from r (borrowed). */
void data_permute(size_t *idx, size_t n, gsl_rng *r);

/*
 * Copies rows idx[0..B) of ds into a batch: x (B, d); labels (B) when ds is
 * a classification set; y (B, t) when a regression set. Unused outputs may be
 * NULL. Indices must be < ds->n.
 */
void data_gather(const struct data_set *ds, const size_t *idx, size_t B, float *x, int *labels,
                 float *y);

/* ---- standardisation ---- */

/*
 * Per-input mean and standard deviation, computed on a training split and
 * applied to every split, stored as one slab so a model saves it with its
 * weights. The standard deviation is the population one (divide by n). A
 * column whose std is below 1e-8 (constant on the training split) gets
 * std = 1, so it is only centred: flooring at 1e-8 instead would multiply an
 * unseen test value by 1e8.
 */
struct data_scaler {
    size_t d;    /* inputs */
    float *slab; /* (2, d) owned: mean then std */
    float *mean; /* (d) view */
    float *std;  /* (d) view */
};

/* Fits on train (borrowed, n >= 1). Returns 0, QN_EINVAL (empty), QN_ENOMEM. */
int data_scaler_fit(struct data_scaler *s, const struct data_set *train);

/* Prepares a scaler of d inputs with mean 0 and std 1, to be filled from a
 * saved slab. Returns 0 or QN_ENOMEM. */
int data_scaler_init(struct data_scaler *s, size_t d);

/* x = (x - mean) / std on every row of ds. Returns 0 or QN_EINVAL (d differs). */
int data_scaler_apply(const struct data_scaler *s, struct data_set *ds);

/* The same on n rows x (n, d) (borrowed, changed in place) that are not a
 * struct data_set (a request's rows). Returns 0 or QN_EINVAL (d differs). */
int data_scaler_apply_rows(const struct data_scaler *s, float *x, size_t n, size_t d);

void data_scaler_close(struct data_scaler *s);

#endif
