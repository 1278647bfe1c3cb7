//! The Redis cache tier against a private redis-server: fill leases, the
//! stale-fill race across two spillway instances sharing one Redis, key
//! prefix isolation, binary keys, and riding out a Redis restart.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use spillway::cache::{self, Cache, CacheOptions, CacheTier, Lease};
use spillway::error::Error;
use spillway::keyspace::{Entry, Row, Value, Version, now_millis};
use support::{RedisServer, poll_until_async};

const LONG: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_millis(300);

fn opts(server: &RedisServer, prefix: &str) -> CacheOptions {
    CacheOptions {
        url: Some(server.url()),
        key_prefix: prefix.to_owned(),
        max_bytes: 1 << 20,
        timeout: TIMEOUT,
        lease_ttl: Duration::from_secs(10),
    }
}

async fn redis_cache(o: &CacheOptions) -> Cache {
    let c = cache::connect("redis", o).await.expect("connect");
    assert_eq!(c.name(), "redis");
    c
}

fn key(k: &[u8]) -> Bytes {
    Bytes::copy_from_slice(k)
}

fn row(value: &[u8], version: u64) -> Row {
    Row {
        entry: Some(Entry::new(Value::Str(key(value)))),
        version: Version(version),
    }
}

fn hash_row(version: u64) -> Row {
    let mut h = spillway::keyspace::Hash::new();
    h.insert(key(b"f\0"), key(b"\r\n"));
    h.insert(key(b"g"), Bytes::new());
    Row {
        entry: Some(Entry::new(Value::Hash(h))),
        version: Version(version),
    }
}

async fn get(c: &Cache, k: &Bytes) -> Option<Row> {
    let mut rows = c.get_many(std::slice::from_ref(k)).await.expect("get");
    rows.pop().expect("one row per key")
}

async fn lease(c: &Cache, k: &Bytes) -> Lease {
    c.lease(k)
        .await
        .expect("lease call")
        .expect("lease granted")
}

fn raw_get(server: &RedisServer, k: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(k)
        .query(&mut server.conn())
        .expect("GET")
}

#[tokio::test]
async fn miss_lease_fill_hit() {
    let server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let (a, b, h) = (key(b"a"), key(b"b"), key(b"h"));
    assert_eq!(
        c.get_many(&[a.clone(), b.clone()]).await.unwrap(),
        vec![None, None]
    );

    let l = lease(&c, &a).await;
    // Under a lease the key is still a miss, for everyone.
    assert_eq!(get(&c, &a).await, None);
    assert!(c.fill(&a, l, &row(b"1", 7), LONG).await.unwrap());
    let l = lease(&c, &b).await;
    assert!(c.fill(&b, l, &Row::absent(), LONG).await.unwrap());
    let l = lease(&c, &h).await;
    assert!(c.fill(&h, l, &hash_row(3), LONG).await.unwrap());

    let got = c
        .get_many(&[a.clone(), b.clone(), h.clone(), key(b"none")])
        .await;
    let want = vec![
        Some(row(b"1", 7)),
        Some(Row::absent()),
        Some(hash_row(3)),
        None,
    ];
    assert_eq!(got.unwrap(), want);
    assert!(
        raw_get(&server, b"sp:a").is_some(),
        "stored under the prefix"
    );
    assert!(raw_get(&server, b"a").is_none());
}

#[tokio::test]
async fn an_invalidation_defeats_a_fill_holding_an_older_read() {
    let server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let k = key(b"k");
    let l = lease(&c, &k).await;
    c.invalidate(std::slice::from_ref(&k)).await.unwrap();
    assert!(!c.fill(&k, l, &row(b"old", 1), LONG).await.unwrap());
    assert_eq!(get(&c, &k).await, None);

    let l = lease(&c, &k).await;
    assert!(c.fill(&k, l, &row(b"v", 2), LONG).await.unwrap());
    c.invalidate(&[k.clone(), key(b"other")]).await.unwrap();
    assert_eq!(get(&c, &k).await, None);
    c.invalidate(&[]).await.unwrap();
}

#[tokio::test]
async fn one_lease_per_key_and_a_lease_is_used_once() {
    let server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let k = key(b"k");
    let first = lease(&c, &k).await;
    assert_eq!(c.lease(&k).await.unwrap(), None);
    assert!(c.lease(&key(b"other")).await.unwrap().is_some());
    assert!(c.fill(&k, first, &row(b"v", 1), LONG).await.unwrap());
    c.invalidate(std::slice::from_ref(&k)).await.unwrap();
    assert!(!c.fill(&k, first, &row(b"v", 1), LONG).await.unwrap());
}

