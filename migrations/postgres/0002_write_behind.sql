-- Write-behind bookkeeping, one row per spillway instance (instance id).
--
-- spillway_checkpoints.seq: the instance's applied high-water mark, the
-- highest WAL sequence such that every record at or below it is applied or
-- dead-lettered. Written in the same transaction as the rows it covers, and
-- only ever raised. updated_at: ms since the epoch (the instance's clock) of
-- the last batch applied.
CREATE TABLE IF NOT EXISTS spillway_checkpoints (
    instance   text   PRIMARY KEY,
    seq        bigint NOT NULL,
    updated_at bigint NOT NULL
);

-- Write-behind records the database rejected for good (constraint, bad
-- data), kept with the error instead of being retried forever. One row per
-- rejected record; the row columns mean what they mean in spillway_kv, seq is
-- the record's WAL sequence, failed_at is ms since the epoch. Written in the
-- transaction that advances the instance's checkpoint past the record.
-- id is never reused, so an operator command naming one cannot hit another.
CREATE TABLE IF NOT EXISTS spillway_dead_letters (
    id        bigserial PRIMARY KEY,
    instance  text     NOT NULL,
    seq       bigint   NOT NULL,
    key       bytea    NOT NULL,
    kind      smallint NOT NULL,
    value     bytea,
    expire_at bigint,
    version   bigint   NOT NULL,
    error     text     NOT NULL,
    failed_at bigint   NOT NULL
);
CREATE INDEX IF NOT EXISTS spillway_dead_letters_instance ON spillway_dead_letters (instance, seq);
