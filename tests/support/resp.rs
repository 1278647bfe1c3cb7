//! Byte-level RESP access for tests that must see exactly what the server
//! sent: framing, error texts, RESP3 types, pipelining, closed connections.
//!
//! The reply scanner is written here rather than taken from the crate under
//! test, so a framing bug in the server cannot hide behind the same bug in
//! the check.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for a reply before it calls the server hung.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A plain TCP connection speaking raw RESP.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let mut conn = RawConn {
            stream,
            buf: Vec::new(),
        };
        conn.set_timeout(REPLY_TIMEOUT);
        conn
    }

    /// Sets how long reads and writes may block before the test fails.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set read timeout");
        self.stream
            .set_write_timeout(Some(timeout))
            .expect("set write timeout");
    }

    /// Sends bytes as they are: malformed input, inline commands, partial frames.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send of {} bytes failed: {e}", bytes.len()));
    }

    /// Sends a command as a RESP array of bulk strings, as clients do.
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        self.send(&encode_command(args));
    }

    /// Sends a command and returns its one reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send_cmd(args);
        self.read_reply()
    }

    /// Reads exactly one complete reply (RESP2 or RESP3), leaving any bytes
    /// of later replies buffered for the next call.
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.try_read_reply() {
            Ok(Some(reply)) => reply,
            Ok(None) => panic!(
                "connection closed before a complete reply; buffered: \"{}\"",
                self.buf.escape_ascii()
            ),
            Err(e) => panic!(
                "no complete reply: {e}; buffered: \"{}\"",
                self.buf.escape_ascii()
            ),
        }
    }

    /// One reply, `Ok(None)` when the server closed the connection cleanly
    /// between replies, or the read error (timeout, reset).
    pub fn try_read_reply(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match reply_len(&self.buf) {
                Ok(Some(len)) => return Ok(Some(self.buf.drain(..len).collect())),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a reply",
                    ))
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Whether the server closes the connection (EOF or reset) within
    /// `timeout` without sending anything more.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set read timeout");
        let closed = match self.try_read_reply() {
            Ok(None) => true,
            Ok(Some(_)) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof
            ),
        };
        self.stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("set read timeout");
        closed
    }

    /// Half-closes the sending side, as a client that is done writing does.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// A command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The length of the first complete reply in `buf`, `None` if more bytes are
/// needed, or an error if `buf` cannot be RESP.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    scan(buf, 0)
}

fn scan(buf: &[u8], pos: usize) -> Result<Option<usize>, String> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    let Some(line_end) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let line = &buf[pos + 1..line_end];
    let next = line_end + 2;
    match kind {
        // Simple string, error, integer, null, double, boolean, big number.
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(next)),
        // Bulk string, bulk error, verbatim string.
        b'$' | b'!' | b'=' => {
            let len = parse_len(line, pos)?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(Some(next)); // $-1: RESP2 null bulk string
            };
            let end = next + len + 2;
            if buf.len() < end {
                return Ok(None);
            }
            if &buf[end - 2..end] != b"\r\n" {
                return Err(format!("bulk at {pos} not followed by CRLF"));
            }
            Ok(Some(end))
        }
        // Array, set, push, map, attribute.
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let len = parse_len(line, pos)?;
            let Ok(len) = usize::try_from(len) else {
                return Ok(Some(next)); // *-1: RESP2 null array
            };
            let elements = if matches!(kind, b'%' | b'|') {
                len * 2
            } else {
                len
            };
            let mut at = next;
            for _ in 0..elements {
                match scan(buf, at)? {
                    Some(end) => at = end,
                    None => return Ok(None),
                }
            }
            if kind == b'|' {
                // An attribute decorates the reply that follows it.
                return scan(buf, at);
            }
            Ok(Some(at))
        }
        other => Err(format!(
            "unexpected type byte '{}' at offset {pos}",
            [other].escape_ascii()
        )),
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| from + i)
}

fn parse_len(line: &[u8], pos: usize) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|&n| n >= -1)
        .ok_or_else(|| format!("bad length \"{}\" at offset {pos}", line.escape_ascii()))
}

/// One request/reply exchange on a fresh short-lived connection, for
/// readiness polling: any failure just means "not yet".
pub fn probe(port: u16, request: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut conn = RawConn {
        stream,
        buf: Vec::new(),
    };
    conn.stream.write_all(request)?;
    conn.try_read_reply()?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed without a reply"))
}
