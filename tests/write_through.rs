//! Write-through in front of a private Redis and PostgreSQL, configured as
//! docker-compose.yml configures the demo stack: success means committed
//! (visible through psql), the cache can be lost without losing anything,
//! MULTI/EXEC and WATCH are exact across spillway processes.

mod support;

use redis::Commands;
use support::{PgDatabase, RedisServer, Spillway};

/// The spillway environment of docker-compose.yml, with the compose
/// service names pointed at this test's private servers.
fn compose_env(redis: &RedisServer, pg: &PgDatabase) -> Vec<(String, String)> {
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .expect("docker-compose.yml is in the repository");
    let mut env = Vec::new();
    for line in compose.lines().map(str::trim) {
        let Some((k, v)) = line.split_once(": ") else {
            continue;
        };
        if !k.starts_with("SPILLWAY__") || k.ends_with("LISTEN") || k.ends_with("WAL_DIR") {
            continue;
        }
        let v = match k {
            "SPILLWAY__CACHE__URL" => redis.url(),
            "SPILLWAY__DATABASE__URL" => pg.url(),
            _ => v.to_string(),
        };
        env.push((k.to_string(), v));
    }
    assert!(
        env.iter()
            .any(|(k, v)| k == "SPILLWAY__CACHE__BACKEND" && v == "redis"),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|(k, v)| k == "SPILLWAY__WRITE__POLICY" && v == "write-through")
    );
    env
}

fn start(redis: &RedisServer, pg: &PgDatabase) -> Spillway {
    let env = compose_env(redis, pg);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Spillway::start(&env)
}

#[test]
fn acknowledged_writes_are_in_postgres_and_survive_losing_the_cache() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let sp = start(&redis, &pg);
    let mut c = sp.conn();
    let _: () = c.set("user:1", "ann").unwrap();
    let _: () = c.hset("h", "b", "2").unwrap();
    let _: () = c.hset("h", "a", "1").unwrap();
    let n: i64 = c.incr("counter", 5).unwrap();
    assert_eq!(n, 5);
    let bin: Vec<u8> = vec![0, 13, 10, 255];
    let _: () = c.set(&bin[..], &bin[..]).unwrap();
    // Visible in Postgres the moment the reply arrived.
    assert_eq!(
        pg.psql("select convert_from(value, 'UTF8') from spillway_kv where key = 'user:1'::bytea"),
        "ann"
    );
    assert_eq!(
        pg.psql("select encode(value, 'hex') from spillway_kv where key = '\\x000d0aff'::bytea"),
        "000d0aff"
    );
    // Warm the cache, then lose all of it.
    let _: String = c.get("user:1").unwrap();
    let cached: Vec<String> = redis.conn().keys("spillway:*").unwrap();
    assert!(
        !cached.is_empty(),
        "reads fill the shared cache under the prefix"
    );
    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    let v: String = c.get("user:1").unwrap();
    assert_eq!(v, "ann");
    let h: Vec<(String, String)> = c.hgetall("h").unwrap();
    assert_eq!(h, vec![("b".into(), "2".into()), ("a".into(), "1".into())]);
    let got: Vec<u8> = c.get(&bin[..]).unwrap();
    assert_eq!(got, bin);
    // DEL leaves a tombstone with a version, not a live row.
    let _: () = c.del("user:1").unwrap();
    assert_eq!(
        pg.psql("select kind from spillway_kv where key = 'user:1'::bytea"),
        "0"
    );
    let gone: Option<String> = c.get("user:1").unwrap();
    assert_eq!(gone, None);
}

#[test]
fn a_write_replaces_the_cached_value_for_every_instance() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let a = start(&redis, &pg);
    let b = start(&redis, &pg);
    let (mut ca, mut cb) = (a.conn(), b.conn());
    let _: () = ca.set("k", "one").unwrap();
    let v: String = cb.get("k").unwrap(); // cached by b
    assert_eq!(v, "one");
    let _: () = ca.set("k", "two").unwrap();
    let v: String = cb.get("k").unwrap();
    assert_eq!(
        v, "two",
        "b must not serve the value cached before a's write"
    );
    // negative entries too
    let none: Option<String> = cb.get("fresh").unwrap();
    assert_eq!(none, None);
    let _: () = ca.set("fresh", "now").unwrap();
    let v: String = cb.get("fresh").unwrap();
    assert_eq!(v, "now");
}

