//! Byte layout of the WAL: the segment header and the record frame. Pure
//! functions over byte slices, so the layout can be tested (and fuzzed)
//! without files.
//!
//! All integers are little-endian.
//!
//! Segment header (24 bytes), so a file that is not a spillway segment, or
//! one written by an incompatible version, is refused instead of misread:
//!
//! ```text
//! magic "SPILLWAL" (8) | format u32 | reserved u32 (0) | first_seq u64
//! ```
//!
//! Record frame (24 bytes + payload):
//!
//! ```text
//! len u32 | crc32c u32 | seq u64 | version u64 | payload (len bytes)
//! ```
//!
//! `len` is the payload length. The CRC (CRC-32C, Castagnoli) covers
//! everything after the crc field: seq, version and payload. `len` itself is
//! not covered, but a damaged `len` makes the CRC check run over the wrong
//! bytes and fail, and a `len` reaching past the end of the file is told
//! apart from a torn write by looking for intact frames after it (see
//! `recovery`).

use std::ops::Range;

use super::Seq;

/// Identifies a spillway WAL segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SPILLWAL";
/// Bumped whenever the header or frame layout changes.
pub const FORMAT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 24;
/// Size of a frame without its payload.
pub const FRAME_HEADER_LEN: usize = 24;
/// Largest payload a frame may carry. Well above the largest request the
/// server accepts; a `len` above it is damage, not a record.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Encodes a segment header for a segment whose first record is `first`.
pub fn encode_segment_header(first: Seq) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first.0.to_le_bytes());
    h
}

/// Why a segment header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header: a segment whose creation was cut short.
    Short,
    /// Not a spillway WAL segment.
    BadMagic,
    /// Written by a format this build does not read.
    Format(u32),
}

/// Decodes a segment header, returning the first seq it declares.
pub fn decode_segment_header(buf: &[u8]) -> Result<Seq, HeaderError> {
    if buf.len() < SEGMENT_HEADER_LEN {
        return Err(HeaderError::Short);
    }
    if buf[0..8] != SEGMENT_MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let format = read_u32(buf, 8);
    if format != FORMAT_VERSION {
        return Err(HeaderError::Format(format));
    }
    Ok(Seq(read_u64(buf, 16)))
}

/// Appends one frame to `buf`.
///
/// The caller guarantees `payload.len() <= MAX_PAYLOAD` (checked where a
/// record enters the WAL, so a bad payload fails alone, not its group).
pub fn encode_frame(buf: &mut Vec<u8>, seq: Seq, version: u64, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let start = buf.len();
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&seq.0.to_le_bytes());
    buf.extend_from_slice(&version.to_le_bytes());
    buf.extend_from_slice(payload);
    let crc = crc32c::crc32c(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Encoded size of a frame carrying `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

/// One decoded frame; `payload` and `end` are offsets into the decoded buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub seq: Seq,
    pub version: u64,
    pub payload: Range<usize>,
    pub end: usize,
}

/// Why the bytes at an offset are not a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The frame reaches past the end of the data.
    Truncated,
    /// `len` is larger than any record can be.
    TooLong(u32),
    /// The checksum does not match the contents.
    BadCrc,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Truncated => f.write_str("incomplete frame"),
            FrameError::TooLong(n) => write!(f, "frame length {n} exceeds the maximum"),
            FrameError::BadCrc => f.write_str("CRC mismatch"),
        }
    }
}

/// Decodes the frame starting at `off` in `buf`.
pub fn decode_frame(buf: &[u8], off: usize) -> Result<Frame, FrameError> {
    let rest = buf.len().saturating_sub(off);
    if rest < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated);
    }
    let len = read_u32(buf, off);
    if len as usize > MAX_PAYLOAD {
        return Err(FrameError::TooLong(len));
    }
    let end = off + frame_len(len as usize);
    if end > buf.len() {
        return Err(FrameError::Truncated);
    }
    if crc32c::crc32c(&buf[off + 8..end]) != read_u32(buf, off + 4) {
        return Err(FrameError::BadCrc);
    }
    Ok(Frame {
        seq: Seq(read_u64(buf, off + 8)),
        version: read_u64(buf, off + 16),
        payload: off + FRAME_HEADER_LEN..end,
        end,
    })
}

/// Reads the seq field at `off` without checking the frame, to cheaply rule
/// out candidates when searching for intact frames after damage.
pub fn peek_seq(buf: &[u8], off: usize) -> Option<Seq> {
    (buf.len().saturating_sub(off) >= FRAME_HEADER_LEN).then(|| Seq(read_u64(buf, off + 8)))
}

fn read_u32(buf: &[u8], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[off..off + 4]);
    u32::from_le_bytes(b)
}

fn read_u64(buf: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[off..off + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frame_round_trip() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, Seq(7), 42, b"hello");
        encode_frame(&mut buf, Seq(8), 43, b"");
        let a = decode_frame(&buf, 0).unwrap();
        assert_eq!(
            (a.seq, a.version, &buf[a.payload.clone()]),
            (Seq(7), 42, &b"hello"[..])
        );
        let b = decode_frame(&buf, a.end).unwrap();
        assert_eq!((b.seq, b.version, b.payload.len()), (Seq(8), 43, 0));
        assert_eq!(b.end, buf.len());
    }

    #[test]
    fn layout_is_little_endian_with_crc_over_the_rest() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, Seq(1), 2, b"x");
        assert_eq!(&buf[0..4], &[1, 0, 0, 0]);
        assert_eq!(&buf[8..16], &1u64.to_le_bytes());
        assert_eq!(&buf[16..24], &2u64.to_le_bytes());
        let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
        assert_eq!(crc, crc32c::crc32c(&buf[8..]));
    }

    #[test]
    fn every_truncation_and_flip_is_detected() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, Seq(3), 9, b"payload bytes");
        for cut in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..cut], 0), Err(FrameError::Truncated));
        }
        for i in 4..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode_frame(&bad, 0), Err(FrameError::BadCrc), "byte {i}");
        }
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let h = encode_segment_header(Seq(99));
        assert_eq!(decode_segment_header(&h), Ok(Seq(99)));
        assert_eq!(decode_segment_header(&h[..10]), Err(HeaderError::Short));
        let mut foreign = h;
        foreign[0] = b'X';
        assert_eq!(decode_segment_header(&foreign), Err(HeaderError::BadMagic));
        let mut future = h;
        future[8] = 2;
        assert_eq!(decode_segment_header(&future), Err(HeaderError::Format(2)));
    }

    #[test]
    fn oversized_length_is_refused_before_reading() {
        let mut buf = vec![0u8; FRAME_HEADER_LEN];
        buf[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_frame(&buf, 0), Err(FrameError::TooLong(u32::MAX)));
    }

    proptest! {
        #[test]
        fn random_payloads_round_trip(
            frames in proptest::collection::vec(
                (any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)),
                1..8,
            )
        ) {
            let mut buf = Vec::new();
            for (seq, version, payload) in &frames {
                encode_frame(&mut buf, Seq(*seq), *version, payload);
            }
            let mut off = 0;
            for (seq, version, payload) in &frames {
                let f = decode_frame(&buf, off).unwrap();
                prop_assert_eq!(f.seq, Seq(*seq));
                prop_assert_eq!(f.version, *version);
                prop_assert_eq!(&buf[f.payload.clone()], &payload[..]);
                off = f.end;
            }
            prop_assert_eq!(off, buf.len());
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), off in 0usize..220) {
            let _ = decode_frame(&data, off);
            let _ = decode_segment_header(&data);
            let _ = peek_seq(&data, off);
        }
    }
}
