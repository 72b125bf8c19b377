//! `teardown sim --plot DIR`: the population time series and the teardown
//! latency CDF as PNG and SVG, in the house style of [`crate::chart`].

use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use plotters::coord::Shift;
use plotters::prelude::*;

use teardown_engine::state::State;

use super::SimReport;
use crate::chart::{
    both, house_legend, house_mesh, register_font, state_colour, thousands, Chart, PALETTE, SIZE,
};

/// The workload in one line, for titles.
fn summary(r: &SimReport) -> String {
    let loss = if (r.loss_to_server - r.loss_to_client).abs() < 1e-12 {
        format!("loss {}%", pct(r.loss_to_server))
    } else {
        format!(
            "loss {}% to server / {}% to clients",
            pct(r.loss_to_server),
            pct(r.loss_to_client)
        )
    };
    format!(
        "{} connections, {loss}, close={}, profile {}, seed {}",
        thousands(r.connections as f64),
        r.close,
        r.profile,
        r.seed
    )
}

fn pct(p: f64) -> String {
    let s = format!("{:.2}", p * 100.0);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `first`, then [`State::TEARDOWN`], then SYN-RECEIVED: a legend, in order.
const fn legend<const N: usize>(first: &[State]) -> [State; N] {
    let mut out = [State::SynReceived; N];
    let mut i = 0;
    while i < first.len() {
        out[i] = first[i];
        i += 1;
    }
    let mut j = 0;
    while j < State::TEARDOWN.len() {
        out[i + j] = State::TEARDOWN[j];
        j += 1;
    }
    out
}

/// States drawn for the server host, in legend order.
const SERVER_STATES: [State; 8] = legend(&[]);
/// The clients also pass through SYN-SENT.
const CLIENT_STATES: [State; 9] = legend(&[State::SynSent]);

/// Writes `states.{png,svg}`, `states_clients.{png,svg}` and
/// `latency_cdf.{png,svg}` into `dir` (created if missing).
pub fn plot(report: &SimReport, dir: &Path) -> anyhow::Result<()> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let sum = summary(report);
    let server: Vec<(f64, [u64; State::COUNT])> =
        report.series.iter().map(|p| (p.t, p.server)).collect();
    let clients: Vec<(f64, [u64; State::COUNT])> =
        report.series.iter().map(|p| (p.t, p.client)).collect();
    both(
        dir,
        "states",
        &States {
            title: format!("Server host: connections by state - {sum}"),
            series: &server,
            states: &SERVER_STATES,
        },
    )?;
    both(
        dir,
        "states_clients",
        &States {
            title: format!("All clients: connections by state - {sum}"),
            series: &clients,
            states: &CLIENT_STATES,
        },
    )?;
    let curves = [
        ("active closer", report.active_hist.as_ref(), PALETTE[0]),
        ("passive closer", report.passive_hist.as_ref(), PALETTE[1]),
    ];
    both(
        dir,
        "latency_cdf",
        &Cdf {
            title: format!("Teardown latency, close() to CLOSED - {sum}"),
            curves: &curves,
        },
    )?;
    Ok(())
}

struct States<'a> {
    title: String,
    series: &'a [(f64, [u64; State::COUNT])],
    states: &'a [State],
}

impl Chart for States<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        draw_states(root, &self.title, self.series, self.states)
    }
}

type Curve<'a> = (&'a str, Option<&'a Histogram<u64>>, RGBColor);

struct Cdf<'a> {
    title: String,
    curves: &'a [Curve<'a>],
}

impl Chart for Cdf<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>
    where
        DB::ErrorType: 'static,
    {
        draw_cdf(root, &self.title, self.curves)
    }
}