#[test]
fn multi_exec_is_one_transaction_and_watch_sees_other_instances() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let a = start(&redis, &pg);
    let b = start(&redis, &pg);
    let mut ca = a.conn();
    let mut cb = b.conn();
    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .incr("x", 1)
        .incr("y", 2)
        .query(&mut ca)
        .unwrap();
    assert_eq!((x, y), (1, 2));
    assert_eq!(
        pg.psql(
            "select count(distinct version) from spillway_kv where key in ('x'::bytea, 'y'::bytea)"
        ),
        "1"
    );

    // WATCH on a, a write through b, EXEC on a aborts.
    let _: () = redis::cmd("WATCH").arg("x").query(&mut ca).unwrap();
    let _: () = cb.set("x", 100).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut ca).unwrap();
    let _: () = redis::cmd("SET").arg("x").arg(7).query(&mut ca).unwrap();
    let r: Option<Vec<String>> = redis::cmd("EXEC").query(&mut ca).unwrap();
    assert_eq!(
        r, None,
        "EXEC must abort after another instance wrote the watched key"
    );
    let v: i64 = ca.get("x").unwrap();
    assert_eq!(v, 100);

    // Without interference it commits.
    let _: () = redis::cmd("WATCH").arg("x").query(&mut ca).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut ca).unwrap();
    let _: () = redis::cmd("INCR").arg("x").query(&mut ca).unwrap();
    let r: Option<Vec<i64>> = redis::cmd("EXEC").query(&mut ca).unwrap();
    assert_eq!(r, Some(vec![101]));
}

#[test]
fn data_lives_in_postgres_across_restarts_of_everything_else() {
    let mut redis = RedisServer::start();
    let pg = PgDatabase::create();
    let mut sp = start(&redis, &pg);
    let mut c = sp.conn();
    for i in 0..50 {
        let _: () = c.set(format!("k{i}"), i).unwrap();
    }
    sp.sigkill();
    redis.restart();
    sp.restart();
    let mut c = sp.conn();
    for i in 0..50 {
        let v: i64 = c.get(format!("k{i}")).unwrap();
        assert_eq!(v, i);
    }
}

fn redis_calls(redis: &RedisServer, command: &str) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.conn())
        .unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A pipeline's run of reads loads its keys in one round trip to Redis,
/// and reads still see the writes that precede them in the pipeline.
#[test]
fn pipelined_reads_share_cache_round_trips_and_keep_order_around_writes() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let sp = start(&redis, &pg);
    let mut raw = sp.raw();
    let mut warm = Vec::new();
    for i in 0..16 {
        warm.extend(support::encode_command(&[
            "SET",
            &format!("k{i}"),
            &i.to_string(),
        ]));
        warm.extend(support::encode_command(&["GET", &format!("k{i}")]));
    }
    raw.send(&warm);
    for _ in 0..32 {
        raw.read_reply();
    }
    let (gets, mgets) = (redis_calls(&redis, "get"), redis_calls(&redis, "mget"));
    let mut pipeline = Vec::new();
    for i in 0..16 {
        pipeline.extend(support::encode_command(&["GET", &format!("k{i}")]));
    }
    raw.send(&pipeline);
    for i in 0..16 {
        let value = i.to_string();
        assert_eq!(
            raw.read_reply(),
            format!("${}\r\n{value}\r\n", value.len()).into_bytes()
        );
    }
    let round_trips = (redis_calls(&redis, "get") - gets) + (redis_calls(&redis, "mget") - mgets);
    assert!(
        round_trips <= 4,
        "16 pipelined hits took {round_trips} cache round trips"
    );

    let mut mixed = Vec::new();
    for cmd in [
        &["SET", "x", "1"][..],
        &["GET", "x"],
        &["SET", "x", "2"],
        &["GET", "x"],
        &["MGET", "x", "k1"],
        &["DEL", "x"],
        &["EXISTS", "x"],
    ] {
        mixed.extend(support::encode_command(cmd));
    }
    raw.send(&mixed);
    let replies: Vec<Vec<u8>> = (0..7).map(|_| raw.read_reply()).collect();
    assert_eq!(
        replies,
        [
            &b"+OK\r\n"[..],
            b"$1\r\n1\r\n",
            b"+OK\r\n",
            b"$1\r\n2\r\n",
            b"*2\r\n$1\r\n2\r\n$1\r\n1\r\n",
            b":1\r\n",
            b":0\r\n",
        ]
        .map(<[u8]>::to_vec)
    );
}
