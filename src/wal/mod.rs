//! The write-ahead log of the write-behind policy: a write is appended here,
//! made durable and acknowledged, and applied to the database later.
//!
//! - [`frame`]: byte layout of segment headers and record frames.
//! - [`segment`]: segment files, directory fsync, the checkpoint file.
//! - `writer`: the group-commit thread that owns the active segment.
//! - [`scan`]: the read-only walk over the segments; torn tail vs corruption.
//! - [`recovery`]: startup: cut a torn tail, refuse corruption, drop applied segments.
//! - [`mod@inspect`]: [`verify`] and [`inspect()`] for the `spillway wal` commands.
//!
//! Lifecycle: [`Wal::open`] recovers the records not yet applied (above the
//! checkpoint) and starts the writer; [`Wal::append`] returns a [`Seq`] once
//! the record is durable per [`FsyncPolicy`]; [`Wal::checkpoint`] records
//! that everything up to a seq is applied and deletes the segments it
//! covers, so the log holds only unapplied writes; [`Wal::close`] syncs and
//! stops. The record payload is opaque here: its encoding belongs to the
//! write-behind policy.

pub mod frame;
pub mod inspect;
pub mod recovery;
pub mod scan;
pub mod segment;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::config::WriteBehindConfig;
use crate::error::{Error, Result};

pub use self::inspect::{VerifyReport, inspect, verify};
pub use self::scan::CorruptAt;
pub use self::segment::read_checkpoint_file;
use self::writer::{Request, Shared, Writer};

/// Sequence number of a record; strictly increasing across segments and
/// restarts, so "applied up to S" (the checkpoint) is one number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(pub u64);

impl Seq {
    /// The seq after this one (saturating: seqs near the top are refused at open).
    pub fn next(self) -> Seq {
        Seq(self.0.saturating_add(1))
    }
}

impl std::fmt::Display for Seq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// When an append counts as durable, with Redis's `appendfsync` meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Acknowledged after fdatasync (shared by a group): nothing acknowledged
    /// is lost even on power loss. The only policy under which the
    /// write-behind durability promise holds.
    #[default]
    Always,
    /// Acknowledged after the write; fsynced at most once a second. A crash
    /// of the machine (not just the process) can lose about a second.
    EverySec,
    /// Acknowledged after the write; the kernel flushes when it likes.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "everysec" => Ok(FsyncPolicy::EverySec),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(Error::Config(format!(
                "write_behind.fsync must be \"always\", \"everysec\" or \"never\", not {other:?}"
            ))),
        }
    }
}

/// Where the log lives and how it syncs.
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
}

impl WalOptions {
    /// The options `[write_behind]` configures.
    pub fn from_config(c: &WriteBehindConfig) -> Result<WalOptions> {
        Ok(WalOptions {
            dir: c.wal_dir.clone(),
            fsync: c.fsync.parse()?,
            segment_bytes: c.segment_bytes.0,
        })
    }
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: Seq,
    pub version: u64,
    pub payload: Bytes,
}

/// The bytes cut from the end of the last segment at open (or found by
/// `verify`): what a crash in the middle of a write left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    pub segment: PathBuf,
    /// Offset of the first byte that was not an intact record.
    pub offset: u64,
    pub bytes: u64,
}

/// What open found on disk.
#[derive(Debug)]
pub struct Recovered {
    /// Every intact record with seq above the checkpoint, in seq order.
    /// Payloads share the buffers their segments were read into: copy the
    /// few that are kept long if memory matters.
    pub records: Vec<Record>,
    /// What was cut from the tail, if anything (also logged).
    pub torn_tail: Option<TornTail>,
    /// First seq of the oldest segment still on disk; None for a new log.
    pub oldest_retained: Option<Seq>,
}

/// Counters for INFO and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Bytes in all segment files.
    pub bytes: u64,
    /// fdatasync calls on segments so far (group commits under `always`).
    pub fsyncs: u64,
    pub segments: usize,
    /// Highest seq assigned; below the first record when none was.
    pub last_seq: Seq,
    /// Records appended since open.
    pub appends: u64,
    /// Highest checkpoint mirrored since open (or given to open).
    pub checkpoint: Seq,
}

