//! The write-ahead log on real files: group commit, rotation, checkpoints,
//! torn tails, corruption, failed writes, and the read-only tools.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use spillway::wal::{self, FsyncPolicy, Record, Seq, Wal, WalOptions};

fn opts(dir: &Path, fsync: FsyncPolicy, segment_bytes: u64) -> WalOptions {
    WalOptions {
        dir: dir.to_path_buf(),
        fsync,
        segment_bytes,
    }
}

fn open(dir: &Path, checkpoint: u64) -> (Wal, wal::Recovered) {
    Wal::open(opts(dir, FsyncPolicy::Always, 1 << 20), Seq(checkpoint)).expect("open")
}

fn payload(i: u64) -> Bytes {
    Bytes::from(format!("record-{i}-{}", "x".repeat((i % 7) as usize)))
}

/// Appends records whose payloads are `payload(i)` and versions `1000 + i`.
async fn append_range(wal: &Wal, range: std::ops::Range<u64>) -> Vec<Seq> {
    let mut seqs = Vec::new();
    for i in range {
        seqs.push(wal.append(1000 + i, payload(i)).await.expect("append"));
    }
    seqs
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

fn seqs_of(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.seq.0).collect()
}

/// Writes `n` records (payload(1..=n)) to a fresh log and closes it.
async fn log_with(dir: &Path, n: u64, segment_bytes: u64) {
    let (w, _) = Wal::open(opts(dir, FsyncPolicy::Always, segment_bytes), Seq(0)).unwrap();
    append_range(&w, 1..n + 1).await;
    w.close().await.unwrap();
}

#[tokio::test]
async fn records_survive_reopen_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    let (w, rec) = open(dir.path(), 0);
    assert!(rec.records.is_empty() && rec.torn_tail.is_none() && rec.oldest_retained.is_none());
    assert_eq!(
        append_range(&w, 1..11).await,
        (1..11).map(Seq).collect::<Vec<_>>()
    );
    w.close().await.unwrap();
    assert!(w.append(1, payload(0)).await.is_err(), "append after close");

    let (w, rec) = open(dir.path(), 0);
    assert_eq!(seqs_of(&rec.records), (1..11).collect::<Vec<_>>());
    for r in &rec.records {
        assert_eq!((r.version, &r.payload), (1000 + r.seq.0, &payload(r.seq.0)));
    }
    assert_eq!(rec.oldest_retained, Some(Seq(1)));
    assert_eq!(w.append(5, payload(11)).await.unwrap(), Seq(11));
    w.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _) = open(dir.path(), 0);
    let w = Arc::new(w);
    let tasks: Vec<_> = (0..200u64)
        .map(|t| {
            let w = w.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..5 {
                    seqs.push(w.append(t, payload(t * 5 + i)).await.unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().into_iter().map(|s| s.0));
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1000).collect::<Vec<_>>(), "unique and contiguous");
    let stats = w.stats();
    assert_eq!(stats.appends, 1000);
    assert_eq!(stats.last_seq, Seq(1000));
    eprintln!("group commit: {stats:?}");
    assert!(stats.fsyncs < stats.appends / 2, "{stats:?}");
    w.close().await.unwrap();
    let (_w, rec) = open(dir.path(), 0);
    assert_eq!(rec.records.len(), 1000);
}

#[tokio::test]
async fn everysec_and_never_acknowledge_and_persist() {
    for policy in [FsyncPolicy::EverySec, FsyncPolicy::Never] {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = Wal::open(opts(dir.path(), policy, 1 << 20), Seq(0)).unwrap();
        append_range(&w, 1..51).await;
        assert!(w.stats().fsyncs < 50, "{policy:?}: {:?}", w.stats());
        w.close().await.unwrap();
        let (_w, rec) = open(dir.path(), 0);
        assert_eq!(rec.records.len(), 50, "{policy:?}");
    }
    assert_eq!(
        "everysec".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::EverySec
    );
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
}

#[tokio::test]
async fn everysec_syncs_dirty_data_within_about_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _) = Wal::open(opts(dir.path(), FsyncPolicy::EverySec, 1 << 20), Seq(0)).unwrap();
    append_range(&w, 1..4).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while w.stats().fsyncs == 0 {
        assert!(std::time::Instant::now() < deadline, "no background fsync");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(w.stats().fsyncs, 1);
    w.close().await.unwrap();
}

