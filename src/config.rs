//! Configuration: a plain serde struct, loaded once from a TOML file and
//! `SPILLWAY__SECTION__KEY` environment overrides, validated, then passed
//! by value. Every key and default is documented in `config/default.toml`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub cache: CacheConfig,
    pub database: DatabaseConfig,
    pub write: WriteConfig,
    pub write_behind: WriteBehindConfig,
    /// Keys that address rows of existing tables (`[[namespaces]]`).
    pub namespaces: Vec<crate::mapped::NamespaceConfig>,
    /// The file this was loaded from, read again on reload.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// When set, clients must AUTH before anything but HELLO/AUTH/QUIT.
    pub requirepass: Option<String>,
    /// Connections past this get `-ERR max number of clients reached`.
    pub max_clients: usize,
    /// One request (all of its arguments) larger than this is a protocol error.
    pub max_request_bytes: ByteSize,
    /// Keys (key + field for hashes) longer than this are refused: Postgres
    /// cannot index arbitrarily long keys.
    pub max_key_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:6380".into(),
            requirepass: None,
            max_clients: 10_000,
            max_request_bytes: ByteSize(512 << 20),
            max_key_bytes: 2048,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// "memory" | "redis".
    pub backend: String,
    pub url: Option<String>,
    pub key_prefix: String,
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Absent keys are cached this long; zero disables negative caching.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    pub max_bytes: ByteSize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            backend: "memory".into(),
            url: None,
            key_prefix: "spillway:".into(),
            ttl: Duration::from_secs(600),
            negative_ttl: Duration::from_secs(1),
            max_bytes: ByteSize(256 << 20),
            timeout: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub pool_size: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// The least time tombstones and expired rows are kept before the
    /// sweeper may purge them; write-behind instances can hold them longer
    /// (their low-water versions).
    #[serde(with = "humantime_serde")]
    pub tombstone_retention: Duration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://data/spillway.db?mode=rwc".into(),
            pool_size: 16,
            timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(2),
            tombstone_retention: Duration::from_secs(3600),
        }
    }
}

/// The write policy: where a write must be before it is acknowledged.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Committed in the database, then the cache is updated.
    #[default]
    WriteThrough,
    /// In the cache and the local WAL; the database is updated in batches.
    WriteBehind,
    /// Writes are refused.
    ReadOnly,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WriteConfig {
    pub policy: Policy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriteBehindConfig {
    pub wal_dir: PathBuf,
    /// "always" | "everysec" | "never".
    pub fsync: String,
    pub segment_bytes: ByteSize,
    pub batch_max: usize,
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    pub max_pending: u64,
    pub max_pending_bytes: ByteSize,
    #[serde(with = "humantime_serde")]
    pub backpressure_wait: Duration,
}

impl Default for WriteBehindConfig {
    fn default() -> Self {
        WriteBehindConfig {
            wal_dir: PathBuf::from("data/wal"),
            fsync: "always".into(),
            segment_bytes: ByteSize(64 << 20),
            batch_max: 1000,
            flush_interval: Duration::from_millis(20),
            max_pending: 1_000_000,
            max_pending_bytes: ByteSize(1 << 30),
            backpressure_wait: Duration::from_secs(1),
        }
    }
}

/// A size in bytes, written as `512MiB`, `64MB`, `1GiB`, `4096` or `4KiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Option<ByteSize> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().ok()?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            _ => return None,
        };
        n.checked_mul(mult).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Str(s) => ByteSize::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid byte size {s:?}"))),
        }
    }
}

impl Config {
    /// Loads `path` (or `config/default.toml` when present), applies the
    /// environment overrides and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let mut builder = config::Config::builder();
        match path {
            Some(p) => builder = builder.add_source(config::File::from(p).required(true)),
            None if Path::new("config/default.toml").exists() => {
                builder = builder.add_source(config::File::with_name("config/default.toml"))
            }
            None => {}
        }
        let env = config::Environment::with_prefix("SPILLWAY")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        let raw = builder
            .add_source(env)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let config: Config = raw
            .try_deserialize()
            .map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(Config {
            source: path.map(Path::to_path_buf),
            ..config
        })
    }

    /// Rejects values that would make spillway misbehave rather than fail.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Config(msg));
        if !matches!(self.cache.backend.as_str(), "memory" | "redis") {
            return bad(format!(
                "cache.backend must be \"memory\" or \"redis\", not {:?}",
                self.cache.backend
            ));
        }
        if self.cache.backend == "redis" && self.cache.url.is_none() {
            return bad("cache.backend = \"redis\" needs cache.url".into());
        }
        let db = &self.database.url;
        if !(db.starts_with("postgres://")
            || db.starts_with("postgresql://")
            || db.starts_with("sqlite:"))
        {
            return bad(format!(
                "database.url must start with postgres:// or sqlite:, not {db:?}"
            ));
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size must be at least 1".into());
        }
        if self.server.max_clients == 0 || self.server.max_key_bytes == 0 {
            return bad("server.max_clients and server.max_key_bytes must be at least 1".into());
        }
        if self.database.tombstone_retention.is_zero() {
            return bad("database.tombstone_retention must be above zero".into());
        }
        if self.database.timeout.is_zero() || self.cache.timeout.is_zero() {
            return bad("database.timeout and cache.timeout must be above zero".into());
        }
        // One list of spellings: the WAL's own parser says what is valid.
        self.write_behind.fsync.parse::<crate::wal::FsyncPolicy>()?;
        if self.write_behind.batch_max == 0 {
            return bad("write_behind.batch_max must be at least 1".into());
        }
        crate::mapped::config::validate(&self.namespaces, self.write.policy, &self.database.url)
            .map_err(Error::Config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("512MiB"), Some(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("1GiB"), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("10 MB"), Some(ByteSize(10_000_000)));
        assert_eq!(ByteSize::parse("4096"), Some(ByteSize(4096)));
        assert_eq!(ByteSize::parse("12XB"), None);
        assert_eq!(ByteSize::parse("99999999999999GiB"), None);
    }

    #[test]
    fn shipped_default_file_matches_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let text = std::fs::read_to_string(&path).expect("config/default.toml is shipped");
        let file: Config = toml_parse(&text);
        let builtin = Config::default();
        assert_eq!(format!("{file:?}"), format!("{builtin:?}"));
    }

    fn toml_parse(text: &str) -> Config {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("default.toml parses")
    }

    #[test]
    fn validation_rejects_nonsense() {
        let mut c = Config::default();
        c.cache.backend = "memcached".into();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.cache.backend = "redis".into();
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.write_behind.fsync = "sometimes".into();
        assert!(c.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }
}
