/*
 * dblock.h: who may run jobs on a database.
 *
 * `qn serve` recovers the jobs it finds `running` at start-up (they were
 * left by a process that died), so while it serves a database no other
 * process may be running jobs on it, and two daemons must never share one.
 * `qn run` and `qn resume` run jobs themselves; several may run side by
 * side. So the daemon holds the lock exclusively and the local runners
 * hold it shared, each for as long as it lives.
 *
 * The lock is flock(2) on the file DB.lock beside the database: the kernel
 * releases it when the process ends however it ends, so kill -9 never
 * leaves a stale lock. Commands that only read or add rows (device add,
 * dataset import, user add, ...) take no lock: SQLite serialises them.
 */
#ifndef QN_DBLOCK_H
#define QN_DBLOCK_H

#include <stddef.h>

enum dblock_mode {
    DBLOCK_SERVE, /* exclusive: the one daemon */
    DBLOCK_RUN    /* shared: local runners */
};

/*
 * Takes the lock of database `db` in `mode` without waiting. On success
 * *fd holds it (release with dblock_release) and 0 is returned. QN_EBUSY
 * when another process holds it in a conflicting mode, QN_EIO when the lock
 * file cannot be opened; msg says which, for the user.
 */
int dblock_take(const char *db, enum dblock_mode mode, int *fd, char *msg, size_t cap);

/* Releases a lock dblock_take returned (fd < 0: nothing). */
void dblock_release(int fd);

#endif
