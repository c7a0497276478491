/*
 * main.c: the `qn` program: subcommand dispatch and the local runner.
 *
 *   qn run JOB.json|- [--db PATH] [--workers N] [--ranks N]
 *   qn device add DEVICE.json|- [--db PATH]
 *   qn device list [--db PATH]
 *   qn dataset list [--db PATH]
 *   qn dataset export ID [--db PATH]
 *   qn dataset import FILE [--name NAME] [--labels FILE] [--db PATH]
 *   qn resume JOB_ID [--db PATH] [--workers N]
 *   qn job list | show ID | cancel ID [--db PATH]
 *   qn surrogate list | show REF [--db PATH]
 *   qn model list | show REF [--db PATH]
 *   qn --help | --version
 *
 * Output for scripts on stdout (one JSON object per line; CSV for export),
 * messages and the progress bar on stderr. Exit codes: 0 success, 1 a job
 * that failed or another runtime error, 2 a usage or spec error (nothing was
 * written to the database).
 *
 * The commands are a table (name, sub-name, handler). The only mutable
 * global is the SIGINT flag, which a signal handler has to reach.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "blas_env.h"
#include "catalog.h"
#include "demo.h"
#include "daemon.h"
#include "dblock.h"
#include "job.h"
#include "job_remote.h"
#include "qn_err.h"
#include "spec.h"
#include "spec_dumps.h"
#include "store.h"
#include "cmd_user.h"
#include "users.h"

#define QN_VERSION "0.1.0"
#define QN_DEFAULT_DB "quasineuron.db"
#define QN_EXIT_FAIL 1
#define QN_EXIT_USAGE 2
#define QN_MAX_ARGS 4        /* positional arguments of one command */
#define QN_MAX_WORKERS 1024
#define QN_FILE_MAX (64u << 20) /* bytes of a spec file */

/* Set by SIGINT; the running job polls it (lock-free atomic: signal safe). */
static atomic_int qn__interrupted;

/* Options a command may take (bits of qn_cmd.opts). */
#define QN_OPT_WORKERS 1u
#define QN_OPT_NAME 2u
#define QN_OPT_LABELS 4u
#define QN_OPT_RANKS 8u

/* A command line after the subcommand words. */
struct qn_args {
    const char *db;                /* --db, default QN_DEFAULT_DB */
    size_t workers;                /* --workers, 0 = number of CPUs */
    int have_workers;              /* --workers was given */
    size_t ranks;                  /* --ranks: 0 = the job's own "resources" */
    const char *name;              /* --name, NULL when not given */
    const char *labels;            /* --labels, NULL when not given */
    size_t n_pos;                  /* positional arguments */
    const char *pos[QN_MAX_ARGS];
};

struct qn_cmd {
    const char *name;     /* "run", "device", ... */
    const char *sub;      /* "add", "list", ... or NULL */
    size_t n_pos;         /* positional arguments it takes */
    unsigned opts;        /* QN_OPT_* it accepts besides --db */
    int (*fn)(const struct qn_args *a);
    const char *usage;
};

