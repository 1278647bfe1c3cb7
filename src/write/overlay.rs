//! The pending-writes overlay: for every key with acknowledged write-behind
//! writes not yet applied in the database, its latest resulting row.
//!
//! Reads consult it before the cache and the database (read-your-writes,
//! also with both of them down), and a key found here is never filled from
//! the database. The event processor removes a key once the database holds
//! its latest pending write.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::keyspace::Row;

#[derive(Debug)]
struct Pending {
    row: Row,
    /// WAL sequence of the latest write of this key.
    seq: u64,
}

#[derive(Debug, Default)]
pub struct Overlay {
    keys: Mutex<HashMap<Bytes, Pending>>,
}

impl Overlay {
    /// The latest pending row of `key`, if it has one.
    pub fn get(&self, key: &[u8]) -> Option<Row> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(key).map(|p| p.row.clone())
    }

    /// Records the rows of the write logged at `seq`. Callers hold the keys'
    /// locks, so writes of one key arrive here in sequence order.
    pub fn insert(&self, seq: u64, rows: &[(Bytes, Row)]) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for (key, row) in rows {
            keys.insert(
                key.clone(),
                Pending {
                    row: row.clone(),
                    seq,
                },
            );
        }
    }

    /// The database now holds the write of `key` logged at `seq`: forget the
    /// key unless a later write is pending.
    pub fn applied(&self, key: &[u8], seq: u64) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if keys.get(key).is_some_and(|p| p.seq <= seq) {
            keys.remove(key);
        }
    }

    /// Keys with pending writes.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Version;

    #[test]
    fn a_later_pending_write_survives_the_application_of_an_earlier_one() {
        let o = Overlay::default();
        let k = Bytes::from_static(b"k");
        let row = |v| Row {
            entry: None,
            version: Version(v),
        };
        o.insert(1, &[(k.clone(), row(1))]);
        o.insert(2, &[(k.clone(), row(2))]);
        o.applied(&k, 1);
        assert_eq!(o.get(&k).map(|r| r.version), Some(Version(2)));
        o.applied(&k, 2);
        assert!(o.get(&k).is_none() && o.is_empty());
    }
}
