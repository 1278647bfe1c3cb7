//! strings commands (placeholder until implemented).

use bytes::Bytes;

use crate::keyspace::WorkingSet;
use crate::resp::Frame;

pub fn append(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn decr(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn decrby(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn get(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn getdel(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn getex(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn getrange(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn incr(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn incrby(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn incrbyfloat(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn mget(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn mset(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn msetnx(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn psetex(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn set(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn setex(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn setnx(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn setrange(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn strlen(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}
