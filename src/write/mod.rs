//! Write policies. A write is a `Call` (a table entry and its argv); a
//! policy decides where it must be before the client hears success.
//! Write-through lives here now; write-behind joins it with the WAL.

pub mod behind;
pub mod key_queues;
pub mod locks;
pub mod overlay;
pub mod policy;
pub mod record;
pub mod run;
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

/// What a write returned: its replies (`None`: a watched key changed and
/// nothing was written) and, under write-behind, the WAL sequence it was
/// logged at (for WAITDB).
#[derive(Debug, Default)]
pub struct Outcome {
    pub replies: Option<Vec<crate::resp::Frame>>,
    pub seq: Option<u64>,
}

/// What a run of plain writes returned: one reply per write, in order, and
/// the WAL seq of every write that was logged under write-behind (WAITDB
/// counts them).
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub replies: Vec<crate::resp::Frame>,
    pub seqs: Vec<u64>,
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

/// Every distinct key the calls and the watched keys name, in first-seen order.
pub fn call_keys(calls: &[Call], watched: &[Watched]) -> Vec<Bytes> {
    let mut keys: Vec<Bytes> = Vec::new();
    let named = calls
        .iter()
        .flat_map(|c| c.spec.keys(&c.argv))
        .chain(watched.iter().map(|w| &w.key));
    for k in named {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys
}

/// True when a call's reply and effect do not depend on the keys' current
/// values, so write-behind may log it while the database is unreachable.
pub fn is_blind(call: &Call) -> bool {
    match call.spec.name {
        "setex" | "psetex" | "mset" | "del" | "unlink" => true,
        "set" => !call.argv[3..].iter().any(|a| {
            matches!(
                a.to_ascii_lowercase().as_slice(),
                b"nx" | b"xx" | b"get" | b"keepttl"
            )
        }),
        _ => false,
    }
}

/// Runs one call's handler against the working set.
pub fn run_handler(call: &Call, ws: &mut WorkingSet) -> crate::resp::Frame {
    match call.spec.exec {
        crate::cmd::Exec::Read(h) | crate::cmd::Exec::Write(h) => h(&call.argv, ws),
        crate::cmd::Exec::Session => crate::resp::Frame::err("command not allowed here"),
    }
}

/// The changed rows of a working set, stamped with the write's version.
pub fn stamped(ws: &WorkingSet, version: Version) -> Vec<(Bytes, crate::keyspace::Row)> {
    ws.changed()
        .map(|(k, row)| {
            (
                k.clone(),
                crate::keyspace::Row {
                    entry: row.entry.clone(),
                    version,
                },
            )
        })
        .collect()
}
