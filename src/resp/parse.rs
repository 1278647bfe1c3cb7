//! Request parsing (placeholder).
use bytes::{Bytes, BytesMut};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_request_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("Protocol error: {0}")]
    Protocol(String),
}

#[derive(Debug, Default)]
pub struct RequestParser {}

impl RequestParser {
    pub fn new(_limits: Limits) -> RequestParser {
        RequestParser {}
    }
    pub fn next(&mut self, _buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        Ok(None)
    }
}
