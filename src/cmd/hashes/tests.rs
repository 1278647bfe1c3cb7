//! Expected replies and error texts were checked against redis-server 7.0.

use super::*;
use crate::cmd::testutil::*;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn fields(ws: &WorkingSet, key: &str) -> Vec<(String, String)> {
    match ws.get(key.as_bytes()).map(|e| &e.value) {
        Some(Value::Hash(h)) => h
            .iter()
            .map(|(f, v)| {
                (
                    String::from_utf8_lossy(f).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

#[test]
fn hset_counts_new_fields_and_keeps_order() {
    let mut ws = ws();
    assert_eq!(run(hset, "HSET h a 1 b 2 a 3", &mut ws), Frame::Integer(2));
    assert_eq!(run(hset, "HSET h c 3 a 9", &mut ws), Frame::Integer(1));
    assert_eq!(
        fields(&ws, "h"),
        pairs(&[("a", "9"), ("b", "2"), ("c", "3")]),
        "an update keeps its place"
    );
    assert_eq!(run(hdel, "HDEL h a", &mut ws), Frame::Integer(1));
    assert_eq!(run(hset, "HSET h a 1", &mut ws), Frame::Integer(1));
    assert_eq!(
        fields(&ws, "h"),
        pairs(&[("b", "2"), ("c", "3"), ("a", "1")]),
        "re-added goes last"
    );
    assert_eq!(run(hmset, "HMSET h x 1", &mut ws), Frame::ok());
    assert_eq!(
        run(hgetall, "HGETALL h", &mut ws),
        Frame::Map(vec![
            (bulk("b"), bulk("2")),
            (bulk("c"), bulk("3")),
            (bulk("a"), bulk("1")),
            (bulk("x"), bulk("1"))
        ])
    );
    assert_eq!(
        run(hkeys, "HKEYS h", &mut ws),
        Frame::Array(vec![bulk("b"), bulk("c"), bulk("a"), bulk("x")])
    );
    assert_eq!(
        run(hvals, "HVALS h", &mut ws),
        Frame::Array(vec![bulk("2"), bulk("3"), bulk("1"), bulk("1")])
    );
}

#[test]
fn hash_writes_keep_the_ttl() {
    let mut ws = ws();
    load(
        &mut ws,
        "h",
        Value::Hash(hash(&[("a", "1")])),
        Some(NOW + 5),
    );
    run(hset, "HSET h b 2", &mut ws);
    run(hincrby, "HINCRBY h a 1", &mut ws);
    run(hdel, "HDEL h b", &mut ws);
    assert_eq!(
        (fields(&ws, "h"), expiry(&ws, "h")),
        (pairs(&[("a", "2")]), Some(NOW + 5))
    );
    load(&mut ws, "old", Value::Hash(hash(&[("a", "1")])), Some(NOW));
    assert_eq!(
        run(hset, "HSET old b 2", &mut ws),
        Frame::Integer(1),
        "an expired hash starts afresh"
    );
    assert_eq!(
        (fields(&ws, "old"), expiry(&ws, "old")),
        (pairs(&[("b", "2")]), None)
    );
}

#[test]
fn reads() {
    let mut ws = ws();
    load_hash(&mut ws, "h", &[("x", "1"), ("y", "22")]);
    assert_eq!(run(hget, "HGET h x", &mut ws), bulk("1"));
    assert_eq!(run(hget, "HGET h nof", &mut ws), Frame::Null);
    assert_eq!(run(hget, "HGET nokey x", &mut ws), Frame::Null);
    assert_eq!(
        run(hmget, "HMGET h x nof y", &mut ws),
        Frame::Array(vec![bulk("1"), Frame::Null, bulk("22")])
    );
    assert_eq!(
        run(hmget, "HMGET nokey a b", &mut ws),
        Frame::Array(vec![Frame::Null, Frame::Null])
    );
    assert_eq!(run(hlen, "HLEN h", &mut ws), Frame::Integer(2));
    assert_eq!(run(hlen, "HLEN nokey", &mut ws), Frame::Integer(0));
    assert_eq!(run(hexists, "HEXISTS h x", &mut ws), Frame::Integer(1));
    assert_eq!(run(hexists, "HEXISTS h q", &mut ws), Frame::Integer(0));
    assert_eq!(run(hstrlen, "HSTRLEN h y", &mut ws), Frame::Integer(2));
    assert_eq!(run(hstrlen, "HSTRLEN h q", &mut ws), Frame::Integer(0));
    assert_eq!(run(hgetall, "HGETALL nokey", &mut ws), Frame::Map(vec![]));
    assert_eq!(run(hkeys, "HKEYS nokey", &mut ws), Frame::Array(vec![]));
    assert_eq!(run(hvals, "HVALS nokey", &mut ws), Frame::Array(vec![]));
    assert!(!ws.has_changes());
}

#[test]
fn hsetnx_and_hdel() {
    let mut ws = ws();
    load_hash(&mut ws, "h", &[("x", "1"), ("y", "2"), ("z", "3")]);
    assert_eq!(run(hsetnx, "HSETNX h x 2", &mut ws), Frame::Integer(0));
    assert_eq!(run(hdel, "HDEL h q w", &mut ws), Frame::Integer(0));
    assert_eq!(run(hdel, "HDEL nokey a", &mut ws), Frame::Integer(0));
    assert!(!ws.has_changes());
    assert_eq!(run(hsetnx, "HSETNX h w 4", &mut ws), Frame::Integer(1));
    assert_eq!(run(hsetnx, "HSETNX new f v", &mut ws), Frame::Integer(1));
    assert_eq!(fields(&ws, "new"), pairs(&[("f", "v")]));
    assert_eq!(run(hdel, "HDEL h y q y", &mut ws), Frame::Integer(1));
    assert_eq!(
        fields(&ws, "h"),
        pairs(&[("x", "1"), ("z", "3"), ("w", "4")]),
        "HDEL keeps the order"
    );
    assert_eq!(run(hdel, "HDEL h x z w", &mut ws), Frame::Integer(3));
    assert!(
        ws.get(b"h").is_none(),
        "the last field takes the key with it"
    );
}

#[test]
fn string_keys_are_wrongtype() {
    let mut ws = ws();
    load_str(&mut ws, "s", "v", None);
    for (handler, line) in [
        (hget as crate::cmd::table::Handler, "HGET s a"),
        (hgetall, "HGETALL s"),
        (hmget, "HMGET s a"),
        (hlen, "HLEN s"),
        (hdel, "HDEL s a"),
        (hexists, "HEXISTS s a"),
        (hstrlen, "HSTRLEN s a"),
        (hkeys, "HKEYS s"),
        (hvals, "HVALS s"),
        (hsetnx, "HSETNX s a 1"),
        (hset, "HSET s a 1"),
        (hmset, "HMSET s a 1"),
        (hincrby, "HINCRBY s a 1"),
        (hincrbyfloat, "HINCRBYFLOAT s a 1"),
    ] {
        assert_error(handler, line, &mut ws, WRONGTYPE);
    }
}

#[test]
fn errors_change_nothing() {
    let mut ws = ws();
    load_hash(
        &mut ws,
        "h",
        &[
            ("a", "1"),
            ("s", "abc"),
            ("sp", " 5"),
            ("f", "0.5"),
            ("big", "9223372036854775807"),
        ],
    );
    load_str(&mut ws, "str", "v", None);
    for (handler, line, msg) in [
        (
            hset as crate::cmd::table::Handler,
            "HSET h a 1 b",
            "ERR wrong number of arguments for 'hset' command",
        ),
        (
            hmset,
            "hmset h a 1 b",
            "ERR wrong number of arguments for 'hmset' command",
        ),
        (
            hmset,
            "HMSET str a 1 b",
            "ERR wrong number of arguments for 'hmset' command",
        ),
        (
            hincrby,
            "HINCRBY h a abc",
            "ERR value is not an integer or out of range",
        ),
        (
            hincrby,
            "HINCRBY str a abc",
            "ERR value is not an integer or out of range",
        ),
        (hincrby, "HINCRBY h s 1", "ERR hash value is not an integer"),
        (
            hincrby,
            "HINCRBY h sp 1",
            "ERR hash value is not an integer",
        ),
        (hincrby, "HINCRBY h f 1", "ERR hash value is not an integer"),
        (
            hincrby,
            "HINCRBY h big 1",
            "ERR increment or decrement would overflow",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT h a abc",
            "ERR value is not a valid float",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT str a abc",
            "ERR value is not a valid float",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT h a inf",
            "ERR value is NaN or Infinity",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT str a -inf",
            "ERR value is NaN or Infinity",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT h a nan",
            "ERR value is not a valid float",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT h s 1",
            "ERR hash value is not a float",
        ),
        (
            hincrbyfloat,
            "HINCRBYFLOAT h sp 1",
            "ERR hash value is not a float",
        ),
    ] {
        assert_error(handler, line, &mut ws, msg);
    }
    load_hash(&mut ws, "huge", &[("x", "1.1e4932")]);
    assert_error(
        hincrbyfloat,
        "HINCRBYFLOAT huge x 1e4932",
        &mut ws,
        "ERR increment would produce NaN or Infinity",
    );
}

#[test]
fn hincrby_and_hincrbyfloat() {
    let mut ws = ws();
    assert_eq!(run(hincrby, "HINCRBY h a 5", &mut ws), Frame::Integer(5));
    assert_eq!(run(hincrby, "HINCRBY h a -7", &mut ws), Frame::Integer(-2));
    assert_eq!(
        run(hincrbyfloat, "HINCRBYFLOAT h a 0.1", &mut ws),
        bulk("-1.9")
    );
    assert_eq!(
        run(hincrbyfloat, "HINCRBYFLOAT h b 0.1", &mut ws),
        bulk("0.1")
    );
    assert_eq!(
        run(hincrbyfloat, "HINCRBYFLOAT h b 0.2", &mut ws),
        bulk("0.3")
    );
    assert_eq!(run(hset, "HSET h d 5.0e3", &mut ws), Frame::Integer(1));
    assert_eq!(
        run(hincrbyfloat, "HINCRBYFLOAT h d 2.0e2", &mut ws),
        bulk("5200")
    );
    assert_eq!(
        fields(&ws, "h"),
        pairs(&[("a", "-1.9"), ("b", "0.3"), ("d", "5200")])
    );
}
