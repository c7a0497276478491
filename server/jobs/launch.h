/*
 * launch.h: launchers, the way a job asking for several ranks leaves the
 * daemon: they start qn-mpi on R ranks for a staged spool directory
 * (schema/spool.h), give back rank 0's progress lines, cancel it, and say
 * how it ended. The daemon never links MPI; it only runs these programs.
 *
 * A launcher is a table of functions (struct launch_ops) and its
 * configuration; `qn serve` makes one at start-up (--launcher TEMPLATE: the
 * local backend below, launch_local.c; --slurm: sbatch, another backend with
 * the same ops) and every worker uses it. A running job is a struct
 * launch_run made by start (or attach) and freed by destroy.
 *
 * The contract every backend keeps:
 *   check    says whether the launcher can run anything now (its program on
 *            PATH: mpirun, sbatch); 0 or QN_EREMOTE with a sentence. Called at
 *            start-up and for every submission asking ranks > 1, so such a job
 *            is refused at submission, not left stuck.
 *   start    runs `qn-mpi DIR` on job->ranks ranks of job->threads threads,
 *            DIR being job->dir (absolute); qn-mpi's standard error goes to
 *            DIR/stderr.txt. Returns at once with *out; QN_EREMOTE (msg says
 *            why) when it could not be started. Nothing is left running on
 *            failure.
 *   handle   the text to store on the job's row to find the run again after
 *            the daemon restarts (the Slurm job id), or NULL when a run cannot
 *            outlive the daemon (local: mpirun gets SIGTERM when the daemon
 *            dies); borrowed from r. The runner (job_remote.c) stores it on
 *            the job's row right after start (jobs.launch_handle, migration
 *            0009) and clears it once the output is stored; a requeued job
 *            whose row holds one is attached rather than staged and started
 *            again.
 *   attach   the reverse of handle: the run of a job whose row holds
 *            `handle`, as start would have returned it (NULL when the backend
 *            has no handles). QN_ENOTFOUND when the run is gone.
 *   next_line  waits up to timeout_ms for the next line of rank 0's standard
 *            output (a pipe for local, DIR/stdout.jsonl for batch backends);
 *            1 with the line in buf (NUL-terminated, newline removed, cut at
 *            cap - 1 bytes), 0 when none came in time, 2 when the output has
 *            ended (the run is over or about to be: call wait).
 *   cancel   asks the run to stop: local sends SIGTERM to the launcher's
 *            process group, SIGKILL after LAUNCH_GRACE_MS; sbatch would
 *            scancel. Returns at once; wait then reports the end.
 *   wait     blocks until the run has ended, every process of it gone; 0 when
 *            it exited 0, QN_EREMOTE with the reason in reason otherwise:
 *            DIR/error.txt (qn-mpi's own), else the last line of
 *            DIR/stderr.txt with a word in it, else the status or signal that
 *            ended it. QN_ELOST (with a reason) when the run was lost with
 *            its machine, not ended by qn-mpi or a cancel (Slurm's NODE_FAIL):
 *            the runner may run the job again.
 *   destroy  frees r (a run not waited for is canceled and waited for first).
 *   detach   frees r and leaves the run going (the daemon stops, and the next
 *            one attaches to it by its handle); NULL for backends without
 *            handles, whose runs end with the daemon.
 *
 * Every function is called from the one worker thread that runs the job,
 * except check (any thread). Backends must not use the database: the
 * runner (job_remote.c) stores what the lines and the result files say.
 */
#ifndef QN_LAUNCH_H
#define QN_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

#define LAUNCH_TEMPLATE_MAX 1024 /* bytes of a --launcher template */
#define LAUNCH_ARGS_MAX 64       /* words of an expanded template */
#define LAUNCH_GRACE_MS 3000     /* SIGTERM to SIGKILL on cancel */
#define LAUNCH_LINE_MAX 4096     /* bytes of one progress line */

/* One job to launch (all borrowed for the call). */
struct launch_job {
    int64_t id;         /* the job's id */
    const char *dir;    /* its spool directory, absolute: SPOOL/job-ID */
    const char *qn_mpi; /* the qn-mpi program, absolute */
    size_t ranks;       /* >= 1 */
    size_t threads;     /* per rank, >= 1 */
};

struct launch_run;      /* one running job (the backend's) */
struct launcher;

struct launch_ops {
    const char *name;   /* "local", "slurm" */
    int (*check)(const struct launcher *L, char *msg, size_t cap);
    int (*start)(const struct launcher *L, const struct launch_job *job, struct launch_run **out,
                 char *msg, size_t cap);
    const char *(*handle)(const struct launch_run *r);
    int (*attach)(const struct launcher *L, const struct launch_job *job, const char *handle,
                  struct launch_run **out, char *msg, size_t cap);
    int (*next_line)(struct launch_run *r, char *buf, size_t cap, int timeout_ms);
    void (*cancel)(struct launch_run *r);
    int (*wait)(struct launch_run *r, char *reason, size_t cap);
    void (*destroy)(struct launch_run *r);
    void (*detach)(struct launch_run *r);
};

/* A configured launcher: its ops and the backend's settings. */
struct launcher {
    const struct launch_ops *ops;
    char template_[LAUNCH_TEMPLATE_MAX]; /* local: the command template; slurm: sbatch's
                                            options ("--partition=P --account=A ") */
    void *backend;                       /* other backends' settings (theirs) */
};

/*
 * The local backend (launch_local.c): runs the template with {ranks},
 * {threads}, {cmd} (the qn-mpi program and the spool directory: two words)
 * and {dir} replaced, split at spaces, no shell; the program is looked up on
 * PATH. An empty template is the default: "mpirun --oversubscribe -n {ranks}
 * {cmd}", with --allow-run-as-root first when the daemon runs as root
 * (Open MPI refuses root without it). QN_EINVAL (msg) for a template that
 * has no {cmd} or is too long.
 */
extern const struct launch_ops launch_local_ops;
int launch_local_init(struct launcher *L, const char *template_, char *msg, size_t cap);

/*
 * The Slurm backend (launch_slurm.c): qn-mpi as a batch job (ranks as tasks,
 * threads as CPUs per task, `srun --mpi=pmix` inside), submitted with sbatch
 * --parsable, followed with squeue (sacct, then the spool, once squeue has
 * forgotten it), canceled with scancel; its handle is the Slurm job id.
 * partition and account (may be NULL or "") become sbatch's --partition and
 * --account, kept in L->template_. QN_EINVAL (msg) for a value that is not
 * a plain Slurm name.
 */
extern const struct launch_ops launch_slurm_ops;
int launch_slurm_init(struct launcher *L, const char *partition, const char *account, char *msg,
                      size_t cap);

#endif
