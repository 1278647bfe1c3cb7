//! The backlog bound (CONTRACT invariant 6): past `max_pending` unapplied
//! writes a write waits `backpressure_wait`, then gets `-BUSY` and nothing
//! is logged; nothing acknowledged is dropped.

use std::time::{Duration, Instant};

use crate::support::{Postgres, RedisServer};
use crate::{Stored, info_u64, start, stored_rows, wait_db_up, wait_drained};

const BUSY: &[u8] = b"-BUSY spillway write-behind queue full, try again later\r\n";

#[test]
fn a_full_backlog_refuses_with_busy_and_keeps_what_it_acknowledged() {
    let redis = RedisServer::start();
    let mut pg = Postgres::start();
    let sp = start(
        &redis,
        &pg.url(),
        &[
            ("SPILLWAY__WRITE_BEHIND__MAX_PENDING", "20"),
            ("SPILLWAY__WRITE_BEHIND__BACKPRESSURE_WAIT", "200ms"),
        ],
    );
    pg.stop();
    let mut conn = sp.raw();
    for i in 0..20 {
        let reply = conn.cmd(&["SET", &format!("bp:{i}"), &format!("v{i}")]);
        assert_eq!(
            reply,
            b"+OK\r\n",
            "write {i} of 20: {}",
            reply.escape_ascii()
        );
    }
    let asked = Instant::now();
    let reply = conn.cmd(&["SET", "bp:20", "v20"]);
    let waited = asked.elapsed();
    assert_eq!(reply, BUSY, "the 21st write: {}", reply.escape_ascii());
    assert!(
        waited >= Duration::from_millis(190),
        "BUSY came after {waited:?}, before backpressure_wait"
    );
    assert_eq!(
        info_u64(&sp, "wb_pending"),
        20,
        "the refused write was not logged"
    );
    let reply = conn.cmd(&["DEL", "bp:0"]);
    assert_eq!(reply, BUSY, "a delete counts too: {}", reply.escape_ascii());

    pg.start_again();
    wait_drained(&sp);
    wait_db_up(&sp);
    let rows = stored_rows(|sql| pg.psql(sql));
    for i in 0..20 {
        assert_eq!(
            rows.get(&format!("bp:{i}")),
            Some(&Stored::Str(format!("v{i}").into_bytes())),
            "acknowledged write bp:{i}"
        );
    }
    assert_eq!(
        rows.get("bp:20"),
        None,
        "the refused write reached Postgres"
    );
    let reply = conn.cmd(&["GET", "bp:20"]);
    assert_eq!(reply, b"$-1\r\n", "GET bp:20: {}", reply.escape_ascii());

    assert_eq!(conn.cmd(&["SET", "bp:20", "v20"]), b"+OK\r\n");
    assert_eq!(conn.cmd(&["DEL", "bp:0"]), b":1\r\n");
    wait_drained(&sp);
    let rows = stored_rows(|sql| pg.psql(sql));
    assert_eq!(rows.get("bp:20"), Some(&Stored::Str(b"v20".to_vec())));
    assert!(matches!(rows.get("bp:0"), None | Some(Stored::Tombstone)));
}
