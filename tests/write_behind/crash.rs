//! SIGKILL in the middle of a pipelined write load, also while the replay
//! of the previous crash is being applied: after the drain, Postgres holds
//! for every key a value between the last acknowledged and the last sent
//! (CONTRACT invariants 2 and 4), deletes included, and the proxy serves
//! the same.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::load::{self, Load, Mix, Tally};
use crate::support::{PgDatabase, RedisServer, Spillway};
use crate::{Stored, as_counter, info_field, start, stored_rows, wait_drained};

/// Acknowledgements to wait for between two crashes.
const ACKS_PER_ROUND: u64 = 1_000;
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn sigkill_during_load_and_replay_loses_no_acknowledged_write() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    // Small segments: rotation and the deletion of applied segments happen
    // between the crashes too.
    let mut sp = start(
        &redis,
        &pg.url(),
        &[("SPILLWAY__WRITE_BEHIND__SEGMENT_BYTES", "64KiB")],
    );
    let load = Load::start(sp.addr(), Mix::WithHashes);
    for round in 0..3 {
        load.wait_for_acks(ACKS_PER_ROUND, LOAD_TIMEOUT);
        load.crash(|| sp.sigkill());
        sp.restart();
        if round == 1 {
            // Crash again at once, while the replayed records are being applied.
            let pending = info_field(&sp, "wb_pending");
            sp.sigkill();
            eprintln!("killed during replay with wb_pending {pending:?}");
            sp.restart();
        }
        load.resume();
    }
    load.wait_for_acks(ACKS_PER_ROUND, LOAD_TIMEOUT);
    let tally = load.stop();
    assert!(
        tally.errors.is_empty(),
        "error replies to writes: {:?}",
        &tally.errors[..tally.errors.len().min(10)]
    );

    let unanswered = tally
        .sent
        .iter()
        .filter(|(k, sent)| tally.acked.get(*k) != Some(sent))
        .count();
    eprintln!("{unanswered} keys had writes in flight at a crash");

    let deleted = delete_some(&sp, &tally);
    sp.sigkill();
    sp.restart();
    wait_drained(&sp);

    let rows = stored_rows(|sql| pg.psql(sql));
    check_rows(&sp, &tally, &deleted, &rows);
}

/// Connections of the pipelined load in the test below.
const CLIENTS: usize = 8;
/// Commands per pipeline, as `redis-benchmark -P 16` sends them.
const PIPELINE: usize = 16;

/// Several connections, each sending pipelines of 16 SETs and INCRs, so
/// that each pipeline is logged as one unit and the runs of several
/// connections share a group commit when spillway is SIGKILLed. Every
/// INCR must reply its key's next value (a write sees the one before it,
/// also inside one pipeline), and after the drain Postgres holds for every
/// key a value between the last acknowledged and the last sent.
#[test]
fn sigkill_during_pipelined_runs_from_many_clients_loses_no_acknowledged_write() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let mut sp = start(&redis, &pg.url(), &[]);
    let loads: Vec<Load> = (0..CLIENTS)
        .map(|c| Load::start_named(sp.addr(), Mix::Counters, &format!("c{c}/"), PIPELINE))
        .collect();
    let acks = |loads: &[Load]| loads.iter().map(Load::acks).sum::<u64>();
    for _ in 0..3 {
        let target = acks(&loads) + ACKS_PER_ROUND;
        assert!(
            crate::support::poll_until(LOAD_TIMEOUT, || acks(&loads) >= target),
            "the loads reached {} of {target} acknowledgements",
            acks(&loads)
        );
        crash_all(&loads, || sp.sigkill());
        sp.restart();
        loads.iter().for_each(Load::resume);
    }
    let tallies: Vec<Tally> = loads.into_iter().map(Load::stop).collect();
    wait_drained(&sp);
    let rows = stored_rows(|sql| pg.psql(sql));
    let mut keys = 0;
    for tally in &tallies {
        assert!(
            tally.errors.is_empty(),
            "error or wrong replies: {:?}",
            &tally.errors[..tally.errors.len().min(10)]
        );
        for (key, &sent) in &tally.sent {
            let acked = tally.acked.get(key).copied().unwrap_or(0);
            let stored = match rows.get(key) {
                Some(Stored::Str(v)) => as_counter(v),
                None if acked == 0 => 0,
                other => panic!("{key}: acknowledged up to {acked}, Postgres holds {other:?}"),
            };
            assert!(
                acked <= stored && stored <= sent,
                "{key}: Postgres holds {stored}, acknowledged {acked}, sent {sent}"
            );
            keys += usize::from(rows.contains_key(key));
        }
    }
    assert_eq!(rows.len(), keys, "no rows beyond the written keys");
    eprintln!("{keys} keys checked");
}

