/*
 * migrations_embed.c: the SQL of the files migrations/NNNN_name.sql,
 * compiled into qn.
 *
 * GENERATED from migrations/ -- do not edit by hand. gcc 12 has no C23
 * #embed and the Makefile has no generation step, so this file is checked
 * in, and tests/server/test_store.c fails unless every string below is
 * byte-identical to its file in migrations/ (and every file is here).
 * After adding a migration, print the new table rows with (bash, repo root):
 *
 *   for f in migrations/[0-9]*.sql; do b=$(basename $f .sql);
 *     echo "    {$((10#${b%%_*})), \"$b\",";
 *     sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/     "/' -e 's/$/\\n"/' $f;
 *     echo "    },"; done
 *
 * and paste the output into migrate_list (tests/server/test_store.c tells
 * you when you forgot).
 */
#include "migrate.h"

const struct migration migrate_list[] = {
    {1, "0001_init",
     "-- 0001_init.sql: the first schema of Quasineuron.\n"
     "--\n"
     "-- Devices, jobs, their metrics, and datasets stored as float32 blocks.\n"
     "-- Record times (created, started, finished) are ISO-8601 UTC text with\n"
     "-- milliseconds, e.g. 2026-11-23T11:01:20.123Z: readable in the shell and\n"
     "-- ordered as text. Metric times are unix seconds (REAL): they are a plot axis.\n"
     "-- Never edit this file once released; add 0002_*.sql instead.\n"
     "\n"
     "CREATE TABLE devices (\n"
     "    id      INTEGER PRIMARY KEY,\n"
     "    name    TEXT UNIQUE,\n"
     "    kind    TEXT NOT NULL,\n"
     "    spec    TEXT NOT NULL CHECK (json_valid(spec)),\n"
     "    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\n"
     ");\n"
     "\n"
     "CREATE TABLE jobs (\n"
     "    id       INTEGER PRIMARY KEY,\n"
     "    type     TEXT NOT NULL,\n"
     "    name     TEXT NOT NULL,\n"
     "    owner    TEXT NOT NULL DEFAULT 'local',\n"
     "    priority INTEGER NOT NULL DEFAULT 0,\n"
     "    state    TEXT NOT NULL CHECK (state IN ('waiting', 'queued', 'running',\n"
     "                                            'succeeded', 'failed', 'canceled')),\n"
     "    spec     TEXT NOT NULL CHECK (json_valid(spec)),\n"
     "    result   TEXT CHECK (result IS NULL OR json_valid(result)),\n"
     "    error    TEXT,\n"
     "    created  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),\n"
     "    started  TEXT,\n"
     "    finished TEXT\n"
     ");\n"
     "CREATE INDEX jobs_by_state ON jobs (state, priority DESC, id);\n"
     "\n"
     "-- A dataset is n_rows x n_cols float32 values; columns is a JSON array of\n"
     "-- the column names. A sweep's columns are its inputs, then \"out\", then\n"
     "-- \"status\" (0 = ok, else a qn_err code).\n"
     "CREATE TABLE datasets (\n"
     "    id         INTEGER PRIMARY KEY,\n"
     "    name       TEXT,\n"
     "    source     TEXT NOT NULL CHECK (source IN ('sweep', 'csv', 'idx')),\n"
     "    n_rows     INTEGER NOT NULL DEFAULT 0 CHECK (n_rows >= 0),\n"
     "    n_cols     INTEGER NOT NULL CHECK (n_cols > 0),\n"
     "    columns    TEXT NOT NULL CHECK (json_valid(columns)),\n"
     "    block_rows INTEGER NOT NULL CHECK (block_rows > 0),\n"
     "    job_id     INTEGER REFERENCES jobs (id) ON DELETE SET NULL,\n"
     "    created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\n"
     ");\n"
     "CREATE INDEX datasets_by_job ON datasets (job_id);\n"
     "\n"
     "-- Rows [block * block_rows, block * block_rows + n_rows) of a dataset,\n"
     "-- row-major little-endian IEEE-754 float32. Every block but the last is full.\n"
     "CREATE TABLE dataset_blocks (\n"
     "    id         INTEGER PRIMARY KEY,\n"
     "    dataset_id INTEGER NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,\n"
     "    block      INTEGER NOT NULL CHECK (block >= 0),\n"
     "    n_rows     INTEGER NOT NULL CHECK (n_rows > 0),\n"
     "    data       BLOB NOT NULL,\n"
     "    UNIQUE (dataset_id, block)\n"
     ");\n"
     "\n"
     "-- One row per metric value; the id orders events (SSE event ids).\n"
     "CREATE TABLE metrics (\n"
     "    id     INTEGER PRIMARY KEY,\n"
     "    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,\n"
     "    step   INTEGER NOT NULL,\n"
     "    epoch  INTEGER NOT NULL,\n"
     "    name   TEXT NOT NULL,\n"
     "    value  REAL,\n"
     "    time   REAL NOT NULL,\n"
     "    UNIQUE (job_id, name, step)\n"
     ");\n"
    },
};

const size_t migrate_count = sizeof migrate_list / sizeof migrate_list[0];
