//! The payload of a write-behind WAL record: the resulting rows of the keys
//! one command (or one MULTI block) changed, never the command itself, so
//! replaying INCR or APPEND is idempotent.
//!
//! Layout: `count u32`, then per key `key_len u32, key, row_len u32, row`
//! with the row in `keyspace::codec::encode_row` form (which carries the
//! version and the absolute expiry).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::keyspace::Row;
use crate::keyspace::codec::{Malformed, decode_row, encode_row_into, encoded_row_bound};

pub fn encode(rows: &[(Bytes, Row)]) -> Bytes {
    let mut out = BytesMut::with_capacity(encoded_bound(rows));
    encode_into(rows, &mut out);
    out.freeze()
}

/// At least the length of `encode(rows)`: a run sizes one buffer for all
/// its records with it, so they cost one allocation, not several each.
pub fn encoded_bound(rows: &[(Bytes, Row)]) -> usize {
    4 + rows
        .iter()
        .map(|(k, row)| 8 + k.len() + encoded_row_bound(row))
        .sum::<usize>()
}

/// `encode`, appended to `out`.
pub fn encode_into(rows: &[(Bytes, Row)], out: &mut BytesMut) {
    out.put_u32(rows.len() as u32);
    for (key, row) in rows {
        out.put_u32(key.len() as u32);
        out.put_slice(key);
        let at = out.len();
        out.put_u32(0);
        encode_row_into(row, out);
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
}

pub fn decode(mut buf: Bytes) -> Result<Vec<(Bytes, Row)>, Malformed> {
    if buf.remaining() < 4 {
        return Err(Malformed("short write-behind record"));
    }
    let count = buf.get_u32() as usize;
    let mut rows = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        let key = chunk(&mut buf)?;
        let row = decode_row(chunk(&mut buf)?)?;
        rows.push((key, row));
    }
    if buf.has_remaining() {
        return Err(Malformed("trailing bytes in write-behind record"));
    }
    Ok(rows)
}

fn chunk(buf: &mut Bytes) -> Result<Bytes, Malformed> {
    if buf.remaining() < 4 {
        return Err(Malformed("truncated write-behind record"));
    }
    let len = buf.get_u32() as usize;
    if buf.remaining() < len {
        return Err(Malformed("truncated write-behind record"));
    }
    Ok(buf.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::{Entry, Value, Version};

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let rows = vec![
            (
                Bytes::from_static(b"a"),
                Row {
                    entry: Some(Entry::new(Value::Str(Bytes::from_static(b"\0\r\n")))),
                    version: Version(7),
                },
            ),
            (
                Bytes::from_static(b""),
                Row {
                    entry: None,
                    version: Version(8),
                },
            ),
        ];
        let bytes = encode(&rows);
        assert!(bytes.len() <= encoded_bound(&rows));
        assert_eq!(decode(bytes.clone()).unwrap(), rows);
        for cut in 0..bytes.len() {
            assert!(decode(bytes.slice(..cut)).is_err());
        }
    }
}
