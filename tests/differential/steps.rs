//! Steps: how one is sent, and how its two replies are compared.

use super::*;

/// What was sent and how its replies are compared.
pub(crate) struct Step {
    /// 0: the case's first connection, 1: its second.
    pub(crate) conn: usize,
    pub(crate) check: Check,
    pub(crate) send: Send,
    /// The command's words, for divergence patterns and messages.
    pub(crate) words: Vec<Vec<u8>>,
}

pub(crate) enum Send {
    /// A command resent until its reply is the one given, or `EVENTUALLY`
    /// has passed; the last reply is compared.
    Until(Vec<u8>, Vec<u8>),
    /// Bytes to write and how many replies they produce.
    Bytes(Vec<u8>, usize),
    /// Nothing to send: see whether the server closed the connection.
    ExpectClose,
}

#[derive(Clone, Copy)]
pub(crate) enum Check {
    Exact,
    /// Integers may differ by this much (time-dependent replies).
    Within(i64),
    /// Structure and types only.
    Shape,
    /// Arrays as multisets.
    Unordered,
}

impl Step {
    /// A command sent as it is: no directives, no escapes.
    pub(crate) fn plain<A: AsRef<[u8]>>(words: &[A]) -> Step {
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_ref().to_vec()).collect();
        Step {
            conn: 0,
            check: Check::Exact,
            send: Send::Bytes(encode_command(&words), 1),
            words,
        }
    }

    /// A step of a `Case`: directives first, then the command.
    pub(crate) fn parse(raw: &[&str]) -> Step {
        let (mut conn, mut check, mut i) = (0, Check::Exact, 0);
        while let Some(&word) = raw.get(i) {
            match word {
                "@b" => conn = 1,
                "!until" => {
                    let want = raw[i + 1].as_bytes().to_vec();
                    let words: Vec<Vec<u8>> = raw[i + 2..]
                        .iter()
                        .map(|w| unescape(w.as_bytes()))
                        .collect();
                    return Step {
                        conn,
                        check,
                        send: Send::Until(encode_command(&words), want),
                        words,
                    };
                }
                "!shape" => check = Check::Shape,
                "!unordered" => check = Check::Unordered,
                "!closed" => {
                    return Step {
                        conn,
                        check,
                        send: Send::ExpectClose,
                        words: Vec::new(),
                    };
                }
                "!inline" => {
                    let line = raw[i + 1];
                    return Step {
                        conn,
                        check,
                        words: line
                            .split_whitespace()
                            .map(|w| w.as_bytes().to_vec())
                            .collect(),
                        send: Send::Bytes(format!("{line}\r\n").into_bytes(), 1),
                    };
                }
                "!raw" => {
                    let n = raw[i + 1].parse().expect("!raw N: a reply count");
                    let bytes = raw[i + 2].as_bytes().to_vec();
                    return Step {
                        conn,
                        check,
                        words: vec![b"(raw)".to_vec(), bytes.clone()],
                        send: Send::Bytes(bytes, n),
                    };
                }
                _ if word.starts_with('~') => {
                    check = Check::Within(word[1..].parse().expect("~N: a tolerance"));
                }
                _ => break,
            }
            i += 1;
        }
        let words: Vec<Vec<u8>> = raw[i..].iter().map(|w| unescape(w.as_bytes())).collect();
        Step {
            conn,
            check,
            send: Send::Bytes(encode_command(&words), 1),
            words,
        }
    }

    pub(crate) fn replies(&self) -> usize {
        match self.send {
            Send::Bytes(_, n) => n,
            Send::Until(..) | Send::ExpectClose => 1,
        }
    }

    pub(crate) fn describe(&self) -> String {
        if self.words.is_empty() {
            return "(connection closed?)".into();
        }
        let words: Vec<String> = self
            .words
            .iter()
            .map(|w| format!("\"{}\"", w.escape_ascii()))
            .collect();
        let conn = if self.conn == 1 { "@b " } else { "" };
        format!("{conn}{}", words.join(" "))
    }
}

