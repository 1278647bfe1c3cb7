//! Reply encoding (placeholder).
use bytes::BytesMut;

use super::Frame;

/// The protocol a connection speaks, switched by `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

pub fn encode(_frame: &Frame, _proto: Protocol, _out: &mut BytesMut) {}
