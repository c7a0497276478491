-- 0007_owners.sql: devices, datasets and surrogates get an owner (issue 16).
--
-- What a user makes is theirs, and a name resolves within its owner first:
-- Bob's dataset named like Alice's no longer stands in for hers. The owner
-- is the user name, as jobs.owner; rows made before this migration are
-- 'local''s (the owner of `qn run` jobs and of a daemon without users).
-- A device name was unique in the whole database; it is now unique per
-- owner, so the devices table is rebuilt (SQLite cannot drop a column's
-- UNIQUE); nothing references it. Never edit this file once released; add
-- 0008_*.sql instead.

CREATE TABLE devices_owned (
    id      INTEGER PRIMARY KEY,
    name    TEXT,
    kind    TEXT NOT NULL,
    spec    TEXT NOT NULL CHECK (json_valid(spec)),
    created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    owner   TEXT NOT NULL DEFAULT 'local',
    UNIQUE (owner, name)
);
INSERT INTO devices_owned (id, name, kind, spec, created)
    SELECT id, name, kind, spec, created FROM devices;
DROP TABLE devices;
ALTER TABLE devices_owned RENAME TO devices;

ALTER TABLE datasets ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
ALTER TABLE surrogates ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
CREATE INDEX datasets_by_owner_name ON datasets (owner, name);
CREATE INDEX surrogates_by_owner_name ON surrogates (owner, name);
