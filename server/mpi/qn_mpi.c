/*
 * qn_mpi.c: `qn-mpi SPOOL/job-ID`, one job across the ranks of
 * MPI_COMM_WORLD (see qn_mpi.h), and the helpers its job types share.
 *
 * Every rank reads job.json itself (the spool is a shared filesystem on a
 * cluster), finds the job's type in the table below and runs it. How it
 * ended is agreed by all ranks; on failure rank 0 writes the reason to
 * error.txt and standard error and every rank exits 1, on success rank 0 has
 * written the result files and every rank exits 0. A rank that loses its
 * parent (mpirun killed) is killed by the kernel (PR_SET_PDEATHSIG), so a
 * canceled job leaves no process behind. OpenBLAS keeps to the calling
 * thread, as in a daemon with several workers: the ranks (and each rank's
 * job threads) are the parallelism.
 */
#include <cblas.h>
#include <mpi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "qn_err.h"
#include "qn_mpi.h"

#define MPI__TAG_PROGRESS 1 /* a rank's units done so far (uint64) */
#define MPI__TAG_DONE 2     /* a rank's last count: its work has ended */
#define MPI__RELAY_MS 100   /* how often the main thread relays progress */

/* The job types of qn-mpi, each defined in its file mpi_<type>.c. */
extern const struct mpi_type mpi_sweep_type, mpi_evaluate_type, mpi_fit_type, mpi_train_type;
static const struct mpi_type *const mpi__types[] = {
    &mpi_sweep_type,
    &mpi_evaluate_type,
    &mpi_fit_type,
    &mpi_train_type,
};

static const struct mpi_type *mpi__find(const char *name)
{
    for (size_t i = 0; i < sizeof mpi__types / sizeof mpi__types[0]; i++)
        if (strcmp(mpi__types[i]->name, name) == 0)
            return mpi__types[i];
    return NULL;
}

int mpi_agree(struct mpi_ctx *m, int rc)
{
    int mine = rc ? m->rank : m->size, first = m->size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (first == m->size)
        return 0;
    MPI_Bcast(&rc, 1, MPI_INT, first, MPI_COMM_WORLD);
    MPI_Bcast(m->reason, sizeof m->reason, MPI_CHAR, first, MPI_COMM_WORLD);
    m->reason[sizeof m->reason - 1] = '\0';
    return rc;
}

void mpi_slice(const struct mpi_ctx *m, size_t n, size_t unit, size_t *lo, size_t *hi)
{
    size_t units = (n + unit - 1) / unit, r = (size_t)m->rank, p = (size_t)m->size;
    size_t a = units * r / p, b = units * (r + 1) / p;
    *lo = a * unit < n ? a * unit : n;
    *hi = b * unit < n ? b * unit : n;
}

int mpi_emit(const struct mpi_ctx *m, const char *line)
{
    if (m->rank != 0)
        return 0;
    if (fputs(line, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
        return QN_EIO;
    return 0;
}

/* ---- work on a thread, progress on the main thread ---- */

/* The main thread relays progress every MPI__RELAY_MS while the work runs,
 * and wakes at once when it ends (the condition below): a run's last line
 * and its result are not held back by a sleep. Once its own work ended,
 * rank 0 waits for the other ranks' last counts with blocking receives,
 * as the collective that follows would. */
struct mpi__work {
    int (*fn)(void *arg, atomic_size_t *done);
    void *arg;
    atomic_size_t done;   /* units this rank finished */
    atomic_int finished;  /* fn returned */
    int rc;               /* its code */
    pthread_mutex_t lock; /* guards the wake-up on `ended` */
    pthread_cond_t ended; /* signalled once when fn returned */
};

static void mpi__work_end(struct mpi__work *w)
{
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->finished, 1);
    pthread_cond_signal(&w->ended);
    pthread_mutex_unlock(&w->lock);
}

static void *mpi__work_main(void *p)
{
    struct mpi__work *w = p;
    w->rc = w->fn(w->arg, &w->done);
    mpi__work_end(w);
    return NULL;
}

/* Waits MPI__RELAY_MS, or less when the work ends meanwhile. */
static void mpi__wait_relay(struct mpi__work *w)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_nsec += MPI__RELAY_MS * 1000000L;
    t.tv_sec += t.tv_nsec / 1000000000L;
    t.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->finished) && pthread_cond_timedwait(&w->ended, &w->lock, &t) == 0)
        ;
    pthread_mutex_unlock(&w->lock);
}

/* A rank other than 0: sends its count when it changed, and its last one. */
static void mpi__relay_send(struct mpi__work *w)
{
    uint64_t sent = 0;
    for (;;) {
        int fin = atomic_load(&w->finished);
        uint64_t d = atomic_load(&w->done);
        if (fin) {
            MPI_Send(&d, 1, MPI_UINT64_T, 0, MPI__TAG_DONE, MPI_COMM_WORLD);
            return;
        }
        if (d != sent)
            MPI_Send(&d, 1, MPI_UINT64_T, 0, MPI__TAG_PROGRESS, MPI_COMM_WORLD);
        sent = d;
        mpi__wait_relay(w);
    }
}

