//! `tests/differential_divergences.txt`: the replies that may differ, and why.

/// `tests/differential_divergences.txt`: the replies that may differ, and why.
pub(crate) struct Divergences(Vec<Divergence>);

pub(crate) struct Divergence {
    pub(crate) line: usize,
    pub(crate) pattern: Vec<String>,
    /// Steps that matched the pattern.
    pub(crate) used: usize,
    /// Whether any of them got different replies.
    pub(crate) differed: bool,
}

impl Divergences {
    pub(crate) fn load() -> Divergences {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/differential_divergences.txt"
        );
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let mut list = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((pattern, reason)) = line.split_once(" -- ") else {
                panic!(
                    "{path}:{}: expected `PATTERN -- reason`, got {line:?}",
                    n + 1
                );
            };
            assert!(
                !reason.trim().is_empty(),
                "{path}:{}: a divergence needs a reason",
                n + 1
            );
            list.push(Divergence {
                line: n + 1,
                pattern: pattern
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect(),
                used: 0,
                differed: false,
            });
        }
        Divergences(list)
    }

    pub(crate) fn matching(&mut self, words: &[Vec<u8>]) -> Option<&mut Divergence> {
        self.0.iter_mut().find(|d| {
            let (fixed, open) = match d.pattern.split_last() {
                Some((last, fixed)) if last == "..." => (fixed, true),
                _ => (&d.pattern[..], false),
            };
            let len_ok = if open {
                words.len() >= fixed.len()
            } else {
                words.len() == fixed.len()
            };
            len_ok
                && fixed
                    .iter()
                    .zip(words)
                    .all(|(p, w)| p == "*" || p.as_bytes() == w.to_ascii_lowercase())
        })
    }

    /// Entries that no longer describe a difference.
    pub(crate) fn stale(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.0 {
            let pattern = d.pattern.join(" ");
            if d.used == 0 {
                out.push(format!(
                    "differential_divergences.txt:{}: `{pattern}` matches no step: remove it or add a case",
                    d.line
                ));
            } else if !d.differed {
                out.push(format!(
                    "differential_divergences.txt:{}: `{pattern}` got identical replies from both servers: it is no longer a divergence",
                    d.line
                ));
            }
        }
        out
    }
}
