-- 0002_models.sql: frozen surrogates, trained models and training checkpoints.
--
-- Weights are BLOBs: a surrogate is the engine's own little-endian blob
-- (surrogate_to_blob: architecture, scaling, float32 weights); a model's
-- params and scaler and a checkpoint's params and optimizer state are
-- little-endian IEEE-754 float32 arrays. JSON columns hold what a reader
-- needs to rebuild the thing without the job that made it: a surrogate's
-- device, a model's train spec with every device inline and every surrogate
-- an id. Never edit this file once released; add 0003_*.sql instead.

CREATE TABLE surrogates (
    id         INTEGER PRIMARY KEY,
    name       TEXT,
    job_id     INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    device     TEXT NOT NULL CHECK (json_valid(device)),
    dataset_id INTEGER REFERENCES datasets (id) ON DELETE SET NULL,
    n_in       INTEGER NOT NULL CHECK (n_in > 0),
    val_rmse   REAL,
    max_error  REAL,
    blob       BLOB NOT NULL,
    created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX surrogates_by_job ON surrogates (job_id);
CREATE INDEX surrogates_by_name ON surrogates (name);

CREATE TABLE models (
    id        INTEGER PRIMARY KEY,
    name      TEXT,
    job_id    INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    spec      TEXT NOT NULL CHECK (json_valid(spec)),
    n_in      INTEGER NOT NULL CHECK (n_in > 0),
    n_out     INTEGER NOT NULL CHECK (n_out > 0),
    n_classes INTEGER NOT NULL CHECK (n_classes >= 0),
    loss      TEXT NOT NULL,
    params    BLOB NOT NULL,
    scaler    BLOB NOT NULL,
    created   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX models_by_job ON models (job_id);
CREATE INDEX models_by_name ON models (name);

-- The state of a train job after `epoch` completed epochs: the network's
-- parameters and the optimizer's state slab and step counter. A job resumes
-- from its row with the largest epoch.
CREATE TABLE checkpoints (
    job_id      INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    epoch       INTEGER NOT NULL CHECK (epoch >= 0),
    params      BLOB NOT NULL,
    optim_state BLOB NOT NULL,
    optim_t     INTEGER NOT NULL CHECK (optim_t >= 0),
    created     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (job_id, epoch)
);