/// Runs of consecutive points whose value is above zero: a log axis cannot show
/// zero, so a state that empties leaves a gap instead of a line down to the axis.
fn positive_runs(points: impl Iterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![];
    let mut cur: Vec<(f64, f64)> = vec![];
    for (x, y) in points {
        if y > 0.0 {
            cur.push((x, y));
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

/// Populations over simulated time on a log axis: TIME-WAIT is often thousands of
/// times the other states, which a linear axis would flatten to zero.
fn draw_states<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    series: &[(f64, [u64; State::COUNT])],
    states: &[State],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let t_max = series.last().map_or(1.0, |p| p.0).max(1.0);
    let y_max = series
        .iter()
        .flat_map(|p| states.iter().map(move |s| p.1[*s as usize]))
        .max()
        .unwrap_or(0)
        .max(10) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(95)
        .build_cartesian_2d(0f64..t_max, (0.8f64..y_max * 3.0).log_scale())?;
    house_mesh(&mut chart.configure_mesh())
        .x_desc("simulated time (s)")
        .y_desc("connections in state (log scale)")
        .y_label_formatter(&|v| thousands(*v))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let mut drawn = 0;
    for &st in states {
        let runs = positive_runs(series.iter().map(|p| (p.0, p.1[st as usize] as f64)));
        if runs.is_empty() {
            continue;
        }
        drawn += 1;
        let colour = state_colour(st);
        let peak = series.iter().map(|p| p.1[st as usize]).max().unwrap_or(0);
        chart
            .draw_series(
                runs.into_iter()
                    .map(move |r| PathElement::new(r, colour.stroke_width(2))),
            )?
            .label(format!("{st} (peak {})", thousands(peak as f64)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(4))
            });
    }
    if drawn > 0 {
        house_legend(
            &mut chart.configure_series_labels(),
            SeriesLabelPosition::UpperRight,
        )
        .draw()?;
    } else {
        root.draw(&Text::new(
            "no connections were sampled",
            (SIZE.0 as i32 / 2 - 120, SIZE.1 as i32 / 2),
            ("sans-serif", 20),
        ))?;
    }
    Ok(())
}

/// The empirical CDF of a histogram in ms, one point per recorded value.
fn cdf_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let n = h.len() as f64;
    let mut acc = 0u64;
    let mut pts = Vec::new();
    for v in h.iter_recorded() {
        acc += v.count_at_value();
        let ms = h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0;
        pts.push((ms, acc as f64 / n));
    }
    pts
}

/// Close-to-CLOSED latency CDFs on a log time axis: the passive closer's
/// round trips and the active closer's 60 s of TIME-WAIT are decades apart.
fn draw_cdf<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curves: &[Curve<'_>],
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    // (name, CDF points, colour, connections)
    type Drawn<'a> = (&'a str, Vec<(f64, f64)>, RGBColor, u64);
    let pts: Vec<Drawn> = curves
        .iter()
        .filter_map(|(name, h, c)| {
            h.filter(|h| !h.is_empty())
                .map(|h| (*name, cdf_points(h), *c, h.len()))
        })
        .collect();
    let all = pts.iter().flat_map(|p| p.1.iter().map(|q| q.0));
    let lo = all
        .clone()
        .filter(|x| *x > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = all.fold(0f64, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > 0.0 {
        (lo / 2.0, hi * 2.0)
    } else {
        (0.1, 1000.0)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(55)
        .y_label_area_size(80)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)?;
    house_mesh(&mut chart.configure_mesh())
        .x_desc("time from close() to CLOSED (ms, log scale)")
        .y_desc("fraction of connections")
        .x_label_formatter(&|v| thousands(*v))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .draw()?;
    for (name, p, colour, n) in &pts {
        let colour = *colour;
        // A step function: the fraction jumps at each recorded value.
        let mut steps = Vec::with_capacity(p.len() * 2 + 1);
        let mut prev = 0.0;
        for &(x, y) in p {
            let x = x.max(lo);
            steps.push((x, prev));
            steps.push((x, y));
            prev = y;
        }
        steps.push((hi, prev));
        chart
            .draw_series(std::iter::once(PathElement::new(
                steps,
                colour.stroke_width(3),
            )))?
            .label(format!("{name} ({} connections)", thousands(*n as f64)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(4))
            });
    }
    if !pts.is_empty() {
        house_legend(
            &mut chart.configure_series_labels(),
            SeriesLabelPosition::MiddleMiddle,
        )
        .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legends_are_the_teardown_states_framed() {
        use State::*;
        let teardown = [
            Established,
            FinWait1,
            FinWait2,
            Closing,
            TimeWait,
            CloseWait,
            LastAck,
        ];
        assert_eq!(SERVER_STATES[..7], teardown);
        assert_eq!(SERVER_STATES[7], SynReceived);
        assert_eq!(CLIENT_STATES[0], SynSent);
        assert_eq!(CLIENT_STATES[1..8], teardown);
        assert_eq!(CLIENT_STATES[8], SynReceived);
    }

    #[test]
    fn zero_values_split_runs() {
        let runs = positive_runs([(0.0, 1.0), (1.0, 0.0), (2.0, 3.0), (3.0, 4.0)].into_iter());
        assert_eq!(runs, vec![vec![(0.0, 1.0)], vec![(2.0, 3.0), (3.0, 4.0)]]);
    }
}
