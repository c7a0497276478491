-- 0009_launch_handle.sql: a job's run outside the daemon can be found again
-- (issue 13).
--
-- A job on several ranks submitted to Slurm runs as a batch job that
-- outlives the daemon. Its launcher's handle (the Slurm job id) is stored
-- on the job's row while it runs, so a daemon that restarts (kill -9, a
-- reboot) attaches to that batch job and collects its result instead of
-- running the job a second time. NULL: the job has no such run (it runs in
-- the daemon's process, or under mpirun, which dies with the daemon).
-- Never edit this file once released; add 0010_*.sql instead.

ALTER TABLE jobs ADD COLUMN launch_handle TEXT;
