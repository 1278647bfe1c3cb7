//! WAITDB under write-behind: it reports this connection's writes that are
//! not yet in the database, and returns as soon as they are.

mod support;

use std::time::{Duration, Instant};

use support::{Postgres, Spillway};

#[test]
fn waitdb_counts_unapplied_writes_and_returns_once_they_are_applied() {
    let mut pg = Postgres::start();
    let url = pg.url();
    let sp = Spillway::start(&[
        ("SPILLWAY__WRITE__POLICY", "write-behind"),
        ("SPILLWAY__DATABASE__URL", &url),
    ]);
    let mut raw = sp.raw();
    assert_eq!(raw.cmd(&["SET", "a", "1"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["WAITDB", "0"]), b":0\r\n");
    assert_eq!(
        pg.psql("select convert_from(value, 'UTF8') from spillway_kv where key = 'a'::bytea"),
        "1"
    );

    pg.stop();
    assert_eq!(raw.cmd(&["SET", "b", "2"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["SET", "c", "3"]), b"+OK\r\n");
    let t = Instant::now();
    assert_eq!(
        raw.cmd(&["WAITDB", "300"]),
        b":2\r\n",
        "both writes wait for the database"
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    // Another connection's WAITDB does not wait for these writes.
    assert_eq!(sp.raw().cmd(&["WAITDB", "100"]), b":0\r\n");
    assert_eq!(raw.cmd(&["WAITDB", "-1"]), b"-ERR timeout is negative\r\n");

    pg.start_again();
    assert_eq!(raw.cmd(&["WAITDB", "0"]), b":0\r\n");
    assert_eq!(
        pg.psql("select count(*) from spillway_kv where key in ('b'::bytea, 'c'::bytea)"),
        "2"
    );
}
