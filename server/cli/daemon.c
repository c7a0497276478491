/*
 * daemon.c: `qn serve`: options, start-up, and an orderly shutdown (see
 * daemon.h for the order and for the contract with the worker pool and the
 * event pump).
 *
 * Signals: SIGINT and SIGTERM are blocked in every thread (the mask is set
 * before any thread starts and inherited) and the main thread waits for
 * them with sigwait, so no handler and no global flag are needed. After the
 * first one the default action is restored: a second Ctrl-C during a slow
 * shutdown kills the process, and the jobs it was running are requeued at
 * the next start (queue recovery), so nothing is lost either way.
 *
 * HTTP threading: MHD's internal polling thread with epoll, optionally with
 * a pool of such threads. DAEMON_DEFAULT_HTTP_THREADS is the measured choice
 * (see the comment there); --http-threads overrides it.
 */
#include "daemon.h"

#include <cblas.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "dblock.h"
#include "events.h"
#include "qn_err.h"
#include "page_cache.h"
#include "routes.h"
#include "store.h"
#include "users.h"
#include "workers.h"

/*
 * MHD threads: a pool of 4 epoll threads, measured against one internal
 * polling thread on the 2-CPU development machine with wrk (2 threads, 32
 * keep-alive connections, 8 s) while two HH sweeps kept both job workers
 * busy (two runs each):
 *
 *                     GET /v1/jobs/{id}              GET /healthz
 *   1 thread      11.7k-12.4k req/s, p99 9-24 ms   46k-62k req/s, p99 6 ms
 *   4 threads     16.6k-18.0k req/s, p99 12-17 ms  49k-56k req/s, p99 10-11 ms
 *
 * Routes that read the database gain 40% with the pool (a handler's SQLite
 * read no longer serialises every connection) and their p99 is steadier;
 * the trivial route loses a few ms of p99 to thread switches. Slow routes
 * (simulate, predict, uploads) run on compute threads either way: with
 * them inline, a 0.25 s simulate pushed /healthz's p99 to 235 ms (1
 * thread) and 433 ms (4 threads, connections are bound to one thread);
 * offloaded it stays at 1-6 ms.
 */
#define DAEMON_DEFAULT_HTTP_THREADS 4
#define DAEMON_MAX_WORKERS 1024
#define DAEMON_MAX_HTTP_THREADS 256
/* Metric pages and job lists kept as their JSON text (server/http/page_cache.h):
 * 1000-row pages are ~100 KB; at most 128 pages are kept. */
#define DAEMON_PAGE_CACHE_BYTES ((size_t)32 << 20)

