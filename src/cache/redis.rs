//! Redis cache tier, shareable by several spillway instances.
//!
//! Every cache key is `key_prefix` followed by the client's key (bytes, no
//! separator added). A value is `keyspace::codec::encode_row`. A fill lease
//! lives in the key itself as a marker value, `L` and the 8-byte token, set
//! with `SET NX PX`: a cached row and a lease exclude each other, a lease
//! lapses on its own, and any write's `UNLINK` or a flush removes the marker
//! and so cancels the lease for every instance at once. Fills and releases
//! compare the marker in a Lua script, so the check and the `SET` are one
//! atomic step inside Redis.
//!
//! Reads of cached rows (MGET, the hit path) go over a lean pipelined
//! connection of our own ([`Pipeline`]) that batches the reads of all
//! clients into one write; everything else (leases, Lua fills,
//! invalidations, flush, the heartbeat) uses the redis crate's
//! `ConnectionManager`. URLs the pipeline does not handle (TLS, Unix
//! sockets) send reads through the manager too. Both connect lazily:
//! spillway starts while Redis is down, calls fail with
//! `Unavailable`/`Timeout` naming "redis", and both reconnect on their own
//! once Redis is back.

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult, RedisWrite, Script, ToRedisArgs, Value};

use super::pipeline::{Command, Pipeline, Target, error_reply};
use super::reply::Reply;
use super::{CacheOptions, CacheTier, Lease, fill_ttl};
use crate::error::{Error, Result, with_timeout};
use crate::keyspace::codec::{decode_row, encode_row};
use crate::keyspace::{Row, now_millis};

/// Named in errors and logs.
const NAME: &str = "redis";

/// Where to connect when `cache.url` is not set.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// First byte of a lease marker; row encodings start with `A`, `S` or `H`.
const LEASE_TAG: u8 = b'L';

/// Keys per `SCAN` page during a flush, each page unlinked in one call.
const SCAN_COUNT: u32 = 1000;

/// KEYS[1] = key, ARGV = our marker, encoded row, ttl in ms.
const FILL_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// KEYS[1] = key, ARGV[1] = our marker.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// The Redis tier. Cheap to share: the manager multiplexes all calls over
/// one connection.
pub struct RedisCache {
    conn: ConnectionManager,
    /// The hit path's connection; `None` when the URL needs the generic client.
    reads: Option<Pipeline>,
    prefix: Box<[u8]>,
    timeout: Duration,
    lease_ms: u64,
    fill_script: Script,
    release_script: Script,
}

/// A cache key as one command argument, written straight into the command
/// buffer without building the concatenation first.
struct Prefixed<'a>(&'a [u8], &'a [u8]);

impl ToRedisArgs for Prefixed<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let mut arg = out.writer_for_next_arg();
        // The writer appends to an in-memory buffer, which cannot fail.
        let _ = arg.write_all(self.0);
        let _ = arg.write_all(self.1);
    }
}

