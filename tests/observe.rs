//! `teardown observe` against a network namespace this test makes: a known
//! number of TIME-WAIT sockets on each side, and closes during the interval.
//!
//! Needs root and iproute2's `ip`; without them it prints why and skips,
//! unless `TEARDOWN_REQUIRE_NETNS` is set (as `.ci/run` does).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use serde_json::Value;
use teardown::kernel::netns;

/// A namespace from `ip netns add`, with lo up, removed on drop (also when a
/// test fails).
struct Netns {
    name: String,
}

impl Netns {
    /// `None`, after printing why, when this machine cannot make one; a
    /// failure instead where `TEARDOWN_REQUIRE_NETNS` says it must (`.ci/run`).
    fn new(tag: &str) -> Option<Netns> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let why = if unsafe { libc::geteuid() } != 0 {
            Some("needs root (ip netns add)")
        } else if Command::new("ip").arg("-V").output().is_err() {
            Some("needs `ip` (Debian package iproute2)")
        } else {
            None
        };
        if let Some(why) = why {
            assert!(
                std::env::var_os("TEARDOWN_REQUIRE_NETNS").is_none(),
                "TEARDOWN_REQUIRE_NETNS is set but the observe namespace test {why}"
            );
            eprintln!("SKIPPED: observe namespace test {why}");
            return None;
        }
        let name = format!("td-obs-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        Some(ns)
    }

    /// Runs `f` on a thread inside the namespace.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        netns::run_in(Some(&self.name), f).expect("enter the test namespace")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A connection whose server side closes first: TIME-WAIT on the server.
fn server_closes(listener: &TcpListener) -> std::io::Result<()> {
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    drop(server);
    assert_eq!(client.read(&mut [0; 1])?, 0, "the server's FIN");
    Ok(())
}

/// A connection whose client side closes first: TIME-WAIT on the client.
fn client_closes(listener: &TcpListener) -> std::io::Result<()> {
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (mut server, _) = listener.accept()?;
    drop(client);
    assert_eq!(server.read(&mut [0; 1])?, 0, "the client's FIN");
    Ok(())
}

/// Runs `teardown observe --netns` over `interval`, calling `during` (inside
/// the namespace) once the first sample is in. Returns the JSON report and
/// whether `during` ended before the second sample could have been taken (it
/// ended less than `interval` after the first: observe sleeps at least that).
fn observe_while(
    ns: &Netns,
    interval: &str,
    extra: &[&str],
    during: impl FnOnce() + Send,
) -> (Value, bool) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("observe.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args([
            "observe",
            "--netns",
            &ns.name,
            "--interval",
            interval,
            "--json",
        ])
        .arg(&json)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn teardown observe");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            let _ = tx.send(line);
        }
    });
    let started = loop {
        match rx.recv() {
            Ok(line) if line.contains("first sample taken") => break Instant::now(),
            Ok(_) => continue,
            Err(_) => panic!("observe ended before its first sample: {:?}", child.wait()),
        }
    };
    ns.run(during);
    let in_time = started.elapsed() < teardown::cli::parse_duration(interval).unwrap();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "observe failed: {status}");
    println!("{text}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (report, in_time)
}

/// A listener on a fixed port outside any ephemeral range, so no client
/// socket can take it.
fn listen() -> TcpListener {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)))
        .expect("listen in the namespace")
}

