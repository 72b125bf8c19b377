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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use owo_colors::{OwoColorize, Stream};
use serde_json::Value;

use crate::cli::Usage;

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

fn read_json(path: &Path) -> Result<Value, Usage> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Usage(format!("{} is not valid JSON: {e}", path.display())))
}

/// The tracked figures of a simulator report. Wall-clock throughput takes its
/// noise from the `repeat` object when the report has one.
const SIM_LATENCY: [&str; 4] = ["p50", "p99", "p999", "max"];

fn sim_figures(path: &Path, v: &Value) -> Result<Figures, Usage> {
    if !v.is_object() {
        return Err(Usage(format!(
            "{} is not a sim report (not a JSON object)",
            path.display()
        )));
    }
    let num = |ptr: &str| -> Result<Option<f64>, Usage> {
        match v.pointer(ptr) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| Usage(format!("{}: {ptr} is not a number: {x}", path.display()))),
        }
    };
    let mut out = Vec::new();
    let tps = match num("/repeat/teardowns_per_sec/median")? {
        Some(median) => {
            let (lo, hi) = (
                num("/repeat/teardowns_per_sec/min")?.unwrap_or(median),
                num("/repeat/teardowns_per_sec/max")?.unwrap_or(median),
            );
            Some(Figure {
                value: median,
                noise: (hi - lo).abs() / 2.0,
            })
        }
        None => num("/teardowns_per_sec")?.map(|value| Figure { value, noise: 0.0 }),
    };
    out.push(("teardowns_per_sec".to_string(), Better::Higher, tps));
    for key in ["bytes_per_time_wait", "bytes_per_established"] {
        let f = num(&format!("/memory/{key}"))?.map(|value| Figure { value, noise: 0.0 });
        out.push((format!("memory.{key}"), Better::Lower, f));
    }
    for side in ["active_close", "passive_close"] {
        for p in SIM_LATENCY {
            let f =
                num(&format!("/latency_ms/{side}/{p}"))?.map(|value| Figure { value, noise: 0.0 });
            out.push((format!("latency_ms.{side}.{p}"), Better::Lower, f));
        }
    }
    Ok(out)
}

/// Fields that name the scenario: two reports that differ in them measure
/// different things, which the reader should know before trusting the deltas.
const SCENARIO: [&str; 10] = [
    "workload",
    "close",
    "profile",
    "connections",
    "concurrency",
    "loss_to_server",
    "loss_to_client",
    "seed",
    "shards",
    "threads",
];

fn scenario_notes(old: &Value, new: &Value) -> Vec<String> {
    SCENARIO
        .iter()
        .filter_map(|k| {
            let (o, n) = (old.get(*k), new.get(*k));
            (o != n).then(|| {
                let show = |x: Option<&Value>| x.map_or("(missing)".to_string(), |x| x.to_string());
                format!("scenario differs: {k} {} -> {}", show(o), show(n))
            })
        })
        .collect()
}

/// Every `estimates.json` under `dir`, keyed by its directory relative to `dir`
/// with criterion's trailing `new` dropped, so that `target/criterion` and a
/// copied baseline (`<group>/<bench>/estimates.json`) line up. `base` and
/// `change` hold criterion's previous run and its own diff, not this run.
fn criterion_figures(dir: &Path) -> Result<Figures, Usage> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let Some(parent) = file.parent() else {
            continue;
        };
        let rel = parent.strip_prefix(dir).unwrap_or(parent);
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        match parts.last().map(String::as_str) {
            Some("base" | "change") => continue,
            Some("new") => {
                parts.pop();
            }
            _ => {}
        }
        let v = read_json(&file)?;
        let num = |ptr: &str| {
            v.pointer(ptr).and_then(Value::as_f64).ok_or_else(|| {
                Usage(format!(
                    "{}: no number at {ptr} (not a criterion estimates.json?)",
                    file.display()
                ))
            })
        };
        let median = num("/median/point_estimate")?;
        let lo = num("/median/confidence_interval/lower_bound")?;
        let hi = num("/median/confidence_interval/upper_bound")?;
        out.push((
            parts.join("/"),
            Better::Lower,
            Some(Figure {
                value: median,
                noise: (hi - lo).abs() / 2.0,
            }),
        ));
    }
    if out.is_empty() {
        return Err(Usage(format!(
            "no criterion estimates.json under {}",
            dir.display()
        )));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Usage> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Usage(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Usage(format!("cannot read {}: {e}", dir.display())))?
            .path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.file_name().is_some_and(|n| n == "estimates.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// A number in a column: enough digits to see a few-percent change.
fn show(f: Option<Figure>) -> String {
    match f {
        None => "-".to_string(),
        Some(Figure { value, noise }) => {
            let digits = if value.abs() >= 1000.0 {
                0
            } else if value.abs() >= 1.0 {
                2
            } else {
                4
            };
            if noise > 0.0 {
                format!("{value:.digits$} ±{noise:.digits$}")
            } else {
                format!("{value:.digits$}")
            }
        }
    }
}

impl Comparison {
    /// The table, colored when stdout is a terminal that supports it.
    pub fn render(&self, threshold: f64) -> String {
        let mut o = String::new();
        let unit = match self.kind {
            Kind::Sim => "sim report",
            Kind::Criterion => "criterion median, ns",
        };
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            o,
            "{:<width$}  {:>22}  {:>22}  {:>9}  verdict  ({unit}; threshold {:.1}%)",
            "figure",
            "old",
            "new",
            "change",
            threshold * 100.0
        );
        for r in &self.rows {
            let change = r
                .change()
                .map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0));
            let verdict = format!("{:<7}", r.verdict.label());
            let verdict = match r.verdict {
                Verdict::Improved => verdict
                    .if_supports_color(Stream::Stdout, |t| t.green())
                    .to_string(),
                Verdict::Regressed | Verdict::Missing => verdict
                    .if_supports_color(Stream::Stdout, |t| t.red())
                    .to_string(),
                _ => verdict,
            };
            let dir = match r.better {
                Better::Higher => "higher is better",
                Better::Lower => "lower is better",
            };
            let _ = writeln!(
                o,
                "{:<width$}  {:>22}  {:>22}  {:>9}  {verdict}  {dir}",
                r.name,
                show(r.old),
                show(r.new),
                change
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        let count = |v: Verdict| self.rows.iter().filter(|r| r.verdict == v).count();
        let _ = writeln!(
            o,
            "{} figures: {} better, {} worse, {} same, {} within noise, {} missing, {} added",
            self.rows.len(),
            count(Verdict::Improved),
            count(Verdict::Regressed),
            count(Verdict::Same),
            count(Verdict::Noise),
            count(Verdict::Missing),
            count(Verdict::Added)
        );
        o
    }
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
