//! Write-through group commit, through the real binary on a private
//! PostgreSQL: writes that queue while a group is in its transaction share
//! the next one, run in arrival order with the replies they would get alone,
//! and fail together only when their shared transaction fails.
//!
//! Deterministic groups come from a gate: the test holds the advisory lock
//! of one key, a write of that key blocks its group inside the database, and
//! every write sent meanwhile (each on its own connection, one at a time,
//! each counted in by INFO before the next) queues for the next group.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use redis::Commands;
use sqlx::Connection;
use support::{PgDatabase, Postgres, RawConn, Spillway, wait_until};

const GATE: &str = "gate";

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

/// The test's hold on one advisory lock.
struct Gate {
    rt: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
}

impl Gate {
    /// Holds the lock a write of `key` takes in its transaction.
    fn hold(url: &str, key: &str) -> Gate {
        Gate::hold_id(url, spillway::store::key_hash(key.as_bytes()))
    }

    fn hold_id(url: &str, id: i64) -> Gate {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conn = rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(id)
                .execute(&mut conn)
                .await
                .expect("lock");
            conn
        });
        Gate { rt, conn }
    }

    fn release(self) {
        let Gate { rt, conn } = self;
        rt.block_on(conn.close()).expect("close");
    }
}

/// A spillway with a group stuck behind the gate, and the writes queued
/// behind that group.
struct Queued<'a> {
    sp: &'a Spillway,
    info: redis::Connection,
    writers: Vec<RawConn>,
    commits_before: u64,
}

impl<'a> Queued<'a> {
    /// Sends a write of the gate key and waits until its group blocks on
    /// the gate inside PostgreSQL.
    fn behind_gate(sp: &'a Spillway, pg: &PgDatabase) -> Queued<'a> {
        let mut info = sp.conn();
        let commits_before = info_u64(&mut info, "db_commits");
        let mut gated = sp.raw();
        gated.send_cmd(&["SET", GATE, "1"]);
        wait_until(
            "the gated group to wait on its lock",
            Duration::from_secs(10),
            || {
                pg.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted",
            ) == "1"
            },
        );
        Queued {
            sp,
            info,
            writers: vec![gated],
            commits_before,
        }
    }

    /// Sends `args` on a connection of its own and waits until spillway has
    /// taken it in, so writes queue in the order they are sent.
    fn send(&mut self, args: &[&str]) {
        let mut before = info_u64(&mut self.info, "total_commands_processed");
        let mut conn = self.sp.raw();
        conn.send_cmd(args);
        // Each INFO counts itself: one more than that is the write.
        wait_until(
            "spillway to take the write in",
            Duration::from_secs(10),
            || {
                let now = info_u64(&mut self.info, "total_commands_processed");
                let taken = now >= before + 2;
                before = now;
                taken
            },
        );
        self.writers.push(conn);
    }

    /// Opens the gate; returns each queued write's reply (the gate write's
    /// first) and how many transactions committed since the gate closed.
    fn release(mut self, gate: Gate) -> (Vec<String>, u64) {
        gate.release();
        let replies = self
            .writers
            .iter_mut()
            .map(|c| {
                String::from_utf8_lossy(&c.read_reply())
                    .trim_end()
                    .to_string()
            })
            .collect();
        let commits = info_u64(&mut self.info, "db_commits") - self.commits_before;
        (replies, commits)
    }
}

/// Waits until a session of `pg`'s database waits for an advisory lock.
fn wait_for_lock_waiter(pg: &PgDatabase) {
    wait_until(
        "a transaction to wait on the gate",
        Duration::from_secs(10),
        || {
            pg.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted",
            ) == "1"
        },
    );
}

fn value(pg: &PgDatabase, key: &str) -> String {
    pg.psql(&format!(
        "SELECT coalesce(convert_from(value, 'UTF8'), '<none>') FROM spillway_kv \
         WHERE key = convert_to('{key}', 'UTF8')"
    ))
}

