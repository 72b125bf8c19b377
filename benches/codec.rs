//! The wire codec (`teardown::wire`): encode and decode whole datagrams of 1, 16
//! and 1,800 (the most, 64,808 bytes) records, throughput in segments.
//!
//! * `encode`: clear a reused [`Encoder`], push every segment, take the datagram.
//! * `decode`: validate the datagram and read every record into a `Segment`,
//!   folding the fields so that none of the reads is optimised away.
//! * `memcpy`: the peer, the floor any codec of these bytes pays: copy the same
//!   datagram into a reused buffer of its size (`copy_from_slice`).

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use teardown::wire::{decode, Encoder};
use teardown_engine::{Flags, Segment, Tuple};

const SIZES: [usize; 3] = [1, 16, teardown::wire::MAX_RECORDS];

fn segments(n: usize) -> Vec<Segment> {
    (0..n as u32)
        .map(|i| {
            let t = Tuple::new(
                [10, 128, (i >> 8) as u8, i as u8],
                32_768 + i as u16,
                [10, 0, 0, 1],
                80,
            );
            Segment::new(
                &t,
                Flags::FIN | Flags::ACK,
                i.wrapping_mul(2_654_435_761),
                !i,
                0,
                65_535,
            )
        })
        .collect()
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for n in SIZES {
        let segs = segments(n);
        let mut enc = Encoder::new(n);
        for s in &segs {
            enc.push(s);
        }
        let bytes = enc.datagram().to_vec();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("encode", n), &segs, |b, segs| {
            b.iter(|| {
                enc.clear();
                for s in segs {
                    enc.push(s);
                }
                black_box(enc.datagram().len())
            })
        });
        g.bench_with_input(BenchmarkId::new("decode", n), &bytes, |b, bytes| {
            b.iter(|| {
                let Ok(records) = decode(black_box(bytes)) else {
                    unreachable!("the bench's own datagram decodes")
                };
                records.fold(0u32, |acc, s| {
                    acc ^ s.src_ip
                        ^ s.dst_ip
                        ^ s.seq
                        ^ s.ack
                        ^ s.len
                        ^ u32::from(s.src_port)
                        ^ u32::from(s.dst_port)
                        ^ u32::from(s.wnd)
                        ^ u32::from(s.flags.0)
                })
            })
        });
        let mut copy = vec![0u8; bytes.len()];
        g.bench_with_input(BenchmarkId::new("memcpy", n), &bytes, |b, bytes| {
            b.iter(|| {
                copy.copy_from_slice(black_box(bytes));
                black_box(copy[copy.len() - 1])
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion(Duration::from_secs(1), Duration::from_secs(3), 50);
    targets = codec
}
criterion_main!(benches);
