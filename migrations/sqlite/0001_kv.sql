-- One row per key; same meaning as the PostgreSQL schema.
CREATE TABLE IF NOT EXISTS spillway_kv (
    key       BLOB    PRIMARY KEY,
    key_hash  INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    value     BLOB,
    expire_at INTEGER,
    version   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spillway_kv_scan ON spillway_kv (key_hash);
CREATE INDEX IF NOT EXISTS spillway_kv_expiry ON spillway_kv (expire_at) WHERE expire_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS spillway_kv_tombstones ON spillway_kv (version) WHERE kind = 0;