static const char qn__usage[] =
    "usage: qn <command> [options]\n"
    "\n"
    "  qn run JOB.json [--db PATH] [--workers N]   run one job spec (\"-\" reads stdin)\n"
    "      [--ranks N]                           on N ranks of qn-mpi through mpirun\n"
    "  qn device add DEVICE.json [--db PATH]       store a device model\n"
    "  qn device list [--db PATH]                  list stored devices (JSON lines)\n"
    "  qn dataset list [--db PATH]                 list datasets (JSON lines)\n"
    "  qn dataset export ID [--db PATH]            write a dataset as CSV to stdout\n"
    "  qn dataset import FILE [--name NAME] [--labels FILE] [--db PATH]\n"
    "                                              store a CSV or IDX file as a dataset\n"
    "  qn resume JOB_ID [--db PATH] [--workers N]  run a job that did not succeed again\n"
    "                                              (a train job from its last checkpoint)\n"
    "  qn job list | show ID | cancel ID [--db PATH]\n"
    "                                              jobs (JSON lines); cancel a queued one\n"
    "  qn surrogate list | show REF [--db PATH]    surrogates (REF: an id or a name)\n"
    "  qn model list | show REF [--db PATH]        trained models\n"
    "  qn demo [--db PATH] [--port N] [--epochs N] start a daemon and run the whole pipeline\n"
    "  qn serve [--db PATH] [--bind ADDR] [--port N] [--workers N] ...\n"
    "                                              run the daemon (qn serve --help for all)\n"
    "  qn user add NAME [--admin] [--db PATH]      add a lab member; prints their token once\n"
    "  qn user list [--db PATH]                    list users (JSON lines)\n"
    "  qn user revoke NAME [--db PATH]             revoke a user's token\n"
    "  qn --help | --version\n"
    "\n"
    "The database defaults to ./" QN_DEFAULT_DB ". --workers defaults to the number of CPUs.\n"
    "Exit status: 0 ok, 1 the job failed (its record says why), 2 bad usage or spec.\n";

/* ---- small helpers ---------------------------------------------------------- */

/* "qn: " + message on stderr. */
static void qn__say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void qn__say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qn: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Prints a spec error as "qn: /path: message" (or without a path). */
static void qn__spec_error(const struct spec_error *e, const char *fallback)
{
    if (e->path[0])
        qn__say("%s: %s", e->path, e->msg);
    else
        qn__say("%s", e->msg[0] ? e->msg : fallback);
}

/* Reads a whole file ("-" = stdin) into a new buffer, at most QN_FILE_MAX bytes. */
static int qn__read_file(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return QN_EIO;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    int rc = b ? 0 : QN_ENOMEM;
    while (rc == 0) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = cap >= QN_FILE_MAX ? NULL : realloc(b, cap * 2);
        rc = nb ? 0 : (cap >= QN_FILE_MAX ? QN_ERANGE : QN_ENOMEM);
        if (nb) {
            b = nb;
            cap *= 2;
        }
    }
    if (rc == 0 && ferror(f))
        rc = QN_EIO;
    if (f != stdin)
        fclose(f);
    if (rc) {
        free(b);
        return rc;
    }
    *out = b;
    *len = n;
    return 0;
}

/* Loads a JSON file; on failure says why and returns the exit code. */
static int qn__load_json(const char *path, json_t **out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = qn__read_file(path, &text, &len);
    if (rc) {
        qn__say("%s: %s", path, rc == QN_EIO ? strerror(errno) : qn_err_msg(rc));
        return QN_EXIT_USAGE;
    }
    struct spec_error e = {{0}, {0}};
    rc = spec_load(text, len, out, &e);
    free(text);
    if (rc) {
        qn__say("%s: %s", path, e.msg);
        return QN_EXIT_USAGE;
    }
    return 0;
}

/* Opens the database; on failure says why. */
static int qn__open(const char *db, struct store **s)
{
    char msg[STORE_MSG_MAX];
    int rc = store_open(db, s, msg, sizeof msg);
    if (rc)
        qn__say("%s: %s", db, msg[0] ? msg : qn_err_msg(rc));
    return rc;
}

/* Opens the database for running jobs here: the shared run lock first (a
 * daemon serving it would requeue them, see dblock.h), then the store.
 * *lock is released by the caller with dblock_release. */
static int qn__open_to_run(const char *db, int *lock, struct store **s)
{
    char msg[512];
    int rc = dblock_take(db, DBLOCK_RUN, lock, msg, sizeof msg);
    if (rc) {
        qn__say("%s", msg);
        return rc;
    }
    return qn__open(db, s);
}

/* Prints a JSON value as one compact line on stdout; steals v. */
static int qn__print_json(json_t *v)
{
    char *text = v ? spec_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text)
        return QN_ENOMEM;
    puts(text);
    free(text);
    return 0;
}

