//! INFO: Redis's usual sections (server, clients, stats, keyspace) plus
//! spillway's own (cache, database, writebehind).

use std::fmt::Write as _;

use bytes::Bytes;

use crate::cache::CacheTier;
use crate::engine::Engine;
use crate::keyspace::now_millis;
use crate::resp::Frame;
use crate::stats::Stats;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "stats",
    "cache",
    "database",
    "writebehind",
    "namespaces",
    "keyspace",
];

pub async fn info(engine: &Engine, argv: &[Bytes]) -> Frame {
    let wanted: Vec<String> = argv[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let all = wanted.is_empty()
        || wanted
            .iter()
            .any(|w| matches!(w.as_str(), "all" | "everything" | "default"));
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let mut out = String::new();
    for section in DEFAULT.iter().filter(|s| want(s)) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        write_section(engine, section, &mut out).await;
    }
    Frame::Verbatim(Bytes::from(out))
}

async fn write_section(engine: &Engine, section: &str, out: &mut String) {
    let st = &engine.stats;
    let g = Stats::get;
    let _ = match section {
        "server" => {
            let uptime = (now_millis() - engine.started_ms()) / 1000;
            write!(
                out,
                "# Server\r\nredis_version:{}\r\nspillway_version:{}\r\nredis_mode:standalone\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
                crate::REDIS_VERSION,
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::process::id(),
                engine.config.server.listen.rsplit(':').next().unwrap_or(""),
                uptime / 86400,
            )
        }
        "clients" => write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
            g(&st.connected_clients),
            engine.config.server.max_clients
        ),
        "stats" => write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
            g(&st.connections_received),
            g(&st.commands_processed),
            g(&st.rejected_connections),
            g(&st.keyspace_hits),
            g(&st.keyspace_misses),
        ),
        "cache" => {
            let cache = engine.aside.cache();
            let health = engine.aside.health();
            write!(
                out,
                "# Cache\r\ncache_backend:{}\r\ncache_status:{}\r\ncache_hits:{}\r\ncache_misses:{}\r\ncache_fills:{}\r\ncache_fills_refused:{}\r\ncache_errors:{}\r\n",
                cache.name(),
                if health.usable() {
                    "up"
                } else if health.is_distrusted() {
                    "recovering"
                } else {
                    "down"
                },
                g(&st.cache_hits),
                g(&st.cache_misses),
                g(&st.cache_fills),
                g(&st.cache_fills_refused),
                g(&st.cache_errors),
            )
        }
        "database" => write!(
            out,
            "# Database\r\ndb_backend:{}\r\ndb_status:{}\r\ndb_reads:{}\r\ndb_commits:{}\r\nwrite_policy:{}\r\n",
            engine.store.name(),
            if engine.db_health.is_up() {
                "up"
            } else {
                "down"
            },
            g(&st.db_reads),
            g(&st.db_commits),
            policy_name(engine),
        ),
        "writebehind" => write_behind(engine, out),
        "namespaces" => match &engine.mapped {
            Some(m) => m.write_info(out),
            None => out.write_str("# Namespaces\r\nnamespaces:0\r\n"),
        },
        "keyspace" => {
            out.push_str("# Keyspace\r\n");
            match engine.key_counts().await {
                Ok(c) if c.keys > 0 => write!(
                    out,
                    "db0:keys={},expires={},avg_ttl=0\r\n",
                    c.keys, c.expires
                ),
                Ok(_) => Ok(()),
                Err(e) => write!(out, "# keyspace unavailable: {e}\r\n"),
            }
        }
        _ => Ok(()),
    };
}

fn policy_name(engine: &Engine) -> &'static str {
    if engine.is_read_only() {
        return "read-only";
    }
    match engine.config.write.policy {
        crate::config::Policy::WriteThrough => "write-through",
        crate::config::Policy::WriteBehind => "write-behind",
        crate::config::Policy::ReadOnly => "read-only",
    }
}

fn write_behind(engine: &Engine, out: &mut String) -> std::fmt::Result {
    let Some(b) = engine.behind() else {
        return out.write_str("# WriteBehind\r\nwb_pending:0\r\nwb_pending_bytes:0\r\nwb_oldest_pending_ms:0\r\nwal_bytes:0\r\nwal_fsyncs:0\r\ncheckpoint_seq:0\r\nwb_retries:0\r\nwb_dead_letters:0\r\n");
    };
    let backlog = &b.writer.backlog;
    let wal = b.writer.wal.stats();
    write!(
        out,
        "# WriteBehind\r\nwb_instance:{}\r\nwb_pending:{}\r\nwb_pending_bytes:{}\r\nwb_pending_keys:{}\r\nwb_oldest_pending_ms:{}\r\nwal_bytes:{}\r\nwal_fsyncs:{}\r\nwal_appends:{}\r\nwal_segments:{}\r\ncheckpoint_seq:{}\r\nwb_retries:{}\r\nwb_dead_letters:{}\r\n",
        b.instance,
        backlog.pending(),
        backlog.pending_bytes(),
        b.writer.overlay.len(),
        backlog.oldest_pending().as_millis(),
        wal.bytes,
        wal.fsyncs,
        wal.appends,
        wal.segments,
        backlog.checkpoint(),
        backlog.retries(),
        b.dead_letters.count(),
    )
}
