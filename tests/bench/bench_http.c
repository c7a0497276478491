/*
 * bench_http.c: the daemon's HTTP latency while training keeps its workers
 * busy (issue 4, "Speed").
 *
 * Starts the build's `qn serve` (QN_BIN) on an ephemeral loopback port with
 * a temporary database and 2 workers, submits two train jobs that keep both
 * workers busy for the whole measurement (a Fashion-MNIST subset through a
 * 784-128-10 network; spirals where the dataset is not installed), then runs
 * 32 client threads, each with its own keep-alive connection (one libcurl
 * easy handle), alternating GET /v1/jobs/{id} and GET /v1/jobs/{id}/metrics
 * for QN_BENCH_SECONDS seconds (default 20). Prints requests/s, mean, p50
 * and p99 latency per route and in all, the error count (transport failures
 * and non-200 replies), whether the target (p99 < 20 ms, no errors) is met,
 * and the jobs' training steps/s under the load and just before it.
 *
 * The reference: the same load on the same two jobs once they are canceled,
 * so the workers are idle; the ratio shows what the training load costs.
 * For the two runs to ask the same work of the daemon, the metric requests
 * take a fixed page, ?limit=QN_BENCH_METRICS_LIMIT (default 100 rows, about
 * 10 KB), and the load starts once each job has that many rows: the plain
 * first page (up to 1000 rows) would grow during the first run and be larger
 * in the reference. QN_BENCH_METRICS_LIMIT=0 asks for the plain page anyway.
 * Mean reply sizes are printed beside the latencies. The client threads
 * share the machine with the daemon: on a 2-CPU machine with two busy
 * workers they compete for the same cores, as a dashboard on the server
 * itself would. With 32 closed-loop clients the mean latency is 32 divided
 * by the request rate; p50 and p99 show how the scheduler spreads it.
 *
 * Then the realistic mix (issue 16), on a fresh daemon: 58 finished train
 * jobs of over 1000 metric rows each, two train jobs running (a job list of
 * 60), and 32 clients each asking in turn GET /v1/jobs (the list), a running
 * job's record, that job's metrics since the load began (what a live chart
 * polls) and a finished job's full metric page (1000 rows, about 100 KB;
 * the clients go round the finished jobs). It prints the same figures, the
 * CPU's name, and the trains' speed under the mix against the
 * BENCH_QUIET_MS just before it, as a ratio; the target is p99 < 50 ms,
 * >= 1000 requests/s and the trains slowed less than 2x. Beside the
 * latencies it prints the daemon's CPU time in its HTTP threads per request
 * (from /proc: the machine's other load does not change it as it changes
 * latencies) and the load average; then the same mix once the trains are
 * canceled, as the reference of the requests/s, p50 and p99 ratios.
 * The finished pages are asked once before the trains start (a dashboard
 * that was open), unless QN_BENCH_COLD=1.
 * The mix is driven by wrk (2 threads, the same connections; the tool issue
 * 16 measured with; `make bench` installs it) when it is installed, by curl
 * threads otherwise or with QN_BENCH_CURL=1.
 * QN_BENCH_MIX_ONLY=1 runs the mix alone; QN_BENCH_HTTP_THREADS=N,
 * QN_BENCH_HTTP_NICE=N and QN_BENCH_HTTP_CPU=P start the daemons with
 * --http-threads N, --http-nice N, --http-cpu P.
 *
 * A missed target is reported, not fatal (timings on a shared machine are
 * noisy); the program fails only when the daemon or the jobs cannot be set
 * up. The daemon is stopped with SIGTERM at the end (SIGKILL after 20 s).
 */
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qn_test.h"
#include "qt_bench.h"
#include "qt_daemon.h"

#define BENCH_CLIENTS 32       /* concurrent clients, one connection each */
#define BENCH_SECONDS 20.0     /* default length of each run */
#define BENCH_TARGET_MS 20.0   /* p99 target under training load */
#define BENCH_START_WAIT 120.0 /* seconds the jobs may take to write their first metric */
#define BENCH_METRICS_LIMIT 100 /* rows per metric page (see the header) */
#define BENCH_QUIET_MS 3000   /* training speed without HTTP load is measured this long */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

#define NEURON "{\"kind\": \"neuron\", \"params\": {\"activation\": \"tanh\"}}"
#define IDENTITY "{\"kind\": \"neuron\", \"params\": {\"activation\": \"identity\"}}"
/* Each job runs far longer than the benchmark; it is canceled at the end. */
#define JOB_FASHION                                                                            \
    "{\"type\": \"train\", \"name\": \"bench fashion\", \"spec\": {\"dataset\": {\"name\": "  \
    "\"fashion-mnist\", \"limit\": 10000, \"test_limit\": 1000}, \"network\": [{\"devices\": " \
    "128, \"device\": " NEURON "}, {\"devices\": 10, \"device\": " IDENTITY "}], "           \
    "\"epochs\": 100000, \"batch\": 64}}"
