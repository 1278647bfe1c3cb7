//! Read-modify-write commands are atomic per key with many clients on two
//! spillway processes sharing one Redis and one PostgreSQL.

mod support;

use std::thread;

use redis::Commands;
use support::{PgDatabase, RedisServer, Spillway};

fn pair() -> (RedisServer, PgDatabase, Spillway, Spillway) {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let (redis_url, pg_url) = (redis.url(), pg.url());
    let env = [
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", redis_url.as_str()),
        ("SPILLWAY__DATABASE__URL", pg_url.as_str()),
    ];
    let a = Spillway::start(&env);
    let b = Spillway::start(&env);
    (redis, pg, a, b)
}

#[test]
fn incr_hincrby_and_append_from_two_processes_lose_nothing() {
    let (_redis, pg, a, b) = pair();
    const CLIENTS: usize = 4;
    const OPS: usize = 50;
    let clients = [a.client(), b.client()];
    thread::scope(|s| {
        for client in &clients {
            for _ in 0..CLIENTS {
                s.spawn(move || {
                    let mut c = client.get_connection().unwrap();
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
    let clients = [a.client(), b.client()];
    let wins: usize = thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let client = &clients[i % 2];
                s.spawn(move || {
                    let won: bool = client.get_connection().unwrap().set_nx("lock", i).unwrap();
                    usize::from(won)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
}
