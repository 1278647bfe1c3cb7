//! The system of record against real databases: SQLite on a temporary file,
//! PostgreSQL in private clusters. Each behaviour is one async body run
//! against both backends (`both!` below); fault tests that stop the server
//! are PostgreSQL's own.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spillway::error::Error;
use spillway::keyspace::{Entry, Hash, Row, Value, Version};
use spillway::store::{self, Store, StoreOptions, Whole};
use tokio::sync::oneshot;

use support::{PgDatabase, Postgres, poll_until_async};

const NOW: i64 = 1_700_000_000_000;

fn opts(url: &str, timeout: Duration) -> StoreOptions {
    StoreOptions {
        url: url.to_string(),
        pool_size: 4,
        timeout,
        acquire_timeout: Duration::from_secs(2),
    }
}

async fn connect(url: &str) -> Arc<dyn Store> {
    store::connect(&opts(url, Duration::from_secs(5)))
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"))
}

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn string(value: &[u8], expire_at: Option<i64>, version: u64) -> Row {
    Row {
        entry: Some(Entry {
            value: Value::Str(b(value)),
            expire_at,
        }),
        version: Version(version),
    }
}

fn hash(fields: &[(&str, &str)], version: u64) -> Row {
    let h: Hash = fields
        .iter()
        .map(|(f, v)| (b(f.as_bytes()), b(v.as_bytes())))
        .collect();
    Row {
        entry: Some(Entry::new(Value::Hash(h))),
        version: Version(version),
    }
}

fn tombstone(version: u64) -> Row {
    Row {
        entry: None,
        version: Version(version),
    }
}

/// Writes `rows` in one locked transaction.
async fn put(store: &dyn Store, rows: &[(Bytes, Row)]) {
    let keys: Vec<Bytes> = rows.iter().map(|(k, _)| k.clone()).collect();
    let (mut txn, _) = store.begin(&keys).await.expect("begin");
    txn.put(rows).await.expect("put");
    txn.commit().await.expect("commit");
}

/// Every key of a full SCAN with its type, failing on a key seen twice.
async fn scan_all(store: &dyn Store, count: usize) -> HashMap<Bytes, &'static str> {
    let mut seen = HashMap::new();
    let mut cursor = 0;
    for _ in 0..10_000 {
        let page = store.scan(cursor, count, NOW).await.expect("scan");
        for (key, kind) in page.keys {
            assert!(seen.insert(key.clone(), kind).is_none(), "{key:?} twice");
        }
        cursor = page.cursor;
        if cursor == 0 {
            return seen;
        }
    }
    panic!("scan did not finish");
}

/// Runs SQL beside the store (to forge rows the store would never write).
async fn raw_sql(url: &str, sql: &'static str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("raw connect");
        sqlx::query(sql).execute(&pool).await.expect("raw sql");
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.expect("raw connect");
        sqlx::query(sql).execute(&pool).await.expect("raw sql");
        pool.close().await;
    }
}

/// Waits (up to a deadline) until some PostgreSQL session waits for a lock:
/// proof that a concurrent call is blocked rather than not yet started.
async fn lock_waiters(url: &str) -> bool {
    let Ok(pool) = sqlx::PgPool::connect(url).await else {
        return false;
    };
    let seen = poll_until_async(Duration::from_secs(5), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_locks WHERE NOT granted")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n > 0)
    })
    .await;
    pool.close().await;
    seen
}

async fn round_trip(store: Arc<dyn Store>, _url: String) {
    let binary_key = b(b"\0\xff\r\nkey");
    let rows = vec![
        (b(b"plain"), string(b"value", None, 10)),
        (
            binary_key.clone(),
            string(b"\0\x01\xfe\xff", Some(NOW + 5_000), 11),
        ),
        (b(b"empty"), string(b"", None, 12)),
        (b(b"h"), hash(&[("z", "1"), ("a", "\0"), ("m", "")], 13)),
    ];
    put(&*store, &rows).await;
    let keys = [
        b(b"h"),
        b(b"missing"),
        binary_key.clone(),
        b(b"plain"),
        b(b"h"),
    ];
    let got = store.get(&keys).await.expect("get");
    assert_eq!(
        got,
        vec![
            rows[3].1.clone(),
            Row::absent(),
            rows[1].1.clone(),
            rows[0].1.clone(),
            rows[3].1.clone(),
        ]
    );
    let Some(Entry {
        value: Value::Hash(h),
        ..
    }) = &got[0].entry
    else {
        panic!("not a hash: {:?}", got[0]);
    };
    let fields: Vec<&[u8]> = h.keys().map(|f| f.as_ref()).collect();
    assert_eq!(fields, [&b"z"[..], b"a", b"m"], "field order kept");
    assert_eq!(store.get(&[]).await.expect("empty get"), vec![]);
}

