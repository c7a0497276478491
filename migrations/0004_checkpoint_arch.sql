-- 0004_checkpoint_arch.sql: the architecture beside a training checkpoint.
--
-- A network with adaptive structure (growth and pruning) changes its hidden
-- layers' widths during training, so a checkpoint's parameters only make
-- sense with the widths they were saved at. arch is JSON written by the
-- train job in the same transaction as the checkpoint row:
-- {"widths": [w0, w1, ...], "best_loss": x or null, "stale": k, "events": e}
-- (widths per layer, and the adaptive schedule's state so a resumed run
-- repeats the same events). NULL for checkpoints of fixed networks and of
-- older databases: their widths are the spec's. Never edit this file once
-- released; add 0005_*.sql instead.

ALTER TABLE checkpoints ADD COLUMN arch TEXT CHECK (arch IS NULL OR json_valid(arch));
