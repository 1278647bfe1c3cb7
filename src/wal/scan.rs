//! Reading the log back: the read-only walk over all segments shared by
//! startup recovery, `verify` and `inspect`. It never modifies anything.
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

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::frame::{self, FRAME_HEADER_LEN, HeaderError, SEGMENT_HEADER_LEN};
use super::segment::SegmentFile;
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
        next = next.next();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::frame::{encode_frame, encode_segment_header};

    fn seg() -> SegmentFile {
        SegmentFile {
            first: Seq(10),
            path: PathBuf::from("00000000000000000010.wal"),
        }
    }

    /// A segment starting at seq 10 with `n` records; returns it and the record offsets.
    fn segment_bytes(n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buf = encode_segment_header(Seq(10)).to_vec();
        let mut offs = Vec::new();
        for i in 0..n {
            offs.push(buf.len());
            encode_frame(&mut buf, Seq(10 + i), i, format!("value {i}").as_bytes());
        }
        (buf, offs)
    }

    fn scan(data: Vec<u8>, is_last: bool) -> (Vec<u64>, SegmentScan) {
        let mut seqs = Vec::new();
        let s = scan_segment(&Bytes::from(data), &seg(), is_last, &mut |_, r| {
            seqs.push(r.seq.0)
        });
        (seqs, s)
    }

    #[test]
    fn clean_segment_yields_every_record() {
        let (data, _) = segment_bytes(4);
        let len = data.len() as u64;
        let (seqs, s) = scan(data, false);
        assert_eq!(seqs, vec![10, 11, 12, 13]);
        assert!(matches!(s.end, End::Clean));
        assert_eq!((s.good_len, s.next), (len, Seq(14)));
    }

    #[test]
    fn damaged_last_record_of_the_last_segment_is_torn() {
        let (mut data, offs) = segment_bytes(4);
        *data.last_mut().unwrap() ^= 1;
        let (seqs, s) = scan(data.clone(), true);
        assert_eq!(seqs, vec![10, 11, 12]);
        assert!(matches!(s.end, End::Torn(at) if at == offs[3] as u64));
        let (_, s) = scan(data, false);
        assert!(matches!(s.end, End::Corrupt(at, _) if at == offs[3] as u64));
    }

    #[test]
    fn damage_followed_by_an_intact_record_is_corruption() {
        let (mut data, offs) = segment_bytes(4);
        data[offs[1] + 20] ^= 1;
        let (seqs, s) = scan(data, true);
        assert_eq!(seqs, vec![10]);
        match s.end {
            End::Corrupt(at, reason) => {
                assert_eq!(at, offs[1] as u64);
                assert!(reason.contains("seq 12"), "{reason}");
            }
            _ => panic!("not corruption"),
        }
    }

    #[test]
    fn a_seq_out_of_order_is_corruption() {
        let mut data = encode_segment_header(Seq(10)).to_vec();
        encode_frame(&mut data, Seq(10), 0, b"a");
        encode_frame(&mut data, Seq(12), 0, b"b");
        let (seqs, s) = scan(data, true);
        assert_eq!(seqs, vec![10]);
        assert!(matches!(s.end, End::Corrupt(_, ref r) if r.contains("expected")));
    }

    #[test]
    fn short_header_is_torn_only_in_the_last_segment() {
        let (data, _) = segment_bytes(0);
        assert!(matches!(scan(data[..7].to_vec(), true).1.end, End::Torn(0)));
        assert!(matches!(
            scan(data[..7].to_vec(), false).1.end,
            End::Corrupt(0, _)
        ));
        let other = encode_segment_header(Seq(11)).to_vec();
        assert!(
            matches!(scan(other, true).1.end, End::Corrupt(0, ref r) if r.contains("file name"))
        );
    }

    #[test]
    fn intact_frame_search_ignores_garbage() {
        let mut data = vec![0xabu8; 500];
        assert_eq!(intact_frame_after(&data, 0, Seq(10)), None);
        encode_frame(&mut data, Seq(11), 0, b"late");
        assert_eq!(intact_frame_after(&data, 0, Seq(10)), Some((500, Seq(11))));
        // A record from before the damage does not count.
        assert_eq!(intact_frame_after(&data, 0, Seq(12)), None);
    }
}
