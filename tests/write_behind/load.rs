//! A pipelined write load on one raw connection, in its own thread, that
//! keeps per key the highest value it sent and the highest value that was
//! acknowledged. Values count up per key, so "the last write" of a key is
//! simply its highest value.
//!
//! The test thread can crash spillway under it ([`Load::crash`]): the load
//! notices the lost connection, counts the unanswered commands as sent but
//! not acknowledged, and reconnects once the test says spillway is back
//! ([`Load::resume`]), then writes a fresh generation of keys: what was in
//! flight at the crash stays the last write of its key, so the check after
//! the drain sees the outcome of every crash, not only of the last one.
//! [`Load::hold`] pauses it between batches, so reads can be compared with
//! what was acknowledged.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::support::{self, RawConn, encode_command};

/// Commands per pipelined batch, unless [`Load::start_named`] says otherwise.
const BATCH: usize = 50;
/// After each batch a load with MSETs sends `WAITDB` with this timeout (ms): a
/// pipeline is logged as one unit, far faster than the processor applies
/// the load's MSETs (blocks, each applied alone in its own transaction), so
/// without a pause the queue left at the end would take minutes to drain.
/// While the database is down WAITDB gives up after the timeout and the
/// load goes on writing.
const PACE_MS: &str = "100";
/// How long the load waits for spillway to come back before it gives up.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Which commands the load sends.
#[derive(Debug, Clone, Copy)]
pub enum Mix {
    /// SET and MSET only: writes accepted while the database is down.
    Blind,
    /// SET and MSET on strings, HSET on hashes (one field, `f`).
    WithHashes,
    /// SET and INCR on strings, and each INCR's reply must be the key's
    /// next value: a write sees the one before it, also within a pipeline.
    Counters,
}

/// Keys `G:s:0..` hold strings, keys `G:h:0..` hashes, `G` the generation.
pub const STRING_KEYS: usize = 200;
pub const HASH_KEYS: usize = 20;

/// What the load did, per key.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Highest value with a success reply.
    pub acked: BTreeMap<String, u64>,
    /// Highest value sent (acknowledged or not).
    pub sent: BTreeMap<String, u64>,
    /// Success replies so far.
    pub acks: u64,
    /// Error replies (all of them, with the command's first key).
    pub errors: Vec<String>,
}

struct Shared {
    addr: SocketAddr,
    mix: Mix,
    /// Written before every key, so several loads can share one spillway.
    prefix: String,
    batch_len: usize,
    stop: AtomicBool,
    /// Prefix of the keys written now; [`Load::resume`] moves to the next.
    generation: AtomicUsize,
    /// Whether spillway is up; held while connecting, so a crash cannot
    /// happen between the check and the connect.
    up: Mutex<bool>,
    /// Held for each whole batch; [`Load::hold`] takes it to pause the load.
    batch: Mutex<()>,
    tally: Mutex<Tally>,
}

pub struct Load {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    pub fn start(addr: SocketAddr, mix: Mix) -> Load {
        Load::start_named(addr, mix, "", BATCH)
    }

    /// A load on keys starting with `prefix`, `batch_len` commands a pipeline.
    pub fn start_named(addr: SocketAddr, mix: Mix, prefix: &str, batch_len: usize) -> Load {
        let shared = Arc::new(Shared {
            addr,
            mix,
            prefix: prefix.to_string(),
            batch_len,
            stop: AtomicBool::new(false),
            generation: AtomicUsize::new(0),
            up: Mutex::new(true),
            batch: Mutex::new(()),
            tally: Mutex::new(Tally::default()),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("write-load".into())
            .spawn(move || run(&worker))
            .expect("cannot start the load thread");
        Load {
            shared,
            thread: Some(thread),
        }
    }

    pub fn acks(&self) -> u64 {
        lock(&self.shared.tally).acks
    }

    /// Waits until `more` acknowledgements past the current count arrived.
    #[track_caller]
    pub fn wait_for_acks(&self, more: u64, timeout: Duration) {
        let target = self.acks() + more;
        let reached = support::poll_until(timeout, || {
            self.acks() >= target || self.thread.as_ref().is_some_and(|t| t.is_finished())
        });
        assert!(
            reached && self.acks() >= target,
            "the load reached {} of {target} acknowledgements within {timeout:?}{}",
            self.acks(),
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                " (its thread ended)"
            } else {
                ""
            }
        );
    }

    /// Runs `kill` (which takes spillway down) with the load told that
    /// spillway is gone: it will not reconnect until [`Load::resume`].
    pub fn crash(&self, kill: impl FnOnce()) {
        let mut up = lock(&self.shared.up);
        *up = false;
        kill();
    }

    /// Spillway answers again: the load may reconnect, and writes the
    /// next generation of keys.
    pub fn resume(&self) {
        let mut up = lock(&self.shared.up);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        *up = true;
    }

    /// Pauses the load between batches for as long as the guard lives.
    pub fn hold(&self) -> MutexGuard<'_, ()> {
        lock(&self.shared.batch)
    }

    /// A copy of the tally so far (stable while [`Load::hold`] is held).
    pub fn tally(&self) -> Tally {
        lock(&self.shared.tally).clone()
    }