#[tokio::test]
async fn rotation_checkpoint_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _) = Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(0)).unwrap();
    append_range(&w, 1..51).await;
    let files = segment_files(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    assert_eq!(w.stats().segments, files.len());
    assert!(files[0].ends_with("00000000000000000001.wal"));
    // Every segment is named by the seq of its first record.
    let mut out = Vec::new();
    wal::inspect(dir.path(), &mut out).unwrap();
    for line in String::from_utf8(out).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f[1] == "24" {
            assert_eq!(
                f[0],
                format!("{:020}.wal", f[2].parse::<u64>().unwrap()),
                "{line}"
            );
        }
    }

    w.checkpoint(Seq(30)).unwrap();
    assert_eq!(
        wal::read_checkpoint_file(dir.path()).unwrap(),
        Some(Seq(30))
    );
    let left = segment_files(dir.path());
    assert!(left.len() < files.len());
    let on_disk: u64 = left.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(w.stats().bytes, on_disk);
    assert_eq!(w.stats().checkpoint, Seq(30));
    w.checkpoint(Seq(10)).unwrap(); // lower: ignored
    assert_eq!(
        wal::read_checkpoint_file(dir.path()).unwrap(),
        Some(Seq(30))
    );
    w.close().await.unwrap();

    let (w, rec) = Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(30)).unwrap();
    assert_eq!(seqs_of(&rec.records), (31..51).collect::<Vec<_>>());
    assert!(rec.oldest_retained.unwrap() <= Seq(31));
    assert_eq!(w.append(1, payload(51)).await.unwrap(), Seq(51));
    // Everything applied: the log shrinks to the segment being written.
    w.checkpoint(Seq(51)).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    w.close().await.unwrap();
}

#[tokio::test]
async fn empty_log_continues_after_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (w, rec) = open(dir.path(), 100);
    assert!(rec.records.is_empty());
    assert_eq!(w.append(1, payload(1)).await.unwrap(), Seq(101));
    append_range(&w, 2..4).await;
    w.checkpoint(Seq(103)).unwrap();
    w.close().await.unwrap();
    let (w, rec) = open(dir.path(), 103);
    assert!(rec.records.is_empty());
    assert_eq!(w.append(1, payload(1)).await.unwrap(), Seq(104));
    w.close().await.unwrap();
}

#[tokio::test]
async fn checkpoint_below_the_oldest_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _) = Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(0)).unwrap();
    append_range(&w, 1..51).await;
    w.checkpoint(Seq(40)).unwrap();
    w.close().await.unwrap();
    let err = Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(5))
        .err()
        .expect("refused")
        .to_string();
    let oldest = segment_files(dir.path())[0].clone();
    let oldest = oldest
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .trim_start_matches('0')
        .to_string();
    assert!(
        err.contains("checkpoint 5") && err.contains(&oldest),
        "{err}"
    );
}

/// Offset of the last record in a single-segment log of `n` records.
fn last_record_offset(dir: &Path) -> (PathBuf, u64) {
    let mut out = Vec::new();
    wal::inspect(dir, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let last = text.lines().last().unwrap();
    let off: u64 = last.split(' ').nth(1).unwrap().parse().unwrap();
    (segment_files(dir).pop().unwrap(), off)
}

#[tokio::test]
async fn truncation_anywhere_in_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 5, 1 << 20).await;
    let (seg, last_off) = last_record_offset(dir.path());
    let original = fs::read(&seg).unwrap();
    for cut in last_off as usize..original.len() {
        fs::write(&seg, &original[..cut]).unwrap();
        let (w, rec) = open(dir.path(), 0);
        assert_eq!(seqs_of(&rec.records), vec![1, 2, 3, 4], "cut at {cut}");
        if cut > last_off as usize {
            let torn = rec.torn_tail.expect("torn tail reported");
            assert_eq!(
                (torn.offset, torn.bytes),
                (last_off, (cut as u64 - last_off))
            );
            assert_eq!(torn.segment, seg);
        } else {
            assert!(rec.torn_tail.is_none());
        }
        assert_eq!(
            w.append(9, Bytes::from_static(b"after")).await.unwrap(),
            Seq(5)
        );
        w.close().await.unwrap();
        let (_w, rec) = open(dir.path(), 0);
        assert_eq!(seqs_of(&rec.records), vec![1, 2, 3, 4, 5]);
        assert_eq!(&rec.records[4].payload[..], b"after");
        assert!(rec.torn_tail.is_none());
    }
}

