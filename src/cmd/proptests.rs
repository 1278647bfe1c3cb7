//! Every data command, fed arbitrary arguments of the right count, must
//! answer without panicking, and an error reply must leave the working set
//! untouched.

use bytes::Bytes;
use proptest::prelude::*;

use super::table::{COMMANDS, Exec, Handler, lookup};
use super::testutil::*;
use crate::keyspace::Value;

const WORDS: &[&str] = &[
    "a",
    "b",
    "c",
    "f",
    "g",
    "",
    "0",
    "1",
    "-1",
    "10",
    "1.5",
    "0.1",
    "-0",
    "+1",
    "01",
    "1e3",
    "inf",
    "-inf",
    "nan",
    "0x10",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1e4932",
    "ex",
    "px",
    "exat",
    "pxat",
    "nx",
    "xx",
    "gt",
    "lt",
    "get",
    "keepttl",
    "persist",
    "EX",
    "NX",
    "GET",
    "536870912",
    "\0",
    "\r\n",
];

fn handler(name: &str) -> Handler {
    match lookup(name.as_bytes()).map(|s| s.exec) {
        Some(Exec::Read(h) | Exec::Write(h)) => h,
        _ => unreachable!("{name} is a data command"),
    }
}

/// A data command's name with an argument list its arity accepts.
fn call() -> impl Strategy<Value = (&'static str, Vec<&'static str>)> {
    let data = COMMANDS.iter().filter(|s| !matches!(s.exec, Exec::Session));
    let specs: Vec<_> = data.map(|s| (s.name, s.arity)).collect();
    prop::sample::select(specs).prop_flat_map(|(name, arity)| {
        let base = arity.unsigned_abs() as usize - 1;
        let extra = if arity < 0 { 0..5usize } else { 0..1 };
        extra
            .prop_flat_map(move |n| prop::collection::vec(prop::sample::select(WORDS), base + n))
            .prop_map(move |args| (name, args))
    })
}

proptest! {
    #[test]
    fn handlers_never_panic_and_errors_change_nothing((name, args) in call()) {
        let argv: Vec<Bytes> = std::iter::once(name).chain(args).map(Bytes::from).collect();
        let mut ws = ws();
        load_str(&mut ws, "a", "12", Some(NOW + 1_000));
        load_str(&mut ws, "c", "0.5", None);
        load(&mut ws, "b", Value::Hash(hash(&[("f", "1"), ("g", "x")])), None);
        load_str(&mut ws, "g", "old", Some(NOW));
        let reply = handler(name)(&argv, &mut ws);
        if reply.is_error() {
            prop_assert!(!ws.has_changes(), "{argv:?} -> {reply:?}");
        }
    }
}