static const char daemon__usage[] =
    "usage: qn serve [--db PATH] [--bind ADDR] [--port N] [--workers N] [--job-threads N]\n"
    "                [--http-threads N] [--compute-threads N] [--max-body BYTES]\n"
    "                [--max-upload BYTES]\n"
    "                [--max-connections N] [--timeout S]\n"
    "                [--simulate-steps N] [--simulate-seconds S] [--max-job-memory BYTES]\n"
    "                [--max-dataset-values N] [--max-connections-per-client N]\n"
    "                [--max-streams N] [--max-streams-per-user N]\n"
    "                [--spool DIR] [--launcher TEMPLATE]\n"
    "                [--slurm [--partition P] [--account A]]\n"
    "                [--min-body-rate BYTES] [--body-grace S] [--http-nice N]\n"
    "                [--header-timeout S] [--http-cpu PERCENT]\n"
    "\n"
    "  --db PATH            database (default ./quasineuron.db)\n"
    "  --bind ADDR          listen address (default 127.0.0.1; any other address needs\n"
    "                       users: qn user add NAME)\n"
    "  --port N             port (default 8080; 0 picks a free one, printed at start-up)\n"
    "  --workers N          job worker threads (default: the number of CPUs)\n"
    "  --job-threads N      threads one job may use (default 1)\n"
    "  --http-threads N     HTTP threads (default 4)\n"
    "  --compute-threads N  threads for simulate, predict and uploads (default: CPUs, at most 4)\n"
    "  --max-body BYTES     largest JSON body (default 1M; suffixes K, M, G)\n"
    "  --max-upload BYTES   largest dataset upload, also once decompressed (default 256M;\n"
    "                       413 beyond)\n"
    "  --max-connections N  concurrent connections (default 256)\n"
    "  --timeout S          seconds a connection may stay silent mid-request (default 60)\n"
    "  --simulate-steps N   steps one solve of POST .../simulate may take (default 1000000;\n"
    "                       422 beyond)\n"
    "  --simulate-seconds S seconds one simulate request may compute (default 5; 503 beyond)\n"
    "  --max-job-memory BYTES  memory a submitted job may need, estimated from its spec\n"
    "                       (default: half the RAM; 422 beyond)\n"
    "  --max-dataset-values N  values an uploaded dataset may hold once decompressed\n"
    "                       (default 100M; 422 beyond)\n"
    "  --max-connections-per-client N  concurrent connections from one address (default 64)\n"
    "  --max-streams N      open event streams (default 128; 503 beyond)\n"
    "  --max-streams-per-user N  open event streams of one user (default 16)\n"
    "  --spool DIR          where jobs on several ranks are staged for qn-mpi (default: the\n"
    "                       database's path + .spool; must be writable)\n"
    "  --launcher TEMPLATE  how qn-mpi starts on {ranks} ranks: {cmd} is qn-mpi and its\n"
    "                       spool directory, {threads} the threads per rank (default\n"
    "                       'mpirun --oversubscribe -n {ranks} {cmd}', --allow-run-as-root\n"
    "                       added as root)\n"
    "  --slurm              jobs on several ranks are Slurm batch jobs instead: sbatch (ranks\n"
    "                       as tasks, srun --mpi=pmix inside), followed with squeue, canceled\n"
    "                       with scancel; the spool must be a filesystem the nodes share.\n"
    "                       Refused when sbatch is not on PATH\n"
    "  --partition P        --slurm: sbatch --partition\n"
    "  --account A          --slurm: sbatch --account\n"
    "  --min-body-rate BYTES  bytes/s a request body must keep up once --body-grace has\n"
    "                       passed (default 1024; 0: none; 408 and the connection closed)\n"
    "  --body-grace S       seconds from the request head before that holds (default 10)\n"
    "  --http-nice N        HTTP threads run N nicer than the job workers (default 0)\n"
    "  --header-timeout S   seconds a request head may take to arrive, from the connection's\n"
    "                       start or the end of its previous request (default 10; the\n"
    "                       connection is closed without a reply)\n"
    "  --http-cpu PERCENT   while jobs run, the HTTP threads use at most this percent of one\n"
    "                       CPU, so clients that ask without pause cannot starve the jobs\n"
    "                       (default 15 per CPU; 0: no cap)\n";

/* Parses a decimal with an optional K/M/G suffix (binary) into [lo, hi]. */
static int daemon__parse_size(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !*s)
        return QN_EINVAL;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-')
        return QN_EINVAL;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end || v > (hi >> shift))
        return QN_EINVAL;
    v <<= shift;
    if (v < lo)
        return QN_EINVAL;
    *out = v;
    return 0;
}

size_t daemon_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

/* Half the physical memory: the default --max-job-memory (0, no limit, when unknown). */
static size_t daemon__half_ram(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && size > 0 ? (size_t)pages / 2 * (size_t)size : 0;
}

static void daemon__defaults(struct daemon_config *c)
{
    memset(c, 0, sizeof *c);
    c->db = "quasineuron.db";
    c->bind = DAEMON_DEFAULT_BIND;
    c->port = DAEMON_DEFAULT_PORT;
    c->workers = daemon_cpus();
    c->job_threads = 1;
    c->http_threads = DAEMON_DEFAULT_HTTP_THREADS;
    c->compute_threads = c->workers < 4 ? (unsigned)c->workers : 4;
    c->max_body = DAEMON_DEFAULT_MAX_BODY;
    c->max_upload = DAEMON_DEFAULT_MAX_UPLOAD;
    c->max_connections = DAEMON_DEFAULT_MAX_CONN;
    c->timeout_s = DAEMON_DEFAULT_TIMEOUT;
    c->simulate_steps = DAEMON_DEFAULT_SIM_STEPS;
    c->simulate_seconds = DAEMON_DEFAULT_SIM_SECONDS;
    c->max_job_memory = daemon__half_ram();
    c->max_dataset_values = DAEMON_DEFAULT_DS_VALUES;
    c->max_per_client = DAEMON_DEFAULT_PER_CLIENT;
    c->max_streams = DAEMON_DEFAULT_STREAMS;
    c->max_streams_per_user = DAEMON_DEFAULT_USER_STREAMS;
    c->min_body_rate = DAEMON_DEFAULT_BODY_RATE;
    c->body_grace_s = DAEMON_DEFAULT_BODY_GRACE;
    c->header_timeout_s = DAEMON_DEFAULT_HEADER_TIMEOUT;
    c->http_cpu = DAEMON_HTTP_CPU_PER_CPU * (unsigned)daemon_cpus();
}

