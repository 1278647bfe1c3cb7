//! INCR and friends: read a string as a number, write the result back as
//! a string, keeping the key's TTL as Redis does.

use bytes::Bytes;

use super::{read_str, replace_str};
use crate::cmd::float::{self, LongDouble};
use crate::cmd::{args, reply};
use crate::keyspace::WorkingSet;
use crate::resp::Frame;

pub fn incr(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| add(ws, &argv[1], 1))
}

pub fn decr(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| add(ws, &argv[1], -1))
}

pub fn incrby(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| add(ws, &argv[1], args::int(&argv[2])?))
}

pub fn decrby(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let by = args::int(&argv[2])?;
        // -i64::MIN does not exist; Redis names the problem this way.
        let by = by
            .checked_neg()
            .ok_or_else(|| Frame::err("decrement would overflow"))?;
        add(ws, &argv[1], by)
    })
}

fn add(ws: &mut WorkingSet, key: &Bytes, by: i64) -> Result<Frame, Frame> {
    let current = match read_str(ws, key)? {
        Some(s) => args::parse_i64(s).ok_or_else(args::not_integer)?,
        None => 0,
    };
    let value = current.checked_add(by).ok_or_else(args::overflow)?;
    replace_str(ws, key, Bytes::from(value.to_string()));
    Ok(Frame::Integer(value))
}

/// Computed in emulated x87 long double and printed as Redis prints it
/// (see `float`), so `0.1` + `0.2` is `0.3` here too.
pub fn incrbyfloat(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let key = &argv[1];
        let current = match read_str(ws, key)? {
            Some(s) => float::parse(s).ok_or_else(args::not_float)?,
            None => LongDouble::ZERO,
        };
        let by = float::parse(&argv[2]).ok_or_else(args::not_float)?;
        let sum = Bytes::from(float::sum(current, by).ok_or_else(args::nan_or_infinity)?);
        replace_str(ws, key, sum.clone());
        Ok(Frame::Bulk(sum))
    })
}
