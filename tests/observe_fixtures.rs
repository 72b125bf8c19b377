//! `observe` on recorded readings (tests/fixtures/observe/, made on this
//! machine by `cargo test --test observe -- --ignored record_fixtures`):
//! a host as it was, a namespace in TIME-WAIT overflow and one whose client
//! side ran out of ports.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};

use teardown::kernel::{diag, netstat::Counters, slabinfo::Slabinfo, sysctl::Sysctls};
use teardown::observe::recording::Recording;
use teardown::observe::report::Report;
use teardown::observe::text;
use teardown::plan::memory::Slab;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/observe")
        .join(name)
}

fn report(name: &str) -> (Recording, Report) {
    let rec = Recording::load(&dir(name)).unwrap();
    let r = Report::new(&rec, None).unwrap();
    (rec, r)
}

/// Recording `name` with sysctl files added (a host tuned since), saved
/// under `to` and loaded back from there.
fn with_sysctls(name: &str, files: &[(&str, &str)], to: &Path) -> Recording {
    let mut rec = Recording::load(&dir(name)).unwrap();
    for (file, text) in files {
        rec.now.sysctl.insert(file.to_string(), format!("{text}\n"));
    }
    rec.save(to).unwrap();
    Recording::load(to).unwrap()
}

/// The "sysctls:" line of the text report.
fn sysctl_line(r: &Report) -> String {
    let text = text::render(r);
    let line = text.lines().find(|l| l.starts_with("sysctls:"));
    line.expect("a sysctls line").to_string()
}

fn retries(s: &Sysctls) -> [Option<u8>; 4] {
    [
        s.tcp_syn_retries,
        s.tcp_syn_linear_timeouts,
        s.tcp_synack_retries,
        s.tcp_retries2,
    ]
}

#[test]
fn overflow_counts_the_closes_that_skipped_time_wait() {
    let (_, r) = report("overflow");
    // 40 server-side closes in the interval against a cap of 16.
    assert_eq!(r.sysctl.tcp_max_tw_buckets, 16);
    assert_eq!(r.counters["TcpExt.TW"], 16);
    assert_eq!(r.counters["TcpExt.TCPTimeWaitOverflow"], 24);
    let secs = r.interval_secs;
    assert!((r.rates.closes_per_sec * secs - 40.0).abs() < 1e-6);
    assert!((r.rates.tw_overflow_per_sec * secs - 24.0).abs() < 1e-6);
    assert!((r.rates.passive_opens_per_sec * secs - 40.0).abs() < 1e-6);
    assert_eq!((r.time_wait.server, r.time_wait.client), (16, 0));
    assert_eq!(r.sockstat.tw, Some(16));
    let w = text::warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.contains("tcp_max_tw_buckets (16) is full")),
        "{w:?}"
    );
}

#[test]
fn port_exhaustion_shows_per_destination() {
    let (rec, r) = report("ports-exhausted");
    // 64 ephemeral ports, tcp_tw_reuse 0, client-side closes until connect() failed.
    assert_eq!(r.sysctl.ip_local_port_range.size(), 64);
    assert_eq!(r.sysctl.tcp_tw_reuse, 0);
    assert_eq!((r.time_wait.server, r.time_wait.client), (0, 64));
    assert_eq!(r.destinations.len(), 1);
    let d = &r.destinations[0];
    assert_eq!(d.destination, "127.0.0.1:8080");
    assert_eq!(
        (d.time_wait, d.sockets, d.ports_in_use, d.port_range),
        (64, 64, 64, 64)
    );
    assert_eq!(d.used, 1.0);
    assert!(text::warnings(&r)
        .iter()
        .any(|w| w.contains("no port is left")));
    // Every port of the range is held once, in TIME-WAIT.
    let mut ports: Vec<u16> = diag::parse(&rec.now.diag)
        .unwrap()
        .iter()
        .filter(|s| s.local.port() != 8080)
        .map(|s| s.local.port())
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, (40000..=40063).collect::<Vec<_>>());
}

