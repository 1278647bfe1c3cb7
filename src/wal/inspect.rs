//! Looking at a WAL without serving: `spillway wal verify DIR` and
//! `spillway wal inspect DIR`. Both only read; they never truncate, delete
//! or create anything, so they are safe on the directory of a live or
//! crashed instance and leave the evidence as it was.

use std::io::Write;
use std::path::Path;

use super::scan::{self, CorruptAt};
use super::segment;
use super::{Seq, TornTail};
use crate::error::{Error, Result};

/// What `verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub segments: usize,
    pub records: u64,
    pub first_seq: Option<Seq>,
    pub last_seq: Option<Seq>,
    pub bytes: u64,
    /// The mirrored checkpoint file's value, if there is one.
    pub checkpoint: Option<Seq>,
    /// A torn tail open would cut.
    pub torn_tail: Option<TornTail>,
    /// The first corruption: open would refuse to start.
    pub corruption: Option<CorruptAt>,
}

impl VerifyReport {
    /// True when open would start without refusing (a torn tail is fine).
    pub fn is_ok(&self) -> bool {
        self.corruption.is_none()
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seq = |s: Option<Seq>| s.map_or("-".to_string(), |s| s.to_string());
        writeln!(f, "segments: {}", self.segments)?;
        writeln!(f, "records: {}", self.records)?;
        writeln!(f, "first_seq: {}", seq(self.first_seq))?;
        writeln!(f, "last_seq: {}", seq(self.last_seq))?;
        writeln!(f, "bytes: {}", self.bytes)?;
        writeln!(f, "checkpoint: {}", seq(self.checkpoint))?;
        match &self.torn_tail {
            Some(t) => writeln!(
                f,
                "torn_tail: {} at offset {} ({} bytes would be cut)",
                t.segment.display(),
                t.offset,
                t.bytes
            )?,
            None => writeln!(f, "torn_tail: none")?,
        }
        match &self.corruption {
            Some(c) => write!(
                f,
                "corruption: {} at offset {}: {}",
                c.segment.display(),
                c.offset,
                c.reason
            ),
            None => write!(f, "corruption: none"),
        }
    }
}

/// Checks every segment in `dir` (headers, frames, CRCs, seq continuity)
/// and reports what open would do. `Err` only when the directory cannot be
/// read; damage is in the report.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    let segments = segment::list(dir)?;
    let walk = scan::walk(&segments, |_, _, _| {})?;
    let mut report = VerifyReport {
        segments: segments.len(),
        records: walk.records,
        first_seq: walk.first_seq,
        last_seq: walk.last_seq,
        bytes: walk.bytes,
        checkpoint: None,
        torn_tail: walk.torn,
        corruption: walk.corrupt,
    };
    match segment::read_checkpoint_file(dir) {
        Ok(c) => report.checkpoint = c,
        Err(e @ Error::Corruption { .. }) if report.corruption.is_none() => {
            report.corruption = Some(CorruptAt {
                segment: dir.join(segment::CHECKPOINT_FILE),
                offset: 0,
                reason: e.to_string(),
            });
        }
        Err(Error::Corruption { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(report)
}

/// Writes one line per intact record, `segment offset seq version
/// payload-len`, then a `#` line for a torn tail. Corruption ends the
/// listing with a `#` line and is returned as the error.
pub fn inspect(dir: &Path, out: &mut impl Write) -> Result<()> {
    let segments = segment::list(dir)?;
    let mut write_err = None;
    let walk = scan::walk(&segments, |seg, off, rec| {
        if write_err.is_some() {
            return;
        }
        let name = seg
            .path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let line = writeln!(
            out,
            "{name} {off} {} {} {}",
            rec.seq,
            rec.version,
            rec.payload.len()
        );
        if let Err(e) = line {
            write_err = Some(e);
        }
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if let Some(t) = &walk.torn {
        writeln!(
            out,
            "# torn tail: {} at offset {}, {} bytes",
            t.segment.display(),
            t.offset,
            t.bytes
        )?;
    }
    if let Some(c) = &walk.corrupt {
        writeln!(
            out,
            "# corrupt: {} at offset {}: {}",
            c.segment.display(),
            c.offset,
            c.reason
        )?;
        return Err(c.to_error());
    }
    Ok(())
}
