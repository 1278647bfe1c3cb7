//! Request parsing: turns the bytes a client sends into argument vectors.
//!
//! Clients send either multibulk requests (`*N\r\n` followed by `N` bulk
//! strings) or inline commands (one whitespace-separated line, as typed into
//! telnet). Requests are never nested, so the parser is a flat state machine
//! with no recursion: hostile input cannot grow the stack.
//!
//! The parser keeps its progress between calls (arguments read so far, the
//! announced length of the pending bulk, how far a partial line was already
//! scanned), so a large request arriving in many small reads costs time
//! linear in its size. Arguments are split off the read buffer without
//! copying.
//!
//! Error texts follow redis-server 7 so clients see familiar messages. Where
//! Redis is lenient (it skips whatever two bytes follow a bulk or a count
//! line) this parser insists on `\r\n`, because a proxy that silently
//! resynchronises on garbage would execute commands the client never sent.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use inline::split_inline;

mod inline;
#[cfg(test)]
mod tests;

/// Longest line accepted before its terminator: Redis's `PROTO_INLINE_MAX_SIZE`.
/// It bounds inline commands and count lines alike, so a client cannot make
/// the server buffer an endless header.
pub const MAX_LINE: usize = 64 * 1024;

/// Arguments preallocated for a multibulk request, whatever count it
/// announces: a 12-byte header must not reserve megabytes up front.
const PREALLOC_ARGS: usize = 1024;

/// Size limits for one request. Passed by value to each connection's parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest single argument, Redis's `proto-max-bulk-len`.
    /// Default 512 MiB.
    pub max_bulk_len: usize,
    /// Most arguments in one multibulk request. Default 1024 × 1024, the
    /// limit Redis enforced before 7.0; later versions allow up to `INT_MAX`,
    /// which no real command needs.
    pub max_args: usize,
    /// Largest command, counted as the sum of its argument bytes. It caps
    /// what one command can pin in memory while it is read. Default 1 GiB,
    /// Redis's `client-query-buffer-limit`.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_request_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why a request was refused. Every parse error is fatal: the caller replies
/// `-ERR {error}` and closes the connection, because the position of the
/// next request in the stream is no longer known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not a request.
    #[error("Protocol error: {0}")]
    Malformed(Violation),
    /// The request is well formed but exceeds a limit; worth counting
    /// separately, as it is either hostile or a sign the limits are too tight.
    #[error("Protocol error: {0}")]
    TooLarge(Violation),
}

/// The specific rule a request broke; its `Display` is Redis's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// `*` count not an integer, or above [`Limits::max_args`].
    MultibulkLength,
    /// `$` length not a non-negative integer, or above [`Limits::max_bulk_len`].
    BulkLength,
    /// Something other than `$` where a bulk header must start.
    ExpectedBulk(u8),
    /// A bulk string not followed by `\r\n` (Redis does not check this).
    BulkTerminator,
    /// An inline command with an unterminated quote, or a closing quote
    /// glued to the next word.
    UnbalancedQuotes,
    /// An inline line longer than [`MAX_LINE`].
    InlineRequest,
    /// A `*` count line longer than [`MAX_LINE`].
    MultibulkCountString,
    /// A `$` length line longer than [`MAX_LINE`].
    BulkCountString,
    /// A command whose arguments add up to more than
    /// [`Limits::max_request_bytes`].
    Request,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Violation::MultibulkLength => "invalid multibulk length",
            Violation::BulkLength => "invalid bulk length",
            // Redis prints the raw byte with %c; a `char` keeps the text valid
            // UTF-8 (bytes above 0x7f show as their Latin-1 character).
            Violation::ExpectedBulk(b) => {
                return write!(f, "expected '$', got '{}'", char::from(*b));
            }
            Violation::BulkTerminator => "bulk string not terminated by CRLF",
            Violation::UnbalancedQuotes => "unbalanced quotes in request",
            Violation::InlineRequest => "too big inline request",
            Violation::MultibulkCountString => "too big mbulk count string",
            Violation::BulkCountString => "too big bulk count string",
            Violation::Request => "request too large",
        };
        f.write_str(text)
    }
}

/// Where the parser is inside the current request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between requests.
    Start,
    /// Inside a multibulk request with `remaining` arguments still to read;
    /// `bulk` is the announced length of the next one once its header is in.
    Multibulk {
        remaining: usize,
        bulk: Option<usize>,
    },
}