/* One numeric option: name, bounds, where it goes. */
struct daemon_opt {
    const char *name;
    uint64_t lo, hi;
    int sized;    /* accepts K/M/G */
    size_t off;   /* offsetof in daemon_config */
    int is_unsigned; /* the field is unsigned (else size_t) */
};

#define DAEMON_OPT_U(n, lo, hi, f) {n, lo, hi, 0, offsetof(struct daemon_config, f), 1}
#define DAEMON_OPT_Z(n, lo, hi, s, f) {n, lo, hi, s, offsetof(struct daemon_config, f), 0}

static const struct daemon_opt daemon__opts[] = {
    DAEMON_OPT_U("--port", 0, 65535, port),
    DAEMON_OPT_Z("--workers", 1, DAEMON_MAX_WORKERS, 0, workers),
    DAEMON_OPT_Z("--job-threads", 1, DAEMON_MAX_WORKERS, 0, job_threads),
    DAEMON_OPT_U("--http-threads", 1, DAEMON_MAX_HTTP_THREADS, http_threads),
    DAEMON_OPT_U("--compute-threads", 1, 64, compute_threads),
    DAEMON_OPT_Z("--max-body", 64, (uint64_t)1 << 30, 1, max_body),
    DAEMON_OPT_Z("--max-upload", 64, (uint64_t)1 << 40, 1, max_upload),
    DAEMON_OPT_U("--max-connections", 1, 100000, max_connections),
    DAEMON_OPT_U("--timeout", 1, 86400, timeout_s),
    DAEMON_OPT_Z("--simulate-steps", 1000, 1000000000, 0, simulate_steps),
    DAEMON_OPT_U("--simulate-seconds", 1, 3600, simulate_seconds),
    DAEMON_OPT_Z("--max-job-memory", 1 << 20, (uint64_t)1 << 50, 1, max_job_memory),
    DAEMON_OPT_Z("--max-dataset-values", 1000, (uint64_t)1 << 40, 1, max_dataset_values),
    DAEMON_OPT_U("--max-connections-per-client", 1, 100000, max_per_client),
    DAEMON_OPT_Z("--max-streams", 1, 100000, 0, max_streams),
    DAEMON_OPT_Z("--max-streams-per-user", 1, 100000, 0, max_streams_per_user),
    DAEMON_OPT_U("--min-body-rate", 0, 1u << 30, min_body_rate),
    DAEMON_OPT_U("--body-grace", 1, 3600, body_grace_s),
    DAEMON_OPT_U("--http-nice", 0, 19, http_nice),
    DAEMON_OPT_U("--header-timeout", 1, 3600, header_timeout_s),
    DAEMON_OPT_U("--http-cpu", 0, 100000, http_cpu),
};

/* Applies one numeric option; 0, QN_EINVAL (bad value), QN_ENOTFOUND (not numeric). */
static int daemon__num_opt(struct daemon_config *c, const char *name, const char *val)
{
    for (size_t i = 0; i < sizeof daemon__opts / sizeof daemon__opts[0]; i++) {
        const struct daemon_opt *o = &daemon__opts[i];
        if (strcmp(o->name, name) != 0)
            continue;
        uint64_t v;
        if (daemon__parse_size(val, o->lo, o->hi, &v) ||
            (!o->sized && strspn(val, "0123456789") != strlen(val))) {
            fprintf(stderr, "qn: %s must be an integer from %llu to %llu%s, not '%s'\n", name,
                    (unsigned long long)o->lo, (unsigned long long)o->hi,
                    o->sized ? " (K, M, G suffixes allowed)" : "", val);
            return QN_EINVAL;
        }
        char *field = (char *)c + o->off;
        if (o->is_unsigned)
            *(unsigned *)(void *)field = (unsigned)v;
        else
            *(size_t *)(void *)field = (size_t)v;
        return 0;
    }
    return QN_ENOTFOUND;
}

