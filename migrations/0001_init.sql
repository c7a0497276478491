-- 0001_init.sql: the first schema of Quasineuron.
--
-- Devices, jobs, their metrics, and datasets stored as float32 blocks.
-- Record times (created, started, finished) are ISO-8601 UTC text with
-- milliseconds, e.g. 2026-11-23T11:01:20.123Z: readable in the shell and
-- ordered as text. Metric times are unix seconds (REAL): they are a plot axis.
-- Never edit this file once released; add 0002_*.sql instead.

CREATE TABLE devices (
    id      INTEGER PRIMARY KEY,
    name    TEXT UNIQUE,
    kind    TEXT NOT NULL,
    spec    TEXT NOT NULL CHECK (json_valid(spec)),
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE jobs (
    id       INTEGER PRIMARY KEY,
    type     TEXT NOT NULL,
    name     TEXT NOT NULL,
    owner    TEXT NOT NULL DEFAULT 'local',
    priority INTEGER NOT NULL DEFAULT 0,
    state    TEXT NOT NULL CHECK (state IN ('waiting', 'queued', 'running',
                                            'succeeded', 'failed', 'canceled')),
    spec     TEXT NOT NULL CHECK (json_valid(spec)),
    result   TEXT CHECK (result IS NULL OR json_valid(result)),
    error    TEXT,
    created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started  TEXT,
    finished TEXT
);
CREATE INDEX jobs_by_state ON jobs (state, priority DESC, id);

-- A dataset is n_rows x n_cols float32 values; columns is a JSON array of
-- the column names. A sweep's columns are its inputs, then "out", then
-- "status" (0 = ok, else a qn_err code).
CREATE TABLE datasets (
    id         INTEGER PRIMARY KEY,
    name       TEXT,
    source     TEXT NOT NULL CHECK (source IN ('sweep', 'csv', 'idx')),
    n_rows     INTEGER NOT NULL DEFAULT 0 CHECK (n_rows >= 0),
    n_cols     INTEGER NOT NULL CHECK (n_cols > 0),
    columns    TEXT NOT NULL CHECK (json_valid(columns)),
    block_rows INTEGER NOT NULL CHECK (block_rows > 0),
    job_id     INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX datasets_by_job ON datasets (job_id);

-- Rows [block * block_rows, block * block_rows + n_rows) of a dataset,
-- row-major little-endian IEEE-754 float32. Every block but the last is full.
CREATE TABLE dataset_blocks (
    id         INTEGER PRIMARY KEY,
    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    block      INTEGER NOT NULL CHECK (block >= 0),
    n_rows     INTEGER NOT NULL CHECK (n_rows > 0),
    data       BLOB NOT NULL,
    UNIQUE (dataset_id, block)
);

-- One row per metric value; the id orders events (SSE event ids).
CREATE TABLE metrics (
    id     INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step   INTEGER NOT NULL,
    epoch  INTEGER NOT NULL,
    name   TEXT NOT NULL,
    value  REAL,
    time   REAL NOT NULL,
    UNIQUE (job_id, name, step)
);
