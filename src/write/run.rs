//! A pipeline's run of consecutive write-behind writes, executed as one
//! unit so that the whole run shares one WAL request and one wait for
//! durability, instead of one group commit per write.
//!
//! 1. lock every key of the run at once (stripes in ascending order, so two
//!    runs cannot deadlock);
//! 2. load the current rows of the keys that writes needing the current
//!    value name (non-blind writes, DEL/UNLINK) in one call. Keys only ever
//!    written whole are not looked up at all: their writes do not depend on
//!    what they hold, and the clock issues every version above all it has
//!    issued or observed, pending writes included, so no floor is needed;
//! 3. run the handlers in order over that one working set, so a later write
//!    sees an earlier one; every write that changed something takes its own
//!    version and becomes its own record (a multi-key command is one block
//!    record, as alone);
//! 4. wait for room in the backlog once, append every record in one request
//!    (consecutive seqs), then add them to the overlay in seq order, queue
//!    them for the processor and answer.
//!
//! The run shares fate: BUSY or a failed append answers every write with
//! the error and logs none of it, since a reply computed over an earlier
//! write of the run cannot stand without it. If the one load fails (the
//! database is down), the writes go one by one through
//! [`WriteBehind::execute`], so blind writes are still accepted.

use bytes::{Bytes, BytesMut};

use super::behind::{Refusal, WriteBehind};
use super::{Call, RunOutcome, is_blind, record};
use crate::cache::CacheTier;
use crate::keyspace::{Row, Value, Version, WorkingSet, now_millis};
use crate::processor::Item;
use crate::resp::Frame;

/// Why a run stopped before anything was logged.
enum Stop {
    /// The current rows could not be loaded: retry the writes one by one.
    Unloaded,
    /// Every write of the run gets this refusal.
    Refused(Refusal),
}

/// One write of the run that changed something: its WAL record to be.
struct Logged {
    version: Version,
    rows: Vec<(Bytes, Row)>,
    /// Size of its WAL payload, once encoded.
    bytes: u64,
}

impl<C: CacheTier> WriteBehind<C> {
    /// Runs `calls`, plain writes of one pipeline in order, as one unit.
    /// Replies come back in order; `seqs` holds the WAL seq of every write
    /// that was logged.
    pub async fn execute_run(&self, calls: &[Call]) -> RunOutcome {
        match self.try_run(calls).await {
            Ok(outcome) => outcome,
            Err(Stop::Refused(refusal)) => RunOutcome {
                replies: vec![refusal.into_frame(); calls.len()],
                seqs: Vec::new(),
            },
            Err(Stop::Unloaded) => self.one_by_one(calls).await,
        }
    }

    async fn try_run(&self, calls: &[Call]) -> Result<RunOutcome, Stop> {
        let keys = RunKeys::of(calls);
        let _locks = self.locks.lock(keys.named.iter().copied()).await;
        let mut ws = WorkingSet::with_capacity(now_millis(), keys.named.len());
        if !keys.current.is_empty() {
            let rows = self.aside.rows(&keys.current).await.map_err(|e| {
                tracing::debug!(error = %e, "cannot load a run's rows; writing one by one");
                Stop::Unloaded
            })?;
            for (key, row) in keys.current.iter().zip(rows) {
                ws.load(key.clone(), row);
            }
        }
        let mut replies = Vec::with_capacity(calls.len());
        let mut logged: Vec<Logged> = Vec::new();
        for (call, named) in calls.iter().zip(keys.per_call()) {
            replies.push(super::run_handler(call, &mut ws));
            if let Some(write) = self.take_write(named, &mut ws) {
                logged.push(write);
            }
        }
        if logged.is_empty() {
            return Ok(RunOutcome {
                replies,
                seqs: Vec::new(),
            });
        }
        compact(&mut logged);
        // Held at once: the instance's low-water version stays below them
        // until the processor has applied them (or they are refused).
        let held: Vec<_> = logged
            .iter()
            .map(|l| self.backlog.hold(l.version))
            .collect();
        if !self.backlog.wait_for_room(self.backpressure_wait).await {
            return Err(Stop::Refused(Refusal::Busy));
        }
        let first = self
            .wal
            .append_all(encode(&mut logged))
            .await
            .map_err(|e| Stop::Refused(Refusal::Backend(e)))?
            .0;
        self.overlay
            .insert_run(first, logged.iter().map(|l| l.rows.as_slice()));
        // Older cached values go now, before the processor can commit: a
        // crash between its commit and its own invalidation must not leave
        // them in the cache over the database's newer rows.
        let changed: Vec<Bytes> = logged
            .iter()
            .flat_map(|l| l.rows.iter().map(|(k, _)| k.clone()))
            .collect();
        self.aside.invalidate(&changed).await;
        let mut seqs = Vec::with_capacity(logged.len());
        for (write, held) in logged.into_iter().zip(held) {
            let seq = first + seqs.len() as u64;
            self.backlog.logged(write.bytes);
            held.keep();
            // The processor only stops after the write path at shutdown; a
            // send error cannot lose the write: it is in the WAL and replayed.
            let block = write.rows.len() > 1;
            let _ = self.queue.send(Item {
                seq,
                version: write.version,
                rows: write.rows,
                bytes: write.bytes,
                block,
            });
            seqs.push(seq);
        }
        Ok(RunOutcome { replies, seqs })
    }

