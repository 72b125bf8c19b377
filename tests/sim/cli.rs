//! Nonsense flags exit 2 with one line, never a panic.

use std::process::Command;

#[test]
fn nonsense_flags_exit_2_with_one_line() {
    for bad in [
        vec!["--loss", "1.5"],
        vec!["--connections", "0"],
        vec!["--profile", "solaris"],
        vec!["sim", "--close", "sideways"],
        vec!["sim", "--port-range", "6000-5000"],
        vec!["sim", "--concurrency", "100000", "--client-ips", "1"],
        // A shard with connections to open must be allowed one live.
        vec!["sim", "--connections", "1000", "--concurrency", "10"],
        // Schedules past the end of simulated time (they used to panic or hang).
        vec!["sim", "--connections", "1000", "--rate", "1e-20"],
        vec!["sim", "--attack", "syn-timewait", "--attack-rate", "1e-20"],
        vec!["serve", "--time-scale", "1e-18"],
        // The sweep's 32-bit millisecond stamps would wrap.
        vec!["sim", "--app-timeout", "1000h"],
        // More than one segment can model (2^30 bytes).
        vec!["sim", "--response-bytes", "4294967295"],
        vec!["sim", "--request-bytes", "1073741825"],
        // One server host is recorded at a time: not 64 shards held together.
        vec!["sim", "--replay-server"],
        vec![
            "sim",
            "--replay-server",
            "--shards",
            "1",
            "--pcap",
            "x.pcap",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
            .args(&bad)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            err.lines()
                .next()
                .is_some_and(|l| l.contains("error") || l.starts_with("teardown:")),
            "{err}"
        );
    }
}

/// `teardown sim --connections 3000 --concurrency 1000 --threads 1
/// --replay-server --json -` with `extra`: its JSON report, `replay_server`.
fn replay_server(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["sim", "--connections", "3000", "--concurrency", "1000"])
        .args(["--threads", "1", "--replay-server", "--json", "-"])
        .args(extra)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    j["replay_server"].clone()
}

/// `--replay-server` reports the server host replayed alone, as JSON too:
/// the run's teardowns, each replay's time, and the table it held.
#[test]
fn replay_server_reports_the_server_alone() {
    let r = replay_server(&["--shards", "1", "--repeat", "3"]);
    assert_eq!(r["teardowns"], 3000, "{r:#}");
    assert_eq!(r["hosts"], 1, "{r:#}");
    assert_eq!(r["runs"], 3, "{r:#}");
    assert_eq!(r["seconds"].as_array().map(Vec::len), Some(3), "{r:#}");
    // About 1,000 live at once on the server, and 3 segments a teardown or more.
    let resident = r["resident"]["peak_entries"].as_u64().unwrap();
    assert!((900..=3000).contains(&resident), "{r:#}");
    assert!(r["segments"].as_u64().unwrap() >= 9000, "{r:#}");
    assert!(r["teardowns_per_sec"].as_f64().unwrap() > 0.0, "{r:#}");
}

/// With `--sequential-shards` every shard's server host is replayed, one
/// after another: the run's teardowns, on tables a shard's size.
#[test]
fn replay_server_one_shard_at_a_time() {
    let r = replay_server(&["--shards", "4", "--sequential-shards"]);
    assert_eq!(r["teardowns"], 3000, "{r:#}");
    assert_eq!(r["hosts"], 4, "{r:#}");
    // A shard's 750 connections at most, never the run's 3,000.
    let resident = r["resident"]["peak_entries"].as_u64().unwrap();
    assert!((250..=750).contains(&resident), "{r:#}");
    assert!(r["segments"].as_u64().unwrap() >= 9000, "{r:#}");
}

/// A state that never held half a host's entries has no bytes per entry,
/// in the JSON (`null`) as in the text ("-").
#[test]
fn memory_per_entry_is_given_only_where_the_state_held_half_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["sim", "--connections", "20000", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in {text}"))
            .to_string()
    };
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let m = &r["memory"];
    // The server's table ends in TIME-WAIT alone; ESTABLISHED is fleeting.
    assert!(m["time_wait_share"].as_f64().unwrap() >= 0.5, "{m:#}");
    let tw = m["bytes_per_time_wait"].as_f64().unwrap();
    assert!(
        line("per TIME-WAIT").contains(&format!("{tw:.1} B")),
        "{text}"
    );
    assert!(m["established_share"].as_f64().unwrap() < 0.01, "{m:#}");
    assert!(m["bytes_per_established"].is_null(), "{m:#}");
    let es = line("per ESTABLISHED");
    assert!(es.contains("not measured") && !es.contains(" 0%"), "{es}");
}
