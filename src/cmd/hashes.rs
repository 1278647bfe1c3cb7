//! Hash commands. Fields keep first-insertion order: an update keeps a
//! field's place (IndexMap `insert`), a delete closes the gap
//! (`shift_remove`), so HGETALL answers in the order Redis does for small
//! hashes. A hash left without fields is deleted, as in Redis.

use bytes::Bytes;

use super::float::{self, LongDouble};
use super::{args, reply};
use crate::keyspace::{Entry, Hash, Value, WorkingSet};
use crate::resp::Frame;

/// The hash at `key`, `None` when absent; a string is WRONGTYPE.
fn read_hash<'a>(ws: &'a WorkingSet, key: &[u8]) -> Result<Option<&'a Hash>, Frame> {
    match ws.get(key).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(Value::Str(_)) => Err(Frame::wrong_type()),
    }
}

/// Applies `f` to the hash at `key` (keeping its TTL), or to a new one when
/// the key is absent; deletes the key if no field is left. Callers check
/// the type with `read_hash` first and call this only to really change it.
fn update<R>(ws: &mut WorkingSet, key: &Bytes, f: impl FnOnce(&mut Hash) -> R) -> R {
    if let Some(Entry {
        value: Value::Hash(hash),
        ..
    }) = ws.get_mut(key)
    {
        let out = f(hash);
        if hash.is_empty() {
            ws.remove(key);
        }
        return out;
    }
    let mut hash = Hash::new();
    let out = f(&mut hash);
    if !hash.is_empty() {
        ws.put(key.clone(), Entry::new(Value::Hash(hash)));
    }
    out
}

/// HSET and HMSET: the number of fields that were new.
fn set_fields(argv: &[Bytes], ws: &mut WorkingSet) -> Result<i64, Frame> {
    if argv.len() % 2 == 1 {
        return Err(args::wrong_arity(argv));
    }
    read_hash(ws, &argv[1])?;
    Ok(update(ws, &argv[1], |hash| {
        let pairs = argv[2..].chunks_exact(2);
        let added = pairs.filter(|p| hash.insert(p[0].clone(), p[1].clone()).is_none());
        added.count() as i64
    }))
}

pub fn hset(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| set_fields(argv, ws).map(Frame::Integer))
}

pub fn hmset(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| set_fields(argv, ws).map(|_| Frame::ok()))
}

pub fn hsetnx(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let (key, field) = (&argv[1], &argv[2]);
        if read_hash(ws, key)?.is_some_and(|h| h.contains_key(field)) {
            return Ok(Frame::Integer(0));
        }
        update(ws, key, |h| h.insert(field.clone(), argv[3].clone()));
        Ok(Frame::Integer(1))
    })
}

pub fn hget(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let value = read_hash(ws, &argv[1])?.and_then(|h| h.get(&argv[2]));
        Ok(value.map_or(Frame::Null, |v| Frame::Bulk(v.clone())))
    })
}

pub fn hmget(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let hash = read_hash(ws, &argv[1])?;
        let values = argv[2..].iter().map(|field| {
            hash.and_then(|h| h.get(field))
                .map_or(Frame::Null, |v| Frame::Bulk(v.clone()))
        });
        Ok(Frame::Array(values.collect()))
    })
}

pub fn hgetall(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let pairs = read_hash(ws, &argv[1])?.into_iter().flatten();
        let pairs = pairs.map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v.clone())));
        Ok(Frame::Map(pairs.collect()))
    })
}

pub fn hkeys(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let fields = read_hash(ws, &argv[1])?.into_iter().flat_map(|h| h.keys());
        Ok(Frame::Array(
            fields.map(|f| Frame::Bulk(f.clone())).collect(),
        ))
    })
}

pub fn hvals(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let values = read_hash(ws, &argv[1])?
            .into_iter()
            .flat_map(|h| h.values());
        Ok(Frame::Array(
            values.map(|v| Frame::Bulk(v.clone())).collect(),
        ))
    })
}

pub fn hdel(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let fields = &argv[2..];
        let present =
            read_hash(ws, &argv[1])?.is_some_and(|h| fields.iter().any(|f| h.contains_key(f)));
        if !present {
            return Ok(Frame::Integer(0));
        }
        let removed = update(ws, &argv[1], |h| {
            fields
                .iter()
                .filter(|f| h.shift_remove(*f).is_some())
                .count()
        });
        Ok(Frame::Integer(removed as i64))
    })
}

pub fn hexists(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let found = read_hash(ws, &argv[1])?.is_some_and(|h| h.contains_key(&argv[2]));
        Ok(Frame::Integer(found.into()))
    })
}

pub fn hlen(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        Ok(Frame::Integer(
            read_hash(ws, &argv[1])?.map_or(0, |h| h.len() as i64),
        ))
    })
}

pub fn hstrlen(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let value = read_hash(ws, &argv[1])?.and_then(|h| h.get(&argv[2]));
        Ok(Frame::Integer(value.map_or(0, |v| v.len() as i64)))
    })
}

/// The increment is checked before the key's type, as in Redis.
pub fn hincrby(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let (key, field) = (&argv[1], &argv[2]);
        let by = args::int(&argv[3])?;
        let current = match read_hash(ws, key)?.and_then(|h| h.get(field)) {
            Some(v) => {
                args::parse_i64(v).ok_or_else(|| Frame::err("hash value is not an integer"))?
            }
            None => 0,
        };
        let value = current.checked_add(by).ok_or_else(args::overflow)?;
        update(ws, key, |h| {
            h.insert(field.clone(), Bytes::from(value.to_string()))
        });
        Ok(Frame::Integer(value))
    })
}

/// Same arithmetic and formatting as INCRBYFLOAT; unlike it, an infinite
/// increment is refused up front, with its own message.
pub fn hincrbyfloat(argv: &[Bytes], ws: &mut WorkingSet) -> Frame {
    reply(|| {
        let (key, field) = (&argv[1], &argv[2]);
        let by = float::parse(&argv[3]).ok_or_else(args::not_float)?;
        if !by.is_finite() {
            return Err(Frame::err("value is NaN or Infinity"));
        }
        let current = match read_hash(ws, key)?.and_then(|h| h.get(field)) {
            Some(v) => float::parse(v).ok_or_else(|| Frame::err("hash value is not a float"))?,
            None => LongDouble::ZERO,
        };
        let sum = Bytes::from(float::sum(current, by).ok_or_else(args::nan_or_infinity)?);
        update(ws, key, |h| h.insert(field.clone(), sum.clone()));
        Ok(Frame::Bulk(sum))
    })
}

#[cfg(test)]
mod tests;
