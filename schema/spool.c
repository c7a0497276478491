/*
 * spool.c: the spool directory's files (see spool.h for the file set and
 * the array format).
 *
 * Every file is written under a temporary name and renamed into place, so a
 * reader never sees half a file: qn-mpi's result.json appearing is the
 * daemon's signal that the results are complete, and a daemon that restarts
 * finds either the whole file or none.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qn_err.h"
#include "spec_dumps.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "spool files are little-endian");

static const char spool__magic[8] = {'Q', 'N', 'A', 'R', 'R', 'A', 'Y', '1'};

/* printf into msg when there is one; returns rc. */
static int spool__say(int rc, char *msg, size_t cap, const char *what, const char *path)
{
    if (msg && cap)
        snprintf(msg, cap, "%s %s: %s", what, path, errno ? strerror(errno) : "bad contents");
    return rc;
}

int spool_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? QN_ERANGE : 0;
}

static size_t spool__dtype_size(enum spool_dtype t)
{
    switch (t) {
    case SPOOL_F32: return 4;
    case SPOOL_F64: return 8;
    case SPOOL_I32: return 4;
    }
    return 0;
}

/* Writes the parts (ptr, len) in order to dir/name via a temporary name. */
static int spool__write_parts(const char *dir, const char *name, const void *const *ptr,
                              const size_t *len, size_t n, char *msg, size_t cap)
{
    char path[SPOOL_PATH_MAX], tmp[SPOOL_PATH_MAX + 8];
    if (spool_path(path, sizeof path, dir, name))
        return QN_ERANGE;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    errno = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return spool__say(QN_EIO, msg, cap, "cannot write", tmp);
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = len[i] == 0 || fwrite(ptr[i], 1, len[i], f) == len[i];
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return 0;
    int rc = spool__say(errno == ENOSPC ? QN_EFULL : QN_EIO, msg, cap, "cannot write", tmp);
    unlink(tmp);
    return rc;
}

int spool_json_write(const char *dir, const char *name, const json_t *v, char *msg, size_t cap)
{
    char *text = spec_dumps(v, JSON_COMPACT);
    if (!text)
        return QN_ENOMEM;
    const void *p[2] = {text, "\n"};
    size_t l[2] = {strlen(text), 1};
    int rc = spool__write_parts(dir, name, p, l, 2, msg, cap);
    free(text);
    return rc;
}

/* Reads a whole file into a new buffer (NUL-terminated) of *len bytes. */
static int spool__slurp(const char *dir, const char *name, char **out, size_t *len, char *msg,
                        size_t cap)
{
    char path[SPOOL_PATH_MAX];
    *out = NULL;
    if (spool_path(path, sizeof path, dir, name))
        return QN_ERANGE;
    errno = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return spool__say(QN_EIO, msg, cap, "cannot read", path);
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    char *buf = size >= 0 && fseek(f, 0, SEEK_SET) == 0 ? malloc((size_t)size + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(buf);
        return buf ? spool__say(QN_EIO, msg, cap, "cannot read", path) : QN_ENOMEM;
    }
    fclose(f);
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    return 0;
}

int spool_json_read(const char *dir, const char *name, json_t **out, char *msg, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = spool__slurp(dir, name, &text, &len, msg, cap);
    if (rc)
        return rc;
    json_error_t e;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    free(text);
    if (*out)
        return 0;
    if (msg && cap)
        snprintf(msg, cap, "%s/%s is not JSON: %s", dir, name, e.text);
    return QN_EFORMAT;
}

int spool_job_write(const char *dir, int64_t job, const char *type, const char *name,
                    size_t ranks, size_t threads, const json_t *spec, char *msg, size_t cap)
{
    json_t *env = json_pack("{si sI ss ss sI sI sO}", "version", SPOOL_VERSION, "job",
                            (json_int_t)job, "type", type, "name", name, "ranks",
                            (json_int_t)ranks, "threads", (json_int_t)threads, "spec", spec);
    if (!env)
        return QN_ENOMEM;
    int rc = spool_json_write(dir, SPOOL_JOB, env, msg, cap);
    json_decref(env);
    return rc;
}

