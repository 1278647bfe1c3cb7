//! Expected replies and error texts were checked against redis-server 7.0.

use super::*;
use crate::cmd::testutil::*;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn get_mget_strlen() {
    let mut ws = ws();
    load_str(&mut ws, "s", "hello", None);
    load_str(&mut ws, "old", "gone", Some(NOW));
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(get, "GET s", &mut ws), bulk("hello"));
    assert_eq!(
        run(get, "GET old", &mut ws),
        Frame::Null,
        "expired reads as absent"
    );
    assert_eq!(run(get, "GET nokey", &mut ws), Frame::Null);
    assert_eq!(run(get, "GET h", &mut ws), err(WRONGTYPE));
    assert_eq!(
        run(mget, "MGET s h nokey s", &mut ws),
        Frame::Array(vec![bulk("hello"), Frame::Null, Frame::Null, bulk("hello")])
    );
    assert_eq!(run(strlen, "STRLEN s", &mut ws), Frame::Integer(5));
    assert_eq!(run(strlen, "STRLEN nokey", &mut ws), Frame::Integer(0));
    assert_eq!(run(strlen, "STRLEN h", &mut ws), err(WRONGTYPE));
    assert!(!ws.has_changes());
}

#[test]
fn getrange_clamps_like_redis() {
    let mut ws = ws();
    load_str(&mut ws, "s", "hello", None);
    load_hash(&mut ws, "h", &[("f", "v")]);
    for (range, want) in [
        ("0 -1", "hello"),
        ("-3 -1", "llo"),
        ("-1 -3", ""),
        ("2 100", "llo"),
        ("10 20", ""),
        ("-100 1", "he"),
        ("-9223372036854775808 9223372036854775807", "hello"),
        ("3 1", ""),
    ] {
        assert_eq!(
            run(getrange, &format!("GETRANGE s {range}"), &mut ws),
            bulk(want),
            "{range}"
        );
    }
    assert_eq!(run(getrange, "GETRANGE nokey 0 1", &mut ws), bulk(""));
    assert_eq!(run(getrange, "GETRANGE h 0 1", &mut ws), err(WRONGTYPE));
    let not_int = "ERR value is not an integer or out of range";
    assert_eq!(run(getrange, "GETRANGE h x 1", &mut ws), err(not_int));
    assert_eq!(run(getrange, "GETRANGE s 0 1.5", &mut ws), err(not_int));
}

#[test]
fn set_options() {
    let mut ws = ws();
    assert_eq!(run(set, "SET k v", &mut ws), Frame::ok());
    assert_eq!(string(&ws, "k").as_deref(), Some("v"));
    assert_eq!(run(set, "SET k v EX 10", &mut ws), Frame::ok());
    assert_eq!(expiry(&ws, "k"), Some(NOW + 10_000));
    assert_eq!(
        run(set, "SET k v px 10 PX 20", &mut ws),
        Frame::ok(),
        "a repeated option is fine"
    );
    assert_eq!(expiry(&ws, "k"), Some(NOW + 20));
    assert_eq!(run(set, "SET k v2 KEEPTTL", &mut ws), Frame::ok());
    assert_eq!(
        (string(&ws, "k").as_deref(), expiry(&ws, "k")),
        (Some("v2"), Some(NOW + 20))
    );
    assert_eq!(run(set, "SET k v3", &mut ws), Frame::ok());
    assert_eq!(expiry(&ws, "k"), None, "SET clears the TTL");
    assert_eq!(
        run(set, "SET k v EXAT 9223372036854775", &mut ws),
        Frame::ok()
    );
    assert_eq!(expiry(&ws, "k"), Some(9_223_372_036_854_775_000));
    assert_eq!(
        run(set, "SET k v pxat 9223372036854775807", &mut ws),
        Frame::ok()
    );
    assert_eq!(run(set, "SET k v NX", &mut ws), Frame::Null);
    assert_eq!(run(set, "SET n v XX", &mut ws), Frame::Null);
    assert_eq!(string(&ws, "n"), None);
    assert_eq!(run(set, "SET n v nx", &mut ws), Frame::ok());
    assert_eq!(run(set, "SET n w xx", &mut ws), Frame::ok());
    assert_eq!(string(&ws, "n").as_deref(), Some("w"));
}

