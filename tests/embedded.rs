//! The embedded default (memory cache + SQLite) through the real binary:
//! data survives restarts, and the server edge behaves like Redis (auth,
//! protocol errors, limits, RESP3, inline commands, graceful shutdown).

mod support;

use std::time::Duration;

use redis::Commands;
use support::Spillway;

#[test]
fn data_survives_a_restart_and_sigterm_exits_cleanly() {
    let mut sp = Spillway::start(&[]);
    let mut c = sp.conn();
    let _: () = c.set("greeting", "hello").unwrap();
    let _: () = c.hset("h", "f", "v").unwrap();
    let _: () = c.set_ex("temp", "x", 1000).unwrap();
    sp.sigterm();
    let status = sp.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "SIGTERM should exit 0, got {status:?}\n{}",
        sp.log()
    );
    sp.restart();
    let mut c = sp.conn();
    let v: String = c.get("greeting").unwrap();
    assert_eq!(v, "hello");
    let h: Vec<(String, String)> = c.hgetall("h").unwrap();
    assert_eq!(h, vec![("f".to_string(), "v".to_string())]);
    let ttl: i64 = c.ttl("temp").unwrap();
    assert!(ttl > 900 && ttl <= 1000, "ttl kept across restart: {ttl}");
    // SIGKILL right after a reply: write-through already committed it.
    let _: () = c.set("after", "kill").unwrap();
    sp.sigkill();
    sp.restart();
    let v: String = sp.conn().get("after").unwrap();
    assert_eq!(v, "kill");
}