async fn large_batches_round_trip(store: Arc<dyn Store>, _url: String) {
    // More rows than one SQLite statement takes (chunks of 1000 rows written,
    // 500 keys read), with a key repeated across chunk boundaries.
    let mut rows: Vec<(Bytes, Row)> = (0..2_345u32)
        .map(|i| {
            (
                b(format!("k{i}").as_bytes()),
                string(&i.to_be_bytes(), None, 10),
            )
        })
        .collect();
    rows.push((b(b"k0"), string(b"last", None, 11)));
    put(&*store, &rows).await;
    let keys: Vec<Bytes> = rows.iter().map(|(k, _)| k.clone()).collect();
    let got = store.get(&keys).await.expect("get");
    assert_eq!(got.len(), keys.len());
    assert_eq!(got[0], string(b"last", None, 11));
    assert_eq!(got[1_234], rows[1_234].1);
    assert_eq!(got[2_344], rows[2_344].1);
    assert_eq!(store.count(NOW).await.expect("count").keys, 2_345);
}

async fn version_guard_and_tombstones(store: Arc<dyn Store>, _url: String) {
    let k = b(b"k");
    put(&*store, &[(k.clone(), string(b"new", None, 100))]).await;
    put(&*store, &[(k.clone(), string(b"old", None, 50))]).await;
    assert_eq!(
        store.get(std::slice::from_ref(&k)).await.unwrap()[0],
        string(b"new", None, 100)
    );

    put(&*store, &[(k.clone(), tombstone(200))]).await;
    put(&*store, &[(k.clone(), string(b"late", None, 150))]).await;
    let row = store.get(std::slice::from_ref(&k)).await.unwrap().remove(0);
    assert_eq!(row, tombstone(200), "tombstone keeps its version and wins");

    // A key twice in one batch: the last write is the one that sticks.
    put(
        &*store,
        &[
            (k.clone(), string(b"first", None, 300)),
            (k.clone(), string(b"second", None, 301)),
        ],
    )
    .await;
    assert_eq!(
        store.get(std::slice::from_ref(&k)).await.unwrap()[0],
        string(b"second", None, 301)
    );

    // A string key overwritten by a hash changes type.
    put(&*store, &[(k.clone(), hash(&[("f", "v")], 400))]).await;
    assert_eq!(store.get(&[k]).await.unwrap()[0], hash(&[("f", "v")], 400));
}

async fn expiry_in_count_and_scan(store: Arc<dyn Store>, _url: String) {
    put(
        &*store,
        &[
            (b(b"persistent"), string(b"1", None, 1)),
            (b(b"later"), hash(&[("f", "v")], 2)),
            (b(b"gone"), string(b"3", Some(NOW), 3)),
            (b(b"deleted"), tombstone(4)),
        ],
    )
    .await;
    let mut later = hash(&[("f", "v")], 2);
    if let Some(e) = later.entry.as_mut() {
        e.expire_at = Some(NOW + 1);
    }
    put(
        &*store,
        &[(
            b(b"later"),
            Row {
                version: Version(5),
                ..later
            },
        )],
    )
    .await;

    let counts = store.count(NOW).await.expect("count");
    assert_eq!((counts.keys, counts.expires), (2, 1));
    let seen = scan_all(&*store, 100).await;
    assert_eq!(
        seen,
        HashMap::from([(b(b"persistent"), "string"), (b(b"later"), "hash")])
    );
    let gone = store.get(&[b(b"gone")]).await.unwrap().remove(0);
    assert!(gone.entry.is_some() && gone.live(NOW).is_none());
}

async fn scan_visits_each_key_once(store: Arc<dyn Store>, url: String) {
    let mut rows = Vec::new();
    for i in 0..60u32 {
        let key = b(format!("key:{i}").as_bytes());
        let row = if i % 3 == 0 {
            hash(&[("f", "v")], 10)
        } else {
            string(b"v", None, 10)
        };
        rows.push((key, row));
    }
    rows.push((b(b"dead"), tombstone(10)));
    put(&*store, &rows).await;
    let want: HashMap<Bytes, &str> = rows[..60]
        .iter()
        .map(|(k, r)| {
            (
                k.clone(),
                r.entry.as_ref().map_or("none", |e| e.value.type_name()),
            )
        })
        .collect();
    for count in [1, 7, 60, 1000] {
        assert_eq!(scan_all(&*store, count).await, want, "count {count}");
    }
    // Force three hashes shared by twenty keys each: pages that end inside a
    // run of equal hashes must not lose the rest of the run.
    raw_sql(&url, "UPDATE spillway_kv SET key_hash = 1 + (key_hash % 3)").await;
    for count in [1, 2, 5, 20, 21] {
        assert_eq!(
            scan_all(&*store, count).await,
            want,
            "count {count}, shared hashes"
        );
    }
}