#[tokio::test]
async fn an_abandoned_lease_lapses() {
    let server = RedisServer::start();
    let mut o = opts(&server, "sp:");
    o.lease_ttl = Duration::from_millis(50);
    let c = redis_cache(&o).await;
    let k = key(b"k");
    let stale = lease(&c, &k).await;
    let next = std::cell::Cell::new(None);
    let lapsed = poll_until_async(Duration::from_secs(5), || async {
        next.set(c.lease(&k).await.unwrap());
        next.get().is_some()
    })
    .await;
    assert!(lapsed, "the lease never lapsed");
    assert!(!c.fill(&k, stale, &row(b"old", 1), LONG).await.unwrap());
    assert!(
        c.fill(&k, next.get().expect("second lease"), &row(b"new", 2), LONG)
            .await
            .unwrap()
    );
    assert_eq!(get(&c, &k).await, Some(row(b"new", 2)));
}

#[tokio::test]
async fn release_gives_back_only_its_own_lease() {
    let server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let k = key(b"k");
    let l = lease(&c, &k).await;
    c.release(&k, Lease(l.0 ^ 1)).await.unwrap();
    assert_eq!(
        c.lease(&k).await.unwrap(),
        None,
        "a foreign token released it"
    );
    c.release(&k, l).await.unwrap();
    assert!(!c.fill(&k, l, &row(b"v", 1), LONG).await.unwrap());
    let l = lease(&c, &k).await;
    assert!(c.fill(&k, l, &row(b"v", 1), LONG).await.unwrap());
    // Releasing after the fill must not delete the stored row.
    c.release(&k, l).await.unwrap();
    assert_eq!(get(&c, &k).await, Some(row(b"v", 1)));
}

#[tokio::test]
async fn entries_expire_and_nothing_left_to_live_is_not_stored() {
    let server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let (short, k) = (key(b"short"), key(b"k"));
    let l = lease(&c, &short).await;
    let ttl = Duration::from_millis(30);
    assert!(c.fill(&short, l, &row(b"s", 1), ttl).await.unwrap());
    let gone = poll_until_async(Duration::from_secs(5), || async {
        get(&c, &short).await.is_none()
    });
    assert!(gone.await, "the entry never expired");

    let l = lease(&c, &k).await;
    assert!(!c.fill(&k, l, &row(b"v", 1), Duration::ZERO).await.unwrap());
    let mut expired = row(b"v", 1);
    if let Some(e) = expired.entry.as_mut() {
        e.expire_at = Some(now_millis() - 1);
    }
    let l = c
        .lease(&k)
        .await
        .unwrap()
        .expect("the zero-ttl fill dropped its lease");
    assert!(!c.fill(&k, l, &expired, LONG).await.unwrap());
    assert!(
        raw_get(&server, b"sp:k").is_none(),
        "lease dropped, nothing stored"
    );

    let mut soon = row(b"v", 1);
    if let Some(e) = soon.entry.as_mut() {
        e.expire_at = Some(now_millis() + 60_000);
    }
    let l = lease(&c, &k).await;
    assert!(c.fill(&k, l, &soon, LONG).await.unwrap());
    let pttl: i64 = redis::cmd("PTTL")
        .arg(b"sp:k")
        .query(&mut server.conn())
        .unwrap();
    assert!(
        pttl > 0 && pttl <= 60_000,
        "ttl cut to the key's expiry: {pttl}"
    );
}

#[tokio::test]
async fn two_instances_share_leases_and_invalidations() {
    let server = RedisServer::start();
    let a = redis_cache(&opts(&server, "sp:")).await;
    let b = redis_cache(&opts(&server, "sp:")).await;
    let k = key(b"k");

    let la = lease(&a, &k).await;
    assert_eq!(b.lease(&k).await.unwrap(), None, "A's lease blocks B");
    // B writes and invalidates; A's fill from its older read must fail.
    b.invalidate(std::slice::from_ref(&k)).await.unwrap();
    assert!(!a.fill(&k, la, &row(b"old", 1), LONG).await.unwrap());
    assert_eq!(get(&b, &k).await, None);

    // A's spent lease cannot fill over B's, and B's fill is seen by A.
    let lb = lease(&b, &k).await;
    assert!(!a.fill(&k, la, &row(b"old", 1), LONG).await.unwrap());
    assert!(b.fill(&k, lb, &row(b"new", 2), LONG).await.unwrap());
    assert_eq!(get(&a, &k).await, Some(row(b"new", 2)));
}

