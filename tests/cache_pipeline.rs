//! The pipelined connection of the Redis cache tier against a private
//! redis-server: replies reach the right callers under many concurrent
//! ones, a killed Redis fails its waiters (naming redis) and is reconnected
//! to, a stopped Redis makes calls time out instead of hanging, and error
//! replies come back as errors.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::IntoConnectionInfo;
use spillway::cache::pipeline::{Command, Pipeline, Target};
use spillway::cache::reply::Reply;
use spillway::cache::{self, CacheOptions, CacheTier};
use spillway::error::Error;
use support::{RedisServer, poll_until_async};

fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

fn pipeline(url: &str, prefix: &str, timeout: Duration) -> Pipeline {
    let info = url.into_connection_info().expect("redis URL");
    let target = Target::from_info(&info).expect("a plain TCP URL");
    Pipeline::spawn(target, b(prefix), timeout)
}

fn args(parts: &[&str]) -> Command {
    Command::Args(parts.iter().map(b).collect())
}

/// Asserts `err` is a retryable error naming redis, on one line.
fn names_redis(what: &str, err: &Error) {
    let text = err.to_string();
    assert!(err.is_retryable(), "{what}: {err:?}");
    assert!(text.starts_with("redis "), "{what}: {text}");
    assert!(!text.contains('\n'), "{what}: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replies_reach_the_right_callers_under_many_concurrent_ones() {
    let server = RedisServer::start();
    let mut conn = server.conn();
    const KEYS: usize = 500;
    let mut set = redis::cmd("MSET");
    for i in 0..KEYS {
        set.arg(format!("p:k{i}")).arg(format!("value-{i}"));
    }
    let () = set.query(&mut conn).expect("MSET");
    let p = std::sync::Arc::new(pipeline(&server.url(), "p:", Duration::from_secs(10)));

    let mut callers = Vec::new();
    for caller in 0..200usize {
        let p = p.clone();
        callers.push(tokio::spawn(async move {
            for round in 0..40usize {
                let (i, j) = ((caller * 7 + round * 13) % KEYS, (caller + round) % KEYS);
                let keys = vec![b(format!("k{i}")), b("missing"), b(format!("k{j}"))];
                let want = Reply::Array(vec![
                    Reply::Bulk(b(format!("value-{i}"))),
                    Reply::Nil,
                    Reply::Bulk(b(format!("value-{j}"))),
                ]);
                let frame = p.call(Command::Keys("MGET", keys)).await.expect("MGET");
                assert_eq!(Reply::parse(&frame).expect("RESP"), want);
                // Commands of other shapes in between, unprefixed.
                let tag = format!("{caller}/{round}");
                let echo = p.query(args(&["ECHO", &tag])).await.expect("ECHO");
                assert_eq!(echo, Reply::Bulk(b(&tag)));
            }
        }));
    }
    for caller in callers {
        caller.await.expect("caller panicked");
    }
}

#[tokio::test]
async fn a_killed_redis_fails_the_waiters_then_calls_succeed_again() {
    let mut server = RedisServer::start();
    let p = pipeline(&server.url(), "", Duration::from_secs(20));
    assert_eq!(
        p.query(args(&["PING"])).await.unwrap(),
        Reply::Simple(b("PONG"))
    );

    // A command that holds the connection, and others queued behind it.
    let blocked = p.call(args(&["BLPOP", "nothing", "30"]));
    let behind = p.call(args(&["ECHO", "behind"]));
    let started = Instant::now();
    let killer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.kill();
    };
    let (blocked, behind, ()) = tokio::join!(blocked, behind, killer);
    names_redis(
        "the blocked waiter",
        &blocked.expect_err("BLPOP on a killed Redis"),
    );
    names_redis(
        "the waiter behind it",
        &behind.expect_err("ECHO on a killed Redis"),
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the waiters learned of the kill only after {:?}",
        started.elapsed()
    );
    // While Redis is down, calls fail at once rather than wait.
    let down = p.query(args(&["PING"])).await.expect_err("PING while down");
    names_redis("a call while down", &down);

    server.restart();
    let back = poll_until_async(Duration::from_secs(10), || async {
        p.query(args(&["PING"])).await.is_ok()
    });
    assert!(back.await, "never reconnected");
    assert_eq!(
        p.query(args(&["ECHO", "x"])).await.unwrap(),
        Reply::Bulk(b("x"))
    );
}

#[tokio::test]
async fn a_stopped_redis_makes_calls_time_out_instead_of_hanging() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let p = pipeline(&server.url(), "", timeout);
    p.query(args(&["PING"])).await.expect("PING");

    server.pause();
    for attempt in 0..3 {
        let started = Instant::now();
        let call = p.query(args(&["PING"]));
        let result = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt} hung on a stopped Redis"));
        let err = result.expect_err("PING on a stopped Redis");
        names_redis("a call to a stopped Redis", &err);
        assert!(
            matches!(err, Error::Timeout { .. }),
            "attempt {attempt}: {err:?}"
        );
        assert!(started.elapsed() < timeout * 4, "{:?}", started.elapsed());
    }

    server.resume();
    let back = poll_until_async(Duration::from_secs(10), || async {
        p.query(args(&["PING"])).await.is_ok()
    });
    assert!(back.await, "calls kept failing after Redis continued");
}

#[tokio::test]
async fn error_replies_surface_as_errors() {
    let server = RedisServer::start();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("sesame")
        .query(&mut server.conn())
        .expect("CONFIG SET requirepass");
    let port = server.port();
    let p = pipeline(
        &format!("redis://:sesame@127.0.0.1:{port}"),
        "",
        Duration::from_secs(5),
    );
    p.query(args(&["SET", "s", "abc"])).await.expect("SET");
    let err = p
        .query(args(&["INCR", "s"]))
        .await
        .expect_err("INCR of a string");
    assert!(err.to_string().contains("not an integer"), "{err}");
    names_redis("an error reply", &err);
    // The raw reply is the error line; the connection goes on.
    let raw = p.call(args(&["INCR", "s"])).await.expect("call");
    assert!(raw.starts_with(b"-ERR"), "{raw:?}");
    assert_eq!(
        p.query(args(&["GET", "s"])).await.unwrap(),
        Reply::Bulk(b("abc"))
    );

    // The cache tier without the password: its reads fail, naming the
    // reason Redis gave, rather than reading as misses.
    let tier = cache::connect(
        "redis",
        &CacheOptions {
            url: Some(format!("redis://127.0.0.1:{port}")),
            key_prefix: "sp:".into(),
            max_bytes: 1 << 20,
            timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(5),
        },
    )
    .await
    .expect("connect");
    let err = tier
        .get_many(&[b("k")])
        .await
        .expect_err("read without AUTH");
    names_redis("a read without AUTH", &err);
    assert!(err.to_string().contains("NOAUTH"), "{err}");
}