#define JOB_SPIRALS                                                                            \
    "{\"type\": \"train\", \"name\": \"bench spirals\", \"spec\": {\"dataset\": {\"name\": "  \
    "\"spirals\", \"samples\": 20000}, \"network\": [{\"devices\": 64, \"device\": " NEURON   \
    "}, {\"devices\": 64, \"device\": " NEURON "}, {\"devices\": 2, \"device\": " IDENTITY   \
    "}], \"epochs\": 100000, \"batch\": 32}}"

/* The realistic mix's finished jobs: xor 2-4-1 for 400 epochs, over 1000
 * metric rows (a full page of about 100 KB) each, in a fraction of a second. */
#define JOB_SMALL                                                                              \
    "{\"type\": \"train\", \"name\": \"bench small\", \"spec\": {\"dataset\": \"xor\", "    \
    "\"loss\": \"mse\", \"network\": [{\"devices\": 4, \"device\": " NEURON "}, "                \
    "{\"devices\": 1, \"device\": " IDENTITY "}], \"epochs\": 400, \"batch\": 4}}"
#define BENCH_FINISHED 58     /* finished jobs in the mix (with the two trains: a list of 60) */
#define BENCH_MIX_P99_MS 50.0 /* the mix's targets: p99, requests/s, training slowdown */
#define BENCH_MIX_RATE 1000.0
#define BENCH_MIX_SLOWDOWN 2.0

enum { ROUTE_JOB, ROUTE_METRICS, ROUTE_N };
static const char *const bench_route_names[ROUTE_N] = {"GET /v1/jobs/{id}",
                                                       "GET /v1/jobs/{id}/metrics"};
/* The realistic mix's routes, asked in turn by each client (bench_mix). */
enum { MIX_LIST, MIX_JOB, MIX_TAIL, MIX_PAGE, MIX_N };
static const char *const bench_mix_names[MIX_N] = {
    "GET /v1/jobs (the list)", "GET /v1/jobs/{running}", "GET /v1/jobs/{running}/metrics?since",
    "GET /v1/jobs/{finished}/metrics"};
#define ROUTE_MAX 4

/* Latencies of one route (ms), grown by doubling. */
struct bench_lat {
    double *ms; /* (n) of cap (owned) */
    size_t n, cap;
    size_t bytes; /* reply bytes in all */
};

/* Every client starts when main says go; t_end 0 means stop at once. */
struct bench_start {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;       /* 1 once t_end is set */
    double t_end; /* monotonic deadline */
};

/* One client thread and what it measured. */
struct bench_client {
    pthread_t th;
    unsigned port;
    int nroutes;                 /* routes asked in turn */
    char url[ROUTE_MAX][160];    /* their URLs */
    const char *const *names;    /* their names (static) */
    const int64_t *finished;     /* mix: finished jobs whose pages MIX_PAGE asks in turn */
    size_t nfinished;
    size_t index;                /* the client's number */
    struct bench_start *start;   /* the start signal and deadline (borrowed) */
    struct bench_lat lat[ROUTE_MAX];
    size_t errors;               /* transport failures and non-200 replies */
    char first_error[160];       /* the first one, "" when none */
    size_t rx;                   /* bytes of the current reply */
};

/* What one run measured. */
struct bench_result {
    double seconds;  /* wall time from start to the last reply */
    size_t requests; /* replies and failures */
    size_t errors;
    double mean, p50, p99, max;       /* all routes, ms */
    int nroutes;
    const char *const *names;         /* the routes' names (static) */
    double r_p50[ROUTE_MAX], r_p99[ROUTE_MAX];
    size_t r_n[ROUTE_MAX];
    double r_bytes[ROUTE_MAX];        /* mean reply bytes */
    char first_error[160];
};

/* ---- single requests (set-up and checks) ----------------------------------------- */

/* One request on a new connection (30 s at most); the status (0 on a
 * transport failure) and the reply parsed into *out (new reference; NULL
 * when not JSON). */
static long bench_call(unsigned port, const char *method, const char *path, const char *body,
                       json_t **out)
{
    return qd_http_raw_t(port, method, path, NULL, body, out, 30L);
}

/* Submits a job; its id into *id. 0 or -1. */
static int bench_submit(unsigned port, const char *job, int64_t *id)
{
    json_t *r = NULL;
    long st = bench_call(port, "POST", "/v1/jobs", job, &r);
    *id = json_integer_value(json_object_get(r, "id"));
    if (st != 201 || *id <= 0) {
        char *text = r ? json_dumps(r, 0) : NULL;
        fprintf(stderr, "bench_http: submit answered %ld: %s\n", st, text ? text : "");
        free(text);
        json_decref(r);
        return -1;
    }
    json_decref(r);
    return 0;
}

/* The job's state into buf ("" when it cannot be read). */
static void bench_state(unsigned port, int64_t id, char *buf, size_t cap)
{
    char path[64];
    json_t *r = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64, id);
    bench_call(port, "GET", path, NULL, &r);
    const char *s = json_string_value(json_object_get(r, "state"));
    snprintf(buf, cap, "%s", s ? s : "");
    json_decref(r);
}

/* The training steps both jobs have done (their records' progress.done). */
static double bench_steps(unsigned port, const int64_t jobs[2])
{
    double steps = 0;
    for (int i = 0; i < 2; i++) {
        char path[64];
        json_t *r = NULL;
        snprintf(path, sizeof path, "/v1/jobs/%" PRId64, jobs[i]);
        bench_call(port, "GET", path, NULL, &r);
        steps += (double)json_integer_value(json_object_get(json_object_get(r, "progress"),
                                                            "done"));
        json_decref(r);
    }
    return steps;
}

