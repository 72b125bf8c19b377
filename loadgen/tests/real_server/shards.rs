//! `--shard` runs as separate processes and `loadgen merge` of their reports
//! add up to the whole run.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{self, n};
use crate::servers::{have_nginx, Server};
use crate::{sockstat, time_wait};

/// A fleet on one host: three loadgen processes, shards 0/3 to 2/3 of one run
/// against nginx at once, then `loadgen merge` of their reports. Counts add
/// up to the whole run, and the merged percentiles are those of all the
/// connections together (the sum of the shards' V2 histograms).
#[test]
fn shards_run_as_separate_processes_merge_into_the_whole_run() {
    if !have_nginx() {
        return;
    }
    let nginx = Server::nginx("0");
    let dir = tempfile::tempdir().unwrap();
    let target = nginx.addr.to_string();
    let ips = format!("{0}2-{0}7", "127.0.0.");
    let children: Vec<_> = (0..3)
        .map(|i| {
            let json = dir.path().join(format!("shard-{i}.json"));
            Command::new(env!("CARGO_BIN_EXE_loadgen"))
                .args(["--kernel", "--kernel-target", &target, "--quiet"])
                .args(["--request", "http", "--concurrency", "4"])
                .args(["--connections", "301", "--source-ips", &ips])
                .args(["--shard", &format!("{i}/3")])
                .arg("--json")
                .arg(&json)
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let shards: Vec<Value> = (0..3)
        .map(|i| {
            let text = std::fs::read_to_string(dir.path().join(format!("shard-{i}.json"))).unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect();
    let sizes: Vec<u64> = shards.iter().map(|r| n(r, "/connections")).collect();
    assert_eq!(sizes, [101, 100, 100]);
    assert_eq!(shards[1]["config"]["source_ips"], "127.0.0.4-127.0.0.5");
    let merged_path = dir.path().join("merged.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("merge")
        .args((0..3).map(|i| dir.path().join(format!("shard-{i}.json"))))
        .arg("--json")
        .arg(&merged_path)
        .output()
        .unwrap();
    common::assert_ok(&out);
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&merged_path).unwrap()).unwrap();
    assert_eq!(n(&m, "/connections"), 301, "{m:#}");
    assert_eq!(n(&m, "/completed"), 301);
    assert_eq!(n(&m, "/closed_by/server_fin"), 301);
    assert_eq!(
        m["merged"]["shards"],
        serde_json::json!(["0/3", "1/3", "2/3"])
    );
    // The merged percentiles are the union's, recomputed here from the shards' histograms.
    let mut union: Option<hdrhistogram::Histogram<u64>> = None;
    for r in &shards {
        let h =
            loadgen::real::report::decode(r["histograms"]["first_byte"].as_str().unwrap()).unwrap();
        match &mut union {
            None => union = Some(h),
            Some(u) => u.add(&h).unwrap(),
        }
    }
    let union = union.unwrap();
    assert_eq!(n(&m, "/latency_ms/first_byte/count"), 301);
    for (q, key) in [(0.5, "p50"), (0.99, "p99")] {
        let want = union.value_at_quantile(q) as f64 / 1000.0;
        let got = m["latency_ms"]["first_byte"][key].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{key}: {got} vs {want}");
    }
    // ss: every connection left its TIME-WAIT at nginx, from all six sources.
    let tw = time_wait("src", nginx.addr);
    assert_eq!(tw.len(), 301, "{}", sockstat());
    for last in 2..=7 {
        let ip = format!(" 127.0.0.{last}:");
        assert!(tw.iter().any(|l| l.contains(&ip)), "no TIME-WAIT from {ip}");
    }
}