#[tokio::test]
async fn a_flush_deletes_only_its_own_prefix() {
    let server = RedisServer::start();
    // Glob metacharacters in the prefix must match only themselves.
    let mine = redis_cache(&opts(&server, "sp[1]*?\\:")).await;
    let theirs = redis_cache(&opts(&server, "other:")).await;
    let mut conn = server.conn();
    for foreign in [&b"sp1zz\\:k"[..], b"sp[1]zz\\:k", b"unrelated"] {
        let () = redis::cmd("SET")
            .arg(foreign)
            .arg("x")
            .query(&mut conn)
            .unwrap();
    }
    let keys: Vec<Bytes> = (0..2_500)
        .map(|i| key(format!("k{i}").as_bytes()))
        .collect();
    for k in &keys {
        let l = lease(&mine, k).await;
        assert!(mine.fill(k, l, &row(b"v", 1), LONG).await.unwrap());
    }
    let pending = lease(&mine, &key(b"pending")).await;
    let l = lease(&theirs, &keys[0]).await;
    assert!(theirs.fill(&keys[0], l, &row(b"t", 1), LONG).await.unwrap());

    mine.flush().await.unwrap();

    let left = mine.get_many(&keys).await.unwrap();
    assert!(left.iter().all(Option::is_none), "own entries flushed");
    assert!(
        !mine
            .fill(&key(b"pending"), pending, &row(b"v", 1), LONG)
            .await
            .unwrap()
    );
    assert_eq!(get(&theirs, &keys[0]).await, Some(row(b"t", 1)));
    for foreign in [&b"sp1zz\\:k"[..], b"sp[1]zz\\:k", b"unrelated"] {
        assert!(raw_get(&server, foreign).is_some(), "{foreign:?} survived");
    }
    let size: i64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert_eq!(size, 4);
}

#[tokio::test]
async fn binary_keys_and_foreign_values() {
    let server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let keys = [
        key(b""),
        key(b"\0"),
        key(b"a\r\nb"),
        key(&[0xff, 0xfe, 0]),
        key(b"*?["),
    ];
    for (i, k) in keys.iter().enumerate() {
        let l = lease(&c, k).await;
        assert!(c.fill(k, l, &row(k, i as u64), LONG).await.unwrap());
    }
    let got = c.get_many(&keys).await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(got[i], Some(row(k, i as u64)), "key {k:?}");
        assert_eq!(get(&c, k).await, Some(row(k, i as u64)));
    }
    assert!(raw_get(&server, &[&b"sp:"[..], &[0xff, 0xfe, 0]].concat()).is_some());

    // Values spillway did not write read as misses, alone or in a batch.
    let mut conn = server.conn();
    let () = redis::cmd("SET")
        .arg("sp:junk")
        .arg("Sxx")
        .query(&mut conn)
        .unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg("sp:hash")
        .arg("f")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let (junk, hash) = (key(b"junk"), key(b"hash"));
    assert_eq!(get(&c, &junk).await, None);
    assert_eq!(get(&c, &hash).await, None);
    let got = c.get_many(&[junk, hash, keys[1].clone()]).await.unwrap();
    assert_eq!(got, vec![None, None, Some(row(&keys[1], 1))]);
}

/// Checks that `call` fails within the timeout with an error naming redis.
async fn fails_fast<T: std::fmt::Debug>(what: &str, call: impl Future<Output = Result<T, Error>>) {
    let started = Instant::now();
    let err = call.await.expect_err(what);
    let took = started.elapsed();
    assert!(
        took < TIMEOUT + Duration::from_millis(500),
        "{what} took {took:?}"
    );
    assert!(err.is_retryable(), "{what}: {err:?}");
    let text = err.to_string();
    assert!(text.starts_with("redis "), "{what}: {text}");
    assert!(!text.contains('\n'), "{what}: {text:?}");
}