#[test]
fn the_host_recording_is_self_consistent() {
    let (rec, r) = report("host");
    let sockets = diag::parse(&rec.now.diag).unwrap();
    assert!(!sockets.is_empty());
    assert_eq!(r.states.values().sum::<u64>(), sockets.len() as u64);
    assert_eq!(r.time_wait.total, r.states["time_wait"]);
    assert_eq!(r.time_wait.total, r.time_wait.server + r.time_wait.client);
    assert_eq!(
        r.destinations.iter().map(|d| d.time_wait).sum::<u64>(),
        r.time_wait.client
    );
    let file = std::fs::read_to_string(dir("host/sysctl/tcp_max_tw_buckets")).unwrap();
    assert_eq!(r.sysctl.tcp_max_tw_buckets.to_string(), file.trim());
    // The counters' own values, not only their growth.
    let after = Counters::parse("netstat", &rec.after.netstat).unwrap();
    assert!(after.get("TcpExt", "TW").is_some());
    // The plan's slab sizes come from the same parser.
    let text = rec.now.slabinfo.as_deref().expect("recorded as root");
    let info = Slabinfo::parse(text).unwrap();
    let slab = r.memory.slab.as_ref().unwrap();
    assert_eq!(
        slab["tw_sock_TCP"].objsize,
        info.get("tw_sock_TCP").unwrap().objsize
    );
    assert_eq!(
        Slab::parse(text).tw_sock_bytes,
        slab["tw_sock_TCP"].objsize as f64
    );
    assert_eq!(Slab::parse(text).source, "/proc/slabinfo");
    // The IPv6 sockets' caches are the host's TCP memory too.
    for name in ["tw_sock_TCPv6", "TCPv6", "request_sock_TCPv6"] {
        let c = info.get(name).expect("the recording has the IPv6 caches");
        assert_eq!(slab[name].bytes, c.active_objs * c.objsize, "{name}");
    }
}

#[test]
fn the_json_reads_back_as_the_report() {
    let (_, r) = report("ports-exhausted");
    let json = serde_json::to_string(&r).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    assert_eq!(back.destinations, r.destinations);
}

#[test]
fn damaged_recordings_are_errors_not_panics() {
    let rec = Recording::load(&dir("ports-exhausted")).unwrap();
    for cut in [1, 17, rec.now.diag.len() / 2, rec.now.diag.len() - 3] {
        let mut bad = rec.clone();
        bad.now.diag.truncate(cut);
        assert!(Report::new(&bad, None).is_err(), "diag cut at {cut}");
    }
    let mut bad = rec.clone();
    bad.after.netstat = bad.after.netstat.replacen("TcpExt: 0", "TcpExt: x", 1);
    let e = Report::new(&bad, None).unwrap_err().to_string();
    assert!(e.contains("netstat"), "{e}");
    let mut bad = rec;
    bad.now
        .sysctl
        .insert("ip_local_port_range".into(), "40063 40000".into());
    assert!(Report::new(&bad, None).is_err());
    assert!(Recording::load(&dir("no-such-recording")).is_err());
}

/// A recording's interval is what its rates divide by: one past what a
/// `Duration` holds, or below a microsecond, is refused when loaded (1e20
/// panicked, 1e-12 gave infinite rates), and huge kernel counts saturate.
#[test]
fn absurd_intervals_and_counts_are_errors_or_saturate() {
    let rec = Recording::load(&dir("ports-exhausted")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    rec.save(tmp.path()).unwrap();
    for bad in ["1e20", "1e-12", "0", "-1", "nan", "inf", "x"] {
        std::fs::write(tmp.path().join("interval_secs"), bad).unwrap();
        let e = Recording::load(tmp.path()).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("interval_secs")), "{bad}");
    }
    std::fs::write(tmp.path().join("interval_secs"), "0.5").unwrap();
    assert!(Recording::load(tmp.path()).is_ok());
    // TCP's memory in pages, more than 64 bits of bytes.
    let mut bad = rec;
    bad.now.sockstat = bad.now.sockstat.replacen(
        "alloc 2 mem 189",
        &format!("alloc 2 mem {}", u64::MAX / 2),
        1,
    );
    assert!(Report::new(&bad, None).is_ok());
}