/// `\xNN` in an argument becomes that byte.
pub(crate) fn unescape(arg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(arg.len());
    let mut i = 0;
    while i < arg.len() {
        if arg[i..].starts_with(b"\\x") && i + 4 <= arg.len() {
            let hex = std::str::from_utf8(&arg[i + 2..i + 4]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(arg[i]);
        i += 1;
    }
    out
}

impl Check {
    pub(crate) fn same(self, a: &Result<Vec<u8>, String>, b: &Result<Vec<u8>, String>) -> bool {
        let (Ok(a), Ok(b)) = (a, b) else {
            return a == b;
        };
        if let Check::Exact = self {
            return a == b;
        }
        match (Value::parse_all(a), Value::parse_all(b)) {
            (Some(a), Some(b)) => self.values_same(&a, &b),
            _ => a == b,
        }
    }

    pub(crate) fn values_same(self, a: &[Value], b: &[Value]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        match self {
            Check::Unordered => {
                let canon = |v: &[Value]| {
                    let mut v: Vec<String> = v.iter().map(Value::canonical).collect();
                    v.sort();
                    v
                };
                canon(a) == canon(b)
            }
            _ => a.iter().zip(b).all(|(a, b)| self.value_same(a, b)),
        }
    }

    pub(crate) fn value_same(self, a: &Value, b: &Value) -> bool {
        if a.kind != b.kind {
            return false;
        }
        match self {
            Check::Shape => {
                a.children.len() == b.children.len() && self.values_same(&a.children, &b.children)
            }
            Check::Within(tolerance) if a.kind == b':' => {
                match (int_of(&a.text), int_of(&b.text)) {
                    (Some(x), Some(y)) => x.abs_diff(y) <= tolerance.unsigned_abs(),
                    _ => a.text == b.text,
                }
            }
            _ => a.text == b.text && self.values_same(&a.children, &b.children),
        }
    }
}

pub(crate) fn int_of(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A parsed reply, just enough to normalise it.
pub(crate) struct Value {
    pub(crate) kind: u8,
    /// The line of a simple type, the payload of a bulk one.
    pub(crate) text: Vec<u8>,
    pub(crate) children: Vec<Value>,
}

impl Value {
    pub(crate) fn parse_all(mut buf: &[u8]) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let len = reply_len(buf).ok()??;
            out.push(Value::parse(&buf[..len])?.0);
            buf = &buf[len..];
        }
        Some(out)
    }

    /// One value from the front of `buf` and the bytes it used.
    pub(crate) fn parse(buf: &[u8]) -> Option<(Value, usize)> {
        let kind = *buf.first()?;
        let end = buf.windows(2).position(|w| w == b"\r\n")?;
        let line = buf[1..end].to_vec();
        let mut at = end + 2;
        let len: i64 = std::str::from_utf8(&line)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1);
        let value = match kind {
            b'$' | b'!' | b'=' if len >= 0 => {
                let text = buf.get(at..at + len as usize)?.to_vec();
                at += len as usize + 2;
                Value {
                    kind,
                    text,
                    children: Vec::new(),
                }
            }
            b'*' | b'~' | b'>' | b'%' if len >= 0 => {
                let n = if kind == b'%' { len * 2 } else { len };
                let mut children = Vec::new();
                for _ in 0..n {
                    let (child, used) = Value::parse(&buf[at..])?;
                    children.push(child);
                    at += used;
                }
                Value {
                    kind,
                    text: line,
                    children,
                }
            }
            _ => Value {
                kind,
                text: line,
                children: Vec::new(),
            },
        };
        Some((value, at))
    }

    /// A string form in which arrays (at every depth) are sorted.
    pub(crate) fn canonical(&self) -> String {
        let mut children: Vec<String> = self.children.iter().map(Value::canonical).collect();
        children.sort();
        format!(
            "{}{}[{}]",
            self.kind as char,
            self.text.escape_ascii(),
            children.join(",")
        )
    }
}