async fn begin_serializes_same_key(store: Arc<dyn Store>, url: String) {
    let k = b(b"counter");
    let (mut first, rows) = store
        .begin(std::slice::from_ref(&k))
        .await
        .expect("first begin");
    assert_eq!(rows, vec![Row::absent()]);

    let (asking, asked) = oneshot::channel();
    let second = tokio::spawn({
        let (store, k) = (store.clone(), k.clone());
        async move {
            let _ = asking.send(());
            let (mut txn, rows) = store.begin(std::slice::from_ref(&k)).await?;
            let locked_at = Instant::now();
            let next = rows[0].version.0 + 1;
            txn.put(&[(k, string(b"second", None, next))]).await?;
            txn.commit().await?;
            Ok::<_, Error>((rows, locked_at))
        }
    });
    asked.await.expect("second task started");
    let mut second = second;
    if url.starts_with("postgres") {
        assert!(
            lock_waiters(&url).await,
            "second begin never waited on the key lock"
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut second)
            .await
            .is_err(),
        "second begin got the lock while the first transaction held it"
    );

    first
        .put(&[(k.clone(), string(b"first", None, 10))])
        .await
        .expect("put");
    let committing_at = Instant::now();
    first.commit().await.expect("commit");

    let (rows, locked_at) = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("second begin still blocked after commit")
        .expect("task")
        .expect("second transaction");
    assert!(locked_at >= committing_at);
    assert_eq!(
        rows,
        vec![string(b"first", None, 10)],
        "second saw the first's commit"
    );
    assert_eq!(
        store.get(&[k]).await.unwrap(),
        vec![string(b"second", None, 11)]
    );
}

async fn lock_wait_times_out(_store: Arc<dyn Store>, url: String) {
    let timeout = Duration::from_millis(300);
    let store = store::connect(&opts(&url, timeout)).await.expect("connect");
    let k = b(b"held");
    let (held, _) = store.begin(std::slice::from_ref(&k)).await.expect("begin");
    let started = Instant::now();
    let err = store
        .begin(&[k])
        .await
        .err()
        .expect("second begin must fail");
    let backend = store.name();
    assert!(
        matches!(&err, Error::Timeout { backend: b, .. } if *b == backend),
        "{err}"
    );
    assert!(started.elapsed() < timeout + Duration::from_secs(2));
    drop(held);
}

async fn sweep_expired_and_old_tombstones(store: Arc<dyn Store>, _url: String) {
    put(
        &*store,
        &[
            (b(b"expired-old"), string(b"x", Some(NOW - 1), 10)),
            (b(b"expired-new"), string(b"x", Some(NOW - 1), 100)),
            (b(b"tomb-old"), tombstone(10)),
            (b(b"tomb-new"), tombstone(100)),
            (b(b"live"), string(b"x", None, 10)),
            (b(b"future"), string(b"x", Some(NOW + 1_000), 10)),
        ],
    )
    .await;
    assert_eq!(store.sweep(NOW, Version(50), 100).await.expect("sweep"), 2);
    let keys = [
        b(b"expired-old"),
        b(b"tomb-old"),
        b(b"expired-new"),
        b(b"tomb-new"),
    ];
    let rows = store.get(&keys).await.unwrap();
    assert_eq!(rows[..2], [Row::absent(), Row::absent()]);
    assert_eq!(
        rows[3],
        tombstone(100),
        "a tombstone newer than the bound stays"
    );
    assert_eq!(rows[2].version, Version(100), "so does an expired row");

    assert_eq!(
        store.sweep(NOW, Version(1_000), 1).await.expect("sweep"),
        1,
        "limit"
    );
    assert_eq!(
        store.sweep(NOW, Version(1_000), 100).await.expect("sweep"),
        1
    );
    assert_eq!(
        store.sweep(NOW, Version(1_000), 100).await.expect("sweep"),
        0
    );
    let left = store.get(&[b(b"live"), b(b"future")]).await.unwrap();
    assert!(left.iter().all(|r| r.entry.is_some()));
}

async fn sweep_spares_a_row_rewritten_meanwhile(store: Arc<dyn Store>, url: String) {
    let k = b(b"revived");
    put(&*store, &[(k.clone(), string(b"old", Some(NOW - 1), 10))]).await;
    // The writer holds the key while the sweeper picks the expired row.
    let (mut txn, _) = store.begin(std::slice::from_ref(&k)).await.expect("begin");
    txn.put(&[(k.clone(), string(b"new", None, 20))])
        .await
        .expect("put");
    let mut sweep = tokio::spawn({
        let store = store.clone();
        async move { store.sweep(NOW, Version(1_000), 100).await }
    });
    if url.starts_with("postgres") {
        assert!(lock_waiters(&url).await, "sweep never waited on the row");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut sweep)
            .await
            .is_err(),
        "sweep went ahead under an uncommitted write"
    );
    txn.commit().await.expect("commit");
    let swept = tokio::time::timeout(Duration::from_secs(10), sweep)
        .await
        .expect("sweep still blocked after commit")
        .expect("task")
        .expect("sweep");
    assert_eq!(swept, 0);
    assert_eq!(
        store.get(&[k]).await.unwrap(),
        vec![string(b"new", None, 20)]
    );
}