/// What one parsing step achieved.
enum Step {
    /// The buffer ends inside the request.
    NeedMore,
    /// Progress was made (or an empty request skipped); keep going.
    Continue,
    /// A request is complete.
    Done(Vec<Bytes>),
}

/// Incremental request parser for one connection.
///
/// Call [`RequestParser::next`] in a loop after each read to drain pipelined
/// requests; between reads, [`RequestParser::wants`] says how much room the
/// pending argument still needs. After an error the parser's state is
/// meaningless (though still safe to call); the connection should close.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    state: State,
    args: Vec<Bytes>,
    /// Argument bytes announced so far by the current request.
    request_bytes: usize,
    /// Bytes at the front of the buffer already searched for the current
    /// line's terminator, so a slowly arriving line is scanned once.
    scanned: usize,
    /// See [`RequestParser::wants`].
    wants: usize,
}

impl Default for RequestParser {
    fn default() -> RequestParser {
        RequestParser::new(Limits::default())
    }
}

impl RequestParser {
    /// A parser for a new connection; the limits come from the config.
    pub fn new(limits: Limits) -> RequestParser {
        RequestParser {
            limits,
            state: State::Start,
            args: Vec::new(),
            request_bytes: 0,
            scanned: 0,
            wants: 0,
        }
    }