#[test]
fn set_with_get() {
    let mut ws = ws();
    load_str(&mut ws, "k", "old", None);
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(set, "SET k new GET", &mut ws), bulk("old"));
    assert_eq!(run(set, "SET k newer get get", &mut ws), bulk("new"));
    assert_eq!(
        run(set, "SET k x NX GET", &mut ws),
        bulk("newer"),
        "NX stops the write, GET still answers"
    );
    assert_eq!(string(&ws, "k").as_deref(), Some("newer"));
    assert_eq!(run(set, "SET n v GET", &mut ws), Frame::Null);
    assert_eq!(string(&ws, "n").as_deref(), Some("v"));
    assert_eq!(run(set, "SET m v XX GET", &mut ws), Frame::Null);
    assert_eq!(string(&ws, "m"), None);
    ws.clear_changes();
    assert_error(set, "SET h x GET", &mut ws, WRONGTYPE);
}

#[test]
fn set_replaces_a_hash_and_past_times_delete() {
    let mut ws = ws();
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(set, "SET h x", &mut ws), Frame::ok());
    assert_eq!(string(&ws, "h").as_deref(), Some("x"));
    load_str(&mut ws, "e", "v", None);
    assert_eq!(run(set, "SET e v2 EXAT 1 GET", &mut ws), bulk("v"));
    assert!(ws.get(b"e").is_none());
    assert_eq!(run(set, "SET f v PXAT 1", &mut ws), Frame::ok());
    assert!(ws.get(b"f").is_none());
}

#[test]
fn set_errors_change_nothing() {
    let mut ws = ws();
    load_str(&mut ws, "k", "v", Some(NOW + 5));
    let syntax = "ERR syntax error";
    let expire = "ERR invalid expire time in 'set' command";
    let not_int = "ERR value is not an integer or out of range";
    for (line, msg) in [
        ("SET k v EX 10 PX 10", syntax),
        ("SET k v NX XX", syntax),
        ("SET k v XX NX", syntax),
        ("SET k v EX 10 KEEPTTL", syntax),
        ("SET k v KEEPTTL EX 10", syntax),
        ("SET k v EX", syntax),
        ("SET k v PERSIST", syntax),
        ("SET k v foo", syntax),
        ("SET k v EX 0", expire),
        ("SET k v EX -1", expire),
        ("SET k v PX 0", expire),
        ("SET k v EX 9223372036854775807", expire),
        ("SET k v EX 9223372036854776", expire),
        ("SET k v EX 9223372036854775", expire),
        ("SET k v PX 9223372036854775807", expire),
        ("SET k v EX 0 GET", expire),
        ("SET k v EX abc", not_int),
        ("SET k v EX 1.5", not_int),
    ] {
        assert_error(set, line, &mut ws, msg);
    }
    assert_error(
        setex,
        "SETEX k 0 v",
        &mut ws,
        "ERR invalid expire time in 'setex' command",
    );
    assert_error(
        setex,
        "SETEX k -5 v",
        &mut ws,
        "ERR invalid expire time in 'setex' command",
    );
    assert_error(setex, "SETEX k abc v", &mut ws, not_int);
    assert_error(
        psetex,
        "PSETEX k 0 v",
        &mut ws,
        "ERR invalid expire time in 'psetex' command",
    );
}

