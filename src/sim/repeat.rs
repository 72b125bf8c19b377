//! `teardown sim --repeat K`: one scenario run K times with the same seed.
//!
//! Everything but the wall clock is deterministic, so the K reports must agree
//! on every other field (checked here); what varies is the machine. The report
//! keeps one run's deterministic fields, the median wall-clock figures, and a
//! `repeat` object with their spread, which `teardown compare` reads as the
//! run-to-run noise a regression has to exceed.

use serde::Serialize;
use serde_json::Value;

use super::{run, SimConfig, SimReport};

/// Median and spread of one wall-clock figure over the runs.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Median absolute deviation from the median: a spread one slow run cannot inflate.
    pub mad: f64,
    /// Every run's value, in run order.
    pub values: Vec<f64>,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let median = median(values);
        let dev: Vec<f64> = values.iter().map(|v| (v - median).abs()).collect();
        Spread {
            median,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mad: median_of(dev),
            values: values.to_vec(),
        }
    }
}

fn median(values: &[f64]) -> f64 {
    median_of(values.to_vec())
}

fn median_of(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Serialize, Debug, Clone)]
pub struct Repeat {
    pub k: u32,
    pub teardowns_per_sec: Spread,
    pub wall_seconds: Spread,
}

impl Repeat {
    pub fn human(&self) -> String {
        let t = &self.teardowns_per_sec;
        format!(
            "repeat: {} runs, teardowns/s median {:.0} (min {:.0}, max {:.0}, MAD {:.0}); wall median {:.3} s\n",
            self.k, t.median, t.min, t.max, t.mad, self.wall_seconds.median
        )
    }
}

/// A report with its `repeat` object, as one JSON document.
#[derive(Serialize)]
struct WithRepeat<'a> {
    #[serde(flatten)]
    report: &'a SimReport,
    repeat: &'a Repeat,
}

/// The JSON report; with a `repeat` object after the report's fields when there is one.
pub fn json(report: &SimReport, repeat: Option<&Repeat>) -> serde_json::Result<String> {
    match repeat {
        Some(repeat) => serde_json::to_string_pretty(&WithRepeat { report, repeat }),
        None => serde_json::to_string_pretty(report),
    }
}

/// Fields that depend on the machine, not the seed: left out of the determinism check.
const WALL_CLOCK: [&str; 2] = ["/wall_seconds", "/teardowns_per_sec"];

/// The report with the wall-clock fields (and the process heap and resident
/// peaks, which depend on thread timing) taken out.
fn deterministic(r: &SimReport) -> serde_json::Result<Value> {
    let mut v = serde_json::to_value(r)?;
    for p in WALL_CLOCK {
        if let Some(x) = v.pointer_mut(p) {
            *x = Value::Null;
        }
    }
    for p in [
        "/memory/peak_heap_bytes",
        "/resident/peak_heap_bytes",
        "/resident/peak_entries",
    ] {
        if let Some(x) = v.pointer_mut(p) {
            *x = Value::Null;
        }
    }
    Ok(v)
}

/// Runs `cfg` `k` times. With `k` > 1 the first run's report is returned with
/// the median wall-clock figures and the spread; an error if two runs disagree
/// on a deterministic field.
pub fn run_repeated(
    cfg: &SimConfig,
    k: u32,
    show_progress: bool,
) -> anyhow::Result<(SimReport, Option<Repeat>)> {
    crate::alloc::reset_peak();
    let mut first = run(cfg, show_progress);
    if k <= 1 {
        return Ok((first, None));
    }
    let reference = deterministic(&first)?;
    let (mut tps, mut wall) = (vec![first.teardowns_per_sec], vec![first.wall_seconds]);
    for i in 2..=k {
        crate::alloc::reset_peak();
        let r = run(cfg, show_progress);
        let v = deterministic(&r)?;
        if v != reference {
            let fields: Vec<&str> = match (&v, &reference) {
                (Value::Object(a), Value::Object(b)) => a
                    .iter()
                    .filter(|(key, x)| b.get(key.as_str()) != Some(*x))
                    .map(|(key, _)| key.as_str())
                    .collect(),
                _ => Vec::new(),
            };
            anyhow::bail!(
                "run {i} of {k} differs from run 1 in deterministic fields ({}): the simulator is not repeatable",
                fields.join(", ")
            );
        }
        tps.push(r.teardowns_per_sec);
        wall.push(r.wall_seconds);
    }
    let repeat = Repeat {
        k,
        teardowns_per_sec: Spread::of(&tps),
        wall_seconds: Spread::of(&wall),
    };
    first.teardowns_per_sec = repeat.teardowns_per_sec.median;
    first.wall_seconds = repeat.wall_seconds.median;
    Ok((first, Some(repeat)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0, 2.5]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 10.0));
        // Deviations 0.5, 1.5, 0.5, 7.5, 0: median 0.5.
        assert_eq!(s.mad, 0.5);
        assert_eq!(Spread::of(&[1.0, 3.0]).median, 2.0);
    }
}
