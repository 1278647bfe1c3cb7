//! Micro-benchmarks for the write-ahead log: framing one record (CPU only),
//! and appending through the group-commit writer thread, one record at a
//! time and in groups that share one write (and, under `fsync = always`,
//! one fdatasync).
//!
//! The log lives in Cargo's per-target temporary directory, on the same
//! disk as `target/`: a WAL on tmpfs would make fdatasync free and the
//! numbers meaningless. Run with `cargo bench --bench wal`.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::join_all;
use spillway::wal::frame::encode_frame;
use spillway::wal::{FsyncPolicy, Seq, Wal, WalOptions};
use tokio::runtime::Runtime;

/// Payload of a small SET record: about what `SET key:000000001234 xxx`
/// logs, rounded up.
const PAYLOAD: usize = 64;

fn frame(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_frame");
    for size in [PAYLOAD, 4096] {
        let payload = vec![b'x'; size];
        let mut buf = Vec::with_capacity(size + 64);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("encode", size), &payload, |b, p| {
            b.iter(|| {
                buf.clear();
                encode_frame(&mut buf, Seq(42), 7, black_box(p));
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

fn open(dir: &Path, fsync: FsyncPolicy) -> Wal {
    let opts = WalOptions {
        dir: dir.to_path_buf(),
        fsync,
        segment_bytes: 64 << 20,
    };
    // A fresh directory: nothing to recover.
    let (wal, _) = Wal::open(opts, Seq(0)).expect("opening a WAL in a fresh directory");
    wal
}

/// `iters` groups of `group` appends issued together and awaited together;
/// returns the time they took. Segments are checkpointed away afterwards,
/// outside the timing, so a long run does not fill the disk.
fn append_groups(rt: &Runtime, wal: &Wal, group: usize, iters: u64) -> Duration {
    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
    let started = Instant::now();
    let mut last = Seq(0);
    for _ in 0..iters {
        // Each append sends its request on first poll, so the whole group is
        // queued before the writer wakes: one write (and fsync) for all.
        let seqs = rt.block_on(join_all((0..group).map(|_| wal.append(1, payload.clone()))));
        for seq in seqs {
            last = last.max(seq.expect("appending to the WAL"));
        }
    }
    let took = started.elapsed();
    wal.checkpoint(last).expect("checkpointing the WAL");
    took
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a tokio runtime");
    let mut group = c.benchmark_group("wal_append");
    for (name, fsync) in [
        ("never", FsyncPolicy::Never),
        ("always", FsyncPolicy::Always),
    ] {
        let dir = tempfile::Builder::new()
            .prefix("wal-bench-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("creating a temporary directory under target/");
        let wal = open(dir.path(), fsync);
        for size in [1usize, 64] {
            group.throughput(Throughput::Elements(size as u64));
            group.bench_function(BenchmarkId::new(format!("fsync={name}"), size), |b| {
                b.iter_custom(|iters| append_groups(&rt, &wal, size, iters))
            });
        }
        rt.block_on(wal.close()).expect("closing the WAL");
    }
    group.finish();
}

criterion_group!(benches, frame, append);
criterion_main!(benches);