#[test]
fn setnx_setex_psetex() {
    let mut ws = ws();
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(setnx, "SETNX k v", &mut ws), Frame::Integer(1));
    assert_eq!(run(setnx, "SETNX k w", &mut ws), Frame::Integer(0));
    assert_eq!(run(setnx, "SETNX h w", &mut ws), Frame::Integer(0));
    assert_eq!(string(&ws, "k").as_deref(), Some("v"));
    assert_eq!(run(setex, "SETEX k 10 x", &mut ws), Frame::ok());
    assert_eq!(
        (string(&ws, "k").as_deref(), expiry(&ws, "k")),
        (Some("x"), Some(NOW + 10_000))
    );
    assert_eq!(run(psetex, "PSETEX h 10 y", &mut ws), Frame::ok());
    assert_eq!(
        (string(&ws, "h").as_deref(), expiry(&ws, "h")),
        (Some("y"), Some(NOW + 10))
    );
}

#[test]
fn getdel_and_getex() {
    let mut ws = ws();
    load_str(&mut ws, "k", "v", Some(NOW + 100_000));
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(getex, "GETEX k", &mut ws), bulk("v"));
    assert!(!ws.has_changes(), "plain GETEX writes nothing");
    assert_eq!(run(getex, "GETEX k PERSIST", &mut ws), bulk("v"));
    assert_eq!(expiry(&ws, "k"), None);
    assert_eq!(run(getex, "GETEX k EX 10", &mut ws), bulk("v"));
    assert_eq!(expiry(&ws, "k"), Some(NOW + 10_000));
    assert_eq!(
        run(getex, "GETEX k pxat 9223372036854775807", &mut ws),
        bulk("v")
    );
    assert_eq!(expiry(&ws, "k"), Some(i64::MAX));
    assert_eq!(run(getex, "GETEX k EXAT 1", &mut ws), bulk("v"));
    assert!(ws.get(b"k").is_none(), "a past EXAT deletes");
    assert_eq!(
        run(getex, "GETEX nokey EX abc", &mut ws),
        Frame::Null,
        "absent key: nil before the time is checked"
    );
    ws.clear_changes();
    assert_error(getex, "GETEX nokey foo", &mut ws, "ERR syntax error");
    assert_error(getex, "GETEX h EX abc", &mut ws, WRONGTYPE);
    load_str(&mut ws, "k", "v", None);
    for line in [
        "GETEX k PERSIST EX 10",
        "GETEX k EX 10 PX 10",
        "GETEX k NX",
        "GETEX k KEEPTTL",
        "GETEX k EX",
    ] {
        assert_error(getex, line, &mut ws, "ERR syntax error");
    }
    assert_error(
        getex,
        "GETEX k EX 0",
        &mut ws,
        "ERR invalid expire time in 'getex' command",
    );
    assert_error(
        getex,
        "GETEX k ex 9223372036854775",
        &mut ws,
        "ERR invalid expire time in 'getex' command",
    );
    assert_error(
        getex,
        "GETEX k EX x",
        &mut ws,
        "ERR value is not an integer or out of range",
    );
    assert_error(getdel, "GETDEL h", &mut ws, WRONGTYPE);
    assert_eq!(run(getdel, "GETDEL nokey", &mut ws), Frame::Null);
    assert!(!ws.has_changes());
    assert_eq!(run(getdel, "GETDEL k", &mut ws), bulk("v"));
    assert!(ws.get(b"k").is_none());
}

#[test]
fn mset_and_msetnx() {
    let mut ws = ws();
    load_str(&mut ws, "t", "x", Some(NOW + 5));
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(mset, "MSET a 1 b 2 a 3 t y", &mut ws), Frame::ok());
    assert_eq!(
        string(&ws, "a").as_deref(),
        Some("3"),
        "the last of a repeated key wins"
    );
    assert_eq!(expiry(&ws, "t"), None);
    ws.clear_changes();
    assert_error(
        mset,
        "MSET a 1 b",
        &mut ws,
        "ERR wrong number of arguments for 'mset' command",
    );
    assert_error(
        msetnx,
        "MSETNX a 1 b",
        &mut ws,
        "ERR wrong number of arguments for 'msetnx' command",
    );
    assert_eq!(
        run(msetnx, "MSETNX c 1 h 2", &mut ws),
        Frame::Integer(0),
        "a hash counts as existing"
    );
    assert!(!ws.has_changes(), "MSETNX writes all or nothing");
    assert_eq!(
        run(msetnx, "MSETNX c 1 d 2 c 3", &mut ws),
        Frame::Integer(1)
    );
    assert_eq!(
        (string(&ws, "c").as_deref(), string(&ws, "d").as_deref()),
        (Some("3"), Some("2"))
    );
}

