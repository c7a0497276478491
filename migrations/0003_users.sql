-- 0003_users.sql: lab members who may use the daemon.
--
-- A member signs in with a bearer token: 32 random bytes as 64 hex digits,
-- printed once by `qn user add`. Only its SHA-256 (hex) is stored. Revoking
-- keeps the row (who ran what stays readable) and frees the name for a new
-- account. Never edit this file once released; add 0004_*.sql instead.

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    admin      INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    token_hash TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    created    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked    TEXT
);
CREATE UNIQUE INDEX users_active_name ON users (name) WHERE revoked IS NULL;
