//! Server commands: COMMAND, INFO, DBSIZE, TIME, SCAN, KEYS, the refused
//! FLUSHDB/FLUSHALL, and spillway's own `SPILLWAY ...` administration
//! (its dead-letter commands in `deadletter`).

use bytes::Bytes;

use super::table::{COMMANDS, Spec};
use crate::engine::Engine;
use crate::keyspace::glob;
use crate::resp::Frame;
use crate::server::session::Session;

fn bulk(text: &str) -> Frame {
    Frame::bulk(Bytes::copy_from_slice(text.as_bytes()))
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO name…`, `COMMAND DOCS [name…]`.
pub fn command(argv: &[Bytes]) -> Frame {
    if argv.len() == 1 {
        return Frame::Array(COMMANDS.iter().map(command_info).collect());
    }
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"count" if argv.len() == 2 => Frame::Integer(COMMANDS.len() as i64),
        b"info" => {
            if argv.len() == 2 {
                return Frame::Array(COMMANDS.iter().map(command_info).collect());
            }
            Frame::Array(
                argv[2..]
                    .iter()
                    .map(|n| super::lookup(n).map_or(Frame::Null, command_info))
                    .collect(),
            )
        }
        b"docs" => {
            let specs: Vec<&Spec> = if argv.len() == 2 {
                COMMANDS.iter().collect()
            } else {
                argv[2..].iter().filter_map(|n| super::lookup(n)).collect()
            };
            Frame::Map(
                specs
                    .into_iter()
                    .map(|s| (bulk(s.name), command_docs(s)))
                    .collect(),
            )
        }
        b"list" => Frame::Array(COMMANDS.iter().map(|s| bulk(s.name)).collect()),
        b"getkeys" if argv.len() >= 3 => match super::lookup(&argv[2]) {
            Some(spec) if spec.arity_ok(argv.len() - 2) => {
                let keys = spec.keys(&argv[2..]);
                if keys.is_empty() {
                    Frame::err("The command has no key arguments")
                } else {
                    Frame::Array(keys.into_iter().map(|k| Frame::Bulk(k.clone())).collect())
                }
            }
            Some(_) => Frame::err("Invalid number of arguments specified for command"),
            None => Frame::err("Invalid command specified"),
        },
        _ => Frame::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

fn command_info(s: &Spec) -> Frame {
    let category = if s.is_write() { "@write" } else { "@read" };
    Frame::Array(vec![
        bulk(s.name),
        Frame::Integer(s.arity as i64),
        Frame::Set(s.flags.iter().map(|f| Frame::Simple((*f).into())).collect()),
        Frame::Integer(s.first_key as i64),
        Frame::Integer(s.last_key as i64),
        Frame::Integer(s.step as i64),
        Frame::Set(vec![Frame::Simple(category.into())]),
        Frame::Set(vec![]),
        Frame::Array(vec![]),
        Frame::Array(vec![]),
    ])
}

fn command_docs(s: &Spec) -> Frame {
    let group = match s.exec {
        super::Exec::Session => "server",
        _ if s.name.starts_with('h') && s.name != "hello" => "hash",
        _ => "generic",
    };
    Frame::Map(vec![
        (bulk("summary"), bulk(s.name)),
        (bulk("since"), bulk("1.0.0")),
        (bulk("group"), bulk(group)),
    ])
}

pub async fn dbsize(engine: &Engine) -> Frame {
    match engine.key_counts().await {
        Ok(c) => Frame::Integer(c.keys as i64),
        Err(e) => Frame::err(e),
    }
}

pub fn time() -> Frame {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    Frame::Array(vec![
        bulk(&(micros / 1_000_000).to_string()),
        bulk(&(micros % 1_000_000).to_string()),
    ])
}

/// `SCAN cursor [MATCH p] [COUNT n] [TYPE t]` over the database keyspace.
pub async fn scan(engine: &Engine, argv: &[Bytes]) -> Frame {
    let cursor = match std::str::from_utf8(&argv[1])
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    {
        Some(c) => c,
        None => return Frame::err("invalid cursor"),
    };
    let (mut pattern, mut count, mut kind) = (None, 10usize, None);
    let mut i = 2;
    while i < argv.len() {
        let opt = argv[i].to_ascii_lowercase();
        let Some(val) = argv.get(i + 1) else {
            return Frame::err("syntax error");
        };
        match &opt[..] {
            b"match" => pattern = Some(val.clone()),
            b"count" => match super::args::parse_i64(val) {
                Some(n) if n >= 1 => count = n.min(100_000) as usize,
                Some(_) => return Frame::err("syntax error"),
                None => return Frame::err("value is not an integer or out of range"),
            },
            b"type" => kind = Some(String::from_utf8_lossy(val).to_ascii_lowercase()),
            _ => return Frame::err("syntax error"),
        }
        i += 2;
    }
    let page = match engine.scan(cursor, count).await {
        Ok(p) => p,
        Err(e) => return Frame::err(e),
    };
    let keys = page
        .keys
        .into_iter()
        .filter(|(k, t)| {
            pattern
                .as_ref()
                .is_none_or(|p| matches_all(p) || glob::matches(p, k))
                && kind.as_ref().is_none_or(|want| want == t)
        })
        .map(|(k, _)| Frame::Bulk(k))
        .collect();
    Frame::Array(vec![bulk(&page.cursor.to_string()), Frame::Array(keys)])
}

/// `KEYS pattern`: a whole scan; as costly as it is in Redis.
pub async fn keys(engine: &Engine, argv: &[Bytes]) -> Frame {
    let (mut cursor, mut out) = (0u64, Vec::new());
    loop {
        let page = match engine.scan(cursor, 1000).await {
            Ok(p) => p,
            Err(e) => return Frame::err(e),
        };
        out.extend(
            page.keys
                .into_iter()
                .filter(|(k, _)| matches_all(&argv[1]) || glob::matches(&argv[1], k))
                .map(|(k, _)| Frame::Bulk(k)),
        );
        if page.cursor == 0 {
            return Frame::Array(out);
        }
        cursor = page.cursor;
    }
}

/// A lone `*` means every key, including the empty one, as in Redis
/// (`stringmatchlen` itself does not match "" against "*").
fn matches_all(pattern: &[u8]) -> bool {
    pattern == b"*"
}

/// FLUSHDB and FLUSHALL would delete the system of record: refused.
pub fn flush_refused(name: &str) -> Frame {
    Frame::err(format!(
        "{} is refused: spillway's keyspace is the database (the system of record) and this would delete it; use SPILLWAY CACHE FLUSH to empty only the cache tier",
        name.to_ascii_uppercase()
    ))
}

/// `SPILLWAY RELOAD`, `SPILLWAY CACHE FLUSH` and `SPILLWAY DEADLETTER LIST|RETRY|DROP`.
pub async fn spillway(engine: &Engine, argv: &[Bytes]) -> Frame {
    let sub = argv[1].to_ascii_lowercase();
    if sub == b"deadletter" {
        return super::deadletter::deadletter(engine, argv).await;
    }
    let words: Vec<Vec<u8>> = argv[1..].iter().map(|a| a.to_ascii_lowercase()).collect();
    match words.iter().map(|w| &w[..]).collect::<Vec<_>>()[..] {
        [b"reload"] => match engine.reload() {
            Ok(_) => Frame::ok(),
            Err(why) => Frame::err(format!("reload refused, configuration unchanged: {why}")),
        },
        [b"cache", b"flush"] => {
            use crate::cache::CacheTier;
            match engine.aside.cache().flush().await {
                Ok(()) => Frame::ok(),
                Err(e) => Frame::err(e),
            }
        }
        _ => Frame::err(format!(
            "unknown subcommand '{}'. Try SPILLWAY RELOAD, SPILLWAY CACHE FLUSH or SPILLWAY DEADLETTER LIST|RETRY|DROP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

/// `WAITDB timeout-ms`: blocks until every write-behind write this
/// connection made is applied in the database, or the timeout passes (0 =
/// no timeout); replies with how many are still unapplied. As Redis's
/// `WAIT`/`WAITAOF`, it lets a client ask for stronger durability per write.
pub async fn waitdb(engine: &Engine, sess: &mut Session, argv: &[Bytes]) -> Frame {
    let ms = match super::args::parse_i64(&argv[1]) {
        Some(ms) if ms >= 0 => ms as u64,
        Some(_) => return Frame::err("timeout is negative"),
        None => return Frame::err("timeout is not an integer or out of range"),
    };
    let Some(behind) = engine.behind() else {
        return Frame::Integer(0);
    };
    let backlog = &behind.writer.backlog;
    let deadline =
        (ms > 0).then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(ms));
    loop {
        let progress = backlog.progress();
        let left = sess.still_unapplied(backlog.checkpoint());
        if left == 0 {
            return Frame::Integer(0);
        }
        let woke = match deadline {
            Some(at) => tokio::time::timeout_at(at, progress).await.is_ok(),
            None => {
                progress.await;
                true
            }
        };
        if !woke {
            return Frame::Integer(sess.still_unapplied(backlog.checkpoint()) as i64);
        }
    }
}
