//! What a key holds: a string or an insertion-ordered hash, an optional
//! absolute expiry, and the version of the write that produced it.

use bytes::Bytes;
use indexmap::IndexMap;

use super::version::Version;

/// A hash keeps its fields in first-insertion order, as Redis does for small
/// hashes: an updated field keeps its place, a re-added one moves to the end.
pub type Hash = IndexMap<Bytes, Bytes>;

/// The two Redis types spillway stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Str(Bytes),
    Hash(Hash),
}

impl Value {
    /// The name `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
        }
    }

    /// Approximate heap size, for the memory cache's byte bound.
    pub fn weight(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len() + 16).sum(),
        }
    }
}

/// A live value with its expiry (ms since the epoch; `None` = persistent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub value: Value,
    pub expire_at: Option<i64>,
}

impl Entry {
    pub fn new(value: Value) -> Entry {
        Entry {
            value,
            expire_at: None,
        }
    }

    pub fn is_expired(&self, now_ms: i64) -> bool {
        matches!(self.expire_at, Some(at) if at <= now_ms)
    }
}

/// What the database (and a cache entry) says about one key: its entry, or
/// nothing (never written, deleted: a tombstone), and the version that made
/// it so. Tombstones keep their version so an older write cannot resurrect
/// the key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Row {
    pub entry: Option<Entry>,
    pub version: Version,
}

impl Row {
    pub fn absent() -> Row {
        Row::default()
    }

    /// The entry as a reader at `now_ms` sees it: expired entries are absent.
    pub fn live(&self, now_ms: i64) -> Option<&Entry> {
        self.entry.as_ref().filter(|e| !e.is_expired(now_ms))
    }
}
