//! What PostgreSQL's catalog says about a namespace's table, read once at
//! start. Every check that can refuse a namespace happens here, so a
//! misconfigured namespace stops spillway before it accepts a client.

use sqlx::{PgPool, Row as _};

use super::config::{NamespaceConfig, split_table};
use super::value::Kind;

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// The type to cast a text parameter to, without its modifier, so that
    /// assigning it to the column checks the modifier (a too-long varchar is
    /// an error, not silently cut as an explicit cast would).
    pub cast: String,
    pub not_null: bool,
    pub has_default: bool,
    /// Generated or identity-always columns cannot be written.
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct Table {
    /// `"schema"."name"`, quoted, for SQL.
    pub sql_name: String,
    pub columns: Vec<Column>,
    /// Index of the key column in `columns`.
    pub key: usize,
}

impl Table {
    pub fn key_column(&self) -> &Column {
        &self.columns[self.key]
    }

    pub fn column(&self, name: &[u8]) -> Option<(usize, &Column)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name.as_bytes() == name)
    }
}

/// Double-quotes an identifier (doubling any quote inside).
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

const COLUMNS: &str = "\
SELECT a.attname::text AS name, t.typname::text AS typname, \
       format_type(a.atttypid, NULL) AS cast_to, a.attnotnull AS not_null, \
       (a.atthasdef OR a.attidentity <> '') AS has_default, \
       (a.attgenerated <> '' OR a.attidentity = 'a') AS read_only, \
       a.attnum::int4 AS attnum \
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
ORDER BY a.attnum";

/// True when one unique, non-partial, non-expression index (or primary key)
/// covers exactly the column: what `ON CONFLICT (key)` needs.
const UNIQUE_ON: &str = "\
SELECT EXISTS (SELECT 1 FROM pg_index i \
  WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indpred IS NULL \
    AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = $2)";

/// Reads and checks the namespace's table; `Err` names the namespace.
pub async fn load(pool: &PgPool, ns: &NamespaceConfig) -> Result<Table, String> {
    let at = |msg: String| format!("namespace {}: {msg}", ns.name);
    let (schema, name) = split_table(&ns.table).map_err(at)?;
    let sql_name = match schema {
        Some(s) => format!("{}.{}", quote(s), quote(name)),
        None => quote(name),
    };
    let kind: Option<String> =
        sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)")
            .bind(&sql_name)
            .fetch_optional(pool)
            .await
            .map_err(|e| at(format!("reading the catalog: {e}")))?;
    match kind.as_deref() {
        None => return Err(at(format!("table {} does not exist", ns.table))),
        Some("r" | "p") => {}
        Some(_) => return Err(at(format!("{} is not a table", ns.table))),
    }
    let rows = sqlx::query(COLUMNS)
        .bind(&sql_name)
        .fetch_all(pool)
        .await
        .map_err(|e| at(format!("reading the columns of {}: {e}", ns.table)))?;
    let mut columns = Vec::with_capacity(rows.len());
    let mut key = None;
    for row in &rows {
        let get = |e: sqlx::Error| at(format!("reading the catalog: {e}"));
        let name: String = row.try_get("name").map_err(get)?;
        let typname: String = row.try_get("typname").map_err(get)?;
        if name == ns.key_column {
            let attnum: i32 = row.try_get("attnum").map_err(get)?;
            // citext, char(n) and name compare equal across spellings, so
            // one row would have several keys (and cache entries).
            if matches!(typname.as_str(), "citext" | "bpchar" | "name") {
                return Err(at(format!(
                    "key_column {:?} is {typname}: keys must be integer, text, varchar or uuid",
                    ns.key_column
                )));
            }
            key = Some((columns.len(), attnum));
        }
        columns.push(Column {
            kind: Kind::from_typname(&typname),
            cast: row.try_get("cast_to").map_err(get)?,
            not_null: row.try_get("not_null").map_err(get)?,
            has_default: row.try_get("has_default").map_err(get)?,
            read_only: row.try_get("read_only").map_err(get)?,
            name,
        });
    }
    let Some((key, attnum)) = key else {
        return Err(at(format!(
            "table {} has no column {:?}",
            ns.table, ns.key_column
        )));
    };
    let unique: bool = sqlx::query_scalar(UNIQUE_ON)
        .bind(&sql_name)
        .bind(attnum as i16)
        .fetch_one(pool)
        .await
        .map_err(|e| at(format!("reading the indexes of {}: {e}", ns.table)))?;
    if !unique {
        return Err(at(format!(
            "key_column {:?} is not the primary key of {} nor has a unique index of its own",
            ns.key_column, ns.table
        )));
    }
    let table = Table {
        sql_name,
        columns,
        key,
    };
    if !table.key_column().kind.keyable() {
        return Err(at(format!(
            "key_column {:?}: keys must be integer, text or uuid columns",
            ns.key_column
        )));
    }
    Ok(table)
}
