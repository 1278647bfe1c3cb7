//! Startup recovery: drops the segments the checkpoint has passed, walks
//! the rest (see [`super::scan`] for what counts as a torn tail and what as
//! corruption), cuts a torn tail, refuses corruption, and prepares the
//! segment the writer appends to.

use std::fs::{self, File, OpenOptions};
use std::path::Path;

use super::frame::SEGMENT_HEADER_LEN;
use super::scan::{Walk, walk};
use super::segment::{self, SegmentFile};
use super::{Record, Seq, TornTail};
use crate::error::{Error, Result};

/// Seqs above this cannot come from real use (2^63 records); refusing them
/// at open keeps seq arithmetic from overflowing afterwards.
const MAX_SEQ: Seq = Seq(1 << 63);

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
        Some(last) if last >= checkpoint => last.next(),
        Some(last) => {
            tracing::warn!(%last, %checkpoint, "the checkpoint is ahead of the WAL; continuing after the checkpoint");
            checkpoint.next()
        }
        None => checkpoint
            .next()
            .max(segments.last().map_or(Seq(0), |s| s.first)),
    };
    if next_seq > MAX_SEQ {
        return Err(Error::Corruption {
            backend: "wal",
            detail: format!(
                "next seq {next_seq} is implausibly large (damaged segment name or checkpoint?)"
            ),
        });
    }
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
            Some(l) => l.next() == next_seq,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::frame::encode_segment_header;

    #[test]
    fn a_segment_with_a_torn_header_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment::segment_name(Seq(1)));
        fs::write(&path, &encode_segment_header(Seq(1))[..5]).unwrap();
        let r = recover(dir.path(), Seq(0), 1 << 20).unwrap();
        assert_eq!(r.torn_tail.unwrap().bytes, 5);
        assert_eq!(
            (r.next_seq, r.active_len),
            (Seq(1), SEGMENT_HEADER_LEN as u64)
        );
        assert_eq!(fs::read(&path).unwrap(), encode_segment_header(Seq(1)));
    }

    #[test]
    fn an_empty_segment_with_a_stale_name_is_renamed_by_recreating() {
        let dir = tempfile::tempdir().unwrap();
        segment::create(dir.path(), Seq(1)).unwrap();
        let r = recover(dir.path(), Seq(0), 1 << 20).unwrap();
        assert_eq!(r.next_seq, Seq(1));
        drop(r);
        // The database says 0..=9 are applied (e.g. this WAL was emptied by hand).
        let r = recover(dir.path(), Seq(9), 1 << 20).unwrap();
        assert_eq!(r.next_seq, Seq(10));
        let names: Vec<Seq> = segment::list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.first)
            .collect();
        assert_eq!(names, vec![Seq(10)]);
    }

    #[test]
    fn implausible_seqs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(recover(dir.path(), Seq(u64::MAX - 1), 1 << 20).is_err());
    }
}
