//! A row as one JSON object: what `GET` returns for a mapped key and what
//! `SET` takes. Column types decide the JSON form, so a client reads back
//! numbers as numbers and booleans as booleans.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::value::RawValue;

use super::catalog::Table;
use super::value::{Kind, bool_value};
use crate::keyspace::Hash;

/// The row's columns in table order; a column absent from `hash` is NULL.
pub fn render(table: &Table, hash: &Hash) -> Bytes {
    let mut out = String::from("{");
    for (i, col) in table.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(&mut out, &col.name);
        out.push(':');
        let Some(v) = hash.get(col.name.as_bytes()) else {
            out.push_str("null");
            continue;
        };
        let text = String::from_utf8_lossy(v);
        let as_is = match col.kind {
            k if k.is_json_number() => serde_json::from_str::<serde_json::Number>(&text).is_ok(),
            Kind::Json => true,
            _ => false,
        };
        match (col.kind, bool_value(&text)) {
            (Kind::Bool, Some(b)) => out.push_str(if b { "true" } else { "false" }),
            _ if as_is => out.push_str(&text),
            _ => push_string(&mut out, &text),
        }
    }
    out.push('}');
    out.into()
}

fn push_string(out: &mut String, s: &str) {
    // Serialising a str cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// What `SET key '{…}'` writes: each named column's text (None = NULL).
pub type Columns = Vec<(usize, Option<String>)>;

/// Parses a JSON object into column values, refusing unknown columns,
/// values of the wrong shape, and a key column that contradicts the key.
pub fn parse(table: &Table, id: &[u8], json: &[u8]) -> Result<Columns, String> {
    let object: HashMap<String, Box<RawValue>> =
        serde_json::from_slice(json).map_err(|e| format!("value is not a JSON object: {e}"))?;
    let mut out = Vec::with_capacity(object.len());
    for (name, raw) in object {
        let (i, col) = table
            .column(name.as_bytes())
            .ok_or_else(|| format!("column {name:?}: no such column"))?;
        let raw = raw.get();
        let text = match raw.as_bytes().first() {
            Some(b'n') => None,
            Some(b'"') => Some(
                serde_json::from_str::<String>(raw).map_err(|e| format!("column {name:?}: {e}"))?,
            ),
            Some(b'{' | b'[') if col.kind == Kind::Json => Some(raw.to_owned()),
            Some(b'{' | b'[') => {
                return Err(format!("column {name:?}: expects a scalar, not {raw}"));
            }
            _ => Some(raw.to_owned()),
        };
        if i == table.key {
            if text.as_deref().map(str::as_bytes) != Some(id) {
                return Err(format!(
                    "column {name:?}: the key column must equal the key's id ({})",
                    String::from_utf8_lossy(id)
                ));
            }
            continue;
        }
        out.push((i, text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapped::catalog::Column;

    fn table() -> Table {
        let col = |name: &str, typ: &str| Column {
            name: name.into(),
            kind: Kind::from_typname(typ),
            cast: typ.into(),
            not_null: false,
            has_default: false,
            read_only: false,
        };
        Table {
            sql_name: "\"users\"".into(),
            columns: vec![
                col("id", "int4"),
                col("name", "text"),
                col("active", "bool"),
                col("score", "numeric"),
                col("meta", "jsonb"),
            ],
            key: 0,
        }
    }

    #[test]
    fn renders_typed_json_with_nulls() {
        let mut h = Hash::new();
        for (f, v) in [
            ("id", "7"),
            ("name", "A \"q\""),
            ("active", "true"),
            ("meta", "{\"a\": 1}"),
        ] {
            h.insert(Bytes::from(f), Bytes::from(v));
        }
        let json = render(&table(), &h);
        assert_eq!(
            &json[..],
            br#"{"id":7,"name":"A \"q\"","active":true,"score":null,"meta":{"a": 1}}"#
        );
    }

    #[test]
    fn parses_objects_into_columns() {
        let t = table();
        let mut cols = parse(
            &t,
            b"7",
            br#"{"id":7,"name":"Ann","score":1.50,"active":false,"meta":[1]}"#,
        )
        .unwrap();
        cols.sort();
        assert_eq!(
            cols,
            vec![
                (1, Some("Ann".into())),
                (2, Some("false".into())),
                (3, Some("1.50".into())),
                (4, Some("[1]".into()))
            ]
        );
        assert!(
            parse(&t, b"7", br#"{"id":8}"#)
                .unwrap_err()
                .contains("key column")
        );
        assert!(
            parse(&t, b"7", br#"{"nope":1}"#)
                .unwrap_err()
                .contains("no such column")
        );
        assert!(
            parse(&t, b"7", br#"{"name":{"a":1}}"#)
                .unwrap_err()
                .contains("scalar")
        );
        assert!(parse(&t, b"7", b"[1]").is_err());
        assert_eq!(
            parse(&t, b"7", br#"{"name":null}"#).unwrap(),
            vec![(1, None)]
        );
    }
}