#[tokio::test]
async fn rides_out_a_redis_restart() {
    let mut server = RedisServer::start();
    let c = redis_cache(&opts(&server, "sp:")).await;
    let k = key(b"k");
    c.ping().await.unwrap();
    let l = lease(&c, &k).await;
    assert!(c.fill(&k, l, &row(b"v", 1), LONG).await.unwrap());

    server.kill();
    fails_fast("get", c.get_many(std::slice::from_ref(&k))).await;
    fails_fast("mget", c.get_many(&[k.clone(), key(b"x")])).await;
    fails_fast("lease", c.lease(&k)).await;
    fails_fast("fill", c.fill(&k, l, &row(b"v", 1), LONG)).await;
    fails_fast("invalidate", c.invalidate(std::slice::from_ref(&k))).await;
    fails_fast("flush", c.flush()).await;
    fails_fast("ping", c.ping()).await;

    server.restart();
    let back = poll_until_async(Duration::from_secs(10), || async { c.ping().await.is_ok() });
    assert!(back.await, "never reconnected");
    assert_eq!(get(&c, &k).await, None, "the restarted Redis is empty");
    let l = lease(&c, &k).await;
    assert!(c.fill(&k, l, &row(b"v", 2), LONG).await.unwrap());
    assert_eq!(get(&c, &k).await, Some(row(b"v", 2)));
}

#[tokio::test]
async fn starts_while_redis_is_down() {
    let mut server = RedisServer::start();
    server.kill();
    let c = redis_cache(&opts(&server, "sp:")).await;
    fails_fast("ping", c.ping()).await;
    server.restart();
    let up = poll_until_async(Duration::from_secs(10), || async { c.ping().await.is_ok() });
    assert!(up.await, "never connected");
    let k = key(b"k");
    let l = lease(&c, &k).await;
    assert!(c.fill(&k, l, &row(b"v", 1), LONG).await.unwrap());
}

#[tokio::test]
async fn connect_rejects_bad_config() {
    let server = RedisServer::start();
    let mut o = opts(&server, "sp:");
    assert!(matches!(
        cache::connect("memcached", &o).await,
        Err(Error::Config(_))
    ));
    o.url = Some("notredis://x".into());
    assert!(matches!(
        cache::connect("redis", &o).await,
        Err(Error::Config(_))
    ));
    assert!(matches!(
        cache::connect("memory", &o).await,
        Ok(Cache::Memory(_))
    ));
}

#[tokio::test]
async fn a_silent_redis_times_out() {
    // Accepts connections (the kernel's backlog does) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let o = CacheOptions {
        url: Some(format!("redis://{}", silent.local_addr().unwrap())),
        key_prefix: "sp:".into(),
        max_bytes: 1 << 20,
        timeout: TIMEOUT,
        lease_ttl: Duration::from_secs(10),
    };
    let c = redis_cache(&o).await;
    let started = Instant::now();
    let err = c.get_many(&[key(b"k")]).await.expect_err("no answer");
    assert!(started.elapsed() < TIMEOUT + Duration::from_millis(500));
    assert!(
        matches!(
            err,
            Error::Timeout {
                backend: "redis",
                ..
            }
        ),
        "{err:?}"
    );
}

/// Instance A's readers fill from a "database" while instance B bumps it
/// and invalidates. Once B's invalidation of version v is done, no reader
/// may find an entry older than v.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_fills_across_instances_never_leave_an_older_version() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let server = RedisServer::start();
    let reader = Arc::new(redis_cache(&opts(&server, "sp:")).await);
    let writer = redis_cache(&opts(&server, "sp:")).await;
    let db = Arc::new(AtomicU64::new(0));
    let floor = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let k = key(b"k");
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (c, db, floor, done, k) = (
            reader.clone(),
            db.clone(),
            floor.clone(),
            done.clone(),
            k.clone(),
        );
        readers.push(tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                let least = floor.load(Ordering::Acquire);
                if let Some(hit) = get(&c, &k).await {
                    assert!(hit.version.0 >= least, "stale {:?} < {least}", hit.version);
                    continue;
                }
                let Some(l) = c.lease(&k).await.unwrap() else {
                    continue;
                };
                let read = db.load(Ordering::Acquire);
                tokio::task::yield_now().await;
                c.fill(&k, l, &row(b"v", read), LONG).await.unwrap();
            }
        }));
    }
    for _ in 0..500 {
        let v = db.fetch_add(1, Ordering::AcqRel) + 1;
        writer.invalidate(std::slice::from_ref(&k)).await.unwrap();
        floor.store(v, Ordering::Release);
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.await.expect("reader");
    }
}
