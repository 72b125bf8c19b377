//! The connection table as it grows, 10 k to 10 M entries: insert, lookup (hit)
//! and remove, the engine's shard table beside std's `HashMap` and `DashMap`,
//! one criterion group per operation so the three sit side by side at each
//! size (the table-only peer of `teardown sim --sweep`).
//!
//! Each structure is built once per size and then serves all three operations;
//! insert and remove are measured in chunks whose effect is undone outside the
//! timed region, so the table stays at its size. Lookups and removals walk the
//! keys in a scattered order: keys are inserted in order, and walking them in
//! order would let the engine's slab (filled in insertion order) hit the cache.
//!
//! The peers store a 44-byte value beside the 12-byte tuple: a 56-byte entry,
//! the size of the engine's connection record (`CONN_BYTES`, asserted in
//! `engine/src/table/`). They use their default hasher (SipHash); the engine uses its
//! keyed folded multiply.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dashmap::DashMap;
use teardown_engine::table::Table;
use teardown_engine::{Config, Tuple};

type Value = [u8; 44];

/// As in the binary, whose allocator advises big blocks for huge pages: on
/// 4 KiB pages a random probe of a 10 M table also misses the TLB, which the
/// engine never pays, and the peers are given the same pages.
#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

/// Operations per timed chunk at most; never more than 1/16 of the table, so
/// the size barely moves.
const CHUNK: u64 = 10_000;
/// Lookup and removal probes, drawn once per size.
const PROBES: u64 = 1 << 20;

/// Ports per client address (the default ephemeral range).
const PORTS: u64 = 28_232;

/// The `i`-th connection to a server at 10.0.0.1:80, as the server names it.
fn tuple(i: u64) -> Tuple {
    Tuple {
        local_ip: 0x0a00_0001,
        remote_ip: 0x0b00_0000 + (i / PORTS) as u32,
        local_port: 80,
        remote_port: 32_768 + (i % PORTS) as u16,
    }
}

/// Distinct keys of `0..n` in a scattered order: `i * P mod n` is a permutation
/// when P is a prime that does not divide n.
fn probes(n: u64) -> Vec<Tuple> {
    const P: u64 = 2_654_435_761;
    (0..PROBES.min(n)).map(|i| tuple(i * P % n)).collect()
}

trait Store {
    const NAME: &'static str;
    fn build(n: u64) -> Self;
    fn insert(&mut self, t: Tuple);
    fn hit(&self, t: &Tuple) -> bool;
    fn remove(&mut self, t: &Tuple) -> bool;
}

struct Engine {
    table: Table,
}

impl Store for Engine {
    const NAME: &'static str = "teardown";
    fn build(n: u64) -> Self {
        let mut table = Table::new(Config::default().secret);
        for i in 0..n {
            table.bench_insert(tuple(i));
        }
        Engine { table }
    }
    fn insert(&mut self, t: Tuple) {
        self.table.bench_insert(t);
    }
    fn hit(&self, t: &Tuple) -> bool {
        self.table.bench_find(t)
    }
    fn remove(&mut self, t: &Tuple) -> bool {
        self.table.bench_remove(t)
    }
}

impl Store for HashMap<Tuple, Value> {
    const NAME: &'static str = "std_hashmap";
    fn build(n: u64) -> Self {
        (0..n).map(|i| (tuple(i), [0; 44])).collect()
    }
    fn insert(&mut self, t: Tuple) {
        HashMap::insert(self, t, [0; 44]);
    }
    fn hit(&self, t: &Tuple) -> bool {
        self.contains_key(t)
    }
    fn remove(&mut self, t: &Tuple) -> bool {
        HashMap::remove(self, t).is_some()
    }
}

impl Store for DashMap<Tuple, Value> {
    const NAME: &'static str = "dashmap";
    fn build(n: u64) -> Self {
        (0..n).map(|i| (tuple(i), [0; 44])).collect()
    }
    fn insert(&mut self, t: Tuple) {
        DashMap::insert(self, t, [0; 44]);
    }
    fn hit(&self, t: &Tuple) -> bool {
        self.contains_key(t)
    }
    fn remove(&mut self, t: &Tuple) -> bool {
        DashMap::remove(self, t).is_some()
    }
}

/// Runs `timed` over `iters` operations in chunks of at most `chunk` (first
/// operation, count), calling `undo` with each chunk outside the clock.
fn chunked<S>(
    s: &mut S,
    iters: u64,
    chunk: u64,
    timed: impl Fn(&mut S, u64, u64),
    undo: impl Fn(&mut S, u64, u64),
) -> Duration {
    let (mut spent, mut done) = (Duration::ZERO, 0);
    while done < iters {
        let n = (iters - done).min(chunk);
        let start = Instant::now();
        timed(s, done, n);
        spent += start.elapsed();
        undo(s, done, n);
        done += n;
    }
    spent
}

fn bench_store<S: Store>(c: &mut Criterion, n: u64, label: &str) {
    let mut s = S::build(n);
    let probe = probes(n);
    let at = |k: u64| &probe[(k % probe.len() as u64) as usize];
    let id = BenchmarkId::new(S::NAME, label);
    let chunk = (n / 16).clamp(1, CHUNK);

    let mut g = c.benchmark_group("table_insert");
    g.throughput(Throughput::Elements(1));
    g.bench_function(id.clone(), |b| {
        b.iter_custom(|iters| {
            // Fresh keys just past the table's own; removed again untimed.
            chunked(
                &mut s,
                iters,
                chunk,
                |s, _, m| (0..m).for_each(|k| s.insert(tuple(n + k))),
                |s, _, m| (0..m).for_each(|k| assert!(s.remove(&tuple(n + k)))),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("table_lookup_hit");
    g.throughput(Throughput::Elements(1));
    g.bench_function(id.clone(), |b| {
        let mut k = 0u64;
        b.iter(|| {
            k += 1;
            black_box(s.hit(black_box(at(k))))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("table_remove");
    g.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let base = next;
            next += iters;
            chunked(
                &mut s,
                iters,
                chunk,
                |s, from, m| (from..from + m).for_each(|k| assert!(s.remove(at(base + k)))),
                |s, from, m| (from..from + m).for_each(|k| s.insert(*at(base + k))),
            )
        })
    });
    g.finish();
}

fn table(c: &mut Criterion) {
    let sizes: &[(u64, &str)] = if common::quick() {
        &[(10_000, "10k"), (100_000, "100k")]
    } else {
        &[
            (10_000, "10k"),
            (100_000, "100k"),
            (1_000_000, "1M"),
            (10_000_000, "10M"),
        ]
    };
    for &(n, label) in sizes {
        bench_store::<Engine>(c, n, label);
        bench_store::<HashMap<Tuple, Value>>(c, n, label);
        bench_store::<DashMap<Tuple, Value>>(c, n, label);
    }
}

criterion_group! {
    name = benches;
    config = common::criterion(Duration::from_secs(1), Duration::from_secs(2), 20);
    targets = table
}
criterion_main!(benches);
