//! What both SQL backends share: turning a `Row` into the columns of
//! `spillway_kv` and back, putting query results into the caller's key order,
//! preparing upsert batches, and checkpoint sequences as `bigint`.

use std::collections::HashMap;

use bytes::Bytes;

use super::kind;
use crate::error::{Backend, Error, Result};
use crate::keyspace::codec;
use crate::keyspace::{Entry, Row, Value, Version};

/// The columns of one row, as bound to an upsert.
#[derive(Debug)]
pub(crate) struct Columns {
    pub kind: i16,
    pub value: Option<Bytes>,
    pub expire_at: Option<i64>,
    pub version: i64,
}

/// A row's columns: strings as their bytes, hashes encoded by
/// `codec::encode_hash` (which keeps field order), tombstones without value
/// or expiry but with their version.
pub(crate) fn to_columns(row: &Row) -> Columns {
    let (kind, value, expire_at) = match &row.entry {
        None => (kind::TOMBSTONE, None, None),
        Some(Entry { value, expire_at }) => match value {
            Value::Str(s) => (kind::STRING, Some(s.clone()), *expire_at),
            Value::Hash(h) => (kind::HASH, Some(codec::encode_hash(h)), *expire_at),
        },
    };
    Columns {
        kind,
        value,
        expire_at,
        version: row.version.as_i64(),
    }
}

/// The row stored in these columns. A kind this code does not know, a live
/// row without a value or a hash blob that does not decode is corruption:
/// serving it as absent could let a write silently replace data.
pub(crate) fn from_columns(
    backend: Backend,
    kind: i64,
    value: Option<Vec<u8>>,
    expire_at: Option<i64>,
    version: i64,
) -> Result<Row> {
    let version = Version::from_i64(version);
    let corrupt = |what: &str| Error::Corruption {
        backend,
        detail: format!("spillway_kv row of version {}: {what}", version.0),
    };
    let value = match (i16::try_from(kind).unwrap_or(-1), value) {
        (kind::TOMBSTONE, _) => {
            return Ok(Row {
                entry: None,
                version,
            });
        }
        (kind::STRING, Some(v)) => Value::Str(Bytes::from(v)),
        (kind::HASH, Some(v)) => {
            Value::Hash(codec::decode_hash(Bytes::from(v)).map_err(|e| corrupt(&e.to_string()))?)
        }
        (kind::STRING | kind::HASH, None) => return Err(corrupt("live row without a value")),
        _ => return Err(corrupt(&format!("unknown kind {kind}"))),
    };
    Ok(Row {
        entry: Some(Entry { value, expire_at }),
        version,
    })
}

/// Rows found by key, returned in the order of `keys` (duplicates repeat,
/// missing keys are `Row::absent()`).
pub(crate) fn in_key_order(keys: &[Bytes], mut found: HashMap<Bytes, Row>) -> Vec<Row> {
    let mut remaining: HashMap<&Bytes, usize> = HashMap::with_capacity(keys.len());
    for key in keys {
        *remaining.entry(key).or_default() += 1;
    }
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        // The last request for a key takes the row; earlier ones clone it.
        let left = remaining.get_mut(key).map(|n| {
            *n -= 1;
            *n
        });
        let row = if left == Some(0) {
            found.remove(key)
        } else {
            found.get(key).cloned()
        };
        out.push(row.unwrap_or_default());
    }
    out
}