    /// Takes one complete request off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` ends inside a request; the bytes parsed
    /// so far are consumed and remembered, so the next call resumes where
    /// this one stopped. Empty requests (`*0`, `*-1`, blank inline lines) are
    /// skipped, as Redis does, so `Some` always holds at least one argument.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        let result = self.advance(buf);
        self.wants = match (&result, self.state) {
            (
                Ok(None),
                State::Multibulk {
                    bulk: Some(len), ..
                },
            ) => len.saturating_add(2).saturating_sub(buf.len()),
            _ => 0,
        };
        result
    }

    /// Bytes still missing from the pending bulk argument (with its `\r\n`)
    /// as of the last [`next`](RequestParser::next) that returned `Ok(None)`;
    /// 0 when not inside a bulk. Reserving this much before reading lets a
    /// large argument land in one allocation instead of a series of
    /// doublings. The value is the client's claim, bounded only by
    /// [`Limits::max_bulk_len`], so a caller may cap it.
    pub fn wants(&self) -> usize {
        self.wants
    }

    fn advance(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        loop {
            let step = match self.state {
                State::Start => self.start(buf)?,
                State::Multibulk {
                    remaining,
                    bulk: None,
                } => self.bulk_header(buf, remaining)?,
                State::Multibulk {
                    remaining,
                    bulk: Some(len),
                } => self.bulk_data(buf, remaining, len)?,
            };
            match step {
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
                Step::Done(args) => return Ok(Some(args)),
            }
        }
    }

    /// Starts a request: a multibulk header, or a whole inline command.
    fn start(&mut self, buf: &mut BytesMut) -> Result<Step, ParseError> {
        match buf.first() {
            None => Ok(Step::NeedMore),
            Some(b'*') => {
                let Some(count) = self.multibulk_header(buf)? else {
                    return Ok(Step::NeedMore);
                };
                if count > 0 {
                    self.args = Vec::with_capacity(count.min(PREALLOC_ARGS));
                    self.request_bytes = 0;
                    self.state = State::Multibulk {
                        remaining: count,
                        bulk: None,
                    };
                }
                Ok(Step::Continue)
            }
            Some(_) => Ok(match self.inline(buf)? {
                None => Step::NeedMore,
                Some(args) if args.is_empty() => Step::Continue,
                Some(args) => Step::Done(args),
            }),
        }
    }

    /// Takes the pending bulk argument once all of it and its `\r\n` are in.
    fn bulk_data(
        &mut self,
        buf: &mut BytesMut,
        remaining: usize,
        len: usize,
    ) -> Result<Step, ParseError> {
        if buf.len() < len.saturating_add(2) {
            return Ok(Step::NeedMore);
        }
        if buf[len..len + 2] != *b"\r\n" {
            return Err(ParseError::Malformed(Violation::BulkTerminator));
        }
        let arg = buf.split_to(len).freeze();
        buf.advance(2);
        self.args.push(arg);
        if remaining > 1 {
            self.state = State::Multibulk {
                remaining: remaining - 1,
                bulk: None,
            };
            Ok(Step::Continue)
        } else {
            self.state = State::Start;
            Ok(Step::Done(std::mem::take(&mut self.args)))
        }
    }

    /// Reads `*N\r\n`. A count of zero or below means "no request" (`Some(0)`).
    fn multibulk_header(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ParseError> {
        let too_big = ParseError::TooLarge(Violation::MultibulkCountString);
        let invalid = ParseError::Malformed(Violation::MultibulkLength);
        let Some(n) = self.count_line(buf, too_big, invalid)? else {
            return Ok(None);
        };
        match usize::try_from(n) {
            Err(_) => Ok(Some(0)),
            Ok(n) if n <= self.limits.max_args => Ok(Some(n)),
            Ok(_) => Err(ParseError::TooLarge(Violation::MultibulkLength)),
        }
    }

    /// Reads `$len\r\n` and checks the length against the limits before any
    /// of the data is buffered.
    fn bulk_header(&mut self, buf: &mut BytesMut, remaining: usize) -> Result<Step, ParseError> {
        // Checked on the first byte rather than the whole line (as Redis
        // does), so nested arrays and other garbage fail at once.
        match buf.first() {
            None => return Ok(Step::NeedMore),
            Some(b'$') => {}
            Some(&other) => return Err(ParseError::Malformed(Violation::ExpectedBulk(other))),
        }
        let too_big = ParseError::TooLarge(Violation::BulkCountString);
        let invalid = ParseError::Malformed(Violation::BulkLength);
        let Some(n) = self.count_line(buf, too_big, invalid)? else {
            return Ok(Step::NeedMore);
        };
        let len = usize::try_from(n).map_err(|_| invalid)?;
        if len > self.limits.max_bulk_len {
            return Err(ParseError::TooLarge(Violation::BulkLength));
        }
        self.request_bytes = self.request_bytes.saturating_add(len);
        if self.request_bytes > self.limits.max_request_bytes {
            return Err(ParseError::TooLarge(Violation::Request));
        }
        self.state = State::Multibulk {
            remaining,
            bulk: Some(len),
        };
        Ok(Step::Continue)
    }

    /// Takes a `*N\r\n` or `$N\r\n` line off `buf` and returns `N`;
    /// `invalid` if `N` is not an integer or the line does not end in `\r\n`.
    fn count_line(
        &mut self,
        buf: &mut BytesMut,
        too_big: ParseError,
        invalid: ParseError,
    ) -> Result<Option<i64>, ParseError> {
        let Some(cr) = self.find_line_end(buf, b'\r', too_big)? else {
            return Ok(None);
        };
        match buf.get(cr + 1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(invalid),
        }
        let n = parse_int(&buf[1..cr]).ok_or(invalid)?;
        buf.advance(cr + 2);
        self.scanned = 0;
        Ok(Some(n))
    }

    /// Takes an inline command's line off `buf` and splits it into
    /// arguments (possibly none).
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ParseError> {
        let too_big = ParseError::TooLarge(Violation::InlineRequest);
        let Some(lf) = self.find_line_end(buf, b'\n', too_big)? else {
            return Ok(None);
        };
        let mut line = buf.split_to(lf + 1).freeze();
        self.scanned = 0;
        line.truncate(lf);
        if line.last() == Some(&b'\r') {
            line.truncate(lf - 1);
        }
        let args = split_inline(&line)?;
        let total = args.iter().map(Bytes::len).sum::<usize>();
        if total > self.limits.max_request_bytes {
            return Err(ParseError::TooLarge(Violation::Request));
        }
        Ok(Some(args))
    }

    /// Index of `terminator` in the line at the front of `buf`, searching
    /// only bytes not searched by an earlier call.
    ///
    /// The line may hold at most [`MAX_LINE`] bytes before its terminator.
    /// Unlike Redis, which checks only while the terminator is missing, the
    /// same line is refused however the bytes were split into reads.
    fn find_line_end(
        &mut self,
        buf: &[u8],
        terminator: u8,
        too_big: ParseError,
    ) -> Result<Option<usize>, ParseError> {
        let window = buf.len().min(MAX_LINE + 1);
        let from = self.scanned.min(window);
        match memchr(terminator, &buf[from..window]) {
            Some(i) => {
                // Remembered so a call still waiting for the `\n` after a
                // `\r` finds it again without rescanning.
                self.scanned = from + i;
                Ok(Some(from + i))
            }
            None if buf.len() > MAX_LINE => Err(too_big),
            None => {
                self.scanned = window;
                Ok(None)
            }
        }
    }
}

/// Parses an integer exactly as Redis's `string2ll` does: an optional `-`,
/// no `+`, no leading zeros, no spaces, no overflow.
fn parse_int(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [b'0'] if !negative => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}
