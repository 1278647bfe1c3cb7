//! Shared helpers for the command families' unit tests.

use bytes::Bytes;

use super::table::Handler;
use crate::keyspace::{Entry, Hash, Row, Value, Version, WorkingSet};
use crate::resp::Frame;

/// The instant every test's working set runs at.
pub const NOW: i64 = 1_700_000_000_000;

pub fn ws() -> WorkingSet {
    WorkingSet::new(NOW)
}

/// Splits a command line on spaces; `''` stands for an empty argument.
pub fn argv(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|a| {
            if a == "''" {
                Bytes::new()
            } else {
                Bytes::copy_from_slice(a.as_bytes())
            }
        })
        .collect()
}

pub fn run(handler: Handler, line: &str, ws: &mut WorkingSet) -> Frame {
    handler(&argv(line), ws)
}

pub fn bulk(s: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn err(msg: &str) -> Frame {
    Frame::Error(msg.to_owned())
}

pub fn load(ws: &mut WorkingSet, key: &str, value: Value, expire_at: Option<i64>) {
    ws.load(
        Bytes::copy_from_slice(key.as_bytes()),
        Row {
            entry: Some(Entry { value, expire_at }),
            version: Version(1),
        },
    );
}

pub fn load_str(ws: &mut WorkingSet, key: &str, value: &str, expire_at: Option<i64>) {
    load(
        ws,
        key,
        Value::Str(Bytes::copy_from_slice(value.as_bytes())),
        expire_at,
    );
}

pub fn hash(pairs: &[(&str, &str)]) -> Hash {
    pairs
        .iter()
        .map(|(f, v)| {
            (
                Bytes::copy_from_slice(f.as_bytes()),
                Bytes::copy_from_slice(v.as_bytes()),
            )
        })
        .collect()
}

pub fn load_hash(ws: &mut WorkingSet, key: &str, pairs: &[(&str, &str)]) {
    load(ws, key, Value::Hash(hash(pairs)), None);
}

/// The string a key holds now, if it holds one.
pub fn string(ws: &WorkingSet, key: &str) -> Option<String> {
    match ws.get(key.as_bytes()).map(|e| &e.value) {
        Some(Value::Str(s)) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

pub fn expiry(ws: &WorkingSet, key: &str) -> Option<i64> {
    ws.get(key.as_bytes()).and_then(|e| e.expire_at)
}

/// Runs `line` and asserts it fails with `msg` without touching anything.
pub fn assert_error(handler: Handler, line: &str, ws: &mut WorkingSet, msg: &str) {
    assert_eq!(run(handler, line, ws), err(msg), "{line}");
    assert!(!ws.has_changes(), "{line} changed the working set");
}
