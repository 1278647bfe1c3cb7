//! Inline commands: splitting a typed line into arguments exactly as Redis's
//! `sdssplitargs` does, quirks included, so a telnet session behaves the
//! same against spillway as against Redis.

use bytes::Bytes;
use memchr::memchr;

use super::{ParseError, Violation};

/// Splits an inline line the way Redis's `sdssplitargs` does.
///
/// Words are separated by whitespace. `"double quotes"` understand `\n`,
/// `\r`, `\t`, `\b`, `\a`, `\xHH` and a backslash before any other byte;
/// `'single quotes'` understand only `\'`. Quotes may start mid-word
/// (`a"b c"` is `ab c`) but a closing quote must be followed by whitespace or
/// the end of the line. `sdssplitargs` reads a C string, so a NUL byte ends
/// the line. Plain words are slices of `line`; only quoted words are copied.
pub(super) fn split_inline(line: &Bytes) -> Result<Vec<Bytes>, ParseError> {
    let s = match memchr(0, line) {
        Some(nul) => &line[..nul],
        None => &line[..],
    };
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while s.get(i).is_some_and(|b| is_c_space(*b)) {
            i += 1;
        }
        if i == s.len() {
            return Ok(args);
        }
        let start = i;
        while s.get(i).is_some_and(|b| !is_word_end(*b)) {
            i += 1;
        }
        match s.get(i) {
            Some(b'"' | b'\'') => {
                let mut word = s[start..i].to_vec();
                i = quoted_word(s, i, &mut word)?;
                args.push(Bytes::from(word));
            }
            _ => {
                args.push(line.slice(start..i));
                // The separator, if any, is whitespace: skipped next round.
            }
        }
    }
}

/// Continues a word at `s[i]`, the opening quote, mirroring the quote
/// handling of `sdssplitargs` byte for byte. Returns the index after the
/// word and its separator.
fn quoted_word(s: &[u8], mut i: usize, word: &mut Vec<u8>) -> Result<usize, ParseError> {
    let at = |j: usize| s.get(j).copied().unwrap_or(0);
    let unbalanced = ParseError::Malformed(Violation::UnbalancedQuotes);
    let (mut in_double, mut in_single) = (false, false);
    loop {
        let c = at(i);
        let mut done = false;
        if in_double {
            if c == b'\\' && at(i + 1) == b'x' && is_hex(at(i + 2)) && is_hex(at(i + 3)) {
                word.push(hex_value(at(i + 2)) * 16 + hex_value(at(i + 3)));
                i += 3;
            } else if c == b'\\' && at(i + 1) != 0 {
                i += 1;
                word.push(match at(i) {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'a' => 0x07,
                    other => other,
                });
            } else if c == b'"' {
                if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                    return Err(unbalanced);
                }
                done = true;
            } else if c == 0 {
                return Err(unbalanced);
            } else {
                word.push(c);
            }
        } else if in_single {
            if c == b'\\' && at(i + 1) == b'\'' {
                i += 1;
                word.push(b'\'');
            } else if c == b'\'' {
                if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                    return Err(unbalanced);
                }
                done = true;
            } else if c == 0 {
                return Err(unbalanced);
            } else {
                word.push(c);
            }
        } else {
            match c {
                b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                b'"' => in_double = true,
                b'\'' => in_single = true,
                _ => word.push(c),
            }
        }
        if at(i) != 0 {
            i += 1;
        }
        if done {
            return Ok(i);
        }
    }
}

/// C's `isspace` in the "C" locale, which `sdssplitargs` uses between words.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Bytes that end a plain word or switch it into quoted mode. Note `\v` and
/// `\f` are not among them: `sdssplitargs` keeps them inside words.
fn is_word_end(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'"' | b'\'')
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}
