//! Mapped namespaces: keys of a configured shape address rows of an
//! existing PostgreSQL table (see ARCHITECTURE.md, "Mapped namespaces").
//! Reads go through the ordinary cache-aside path (`store::Routed` sends
//! the keys here); writes are translated into SQL on the table (`write`).

pub mod catalog;
pub mod config;
pub mod json;
pub mod listen;
pub mod pattern;
mod read;
pub mod store;
pub mod triggers;
pub mod value;
mod write;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sqlx::PgPool;

pub use config::NamespaceConfig;

use crate::error::{Error, Result};
use crate::resp::Frame;
use crate::write::Call;
use catalog::Table;
use pattern::Pattern;

/// One namespace, checked against the catalog.
#[derive(Debug)]
pub struct Namespace {
    pub config: NamespaceConfig,
    pub pattern: Pattern,
    pub table: Table,
    /// The read statement, built once.
    select: String,
    /// `ttl` in ms (`NO_TTL`: none, `cache.ttl` applies); reloads change it.
    ttl_ms: AtomicU64,
}

const NO_TTL: u64 = u64::MAX;

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(NO_TTL, |t| {
        u64::try_from(t.as_millis()).unwrap_or(NO_TTL - 1)
    })
}

/// Every namespace and the pool their statements run on.
pub struct Mapped {
    namespaces: Vec<Namespace>,
    pool: PgPool,
    timeout: Duration,
    /// Set in spillway's write transactions; triggers echo it back, so
    /// this instance can skip notifications of its own writes.
    origin: String,
    /// False while the invalidation listener is down (see `listen`).
    listening: AtomicBool,
    /// Notices applied, notices of this instance's own writes skipped, and
    /// reconnections of the listener (INFO `# Namespaces`).
    notices: AtomicU64,
    own_notices: AtomicU64,
    reconnects: AtomicU64,
}

/// Read commands that mean something for a row (GET renders it as JSON).
const READS: &[&str] = &[
    "get",
    "hget",
    "hmget",
    "hgetall",
    "hexists",
    "hlen",
    "hkeys",
    "hvals",
    "hstrlen",
    "exists",
    "type",
    "ttl",
    "pttl",
    "expiretime",
    "pexpiretime",
];

/// Write commands translated into SQL on the table.
const WRITES: &[&str] = &[
    "hset",
    "hmset",
    "hdel",
    "hincrby",
    "hincrbyfloat",
    "set",
    "del",
    "unlink",
];

impl Mapped {
    /// Reads every namespace's table from the catalog; the first problem
    /// refuses start with a message naming the namespace.
    pub async fn open(
        configs: &[NamespaceConfig],
        pool: PgPool,
        timeout: Duration,
    ) -> Result<Mapped> {
        let mut namespaces = Vec::with_capacity(configs.len());
        for config in configs {
            let pattern = Pattern::parse(&config.pattern).map_err(Error::Config)?;
            let table = crate::error::with_timeout("postgres", timeout, async {
                catalog::load(&pool, config).await.map_err(Error::Config)
            })
            .await?;
            namespaces.push(Namespace {
                config: config.clone(),
                pattern,
                select: read::select(&table),
                ttl_ms: AtomicU64::new(ttl_ms(config.ttl)),
                table,
            });
        }
        Ok(Mapped {
            namespaces,
            pool,
            timeout,
            origin: format!("{:016x}", rand::random::<u64>()),
            listening: AtomicBool::new(false),
            notices: AtomicU64::new(0),
            own_notices: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        })
    }