/* The envelope's fields into j; QN_EFORMAT when one is missing or wrong. */
static int spool__job_fields(json_t *env, struct spool_job *j)
{
    json_int_t version = 0, job = 0, ranks = 0, threads = 0;
    const char *type = NULL, *name = NULL;
    json_t *spec = NULL;
    if (json_unpack(env, "{si sI ss ss sI sI so}", "version", &version, "job", &job, "type",
                    &type, "name", &name, "ranks", &ranks, "threads", &threads, "spec", &spec))
        return QN_EFORMAT;
    if (version != SPOOL_VERSION || ranks < 1 || ranks > SPOOL_RANKS_MAX || threads < 1 ||
        threads > SPOOL_THREADS_MAX || strlen(type) >= sizeof j->type ||
        strlen(name) >= sizeof j->name || !json_is_object(spec))
        return QN_EFORMAT;
    j->job = job;
    j->ranks = (size_t)ranks;
    j->threads = (size_t)threads;
    memcpy(j->type, type, strlen(type) + 1);
    memcpy(j->name, name, strlen(name) + 1);
    j->spec = json_incref(spec);
    return 0;
}

int spool_job_read(const char *dir, struct spool_job *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    json_t *env = NULL;
    int rc = spool_json_read(dir, SPOOL_JOB, &env, msg, cap);
    if (rc == 0 && (rc = spool__job_fields(env, out)) && msg && cap)
        snprintf(msg, cap, "%s/%s is not a job file of version %d", dir, SPOOL_JOB,
                 SPOOL_VERSION);
    json_decref(env);
    return rc;
}

void spool_job_close(struct spool_job *j)
{
    json_decref(j->spec);
    j->spec = NULL;
}

/* The product of dims into *count; QN_ERANGE on overflow or a rank out of range. */
static int spool__count(size_t rank, const size_t *dims, size_t esize, size_t *count)
{
    if (rank < 1 || rank > SPOOL_MAX_DIMS || esize == 0)
        return QN_ERANGE;
    size_t c = 1;
    for (size_t i = 0; i < rank; i++) {
        if (dims[i] && c > SIZE_MAX / esize / dims[i])
            return QN_ERANGE;
        c *= dims[i];
    }
    *count = c;
    return 0;
}

int spool_array_write(const char *dir, const char *name, enum spool_dtype dtype, size_t rank,
                      const size_t *dims, const void *data, char *msg, size_t cap)
{
    size_t es = spool__dtype_size(dtype), count = 0;
    int rc = spool__count(rank, dims, es, &count);
    if (rc)
        return rc;
    uint32_t head[2] = {(uint32_t)dtype, (uint32_t)rank};
    uint64_t d64[SPOOL_MAX_DIMS];
    for (size_t i = 0; i < rank; i++)
        d64[i] = dims[i];
    const void *p[4] = {spool__magic, head, d64, data};
    size_t l[4] = {sizeof spool__magic, sizeof head, rank * sizeof *d64, count * es};
    return spool__write_parts(dir, name, p, l, 4, msg, cap);
}

/* Checks an array file's header (buf, len) against dtype and fills a. */
static int spool__array_head(const char *buf, size_t len, enum spool_dtype dtype,
                             struct spool_array *a)
{
    uint32_t head[2];
    size_t at = sizeof spool__magic + sizeof head;
    if (len < at || memcmp(buf, spool__magic, sizeof spool__magic) != 0)
        return QN_EFORMAT;
    memcpy(head, buf + sizeof spool__magic, sizeof head);
    if (head[0] != (uint32_t)dtype || head[1] < 1 || head[1] > SPOOL_MAX_DIMS)
        return QN_EFORMAT;
    a->dtype = dtype;
    a->rank = head[1];
    if (len < at + a->rank * sizeof(uint64_t))
        return QN_EFORMAT;
    for (size_t i = 0; i < a->rank; i++) {
        uint64_t d;
        memcpy(&d, buf + at + i * sizeof d, sizeof d);
        if (d > SIZE_MAX)
            return QN_EFORMAT;
        a->dims[i] = (size_t)d;
    }
    size_t es = spool__dtype_size(dtype);
    at += a->rank * sizeof(uint64_t);
    if (spool__count(a->rank, a->dims, es, &a->count) || len - at != a->count * es)
        return QN_EFORMAT;
    return 0;
}