async fn max_version_and_ping(store: Arc<dyn Store>, _url: String) {
    assert_eq!(store.max_version().await.expect("max"), Version::ZERO);
    put(
        &*store,
        &[
            (b(b"a"), string(b"1", None, 7)),
            (b(b"t"), tombstone(1 << 40)),
        ],
    )
    .await;
    assert_eq!(store.max_version().await.expect("max"), Version(1 << 40));
    store.ping().await.expect("ping");
    store.close().await;
    assert!(store.ping().await.is_err(), "a closed store refuses work");
}

async fn corrupt_rows_are_reported(store: Arc<dyn Store>, url: String) {
    if url.starts_with("sqlite:") {
        raw_sql(
            &url,
            "INSERT INTO spillway_kv VALUES (X'626164', 1, 2, X'0000000961', NULL, 1)",
        )
        .await;
    } else {
        raw_sql(
            &url,
            "INSERT INTO spillway_kv VALUES ('\\x626164', 1, 2, '\\x0000000961', NULL, 1)",
        )
        .await;
    }
    let err = store.get(&[b(b"bad")]).await.expect_err("corrupt row");
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
}

/// The rows of `keys` and `instance`'s checkpoint, as one snapshot to compare.
async fn state(store: &dyn Store, keys: &[Bytes], instance: &str) -> (Vec<Row>, Option<u64>) {
    let rows = store.get(keys).await.expect("get");
    (rows, store.checkpoint(instance).await.expect("checkpoint"))
}

async fn apply_writes_rows_and_checkpoint(store: Arc<dyn Store>, _url: String) {
    assert_eq!(store.checkpoint("a").await.expect("checkpoint"), None);
    let rows = vec![
        (b(b"s"), string(b"v", Some(NOW + 1_000), 10)),
        (b(b"h"), hash(&[("z", "1"), ("a", "2")], 11)),
        (b(b"gone"), tombstone(12)),
    ];
    store.apply("a", 5, &rows).await.expect("apply");
    let keys: Vec<Bytes> = rows.iter().map(|(k, _)| k.clone()).collect();
    let want: Vec<Row> = rows.iter().map(|(_, r)| r.clone()).collect();
    assert_eq!(state(&*store, &keys, "a").await, (want.clone(), Some(5)));
    assert_eq!(store.checkpoint("b").await.expect("checkpoint"), None);

    // An empty batch advances the checkpoint alone.
    store.apply("a", 7, &[]).await.expect("empty apply");
    assert_eq!(state(&*store, &keys, "a").await, (want, Some(7)));
}

async fn checkpoint_never_moves_back(store: Arc<dyn Store>, _url: String) {
    store.apply("a", 10, &[]).await.expect("apply");
    let k = b(b"k");
    let row = string(b"v", None, 20);
    store
        .apply("a", 4, &[(k.clone(), row.clone())])
        .await
        .expect("apply below the checkpoint");
    assert_eq!(
        state(&*store, std::slice::from_ref(&k), "a").await,
        (vec![row], Some(10)),
        "rows still applied, checkpoint kept"
    );
    store.apply("a", 10, &[]).await.expect("same checkpoint");
    store.apply("b", 3, &[]).await.expect("other instance");
    assert_eq!(store.checkpoint("a").await.expect("a"), Some(10));
    assert_eq!(store.checkpoint("b").await.expect("b"), Some(3));

    let max = i64::MAX as u64;
    store.apply("a", max, &[]).await.expect("largest sequence");
    assert_eq!(store.checkpoint("a").await.expect("a"), Some(max));
    let err = store
        .apply("a", max + 1, &[])
        .await
        .expect_err("past bigint");
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert_eq!(store.checkpoint("a").await.expect("a"), Some(max));
}

async fn replayed_batch_is_idempotent(store: Arc<dyn Store>, _url: String) {
    let rows = vec![
        (b(b"x"), string(b"1", None, 10)),
        (b(b"y"), hash(&[("f", "v")], 11)),
        (b(b"x"), string(b"2", None, 12)),
        (b(b"z"), tombstone(13)),
    ];
    let keys = [b(b"x"), b(b"y"), b(b"z")];
    store.apply("a", 3, &rows).await.expect("apply");
    let first = state(&*store, &keys, "a").await;
    assert_eq!(
        first.0[0],
        string(b"2", None, 12),
        "last write in the batch"
    );
    for _ in 0..2 {
        store.apply("a", 3, &rows).await.expect("replay");
        assert_eq!(state(&*store, &keys, "a").await, first);
    }
    assert_eq!(store.count(NOW).await.expect("count").keys, 2);
}

