-- One row per key. kind: 0 tombstone, 1 string, 2 hash (fields encoded in value).
-- version: hybrid logical clock stamp of the write that produced the row.
-- expire_at: absolute expiry in ms since the epoch, NULL when persistent.
-- key_hash: stable 63-bit FNV-1a of key; SCAN cursor order and advisory lock id.
CREATE TABLE IF NOT EXISTS spillway_kv (
    key       bytea    PRIMARY KEY,
    key_hash  bigint   NOT NULL,
    kind      smallint NOT NULL,
    value     bytea,
    expire_at bigint,
    version   bigint   NOT NULL
);
CREATE INDEX IF NOT EXISTS spillway_kv_scan ON spillway_kv (key_hash);
CREATE INDEX IF NOT EXISTS spillway_kv_expiry ON spillway_kv (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS spillway_kv_tombstones ON spillway_kv (version) WHERE kind = 0;
