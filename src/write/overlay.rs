//! The pending-writes overlay: for every key with acknowledged write-behind
//! writes not yet applied in the database, its latest resulting row.
//!
//! Reads consult it before the cache and the database (read-your-writes,
//! also with both of them down), and a key found here is never filled from
//! the database. The event processor removes a key once the database holds
//! its latest pending write.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;

use crate::keyspace::Row;
use crate::store::{KeyCounts, ScanPage, key_hash};

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

    /// The latest pending rows of `keys`, in order, under one lock.
    pub fn get_many(&self, keys: &[Bytes]) -> Vec<Option<Row>> {
        let pending = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|k| pending.get(k).map(|p| p.row.clone()))
            .collect()
    }

    /// Records the writes of a run logged at consecutive seqs from `first`,
    /// in seq order, under one lock. Callers hold the keys' locks.
    pub fn insert_run<'a>(&self, first: u64, writes: impl Iterator<Item = &'a [(Bytes, Row)]>) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        for (seq, rows) in (first..).zip(writes) {
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

    /// Every pending key with its latest row.
    pub fn snapshot(&self) -> Vec<(Bytes, Row)> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .map(|(k, p)| (k.clone(), p.row.clone()))
            .collect()
    }

    /// A SCAN page from the database, corrected by pending writes: within
    /// the page's hash range `(cursor, page.cursor]` (to the end when the
    /// page is the last), pending deletes drop out and pending live keys
    /// appear, so SCAN and KEYS read this instance's own writes.
    pub fn merge_page(&self, cursor: u64, page: &mut ScanPage, now_ms: i64) {
        let pending = self.snapshot();
        if pending.is_empty() {
            return;
        }
        let upper = if page.cursor == 0 {
            u64::MAX
        } else {
            page.cursor
        };
        let in_range = |k: &[u8]| {
            let h = key_hash(k) as u64;
            h > cursor && h <= upper
        };
        let pending_keys: HashSet<&Bytes> = pending.iter().map(|(k, _)| k).collect();
        page.keys.retain(|(k, _)| !pending_keys.contains(k));
        for (key, row) in &pending {
            if let Some(entry) = row.live(now_ms).filter(|_| in_range(key)) {
                page.keys.push((key.clone(), entry.value.type_name()));
            }
        }
    }

    /// Database key counts corrected by pending writes; `stored` holds the
    /// database rows of the snapshot's keys, in the same order.
    pub fn adjust_counts(
        pending: &[(Bytes, Row)],
        stored: &[Row],
        counts: &mut KeyCounts,
        now_ms: i64,
    ) {
        let weigh = |row: &Row| match row.live(now_ms) {
            Some(e) => (1i64, i64::from(e.expire_at.is_some())),
            None => (0, 0),
        };
        let (mut keys, mut expires) = (counts.keys as i64, counts.expires as i64);
        for ((_, pend), db) in pending.iter().zip(stored) {
            let (pk, pe) = weigh(pend);
            let (dk, de) = weigh(db);
            keys += pk - dk;
            expires += pe - de;
        }
        counts.keys = keys.max(0) as u64;
        counts.expires = expires.max(0) as u64;
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
