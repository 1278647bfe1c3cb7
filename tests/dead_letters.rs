//! Dead letters through the real binary (CONTRACT invariant 2, issue scope
//! "failures in the drain"): a write PostgreSQL rejects for good is kept in
//! `spillway_dead_letters` while other keys keep flowing, later writes of
//! its key are parked behind it (also across a restart), and
//! `SPILLWAY DEADLETTER LIST|RETRY|DROP` manage them.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use redis::{Commands, Value};
use support::{PgDatabase, Spillway, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const PARKED: &str = "parked behind an earlier dead letter of this key";

fn start(pg: &PgDatabase) -> Spillway {
    Spillway::start(&[
        ("SPILLWAY__WRITE__POLICY", "write-behind"),
        ("SPILLWAY__DATABASE__URL", &pg.url()),
        ("SPILLWAY__CACHE__BACKEND", "memory"),
    ])
}

/// The database refuses any value "poison" for good.
fn refuse_poison(pg: &PgDatabase, on: bool) {
    pg.psql(if on {
        "ALTER TABLE spillway_kv ADD CONSTRAINT no_poison \
         CHECK (value IS NULL OR value <> 'poison'::bytea)"
    } else {
        "ALTER TABLE spillway_kv DROP CONSTRAINT no_poison"
    });
}

fn info_field(c: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("writebehind").query(c).unwrap();
    info.lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Polls until nothing is pending and `wb_dead_letters` is `dead`.
fn wait_drained(c: &mut redis::Connection, dead: u64) {
    wait_until(
        &format!("wb_pending:0 and wb_dead_letters:{dead}"),
        WAIT,
        || {
            info_field(c, "wb_pending") == "0"
                && info_field(c, "wb_dead_letters") == dead.to_string()
        },
    );
}

/// The stored value of `key` in PostgreSQL, if a live row has one.
fn pg_value(pg: &PgDatabase, key: &str) -> Option<String> {
    let out = pg.psql(&format!(
        "SELECT convert_from(value, 'UTF8') FROM spillway_kv \
         WHERE key = '{key}'::bytea AND kind <> 0"
    ));
    (!out.is_empty()).then_some(out)
}

/// `seq|error` of each dead letter of `key`, in sequence order.
fn pg_dead_letters(pg: &PgDatabase, key: &str) -> Vec<String> {
    let out = pg.psql(&format!(
        "SELECT seq || '|' || error FROM spillway_dead_letters \
         WHERE key = '{key}'::bytea ORDER BY seq"
    ));
    out.lines().map(str::to_string).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        other => panic!("not a string or integer: {other:?}"),
    }
}

/// `SPILLWAY DEADLETTER LIST`: each entry as field → text.
fn list(c: &mut redis::Connection) -> Vec<HashMap<String, String>> {
    let reply: Value = redis::cmd("SPILLWAY")
        .arg("DEADLETTER")
        .arg("LIST")
        .arg(100)
        .query(c)
        .unwrap();
    let Value::Array(entries) = reply else {
        panic!("LIST is not an array: {reply:?}")
    };
    entries
        .iter()
        .map(|e| match e {
            Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), text(v))).collect(),
            Value::Array(flat) => flat
                .chunks(2)
                .map(|kv| (text(&kv[0]), text(&kv[1])))
                .collect(),
            other => panic!("entry is not a map: {other:?}"),
        })
        .collect()
}

fn deadletter(c: &mut redis::Connection, sub: &str, key: &str) -> redis::RedisResult<i64> {
    redis::cmd("SPILLWAY")
        .arg("DEADLETTER")
        .arg(sub)
        .arg(key)
        .query(c)
}

#[test]
fn a_rejected_write_is_dead_lettered_later_ones_parked_and_retry_applies_them() {
    let pg = PgDatabase::create();
    let mut sp = start(&pg);
    let mut c = sp.conn();
    refuse_poison(&pg, true);

    for i in 0..5 {
        let _: () = c.set(format!("before{i}"), "ok").unwrap();
    }
    let _: () = c.set("bad", "poison").unwrap();
    wait_drained(&mut c, 1);

    // The parked set is rebuilt from the database at start.
    sp.restart();
    let mut c = sp.conn();
    let _: () = c.set("bad", "later").unwrap();
    for i in 0..5 {
        let _: () = c.set(format!("after{i}"), "ok").unwrap();
    }
    wait_drained(&mut c, 2);

    for i in 0..5 {
        assert_eq!(pg_value(&pg, &format!("before{i}")).as_deref(), Some("ok"));
        assert_eq!(pg_value(&pg, &format!("after{i}")).as_deref(), Some("ok"));
    }
    assert_eq!(
        pg_value(&pg, "bad"),
        None,
        "neither write of bad is applied"
    );
    let letters = pg_dead_letters(&pg, "bad");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(letters[0].contains("no_poison"), "{letters:?}");
    assert!(letters[1].ends_with(PARKED), "{letters:?}");
    let v: Option<String> = c.get("bad").unwrap();
    assert_eq!(v, None, "reads see the database's value");

    let listed = list(&mut c);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|e| e["key"] == "bad"), "{listed:?}");
    assert!(listed[0]["seq"].parse::<u64>().unwrap() < listed[1]["seq"].parse().unwrap());
    assert!(listed[0]["error"].contains("no_poison"), "{listed:?}");
    assert_eq!(listed[1]["error"], PARKED);
    assert!(listed[0]["id"].parse::<i64>().unwrap() > 0);

    refuse_poison(&pg, false);
    assert_eq!(deadletter(&mut c, "RETRY", "bad").unwrap(), 2);
    assert_eq!(pg_value(&pg, "bad").as_deref(), Some("later"));
    let v: Option<String> = c.get("bad").unwrap();
    assert_eq!(v.as_deref(), Some("later"));
    assert!(pg_dead_letters(&pg, "bad").is_empty());
    assert_eq!(info_field(&mut c, "wb_dead_letters"), "0");
    assert!(list(&mut c).is_empty());

    // Unparked: the next write is applied again.
    let _: () = c.set("bad", "final").unwrap();
    wait_until("bad = final in postgres", WAIT, || {
        pg_value(&pg, "bad").as_deref() == Some("final")
    });
}