/* Parses argv (argv[0] = "serve") into c. */
static int daemon__parse(int argc, char **argv, struct daemon_config *c)
{
    daemon__defaults(c);
    for (int i = 1; i < argc; i++) {
        char name[32];
        const char *arg = argv[i], *eq = strchr(arg, '='), *val;
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "--", 2) != 0 || nl >= sizeof name) {
            fprintf(stderr, "qn: unexpected argument '%s'\n", arg);
            return QN_EINVAL;
        }
        memcpy(name, arg, nl);
        name[nl] = '\0';
        if (strcmp(name, "--slurm") == 0 && !eq) { /* the one option without a value */
            c->slurm = 1;
            continue;
        }
        if (eq)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "qn: %s needs a value\n", name);
            return QN_EINVAL;
        }
        if (strcmp(name, "--db") == 0 && *val)
            c->db = val;
        else if (strcmp(name, "--bind") == 0 && *val)
            c->bind = val;
        else if (strcmp(name, "--spool") == 0 && *val)
            c->spool = val;
        else if (strcmp(name, "--launcher") == 0 && *val)
            c->launcher = val;
        else if (strcmp(name, "--partition") == 0 && *val)
            c->partition = val;
        else if (strcmp(name, "--account") == 0 && *val)
            c->account = val;
        else {
            int rc = daemon__num_opt(c, name, val);
            if (rc == QN_ENOTFOUND)
                fprintf(stderr, "qn: unknown option '%s'\n", name);
            if (rc)
                return QN_EINVAL;
        }
    }
    return 0;
}

/*
 * Opens the database once before any thread (migrations run here) and
 * refuses a non-loopback address when there are no users. Returns the exit
 * status (0 to go on).
 */
static int daemon__check_db(const struct daemon_config *c)
{
    struct store *s = NULL;
    char msg[STORE_MSG_MAX];
    if (store_open(c->db, &s, msg, sizeof msg)) {
        fprintf(stderr, "qn: %s: %s\n", c->db, msg);
        return 1;
    }
    int64_t n = 0;
    int rc = users_count(s, &n);
    if (rc)
        fprintf(stderr, "qn: %s: cannot read the users: %s\n", c->db, catalog_errmsg(s));
    store_close(s);
    if (rc)
        return 1;
    if (n == 0 && !http_is_loopback(c->bind)) {
        fprintf(stderr,
                "qn: refusing to listen on %s: the database has no users, so anyone who can "
                "reach this address could run jobs and read every dataset. Add a user first "
                "(qn user add NAME --db %s) or listen on 127.0.0.1.\n",
                c->bind, c->db);
        return 2;
    }
    return 0;
}

/* The jobs the worker pool runs (the HTTP threads' CPU budget holds while any do). */
static size_t daemon__jobs_running(void *workers)
{
    return workers_busy(workers);
}

/* Starts the worker pool and the event pump when they are built in. With
 * more than one worker, jobs already run side by side, so OpenBLAS keeps to
 * the calling thread: its own threads would only oversubscribe the cores and
 * spin (sched_yield) between the small products of a training step. */
