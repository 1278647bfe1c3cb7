//! hashes commands (placeholder until implemented).

use bytes::Bytes;

use crate::keyspace::WorkingSet;
use crate::resp::Frame;

pub fn hdel(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hexists(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hget(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hgetall(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hincrby(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hincrbyfloat(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hkeys(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hlen(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hmget(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hmset(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hset(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hsetnx(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hstrlen(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}

pub fn hvals(_argv: &[Bytes], _ws: &mut WorkingSet) -> Frame {
    Frame::err("not implemented")
}