async fn older_write_in_later_batch_loses(store: Arc<dyn Store>, _url: String) {
    let (k, t) = (b(b"k"), b(b"t"));
    store
        .apply("a", 1, &[(k.clone(), string(b"new", None, 100))])
        .await
        .expect("apply");
    // Another instance's older write arrives later, in a later batch.
    store
        .apply("b", 1, &[(k.clone(), string(b"old", None, 50))])
        .await
        .expect("apply older");
    store
        .apply("a", 2, &[(k.clone(), string(b"older", None, 99))])
        .await
        .expect("apply older");
    assert_eq!(
        state(&*store, std::slice::from_ref(&k), "a").await,
        (vec![string(b"new", None, 100)], Some(2))
    );

    store
        .apply("a", 3, &[(t.clone(), tombstone(200))])
        .await
        .expect("tombstone");
    store
        .apply("a", 4, &[(t.clone(), string(b"late", None, 150))])
        .await
        .expect("late write");
    assert_eq!(store.get(&[t]).await.expect("get"), vec![tombstone(200)]);
}

async fn apply_tombstones(store: Arc<dyn Store>, _url: String) {
    let keys = [b(b"s"), b(b"h")];
    store
        .apply(
            "a",
            1,
            &[
                (keys[0].clone(), string(b"v", None, 1)),
                (keys[1].clone(), hash(&[("f", "v")], 2)),
            ],
        )
        .await
        .expect("apply");
    store
        .apply(
            "a",
            2,
            &[
                (keys[0].clone(), tombstone(3)),
                (keys[1].clone(), tombstone(4)),
            ],
        )
        .await
        .expect("apply tombstones");
    assert_eq!(
        state(&*store, &keys, "a").await,
        (vec![tombstone(3), tombstone(4)], Some(2))
    );
    assert_eq!(store.count(NOW).await.expect("count").keys, 0);
    assert!(scan_all(&*store, 10).await.is_empty());
}

async fn rejected_apply_changes_nothing(store: Arc<dyn Store>, url: String) {
    let kept = b(b"kept");
    store
        .apply("a", 1, &[(kept.clone(), string(b"v1", None, 1))])
        .await
        .expect("apply");
    // More rows than one SQLite statement takes, the refused one last: the
    // statements before it succeed and must be rolled back.
    let mut batch = vec![(kept.clone(), string(b"v2", None, 2))];
    batch.extend((0..1_200u32).map(|i| (b(format!("f{i}").as_bytes()), string(b"v2", None, 2))));
    batch.push((b(b"bad"), string(b"v2", None, 2)));
    let probe = [kept.clone(), b(b"f0"), b(b"f1199"), b(b"bad")];
    let before = state(&*store, &probe, "a").await;

    // The database refuses the key "bad" for good.
    if url.starts_with("sqlite:") {
        raw_sql(
            &url,
            "CREATE TRIGGER no_bad BEFORE INSERT ON spillway_kv WHEN NEW.key = X'626164' \
             BEGIN SELECT RAISE(ABORT, 'no bad keys'); END",
        )
        .await;
    } else {
        raw_sql(
            &url,
            "ALTER TABLE spillway_kv ADD CONSTRAINT no_bad CHECK (key <> '\\x626164')",
        )
        .await;
    }
    let err = store.apply("a", 5, &batch).await.expect_err("rejected");
    let backend = store.name();
    assert!(
        matches!(&err, Error::Rejected { backend: b, .. } if *b == backend),
        "{err}"
    );
    assert_eq!(state(&*store, &probe, "a").await, before, "nothing changed");
    assert_eq!(store.count(NOW).await.expect("count").keys, 1);

    // Without the refused row the same batch goes through.
    batch.pop();
    store
        .apply("a", 5, &batch)
        .await
        .expect("apply without bad");
    let (rows, checkpoint) = state(&*store, &probe, "a").await;
    assert_eq!(checkpoint, Some(5));
    assert_eq!(
        rows[..3],
        [
            string(b"v2", None, 2),
            string(b"v2", None, 2),
            string(b"v2", None, 2)
        ]
    );
    assert_eq!(rows[3], Row::absent());
}

async fn rejected_checkpoint_writes_no_rows(store: Arc<dyn Store>, url: String) {
    store.apply("a", 1, &[]).await.expect("apply");
    // The database refuses checkpoints from 100 on: the rows written before
    // the checkpoint in the same transaction must go too.
    if url.starts_with("sqlite:") {
        raw_sql(
            &url,
            "CREATE TRIGGER no_high BEFORE UPDATE ON spillway_checkpoints WHEN NEW.seq >= 100 \
             BEGIN SELECT RAISE(ABORT, 'checkpoint too high'); END",
        )
        .await;
    } else {
        raw_sql(
            &url,
            "ALTER TABLE spillway_checkpoints ADD CONSTRAINT no_high CHECK (seq < 100)",
        )
        .await;
    }
    let k = b(b"k");
    let err = store
        .apply("a", 100, &[(k.clone(), string(b"v", None, 1))])
        .await
        .expect_err("rejected");
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert_eq!(
        state(&*store, &[k], "a").await,
        (vec![Row::absent()], Some(1))
    );
}

