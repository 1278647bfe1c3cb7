//! SIGTERM drains the write-behind queue into Postgres and exits 0
//! (issue: shutdown writes the final checkpoint; nothing is left for a
//! replay).

use std::time::Duration;

use crate::support::{Postgres, RawConn, RedisServer, encode_command};
use crate::{Stored, info_u64, start, stored_rows};

const KEYS: usize = 500;

#[test]
fn sigterm_applies_every_pending_write_then_exits_zero() {
    let redis = RedisServer::start();
    let mut pg = Postgres::start();
    let mut sp = start(
        &redis,
        &pg.url(),
        &[("SPILLWAY__SERVER__SHUTDOWN_TIMEOUT", "20s")],
    );
    // With Postgres down nothing is applied before the SIGTERM: the drain
    // has all of it to do.
    pg.stop();
    let mut conn: RawConn = sp.raw();
    let pipeline: Vec<u8> = (0..KEYS)
        .flat_map(|i| encode_command(&["SET", &format!("t:{i}"), &format!("v{i}")]))
        .collect();
    conn.send(&pipeline);
    for i in 0..KEYS {
        assert_eq!(conn.read_reply(), b"+OK\r\n", "SET t:{i}");
    }
    assert_eq!(info_u64(&sp, "wb_pending"), KEYS as u64);
    let logged = info_u64(&sp, "wal_appends");
    pg.start_again();
    drop(conn);

    sp.sigterm();
    let status = sp.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit status {status} after SIGTERM");

    let rows = stored_rows(|sql| pg.psql(sql));
    for i in 0..KEYS {
        assert_eq!(
            rows.get(&format!("t:{i}")),
            Some(&Stored::Str(format!("v{i}").into_bytes())),
            "t:{i} after the drain"
        );
    }
    assert_eq!(rows.len(), KEYS);
    assert_eq!(
        pg.psql("select max(seq) from spillway_checkpoints"),
        logged.to_string(),
        "the final checkpoint covers every record"
    );
}
