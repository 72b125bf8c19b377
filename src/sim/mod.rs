//! `teardown sim`: a deterministic discrete-event simulator on a virtual clock.
//!
//! A server host and its clients (two engines per shard) run a connection
//! workload through open, request/response, close and teardown over a simulated
//! link with loss, delay and jitter. The work is split into a fixed number of
//! virtual shards (`--shards`), each an independent simulation with its own seed
//! stream and its own client addresses; results are merged by shard index. So
//! for a given seed and flags the report is the same whatever `--threads` is,
//! except the wall-clock and working-set fields. By default each thread holds
//! all its shards at once and advances them together (`resident.rs`);
//! `--sequential-shards` runs them one after another from a crossbeam queue.

mod app;
mod app_timers;
mod args;
mod attack;
mod config;
mod deliver;
mod open;
pub mod plot;
mod queue;
pub mod record;
mod repeat;
mod report;
mod resident;
mod result;
mod reuse;
mod series;
mod shard;
mod slots;
mod spare;
mod sweep;
mod tally;
mod threads;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;

use teardown_engine::time::Time;

/// µs of a time, `u64::MAX` for none: the shards' event loop compares plain
/// numbers, asked after every event.
#[inline]
fn micros_or_never(t: Option<Time>) -> u64 {
    t.map_or(u64::MAX, Time::as_micros)
}

pub use args::{CloseMode, LossKind, RunawayAt, SimArgs, Workload};
pub use attack::{AttackCounts, AttackKind};
pub use config::SimConfig;
pub use report::{Point, SimReport};
pub use result::{Cases, ShardResult};
pub use series::Sample;
pub use threads::run;

/// `teardown sim`.
pub fn main(args: SimArgs) -> anyhow::Result<ExitCode> {
    if let Some(sizes) = &args.sweep {
        return sweep_main(&args, &sizes.0);
    }
    let cfg = SimConfig::from_args(&args)?;
    if args.replay_server {
        return replay_main(&args, &cfg);
    }
    let show_progress = std::io::stderr().is_terminal() && !args.quiet;
    let (report, repeat) = repeat::run_repeated(&cfg, args.repeat, show_progress)?;
    if !args.quiet && args.json.as_deref() != Some("-") {
        print!("{}", report.human());
        if let Some(r) = &repeat {
            print!("{}", r.human());
        }
    }
    if let Some(path) = &args.json {
        crate::cli::write_text(path, &(repeat::json(&report, repeat.as_ref())? + "\n"))?;
    }
    if let Some(path) = &args.pcap {
        let mut w = crate::pcap::PcapWriter::create(path)
            .with_context(|| format!("creating {}", path.display()))?;
        for (t, seg) in &report.capture {
            w.write(*t, seg)?;
        }
        w.finish()?;
    }
    if let Some(dir) = &args.plot {
        report::plot(&report, dir)
            .with_context(|| format!("writing plots to {}", dir.display()))?;
    }
    Ok(if report.leaked == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `teardown sim --replay-server`: record, then replay `--repeat` times
/// (with `--sequential-shards`, every shard's server host in turn each time).
fn replay_main(args: &SimArgs, cfg: &SimConfig) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let recs = record::record_servers(cfg)?;
    let recorded_secs = started.elapsed().as_secs_f64();
    let mut runs = Vec::new();
    for _ in 0..args.repeat {
        runs.push(record::replay_all(&recs)?);
    }
    let secs: Vec<f64> = runs.iter().map(|r| r.elapsed.as_secs_f64()).collect();
    let median = repeat::Spread::of(&secs).median;
    let first = runs.first();
    let completed = first.map_or(0, |r| r.teardowns);
    let rate = |s: f64| first.map_or(0.0, |r| r.rate(s));
    let peak = runs.iter().map(|r| r.peak_entries).max().unwrap_or(0);
    let segments = first.map_or(0, |r| r.segments);
    let inputs: usize = recs.iter().map(|r| r.inputs.len()).sum();
    let input_bytes = inputs * std::mem::size_of::<record::Input>();
    let look_ahead = recs.iter().any(|r| r.look_ahead);
    let json = serde_json::json!({
        "replay_server": {
            "teardowns": completed,
            "segments": segments,
            "inputs": inputs,
            "input_bytes": input_bytes,
            "hosts": recs.len(),
            "resident": { "peak_entries": peak },
            "look_ahead": look_ahead,
            "runs": secs.len(),
            "seconds": secs,
            "median_seconds": median,
            "teardowns_per_sec": rate(median),
            "recorded_in_seconds": recorded_secs,
        }
    });
    if !args.quiet && args.json.as_deref() != Some("-") {
        let hosts = match recs.len() {
            1 => String::new(),
            n => format!(", {n} shards' hosts one after another"),
        };
        println!(
            "server host replayed alone: {completed} teardowns ({segments} segments, {inputs} inputs, {:.0} MiB) in {median:.3} s \
             (median of {}): {:.0} teardowns/s on one core, {peak} entries resident at peak{hosts}; \
             each replay ended with the recorded host's counters and population",
            input_bytes as f64 / (1 << 20) as f64,
            secs.len(),
            rate(median),
        );
        println!(
            "the run that recorded it (both hosts, link and applications, one core): {recorded_secs:.2} s, \
             {:.0} teardowns/s",
            rate(recorded_secs),
        );
    }
    if let Some(path) = &args.json {
        crate::cli::write_json(path, &json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `teardown sim --sweep SIZES`.
fn sweep_main(args: &SimArgs, sizes: &[u64]) -> anyhow::Result<ExitCode> {
    // Checked before the runs; --replay-server adds a point per size, each
    // of which makes its own one-table configuration.
    let threads = SimConfig::from_args(&SimArgs {
        replay_server: false,
        ..args.clone()
    })?
    .threads;
    let points = sweep::sweep(
        args,
        sizes,
        &args.kernel_report,
        args.table_bench.as_deref(),
    )?;
    if !args.quiet && args.json.as_deref() != Some("-") {
        print!("{}", sweep::human(&points, args.repeat));
    }
    if let Some(path) = &args.json {
        crate::cli::write_json(path, &points)?;
    }
    if let Some(dir) = &args.plot {
        let title = format!(
            "teardowns/s as the table grows (loss {}%, {} thread{}, {} shards)",
            (args.loss * 100_000.0).round() / 1000.0,
            threads,
            if threads == 1 { "" } else { "s" },
            args.shards
        );
        sweep::plot(&points, &title, dir)
            .with_context(|| format!("writing plots to {}", dir.display()))?;
    }
    Ok(if points.runs.iter().all(|p| p.leaked == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