#[test]
fn queued_writes_share_one_transaction_in_arrival_order_with_their_own_replies() {
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    let gate = Gate::hold(&pg.url(), GATE);
    let mut q = Queued::behind_gate(&sp, &pg);
    q.send(&["INCR", "k"]);
    q.send(&["INCR", "k"]);
    q.send(&["HSET", "k", "f", "v"]);
    q.send(&["APPEND", "k", "x"]);
    q.send(&["INCR", "k"]);
    q.send(&["SET", "other", "1"]);
    q.send(&["DEL", "k"]);
    q.send(&["SETNX", "k", "last"]);
    q.send(&["SETNX", "k", "not this"]);
    let (replies, commits) = q.release(gate);
    assert_eq!(
        replies,
        [
            "+OK",
            ":1",
            ":2",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
            ":2",
            "-ERR value is not an integer or out of range",
            "+OK",
            ":1",
            ":1",
            ":0",
        ]
    );
    assert_eq!(commits, 2, "the gated group, then one for all the others");
    assert_eq!(value(&pg, "k"), "last");
    assert_eq!(value(&pg, "other"), "1");
    let v: String = sp.conn().get("k").expect("GET");
    assert_eq!(v, "last");
}

#[test]
fn an_exec_in_a_group_aborts_when_an_earlier_write_of_the_group_changed_its_watched_key() {
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    let _: () = sp.conn().set("w", "0").expect("SET");
    let mut blocks: Vec<RawConn> = (0..3).map(|_| sp.raw()).collect();
    for (conn, (watch, value)) in blocks.iter_mut().zip([("w", "a"), ("w", "b"), ("z", "c")]) {
        assert_eq!(conn.cmd(&["WATCH", watch]), b"+OK\r\n");
        assert_eq!(conn.cmd(&["MULTI"]), b"+OK\r\n");
        assert_eq!(conn.cmd(&["SET", watch, value]), b"+QUEUED\r\n");
    }
    let gate = Gate::hold(&pg.url(), GATE);
    let mut q = Queued::behind_gate(&sp, &pg);
    for mut conn in blocks {
        let mut before = info_u64(&mut q.info, "total_commands_processed");
        conn.send_cmd(&["EXEC"]);
        wait_until("spillway to take EXEC in", Duration::from_secs(10), || {
            let now = info_u64(&mut q.info, "total_commands_processed");
            let taken = now >= before + 2;
            before = now;
            taken
        });
        q.writers.push(conn);
    }
    let (replies, commits) = q.release(gate);
    assert_eq!(replies, ["+OK", "*1\r\n+OK", "*-1", "*1\r\n+OK"]);
    assert_eq!(commits, 2);
    assert_eq!(value(&pg, "w"), "a");
    assert_eq!(value(&pg, "z"), "c");
}

#[test]
fn a_failing_transaction_fails_every_write_of_its_group_and_writes_none() {
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    pg.psql(
        "CREATE FUNCTION no_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF NEW.value = 'boom'::bytea THEN RAISE EXCEPTION 'boom refused'; END IF; \
           RETURN NEW; END $$; \
         CREATE TRIGGER no_boom BEFORE INSERT OR UPDATE ON spillway_kv \
           FOR EACH ROW EXECUTE FUNCTION no_boom()",
    );
    let gate = Gate::hold(&pg.url(), GATE);
    let mut q = Queued::behind_gate(&sp, &pg);
    q.send(&["SET", "a", "1"]);
    q.send(&["SET", "b", "boom"]);
    q.send(&["INCR", "c"]);
    let (replies, commits) = q.release(gate);
    assert_eq!(replies[0], "+OK");
    for reply in &replies[1..] {
        assert!(
            reply.starts_with("-ERR postgres") && reply.contains("boom refused"),
            "{replies:?}"
        );
    }
    assert_eq!(commits, 1, "only the gated group committed");
    assert_eq!(
        pg.psql("SELECT count(*) FROM spillway_kv WHERE key <> 'gate'::bytea"),
        "0"
    );
    let n: i64 = sp.conn().incr("c", 1).expect("INCR alone");
    assert_eq!(n, 1, "the failed INCR left nothing behind");
}

