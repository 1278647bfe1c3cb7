//! The configured write policy, and the start-up of write-behind: instance
//! id, checkpoint, WAL recovery into the overlay, and the event processor.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::behind::{Refusal, WriteBehind};
use super::key_queues::KeyQueues;
use super::overlay::Overlay;
use super::through::WriteThrough;
use super::{Call, Outcome, Watched, record};
use crate::cache::CacheTier;
use crate::cache::aside::CacheAside;
use crate::config::Config;
use crate::error::{Error, Result, with_timeout};
use crate::keyspace::{Hlc, Version};
use crate::processor::low_water::LowWater;
use crate::processor::{Backlog, DeadLetters, Item, Processor, ProcessorOptions};
use crate::resp::Frame;
use crate::store::Store;
use crate::wal::{Seq, Wal, WalOptions};

pub enum Writer<C> {
    Through(WriteThrough<C>),
    Behind(Behind<C>),
}

/// Write-behind and the processor task it feeds.
pub struct Behind<C> {
    pub writer: WriteBehind<C>,
    pub instance: String,
    /// Parked keys and the dead-letter commands' entry point.
    pub dead_letters: Arc<DeadLetters>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl<C: CacheTier> Writer<C> {
    pub async fn execute(
        &self,
        calls: &[Call],
        watched: &[Watched],
    ) -> std::result::Result<Outcome, Frame> {
        match self {
            Writer::Through(w) => w
                .execute(calls, watched)
                .await
                .map(|replies| Outcome { replies, seq: None })
                .map_err(Frame::err),
            Writer::Behind(b) => b
                .writer
                .execute(calls, watched)
                .await
                .map_err(Refusal::into_frame),
        }
    }

    pub fn behind(&self) -> Option<&Behind<C>> {
        match self {
            Writer::Behind(b) => Some(b),
            Writer::Through(_) => None,
        }
    }

    /// Shutdown: apply what is queued until `deadline`, then sync the WAL.
    pub async fn close(&self, deadline: Instant) {
        let Writer::Behind(b) = self else { return };
        b.writer.backlog.set_drain_deadline(deadline);
        b.stop.cancel();
        let task = b.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, task).await.is_err() {
                tracing::warn!(
                    pending = b.writer.backlog.pending(),
                    "write-behind queue not drained by the shutdown deadline; the WAL replays it at the next start"
                );
            }
        }
        if let Err(e) = b.writer.wal.close().await {
            tracing::error!(error = %e, "closing the WAL failed");
        }
    }
}

/// Opens the WAL, replays what the database has not applied into the
/// overlay and the queue, and starts the processor. Serving may begin as
/// soon as this returns; the replayed writes are applied in the background.
pub async fn open_behind<C: CacheTier>(
    config: &Config,
    store: Arc<dyn Store>,
    aside: Arc<CacheAside<C>>,
    overlay: Arc<Overlay>,
    hlc: Arc<Hlc>,
) -> Result<Behind<C>> {
    let wb = &config.write_behind;
    let instance = instance_id(&wb.wal_dir)?;
    let db_checkpoint = with_timeout(
        store.name(),
        config.database.timeout,
        store.checkpoint(&instance),
    )
    .await?;
    let checkpoint = db_checkpoint.unwrap_or(0);
    let (wal, recovered) = Wal::open(WalOptions::from_config(wb)?, Seq(checkpoint))?;
    let backlog = Arc::new(Backlog::new(
        wb.max_pending,
        wb.max_pending_bytes.0,
        checkpoint,
    ));
    let (queue, rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let replayed = recovered.records.len();
    for rec in recovered.records {
        let rows = record::decode(rec.payload.clone()).map_err(|e| Error::Corruption {
            backend: "wal",
            detail: format!("record {}: {e}", rec.seq),
        })?;
        hlc.observe(Version(rec.version));
        overlay.insert(rec.seq.0, &rows);
        let bytes = rec.payload.len() as u64;
        backlog.logged(bytes);
        backlog.hold(Version(rec.version)).keep();
        let block = rows.len() > 1;
        let _ = queue.send(Item {
            seq: rec.seq.0,
            version: Version(rec.version),
            rows,
            bytes,
            block,
        });
    }
    if replayed > 0 {
        tracing::info!(records = replayed, keys = overlay.len(), elapsed = ?started.elapsed(), "replayed unapplied WAL records; applying them in the background");
    }
    let dead_letters =
        Arc::new(DeadLetters::load(store.as_ref(), &instance, config.database.timeout).await?);
    let wal = Arc::new(wal);
    let stop = CancellationToken::new();
    let processor = Processor {
        rx,
        store: store.clone(),
        aside: aside.clone(),
        overlay: overlay.clone(),
        wal: wal.clone(),
        backlog: backlog.clone(),
        dead_letters: dead_letters.clone(),
        instance: instance.clone(),
        opts: ProcessorOptions {
            batch_max: wb.batch_max,
            flush_interval: wb.flush_interval,
            db_timeout: config.database.timeout,
        },
        checkpoint,
        held: None,
    };
    // Reported once before serving, so the sweepers of other instances
    // count this one from its first write on, then every second.
    let reporter = LowWater {
        store: store.clone(),
        backlog: backlog.clone(),
        instance: instance.clone(),
        db_timeout: config.database.timeout,
    };
    if let Err(e) = reporter.report().await {
        tracing::warn!(error = %e, "cannot report the low-water version; will retry");
    }
    tokio::spawn(reporter.run(stop.clone()));
    let task = tokio::spawn(processor.run(stop.clone()));
    let writer = WriteBehind {
        aside,
        hlc,
        wal,
        overlay,
        backlog,
        queue,
        backpressure_wait: wb.backpressure_wait,
        locks: KeyQueues::default(),
    };
    Ok(Behind {
        writer,
        instance,
        dead_letters,
        stop,
        task: std::sync::Mutex::new(Some(task)),
    })
}

/// Under write-through or read-only: if an earlier write-behind run left
/// unapplied records in the WAL, apply them all before serving, so no
/// acknowledged write is skipped and no new write overtakes an older one.
pub async fn apply_leftover_wal<C: CacheTier>(
    config: &Config,
    store: Arc<dyn Store>,
    aside: Arc<CacheAside<C>>,
    hlc: Arc<Hlc>,
) -> Result<()> {
    let dir = &config.write_behind.wal_dir;
    if !dir.join("instance-id").exists() {
        return Ok(());
    }
    let overlay = Arc::new(Overlay::default());
    let behind = open_behind(config, store, aside, overlay, hlc).await?;
    let backlog = behind.writer.backlog.clone();
    if backlog.pending() > 0 {
        tracing::warn!(
            records = backlog.pending(),
            dir = %dir.display(),
            "unapplied write-behind records found; applying them before serving"
        );
        backlog.wait_empty().await;
        tracing::info!("leftover write-behind records applied");
    }
    Writer::Behind(behind)
        .close(Instant::now() + config.server.shutdown_timeout)
        .await;
    Ok(())
}

/// This instance's id: made once, kept beside its WAL, so the checkpoint in
/// the database stays tied to the log it describes.
fn instance_id(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("instance-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let id = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let tmp = dir.join("instance-id.tmp");
    std::fs::write(&tmp, &id)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(id)
}
