//! `loadgen merge A.json B.json ...`: one report from the reports of a fleet's
//! shards (`--shard I/N`) or of separate runs of one workload.
//!
//! Percentiles are exact: each report carries its latency histograms in
//! HdrHistogram's V2 encoding, and the merged percentiles come from their sum,
//! not from averaging percentiles. Counters are summed. Host readings are
//! summed too: a fleet's shards each run on their own host (the Indexed Job
//! of deploy/), so the sum of their TIME-WAIT peaks and kernel counter growth
//! is the fleet's; shards that share a host count that host's counters once
//! per shard (the side counts, by address, stay apart only if the shards'
//! targets or sources differ).

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::real::report::{decode, encode};

/// `loadgen merge` flags.
#[derive(clap::Parser, Debug)]
#[command(
    name = "loadgen merge",
    about = "Merge --kernel-target reports (shards of one run) into one."
)]
pub struct MergeArgs {
    /// Reports written with --json.
    #[arg(required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Fields summed as they are, wherever they sit.
const SUMMED: [&str; 12] = [
    "connections",
    "established",
    "completed",
    "unfinished",
    "leaked",
    "late_starts",
    "live_peak",
    "completed_per_sec",
    "cpu_secs",
    "closed_by",
    "errors",
    "time_wait",
];

/// Reads the reports, merges them and writes the result if asked.
pub fn main(args: &MergeArgs) -> anyhow::Result<Value> {
    let reports = args
        .reports
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    let merged = merge(&reports)?;
    if let Some(path) = &args.json {
        teardown::service::net::write_atomically(path, &serde_json::to_vec_pretty(&merged)?)?;
    }
    Ok(merged)
}

/// Merges `--kernel-target` reports (merged ones too).
pub fn merge(reports: &[Value]) -> anyhow::Result<Value> {
    let Some(first) = reports.first() else {
        bail!("nothing to merge");
    };
    let mut shards = BTreeSet::new();
    let mut counts = BTreeSet::new();
    for (i, r) in reports.iter().enumerate() {
        if r["mode"] != "kernel-target" {
            bail!(
                "report {} is not a --kernel-target report (mode {})",
                i + 1,
                r["mode"]
            );
        }
        for s in r["merged"]["shards"]
            .as_array()
            .cloned()
            .unwrap_or_else(|| vec![r["config"]["shard"].clone()])
        {
            let Some(s) = s.as_str() else { continue };
            let shard: crate::real::shard::Shard = s.parse().map_err(anyhow::Error::msg)?;
            if !shards.insert(shard.index) {
                bail!("shard {s} is in more than one report");
            }
            counts.insert(shard.count);
        }
    }
    if counts.len() > 1 {
        bail!("the reports are shards of different counts: {counts:?}");
    }
    let mut out = Map::new();
    for key in SUMMED {
        let mut acc = Value::Null;
        for r in reports {
            sum_into(&mut acc, &r[key]);
        }
        out.insert(key.into(), acc);
    }
    let mut kernel = Value::Null;
    for r in reports {
        let mut k = r["kernel"].clone();
        if let Some(m) = k.as_object_mut() {
            m.remove("samples");
        }
        sum_into(&mut kernel, &k);
    }
    out.insert("kernel".into(), kernel);
    let max = |key: &str| {
        reports
            .iter()
            .filter_map(|r| r[key].as_f64())
            .fold(0.0, f64::max)
    };
    out.insert("window_secs".into(), json!(max("window_secs")));
    out.insert("elapsed_secs".into(), json!(max("elapsed_secs")));
    let (latency, histograms) = merge_histograms(reports)?;
    out.insert("latency_ms".into(), latency);
    out.insert("per_second".into(), per_second(reports));
    out.insert("histograms".into(), histograms);
    let targets: BTreeSet<&str> = reports
        .iter()
        .filter_map(|r| r["target"].as_str())
        .collect();
    out.insert("mode".into(), json!("kernel-target"));
    out.insert(
        "target".into(),
        json!(targets.into_iter().collect::<Vec<_>>().join(",")),
    );
    let count = counts.first().copied();
    out.insert(
        "merged".into(),
        json!({
            "reports": reports.len(),
            "shards": shards.iter().map(|i| format!("{i}/{}", count.unwrap_or(0))).collect::<Vec<_>>(),
            "missing_shards": count.map(|n| (0..n).filter(|i| !shards.contains(i)).collect::<Vec<_>>()),
        }),
    );
    out.insert("config".into(), first["config"].clone());
    Ok(Value::Object(out))
}

/// Completions per whole second while loading, summed second by second over
/// reports of runs that started together (a fleet's shards, --workers).
fn per_second(reports: &[Value]) -> Value {
    let mut sum: Vec<u64> = Vec::new();
    for r in reports {
        let series = r["per_second"]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, v) in series.iter().enumerate() {
            if sum.len() <= i {
                sum.push(0);
            }
            sum[i] += v.as_u64().unwrap_or(0);
        }
    }
    let mut sorted = sum.clone();
    sorted.sort_unstable();
    json!({
        "seconds": sum.len(),
        "min": sorted.first(),
        "median": sorted.get(sorted.len() / 2),
        "max": sorted.last(),
        "series": sum,
    })
}

