//! The server host alone: a one-table run's server inputs (`teardown sim
//! --shards 1 --replay-server`), recorded once and replayed into a fresh
//! host each iteration; throughput in the run's teardowns.
//!
//! At 1 M connections, 1 M concurrent and 1 % loss the server's table holds
//! about 990 k entries at its peak; the bench prints what its replay held.
//! Only the replay's own loop is timed (the inputs handed over, the output
//! drained), not the host's construction or drop, and each replay is checked
//! to end as the recorded host did.

mod common;

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use teardown::sim::record::{record_server, replay};
use teardown::sim::{SimArgs, SimConfig};

/// As in the binary: tables of 2 MiB and up on huge pages.
#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

fn replay_server(c: &mut Criterion) {
    let (connections, label) = if common::quick() {
        (10_000, "10k")
    } else {
        (1_000_000, "1M")
    };
    let args = SimArgs {
        connections,
        concurrency: connections,
        loss: 0.01,
        shards: 1,
        threads: Some(1),
        quiet: true,
        ..SimArgs::default()
    };
    let cfg = SimConfig::from_args(&args).expect("valid bench scenario");
    let rec = record_server(&cfg).expect("the run records");
    let first = replay(&rec).expect("the replay ends as recorded");
    eprintln!(
        "replay_server/loss1/{label}: {} entries resident at peak, {} inputs",
        first.peak_entries,
        rec.inputs.len()
    );
    let mut g = c.benchmark_group("replay_server");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(rec.completed));
    g.bench_function(BenchmarkId::new("loss1", label), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| replay(&rec).expect("the replay ends as recorded").elapsed)
                .sum::<Duration>()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion(Duration::from_millis(500), Duration::from_secs(5), 10);
    targets = replay_server
}
criterion_main!(benches);
