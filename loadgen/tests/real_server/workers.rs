//! `--workers`: more live connections than one process's descriptors allow.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::n;
use crate::servers::next_ip;

/// `--workers`: a run spread over processes holds more live connections than
/// one process may have descriptors. Under a hard `RLIMIT_NOFILE` of 128 (set
/// with prlimit, which the workers inherit) one process keeps at most 64
/// connections (64 descriptors stay spare); three workers keep 150. The server
/// here holds each connection for a second and counts how many it had at once.
#[test]
fn workers_hold_more_live_connections_than_one_process_may() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let found = Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("prlimit (util-linux) not installed: skipped");
        return;
    }
    let listener = TcpListener::bind((next_ip(), 0)).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (live, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (l2, p2) = (live.clone(), peak.clone());
    std::thread::spawn(move || {
        for s in listener.incoming().map_while(Result::ok) {
            let now = l2.fetch_add(1, SeqCst) + 1;
            p2.fetch_max(now, SeqCst);
            let l3 = l2.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(1));
                l3.fetch_sub(1, SeqCst);
                drop(s);
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| -> Value {
        let json = dir.path().join("run.json");
        let status = Command::new("prlimit")
            .arg("--nofile=128:128")
            .arg(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--kernel", "--kernel-target", &addr, "--quiet"])
            .args(extra)
            .arg("--json")
            .arg(&json)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
    };
    // One process: --concurrency is lowered to what its descriptors allow.
    let one = run(&["--concurrency", "150", "--connections", "100"]);
    assert_eq!(n(&one, "/config/concurrency"), 64, "{one:#}");
    assert!(n(&one, "/live_peak") <= 64);
    let r = run(&[
        "--workers",
        "3",
        "--concurrency",
        "150",
        "--connections",
        "300",
    ]);
    assert_eq!(n(&r, "/connections"), 300, "{r:#}");
    assert_eq!(n(&r, "/completed"), 300, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 300);
    assert_eq!(n(&r, "/workers/nofile_soft"), 128);
    let peaks: Vec<u64> = r["workers"]["live_peaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(peaks, [50, 50, 50], "each worker's --concurrency share");
    let held = peak.load(SeqCst);
    assert!(held > 64, "the server held at most {held} at once");
    assert_eq!(live.load(SeqCst), 0);
}
