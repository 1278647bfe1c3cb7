//! Files in the WAL directory: segment naming and listing, segment creation
//! (durable before use), directory fsync, and the checkpoint file.
//!
//! A segment is named by the seq of its first record, zero-padded to 20
//! digits (`00000000000000000042.wal`) so names sort in seq order. Other
//! files in the directory are left alone.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::Seq;
use super::frame::{SEGMENT_HEADER_LEN, encode_segment_header};
use crate::error::{Error, Result};

/// File name of the mirrored checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint";
const CHECKPOINT_TMP: &str = "checkpoint.tmp";
const CHECKPOINT_MAGIC: [u8; 8] = *b"SPWALCKP";
const CHECKPOINT_LEN: usize = 20;

/// A segment file found in (or added to) the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    /// The seq its first record carries (from the file name).
    pub first: Seq,
    pub path: PathBuf,
}

/// The file name of the segment whose first record is `first`.
pub fn segment_name(first: Seq) -> String {
    format!("{:020}.wal", first.0)
}

/// The first seq a segment file name declares; None for other files.
pub fn parse_segment_name(name: &str) -> Option<Seq> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Seq)
}

/// The segments in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<SegmentFile>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) else {
            continue;
        };
        segments.push(SegmentFile {
            first,
            path: entry.path(),
        });
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments)
}

/// fsyncs a directory, making file creations, renames and deletions in it
/// durable. Without it a segment's name can vanish after a power loss even
/// though its data was fsynced.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates the segment whose first record will be `first`: writes the
/// header, fsyncs the file and the directory. Returns the file, open for
/// writing, or the error; on a failed write the half-made file is removed
/// (a stray empty segment in the middle of the log would read as corruption).
pub fn create(dir: &Path, first: Seq) -> Result<(File, SegmentFile), CreateError> {
    let path = dir.join(segment_name(first));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(CreateError::Write)?;
    if let Err(e) = file.write_all(&encode_segment_header(first)) {
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(CreateError::Write(e));
    }
    file.sync_all().map_err(CreateError::Sync)?;
    sync_dir(dir).map_err(CreateError::Sync)?;
    Ok((file, SegmentFile { first, path }))
}

/// Why a segment could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// Creating or writing the file failed; nothing was left behind.
    Write(io::Error),
    /// An fsync failed: the state on disk is unknown.
    Sync(io::Error),
}

impl CreateError {
    pub fn into_io(self) -> io::Error {
        match self {
            CreateError::Write(e) | CreateError::Sync(e) => e,
        }
    }
}

/// Size of a freshly created segment.
pub const fn empty_segment_len() -> u64 {
    SEGMENT_HEADER_LEN as u64
}

/// Writes the checkpoint file atomically: a temp file is written and
/// fsynced, renamed over the old one, and the directory fsynced, so a crash
/// leaves either the old or the new value, never a torn one.
///
/// Layout: magic "SPWALCKP" | seq u64 LE | crc32c u32 LE of the first 16 bytes.
pub fn write_checkpoint(dir: &Path, seq: Seq) -> Result<()> {
    let mut buf = Vec::with_capacity(CHECKPOINT_LEN);
    buf.extend_from_slice(&CHECKPOINT_MAGIC);
    buf.extend_from_slice(&seq.0.to_le_bytes());
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let tmp = dir.join(CHECKPOINT_TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(&buf)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    sync_dir(dir)?;
    Ok(())
}

/// Reads the mirrored checkpoint from `dir`: None when there is none yet.
/// A damaged file is `Error::Corruption` naming it.
pub fn read_checkpoint_file(dir: &Path) -> Result<Option<Seq>> {
    let path = dir.join(CHECKPOINT_FILE);
    let buf = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let bad = |why: &str| Error::Corruption {
        backend: "wal",
        detail: format!("{}: {why}", path.display()),
    };
    if buf.len() != CHECKPOINT_LEN || buf[0..8] != CHECKPOINT_MAGIC {
        return Err(bad("not a spillway checkpoint file"));
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&buf[16..20]);
    if crc32c::crc32c(&buf[..16]) != u32::from_le_bytes(crc) {
        return Err(bad("CRC mismatch"));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&buf[8..16]);
    Ok(Some(Seq(u64::from_le_bytes(seq))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_seq_and_parse_back() {
        assert_eq!(segment_name(Seq(42)), "00000000000000000042.wal");
        assert_eq!(
            parse_segment_name(&segment_name(Seq(u64::MAX))),
            Some(Seq(u64::MAX))
        );
        assert_eq!(parse_segment_name("checkpoint"), None);
        assert_eq!(parse_segment_name("42.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.wal"), None);
    }

    #[test]
    fn create_lists_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), Seq(10)).unwrap();
        create(dir.path(), Seq(2)).unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let firsts: Vec<Seq> = list(dir.path()).unwrap().iter().map(|s| s.first).collect();
        assert_eq!(firsts, vec![Seq(2), Seq(10)]);
        assert!(matches!(
            create(dir.path(), Seq(2)),
            Err(CreateError::Write(_))
        ));
        let len = fs::metadata(dir.path().join(segment_name(Seq(2))))
            .unwrap()
            .len();
        assert_eq!(len, empty_segment_len());
    }

    #[test]
    fn checkpoint_file_round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint_file(dir.path()).unwrap(), None);
        write_checkpoint(dir.path(), Seq(5)).unwrap();
        write_checkpoint(dir.path(), Seq(77)).unwrap();
        assert_eq!(read_checkpoint_file(dir.path()).unwrap(), Some(Seq(77)));
        let path = dir.path().join(CHECKPOINT_FILE);
        let mut bytes = fs::read(&path).unwrap();
        bytes[9] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = read_checkpoint_file(dir.path()).unwrap_err().to_string();
        assert!(err.contains("checkpoint") && err.contains("CRC"), "{err}");
    }
}
