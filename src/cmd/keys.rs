//! Commands on keys whatever their type: existence, deletion, type, expiry.
//!
//! Expiry is an absolute time in ms since the epoch; relative forms are
//! resolved against the working set's one instant, and a time already past
//! deletes the key, as Redis does.

use bytes::Bytes;

use super::args::{self, invalid_expire};
use super::reply;
use crate::keyspace::WorkingSet;
use crate::resp::Frame;

/// Counts live keys removed; a key named twice counts once.
pub fn del(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    let removed = argv[1..].iter().filter(|key| ws.remove(key)).count();
    Frame::Integer(removed as i64)
}

/// Unlike DEL, a key named twice counts twice, as in Redis.
pub fn exists(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    let live = argv[1..].iter().filter(|key| ws.get(key).is_some()).count();
    Frame::Integer(live as i64)
}

pub fn type_(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    let name = ws.get(&argv[1]).map_or("none", |e| e.value.type_name());
    Frame::Simple(name.to_owned())
}

/// Sets `key`'s absolute expiry, deleting it when `at_ms` is not in the
/// future. The key must be live.
pub(crate) fn set_expiry(ws: &mut WorkingSet, key: &[u8], at_ms: i64) {
    if at_ms <= ws.now_ms() {
        ws.remove(key);
    } else if let Some(entry) = ws.get_mut(key) {
        entry.expire_at = Some(at_ms);
    }
}

/// Makes `key` persistent; false (and no write) when it had no expiry.
pub(crate) fn clear_expiry(ws: &mut WorkingSet, key: &[u8]) -> bool {
    if ws.get(key).and_then(|e| e.expire_at).is_none() {
        return false;
    }
    if let Some(entry) = ws.get_mut(key) {
        entry.expire_at = None;
    }
    true
}

pub fn expire(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expire_generic(argv, ws, 1000, true)
}

pub fn pexpire(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expire_generic(argv, ws, 1, true)
}

pub fn expireat(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expire_generic(argv, ws, 1000, false)
}

pub fn pexpireat(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expire_generic(argv, ws, 1, false)
}

/// The NX/XX/GT/LT conditions of the EXPIRE family.
#[derive(Default)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Conditions {
    fn parse(opts: &[Bytes]) -> Result<Conditions, Frame> {
        let mut c = Conditions::default();
        for opt in opts {
            let flag = match opt.to_ascii_lowercase().as_slice() {
                b"nx" => &mut c.nx,
                b"xx" => &mut c.xx,
                b"gt" => &mut c.gt,
                b"lt" => &mut c.lt,
                _ => {
                    let msg = format!("Unsupported option {}", args::quoted(opt));
                    return Err(Frame::err(msg));
                }
            };
            *flag = true;
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(Frame::err(
                "NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if c.gt && c.lt {
            return Err(Frame::err(
                "GT and LT options at the same time are not compatible",
            ));
        }
        Ok(c)
    }

    /// Whether a new expiry `at` may replace `current` (`None` = persistent,
    /// which GT and LT treat as infinitely far away).
    fn allow(&self, current: Option<i64>, at: i64) -> bool {
        !(self.nx && current.is_some()
            || self.xx && current.is_none()
            || self.gt && current.is_none_or(|cur| at <= cur)
            || self.lt && current.is_some_and(|cur| at >= cur))
    }
}

/// Options are checked before the time, and the time before the key, so
/// the error a client sees matches Redis's. Negative times are allowed
/// (they delete); only overflow is an error.
fn expire_generic(argv: &[Bytes], ws: &mut WorkingSet, unit_ms: i64, relative: bool) -> Frame {
    reply(|| {
        let conditions = Conditions::parse(&argv[3..])?;
        let base = if relative { ws.now_ms() } else { 0 };
        let at = args::int(&argv[2])?
            .checked_mul(unit_ms)
            .and_then(|ms| ms.checked_add(base))
            .ok_or_else(|| invalid_expire(argv))?;
        let key = &argv[1];
        let Some(entry) = ws.get(key) else {
            return Ok(Frame::Integer(0));
        };
        if !conditions.allow(entry.expire_at, at) {
            return Ok(Frame::Integer(0));
        }
        set_expiry(ws, key, at);
        Ok(Frame::Integer(1))
    })
}

/// What the TTL family answers for a key: -2 absent, -1 persistent.
fn expiry_reply(ws: &WorkingSet, key: &[u8], f: impl FnOnce(i64, i64) -> i64) -> Frame {
    Frame::Integer(match ws.get(key) {
        None => -2,
        Some(entry) => entry.expire_at.map_or(-1, |at| f(at, ws.now_ms())),
    })
}

/// Rounded to the nearest second, as Redis does.
pub fn ttl(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expiry_reply(ws, &argv[1], |at, now| {
        at.saturating_sub(now).max(0).saturating_add(500) / 1000
    })
}

pub fn pttl(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expiry_reply(ws, &argv[1], |at, now| at.saturating_sub(now).max(0))
}

pub fn expiretime(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expiry_reply(ws, &argv[1], |at, _| at / 1000)
}

pub fn pexpiretime(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    expiry_reply(ws, &argv[1], |at, _| at)
}

pub fn persist(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    Frame::Integer(clear_expiry(ws, &argv[1]).into())
}

#[cfg(test)]
mod tests;
