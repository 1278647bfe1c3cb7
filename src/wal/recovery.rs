//! Reading the log back: the read-only walk over all segments shared by
//! startup, `verify` and `inspect`, and the startup recovery built on it.
//!
//! Recovery policy (what a damaged log means):
//!
//! - **Torn tail**: the last segment ends in bytes that are not an intact
//!   frame (a partial frame, a bad CRC, garbage) and no intact frame follows
//!   them. This is what a crash in the middle of a write leaves; those bytes
//!   were never acknowledged under `fsync = always`. They are cut off at the
//!   last good record and the cut is logged.
//! - **Corruption**: anything else. A damaged frame with an intact one after
//!   it, damage anywhere in a segment that is not the last, a foreign or
//!   unreadable header, or a break in seq continuity. Records past the damage
//!   may have been acknowledged, so guessing would silently lose them: open
//!   refuses, naming the segment file and byte offset, and an operator
//!   decides (`spillway wal verify` shows the same report).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::{self, FRAME_HEADER_LEN, HeaderError, SEGMENT_HEADER_LEN};
use super::segment::{self, SegmentFile};
use super::{Record, Seq, TornTail};
use crate::error::{Error, Result};

/// Where and why the log is corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptAt {
    pub segment: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl CorruptAt {
    /// The error open returns: names the segment file and the byte offset.
    pub fn to_error(&self) -> Error {
        Error::Corruption {
            backend: "wal",
            detail: format!(
                "segment {} at byte offset {}: {}",
                self.segment.display(),
                self.offset,
                self.reason
            ),
        }
    }
}

/// What a walk over the segments found.
#[derive(Debug, Default)]
pub struct Walk {
    pub records: u64,
    pub first_seq: Option<Seq>,
    pub last_seq: Option<Seq>,
    /// Sum of the segment file sizes as found.
    pub bytes: u64,
    /// Length of the last segment up to its last intact record.
    pub last_good_len: u64,
    pub torn: Option<TornTail>,
    /// The first corruption; the walk stops there.
    pub corrupt: Option<CorruptAt>,
}

/// How often a long replay reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Reads every segment in order, checking headers, frames, CRCs and seq
/// continuity, and hands each intact record (with its segment and offset) to
/// `on_record`. Never modifies anything. Only I/O errors are `Err`; damage
/// is reported in the returned [`Walk`].
pub fn walk(
    segments: &[SegmentFile],
    mut on_record: impl FnMut(&SegmentFile, u64, Record),
) -> Result<Walk> {
    let mut w = Walk::default();
    let started = Instant::now();
    let mut last_report = started;
    let mut expected: Option<Seq> = None;
    for (i, seg) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let data = Bytes::from(fs::read(&seg.path)?);
        w.bytes += data.len() as u64;
        if let Some(exp) = expected
            && seg.first != exp
        {
            w.corrupt = Some(corrupt(
                seg,
                0,
                format!(
                    "starts at seq {} but the previous segment ends before seq {exp}",
                    seg.first
                ),
            ));
            return Ok(w);
        }
        let scan = scan_segment(&data, seg, is_last, &mut |off, rec| {
            w.first_seq.get_or_insert(rec.seq);
            w.last_seq = Some(rec.seq);
            w.records += 1;
            if w.records % 4096 == 0 && last_report.elapsed() >= PROGRESS_EVERY {
                last_report = Instant::now();
                log_progress(&w, started);
            }
            on_record(seg, off, rec);
        });
        expected = Some(scan.next);
        match scan.end {
            End::Clean => {}
            End::Torn(at) => {
                w.torn = Some(TornTail {
                    segment: seg.path.clone(),
                    offset: at,
                    bytes: data.len() as u64 - at,
                });
            }
            End::Corrupt(at, reason) => {
                w.corrupt = Some(corrupt(seg, at, reason));
                return Ok(w);
            }
        }
        if is_last {
            w.last_good_len = scan.good_len;
        }
    }
    if started.elapsed() >= PROGRESS_EVERY {
        log_progress(&w, started);
    }
    Ok(w)
}

fn log_progress(w: &Walk, started: Instant) {
    let secs = started.elapsed().as_secs_f64().max(1e-3);
    tracing::info!(
        records = w.records,
        bytes = w.bytes,
        records_per_sec = (w.records as f64 / secs) as u64,
        mib_per_sec = format!("{:.1}", w.bytes as f64 / secs / (1 << 20) as f64),
        "WAL replay in progress"
    );
}

