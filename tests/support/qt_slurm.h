/*
 * qt_slurm.h: a real single-node Slurm for a test, started in a temporary
 * directory of its own and stopped after (tests/support/qt_slurm.sh does the
 * work: munged on a private socket and key, slurmctld and slurmd with a
 * generated slurm.conf, one node "qn" partition with this machine's CPUs).
 *
 * While it is up, SLURM_CONF in this process's environment names its
 * slurm.conf, so sbatch, srun, squeue and scancel run here, and programs this
 * process starts (a `qn serve --slurm`) reach it too.
 *
 * Whether a machine must run it: Debian 12 as root (what CI is) must; there a
 * cluster that does not come up fails the test. Elsewhere (not root, no
 * slurm-wlm) the test is skipped with the reason.
 *
 * libc/POSIX only (compiled into every test program).
 */
#ifndef QT_SLURM_H
#define QT_SLURM_H

#include <stddef.h>

struct qt_slurm {
    char dir[512];    /* the cluster's directory: slurm.conf, logs, state */
    char conf[600];   /* dir/slurm.conf */
    char script[600]; /* tests/support/qt_slurm.sh, found from QN_BIN */
    int up;           /* nonzero between a successful start and stop */
};

/*
 * Starts the cluster and sets SLURM_CONF. Returns 0 when it is up; 1 when
 * this machine cannot run it and the test should be skipped; -1 when it
 * should have run and did not (fail the test). why (cap bytes) says why in
 * both cases, with the tail of the daemons' logs.
 */
int qt_slurm_start(struct qt_slurm *s, char *why, size_t cap);

/* Cancels every job, waits for them, stops the daemons, removes the directory
 * and unsets SLURM_CONF. Nothing when it is not up. */
void qt_slurm_stop(struct qt_slurm *s);

#endif
