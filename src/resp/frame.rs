//! Replies as values. Each variant says what the reply *means*; the encoder
//! picks the RESP2 or RESP3 spelling for the connection's protocol.

use bytes::Bytes;

/// One reply to a client.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK` style status.
    Simple(String),
    /// `-ERR ...`: the text includes the code (`ERR`, `WRONGTYPE`, ...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// A missing value: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// A missing array (EXEC aborted by WATCH): `*-1` in RESP2, `_` in RESP3.
    NullArray,
    Array(Vec<Frame>),
    /// Field/value pairs: a flat array in RESP2, a map in RESP3.
    Map(Vec<(Frame, Frame)>),
    /// A set reply (`~` in RESP3, an array in RESP2).
    Set(Vec<Frame>),
    /// A double (`,` in RESP3, a bulk string in RESP2).
    Double(f64),
    /// A verbatim string (`=` in RESP3, a bulk string in RESP2); `INFO` uses it.
    Verbatim(Bytes),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_owned())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// An error with the `ERR` code.
    pub fn err(msg: impl std::fmt::Display) -> Frame {
        Frame::Error(format!("ERR {msg}"))
    }

    pub fn wrong_type() -> Frame {
        Frame::Error("WRONGTYPE Operation against a key holding the wrong kind of value".to_owned())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }
}