/// The write-ahead log. `Send + Sync`: share it through an `Arc`.
pub struct Wal {
    dir: PathBuf,
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Wal {
    /// Opens the log in `opts.dir` (creating it), recovers, and starts the
    /// writer thread. `checkpoint` is the highest seq known applied: records
    /// at or below it are not returned and segments wholly at or below it are
    /// deleted. A torn tail is cut and reported; corruption, or a checkpoint
    /// below the oldest retained segment, is an error and nothing is served.
    pub fn open(opts: WalOptions, checkpoint: Seq) -> Result<(Wal, Recovered)> {
        if opts.segment_bytes == 0 {
            return Err(Error::Config(
                "write_behind.segment_bytes must be above 0".into(),
            ));
        }
        let started = Instant::now();
        let r = recovery::recover(&opts.dir, checkpoint, opts.segment_bytes)?;
        tracing::info!(
            dir = %opts.dir.display(),
            records = r.records.len(),
            segments = r.segments.len(),
            next_seq = %r.next_seq,
            took_ms = started.elapsed().as_millis() as u64,
            "WAL recovered"
        );
        let shared = Arc::new(Shared::default());
        shared.bytes.store(r.bytes, Ordering::Relaxed);
        shared
            .last_seq
            .store(r.next_seq.0.wrapping_sub(1), Ordering::Relaxed);
        shared.checkpoint.store(checkpoint.0, Ordering::Relaxed);
        *shared.segments() = r.segments;
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            dir: opts.dir.clone(),
            policy: opts.fsync,
            segment_bytes: opts.segment_bytes,
            file: r.active,
            file_len: r.active_len,
            next_seq: r.next_seq,
            shared: shared.clone(),
            rx,
            dirty: false,
            last_sync: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("spillway-wal".into())
            .spawn(move || writer.run())?;
        let wal = Wal {
            dir: opts.dir,
            tx,
            shared,
            thread: Mutex::new(Some(thread)),
        };
        let recovered = Recovered {
            records: r.records,
            torn_tail: r.torn_tail,
            oldest_retained: r.oldest_retained,
        };
        Ok((wal, recovered))
    }

    /// Appends one record; returns its seq once it is durable per the fsync
    /// policy. Seqs are assigned in file order. An `Err` means the record is
    /// not in the log (and will not appear in it after a restart).
    pub async fn append(&self, version: u64, payload: Bytes) -> Result<Seq> {
        self.append_all(vec![(version, payload)]).await
    }

    /// Appends `(version, payload)` records as one request: they get
    /// consecutive seqs, in order, and share one wait for durability.
    /// Returns the first seq. An `Err` means none of them is in the log.
    pub async fn append_all(&self, records: Vec<(u64, Bytes)>) -> Result<Seq> {
        if records.is_empty() {
            return Err(Error::Rejected {
                backend: "wal",
                detail: "an append of no records".into(),
            });
        }
        if let Some((_, big)) = records.iter().find(|(_, p)| p.len() > frame::MAX_PAYLOAD) {
            return Err(Error::Rejected {
                backend: "wal",
                detail: format!(
                    "record of {} bytes is larger than the WAL allows",
                    big.len()
                ),
            });
        }
        let (done, rx) = oneshot::channel();
        // Sent before the first await, so appends started together queue
        // together and share one group commit.
        self.tx
            .send(Request::Append { records, done })
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Records that every seq up to `applied` is applied: mirrors it to the
    /// checkpoint file (atomically) and deletes the segments it wholly
    /// covers. A value below an earlier one is ignored. Blocking file I/O
    /// with fsyncs: call it from a blocking context.
    pub fn checkpoint(&self, applied: Seq) -> Result<()> {
        let mut segments = self.shared.segments();
        if applied.0 < self.shared.checkpoint.load(Ordering::Acquire) {
            return Ok(());
        }
        segment::write_checkpoint(&self.dir, applied)?;
        self.shared.checkpoint.store(applied.0, Ordering::Release);
        let (_, freed) = recovery::drop_applied(&self.dir, &mut segments, applied)?;
        self.shared.bytes.fetch_sub(freed, Ordering::Relaxed);
        Ok(())
    }

    pub fn stats(&self) -> WalStats {
        let s = &self.shared;
        WalStats {
            bytes: s.bytes.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            segments: s.segments().len(),
            last_seq: Seq(s.last_seq.load(Ordering::Acquire)),
            appends: s.appends.load(Ordering::Relaxed),
            checkpoint: Seq(s.checkpoint.load(Ordering::Acquire)),
        }
    }

    /// Makes everything written durable and stops the writer thread, for
    /// shutdown. Appends after it fail. Calling it again does nothing.
    pub async fn close(&self) -> Result<()> {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Request::Close { done }).is_ok() {
            let _ = rx.await;
        }
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            // The thread has answered and is returning: joining is immediate.
            h.join()
                .map_err(|_| Error::Io(std::io::Error::other("WAL writer thread panicked")))?;
        }
        Ok(())
    }

    /// The directory the log lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Test hook: the next `n` group writes write half their bytes and then
    /// fail as if the disk were full, exercising the failed-write path.
    #[doc(hidden)]
    pub fn inject_write_failures(&self, n: u32) {
        self.shared
            .inject_write_failures
            .store(n, Ordering::Release);
    }
}

