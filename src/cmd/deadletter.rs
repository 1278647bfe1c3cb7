//! `SPILLWAY DEADLETTER LIST|RETRY|DROP`: the operator's view of the
//! write-behind records the database rejected for good.
//!
//! Replies:
//! - `LIST [count]` (default 10): an array of this instance's dead letters,
//!   oldest first, each a map (a flat field/value array under RESP2, as
//!   Redis's XINFO does) with `id` (integer), `key` (bulk), `seq` (integer,
//!   the WAL sequence), `version` (integer), `failed_at` (integer, ms since
//!   the epoch) and `error` (bulk, the database's error, or the note that
//!   the write was parked behind an earlier dead letter of its key).
//! - `RETRY key`: applies the key's dead letters (the newest wins, and only
//!   over an older stored version), deletes them and unparks the key, in one
//!   transaction; the reply is how many were retried. If the database still
//!   rejects them, an error reply and nothing changes.
//! - `DROP key`: deletes the key's dead letters and unparks it; the reply
//!   is how many went.
//!
//! Under write-through there is no queue and no dead letters: an error says so.

use bytes::Bytes;

use super::args::parse_i64;
use crate::engine::Engine;
use crate::error::Error;
use crate::resp::Frame;
use crate::store::DeadLetter;

const DEFAULT_COUNT: usize = 10;

/// `argv` is the whole command: `SPILLWAY DEADLETTER sub [arg]`.
pub async fn deadletter(engine: &Engine, argv: &[Bytes]) -> Frame {
    let Some(behind) = engine.behind() else {
        return Frame::err(
            "write-behind is not enabled (write.policy is not \"write-behind\"), so there are no dead letters",
        );
    };
    let dead = &behind.dead_letters;
    let store = engine.store.as_ref();
    let sub = argv
        .get(2)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    match (&sub[..], &argv[3.min(argv.len())..]) {
        (b"list", []) => list(dead.list(store, DEFAULT_COUNT).await),
        (b"list", [count]) => match parse_i64(count) {
            Some(n) if n >= 0 => list(dead.list(store, n as usize).await),
            _ => Frame::err("value is out of range, must be positive"),
        },
        (b"retry", [key]) => match dead.retry(store, key).await {
            Ok(n) => {
                // Reads may have cached the database's value from before.
                engine.aside.invalidate(std::slice::from_ref(key)).await;
                Frame::Integer(n as i64)
            }
            Err(e @ Error::Rejected { .. }) => {
                Frame::err(format!("dead letters not retried, nothing changed: {e}"))
            }
            Err(e) => Frame::err(e),
        },
        (b"drop", [key]) => match dead.drop_key(store, key).await {
            Ok(n) => Frame::Integer(n as i64),
            Err(e) => Frame::err(e),
        },
        (b"list" | b"retry" | b"drop", _) => Frame::err(format!(
            "wrong number of arguments for 'spillway|deadletter|{}' command",
            String::from_utf8_lossy(&sub)
        )),
        _ => Frame::err(format!(
            "unknown subcommand '{}'. Try SPILLWAY DEADLETTER LIST|RETRY|DROP.",
            String::from_utf8_lossy(argv.get(2).map_or(&b""[..], |s| &s[..]))
        )),
    }
}

fn list(found: crate::error::Result<Vec<DeadLetter>>) -> Frame {
    match found {
        Ok(letters) => Frame::Array(letters.into_iter().map(entry).collect()),
        Err(e) => Frame::err(e),
    }
}

fn entry(d: DeadLetter) -> Frame {
    let field = |name: &'static str| Frame::bulk(Bytes::from_static(name.as_bytes()));
    Frame::Map(vec![
        (field("id"), Frame::Integer(d.id)),
        (field("key"), Frame::Bulk(d.key)),
        (field("seq"), Frame::Integer(d.seq as i64)),
        (field("version"), Frame::Integer(d.row.version.as_i64())),
        (field("failed_at"), Frame::Integer(d.failed_at)),
        (field("error"), Frame::bulk(Bytes::from(d.error))),
    ])
}
