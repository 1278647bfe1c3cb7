//! String commands. SET and its variants share one option parser and one
//! store path so NX/XX, KEEPTTL and expiry behave the same in all of them;
//! the counters (INCR, INCRBYFLOAT, ...) live in `counters`.

mod counters;

use bytes::{Bytes, BytesMut};

pub use counters::{decr, decrby, incr, incrby, incrbyfloat};

use super::args::{self, MAX_STRING_LEN, TimeUnit};
use super::{keys, reply};
use crate::keyspace::{Entry, Value, WorkingSet};
use crate::resp::Frame;

/// The string at `key`, `None` when absent; a hash is WRONGTYPE.
pub(crate) fn read_str<'a>(ws: &'a WorkingSet, key: &[u8]) -> Result<Option<&'a Bytes>, Frame> {
    match ws.get(key).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(Value::Hash(_)) => Err(Frame::wrong_type()),
    }
}

/// Replaces the string at `key` keeping its TTL, as APPEND, SETRANGE and
/// INCR do; creates it without one when absent.
pub(crate) fn replace_str(ws: &mut WorkingSet, key: &Bytes, value: Bytes) {
    match ws.get_mut(key) {
        Some(entry) => entry.value = Value::Str(value),
        None => ws.put(key.clone(), Entry::new(Value::Str(value))),
    }
}

fn bulk_or_null(v: Option<Bytes>) -> Frame {
    v.map_or(Frame::Null, Frame::Bulk)
}

pub fn get(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| Ok(bulk_or_null(read_str(ws, &argv[1])?.cloned())))
}

/// Keys that are absent or not strings read as nil, never as an error.
pub fn mget(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    let values = argv[1..]
        .iter()
        .map(|key| match ws.get(key).map(|e| &e.value) {
            Some(Value::Str(s)) => Frame::Bulk(s.clone()),
            _ => Frame::Null,
        });
    Frame::Array(values.collect())
}

pub fn strlen(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        Ok(Frame::Integer(
            read_str(ws, &argv[1])?.map_or(0, |s| s.len() as i64),
        ))
    })
}

/// Redis clamps the range instead of failing; an absent key is "".
pub fn getrange(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let mut start = args::int(&argv[2])?;
        let mut end = args::int(&argv[3])?;
        let s = read_str(ws, &argv[1])?.cloned().unwrap_or_default();
        let len = s.len() as i64;
        if start < 0 && end < 0 && start > end {
            return Ok(Frame::Bulk(Bytes::new()));
        }
        if start < 0 {
            start += len;
        }
        if end < 0 {
            end += len;
        }
        let (start, end) = (start.max(0), end.max(0).min(len - 1));
        if start > end || len == 0 {
            return Ok(Frame::Bulk(Bytes::new()));
        }
        Ok(Frame::Bulk(s.slice(start as usize..=end as usize)))
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ExpireKind {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireKind {
    const ALL: [ExpireKind; 4] = [
        ExpireKind::Ex,
        ExpireKind::Px,
        ExpireKind::ExAt,
        ExpireKind::PxAt,
    ];

    fn name(self) -> &'static str {
        match self {
            ExpireKind::Ex => "ex",
            ExpireKind::Px => "px",
            ExpireKind::ExAt => "exat",
            ExpireKind::PxAt => "pxat",
        }
    }
}

/// SET and GETEX options, read as Redis's `parseExtendedStringArguments`
/// does: contradictory options are a syntax error, repeating one is not.
#[derive(Default)]
struct StringOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpireKind, &'a [u8])>,
}

impl StringOpts<'_> {
    fn parse(argv: &[Bytes], from: usize, is_set: bool) -> Result<StringOpts<'_>, Frame> {
        let mut o = StringOpts::default();
        let mut i = from;
        while i < argv.len() {
            let opt = &argv[i][..];
            let is = |name: &str| opt.eq_ignore_ascii_case(name.as_bytes());
            let kind = ExpireKind::ALL.into_iter().find(|k| is(k.name()));
            if is("nx") && is_set && !o.xx {
                o.nx = true;
            } else if is("xx") && is_set && !o.nx {
                o.xx = true;
            } else if is("get") && is_set {
                o.get = true;
            } else if is("keepttl") && is_set && !o.persist && o.expire.is_none() {
                o.keepttl = true;
            } else if is("persist") && !is_set && !o.keepttl && o.expire.is_none() {
                o.persist = true;
            } else if let (Some(kind), Some(arg)) = (kind, argv.get(i + 1))
                && !o.keepttl
                && !o.persist
                && o.expire.is_none_or(|(k, _)| k == kind)
            {
                o.expire = Some((kind, arg));
                i += 1;
            } else {
                return Err(args::syntax_error());
            }
            i += 1;
        }
        Ok(o)
    }

    /// The absolute expiry the options ask for, validated.
    fn expire_at(&self, argv: &[Bytes], now_ms: i64) -> Result<Option<i64>, Frame> {
        let Some((kind, arg)) = self.expire else {
            return Ok(None);
        };
        let (unit, relative) = match kind {
            ExpireKind::Ex => (TimeUnit::Seconds, true),
            ExpireKind::Px => (TimeUnit::Millis, true),
            ExpireKind::ExAt => (TimeUnit::Seconds, false),
            ExpireKind::PxAt => (TimeUnit::Millis, false),
        };
        args::expire_at(argv, arg, unit, relative, now_ms).map(Some)
    }
}

