-- 0005_metric_ids.sql: metric ids are never handed out twice.
--
-- A metric's id is its SSE event id: a client reconnecting with
-- Last-Event-ID gets the rows with larger ids. metrics.id was a plain
-- INTEGER PRIMARY KEY, for which SQLite picks max(id) + 1, so after a
-- resumed train job deleted its newest rows (store_metric_delete_after) the
-- rows it wrote next took those ids again, and a client that had seen the
-- old ones skipped the new. With AUTOINCREMENT SQLite never reuses an id:
-- sqlite_sequence keeps the largest ever given.
--
-- The table is rebuilt (SQLite cannot add AUTOINCREMENT in place): every
-- row keeps its id, and inserting them sets the sequence to the largest id
-- present. Ids deleted above that before this migration cannot be known
-- and may be given once more. The UNIQUE (job_id, name, step) index comes
-- with the table; metrics had no other index. metrics_by_job is new: the
-- metric route and the event pump ask for a job's rows after an id, in id
-- order, which the UNIQUE index could only answer by reading all of the
-- job's rows and sorting them. Nothing refers to metrics, so dropping it
-- with foreign keys on is safe; this runs in the migration's transaction.
-- Never edit this file once released; add 0006_*.sql instead.

CREATE TABLE metrics_new (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,
    epoch  INTEGER NOT NULL,
    name   TEXT NOT NULL,
    value  REAL,
    time   REAL NOT NULL,
    UNIQUE (job_id, name, step)
);
INSERT INTO metrics_new (id, job_id, step, epoch, name, value, time)
    SELECT id, job_id, step, epoch, name, value, time FROM metrics ORDER BY id;
DROP TABLE metrics;
ALTER TABLE metrics_new RENAME TO metrics;
CREATE INDEX metrics_by_job ON metrics (job_id, id);
