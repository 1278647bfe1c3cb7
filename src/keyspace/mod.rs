//! What a key means, independent of where it is stored: entries, versions,
//! their byte encodings, and the working set commands run against.

pub mod codec;
pub mod entry;
pub mod glob;
pub mod version;
pub mod working_set;

pub use entry::{Entry, Hash, Row, Value};
pub use version::{Hlc, Version, now_millis};
pub use working_set::WorkingSet;
