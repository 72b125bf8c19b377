//! The sweep's peers, read from files other tools wrote: the Linux kernel's
//! loopback teardowns from `loadgen --kernel` reports, and the table alone
//! against std `HashMap` and `DashMap` from `cargo bench --bench table`.
//!
//! Neither is measured by the sweep itself: the kernel needs real sockets (and
//! several processes past 20,000 descriptors), and criterion owns the table's
//! timing. Each peer keeps the file it came from, so a plot can be traced back.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::Value;

/// One `loadgen --kernel` run, placed like the simulator's points.
#[derive(Clone, Debug, Serialize)]
pub struct KernelPoint {
    pub report: String,
    /// The kernel's TCP sockets at their peak: `sockstat` `inuse` (both ends on
    /// loopback, listeners and orphans included) plus `tw`. The two peaks may
    /// fall at different instants, so this is an upper bound.
    pub peak_entries: u64,
    /// Connections loadgen held open at once.
    pub live_peak: u64,
    /// `completed_per_sec`: connections through their whole exchange and close.
    pub teardowns_per_sec: f64,
}

/// Reads a `loadgen --kernel` JSON report.
pub fn kernel_point(path: &Path) -> anyhow::Result<KernelPoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let num = |ptr: &str| {
        v.pointer(ptr).and_then(Value::as_f64).with_context(|| {
            format!(
                "{}: no number at {ptr} (is it a `loadgen --kernel` report?)",
                path.display()
            )
        })
    };
    if v.pointer("/kernel/sockstat").is_none() {
        bail!(
            "{}: no kernel.sockstat: not a `loadgen --kernel` report",
            path.display()
        );
    }
    Ok(KernelPoint {
        report: path.display().to_string(),
        peak_entries: (num("/kernel/sockstat/inuse_peak")? + num("/kernel/sockstat/tw_peak")?)
            as u64,
        live_peak: num("/live_peak")? as u64,
        teardowns_per_sec: num("/completed_per_sec")?,
    })
}

/// One structure at one size in `benches/table.rs`.
#[derive(Clone, Debug, Serialize)]
pub struct TablePoint {
    /// `teardown`, `std_hashmap` or `dashmap`, as the bench names it.
    pub store: String,
    pub entries: u64,
    /// Median nanoseconds of one insert, one lookup (hit) and one remove.
    pub insert_ns: f64,
    pub lookup_ns: f64,
    pub remove_ns: f64,
    /// One entry's pass through the table (insert, lookup, remove) per second:
    /// the table's share of a teardown, in the sweep's units.
    pub cycles_per_sec: f64,
}

/// The bench's groups, in the order a connection meets them.
const GROUPS: [&str; 3] = ["table_insert", "table_lookup_hit", "table_remove"];

/// Reads every store and size that has all three groups under `dir`: a
/// criterion output directory (`target/criterion`, `<size>/new/estimates.json`)
/// or a committed baseline (`results/baseline/criterion`, `<size>/estimates.json`).
pub fn table_points(dir: &Path) -> anyhow::Result<Vec<TablePoint>> {
    let lookups = dir.join(GROUPS[1]);
    let stores = std::fs::read_dir(&lookups).with_context(|| {
        format!(
            "{}: no {} group (run `cargo bench --bench table`)",
            dir.display(),
            GROUPS[1]
        )
    })?;
    let mut points = Vec::new();
    for store in stores {
        let store = store?.file_name().to_string_lossy().into_owned();
        for size in std::fs::read_dir(lookups.join(&store))? {
            let label = size?.file_name().to_string_lossy().into_owned();
            let Some(entries) = parse_label(&label) else {
                continue;
            };
            let ns = |group: &str| median_ns(&dir.join(group).join(&store).join(&label));
            if let (Some(insert_ns), Some(lookup_ns), Some(remove_ns)) =
                (ns(GROUPS[0]), ns(GROUPS[1]), ns(GROUPS[2]))
            {
                points.push(TablePoint {
                    store: store.clone(),
                    entries,
                    insert_ns,
                    lookup_ns,
                    remove_ns,
                    cycles_per_sec: 1e9 / (insert_ns + lookup_ns + remove_ns),
                });
            }
        }
    }
    if points.is_empty() {
        bail!(
            "{}: no store has insert, lookup and remove estimates",
            dir.display()
        );
    }
    points.sort_by(|a, b| (&a.store, a.entries).cmp(&(&b.store, b.entries)));
    Ok(points)
}

/// `10k`, `1M`: the bench's size labels.
fn parse_label(label: &str) -> Option<u64> {
    let (digits, scale) = match label.as_bytes().last()? {
        b'k' => (&label[..label.len() - 1], 1_000),
        b'M' => (&label[..label.len() - 1], 1_000_000),
        _ => (label, 1),
    };
    digits.parse::<u64>().ok().map(|d| d * scale)
}

/// The median point estimate (ns per iteration, one operation each) of one benchmark.
fn median_ns(bench: &Path) -> Option<f64> {
    let file: PathBuf = [
        bench.join("new/estimates.json"),
        bench.join("estimates.json"),
    ]
    .into_iter()
    .find(|p| p.is_file())?;
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    v.pointer("/median/point_estimate")?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels_are_the_benchs() {
        assert_eq!(parse_label("10k"), Some(10_000));
        assert_eq!(parse_label("1M"), Some(1_000_000));
        assert_eq!(parse_label("512"), Some(512));
        assert_eq!(parse_label("report"), None);
    }

    fn estimate(dir: &Path, group: &str, store: &str, size: &str, ns: f64) {
        let d = dir.join(group).join(store).join(size).join("new");
        std::fs::create_dir_all(&d).unwrap();
        let json =
            format!(r#"{{"median":{{"point_estimate":{ns}}},"mean":{{"point_estimate":1e9}}}}"#);
        std::fs::write(d.join("estimates.json"), json).unwrap();
    }

    #[test]
    fn criterion_medians_become_table_cycles() {
        let dir = tempfile::tempdir().unwrap();
        for (store, ns) in [("teardown", 10.0), ("std_hashmap", 30.0)] {
            for g in GROUPS {
                estimate(dir.path(), g, store, "1M", ns);
            }
        }
        // A size without its remove group is left out, not guessed.
        estimate(dir.path(), GROUPS[0], "teardown", "10M", 5.0);
        estimate(dir.path(), GROUPS[1], "teardown", "10M", 5.0);
        let pts = table_points(dir.path()).unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(
            (pts[0].store.as_str(), pts[0].entries),
            ("std_hashmap", 1_000_000)
        );
        assert!((pts[0].cycles_per_sec - 1e9 / 90.0).abs() < 1e-6);
        assert!((pts[1].cycles_per_sec - 1e9 / 30.0).abs() < 1e-6);
        assert!(table_points(&dir.path().join("nothing")).is_err());
    }

    #[test]
    fn a_kernel_report_is_read_and_anything_else_refused() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("k.json");
        std::fs::write(
            &good,
            r#"{"completed_per_sec": 9972.0, "live_peak": 512,
                "kernel": {"sockstat": {"inuse_peak": 436, "tw_peak": 11211}}}"#,
        )
        .unwrap();
        let p = kernel_point(&good).unwrap();
        assert_eq!((p.peak_entries, p.live_peak), (11_647, 512));
        assert_eq!(p.teardowns_per_sec, 9972.0);
        let sim = dir.path().join("sim.json");
        std::fs::write(&sim, r#"{"teardowns_per_sec": 1.0}"#).unwrap();
        let err = kernel_point(&sim).unwrap_err().to_string();
        assert!(err.contains("not a `loadgen --kernel` report"), "{err}");
    }
}