impl RedisCache {
    /// Builds the client without connecting (see the module docs). Fails
    /// only on a malformed URL. Must run inside a Tokio runtime.
    pub async fn connect(opts: &CacheOptions) -> Result<RedisCache> {
        let url = opts.url.as_deref().unwrap_or(DEFAULT_URL);
        let client = redis::Client::open(url)
            .map_err(|e| Error::Config(format!("cache.url: {}", one_line(&e))))?;
        // One connection attempt per reconnect, retried by the next call:
        // a long backoff loop would delay recovery after Redis comes back.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(opts.timeout))
            .set_response_timeout(Some(opts.timeout))
            .set_number_of_retries(0);
        let reads = Target::from_info(client.get_connection_info()).map(|target| {
            Pipeline::spawn(
                target,
                Bytes::copy_from_slice(opts.key_prefix.as_bytes()),
                opts.timeout,
            )
        });
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| Error::Config(format!("cache.url: {}", one_line(&e))))?;
        Ok(RedisCache {
            conn,
            reads,
            prefix: opts.key_prefix.as_bytes().into(),
            timeout: opts.timeout,
            lease_ms: duration_ms(opts.lease_ttl),
            fill_script: Script::new(FILL_LUA),
            release_script: Script::new(RELEASE_LUA),
        })
    }

    fn key<'a>(&'a self, key: &'a [u8]) -> Prefixed<'a> {
        Prefixed(&self.prefix, key)
    }

    /// Sends one command, bounded by the cache timeout.
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T> {
        self.query_raw(cmd).await?.map_err(|e| self.error(e))
    }

    /// As `query`, leaving Redis's own error to the caller.
    async fn query_raw<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<RedisResult<T>> {
        let mut conn = self.conn.clone();
        let reply = with_timeout(NAME, self.timeout, async {
            Ok(cmd.query_async(&mut conn).await)
        });
        reply.await
    }

    /// Runs a script (EVALSHA, loading it on NOSCRIPT) on `key` with the
    /// lease marker and `extra` arguments.
    async fn script(
        &self,
        script: &Script,
        key: &[u8],
        lease: Lease,
        extra: &[&[u8]],
    ) -> Result<i64> {
        let mut conn = self.conn.clone();
        let mut call = script.key(self.key(key));
        call.arg(&marker(lease)[..]);
        for arg in extra {
            call.arg(*arg);
        }
        let reply = with_timeout(NAME, self.timeout, async {
            call.invoke_async(&mut conn)
                .await
                .map_err(|e| self.error(e))
        });
        reply.await
    }

    fn error(&self, e: RedisError) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                backend: NAME,
                after: self.timeout,
            }
        } else {
            Error::unavailable(NAME, one_line(&e))
        }
    }

    /// `MATCH` pattern for every key under the prefix.
    fn prefix_pattern(&self) -> Vec<u8> {
        let mut pattern = Vec::with_capacity(self.prefix.len() + 8);
        for &b in self.prefix.iter() {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.push(b'*');
        pattern
    }
}

impl CacheTier for RedisCache {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get_many(&self, keys: &[Bytes]) -> Result<Vec<Option<Row>>> {
        if let (Some(reads), false) = (&self.reads, keys.is_empty()) {
            return pipelined_get_many(reads, keys).await;
        }
        match keys {
            [] => Ok(Vec::new()),
            [key] => {
                let mut cmd = Cmd::with_capacity(2, 3 + self.prefix.len() + key.len());
                cmd.arg("GET").arg(self.key(key));
                match self.query_raw::<Value>(&cmd).await? {
                    Ok(value) => Ok(vec![cached_row(value)]),
                    // A foreign non-string value under our prefix: a miss,
                    // as MGET reports it.
                    Err(e) if e.code() == Some("WRONGTYPE") => Ok(vec![None]),
                    Err(e) => Err(self.error(e)),
                }
            }
            _ => {
                let bytes: usize = keys.iter().map(|k| self.prefix.len() + k.len()).sum();
                let mut cmd = Cmd::with_capacity(keys.len() + 1, bytes + 4);
                cmd.arg("MGET");
                for key in keys {
                    cmd.arg(self.key(key));
                }
                match self.query::<Value>(&cmd).await? {
                    Value::Array(values) if values.len() == keys.len() => {
                        Ok(values.into_iter().map(cached_row).collect())
                    }
                    _ => Err(Error::unavailable(
                        NAME,
                        format!("MGET of {} keys got a reply of another shape", keys.len()),
                    )),
                }
            }
        }
    }

    async fn lease(&self, key: &Bytes) -> Result<Option<Lease>> {
        let lease = Lease(rand::random());
        let mut cmd = Cmd::with_capacity(6, 64 + self.prefix.len() + key.len());
        cmd.arg("SET")
            .arg(self.key(key))
            .arg(&marker(lease)[..])
            .arg("NX")
            .arg("PX")
            .arg(self.lease_ms);
        match self.query::<Value>(&cmd).await? {
            Value::Nil => Ok(None),
            _ => Ok(Some(lease)),
        }
    }