async fn dead_letter_table_takes_a_record(_store: Arc<dyn Store>, url: String) {
    // Filled by the event processor; here only its schema is checked.
    if url.starts_with("sqlite:") {
        raw_sql(
            &url,
            "INSERT INTO spillway_dead_letters \
             (instance, seq, key, kind, value, expire_at, version, error, failed_at) \
             VALUES ('a', 7, X'6b', 1, X'76', NULL, 9, 'rejected', 1700000000000)",
        )
        .await;
    } else {
        raw_sql(
            &url,
            "INSERT INTO spillway_dead_letters \
             (instance, seq, key, kind, value, expire_at, version, error, failed_at) \
             VALUES ('a', 7, '\\x6b', 1, '\\x76', NULL, 9, 'rejected', 1700000000000)",
        )
        .await;
    }
}

/// Makes the database refuse, for good, any row of the key "bad" whose
/// value is "poison" (a CHECK constraint; a trigger in SQLite, whose tables
/// cannot gain one). `false` takes the refusal away again.
async fn refuse_poison(url: &str, on: bool) {
    let sql = match (url.starts_with("sqlite:"), on) {
        (true, true) => {
            "CREATE TRIGGER no_poison BEFORE INSERT ON spillway_kv \
             WHEN NEW.value = X'706f69736f6e' \
             BEGIN SELECT RAISE(ABORT, 'no poison'); END"
        }
        (true, false) => "DROP TRIGGER no_poison",
        (false, true) => {
            "ALTER TABLE spillway_kv ADD CONSTRAINT no_poison \
             CHECK (value IS NULL OR value <> '\\x706f69736f6e'::bytea)"
        }
        (false, false) => "ALTER TABLE spillway_kv DROP CONSTRAINT no_poison",
    };
    raw_sql(url, sql).await;
}

fn rec(seq: u64, key: &[u8], row: Row) -> store::Record {
    store::Record {
        seq,
        key: b(key),
        row,
    }
}

/// A MULTI block with one rejected row is dead-lettered whole: none of its
/// rows land, every one is recorded, and the checkpoint passes them.
async fn rejected_block_is_dead_lettered_whole(store: Arc<dyn Store>, url: String) {
    refuse_poison(&url, true).await;
    let block = [
        rec(5, b"x", string(b"one", None, 5)),
        rec(5, b"bad", string(b"poison", None, 5)),
        rec(5, b"y", string(b"two", None, 5)),
    ];
    let refused = store
        .apply_with_dead_letters("a", 5, &block, &[], Whole::Block)
        .await
        .expect("apply the block");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused.iter().all(|r| r.error.contains("MULTI block")),
        "{refused:?}"
    );
    let probe = [b(b"x"), b(b"bad"), b(b"y")];
    let (got, checkpoint) = state(&*store, &probe, "a").await;
    assert_eq!(checkpoint, Some(5));
    assert_eq!(got, [Row::absent(), Row::absent(), Row::absent()]);
    assert_eq!(store.dead_letters("a", 100).await.expect("list").len(), 3);
}

