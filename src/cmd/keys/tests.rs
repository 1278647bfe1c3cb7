//! Expected replies and error texts were checked against redis-server 7.0.

use super::*;
use crate::cmd::testutil::*;

#[test]
fn del_exists_type() {
    let mut ws = ws();
    load_str(&mut ws, "a", "1", None);
    load_str(&mut ws, "b", "2", None);
    load_str(&mut ws, "old", "x", Some(NOW - 1));
    load_hash(&mut ws, "h", &[("f", "v")]);
    assert_eq!(
        run(exists, "EXISTS a a h old nokey", &mut ws),
        Frame::Integer(3)
    );
    assert_eq!(
        run(type_, "TYPE a", &mut ws),
        Frame::Simple("string".into())
    );
    assert_eq!(run(type_, "TYPE h", &mut ws), Frame::Simple("hash".into()));
    assert_eq!(
        run(type_, "TYPE old", &mut ws),
        Frame::Simple("none".into())
    );
    assert_eq!(run(del, "DEL nokey old", &mut ws), Frame::Integer(0));
    assert!(!ws.has_changes(), "deleting nothing writes nothing");
    assert_eq!(run(del, "DEL a a b h nokey", &mut ws), Frame::Integer(3));
    assert_eq!(run(exists, "EXISTS a b h", &mut ws), Frame::Integer(0));
}

#[test]
fn expire_sets_and_past_times_delete() {
    let mut ws = ws();
    load_str(&mut ws, "k", "v", None);
    assert_eq!(run(expire, "EXPIRE k 100", &mut ws), Frame::Integer(1));
    assert_eq!(expiry(&ws, "k"), Some(NOW + 100_000));
    assert_eq!(run(pexpire, "PEXPIRE k 100", &mut ws), Frame::Integer(1));
    assert_eq!(expiry(&ws, "k"), Some(NOW + 100));
    assert_eq!(
        run(expireat, "EXPIREAT k 2000000000", &mut ws),
        Frame::Integer(1)
    );
    assert_eq!(expiry(&ws, "k"), Some(2_000_000_000_000));
    assert_eq!(
        run(pexpireat, "PEXPIREAT k 9223372036854775807", &mut ws),
        Frame::Integer(1)
    );
    assert_eq!(expiry(&ws, "k"), Some(i64::MAX));
    assert_eq!(run(expire, "EXPIRE nokey 100", &mut ws), Frame::Integer(0));
    assert_eq!(
        run(expire, "EXPIRE k -9223372036854775", &mut ws),
        Frame::Integer(1)
    );
    assert!(ws.get(b"k").is_none(), "a time in the past deletes");
    load_str(&mut ws, "z", "v", None);
    assert_eq!(
        run(pexpireat, &format!("PEXPIREAT z {NOW}"), &mut ws),
        Frame::Integer(1)
    );
    assert!(ws.get(b"z").is_none(), "now is already past");
}

#[test]
fn expire_conditions() {
    let mut ws = ws();
    load_str(&mut ws, "k", "v", None);
    let cases = [
        ("EXPIRE k 100 XX", 0, None),
        ("EXPIRE k 100 GT", 0, None),
        ("EXPIRE k 100 LT", 1, Some(100)),
        ("EXPIRE k 200 NX", 0, Some(100)),
        ("EXPIRE k 50 gt", 0, Some(100)),
        ("EXPIRE k 100 gt", 0, Some(100)),
        ("EXPIRE k 150 GT", 1, Some(150)),
        ("EXPIRE k 300 LT", 0, Some(150)),
        ("EXPIRE k 150 LT", 0, Some(150)),
        ("EXPIRE k 50 lt xx", 1, Some(50)),
    ];
    for (line, reply, secs) in cases {
        assert_eq!(run(expire, line, &mut ws), Frame::Integer(reply), "{line}");
        assert_eq!(expiry(&ws, "k"), secs.map(|s| NOW + s * 1000), "{line}");
    }
    load_str(&mut ws, "p", "v", None);
    assert_eq!(run(expire, "EXPIRE p 10 NX", &mut ws), Frame::Integer(1));
}

