//! SIGTERM drains the write-behind queue into Postgres and exits 0, with
//! the final checkpoint written: nothing is left for a replay.

use std::time::Duration;

use crate::support::{PgDatabase, RawConn, RedisServer, encode_command};
use crate::{Stored, info_u64, start, stored_rows};

const KEYS: usize = 500;

#[test]
fn sigterm_applies_every_pending_write_then_exits_zero() {
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    // The processor gathers a batch for up to flush_interval: the writes
    // below are still pending when the SIGTERM arrives, so the drain has
    // all of them to apply.
    let mut sp = start(
        &redis,
        &pg.url(),
        &[
            ("SPILLWAY__WRITE_BEHIND__FLUSH_INTERVAL", "3s"),
            ("SPILLWAY__SERVER__SHUTDOWN_TIMEOUT", "20s"),
        ],
    );
    let mut conn: RawConn = sp.raw();
    let pipeline: Vec<u8> = (0..KEYS)
        .flat_map(|i| encode_command(&["SET", &format!("t:{i}"), &format!("v{i}")]))
        .collect();
    conn.send(&pipeline);
    for i in 0..KEYS {
        assert_eq!(conn.read_reply(), b"+OK\r\n", "SET t:{i}");
    }
    let pending = info_u64(&sp, "wb_pending");
    assert!(pending > 0, "nothing left for the drain to do");
    let logged = info_u64(&sp, "wal_appends");
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
