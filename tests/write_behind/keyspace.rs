//! SCAN, KEYS and DBSIZE see pending (not yet applied) writes: new keys
//! appear and deleted keys vanish at once (read-your-writes, CONTRACT
//! invariant 3), not only after the processor applied them.

use super::support::PgDatabase;
use super::support::RedisServer;
use super::{info_u64, start, wait_drained};

fn sorted_keys(raw: &mut super::support::RawConn, pattern: &str) -> Vec<u8> {
    raw.cmd(&["KEYS", pattern])
}

#[test]
fn scan_keys_and_dbsize_include_pending_writes() {
    let cache = RedisServer::start();
    let pg = PgDatabase::create();
    let sp = start(
        &cache,
        &pg.url(),
        &[("SPILLWAY__WRITE_BEHIND__FLUSH_INTERVAL", "20ms")],
    );
    let mut raw = sp.raw();
    assert_eq!(raw.cmd(&["SET", "old", "1"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["SET", "gone", "1"]), b"+OK\r\n");
    wait_drained(&sp);
    drop(sp);

    // Writes stay pending: the flush interval is long.
    let sp = start(
        &cache,
        &pg.url(),
        &[
            ("SPILLWAY__WRITE_BEHIND__FLUSH_INTERVAL", "60s"),
            ("SPILLWAY__WRITE_BEHIND__BATCH_MAX", "100000"),
        ],
    );
    let mut raw = sp.raw();
    assert_eq!(raw.cmd(&["SET", "new", "1"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["HSET", "newhash", "f", "v"]), b":1\r\n");
    assert_eq!(raw.cmd(&["DEL", "gone"]), b":1\r\n");
    assert!(
        info_u64(&sp, "wb_pending") >= 3,
        "the writes are still pending"
    );

    assert_eq!(raw.cmd(&["DBSIZE"]), b":3\r\n");
    let keys = sorted_keys(&mut raw, "*");
    let text = String::from_utf8_lossy(&keys);
    assert!(text.starts_with("*3\r\n"), "{text}");
    for k in ["old", "new", "newhash"] {
        assert!(
            text.contains(&format!("\r\n{k}\r\n")),
            "KEYS misses {k}: {text}"
        );
    }
    assert!(
        !text.contains("\r\ngone\r\n"),
        "KEYS shows a pending delete: {text}"
    );

    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let reply = raw.cmd(&["SCAN", &cursor, "COUNT", "1"]);
        let text = String::from_utf8_lossy(&reply).into_owned();
        let lines: Vec<&str> = text.split("\r\n").collect();
        cursor = lines[2].to_string();
        seen.extend(
            lines[4..]
                .iter()
                .filter(|l| !l.is_empty() && !l.starts_with('$'))
                .map(|s| s.to_string()),
        );
        if cursor == "0" {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, ["new", "newhash", "old"]);
    let hashes = raw.cmd(&["SCAN", "0", "COUNT", "1000", "TYPE", "hash"]);
    assert!(
        String::from_utf8_lossy(&hashes).ends_with("*1\r\n$7\r\nnewhash\r\n"),
        "{}",
        String::from_utf8_lossy(&hashes)
    );
}
