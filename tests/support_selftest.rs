//! Proves the test harness itself: private servers start, answer, die and
//! come back, ports do not collide, and the raw reply scanner frames RESP2
//! and RESP3 correctly. A harness bug would otherwise show up as a flaky
//! proxy test.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::{PgDatabase, Postgres, RawConn, RedisServer, free_port, poll_until, reply_len};

#[test]
fn ports_are_distinct_and_bindable() {
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let unique: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    for port in ports {
        std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} not bindable: {e}"));
    }
}

#[test]
fn redis_answers_dies_and_restarts_empty() {
    let mut redis = RedisServer::start();
    let mut conn = redis.conn();
    let pong: String = redis::cmd("PING").query(&mut conn).expect("PING");
    assert_eq!(pong, "PONG");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .expect("SET");

    redis.kill();
    assert!(!redis.is_running());
    assert!(
        redis::cmd("PING").query::<String>(&mut conn).is_err(),
        "a killed redis-server still answered"
    );

    redis.restart();
    let mut conn = redis.conn();
    let value: Option<String> = redis::cmd("GET").arg("k").query(&mut conn).expect("GET");
    assert_eq!(value, None, "the cache tier must persist nothing");
}

#[test]
fn redis_servers_run_side_by_side() {
    let a = RedisServer::start();
    let b = RedisServer::start_with(&["--maxmemory", "1mb"]);
    assert_ne!(a.port(), b.port());
    let maxmemory: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .query(&mut b.conn())
        .expect("CONFIG GET");
    assert_eq!(maxmemory, ["maxmemory", "1048576"]);
}

#[test]
fn raw_conn_reads_exactly_one_reply() {
    let redis = RedisServer::start();
    let mut raw = RawConn::connect(([127, 0, 0, 1], redis.port()).into());
    // Two pipelined commands arrive in one read; each call takes one reply.
    raw.send(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n");
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
    assert_eq!(raw.read_reply(), b"$-1\r\n");
    assert_eq!(raw.cmd(&["RPUSH", "l", "a", "bc"]), b":2\r\n");
    assert_eq!(
        raw.cmd(&["LRANGE", "l", "0", "-1"]),
        b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n"
    );
    let hello = raw.cmd(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "HELLO 3 gives a map: {hello:?}");
    assert_eq!(raw.cmd(&["GET", "missing"]), b"_\r\n");
    assert_eq!(raw.cmd(&["NOSUCHCOMMAND"])[0], b'-');
    raw.send(b"QUIT\r\n");
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    assert!(raw.is_closed_within(Duration::from_secs(5)));
}

#[test]
fn reply_scanner_frames_resp2_and_resp3() {
    let complete: &[&[u8]] = &[
        b"+OK\r\n",
        b"-ERR bad\r\n",
        b":-12\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"$5\r\na\r\nbc\r\n",
        b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
        b"_\r\n",
        b",3.5\r\n",
        b"#t\r\n",
        b"(12345678901234567890\r\n",
        b"!3\r\nerr\r\n",
        b"=7\r\ntxt:abc\r\n",
        b"%1\r\n+k\r\n+v\r\n",
        b"~2\r\n:1\r\n:2\r\n",
        b">2\r\n+message\r\n+x\r\n",
        b"|1\r\n+ttl\r\n:3\r\n+value\r\n",
    ];
    for &frame in complete {
        assert_eq!(reply_len(frame), Ok(Some(frame.len())), "{frame:?}");
        for cut in 0..frame.len() {
            assert_eq!(reply_len(&frame[..cut]), Ok(None), "{frame:?} cut at {cut}");
        }
        let mut two = frame.to_vec();
        two.extend_from_slice(b"+next\r\n");
        assert_eq!(
            reply_len(&two),
            Ok(Some(frame.len())),
            "{frame:?} then more"
        );
    }
    assert!(reply_len(b"?what\r\n").is_err());
    assert!(reply_len(b"$3\r\nabcd\r\n").is_err());
    assert!(reply_len(b"*x\r\n").is_err());
}

#[test]
fn private_postgres_stops_crashes_and_keeps_its_data() {
    let mut pg = Postgres::start();
    assert_eq!(pg.psql("SELECT 1"), "1");
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));
    assert!(pg.url().ends_with("/spillway"));
    pg.psql("CREATE TABLE t (k text PRIMARY KEY, v int); INSERT INTO t VALUES ('a', 1)");

    pg.stop();
    assert!(!pg.is_running());
    assert!(
        pg.try_psql("SELECT 1").is_err(),
        "a stopped cluster answered"
    );
    pg.start_again();
    assert_eq!(pg.psql("SELECT v FROM t WHERE k = 'a'"), "1");

    pg.psql("INSERT INTO t VALUES ('b', 2)");
    pg.kill();
    assert!(
        pg.try_psql("SELECT 1").is_err(),
        "a killed cluster answered"
    );
    pg.start_again();
    assert_eq!(pg.psql("SELECT k, v FROM t ORDER BY k"), "a|1\nb|2");
}

#[test]
fn shared_cluster_gives_each_test_its_own_database() {
    let a = PgDatabase::create();
    let b = PgDatabase::create();
    assert_eq!(a.port(), b.port(), "one cluster per test binary");
    assert_ne!(a.name(), b.name());
    a.psql("CREATE TABLE only_in_a (x int)");
    assert!(b.try_psql("SELECT * FROM only_in_a").is_err());
    assert_eq!(b.psql("SELECT current_database()"), b.name());

    let name = a.name().to_string();
    let port = a.port();
    drop(a);
    let exists = b.psql(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
    ));
    assert_eq!(
        exists, "0",
        "database {name} on port {port} outlived its handle"
    );
}

#[test]
fn shared_cluster_serves_parallel_tests() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let db = PgDatabase::create();
                db.psql(&format!("CREATE TABLE t AS SELECT {i} AS n"));
                assert_eq!(db.psql("SELECT n FROM t"), i.to_string());
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a parallel database user panicked");
    }
}

#[test]
fn poll_until_stops_at_the_deadline() {
    let start = std::time::Instant::now();
    assert!(!poll_until(Duration::from_millis(100), || false));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    let mut calls = 0;
    assert!(poll_until(Duration::from_secs(5), || {
        calls += 1;
        calls == 3
    }));
}