#[test]
fn append_and_setrange() {
    let mut ws = ws();
    load_str(&mut ws, "s", "hello", Some(NOW + 5));
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(run(append, "APPEND s 123", &mut ws), Frame::Integer(8));
    assert_eq!(
        (string(&ws, "s").as_deref(), expiry(&ws, "s")),
        (Some("hello123"), Some(NOW + 5))
    );
    assert_eq!(run(append, "APPEND new ''", &mut ws), Frame::Integer(0));
    assert_eq!(
        string(&ws, "new").as_deref(),
        Some(""),
        "an empty APPEND creates the key"
    );
    assert_eq!(run(setrange, "SETRANGE s 1 EL", &mut ws), Frame::Integer(8));
    assert_eq!(string(&ws, "s").as_deref(), Some("hELlo123"));
    assert_eq!(
        run(setrange, "SETRANGE s 10 z", &mut ws),
        Frame::Integer(11)
    );
    assert_eq!(string(&ws, "s").as_deref(), Some("hELlo123\0\0z"));
    assert_eq!(expiry(&ws, "s"), Some(NOW + 5), "SETRANGE keeps the TTL");
    assert_eq!(
        run(setrange, "SETRANGE pad 3 ab", &mut ws),
        Frame::Integer(5)
    );
    assert_eq!(string(&ws, "pad").as_deref(), Some("\0\0\0ab"));
    ws.clear_changes();
    assert_eq!(
        run(setrange, "SETRANGE s 0 ''", &mut ws),
        Frame::Integer(11)
    );
    assert_eq!(
        run(setrange, "SETRANGE nokey 5 ''", &mut ws),
        Frame::Integer(0)
    );
    assert!(!ws.has_changes(), "an empty SETRANGE writes nothing");
    let too_big = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    assert_error(
        setrange,
        "SETRANGE s -1 x",
        &mut ws,
        "ERR offset is out of range",
    );
    assert_error(
        setrange,
        "SETRANGE h -1 x",
        &mut ws,
        "ERR offset is out of range",
    );
    assert_error(setrange, "SETRANGE s 536870912 x", &mut ws, too_big);
    assert_error(
        setrange,
        "SETRANGE s 9223372036854775807 x",
        &mut ws,
        too_big,
    );
    assert_error(
        setrange,
        "SETRANGE s x x",
        &mut ws,
        "ERR value is not an integer or out of range",
    );
    assert_error(setrange, "SETRANGE h 0 ''", &mut ws, WRONGTYPE);
    assert_error(append, "APPEND h x", &mut ws, WRONGTYPE);
}

