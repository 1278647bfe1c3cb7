//! The wire protocol only: request parsing (multibulk and inline) and reply
//! encoding for RESP2 and RESP3. Knows nothing of caches or databases.

pub mod encode;
pub mod frame;
pub mod parse;

pub use encode::{Protocol, encode};
pub use frame::Frame;
pub use parse::{Limits, ParseError, RequestParser, Violation};