async fn rejected_rows_become_dead_letters(store: Arc<dyn Store>, url: String) {
    refuse_poison(&url, true).await;
    let mut rows: Vec<store::Record> = (0..20u64)
        .map(|i| {
            rec(
                i + 1,
                format!("g{i}").as_bytes(),
                string(b"good", None, i + 1),
            )
        })
        .collect();
    rows.insert(7, rec(30, b"bad", string(b"poison", None, 30)));
    let parked = [rec(31, b"held", string(b"v", None, 31))];

    // The plain batch is refused as a whole.
    let plain: Vec<(Bytes, Row)> = rows
        .iter()
        .map(|r| (r.key.clone(), r.row.clone()))
        .collect();
    let err = store.apply("a", 31, &plain).await.expect_err("rejected");
    assert!(matches!(err, Error::Rejected { .. }), "{err}");

    let refused = store
        .apply_with_dead_letters("a", 31, &rows, &parked, Whole::Rows)
        .await
        .expect("apply with dead letters");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!((refused[0].seq, &refused[0].key[..]), (30, &b"bad"[..]));
    assert!(
        refused[0].error.contains("no_poison") || refused[0].error.contains("no poison"),
        "{}",
        refused[0].error
    );

    let probe = [b(b"g0"), b(b"g19"), b(b"bad"), b(b"held")];
    let (got, checkpoint) = state(&*store, &probe, "a").await;
    assert_eq!(
        checkpoint,
        Some(31),
        "the checkpoint passes the dead letters"
    );
    assert_eq!(
        got[..2],
        [string(b"good", None, 1), string(b"good", None, 20)]
    );
    assert_eq!(got[2..], [Row::absent(), Row::absent()]);

    let letters = store.dead_letters("a", 100).await.expect("list");
    let seen: Vec<(u64, &[u8], bool)> = letters
        .iter()
        .map(|d| (d.seq, &d.key[..], d.error == store::dead_letters::PARKED))
        .collect();
    assert_eq!(
        seen,
        vec![(31, &b"held"[..], true), (30, &b"bad"[..], false)]
    );
    assert_eq!(letters[1].row, string(b"poison", None, 30));
    assert!(letters[0].id < letters[1].id && letters[1].failed_at > 0);

    // The same batch again (a commit whose outcome was unknown): no copies.
    store
        .apply_with_dead_letters("a", 31, &rows, &parked, Whole::Rows)
        .await
        .expect("replayed");
    assert_eq!(store.dead_letters("a", 100).await.expect("list").len(), 2);
    let mut keys = store.dead_letter_keys("a").await.expect("keys");
    keys.sort();
    assert_eq!(keys, vec![(b(b"bad"), 1), (b(b"held"), 1)]);
    assert!(
        store
            .dead_letters("other", 100)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(store.dead_letters("a", 1).await.expect("list").len(), 1);
}

async fn dead_letters_are_retried_or_dropped(store: Arc<dyn Store>, url: String) {
    refuse_poison(&url, true).await;
    store
        .apply("a", 1, &[(b(b"newer"), string(b"kept", None, 100))])
        .await
        .expect("apply");
    let parked = [
        rec(2, b"bad", string(b"poison", None, 2)),
        rec(3, b"bad", string(b"later", None, 3)),
        rec(4, b"newer", string(b"old", None, 4)),
        rec(5, b"gone", string(b"x", None, 5)),
        rec(6, b"worse", string(b"poison", None, 6)),
    ];
    store
        .apply_with_dead_letters("a", 6, &[], &parked, Whole::Rows)
        .await
        .expect("park");

    // The newest dead letter is refused: an error, and nothing changes.
    let err = store
        .retry_dead_letters("a", b"worse")
        .await
        .expect_err("still rejected");
    assert!(matches!(err, Error::Rejected { .. }), "{err}");
    assert_eq!(store.dead_letters("a", 100).await.expect("list").len(), 5);
    assert_eq!(
        store.get(&[b(b"worse")]).await.expect("get"),
        vec![Row::absent()]
    );

    // The newest wins: the older, refused one is never written.
    assert_eq!(
        store.retry_dead_letters("a", b"bad").await.expect("retry"),
        2
    );
    assert_eq!(
        store.get(&[b(b"bad")]).await.expect("get"),
        vec![string(b"later", None, 3)]
    );
    refuse_poison(&url, false).await;
    assert_eq!(
        store
            .retry_dead_letters("a", b"worse")
            .await
            .expect("retry"),
        1
    );
    assert_eq!(
        store.get(&[b(b"worse")]).await.expect("get"),
        vec![string(b"poison", None, 6)]
    );
    // An older dead letter does not overwrite a newer row.
    assert_eq!(
        store
            .retry_dead_letters("a", b"newer")
            .await
            .expect("retry"),
        1
    );
    assert_eq!(
        store.get(&[b(b"newer")]).await.expect("get"),
        vec![string(b"kept", None, 100)]
    );
    assert_eq!(
        store.retry_dead_letters("a", b"bad").await.expect("again"),
        0
    );

    assert_eq!(
        store.drop_dead_letters("a", b"gone").await.expect("drop"),
        1
    );
    assert_eq!(
        store.drop_dead_letters("a", b"gone").await.expect("drop"),
        0
    );
    assert_eq!(
        store.get(&[b(b"gone")]).await.expect("get"),
        vec![Row::absent()]
    );
    assert!(store.dead_letters("a", 100).await.expect("list").is_empty());
    assert!(store.dead_letter_keys("a").await.expect("keys").is_empty());
}

/// The low-water version: the minimum over instances with a checkpoint
/// row, an unreported instance (row, no version) counting as zero, and each
/// instance's value only ever raised.
async fn low_water_is_the_minimum_over_instances(store: Arc<dyn Store>, url: String) {
    assert_eq!(store.low_water().await.expect("low"), None, "no rows yet");
    store.set_low_water("a", Version(500)).await.expect("set a");
    assert_eq!(store.low_water().await.expect("low"), Some(Version(500)));
    assert_eq!(
        store.checkpoint("a").await.expect("checkpoint"),
        Some(0),
        "the row is created with nothing applied"
    );
    store.set_low_water("b", Version(300)).await.expect("set b");
    assert_eq!(store.low_water().await.expect("low"), Some(Version(300)));
    store
        .set_low_water("b", Version(900))
        .await
        .expect("raise b");
    assert_eq!(store.low_water().await.expect("low"), Some(Version(500)));
    // Monotonic: a lower report (computed earlier, landing later) is ignored.
    store
        .set_low_water("a", Version(100))
        .await
        .expect("lower a");
    assert_eq!(store.low_water().await.expect("low"), Some(Version(500)));
    // A checkpoint advance keeps the reported version.
    store.apply("a", 7, &[]).await.expect("apply");
    assert_eq!(store.low_water().await.expect("low"), Some(Version(500)));
    assert_eq!(store.checkpoint("a").await.expect("checkpoint"), Some(7));
    // An instance that has applied batches but never reported blocks purging.
    store.apply("c", 1, &[]).await.expect("apply c");
    assert_eq!(store.low_water().await.expect("low"), Some(Version::ZERO));
    store.set_low_water("c", Version(700)).await.expect("set c");
    assert_eq!(store.low_water().await.expect("low"), Some(Version(500)));
    // Reporting keeps the checkpoint where it was.
    assert_eq!(store.checkpoint("c").await.expect("checkpoint"), Some(1));
    // A row of an instance gone for good, deleted by the operator, no longer counts.
    raw_sql(
        &url,
        "DELETE FROM spillway_checkpoints WHERE instance = 'a'",
    )
    .await;
    assert_eq!(store.low_water().await.expect("low"), Some(Version(700)));
    let max = Version(u64::MAX >> 1);
    store.set_low_water("b", max).await.expect("set b high");
    store.set_low_water("c", max).await.expect("set c high");
    assert_eq!(store.low_water().await.expect("low"), Some(max));
}

/// One test per backend for each body.
macro_rules! both {
    ($($body:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $body() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    // A directory that does not exist yet: connect creates it.
                    let url = format!("sqlite://{}/db/spillway.db?mode=rwc", dir.path().display());
                    let store = super::connect(&url).await;
                    super::$body(store, url).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $body() {
                    let db = super::PgDatabase::create();
                    let store = super::connect(&db.url()).await;
                    super::$body(store, db.url()).await;
                }
            )*
        }
    };
}

