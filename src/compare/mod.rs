//! `teardown compare OLD NEW`: the regression gate.
//!
//! Compares two `teardown sim --json` reports, or two directories of criterion
//! `estimates.json` files, figure by figure. A figure regressed when it moved the
//! wrong way by more than `--threshold` of the old value *and* by more than the
//! run-to-run noise both files record, so that a noisy machine does not fail CI on
//! its own: for a simulator report the half-range of its `--repeat` runs, for a
//! criterion estimate the half-width of the median's confidence interval.
//! Deterministic figures (simulated latency, allocator-counted bytes) carry no
//! noise and are judged by the threshold alone.
//!
//! Exit status: 0 no regression, 1 a regression (or a figure of OLD missing from
//! NEW, unless `--allow-missing`), 2 an unreadable or malformed input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::cli::Usage;
use figures::{criterion_figures, read_json, scenario_notes, sim_figures};

mod figures;
mod render;

/// `teardown compare` flags.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The baseline: a `teardown sim --json` report, or a directory holding
    /// criterion `estimates.json` files (target/criterion or results/baseline/criterion).
    pub old: PathBuf,
    /// The candidate, of the same kind as OLD.
    pub new: PathBuf,
    /// Smallest relative change that counts, as `5%` or `0.05`.
    #[arg(long, default_value = "5%", value_parser = parse_threshold)]
    pub threshold: f64,
    /// Do not fail when a figure of OLD is missing from NEW (it is still reported).
    #[arg(long)]
    pub allow_missing: bool,
}

/// Parses `5%` or `0.05`.
fn parse_threshold(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a threshold (try 5% or 0.05)"))?;
    let v = v / scale;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' must be a non-negative fraction"));
    }
    Ok(v)
}

/// Which way is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One measured figure: its value and the half-width of its noise band.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub noise: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Improved,
    Regressed,
    /// Within the threshold.
    Same,
    /// Beyond the threshold but within the recorded noise.
    Noise,
    /// In OLD, not in NEW.
    Missing,
    /// In NEW only (a figure added since the baseline).
    Added,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Improved => "better",
            Verdict::Regressed => "WORSE",
            Verdict::Same => "same",
            Verdict::Noise => "noise",
            Verdict::Missing => "MISSING",
            Verdict::Added => "added",
        }
    }
}

/// One line of the comparison.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub better: Better,
    pub old: Option<Figure>,
    pub new: Option<Figure>,
    pub verdict: Verdict,
}

impl Row {
    /// Relative change of the value, new over old.
    pub fn change(&self) -> Option<f64> {
        let (o, n) = (self.old?.value, self.new?.value);
        Some(relative(o, n))
    }
}

fn relative(old: f64, new: f64) -> f64 {
    if old != 0.0 {
        (new - old) / old.abs()
    } else if new == old {
        0.0
    } else {
        f64::INFINITY.copysign(new - old)
    }
}

/// The verdict on one figure.
pub fn judge(better: Better, old: Option<Figure>, new: Option<Figure>, threshold: f64) -> Verdict {
    let (o, n) = match (old, new) {
        (Some(o), Some(n)) => (o, n),
        (Some(_), None) => return Verdict::Missing,
        (None, _) => return Verdict::Added,
    };
    if relative(o.value, n.value).abs() <= threshold {
        return Verdict::Same;
    }
    let delta = n.value - o.value;
    if delta.abs() <= o.noise + n.noise {
        return Verdict::Noise;
    }
    let worse = match better {
        Better::Higher => delta < 0.0,
        Better::Lower => delta > 0.0,
    };
    if worse {
        Verdict::Regressed
    } else {
        Verdict::Improved
    }
}

/// What the two inputs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sim,
    Criterion,
}

