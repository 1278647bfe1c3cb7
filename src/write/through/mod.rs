//! Write-through: a write is acknowledged only after it committed in the
//! database, and the cache then holds nothing for its keys (CONTRACT
//! invariant 1).
//!
//! Concurrent writes share transactions. `execute` queues the write (one
//! command, or a MULTI block with its WATCHed keys); a committer task
//! (`committer.rs`) takes what queued while the previous group worked and
//! runs it as one group (`group.rs`): lock every key, read every row, run
//! each write in arrival order over one working set, upsert the changed
//! rows while fencing them in the cache (`fence.rs`), commit, invalidate
//! the cache, then reply to each write. One transaction then carries many
//! writes, where each write used to pay its own round trips and commit.

mod committer;
mod fence;
mod group;

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::locks::KeyLocks;
use super::{Call, Watched};
use crate::cache::CacheTier;
use crate::cache::aside::CacheAside;
use crate::error::{Error, Result};
use crate::keyspace::Hlc;
use crate::resp::Frame;
use crate::stats::Stats;
use crate::store::Store;

/// Stripes of the in-process key locks: groups of dozens of random keys
/// rarely share one, so groups in flight rarely wait for each other.
const LOCK_STRIPES: usize = 65536;

/// What one write gets back: its replies, or `None` when a watched key
/// changed (EXEC's nil reply; nothing written).
type Reply = Result<Option<Vec<Frame>>>;

/// One write waiting for its group.
struct Pending {
    calls: Vec<Call>,
    watched: Vec<Watched>,
    queued: Instant,
    reply: oneshot::Sender<Reply>,
}

/// The write-through policy. Its committer task runs as long as it lives.
pub struct WriteThrough<C> {
    queue: mpsc::UnboundedSender<Pending>,
    backend: &'static str,
    _cache: PhantomData<fn() -> C>,
}

/// What every group needs, shared by the committer and its groups.
struct Committer<C> {
    store: Arc<dyn Store>,
    aside: Arc<CacheAside<C>>,
    hlc: Arc<Hlc>,
    locks: KeyLocks,
    stats: Arc<Stats>,
    /// Bounds each statement, and a write's wait in the queue.
    timeout: Duration,
}

impl<C: CacheTier> WriteThrough<C> {
    /// Starts the committer; needs a Tokio runtime. `timeout` bounds each
    /// statement, and also how long a write may wait for its group: past
    /// it the write fails unwritten, as it did waiting for a connection.
    pub fn new(
        store: Arc<dyn Store>,
        aside: Arc<CacheAside<C>>,
        hlc: Arc<Hlc>,
        stats: Arc<Stats>,
        timeout: Duration,
    ) -> Self {
        let backend = store.name();
        let committer = Arc::new(Committer {
            store,
            aside,
            hlc,
            locks: KeyLocks::with_stripes(LOCK_STRIPES),
            stats,
            timeout,
        });
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(committer.run(rx));
        WriteThrough {
            queue,
            backend,
            _cache: PhantomData,
        }
    }

    /// Runs `calls` as one atomic unit, in a transaction it may share with
    /// other writes. `Ok(None)` when a watched key changed (EXEC's nil
    /// reply); nothing was written then. An error means nothing was
    /// written, unless it is `Error::CommitUnknown`.
    pub async fn execute(&self, calls: &[Call], watched: &[Watched]) -> Result<Option<Vec<Frame>>> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            calls: calls.to_vec(),
            watched: watched.to_vec(),
            queued: Instant::now(),
            reply,
        };
        if self.queue.send(pending).is_err() {
            return Err(Error::unavailable(self.backend, "write-through stopped"));
        }
        // The sender goes away unanswered only if its group's task died
        // (a panic), possibly after the commit.
        answer.await.unwrap_or_else(|_| {
            Err(Error::CommitUnknown {
                backend: self.backend,
                detail: "the group committing this write stopped".into(),
            })
        })
    }
}
