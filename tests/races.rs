//! Read-modify-write commands are atomic per key with many clients on two
//! spillway processes sharing one Redis and one PostgreSQL.

mod support;

use std::thread;

use redis::Commands;
use support::{PgDatabase, RedisServer, Spillway};

fn pair() -> (RedisServer, PgDatabase, Spillway, Spillway) {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let env = [
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", redis.url()),
        ("SPILLWAY__DATABASE__URL", pg.url()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = Spillway::start(&env);
    let b = Spillway::start(&env);
    (redis, pg, a, b)
}

#[test]
fn incr_hincrby_and_append_from_two_processes_lose_nothing() {
    let (_redis, pg, a, b) = pair();
    const CLIENTS: usize = 4;
    const OPS: usize = 50;
    thread::scope(|s| {
        for sp in [&a, &b] {
            for _ in 0..CLIENTS {
                s.spawn(move || {
                    let mut c = sp.conn();
                    for _ in 0..OPS {
                        let _: i64 = c.incr("counter", 1).unwrap();
                        let _: i64 = c.hincr("h", "f", 2).unwrap();
                        let _: i64 = c.append("log", "x").unwrap();
                    }
                });
            }
        }
    });
    let total = (2 * CLIENTS * OPS) as i64;
    let mut c = a.conn();
    assert_eq!(c.get::<_, i64>("counter").unwrap(), total);
    assert_eq!(c.hget::<_, _, i64>("h", "f").unwrap(), 2 * total);
    assert_eq!(c.strlen::<_, i64>("log").unwrap(), total);
    assert_eq!(
        pg.psql("select convert_from(value, 'UTF8') from spillway_kv where key = 'counter'::bytea"),
        total.to_string()
    );
}

#[test]
fn exactly_one_setnx_wins() {
    let (_redis, _pg, a, b) = pair();
    let wins: usize = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let sp = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    let won: bool = sp.conn().set_nx("lock", i).unwrap();
                    usize::from(won)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
}
