//! The triggers that tell spillway when other programs write a mapped
//! table (`invalidate = true`). Per namespace: one PL/pgSQL function and
//! four statement-level triggers (INSERT, UPDATE, DELETE with transition
//! tables; TRUNCATE). A statement notifies channel `spillway_invalidate`
//! once, with the affected keys' ids, or with `"all": true` when it touched
//! more than `MAX_IDS` rows (or TRUNCATE) so a bulk statement never floods
//! the channel or overflows a notification's 8000-byte payload. The
//! transaction's `spillway.origin` setting travels along, so an instance
//! ignores the echo of its own writes.

use super::catalog::quote;
use super::config::{NamespaceConfig, split_table};

/// The channel every trigger notifies and spillway listens on.
pub const CHANNEL: &str = "spillway_invalidate";
/// Above this many affected rows one "all" notification replaces the ids.
pub const MAX_IDS: usize = 100;

const EVENTS: [(&str, &str, &str); 4] = [
    (
        "ins",
        "INSERT",
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "upd",
        "UPDATE",
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
    ),
    (
        "del",
        "DELETE",
        "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
    ),
    ("trunc", "TRUNCATE", "FOR EACH STATEMENT"),
];

/// `spillway_invalidate_<namespace>`, the function's name.
pub fn function_name(ns: &NamespaceConfig) -> String {
    format!("spillway_invalidate_{}", ns.name)
}

/// The trigger names, one per event.
pub fn trigger_names(ns: &NamespaceConfig) -> Vec<String> {
    EVENTS
        .iter()
        .map(|(suffix, _, _)| format!("spillway_invalidate_{}_{suffix}", ns.name))
        .collect()
}

fn table_sql(ns: &NamespaceConfig) -> String {
    match split_table(&ns.table) {
        Ok((Some(schema), name)) => format!("{}.{}", quote(schema), quote(name)),
        Ok((None, name)) => quote(name),
        // Validated at load; printing the raw name keeps this total.
        Err(_) => ns.table.clone(),
    }
}

/// The SQL that installs (or replaces) the namespace's function and
/// triggers; idempotent, one transaction.
pub fn install_sql(ns: &NamespaceConfig) -> String {
    let key = quote(&ns.key_column);
    let name = ns.name.replace('\'', "''");
    let function = quote(&function_name(ns));
    let table = table_sql(ns);
    let mut sql = format!(
        "BEGIN;
SET LOCAL client_min_messages = warning;
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $spillway$
DECLARE
  ids text[];
  payload text;
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    SELECT array_agg(DISTINCT k) INTO ids FROM (SELECT {key}::text AS k FROM new_rows LIMIT {limit}) s;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    ids := array_cat(ids, (SELECT array_agg(DISTINCT k) FROM (SELECT {key}::text AS k FROM old_rows LIMIT {limit}) s));
  END IF;
  IF TG_OP <> 'TRUNCATE' AND coalesce(cardinality(ids), 0) = 0 THEN
    RETURN NULL;
  END IF;
  payload := json_build_object('ns', '{name}', 'origin', current_setting('spillway.origin', true), 'ids', ids)::text;
  IF TG_OP = 'TRUNCATE' OR cardinality(ids) > {max} OR octet_length(payload) > 7900 THEN
    payload := json_build_object('ns', '{name}', 'origin', current_setting('spillway.origin', true), 'all', true)::text;
  END IF;
  PERFORM pg_notify('{CHANNEL}', payload);
  RETURN NULL;
END
$spillway$;
",
        limit = 2 * MAX_IDS + 1,
        max = MAX_IDS,
    );
    for ((_, event, spec), trigger) in EVENTS.iter().zip(trigger_names(ns)) {
        let trigger = quote(&trigger);
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {trigger} ON {table};\n\
             CREATE TRIGGER {trigger} AFTER {event} ON {table} {spec} EXECUTE FUNCTION {function}();\n"
        ));
    }
    sql.push_str("COMMIT;\n");
    sql
}

/// Checks, with the triggers not installed by spillway, that all of them
/// exist on the table and are enabled.
pub const CHECK_SQL: &str = "\
SELECT count(*) FROM pg_trigger \
WHERE tgrelid = to_regclass($1) AND tgname = ANY($2) AND tgenabled <> 'D'";

pub fn table_for_check(ns: &NamespaceConfig) -> String {
    table_sql(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_sql_names_the_namespace_table_and_key() {
        let ns = NamespaceConfig {
            name: "users".into(),
            pattern: "user:{id}".into(),
            table: "app.users".into(),
            key_column: "id".into(),
            policy: None,
            ttl: None,
            invalidate: true,
            install_trigger: true,
        };
        let sql = install_sql(&ns);
        assert!(sql.contains("CREATE OR REPLACE FUNCTION \"spillway_invalidate_users\"()"));
        assert!(sql.contains("AFTER UPDATE ON \"app\".\"users\" REFERENCING OLD TABLE"));
        assert!(sql.contains("SELECT \"id\"::text AS k FROM new_rows"));
        assert_eq!(sql.matches("CREATE TRIGGER").count(), 4);
        assert_eq!(trigger_names(&ns).len(), 4);
    }
}
