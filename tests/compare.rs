//! `teardown compare` and `teardown sim --repeat`, through the binary: exit
//! codes are the interface CI scripts rely on.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn teardown(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(args)
        .output()
        .expect("the binary runs");
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn compare(old: &Path, new: &Path, extra: &[&str]) -> Out {
    let (o, n) = (old.to_str().expect("utf-8"), new.to_str().expect("utf-8"));
    let mut args = vec!["compare", o, n];
    args.extend_from_slice(extra);
    teardown(&args)
}

/// A sim report with the tracked figures; `spread` adds a `repeat` object.
fn report(tps: f64, spread: Option<(f64, f64)>, bytes_tw: f64, p99: f64) -> Value {
    let lat = json!({"count": 10, "p50": 60.0, "p99": p99, "p999": p99, "max": p99});
    let mut v = json!({
        "version": 1, "seed": 1, "connections": 1000, "concurrency": 100,
        "teardowns_per_sec": tps,
        "memory": {"bytes_per_time_wait": bytes_tw, "bytes_per_established": 200.0},
        "latency_ms": {"active_close": lat, "passive_close": lat},
    });
    if let Some((min, max)) = spread {
        v["repeat"] = json!({"k": 5, "teardowns_per_sec": {"median": tps, "min": min, "max": max, "mad": 1.0}});
    }
    v
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(v).expect("serializes")).expect("write");
    p
}

fn pair(old: &Value, new: &Value) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let (o, n) = (
        write(d.path(), "old.json", old),
        write(d.path(), "new.json", new),
    );
    (d, o, n)
}

#[test]
fn improvement_exits_0() {
    let (_d, o, n) = pair(
        &report(100_000.0, None, 40.0, 300.0),
        &report(130_000.0, None, 35.0, 300.0),
    );
    let out = compare(&o, &n, &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("better"), "{}", out.stdout);
    assert!(!out.stdout.contains("WORSE"), "{}", out.stdout);
}

#[test]
fn throughput_regression_exits_1() {
    let (_d, o, n) = pair(
        &report(100_000.0, None, 40.0, 300.0),
        &report(80_000.0, None, 40.0, 300.0),
    );
    let out = compare(&o, &n, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("teardowns_per_sec"))
        .expect("row");
    assert!(line.contains("WORSE") && line.contains("-20.0%"), "{line}");
}

#[test]
fn deterministic_figures_regress_on_threshold_alone() {
    // Simulated latency and counted bytes carry no noise: 10% up is a regression.
    let (_d, o, n) = pair(
        &report(100_000.0, None, 40.0, 300.0),
        &report(100_000.0, None, 40.0, 330.0),
    );
    assert_eq!(compare(&o, &n, &[]).code, 1);
    assert_eq!(compare(&o, &n, &["--threshold", "15%"]).code, 0);
    let (_d, o, n) = pair(
        &report(100_000.0, None, 40.0, 300.0),
        &report(100_000.0, None, 44.0, 300.0),
    );
    let out = compare(&o, &n, &["--threshold", "0.05"]);
    assert_eq!(out.code, 1);
    assert!(out
        .stdout
        .lines()
        .any(|l| l.starts_with("memory.bytes_per_time_wait") && l.contains("WORSE")));
}

#[test]
fn within_noise_exits_0_beyond_threshold() {
    // 10% down, but the repeats spread over +-12% on each side: not a regression.
    let old = report(100_000.0, Some((88_000.0, 112_000.0)), 40.0, 300.0);
    let new = report(90_000.0, Some((79_000.0, 101_000.0)), 40.0, 300.0);
    let (_d, o, n) = pair(&old, &new);
    let out = compare(&o, &n, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("noise"), "{}", out.stdout);
    // The same drop with a tight spread fails.
    let old = report(100_000.0, Some((99_000.0, 101_000.0)), 40.0, 300.0);
    let new = report(90_000.0, Some((89_000.0, 91_000.0)), 40.0, 300.0);
    let (_d, o, n) = pair(&old, &new);
    assert_eq!(compare(&o, &n, &[]).code, 1);
}

#[test]
fn missing_tracked_field_is_reported_and_fails_unless_allowed() {
    let old = report(100_000.0, None, 40.0, 300.0);
    let mut new = old.clone();
    new["memory"]
        .as_object_mut()
        .expect("object")
        .remove("bytes_per_time_wait");
    let (_d, o, n) = pair(&old, &new);
    let out = compare(&o, &n, &[]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("memory.bytes_per_time_wait") && l.contains("MISSING")),
        "{}",
        out.stdout
    );
    assert_eq!(compare(&o, &n, &["--allow-missing"]).code, 0);
    // A figure only NEW has is an addition, not a failure.
    let out = compare(&n, &o, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("added"), "{}", out.stdout);
}

#[test]
fn malformed_inputs_exit_2_with_a_clear_error() {
    let d = tempfile::tempdir().expect("tempdir");
    let good = write(d.path(), "good.json", &report(1.0, None, 1.0, 1.0));
    let bad = d.path().join("bad.json");
    std::fs::write(&bad, "{\"teardowns_per_sec\": ").expect("write");
    let out = compare(&good, &bad, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("bad.json is not valid JSON"),
        "{}",
        out.stderr
    );

    let wrong = write(
        d.path(),
        "wrong.json",
        &json!({"teardowns_per_sec": "fast"}),
    );
    let out = compare(&good, &wrong, &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("/teardowns_per_sec is not a number"),
        "{}",
        out.stderr
    );

    let array = write(d.path(), "array.json", &json!([1, 2]));
    assert_eq!(compare(&good, &array, &[]).code, 2);

    // Some other JSON object: nothing to compare is not a pass.
    let other = write(d.path(), "other.json", &json!({"name": "x"}));
    for (old, new) in [(&good, &other), (&other, &good), (&other, &other)] {
        let out = compare(old, new, &[]);
        assert_eq!(out.code, 2, "{}", out.stdout);
        assert!(out.stderr.contains("is not a sim report"), "{}", out.stderr);
    }

    let out = compare(&good, &d.path().join("absent.json"), &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);

    let out = compare(&good, d.path(), &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("both"), "{}", out.stderr);

    let out = compare(&good, &good, &["--threshold", "lots"]);
    assert_eq!(out.code, 2);
}

