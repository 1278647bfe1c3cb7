//! `[[namespaces]]`: which keys address rows of which table. Checked here
//! for everything that needs no database; the catalog checks come at start.

use std::time::Duration;

use serde::Deserialize;

use super::pattern::Pattern;
use crate::config::Policy;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    /// Named in errors and logs.
    pub name: String,
    /// `prefix{id}suffix`: keys of this shape address rows.
    pub pattern: String,
    /// An existing table, `name` or `schema.name`.
    pub table: String,
    /// Its primary key (or a unique, non-partial index on it alone).
    pub key_column: String,
    /// Overrides `write.policy` for this namespace.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// Overrides `cache.ttl` for this namespace.
    #[serde(default, with = "humantime_serde")]
    pub ttl: Option<Duration>,
    /// Drop cached rows when other programs write the table.
    #[serde(default)]
    pub invalidate: bool,
    /// With `invalidate`: create the triggers (else only check they exist).
    #[serde(default = "yes")]
    pub install_trigger: bool,
}

/// Longest namespace name: `spillway_invalidate_<name>_trunc` must fit in
/// PostgreSQL's 63-byte identifiers.
const MAX_NAME: usize = 32;

fn yes() -> bool {
    true
}

/// Checks every namespace alone and against each other; `Err` is the
/// message, naming the namespace.
pub fn validate(
    namespaces: &[NamespaceConfig],
    policy: Policy,
    db_url: &str,
) -> Result<(), String> {
    if namespaces.is_empty() {
        return Ok(());
    }
    if db_url.starts_with("sqlite:") {
        return Err("namespaces map PostgreSQL tables: database.url must be postgres://".into());
    }
    let mut seen: Vec<(&str, Pattern)> = Vec::new();
    for ns in namespaces {
        let name = ns.name.as_str();
        // Trigger names embed it and PostgreSQL cuts names at 63 bytes.
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        {
            return Err(format!(
                "namespace {name:?}: name must be 1 to {MAX_NAME} letters, digits, '_' or '-'"
            ));
        }
        let at = |msg: String| format!("namespace {name}: {msg}");
        let pattern = Pattern::parse(&ns.pattern).map_err(at)?;
        split_table(&ns.table).map_err(at)?;
        if !is_identifier(&ns.key_column) {
            return Err(at(format!(
                "key_column {:?} is not a plain identifier",
                ns.key_column
            )));
        }
        if ns.policy.unwrap_or(policy) == Policy::WriteBehind {
            return Err(at(
                "write-behind is not supported for namespaces yet; set policy = \"write-through\""
                    .into(),
            ));
        }
        for (other, p) in &seen {
            if *other == name {
                return Err(at("defined twice".into()));
            }
            if pattern.overlaps(p) {
                return Err(at(format!(
                    "pattern {:?} can match the same keys as namespace {other}",
                    ns.pattern
                )));
            }
        }
        seen.push((name, pattern));
    }
    Ok(())
}

/// `table` or `schema.table`, each part a plain identifier.
pub fn split_table(table: &str) -> Result<(Option<&str>, &str), String> {
    let parts: Vec<&str> = table.split('.').collect();
    let ok = parts.iter().all(|p| is_identifier(p));
    match parts.as_slice() {
        [t] if ok => Ok((None, t)),
        [s, t] if ok => Ok((Some(s), t)),
        _ => Err(format!(
            "table {table:?} must be `name` or `schema.name` of plain identifiers"
        )),
    }
}

/// Letters, digits, `_` and `$`, not starting with a digit or `$`: names
/// that need no quoting rules beyond doubling (none can contain a quote).
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        && s.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str, pattern: &str) -> NamespaceConfig {
        NamespaceConfig {
            name: name.into(),
            pattern: pattern.into(),
            table: "public.users".into(),
            key_column: "id".into(),
            policy: None,
            ttl: None,
            invalidate: false,
            install_trigger: true,
        }
    }

    const PG: &str = "postgres://localhost/db";

    #[test]
    fn accepts_distinct_patterns() {
        let all = [ns("users", "user:{id}"), ns("orders", "order:{id}")];
        assert_eq!(validate(&all, Policy::WriteThrough, PG), Ok(()));
    }

    #[test]
    fn refuses_what_cannot_work() {
        let wt = Policy::WriteThrough;
        let overlap = [ns("a", "user:{id}"), ns("b", "user:admin:{id}")];
        assert!(
            validate(&overlap, wt, PG)
                .unwrap_err()
                .contains("same keys")
        );
        let twice = [ns("a", "a:{id}"), ns("a", "b:{id}")];
        assert!(validate(&twice, wt, PG).unwrap_err().contains("twice"));
        assert!(validate(&[ns("a", "a:{id}")], wt, "sqlite://x.db").is_err());
        assert!(validate(&[ns("a", "a:{id}")], Policy::WriteBehind, PG).is_err());
        let mut bad = ns("a", "a:{id}");
        bad.table = "users; drop table x".into();
        assert!(
            validate(&[bad], wt, PG)
                .unwrap_err()
                .contains("namespace a")
        );
        let mut bad = ns("a", "a:{id}");
        bad.key_column = "id\"".into();
        assert!(validate(&[bad], wt, PG).is_err());
        assert!(validate(&[ns("a b", "a:{id}")], wt, PG).is_err());
        assert!(validate(&[ns(&"n".repeat(33), "a:{id}")], wt, PG).is_err());
    }

    #[test]
    fn tables_split_into_schema_and_name() {
        assert_eq!(split_table("users"), Ok((None, "users")));
        assert_eq!(split_table("app.users"), Ok((Some("app"), "users")));
        assert!(split_table("a.b.c").is_err());
        assert!(split_table("1users").is_err());
    }
}