    /// A row with no time left (zero ttl, key already expired) is not
    /// stored; the lease is released instead so the next miss can fill.
    async fn fill(&self, key: &Bytes, lease: Lease, row: &Row, ttl: Duration) -> Result<bool> {
        let Some(ttl) = fill_ttl(row, ttl, now_millis()) else {
            self.release(key, lease).await?;
            return Ok(false);
        };
        let value = encode_row(row);
        let ttl_ms = duration_ms(ttl).to_string();
        let stored = self
            .script(&self.fill_script, key, lease, &[&value, ttl_ms.as_bytes()])
            .await?;
        Ok(stored == 1)
    }

    async fn release(&self, key: &Bytes, lease: Lease) -> Result<()> {
        self.script(&self.release_script, key, lease, &[]).await?;
        Ok(())
    }

    async fn invalidate(&self, keys: &[Bytes]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut cmd = Cmd::with_capacity(
            keys.len() + 1,
            8 + keys
                .iter()
                .map(|k| self.prefix.len() + k.len())
                .sum::<usize>(),
        );
        cmd.arg("UNLINK");
        for key in keys {
            cmd.arg(self.key(key));
        }
        self.query::<i64>(&cmd).await?;
        Ok(())
    }

    /// Walks the prefix with `SCAN` and unlinks each page, every round trip
    /// bounded by the timeout (the whole walk is not: a large cache takes
    /// many pages). Keys outside the prefix are never touched.
    async fn flush(&self) -> Result<()> {
        let pattern = self.prefix_pattern();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern[..])
                .arg("COUNT")
                .arg(SCAN_COUNT);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.query(&scan).await?;
            if !keys.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&keys[..]);
                self.query::<i64>(&unlink).await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    async fn ping(&self) -> Result<()> {
        self.query::<String>(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// One MGET over the pipelined connection. MGET answers nil for a key
/// holding another type, so a foreign value under the prefix is a miss.
async fn pipelined_get_many(reads: &Pipeline, keys: &[Bytes]) -> Result<Vec<Option<Row>>> {
    let frame = reads.call(Command::Keys("MGET", keys.to_vec())).await?;
    let mut rows = Vec::with_capacity(keys.len());
    match Reply::for_each_bulk(&frame, |value| rows.push(value.and_then(cached_bytes))) {
        Ok(n) if n == keys.len() => Ok(rows),
        Err(Ok(Reply::Error(text))) => Err(error_reply(&text)),
        Err(Err(e)) => Err(Error::unavailable(NAME, e)),
        _ => Err(Error::unavailable(
            NAME,
            format!("MGET of {} keys got a reply of another shape", keys.len()),
        )),
    }
}

/// The value a lease leaves in its key.
fn marker(lease: Lease) -> [u8; 9] {
    let mut m = [LEASE_TAG; 9];
    m[1..].copy_from_slice(&lease.0.to_be_bytes());
    m
}

/// A reply value as a cached row: nil, a lease marker, or anything that
/// does not decode is a miss.
fn cached_row(value: Value) -> Option<Row> {
    match value {
        Value::BulkString(bytes) => cached_bytes(Bytes::from(bytes)),
        _ => None,
    }
}

/// A cached value's bytes as a row: a lease marker or anything that does
/// not decode is a miss.
fn cached_bytes(bytes: Bytes) -> Option<Row> {
    if bytes.first() == Some(&LEASE_TAG) {
        return None;
    }
    decode_row(bytes).ok()
}

/// Whole milliseconds, at least 1 (Redis refuses `PX 0`).
fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Error text on one line, for a RESP error reply.
fn one_line(e: &impl std::fmt::Display) -> String {
    e.to_string().replace(['\r', '\n'], " ")
}
