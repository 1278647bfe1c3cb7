//! Write policies. A write is a `Call` (a table entry and its argv); a
//! policy decides where it must be before the client hears success.
//! Write-through lives here now; write-behind joins it with the WAL.

pub mod locks;
pub mod through;

use bytes::Bytes;

use crate::cmd::Spec;
use crate::keyspace::{Version, WorkingSet};

/// One command to execute: its table entry and its arguments.
#[derive(Clone)]
pub struct Call {
    pub spec: &'static Spec,
    pub argv: Vec<Bytes>,
}

/// A key a client WATCHed: its version then, and its expiry if it was live.
#[derive(Clone, Debug)]
pub struct Watched {
    pub key: Bytes,
    pub version: Version,
    pub expire_at: Option<i64>,
}

impl Watched {
    /// True when EXEC must abort: the key was written since WATCH, or it was
    /// live then and has expired since.
    pub fn broken(&self, ws: &WorkingSet) -> bool {
        if ws.loaded_version(&self.key) != self.version {
            return true;
        }
        matches!(self.expire_at, Some(at) if at <= ws.now_ms())
    }
}
