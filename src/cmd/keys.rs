//! keys commands (placeholder until implemented).

use bytes::Bytes;

use crate::keyspace::WorkingSet;
use crate::resp::Frame;

pub fn del(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn exists(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn expire(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn expireat(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn expiretime(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn persist(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn pexpire(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn pexpireat(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn pexpiretime(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn pttl(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn ttl(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn type_(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}