/* Rank 0: receives one count (blocking when `block`, else only one that has
 * arrived; 0 when none had); counts the ranks whose work ended. */
static int mpi__relay_recv(uint64_t *count, int *ended, int block)
{
    int flag = 1;
    MPI_Status st;
    if (block)
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
    else
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag)
        return 0;
    uint64_t d;
    MPI_Recv(&d, 1, MPI_UINT64_T, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    count[st.MPI_SOURCE] = d;
    *ended += st.MPI_TAG == MPI__TAG_DONE;
    return 1;
}

/* Rank 0: sums the counts and prints a line when the sum grew by ~1%. */
static void mpi__relay_print(struct mpi_ctx *m, struct mpi__work *w, size_t total)
{
    uint64_t *count = calloc((size_t)m->size, sizeof *count), printed = 0;
    int ended = 0; /* ranks other than 0 whose work ended */
    uint64_t step = total / 100 ? total / 100 : 1;
    for (int last = 0; !last;) {
        int mine = atomic_load(&w->finished);
        /* This rank's work ended: the others' last counts are awaited, one at a time. */
        int block = mine && ended < m->size - 1;
        while (count && mpi__relay_recv(count, &ended, block))
            block = 0;
        last = mine && ended == m->size - 1;
        uint64_t sum = atomic_load(&w->done);
        for (int r = 1; count && r < m->size; r++)
            sum += count[r];
        if (sum >= printed + step || (last && sum != printed)) {
            char *line = spool_line_progress(sum, total);
            if (line)
                mpi_emit(m, line);
            free(line);
            printed = sum;
        }
        if (!count && mine) /* no memory for the counts: the others' are not relayed */
            break;
        if (!mine)
            mpi__wait_relay(w);
    }
    free(count);
}

int mpi_work(struct mpi_ctx *m, int (*work)(void *arg, atomic_size_t *done), void *arg,
             size_t total)
{
    struct mpi__work w = {.fn = work, .arg = arg};
    pthread_t t;
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.ended, NULL);
    int created = pthread_create(&t, NULL, mpi__work_main, &w) == 0;
    if (!created) { /* the other ranks still relay: end this rank's part at once */
        snprintf(m->reason, sizeof m->reason, "rank %d cannot start a thread", m->rank);
        w.rc = QN_ENOMEM;
        mpi__work_end(&w);
    }
    if (m->rank == 0)
        mpi__relay_print(m, &w, total);
    else
        mpi__relay_send(&w);
    if (created)
        pthread_join(t, NULL);
    pthread_cond_destroy(&w.ended);
    pthread_mutex_destroy(&w.lock);
    return w.rc;
}

/* ---- the program ---- */

/* Reads the job and runs its type; the agreed code with m->reason. */
static int mpi__run(struct mpi_ctx *m)
{
    int rc = spool_job_read(m->dir, &m->job, m->reason, sizeof m->reason);
    const struct mpi_type *t = rc ? NULL : mpi__find(m->job.type);
    if (rc == 0 && !t) {
        snprintf(m->reason, sizeof m->reason, "qn-mpi does not run %s jobs", m->job.type);
        rc = QN_EREMOTE;
    }
    if ((rc = mpi_agree(m, rc)))
        return rc;
    return t->run(m);
}

/* Rank 0 on failure: the reason into error.txt and on standard error. */
static void mpi__report(const struct mpi_ctx *m, int rc)
{
    char line[MPI_REASON_MAX + 64];
    snprintf(line, sizeof line, "%s\n", m->reason[0] ? m->reason : qn_err_msg(rc));
    spool_blob_write(m->dir, SPOOL_ERROR, line, strlen(line), NULL, 0);
    fprintf(stderr, "qn-mpi: %s", line);
}

int main(int argc, char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* mpirun gone: so is this rank */
    gsl_set_error_handler_off();
    openblas_set_num_threads(1); /* the ranks and their threads share the cores already */
    if (argc != 2) {
        fprintf(stderr, "usage: qn-mpi SPOOL/job-ID (started by qn serve or qn run --ranks)\n");
        return 2;
    }
    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "qn-mpi: MPI_Init_thread failed\n");
        return 1;
    }
    struct mpi_ctx m = {.dir = argv[1]};
    MPI_Comm_rank(MPI_COMM_WORLD, &m.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &m.size);
    int rc = provided >= MPI_THREAD_FUNNELED ? 0 : QN_EREMOTE;
    if (rc)
        snprintf(m.reason, sizeof m.reason, "this MPI offers no MPI_THREAD_FUNNELED");
    rc = mpi_agree(&m, rc);
    if (rc == 0)
        rc = mpi__run(&m);
    if (rc && m.rank == 0)
        mpi__report(&m, rc);
    spool_job_close(&m.job);
    MPI_Finalize();
    return rc ? 1 : 0;
}
