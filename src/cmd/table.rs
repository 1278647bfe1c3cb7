//! The command table, modelled on Redis's own: name, arity, flags and key
//! positions. `COMMAND` answers from it and the dispatcher routes by it.

use bytes::Bytes;

use super::{hashes, keys, strings};
use crate::keyspace::WorkingSet;
use crate::resp::Frame;

/// A data command's semantics, independent of where keys live.
pub type Handler = fn(&[Bytes], &mut WorkingSet) -> Frame;

/// How a command is executed.
#[derive(Clone, Copy)]
pub enum Exec {
    /// Reads keys only: served by the cache-aside read path.
    Read(Handler),
    /// May change keys: served by the configured write policy.
    Write(Handler),
    /// Connection, server and transaction commands, handled by the session.
    Session,
}

/// One row of the command table.
#[derive(Clone, Copy)]
pub struct Spec {
    /// Lower-case name, as `COMMAND` reports it.
    pub name: &'static str,
    /// Redis arity: positive = exact argc, negative = at least |arity|.
    pub arity: i32,
    /// Flags as `COMMAND INFO` reports them.
    pub flags: &'static [&'static str],
    /// Key positions in argv: first, last (negative counts from the end), step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub exec: Exec,
}

impl Spec {
    pub fn is_write(&self) -> bool {
        matches!(self.exec, Exec::Write(_))
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// The keys of one call, in argv order (duplicates kept).
    pub fn keys<'a>(&self, argv: &'a [Bytes]) -> Vec<&'a Bytes> {
        self.key_iter(argv).collect()
    }

    /// As [`keys`](Self::keys), without collecting them (the read path
    /// gathers the keys of a whole pipeline into one list).
    pub fn key_iter<'a>(&self, argv: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> + use<'a> {
        let (first, last) = if self.first_key <= 0 || argv.len() <= self.first_key as usize {
            (1, 0)
        } else if self.last_key < 0 {
            (self.first_key, argv.len() as i32 + self.last_key)
        } else {
            (self.first_key, self.last_key.min(argv.len() as i32 - 1))
        };
        (first..=last)
            .step_by(self.step.max(1) as usize)
            .filter_map(|i| argv.get(i as usize))
    }
}

const R: &[&str] = &["readonly", "fast"];
const RS: &[&str] = &["readonly"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom", "fast"];
const C: &[&str] = &["fast", "loading", "stale"];
const A: &[&str] = &["admin", "noscript"];

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $f:expr, $l:expr, $s:expr, $exec:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $f,
            last_key: $l,
            step: $s,
            exec: $exec,
        }
    };
}

use Exec::{Read, Session, Write};