/// Adds `v` into `acc`: numbers add (integers stay integers), objects add by
/// key, null is nothing; anything else keeps the first value seen.
fn sum_into(acc: &mut Value, v: &Value) {
    match (&mut *acc, v) {
        (_, Value::Null) => {}
        (Value::Null, _) => *acc = v.clone(),
        (Value::Number(a), Value::Number(b)) => {
            *acc = match (a.as_u64(), b.as_u64()) {
                (Some(x), Some(y)) => json!(x + y),
                _ => json!(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)),
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, bv) in b {
                sum_into(a.entry(k.clone()).or_insert(Value::Null), bv);
            }
        }
        _ => {}
    }
}

/// Sums each named histogram over the reports; gives `latency_ms` and
/// `histograms` of the merged report.
fn merge_histograms(reports: &[Value]) -> anyhow::Result<(Value, Value)> {
    let names: BTreeSet<String> = reports
        .iter()
        .filter_map(|r| r["histograms"].as_object())
        .flat_map(|h| h.keys().filter(|k| *k != "unit").cloned())
        .collect();
    let mut latency = Map::new();
    let mut encoded = Map::new();
    for name in names {
        let mut sum: Option<Histogram<u64>> = None;
        for (i, r) in reports.iter().enumerate() {
            let Some(b64) = r["histograms"][&name].as_str() else {
                continue;
            };
            let h = decode(b64).with_context(|| format!("report {}: histogram {name}", i + 1))?;
            match &mut sum {
                None => sum = Some(h),
                Some(s) => s
                    .add(&h)
                    .map_err(|e| anyhow::anyhow!("histogram {name}: {e:?}"))?,
            }
        }
        if let Some(h) = sum {
            latency.insert(name.clone(), crate::report::latency(&h));
            encoded.insert(name, json!(encode(&h)?));
        }
    }
    encoded.insert("unit".into(), json!("us"));
    Ok((Value::Object(latency), Value::Object(encoded)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(shard: &str, ms: std::ops::Range<u64>, server_fin: u64) -> Value {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in ms.clone() {
            h.record(v * 1000).unwrap();
        }
        json!({
            "mode": "kernel-target", "target": "127.0.0.1:80",
            "connections": ms.end - ms.start, "completed": ms.end - ms.start,
            "closed_by": {"server_fin": server_fin, "client_fin": 0},
            "errors": {"eaddrnotavail": 1},
            "completed_per_sec": 100.5, "window_secs": 2.0,
            "time_wait": {"server_peak": 10},
            "kernel": {"netstat": {"TW": 5}, "tw_slab_bytes_peak": null, "samples": 3},
            "histograms": {"connect": encode(&h).unwrap(), "unit": "us"},
            "config": {"shard": shard},
        })
    }

    #[test]
    fn counters_add_and_percentiles_come_from_the_summed_histograms() {
        let m = merge(&[report("0/2", 1..101, 100), report("1/2", 101..301, 200)]).unwrap();
        assert_eq!(m["connections"], 300);
        assert_eq!(m["closed_by"]["server_fin"], 300);
        assert_eq!(m["errors"]["eaddrnotavail"], 2);
        assert_eq!(m["completed_per_sec"], 201.0);
        assert_eq!(m["time_wait"]["server_peak"], 20);
        assert_eq!(m["kernel"]["netstat"]["TW"], 10);
        assert_eq!(m["kernel"].get("samples"), None);
        assert_eq!(m["latency_ms"]["connect"]["count"], 300);
        // 1..=300 ms: the median of the union is 150 ms, which neither
        // shard's median (50.5, 200.5) nor their mean (125.5) is.
        let p50 = m["latency_ms"]["connect"]["p50"].as_f64().unwrap();
        assert!((p50 - 150.0).abs() < 0.2, "{p50}");
        assert_eq!(m["merged"]["shards"], json!(["0/2", "1/2"]));
        assert_eq!(m["merged"]["missing_shards"], json!([]));
        // A merged report merges again.
        let again = merge(std::slice::from_ref(&m)).unwrap();
        assert_eq!(again["latency_ms"], m["latency_ms"]);
    }

    #[test]
    fn per_second_adds_by_index() {
        let r = |s: &[u64]| json!({"per_second": {"series": s}});
        let p = per_second(&[r(&[1, 2, 3]), r(&[10, 20])]);
        assert_eq!(p["series"], json!([11, 22, 3]));
        assert_eq!(p["median"], 11);
    }

    #[test]
    fn duplicate_or_mismatched_shards_are_refused() {
        let a = report("0/2", 1..5, 4);
        assert!(merge(&[a.clone(), a.clone()])
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        let b = report("1/3", 1..5, 4);
        assert!(merge(&[a.clone(), b]).is_err());
        let m = merge(&[a]).unwrap();
        assert_eq!(m["merged"]["missing_shards"], json!([1]));
        assert!(merge(&[json!({"mode": "sim"})]).is_err());
        assert!(merge(&[]).is_err());
    }
}
