//! Reply encoding: writes a [`Frame`] in the spelling of the connection's
//! protocol, RESP2 or RESP3.
//!
//! RESP3 types without a RESP2 form fall back the way Redis does: maps become
//! flat arrays, sets become arrays, doubles and verbatim strings become bulk
//! strings, and both nulls take their RESP2 null bulk or null array form.
//! Encoding appends to the caller's buffer and allocates nothing else:
//! numbers are formatted on the stack.

use bytes::{BufMut, BytesMut};

use super::Frame;

/// The protocol a connection speaks, switched by `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// Appends `frame` to `out`.
///
/// Simple strings and errors are single lines on the wire, so any `\r` or
/// `\n` in them becomes a space (as Redis does for error texts) rather than
/// letting a reply inject a second one.
pub fn encode(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match frame {
        Frame::Simple(text) => line(out, b'+', text.as_bytes()),
        Frame::Error(text) => line(out, b'-', text.as_bytes()),
        Frame::Integer(n) => header(out, b':', *n),
        Frame::Bulk(data) => bulk(out, data),
        Frame::Null if resp3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Array(items) => {
            header(out, b'*', items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len().saturating_mul(2));
            }
            for (key, value) in pairs {
                encode(key, proto, out);
                encode(value, proto, out);
            }
        }
        Frame::Set(items) => {
            header(out, if resp3 { b'~' } else { b'*' }, items.len());
            for item in items {
                encode(item, proto, out);
            }
        }
        Frame::Double(d) => {
            let (mut ints, mut floats) = (itoa::Buffer::new(), ryu::Buffer::new());
            let text = format_double(*d, &mut ints, &mut floats);
            if resp3 {
                line(out, b',', text.as_bytes());
            } else {
                bulk(out, text.as_bytes());
            }
        }
        Frame::Verbatim(data) if resp3 => {
            header(out, b'=', data.len() + 4);
            out.put_slice(b"txt:");
            out.put_slice(data);
            out.put_slice(b"\r\n");
        }
        Frame::Verbatim(data) => bulk(out, data),
    }
}

/// Formats a double as Redis's `d2string` does, with one simplification.
///
/// `inf`, `-inf` and `nan` are spelled out; integral values below 2^53 in
/// magnitude print as integers (`3`, not `3.0`; negative zero prints `0`, as
/// in Redis 7.0). Everything else uses the shortest digits that read back to
/// the same double, as Redis 7.2+ does, but in `ryu`'s spelling: `1e21` where
/// Redis writes `1e+21`. Both parse identically with `strtod`.
fn format_double<'a>(d: f64, ints: &'a mut itoa::Buffer, floats: &'a mut ryu::Buffer) -> &'a str {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if d.is_nan() {
        "nan"
    } else if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }
    } else if d.fract() == 0.0 && d.abs() < EXACT {
        // In range and integral, so the cast is exact.
        ints.format(d as i64)
    } else {
        floats.format_finite(d)
    }
}

/// `<kind><text>\r\n`, with line breaks in `text` turned into spaces.
fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.put_u8(kind);
    let start = out.len();
    out.put_slice(text);
    for b in &mut out[start..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.put_slice(b"\r\n");
}

/// `<kind><n>\r\n`: integers, and the length header of aggregates and bulks.
fn header(out: &mut BytesMut, kind: u8, n: impl itoa::Integer) {
    out.put_u8(kind);
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn enc(frame: &Frame, proto: Protocol) -> String {
        let mut out = BytesMut::new();
        encode(frame, proto, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn both(frame: Frame, resp2: &str, resp3: &str) {
        assert_eq!(enc(&frame, Protocol::Resp2), resp2, "RESP2 {frame:?}");
        assert_eq!(enc(&frame, Protocol::Resp3), resp3, "RESP3 {frame:?}");
    }

    #[test]
    fn scalars() {
        both(Frame::ok(), "+OK\r\n", "+OK\r\n");
        both(Frame::err("nope"), "-ERR nope\r\n", "-ERR nope\r\n");
        both(Frame::Integer(-42), ":-42\r\n", ":-42\r\n");
        both(
            Frame::Integer(i64::MIN),
            ":-9223372036854775808\r\n",
            ":-9223372036854775808\r\n",
        );
        both(
            Frame::bulk("a\r\nb"),
            "$4\r\na\r\nb\r\n",
            "$4\r\na\r\nb\r\n",
        );
        both(Frame::bulk(""), "$0\r\n\r\n", "$0\r\n\r\n");
        both(Frame::Null, "$-1\r\n", "_\r\n");
        both(Frame::NullArray, "*-1\r\n", "_\r\n");
    }

    #[test]
    fn line_breaks_in_single_line_replies_become_spaces() {
        both(
            Frame::Error("ERR a\r\nb\nc".into()),
            "-ERR a  b c\r\n",
            "-ERR a  b c\r\n",
        );
        both(Frame::Simple("x\ry".into()), "+x y\r\n", "+x y\r\n");
    }

    #[test]
    fn aggregates() {
        let array = Frame::Array(vec![Frame::Integer(1), Frame::bulk("x"), Frame::Null]);
        both(
            array,
            "*3\r\n:1\r\n$1\r\nx\r\n$-1\r\n",
            "*3\r\n:1\r\n$1\r\nx\r\n_\r\n",
        );
        both(Frame::Array(vec![]), "*0\r\n", "*0\r\n");
        let map = Frame::Map(vec![
            (Frame::bulk("f1"), Frame::bulk("v1")),
            (Frame::bulk("f2"), Frame::Integer(2)),
        ]);
        both(
            map,
            "*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n:2\r\n",
            "%2\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n:2\r\n",
        );
        let set = Frame::Set(vec![Frame::bulk("a"), Frame::bulk("b")]);
        both(
            set,
            "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
            "~2\r\n$1\r\na\r\n$1\r\nb\r\n",
        );
        let nested = Frame::Array(vec![Frame::Map(vec![(
            Frame::bulk("k"),
            Frame::Double(1.5),
        )])]);
        both(
            nested,
            "*1\r\n*2\r\n$1\r\nk\r\n$3\r\n1.5\r\n",
            "*1\r\n%1\r\n$1\r\nk\r\n,1.5\r\n",
        );
    }

    #[test]
    fn doubles() {
        let cases: &[(f64, &str)] = &[
            (1.5, "1.5"),
            (3.0, "3"),
            (-3.0, "-3"),
            (0.0, "0"),
            (-0.0, "0"),
            (0.1, "0.1"),
            (1e15, "1000000000000000"),
            (2.5e-300, "2.5e-300"),
            (1e21, "1e21"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ];
        for &(d, text) in cases {
            let resp2 = format!("${}\r\n{text}\r\n", text.len());
            both(Frame::Double(d), &resp2, &format!(",{text}\r\n"));
            if d.is_finite() && d != 0.0 {
                assert_eq!(text.parse::<f64>().ok(), Some(d), "{text} reads back");
            }
        }
    }

    #[test]
    fn verbatim() {
        both(
            Frame::Verbatim(Bytes::from_static(b"# Server\r\nx:1")),
            "$13\r\n# Server\r\nx:1\r\n",
            "=17\r\ntxt:# Server\r\nx:1\r\n",
        );
    }
}
