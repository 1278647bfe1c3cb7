-- spillway_checkpoints.low_version; same meaning as the PostgreSQL schema.
ALTER TABLE spillway_checkpoints ADD COLUMN low_version INTEGER;
