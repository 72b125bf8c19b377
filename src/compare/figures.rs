//! Reading the two inputs into named figures: a simulator report's tracked
//! fields (with the noise its `repeat` object records) or a criterion
//! directory's medians (with their confidence intervals).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Better, Figure, Figures};
use crate::cli::Usage;

pub(super) fn read_json(path: &Path) -> Result<Value, Usage> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Usage(format!("{} is not valid JSON: {e}", path.display())))
}

/// The latency percentiles tracked for each side's close.
const SIM_LATENCY: [&str; 4] = ["p50", "p99", "p999", "max"];

/// The tracked figures of a simulator report. Wall-clock throughput takes its
/// noise from the `repeat` object when the report has one. A JSON object
/// with none of them is some other file, and an error: compared, it would
/// pass with nothing compared.
pub(super) fn sim_figures(path: &Path, v: &Value) -> Result<Figures, Usage> {
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
    if out.iter().all(|(_, _, f)| f.is_none()) {
        return Err(Usage(format!(
            "{} is not a sim report (none of teardowns_per_sec, memory, latency_ms)",
            path.display()
        )));
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

pub(super) fn scenario_notes(old: &Value, new: &Value) -> Vec<String> {
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
pub(super) fn criterion_figures(dir: &Path) -> Result<Figures, Usage> {
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
        let entry = entry.map_err(|e| Usage(format!("cannot read {}: {e}", dir.display())))?;
        let path = entry.path();
        // The entry's own type, not its target's: a link to a directory
        // above would walk in a loop.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            walk(&path, out)?;
        } else if path.file_name().is_some_and(|n| n == "estimates.json") {
            out.push(path);
        }
    }
    Ok(())
}
