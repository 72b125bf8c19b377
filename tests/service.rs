//! `teardown serve` as a process: malformed input is counted and survived, and
//! SIGTERM writes the final report atomically and exits 0. Loopback only.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use teardown::kernel::state::TcpState;
use teardown::service::metrics::parse_text;
use teardown::service::net::http_get;
use teardown::wire::{self, Encoder};
use teardown_engine::{Flags, Segment, Tuple};

mod common;

struct Serve {
    child: Child,
    udp: String,
    metrics: String,
    /// `--kernel-listen`'s bound address, `-` without it.
    kernel: String,
}

fn serve(extra: &[&str]) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--threads",
            "1",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} missing in {line:?}"))
            .to_string()
    };
    Serve {
        udp: field("udp="),
        metrics: field("metrics="),
        kernel: field("kernel="),
        child,
    }
}

impl Serve {
    /// Waits until every named figure has its value. A worker publishes at the
    /// end of each loop iteration, after the replies it sent, so a scrape that
    /// follows a reply may still be one iteration behind.
    fn wait_metrics(&self, want: &[(&str, f64)]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let body = http_get(
                &format!("http://{}/metrics", self.metrics),
                Duration::from_secs(2),
            )
            .unwrap();
            let all = parse_text(&body);
            let seen: Vec<f64> = want
                .iter()
                .map(|(name, _)| all.get(*name).copied().unwrap_or(f64::NAN))
                .collect();
            if want.iter().zip(&seen).all(|((_, w), s)| w == s) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "metrics after 5 s: want {want:?}, saw {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on our own unreaped child; no memory is touched.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "no exit within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_tuple(port: u16) -> Tuple {
    Tuple::new(
        [10, 200, 0, 1],
        port,
        teardown::service::SERVER_IP,
        teardown::service::SERVER_PORT,
    )
}

fn syn(port: u16) -> Vec<u8> {
    let mut e = Encoder::default();
    e.push(&Segment {
        flags: Flags::SYN,
        seq: 1000,
        ..common::sent_on(client_tuple(port))
    });
    e.datagram().to_vec()
}

/// The next segment the server sends to `port` for which `wanted` holds.
/// Others are skipped: at a compressed time scale a slow test sees the
/// server's retransmissions (a SYN-ACK again after 10 ms real at 0.01), and
/// an earlier connection's may still arrive.
fn next_reply(sock: &UdpSocket, port: u16, wanted: impl Fn(&Segment) -> bool) -> Segment {
    let mut buf = vec![0; wire::MAX_DATAGRAM + 1];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no reply to port {port} in 5 s");
        let (n, _) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no reply to port {port}: {e}"));
        let found = wire::decode(&buf[..n])
            .unwrap()
            .find(|seg| seg.receiver_tuple() == client_tuple(port) && wanted(seg));
        if let Some(seg) = found {
            return seg;
        }
    }
}

/// Sends a SYN and waits for the SYN-ACK.
fn handshake_reply(sock: &UdpSocket, to: &str, port: u16) -> Segment {
    sock.send_to(&syn(port), to).unwrap();
    let reply = next_reply(sock, port, |seg| seg.flags.syn());
    assert_eq!(reply.flags, Flags::SYN | Flags::ACK);
    assert_eq!(reply.ack, 1001);
    reply
}

#[test]
fn malformed_and_oversized_datagrams_are_counted_and_survived() {
    let s = serve(&[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    handshake_reply(&sock, &s.udp, 40_000);

    let good = syn(40_001);
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    let mut bad_version = good.clone();
    bad_version[2] = 9;
    let mut reserved = good.clone();
    reserved[8 + 26] |= 0x80;
    let truncated = good[..good.len() - 3].to_vec();
    let mut lying_count = good.clone();
    lying_count[5] = 2;
    let oversized = vec![0u8; wire::MAX_DATAGRAM + 100];
    let tiny = vec![b'T'];
    let bad = [
        bad_magic,
        bad_version,
        reserved,
        truncated,
        lying_count,
        oversized,
        tiny,
        Vec::new(),
    ];
    for d in &bad {
        sock.send_to(d, &s.udp).unwrap();
    }
    // Still serving: a new connection completes its handshake.
    handshake_reply(&sock, &s.udp, 40_002);
    s.wait_metrics(&[
        ("teardown_datagrams_malformed_total", bad.len() as f64),
        ("teardown_datagrams_received_total", bad.len() as f64 + 2.0),
        ("teardown_connections{state=\"syn_received\"}", 2.0),
        ("teardown_opened_passive_total", 2.0),
    ]);
}

#[test]
fn sigterm_writes_the_final_report_atomically_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let mut s = serve(&["--json", path.to_str().unwrap(), "--time-scale", "0.01"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let synack = handshake_reply(&sock, &s.udp, 41_000);
    // Complete the handshake: the close-heavy server answers with its FIN at once.
    let mut e = Encoder::default();
    let t = client_tuple(41_000);
    e.push(&Segment {
        flags: Flags::ACK,
        seq: 1001,
        ack: synack.seq.wrapping_add(1),
        ..common::sent_on(t)
    });
    sock.send_to(e.datagram(), &s.udp).unwrap();
    // The first segment after the retransmitted SYN-ACKs, if any, is the FIN.
    let fin = next_reply(&sock, 41_000, |seg| !seg.flags.syn());
    assert!(fin.flags.fin(), "{fin:?}");

    s.sigterm();
    let status = s.wait();
    assert!(status.success(), "{status}");
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["connections"], 1);
    assert_eq!(report["datagrams"]["received"], 2);
    assert_eq!(report["peak"]["fin_wait_1"], 1);
    for key in [
        "completed",
        "leaked",
        "teardowns_per_sec",
        "segments",
        "timeouts",
        "time_wait_overflow",
        "memory",
    ] {
        assert!(report.get(key).is_some(), "{key} missing: {report:#}");
    }
    assert!(report["memory"]["peak_heap_bytes"].as_u64().unwrap() > 0);
    // It never reached TIME-WAIT: the per-TIME-WAIT figure says it rests on none.
    assert_eq!(report["memory"]["time_wait_entries"], 0, "{report:#}");
    assert_eq!(report["memory"]["time_wait_share"], 0.0, "{report:#}");
    // The one connection was in the worker's table (FIN-WAIT-1) at a tick.
    assert_eq!(report["resident"]["peak_entries"], 1, "{report:#}");
    let summary = report["summary"].as_str().unwrap();
    assert!(
        summary.contains("with 1 entries resident at peak"),
        "{summary}"
    );
    // Only the report: the temporary file was renamed, not left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
}

#[test]
fn refuses_non_loopback_addresses() {
    let out = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["serve", "--listen", "0.0.0.0:0", "--metrics", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-non-loopback"));
}

/// A loopback port free now (its listener is dropped), and its address.
fn free_loopback_port() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (port, format!("127.0.0.1:{port}"))
}

/// Connects to the kernel listener at `addr` and waits for its FIN, which
/// arrives without us sending anything.
fn expect_server_fin(addr: &str) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut c, &mut buf).unwrap(), 0);
}

