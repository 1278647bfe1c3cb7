//! The WAL on disk, through the binary: a flipped byte in the middle of the
//! log refuses the start (naming segment and offset), a torn tail is cut
//! and the rest replayed (CONTRACT §4), and applied segments are deleted
//! (CONTRACT invariant 7).
//!
//! The frame layout read here is the one `src/wal/frame.rs` documents: a
//! 24-byte segment header, then frames of `len u32 LE | crc u32 | seq u64 |
//! version u64 | payload (len bytes)`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{self, PgDatabase, Postgres, RedisServer, Spillway, encode_command};
use crate::{Stored, info_u64, start, stored_rows, wait_drained};

const SEGMENT_HEADER: u64 = 24;
const FRAME_HEADER: u64 = 24;

/// The segment files in `<dir>/wal`, oldest first.
fn segments(sp: &Spillway) -> Vec<PathBuf> {
    let dir = sp.dir().join("wal");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("WAL directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

/// `(start, end)` of each whole frame in a segment file.
fn frames(path: &Path) -> Vec<(u64, u64)> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut off = SEGMENT_HEADER;
    while off + FRAME_HEADER <= data.len() as u64 {
        let at = off as usize;
        let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as u64;
        let end = off + FRAME_HEADER + len;
        if end > data.len() as u64 {
            break;
        }
        out.push((off, end));
        off = end;
    }
    out
}

/// Writes `n` keys `prefix:i` one at a time with Postgres down, so every
/// record stays in the WAL only, then SIGKILLs spillway and brings
/// Postgres back (the next start needs it).
fn log_unapplied_writes(sp: &mut Spillway, pg: &mut Postgres, prefix: &str, n: usize) {
    pg.stop();
    let mut conn = sp.raw();
    for i in 0..n {
        let reply = conn.cmd(&["SET", &format!("{prefix}:{i}"), &format!("v{i}")]);
        assert_eq!(
            reply,
            b"+OK\r\n",
            "SET {prefix}:{i}: {}",
            reply.escape_ascii()
        );
    }
    assert_eq!(info_u64(sp, "wb_pending"), n as u64);
    sp.sigkill();
    pg.start_again();
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn a_flipped_byte_mid_log_refuses_the_start_naming_segment_and_offset() {
    let redis = RedisServer::start();
    let mut pg = Postgres::start();
    let mut sp = start(&redis, &pg.url(), &[]);
    log_unapplied_writes(&mut sp, &mut pg, "c", 10);

    let last = segments(&sp).pop().expect("a WAL segment");
    let frames = frames(&last);
    assert!(
        frames.len() >= 3,
        "{} holds {} frames",
        last.display(),
        frames.len()
    );
    // A record in the middle, with intact records after it.
    let (start, end) = frames[frames.len() / 2];
    let flip = (start + FRAME_HEADER + end) / 2;
    let mut data = std::fs::read(&last).unwrap();
    data[flip as usize] ^= 0x40;
    std::fs::write(&last, &data).unwrap();

    let (status, log) = sp.restart_expecting_failure();
    assert!(!status.success(), "exit status {status}");
    assert!(
        log.contains(&file_name(&last)),
        "the refusal names the segment {}:\n{log}",
        last.display()
    );
    assert!(
        log.contains(&start.to_string()) || log.contains(&flip.to_string()),
        "the refusal names the offset of the damaged record ({start}, byte {flip}):\n{log}"
    );
    assert!(!log.contains("panicked"), "a refusal, not a panic:\n{log}");
    assert_eq!(
        std::fs::read(&last).unwrap(),
        data,
        "a refused start leaves the log as it found it"
    );
    assert_eq!(
        pg.psql("select count(*) from spillway_kv"),
        "0",
        "nothing was applied from a corrupt log"
    );
}

#[test]
fn a_torn_tail_is_cut_and_every_earlier_record_replayed() {
    const N: usize = 10;
    let redis = RedisServer::start();
    let mut pg = Postgres::start();
    let mut sp = start(&redis, &pg.url(), &[]);
    log_unapplied_writes(&mut sp, &mut pg, "t", N);

    let last = segments(&sp).pop().expect("a WAL segment");
    let frames = frames(&last);
    let (start, end) = *frames.last().expect("frames in the last segment");
    assert_eq!(
        end,
        std::fs::metadata(&last).unwrap().len(),
        "no trailing bytes"
    );
    // Cut the last record (the last write, t:{N-1}) short, as a crash in
    // the middle of its write would.
    let cut = end - 3;
    assert!(cut > start);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .and_then(|f| f.set_len(cut))
        .unwrap();

    let earlier_log = support::process::log_len(&sp.log_path());
    sp.restart();
    let log = support::process::read_log_from(&sp.log_path(), earlier_log);
    assert!(
        log.contains(&file_name(&last)),
        "the cut is logged, naming the segment:\n{log}"
    );
    wait_drained(&sp);
    let rows = stored_rows(|sql| pg.psql(sql));
    let mut conn = sp.raw();
    for i in 0..N - 1 {
        let key = format!("t:{i}");
        let value = format!("v{i}");
        assert_eq!(
            rows.get(&key),
            Some(&Stored::Str(value.clone().into_bytes())),
            "{key}, acknowledged before the torn record"
        );
        let expected = format!("${}\r\n{value}\r\n", value.len());
        assert_eq!(conn.cmd(&["GET", key.as_str()]), expected.as_bytes());
    }
    // The log goes on after the cut.
    assert_eq!(conn.cmd(&["SET", "t:after", "x"]), b"+OK\r\n");
    wait_drained(&sp);
    assert_eq!(
        stored_rows(|sql| pg.psql(sql)).get("t:after"),
        Some(&Stored::Str(b"x".to_vec()))
    );
}

#[test]
fn applied_segments_are_deleted() {
    const SEGMENT: u64 = 64 * 1024;
    const WRITES: usize = 2_000;
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let sp = start(
        &redis,
        &pg.url(),
        &[("SPILLWAY__WRITE_BEHIND__SEGMENT_BYTES", "64KiB")],
    );
    let value = "x".repeat(1024);
    let mut conn = sp.raw();
    for batch in 0..WRITES / 100 {
        let pipeline: Vec<u8> = (0..100)
            .flat_map(|i| encode_command(&["SET", &format!("w:{}", batch * 100 + i), &value]))
            .collect();
        conn.send(&pipeline);
        for _ in 0..100 {
            assert_eq!(conn.read_reply(), b"+OK\r\n");
        }
    }
    assert!(
        info_u64(&sp, "wal_appends") >= WRITES as u64,
        "every write was logged"
    );
    wait_drained(&sp);
    let trimmed = support::poll_until(Duration::from_secs(10), || segments(&sp).len() <= 2);
    let left: Vec<(String, u64)> = segments(&sp)
        .iter()
        .map(|p| (file_name(p), std::fs::metadata(p).map_or(0, |m| m.len())))
        .collect();
    assert!(trimmed, "after the drain the WAL still holds {left:?}");
    for (name, len) in &left {
        assert!(
            *len <= SEGMENT + 2 * 1024,
            "{name} is {len} bytes: segments rotate at 64KiB"
        );
    }
    assert!(info_u64(&sp, "checkpoint_seq") >= WRITES as u64);
    let rows = stored_rows(|sql| pg.psql(sql));
    assert_eq!(rows.len(), WRITES);
}