/// Marks every load's spillway as gone, then runs `kill`.
fn crash_all(loads: &[Load], kill: impl FnOnce()) {
    match loads.split_first() {
        Some((load, rest)) => load.crash(|| crash_all(rest, kill)),
        None => kill(),
    }
}

/// Deletes every tenth string key and two hash keys, all acknowledged.
fn delete_some(sp: &Spillway, tally: &Tally) -> BTreeSet<String> {
    let live: Vec<&String> = tally.acked.keys().collect();
    let strings: Vec<&String> = live
        .iter()
        .filter(|k| !load::is_hash(k))
        .step_by(10)
        .copied()
        .collect();
    let hashes: Vec<&String> = live
        .iter()
        .filter(|k| load::is_hash(k))
        .take(2)
        .copied()
        .collect();
    assert!(strings.len() >= 10 && hashes.len() == 2, "{tally:?}");
    let mut conn = sp.raw();
    let mut del: Vec<&str> = vec!["DEL"];
    del.extend(strings.iter().map(|k| k.as_str()));
    let reply = conn.cmd(&del);
    assert_eq!(
        reply,
        format!(":{}\r\n", strings.len()).into_bytes(),
        "DEL of keys with acknowledged values: {}",
        reply.escape_ascii()
    );
    let unlink = ["UNLINK", hashes[0].as_str(), hashes[1].as_str()];
    assert_eq!(conn.cmd(&unlink), b":2\r\n");
    strings.into_iter().chain(hashes).cloned().collect()
}

/// Row by row: acked <= stored <= sent, deleted keys gone, and the proxy
/// serves what Postgres holds.
fn check_rows(
    sp: &Spillway,
    tally: &Tally,
    deleted: &BTreeSet<String>,
    rows: &BTreeMap<String, Stored>,
) {
    let mut conn = sp.raw();
    for key in rows.keys() {
        assert!(tally.sent.contains_key(key), "row for unknown key {key}");
    }
    for (key, &sent) in &tally.sent {
        let acked = tally.acked.get(key).copied().unwrap_or(0);
        let row = rows.get(key);
        let is_hash = load::is_hash(key);
        if deleted.contains(key) {
            assert!(
                matches!(row, None | Some(Stored::Tombstone)),
                "{key} was deleted but Postgres holds {row:?}"
            );
            assert_eq!(conn.cmd(&["EXISTS", key.as_str()]), b":0\r\n", "{key}");
            continue;
        }
        let stored = match row {
            None if acked == 0 => None,
            Some(Stored::Str(v)) if !is_hash => Some(as_counter(v)),
            Some(Stored::Hash(fields)) if is_hash => {
                assert_eq!(fields.len(), 1, "{key}: {fields:?}");
                assert_eq!(fields[0].0, b"f", "{key}: {fields:?}");
                Some(as_counter(&fields[0].1))
            }
            other => panic!("{key}: acknowledged up to {acked}, Postgres holds {other:?}"),
        };
        if let Some(v) = stored {
            assert!(
                acked <= v && v <= sent,
                "{key}: Postgres holds {v}, acknowledged {acked}, sent {sent}"
            );
        }
        let expected = match stored {
            Some(v) => format!("${}\r\n{v}\r\n", v.to_string().len()).into_bytes(),
            None => b"$-1\r\n".to_vec(),
        };
        let read = if is_hash {
            conn.cmd(&["HGET", key.as_str(), "f"])
        } else {
            conn.cmd(&["GET", key.as_str()])
        };
        assert_eq!(
            read.escape_ascii().to_string(),
            expected.escape_ascii().to_string(),
            "{key}: the proxy and Postgres disagree"
        );
    }
    let generations: BTreeSet<&str> = tally
        .sent
        .keys()
        .filter_map(|k| k.split(':').next())
        .collect();
    assert_eq!(
        generations.len(),
        4,
        "one generation of keys per run: {generations:?}"
    );
}
