//! Exact per-key locks for write-behind writers. A writer holds its keys
//! from the load of their current rows until its writes are in the overlay,
//! that is across the WAL's fsync, so that the next writer of a key sees
//! the previous one (per-key order, read-modify-write).
//!
//! Every locked key has a FIFO queue of writers. A writer joins the queues
//! of all its keys at once, under one mutex, so wherever two writers share
//! keys the one that came first is ahead in every shared queue: no
//! deadlock, and no writer ever waits for one it shares no key with.
//! Striped locks (a fixed array, keys hashed onto it) would make unrelated
//! keys share a lock; held across an fsync by pipelines of many keys, that
//! chains unrelated pipelines behind each other and each group commit
//! catches only a few of them.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::Notify;

/// The queues of the keys some writer holds or waits for; a key with no
/// writer has no entry, so the table is as large as the writes in flight.
#[derive(Default)]
pub struct KeyQueues {
    queues: Mutex<HashMap<Bytes, Queue>>,
}

/// One key's writers: the one holding it, then those waiting, in order.
/// Most keys are held by one writer with nobody waiting: no allocation.
struct Queue {
    holder: Arc<Waiter>,
    waiting: VecDeque<Arc<Waiter>>,
}

struct Waiter {
    /// How many of its keys this writer does not hold yet (changed only
    /// under the table's mutex).
    behind: AtomicUsize,
    /// Woken once, when `behind` drops to zero.
    turn: Notify,
}

/// Holds the keys until dropped; dropping it while still waiting (a client
/// that went away) leaves the queues as if it had never joined.
pub struct KeyGuard<'a> {
    table: &'a KeyQueues,
    /// The distinct keys it joined the queues of.
    keys: Vec<Bytes>,
    waiter: Arc<Waiter>,
}

impl KeyQueues {
    /// Waits until this writer holds every key in `keys` (repeats allowed).
    pub async fn lock<'k>(&self, keys: impl IntoIterator<Item = &'k Bytes>) -> KeyGuard<'_> {
        let waiter = Arc::new(Waiter {
            behind: AtomicUsize::new(0),
            turn: Notify::new(),
        });
        let mut joined = Vec::new();
        let mut behind = 0;
        {
            let mut queues = self.queues();
            for key in keys {
                match queues.entry(key.clone()) {
                    Entry::Vacant(v) => {
                        v.insert(Queue {
                            holder: waiter.clone(),
                            waiting: VecDeque::new(),
                        });
                    }
                    Entry::Occupied(mut o) => {
                        let queue = o.get_mut();
                        let mine = |w: &Arc<Waiter>| Arc::ptr_eq(w, &waiter);
                        if mine(&queue.holder) || queue.waiting.back().is_some_and(mine) {
                            continue; // the same key twice
                        }
                        queue.waiting.push_back(waiter.clone());
                        behind += 1;
                    }
                }
                joined.push(key.clone());
            }
            waiter.behind.store(behind, Ordering::Relaxed);
        }
        let guard = KeyGuard {
            table: self,
            keys: joined,
            waiter,
        };
        if behind > 0 {
            // A turn given since the mutex was released is stored as a
            // permit, so it is not missed.
            guard.waiter.turn.notified().await;
        }
        guard
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<Bytes, Queue>> {
        // Every change under this lock is completed before it is released
        // or cannot panic half-way, so a poisoned table is still consistent.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keys with a writer holding or waiting for them.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queues().len()
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        let mut queues = self.table.queues();
        for key in self.keys.drain(..) {
            let Entry::Occupied(mut o) = queues.entry(key) else {
                continue;
            };
            let queue = o.get_mut();
            if Arc::ptr_eq(&queue.holder, &self.waiter) {
                match queue.waiting.pop_front() {
                    Some(next) => {
                        if next.behind.fetch_sub(1, Ordering::Relaxed) == 1 {
                            next.turn.notify_one();
                        }
                        queue.holder = next;
                    }
                    None => {
                        o.remove();
                    }
                }
            } else if let Some(at) = queue
                .waiting
                .iter()
                .position(|w| Arc::ptr_eq(w, &self.waiter))
            {
                queue.waiting.remove(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn keys(names: &[&'static str]) -> Vec<Bytes> {
        names
            .iter()
            .map(|n| Bytes::from_static(n.as_bytes()))
            .collect()
    }

    async fn blocked(fut: impl std::future::Future) -> bool {
        tokio::time::timeout(Duration::from_millis(50), fut)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn writers_wait_only_for_writers_sharing_a_key_in_arrival_order() {
        let q = KeyQueues::default();
        let first = q.lock(&keys(&["a", "b"])).await;
        let _other = q.lock(&keys(&["c", "d", "c"])).await;
        assert!(blocked(q.lock(&keys(&["x", "b"]))).await);
        drop(first);
        let _next = q.lock(&keys(&["b", "a"])).await;
        assert_eq!(q.len(), 4, "a, b, c, d");
    }

    #[tokio::test]
    async fn a_writer_gone_while_waiting_leaves_no_trace() {
        let q = Arc::new(KeyQueues::default());
        let holder = q.lock(&keys(&["a"])).await;
        // Waits behind the holder on `a`, and is first on `b`.
        assert!(blocked(q.lock(&keys(&["b", "a"]))).await);
        assert!(!blocked(q.lock(&keys(&["b"]))).await);
        drop(holder);
        assert!(!blocked(q.lock(&keys(&["a", "b"]))).await);
        assert_eq!(q.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_writers_in_any_key_order_never_deadlock_and_exclude() {
        let q = Arc::new(KeyQueues::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (q, inside) = (q.clone(), inside.clone());
                tokio::spawn(async move {
                    let order = if i % 2 == 0 { ["a", "b"] } else { ["b", "a"] };
                    for _ in 0..200 {
                        let _g = q.lock(&keys(&order)).await;
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("deadlock")
                .unwrap();
        }
        assert_eq!(q.len(), 0);
    }
}