/* 1 when the job has written at least `rows` metrics (and one at least). */
static int bench_has_metrics(unsigned port, int64_t id, long rows)
{
    char path[80];
    json_t *r = NULL;
    if (rows < 1)
        rows = 1;
    snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/metrics?limit=%ld", id, rows);
    bench_call(port, "GET", path, NULL, &r);
    int has = json_array_size(json_object_get(r, "metrics")) == (size_t)rows;
    json_decref(r);
    return has;
}

/* Waits until both jobs run and have `rows` metrics; 0, or -1 (with the reason). */
static int bench_wait_training(unsigned port, const int64_t jobs[2], long rows)
{
    double t0 = qd_now();
    for (int i = 0; i < 2; i++) {
        char st[32];
        for (;;) {
            bench_state(port, jobs[i], st, sizeof st);
            if (strcmp(st, "running") == 0 && bench_has_metrics(port, jobs[i], rows))
                break;
            if ((strcmp(st, "queued") != 0 && strcmp(st, "running") != 0) ||
                qd_now() - t0 > BENCH_START_WAIT) {
                fprintf(stderr, "bench_http: job %" PRId64 " is '%s', not training\n", jobs[i],
                        st);
                return -1;
            }
            qd_nap_ms(50);
        }
    }
    return 0;
}

/* Cancels both jobs and waits (10 s at most) until neither runs. 0 or -1. */
static int bench_cancel(unsigned port, const int64_t jobs[2])
{
    char path[64], st[32];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/cancel", jobs[i]);
        bench_call(port, "POST", path, NULL, NULL);
    }
    double t0 = qd_now();
    for (int i = 0; i < 2; i++)
        for (;;) {
            bench_state(port, jobs[i], st, sizeof st);
            if (strcmp(st, "canceled") == 0 || strcmp(st, "succeeded") == 0 ||
                strcmp(st, "failed") == 0)
                break;
            if (qd_now() - t0 > 10) {
                fprintf(stderr, "bench_http: job %" PRId64 " still '%s' 10 s after cancel\n",
                        jobs[i], st);
                return -1;
            }
            qd_nap_ms(20);
        }
    return 0;
}

/* ---- the load -------------------------------------------------------------------- */

static int bench_lat_push(struct bench_lat *l, double ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4096;
        double *p = realloc(l->ms, cap * sizeof *p);
        if (!p)
            return -1;
        l->ms = p;
        l->cap = cap;
    }
    l->ms[l->n++] = ms;
    return 0;
}

static size_t bench_count(char *data, size_t size, size_t nmemb, void *user)
{
    (void)data;
    ((struct bench_client *)user)->rx += size * nmemb;
    return size * nmemb;
}

/* Records a failed request (keeping the first reason). */
static void bench_fail(struct bench_client *c, const char *route, const char *what, long status)
{
    if (c->errors++ == 0)
        snprintf(c->first_error, sizeof c->first_error, "%s: %s %ld", route, what, status);
}

/* Waits for main's go; the deadline. */
static double bench_wait_go(struct bench_start *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->go)
        pthread_cond_wait(&s->cv, &s->mu);
    double t_end = s->t_end;
    pthread_mutex_unlock(&s->mu);
    return t_end;
}

/* A client: one keep-alive connection, its routes in turn until the deadline
 * (the mix's finished-job page cycles through the finished jobs). */
static void *bench_client_main(void *arg)
{
    struct bench_client *c = arg;
    CURL *h = curl_easy_init();
    if (h) {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_count);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    }
    double t_end = bench_wait_go(c->start);
    for (unsigned i = 0; h && qd_now() < t_end; i++) {
        int r = (int)(i % (unsigned)c->nroutes);
        if (c->nfinished && r == MIX_PAGE)
            snprintf(c->url[r], sizeof c->url[r], "http://127.0.0.1:%u/v1/jobs/%" PRId64 "/metrics",
                     c->port, c->finished[(i / MIX_N + c->index) % c->nfinished]);
        curl_easy_setopt(h, CURLOPT_URL, c->url[r]);
        c->rx = 0;
        double t0 = qd_now();
        CURLcode rc = curl_easy_perform(h);
        double ms = (qd_now() - t0) * 1e3;
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK)
            bench_fail(c, c->names[r], curl_easy_strerror(rc), (long)rc);
        else if (status != 200)
            bench_fail(c, c->names[r], "status", status);
        if (bench_lat_push(&c->lat[r], ms) != 0)
            break;
        c->lat[r].bytes += c->rx;
    }
    if (!h)
        bench_fail(c, "client", "curl_easy_init failed", 0);
    curl_easy_cleanup(h);
    return NULL;
}

static int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (nearest rank) of sorted v[n]; 0 when n is 0. */
static double bench_quantile(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(q * (double)n);
    return v[k < n ? k : n - 1];
}

