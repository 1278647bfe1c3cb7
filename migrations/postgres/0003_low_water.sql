-- spillway_checkpoints.low_version: a version below which the instance will
-- never again write (every write it has pending or may still issue has a
-- version at or above it). Only ever raised. NULL until the instance first
-- reports one; the sweeper takes NULL as 0, so an instance that has not
-- reported yet keeps every tombstone and expired row.
ALTER TABLE spillway_checkpoints ADD COLUMN IF NOT EXISTS low_version bigint;