static int daemon__start_jobs(struct daemon *d)
{
    if (d->cfg.workers > 1)
        openblas_set_num_threads(1);
    struct routes_ctx *r = &d->routes;
    struct workers_config wc = {.db = d->cfg.db, .n = d->cfg.workers ? d->cfg.workers : 1,
                                .job_threads = d->cfg.job_threads, .log = stderr,
                                .max_job_memory = d->cfg.max_job_memory,
                                .remote = d->remote.launcher.ops ? &d->remote : NULL,
                                .changes = catalog_changes(d->catalog)};
    char msg[STORE_MSG_MAX] = "";
    if (workers_create(&wc, &r->workers, msg, sizeof msg)) {
        fprintf(stderr, "qn: cannot start the worker pool: %s\n", msg);
        return QN_EIO;
    }
    http_metrics_add(d->http, workers_metrics, r->workers);
    http_set_busy(d->http, daemon__jobs_running, r->workers);
    struct events_config ec = {.catalog = d->catalog, .workers = r->workers,
                               .stopping = &r->stopping, .max_streams = d->cfg.max_streams,
                               .max_per_user = d->cfg.max_streams_per_user};
    if (events_create(&ec, &r->events, msg, sizeof msg)) {
        fprintf(stderr, "qn: cannot start the event pump: %s\n", msg);
        return QN_EIO;
    }
    return 0;
}

void daemon_stop(struct daemon *d)
{
    struct routes_ctx *r = &d->routes;
    atomic_store(&r->stopping, 1);
    http_quiesce(d->http);
    events_halt(r->events); /* the pump reads the workers' registry: stop it first */
    workers_halt(r->workers, 1);
    events_stop(r->events);
    http_destroy(d->http);
    d->http = NULL;
    events_release(r->events); /* no request thread is left to reach it */
    r->events = NULL;
    workers_stop(r->workers, 1); /* frees the pool once no request thread can reach it */
    r->workers = NULL;
    catalog_destroy(d->catalog);
    d->catalog = NULL;
    page_cache_destroy(r->pages); /* no request thread is left to reach it */
    r->pages = NULL;
}

/* Blocks SIGINT and SIGTERM in this thread and every thread it starts. */
static void daemon__block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Waits for SIGINT or SIGTERM; then lets a second one kill the process. */
static int daemon__wait(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
    return sig;
}

/* The HTTP layer's token check: users_authenticate on a pooled connection. */
static int daemon__auth(void *ctx, const char *authorization, int loopback, struct user *user,
                        char *msg, size_t cap)
{
    struct catalog *cat = ctx;
    struct store *s = catalog_acquire(cat);
    if (!s) {
        snprintf(msg, cap, "the database cannot be opened");
        return QN_EDBDOWN;
    }
    int rc = users_authenticate(s, authorization, loopback, user, msg, cap);
    catalog_release(cat, s);
    return rc;
}

/* Creates the HTTP server with every route; msg says why not. */
static int daemon__http(struct daemon *d, char *msg, size_t cap)
{
    struct http_config hc = {
        .catalog = d->catalog,
        .bind = d->cfg.bind,
        .port = d->cfg.port,
        .threads = d->cfg.http_threads,
        .max_body = d->cfg.max_body,
        .max_upload = d->cfg.max_upload,
        .max_connections = d->cfg.max_connections,
        .max_per_client = d->cfg.max_per_client,
        .timeout_s = d->cfg.timeout_s,
        .min_body_rate = d->cfg.min_body_rate,
        .body_grace_s = d->cfg.body_grace_s,
        .header_timeout_s = d->cfg.header_timeout_s,
        .nice = d->cfg.http_nice,
        .cpu_percent = d->cfg.http_cpu,
        .compute_threads = d->cfg.compute_threads,
        .auth = daemon__auth,
        .auth_ctx = d->catalog,
        .app = &d->routes,
    };
    int rc = http_create(&hc, &d->http, msg, cap);
    if (rc == 0 && (rc = routes_register_all(d->http)))
        snprintf(msg, cap, "too many routes");
    return rc;
}

/* Prints where the daemon listens: a JSON line on stdout, a sentence on stderr. */
static void daemon__announce(const struct daemon *d)
{
    unsigned port = http_port(d->http);
    int v6 = strchr(d->cfg.bind, ':') != NULL;
    printf("{\"url\":\"http://%s%s%s:%u/\",\"port\":%u}\n", v6 ? "[" : "", d->cfg.bind,
           v6 ? "]" : "", port, port);
    fflush(stdout);
    fprintf(stderr, "qn: serving %s on http://%s%s%s:%u/ (%zu workers, %u HTTP threads)\n",
            d->cfg.db, v6 ? "[" : "", d->cfg.bind, v6 ? "]" : "", port, d->cfg.workers,
            d->cfg.http_threads);
}