#[test]
fn counters() {
    let mut ws = ws();
    load_str(&mut ws, "n", "10", Some(NOW + 100_000));
    assert_eq!(run(incr, "INCR n", &mut ws), Frame::Integer(11));
    assert_eq!(run(decrby, "DECRBY n 20", &mut ws), Frame::Integer(-9));
    assert_eq!(run(incrby, "INCRBY n -1", &mut ws), Frame::Integer(-10));
    assert_eq!(run(decr, "DECR n", &mut ws), Frame::Integer(-11));
    assert_eq!(
        (string(&ws, "n").as_deref(), expiry(&ws, "n")),
        (Some("-11"), Some(NOW + 100_000)),
        "INCR keeps the TTL"
    );
    assert_eq!(run(incr, "INCR fresh", &mut ws), Frame::Integer(1));
    assert_eq!(
        run(incrby, "INCRBY big 9223372036854775807", &mut ws),
        Frame::Integer(i64::MAX)
    );
    ws.clear_changes();
    let overflow = "ERR increment or decrement would overflow";
    let not_int = "ERR value is not an integer or out of range";
    assert_error(incr, "INCR big", &mut ws, overflow);
    assert_error(decrby, "DECRBY n 9223372036854775807", &mut ws, overflow);
    assert_error(
        decrby,
        "DECRBY n -9223372036854775808",
        &mut ws,
        "ERR decrement would overflow",
    );
    assert_error(incrby, "INCRBY n 9223372036854775808", &mut ws, not_int);
    for bad in [
        "+1",
        "01",
        "-0",
        " 1",
        "1 ",
        "1.0",
        "abc",
        "",
        "123456789012345678901",
    ] {
        let mut ws = crate::cmd::testutil::ws();
        load_str(&mut ws, "x", bad, None);
        assert_error(incr, "INCR x", &mut ws, not_int);
        let reply = incrby(
            &[argv("INCRBY x"), vec![Bytes::from(bad)]].concat(),
            &mut ws,
        );
        assert_eq!(reply, err(not_int), "{bad:?}");
    }
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_error(incr, "INCR h", &mut ws, WRONGTYPE);
    assert_error(incrby, "INCRBY h x", &mut ws, not_int);
}

#[test]
fn incrbyfloat_formats_like_redis() {
    let mut ws = ws();
    load_str(&mut ws, "x", "0.1", Some(NOW + 5));
    assert_eq!(run(incrbyfloat, "INCRBYFLOAT x 0.2", &mut ws), bulk("0.3"));
    assert_eq!(
        (string(&ws, "x").as_deref(), expiry(&ws, "x")),
        (Some("0.3"), Some(NOW + 5))
    );
    for (start, by, want) in [
        ("10.50", "0.1", "10.6"),
        ("5.0e3", "2.0e2", "5200"),
        ("1000000.1", "0.1", "1000000.20000000000004547"),
        ("3", "-3", "0"),
        ("0", "-1e-30", "0"),
        ("0x10", "0x1p-2", "16.25"),
        ("0.000003814697265625", "0", "0.00000381469726562"),
        ("12345678901234567890.5", "0", "12345678901234567890"),
    ] {
        let mut ws = crate::cmd::testutil::ws();
        load_str(&mut ws, "x", start, None);
        assert_eq!(
            run(incrbyfloat, &format!("INCRBYFLOAT x {by}"), &mut ws),
            bulk(want),
            "{start} + {by}"
        );
    }
    assert_eq!(
        run(incrbyfloat, "INCRBYFLOAT fresh -.5", &mut ws),
        bulk("-0.5")
    );
    ws.clear_changes();
    let not_float = "ERR value is not a valid float";
    let nan = "ERR increment would produce NaN or Infinity";
    assert_error(incrbyfloat, "INCRBYFLOAT x abc", &mut ws, not_float);
    assert_error(incrbyfloat, "INCRBYFLOAT x nan", &mut ws, not_float);
    assert_error(incrbyfloat, "INCRBYFLOAT x 1e99999", &mut ws, not_float);
    assert_error(incrbyfloat, "INCRBYFLOAT x inf", &mut ws, nan);
    load_str(&mut ws, "bad", "1 ", None);
    assert_error(incrbyfloat, "INCRBYFLOAT bad 1", &mut ws, not_float);
    load_str(&mut ws, "big", "1.1e4932", None);
    assert_error(incrbyfloat, "INCRBYFLOAT big 1e4932", &mut ws, nan);
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_error(incrbyfloat, "INCRBYFLOAT h abc", &mut ws, WRONGTYPE);
}
