//! External writes (psql) drop cached rows through the triggers and
//! LISTEN; spillway's own writes are not echoed; a dropped listener never
//! lets a cached row outlive a missed notification; a DBA can install the
//! triggers from `spillway triggers --print`.

use std::time::Duration;

use redis::Connection;

use crate::support::{PgDatabase, Spillway, poll_until};
use crate::{SCHEMA, text};

/// The contract: a read sees another program's commit within a second.
const NOTICE_DEADLINE: Duration = Duration::from_secs(1);
/// How long a reconnected listener may take (backoff + flush).
const RECONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// `users` invalidates; `tags` does not, and shows that rows are cached.
fn config(install_trigger: bool, invalidate: bool) -> String {
    format!(
        r#"
[cache]
backend = "memory"
negative_ttl = "1h"
[[namespaces]]
name = "users"
pattern = "user:{{id}}"
table = "users"
key_column = "id"
invalidate = {invalidate}
install_trigger = {install_trigger}
[[namespaces]]
name = "tags"
pattern = "tag:{{id}}"
table = "tags"
key_column = "name"
"#
    )
}

fn start(pg: &PgDatabase) -> Spillway {
    let url = pg.url();
    Spillway::start_with_config(&config(true, true), &[("SPILLWAY__DATABASE__URL", &url)])
}

fn hget(c: &mut Connection, key: &str, field: &str) -> Option<String> {
    text(c, &["HGET", key, field])
}

/// One `field:value` line of INFO.
fn info_field(c: &mut Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("namespaces")
        .query(c)
        .expect("INFO namespaces");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("INFO has no {field}:\n{info}"))
        .to_string()
}

fn becomes(c: &mut Connection, key: &str, field: &str, want: Option<&str>, within: Duration) {
    let mut last = None;
    let seen = poll_until(within, || {
        last = hget(c, key, field);
        last.as_deref() == want
    });
    assert!(
        seen,
        "HGET {key} {field} should become {want:?} within {within:?}; still {last:?}"
    );
}

#[test]
fn external_writes_drop_cached_rows() {
    let pg = PgDatabase::create();
    pg.psql(SCHEMA);
    let sp = start(&pg);
    let mut c = sp.conn();
    assert_eq!(crate::int(&mut c, &["HSET", "user:1", "name", "Ann"]), 1);
    assert_eq!(crate::int(&mut c, &["HSET", "tag:x", "uses", "1"]), 1);
    // Cached now, and the absent user:2 negatively cached for an hour.
    assert_eq!(hget(&mut c, "user:1", "name").as_deref(), Some("Ann"));
    assert_eq!(hget(&mut c, "tag:x", "uses").as_deref(), Some("1"));
    assert_eq!(hget(&mut c, "user:2", "name"), None);

    pg.psql("UPDATE users SET name = 'Bob' WHERE id = 1; UPDATE tags SET uses = 5");
    becomes(&mut c, "user:1", "name", Some("Bob"), NOTICE_DEADLINE);
    assert_eq!(
        hget(&mut c, "tag:x", "uses").as_deref(),
        Some("1"),
        "a namespace without invalidate keeps serving its cached row"
    );
    pg.psql("INSERT INTO users (id, name) VALUES (2, 'Cy')");
    becomes(&mut c, "user:2", "name", Some("Cy"), NOTICE_DEADLINE);
    pg.psql("DELETE FROM users WHERE id = 1");
    becomes(&mut c, "user:1", "name", None, NOTICE_DEADLINE);

    // A statement over more rows than one notice lists drops them all.
    pg.psql("INSERT INTO users (id, name) SELECT g, 'n' || g FROM generate_series(10, 300) g");
    becomes(&mut c, "user:150", "name", Some("n150"), NOTICE_DEADLINE);
    pg.psql("UPDATE users SET name = name || '!' WHERE id >= 10");
    becomes(&mut c, "user:150", "name", Some("n150!"), NOTICE_DEADLINE);
    pg.psql("TRUNCATE users");
    becomes(&mut c, "user:150", "name", None, NOTICE_DEADLINE);
    assert_ne!(info_field(&mut c, "ns_notices"), "0");
    assert_eq!(info_field(&mut c, "ns_listener"), "up");
}