/* Sorts the clients' latencies and fills r. 0 or -1 (out of memory). */
static int bench_summarise(struct bench_client *cl, size_t n, struct bench_result *r)
{
    size_t total = 0;
    r->nroutes = cl[0].nroutes;
    r->names = cl[0].names;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < r->nroutes; k++)
            total += cl[i].lat[k].n;
    double *all = malloc((total ? total : 1) * sizeof *all);
    double *route = malloc((total ? total : 1) * sizeof *route);
    if (!all || !route) {
        free(all);
        free(route);
        return -1;
    }
    size_t m = 0;
    for (int k = 0; k < r->nroutes; k++) {
        size_t mk = 0, bytes = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(route + mk, cl[i].lat[k].ms, cl[i].lat[k].n * sizeof *route);
            mk += cl[i].lat[k].n;
            bytes += cl[i].lat[k].bytes;
        }
        memcpy(all + m, route, mk * sizeof *all);
        m += mk;
        qsort(route, mk, sizeof *route, bench_cmp);
        r->r_n[k] = mk;
        r->r_p50[k] = bench_quantile(route, mk, 0.50);
        r->r_p99[k] = bench_quantile(route, mk, 0.99);
        r->r_bytes[k] = mk ? (double)bytes / (double)mk : 0;
    }
    qsort(all, m, sizeof *all, bench_cmp);
    r->requests = m;
    r->mean = 0;
    for (size_t i = 0; i < m; i++)
        r->mean += all[i] / (double)m;
    r->p50 = bench_quantile(all, m, 0.50);
    r->p99 = bench_quantile(all, m, 0.99);
    r->max = m ? all[m - 1] : 0;
    r->errors = 0;
    r->first_error[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (cl[i].errors && !r->first_error[0])
            snprintf(r->first_error, sizeof r->first_error, "%s", cl[i].first_error);
        r->errors += cl[i].errors;
    }
    free(all);
    free(route);
    return 0;
}

/* What the clients ask: set(c, arg) fills a client's routes (c->port and
 * c->index are set). */
typedef void (*bench_setup_fn)(struct bench_client *c, const void *arg);

/* The first mix: jobs[2] (half the clients each), its record and a metric
 * page of ?limit (0: none), in turn. */
struct bench_two {
    const int64_t *jobs;
    long limit;
};

static void bench_setup_two(struct bench_client *c, const void *arg)
{
    const struct bench_two *a = arg;
    int64_t job = a->jobs[c->index % 2];
    c->nroutes = ROUTE_N;
    c->names = bench_route_names;
    snprintf(c->url[ROUTE_JOB], sizeof c->url[0], "http://127.0.0.1:%u/v1/jobs/%" PRId64, c->port,
             job);
    snprintf(c->url[ROUTE_METRICS], sizeof c->url[0],
             "http://127.0.0.1:%u/v1/jobs/%" PRId64 "/metrics", c->port, job);
    if (a->limit > 0)
        snprintf(c->url[ROUTE_METRICS] + strlen(c->url[ROUTE_METRICS]),
                 sizeof c->url[0] - strlen(c->url[ROUTE_METRICS]), "?limit=%ld", a->limit);
}

/* BENCH_CLIENTS clients for `seconds`, each set up by set(c, arg). 0 or -1. */
static int bench_load(unsigned port, bench_setup_fn set, const void *arg, double seconds,
                      struct bench_result *r)
{
    struct bench_client cl[BENCH_CLIENTS];
    struct bench_start start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    size_t started = 0;
    memset(cl, 0, sizeof cl);
    for (; started < BENCH_CLIENTS; started++) {
        struct bench_client *c = &cl[started];
        c->port = port;
        c->index = started;
        set(c, arg);
        c->start = &start;
        if (pthread_create(&c->th, NULL, bench_client_main, c) != 0)
            break;
    }
    double t0 = qd_now();
    pthread_mutex_lock(&start.mu);
    start.go = 1;
    start.t_end = started == BENCH_CLIENTS ? t0 + seconds : 0; /* else stop at once */
    pthread_cond_broadcast(&start.cv);
    pthread_mutex_unlock(&start.mu);
    for (size_t i = 0; i < started; i++)
        pthread_join(cl[i].th, NULL);
    r->seconds = qd_now() - t0;
    int rc = -1;
    if (started < BENCH_CLIENTS)
        fprintf(stderr, "bench_http: cannot start %d client threads\n", BENCH_CLIENTS);
    else
        rc = bench_summarise(cl, started, r);
    for (size_t i = 0; i < started; i++)
        for (int k = 0; k < ROUTE_MAX; k++)
            free(cl[i].lat[k].ms);
    return rc;
}

static void bench_print(const char *title, const struct bench_result *r)
{
    printf("  %s: %.0f req/s (%zu in %.1f s), mean %.2f ms, p50 %.2f ms, p99 %.2f ms,\n"
           "    max %.1f ms, errors %zu\n",
           title, (double)r->requests / r->seconds, r->requests, r->seconds, r->mean, r->p50,
           r->p99, r->max, r->errors);
    for (int k = 0; k < r->nroutes; k++)
        printf("    %-38s %8zu requests, p50 %6.2f ms, p99 %6.2f ms, %7.0f bytes/reply\n",
               r->names[k], r->r_n[k], r->r_p50[k], r->r_p99[k], r->r_bytes[k]);
    if (r->errors)
        printf("    first error: %s\n", r->first_error);
}