#[tokio::test]
async fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 3, 1 << 20).await;
    let seg = segment_files(dir.path()).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(&seg, &bytes).unwrap();
    let (_w, rec) = open(dir.path(), 0);
    assert_eq!(rec.records.len(), 3);
    assert_eq!(rec.torn_tail.unwrap().offset, len);
    assert_eq!(fs::metadata(&seg).unwrap().len(), len, "cut back");
}

fn assert_refused(dir: &Path, seg: &Path, offset: u64) {
    let err = Wal::open(opts(dir, FsyncPolicy::Always, 1 << 20), Seq(0))
        .err()
        .expect("corruption refused");
    let msg = err.to_string();
    let name = seg.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains(&format!("offset {offset}")), "{msg}");
    assert!(!msg.contains('\n'));
}

#[tokio::test]
async fn damage_before_intact_records_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 5, 1 << 20).await;
    let seg = segment_files(dir.path()).pop().unwrap();
    let original = fs::read(&seg).unwrap();
    let mut out = Vec::new();
    wal::inspect(dir.path(), &mut out).unwrap();
    let offs: Vec<u64> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    // Every byte of the second record, flipped, with three intact records after it.
    for i in offs[1]..offs[2] {
        let mut bad = original.clone();
        bad[i as usize] ^= 0x40;
        fs::write(&seg, &bad).unwrap();
        assert_refused(dir.path(), &seg, offs[1]);
    }
    // Refusing left the file as it was.
    assert_eq!(fs::read(&seg).unwrap().len(), original.len());
}

#[tokio::test]
async fn damage_in_a_segment_that_is_not_the_last_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 40, 200).await;
    let segs = segment_files(dir.path());
    let first = fs::read(&segs[0]).unwrap();
    // A flip in its last record: would be a torn tail if it were the last segment.
    let mut bad = first.clone();
    *bad.last_mut().unwrap() ^= 1;
    fs::write(&segs[0], &bad).unwrap();
    let err = Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(0))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("00000000000000000001.wal"),
        "{err}"
    );
    // Cut short: also refused.
    fs::write(&segs[0], &first[..first.len() - 3]).unwrap();
    assert!(Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(0)).is_err());
    // Missing: seqs no longer continue.
    fs::write(&segs[0], &first).unwrap();
    fs::remove_file(&segs[1]).unwrap();
    let err = Wal::open(opts(dir.path(), FsyncPolicy::Always, 200), Seq(0))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains(segs[2].file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.wal");
    fs::write(&path, b"this is not a write-ahead log segment at all").unwrap();
    let err = Wal::open(opts(dir.path(), FsyncPolicy::Always, 1 << 20), Seq(0))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("not a spillway WAL segment"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_fails_its_group_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (w, _) = open(dir.path(), 0);
    append_range(&w, 1..4).await;
    w.inject_write_failures(1);
    let err = w.append(1, Bytes::from_static(b"lost")).await.unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(append_range(&w, 4..6).await, vec![Seq(4), Seq(5)]);

    // Concurrent appenders around a failure: exactly the acknowledged ones survive.
    let w = Arc::new(w);
    w.inject_write_failures(1);
    let tasks: Vec<_> = (100..120u64)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move { (i, w.append(i, payload(i)).await) })
        })
        .collect();
    let mut acked = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(seq)) => acked.push((seq, payload(i))),
            (_, Err(_)) => failed += 1,
        }
    }
    assert!(failed > 0);
    w.close().await.unwrap();

    let report = wal::verify(dir.path()).unwrap();
    assert!(report.torn_tail.is_none() && report.is_ok(), "{report}");
    let (_w, rec) = open(dir.path(), 0);
    assert_eq!(seqs_of(&rec.records[..5]), vec![1, 2, 3, 4, 5]);
    assert!(rec.records.iter().all(|r| &r.payload[..] != b"lost"));
    assert_eq!(rec.records.len(), 5 + acked.len());
    acked.sort();
    for (r, (seq, p)) in rec.records[5..].iter().zip(&acked) {
        assert_eq!((&r.seq, &r.payload), (seq, p));
    }
}

