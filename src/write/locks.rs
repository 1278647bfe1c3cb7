//! Striped per-key locks inside one process. They keep concurrent writers
//! of one key (write-behind writes, write-through groups) from each holding
//! a pooled database connection while they wait on the database's own lock;
//! the database lock still orders writers from several spillway processes.

use bytes::Bytes;
use tokio::sync::{Mutex, MutexGuard};

use crate::store::key_hash;

/// Stripes of `KeyLocks::default()`: enough for one write's keys at a time.
const STRIPES: usize = 1024;

pub struct KeyLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks::with_stripes(STRIPES)
    }
}

impl KeyLocks {
    /// More stripes for callers that lock many keys at once (a
    /// write-through group), so that two such sets rarely share a stripe.
    pub fn with_stripes(stripes: usize) -> Self {
        KeyLocks {
            stripes: (0..stripes.max(1)).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Locks every stripe `keys` fall in, in ascending order (no deadlock
    /// between two callers with overlapping key sets).
    pub async fn lock(&self, keys: &[Bytes]) -> Vec<MutexGuard<'_, ()>> {
        let mut idx: Vec<usize> = keys
            .iter()
            .map(|k| key_hash(k) as usize % self.stripes.len())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }
}