/// The full comparison of OLD and NEW, with notes (scenario mismatches) for the reader.
#[derive(Debug)]
pub struct Comparison {
    pub kind: Kind,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Comparison {
    /// True when NEW fails the gate.
    pub fn failed(&self, allow_missing: bool) -> bool {
        self.rows.iter().any(|r| {
            r.verdict == Verdict::Regressed || (r.verdict == Verdict::Missing && !allow_missing)
        })
    }
}

/// Compares two inputs, both sim reports or both criterion directories. Unreadable
/// or malformed inputs are [`Usage`] errors, so the binary exits 2 on them.
pub fn compare(old: &Path, new: &Path, threshold: f64) -> Result<Comparison, Usage> {
    match (old.is_dir(), new.is_dir()) {
        (true, true) => {
            let (o, n) = (criterion_figures(old)?, criterion_figures(new)?);
            Ok(Comparison {
                kind: Kind::Criterion,
                rows: rows(o, n, threshold),
                notes: Vec::new(),
            })
        }
        (false, false) => {
            let (o, n) = (read_json(old)?, read_json(new)?);
            Ok(Comparison {
                kind: Kind::Sim,
                rows: rows(sim_figures(old, &o)?, sim_figures(new, &n)?, threshold),
                notes: scenario_notes(&o, &n),
            })
        }
        _ => Err(Usage(format!(
            "{} and {} must both be sim reports (files) or both criterion directories",
            old.display(),
            new.display()
        ))),
    }
}

type Figures = Vec<(String, Better, Option<Figure>)>;

/// Pairs the figures by name, in OLD's order, then NEW's additions.
fn rows(old: Figures, new: Figures, threshold: f64) -> Vec<Row> {
    let mut out: Vec<Row> = old
        .iter()
        .map(|(name, better, o)| {
            let n = new
                .iter()
                .find(|(k, _, _)| k == name)
                .and_then(|(_, _, f)| *f);
            Row {
                name: name.clone(),
                better: *better,
                old: *o,
                new: n,
                verdict: judge(*better, *o, n, threshold),
            }
        })
        // A figure absent from both files is nothing to report.
        .filter(|r| r.old.is_some() || r.new.is_some())
        .collect();
    for (name, better, n) in new {
        if n.is_some() && !out.iter().any(|r| r.name == name) {
            out.push(Row {
                verdict: judge(better, None, n, threshold),
                name,
                better,
                old: None,
                new: n,
            });
        }
    }
    out
}

/// `teardown compare`.
pub fn main(args: CompareArgs) -> anyhow::Result<ExitCode> {
    let cmp = compare(&args.old, &args.new, args.threshold)?;
    print!("{}", cmp.render(args.threshold));
    Ok(if cmp.failed(args.allow_missing) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(value: f64, noise: f64) -> Option<Figure> {
        Some(Figure { value, noise })
    }

    #[test]
    fn thresholds_parse() {
        assert_eq!(parse_threshold("5%"), Ok(0.05));
        assert_eq!(parse_threshold("0.1"), Ok(0.1));
        assert!(parse_threshold("-1%").is_err());
        assert!(parse_threshold("five").is_err());
    }

    #[test]
    fn verdicts() {
        let t = 0.05;
        assert_eq!(
            judge(Better::Higher, f(100.0, 0.0), f(90.0, 0.0), t),
            Verdict::Regressed
        );
        assert_eq!(
            judge(Better::Higher, f(100.0, 0.0), f(110.0, 0.0), t),
            Verdict::Improved
        );
        assert_eq!(
            judge(Better::Lower, f(100.0, 0.0), f(104.0, 0.0), t),
            Verdict::Same
        );
        assert_eq!(
            judge(Better::Lower, f(100.0, 4.0), f(110.0, 7.0), t),
            Verdict::Noise
        );
        assert_eq!(
            judge(Better::Lower, f(0.0, 0.0), f(1.0, 0.0), t),
            Verdict::Regressed
        );
        assert_eq!(judge(Better::Lower, f(1.0, 0.0), None, t), Verdict::Missing);
        assert_eq!(judge(Better::Lower, None, f(1.0, 0.0), t), Verdict::Added);
    }
}
