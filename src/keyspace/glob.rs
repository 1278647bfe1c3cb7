//! Redis glob patterns (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes) for
//! SCAN/KEYS MATCH.
//!
//! A transcription of Redis 7's `stringmatchlen`, quirks included, so a
//! pattern selects the same keys here as in Redis: an unclosed `[` runs to
//! the end of the pattern, `[a-]` is the (reversed, so swapped) range
//! `]`..`a`, range bounds compare as C's signed `char` (bytes >= 0x80 sort
//! below ASCII), and reading past the pattern's end sees C's NUL terminator.

/// Redis's guard against patterns like `*a*a*a...` exhausting the stack.
const MAX_NESTING: u32 = 1000;

/// True when `s` matches `pattern` with Redis's `stringmatchlen` rules.
///
/// As in Redis, a lone `*` does not match the empty string here; KEYS and
/// SCAN special-case `*` as "everything" before matching.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    let mut skip_longer = false;
    match_from(pattern, s, &mut skip_longer, 0)
}

/// The byte at `i`, or 0 past the end (C's terminator).
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

/// `skip_longer` is Redis's early exit: once the rest of a pattern after a
/// `*` fails at every position, no earlier `*` can help by matching more.
fn match_from(p: &[u8], s: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let (mut pi, mut si) = (0, 0);
    while pi < p.len() && si < s.len() {
        match p[pi] {
            b'*' => {
                while at(p, pi + 1) == b'*' {
                    pi += 1;
                }
                if pi + 1 == p.len() {
                    return true;
                }
                while si < s.len() {
                    if match_from(&p[pi + 1..], &s[si..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                let (end, matched) = bracket(p, pi + 1, s[si]);
                if !matched {
                    return false;
                }
                pi = end;
                si += 1;
            }
            b'\\' => {
                if p.len() - pi >= 2 {
                    pi += 1;
                }
                if p[pi] != s[si] {
                    return false;
                }
                si += 1;
            }
            c => {
                if c != s[si] {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
        if si == s.len() {
            while at(p, pi) == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi == p.len() && si == s.len()
}

/// Matches `c` against the class starting at `pi` (just past `[`). Returns
/// the index of the closing `]` (or the last pattern byte when unclosed)
/// and whether `c` is in the class.
fn bracket(p: &[u8], mut pi: usize, c: u8) -> (usize, bool) {
    let negate = at(p, pi) == b'^';
    if negate {
        pi += 1;
    }
    let mut matched = false;
    loop {
        let left = p.len() - pi;
        if at(p, pi) == b'\\' && left >= 2 {
            pi += 1;
            matched |= p[pi] == c;
        } else if at(p, pi) == b']' {
            break;
        } else if left == 0 {
            pi -= 1;
            break;
        } else if left >= 3 && p[pi + 1] == b'-' {
            // C compares these as signed chars.
            let (mut lo, mut hi) = (p[pi] as i8, p[pi + 2] as i8);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            matched |= (lo..=hi).contains(&(c as i8));
            pi += 2;
        } else {
            matched |= p[pi] == c;
        }
        pi += 1;
    }
    (pi, matched != negate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        matches(p.as_bytes(), s.as_bytes())
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "anything"));
        assert!(!m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("h?llo", "hello") && m("h?llo", "hallo") && !m("h?llo", "hllo"));
        assert!(m("h*llo", "hllo") && m("h*llo", "heeeello") && !m("h*llo", "hellx"));
        assert!(m("a*", "a") && m("a**", "a") && m("**a**", "a"));
        assert!(m("*b*c", "abxc") && !m("*b*c", "abxcd"));
        assert!(m("user:*:name", "user:42:name") && !m("user:*:name", "user:42:nam"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
        assert!(m("[z-a]", "q"), "reversed ranges are swapped");
        // `[a-]` is the unclosed range `]`..`a`.
        assert!(m("[a-]", "]") && m("[a-]", "_") && !m("[a-]", "b"));
        assert!(m("[abc", "c") && !m("[abc", "d"), "unclosed class");
        assert!(!m("[", "a") && m("[^", "a"));
        assert!(m("[\\]]", "]") && m("[\\-x]", "-"));
        assert!(!m("[]", "a") && !m("[]]", "]"), "`[]` is an empty class");
    }

    #[test]
    fn escapes_and_bytes() {
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("a\\?", "a?") && !m("a\\?", "ab"));
        assert!(m("a\\", "a\\"), "a trailing backslash is literal");
        assert!(matches(b"\xff*", b"\xff\x00\x01"));
        // Bytes >= 0x80 are negative as C chars: [a-\xff] means \xff..a.
        assert!(matches(b"[a-\xff]", b"\xff") && matches(b"[a-\xff]", b"0"));
        assert!(!matches(b"[a-\xff]", b"\x80") && !matches(b"[a-\xff]", b"b"));
    }

    #[test]
    fn abusive_patterns_stay_fast() {
        let pattern = "a*".repeat(30) + "b";
        let subject = "a".repeat(60);
        assert!(!m(&pattern, &subject));
        let deep = "*a".repeat(2000);
        assert!(!m(&deep, &"a".repeat(1999)));
    }
}