/* ---- the realistic mix ------------------------------------------------------------ */

/* The mix: a job list, a running job's record and the tail of its metrics
 * (since where it was when the load started), a finished job's full page. */
struct bench_mix {
    const int64_t *running; /* [2] */
    int64_t since[2];
    const int64_t *finished;
    size_t nfinished;
};

static void bench_setup_mix(struct bench_client *c, const void *arg)
{
    const struct bench_mix *a = arg;
    size_t k = c->index % 2;
    c->nroutes = MIX_N;
    c->names = bench_mix_names;
    c->finished = a->finished;
    c->nfinished = a->nfinished;
    snprintf(c->url[MIX_LIST], sizeof c->url[0], "http://127.0.0.1:%u/v1/jobs", c->port);
    snprintf(c->url[MIX_JOB], sizeof c->url[0], "http://127.0.0.1:%u/v1/jobs/%" PRId64, c->port,
             a->running[k]);
    snprintf(c->url[MIX_TAIL], sizeof c->url[0],
             "http://127.0.0.1:%u/v1/jobs/%" PRId64 "/metrics?since=%" PRId64, c->port,
             a->running[k], a->since[k]);
}

/* The id of the job's last metric row (0 when none), page by page. */
static int64_t bench_last_metric(unsigned port, int64_t id)
{
    int64_t since = 0;
    for (int more = 1; more;) {
        char path[96];
        json_t *r = NULL;
        snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/metrics?since=%" PRId64, id, since);
        if (bench_call(port, "GET", path, NULL, &r) != 200) {
            json_decref(r);
            break;
        }
        since = json_integer_value(json_object_get(r, "next"));
        more = json_is_true(json_object_get(r, "more"));
        json_decref(r);
    }
    return since;
}

/* Submits n small jobs and waits (180 s at most) until they all succeeded. 0 or -1. */
static int bench_make_finished(unsigned port, int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bench_submit(port, JOB_SMALL, &ids[i]) != 0)
            return -1;
    double t0 = qd_now();
    for (size_t i = 0; i < n; i++) {
        char st[32];
        for (bench_state(port, ids[i], st, sizeof st); strcmp(st, "succeeded") != 0;
             bench_state(port, ids[i], st, sizeof st)) {
            if ((strcmp(st, "queued") && strcmp(st, "running")) || qd_now() - t0 > 180) {
                fprintf(stderr, "bench_http: small job %" PRId64 " is '%s'\n", ids[i], st);
                return -1;
            }
            qd_nap_ms(50);
        }
    }
    return 0;
}

/* CPU seconds the daemon's threads have used: its HTTP threads (libmicrohttpd's,
 * named "MHD-...") into *http, all the others (the job workers above all) into
 * *other. Both 0 when /proc cannot be read. */
static void bench_daemon_cpu(pid_t pid, double *http, double *other)
{
    char path[64];
    long hz = sysconf(_SC_CLK_TCK);
    *http = *other = 0;
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *dir = opendir(path);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char stat[512], file[320];
        if (e->d_name[0] == '.')
            continue;
        snprintf(file, sizeof file, "%s/%s/stat", path, e->d_name);
        FILE *f = fopen(file, "r");
        size_t n = f ? fread(stat, 1, sizeof stat - 1, f) : 0;
        if (f)
            fclose(f);
        stat[n] = '\0';
        /* "tid (comm) state ..." : utime and stime are the 14th and 15th fields. */
        const char *close = strrchr(stat, ')');
        unsigned long ut = 0, st = 0;
        if (!close || sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                             &ut, &st) != 2)
            continue;
        double sec = (double)(ut + st) / (double)hz;
        if (strncmp(strchr(stat, '(') + 1, "MHD", 3) == 0)
            *http += sec;
        else
            *other += sec;
    }
    if (dir)
        closedir(dir);
}

/* The 1-minute load average (from /proc/loadavg), -1 when unknown. */
static double bench_loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1)
        l = -1;
    if (f)
        fclose(f);
    return l;
}

/* A wrk duration ("1.23ms", "456.78us", "1.02s") in ms; NaN when unreadable. */
static double bench_wrk_ms(const char *t)
{
    char *end;
    double v = strtod(t, &end);
    if (end == t)
        return NAN;
    return !strncmp(end, "us", 2) ? v / 1e3 : !strncmp(end, "ms", 2) ? v : *end == 's' ? v * 1e3
                                                                                      : NAN;
}

/*
 * The mix driven by wrk (Debian's package), the tool issue 16 measured with:
 * 2 threads and BENCH_CLIENTS connections, each asking in turn the job list,
 * a running job's record, its metrics since the load began and a finished
 * job's full page (a Lua script, written to a temporary file). Fills
 * r->requests, seconds, p50, p99, max, errors (non-2xx replies and socket
 * errors); the per-route figures stay empty. 0, or -1 when wrk is missing
 * or its output cannot be read.
 */