#[test]
fn orphans_near_or_past_tcp_max_orphans_are_warned_of() {
    let (_, mut r) = report("overflow");
    // Recorded in a namespace of its own: the host-wide limit is not there.
    assert_eq!(r.sysctl.tcp_max_orphans, None);
    let near = |r: &Report| {
        text::warnings(r)
            .iter()
            .any(|w| w.contains("orphans of tcp_max_orphans"))
    };
    assert!(!near(&r));
    r.sysctl.tcp_max_orphans = Some(64);
    r.sockstat.orphan = Some(31);
    assert!(!near(&r));
    // Half the limit: a warning.
    r.sockstat.orphan = Some(32);
    assert!(near(&r));
    // Resets in the interval say so, whatever the count now.
    r.counters.insert("TcpExt.TCPAbortOnMemory".into(), 5);
    let w = text::warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.starts_with("5 connections reset") && w.contains("tcp_max_orphans (64)")),
        "{w:?}"
    );
}

/// The fixtures were recorded before the retry sysctls were read: they load
/// without them, and neither the JSON nor the text names them.
#[test]
fn recordings_without_the_retry_sysctls_still_load() {
    for name in ["host", "overflow", "ports-exhausted"] {
        let (rec, r) = report(name);
        for file in Sysctls::OPTIONAL {
            assert!(!rec.now.sysctl.contains_key(file), "{name}: {file}");
        }
        assert_eq!(retries(&r.sysctl), [None; 4], "{name}");
        let json = serde_json::to_value(&r).unwrap();
        let line = sysctl_line(&r);
        for file in Sysctls::OPTIONAL {
            assert!(json["sysctl"].get(file).is_none(), "{name}: {file}");
            assert!(!line.contains(file), "{line}");
        }
    }
}

/// A host tuned against SYN floods: the retry sysctls are read from the
/// recording and shown in the text and the JSON; without
/// `tcp_syn_linear_timeouts` (a kernel before 6.5) the others still are; one
/// that is not a u8 is an error that names it.
#[test]
fn retry_sysctls_in_a_recording_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [
        ("tcp_syn_retries", "3"),
        ("tcp_syn_linear_timeouts", "12"),
        ("tcp_synack_retries", "2"),
        ("tcp_retries2", "8"),
    ];
    let rec = with_sysctls("overflow", &files, tmp.path());
    let r = Report::new(&rec, None).unwrap();
    assert_eq!(retries(&r.sysctl), [Some(3), Some(12), Some(2), Some(8)]);
    let line = sysctl_line(&r);
    assert!(
        line.ends_with(
            "tcp_syn_retries 3 tcp_syn_linear_timeouts 12 tcp_synack_retries 2 tcp_retries2 8"
        ),
        "{line}"
    );
    let json = serde_json::to_string(&r).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sysctl"]["tcp_synack_retries"], 2);
    assert_eq!(v["sysctl"]["tcp_syn_linear_timeouts"], 12);
    assert_eq!(Report::from_json(&json).unwrap().sysctl, r.sysctl);

    std::fs::remove_file(tmp.path().join("sysctl/tcp_syn_linear_timeouts")).unwrap();
    let r = Report::new(&Recording::load(tmp.path()).unwrap(), None).unwrap();
    assert_eq!(retries(&r.sysctl), [Some(3), None, Some(2), Some(8)]);
    assert!(!sysctl_line(&r).contains("linear"));

    std::fs::write(tmp.path().join("sysctl/tcp_synack_retries"), "two\n").unwrap();
    let e = Report::new(&Recording::load(tmp.path()).unwrap(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tcp_synack_retries"), "{e}");
}