#[test]
fn kernel_listener_accepts_and_closes_first() {
    let s = serve(&["--kernel-listen", "127.0.0.1:0"]);
    expect_server_fin(&s.kernel);
    s.wait_metrics(&[("teardown_kernel_accepted_total", 1.0)]);
}

/// `--processes 3`: three servers on one port (SO_REUSEPORT), each closing
/// first; the parent's report sums theirs, and a SIGKILLed parent takes its
/// children with it.
#[test]
fn kernel_listener_over_processes_shares_the_port_and_sums_the_reports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let (port, addr) = free_loopback_port();
    let mut s = serve(&[
        "--processes",
        "3",
        "--kernel-listen",
        &addr,
        "--json",
        path.to_str().unwrap(),
    ]);
    assert_eq!(s.kernel, addr);
    const N: u64 = 300;
    for _ in 0..N {
        expect_server_fin(&addr);
    }
    s.sigterm();
    assert!(s.wait().success());
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["processes"], 3);
    assert_eq!(report["kernel"]["accepted"], N, "{report:#}");
    let per_child: Vec<u64> = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kernel"]["accepted"].as_u64().unwrap())
        .collect();
    // The kernel's reuseport hash spreads 300 source ports over all three.
    assert!(per_child.iter().all(|&n| n > 0), "{per_child:?}");

    let s = serve(&["--processes", "2", "--kernel-listen", &addr]);
    let listeners = || {
        teardown::kernel::diag::dump()
            .unwrap()
            .iter()
            .filter(|d| d.state == TcpState::Listen && d.local.port() == port)
            .count()
    };
    assert_eq!(listeners(), 2);
    // The children's reports and logs, which a killed parent cannot remove.
    let scratch = std::env::temp_dir().join(format!("teardown-serve-{}", s.child.id()));
    assert!(scratch.is_dir(), "{scratch:?}");
    drop(s); // SIGKILL: the children get SIGTERM from PR_SET_PDEATHSIG.
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners() > 0 {
        assert!(Instant::now() < deadline, "children outlived their parent");
        std::thread::sleep(Duration::from_millis(20));
    }
    // They stopped in order: each wrote its report (atomically, so a report
    // there is whole and nothing more is written).
    let reports = ["child-0.json", "child-1.json"].map(|f| scratch.join(f));
    while !reports.iter().all(|r| r.exists()) {
        assert!(Instant::now() < deadline, "no report from a child");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::remove_dir_all(scratch).unwrap();
}

/// `--hold` keeps kernel connections open (each a descriptor): with two
/// processes, all 200 stay ESTABLISHED on the server until the stop, which
/// closes them; the report counts the most held at once.
#[test]
fn kernel_connections_are_held_for_the_hold_and_closed_at_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    let (port, addr) = free_loopback_port();
    let mut s = serve(&[
        "--processes",
        "2",
        "--kernel-listen",
        &addr,
        "--hold",
        "1h",
        "--json",
        path.to_str().unwrap(),
    ]);
    const N: usize = 200;
    let clients: Vec<_> = (0..N)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Accepted and held: the server's ends are ESTABLISHED with a descriptor.
    let established = || {
        teardown::kernel::diag::dump()
            .unwrap()
            .iter()
            .filter(|d| {
                d.state == TcpState::Conn(teardown_engine::state::State::Established)
                    && d.local.port() == port
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while established() < N {
        assert!(Instant::now() < deadline, "{} of {N} held", established());
        std::thread::sleep(Duration::from_millis(20));
    }
    s.sigterm();
    assert!(s.wait().success());
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(report["kernel"]["accepted"], N as u64, "{report:#}");
    assert_eq!(report["kernel"]["held_peak"], N as u64, "{report:#}");
    // The stop closed them: each client reads the server's FIN.
    for mut c in clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(std::io::Read::read(&mut c, &mut buf).unwrap(), 0);
    }
}