#[test]
fn retry_still_rejected_changes_nothing_and_drop_deletes() {
    let pg = PgDatabase::create();
    let sp = start(&pg);
    let mut c = sp.conn();
    refuse_poison(&pg, true);
    let _: () = c.set("other", "poison").unwrap();
    let _: () = c.set("fine", "ok").unwrap();
    wait_drained(&mut c, 1);
    assert_eq!(pg_value(&pg, "fine").as_deref(), Some("ok"));

    let err = deadletter(&mut c, "RETRY", "other").unwrap_err();
    assert!(err.to_string().contains("no_poison"), "{err}");
    assert_eq!(pg_dead_letters(&pg, "other").len(), 1, "nothing changed");
    assert_eq!(info_field(&mut c, "wb_dead_letters"), "1");

    let _: () = c.set("other", "parked").unwrap();
    wait_drained(&mut c, 2);
    assert_eq!(deadletter(&mut c, "DROP", "other").unwrap(), 2);
    assert!(pg_dead_letters(&pg, "other").is_empty());
    assert_eq!(pg_value(&pg, "other"), None);
    assert_eq!(info_field(&mut c, "wb_dead_letters"), "0");
    assert_eq!(deadletter(&mut c, "DROP", "other").unwrap(), 0);

    let _: () = c.set("other", "good").unwrap();
    wait_until("other = good in postgres", WAIT, || {
        pg_value(&pg, "other").as_deref() == Some("good")
    });
}

#[test]
fn bad_arguments_and_write_through_get_errors() {
    let wt = Spillway::start(&[]);
    let mut c = wt.conn();
    let err = redis::cmd("SPILLWAY")
        .arg("DEADLETTER")
        .arg("LIST")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains("write-behind is not enabled"),
        "{err}"
    );

    let wb = Spillway::start(&[("SPILLWAY__WRITE__POLICY", "write-behind")]);
    let mut c = wb.conn();
    for (args, says) in [
        (&["DEADLETTER", "RETRY"][..], "wrong number of arguments"),
        (
            &["DEADLETTER", "DROP", "a", "b"],
            "wrong number of arguments",
        ),
        (&["DEADLETTER", "LIST", "-1"], "out of range"),
        (&["DEADLETTER", "NOPE"], "unknown subcommand"),
    ] {
        let err = redis::cmd("SPILLWAY")
            .arg(args)
            .query::<Value>(&mut c)
            .unwrap_err();
        assert!(err.to_string().contains(says), "{args:?}: {err}");
    }
    let empty: Value = redis::cmd("SPILLWAY")
        .arg("DEADLETTER")
        .arg("LIST")
        .query(&mut c)
        .unwrap();
    assert_eq!(empty, Value::Array(vec![]));
}

/// A MULTI block is one record: it lands whole, or (one row rejected) is
/// dead-lettered whole, while writes around it keep flowing.
#[test]
fn a_multi_block_lands_whole_or_is_dead_lettered_whole() {
    let pg = PgDatabase::create();
    let sp = start(&pg);
    let mut c = sp.conn();
    refuse_poison(&pg, true);
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let (a, b): (String, String) = redis::pipe()
        .atomic()
        .set("m:a", "1")
        .set("m:b", "2")
        .query(&mut c)
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("OK", "OK"));
    let replies: Vec<String> = redis::pipe()
        .atomic()
        .set("p:a", "1")
        .set("p:bad", "poison")
        .set("p:b", "2")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        replies,
        ["OK", "OK", "OK"],
        "acknowledged: it is in the WAL"
    );
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query(&mut c)
        .unwrap();
    wait_drained(&mut c, 3);

    assert_eq!(pg_value(&pg, "m:a").as_deref(), Some("1"));
    assert_eq!(pg_value(&pg, "m:b").as_deref(), Some("2"));
    assert_eq!(pg_value(&pg, "before").as_deref(), Some("1"));
    assert_eq!(pg_value(&pg, "after").as_deref(), Some("2"));
    for key in ["p:a", "p:bad", "p:b"] {
        assert_eq!(
            pg_value(&pg, key),
            None,
            "{key} of the rejected block landed"
        );
        let letters = pg_dead_letters(&pg, key);
        assert_eq!(letters.len(), 1, "{key}: {letters:?}");
        assert!(letters[0].contains("MULTI block"), "{letters:?}");
    }
}
