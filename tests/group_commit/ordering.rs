//! Writes queued behind one group share the next, in arrival order, each
//! with the reply it would get alone, WATCH checked write by write.

use redis::Commands;

use crate::gate::{GATE, Gate, Queued};
use crate::support::{PgDatabase, RawConn};
use crate::{start, value};

#[test]
fn queued_writes_share_one_transaction_in_arrival_order_with_their_own_replies() {
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    let gate = Gate::hold(&pg.url(), GATE);
    let mut q = Queued::behind_gate(&sp, &pg);
    q.send(&["INCR", "k"]);
    q.send(&["INCR", "k"]);
    q.send(&["HSET", "k", "f", "v"]);
    q.send(&["APPEND", "k", "x"]);
    q.send(&["INCR", "k"]);
    q.send(&["SET", "other", "1"]);
    q.send(&["DEL", "k"]);
    q.send(&["SETNX", "k", "last"]);
    q.send(&["SETNX", "k", "not this"]);
    let (replies, commits) = q.release(gate);
    assert_eq!(
        replies,
        [
            "+OK",
            ":1",
            ":2",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
            ":2",
            "-ERR value is not an integer or out of range",
            "+OK",
            ":1",
            ":1",
            ":0",
        ]
    );
    assert_eq!(commits, 2, "the gated group, then one for all the others");
    assert_eq!(value(&pg, "k"), "last");
    assert_eq!(value(&pg, "other"), "1");
    let v: String = sp.conn().get("k").expect("GET");
    assert_eq!(v, "last");
}

#[test]
fn an_exec_in_a_group_aborts_when_an_earlier_write_of_the_group_changed_its_watched_key() {
    let pg = PgDatabase::create();
    let sp = start(&pg.url());
    let _: () = sp.conn().set("w", "0").expect("SET");
    let mut blocks: Vec<RawConn> = (0..3).map(|_| sp.raw()).collect();
    for (conn, (watch, new)) in blocks.iter_mut().zip([("w", "a"), ("w", "b"), ("z", "c")]) {
        assert_eq!(conn.cmd(&["WATCH", watch]), b"+OK\r\n");
        assert_eq!(conn.cmd(&["MULTI"]), b"+OK\r\n");
        assert_eq!(conn.cmd(&["SET", watch, new]), b"+QUEUED\r\n");
    }
    let gate = Gate::hold(&pg.url(), GATE);
    let mut q = Queued::behind_gate(&sp, &pg);
    for conn in blocks {
        q.send_on(conn, &["EXEC"]);
    }
    let (replies, commits) = q.release(gate);
    assert_eq!(replies, ["+OK", "*1\r\n+OK", "*-1", "*1\r\n+OK"]);
    assert_eq!(commits, 2);
    assert_eq!(value(&pg, "w"), "a");
    assert_eq!(value(&pg, "z"), "c");
}
