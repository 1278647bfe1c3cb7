//! Mapped namespaces in front of real tables in a private PostgreSQL: every
//! command checked against what psql sees, bad input refused with nothing
//! written, catalog problems refusing start, and external writes (psql)
//! invalidating cached rows through the triggers.

mod invalidation;
mod rows;

#[path = "../support/mod.rs"]
mod support;

use redis::{Connection, Value};
use support::{PgDatabase, Spillway};

pub const SCHEMA: &str = "
CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO teams VALUES (1, 'core');
CREATE TABLE users (
  id integer PRIMARY KEY,
  name text NOT NULL,
  email varchar(20),
  age smallint,
  score numeric(10,2) DEFAULT 0,
  ratio double precision,
  active boolean NOT NULL DEFAULT true,
  born date,
  seen_at timestamptz,
  meta jsonb,
  team_id int REFERENCES teams(id)
);
CREATE TABLE sessions (token uuid PRIMARY KEY, user_id int, data text);
CREATE TABLE tags (name text PRIMARY KEY, uses bigint NOT NULL DEFAULT 0);
CREATE TABLE loose (id int, v text);
";

pub fn config(extra: &str) -> String {
    format!(
        r#"
[cache]
backend = "memory"
[[namespaces]]
name = "users"
pattern = "user:{{id}}"
table = "public.users"
key_column = "id"
ttl = "5m"
[[namespaces]]
name = "sessions"
pattern = "session:{{id}}"
table = "sessions"
key_column = "token"
[[namespaces]]
name = "tags"
pattern = "tag:{{id}}"
table = "tags"
key_column = "name"
{extra}
"#
    )
}

pub fn start() -> (PgDatabase, Spillway) {
    let pg = PgDatabase::create();
    pg.psql(SCHEMA);
    let url = pg.url();
    let sp = Spillway::start_with_config(&config(""), &[("SPILLWAY__DATABASE__URL", &url)]);
    (pg, sp)
}

pub fn cmd(c: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

pub fn int(c: &mut Connection, args: &[&str]) -> i64 {
    match cmd(c, args) {
        Value::Int(n) => n,
        other => panic!("{args:?}: expected an integer, got {other:?}"),
    }
}

pub fn text(c: &mut Connection, args: &[&str]) -> Option<String> {
    match cmd(c, args) {
        Value::BulkString(b) => Some(String::from_utf8(b).expect("utf-8 reply")),
        Value::Nil => None,
        Value::Okay => Some("OK".into()),
        Value::SimpleString(s) => Some(s),
        other => panic!("{args:?}: expected a bulk string, got {other:?}"),
    }
}

pub fn strings(c: &mut Connection, args: &[&str]) -> Vec<Option<String>> {
    match cmd(c, args) {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => Some(String::from_utf8(b).expect("utf-8")),
                Value::Nil => None,
                other => panic!("{args:?}: unexpected element {other:?}"),
            })
            .collect(),
        other => panic!("{args:?}: expected an array, got {other:?}"),
    }
}

/// The error text of a command that must fail.
pub fn error(c: &mut Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(c) {
        Ok(v) => panic!("{args:?} succeeded with {v:?}, expected an error"),
        Err(e) => e.to_string(),
    }
}

pub fn all(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}
