//! Commands: the table that says what each command is (arity, read or
//! write, where its keys are) and one file per family with the semantics.
//!
//! Data commands are pure functions `fn(&[Bytes], &mut WorkingSet) -> Frame`
//! over argv (`argv[0]` is the command name, as in Redis). Whether they run on
//! the cache-aside read path or a write policy is decided from the table's
//! flags by the caller, never inside a handler.
//!
//! Handlers validate every argument before their first write, so an error
//! reply always leaves the working set unchanged, and they only touch a key
//! (`get_mut`, `put`, `remove`) when its value really changes, so a no-op
//! command persists nothing.

pub mod args;
pub mod connection;
pub mod deadletter;
pub(crate) mod float;
pub mod hashes;
pub mod info;
pub mod keys;
#[cfg(test)]
mod proptests;
pub mod server;
pub mod session;
pub mod strings;
pub mod table;
#[cfg(test)]
mod testutil;
pub mod transaction;

pub use table::{Exec, Spec, lookup};

use crate::resp::Frame;

/// Runs a handler body written with `?`: an `Err` is the error reply.
fn reply(body: impl FnOnce() -> Result<Frame, Frame>) -> Frame {
    body().unwrap_or_else(|err| err)
}