#[test]
fn a_row_the_database_rejects_fails_only_its_own_write() {
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    pg.psql(
        "ALTER TABLE spillway_kv ADD CONSTRAINT no_poison \
         CHECK (value IS NULL OR value <> 'poison'::bytea)",
    );
    let gate = Gate::hold(&pg.url(), GATE);
    let mut q = Queued::behind_gate(&sp, &pg);
    q.send(&["SET", "a", "1"]);
    q.send(&["SET", "b", "poison"]);
    q.send(&["INCR", "c"]);
    let (replies, _) = q.release(gate);
    assert_eq!(replies[1], "+OK");
    assert!(
        replies[2].starts_with("-ERR postgres rejected the write"),
        "{replies:?}"
    );
    assert_eq!(replies[3], ":1");
    assert_eq!(value(&pg, "a"), "1");
    assert_eq!(value(&pg, "b"), "");
    assert_eq!(value(&pg, "c"), "1");
}

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

/// While a write's COMMIT is under way, the cache holds no row of its keys
/// (the writer's lease stands there), so no reader can see the new row in
/// the database and then the old one in the cache. The COMMIT is held by a
/// deferred constraint trigger that waits for the test's lock.
#[test]
fn while_a_write_commits_the_cache_holds_no_row_of_its_keys() {
    const COMMIT_GATE: i64 = 424_242;
    let redis = support::RedisServer::start();
    let pg = PgDatabase::create();
    let sp = Spillway::start(&[
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", &redis.url()),
        ("SPILLWAY__DATABASE__URL", &pg.url()),
    ]);
    let mut c = sp.conn();
    let _: () = c.set("c", "old").expect("SET");
    let _: String = c.get("c").expect("GET");
    let mut cache = redis.conn();
    let cached = |cache: &mut redis::Connection| -> Option<Vec<u8>> {
        cache.get("spillway:c").expect("redis GET")
    };
    assert!(
        cached(&mut cache).is_some_and(|v| v.first() != Some(&b'L')),
        "the old row is cached"
    );
    pg.psql(&format!(
        "CREATE FUNCTION wait_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           PERFORM pg_advisory_lock({COMMIT_GATE}); PERFORM pg_advisory_unlock({COMMIT_GATE}); \
           RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER wait_gate AFTER INSERT OR UPDATE ON spillway_kv \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_gate()"
    ));
    let gate = Gate::hold_id(&pg.url(), COMMIT_GATE);
    let mut writer = sp.raw();
    writer.send_cmd(&["SET", "c", "new"]);
    wait_for_lock_waiter(&pg);
    let during = cached(&mut cache);
    assert!(
        during.as_ref().is_none_or(|v| v.first() == Some(&b'L')),
        "a row is cached while its write commits: {:?}",
        during.map(|v| String::from_utf8_lossy(&v).into_owned())
    );
    let v: String = c.get("c").expect("GET during the commit");
    assert_eq!(v, "old", "not committed yet");
    gate.release();
    assert_eq!(writer.read_reply(), b"+OK\r\n");
    let v: String = c.get("c").expect("GET after the commit");
    assert_eq!(v, "new");
}

