//! Write-through group commit, through the real binary on a private
//! PostgreSQL: writes that queue while a group is in its transaction share
//! the next one, run in arrival order with the replies they would get alone,
//! and fail together only when their shared transaction fails.
//!
//! Deterministic groups come from a gate: the test holds the advisory lock
//! of one key, a write of that key blocks its group inside the database, and
//! every write sent meanwhile (each on its own connection, one at a time,
//! each counted in by INFO before the next) queues for the next group.

mod cache;
mod concurrency;
mod failures;
mod gate;
mod ordering;

#[path = "../support/mod.rs"]
mod support;

use support::{PgDatabase, Spillway};

fn start(pg_url: &str) -> Spillway {
    Spillway::start(&[
        ("SPILLWAY__DATABASE__URL", pg_url),
        ("SPILLWAY__WRITE__POLICY", "write-through"),
    ])
}

fn info_u64(c: &mut redis::Connection, field: &str) -> u64 {
    let info: String = redis::cmd("INFO").query(c).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}"))
}

fn value(pg: &PgDatabase, key: &str) -> String {
    pg.psql(&format!(
        "SELECT coalesce(convert_from(value, 'UTF8'), '<none>') FROM spillway_kv \
         WHERE key = convert_to('{key}', 'UTF8')"
    ))
}
