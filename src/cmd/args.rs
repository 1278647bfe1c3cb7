//! Argument parsing shared by command families, with Redis's error texts.
//!
//! Redis is strict about what counts as a number and clients match on its
//! error strings, so the rules here copy Redis's (`string2ll`,
//! `getExpireMillisecondsOrReply`) rather than Rust's `str::parse`.

use bytes::Bytes;

use crate::resp::Frame;

/// Redis's `proto-max-bulk-len` default: the largest string APPEND and
/// SETRANGE may build.
pub const MAX_STRING_LEN: u64 = 512 * 1024 * 1024;

/// Redis's `string2ll`: an optional `-`, then digits without a leading zero
/// (except `0` itself), at most 20 bytes, nothing else. `+1`, `01`, `-0`,
/// ` 1` and `1 ` are all rejected, as Redis rejects them.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (negative, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        // -(i64::MIN) does not fit in i64 but does in u64.
        0i64.checked_sub_unsigned(v)
    } else {
        i64::try_from(v).ok()
    }
}

/// An integer argument, or the error Redis gives for a bad one.
pub fn int(b: &[u8]) -> Result<i64, Frame> {
    parse_i64(b).ok_or_else(not_integer)
}

pub fn not_integer() -> Frame {
    Frame::err("value is not an integer or out of range")
}

pub fn syntax_error() -> Frame {
    Frame::err("syntax error")
}

pub fn overflow() -> Frame {
    Frame::err("increment or decrement would overflow")
}

pub fn not_float() -> Frame {
    Frame::err("value is not a valid float")
}

pub fn nan_or_infinity() -> Frame {
    Frame::err("increment would produce NaN or Infinity")
}

/// The command's name as Redis puts it in messages: lower case, whatever
/// case the client sent.
pub fn command_name(argv: &[Bytes]) -> String {
    argv.first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
        .unwrap_or_default()
}

/// For the argument-count rules arity alone cannot express (pairs).
pub fn wrong_arity(argv: &[Bytes]) -> Frame {
    Frame::err(format_args!(
        "wrong number of arguments for '{}' command",
        command_name(argv)
    ))
}

pub fn invalid_expire(argv: &[Bytes]) -> Frame {
    Frame::err(format_args!(
        "invalid expire time in '{}' command",
        command_name(argv)
    ))
}

/// A client-supplied argument quoted in an error: Redis prints it as a C
/// string (up to the first NUL) and replaces line breaks, which would
/// otherwise break the protocol.
pub fn quoted(arg: &[u8]) -> String {
    let end = arg.iter().position(|&b| b == 0).unwrap_or(arg.len());
    String::from_utf8_lossy(&arg[..end]).replace(['\r', '\n'], " ")
}

/// Unit of a SET/GETEX/SETEX expiry argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Seconds,
    Millis,
}

/// An absolute expiry in ms from a SET-style argument (`getExpireMilliseconds
/// OrReply`): the number must be positive, and neither the unit conversion
/// nor adding `now` for a relative time may overflow.
pub fn expire_at(
    argv: &[Bytes],
    arg: &[u8],
    unit: TimeUnit,
    relative: bool,
    now_ms: i64,
) -> Result<i64, Frame> {
    let n = int(arg)?;
    if n <= 0 {
        return Err(invalid_expire(argv));
    }
    let ms = match unit {
        TimeUnit::Seconds => n.checked_mul(1000),
        TimeUnit::Millis => Some(n),
    };
    let at = if relative {
        ms.and_then(|ms| ms.checked_add(now_ms))
    } else {
        ms
    };
    at.filter(|&at| at > 0).ok_or_else(|| invalid_expire(argv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        for (s, v) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("18446744073709551616", None),
            ("+1", None),
            ("01", None),
            ("-0", None),
            ("-", None),
            ("", None),
            (" 1", None),
            ("1 ", None),
            ("1.0", None),
            ("00000000000000000001", None),
            ("-00000000000000000001", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), v, "{s:?}");
        }
    }

    #[test]
    fn expiry_arguments() {
        let argv = [Bytes::from_static(b"SET")];
        let now = 1_000;
        assert_eq!(
            expire_at(&argv, b"10", TimeUnit::Seconds, true, now),
            Ok(11_000)
        );
        assert_eq!(expire_at(&argv, b"5", TimeUnit::Millis, false, now), Ok(5));
        let bad = Err(Frame::err("invalid expire time in 'set' command"));
        assert_eq!(expire_at(&argv, b"0", TimeUnit::Millis, true, now), bad);
        assert_eq!(expire_at(&argv, b"-1", TimeUnit::Seconds, true, now), bad);
        assert_eq!(
            expire_at(&argv, b"9223372036854776", TimeUnit::Seconds, false, now),
            bad
        );
        assert_eq!(
            expire_at(&argv, b"9223372036854775807", TimeUnit::Millis, true, now),
            bad
        );
        assert_eq!(
            expire_at(&argv, b"x", TimeUnit::Millis, true, now),
            Err(not_integer())
        );
    }

    #[test]
    fn quoted_arguments_stay_on_one_line() {
        assert_eq!(quoted(b"a\r\nb\0c"), "a  b");
    }
}
