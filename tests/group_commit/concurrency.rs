//! Many clients at once, with grouping left to chance: every reply is the
//! one a serial run could give, and the rows are what Redis would hold.

use std::thread;

use redis::Commands;

use crate::support::{PgDatabase, RedisServer, Spillway};
use crate::{info_u64, start, value};

#[test]
fn concurrent_incr_and_append_of_one_key_each_reply_as_if_alone() {
    const CLIENTS: usize = 40;
    const OPS: usize = 50;
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    let commits_before = info_u64(&mut sp.conn(), "db_commits");
    let client = sp.client();
    let replies: Vec<(i64, usize)> = thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut c = client.get_connection().expect("connect");
                    (0..OPS)
                        .map(|_| {
                            let n: i64 = c.incr("n", 1).expect("INCR");
                            let len: usize = c.append("s", "x").expect("APPEND");
                            (n, len)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("client"))
            .collect()
    });
    let total = CLIENTS * OPS;
    let mut incrs: Vec<i64> = replies.iter().map(|r| r.0).collect();
    let mut lens: Vec<usize> = replies.iter().map(|r| r.1).collect();
    incrs.sort_unstable();
    lens.sort_unstable();
    assert_eq!(incrs, (1..=total as i64).collect::<Vec<_>>());
    assert_eq!(lens, (1..=total).collect::<Vec<_>>());
    assert_eq!(value(&pg, "n"), total.to_string());
    assert_eq!(value(&pg, "s").len(), total);
    let commits = info_u64(&mut sp.conn(), "db_commits") - commits_before;
    assert!(
        commits < 2 * total as u64,
        "{commits} transactions for {} writes: concurrent writes share them",
        2 * total
    );
}

/// Optimistic increments (WATCH, GET, MULTI, SET, EXEC, again on nil) from
/// many clients of two spillway processes: EXECs of one key meet in one
/// group and across processes, and only the first of them may win.
#[test]
fn watch_cas_loops_on_two_processes_lose_no_increment() {
    const CLIENTS: usize = 6;
    const OPS: i64 = 20;
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let (redis_url, pg_url) = (redis.url(), pg.url());
    let env = [
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", redis_url.as_str()),
        ("SPILLWAY__DATABASE__URL", pg_url.as_str()),
    ];
    let (a, b) = (Spillway::start(&env), Spillway::start(&env));
    let clients = if option_env!("XXONE").is_some() {
        [a.client(), a.client()]
    } else {
        [a.client(), b.client()]
    };
    thread::scope(|s| {
        for client in &clients {
            for _ in 0..CLIENTS {
                s.spawn(move || {
                    let mut c = client.get_connection().expect("connect");
                    for _ in 0..OPS {
                        let () = redis::transaction(&mut c, &["c"], |c, pipe| {
                            let old: Option<i64> = c.get("c")?;
                            pipe.set("c", old.unwrap_or(0) + 1).ignore().query(c)
                        })
                        .expect("CAS");
                    }
                });
            }
        }
    });
    let total = 2 * CLIENTS as i64 * OPS;
    assert_eq!(value(&pg, "c"), total.to_string());
    let v: i64 = a.conn().get("c").expect("GET");
    assert_eq!(v, total);
}

/// Each client runs its own script over its own key (so its replies are
/// known) and adds to shared counters (so their sums are known), all at once.
#[test]
fn mixed_concurrent_writes_leave_the_rows_redis_would() {
    const CLIENTS: usize = 24;
    const ROUNDS: usize = 30;
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    let client = sp.client();
    thread::scope(|s| {
        for i in 0..CLIENTS {
            let client = &client;
            s.spawn(move || {
                let mut c = client.get_connection().expect("connect");
                let own = format!("own:{i}");
                for r in 0..ROUNDS {
                    let _: () = c.set(&own, r).expect("SET");
                    let n: i64 = c.incr(&own, 10).expect("INCRBY");
                    assert_eq!(n, r as i64 + 10);
                    let len: usize = c.append(&own, "!").expect("APPEND");
                    assert_eq!(len, (r + 10).to_string().len() + 1);
                    let shared: i64 = c.incr(format!("sum:{}", r % 3), i + 1).expect("INCRBY");
                    assert!(shared > 0);
                    if r % 5 == 4 {
                        let gone: i64 = c.del(&own).expect("DEL");
                        assert_eq!(gone, 1);
                        let again: i64 = c.del(&own).expect("DEL");
                        assert_eq!(again, 0);
                    }
                }
            });
        }
    });
    for i in 0..CLIENTS {
        // ROUNDS - 1 = 29: 29 % 5 = 4, so every own key ended deleted.
        assert_eq!(value(&pg, &format!("own:{i}")), "<none>");
        assert_eq!(
            pg.psql(&format!(
                "SELECT kind FROM spillway_kv WHERE key = convert_to('own:{i}', 'UTF8')"
            )),
            "0",
            "a tombstone"
        );
    }
    let per_client: usize = (1..=CLIENTS).sum();
    for j in 0..3 {
        let rounds = (0..ROUNDS).filter(|r| r % 3 == j).count();
        assert_eq!(
            value(&pg, &format!("sum:{j}")),
            (per_client * rounds).to_string()
        );
    }
}
