//! The payload of a write-behind WAL record: the resulting rows of the keys
//! one command (or one MULTI block) changed, never the command itself, so
//! replaying INCR or APPEND is idempotent.
//!
//! Layout: `count u32`, then per key `key_len u32, key, row_len u32, row`
//! with the row in `keyspace::codec::encode_row` form (which carries the
//! version and the absolute expiry).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::keyspace::Row;
use crate::keyspace::codec::{Malformed, decode_row, encode_row};

pub fn encode(rows: &[(Bytes, Row)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u32(rows.len() as u32);
    for (key, row) in rows {
        let row = encode_row(row);
        out.put_u32(key.len() as u32);
        out.put_slice(key);
        out.put_u32(row.len() as u32);
        out.put_slice(&row);
    }
    out.freeze()
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
        assert_eq!(decode(bytes.clone()).unwrap(), rows);
        for cut in 0..bytes.len() {
            assert!(decode(bytes.slice(..cut)).is_err());
        }
    }
}
