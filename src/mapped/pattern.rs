//! Key patterns: `prefix{id}suffix`. A key matches when it starts with the
//! prefix, ends with the suffix and leaves a non-empty id between them.

use bytes::Bytes;

const PLACEHOLDER: &str = "{id}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    prefix: Bytes,
    suffix: Bytes,
}

impl Pattern {
    pub fn parse(pattern: &str) -> Result<Pattern, String> {
        let (prefix, suffix) = pattern
            .split_once(PLACEHOLDER)
            .ok_or_else(|| format!("pattern {pattern:?} has no {PLACEHOLDER}"))?;
        if suffix.contains(PLACEHOLDER) {
            return Err(format!(
                "pattern {pattern:?} has more than one {PLACEHOLDER}"
            ));
        }
        if prefix.is_empty() && suffix.is_empty() {
            return Err(format!(
                "pattern {pattern:?} would match every key: give it a prefix or suffix"
            ));
        }
        Ok(Pattern {
            prefix: Bytes::copy_from_slice(prefix.as_bytes()),
            suffix: Bytes::copy_from_slice(suffix.as_bytes()),
        })
    }

    /// The id part of `key`, if `key` matches.
    pub fn id<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        let rest = key.strip_prefix(&self.prefix[..])?;
        let id = rest.strip_suffix(&self.suffix[..])?;
        (!id.is_empty()).then_some(id)
    }

    /// The key that addresses the row with this id.
    pub fn key(&self, id: &[u8]) -> Bytes {
        let mut k = Vec::with_capacity(self.prefix.len() + id.len() + self.suffix.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(id);
        k.extend_from_slice(&self.suffix);
        k.into()
    }

    /// True when some key could match both patterns (checked
    /// conservatively: one prefix extends the other and one suffix the other).
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let prefixes =
            self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix);
        let suffixes = self.suffix.ends_with(&other.suffix) || other.suffix.ends_with(&self.suffix);
        prefixes && suffixes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_what_sits_between_prefix_and_suffix() {
        let p = Pattern::parse("user:{id}:profile").unwrap();
        assert_eq!(p.id(b"user:42:profile"), Some(&b"42"[..]));
        assert_eq!(p.id(b"user::profile"), None);
        assert_eq!(p.id(b"user:42"), None);
        assert_eq!(p.id(b"order:42:profile"), None);
        assert_eq!(&p.key(b"7")[..], b"user:7:profile");
    }

    #[test]
    fn malformed_patterns_are_refused() {
        assert!(Pattern::parse("user:").is_err());
        assert!(Pattern::parse("{id}").is_err());
        assert!(Pattern::parse("{id}:{id}").is_err());
    }

    #[test]
    fn overlap_is_detected() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("user:{id}").overlaps(&p("user:{id}")));
        assert!(p("user:{id}").overlaps(&p("user:x{id}")));
        assert!(p("{id}:a").overlaps(&p("{id}b:a")));
        assert!(!p("user:{id}").overlaps(&p("order:{id}")));
        assert!(!p("u{id}:a").overlaps(&p("u{id}:b")));
    }
}
