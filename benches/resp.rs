//! Micro-benchmarks for the wire protocol: parsing pipelined and large
//! requests, and encoding typical replies in both protocols.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use spillway::resp::{Frame, Protocol, RequestParser, encode};

fn multibulk(argv: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for arg in argv {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn parse(c: &mut Criterion) {
    let pipeline: Vec<u8> = (0..100)
        .flat_map(|i| multibulk(&[b"SET", format!("key:{i}").as_bytes(), &[b'v'; 16]]))
        .collect();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(pipeline.len() as u64));
    group.bench_function("pipeline_100_set", |b| {
        b.iter(|| {
            let mut parser = RequestParser::default();
            let mut buf = BytesMut::from(&pipeline[..]);
            let mut n = 0;
            while let Ok(Some(argv)) = parser.next(&mut buf) {
                n += argv.len();
            }
            black_box(n)
        })
    });

    let big = multibulk(&[b"SET", b"k", &vec![b'x'; 1 << 20]]);
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("1mib_bulk_in_16kib_reads", |b| {
        b.iter(|| {
            let mut parser = RequestParser::default();
            let mut buf = BytesMut::new();
            let mut got = None;
            for chunk in big.chunks(16 * 1024) {
                buf.reserve(parser.wants());
                buf.extend_from_slice(chunk);
                if let Ok(Some(argv)) = parser.next(&mut buf) {
                    got = Some(argv);
                }
            }
            black_box(got)
        })
    });
    group.finish();
}

fn encode_replies(c: &mut Criterion) {
    let array = Frame::Array(
        (0..100)
            .map(|i| Frame::bulk(format!("value:{i}")))
            .collect(),
    );
    let map = Frame::Map(
        (0..50)
            .map(|i| {
                (
                    Frame::bulk(format!("field:{i}")),
                    Frame::Double(f64::from(i) + 0.5),
                )
            })
            .collect(),
    );
    let mut group = c.benchmark_group("encode");
    for (name, frame, proto) in [
        ("array_100_resp2", &array, Protocol::Resp2),
        ("map_50_doubles_resp3", &map, Protocol::Resp3),
    ] {
        group.bench_function(name, |b| {
            let mut out = BytesMut::with_capacity(8192);
            b.iter(|| {
                out.clear();
                encode(black_box(frame), proto, &mut out);
                black_box(out.len())
            })
        });
    }
    group.bench_function("bulk_64b_resp2", |b| {
        let frame = Frame::Bulk(Bytes::from(vec![b'x'; 64]));
        let mut out = BytesMut::with_capacity(256);
        b.iter(|| {
            out.clear();
            encode(black_box(&frame), Protocol::Resp2, &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, encode_replies);
criterion_main!(benches);
