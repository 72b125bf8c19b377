//! `teardown sim --sweep SIZES`: teardowns/s as the table grows.
//!
//! One run per size with `--concurrency` set to it (and at least that many
//! connections), all shards resident, then the same run one shard per thread
//! at a time (`--sequential-shards`): the same simulation on tables `--shards`
//! times smaller, so the gap between the two curves is what a table of that
//! size costs in cache misses. Each point is placed at the entries the run
//! really held (`resident.peak_entries`), not at the size asked for. With
//! `--repeat K` each point is the median of K runs, as `sim --repeat` gives
//! it: back-to-back runs share their hour's noise, but one outlier run (a
//! process's first, with its page faults, docs/performance.md) no longer
//! bends the curve.
//!
//! With `--replay-server`, a third point per size: the same run in one table
//! per host (`--shards 1`), its server host recorded and replayed alone
//! (`super::record`), placed at the entries the server's one table held: the
//! engine on one core as its table grows, without the client host and the
//! simulator that the first two curves also carry.
//!
//! Beside them, from files: the kernel's loopback figure (`--kernel-report`)
//! and the table alone against std `HashMap` (`--table-bench`), see [`peers`].

mod peers;
mod plot;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use plot::plot;

use super::repeat::{run_repeated, Spread};
use super::{record, SimArgs, SimConfig};
use crate::chart::thousands;
use peers::{KernelPoint, TablePoint};

/// A sweep and its peers, as `--json` writes it.
#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    pub runs: Vec<Point>,
    /// One per `--kernel-report`.
    pub kernel: Vec<KernelPoint>,
    /// From `--table-bench`, empty without it.
    pub table: Vec<TablePoint>,
}

/// One run of the sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub concurrency: u64,
    pub connections: u64,
    /// `all-shards` or `one-shard-per-thread`, as `resident.mode`, or
    /// [`SERVER_ALONE`].
    pub mode: &'static str,
    pub peak_entries: u64,
    pub peak_heap_bytes: u64,
    pub teardowns_per_sec: f64,
    pub wall_seconds: f64,
    pub leaked: u64,
    /// With `--repeat K` (K > 1): the K runs' teardowns/s, whose median
    /// `teardowns_per_sec` is (for a server-alone point, the replays').
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<Spread>,
}

/// The mode of a `--replay-server` point: the server host of a one-table
/// run, replayed alone.
pub const SERVER_ALONE: &str = "server-alone-one-table";

/// Replays per `--replay-server` point at the least, the median taken (more
/// with `--repeat`): a replay is cheap beside the run that records it.
const REPLAYS: u32 = 3;

/// The sizes of a sweep, as `--sweep` takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sizes(pub Vec<u64>);

/// Parses `10000,100000,1e6`-style sizes (each at least 1).
pub fn parse_sizes(s: &str) -> Result<Sizes, String> {
    s.split(',')
        .map(|t| {
            let t = t.trim();
            let v: f64 = t.parse().map_err(|_| format!("'{t}' is not a size"))?;
            if !(1.0..=1e9).contains(&v) || v.fract() != 0.0 {
                return Err(format!("'{t}': sizes are whole numbers from 1 to 10^9"));
            }
            Ok(v as u64)
        })
        .collect::<Result<_, _>>()
        .map(Sizes)
}

