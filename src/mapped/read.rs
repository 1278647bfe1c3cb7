//! Reading mapped rows for the cache-aside path: one statement per
//! namespace for all its keys, each row turned into a hash entry of its
//! non-NULL columns (text forms, table order).

use std::collections::HashMap;

use bytes::Bytes;
use sqlx::Row as _;

use super::Mapped;
use super::catalog::{Table, quote};
use crate::error::{Result, with_timeout};
use crate::keyspace::{Entry, Hash, Row, Value, Version};
use crate::store::errors;

const BACKEND: &str = "postgres";

impl Mapped {
    /// Rows of mapped keys, in the order given; a key with no row (or an id
    /// that cannot be a key) reads as absent.
    pub async fn rows(&self, keys: &[Bytes]) -> Result<Vec<Row>> {
        let mut out = vec![Row::absent(); keys.len()];
        let mut by_ns: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some((n, id)) = self.find_index(key)
                && self.namespaces[n]
                    .table
                    .key_column()
                    .kind
                    .check_key(id)
                    .is_ok()
            {
                by_ns.entry(n).or_default().push(i);
            }
        }
        for (n, idx) in by_ns {
            let ns = &self.namespaces[n];
            let ids: Vec<String> = idx
                .iter()
                .filter_map(|&i| self.find(&keys[i]))
                .map(|(_, id)| String::from_utf8_lossy(id).into_owned())
                .collect();
            let found = with_timeout(BACKEND, self.timeout, async {
                sqlx::query(sqlx::AssertSqlSafe(ns.select.clone()))
                    .bind(&ids)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(|e| errors::postgres(self.timeout, e))
            })
            .await?;
            for pg_row in found {
                let n: i64 = pg_row
                    .try_get(0)
                    .map_err(|e| errors::postgres(self.timeout, e))?;
                let Some(&i) = usize::try_from(n - 1).ok().and_then(|n| idx.get(n)) else {
                    continue;
                };
                let mut hash = Hash::with_capacity(ns.table.columns.len());
                for (c, col) in ns.table.columns.iter().enumerate() {
                    let v: Option<String> = pg_row
                        .try_get(c + 1)
                        .map_err(|e| errors::postgres(self.timeout, e))?;
                    if let Some(v) = v {
                        hash.insert(Bytes::from(col.name.clone()), Bytes::from(v));
                    }
                }
                out[i] = Row {
                    entry: Some(Entry::new(Value::Hash(hash))),
                    version: Version::ZERO,
                };
            }
        }
        Ok(out)
    }
}

/// `$1` holds the ids as text; each row comes back with the 1-based
/// position of its id, then every column as text.
pub(super) fn select(table: &Table) -> String {
    let key = table.key_column();
    let cols: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("t.{}::text", quote(&c.name)))
        .collect();
    format!(
        "SELECT k.n, {} FROM unnest($1::text[]) WITH ORDINALITY AS k(id, n) \
         JOIN {} t ON t.{} = k.id::{}",
        cols.join(", "),
        table.sql_name,
        quote(&key.name),
        key.cast
    )
}