    /// The namespace `key` belongs to and the key's id, if any.
    pub fn find<'k>(&self, key: &'k [u8]) -> Option<(&Namespace, &'k [u8])> {
        self.find_index(key)
            .map(|(n, id)| (&self.namespaces[n], id))
    }

    fn find_index<'k>(&self, key: &'k [u8]) -> Option<(usize, &'k [u8])> {
        self.namespaces
            .iter()
            .enumerate()
            .find_map(|(n, ns)| ns.pattern.id(key).map(|id| (n, id)))
    }

    pub fn is_mapped(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// True when any key the calls name is mapped.
    pub fn touches(&self, calls: &[Call]) -> bool {
        calls
            .iter()
            .any(|c| c.spec.keys(&c.argv).iter().any(|k| self.is_mapped(k)))
    }

    /// True when `key`'s namespace relies on invalidation notifications and
    /// the listener is down: its cached rows cannot be trusted.
    pub fn is_stale(&self, key: &[u8]) -> bool {
        !self.listening.load(Ordering::Acquire)
            && self.find(key).is_some_and(|(ns, _)| ns.config.invalidate)
    }

    /// INFO's `# Namespaces` section.
    pub fn write_info(&self, out: &mut String) -> std::fmt::Result {
        use std::fmt::Write as _;
        let invalidating = self.namespaces.iter().any(|n| n.config.invalidate);
        write!(
            out,
            "# Namespaces\r\nnamespaces:{}\r\nns_listener:{}\r\nns_notices:{}\r\nns_own_notices_skipped:{}\r\nns_listener_reconnects:{}\r\n",
            self.namespaces.len(),
            match (invalidating, self.listening.load(Ordering::Acquire)) {
                (false, _) => "none",
                (true, true) => "up",
                (true, false) => "down",
            },
            self.notices.load(Ordering::Relaxed),
            self.own_notices.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed),
        )
    }

    /// The cache TTL of a mapped key whose namespace overrides it.
    pub fn ttl_for(&self, key: &[u8]) -> Option<Duration> {
        let (ns, _) = self.find(key)?;
        match ns.ttl_ms.load(Ordering::Relaxed) {
            NO_TTL => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// A reload changed the namespace's `ttl`: new fills take it.
    pub fn set_ttl(&self, name: &str, ttl: Option<Duration>) {
        if let Some(ns) = self.namespaces.iter().find(|n| n.config.name == name) {
            ns.ttl_ms.store(ttl_ms(ttl), Ordering::Relaxed);
        }
    }

    /// Refuses a read of mapped keys that means nothing for a row, or whose
    /// key does not parse as the key column's type.
    pub fn check_read(&self, call: &Call) -> std::result::Result<(), Frame> {
        self.check(call, READS)
    }

    /// As `check_read`, for writes.
    pub fn check_write(&self, call: &Call) -> std::result::Result<(), Frame> {
        self.check(call, WRITES)
    }

    fn check(&self, call: &Call, allowed: &[&str]) -> std::result::Result<(), Frame> {
        for key in call.spec.keys(&call.argv) {
            let Some((ns, id)) = self.find(key) else {
                continue;
            };
            if !allowed.contains(&call.spec.name) {
                return Err(refuse(
                    ns,
                    format!(
                        "{} does not apply to a mapped row",
                        call.spec.name.to_ascii_uppercase()
                    ),
                ));
            }
            let key_col = ns.table.key_column();
            key_col.kind.check_key(id).map_err(|why| {
                refuse(
                    ns,
                    format!(
                        "key {:?}: id does not fit column {}: {why}",
                        String::from_utf8_lossy(key),
                        key_col.name
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// `GET` of a mapped key: the row as a JSON object, nil when absent.
    pub fn render(&self, key: &[u8], entry: Option<&crate::keyspace::Entry>) -> Frame {
        let (Some((ns, _)), Some(entry)) = (self.find(key), entry) else {
            return Frame::Null;
        };
        match &entry.value {
            crate::keyspace::Value::Hash(h) => Frame::Bulk(json::render(&ns.table, h)),
            crate::keyspace::Value::Str(_) => Frame::Null,
        }
    }
}

/// An error reply naming the namespace.
fn refuse(ns: &Namespace, msg: impl std::fmt::Display) -> Frame {
    Frame::err(format!("namespace {}: {msg}", ns.config.name))
}

/// An error reply naming the namespace and the column.
fn refuse_column(ns: &Namespace, column: &[u8], msg: impl std::fmt::Display) -> Frame {
    refuse(
        ns,
        format!("column {}: {msg}", String::from_utf8_lossy(column)),
    )
}

/// Keys named by the calls, deduplicated, as owned bytes.
pub fn keys_of(calls: &[Call]) -> Vec<Bytes> {
    crate::write::call_keys(calls, &[])
}
