//! Commands: the table that says what each command is (arity, read or
//! write, where its keys are) and one file per family with the semantics.
//!
//! Data commands are pure functions `fn(&[Bytes], &mut WorkingSet) -> Frame`
//! over argv (argv[0] is the command name, as in Redis). Whether they run on
//! the cache-aside read path or a write policy is decided from the table's
//! flags by the caller, never inside a handler.

pub mod args;
pub(crate) mod float;
pub mod hashes;
pub mod keys;
pub mod strings;
pub mod table;

pub use table::{Exec, Spec, lookup};
