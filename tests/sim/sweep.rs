//! `sim --sweep`: throughput against the entries held, beside the kernel's and
//! the table bench's figures.

use std::ffi::OsStr;
use std::process::Command;

/// `teardown sim --json - ARGS`, which must succeed: its JSON.
fn sim_json<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["sim", "--json", "-"])
        .args(args)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `--sweep`: one point per size and mode, placed at the entries really held,
/// with the kernel's report and the table bench's medians beside them;
/// `--replay-server` adds the server host alone.
#[test]
fn sweep_reports_throughput_against_the_entries_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kernel = dir.path().join("kernel.json");
    std::fs::write(
        &kernel,
        r#"{"completed_per_sec": 9000.5, "live_peak": 400,
            "kernel": {"sockstat": {"inuse_peak": 800, "tw_peak": 9000}}}"#,
    )
    .expect("write");
    let bench = dir.path().join("criterion");
    for group in ["table_insert", "table_lookup_hit", "table_remove"] {
        for (store, ns) in [("teardown", 20.0), ("std_hashmap", 60.0)] {
            let d = bench.join(group).join(store).join("10k").join("new");
            std::fs::create_dir_all(&d).expect("mkdir");
            let est = format!(r#"{{"median": {{"point_estimate": {ns}}}}}"#);
            std::fs::write(d.join("estimates.json"), est).expect("write");
        }
    }
    let plots = dir.path().join("plots");
    let sweep = sim_json([
        OsStr::new("--sweep"),
        OsStr::new("1000,8000"),
        OsStr::new("--connections"),
        OsStr::new("8000"),
        OsStr::new("--shards"),
        OsStr::new("4"),
        OsStr::new("--threads"),
        OsStr::new("1"),
        OsStr::new("--replay-server"),
        OsStr::new("--kernel-report"),
        kernel.as_os_str(),
        OsStr::new("--table-bench"),
        bench.as_os_str(),
        OsStr::new("--plot"),
        plots.as_os_str(),
    ]);
    let points = sweep["runs"].as_array().expect("an array of runs");
    let key = |p: &serde_json::Value| {
        (
            p["concurrency"].as_u64().unwrap(),
            p["mode"].as_str().unwrap().to_string(),
        )
    };
    let keys: Vec<_> = points.iter().map(key).collect();
    assert_eq!(
        keys,
        [
            (1000, "all-shards".to_string()),
            (1000, "one-shard-per-thread".to_string()),
            (1000, "server-alone-one-table".to_string()),
            (8000, "all-shards".to_string()),
            (8000, "one-shard-per-thread".to_string()),
            (8000, "server-alone-one-table".to_string()),
        ]
    );
    let held = |i: usize| points[i]["peak_entries"].as_u64().unwrap();
    for p in points {
        assert_eq!(p["leaked"], 0);
        assert_eq!(p["connections"], 8000);
        assert!(p["teardowns_per_sec"].as_f64().unwrap() > 0.0);
    }
    // The 8,000 connections' TIME-WAIT outlives the run: all held at once,
    // in four shard-sized pieces one at a time.
    assert!(held(3) >= 8000, "{}", held(3));
    assert!(held(4) * 3 < held(3), "{} vs {}", held(4), held(3));
    assert!(held(0) <= held(3));
    // The server host replayed alone: its own one table, the server end of
    // each of the 8,000 (it closes first, so it holds the TIME-WAIT), not
    // the client's ends too.
    assert_eq!(held(5), 8000, "{sweep:#}");
    assert!(held(5) < held(3));
    assert!(points[5]["peak_heap_bytes"].as_u64().unwrap() > 8000 * 32);
    // The peers, as their files said: the kernel's sockets at its peaks, and
    // one insert + lookup + remove per second from the bench's medians.
    assert_eq!(sweep["kernel"][0]["peak_entries"], 9800);
    assert_eq!(sweep["kernel"][0]["teardowns_per_sec"], 9000.5);
    let table = sweep["table"].as_array().expect("table points");
    let cycles = |store: &str| {
        table.iter().find(|t| t["store"] == store).expect(store)["cycles_per_sec"]
            .as_f64()
            .unwrap()
    };
    assert!((cycles("teardown") - 1e9 / 60.0).abs() < 1e-3);
    assert!((cycles("std_hashmap") - 1e9 / 180.0).abs() < 1e-3);
    for f in ["sweep.png", "sweep.svg"] {
        assert!(
            std::fs::metadata(plots.join(f)).expect(f).len() > 1000,
            "{f}"
        );
    }
}

/// A peer file that is not what it claims is refused before any run starts.
#[test]
fn sweep_refuses_a_report_that_is_not_the_kernels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bogus = dir.path().join("sim.json");
    std::fs::write(&bogus, r#"{"teardowns_per_sec": 1.0}"#).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["sim", "--sweep", "1000", "--kernel-report"])
        .arg(&bogus)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a `loadgen --kernel` report"), "{err}");
}

/// `--repeat K` makes each point the median of K runs (K replays for a
/// server-alone point, never fewer than three), with every run's figure
/// beside it; without it a sim point is one run and no point carries
/// `repeat`. Four runs: an even count, whose median is the middle two's mean,
/// and more than the server-alone point's three replays.
#[test]
fn sweep_repeat_makes_each_point_a_median() {
    let sweep = |extra: &[&str]| {
        let base = ["--sweep", "1000", "--connections", "4000", "--shards", "4"];
        let more = ["--threads", "1", "--replay-server"];
        sim_json(base.iter().chain(&more).chain(extra))
    };
    let once = sweep(&[]);
    let four = sweep(&["--repeat", "4"]);
    let (once, four) = (
        once["runs"].as_array().expect("runs"),
        four["runs"].as_array().expect("runs"),
    );
    assert_eq!(once.len(), 3);
    assert_eq!(four.len(), 3);
    for (one, many) in once.iter().zip(four) {
        assert!(one.get("repeat").is_none(), "{one:#}");
        // The same simulation each time: only the clock differs.
        assert_eq!(one["peak_entries"], many["peak_entries"], "{many:#}");
        assert_eq!(one["mode"], many["mode"]);
        let values: Vec<f64> = many["repeat"]["values"]
            .as_array()
            .expect("the runs' values")
            .iter()
            .map(|v| v.as_f64().expect("a rate"))
            .collect();
        assert_eq!(values.len(), 4, "{many:#}");
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = many["teardowns_per_sec"].as_f64().expect("a rate");
        // serde_json's parse may miss a float by an ulp: compare closely.
        let mid = (sorted[1] + sorted[2]) / 2.0;
        assert!(
            (median - mid).abs() <= mid * 1e-12,
            "{median} vs {mid}: {many:#}"
        );
        assert_eq!(many["repeat"]["median"].as_f64(), Some(median));
    }
}