#[test]
fn populations_by_side_and_closes_during_the_interval() {
    let Some(ns) = Netns::new("sides") else {
        return;
    };
    const SERVER_BEFORE: u64 = 5;
    const CLIENT_BEFORE: u64 = 3;
    const DURING: u64 = 20;
    const OPEN: u64 = 2;
    let (listener, open) = ns.run(|| {
        let l = listen();
        for _ in 0..SERVER_BEFORE {
            server_closes(&l).unwrap();
        }
        for _ in 0..CLIENT_BEFORE {
            client_closes(&l).unwrap();
        }
        let open: Vec<(TcpStream, TcpStream)> = (0..OPEN)
            .map(|_| {
                let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
                (c, l.accept().unwrap().0)
            })
            .collect();
        (l, open)
    });
    let (r, in_time) = observe_while(&ns, "1s", &[], || {
        for _ in 0..DURING {
            server_closes(&listener).unwrap();
        }
    });

    assert_eq!(r["netns"], Value::from(ns.name.as_str()));
    assert_eq!(r["states"]["listen"], 1);
    assert_eq!(
        r["states"]["time_wait"],
        SERVER_BEFORE + CLIENT_BEFORE + DURING
    );
    assert_eq!(
        r["states"]["established"],
        2 * OPEN,
        "both ends of each open connection"
    );
    assert_eq!(r["time_wait"]["server"], SERVER_BEFORE + DURING);
    assert_eq!(r["time_wait"]["client"], CLIENT_BEFORE);
    let dests = r["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 1, "{dests:?}");
    assert_eq!(dests[0]["destination"], "127.0.0.1:8080");
    assert_eq!(dests[0]["time_wait"], CLIENT_BEFORE);
    assert_eq!(dests[0]["sockets"], CLIENT_BEFORE + OPEN);
    assert_eq!(dests[0]["ports_in_use"], CLIENT_BEFORE + OPEN);
    assert_eq!(r["rtt"]["samples"], 2 * OPEN);
    let (p50, p99) = (
        r["rtt"]["p50_us"].as_u64().unwrap(),
        r["rtt"]["p99_us"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99, "RTT p50 {p50} p99 {p99}");
    assert_eq!(
        dests[0]["port_range"],
        r["sysctl"]["ip_local_port_range"][1].as_u64().unwrap()
            - r["sysctl"]["ip_local_port_range"][0].as_u64().unwrap()
            + 1
    );
    assert_eq!(r["sockstat"]["tw"], SERVER_BEFORE + CLIENT_BEFORE + DURING);

    // The rates: every close of the interval entered TIME-WAIT once (TW counts
    // when the timer is armed, in the orphaned FIN-WAIT-2 already).
    let secs = r["interval_secs"].as_f64().unwrap();
    let closes = r["rates"]["closes_per_sec"].as_f64().unwrap() * secs;
    let tw = r["counters"]["TcpExt.TW"].as_u64().unwrap();
    assert!(
        (closes - tw as f64).abs() < 1e-6,
        "closes {closes} vs TW {tw}"
    );
    assert_eq!(r["counters"]["TcpExt.TCPTimeWaitOverflow"], 0);
    if in_time {
        assert_eq!(tw, DURING);
        assert_eq!(r["counters"]["Tcp.PassiveOpens"], DURING);
        assert_eq!(r["counters"]["Tcp.ActiveOpens"], DURING);
    } else {
        eprintln!("NOTICE: the machine was slow: the closes outlasted the interval; checking only TW <= {DURING}");
        assert!(tw <= DURING);
    }
    drop((listener, open));
}

#[test]
fn overflow_past_tcp_max_tw_buckets() {
    let Some(ns) = Netns::new("ovf") else { return };
    const CAP: u64 = 16;
    const CLOSES: u64 = 40;
    let listener = ns.run(|| {
        std::fs::write("/proc/sys/net/ipv4/tcp_max_tw_buckets", CAP.to_string()).unwrap();
        listen()
    });
    let (r, in_time) = observe_while(&ns, "1s", &[], || {
        for _ in 0..CLOSES {
            server_closes(&listener).unwrap();
        }
    });
    assert_eq!(r["sysctl"]["tcp_max_tw_buckets"], CAP);
    assert_eq!(r["time_wait"]["server"], CAP);
    let overflow = r["counters"]["TcpExt.TCPTimeWaitOverflow"]
        .as_u64()
        .unwrap();
    let tw = r["counters"]["TcpExt.TW"].as_u64().unwrap();
    if in_time {
        assert_eq!((tw, overflow), (CAP, CLOSES - CAP));
    } else {
        assert!(tw + overflow <= CLOSES);
    }
    let secs = r["interval_secs"].as_f64().unwrap();
    let rate = r["rates"]["tw_overflow_per_sec"].as_f64().unwrap();
    assert!((rate * secs - overflow as f64).abs() < 1e-6);
}

/// The retry sysctls are the namespace's: one tuned against SYN floods shows
/// its own `tcp_synack_retries`, whatever the host's, and the rest as its
/// files say (`tcp_syn_linear_timeouts` only from Linux 6.5).
#[test]
fn retry_sysctls_are_the_namespaces() {
    let Some(ns) = Netns::new("syn") else { return };
    const DIR: &str = "/proc/sys/net/ipv4";
    let files = ns.run(|| {
        std::fs::write(format!("{DIR}/tcp_synack_retries"), "2").unwrap();
        ["tcp_syn_retries", "tcp_syn_linear_timeouts", "tcp_retries2"]
            .map(|name| (name, std::fs::read_to_string(format!("{DIR}/{name}")).ok()))
    });
    let (r, _) = observe_while(&ns, "100ms", &[], || {});
    assert_eq!(r["sysctl"]["tcp_synack_retries"], 2);
    for (name, file) in files {
        match file {
            Some(text) => assert_eq!(r["sysctl"][name].to_string(), text.trim(), "{name}"),
            None => assert!(r["sysctl"].get(name).is_none(), "{name}"),
        }
    }
}

/// Remakes the recorded fixtures under tests/fixtures/observe/ from this
/// machine: `cargo test --test observe -- --ignored record_fixtures`.
#[test]
#[ignore = "remakes the committed fixtures from this machine; run by hand"]
fn record_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/observe");
    let record = |name: &str| root.join(name).display().to_string();

    // The host as it is (this namespace), nothing made.
    let status = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args([
            "observe",
            "--interval",
            "1s",
            "--record",
            &record("host"),
            "--json",
            "-",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // TIME-WAIT overflow: a cap of 16, 40 server-side closes in the interval.
    let ns = Netns::new("rec-ovf").expect("root and ip");
    let listener = ns.run(|| {
        std::fs::write("/proc/sys/net/ipv4/tcp_max_tw_buckets", "16").unwrap();
        listen()
    });
    observe_while(&ns, "1s", &["--record", &record("overflow")], || {
        for _ in 0..40 {
            server_closes(&listener).unwrap();
        }
    });
    drop((listener, ns));

    // Client-side port exhaustion: 64 ephemeral ports, no reuse, client closes
    // until connect() finds no port (EADDRNOTAVAIL), then a few more tries.
    let ns = Netns::new("rec-ports").expect("root and ip");
    let listener = ns.run(|| {
        std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", "40000 40063").unwrap();
        std::fs::write("/proc/sys/net/ipv4/tcp_tw_reuse", "0").unwrap();
        listen()
    });
    observe_while(&ns, "1s", &["--record", &record("ports-exhausted")], || {
        let mut failed = 0;
        for _ in 0..100 {
            if client_closes(&listener).is_err() {
                failed += 1;
            }
        }
        assert_eq!(failed, 100 - 64, "connects beyond the 64 ports fail");
    });
}