static int bench_load_wrk(unsigned port, const struct bench_mix *a, double seconds,
                          struct bench_result *r)
{
    char script[] = "/tmp/qn-bench-wrk-XXXXXX";
    int fd = mkstemp(script);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return -1;
    fprintf(f, "local p = {\n");
    for (size_t i = 0; i < 2 * a->nfinished; i++) {
        size_t k = i % 2;
        fprintf(f, "\"/v1/jobs\", \"/v1/jobs/%" PRId64 "\", \"/v1/jobs/%" PRId64
                   "/metrics?since=%" PRId64 "\", \"/v1/jobs/%" PRId64 "/metrics\",\n",
                a->running[k], a->running[k], a->since[k], a->finished[i % a->nfinished]);
    }
    fprintf(f, "}\nlocal i = 0\nsetup = function(t) end\n"
               "init = function(args) i = math.random(#p) - 1 end\n"
               "request = function() i = i %% #p + 1\n  return wrk.format(\"GET\", p[i]) end\n");
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "wrk -t2 -c%d -d%.0fs --latency -s %s http://127.0.0.1:%u 2>&1",
             BENCH_CLIENTS, seconds, script, port);
    memset(r, 0, sizeof *r);
    r->p50 = r->p99 = NAN;
    FILE *p = popen(cmd, "r");
    char line[256];
    double rate = 0;
    while (p && fgets(line, sizeof line, p)) {
        char t[32];
        size_t n;
        double sec;
        if (sscanf(line, " 50%% %31s", t) == 1)
            r->p50 = bench_wrk_ms(t);
        else if (sscanf(line, " 99%% %31s", t) == 1)
            r->p99 = bench_wrk_ms(t);
        else if (sscanf(line, " Latency %*s %*s %31s", t) == 1)
            r->max = bench_wrk_ms(t);
        else if (sscanf(line, " %zu requests in %lfs", &n, &sec) == 2)
            r->requests = n, r->seconds = sec;
        else if (sscanf(line, " Non-2xx or 3xx responses: %zu", &n) == 1)
            r->errors += n;
        else if (sscanf(line, "Requests/sec: %lf", &rate) == 1)
            ;
        else if (!strncmp(line, "  Socket errors:", 16)) {
            size_t e[4];
            if (sscanf(line, "  Socket errors: connect %zu, read %zu, write %zu, timeout %zu",
                       &e[0], &e[1], &e[2], &e[3]) == 4)
                r->errors += e[0] + e[1] + e[2] + e[3];
        }
    }
    int st = p ? pclose(p) : -1;
    unlink(script);
    if (st != 0 || !r->requests || isnan(r->p99)) {
        fprintf(stderr, "bench_http: wrk failed or printed no figures (is it installed?)\n");
        return -1;
    }
    r->mean = r->seconds * 1e3 * BENCH_CLIENTS / (double)r->requests; /* Little's law */
    snprintf(r->first_error, sizeof r->first_error, "non-2xx replies or socket errors (wrk)");
    return 0;
}

/* Asks each finished job's full metric page once, as a dashboard that was
 * open before the trains started did (the daemon keeps them for good): the
 * mix then measures the steady state. Each costs 5-7 ms of CPU to make the
 * first time, which the CPU budget spreads over the first second or so of a
 * cold start (QN_BENCH_COLD=1 measures that instead). */
static void bench_warm(unsigned port, const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/jobs/%" PRId64 "/metrics", ids[i]);
        bench_call(port, "GET", path, NULL, NULL);
    }
}

/* Whether the mix is driven by wrk: when it is installed (make bench installs
 * it), unless QN_BENCH_CURL=1 asks for the curl clients. */
static int bench_use_wrk(void)
{
    const char *curl = getenv("QN_BENCH_CURL");
    return !(curl && *curl && strcmp(curl, "0")) && system("command -v wrk >/dev/null 2>&1") == 0;
}

/* The realistic mix on a started daemon: BENCH_FINISHED finished jobs, two
 * trains, BENCH_CLIENTS clients asking the mix for `seconds`; the trains'
 * speed under the load against the BENCH_QUIET_MS before it. 0 or -1. */
