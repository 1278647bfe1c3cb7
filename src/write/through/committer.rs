//! How groups form: the committer task takes the queued writes as groups
//! and starts each group's transaction.
//!
//! One group reads and upserts at a time (`working`); the groups before it
//! may still be committing. The next group forms when that work is done,
//! from everything queued by then, but it only starts beside groups still
//! committing when enough writes wait to make it worth a transaction of
//! its own; otherwise it waits for them to finish and gathers more. So
//! when commits are quick, each group gathers what queued during the whole
//! previous one (fewer, fuller transactions: less work per write), and when
//! commits are slow (a busy disk), groups overlap instead of waiting.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};

use super::{Committer, Pending};
use crate::cache::CacheTier;

/// Most writes in one group: bounds one transaction's statements and locks.
const MAX_GROUP: usize = 256;
/// Groups in flight at once, each on its own database connection.
const GROUPS_IN_FLIGHT: usize = 4;
/// Writes waiting that let a group start while others still commit.
const OVERLAP_MIN: usize = 8;

impl<C: CacheTier> Committer<C> {
    /// Runs until every sender of `rx` is gone; groups in flight finish.
    pub(super) async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Pending>) {
        let in_flight = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
        let working = Arc::new(Semaphore::new(1));
        let mut waiting: VecDeque<Pending> = VecDeque::new();
        loop {
            if waiting.is_empty() {
                match rx.recv().await {
                    Some(p) => waiting.push_back(p),
                    None => return,
                }
            }
            let Ok(work) = working.clone().acquire_owned().await else {
                return;
            };
            gather(&mut rx, &mut waiting, &in_flight).await;
            let Ok(slot) = in_flight.clone().acquire_owned().await else {
                return;
            };
            let group: Vec<Pending> = waiting.drain(..waiting.len().min(MAX_GROUP)).collect();
            let committer = self.clone();
            tokio::spawn(async move {
                committer.commit(group, Some(work)).await;
                drop(slot);
            });
        }
    }
}

/// Moves what is queued into `waiting`; while groups are still in flight
/// and fewer than `OVERLAP_MIN` writes wait, keeps gathering until one of
/// those changes (or the queue closes).
async fn gather(
    rx: &mut mpsc::UnboundedReceiver<Pending>,
    waiting: &mut VecDeque<Pending>,
    in_flight: &Semaphore,
) {
    loop {
        while let Ok(p) = rx.try_recv() {
            waiting.push_back(p);
        }
        let idle = in_flight.available_permits() == GROUPS_IN_FLIGHT;
        if idle || waiting.len() >= OVERLAP_MIN {
            return;
        }
        tokio::select! {
            p = rx.recv() => match p {
                Some(p) => waiting.push_back(p),
                None => return,
            },
            all = in_flight.acquire_many(GROUPS_IN_FLIGHT as u32) => drop(all),
        }
    }
}