/* Parses a positive decimal id. */
static int qn__parse_id(const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1)
        return QN_EINVAL;
    *out = v;
    return 0;
}

/* ---- qn run ------------------------------------------------------------------- */

/* The progress bar's state: drawn only when stderr is a terminal. */
struct qn_progress {
    int last_pct; /* last percentage drawn, -1 before the first */
};

static void qn__progress(size_t done, size_t total, void *ctx)
{
    struct qn_progress *p = ctx;
    int pct = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (pct == p->last_pct)
        return;
    p->last_pct = pct;
    char bar[41];
    int fill = pct * 40 / 100;
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(40 - fill));
    bar[40] = '\0';
    fprintf(stderr, "\r[%s] %3d%% %zu/%zu", bar, pct, done, total);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static void qn__on_sigint(int sig)
{
    (void)sig;
    atomic_store(&qn__interrupted, 1);
}

/* SIGINT asks the running job to stop; a second one kills (SA_RESETHAND). */
static void qn__catch_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = qn__on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* Prints the record of job id; exit 0 when it succeeded, else 1. */
static int qn__print_job(struct store *s, int64_t id)
{
    struct catalog_job j;
    int rc = catalog_job_get(s, id, 0, &j);
    if (rc) {
        qn__say("cannot read job %" PRId64 ": %s", id, qn_err_msg(rc));
        return QN_EXIT_FAIL;
    }
    int code = j.state == JOB_SUCCEEDED ? 0 : QN_EXIT_FAIL;
    if (qn__print_json(json_incref(j.record)))
        code = QN_EXIT_FAIL;
    const char *error = json_string_value(json_object_get(j.record, "error"));
    if (code && error)
        qn__say("job %" PRId64 " %s: %s", id, catalog_job_state_name(j.state), error);
    catalog_job_close(&j);
    return code;
}

/* Runs the parsed job against an open store; returns the exit code. */
static int qn__run_job(struct store *s, const struct job_spec *js, size_t workers,
                       const struct job_remote *remote)
{
    struct qn_progress prog = {-1};
    int tty = isatty(STDERR_FILENO);
    struct spec_error err = {{0}, {0}};
    int64_t id = 0;
    qn__catch_sigint();
    int rc = job_run_with(s, js, NULL, workers, remote, &qn__interrupted,
                          tty ? qn__progress : NULL, &prog, &id, &err);
    signal(SIGINT, SIG_DFL);
    if (tty && prog.last_pct >= 0 && prog.last_pct < 100)
        fputc('\n', stderr);
    if (rc == QN_ESPEC || rc == QN_EINVAL || rc == QN_EREMOTE) {
        qn__spec_error(&err, qn_err_msg(rc));
        return QN_EXIT_USAGE;
    }
    if (rc)
        qn__spec_error(&err, qn_err_msg(rc));
    if (id == 0)
        return QN_EXIT_FAIL;
    int code = qn__print_job(s, id);
    return rc ? QN_EXIT_FAIL : code;
}

/* The default launcher (mpirun) and the spool beside the database; the exit code. */
static int qn__remote(const char *db, struct job_remote *r)
{
    struct launcher L;
    char msg[SPOOL_PATH_MAX + 128];
    if (launch_local_init(&L, NULL, msg, sizeof msg) ||
        job_remote_init(r, &L, NULL, db, msg, sizeof msg)) {
        qn__say("%s", msg);
        return QN_EXIT_FAIL;
    }
    return 0;
}