fn closed() -> Error {
    Error::unavailable("wal", "the write-ahead log is closed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_parses_the_config_words() {
        assert_eq!(
            "always".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Always
        );
        assert_eq!(
            "everysec".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::EverySec
        );
        assert_eq!("never".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Never);
        let err = "Always".parse::<FsyncPolicy>().unwrap_err().to_string();
        assert!(err.contains("write_behind.fsync"), "{err}");
        let opts = WalOptions::from_config(&WriteBehindConfig::default()).unwrap();
        assert_eq!(
            (opts.fsync, opts.segment_bytes),
            (FsyncPolicy::Always, 64 << 20)
        );
    }

    #[test]
    fn wal_can_be_shared_across_tasks() {
        fn shared<T: Send + Sync + 'static>() {}
        shared::<Wal>();
        shared::<Arc<Wal>>();
    }

    #[test]
    fn seq_orders_displays_and_saturates() {
        assert!(Seq(2) > Seq(1));
        assert_eq!(Seq(41).next().to_string(), "42");
        assert_eq!(Seq(u64::MAX).next(), Seq(u64::MAX));
    }

    #[tokio::test]
    async fn one_appender_at_a_time_costs_one_fsync_each() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            dir: dir.path().into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 1 << 20,
        };
        let (wal, _) = Wal::open(opts, Seq(0)).unwrap();
        for i in 1..=3 {
            assert_eq!(
                wal.append(i, Bytes::from_static(b"v")).await.unwrap(),
                Seq(i)
            );
        }
        let s = wal.stats();
        assert_eq!(
            (s.appends, s.fsyncs, s.last_seq, s.segments),
            (3, 3, Seq(3), 1)
        );
        wal.close().await.unwrap();
        wal.close().await.unwrap();
        assert!(
            wal.append(4, Bytes::new())
                .await
                .unwrap_err()
                .is_retryable()
        );
    }

    #[tokio::test]
    async fn a_batch_takes_consecutive_seqs_and_one_fsync_or_fails_whole() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            dir: dir.path().into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 1 << 20,
        };
        let (wal, _) = Wal::open(opts.clone(), Seq(0)).unwrap();
        let batch = |n: u64| {
            (1..=n)
                .map(|v| (v, Bytes::from(vec![v as u8; 9])))
                .collect()
        };
        assert_eq!(wal.append_all(batch(3)).await.unwrap(), Seq(1));
        assert_eq!(
            wal.append(9, Bytes::from_static(b"x")).await.unwrap(),
            Seq(4)
        );
        assert_eq!((wal.stats().appends, wal.stats().fsyncs), (4, 2));
        wal.inject_write_failures(1);
        assert!(wal.append_all(batch(5)).await.is_err());
        assert!(wal.append_all(Vec::new()).await.is_err());
        assert_eq!(wal.append_all(batch(2)).await.unwrap(), Seq(5));
        wal.close().await.unwrap();
        drop(wal);
        let (_, recovered) = Wal::open(opts, Seq(0)).unwrap();
        let seqs: Vec<(u64, u64)> = recovered
            .records
            .iter()
            .map(|r| (r.seq.0, r.version))
            .collect();
        assert_eq!(seqs, vec![(1, 1), (2, 2), (3, 3), (4, 9), (5, 1), (6, 2)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_sharing_a_group_each_learn_their_own_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            dir: dir.path().into(),
            fsync: FsyncPolicy::Always,
            segment_bytes: 1 << 20,
        };
        let wal = Arc::new(Wal::open(opts.clone(), Seq(0)).unwrap().0);
        let tasks: Vec<_> = (0..40u64)
            .map(|t| {
                let wal = wal.clone();
                tokio::spawn(async move {
                    let batch = (0..t % 4 + 1)
                        .map(|i| (t, Bytes::from(format!("{t}-{i}"))))
                        .collect();
                    (t, wal.append_all(batch).await.unwrap())
                })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        let fsyncs = wal.stats().fsyncs;
        assert!(
            fsyncs < 40,
            "no two batches shared a group: nothing checked"
        );
        wal.close().await.unwrap();
        let (_, recovered) = Wal::open(opts, Seq(0)).unwrap();
        for (t, first) in answers {
            for i in 0..t % 4 + 1 {
                let r = &recovered.records[(first.0 + i - 1) as usize];
                assert_eq!(
                    (r.seq.0, r.payload.clone()),
                    (first.0 + i, Bytes::from(format!("{t}-{i}")))
                );
            }
        }
    }

    #[test]
    fn zero_segment_size_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            dir: dir.path().into(),
            fsync: FsyncPolicy::Never,
            segment_bytes: 0,
        };
        assert!(matches!(Wal::open(opts, Seq(0)), Err(Error::Config(_))));
    }
}