/// Stores a string for the SET family, honouring NX/XX; false when the
/// condition stopped it. Without KEEPTTL the old TTL goes, and a hash is
/// replaced: a key has one type.
fn store(
    ws: &mut WorkingSet,
    key: &Bytes,
    value: &Bytes,
    opts: &StringOpts,
    expire_at: Option<i64>,
) -> bool {
    let existing = ws.get(key);
    if (opts.nx && existing.is_some()) || (opts.xx && existing.is_none()) {
        return false;
    }
    let kept = existing.and_then(|e| e.expire_at).filter(|_| opts.keepttl);
    match expire_at.or(kept) {
        // An EXAT/PXAT already past: the key is gone at once.
        Some(at) if at <= ws.now_ms() => {
            ws.remove(key);
        }
        expire_at => ws.put(
            key.clone(),
            Entry {
                value: Value::Str(value.clone()),
                expire_at,
            },
        ),
    }
    true
}

pub fn set(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let opts = StringOpts::parse(argv, 3, true)?;
        let expire_at = opts.expire_at(argv, ws.now_ms())?;
        // With GET the old value must be a string, checked before any write.
        let old = if opts.get {
            Some(read_str(ws, &argv[1])?.cloned())
        } else {
            None
        };
        let stored = store(ws, &argv[1], &argv[2], &opts, expire_at);
        Ok(match old {
            Some(old) => bulk_or_null(old),
            None if stored => Frame::ok(),
            None => Frame::Null,
        })
    })
}

pub fn setnx(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    let opts = StringOpts {
        nx: true,
        ..StringOpts::default()
    };
    Frame::Integer(store(ws, &argv[1], &argv[2], &opts, None).into())
}

pub fn setex(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    set_with_ttl(argv, ws, ExpireKind::Ex)
}

pub fn psetex(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    set_with_ttl(argv, ws, ExpireKind::Px)
}

fn set_with_ttl(argv: &[Bytes], ws: &mut WorkingSet, kind: ExpireKind) -> Frame {
    reply(|| {
        let opts = StringOpts {
            expire: Some((kind, &argv[2][..])),
            ..StringOpts::default()
        };
        let expire_at = opts.expire_at(argv, ws.now_ms())?;
        store(ws, &argv[1], &argv[3], &opts, expire_at);
        Ok(Frame::ok())
    })
}

pub fn getdel(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let old = read_str(ws, &argv[1])?.cloned();
        if old.is_some() {
            ws.remove(&argv[1]);
        }
        Ok(bulk_or_null(old))
    })
}

/// As in Redis, an absent key answers nil before the expiry argument is
/// even checked.
pub fn getex(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let opts = StringOpts::parse(argv, 2, false)?;
        let key = &argv[1];
        let Some(value) = read_str(ws, key)?.cloned() else {
            return Ok(Frame::Null);
        };
        if let Some(at) = opts.expire_at(argv, ws.now_ms())? {
            keys::set_expiry(ws, key, at);
        } else if opts.persist {
            keys::clear_expiry(ws, key);
        }
        Ok(Frame::Bulk(value))
    })
}

pub fn mset(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    if argv.len().is_multiple_of(2) {
        return args::wrong_arity(argv);
    }
    for pair in argv[1..].chunks_exact(2) {
        ws.put(pair[0].clone(), Entry::new(Value::Str(pair[1].clone())));
    }
    Frame::ok()
}

/// All or nothing: one existing key (of any type) stops every write.
pub fn msetnx(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    if argv.len().is_multiple_of(2) {
        return args::wrong_arity(argv);
    }
    let pairs = argv[1..].chunks_exact(2);
    if pairs.clone().any(|pair| ws.get(&pair[0]).is_some()) {
        return Frame::Integer(0);
    }
    for pair in pairs {
        ws.put(pair[0].clone(), Entry::new(Value::Str(pair[1].clone())));
    }
    Frame::Integer(1)
}

fn too_long() -> Frame {
    Frame::err("string exceeds maximum allowed size (proto-max-bulk-len)")
}

pub fn append(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let (key, tail) = (&argv[1], &argv[2]);
        let Some(head) = read_str(ws, key)? else {
            // Even an empty APPEND creates the key, as in Redis.
            ws.put(key.clone(), Entry::new(Value::Str(tail.clone())));
            return Ok(Frame::Integer(tail.len() as i64));
        };
        let total = head.len() + tail.len();
        if total as u64 > MAX_STRING_LEN {
            return Err(too_long());
        }
        if !tail.is_empty() {
            let mut joined = BytesMut::with_capacity(total);
            joined.extend_from_slice(head);
            joined.extend_from_slice(tail);
            replace_str(ws, key, joined.freeze());
        }
        Ok(Frame::Integer(total as i64))
    })
}

pub fn setrange(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let (key, patch) = (&argv[1], &argv[3]);
        let offset = args::int(&argv[2])?;
        if offset < 0 {
            return Err(Frame::err("offset is out of range"));
        }
        let current = read_str(ws, key)?;
        if patch.is_empty() {
            // Nothing to write: report the length, create nothing.
            return Ok(Frame::Integer(current.map_or(0, |s| s.len() as i64)));
        }
        let end = offset as u64 + patch.len() as u64;
        if end > MAX_STRING_LEN {
            return Err(too_long());
        }
        let (offset, end) = (offset as usize, end as usize);
        let mut buf = BytesMut::from(current.map_or(&[][..], |s| &s[..]));
        if buf.len() < end {
            buf.resize(end, 0);
        }
        buf[offset..end].copy_from_slice(patch);
        let len = buf.len() as i64;
        replace_str(ws, key, buf.freeze());
        Ok(Frame::Integer(len))
    })
}

#[cfg(test)]
mod tests;
