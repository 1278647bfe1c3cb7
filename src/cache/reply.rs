//! Replies from a Redis server, as the pipelined connection reads them.
//!
//! Two steps, split so the connection's event loop does as little as
//! possible: [`Scanner`] only finds where the next whole reply ends (it
//! keeps its place across partial reads, so a large reply arriving in many
//! pieces is walked once), and [`Reply::parse`] turns one whole reply into
//! values, on the caller's side, slicing bulk strings out of the read
//! buffer without copying them. Only RESP2 is spoken: the connection never
//! sends `HELLO 3`.

use bytes::Bytes;

/// Arrays nest at most this deep; Redis's replies to the commands sent here
/// nest once. Deeper input is refused rather than followed.
const MAX_DEPTH: usize = 8;

/// A byte stream that is not RESP2: the connection cannot resynchronise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed reply from redis: {0}")]
pub struct Malformed(pub &'static str);

/// One reply value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Nil,
    Simple(Bytes),
    /// An error reply (`-ERR ...`), the text without the `-`.
    Error(Bytes),
    Int(i64),
    Bulk(Bytes),
    Array(Vec<Reply>),
}

/// Finds reply boundaries in a growing buffer, resuming where the last call
/// stopped.
#[derive(Debug, Default)]
pub struct Scanner {
    /// Bytes of the current reply already walked.
    pos: usize,
    /// Elements still expected by each open array, innermost last.
    open: Vec<u64>,
}

impl Scanner {
    /// The length of the first whole reply in `buf`, or `None` until more
    /// bytes arrive. After `Some`, the caller removes that many bytes from
    /// the front of `buf` before the next call.
    pub fn next(&mut self, buf: &[u8]) -> Result<Option<usize>, Malformed> {
        loop {
            let Some((head, body)) = header(&buf[self.pos..])? else {
                return Ok(None);
            };
            let at = self.pos;
            match buf[at] {
                b'+' | b'-' | b':' => self.pos += body,
                b'$' => {
                    let len = int(&buf[at + 1..at + head])?;
                    if len >= 0 {
                        let end = body + len as usize + 2;
                        if buf.len() - at < end {
                            return Ok(None);
                        }
                        if &buf[at + end - 2..at + end] != b"\r\n" {
                            return Err(Malformed("bulk string not ended by CRLF"));
                        }
                        self.pos += end;
                    } else {
                        self.pos += body;
                    }
                }
                b'*' => {
                    let len = int(&buf[at + 1..at + head])?;
                    self.pos += body;
                    if len > 0 {
                        if self.open.len() >= MAX_DEPTH {
                            return Err(Malformed("arrays nested too deep"));
                        }
                        self.open.push(len as u64);
                        continue;
                    }
                }
                _ => return Err(Malformed("unknown reply type")),
            }
            // One element ended: close every array it completes.
            loop {
                match self.open.last_mut() {
                    None => {
                        let len = self.pos;
                        self.pos = 0;
                        return Ok(Some(len));
                    }
                    Some(left) if *left > 1 => {
                        *left -= 1;
                        break;
                    }
                    Some(_) => {
                        self.open.pop();
                    }
                }
            }
        }
    }
}

/// The header line at the start of `buf`: its length without `\r\n` and
/// with it, or `None` when the line is not complete yet.
fn header(buf: &[u8]) -> Result<Option<(usize, usize)>, Malformed> {
    match memchr::memchr(b'\r', buf) {
        None => Ok(None),
        Some(cr) if cr + 1 >= buf.len() => Ok(None),
        Some(0) => Err(Malformed("empty line")),
        Some(cr) if buf[cr + 1] == b'\n' => Ok(Some((cr, cr + 2))),
        Some(_) => Err(Malformed("line not ended by CRLF")),
    }
}

fn int(digits: &[u8]) -> Result<i64, Malformed> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed("bad length or integer"))
}

impl Reply {
    /// Parses one whole reply, as delimited by [`Scanner`].
    pub fn parse(frame: &Bytes) -> Result<Reply, Malformed> {
        let mut at = 0;
        let reply = parse_at(frame, &mut at, 0)?;
        if at == frame.len() {
            Ok(reply)
        } else {
            Err(Malformed("bytes after the reply"))
        }
    }

    /// The elements of an array reply of bulk strings or nils (what MGET
    /// answers), without building a `Reply` per element: `f` gets each
    /// element's bytes. `Err` carries any other reply whole (an error
    /// reply, say).
    pub fn for_each_bulk(
        frame: &Bytes,
        mut f: impl FnMut(Option<Bytes>),
    ) -> Result<usize, Result<Reply, Malformed>> {
        let Some((head, body)) = header(frame).map_err(Err)? else {
            return Err(Err(Malformed("truncated reply")));
        };
        if frame[0] != b'*' {
            return Err(Reply::parse(frame));
        }
        let count = int(&frame[1..head]).map_err(Err)?.max(0) as usize;
        let mut at = body;
        for _ in 0..count {
            match parse_at(frame, &mut at, 1).map_err(Err)? {
                Reply::Bulk(b) => f(Some(b)),
                Reply::Nil => f(None),
                _ => return Err(Err(Malformed("array element is not a bulk string"))),
            }
        }
        Ok(count)
    }
}

