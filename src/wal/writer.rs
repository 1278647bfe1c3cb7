//! Group commit: the one thread that owns the active segment.
//!
//! Appenders send requests through a channel; one request may carry several
//! records (a pipeline's run of writes), which get consecutive seqs and one
//! answer. The thread takes the first request, drains whatever else is
//! queued, assigns consecutive seqs, writes the whole group with one write call and, under `fsync = always`, makes it
//! durable with one `fdatasync` before acknowledging every request in it.
//! While that fsync runs the next group queues up, so the number of fsyncs
//! grows far slower than the number of appends: throughput grows with
//! concurrency. One thread (rather than a blocking task per write) keeps
//! seq order equal to file order without any lock on the write path.
//!
//! Failures:
//! - A failed write (disk full, I/O error) fails the whole group: the file is
//!   cut back to its length before the group and that cut made durable, so
//!   no record of a failed group can reappear after a crash, and later groups
//!   carry on normally.
//! - A failed fsync is fatal: the process aborts. After a failed fsync Linux
//!   may already have dropped the dirty pages and marked them clean, so a
//!   retry can "succeed" without the data ever reaching the disk; continuing
//!   would acknowledge writes that are lost. Restarting and recovering from
//!   what is really on disk is the only safe answer (the lesson of
//!   PostgreSQL's "fsyncgate").

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::segment::{self, CreateError, SegmentFile};
use super::{FsyncPolicy, Seq, frame};
use crate::error::{Error, Result};

/// A group stops growing past this many bytes, bounding the write buffer.
const MAX_GROUP_BYTES: usize = 8 << 20;
/// `everysec`: the longest dirty data waits for an fsync.
const EVERYSEC: Duration = Duration::from_secs(1);

/// A message to the writer thread.
pub enum Request {
    /// `(version, payload)` records, logged together with consecutive seqs;
    /// answered with the first seq, or an error when none was logged.
    Append {
        records: Vec<(u64, Bytes)>,
        done: oneshot::Sender<Result<Seq>>,
    },
    /// Make everything durable, answer, and stop.
    Close { done: oneshot::Sender<()> },
}

/// State shared between the writer thread and the `Wal` handle.
#[derive(Default)]
pub struct Shared {
    /// Segments on disk, oldest first; the writer appends, checkpoints delete.
    pub segments: Mutex<Vec<SegmentFile>>,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub appends: AtomicU64,
    pub last_seq: AtomicU64,
    pub checkpoint: AtomicU64,
    /// Test hook: the next this-many group writes fail half-way.
    pub inject_write_failures: AtomicU32,
}

impl Shared {
    pub fn segments(&self) -> std::sync::MutexGuard<'_, Vec<SegmentFile>> {
        // The list stays consistent even if a holder panicked mid-way: every
        // change to it is a single push or remove.
        self.segments.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The writer thread's state.
pub struct Writer {
    pub dir: PathBuf,
    pub policy: FsyncPolicy,
    pub segment_bytes: u64,
    pub file: File,
    pub file_len: u64,
    pub next_seq: Seq,
    pub shared: Arc<Shared>,
    pub rx: Receiver<Request>,
    pub dirty: bool,
    pub last_sync: Instant,
}

struct Pending {
    records: Vec<(u64, Bytes)>,
    done: oneshot::Sender<Result<Seq>>,
}

impl Writer {
    /// The thread body: commit groups until closed or every handle is gone.
    pub fn run(mut self) {
        let mut group: Vec<Pending> = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let Some(first) = self.next_request() else {
                self.sync_if_dirty();
                return;
            };
            let mut close = None;
            let mut group_bytes = 0;
            let mut req = Some(first);
            while let Some(r) = req.take() {
                match r {
                    Request::Append { records, done } => {
                        group_bytes += records
                            .iter()
                            .map(|(_, p)| frame::frame_len(p.len()))
                            .sum::<usize>();
                        group.push(Pending { records, done });
                    }
                    Request::Close { done } => {
                        close = Some(done);
                        break;
                    }
                }
                if group_bytes < MAX_GROUP_BYTES {
                    req = self.rx.try_recv().ok();
                }
            }
            if !group.is_empty() {
                // Rotating before a write rather than after one keeps the
                // files still between groups and leaves no empty segment
                // behind at shutdown.
                if self.file_len >= self.segment_bytes {
                    self.rotate();
                }
                self.commit(&mut group, &mut buf);
            }
            if let Some(done) = close {
                self.sync_if_dirty();
                let _ = done.send(());
                return;
            }
            if self.policy == FsyncPolicy::EverySec
                && self.dirty
                && self.last_sync.elapsed() >= EVERYSEC
            {
                self.sync();
            }
        }
    }

