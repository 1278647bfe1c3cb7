//! Backend outages in write-through (CONTRACT §4): the database stopped, the
//! cache killed, and the cache frozen while holding a value that a write
//! made stale.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use support::{Postgres, RedisServer, Spillway};

fn start(redis: &RedisServer, pg_url: &str) -> Spillway {
    Spillway::start(&[
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", &redis.url()),
        ("SPILLWAY__DATABASE__URL", pg_url),
        ("SPILLWAY__DATABASE__TIMEOUT", "2s"),
        ("SPILLWAY__DATABASE__ACQUIRE_TIMEOUT", "2s"),
    ])
}

fn info_field(c: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").query(c).unwrap();
    info.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn database_down_fails_writes_fast_serves_hits_and_recovers() {
    let redis = RedisServer::start();
    let mut pg = Postgres::start();
    let sp = start(&redis, &pg.url());
    let mut c = sp.conn();
    let _: () = c.set("cached", "yes").unwrap();
    let v: String = c.get("cached").unwrap();
    assert_eq!(v, "yes");
    pg.stop();

    let t = Instant::now();
    let err = c.set::<_, _, ()>("written", "during outage").unwrap_err();
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "write error took {:?}",
        t.elapsed()
    );
    assert!(
        err.to_string().contains("postgres"),
        "error names the backend: {err}"
    );
    let v: String = c.get("cached").unwrap();
    assert_eq!(v, "yes", "cache hits are served while the database is down");
    let miss = c.get::<_, Option<String>>("never-cached").unwrap_err();
    assert!(miss.to_string().contains("postgres"), "{miss}");
    // In one pipeline too: the hit is served, only the miss fails.
    let mut raw = sp.raw();
    let mut pipeline = support::encode_command(&["GET", "cached"]);
    pipeline.extend(support::encode_command(&["GET", "never-cached"]));
    raw.send(&pipeline);
    assert_eq!(raw.read_reply(), b"$3\r\nyes\r\n");
    assert!(raw.read_reply().starts_with(b"-ERR postgres"));
    let err = c.incr::<_, _, i64>("counter", 1).unwrap_err();
    assert!(err.to_string().contains("postgres"), "{err}");

    pg.start_again();
    let mut ok = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !ok {
        ok = c.set::<_, _, ()>("after", "back").is_ok();
    }
    assert!(ok, "writes work again once postgres is back\n{}", sp.log());
    assert_eq!(
        pg.psql("select count(*) from spillway_kv where key = 'written'::bytea"),
        "0",
        "a failed write wrote nothing"
    );
    assert_eq!(
        pg.psql("select count(*) from spillway_kv where key = 'counter'::bytea"),
        "0"
    );
    let v: Option<String> = c.get("written").unwrap();
    assert_eq!(v, None);
}

#[test]
fn cache_killed_reads_and_writes_go_to_the_database() {
    let mut redis = RedisServer::start();
    let pg = support::PgDatabase::create();
    let sp = start(&redis, &pg.url());
    let mut c = sp.conn();
    let _: () = c.set("k", "1").unwrap();
    let _: String = c.get("k").unwrap();
    redis.kill();
    let _: () = c.set("k", "2").unwrap();
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "2", "read-your-writes with the cache down");
    let n: i64 = c.incr("n", 1).unwrap();
    assert_eq!(n, 1);
    redis.restart();
    assert!(
        support::poll_until(Duration::from_secs(20), || info_field(
            &mut c,
            "cache_status"
        ) == "up"),
        "{}",
        sp.log()
    );
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "2");
    let _: String = c.get("k").unwrap();
    assert!(
        redis.conn().exists::<_, bool>("spillway:k").unwrap(),
        "cache is filled again after recovery"
    );
}

/// A write whose invalidation cannot reach the cache must not let the cache
/// serve the old value afterwards. Redis keeps its data across the restart
/// (AOF, fsync always), so the old entry really is there when it returns:
/// only spillway's recovery stands between it and the clients.
#[test]
fn keys_written_while_the_cache_was_down_are_invalidated_before_hits_resume() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let pg = support::PgDatabase::create();
    let sp = start(&redis, &pg.url());
    let mut c = sp.conn();
    let _: () = c.set("k", "old").unwrap();
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "old");
    assert!(
        redis.conn().exists::<_, bool>("spillway:k").unwrap(),
        "the old value is cached (and in the AOF)"
    );

    redis.kill();
    let _: () = c.set("k", "new").unwrap();
    let v: String = c.get("k").unwrap();
    assert_eq!(v, "new", "read-your-writes while the cache is unreachable");
    redis.restart();

    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let v: String = c.get("k").unwrap();
        assert_eq!(v, "new", "the stale cached value was served");
        if info_field(&mut c, "cache_status") == "up" {
            break;
        }
    }
    assert_eq!(info_field(&mut c, "cache_status"), "up", "{}", sp.log());
    for _ in 0..20 {
        let v: String = c.get("k").unwrap();
        assert_eq!(v, "new");
    }
    let cached: Option<Vec<u8>> = redis.conn().get("spillway:k").unwrap();
    assert!(
        cached.is_none_or(|v| !v.ends_with(b"old")),
        "the stale entry is gone from Redis"
    );
}
