//! Byte encodings of values shared by the database (hash blobs) and the
//! cache tier (whole rows). Both are length-prefixed, so any byte is safe.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::entry::{Entry, Hash, Row, Value};
use super::version::Version;

/// Why stored bytes could not be decoded: the caller treats the entry as
/// missing (cache) or reports corruption (database).
#[derive(Debug, thiserror::Error)]
#[error("malformed stored value: {0}")]
pub struct Malformed(pub &'static str);

/// Hash fields as `(u32 len, bytes)` pairs in insertion order.
pub fn encode_hash(hash: &Hash) -> Bytes {
    let size: usize = hash.iter().map(|(f, v)| 8 + f.len() + v.len()).sum();
    let mut out = BytesMut::with_capacity(size);
    for (field, value) in hash {
        put_chunk(&mut out, field);
        put_chunk(&mut out, value);
    }
    out.freeze()
}

pub fn decode_hash(mut buf: Bytes) -> Result<Hash, Malformed> {
    let mut hash = Hash::new();
    while buf.has_remaining() {
        let field = take_chunk(&mut buf)?;
        let value = take_chunk(&mut buf)?;
        hash.insert(field, value);
    }
    Ok(hash)
}

const TAG_ABSENT: u8 = b'A';
const TAG_STR: u8 = b'S';
const TAG_HASH: u8 = b'H';
const NO_EXPIRY: i64 = i64::MIN;

/// A row as one cache value: tag, version, expiry, payload.
pub fn encode_row(row: &Row) -> Bytes {
    let mut out = BytesMut::with_capacity(encoded_row_bound(row));
    encode_row_into(row, &mut out);
    out.freeze()
}

/// At least the length of `encode_row(row)`: sizes one buffer for many rows.
pub fn encoded_row_bound(row: &Row) -> usize {
    17 + row.entry.as_ref().map_or(0, |e| e.value.weight())
}

/// `encode_row`, appended to `out`.
pub fn encode_row_into(row: &Row, out: &mut BytesMut) {
    let (tag, expire) = match &row.entry {
        None => (TAG_ABSENT, NO_EXPIRY),
        Some(e) => (
            match e.value {
                Value::Str(_) => TAG_STR,
                Value::Hash(_) => TAG_HASH,
            },
            e.expire_at.unwrap_or(NO_EXPIRY),
        ),
    };
    out.put_u8(tag);
    out.put_u64(row.version.0);
    out.put_i64(expire);
    match &row.entry {
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => out.put_slice(s),
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => out.put_slice(&encode_hash(h)),
        None => {}
    }
}

pub fn decode_row(mut buf: Bytes) -> Result<Row, Malformed> {
    if buf.len() < 17 {
        return Err(Malformed("short cache entry"));
    }
    let tag = buf.get_u8();
    let version = Version(buf.get_u64());
    let expire = buf.get_i64();
    let expire_at = (expire != NO_EXPIRY).then_some(expire);
    let value = match tag {
        TAG_ABSENT => {
            return Ok(Row {
                entry: None,
                version,
            });
        }
        TAG_STR => Value::Str(buf),
        TAG_HASH => Value::Hash(decode_hash(buf)?),
        _ => return Err(Malformed("unknown cache entry tag")),
    };
    Ok(Row {
        entry: Some(Entry { value, expire_at }),
        version,
    })
}

fn put_chunk(out: &mut BytesMut, chunk: &[u8]) {
    out.put_u32(chunk.len() as u32);
    out.put_slice(chunk);
}

fn take_chunk(buf: &mut Bytes) -> Result<Bytes, Malformed> {
    if buf.remaining() < 4 {
        return Err(Malformed("truncated length"));
    }
    let len = buf.get_u32() as usize;
    if buf.remaining() < len {
        return Err(Malformed("truncated chunk"));
    }
    Ok(buf.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let mut h = Hash::new();
        h.insert(Bytes::from_static(b"b"), Bytes::from_static(b"\0\r\n"));
        h.insert(Bytes::from_static(b"a"), Bytes::new());
        let rows = [
            Row::absent(),
            Row {
                entry: Some(Entry {
                    value: Value::Str(Bytes::from_static(b"x")),
                    expire_at: Some(5),
                }),
                version: Version(9),
            },
            Row {
                entry: Some(Entry::new(Value::Hash(h))),
                version: Version(u64::MAX >> 1),
            },
        ];
        for row in rows {
            assert_eq!(decode_row(encode_row(&row)).unwrap(), row);
        }
        assert!(decode_row(Bytes::from_static(b"S123")).is_err());
        assert!(decode_hash(Bytes::from_static(b"\0\0\0\x05ab")).is_err());
    }
}
