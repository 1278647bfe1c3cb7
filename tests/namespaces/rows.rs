//! Every command on rows of integer, uuid and text keys; bad input refused.

use redis::Value;

use crate::{all, config, error, int, start, strings, text};

#[test]
fn hash_commands_read_and_write_rows() {
    let (pg, sp) = start();
    let mut c = sp.conn();
    assert_eq!(
        int(&mut c, &["HSET", "user:1", "name", "Ann", "age", "31"]),
        2
    );
    assert_eq!(
        pg.psql("SELECT id, name, age, score, active, email IS NULL FROM users"),
        "1|Ann|31|0.00|t|t",
        "HSET inserts the row; other columns take their defaults"
    );
    assert_eq!(
        strings(&mut c, &["HGETALL", "user:1"]),
        all(&[
            "id", "1", "name", "Ann", "age", "31", "score", "0.00", "active", "true"
        ])
    );
    assert_eq!(
        text(&mut c, &["HGET", "user:1", "name"]).as_deref(),
        Some("Ann")
    );
    assert_eq!(text(&mut c, &["HGET", "user:1", "email"]), None);
    assert_eq!(
        strings(&mut c, &["HMGET", "user:1", "age", "email", "nosuch"]),
        vec![Some("31".into()), None, None]
    );
    assert_eq!(int(&mut c, &["HEXISTS", "user:1", "email"]), 0);
    assert_eq!(int(&mut c, &["HEXISTS", "user:1", "age"]), 1);
    assert_eq!(int(&mut c, &["HLEN", "user:1"]), 5);
    assert_eq!(
        strings(&mut c, &["HKEYS", "user:1"]),
        all(&["id", "name", "age", "score", "active"])
    );
    assert_eq!(
        strings(&mut c, &["HVALS", "user:1"]),
        all(&["1", "Ann", "31", "0.00", "true"])
    );
    assert_eq!(int(&mut c, &["HSTRLEN", "user:1", "name"]), 3);
    assert_eq!(text(&mut c, &["TYPE", "user:1"]).as_deref(), Some("hash"));
    assert_eq!(int(&mut c, &["EXISTS", "user:1", "user:2"]), 1);
    assert_eq!(int(&mut c, &["TTL", "user:1"]), -1);

    // A field counts as new when its column was NULL; the row was cached
    // by the reads above and every write below must show through.
    assert_eq!(
        int(
            &mut c,
            &[
                "HSET", "user:1", "email", "a@x.io", "name", "Anne", "email", "b@x.io"
            ]
        ),
        1
    );
    assert_eq!(
        text(&mut c, &["HGET", "user:1", "email"]).as_deref(),
        Some("b@x.io")
    );
    assert_eq!(
        pg.psql("SELECT name, email FROM users WHERE id = 1"),
        "Anne|b@x.io"
    );
    assert_eq!(int(&mut c, &["HDEL", "user:1", "email", "born"]), 1);
    assert_eq!(int(&mut c, &["HDEL", "user:1", "email"]), 0);
    assert_eq!(pg.psql("SELECT email IS NULL FROM users WHERE id = 1"), "t");
    assert_eq!(int(&mut c, &["HINCRBY", "user:1", "age", "2"]), 33);
    assert_eq!(
        text(&mut c, &["HINCRBYFLOAT", "user:1", "score", "1.5"]).as_deref(),
        Some("1.50")
    );
    assert_eq!(
        text(&mut c, &["HINCRBYFLOAT", "user:1", "ratio", "0.25"]).as_deref(),
        Some("0.25"),
        "a NULL column counts from zero"
    );
    assert_eq!(
        pg.psql("SELECT age, score, ratio FROM users WHERE id = 1"),
        "33|1.50|0.25"
    );
    assert_eq!(
        int(
            &mut c,
            &[
                "HSET",
                "user:1",
                "born",
                "1990-05-01",
                "seen_at",
                "2024-05-01T12:30:00Z",
                "meta",
                r#"{"a": [1]}"#,
                "active",
                "no",
                "team_id",
                "1"
            ]
        ),
        4,
        "active was not NULL, so it is not a new field"
    );
    assert_eq!(
        pg.psql(
            "SELECT born, seen_at AT TIME ZONE 'UTC', meta, active, team_id FROM users WHERE id = 1"
        ),
        r#"1990-05-01|2024-05-01 12:30:00|{"a": [1]}|f|1"#
    );

    // GET renders the row as typed JSON; SET replaces it from one.
    let json: serde_json::Value =
        serde_json::from_str(&text(&mut c, &["GET", "user:1"]).expect("a row")).expect("JSON");
    assert_eq!(json["id"], 1);
    assert_eq!(json["name"], "Anne");
    assert_eq!(json["age"], 33);
    assert_eq!(json["active"], false);
    assert_eq!(json["email"], serde_json::Value::Null);
    assert_eq!(json["meta"]["a"][0], 1);
    assert!(
        json["seen_at"]
            .as_str()
            .is_some_and(|s| s.starts_with("2024-05-01"))
    );
    assert_eq!(
        text(
            &mut c,
            &[
                "SET",
                "user:1",
                r#"{"id": 1, "name": "Ann", "age": 40, "email": null}"#
            ]
        )
        .as_deref(),
        Some("OK")
    );
    assert_eq!(
        pg.psql("SELECT name, age, email IS NULL, score, active, born IS NULL, team_id IS NULL FROM users WHERE id = 1"),
        "Ann|40|t|0.00|t|t|t",
        "columns missing from the object go back to their defaults"
    );
    assert_eq!(
        text(&mut c, &["SET", "user:2", r#"{"name": "Bo"}"#]).as_deref(),
        Some("OK")
    );
    assert_eq!(
        pg.psql("SELECT name, active FROM users WHERE id = 2"),
        "Bo|t"
    );

    // DEL counts rows; mixing rows and plain keys in one command is
    // refused before anything is deleted.
    assert_eq!(text(&mut c, &["SET", "plain", "x"]).as_deref(), Some("OK"));
    assert!(error(&mut c, &["DEL", "user:1", "plain"]).contains("cannot mix"));
    assert_eq!(int(&mut c, &["EXISTS", "user:1", "plain"]), 2);
    assert_eq!(int(&mut c, &["DEL", "user:1", "user:2", "user:3"]), 2);
    assert_eq!(int(&mut c, &["DEL", "plain"]), 1);
    assert_eq!(pg.psql("SELECT count(*) FROM users"), "0");
    assert_eq!(text(&mut c, &["GET", "user:1"]), None);
    assert_eq!(
        strings(&mut c, &["HGETALL", "user:1"]),
        Vec::<Option<String>>::new()
    );
    assert_eq!(int(&mut c, &["EXISTS", "user:1", "plain"]), 0);
}

#[test]
fn uuid_and_text_keys() {
    let (pg, sp) = start();
    let mut c = sp.conn();
    let token = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let key = format!("session:{token}");
    assert_eq!(int(&mut c, &["HSET", &key, "user_id", "7", "data", "x"]), 2);
    assert_eq!(
        pg.psql("SELECT token, user_id, data FROM sessions"),
        format!("{token}|7|x")
    );
    assert_eq!(
        strings(&mut c, &["HGETALL", &key]),
        all(&["token", token, "user_id", "7", "data", "x"])
    );
    let upper = format!("session:{}", token.to_uppercase());
    assert!(error(&mut c, &["HGET", &upper, "data"]).contains("canonical"));
    assert_eq!(int(&mut c, &["HINCRBY", "tag:rust lang", "uses", "1"]), 1);
    assert_eq!(int(&mut c, &["HINCRBY", "tag:rust lang", "uses", "-3"]), -2);
    assert_eq!(pg.psql("SELECT name, uses FROM tags"), "rust lang|-2");
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let (pg, sp) = start();
    let mut c = sp.conn();
    assert_eq!(
        int(&mut c, &["HSET", "user:1", "name", "Ann", "age", "31"]),
        2
    );
    let before = pg.psql("SELECT * FROM users");
    let refused: &[(&[&str], &[&str])] = &[
        (
            &["HSET", "user:1", "nosuch", "1"],
            &["namespace users", "nosuch", "no such column"],
        ),
        (
            &["HSET", "user:1", "name", "B", "age", "abc"],
            &["column age", "not an integer"],
        ),
        (
            &["HSET", "user:1", "age", "99999"],
            &["column age", "out of range"],
        ),
        (&["HSET", "user:1", "id", "2"], &["column id", "key column"]),
        (
            &["HSET", "user:1", "born", "2023-02-30"],
            &["column born", "date"],
        ),
        (
            &["HSET", "user:1", "seen_at", "yesterday"],
            &["column seen_at", "timestamp"],
        ),
        (
            &["HSET", "user:1", "meta", "{bad"],
            &["column meta", "JSON"],
        ),
        (
            &["HSET", "user:1", "active", "maybe"],
            &["column active", "boolean"],
        ),
        (
            &["HSET", "user:1", "score", "1,5"],
            &["column score", "number"],
        ),
        (
            &[
                "HSET",
                "user:1",
                "email",
                "this-address-is-far-too-long@example.com",
            ],
            &["namespace users", "too long"],
        ),
        (
            &["HSET", "user:1", "team_id", "99"],
            &["namespace users", "foreign key"],
        ),
        (&["HDEL", "user:1", "name"], &["column name", "NOT NULL"]),
        (
            &["HSET", "user:x", "name", "A"],
            &["namespace users", "user:x", "id"],
        ),
        (&["HSET", "user:01", "name", "A"], &["canonical"]),
        (
            &["HSET", "user:5", "age", "3"],
            &["column name", "NOT NULL"],
        ),
        (
            &["HINCRBY", "user:1", "name", "1"],
            &["column name", "HINCRBY"],
        ),
        (&["HINCRBY", "user:1", "age", "x"], &["not an integer"]),
        (
            &["HINCRBY", "user:1", "age", "40000"],
            &["namespace users", "out of range"],
        ),
        (&["SET", "user:1", "not json"], &["namespace users", "JSON"]),
        (
            &["SET", "user:1", r#"{"age": 3}"#],
            &["column name", "NOT NULL"],
        ),
        (
            &["SET", "user:1", r#"{"id": 2, "name": "A"}"#],
            &["key column"],
        ),
        (
            &["SET", "user:1", r#"{"name": "A"}"#, "EX", "10"],
            &["SET options"],
        ),
        (
            &["SET", "user:1", r#"{"name": null}"#],
            &["column name", "NOT NULL"],
        ),
        (
            &["EXPIRE", "user:1", "10"],
            &["namespace users", "EXPIRE does not apply"],
        ),
        (&["INCR", "user:1"], &["INCR does not apply"]),
        (&["APPEND", "user:1", "x"], &["APPEND does not apply"]),
        (&["MSET", "a", "1", "user:1", "x"], &["MSET does not apply"]),
        (
            &["HSETNX", "user:1", "age", "1"],
            &["HSETNX does not apply"],
        ),
    ];
    for (args, wanted) in refused {
        let e = error(&mut c, args);
        for w in *wanted {
            assert!(e.contains(w), "{args:?}: error {e:?} should mention {w:?}");
        }
        assert_eq!(
            pg.psql("SELECT * FROM users"),
            before,
            "{args:?} wrote something"
        );
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM users"),
        "1",
        "no refused write created a row"
    );
    assert_eq!(
        int(&mut c, &["EXISTS", "a"]),
        0,
        "MSET wrote none of its keys"
    );
    // MULTI blocks of several commands cannot include mapped keys.
    let _: () = redis::cmd("MULTI").query(&mut c).expect("MULTI");
    let _: Value = redis::cmd("HSET")
        .arg("user:1")
        .arg("age")
        .arg("1")
        .query(&mut c)
        .expect("queued");
    let _: Value = redis::cmd("SET")
        .arg("plain")
        .arg("1")
        .query(&mut c)
        .expect("queued");
    assert!(error(&mut c, &["EXEC"]).contains("mapped keys"));
    assert_eq!(pg.psql("SELECT age FROM users WHERE id = 1"), "31");
    assert_eq!(int(&mut c, &["EXISTS", "plain"]), 0);
    // The proxy is unharmed.
    assert_eq!(int(&mut c, &["HSET", "user:1", "age", "32"]), 0);
    assert_eq!(pg.psql("SELECT age FROM users WHERE id = 1"), "32");
}

#[test]
fn catalog_problems_refuse_start() {
    let (_pg, mut sp) = start();
    let cases = [
        (
            "[[namespaces]]\nname = \"ghost\"\npattern = \"ghost:{id}\"\ntable = \"ghosts\"\nkey_column = \"id\"\n",
            "namespace ghost: table ghosts does not exist",
        ),
        (
            "[[namespaces]]\nname = \"loose\"\npattern = \"loose:{id}\"\ntable = \"loose\"\nkey_column = \"id\"\n",
            "namespace loose: key_column \"id\" is not the primary key",
        ),
        (
            "[[namespaces]]\nname = \"nokey\"\npattern = \"nokey:{id}\"\ntable = \"teams\"\nkey_column = \"uid\"\n",
            "namespace nokey: table teams has no column \"uid\"",
        ),
        (
            "[[namespaces]]\nname = \"overlap\"\npattern = \"user:admin:{id}\"\ntable = \"teams\"\nkey_column = \"id\"\n",
            "can match the same keys as namespace users",
        ),
    ];
    for (extra, wanted) in cases {
        std::fs::write(sp.dir().join("spillway.toml"), config(extra)).expect("write config");
        let (status, log) = sp.restart_expecting_failure();
        assert!(!status.success());
        assert!(log.contains(wanted), "expected {wanted:?} in:\n{log}");
    }
}