static int qn__cmd_run(const struct qn_args *a)
{
    json_t *root = NULL;
    int code = qn__load_json(a->pos[0], &root);
    if (code)
        return code;
    struct job_spec js;
    struct spec_error err = {{0}, {0}};
    if (job_spec_parse(root, &js, &err)) { /* a type of the table, before the store opens */
        json_decref(root);
        qn__spec_error(&err, "invalid job");
        return QN_EXIT_USAGE;
    }
    json_decref(root);
    struct store *s = NULL;
    struct job_remote remote;
    int lock = -1;
    if (a->ranks)
        js.ranks = a->ranks;
    if (js.ranks > 1)
        code = qn__remote(a->db, &remote);
    if (code == 0)
        code = qn__open_to_run(a->db, &lock, &s) ? QN_EXIT_FAIL : 0;
    if (code == 0)
        code = qn__run_job(s, &js, a->have_workers ? a->workers : daemon_cpus(),
                           js.ranks > 1 ? &remote : NULL);
    store_close(s);
    dblock_release(lock);
    json_decref(js.spec);
    return code;
}

/* Resumes job id against an open store; returns the exit code. */
static int qn__resume_job(struct store *s, int64_t id, size_t workers)
{
    struct qn_progress prog = {-1};
    int tty = isatty(STDERR_FILENO);
    struct spec_error err = {{0}, {0}};
    qn__catch_sigint();
    int rc = job_resume_local(s, id, workers, &qn__interrupted, tty ? qn__progress : NULL,
                              &prog, &err);
    signal(SIGINT, SIG_DFL);
    if (tty && prog.last_pct >= 0 && prog.last_pct < 100)
        fputc('\n', stderr);
    if (rc == QN_ENOTFOUND) {
        qn__say("no job with id %" PRId64, id);
        return QN_EXIT_USAGE;
    }
    if (rc == QN_ESPEC || rc == QN_EINVAL) {
        qn__spec_error(&err, qn_err_msg(rc));
        return QN_EXIT_USAGE;
    }
    if (rc) {
        qn__spec_error(&err, qn_err_msg(rc));
        return QN_EXIT_FAIL;
    }
    return qn__print_job(s, id);
}

static int qn__cmd_resume(const struct qn_args *a)
{
    int64_t id = 0;
    if (qn__parse_id(a->pos[0], &id)) {
        qn__say("job id must be a positive integer, not '%s'", a->pos[0]);
        return QN_EXIT_USAGE;
    }
    struct store *s = NULL;
    int lock = -1;
    int code = QN_EXIT_FAIL;
    if (qn__open_to_run(a->db, &lock, &s) == 0)
        code = qn__resume_job(s, id, a->have_workers ? a->workers : daemon_cpus());
    store_close(s);
    dblock_release(lock);
    return code;
}

/* ---- qn device, qn dataset ------------------------------------------------------ */

/* Prints every record list() reads (what: "devices", ...), one JSON line each. */
static int qn__print_list(const char *db, const char *what,
                          int (*list)(struct store *, int64_t, size_t, json_t **, int64_t *))
{
    struct store *s = NULL;
    if (qn__open(db, &s))
        return QN_EXIT_FAIL;
    json_t *items = NULL;
    int64_t last = 0;
    int rc = list(s, 0, 0, &items, &last);
    for (size_t i = 0; rc == 0 && i < json_array_size(items); i++)
        rc = qn__print_json(json_incref(json_array_get(items, i)));
    if (rc)
        qn__say("cannot list %s: %s", what, qn_err_msg(rc));
    json_decref(items);
    store_close(s);
    return rc ? QN_EXIT_FAIL : 0;
}

/* Stores a device and prints its record. A bad device is refused before the
 * database is opened (or created). */
static int qn__cmd_device_add(const struct qn_args *a)
{
    json_t *root = NULL, *record = NULL;
    struct spec_error err = {{0}, {0}};
    struct store *s = NULL;
    int code = qn__load_json(a->pos[0], &root);
    if (code == 0 && catalog_device_check(root, &err)) {
        qn__spec_error(&err, "invalid device");
        code = QN_EXIT_USAGE;
    }
    if (code == 0 && qn__open(a->db, &s))
        code = QN_EXIT_FAIL;
    int rc = code ? 0 : catalog_device_add(s, root, &record, &err);
    if (rc == QN_EEXIST)
        qn__spec_error(&err, qn_err_msg(rc));
    else if (rc)
        qn__say("cannot store the device: %s", catalog_errmsg(s));
    if (rc)
        code = rc == QN_EEXIST ? QN_EXIT_USAGE : QN_EXIT_FAIL; /* a taken name is bad input */
    if (code == 0)
        qn__print_json(record);
    store_close(s);
    json_decref(root);
    return code;
}