fn parse_at(frame: &Bytes, at: &mut usize, depth: usize) -> Result<Reply, Malformed> {
    let start = *at;
    let Some((head, body)) = header(&frame[start..])? else {
        return Err(Malformed("truncated reply"));
    };
    let line = frame.slice(start + 1..start + head);
    *at = start + body;
    Ok(match frame[start] {
        b'+' => Reply::Simple(line),
        b'-' => Reply::Error(line),
        b':' => Reply::Int(int(&line)?),
        b'$' => match int(&line)? {
            len if len < 0 => Reply::Nil,
            len => {
                let end = *at + len as usize;
                if end + 2 > frame.len() || &frame[end..end + 2] != b"\r\n" {
                    return Err(Malformed("bulk string not ended by CRLF"));
                }
                let bulk = frame.slice(*at..end);
                *at = end + 2;
                Reply::Bulk(bulk)
            }
        },
        b'*' => match int(&line)? {
            len if len < 0 => Reply::Nil,
            _ if depth >= MAX_DEPTH => return Err(Malformed("arrays nested too deep")),
            len => {
                let mut items = Vec::with_capacity((len as usize).min(1024));
                for _ in 0..len {
                    items.push(parse_at(frame, at, depth + 1)?);
                }
                Reply::Array(items)
            }
        },
        _ => return Err(Malformed("unknown reply type")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    /// Feeds `input` one byte at a time and returns the reply lengths found.
    fn scan_bytewise(input: &[u8]) -> Vec<usize> {
        let mut scanner = Scanner::default();
        let mut buf = Vec::new();
        let mut found = Vec::new();
        for &byte in input {
            buf.push(byte);
            while let Some(n) = scanner.next(&buf).unwrap() {
                found.push(n);
                buf.drain(..n);
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        found
    }

    #[test]
    fn scans_every_reply_type_across_any_split() {
        let replies: [&[u8]; 8] = [
            b"+OK\r\n",
            b"-ERR no\r\n",
            b":-42\r\n",
            b"$-1\r\n",
            b"$4\r\na\r\nb\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*3\r\n$1\r\nx\r\n*2\r\n:1\r\n$-1\r\n$0\r\n\r\n",
        ];
        let all: Vec<u8> = replies.concat();
        let lens: Vec<usize> = replies.iter().map(|r| r.len()).collect();
        assert_eq!(scan_bytewise(&all), lens);
        let mut scanner = Scanner::default();
        assert_eq!(scanner.next(&all).unwrap(), Some(5));
    }

    #[test]
    fn parses_values_and_slices_bulks() {
        let frame = b(b"*4\r\n$3\r\nabc\r\n$-1\r\n:7\r\n*1\r\n+OK\r\n");
        let want = Reply::Array(vec![
            Reply::Bulk(b(b"abc")),
            Reply::Nil,
            Reply::Int(7),
            Reply::Array(vec![Reply::Simple(b(b"OK"))]),
        ]);
        assert_eq!(Reply::parse(&frame).unwrap(), want);
        assert_eq!(
            Reply::parse(&b(b"-WRONGTYPE x\r\n")).unwrap(),
            Reply::Error(b(b"WRONGTYPE x"))
        );
        assert_eq!(Reply::parse(&b(b"*-1\r\n")).unwrap(), Reply::Nil);
    }

    #[test]
    fn bulk_arrays_are_walked_without_building_replies() {
        let frame = b(b"*3\r\n$2\r\nab\r\n$-1\r\n$0\r\n\r\n");
        let mut got = Vec::new();
        assert_eq!(Reply::for_each_bulk(&frame, |v| got.push(v)), Ok(3));
        assert_eq!(got, vec![Some(b(b"ab")), None, Some(Bytes::new())]);
        let err = Reply::for_each_bulk(&b(b"-NOAUTH x\r\n"), |_| {});
        assert_eq!(err, Err(Ok(Reply::Error(b(b"NOAUTH x")))));
        assert!(matches!(
            Reply::for_each_bulk(&b(b"*1\r\n:1\r\n"), |_| {}),
            Err(Err(_))
        ));
    }

    #[test]
    fn refuses_what_is_not_resp2() {
        for bad in [
            &b"?x\r\n"[..],
            b"$x\r\n",
            b"+OK\rX",
            b"\r\n",
            b"$1\r\nabc\r\n",
        ] {
            let mut scanner = Scanner::default();
            assert!(scanner.next(bad).is_err(), "{bad:?}");
            assert!(Reply::parse(&b(bad)).is_err(), "{bad:?}");
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(Scanner::default().next(&deep).is_err());
    }
}
