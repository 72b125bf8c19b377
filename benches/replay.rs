//! The server host alone: a one-table run's server inputs (`teardown sim
//! --shards 1 --replay-server`), recorded once and replayed into a fresh
//! host each iteration; throughput in the run's teardowns. `-sequential`:
//! the same run in 64 shards, each shard's server host replayed in turn
//! (`--sequential-shards --replay-server`), tables 64 times smaller.
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
use teardown::sim::record::{record_servers, replay_all};
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
    let mut g = c.benchmark_group("replay_server");
    g.sampling_mode(SamplingMode::Flat);
    // The one table of `--shards 1`, then 64 shards' tables one after
    // another (`--sequential-shards`).
    for (layout, shards, sequential) in [("", 1, false), ("-sequential", 64, true)] {
        let args = SimArgs {
            connections,
            concurrency: connections,
            loss: 0.01,
            shards,
            sequential_shards: sequential,
            threads: Some(1),
            quiet: true,
            ..SimArgs::default()
        };
        let cfg = SimConfig::from_args(&args).expect("valid bench scenario");
        let recs = record_servers(&cfg).expect("the run records");
        let first = replay_all(&recs).expect("the replay ends as recorded");
        let name = format!("{label}{layout}");
        eprintln!(
            "replay_server/loss1/{name}: {} entries resident at peak, {} inputs to {} server host{}",
            first.peak_entries,
            recs.iter().map(|r| r.inputs.len()).sum::<usize>(),
            recs.len(),
            if recs.len() == 1 { "" } else { "s" }
        );
        g.throughput(Throughput::Elements(first.teardowns));
        g.bench_function(BenchmarkId::new("loss1", name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        replay_all(&recs)
                            .expect("the replay ends as recorded")
                            .elapsed
                    })
                    .sum::<Duration>()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion(Duration::from_millis(500), Duration::from_secs(5), 10);
    targets = replay_server
}
criterion_main!(benches);