static int qn__cmd_device_list(const struct qn_args *a)
{
    return qn__print_list(a->db, "devices", catalog_device_list);
}

static int qn__cmd_dataset_list(const struct qn_args *a)
{
    return qn__print_list(a->db, "datasets", catalog_dataset_list);
}

static int qn__cmd_dataset_export(const struct qn_args *a)
{
    int64_t id = 0;
    if (qn__parse_id(a->pos[0], &id)) {
        qn__say("dataset id must be a positive integer, not '%s'", a->pos[0]);
        return QN_EXIT_USAGE;
    }
    struct store *s = NULL;
    if (qn__open(a->db, &s))
        return QN_EXIT_FAIL;
    int rc = catalog_dataset_export_csv(s, id, stdout);
    if (rc == QN_ENOTFOUND)
        qn__say("no dataset with id %" PRId64, id);
    else if (rc)
        qn__say("cannot export dataset %" PRId64 ": %s", id, qn_err_msg(rc));
    store_close(s);
    return rc ? QN_EXIT_FAIL : 0;
}

/* The readable part of a file name, the default name of its dataset:
 * "data/iris.csv" -> "iris", "t10k-images-idx3-ubyte.gz" -> "t10k-images-idx3-ubyte". */
static void qn__file_stem(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    snprintf(out, cap, "%s", b ? b + 1 : path);
    size_t n = strlen(out);
    if (n > 3 && strcmp(out + n - 3, ".gz") == 0)
        out[n -= 3] = '\0';
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = '\0';
}

/* Imports a CSV or IDX file and prints the dataset's record. */
static int qn__cmd_dataset_import(const struct qn_args *a)
{
    struct store *s = NULL;
    if (qn__open(a->db, &s))
        return QN_EXIT_FAIL;
    char msg[STORE_MSG_MAX + 256] = "", stem[STORE_NAME_MAX];
    qn__file_stem(a->pos[0], stem, sizeof stem);
    json_t *record = NULL;
    int rc = catalog_dataset_import(s, a->pos[0], a->labels, a->name, strcmp(a->pos[0], "-") ? stem : NULL,
                                    &record, msg, sizeof msg);
    int code = 0;
    if (rc == QN_EFORMAT || rc == QN_EIO || rc == QN_ERANGE || rc == QN_EINVAL ||
        rc == QN_ESPEC || rc == QN_EEXIST) {
        qn__say("%s", msg[0] ? msg : qn_err_msg(rc));
        code = QN_EXIT_USAGE;
    } else if (rc) {
        qn__say("cannot store the dataset: %s", msg[0] ? msg : catalog_errmsg(s));
        code = QN_EXIT_FAIL;
    }
    if (code == 0)
        qn__print_json(record);
    store_close(s);
    return code;
}

/* ---- qn job, qn surrogate, qn model --------------------------------------------- */

/* Prints the record get() finds for ref (what: "surrogate", ...); exit 2 when there is none. */
static int qn__print_one(const char *db, const char *what, const char *ref,
                         int (*get)(struct store *, const char *, json_t **))
{
    struct store *s = NULL;
    if (qn__open(db, &s))
        return QN_EXIT_FAIL;
    json_t *rec = NULL;
    int rc = get(s, ref, &rec);
    int code = 0;
    if (rc == QN_ENOTFOUND) {
        qn__say("no %s '%s'", what, ref);
        code = QN_EXIT_USAGE;
    } else if (rc) {
        qn__say("cannot read %s '%s': %s", what, ref, qn_err_msg(rc));
        code = QN_EXIT_FAIL;
    } else if (qn__print_json(rec)) {
        code = QN_EXIT_FAIL;
    }
    store_close(s);
    return code;
}