/// Reads the peers first (so a bad file fails before minutes of runs), then
/// runs every size, resident and then one shard at a time.
pub fn sweep(
    base: &SimArgs,
    sizes: &[u64],
    kernel_reports: &[PathBuf],
    table_bench: Option<&Path>,
) -> anyhow::Result<Sweep> {
    let kernel = kernel_reports
        .iter()
        .map(|p| peers::kernel_point(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let table = table_bench
        .map(peers::table_points)
        .transpose()?
        .unwrap_or_default();
    let mut points = Vec::new();
    for &n in sizes {
        for sequential_shards in [false, true] {
            let args = SimArgs {
                concurrency: n,
                connections: base.connections.max(n),
                sequential_shards,
                replay_server: false,
                ..base.clone()
            };
            let cfg = SimConfig::from_args(&args)?;
            // Each run's own heap peak (reset before every run), the median
            // teardowns/s, and an error if two runs disagree on the rest.
            let (r, repeat) = run_repeated(&cfg, base.repeat, false)?;
            points.push(Point {
                concurrency: n,
                connections: r.connections,
                mode: r.resident.mode,
                peak_entries: r.resident.peak_entries,
                peak_heap_bytes: r.resident.peak_heap_bytes,
                teardowns_per_sec: r.teardowns_per_sec,
                wall_seconds: r.wall_seconds,
                leaked: r.leaked,
                repeat: repeat.map(|r| r.teardowns_per_sec),
            });
        }
        if base.replay_server {
            points.push(server_alone(base, n)?);
        }
    }
    Ok(Sweep {
        runs: points,
        kernel,
        table,
    })
}

/// The `--replay-server` point of size `n`: a one-table run recorded, its
/// server host replayed [`replays`] times, the median kept. The heap is the
/// replayed host's own: what the process gained over the replay.
fn server_alone(base: &SimArgs, n: u64) -> anyhow::Result<Point> {
    let args = SimArgs {
        concurrency: n,
        connections: base.connections.max(n),
        shards: 1,
        sequential_shards: false,
        replay_server: false,
        sweep: None,
        ..base.clone()
    };
    let cfg = SimConfig::from_args(&args)?;
    let recs = record::record_servers(&cfg)?;
    let before = crate::alloc::live_bytes();
    crate::alloc::reset_peak();
    let first = record::replay_all(&recs)?;
    let mut secs = vec![first.elapsed.as_secs_f64()];
    for _ in 1..replays(base.repeat) {
        secs.push(record::replay_all(&recs)?.elapsed.as_secs_f64());
    }
    let heap = crate::alloc::peak_bytes().saturating_sub(before);
    // Every replay holds the same table: only the times differ.
    let wall = Spread::of(&secs).median;
    let rates: Vec<f64> = secs.iter().map(|&s| first.rate(s)).collect();
    let rate = Spread::of(&rates);
    Ok(Point {
        concurrency: n,
        connections: args.connections,
        mode: SERVER_ALONE,
        peak_entries: first.peak_entries as u64,
        peak_heap_bytes: heap as u64,
        teardowns_per_sec: rate.median,
        wall_seconds: wall,
        leaked: recs.iter().map(|r| r.leaked).sum(),
        repeat: (base.repeat > 1).then_some(rate),
    })
}

/// Replays per server-alone point: `--repeat`, and never fewer than [`REPLAYS`].
fn replays(repeat: u32) -> u32 {
    repeat.max(REPLAYS)
}

/// The sweep as a table for people.
pub fn human(sweep: &Sweep, repeat: u32) -> String {
    let mut out = String::from(
        "teardowns/s against the entries resident (server and client tables)\n\
         \n  concurrency  mode                    resident entries   teardowns/s   heap MiB\n",
    );
    for p in &sweep.runs {
        out += &format!(
            "  {:>11}  {:<22}  {:>16}  {:>12}  {:>9.1}\n",
            thousands(p.concurrency as f64),
            p.mode,
            thousands(p.peak_entries as f64),
            thousands(p.teardowns_per_sec),
            p.peak_heap_bytes as f64 / 1048576.0
        );
    }
    if repeat > 1 {
        out += &format!("  (teardowns/s: the median of {repeat} runs at each point)\n");
    }
    if sweep.runs.iter().any(|p| p.mode == SERVER_ALONE) {
        out += &format!(
            "  ({SERVER_ALONE}: the server host of a --shards 1 run replayed alone, median of \
             {}; its entries and heap are the server's one table only)\n",
            replays(repeat)
        );
    }
    if !sweep.kernel.is_empty() {
        out += "\nthe Linux kernel on loopback (loadgen --kernel)\n\
                \n  live peak   kernel sockets (inuse + tw, peaks)   teardowns/s   report\n";
        for k in &sweep.kernel {
            out += &format!(
                "  {:>9}  {:>35}  {:>12}   {}\n",
                thousands(k.live_peak as f64),
                thousands(k.peak_entries as f64),
                thousands(k.teardowns_per_sec),
                k.report
            );
        }
    }
    if !sweep.table.is_empty() {
        out += "\nthe table alone (cargo bench --bench table, medians)\n\
                \n  store         entries   insert ns   lookup ns   remove ns   insert+lookup+remove /s\n";
        for t in &sweep.table {
            out += &format!(
                "  {:<11}  {:>9}  {:>10.1}  {:>10.1}  {:>10.1}  {:>24}\n",
                t.store,
                thousands(t.entries as f64),
                t.insert_ns,
                t.lookup_ns,
                t.remove_ns,
                thousands(t.cycles_per_sec)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_nonsense_is_refused() {
        assert_eq!(parse_sizes("10000,1e6"), Ok(Sizes(vec![10_000, 1_000_000])));
        assert!(parse_sizes("0").is_err());
        assert!(parse_sizes("1.5").is_err());
        assert!(parse_sizes("ten").is_err());
        assert!(parse_sizes("1e10").is_err());
    }
}