/// A criterion estimates.json with a median and its confidence interval.
fn estimates(median: f64, half_ci: f64) -> Value {
    let est = |x: f64| {
        json!({"confidence_interval": {"confidence_level": 0.95, "lower_bound": x - half_ci, "upper_bound": x + half_ci},
               "point_estimate": x, "standard_error": half_ci / 2.0})
    };
    json!({"mean": est(median), "median": est(median), "median_abs_dev": est(1.0), "slope": null, "std_dev": est(1.0)})
}

fn put(root: &Path, rel: &str, v: &Value) {
    let dir = root.join(rel);
    std::fs::create_dir_all(&dir).expect("mkdir");
    write(&dir, "estimates.json", v);
}

#[test]
fn criterion_dirs_match_target_layout_to_baseline_layout() {
    let old = tempfile::tempdir().expect("tempdir");
    let new = tempfile::tempdir().expect("tempdir");
    // Baseline layout: <group>/<bench>/estimates.json.
    put(
        old.path(),
        "table_lookup_hit/teardown/1M",
        &estimates(50.0, 1.0),
    );
    put(
        old.path(),
        "table_lookup_hit/dashmap/1M",
        &estimates(80.0, 1.0),
    );
    put(
        old.path(),
        "table_insert/teardown/1M",
        &estimates(100.0, 30.0),
    );
    // target/criterion layout: new/ is this run; base/ and change/ are ignored.
    put(
        new.path(),
        "table_lookup_hit/teardown/1M/new",
        &estimates(50.5, 1.0),
    );
    put(
        new.path(),
        "table_lookup_hit/teardown/1M/base",
        &estimates(1.0, 0.1),
    );
    put(
        new.path(),
        "table_lookup_hit/teardown/1M/change",
        &estimates(9.0, 0.1),
    );
    put(
        new.path(),
        "table_lookup_hit/dashmap/1M/new",
        &estimates(70.0, 1.0),
    );
    // 20% slower, but the CI is +-30: noise.
    put(
        new.path(),
        "table_insert/teardown/1M/new",
        &estimates(120.0, 30.0),
    );
    let out = compare(old.path(), new.path(), &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("table_"))
            .count(),
        3,
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .lines()
        .any(|l| l.starts_with("table_lookup_hit/dashmap/1M") && l.contains("better")));
    assert!(out
        .stdout
        .lines()
        .any(|l| l.starts_with("table_insert/teardown/1M") && l.contains("noise")));

    // A real slowdown beyond both CIs fails.
    put(
        new.path(),
        "table_lookup_hit/teardown/1M/new",
        &estimates(60.0, 1.0),
    );
    let out = compare(old.path(), new.path(), &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
}

#[test]
fn criterion_dir_without_estimates_exits_2() {
    let old = tempfile::tempdir().expect("tempdir");
    let new = tempfile::tempdir().expect("tempdir");
    put(old.path(), "g/b", &estimates(1.0, 0.1));
    let out = compare(old.path(), new.path(), &[]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("no criterion estimates.json"),
        "{}",
        out.stderr
    );
    put(
        new.path(),
        "g/b/new",
        &json!({"median": {"point_estimate": 1.0}}),
    );
    let out = compare(old.path(), new.path(), &[]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("confidence_interval"), "{}", out.stderr);
}

#[test]
fn repeat_runs_k_times_with_identical_deterministic_fields() {
    let d = tempfile::tempdir().expect("tempdir");
    let sim = |k: &str, name: &str| -> Value {
        let path = d.path().join(name);
        let p = path.to_str().expect("utf-8");
        let out = teardown(&[
            "sim",
            "--connections",
            "3000",
            "--concurrency",
            "300",
            "--loss",
            "0.05",
            "--threads",
            "2",
            "--repeat",
            k,
            "--quiet",
            "--json",
            p,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&std::fs::read_to_string(&path).expect("report")).expect("JSON")
    };
    let once = sim("1", "once.json");
    let thrice = sim("3", "thrice.json");
    assert!(once.get("repeat").is_none());
    let r = &thrice["repeat"];
    assert_eq!(r["k"], 3);
    for key in ["teardowns_per_sec", "wall_seconds"] {
        let s = &r[key];
        let values = s["values"].as_array().expect("values");
        assert_eq!(values.len(), 3);
        let num = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
        let (min, med, max) = (num("min"), num("median"), num("max"));
        assert!(min <= med && med <= max, "{s}");
        assert_eq!(
            thrice[key], s["median"],
            "the top-level figure is the median"
        );
    }
    // Everything but the wall clock is as in a single run.
    let strip = |v: &Value| {
        let mut v = v.clone();
        let o = v.as_object_mut().expect("object");
        for k in ["repeat", "wall_seconds", "teardowns_per_sec"] {
            o.remove(k);
        }
        // The process heap peaks vary from run to run; the entries held do not.
        for section in ["memory", "resident"] {
            o[section]
                .as_object_mut()
                .expect(section)
                .remove("peak_heap_bytes");
        }
        v
    };
    assert_eq!(strip(&once), strip(&thrice));
    assert_eq!(teardown(&["sim", "--repeat", "0"]).code, 2);
}