static int qn__cmd_surrogate_list(const struct qn_args *a)
{
    return qn__print_list(a->db, "surrogates", catalog_surrogate_list);
}

static int qn__cmd_surrogate_show(const struct qn_args *a)
{
    return qn__print_one(a->db, "surrogate", a->pos[0], catalog_surrogate_get);
}

static int qn__cmd_model_list(const struct qn_args *a)
{
    return qn__print_list(a->db, "models", catalog_model_list);
}

static int qn__cmd_model_show(const struct qn_args *a)
{
    return qn__print_one(a->db, "model", a->pos[0], catalog_model_get);
}

/* Every job's record (as GET /v1/jobs lists them), oldest first, one JSON line each. */
static int qn__cmd_job_list(const struct qn_args *a)
{
    struct store *s = NULL;
    if (qn__open(a->db, &s))
        return QN_EXIT_FAIL;
    struct catalog_job *list = NULL;
    size_t n = 0;
    int rc = catalog_job_list(s, NULL, 0, 0, CATALOG_JOB_PRIORITY, &list, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = qn__print_json(json_incref(list[i].record));
    if (rc)
        qn__say("cannot list jobs: %s", qn_err_msg(rc));
    catalog_job_list_free(list, n);
    store_close(s);
    return rc ? QN_EXIT_FAIL : 0;
}

/* Prints job id's record with its spec (as GET /v1/jobs/{id}); exit 2 when there is none. */
static int qn__show_job(struct store *s, int64_t id)
{
    struct catalog_job j;
    int rc = catalog_job_get(s, id, CATALOG_JOB_PRIORITY | CATALOG_JOB_SPEC, &j);
    if (rc == QN_ENOTFOUND) {
        qn__say("no job with id %" PRId64, id);
        return QN_EXIT_USAGE;
    }
    if (rc) {
        qn__say("cannot read job %" PRId64 ": %s", id, qn_err_msg(rc));
        return QN_EXIT_FAIL;
    }
    if (j.spec && json_object_set_new(j.record, "spec", j.spec) == 0)
        j.spec = NULL;
    rc = qn__print_json(json_incref(j.record));
    catalog_job_close(&j);
    return rc ? QN_EXIT_FAIL : 0;
}

/* The job id of a command's first argument; exit 2 (said) when it is not one. */
static int qn__job_arg(const struct qn_args *a, int64_t *id)
{
    if (qn__parse_id(a->pos[0], id) == 0)
        return 0;
    qn__say("job id must be a positive integer, not '%s'", a->pos[0]);
    return QN_EXIT_USAGE;
}

static int qn__cmd_job_show(const struct qn_args *a)
{
    int64_t id = 0;
    struct store *s = NULL;
    int code = qn__job_arg(a, &id);
    if (code == 0 && qn__open(a->db, &s))
        code = QN_EXIT_FAIL;
    if (code == 0)
        code = qn__show_job(s, id);
    store_close(s);
    return code;
}

/* Cancels a queued or waiting job and prints its record. A running job
 * belongs to the process running it: that one must be asked. */
static int qn__cmd_job_cancel(const struct qn_args *a)
{
    int64_t id = 0;
    struct store *s = NULL;
    int code = qn__job_arg(a, &id);
    if (code == 0 && qn__open(a->db, &s))
        code = QN_EXIT_FAIL;
    enum store_job_state st = JOB_QUEUED;
    int rc = code ? 0 : catalog_job_cancel(s, id, &st);
    if (rc == QN_ENOTFOUND) {
        qn__say("no job with id %" PRId64, id);
        code = QN_EXIT_USAGE;
    } else if (rc == QN_EEXIST) {
        qn__say("job %" PRId64 " has already ended (%s)", id, catalog_job_state_name(st));
        code = QN_EXIT_USAGE;
    } else if (rc == QN_EBUSY) {
        qn__say("job %" PRId64 " is running: stop it where it runs (POST /v1/jobs/%" PRId64
                "/cancel to the daemon, Ctrl-C to qn run)", id, id);
        code = QN_EXIT_FAIL;
    } else if (rc) {
        qn__say("cannot cancel job %" PRId64 ": %s", id, qn_err_msg(rc));
        code = QN_EXIT_FAIL;
    }
    if (code == 0)
        code = qn__show_job(s, id);
    store_close(s);
    return code;
}

/* ---- dispatch ----------------------------------------------------------------- */

static const struct qn_cmd qn__cmds[] = {
    {"run", NULL, 1, QN_OPT_WORKERS | QN_OPT_RANKS, qn__cmd_run,
     "qn run JOB.json [--db PATH] [--workers N] [--ranks N]"},
    {"resume", NULL, 1, QN_OPT_WORKERS, qn__cmd_resume,
     "qn resume JOB_ID [--db PATH] [--workers N]"},
    {"device", "add", 1, 0, qn__cmd_device_add, "qn device add DEVICE.json [--db PATH]"},
    {"device", "list", 0, 0, qn__cmd_device_list, "qn device list [--db PATH]"},
    {"dataset", "list", 0, 0, qn__cmd_dataset_list, "qn dataset list [--db PATH]"},
    {"dataset", "export", 1, 0, qn__cmd_dataset_export, "qn dataset export ID [--db PATH]"},
    {"dataset", "import", 1, QN_OPT_NAME | QN_OPT_LABELS, qn__cmd_dataset_import,
     "qn dataset import FILE [--name NAME] [--labels FILE] [--db PATH]"},
    {"job", "list", 0, 0, qn__cmd_job_list, "qn job list [--db PATH]"},
    {"job", "show", 1, 0, qn__cmd_job_show, "qn job show ID [--db PATH]"},
    {"job", "cancel", 1, 0, qn__cmd_job_cancel, "qn job cancel ID [--db PATH]"},
    {"surrogate", "list", 0, 0, qn__cmd_surrogate_list, "qn surrogate list [--db PATH]"},
    {"surrogate", "show", 1, 0, qn__cmd_surrogate_show, "qn surrogate show REF [--db PATH]"},
    {"model", "list", 0, 0, qn__cmd_model_list, "qn model list [--db PATH]"},
    {"model", "show", 1, 0, qn__cmd_model_show, "qn model show REF [--db PATH]"},
};

/* Reads the value of option argv[*i] ("--db X" or "--db=X"). */
static const char *qn__opt_value(int argc, char **argv, int *i, const char *opt)
{
    size_t l = strlen(opt);
    if (argv[*i][l] == '=')
        return argv[*i] + l + 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
}

/* Parses one option at argv[*i] into a; 0 or QN_EINVAL. */
static int qn__parse_opt(const struct qn_cmd *c, int argc, char **argv, int *i,
                         struct qn_args *a)
{
    const char *arg = argv[*i], *v;
    if (strncmp(arg, "--db", 4) == 0 && (arg[4] == '\0' || arg[4] == '=')) {
        if (!(v = qn__opt_value(argc, argv, i, "--db")) || !*v)
            return QN_EINVAL;
        a->db = v;
        return 0;
    }
    if ((c->opts & QN_OPT_NAME) && strncmp(arg, "--name", 6) == 0 &&
        (arg[6] == '\0' || arg[6] == '=')) {
        if (!(v = qn__opt_value(argc, argv, i, "--name")) || !*v || strlen(v) >= STORE_NAME_MAX)
            return QN_EINVAL;
        a->name = v;
        return 0;
    }
    if ((c->opts & QN_OPT_LABELS) && strncmp(arg, "--labels", 8) == 0 &&
        (arg[8] == '\0' || arg[8] == '=')) {
        if (!(v = qn__opt_value(argc, argv, i, "--labels")) || !*v)
            return QN_EINVAL;
        a->labels = v;
        return 0;
    }
    if ((c->opts & QN_OPT_WORKERS) && strncmp(arg, "--workers", 9) == 0 &&
        (arg[9] == '\0' || arg[9] == '=')) {
        int64_t w;
        if (!(v = qn__opt_value(argc, argv, i, "--workers")) || qn__parse_id(v, &w) ||
            w > QN_MAX_WORKERS)
            return QN_EINVAL;
        a->workers = (size_t)w;
        a->have_workers = 1;
        return 0;
    }
    if ((c->opts & QN_OPT_RANKS) && strncmp(arg, "--ranks", 7) == 0 &&
        (arg[7] == '\0' || arg[7] == '=')) {
        int64_t r;
        if (!(v = qn__opt_value(argc, argv, i, "--ranks")) || qn__parse_id(v, &r) ||
            r > SPOOL_RANKS_MAX)
            return QN_EINVAL;
        a->ranks = (size_t)r;
        return 0;
    }
    return QN_EINVAL;
}

/* Parses the arguments after the command words into *a. */
static int qn__parse_args(const struct qn_cmd *c, int argc, char **argv, int first,
                          struct qn_args *a)
{
    memset(a, 0, sizeof *a);
    a->db = QN_DEFAULT_DB;
    for (int i = first; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            if (qn__parse_opt(c, argc, argv, &i, a)) {
                qn__say("bad option '%s'", argv[i]);
                return QN_EINVAL;
            }
        } else if (a->n_pos < QN_MAX_ARGS) {
            a->pos[a->n_pos++] = argv[i];
        } else {
            return QN_EINVAL;
        }
    }
    return a->n_pos == c->n_pos ? 0 : QN_EINVAL;
}

