//! Versions: a hybrid logical clock, so "the last write" is well defined
//! across restarts and across several spillway instances.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// A write's version: `milliseconds << 16 | counter`.
///
/// Ordered, so a replayed or late write can be compared with what is stored
/// and lose when it is older. `Version::ZERO` means "never written".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    pub const ZERO: Version = Version(0);

    /// The wall-clock part, for logs and the tombstone sweeper.
    pub fn millis(self) -> u64 {
        self.0 >> 16
    }

    /// The version as Postgres and SQLite store it (BIGINT is signed; a
    /// millisecond clock shifted by 16 bits stays far below `i64::MAX`).
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }

    pub fn from_i64(v: i64) -> Version {
        Version(v.max(0) as u64)
    }
}

/// Issues versions that never go backwards, even if the wall clock does.
///
/// Every version issued is above every version issued or observed before,
/// which is what lets a write-through transaction take "a version above the
/// stored one" without a second round trip.
#[derive(Debug, Default)]
pub struct Hlc {
    last: Mutex<u64>,
}

impl Hlc {
    pub fn new() -> Hlc {
        Hlc::default()
    }

    /// A new version above everything issued or observed, and above `floor`.
    pub fn next_above(&self, floor: Version) -> Version {
        let wall = now_millis().max(0) as u64;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let candidate = (wall << 16).max(*last + 1).max(floor.0 + 1);
        *last = candidate;
        Version(candidate)
    }

    /// Records a version seen elsewhere (database, another instance), so later
    /// versions are issued above it.
    pub fn observe(&self, seen: Version) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0 > *last {
            *last = seen.0;
        }
    }
}

/// Milliseconds since the Unix epoch: the unit of every expiry time.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_respect_floor() {
        let hlc = Hlc::new();
        let a = hlc.next_above(Version::ZERO);
        let b = hlc.next_above(Version::ZERO);
        assert!(b > a);
        let far = Version(a.0 + (1 << 40));
        let c = hlc.next_above(far);
        assert!(c > far);
        hlc.observe(Version(c.0 + 100));
        assert!(hlc.next_above(Version::ZERO).0 > c.0 + 100);
    }
}