/// Optimistic increments (WATCH, GET, MULTI, SET, EXEC, again on nil) from
/// many clients of two spillway processes: EXECs of one key meet in one
/// group and across processes, and only the first of them may win.
#[test]
fn watch_cas_loops_on_two_processes_lose_no_increment() {
    const CLIENTS: usize = 6;
    const OPS: i64 = 20;
    let redis = support::RedisServer::start();
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

/// PostgreSQL stopped and started again under load: every write gets a
/// reply, every acknowledged write is in PostgreSQL afterwards, and every
/// write refused without "outcome unknown" is not.
#[test]
fn postgres_stopped_mid_load_loses_no_acknowledged_write() {
    const CLIENTS: usize = 16;
    let mut pg = Postgres::start();
    let sp = Spillway::start(&[
        ("SPILLWAY__DATABASE__URL", &pg.url()),
        ("SPILLWAY__DATABASE__TIMEOUT", "2s"),
        ("SPILLWAY__DATABASE__ACQUIRE_TIMEOUT", "1s"),
    ]);
    let stop = AtomicBool::new(false);
    let (acked, failed, unknown) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let outcomes: Mutex<HashMap<String, &'static str>> = Mutex::default();
    let client = sp.client();
    thread::scope(|s| {
        for i in 0..CLIENTS {
            let (client, stop, outcomes) = (&client, &stop, &outcomes);
            let (acked, failed, unknown) = (&acked, &failed, &unknown);
            s.spawn(move || {
                let mut c = client.get_connection().expect("connect");
                let mut j = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k:{i}:{j}");
                    let outcome = match c.set::<_, _, ()>(&key, &key) {
                        Ok(()) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                            "acked"
                        }
                        Err(e) if e.to_string().contains("outcome unknown") => {
                            unknown.fetch_add(1, Ordering::Relaxed);
                            "unknown"
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            "failed"
                        }
                    };
                    outcomes.lock().expect("outcomes").insert(key, outcome);
                    j += 1;
                }
            });
        }
        let long = Duration::from_secs(60);
        wait_until("writes before the stop", long, || {
            acked.load(Ordering::Relaxed) >= 300
        });
        pg.stop();
        wait_until("writes refused while stopped", long, || {
            failed.load(Ordering::Relaxed) >= 50
        });
        let before = acked.load(Ordering::Relaxed);
        pg.start_again();
        wait_until("writes after the restart", long, || {
            acked.load(Ordering::Relaxed) >= before + 300
        });
        stop.store(true, Ordering::Relaxed);
    });
    let stored: HashMap<String, String> = pg
        .psql("SELECT convert_from(key, 'UTF8'), convert_from(value, 'UTF8') FROM spillway_kv")
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let outcomes = outcomes.into_inner().expect("outcomes");
    for (key, outcome) in &outcomes {
        match *outcome {
            "acked" => assert_eq!(stored.get(key), Some(key), "acknowledged {key} lost"),
            "failed" => assert_eq!(stored.get(key), None, "refused {key} was written"),
            _ => {}
        }
    }
    assert!(outcomes.values().filter(|o| **o == "failed").count() >= 50);
}

/// A write-through transaction after PostgreSQL restarted starts at once:
/// the connection kept from before the restart is dead, and is replaced
/// instead of failing the write.
#[test]
fn the_first_transaction_after_a_postgres_restart_succeeds() {
    let mut pg = Postgres::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt
        .block_on(spillway::store::connect(&spillway::store::StoreOptions {
            url: pg.url(),
            pool_size: 4,
            timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }))
        .expect("connect");
    let key = bytes::Bytes::from_static(b"k");
    let write = |value: &'static [u8], version: u64| {
        let store = Arc::clone(&store);
        let key = key.clone();
        rt.block_on(async move {
            let (mut txn, _) = store.begin(std::slice::from_ref(&key)).await?;
            let row = spillway::keyspace::Row {
                entry: Some(spillway::keyspace::Entry {
                    value: spillway::keyspace::Value::Str(bytes::Bytes::from_static(value)),
                    expire_at: None,
                }),
                version: spillway::keyspace::Version(version),
            };
            txn.put(&[(key, row)]).await?;
            txn.commit().await
        })
    };
    write(b"before", 1).expect("write before the restart");
    pg.stop();
    pg.start_again();
    write(b"after", 2).expect("first write after the restart");
    assert_eq!(
        pg.psql("SELECT convert_from(value, 'UTF8') FROM spillway_kv WHERE key = 'k'::bytea"),
        "after"
    );
    rt.block_on(store.close());
}
