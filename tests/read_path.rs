//! The cache-aside read path against a real PostgreSQL: single-flight,
//! batched misses, negative caching, and CONTRACT invariant 5.
//!
//! Invariant 5: a cache fill racing a write never leaves the cache
//! holding an older value than the database, even when the newer entry was
//! evicted in between (so there is nothing left to compare versions with).
//!
//! The interleaving is forced, not hoped for: the reader's database read runs
//! against the real PostgreSQL, then waits at a gate until the write has
//! committed, a second reader has filled the new value, and that entry has
//! been evicted. Only then may the first reader try its (stale) fill.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use spillway::cache::aside::{AsideOptions, CacheAside};
use spillway::cache::{self, Cache, CacheOptions, CacheTier};
use spillway::error::Result;
use spillway::health::CacheHealth;
use spillway::keyspace::{Hlc, Row, Value};
use spillway::stats::Stats;
use spillway::store::{self, BoxFuture, RowSource, Store, StoreOptions};
use spillway::write::Call;
use spillway::write::through::WriteThrough;
use support::{PgDatabase, RedisServer};
use tokio::sync::Notify;

/// The real store, with a gate the next `get` waits at after reading.
struct Gated {
    inner: Arc<dyn Store>,
    armed: AtomicBool,
    reached: Notify,
    release: Notify,
}

impl RowSource for Gated {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn get<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let rows = self.inner.get(keys).await;
            if self.armed.swap(false, Ordering::SeqCst) {
                self.reached.notify_one();
                self.release.notified().await;
            }
            rows
        })
    }
}

/// One spillway instance's read path and write path.
struct Instance {
    aside: Arc<CacheAside<Cache>>,
    writer: WriteThrough<Cache>,
    stats: Arc<Stats>,
}

fn instance(cache: Cache, reads: Arc<dyn RowSource>, writes: Arc<dyn Store>) -> Instance {
    let stats = Arc::new(Stats::default());
    let aside = Arc::new(CacheAside::new(
        cache,
        reads,
        Arc::new(CacheHealth::default()),
        stats.clone(),
        AsideOptions {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(60),
            cache_timeout: Duration::from_secs(2),
            db_timeout: Duration::from_secs(5),
        },
    ));
    let writer = WriteThrough::new(
        writes,
        aside.clone(),
        Arc::new(Hlc::new()),
        stats.clone(),
        Duration::from_secs(5),
    );
    Instance {
        aside,
        writer,
        stats,
    }
}

fn cache_opts(url: Option<String>) -> CacheOptions {
    CacheOptions {
        url,
        key_prefix: "sf:".into(),
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(2),
        lease_ttl: Duration::from_secs(30),
    }
}

async fn set(inst: &Instance, key: &str, value: &str) {
    let call = Call {
        spec: spillway::cmd::lookup(b"set").expect("SET is in the table"),
        argv: vec![
            Bytes::from("set"),
            Bytes::from(key.to_string()),
            Bytes::from(value.to_string()),
        ],
    };
    let replies = inst
        .writer
        .execute(&[call], &[])
        .await
        .expect("write commits");
    assert_eq!(replies.map(|r| r.len()), Some(1));
}

async fn read(inst: &Instance, key: &Bytes) -> Option<Bytes> {
    let ws = inst
        .aside
        .read(&[key], spillway::keyspace::now_millis())
        .await
        .expect("read");
    ws.get(key).map(|e| match &e.value {
        Value::Str(s) => s.clone(),
        Value::Hash(_) => panic!("not a string"),
    })
}

async fn cached(cache: &Cache, key: &Bytes) -> Option<Row> {
    cache
        .get_many(std::slice::from_ref(key))
        .await
        .expect("cache read")
        .pop()
        .flatten()
}

/// Runs the race: `reader` fills through the gate while `other` writes,
/// refills and has its entry evicted. `initial` None = the key starts absent
/// (a negative fill races the write).
async fn race(reader: Arc<Instance>, gate: Arc<Gated>, other: &Instance, initial: Option<&str>) {
    let key = Bytes::from_static(b"k");
    if let Some(v) = initial {
        set(other, "k", v).await;
    }
    other
        .aside
        .cache()
        .invalidate(std::slice::from_ref(&key))
        .await
        .unwrap();
    gate.armed.store(true, Ordering::SeqCst);
    let r = reader.clone();
    let k = key.clone();
    let first = tokio::spawn(async move { read(&r, &k).await });
    gate.reached.notified().await; // the reader has read the old row
    set(other, "k", "new").await;
    assert_eq!(read(other, &key).await.as_deref(), Some(&b"new"[..]));
    other
        .aside
        .cache()
        .invalidate(std::slice::from_ref(&key))
        .await
        .unwrap(); // eviction
    gate.release.notify_one();
    let seen = first.await.unwrap();
    assert_eq!(
        seen.as_deref(),
        initial.map(str::as_bytes),
        "the reader answers what it read"
    );
    assert_eq!(
        Stats::get(&reader.stats.cache_fills_refused),
        1,
        "the stale fill was refused"
    );
    match cached(reader.aside.cache(), &key).await {
        None => {}
        Some(row) => panic!("stale fill stored: {row:?}"),
    }
    assert_eq!(read(&reader, &key).await.as_deref(), Some(&b"new"[..]));
    assert_eq!(read(other, &key).await.as_deref(), Some(&b"new"[..]));
}

