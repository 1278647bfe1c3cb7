//! Backend outages under a blind-write load (CONTRACT §4, write-behind
//! column): the cache flushed, then killed, then Postgres stopped for a
//! few seconds. Writes keep being acknowledged, reads keep showing them,
//! and once everything is back Postgres holds exactly the last values.

use std::time::{Duration, Instant};

use crate::load::{Load, Mix, Tally};
use crate::support::{self, Postgres, RawConn, RedisServer, encode_command};
use crate::{Stored, as_counter, info_u64, start, stored_rows, wait_db_up, wait_drained};

const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Postgres stays down while the load runs.
const OUTAGE: Duration = Duration::from_secs(3);

#[test]
fn writes_are_acknowledged_and_kept_through_cache_and_database_outages() {
    let mut redis = RedisServer::start();
    let mut pg = Postgres::start();
    let sp = start(&redis, &pg.url(), &[]);
    let load = Load::start(sp.addr(), Mix::Blind);
    load.wait_for_acks(1_000, LOAD_TIMEOUT);

    let _: () = redis::cmd("FLUSHALL").query(&mut redis.conn()).unwrap();
    load.wait_for_acks(500, LOAD_TIMEOUT);
    {
        let _held = load.hold();
        reads_show_acked(&mut sp.raw(), &load.tally(), None);
    }

    redis.kill();
    load.wait_for_acks(500, LOAD_TIMEOUT);
    {
        let _held = load.hold();
        reads_show_acked(&mut sp.raw(), &load.tally(), None);
    }

    let before_outage = {
        let _held = load.hold();
        pg.stop();
        load.tally()
    };
    let down_since = Instant::now();
    let kept_acking = support::poll_until(OUTAGE + LOAD_TIMEOUT, || {
        down_since.elapsed() >= OUTAGE && load.acks() >= before_outage.acks + 1_000
    });
    assert!(
        kept_acking,
        "{} writes acknowledged in {:?} with Postgres down",
        load.acks() - before_outage.acks,
        down_since.elapsed()
    );
    {
        let _held = load.hold();
        let during = load.tally();
        let mut conn = sp.raw();
        reads_show_acked(&mut conn, &during, Some(&before_outage));

        // A read-modify-write on a key that is neither pending nor cached
        // needs the database: refused, and nothing logged.
        let appends = info_u64(&sp, "wal_appends");
        let reply = conn.cmd(&["INCR", "never:written"]);
        let text = String::from_utf8_lossy(&reply).to_lowercase();
        assert!(
            text.starts_with("-err") && text.contains("postgres"),
            "INCR with Postgres down: {}",
            reply.escape_ascii()
        );
        assert_eq!(info_u64(&sp, "wal_appends"), appends, "INCR logged nothing");

        // The same inside a pipeline of blind writes: the run cannot load
        // its rows, so its writes go one by one and only the INCR fails.
        let mut pipeline = encode_command(&["SET", "outage:a", "1"]);
        pipeline.extend(encode_command(&["INCR", "never:written"]));
        pipeline.extend(encode_command(&["SET", "outage:b", "2"]));
        conn.send(&pipeline);
        let replies = [conn.read_reply(), conn.read_reply(), conn.read_reply()];
        assert_eq!(replies[0], b"+OK\r\n");
        assert!(
            replies[1].starts_with(b"-ERR"),
            "{}",
            replies[1].escape_ascii()
        );
        assert_eq!(replies[2], b"+OK\r\n");
        assert_eq!(info_u64(&sp, "wal_appends"), appends + 2, "the SETs logged");
        assert_eq!(conn.cmd(&["GET", "outage:b"]), b"$1\r\n2\r\n");
    }

    pg.start_again();
    redis.restart();
    load.wait_for_acks(500, LOAD_TIMEOUT);
    let tally = load.stop();
    assert!(
        tally.errors.is_empty(),
        "error replies to blind writes: {:?}",
        &tally.errors[..tally.errors.len().min(10)]
    );
    assert_eq!(tally.acked, tally.sent, "every write was acknowledged");
    wait_drained(&sp);
    wait_db_up(&sp);

    let rows = stored_rows(|sql| pg.psql(sql));
    for (key, &acked) in &tally.acked {
        let stored = match rows.get(key) {
            Some(Stored::Str(v)) => as_counter(v),
            other => panic!("{key}: acknowledged {acked}, Postgres holds {other:?}"),
        };
        assert_eq!(
            stored, acked,
            "{key}: Postgres holds an older or newer value"
        );
    }
    assert_eq!(rows.get("outage:a"), Some(&Stored::Str(b"1".to_vec())));
    assert_eq!(rows.get("outage:b"), Some(&Stored::Str(b"2".to_vec())));
    assert_eq!(
        rows.len(),
        tally.acked.len() + 2,
        "no rows beyond the written keys"
    );
    let mut conn = sp.raw();
    let reply = conn.cmd(&["GET", "never:written"]);
    assert_eq!(reply, b"$-1\r\n", "{}", reply.escape_ascii());
    reads_show_acked(&mut conn, &tally, None);
}

/// GET of every key written so far shows its last acknowledged value. With
/// `db_down_since`, a key not written since then may instead get an error
/// naming Postgres (a cache miss while the database is down), but a key
/// written since (pending) must be served.
fn reads_show_acked(conn: &mut RawConn, tally: &Tally, db_down_since: Option<&Tally>) {
    let mut served = 0;
    for (key, acked) in &tally.acked {
        let reply = conn.cmd(&["GET", key.as_str()]);
        let expected = format!("${}\r\n{acked}\r\n", acked.to_string().len());
        if reply == expected.as_bytes() {
            served += 1;
            continue;
        }
        let pending = db_down_since.is_none_or(|before| before.acked.get(key) != Some(acked));
        let text = String::from_utf8_lossy(&reply).to_lowercase();
        assert!(
            !pending && text.starts_with("-err") && text.contains("postgres"),
            "GET {key}: {} (last acknowledged {acked}{})",
            reply.escape_ascii(),
            if pending { ", a pending write" } else { "" }
        );
    }
    assert!(served > 0, "no key was served");
}
