/*
 * demo.c: `qn demo`, the first ten minutes of a new user.
 *
 * Starts `qn serve` on 127.0.0.1 (port 8080, or the next free one) with a
 * fresh database, then submits the seed's whole plan over HTTP as jobs that
 * reference each other: four devices, sweeps and surrogate fits of the two
 * ODE devices, a Fashion-MNIST network for every hidden device kind, and the
 * crn network scored via its surrogate and via the real ODE. While the jobs
 * run it shows one progress line per job; then a table of device, via, test
 * accuracy and training time, and the page's address. The daemon keeps
 * serving until Ctrl-C; SIGTERM or SIGHUP to the demo stops it too (the
 * demo passes the signal on, then waits for the daemon to end). The
 * daemon's pid is the one mutable global: a signal handler has to reach it.
 *
 * Trade-off: the demo talks to the daemon through a minimal HTTP/1.1 client
 * (one request per connection, Content-Length or chunked replies) rather
 * than a library, so the product needs no HTTP client dependency; it is a
 * client of the public REST API and nothing else, exactly like curl.
 */
#include "demo.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dblock.h"
#include "qn_err.h"

/* The daemon the demo started (0: none), for the signal handler. */
static volatile sig_atomic_t demo__daemon;

/* SIGTERM, SIGHUP, SIGINT: stop the daemon (async-signal-safe: kill only). */
static void demo__on_signal(int sig)
{
    (void)sig;
    if (demo__daemon > 0)
        kill((pid_t)demo__daemon, SIGTERM);
}

/* Passes SIGTERM, SIGHUP and SIGINT on to daemon pid, so that it never
 * outlives the demo. */
static void demo__forward_signals(pid_t pid)
{
    demo__daemon = (sig_atomic_t)pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = demo__on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

#define DEMO_MAX_JOBS 16
#define DEMO_REPLY_MAX (16u << 20) /* replies above 16 MiB are refused */

/* ---- a minimal HTTP client ---------------------------------------------------------------- */

/* A reply: status and body (owned, NUL-terminated). */
struct demo_reply {
    int status;
    char *body;
};

/* Connects to 127.0.0.1:port; the socket or -1. */
static int demo__connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes all of buf. */
static int demo__write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return QN_EIO;
        buf += w, n -= (size_t)w;
    }
    return QN_OK;
}

/* Reads until EOF into a new buffer *out of *len bytes. */
static int demo__read_all(int fd, char **out, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        if (n == cap) {
            char *nb = cap < DEMO_REPLY_MAX ? realloc(b, 2 * cap + 1) : NULL;
            if (!nb)
                break;
            b = nb, cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (r == 0) {
            b[n] = '\0';
            *out = b, *len = n;
            return QN_OK;
        }
        n += (size_t)r;
    }
    free(b);
    return QN_EIO;
}

/* Decodes a chunked body in place; its new length. */
static size_t demo__unchunk(char *body)
{
    char *src = body, *dst = body;
    for (;;) {
        char *end = NULL;
        unsigned long sz = strtoul(src, &end, 16);
        char *data = strstr(end, "\r\n");
        if (sz == 0 || !data)
            break;
        data += 2;
        memmove(dst, data, sz);
        dst += sz;
        src = data + sz + 2;
    }
    *dst = '\0';
    return (size_t)(dst - body);
}

/* One request; body may be NULL. Fills *r (free r->body). */
static int demo__request(unsigned port, const char *token, const char *method, const char *path,
                         const char *body, struct demo_reply *r)
{
    memset(r, 0, sizeof *r);
    int fd = demo__connect(port);
    if (fd < 0)
        return QN_EIO;
    size_t blen = body ? strlen(body) : 0;
    char head[1024];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n%s%s%s\r\n",
                      method, path, blen, token ? "Authorization: Bearer " : "",
                      token ? token : "", token ? "\r\n" : "");
    char *raw = NULL;
    size_t n = 0;
    int rc = hn > 0 && (size_t)hn < sizeof head ? demo__write_all(fd, head, (size_t)hn) : QN_EINVAL;
    if (rc == QN_OK && blen)
        rc = demo__write_all(fd, body, blen);
    if (rc == QN_OK)
        rc = demo__read_all(fd, &raw, &n);
    close(fd);
    if (rc)
        return rc;
    char *sep = strstr(raw, "\r\n\r\n");
    if (!sep || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1) {
        free(raw);
        return QN_EFORMAT;
    }
    *sep = '\0';
    int chunked = strstr(raw, "chunked") != NULL;
    memmove(raw, sep + 4, n - (size_t)(sep + 4 - raw) + 1);
    if (chunked)
        demo__unchunk(raw);
    r->body = raw;
    return QN_OK;
}