async fn pg_store(pg: &PgDatabase) -> Arc<dyn Store> {
    store::connect(&StoreOptions {
        url: pg.url(),
        pool_size: 4,
        timeout: Duration::from_secs(5),
        acquire_timeout: Duration::from_secs(5),
    })
    .await
    .expect("connect to the private postgres")
}

fn gate(inner: Arc<dyn Store>) -> Arc<Gated> {
    Arc::new(Gated {
        inner,
        armed: AtomicBool::new(false),
        reached: Notify::new(),
        release: Notify::new(),
    })
}

#[tokio::test]
async fn two_instances_sharing_redis_never_store_a_stale_fill() {
    for initial in [Some("old"), None] {
        let redis = RedisServer::start();
        let pg = PgDatabase::create();
        let real = pg_store(&pg).await;
        let gated = gate(real.clone());
        let a_cache = cache::connect("redis", &cache_opts(Some(redis.url())))
            .await
            .unwrap();
        let b_cache = cache::connect("redis", &cache_opts(Some(redis.url())))
            .await
            .unwrap();
        let a = Arc::new(instance(a_cache, gated.clone(), real.clone()));
        let b = instance(b_cache, real.clone(), real);
        race(a, gated, &b, initial).await;
    }
}

#[tokio::test]
async fn one_instance_with_the_memory_tier_never_stores_a_stale_fill() {
    for initial in [Some("old"), None] {
        let pg = PgDatabase::create();
        let real = pg_store(&pg).await;
        let gated = gate(real.clone());
        let tier = cache::connect("memory", &cache_opts(None)).await.unwrap();
        // One process: reader and writer share the tier through one read path.
        let shared = Arc::new(instance(tier, gated.clone(), real));
        race(shared.clone(), gated, &shared, initial).await;
    }
}

#[tokio::test]
async fn concurrent_misses_share_one_batched_database_read() {
    let pg = PgDatabase::create();
    let real = pg_store(&pg).await;
    let gated = gate(real.clone());
    let tier = cache::connect("memory", &cache_opts(None)).await.unwrap();
    let inst = Arc::new(instance(tier, gated.clone(), real));
    for i in 0..10 {
        set(&inst, &format!("m{i}"), "v").await;
    }
    inst.aside.cache().flush().await.unwrap();
    let db_reads = || Stats::get(&inst.stats.db_reads);
    let before = db_reads();

    // One reader leads the read of k and is held at the gate ...
    gated.armed.store(true, Ordering::SeqCst);
    let key = Bytes::from_static(b"m0");
    let leader = {
        let (inst, key) = (inst.clone(), key.clone());
        tokio::spawn(async move { read(&inst, &key).await })
    };
    gated.reached.notified().await;
    // ... while twenty more readers of k arrive: they must join, not read.
    let followers: Vec<_> = (0..20)
        .map(|_| {
            let (inst, key) = (inst.clone(), key.clone());
            tokio::spawn(async move { read(&inst, &key).await })
        })
        .collect();
    let joined = support::poll_until_async(Duration::from_secs(10), || async {
        tokio::task::yield_now().await;
        followers.iter().all(|f| !f.is_finished()) && db_reads() == before + 1
    })
    .await;
    assert!(joined);
    gated.release.notify_one();
    assert_eq!(leader.await.unwrap().as_deref(), Some(&b"v"[..]));
    for f in followers {
        assert_eq!(f.await.unwrap().as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(
        db_reads(),
        before + 1,
        "one database read for 21 concurrent misses"
    );

    // An MGET-sized miss of nine cold keys is one batched read.
    let keys: Vec<Bytes> = (1..10).map(|i| Bytes::from(format!("m{i}"))).collect();
    let refs: Vec<&Bytes> = keys.iter().collect();
    let ws = inst
        .aside
        .read(&refs, spillway::keyspace::now_millis())
        .await
        .unwrap();
    assert!(keys.iter().all(|k| ws.get(k).is_some()));
    assert_eq!(db_reads(), before + 2);

    // Absent keys are remembered (negative entries): a flood stays in the cache.
    let absent = Bytes::from_static(b"no-such-key");
    for _ in 0..50 {
        assert_eq!(read(&inst, &absent).await, None);
    }
    assert_eq!(
        db_reads(),
        before + 3,
        "only the first miss of an absent key reads the database"
    );
}
