-- 0008_model_owners.sql: models get an owner (issue 16).
--
-- A model's name resolves within its owner first, as a device's, a
-- dataset's and a surrogate's do since 0007: Bob's model named like
-- Alice's no longer stands in for hers in her evaluate and predict
-- requests or in her train's "from". The owner is the user name of the
-- train job that made the model; models whose job is gone, or that were
-- made without users, are 'local''s. Never edit this file once released;
-- add 0009_*.sql instead.

ALTER TABLE models ADD COLUMN owner TEXT NOT NULL DEFAULT 'local';
UPDATE models SET owner = COALESCE((SELECT jobs.owner FROM jobs WHERE jobs.id = models.job_id),
                                   'local');
CREATE INDEX models_by_owner_name ON models (owner, name);