#[test]
fn requirepass_gates_commands_until_auth() {
    let sp = Spillway::start(&[("SPILLWAY__SERVER__REQUIREPASS", "s3cret")]);
    let mut raw = sp.raw();
    assert_eq!(
        raw.cmd(&["GET", "k"]),
        b"-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        raw.cmd(&["AUTH", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(raw.cmd(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    let mut raw = sp.raw();
    assert_eq!(raw.cmd(&["AUTH", "default", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["GET", "k"]), b"$1\r\nv\r\n");
    let mut raw = sp.raw();
    let hello = raw.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]);
    assert!(
        hello.starts_with(b"%7\r\n"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    assert_eq!(raw.cmd(&["GET", "nope"]), b"_\r\n");
}

#[test]
fn pipelines_inline_commands_and_resp3() {
    let sp = Spillway::start(&[]);
    let mut raw = sp.raw();
    raw.send(b"SET a 1\r\nINCR a\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\r\n");
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    assert_eq!(raw.read_reply(), b":2\r\n");
    assert_eq!(raw.read_reply(), b"$1\r\n2\r\n");
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
    raw.send(b"HSET h \"a b\" 'c\\'d'\r\n");
    assert_eq!(raw.read_reply(), b":1\r\n");
    assert_eq!(raw.cmd(&["HGET", "h", "a b"]), b"$3\r\nc'd\r\n");
    assert_eq!(raw.cmd(&["HELLO", "3"]).first(), Some(&b'%'));
    assert_eq!(
        raw.cmd(&["HGETALL", "h"]),
        b"%1\r\n$3\r\na b\r\n$3\r\nc'd\r\n"
    );
    assert_eq!(raw.cmd(&["GET", "missing"]), b"_\r\n");
    assert_eq!(raw.cmd(&["HELLO", "2"]).first(), Some(&b'*'));
    assert_eq!(raw.cmd(&["GET", "missing"]), b"$-1\r\n");
}

#[test]
fn protocol_errors_close_only_that_connection() {
    let sp = Spillway::start(&[]);
    let mut bad = sp.raw();
    bad.send(b"*1\r\n*1\r\n*1\r\n");
    assert_eq!(
        bad.read_reply(),
        b"-ERR Protocol error: expected '$', got '*'\r\n"
    );
    assert!(bad.is_closed_within(Duration::from_secs(5)));
    let mut bad = sp.raw();
    bad.send(b"*99999999999\r\n");
    assert_eq!(
        bad.read_reply(),
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
    assert!(bad.is_closed_within(Duration::from_secs(5)));
    let mut good = sp.raw();
    assert_eq!(
        good.cmd(&["NOSUCH", "x"]),
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
    );
    assert_eq!(
        good.cmd(&["GET"]),
        b"-ERR wrong number of arguments for 'get' command\r\n"
    );
    assert_eq!(good.cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn request_and_key_limits_refuse_before_writing() {
    let sp = Spillway::start(&[
        ("SPILLWAY__SERVER__MAX_REQUEST_BYTES", "1KiB"),
        ("SPILLWAY__SERVER__MAX_KEY_BYTES", "16"),
    ]);
    let mut raw = sp.raw();
    let long_key = "k".repeat(17);
    let reply = raw.cmd(&["SET", long_key.as_str(), "v"]);
    assert!(
        reply.starts_with(b"-ERR key too long"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(raw.cmd(&["EXISTS", long_key.as_str()]), b":0\r\n");
    let reply = raw.cmd(&["HSET", "hash", &"f".repeat(13), "v"]);
    assert!(reply.starts_with(b"-ERR key too long"));
    assert_eq!(raw.cmd(&["EXISTS", "hash"]), b":0\r\n");
    let big = "v".repeat(2000);
    raw.send_cmd(&["SET", "big", big.as_str()]);
    let reply = raw.read_reply();
    assert!(
        reply.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(raw.is_closed_within(Duration::from_secs(5)));
    assert_eq!(sp.raw().cmd(&["EXISTS", "big"]), b":0\r\n");
}

#[test]
fn max_clients_refuses_extra_connections() {
    let sp = Spillway::start(&[("SPILLWAY__SERVER__MAX_CLIENTS", "2")]);
    let mut a = sp.raw();
    // The launcher's readiness probes may not have been reaped yet: wait
    // until the server counts only this connection.
    let only_a = support::poll_until(Duration::from_secs(10), || {
        let info = a.cmd(&["INFO", "clients"]);
        String::from_utf8_lossy(&info).contains("connected_clients:1\r\n")
    });
    assert!(only_a, "probe connections never went away");
    let mut b = sp.raw();
    assert_eq!(b.cmd(&["PING"]), b"+PONG\r\n");
    let mut c = sp.raw();
    assert_eq!(c.read_reply(), b"-ERR max number of clients reached\r\n");
    assert!(c.is_closed_within(Duration::from_secs(5)));
    drop(a);
    assert!(support::poll_until(Duration::from_secs(10), || {
        let mut d = sp.raw();
        d.cmd(&["PING"]) == b"+PONG\r\n"
    }));
}

#[test]
fn flush_is_refused_and_cache_flush_keeps_data() {
    let sp = Spillway::start(&[]);
    let mut raw = sp.raw();
    assert_eq!(raw.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    let reply = raw.cmd(&["FLUSHALL"]);
    assert!(
        reply.starts_with(b"-ERR FLUSHALL is refused")
            && reply.windows(20).any(|w| w == b"SPILLWAY CACHE FLUSH")
    );
    assert!(
        raw.cmd(&["FLUSHDB"])
            .starts_with(b"-ERR FLUSHDB is refused")
    );
    assert_eq!(raw.cmd(&["SPILLWAY", "CACHE", "FLUSH"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["GET", "k"]), b"$1\r\nv\r\n");
    assert_eq!(raw.cmd(&["DBSIZE"]), b":1\r\n");
}

#[test]
fn read_only_policy_refuses_writes() {
    let sp = Spillway::start(&[("SPILLWAY__WRITE__POLICY", "read-only")]);
    let mut raw = sp.raw();
    assert_eq!(
        raw.cmd(&["SET", "k", "v"]),
        b"-READONLY You can't write against a read only spillway\r\n"
    );
    assert_eq!(raw.cmd(&["GET", "k"]), b"$-1\r\n");
}

#[test]
fn scan_walks_the_database_keyspace() {
    let sp = Spillway::start(&[]);
    let mut c = sp.conn();
    for i in 0..250 {
        let _: () = c.set(format!("key:{i}"), i).unwrap();
    }
    let _: () = c.hset("hash:1", "f", "v").unwrap();
    let _: () = c.set("gone", "x").unwrap();
    let _: () = c.del("gone").unwrap();
    let mut seen: Vec<String> = c
        .scan_match("key:*")
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 250);
    let hashes: Vec<String> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("COUNT")
        .arg(1000)
        .arg("TYPE")
        .arg("hash")
        .query::<(u64, Vec<String>)>(&mut c)
        .unwrap()
        .1;
    assert_eq!(hashes, vec!["hash:1".to_string()]);
    let mut keys: Vec<String> = c.keys("hash:*").unwrap();
    keys.sort();
    assert_eq!(keys, vec!["hash:1".to_string()]);
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 251);
}
