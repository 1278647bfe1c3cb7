//! The keys one command (or one MULTI block) works on, loaded before it runs.
//!
//! Command logic is a pure function over a `WorkingSet`: the read path loads
//! it from the cache tier or the database, the write path from the database
//! inside a locked transaction, and afterwards persists what `changed()` says.
//! That keeps every command's semantics in one place whatever the policy.

use std::collections::HashMap;

use bytes::Bytes;
use foldhash::fast::RandomState;

use super::entry::{Entry, Row};
use super::version::Version;

#[derive(Debug)]
struct Slot {
    row: Row,
    changed: bool,
}

/// Loaded rows plus the changes a command made to them.
#[derive(Debug)]
pub struct WorkingSet {
    now_ms: i64,
    /// foldhash: every key of every command is hashed here several times.
    slots: HashMap<Bytes, Slot, RandomState>,
}

impl WorkingSet {
    pub fn new(now_ms: i64) -> WorkingSet {
        WorkingSet::with_capacity(now_ms, 0)
    }

    /// A working set about to load `keys` rows (a read or a run of writes
    /// knows how many), sized once.
    pub fn with_capacity(now_ms: i64, keys: usize) -> WorkingSet {
        WorkingSet {
            now_ms,
            slots: HashMap::with_capacity_and_hasher(keys, RandomState::default()),
        }
    }

    /// The time every expiry check in this command uses, so one command sees
    /// one consistent instant.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Adds a row as loaded from a backend (before the command runs).
    pub fn load(&mut self, key: Bytes, row: Row) {
        self.slots.insert(
            key,
            Slot {
                row,
                changed: false,
            },
        );
    }

    /// The live entry of `key`: expired entries and unloaded keys are absent.
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.slots.get(key).and_then(|s| s.row.live(self.now_ms))
    }

    /// Mutable access to a live entry; marks the key changed.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now_ms;
        let slot = self.slots.get_mut(key)?;
        slot.row.live(now)?;
        slot.changed = true;
        slot.row.entry.as_mut()
    }

    /// Replaces whatever `key` held.
    pub fn put(&mut self, key: Bytes, entry: Entry) {
        let slot = self.slots.entry(key).or_insert_with(|| Slot {
            row: Row::absent(),
            changed: false,
        });
        slot.row.entry = Some(entry);
        slot.changed = true;
    }

    /// Deletes `key`; true when it held a live entry.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        let now = self.now_ms;
        match self.slots.get_mut(key) {
            Some(slot) if slot.row.live(now).is_some() => {
                slot.row.entry = None;
                slot.changed = true;
                true
            }
            _ => false,
        }
    }

    /// Deletes `key` whatever it was loaded as: a write-behind DEL logged
    /// while the key's current state is unknown (database down).
    pub fn force_delete(&mut self, key: &[u8]) {
        if let Some(slot) = self.slots.get_mut(key) {
            slot.row.entry = None;
            slot.changed = true;
        }
    }

    /// The version the key had when it was loaded (WATCH compares these).
    pub fn loaded_version(&self, key: &[u8]) -> Version {
        self.slots.get(key).map_or(Version::ZERO, |s| s.row.version)
    }

    /// Every changed key with its new entry (`None` = delete), for the write
    /// path to persist. Versions are the loaded ones; the writer stamps new.
    pub fn changed(&self) -> impl Iterator<Item = (&Bytes, &Row)> {
        self.slots
            .iter()
            .filter(|(_, s)| s.changed)
            .map(|(k, s)| (k, &s.row))
    }

    /// Whether the command changed `key` since it was loaded or last taken.
    pub fn is_changed(&self, key: &[u8]) -> bool {
        self.slots.get(key).is_some_and(|s| s.changed)
    }

    /// Stamps the changed row of `key` with `version`, clears its change
    /// mark and returns it; `None` when the key is unchanged. Lets several
    /// writes run in turn over one working set, each logged on its own with
    /// its own version, while a later one still sees an earlier one.
    pub fn take_change(&mut self, key: &[u8], version: Version) -> Option<Row> {
        let slot = self.slots.get_mut(key).filter(|s| s.changed)?;
        slot.changed = false;
        slot.row.version = version;
        Some(slot.row.clone())
    }

    pub fn has_changes(&self) -> bool {
        self.slots.values().any(|s| s.changed)
    }

    /// Forgets the change marks, so a test can check what one command
    /// changes after setting the scene with others.
    #[cfg(test)]
    pub fn clear_changes(&mut self) {
        for slot in self.slots.values_mut() {
            slot.changed = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::entry::Value;

    fn s(v: &'static str) -> Entry {
        Entry::new(Value::Str(Bytes::from_static(v.as_bytes())))
    }

    #[test]
    fn expired_entries_read_as_absent_and_changes_are_tracked() {
        let mut ws = WorkingSet::new(1000);
        let mut expired = s("old");
        expired.expire_at = Some(1000);
        ws.load(
            Bytes::from_static(b"a"),
            Row {
                entry: Some(expired),
                version: Version(3),
            },
        );
        ws.load(
            Bytes::from_static(b"b"),
            Row {
                entry: Some(s("x")),
                version: Version(4),
            },
        );
        assert!(ws.get(b"a").is_none());
        assert!(!ws.remove(b"a"));
        assert!(!ws.has_changes());
        assert!(ws.remove(b"b"));
        ws.put(Bytes::from_static(b"c"), s("new"));
        let mut changed: Vec<_> = ws
            .changed()
            .map(|(k, r)| (k.clone(), r.entry.is_some()))
            .collect();
        changed.sort();
        assert_eq!(
            changed,
            vec![
                (Bytes::from_static(b"b"), false),
                (Bytes::from_static(b"c"), true)
            ]
        );
        assert_eq!(ws.loaded_version(b"b"), Version(4));
    }
}
