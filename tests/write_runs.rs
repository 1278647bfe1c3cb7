//! A pipeline's run of write-behind writes executes as one unit, in
//! process, over the embedded SQLite store and memory cache: it costs one
//! WAL request and one fsync, a later write sees an earlier one, and a
//! failed WAL write (the WAL's test hook, reachable only in process) fails
//! every write of the run and leaves none of them visible anywhere.

use std::sync::Arc;

use bytes::Bytes;
use spillway::cmd;
use spillway::config::{Config, Policy};
use spillway::engine::Engine;
use spillway::resp::Frame;
use spillway::write::Call;

fn call(words: &[&str]) -> Call {
    let argv: Vec<Bytes> = words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect();
    let spec = cmd::lookup(&argv[0]).unwrap_or_else(|| panic!("no command {}", words[0]));
    Call { spec, argv }
}

async fn open(dir: &std::path::Path) -> Arc<Engine> {
    let mut config = Config::default();
    config.write.policy = Policy::WriteBehind;
    config.write_behind.wal_dir = dir.join("wal");
    config.database.url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
    Engine::open(config).await.expect("engine opens")
}

async fn get(engine: &Engine, key: &str) -> Frame {
    engine.read(&call(&["GET", key])).await
}

fn bulk(v: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(v.as_bytes()))
}

/// SET, INCR, APPEND, DEL, SETNX and MSET over keys that repeat.
fn the_run() -> Vec<Call> {
    [
        &["SET", "a", "1"][..],
        &["INCR", "a"],
        &["APPEND", "b", "x"],
        &["APPEND", "b", "y"],
        &["DEL", "z", "a"],
        &["SETNX", "c", "1"],
        &["SETNX", "c", "2"],
        &["MSET", "d", "1", "b", "new"],
        &["INCR", "a"],
    ]
    .iter()
    .map(|w| call(w))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_one_wal_request_and_each_write_sees_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let behind = engine.behind().expect("write-behind");
    let before = behind.writer.wal.stats();
    let out = engine.write_run(&the_run()).await;
    assert_eq!(
        out.replies,
        vec![
            Frame::Simple("OK".into()),
            Frame::Integer(2),
            Frame::Integer(1),
            Frame::Integer(2),
            Frame::Integer(1),
            Frame::Integer(1),
            Frame::Integer(0),
            Frame::Simple("OK".into()),
            Frame::Integer(1),
        ]
    );
    let after = behind.writer.wal.stats();
    // SETNX c 2 changed nothing: eight records, one fsync.
    assert_eq!(
        (after.appends - before.appends, after.fsyncs - before.fsyncs),
        (8, 1)
    );
    let first = before.last_seq.0 + 1;
    assert_eq!(out.seqs, (first..first + 8).collect::<Vec<_>>());
    assert_eq!(get(&engine, "a").await, bulk("1"));
    assert_eq!(get(&engine, "b").await, bulk("new"));
    assert_eq!(get(&engine, "c").await, bulk("1"));
    behind.writer.backlog.wait_empty().await;
    assert_eq!(get(&engine, "a").await, bulk("1"), "after the drain");
    engine
        .close(std::time::Instant::now() + std::time::Duration::from_secs(5))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_wal_write_fails_every_write_of_the_run_and_shows_none() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path()).await;
    let behind = engine.behind().expect("write-behind");
    let set_c = engine.write_run(&[call(&["SET", "c", "before"])]).await;
    assert_eq!(set_c.replies, vec![Frame::Simple("OK".into())]);
    behind.writer.backlog.wait_empty().await;
    let before = behind.writer.wal.stats();

    behind.writer.wal.inject_write_failures(1);
    let out = engine.write_run(&the_run()).await;
    assert_eq!(out.replies.len(), 9);
    for reply in &out.replies {
        assert!(
            matches!(reply, Frame::Error(e) if e.contains("injected")),
            "{reply:?}"
        );
    }
    assert!(out.seqs.is_empty());
    let after = behind.writer.wal.stats();
    assert_eq!(after.appends, before.appends, "nothing logged");
    assert_eq!(behind.writer.backlog.pending(), 0, "nothing pending");
    assert!(behind.writer.overlay.is_empty(), "nothing in the overlay");
    for key in ["a", "b", "d", "z"] {
        assert_eq!(get(&engine, key).await, Frame::Null, "{key}");
    }
    assert_eq!(get(&engine, "c").await, bulk("before"));

    // The next run does not inherit anything from the failed one.
    let out = engine.write_run(&the_run()).await;
    assert_eq!(out.replies[1], Frame::Integer(2));
    assert_eq!(
        out.replies[5..7],
        [Frame::Integer(0), Frame::Integer(0)],
        "SETNX c: c holds \"before\""
    );
    assert_eq!(get(&engine, "c").await, bulk("before"));
    engine
        .close(std::time::Instant::now() + std::time::Duration::from_secs(5))
        .await;
}