static int bench_run_mix(struct qd *d, double seconds)
{
    int fashion = access(FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0;
    int64_t finished[BENCH_FINISHED], jobs[2];
    if (bench_make_finished(d->port, finished, BENCH_FINISHED) != 0)
        return -1;
    const char *cold = getenv("QN_BENCH_COLD");
    if (!(cold && *cold && strcmp(cold, "0")))
        bench_warm(d->port, finished, BENCH_FINISHED);
    for (int i = 0; i < 2; i++)
        if (bench_submit(d->port, fashion ? JOB_FASHION : JOB_SPIRALS, &jobs[i]) != 0)
            return -1;
    if (bench_wait_training(d->port, jobs, 1) != 0)
        return -1;
    char cpu[128];
    qb_cpu_name(cpu, sizeof cpu);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("bench_http mix: qn serve (2 workers) on %ld x %s; %d finished jobs of over 1000\n"
           "  metric rows, jobs %" PRId64 " and %" PRId64 " training %s; %d clients for %.0f s, each\n"
           "  asking in turn the job list, a running job, its metrics since the load began and\n"
           "  a finished job's full metric page\n",
           ncpu, cpu, BENCH_FINISHED, jobs[0], jobs[1],
           fashion ? "Fashion-MNIST (784-128-10)" : "spirals (2-64-64-2)", BENCH_CLIENTS, seconds);
    fflush(stdout);
    double hq, o0, o1, h2, o2, h3, o3; /* CPU seconds: HTTP threads (hq unused), others */
    bench_daemon_cpu(d->pid, &hq, &o0);
    double s0 = bench_steps(d->port, jobs), t0 = qd_now();
    qd_nap_ms(BENCH_QUIET_MS);
    double s1 = bench_steps(d->port, jobs), t1 = qd_now();
    bench_daemon_cpu(d->pid, &hq, &o1);
    struct bench_mix mix = {jobs, {0, 0}, finished, BENCH_FINISHED};
    for (int i = 0; i < 2; i++)
        mix.since[i] = bench_last_metric(d->port, jobs[i]);
    double s2 = bench_steps(d->port, jobs), t2 = qd_now();
    bench_daemon_cpu(d->pid, &h2, &o2);
    struct bench_result busy;
    int wrk = bench_use_wrk();
    if ((wrk ? bench_load_wrk(d->port, &mix, seconds, &busy)
             : bench_load(d->port, bench_setup_mix, &mix, seconds, &busy)) != 0)
        return -1;
    double s3 = bench_steps(d->port, jobs), t3 = qd_now();
    bench_daemon_cpu(d->pid, &h3, &o3);
    char st[2][32];
    bench_state(d->port, jobs[0], st[0], sizeof st[0]);
    bench_state(d->port, jobs[1], st[1], sizeof st[1]);
    int trained = !strcmp(st[0], "running") && !strcmp(st[1], "running");
    bench_cancel(d->port, jobs);
    bench_print("the mix under training load", &busy);
    double quiet = (s1 - s0) / (t1 - t0), loaded = (s3 - s2) / (t3 - t2);
    double rate = (double)busy.requests / busy.seconds;
    double slow = loaded > 0 ? quiet / loaded : 1e9;
    printf("    training: %.0f steps/s (both jobs) under the mix, %.0f steps/s in the %.0f s "
           "before it: slowed x%.2f\n", loaded, quiet, BENCH_QUIET_MS / 1e3, slow);
    printf("    daemon CPU: %.3f ms in its HTTP threads per request (%.0f%% of a CPU); its other\n"
           "    threads (the trains) %.0f%% of a CPU under the mix, %.0f%% before it; load average %.2f\n",
           busy.requests ? (h3 - h2) * 1e3 / (double)busy.requests : 0,
           100 * (h3 - h2) / (t3 - t2), 100 * (o3 - o2) / (t3 - t2), 100 * (o1 - o0) / (t1 - t0),
           bench_loadavg());
    if (!trained)
        printf("    (the jobs were '%s' and '%s' at the end, not both running)\n", st[0], st[1]);
    int met = trained && busy.p99 < BENCH_MIX_P99_MS && rate >= BENCH_MIX_RATE &&
              slow < BENCH_MIX_SLOWDOWN && busy.errors == 0;
    printf("  target (p99 < %.0f ms, >= %.0f req/s, training slowed < x%.0f, no errors): %s\n",
           BENCH_MIX_P99_MS, BENCH_MIX_RATE, BENCH_MIX_SLOWDOWN, met ? "met" : "NOT MET");
    /* The reference: the same mix with the trains canceled (their pages are
     * then finished ones, kept for good: a little less work than live ones). */
    struct bench_result idle;
    bench_daemon_cpu(d->pid, &h2, &o2);
    if ((wrk ? bench_load_wrk(d->port, &mix, seconds, &idle)
             : bench_load(d->port, bench_setup_mix, &mix, seconds, &idle)) != 0)
        return -1;
    bench_daemon_cpu(d->pid, &h3, &o3);
    bench_print("reference, the same mix with the workers idle", &idle);
    printf("    daemon CPU: %.3f ms in its HTTP threads per request; load average %.2f\n",
           idle.requests ? (h3 - h2) * 1e3 / (double)idle.requests : 0, bench_loadavg());
    printf("  training load / idle: req/s x%.2f, p50 x%.2f, p99 x%.2f\n",
           rate / ((double)idle.requests / idle.seconds), busy.p50 / idle.p50, busy.p99 / idle.p99);
    return 0;
}

/* ---- main -------------------------------------------------------------------------- */

/* QN_BENCH_METRICS_LIMIT (0..1000), or the default. */
static long bench_metrics_limit(void)
{
    const char *v = getenv("QN_BENCH_METRICS_LIMIT");
    long n = v ? strtol(v, NULL, 10) : BENCH_METRICS_LIMIT;
    return n >= 0 && n <= 1000 ? n : BENCH_METRICS_LIMIT;
}

/* QN_BENCH_SECONDS, or the default. */
static double bench_seconds(void)
{
    const char *v = getenv("QN_BENCH_SECONDS");
    double s = v ? strtod(v, NULL) : BENCH_SECONDS;
    return s > 0 && s <= 3600 ? s : BENCH_SECONDS;
}

/* Both runs on a started daemon; 0 or -1 when the set-up failed. */
static int bench_run(struct qd *d, double seconds)
{
    int fashion = access(FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0;
    int64_t jobs[2];
    for (int i = 0; i < 2; i++)
        if (bench_submit(d->port, fashion ? JOB_FASHION : JOB_SPIRALS, &jobs[i]) != 0)
            return -1;
    long limit = bench_metrics_limit();
    if (bench_wait_training(d->port, jobs, limit) != 0)
        return -1;
    char q[32] = "";
    if (limit > 0)
        snprintf(q, sizeof q, "?limit=%ld", limit);
    printf("bench_http: qn serve (2 workers), jobs %" PRId64 " and %" PRId64 " training %s,\n"
           "  %d clients with keep-alive connections for %.0f s, alternating GET /v1/jobs/{id}\n"
           "  and GET /v1/jobs/{id}/metrics%s\n",
           jobs[0], jobs[1],
           fashion ? "Fashion-MNIST (10000 images, 784-128-10)"
                   : "spirals (20000 points, 2-64-64-2; Fashion-MNIST is not installed)",
           BENCH_CLIENTS, seconds, q);
    fflush(stdout);
    struct bench_result busy, idle;
    double s0 = bench_steps(d->port, jobs), t0 = qd_now();
    qd_nap_ms(BENCH_QUIET_MS);
    double s1 = bench_steps(d->port, jobs), t1 = qd_now();
    struct bench_two two = {jobs, limit};
    if (bench_load(d->port, bench_setup_two, &two, seconds, &busy) != 0)
        return -1;
    double s2 = bench_steps(d->port, jobs), t2 = qd_now();
    char st[2][32];
    bench_state(d->port, jobs[0], st[0], sizeof st[0]);
    bench_state(d->port, jobs[1], st[1], sizeof st[1]);
    int trained = !strcmp(st[0], "running") && !strcmp(st[1], "running");
    if (bench_cancel(d->port, jobs) != 0 ||
        bench_load(d->port, bench_setup_two, &two, seconds, &idle) != 0)
        return -1;
    bench_print("under training load", &busy);
    printf("    training: %.0f steps/s (both jobs) under this load, %.0f steps/s in the %.0f s "
           "before it\n", (s2 - s1) / (t2 - t1), (s1 - s0) / (t1 - t0), BENCH_QUIET_MS / 1e3);
    if (!trained)
        printf("    (the jobs were '%s' and '%s' at the end, not both running)\n", st[0],
               st[1]);
    int met = trained && busy.p99 < BENCH_TARGET_MS && busy.errors == 0;
    printf("  target (p99 < %.0f ms, no errors, both workers busy): %s\n", BENCH_TARGET_MS,
           met ? "met" : "NOT MET");
    bench_print("reference, workers idle", &idle);
    printf("  training load / idle: req/s x%.2f, p50 x%.2f, p99 x%.2f\n",
           ((double)busy.requests / busy.seconds) / ((double)idle.requests / idle.seconds),
           busy.p50 / idle.p50, busy.p99 / idle.p99);
    return 0;
}

/* The daemon's extra arguments: --http-threads QN_BENCH_HTTP_THREADS,
 * --http-nice QN_BENCH_HTTP_NICE and --http-cpu QN_BENCH_HTTP_CPU when set
 * (to compare), else none. */
static const char *const *bench_serve_args(void)
{
    static const char *args[7];
    static const char *const opt[3][2] = {{"QN_BENCH_HTTP_THREADS", "--http-threads"},
                                          {"QN_BENCH_HTTP_NICE", "--http-nice"},
                                          {"QN_BENCH_HTTP_CPU", "--http-cpu"}};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(opt[i][0]);
        if (v && *v) {
            args[n++] = opt[i][1];
            args[n++] = v;
        }
    }
    args[n] = NULL;
    return args;
}

int main(void)
{
    struct qd d;
    int rc = 1;
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    if (qd_init(&d, 2) != 0)
        goto fail_tmp;
    if (qd_spawn(&d, bench_serve_args(), 20) != 0) {
        char *log = qt_read_file(d.log, NULL);
        fprintf(stderr, "bench_http: qn serve did not start (%s); log:\n%s\n", QN_BIN,
                log ? log : "");
        free(log);
        goto fail_daemon;
    }
    const char *mix_only = getenv("QN_BENCH_MIX_ONLY");
    rc = mix_only && *mix_only == '1' ? 0 : bench_run(&d, bench_seconds()) == 0 ? 0 : 1;
    qd_stop(&d, SIGTERM);
    if (rc == 0) { /* the realistic mix on a fresh daemon */
        qd_kill(&d);
        qt_rmtree(d.dir);
        if (qd_init(&d, 2) != 0)
            goto fail_tmp;
        if (qd_spawn(&d, bench_serve_args(), 20) != 0) {
            fprintf(stderr, "bench_http: qn serve did not start for the mix\n");
            rc = 1;
            goto fail_daemon;
        }
        rc = bench_run_mix(&d, bench_seconds()) == 0 ? 0 : 1;
        qd_stop(&d, SIGTERM);
    }
fail_daemon:
    qt_rmtree(d.dir);
fail_tmp:
    curl_global_cleanup();
    return rc;
}
