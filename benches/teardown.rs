//! Whole teardowns through the simulator: 0 %, 1 % and 10 % loss at 10 k and
//! 1 M concurrent connections, one thread, throughput in teardowns.
//!
//! One iteration is one `teardown sim` run built from [`SimArgs`] as the CLI
//! does (default 64 virtual shards, seed 1), so its numbers line up with
//! `teardown sim --threads 1 --json`'s `teardowns_per_sec`. At 10 k concurrent
//! a run is 100 k connections; at 1 M concurrent it has to be 1 M connections
//! (the whole population opened at once), a few seconds each, so those benches
//! take criterion's minimum of 10 flat samples of one run. All shards are
//! resident at once (the simulator's default), so the 1 M figures are taken on
//! tables holding about 2 M entries (both hosts); each scenario prints the
//! entries its run held before it is measured. At 1 M and 1 % loss two more
//! layouts of the same run are measured, the other two of issue 16's
//! targets: `1M-one-table` (`--shards 1`: one table per host holds all of
//! its million connections) and `1M-sequential` (`--sequential-shards`: one
//! shard at a time, about 31 k entries resident).

mod common;

use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use teardown::sim::{run, SimArgs, SimConfig};

/// As in the binary, so that the memory sampling costs what it costs there.
#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

fn teardown(c: &mut Criterion) {
    let scales: &[(u64, u64, &str)] = if common::quick() {
        &[(1_000, 10_000, "1k"), (10_000, 10_000, "10k")]
    } else {
        &[(10_000, 100_000, "10k"), (1_000_000, 1_000_000, "1M")]
    };
    let mut g = c.benchmark_group("teardown");
    g.sampling_mode(SamplingMode::Flat);
    for &(concurrency, connections, label) in scales {
        for (loss, loss_label) in [(0.0, "loss0"), (0.01, "loss1"), (0.1, "loss10")] {
            let args = SimArgs {
                connections,
                concurrency,
                loss,
                threads: Some(1),
                quiet: true,
                ..SimArgs::default()
            };
            scenario(&mut g, &args, loss_label, label);
            if label == "1M" && loss_label == "loss1" {
                let one_table = SimArgs {
                    shards: 1,
                    ..args.clone()
                };
                scenario(&mut g, &one_table, loss_label, "1M-one-table");
                let sequential = SimArgs {
                    sequential_shards: true,
                    ..args.clone()
                };
                scenario(&mut g, &sequential, loss_label, "1M-sequential");
            }
        }
    }
    g.finish();
}

/// One `teardown sim` run of `args` as bench `loss_label/label`, after a
/// run that prints what it held resident.
fn scenario(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    args: &SimArgs,
    loss_label: &str,
    label: &str,
) {
    let cfg = SimConfig::from_args(args).expect("valid bench scenario");
    let connections = args.connections;
    // What the figure was measured on.
    let r = run(&cfg, false);
    eprintln!(
        "teardown/{loss_label}/{label}: {} entries resident at peak ({})",
        r.resident.peak_entries, r.resident.mode
    );
    g.throughput(Throughput::Elements(connections));
    g.bench_function(BenchmarkId::new(loss_label, label), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let r = run(&cfg, false);
                assert_eq!(
                    (r.completed, r.leaked),
                    (connections, 0),
                    "every teardown completes"
                );
            }
            start.elapsed()
        })
    });
}

criterion_group! {
    name = benches;
    // Short warm-up: one run is already long; ten flat samples is criterion's minimum.
    config = common::criterion(Duration::from_millis(500), Duration::from_secs(3), 10);
    targets = teardown
}
criterion_main!(benches);
