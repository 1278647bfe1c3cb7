//! Failures: a failed shared transaction fails each of its writes and
//! writes nothing; a row the database rejects fails only its own write;
//! PostgreSQL stopped under load loses no acknowledged write; a restart
//! costs no write its connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use redis::Commands;

use crate::gate::{GATE, Gate, Queued};
use crate::support::{PgDatabase, Postgres, Spillway, wait_until};
use crate::{start, value};

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
