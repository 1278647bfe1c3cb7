//! Write-behind through the real binary, in front of a private Redis and
//! PostgreSQL (CONTRACT invariants 2, 3, 4, 6, 7 and 8, and §4): an
//! acknowledged write reaches Postgres whatever happens in between
//! (SIGKILL, also during replay; the cache flushed or killed; the database
//! stopped), the backlog is bounded, SIGTERM drains, a damaged WAL is told
//! apart from a torn tail, and applied segments are deleted.
//!
//! Every check of the database reads `spillway_kv` row by row with psql.

mod backpressure;
mod crash;
mod keyspace;
mod load;
mod ordering;
mod outages;
mod shutdown;
mod wal_files;

#[path = "../support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::{RedisServer, Spillway};

/// Long enough for a drain after a replay on a loaded 2-core machine.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a write-behind spillway over `redis` and the database at
/// `db_url`, with `fsync = "always"`; `extra` adds or overrides settings.
fn start(redis: &RedisServer, db_url: &str, extra: &[(&str, &str)]) -> Spillway {
    let cache_url = redis.url();
    let mut env: Vec<(&str, &str)> = vec![
        ("SPILLWAY__WRITE__POLICY", "write-behind"),
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", &cache_url),
        ("SPILLWAY__DATABASE__URL", db_url),
        ("SPILLWAY__DATABASE__TIMEOUT", "2s"),
        ("SPILLWAY__DATABASE__ACQUIRE_TIMEOUT", "1s"),
        ("SPILLWAY__WRITE_BEHIND__FSYNC", "always"),
    ];
    for (key, value) in extra {
        env.retain(|(k, _)| k != key);
        env.push((key, value));
    }
    Spillway::start(&env)
}

/// One field of INFO (`None` when INFO fails or lacks it).
fn info_field(sp: &Spillway, field: &str) -> Option<String> {
    let reply = support::resp::probe(
        sp.port(),
        &support::encode_command(&["INFO"]),
        Duration::from_secs(5),
    )
    .ok()?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

/// A numeric INFO field; fails the test if INFO does not report it.
fn info_u64(sp: &Spillway, field: &str) -> u64 {
    let value =
        info_field(sp, field).unwrap_or_else(|| sp.fail(&format!("INFO does not report {field}")));
    value
        .parse()
        .unwrap_or_else(|_| sp.fail(&format!("INFO {field}:{value} is not a number")))
}

/// Waits until everything logged is applied (`wb_pending:0`).
#[track_caller]
fn wait_drained(sp: &Spillway) {
    if !support::poll_until(DRAIN_TIMEOUT, || {
        info_field(sp, "wb_pending").as_deref() == Some("0")
    }) {
        sp.fail(&format!(
            "wb_pending still {:?} after {DRAIN_TIMEOUT:?}",
            info_field(sp, "wb_pending")
        ));
    }
}

/// Waits until the heartbeat reports the database up again (`db_status:up`);
/// until then a read that misses the cache is refused.
#[track_caller]
fn wait_db_up(sp: &Spillway) {
    if !support::poll_until(DRAIN_TIMEOUT, || {
        info_field(sp, "db_status").as_deref() == Some("up")
    }) {
        sp.fail(&format!(
            "db_status still {:?} after {DRAIN_TIMEOUT:?}",
            info_field(sp, "db_status")
        ));
    }
}

/// What `spillway_kv` holds for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    Tombstone,
    Str(Vec<u8>),
    /// Fields in stored order.
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
}

/// Every row of `spillway_kv`, read with `psql` (keys must be UTF-8).
fn stored_rows(psql: impl Fn(&str) -> String) -> BTreeMap<String, Stored> {
    let out = psql(
        "select convert_from(key, 'UTF8'), kind, coalesce(encode(value, 'hex'), '') \
         from spillway_kv order by key",
    );
    let mut rows = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let mut cols = line.rsplitn(3, '|');
        let (Some(hex), Some(kind), Some(key)) = (cols.next(), cols.next(), cols.next()) else {
            panic!("unexpected psql row {line:?}");
        };
        let value = unhex(hex);
        let stored = match kind {
            "0" => Stored::Tombstone,
            "1" => Stored::Str(value),
            "2" => Stored::Hash(decode_hash(&value)),
            other => panic!("row {key:?} has kind {other}"),
        };
        rows.insert(key.to_string(), stored);
    }
    rows
}

/// The hash encoding of the `value` column: `(u32 big-endian length,
/// bytes)` for each field and its value, in insertion order.
fn decode_hash(mut buf: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let take = |buf: &mut &[u8]| -> Vec<u8> {
        assert!(buf.len() >= 4, "truncated hash field length");
        let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert!(buf.len() >= 4 + len, "truncated hash field");
        let chunk = buf[4..4 + len].to_vec();
        *buf = &buf[4 + len..];
        chunk
    };
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let field = take(&mut buf);
        let value = take(&mut buf);
        fields.push((field, value));
    }
    fields
}

fn unhex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex {hex:?}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex from psql"))
        .collect()
}

/// A stored string that holds a decimal counter value.
fn as_counter(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("stored value {:?} is not a counter", bytes.escape_ascii()))
}