/* The command named by argv[1] (and argv[2]); *first = index of its first argument. */
static const struct qn_cmd *qn__find(int argc, char **argv, int *first)
{
    for (size_t i = 0; i < sizeof qn__cmds / sizeof qn__cmds[0]; i++) {
        const struct qn_cmd *c = &qn__cmds[i];
        if (strcmp(argv[1], c->name) != 0)
            continue;
        if (!c->sub) {
            *first = 2;
            return c;
        }
        if (argc > 2 && strcmp(argv[2], c->sub) == 0) {
            *first = 3;
            return c;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    blas_env_select(argc, argv); /* may re-execute with the AVX-512 kernels; never fails */
    if (argc < 2) {
        fputs(qn__usage, stderr);
        return QN_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(qn__usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("qn " QN_VERSION "\n");
        return 0;
    }
    if (strcmp(argv[1], "demo") == 0)
        return demo_main(argc - 1, argv + 1, "/proc/self/exe");
    if (strcmp(argv[1], "serve") == 0 || strcmp(argv[1], "user") == 0) {
        /* Their own option sets (daemon.c, cmd_user.c). */
        gsl_set_error_handler_off(); /* once, before any thread */
        return strcmp(argv[1], "serve") == 0 ? daemon_main(argc - 1, argv + 1)
                                             : cmd_user_main(argc - 1, argv + 1);
    }
    int first = 0;
    const struct qn_cmd *c = qn__find(argc, argv, &first);
    if (!c) {
        qn__say("unknown command '%s%s%s'", argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
        fputs(qn__usage, stderr);
        return QN_EXIT_USAGE;
    }
    struct qn_args a;
    if (qn__parse_args(c, argc, argv, first, &a)) {
        fprintf(stderr, "usage: %s\n", c->usage);
        return QN_EXIT_USAGE;
    }
    gsl_set_error_handler_off(); /* once, before any thread */
    return c->fn(&a);
}