/* A request whose reply must be 2xx JSON; the parsed body (new reference) or NULL with a message. */
static json_t *demo__call(unsigned port, const char *token, const char *method, const char *path,
                          const char *body)
{
    struct demo_reply r;
    if (demo__request(port, token, method, path, body, &r)) {
        fprintf(stderr, "qn demo: %s %s: no answer from the daemon\n", method, path);
        return NULL;
    }
    json_t *j = json_loads(r.body, 0, NULL);
    if (r.status / 100 != 2 || !j) {
        fprintf(stderr, "qn demo: %s %s: HTTP %d %s\n", method, path, r.status, r.body);
        json_decref(j);
        j = NULL;
    }
    free(r.body);
    return j;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

/* The first port from `from` that 127.0.0.1 can bind; 0 if none in 100 tries. */
static unsigned demo__free_port(unsigned from)
{
    for (unsigned p = from; p < from + 100; p++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return 0;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return p;
    }
    return 0;
}

/* Starts `qn serve` (this same program) on port with db, its output going to
 * the file log; its pid, or -1. */
static pid_t demo__start_daemon(const char *self, const char *db, const char *log, unsigned port)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execl(self, self, "serve", "--db", db, "--bind", "127.0.0.1", "--port", portbuf,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits up to 10 s for /healthz to answer 200. */
static int demo__wait_healthy(unsigned port, pid_t pid)
{
    for (int i = 0; i < 200; i++) {
        struct demo_reply r;
        if (demo__request(port, NULL, "GET", "/healthz", NULL, &r) == QN_OK) {
            free(r.body);
            if (r.status == 200)
                return QN_OK;
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return QN_EIO;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return QN_EIO;
}

/* ---- the plan ------------------------------------------------------------------------------ */

/* One submitted job and how the table shows it. */
struct demo_job {
    int64_t id;
    const char *label;  /* progress line label */
    const char *device; /* table: device column, NULL = not in the table */
    const char *via;    /* table: via column */
    int is_eval;        /* table: accuracy from result.accuracy, time from its train job */
    int train_of;       /* index of the train job whose time an evaluation shows */
};

struct demo_plan {
    size_t n;
    struct demo_job job[DEMO_MAX_JOBS];
};

static const char *const demo__devices[] = {
    "{\"name\": \"relu\", \"kind\": \"neuron\", \"params\": {\"activation\": \"relu\"}}",
    "{\"name\": \"near\", \"kind\": \"almost_neuron\", \"drive\": \"dot_sq\", "
    "\"params\": {\"eps\": 0.1, \"activation\": \"relu\"}}",
    "{\"name\": \"crn\", \"kind\": \"crn_relu\", \"params\": {\"kappa\": 0.01}}",
    "{\"name\": \"hh\", \"kind\": \"hodgkin_huxley\", \"params\": {\"gain\": 1.0}, "
    "\"readout\": {\"kind\": \"spike_rate\", \"t_max\": 500}}",
};

/* Submits a job spec text; adds it to the plan. */
static int demo__submit(unsigned port, const char *token, struct demo_plan *p, const char *text,
                        struct demo_job j)
{
    json_t *r = demo__call(port, token, "POST", "/v1/jobs", text);
    if (!r)
        return QN_EIO;
    j.id = (int64_t)json_integer_value(json_object_get(r, "id"));
    json_decref(r);
    p->job[p->n++] = j;
    return QN_OK;
}

/* A train job text: 784-hidden-10 on Fashion-MNIST with the given hidden layer. */
static void demo__train_text(char *buf, size_t cap, const char *name, const char *layer,
                             unsigned epochs)
{
    snprintf(buf, cap,
             "{\"type\": \"train\", \"name\": \"%s\", \"spec\": {\"dataset\": \"fashion-mnist\", "
             "\"network\": [%s, {\"devices\": 10, \"device\": {\"kind\": \"neuron\", "
             "\"params\": {\"activation\": \"identity\"}}, \"via\": \"exact\"}], "
             "\"loss\": \"cross_entropy\", \"optimizer\": {\"name\": \"adam\", \"lr\": 0.001}, "
             "\"epochs\": %u, \"batch\": 128, \"seed\": 1, \"checkpoint_every\": 1}}",
             name, layer, epochs);
}

/* Submits the whole plan; the jobs reference each other by {"job": N}. */
static int demo__submit_plan(unsigned port, const char *token, unsigned epochs, struct demo_plan *p)
{
    for (size_t i = 0; i < sizeof demo__devices / sizeof demo__devices[0]; i++) {
        json_t *r = demo__call(port, token, "POST", "/v1/devices", demo__devices[i]);
        if (!r)
            return QN_EIO;
        json_decref(r);
    }
    char t[2048], layer[512];
    int rc = demo__submit(port, token, p,
                          "{\"type\": \"sweep\", \"name\": \"crn sweep\", \"spec\": {\"device\": "
                          "\"crn\", \"design\": \"sobol\", \"samples\": 4000, \"seed\": 1, "
                          "\"ranges\": {\"u1\": [-8, 8]}}}",
                          (struct demo_job){0, "sweep crn_relu", NULL, NULL, 0, 0});
    rc = rc ? rc : demo__submit(port, token, p,
                                "{\"type\": \"sweep\", \"name\": \"hh sweep\", \"spec\": {\"device\": "
                                "\"hh\", \"design\": \"sobol\", \"samples\": 2000, \"seed\": 1, "
                                "\"ranges\": {\"u1\": [-20, 40]}}}",
                                (struct demo_job){0, "sweep hodgkin_huxley", NULL, NULL, 0, 0});
    for (int k = 0; rc == QN_OK && k < 2; k++) {
        snprintf(t, sizeof t, "{\"type\": \"fit\", \"name\": \"%s surrogate\", \"spec\": "
                 "{\"dataset\": {\"job\": %lld}, \"seed\": 1}}", k ? "hh" : "crn",
                 (long long)p->job[k].id);
        rc = demo__submit(port, token, p, t,
                          (struct demo_job){0, k ? "fit hodgkin_huxley" : "fit crn_relu", NULL,
                                            NULL, 0, 0});
    }
    struct {
        const char *name, *dev, *via, *label, *table_dev;
        int fit; /* plan index of the surrogate's fit job, -1 = none */
    } nets[] = {{"fashion relu", "relu", "exact", "train relu neurons", "neuron (relu)", -1},
                {"fashion near", "near", "exact", "train almost_neuron", "almost_neuron", -1},
                {"fashion crn", "crn", "surrogate", "train crn_relu", "crn_relu", 2},
                {"fashion hh", "hh", "surrogate", "train hodgkin_huxley", "hodgkin_huxley", 3}};
    for (size_t k = 0; rc == QN_OK && k < 4; k++) {
        if (nets[k].fit >= 0)
            snprintf(layer, sizeof layer, "{\"devices\": 128, \"device\": \"%s\", \"via\": "
                     "\"%s\", \"surrogate\": {\"job\": %lld}}", nets[k].dev, nets[k].via,
                     (long long)p->job[nets[k].fit].id);
        else
            snprintf(layer, sizeof layer, "{\"devices\": 128, \"device\": \"%s\", \"via\": "
                     "\"%s\"}", nets[k].dev, nets[k].via);
        demo__train_text(t, sizeof t, nets[k].name, layer, epochs);
        rc = demo__submit(port, token, p, t,
                          (struct demo_job){0, nets[k].label, nets[k].table_dev, nets[k].via, 0,
                                            0});
    }
    const char *vias[] = {"surrogate", "device"};
    for (int k = 0; rc == QN_OK && k < 2; k++) {
        snprintf(t, sizeof t, "{\"type\": \"evaluate\", \"name\": \"crn via %s\", \"spec\": "
                 "{\"model\": {\"job\": %lld}, \"dataset\": \"fashion-mnist\", \"split\": "
                 "\"test\", \"via\": {\"0\": \"%s\"}}}", vias[k], (long long)p->job[6].id,
                 vias[k]);
        rc = demo__submit(port, token, p, t,
                          (struct demo_job){0, k ? "evaluate crn via device" :
                                                   "evaluate crn via surrogate",
                                            "crn_relu (scored)", vias[k], 1, 6});
    }
    return rc;
}

/* ---- watching ------------------------------------------------------------------------------ */

/* The latest records of every job of the plan (new references) into rec. */
static int demo__poll(unsigned port, const char *token, const struct demo_plan *p, json_t **rec)
{
    char path[64];
    for (size_t i = 0; i < p->n; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%lld", (long long)p->job[i].id);
        json_t *r = demo__call(port, token, "GET", path, NULL);
        if (!r)
            return QN_EIO;
        json_decref(rec[i]);
        rec[i] = r;
    }
    return QN_OK;
}

static int demo__final(const char *state)
{
    return !strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "canceled");
}

/* The job's state and progress as one line. */
static void demo__line(const struct demo_job *j, const json_t *rec, char *buf, size_t cap)
{
    const char *state = json_string_value(json_object_get(rec, "state"));
    json_t *pr = json_object_get(rec, "progress");
    double done = json_number_value(json_object_get(pr, "done"));
    double total = json_number_value(json_object_get(pr, "total"));
    char bar[24] = "";
    if (state && !strcmp(state, "running") && total > 0) {
        int fill = (int)(20 * done / total);
        for (int i = 0; i < 20; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[20] = '\0';
    }
    snprintf(buf, cap, "  job %2lld  %-28s %-10s %s", (long long)j->id, j->label,
             state ? state : "?", bar);
}

/* Nonzero when two progress lines show the same state (bars aside). */
static int demo__same_state(const char *a, const char *b)
{
    size_t la = strcspn(a, ".#"), lb = strcspn(b, ".#");
    return la == lb && strncmp(a, b, la) == 0;
}

/* Shows every job's line until all are final; redraws in place on a terminal,
 * else prints a line whenever a job changes state. */
static int demo__watch(unsigned port, const char *token, const struct demo_plan *p, json_t **rec)
{
    int tty = isatty(STDOUT_FILENO);
    char last[DEMO_MAX_JOBS][128] = {{0}}, line[128];
    for (int round = 0;; round++) {
        if (demo__poll(port, token, p, rec))
            return QN_EIO;
        size_t finished = 0;
        if (tty && round > 0)
            printf("\033[%zuA", p->n);
        for (size_t i = 0; i < p->n; i++) {
            demo__line(&p->job[i], rec[i], line, sizeof line);
            finished += (size_t)demo__final(json_string_value(json_object_get(rec[i], "state")));
            if (tty)
                printf("\r\033[K%s\n", line);
            else if (!demo__same_state(line, last[i]))
                printf("%s\n", line);
            snprintf(last[i], sizeof last[i], "%s", line);
        }
        fflush(stdout);
        if (finished == p->n)
            return QN_OK;
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Seconds between a record's started and finished stamps ("...T12:00:01.250Z"). */
static double demo__seconds(const json_t *rec)
{
    const char *a = json_string_value(json_object_get(rec, "started"));
    const char *b = json_string_value(json_object_get(rec, "finished"));
    struct tm ta = {0}, tb = {0};
    double fa = 0, fb = 0;
    if (!a || !b || sscanf(a, "%d-%d-%dT%d:%d:%lfZ", &ta.tm_year, &ta.tm_mon, &ta.tm_mday,
                           &ta.tm_hour, &ta.tm_min, &fa) != 6 ||
        sscanf(b, "%d-%d-%dT%d:%d:%lfZ", &tb.tm_year, &tb.tm_mon, &tb.tm_mday, &tb.tm_hour,
               &tb.tm_min, &fb) != 6)
        return NAN;
    ta.tm_year -= 1900, tb.tm_year -= 1900, ta.tm_mon--, tb.tm_mon--;
    return difftime(timegm(&tb), timegm(&ta)) + fb - fa;
}

/* The table: device, via, test accuracy, training time. */
static int demo__table(const struct demo_plan *p, json_t **rec)
{
    int ok = 1;
    printf("\n  %-20s %-10s %-14s %s\n", "device", "via", "test accuracy", "train time");
    for (size_t i = 0; i < p->n; i++) {
        const struct demo_job *j = &p->job[i];
        const char *state = json_string_value(json_object_get(rec[i], "state"));
        if (strcmp(state ? state : "", "succeeded") != 0) {
            const char *err = json_string_value(json_object_get(rec[i], "error"));
            printf("  job %lld (%s) %s: %s\n", (long long)j->id, j->label, state ? state : "?",
                   err ? err : "");
            ok = 0;
            continue;
        }
        if (!j->device)
            continue;
        json_t *res = json_object_get(rec[i], "result");
        double acc = json_number_value(json_object_get(res, j->is_eval ? "accuracy" :
                                                                         "test_accuracy"));
        double secs = demo__seconds(rec[j->is_eval ? (size_t)j->train_of : i]);
        printf("  %-20s %-10s %6.2f%%        %.1f s\n", j->device, j->via, 100 * acc, secs);
    }
    return ok ? QN_OK : QN_EINVAL;
}

/* ---- entry --------------------------------------------------------------------------------- */

static void demo__usage(void)
{
    fputs("usage: qn demo [--db PATH] [--port N] [--epochs N (default 5)]\n"
          "  starts qn serve on 127.0.0.1 (port N, default 8080, or the next free one) with a\n"
          "  fresh database (default demo.db), runs the whole pipeline over HTTP, prints a\n"
          "  table of results, and keeps the daemon serving until Ctrl-C.\n",
          stderr);
}

int demo_main(int argc, char **argv, const char *self)
{
    const char *db = "demo.db";
    unsigned port0 = 8080, epochs = 5;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--db") && v)
            db = v, i++;
        else if (!strcmp(argv[i], "--port") && v && atoi(v) > 0 && atoi(v) < 65536)
            port0 = (unsigned)atoi(v), i++;
        else if (!strcmp(argv[i], "--epochs") && v && atoi(v) > 0 && atoi(v) <= 100)
            epochs = (unsigned)atoi(v), i++;
        else {
            demo__usage();
            return 2;
        }
    }
    /* An earlier demo may still be serving this database: never delete it under it. */
    char msg[512];
    int lock = -1;
    if (dblock_take(db, DBLOCK_SERVE, &lock, msg, sizeof msg)) {
        fprintf(stderr, "qn demo: %s\n", msg);
        return 1;
    }
    dblock_release(lock); /* the daemon about to start takes it */
    char wal[4200];
    remove(db);
    snprintf(wal, sizeof wal, "%s-wal", db), remove(wal);
    snprintf(wal, sizeof wal, "%s-shm", db), remove(wal);
    unsigned port = demo__free_port(port0);
    if (!port) {
        fprintf(stderr, "qn demo: no free port from %u\n", port0);
        return 1;
    }
    char log[4200];
    snprintf(log, sizeof log, "%s.log", db);
    pid_t pid = demo__start_daemon(self, db, log, port);
    if (pid > 0)
        demo__forward_signals(pid);
    if (pid < 0 || demo__wait_healthy(port, pid)) {
        fprintf(stderr, "qn demo: the daemon did not start (its messages are in %s)\n", log);
        if (pid > 0)
            kill(pid, SIGTERM), waitpid(pid, NULL, 0);
        return 1;
    }
    printf("qn demo: daemon on http://127.0.0.1:%u (database %s, log %s); submitting the plan\n",
           port, db, log);
    struct demo_plan plan = {0};
    json_t *rec[DEMO_MAX_JOBS] = {0};
    int rc = demo__submit_plan(port, NULL, epochs, &plan);
    if (rc == QN_OK)
        rc = demo__watch(port, NULL, &plan, rec);
    if (rc == QN_OK)
        rc = demo__table(&plan, rec);
    for (size_t i = 0; i < plan.n; i++)
        json_decref(rec[i]);
    if (rc == QN_OK)
        printf("\n  The page, with every curve: http://127.0.0.1:%u/\n"
               "  The daemon keeps serving; press Ctrl-C to stop it.\n",
               port);
    else
        printf("qn demo: stopped before the plan finished; waiting for the daemon to end\n");
    fflush(stdout);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return rc ? 1 : 0;
}