fn corrupt(seg: &SegmentFile, offset: u64, reason: String) -> CorruptAt {
    CorruptAt {
        segment: seg.path.clone(),
        offset,
        reason,
    }
}

/// How a segment's bytes end.
enum End {
    Clean,
    Torn(u64),
    Corrupt(u64, String),
}

struct SegmentScan {
    /// Offset just past the last intact record (or the header).
    good_len: u64,
    /// The seq the next record must carry.
    next: Seq,
    end: End,
}

fn scan_segment(
    data: &Bytes,
    seg: &SegmentFile,
    is_last: bool,
    on_record: &mut dyn FnMut(u64, Record),
) -> SegmentScan {
    let mut next = seg.first;
    let header_damage = match frame::decode_segment_header(data) {
        Ok(first) if first == seg.first => None,
        Ok(first) => Some(format!(
            "header declares first seq {first} but the file name says {}",
            seg.first
        )),
        Err(HeaderError::Short) if is_last => {
            // A segment whose creation was cut short: it holds nothing.
            return SegmentScan {
                good_len: 0,
                next,
                end: End::Torn(0),
            };
        }
        Err(HeaderError::Short) => Some("incomplete segment header".to_string()),
        Err(HeaderError::BadMagic) => Some("not a spillway WAL segment (bad magic)".to_string()),
        Err(HeaderError::Format(v)) => Some(format!(
            "WAL format version {v} is not supported (this build reads {})",
            frame::FORMAT_VERSION
        )),
    };
    if let Some(reason) = header_damage {
        return SegmentScan {
            good_len: 0,
            next,
            end: End::Corrupt(0, reason),
        };
    }
    let mut off = SEGMENT_HEADER_LEN;
    while off < data.len() {
        let f = match frame::decode_frame(data, off) {
            Ok(f) => f,
            Err(e) => {
                let end = if !is_last {
                    End::Corrupt(off as u64, format!("{e} in a segment that is not the last"))
                } else if let Some((at, seq)) = intact_frame_after(data, off, next) {
                    End::Corrupt(
                        off as u64,
                        format!("{e}, yet an intact record (seq {seq}) follows at offset {at}"),
                    )
                } else {
                    End::Torn(off as u64)
                };
                return SegmentScan {
                    good_len: off as u64,
                    next,
                    end,
                };
            }
        };
        if f.seq != next {
            let reason = format!("record carries seq {} where seq {next} was expected", f.seq);
            return SegmentScan {
                good_len: off as u64,
                next,
                end: End::Corrupt(off as u64, reason),
            };
        }
        let rec = Record {
            seq: f.seq,
            version: f.version,
            payload: data.slice(f.payload),
        };
        on_record(off as u64, rec);
        next = Seq(next.0 + 1);
        off = f.end;
    }
    SegmentScan {
        good_len: off as u64,
        next,
        end: End::Clean,
    }
}

/// Looks for an intact frame anywhere after a damaged one at `from`: its
/// presence turns a "torn tail" into corruption. Only offsets whose seq
/// field could belong to a later record are CRC-checked, which keeps the
/// search cheap on garbage.
fn intact_frame_after(data: &[u8], from: usize, next: Seq) -> Option<(usize, Seq)> {
    let most_later = (data.len() - from) / FRAME_HEADER_LEN + 1;
    let hi = next.0.saturating_add(most_later as u64);
    (from + 1..data.len()).find_map(|at| {
        let seq = frame::peek_seq(data, at)?;
        if seq.0 < next.0 || seq.0 > hi {
            return None;
        }
        frame::decode_frame(data, at).ok().map(|f| (at, f.seq))
    })
}

/// The log state open hands to the writer thread.
pub struct Recovery {
    pub records: Vec<Record>,
    pub torn_tail: Option<TornTail>,
    pub oldest_retained: Option<Seq>,
    /// Segments left on disk, oldest first, the active one last.
    pub segments: Vec<SegmentFile>,
    /// The active segment, open for writing, and its length.
    pub active: File,
    pub active_len: u64,
    pub next_seq: Seq,
    /// Bytes on disk across all segments.
    pub bytes: u64,
}