int daemon_start(struct daemon *d, char *msg, size_t cap)
{
    atomic_init(&d->routes.stopping, 0);
    d->routes.simulate_steps = d->cfg.simulate_steps;
    d->routes.simulate_seconds = d->cfg.simulate_seconds;
    d->routes.max_dataset_values = d->cfg.max_dataset_values;
    d->routes.max_upload = d->cfg.max_upload;
    int rc = catalog_create(d->cfg.db, &d->catalog);
    if (rc == 0)
        rc = page_cache_create(DAEMON_PAGE_CACHE_BYTES, &d->routes.pages);
    if (rc) {
        catalog_destroy(d->catalog);
        d->catalog = NULL;
        snprintf(msg, cap, "out of memory");
        return rc;
    }
    if ((rc = daemon__http(d, msg, cap)) == 0 && (rc = daemon__start_jobs(d)) == 0)
        rc = http_start(d->http, msg, cap);
    if (rc)
        daemon_stop(d);
    return rc;
}

/* Serves until a signal: HTTP, workers, events; then the orderly stop. */
static int daemon__serve(struct daemon *d)
{
    sigset_t set;
    daemon__block_signals(&set);
    char msg[512] = "";
    if (daemon_start(d, msg, sizeof msg)) {
        if (msg[0])
            fprintf(stderr, "qn: %s\n", msg);
        return 1;
    }
    daemon__announce(d);
    int sig = daemon__wait(&set);
    fprintf(stderr, "qn: %s: stopping (running jobs are requeued)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    daemon_stop(d);
    fprintf(stderr, "qn: stopped\n");
    return 0;
}

/*
 * The launcher and the spool of jobs on several ranks into d->remote.
 * Returns the exit status: 2 for a bad template, 1 for a spool directory
 * that cannot be written (named). A launcher that cannot run now (no mpirun
 * on PATH) is said once; such jobs are then refused at submission.
 */
static int daemon__remote(struct daemon *d)
{
    struct launcher L;
    char msg[SPOOL_PATH_MAX + 128] = "";
    const struct daemon_config *c = &d->cfg;
    if (c->slurm && c->launcher) {
        fprintf(stderr, "qn: --slurm and --launcher: give one of them\n");
        return 2;
    }
    if (!c->slurm && (c->partition || c->account)) {
        fprintf(stderr, "qn: --%s needs --slurm\n", c->partition ? "partition" : "account");
        return 2;
    }
    if (c->slurm ? launch_slurm_init(&L, c->partition, c->account, msg, sizeof msg)
                 : launch_local_init(&L, c->launcher, msg, sizeof msg)) {
        fprintf(stderr, "qn: %s%s\n", c->slurm ? "" : "--launcher: ", msg);
        return 2;
    }
    if (c->slurm && L.ops->check(&L, msg, sizeof msg)) { /* asked for by name: must work */
        fprintf(stderr, "qn: refusing to start: %s\n", msg);
        return 1;
    }
    if (job_remote_init(&d->remote, &L, d->cfg.spool, d->cfg.db, msg, sizeof msg)) {
        fprintf(stderr, "qn: refusing to start: %s (--spool DIR)\n", msg);
        memset(&d->remote, 0, sizeof d->remote);
        return 1;
    }
    if (L.ops->check(&L, msg, sizeof msg))
        fprintf(stderr, "qn: jobs asking for several ranks will be refused: %s\n", msg);
    return 0;
}

int daemon_main(int argc, char **argv)
{
    struct daemon d;
    memset(&d, 0, sizeof d);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(daemon__usage, stdout);
            return 0;
        }
    if (daemon__parse(argc, argv, &d.cfg)) {
        fputs(daemon__usage, stderr);
        return 2;
    }
    char msg[512] = "";
    int lock = -1;
    if (dblock_take(d.cfg.db, DBLOCK_SERVE, &lock, msg, sizeof msg)) {
        fprintf(stderr, "qn: %s\n", msg);
        return 1;
    }
    int code = daemon__check_db(&d.cfg);
    if (code == 0)
        code = daemon__remote(&d);
    if (code == 0)
        code = daemon__serve(&d);
    dblock_release(lock);
    return code;
}