    /// Stops after the current batch and returns the final tally.
    pub fn stop(mut self) -> Tally {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take()
            && let Err(panic) = thread.join()
        {
            std::panic::resume_unwind(panic);
        }
        self.tally()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(shared: &Shared) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut next: BTreeMap<String, u64> = BTreeMap::new();
    let mut conn: Option<RawConn> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(c) = conn.as_mut() else {
            conn = connect_when_up(shared);
            continue;
        };
        let _batch = lock(&shared.batch);
        if !run_batch(shared, c, &mut rng, &mut next) {
            conn = None;
        }
    }
}

/// Connects once spillway is up; `None` when the load is stopped first.
fn connect_when_up(shared: &Shared) -> Option<RawConn> {
    loop {
        let ready = support::poll_until(RECONNECT_TIMEOUT, || {
            shared.stop.load(Ordering::SeqCst) || *lock(&shared.up)
        });
        assert!(ready, "spillway was not back within {RECONNECT_TIMEOUT:?}");
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        let up = lock(&shared.up);
        if *up {
            return Some(RawConn::connect(shared.addr));
        }
    }
}

/// One command of a batch: its bytes, the `(key, value)` pairs it writes,
/// and the one reply it must get, when only one is right.
struct Cmd {
    bytes: Vec<u8>,
    writes: Vec<(String, u64)>,
    expect: Option<Vec<u8>>,
}

/// Sends one pipelined batch and reads its replies. False: the connection
/// was lost (the commands without a reply stay unacknowledged).
fn run_batch(
    shared: &Shared,
    conn: &mut RawConn,
    rng: &mut Rng,
    next: &mut BTreeMap<String, u64>,
) -> bool {
    let generation = shared.generation.load(Ordering::SeqCst);
    let generation = format!("{}{generation}", shared.prefix);
    let cmds: Vec<Cmd> = (0..shared.batch_len)
        .map(|_| make_cmd(shared.mix, &generation, rng, next))
        .collect();
    {
        let mut tally = lock(&shared.tally);
        for (key, value) in cmds.iter().flat_map(|c| &c.writes) {
            tally.sent.insert(key.clone(), *value);
        }
    }
    let bytes: Vec<u8> = cmds.iter().flat_map(|c| c.bytes.iter().copied()).collect();
    let mut stream = conn.stream();
    if stream.write_all(&bytes).is_err() {
        return false;
    }
    for cmd in &cmds {
        let reply = match conn.try_read_reply() {
            Ok(Some(reply)) => reply,
            Ok(None) | Err(_) => return false,
        };
        let mut tally = lock(&shared.tally);
        let right = cmd.expect.as_ref().is_none_or(|want| *want == reply);
        if right && matches!(reply.first(), Some(b'+' | b':')) {
            tally.acks += 1;
            for (key, value) in &cmd.writes {
                let acked = tally.acked.entry(key.clone()).or_default();
                *acked = (*acked).max(*value);
            }
        } else {
            let key = &cmd.writes[0].0;
            tally
                .errors
                .push(format!("{key}: {}", reply.escape_ascii()));
        }
    }
    if matches!(shared.mix, Mix::Counters) {
        return true; // no blocks: the drain keeps up
    }
    let mut stream = conn.stream();
    if stream
        .write_all(&encode_command(&["WAITDB", PACE_MS]))
        .is_err()
    {
        return false;
    }
    matches!(conn.try_read_reply(), Ok(Some(reply)) if reply.first() == Some(&b':'))
}

fn make_cmd(mix: Mix, generation: &str, rng: &mut Rng, next: &mut BTreeMap<String, u64>) -> Cmd {
    let mut bump = |key: String| {
        let value = next.entry(key.clone()).or_default();
        *value += 1;
        (key, *value)
    };
    let roll = rng.below(10);
    if roll == 0 && !matches!(mix, Mix::Counters) {
        // MSET of three distinct string keys.
        let first = rng.below(STRING_KEYS);
        let writes: Vec<(String, u64)> = (0..3)
            .map(|i| bump(format!("{generation}:s:{}", (first + i * 67) % STRING_KEYS)))
            .collect();
        let mut args = vec!["MSET".to_string()];
        for (key, value) in &writes {
            args.push(key.clone());
            args.push(value.to_string());
        }
        return Cmd {
            bytes: encode_command(&args),
            writes,
            expect: None,
        };
    }
    if roll == 1 && matches!(mix, Mix::WithHashes) {
        let (key, value) = bump(format!("{generation}:h:{}", rng.below(HASH_KEYS)));
        return Cmd {
            bytes: encode_command(&["HSET", key.as_str(), "f", &value.to_string()]),
            writes: vec![(key, value)],
            expect: None,
        };
    }
    if roll < 5 && matches!(mix, Mix::Counters) {
        let (key, value) = bump(format!("{generation}:s:{}", rng.below(STRING_KEYS)));
        return Cmd {
            bytes: encode_command(&["INCR", key.as_str()]),
            writes: vec![(key, value)],
            expect: Some(format!(":{value}\r\n").into_bytes()),
        };
    }
    let (key, value) = bump(format!("{generation}:s:{}", rng.below(STRING_KEYS)));
    Cmd {
        bytes: encode_command(&["SET", key.as_str(), &value.to_string()]),
        writes: vec![(key, value)],
        expect: None,
    }
}

/// xorshift64: a fixed, reproducible key sequence.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Whether a key the load wrote holds a hash.
pub fn is_hash(key: &str) -> bool {
    key.contains(":h:")
}