#[test]
fn expire_errors_change_nothing() {
    let mut ws = ws();
    load_str(&mut ws, "k", "v", None);
    let not_compatible = "ERR NX and XX, GT or LT options at the same time are not compatible";
    for (line, msg) in [
        ("EXPIRE k 10 nx xx", not_compatible),
        ("EXPIRE k 10 NX GT", not_compatible),
        ("EXPIRE k 10 lt nx", not_compatible),
        (
            "EXPIRE k 10 gt lt",
            "ERR GT and LT options at the same time are not compatible",
        ),
        ("EXPIRE k 10 foo", "ERR Unsupported option foo"),
        ("EXPIRE k abc foo", "ERR Unsupported option foo"),
        (
            "EXPIRE k abc",
            "ERR value is not an integer or out of range",
        ),
        (
            "EXPIRE k 9223372036854776",
            "ERR invalid expire time in 'expire' command",
        ),
        (
            "EXPIRE k -9223372036854776",
            "ERR invalid expire time in 'expire' command",
        ),
        (
            "EXPIRE k 9223372036854775",
            "ERR invalid expire time in 'expire' command",
        ),
        (
            "EXPIRE nokey 9223372036854776",
            "ERR invalid expire time in 'expire' command",
        ),
    ] {
        assert_error(expire, line, &mut ws, msg);
    }
    assert_error(
        pexpire,
        "PEXPIRE k 9223372036854775807",
        &mut ws,
        "ERR invalid expire time in 'pexpire' command",
    );
    assert_error(
        expireat,
        "EXPIREAT k 9223372036854775807",
        &mut ws,
        "ERR invalid expire time in 'expireat' command",
    );
    let argv = vec![
        Bytes::from("expire"),
        Bytes::from("k"),
        Bytes::from("1"),
        Bytes::from("a\r\nb"),
    ];
    assert_eq!(expire(&argv, &mut ws), err("ERR Unsupported option a  b"));
}

#[test]
fn ttl_family_and_persist() {
    let mut ws = ws();
    load_str(&mut ws, "p", "v", None);
    load_str(&mut ws, "t", "v", Some(NOW + 1_500));
    load_str(&mut ws, "u", "v", Some(NOW + 1_499));
    load_hash(&mut ws, "h", &[("f", "v")]);
    for (f, name) in [
        (ttl as crate::cmd::table::Handler, "TTL"),
        (pttl, "PTTL"),
        (expiretime, "EXPIRETIME"),
        (pexpiretime, "PEXPIRETIME"),
    ] {
        assert_eq!(
            run(f, &format!("{name} nokey"), &mut ws),
            Frame::Integer(-2)
        );
        assert_eq!(run(f, &format!("{name} p"), &mut ws), Frame::Integer(-1));
        assert_eq!(run(f, &format!("{name} h"), &mut ws), Frame::Integer(-1));
    }
    assert_eq!(
        run(ttl, "TTL t", &mut ws),
        Frame::Integer(2),
        "rounded to the nearest second"
    );
    assert_eq!(run(ttl, "TTL u", &mut ws), Frame::Integer(1));
    assert_eq!(run(pttl, "PTTL t", &mut ws), Frame::Integer(1_500));
    assert_eq!(
        run(expiretime, "EXPIRETIME t", &mut ws),
        Frame::Integer((NOW + 1_500) / 1000)
    );
    assert_eq!(
        run(pexpiretime, "PEXPIRETIME t", &mut ws),
        Frame::Integer(NOW + 1_500)
    );
    assert_eq!(run(persist, "PERSIST p", &mut ws), Frame::Integer(0));
    assert_eq!(run(persist, "PERSIST nokey", &mut ws), Frame::Integer(0));
    assert!(!ws.has_changes());
    assert_eq!(run(persist, "PERSIST t", &mut ws), Frame::Integer(1));
    assert_eq!(run(ttl, "TTL t", &mut ws), Frame::Integer(-1));
}
