-- Write-behind bookkeeping; same meaning as the PostgreSQL schema.
CREATE TABLE IF NOT EXISTS spillway_checkpoints (
    instance   TEXT    PRIMARY KEY,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- AUTOINCREMENT: ids of deleted dead letters are never handed out again.
CREATE TABLE IF NOT EXISTS spillway_dead_letters (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    instance  TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    key       BLOB    NOT NULL,
    kind      INTEGER NOT NULL,
    value     BLOB,
    expire_at INTEGER,
    version   INTEGER NOT NULL,
    error     TEXT    NOT NULL,
    failed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS spillway_dead_letters_instance ON spillway_dead_letters (instance, seq);