int spool_array_read(const char *dir, const char *name, enum spool_dtype dtype,
                     struct spool_array *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    int rc = spool__slurp(dir, name, &buf, &len, msg, cap);
    if (rc)
        return rc;
    rc = spool__array_head(buf, len, dtype, out);
    if (rc) {
        if (msg && cap)
            snprintf(msg, cap, "%s/%s is not an array file of element kind %d", dir, name,
                     (int)dtype);
        free(buf);
        return rc;
    }
    size_t bytes = out->count * spool__dtype_size(dtype);
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) {
        free(buf);
        return QN_ENOMEM;
    }
    memcpy(out->data, buf + (len - bytes), bytes);
    free(buf);
    return 0;
}

void spool_array_free(struct spool_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}

int spool_blob_write(const char *dir, const char *name, const void *data, size_t len, char *msg,
                     size_t cap)
{
    const void *p[1] = {data};
    size_t l[1] = {len};
    return spool__write_parts(dir, name, p, l, 1, msg, cap);
}

int spool_blob_read(const char *dir, const char *name, void **out, size_t *len, char *msg,
                    size_t cap)
{
    char *buf = NULL;
    int rc = spool__slurp(dir, name, &buf, len, msg, cap);
    *out = buf;
    return rc;
}

int spool_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : QN_EIO;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        char path[SPOOL_PATH_MAX];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (spool_path(path, sizeof path, dir, e->d_name) || unlink(path) != 0)
            rc = QN_EIO;
    }
    closedir(d);
    if (rmdir(dir) != 0)
        rc = QN_EIO;
    return rc;
}

/* ---- progress lines ---- */

char *spool_line_progress(uint64_t done, uint64_t total)
{
    char buf[96];
    snprintf(buf, sizeof buf, "{\"progress\":[%llu,%llu]}", (unsigned long long)done,
             (unsigned long long)total);
    return strdup(buf);
}

char *spool_line_metric(int64_t step, int64_t epoch, const char *name, double value)
{
    json_t *m = json_pack("{s{sI sI ss so}}", "metric", "step", (json_int_t)step, "epoch",
                          (json_int_t)epoch, "name", name, "value",
                          isfinite(value) ? json_real(value) : json_null());
    char *text = m ? spec_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return text;
}

char *spool_line_checkpoint(int64_t epoch)
{
    char buf[48];
    snprintf(buf, sizeof buf, "{\"checkpoint\":%lld}", (long long)epoch);
    return strdup(buf);
}

/* A metric line's object into out. */
static int spool__line_metric(json_t *m, struct spool_line *out)
{
    json_int_t step = 0, epoch = 0;
    const char *name = NULL;
    json_t *v = NULL;
    if (json_unpack(m, "{sI sI ss so}", "step", &step, "epoch", &epoch, "name", &name, "value",
                    &v) ||
        strlen(name) >= sizeof out->name || !(json_is_number(v) || json_is_null(v)))
        return QN_EFORMAT;
    out->kind = SPOOL_LINE_METRIC;
    out->step = step;
    out->epoch = epoch;
    memcpy(out->name, name, strlen(name) + 1);
    out->value = json_is_null(v) ? NAN : json_number_value(v);
    return 0;
}

int spool_line_parse(const char *text, size_t len, struct spool_line *out)
{
    memset(out, 0, sizeof *out);
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *x;
    json_int_t done = 0, total = 0;
    int rc = QN_EFORMAT;
    if ((x = json_object_get(v, "progress"))) {
        if (json_unpack(x, "[II]", &done, &total) == 0 && done >= 0 && total >= 0) {
            out->kind = SPOOL_LINE_PROGRESS;
            out->done = (uint64_t)done;
            out->total = (uint64_t)total;
            rc = 0;
        }
    } else if ((x = json_object_get(v, "metric"))) {
        rc = spool__line_metric(x, out);
    } else if ((x = json_object_get(v, "checkpoint"))) {
        if (json_is_integer(x) && json_integer_value(x) >= 0) {
            out->kind = SPOOL_LINE_CHECKPOINT;
            out->epoch = json_integer_value(x);
            rc = 0;
        }
    }
    json_decref(v);
    return rc;
}