    /// Waits for the next request; under `everysec` wakes up to fsync dirty
    /// data once a second. None when every `Wal` handle is gone.
    fn next_request(&mut self) -> Option<Request> {
        loop {
            if !(self.policy == FsyncPolicy::EverySec && self.dirty) {
                return self.rx.recv().ok();
            }
            let due = self.last_sync + EVERYSEC;
            let wait = due.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(r) => return Some(r),
                Err(RecvTimeoutError::Timeout) => self.sync(),
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Writes one group and acknowledges it, or fails all of it.
    fn commit(&mut self, group: &mut Vec<Pending>, buf: &mut Vec<u8>) {
        buf.clear();
        let first = self.next_seq;
        let mut seq = first.0;
        for (version, payload) in group.iter().flat_map(|p| &p.records) {
            frame::encode_frame(buf, Seq(seq), *version, payload);
            seq += 1;
        }
        let n = seq - first.0;
        let before = self.file_len;
        if let Err(e) = self.write_at(buf, before) {
            tracing::error!(error = %e, records = n, segment_len = before,
                "WAL write failed; failing the group's writes");
            if let Err(t) = self
                .file
                .set_len(before)
                .and_then(|()| self.file.sync_data())
            {
                fatal("cutting a failed WAL write back", &t);
            }
            for p in group.drain(..) {
                let _ = p
                    .done
                    .send(Err(Error::Io(std::io::Error::new(e.kind(), e.to_string()))));
            }
            return;
        }
        self.file_len += buf.len() as u64;
        self.next_seq = Seq(first.0 + n);
        self.dirty = true;
        if self.policy == FsyncPolicy::Always {
            self.sync();
        }
        self.shared
            .bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.shared.appends.fetch_add(n, Ordering::Relaxed);
        self.shared
            .last_seq
            .store(first.0 + n - 1, Ordering::Release);
        let mut seq = first.0;
        for p in group.drain(..) {
            let records = p.records.len() as u64;
            let _ = p.done.send(Ok(Seq(seq)));
            seq += records;
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        let injected = self.shared.inject_write_failures.fetch_update(
            Ordering::AcqRel,
            Ordering::Acquire,
            |n| n.checked_sub(1),
        );
        if injected.is_ok() {
            // Leave a partial group behind, as a real short write would.
            self.file.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected write failure",
            ));
        }
        self.file.write_all_at(buf, offset)
    }

    /// fdatasync of the active segment; fatal on failure (see module docs).
    fn sync(&mut self) {
        if let Err(e) = self.file.sync_data() {
            fatal("fsync of the WAL", &e);
        }
        self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.dirty = false;
        self.last_sync = Instant::now();
    }

    fn sync_if_dirty(&mut self) {
        if self.dirty {
            self.sync();
        }
    }

    /// Starts a new segment at the next seq. The full one is fsynced first
    /// (under every policy), so only the last segment can ever be torn.
    /// If the new file cannot be made, writing goes on in the old one and
    /// rotation is retried after the next group.
    fn rotate(&mut self) {
        self.sync_if_dirty();
        match segment::create(&self.dir, self.next_seq) {
            Ok((file, seg)) => {
                self.file = file;
                self.file_len = segment::empty_segment_len();
                self.shared
                    .bytes
                    .fetch_add(self.file_len, Ordering::Relaxed);
                self.shared.segments().push(seg);
            }
            Err(CreateError::Write(e)) => {
                tracing::warn!(error = %e, "cannot start a new WAL segment; continuing in the current one");
            }
            Err(CreateError::Sync(e)) => fatal("fsync of a new WAL segment", &e),
        }
    }
}

/// Logs and aborts: used only where continuing could acknowledge lost data.
fn fatal(what: &str, e: &std::io::Error) -> ! {
    tracing::error!(error = %e, "{what} failed; aborting: the kernel may have dropped the unwritten pages, so retrying could acknowledge lost writes");
    std::process::abort()
}
