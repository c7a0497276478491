-- 0006_job_deps.sql: a job's dependencies, stored when it is submitted.
--
-- A spec can use another job's output before that job has finished
-- ({"dataset": {"job": 12}}); the new job waits for it. Each such reference
-- the spec's parser finds is one row: the job, the job it depends on, the
-- reference's JSON Pointer in the envelope ("/spec/network/0/surrogate"),
-- and the type the referenced job must be (a fit's dataset a sweep, a
-- train's surrogate a fit, an evaluation's model a train). The queue promotes
-- a waiting job when every dependency succeeded and fails it when one failed
-- or was canceled, by joining on this table; it used to find the references
-- by walking every stored spec for an integer "job" member.
--
-- Jobs stored before this migration get their rows here, once, from their
-- specs, at the places the parsers read references from (references to jobs
-- that no longer exist are left out). Never edit this file once released;
-- add 0007_*.sql instead.

CREATE TABLE job_deps (
    job           INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    dependency    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    path          TEXT NOT NULL,
    expected_type TEXT NOT NULL,
    PRIMARY KEY (job, path)
);
CREATE INDEX job_deps_by_dependency ON job_deps (dependency);

INSERT INTO job_deps (job, dependency, path, expected_type)
SELECT job, dependency, path, expected_type FROM (
    SELECT j.id AS job, t.value AS dependency,
           '/spec' || replace(replace(replace(replace(substr(t.path, 2), '.', '/'), '[', '/'),
                                      ']', ''), '"', '') AS path,
           CASE
               WHEN t.path = '$.dataset' AND j.type IN ('fit', 'train', 'evaluate') THEN 'sweep'
               WHEN t.path = '$.model' AND j.type = 'evaluate' THEN 'train'
               WHEN t.path GLOB '$.network[[][0-9]*].surrogate' AND j.type = 'train' THEN 'fit'
               WHEN t.path GLOB '$.surrogates.*' AND j.type = 'evaluate' THEN 'fit'
           END AS expected_type
    FROM jobs j, json_tree(j.spec) t
    WHERE t.key = 'job' AND t.type = 'integer' AND t.value IN (SELECT id FROM jobs)
)
WHERE expected_type IS NOT NULL;
