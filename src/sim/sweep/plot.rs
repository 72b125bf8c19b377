//! `--plot DIR` with `--sweep`: `sweep.png` and `sweep.svg`.
//!
//! Left, whole teardowns: the simulator's two curves (and with
//! `--replay-server` the server host alone), and the kernel's points.
//! Right, when `--table-bench` gave figures: the table alone, one entry's
//! insert + lookup + remove per second, for each store the bench measured.
//! Both share the log-scale axis of entries held, so the steps line up.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::Sweep;
use crate::chart::{both, house_legend, house_mesh, register_font, thousands, Chart, PALETTE};

/// Draws the sweep into `dir`.
pub fn plot(sweep: &Sweep, title: &str, dir: &Path) -> anyhow::Result<()> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    both(dir, "sweep", &Panels { sweep, title })?;
    Ok(())
}

struct Panels<'a> {
    sweep: &'a Sweep,
    title: &'a str,
}

/// One named curve: (entries, per second) points in one colour.
type Curve = (String, RGBColor, Vec<(f64, f64)>);

impl Chart for Panels<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let root = root.titled(self.title, ("sans-serif", 22))?;
        let s = self.sweep;
        let mut whole: Vec<Curve> = [
            ("simulator, all shards resident", "all-shards", PALETTE[0]),
            (
                "simulator, one shard per thread at a time",
                "one-shard-per-thread",
                PALETTE[1],
            ),
            (
                "server host alone, one table (--replay-server)",
                super::SERVER_ALONE,
                PALETTE[6],
            ),
        ]
        .into_iter()
        .map(|(name, mode, colour)| {
            let pts: Vec<_> = s
                .runs
                .iter()
                .filter(|p| p.mode == mode)
                .map(|p| (p.peak_entries.max(1) as f64, p.teardowns_per_sec))
                .collect();
            (name.to_string(), colour, pts)
        })
        .filter(|c| !c.2.is_empty())
        .collect();
        if !s.kernel.is_empty() {
            let pts = s
                .kernel
                .iter()
                .map(|k| (k.peak_entries.max(1) as f64, k.teardowns_per_sec))
                .collect();
            whole.push((
                "Linux kernel, loopback (loadgen --kernel)".into(),
                PALETTE[3],
                pts,
            ));
        }
        let mut table: Vec<Curve> = Vec::new();
        for (i, t) in s.table.iter().enumerate() {
            if i == 0 || s.table[i - 1].store != t.store {
                let (name, colour) = match t.store.as_str() {
                    "teardown" => ("the engine's table".to_string(), PALETTE[0]),
                    "std_hashmap" => ("std HashMap (SipHash)".to_string(), PALETTE[2]),
                    "dashmap" => ("DashMap".to_string(), PALETTE[4]),
                    other => (other.to_string(), PALETTE[5 + table.len() % 4]),
                };
                table.push((name, colour, Vec::new()));
            }
            if let Some(last) = table.last_mut() {
                last.2.push((t.entries as f64, t.cycles_per_sec));
            }
        }
        let xs = whole
            .iter()
            .chain(&table)
            .flat_map(|c| c.2.iter().map(|p| p.0));
        let lo = xs.clone().fold(f64::INFINITY, f64::min).min(1e4) / 2.0;
        let hi = xs.fold(1.0, f64::max) * 2.0;
        let x_desc = "entries held (log scale)";
        if table.is_empty() {
            panel(&root, &whole, (lo, hi), x_desc, "teardowns per second")?;
        } else {
            let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
            panel(&left, &whole, (lo, hi), x_desc, "teardowns per second")?;
            panel(
                &right,
                &table,
                (lo, hi),
                x_desc,
                "the table alone: insert + lookup + remove per second",
            )?;
        }
        Ok(())
    }
}

/// One panel: every curve as a line with its points marked.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    curves: &[Curve],
    (lo, hi): (f64, f64),
    x_desc: &str,
    y_desc: &str,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let top = curves
        .iter()
        .flat_map(|c| c.2.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.25;
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .x_label_area_size(55)
        .y_label_area_size(100)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..top)?;
    house_mesh(&mut chart.configure_mesh())
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| thousands(*v))
        .y_label_formatter(&|v| thousands(*v))
        .draw()?;
    for (name, colour, pts) in curves {
        let colour = *colour;
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(3)))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(4))
            });
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 5, colour.filled())))?;
    }
    house_legend(
        &mut chart.configure_series_labels(),
        SeriesLabelPosition::UpperRight,
    )
    .draw()?;
    Ok(())
}