/// The rows of a batch with each key once, its last write winning, in the
/// order of those last writes. Postgres refuses to upsert one key twice in a
/// statement, and the last write in the batch is the one that must stick.
pub(crate) fn last_per_key(rows: &[(Bytes, Row)]) -> Vec<&(Bytes, Row)> {
    let mut last: HashMap<&Bytes, usize> = HashMap::with_capacity(rows.len());
    for (i, (key, _)) in rows.iter().enumerate() {
        last.insert(key, i);
    }
    rows.iter()
        .enumerate()
        .filter(|(i, (key, _))| last.get(key) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

/// A WAL sequence as a `bigint` parameter. Sequences start at 1 and grow by
/// one per record, so one past `i64::MAX` is a caller bug, refused rather
/// than stored as a negative number that would sort below every checkpoint.
pub(crate) fn seq_param(backend: Backend, seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| Error::Rejected {
        backend,
        detail: format!("sequence {seq} does not fit a bigint"),
    })
}

/// A stored checkpoint; only `seq_param` values are ever written.
pub(crate) fn seq_column(backend: Backend, seq: i64) -> Result<u64> {
    u64::try_from(seq).map_err(|_| Error::Corruption {
        backend,
        detail: format!("negative seq {seq} in spillway_checkpoints"),
    })
}

/// The name `TYPE` and `SCAN … TYPE` use for a live row's kind.
pub(crate) fn type_name(backend: Backend, k: i64) -> Result<&'static str> {
    match i16::try_from(k) {
        Ok(kind::STRING) => Ok("string"),
        Ok(kind::HASH) => Ok("hash"),
        _ => Err(Error::Corruption {
            backend,
            detail: format!("unknown kind {k} in spillway_kv"),
        }),
    }
}

/// A stored `key_hash` as a SCAN cursor; `key_hash` is never negative.
pub(crate) fn cursor(backend: Backend, hash: i64) -> Result<u64> {
    u64::try_from(hash).map_err(|_| Error::Corruption {
        backend,
        detail: format!("negative key_hash {hash} in spillway_kv"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Hash;

    #[test]
    fn columns_round_trip() {
        let mut h = Hash::new();
        h.insert(Bytes::from_static(b"z"), Bytes::from_static(b"1"));
        h.insert(Bytes::from_static(b"a"), Bytes::from_static(b"\0"));
        let rows = [
            Row {
                entry: None,
                version: Version(7),
            },
            Row {
                entry: Some(Entry {
                    value: Value::Str(Bytes::from_static(b"\xff\0")),
                    expire_at: Some(12),
                }),
                version: Version(8),
            },
            Row {
                entry: Some(Entry::new(Value::Hash(h))),
                version: Version(9),
            },
        ];
        for row in rows {
            let c = to_columns(&row);
            let back = from_columns(
                "sqlite",
                c.kind.into(),
                c.value.map(|v| v.to_vec()),
                c.expire_at,
                c.version,
            )
            .unwrap();
            assert_eq!(back, row);
        }
    }

    #[test]
    fn bad_columns_are_corruption() {
        let bad = [
            (1, None),
            (2, Some(b"\0\0\0\x09ab".to_vec())),
            (7, Some(b"x".to_vec())),
        ];
        for (kind, value) in bad {
            let err = from_columns("postgres", kind, value, None, 1).unwrap_err();
            assert!(matches!(
                err,
                Error::Corruption {
                    backend: "postgres",
                    ..
                }
            ));
        }
    }

    #[test]
    fn key_order_and_last_write_per_key() {
        let k = |s: &'static str| Bytes::from_static(s.as_bytes());
        let row = |v| Row {
            entry: None,
            version: Version(v),
        };
        let found = HashMap::from([(k("b"), row(2))]);
        let got = in_key_order(&[k("a"), k("b"), k("b")], found);
        assert_eq!(got, vec![Row::absent(), row(2), row(2)]);

        let batch = [(k("x"), row(1)), (k("y"), row(2)), (k("x"), row(3))];
        let kept: Vec<_> = last_per_key(&batch).into_iter().cloned().collect();
        assert_eq!(kept, vec![(k("y"), row(2)), (k("x"), row(3))]);
    }

    #[test]
    fn sequences_fit_a_bigint_or_are_refused() {
        assert_eq!(seq_param("sqlite", 0).unwrap(), 0);
        assert_eq!(seq_param("sqlite", i64::MAX as u64).unwrap(), i64::MAX);
        let err = seq_param("postgres", u64::MAX).unwrap_err();
        assert!(matches!(err, Error::Rejected { .. }), "{err}");
        assert_eq!(seq_column("sqlite", 42).unwrap(), 42);
        let err = seq_column("sqlite", -1).unwrap_err();
        assert!(matches!(err, Error::Corruption { .. }), "{err}");
    }
}