both!(
    round_trip,
    large_batches_round_trip,
    version_guard_and_tombstones,
    expiry_in_count_and_scan,
    scan_visits_each_key_once,
    begin_serializes_same_key,
    lock_wait_times_out,
    sweep_expired_and_old_tombstones,
    sweep_spares_a_row_rewritten_meanwhile,
    max_version_and_ping,
    corrupt_rows_are_reported,
    apply_writes_rows_and_checkpoint,
    checkpoint_never_moves_back,
    replayed_batch_is_idempotent,
    older_write_in_later_batch_loses,
    apply_tombstones,
    rejected_apply_changes_nothing,
    rejected_checkpoint_writes_no_rows,
    dead_letter_table_takes_a_record,
    rejected_rows_become_dead_letters,
    rejected_block_is_dead_lettered_whole,
    dead_letters_are_retried_or_dropped,
    low_water_is_the_minimum_over_instances,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_locks_on_different_keys_do_not_block() {
    let db = PgDatabase::create();
    let store = connect(&db.url()).await;
    let (first, _) = store.begin(&[b(b"a"), b(b"b")]).await.expect("begin a, b");
    let other = tokio::time::timeout(Duration::from_secs(2), store.begin(&[b(b"c"), b(b"d")]))
        .await
        .expect("begin on other keys waited")
        .expect("begin c, d");
    drop(other);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_reported_within_the_timeouts() {
    let mut pg = Postgres::start();
    let o = StoreOptions {
        acquire_timeout: Duration::from_secs(1),
        ..opts(&pg.url(), Duration::from_secs(1))
    };
    let store = store::connect(&o).await.expect("connect");
    let k = b(b"k");
    let (mut txn, _) = store.begin(std::slice::from_ref(&k)).await.expect("begin");
    txn.put(&[(k.clone(), string(b"v", None, 1))])
        .await
        .expect("put");

    pg.stop();
    let err = txn.commit().await.expect_err("commit on a stopped server");
    assert!(
        matches!(
            err,
            Error::CommitUnknown {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );

    let bound = o.timeout + Duration::from_millis(500);
    let started = Instant::now();
    let err = store
        .get(std::slice::from_ref(&k))
        .await
        .expect_err("get while down");
    assert!(
        started.elapsed() < bound,
        "get took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            Error::Unavailable {
                backend: "postgres",
                ..
            } | Error::Timeout {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("postgres "), "{err}");

    let started = Instant::now();
    let err = store::connect(&o).await.err().expect("connect while down");
    let bound = o.acquire_timeout + Duration::from_millis(500);
    assert!(
        started.elapsed() < bound,
        "connect took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            Error::Unavailable {
                backend: "postgres",
                ..
            }
        ),
        "{err}"
    );

    pg.start_again();
    let back = poll_until_async(Duration::from_secs(10), || async {
        store.ping().await.is_ok()
    })
    .await;
    assert!(back, "store did not recover after the server came back");
    assert_eq!(store.get(&[k]).await.expect("get"), vec![Row::absent()]);
}

#[tokio::test]
async fn unknown_url_scheme_is_a_config_error() {
    let err = store::connect(&opts("mysql://secret@h/db", Duration::from_secs(1)))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(!err.to_string().contains("secret"), "URL not echoed: {err}");
}