/// Startup recovery: drops segments the checkpoint has passed, walks the
/// rest, truncates a torn tail, refuses corruption, and prepares the
/// segment the writer appends to.
pub fn recover(dir: &Path, checkpoint: Seq, segment_bytes: u64) -> Result<Recovery> {
    fs::create_dir_all(dir)?;
    let mut segments = segment::list(dir)?;
    let (dropped, _) = drop_applied(dir, &mut segments, checkpoint)?;
    if dropped > 0 {
        tracing::info!(segments = dropped, %checkpoint, "deleted WAL segments already applied");
    }
    if let Some(oldest) = segments.first()
        && oldest.first.0 > checkpoint.0.saturating_add(1)
    {
        return Err(Error::Corruption {
            backend: "database",
            detail: format!(
                "checkpoint {checkpoint} is below the oldest retained WAL seq {} ({}): the database lost applied writes (restored from a backup?); refusing to start",
                oldest.first,
                oldest.path.display()
            ),
        });
    }
    let oldest_retained = segments.first().map(|s| s.first);
    let mut records = Vec::new();
    let walk = walk(&segments, |_, _, rec| {
        if rec.seq > checkpoint {
            records.push(rec);
        }
    })?;
    if let Some(c) = &walk.corrupt {
        return Err(c.to_error());
    }
    if let Some(t) = &walk.torn {
        tracing::warn!(segment = %t.segment.display(), offset = t.offset, bytes = t.bytes,
            "WAL ends in a torn write; truncating it at the last intact record");
    }
    let next_seq = match walk.last_seq {
        Some(last) if last >= checkpoint => Seq(last.0 + 1),
        Some(last) => {
            tracing::warn!(%last, %checkpoint, "the checkpoint is ahead of the WAL; continuing after the checkpoint");
            Seq(checkpoint.0 + 1)
        }
        None => Seq(checkpoint.0 + 1).max(segments.last().map_or(Seq(0), |s| s.first)),
    };
    let mut bytes = walk.bytes;
    let (active, active_len) = prepare_active(
        dir,
        &mut segments,
        &walk,
        next_seq,
        segment_bytes,
        &mut bytes,
    )?;
    Ok(Recovery {
        records,
        torn_tail: walk.torn,
        oldest_retained,
        segments,
        active,
        active_len,
        next_seq,
        bytes,
    })
}

/// Deletes segments whose records are all at or below the checkpoint (the
/// next segment starts at or below checkpoint + 1). The last segment is
/// always kept: it tells where the seqs continue.
/// Returns how many segments and bytes were freed.
pub fn drop_applied(
    dir: &Path,
    segments: &mut Vec<SegmentFile>,
    checkpoint: Seq,
) -> Result<(usize, u64)> {
    let mut freed = 0;
    let mut dropped = 0;
    while segments.len() > 1 && segments[1].first.0 <= checkpoint.0.saturating_add(1) {
        let seg = segments.remove(0);
        freed += fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
        fs::remove_file(&seg.path)?;
        dropped += 1;
    }
    if dropped > 0 {
        segment::sync_dir(dir)?;
    }
    Ok((dropped, freed))
}

/// Opens the last segment for appending (cutting a torn tail), or starts a
/// new one when there is none, it is full, or the seqs do not continue in it.
fn prepare_active(
    dir: &Path,
    segments: &mut Vec<SegmentFile>,
    walk: &Walk,
    next_seq: Seq,
    segment_bytes: u64,
    bytes: &mut u64,
) -> Result<(File, u64)> {
    if let Some(last) = segments.last().cloned() {
        let continues = match walk.last_seq {
            Some(l) => Seq(l.0 + 1) == next_seq,
            None => last.first == next_seq,
        };
        let empty = walk.last_good_len <= SEGMENT_HEADER_LEN as u64;
        if walk.last_good_len < SEGMENT_HEADER_LEN as u64 || (empty && !continues) {
            // Nothing in it worth keeping, and its name is wrong or its header torn.
            *bytes -= fs::metadata(&last.path)?.len();
            fs::remove_file(&last.path)?;
            segment::sync_dir(dir)?;
            segments.pop();
        } else {
            let file = OpenOptions::new().read(true).write(true).open(&last.path)?;
            let len = file.metadata()?.len();
            if len > walk.last_good_len {
                file.set_len(walk.last_good_len)?;
                file.sync_all()?;
                *bytes -= len - walk.last_good_len;
            }
            if continues && walk.last_good_len < segment_bytes {
                return Ok((file, walk.last_good_len));
            }
        }
    }
    let (file, seg) = segment::create(dir, next_seq).map_err(|e| Error::Io(e.into_io()))?;
    segments.push(seg);
    *bytes += segment::empty_segment_len();
    Ok((file, segment::empty_segment_len()))
}
