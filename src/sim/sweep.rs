//! `teardown sim --sweep SIZES`: teardowns/s as the table grows.
//!
//! One run per size with `--concurrency` set to it (and at least that many
//! connections), all shards resident, then the same run one shard per thread
//! at a time (`--sequential-shards`): the same simulation on tables `--shards`
//! times smaller, so the gap between the two curves is what a table of that
//! size costs in cache misses. Each point is placed at the entries the run
//! really held (`resident.peak_entries`), not at the size asked for.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

use super::plot::{both, house_legend, house_mesh, register_font, thousands, Chart, PALETTE};
use super::{run, SimArgs, SimConfig};

/// One run of the sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub concurrency: u64,
    pub connections: u64,
    /// `all-shards` or `one-shard-per-thread`, as `resident.mode`.
    pub mode: &'static str,
    pub peak_entries: u64,
    pub peak_heap_bytes: u64,
    pub teardowns_per_sec: f64,
    pub wall_seconds: f64,
    pub leaked: u64,
}

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

/// Runs the sweep: every size, resident then one shard at a time.
pub fn sweep(base: &SimArgs, sizes: &[u64]) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    for &n in sizes {
        for sequential_shards in [false, true] {
            let args = SimArgs {
                concurrency: n,
                connections: base.connections.max(n),
                sequential_shards,
                ..base.clone()
            };
            let cfg = SimConfig::from_args(&args)?;
            // Each run's own heap peak, not the largest run's so far.
            crate::alloc::reset_peak();
            let r = run(&cfg, false);
            points.push(Point {
                concurrency: n,
                connections: r.connections,
                mode: r.resident.mode,
                peak_entries: r.resident.peak_entries,
                peak_heap_bytes: r.resident.peak_heap_bytes,
                teardowns_per_sec: r.teardowns_per_sec,
                wall_seconds: r.wall_seconds,
                leaked: r.leaked,
            });
        }
    }
    Ok(points)
}

/// The sweep as a table for people.
pub fn human(points: &[Point]) -> String {
    let mut out = String::from(
        "teardowns/s against the entries resident (server and client tables)\n\
         \n  concurrency  mode                   resident entries   teardowns/s   heap MiB\n",
    );
    for p in points {
        out += &format!(
            "  {:>11}  {:<21}  {:>16}  {:>12}  {:>9.1}\n",
            thousands(p.concurrency as f64),
            p.mode,
            thousands(p.peak_entries as f64),
            thousands(p.teardowns_per_sec),
            p.peak_heap_bytes as f64 / 1048576.0
        );
    }
    out
}

/// `--plot DIR` with `--sweep`: `sweep.png` and `sweep.svg`.
pub fn plot(points: &[Point], title: &str, dir: &Path) -> anyhow::Result<()> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    both(dir, "sweep", &Sweep { points, title })?;
    Ok(())
}

struct Sweep<'a> {
    points: &'a [Point],
    title: &'a str,
}

impl Chart for Sweep<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let xs = self.points.iter().map(|p| p.peak_entries.max(1) as f64);
        let lo = xs.clone().fold(f64::INFINITY, f64::min) / 2.0;
        let hi = xs.fold(1.0, f64::max) * 2.0;
        let top = self
            .points
            .iter()
            .map(|p| p.teardowns_per_sec)
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, ("sans-serif", 22))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(100)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..top)?;
        house_mesh(&mut chart.configure_mesh())
            .x_desc("entries resident in the engine's tables (log scale)")
            .y_desc("teardowns per second")
            .x_label_formatter(&|v| thousands(*v))
            .y_label_formatter(&|v| thousands(*v))
            .draw()?;
        let curves = [
            ("all shards resident", "all-shards", PALETTE[0]),
            (
                "one shard per thread at a time",
                "one-shard-per-thread",
                PALETTE[1],
            ),
        ];
        for (name, mode, colour) in curves {
            let pts: Vec<(f64, f64)> = self
                .points
                .iter()
                .filter(|p| p.mode == mode)
                .map(|p| (p.peak_entries.max(1) as f64, p.teardowns_per_sec))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(3)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(4))
                });
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 5, colour.filled())))?;
        }
        house_legend(
            &mut chart.configure_series_labels(),
            SeriesLabelPosition::UpperRight,
        )
        .draw()?;
        Ok(())
    }
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