#[test]
fn own_writes_are_not_echoed_back() {
    let pg = PgDatabase::create();
    pg.psql(SCHEMA);
    let sp = start(&pg);
    let mut c = sp.conn();
    assert_eq!(crate::int(&mut c, &["HSET", "user:1", "name", "Ann"]), 1);
    assert_eq!(crate::int(&mut c, &["DEL", "user:1"]), 1);
    let skipped = poll_until(NOTICE_DEADLINE * 5, || {
        info_field(&mut c, "ns_own_notices_skipped") == "2"
    });
    assert!(
        skipped,
        "both writes' notices come back marked as ours: skipped {}, applied {}",
        info_field(&mut c, "ns_own_notices_skipped"),
        info_field(&mut c, "ns_notices")
    );
    assert_eq!(info_field(&mut c, "ns_notices"), "0");
}

#[test]
fn a_dropped_listener_never_leaves_a_stale_row() {
    let pg = PgDatabase::create();
    pg.psql(SCHEMA);
    let sp = start(&pg);
    let mut c = sp.conn();
    assert_eq!(crate::int(&mut c, &["HSET", "user:1", "name", "Ann"]), 1);
    assert_eq!(hget(&mut c, "user:1", "name").as_deref(), Some("Ann"));
    // Cut the listening connection and write while it is gone: the
    // notification of this UPDATE is lost.
    pg.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'; \
         UPDATE users SET name = 'Bob' WHERE id = 1",
    );
    becomes(&mut c, "user:1", "name", Some("Bob"), RECONNECT_DEADLINE);
    assert!(
        poll_until(RECONNECT_DEADLINE, || info_field(&mut c, "ns_listener")
            == "up"),
        "the listener reconnects"
    );
    assert_eq!(info_field(&mut c, "ns_listener_reconnects"), "1");
    // And notifications flow again.
    pg.psql("UPDATE users SET name = 'Cy' WHERE id = 1");
    becomes(&mut c, "user:1", "name", Some("Cy"), NOTICE_DEADLINE);
}

#[test]
fn missing_triggers_refuse_start_until_a_dba_installs_them() {
    let pg = PgDatabase::create();
    pg.psql(SCHEMA);
    let url = pg.url();
    let env = [("SPILLWAY__DATABASE__URL", url.as_str())];
    let mut sp = Spillway::start_with_config(&config(false, false), &env);
    let path = sp.dir().join("spillway.toml");
    std::fs::write(&path, config(false, true)).expect("write config");
    let (status, log) = sp.restart_expecting_failure();
    assert!(!status.success());
    assert!(
        log.contains("namespace users") && log.contains("spillway triggers --print"),
        "{log}"
    );

    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_spillway"))
        .arg("--config")
        .arg(&path)
        .args(["triggers", "--print"])
        .env("SPILLWAY__DATABASE__URL", &url)
        .output()
        .expect("run spillway triggers --print");
    assert!(printed.status.success(), "{printed:?}");
    let sql = String::from_utf8(printed.stdout).expect("SQL is UTF-8");
    assert!(sql.contains("CREATE TRIGGER"), "{sql}");
    pg.psql(&sql);

    sp.restart();
    let mut c = sp.conn();
    assert_eq!(crate::int(&mut c, &["HSET", "user:1", "name", "Ann"]), 1);
    assert_eq!(hget(&mut c, "user:1", "name").as_deref(), Some("Ann"));
    pg.psql("UPDATE users SET name = 'Bob' WHERE id = 1");
    becomes(&mut c, "user:1", "name", Some("Bob"), NOTICE_DEADLINE);
}
