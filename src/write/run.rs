//! A pipeline's run of consecutive write-behind writes, executed as one
//! unit so that the whole run shares one WAL request and one wait for
//! durability, instead of one group commit per write.
//!
//! 1. lock every key of the run at once (stripes in ascending order, so two
//!    runs cannot deadlock);
//! 2. load the current rows of the keys that writes needing the current
//!    value name (non-blind writes, DEL/UNLINK) in one call; the other keys
//!    only from the overlay, as a single blind write does;
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

use std::collections::HashMap;

use bytes::Bytes;

use super::behind::{Refusal, WriteBehind};
use super::{Call, RunOutcome, is_blind, record};
use crate::cache::CacheTier;
use crate::keyspace::{Row, Version, WorkingSet, now_millis};
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
        let (keys, current, whole) = run_keys(calls);
        let _locks = self.locks.lock(&keys).await;
        let mut ws = WorkingSet::new(now_millis());
        if !current.is_empty() {
            let rows = self.aside.rows(&current).await.map_err(|e| {
                tracing::debug!(error = %e, "cannot load a run's rows; writing one by one");
                Stop::Unloaded
            })?;
            for (key, row) in current.iter().zip(rows) {
                ws.load(key.clone(), row);
            }
        }
        for (key, row) in whole.iter().zip(self.overlay.get_many(&whole)) {
            ws.load(key.clone(), row.unwrap_or_default());
        }
        let mut replies = Vec::with_capacity(calls.len());
        let mut logged: Vec<Logged> = Vec::new();
        for call in calls {
            replies.push(super::run_handler(call, &mut ws));
            if let Some(write) = self.take_write(call, &mut ws) {
                logged.push(write);
            }
        }
        if logged.is_empty() {
            return Ok(RunOutcome {
                replies,
                seqs: Vec::new(),
            });
        }
        // Held at once: the instance's low-water version stays below them
        // until the processor has applied them (or they are refused).
        let held: Vec<_> = logged
            .iter()
            .map(|l| self.backlog.hold(l.version))
            .collect();
        if !self.backlog.wait_for_room(self.backpressure_wait).await {
            return Err(Stop::Refused(Refusal::Busy));
        }
        let records: Vec<(u64, Bytes)> = logged
            .iter()
            .map(|l| (l.version.0, record::encode(&l.rows)))
            .collect();
        let sizes: Vec<u64> = records.iter().map(|(_, p)| p.len() as u64).collect();
        let first = self
            .wal
            .append_all(records)
            .await
            .map_err(|e| Stop::Refused(Refusal::Backend(e)))?
            .0;
        self.overlay
            .insert_run(first, logged.iter().map(|l| l.rows.as_slice()));
        let mut seqs = Vec::with_capacity(logged.len());
        for ((write, held), bytes) in logged.into_iter().zip(held).zip(sizes) {
            let seq = first + seqs.len() as u64;
            self.backlog.logged(bytes);
            held.keep();
            // The processor only stops after the write path at shutdown; a
            // send error cannot lose the write: it is in the WAL and replayed.
            let block = write.rows.len() > 1;
            let _ = self.queue.send(Item {
                seq,
                version: write.version,
                rows: write.rows,
                bytes,
                block,
            });
            seqs.push(seq);
        }
        Ok(RunOutcome { replies, seqs })
    }

    /// The rows `call` just changed, stamped with a new version above what
    /// its keys held, and their change marks cleared for the next write.
    fn take_write(&self, call: &Call, ws: &mut WorkingSet) -> Option<Logged> {
        let keys = call.spec.keys(&call.argv);
        if !keys.iter().any(|k| ws.is_changed(k)) {
            return None;
        }
        let floor = keys
            .iter()
            .map(|k| ws.loaded_version(k))
            .max()
            .unwrap_or(Version::ZERO);
        let version = self.hlc.next_above(floor);
        let rows = keys
            .into_iter()
            .filter_map(|k| Some((k.clone(), ws.take_change(k, version)?)))
            .collect();
        Some(Logged { version, rows })
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

/// The distinct keys of the run in first-seen order (to lock), split into
/// those whose current value some write needs and those only written whole.
fn run_keys(calls: &[Call]) -> (Vec<Bytes>, Vec<Bytes>, Vec<Bytes>) {
    let mut index: HashMap<&Bytes, usize> = HashMap::new();
    let mut keys: Vec<(&Bytes, bool)> = Vec::new();
    for call in calls {
        let needs = !is_blind(call) || matches!(call.spec.name, "del" | "unlink");
        for key in call.spec.keys(&call.argv) {
            match index.get(key) {
                Some(&i) => keys[i].1 |= needs,
                None => {
                    index.insert(key, keys.len());
                    keys.push((key, needs));
                }
            }
        }
    }
    let all = keys.iter().map(|(k, _)| (*k).clone()).collect();
    let (current, whole): (Vec<_>, Vec<_>) = keys.into_iter().partition(|(_, needs)| *needs);
    let strip = |v: Vec<(&Bytes, bool)>| v.into_iter().map(|(k, _)| k.clone()).collect();
    (all, strip(current), strip(whole))
}
