/*
 * store_jobs.c: jobs and their states, the output rows a job replaces on
 * a second attempt, and metrics (see store.h).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "qn_err.h"
#include "store_internal.h"

static const char *const store__states[] = {"waiting",   "queued", "running",
                                            "succeeded", "failed", "canceled"};


/*
 * Deletes what an earlier attempt of job job_id stored in `table` (datasets,
 * surrogates or models; blocks go with their dataset). A job commits its
 * output before its end, so a kill -9 between the two leaves the job
 * `running` with its output stored; the restart runs it again, and the new
 * output must replace that one, not sit beside it. Nothing can use the old
 * row: the job's dependents wait for it to succeed. In the caller's
 * transaction.
 */
int store__drop_attempt(struct store *s, const char *table, int64_t job_id)
{
    char sql[64];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE job_id = ?1", table);
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, sql, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job_id);
    return store__exec_stmt(st);
}

/* Inserts one output row of a job with add(s, row, id), in place of an earlier attempt's. */
int store__job_output(struct store *s, const char *table, int64_t job_id,
                      int (*add)(struct store *, const void *, int64_t *),
                      const void *row, int64_t *id)
{
    if (job_id <= 0)
        return add(s, row, id);
    int rc = store_begin(s);
    if (rc)
        return rc;
    rc = store__drop_attempt(s, table, job_id);
    if (rc == 0)
        rc = add(s, row, id);
    return store_end(s, rc);
}

/* ---- jobs --------------------------------------------------------------- */

int store_job_state_final(enum store_job_state st)
{
    return st == JOB_SUCCEEDED || st == JOB_FAILED || st == JOB_CANCELED;
}

const char *store_job_state_name(enum store_job_state st)
{
    return (unsigned)st < sizeof store__states / sizeof store__states[0] ? store__states[st]
                                                                         : "unknown";
}

int store_job_state_from_name(const char *name, enum store_job_state *out)
{
    for (size_t i = 0; i < sizeof store__states / sizeof store__states[0]; i++)
        if (strcmp(name, store__states[i]) == 0) {
            *out = (enum store_job_state)i;
            return 0;
        }
    return QN_EINVAL;
}

int store_job_insert(struct store *s, const char *type, const char *name, const char *owner,
                     int priority, enum store_job_state state, const char *spec, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO jobs (type, name, owner, priority, state, spec, started)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?5 = 'running' THEN"
                         " strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END)",
                         &st);
    if (rc)
        return rc;
    store__bind_text(st, 1, type);
    store__bind_text(st, 2, name);
    store__bind_text(st, 3, owner ? owner : "local");
    sqlite3_bind_int(st, 4, priority);
    store__bind_text(st, 5, store_job_state_name(state));
    store__bind_text(st, 6, spec);
    return store__exec_insert(s, st, 0, id);
}


int store__job_row(sqlite3_stmt *st, void *p)
{
    struct store_job *j = p;
    int err = 0;
    char state[16];
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(st, 0);
    store__col_text(st, 1, j->type, sizeof j->type);
    store__col_text(st, 2, j->name, sizeof j->name);
    store__col_text(st, 3, j->owner, sizeof j->owner);
    j->priority = sqlite3_column_int(st, 4);
    store__col_text(st, 5, state, sizeof state);
    if (store_job_state_from_name(state, &j->state))
        err = QN_EFORMAT;
    j->spec = store__col_dup(st, 6, &err);
    j->result = store__col_dup(st, 7, &err);
    j->error = store__col_dup(st, 8, &err);
    store__col_text(st, 9, j->created, sizeof j->created);
    store__col_text(st, 10, j->started, sizeof j->started);
    store__col_text(st, 11, j->finished, sizeof j->finished);
    store__col_text(st, 12, j->handle, sizeof j->handle);
    return err;
}

void store__job_free_v(void *p) { store_job_free(p); }

int store_job_get(struct store *s, int64_t id, struct store_job *out)
{
    return store__get_by(s, STORE__JOB_COLS STORE__BY_ID, id, NULL, store__job_row,
                         store__job_free_v, out);
}

int store_job_set_state(struct store *s, int64_t id, enum store_job_state state,
                        const char *result, const char *error)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(
        s,
        "UPDATE jobs SET state = ?2, result = coalesce(?3, result), error = coalesce(?4, error),"
        " started = CASE WHEN ?2 = 'running' AND started IS NULL"
        "   THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE started END,"
        " finished = CASE WHEN ?2 IN ('succeeded', 'failed', 'canceled')"
        "   THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE NULL END"
        " WHERE id = ?1",
        &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    store__bind_text(st, 2, store_job_state_name(state));
    store__bind_text(st, 3, result);
    store__bind_text(st, 4, error);
    rc = store__exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

int store_job_set_handle(struct store *s, int64_t id, const char *handle)
{
    sqlite3_stmt *st = NULL;
    if (handle && strlen(handle) >= STORE_HANDLE_MAX)
        return QN_ERANGE;
    int rc = store__prep(s, "UPDATE jobs SET launch_handle = ?2 WHERE id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    store__bind_text(st, 2, handle && *handle ? handle : NULL);
    rc = store__exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

int store_job_restart(struct store *s, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "UPDATE jobs SET state = 'running', result = NULL, error = NULL,"
                         " finished = NULL, started = coalesce(started,"
                         " strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) WHERE id = ?1",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    rc = store__exec_stmt(st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = QN_ENOTFOUND;
    return rc;
}

void store_job_free(struct store_job *j)
{
    if (!j)
        return;
    free(j->spec);
    free(j->result);
    free(j->error);
    j->spec = j->result = j->error = NULL;
}

/* ---- metrics ------------------------------------------------------------ */

int store_metric_insert(struct store *s, int64_t job, int64_t step, int64_t epoch,
                        const char *name, double value)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s,
                         "INSERT INTO metrics (job_id, step, epoch, name, value, time)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, step);
    sqlite3_bind_int64(st, 3, epoch);
    store__bind_text(st, 4, name);
    store__bind_real(st, 5, value);
    sqlite3_bind_double(st, 6, (double)tv.tv_sec + tv.tv_usec * 1e-6);
    return store__exec_stmt(st);
}

int store_metric_delete_after_step(struct store *s, int64_t job, int64_t epoch, int64_t step)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "DELETE FROM metrics WHERE job_id = ?1 AND epoch > ?2 AND step > ?3",
                         &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, epoch);
    sqlite3_bind_int64(st, 3, step);
    return store__exec_stmt(st);
}

int store_metric_delete_after(struct store *s, int64_t job, int64_t epoch)
{
    sqlite3_stmt *st = NULL;
    int rc = store__prep(s, "DELETE FROM metrics WHERE job_id = ?1 AND epoch > ?2", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int64(st, 2, epoch);
    return store__exec_stmt(st);
}
