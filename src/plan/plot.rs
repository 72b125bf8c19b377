//! `teardown plan --plot DIR`: populations against the close rate, around the
//! planned rate, with the limits they run into.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::chart::{both, register_font, state_colour, thousands, Chart, PALETTE};
use teardown_engine::state::State;

use super::memory::Slab;
use super::model::Closer;
use super::{evaluate, Plan};

/// States drawn, when the model predicts any of them.
const DRAWN: [State; 6] = [
    State::TimeWait,
    State::FinWait2,
    State::FinWait1,
    State::LastAck,
    State::CloseWait,
    State::Closing,
];

/// Writes `populations.{png,svg}` into `dir` (created if missing).
pub fn plot(plan: &Plan, slab: &Slab, dir: &Path) -> anyhow::Result<()> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    both(dir, "populations", &Curves { plan, slab })?;
    Ok(())
}

struct Curves<'a> {
    plan: &'a Plan,
    slab: &'a Slab,
}

impl Chart for Curves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        draw(root, self.plan, self.slab)
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    plan: &Plan,
    slab: &Slab,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let w = &plan.workload;
    let (lo, hi) = (w.rate / 100.0, w.rate * 100.0);
    let n = 61;
    let rates: Vec<f64> = (0..n)
        .map(|i| lo * (hi / lo).powf(i as f64 / (n - 1) as f64))
        .collect();
    let runs: Vec<_> = rates
        .iter()
        .map(|&r| {
            let mut p = plan.clone();
            p.workload.rate = r;
            (r, evaluate(&p, slab))
        })
        .collect();
    // The closer's host holds the teardown states that matter; draw its side.
    let (side, pick): (&str, fn(&super::Outcome) -> &super::model::Times) = match w.close {
        Closer::Server => ("server host", |o| &o.prediction.server),
        Closer::Client => ("all clients", |o| &o.prediction.clients),
    };
    let cap = w.host.max_tw_buckets as f64;
    let ports = plan.ports as f64;
    let y_max = runs
        .iter()
        .flat_map(|(_, o)| DRAWN.iter().map(move |s| pick(o).get(*s)))
        .chain([
            ports,
            if cap.is_finite() && cap < 1e12 {
                cap
            } else {
                0.0
            },
        ])
        .fold(1.0f64, f64::max)
        * 4.0;
    let title = format!(
        "Predicted population vs close rate ({side}) - RTT {:.0} ms, loss {}%, runaway {}%, close={}, profile {}",
        w.rtt.as_secs_f64() * 1e3,
        trim(w.loss * 100.0),
        trim(w.runaway * 100.0),
        match w.close {
            Closer::Server => "server",
            Closer::Client => "client",
        },
        w.host.profile
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 21))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(100)
        .build_cartesian_2d((lo..hi).log_scale(), (0.1f64..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("close rate (connections closed per second, log scale)")
        .y_desc("entries in state / ports (log scale)")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|v| thousands(*v))
        .y_label_formatter(&|v| thousands(*v))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()?;
    for st in DRAWN {
        let pts: Vec<(f64, f64)> = runs
            .iter()
            .map(|(r, o)| (*r, pick(o).get(st)))
            .filter(|p| p.1 >= 0.1)
            .collect();
        if pts.is_empty() {
            continue;
        }
        let c = state_colour(st);
        chart
            .draw_series(std::iter::once(PathElement::new(pts, c.stroke_width(3))))?
            .label(st.to_string())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(4)));
    }
    let needed: Vec<(f64, f64)> = runs
        .iter()
        .map(|(r, o)| (*r, o.limits.ports_per_destination_needed))
        .filter(|p| p.1 >= 0.1)
        .collect();
    let port_colour = PALETTE[8];
    chart
        .draw_series(std::iter::once(PathElement::new(
            needed,
            port_colour.stroke_width(2),
        )))?
        .label("client ports needed per destination")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 24, y)], port_colour.stroke_width(4))
        });
    let limit = |v: f64, c: RGBColor| PathElement::new(vec![(lo, v), (hi, v)], c.stroke_width(2));
    if cap < 1e12 {
        let c = RGBColor(200, 0, 0);
        chart
            .draw_series(std::iter::once(limit(cap, c)))?
            .label(format!("tcp_max_tw_buckets = {}", thousands(cap)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(4)));
    }
    let c = RGBColor(90, 90, 90);
    chart
        .draw_series(std::iter::once(limit(ports, c)))?
        .label(format!(
            "ephemeral ports per destination = {}",
            thousands(ports)
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(4)));
    let here = RGBColor(0, 0, 0);
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(w.rate, 0.1), (w.rate, y_max)],
            here.stroke_width(1),
        )))?
        .label(format!("planned rate {}/s", thousands(w.rate)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], here.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    Ok(())
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