/// Every command spillway answers; anything else is `unknown command`.
pub static COMMANDS: &[Spec] = &[
    // connection and server
    spec!("ping", -1, C, 0, 0, 0, Session),
    spec!("echo", 2, C, 0, 0, 0, Session),
    spec!(
        "hello",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        0,
        0,
        0,
        Session
    ),
    spec!(
        "auth",
        -2,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        0,
        0,
        0,
        Session
    ),
    spec!("select", 2, &["loading", "stale", "fast"], 0, 0, 0, Session),
    spec!(
        "quit",
        -1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        0,
        0,
        0,
        Session
    ),
    spec!(
        "reset",
        1,
        &["noscript", "loading", "stale", "fast", "no_auth"],
        0,
        0,
        0,
        Session
    ),
    spec!(
        "client",
        -2,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        Session
    ),
    spec!("command", -1, &["loading", "stale"], 0, 0, 0, Session),
    spec!("info", -1, &["loading", "stale"], 0, 0, 0, Session),
    spec!("dbsize", 1, R, 0, 0, 0, Session),
    spec!("time", 1, &["loading", "stale", "fast"], 0, 0, 0, Session),
    spec!("scan", -2, RS, 0, 0, 0, Session),
    spec!("keys", 2, RS, 0, 0, 0, Session),
    spec!("flushdb", -1, W, 0, 0, 0, Session),
    spec!("flushall", -1, W, 0, 0, 0, Session),
    spec!("spillway", -2, A, 0, 0, 0, Session),
    spec!("waitdb", 2, &["noscript"], 0, 0, 0, Session),
    spec!(
        "multi",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        Session
    ),
    spec!(
        "exec",
        1,
        &["noscript", "loading", "stale"],
        0,
        0,
        0,
        Session
    ),
    spec!(
        "discard",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        Session
    ),
    spec!(
        "watch",
        -2,
        &["noscript", "loading", "stale", "fast"],
        1,
        -1,
        1,
        Session
    ),
    spec!(
        "unwatch",
        1,
        &["noscript", "loading", "stale", "fast"],
        0,
        0,
        0,
        Session
    ),
    // strings
    spec!("get", 2, R, 1, 1, 1, Read(strings::get)),
    spec!("mget", -2, R, 1, -1, 1, Read(strings::mget)),
    spec!("strlen", 2, R, 1, 1, 1, Read(strings::strlen)),
    spec!("getrange", 4, RS, 1, 1, 1, Read(strings::getrange)),
    spec!("set", -3, W, 1, 1, 1, Write(strings::set)),
    spec!("setnx", 3, WD, 1, 1, 1, Write(strings::setnx)),
    spec!("setex", 4, W, 1, 1, 1, Write(strings::setex)),
    spec!("psetex", 4, W, 1, 1, 1, Write(strings::psetex)),
    spec!("getdel", 2, WF, 1, 1, 1, Write(strings::getdel)),
    spec!("getex", -2, WF, 1, 1, 1, Write(strings::getex)),
    spec!("mset", -3, W, 1, -1, 2, Write(strings::mset)),
    spec!("msetnx", -3, W, 1, -1, 2, Write(strings::msetnx)),
    spec!("incr", 2, WD, 1, 1, 1, Write(strings::incr)),
    spec!("decr", 2, WD, 1, 1, 1, Write(strings::decr)),
    spec!("incrby", 3, WD, 1, 1, 1, Write(strings::incrby)),
    spec!("decrby", 3, WD, 1, 1, 1, Write(strings::decrby)),
    spec!("incrbyfloat", 3, WD, 1, 1, 1, Write(strings::incrbyfloat)),
    spec!("append", 3, WD, 1, 1, 1, Write(strings::append)),
    spec!("setrange", 4, W, 1, 1, 1, Write(strings::setrange)),
    // keys
    spec!("del", -2, &["write"], 1, -1, 1, Write(keys::del)),
    spec!("unlink", -2, WF, 1, -1, 1, Write(keys::del)),
    spec!("exists", -2, R, 1, -1, 1, Read(keys::exists)),
    spec!("type", 2, R, 1, 1, 1, Read(keys::type_)),
    spec!("expire", -3, WF, 1, 1, 1, Write(keys::expire)),
    spec!("pexpire", -3, WF, 1, 1, 1, Write(keys::pexpire)),
    spec!("expireat", -3, WF, 1, 1, 1, Write(keys::expireat)),
    spec!("pexpireat", -3, WF, 1, 1, 1, Write(keys::pexpireat)),
    spec!("ttl", 2, R, 1, 1, 1, Read(keys::ttl)),
    spec!("pttl", 2, R, 1, 1, 1, Read(keys::pttl)),
    spec!("expiretime", 2, R, 1, 1, 1, Read(keys::expiretime)),
    spec!("pexpiretime", 2, R, 1, 1, 1, Read(keys::pexpiretime)),
    spec!("persist", 2, WF, 1, 1, 1, Write(keys::persist)),
    // hashes
    spec!("hset", -4, WD, 1, 1, 1, Write(hashes::hset)),
    spec!("hmset", -4, WD, 1, 1, 1, Write(hashes::hmset)),
    spec!("hsetnx", 4, WD, 1, 1, 1, Write(hashes::hsetnx)),
    spec!("hget", 3, R, 1, 1, 1, Read(hashes::hget)),
    spec!("hmget", -3, R, 1, 1, 1, Read(hashes::hmget)),
    spec!("hgetall", 2, RS, 1, 1, 1, Read(hashes::hgetall)),
    spec!("hdel", -3, WF, 1, 1, 1, Write(hashes::hdel)),
    spec!("hexists", 3, R, 1, 1, 1, Read(hashes::hexists)),
    spec!("hlen", 2, R, 1, 1, 1, Read(hashes::hlen)),
    spec!("hkeys", 2, RS, 1, 1, 1, Read(hashes::hkeys)),
    spec!("hvals", 2, RS, 1, 1, 1, Read(hashes::hvals)),
    spec!("hincrby", 4, WD, 1, 1, 1, Write(hashes::hincrby)),
    spec!("hincrbyfloat", 4, WD, 1, 1, 1, Write(hashes::hincrbyfloat)),
    spec!("hstrlen", 3, R, 1, 1, 1, Read(hashes::hstrlen)),
];

/// Finds a command by name, case-insensitively, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    if name.len() > 16 {
        return None;
    }
    let mut buf = [0u8; 16];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    COMMANDS.iter().find(|s| s.name.as_bytes() == lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_keys() {
        let mset = lookup(b"MSet").unwrap();
        let argv: Vec<Bytes> = ["mset", "a", "1", "b", "2"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(mset.keys(&argv), vec!["a", "b"]);
        assert!(lookup(b"nosuch").is_none());
        assert!(mset.arity_ok(5) && !mset.arity_ok(2));
        let get = lookup(b"GET").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(3));
    }
}