#[tokio::test]
async fn verify_and_inspect_report_without_modifying() {
    let dir = tempfile::tempdir().unwrap();
    log_with(dir.path(), 30, 300).await;
    let report = wal::verify(dir.path()).unwrap();
    assert!(report.is_ok());
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (30, Some(Seq(1)), Some(Seq(30)))
    );
    assert_eq!(report.segments, segment_files(dir.path()).len());
    let mut out = Vec::new();
    wal::inspect(dir.path(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 30);
    let first: Vec<&str> = text.lines().next().unwrap().split(' ').collect();
    assert_eq!(
        first,
        vec![
            "00000000000000000001.wal",
            "24",
            "1",
            "1001",
            &payload(1).len().to_string()
        ]
    );

    // Torn: reported, still ok, file untouched.
    let last = segment_files(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    bytes.truncate(bytes.len() - 2);
    fs::write(&last, &bytes).unwrap();
    let report = wal::verify(dir.path()).unwrap();
    assert!(report.is_ok() && report.torn_tail.is_some(), "{report}");
    assert_eq!(report.records, 29);
    let mut out = Vec::new();
    wal::inspect(dir.path(), &mut out).unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .starts_with("# torn tail")
    );
    assert_eq!(fs::read(&last).unwrap(), bytes);

    // Corrupt: reported with its location; inspect lists up to it and fails.
    let first_seg = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&first_seg).unwrap();
    bytes[30] ^= 0xff;
    fs::write(&first_seg, &bytes).unwrap();
    let report = wal::verify(dir.path()).unwrap();
    let c = report.corruption.clone().expect("corruption found");
    assert_eq!((c.segment, c.offset), (first_seg.clone(), 24));
    assert!(report.to_string().contains("corruption: "));
    let mut out = Vec::new();
    assert!(wal::inspect(dir.path(), &mut out).is_err());
    assert!(
        String::from_utf8(out)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .starts_with("# corrupt")
    );
    assert_eq!(fs::read(&first_seg).unwrap(), bytes);
}

mod damage {
    //! Random damage never panics, and whatever open accepts is a prefix of
    //! what was written: no invented or reordered records.
    use super::*;
    use proptest::prelude::*;

    fn pristine() -> &'static (tempfile::TempDir, Vec<Record>) {
        static LOG: std::sync::OnceLock<(tempfile::TempDir, Vec<Record>)> =
            std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(log_with(dir.path(), 24, 400));
            let (_w, rec) = open(dir.path(), 0);
            (dir, rec.records)
        })
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Flip { seg: usize, at: usize, mask: u8 },
        Truncate { seg: usize, at: usize },
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (0usize..8, 0usize..4096, 1u8..=255).prop_map(|(seg, at, mask)| Damage::Flip {
                seg,
                at,
                mask
            }),
            (0usize..8, 0usize..4096).prop_map(|(seg, at)| Damage::Truncate { seg, at }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_damage_is_ok_or_a_clean_error(damages in proptest::collection::vec(damage(), 1..4)) {
            let (src, written) = pristine();
            let dir = tempfile::tempdir().unwrap();
            for p in segment_files(src.path()) {
                fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
            }
            let segs = segment_files(dir.path());
            for d in &damages {
                let (seg, at) = match d { Damage::Flip { seg, at, .. } | Damage::Truncate { seg, at } => (*seg, *at) };
                let path = &segs[seg % segs.len()];
                let mut bytes = fs::read(path).unwrap();
                if bytes.is_empty() { continue; }
                let at = at % bytes.len();
                match d {
                    Damage::Flip { mask, .. } => bytes[at] ^= mask,
                    Damage::Truncate { .. } => bytes.truncate(at),
                }
                fs::write(path, &bytes).unwrap();
            }
            let _ = wal::verify(dir.path());
            let _ = wal::inspect(dir.path(), &mut std::io::sink());
            if let Ok((_w, rec)) = Wal::open(opts(dir.path(), FsyncPolicy::Never, 400), Seq(0)) {
                prop_assert!(rec.records.len() <= written.len());
                prop_assert_eq!(&rec.records[..], &written[..rec.records.len()]);
            }
        }
    }
}