    /// The rows a call just changed (`named`: the keys it names), stamped
    /// with a new version above what its keys held, and their change marks
    /// cleared for the next write.
    fn take_write(&self, named: &[&Bytes], ws: &mut WorkingSet) -> Option<Logged> {
        if !named.iter().any(|k| ws.is_changed(k)) {
            return None;
        }
        let floor = named
            .iter()
            .map(|k| ws.loaded_version(k))
            .max()
            .unwrap_or(Version::ZERO);
        let version = self.hlc.next_above(floor);
        let rows = named
            .iter()
            .filter_map(|k| Some(((*k).clone(), ws.take_change(k, version)?)))
            .collect();
        Some(Logged {
            version,
            rows,
            bytes: 0,
        })
    }

    /// The writes of a run one at a time, each as a single write would go.
    async fn one_by_one(&self, calls: &[Call]) -> RunOutcome {
        let mut out = RunOutcome {
            replies: Vec::with_capacity(calls.len()),
            seqs: Vec::new(),
        };
        for call in calls {
            let reply = match self.execute(std::slice::from_ref(call), &[]).await {
                Ok(outcome) => {
                    out.seqs.extend(outcome.seq);
                    outcome
                        .replies
                        .and_then(|mut r| r.pop())
                        .unwrap_or_else(|| Frame::err("no reply"))
                }
                Err(refusal) => refusal.into_frame(),
            };
            out.replies.push(reply);
        }
        out
    }
}

/// The keys of a run: every key each call names, and the distinct keys
/// whose current value some write needs (the rest are only written whole).
struct RunKeys<'a> {
    named: Vec<&'a Bytes>,
    /// Where each call's keys end in `named`.
    ends: Vec<usize>,
    current: Vec<Bytes>,
}

impl<'a> RunKeys<'a> {
    fn of(calls: &'a [Call]) -> RunKeys<'a> {
        let mut keys = RunKeys {
            named: Vec::with_capacity(calls.len()),
            ends: Vec::with_capacity(calls.len()),
            current: Vec::new(),
        };
        for call in calls {
            let named = call.spec.keys(&call.argv);
            let needs = !is_blind(call) || matches!(call.spec.name, "del" | "unlink");
            if needs {
                for key in &named {
                    if !keys.current.contains(key) {
                        keys.current.push((*key).clone());
                    }
                }
            }
            keys.named.extend(named);
            keys.ends.push(keys.named.len());
        }
        keys
    }

    /// Each call's keys, in order.
    fn per_call(&self) -> impl Iterator<Item = &[&'a Bytes]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.named[s..e])
    }
}

/// Copies the keys and values of the run's rows out of the request buffer
/// they were parsed from into one buffer sized for them. A pending row
/// otherwise keeps its connection's whole read chunk (4 KiB or more) alive
/// until the processor has applied it, and shares that chunk's reference
/// count with the connection's parsing; now it holds its run's few bytes,
/// and the read buffer is free for reuse once the run is answered.
fn compact(logged: &mut [Logged]) {
    let size = logged
        .iter()
        .flat_map(|l| &l.rows)
        .map(|(k, row)| k.len() + row.entry.as_ref().map_or(0, |e| e.value.weight()))
        .sum();
    let mut buf = BytesMut::with_capacity(size);
    let mut copy = |b: &Bytes| {
        buf.extend_from_slice(b);
        buf.split().freeze()
    };
    for (key, row) in logged.iter_mut().flat_map(|l| &mut l.rows) {
        *key = copy(key);
        if let Some(entry) = &mut row.entry {
            match &mut entry.value {
                Value::Str(s) => *s = copy(s),
                Value::Hash(h) => *h = h.iter().map(|(f, v)| (copy(f), copy(v))).collect(),
            }
        }
    }
}

/// The records of a run, encoded into one buffer they share: one
/// allocation for the run, freed at once by the WAL thread after writing.
/// Notes each write's payload size for the backlog.
fn encode(logged: &mut [Logged]) -> Vec<(u64, Bytes)> {
    let bound = logged.iter().map(|l| record::encoded_bound(&l.rows)).sum();
    let mut buf = BytesMut::with_capacity(bound);
    logged
        .iter_mut()
        .map(|l| {
            record::encode_into(&l.rows, &mut buf);
            let payload = buf.split().freeze();
            l.bytes = payload.len() as u64;
            (l.version.0, payload)
        })
        .collect()
}
