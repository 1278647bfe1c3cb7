//! The tombstone sweeper against a real PostgreSQL: a tombstone outlives
//! `database.tombstone_retention` while some write-behind instance's
//! low-water version (its row in `spillway_checkpoints`) is below it, and
//! goes once that instance's row is raised or deleted.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use support::{PgDatabase, Spillway, poll_until, wait_until};

const RETENTION: &str = "1s";
/// Long enough for several sweeps (one a second) past the retention.
const SWEEPS: Duration = Duration::from_secs(4);
const DEADLINE: Duration = Duration::from_secs(20);

/// The stored version of `key`'s tombstone, if it has one.
fn tombstone(pg: &PgDatabase, key: &str) -> Option<i64> {
    let out = pg.psql(&format!(
        "SELECT version FROM spillway_kv WHERE key = '{key}'::bytea AND kind = 0"
    ));
    let out = out.trim();
    (!out.is_empty()).then(|| out.parse().expect("a version"))
}

fn start(pg: &PgDatabase, policy: &str) -> Spillway {
    Spillway::start(&[
        ("SPILLWAY__DATABASE__URL", &pg.url()),
        ("SPILLWAY__DATABASE__TOMBSTONE_RETENTION", RETENTION),
        ("SPILLWAY__WRITE__POLICY", policy),
    ])
}

#[test]
fn tombstones_wait_for_every_instance_low_water_version() {
    let pg = PgDatabase::create();
    let sp = start(&pg, "write-through");
    let mut c = sp.conn();
    // Write-through keeps no checkpoint row of its own.
    assert_eq!(
        pg.psql("SELECT count(*) FROM spillway_checkpoints").trim(),
        "0"
    );

    let _: () = c.set("early", "1").unwrap();
    let _: i64 = c.del("early").unwrap();
    let early = tombstone(&pg, "early").expect("DEL leaves a tombstone");
    // A later version for the second tombstone (versions are ms << 16).
    let t = Instant::now();
    wait_until("the clock to move", Duration::from_secs(1), || {
        t.elapsed() >= Duration::from_millis(5)
    });
    let _: () = c.set("late", "1").unwrap();
    let _: i64 = c.del("late").unwrap();
    let late = tombstone(&pg, "late").expect("DEL leaves a tombstone");
    assert!(late > early);

    // A write-behind instance that is away, having passed `early` only.
    pg.psql(&format!(
        "INSERT INTO spillway_checkpoints (instance, seq, updated_at, low_version) \
         VALUES ('away', 42, 0, {})",
        early + 1
    ));
    wait_until(
        "the tombstone below the low-water version to be purged",
        DEADLINE,
        || tombstone(&pg, "early").is_none(),
    );
    let kept_since = Instant::now();
    assert!(
        !poll_until(SWEEPS, || tombstone(&pg, "late").is_none()),
        "a tombstone above an instance's low-water version was purged"
    );
    assert!(kept_since.elapsed() >= SWEEPS);
    // `late` is now far older than the retention, and still there.
    assert_eq!(
        pg.psql("SELECT count(*) FROM spillway_kv WHERE kind = 0")
            .trim(),
        "1"
    );

    // An instance that has not reported yet (NULL) holds everything back too.
    pg.psql("UPDATE spillway_checkpoints SET low_version = NULL WHERE instance = 'away'");
    let _: () = c.set("third", "1").unwrap();
    let _: i64 = c.del("third").unwrap();
    assert!(
        !poll_until(SWEEPS, || tombstone(&pg, "late").is_none()
            || tombstone(&pg, "third").is_none()),
        "a tombstone was purged while an instance had not reported"
    );

    // The instance catches up (or its row is deleted): both go.
    pg.psql(&format!(
        "UPDATE spillway_checkpoints SET low_version = {} WHERE instance = 'away'",
        i64::MAX
    ));
    wait_until("the tombstones to be purged", DEADLINE, || {
        tombstone(&pg, "late").is_none() && tombstone(&pg, "third").is_none()
    });

    let _: () = c.set("fourth", "1").unwrap();
    let _: i64 = c.del("fourth").unwrap();
    pg.psql("UPDATE spillway_checkpoints SET low_version = 1 WHERE instance = 'away'");
    assert!(!poll_until(SWEEPS, || tombstone(&pg, "fourth").is_none()));
    pg.psql("DELETE FROM spillway_checkpoints WHERE instance = 'away'");
    wait_until(
        "the tombstone to be purged once the row is gone",
        DEADLINE,
        || tombstone(&pg, "fourth").is_none(),
    );
}

#[test]
fn a_write_behind_instance_reports_its_low_water_version() {
    let pg = PgDatabase::create();
    let sp = start(&pg, "write-behind");
    let mut c = sp.conn();
    let _: () = c.set("k", "v").unwrap();
    let _: i64 = c.del("k").unwrap();
    // Reported before serving, then every second: a minute below the clock.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let low = || {
        pg.psql("SELECT coalesce(low_version, 0) FROM spillway_checkpoints")
            .trim()
            .parse::<i64>()
            .unwrap_or(0)
    };
    wait_until("a low-water version near the clock", DEADLINE, || {
        let millis = low() >> 16;
        millis > now_ms() - 65_000 && millis <= now_ms() - 59_000
    });
    wait_until("the DEL to land", DEADLINE, || {
        tombstone(&pg, "k").is_some()
    });
    // Its own margin keeps the fresh tombstone past the 1s retention.
    let deleted = tombstone(&pg, "k").unwrap();
    assert!(low() < deleted);
    assert!(!poll_until(SWEEPS, || tombstone(&pg, "k").is_none()));
}
