//! `teardown script`: the corpus in tests/scripts must pass, wrong scripts
//! must fail naming the line, malformed ones must give a parse error with line and column, and the
//! pcap export must decode.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use etherparse::{SlicedPacket, TransportSlice};
use teardown::script::{self, parse, run, Direction, Options};

/// Scripts the corpus must hold, one per seed case and per engine rule
/// (docs/scripts.md); like every corpus script they must pass on the engine,
/// and tests/script_kernel.rs runs them on Linux too.
const REQUIRED: &[&str] = &[
    "normal-close-active.pkt",
    "normal-close-passive.pkt",
    "case1-first-fin-lost.pkt",
    "case2-ack-of-fin-lost.pkt",
    "case3-passive-fin-lost.pkt",
    "case4-final-ack-lost.pkt",
    "case5-passive-closer-runs-away.pkt",
    "case6-active-closer-runs-away.pkt",
    "simultaneous-close.pkt",
    "rst-fin-wait-1.pkt",
    "rst-fin-wait-2.pkt",
    "rst-closing.pkt",
    "rst-time-wait.pkt",
    "rst-close-wait.pkt",
    "rst-last-ack.pkt",
    "syn-time-wait-new-incarnation.pkt",
    "syn-time-wait-old-duplicate.pkt",
    "syn-last-ack.pkt",
    "time-wait-duplicate-fin.pkt",
    "fin-wait-2-timeout.pkt",
    "fin-retransmit-give-up.pkt",
    "data-after-close.pkt",
    "so-linger-abort.pkt",
    "fin-wait-2-orphan-rst-out-of-window.pkt",
    "fin-wait-2-orphan-rst-in-window.pkt",
    "time-wait-ack-restarts-timer.pkt",
    "time-wait-oow-ack-rate-limit.pkt",
    "fin-retransmit-after-partial-ack.pkt",
    "challenge-ack-beyond-snd-nxt.pkt",
    "abort-in-last-ack.pkt",
    "fin-held-behind-retransmission.pkt",
    "read-after-fin-and-reset.pkt",
    "rto-after-falling-rtt.pkt",
    "fin-wait-2-timeout-sysctl.pkt",
    "tw-reuse-after-the-delay.pkt",
    "tw-reuse-needs-timestamps.pkt",
    "bind-takes-time-wait-at-once.pkt",
    "eaddrnotavail-range-spent.pkt",
];

fn corpus() -> Vec<PathBuf> {
    common::pkt_files("tests/scripts")
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

#[test]
fn every_corpus_script_passes() {
    let files = corpus();
    for name in REQUIRED {
        assert!(
            files.iter().any(|f| file_name(f) == *name),
            "tests/scripts/{name} is missing"
        );
    }
    let mut failures = Vec::new();
    for f in &files {
        let name = file_name(f);
        let r = script::run_file(f, &Options::default());
        if let Some(e) = &r.error {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

const HANDSHAKE: &str = "\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1460>
+0  > S. 0:0(0) ack 1 <...>
+.1 < . 1:1(0) ack 1 win 65535
+0  accept(3, ..., ...) = 4
";

fn run_str(body: &str) -> Result<(), String> {
    let src = format!("{HANDSHAKE}{body}");
    let script = parse(&src).map_err(|e| e.to_string())?;
    let out = run(&script, &Options::default());
    match out.failure {
        Some(f) => Err(format!("t.pkt:{f}")),
        None => Ok(()),
    }
}

#[test]
fn a_sysctl_line_comes_before_the_script_starts() {
    let e = run_str("+0 `sysctl -q net.ipv4.tcp_fin_timeout=5`\n").unwrap_err();
    assert!(
        e.contains("must come before the script's first packet"),
        "{e}"
    );
    // The same line first configures the engine: a 5 s orphaned FIN-WAIT-2.
    let src = "0 `sysctl -q net.ipv4.tcp_fin_timeout=5`\n".to_string()
        + &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/fin-wait-2-timeout.pkt"),
        )
        .unwrap();
    let out = run(&parse(&src).unwrap(), &Options::default());
    let f = out.failure.expect("the orphan is gone after 5 s, not 60");
    // At 59 s the 60 s script expects an ACK; the orphan is gone: RST.
    assert_eq!(f.line, 21, "{f}");
    assert!(f.msg.contains("tcp_rst: expected: 0 vs actual: 1"), "{f}");
}

#[test]
fn a_wrong_flag_fails_naming_the_line_and_field() {
    let err = run_str("+0 close(4) = 0\n+0 > . 1:1(0) ack 1\n").unwrap_err();
    assert!(
        err.starts_with(
            "t.pkt:9: error handling packet: live packet field tcp_fin: expected: 0 vs actual: 1"
        ),
        "{err}"
    );
    assert!(
        err.contains("script packet:") && err.contains("actual packet:"),
        "{err}"
    );
    assert!(err.contains("> F. 1:1(0) ack 1"), "{err}");
}

#[test]
fn a_wrong_sequence_number_or_ack_fails() {
    let err = run_str("+0 close(4) = 0\n+0 > F. 2:2(0) ack 1\n").unwrap_err();
    assert!(
        err.contains("t.pkt:9: ") && err.contains("tcp_seq: expected: 2 vs actual: 1"),
        "{err}"
    );
    let err = run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 7\n").unwrap_err();
    assert!(
        err.contains("tcp_ack_seq: expected: 7 vs actual: 1"),
        "{err}"
    );
}

#[test]
fn wrong_timing_fails_with_a_timing_error() {
    // The first retransmission comes after 300 ms, not 200 ms.
    let err =
        run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.2 > F. 1:1(0) ack 1\n").unwrap_err();
    assert!(
        err.contains("t.pkt:10: error handling packet: timing error"),
        "{err}"
    );
    assert!(
        err.contains("expected outbound packet at 0.300000 sec but happened at 0.400000 sec"),
        "{err}"
    );
    // Within the tolerance it passes; a wider one is honoured.
    run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.303 > F. 1:1(0) ack 1\n").unwrap();
    run_str(
        "--tolerance_usecs=150000\n+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.2 > F. 1:1(0) ack 1\n",
    )
    .unwrap();
}

#[test]
fn the_relative_tolerance_is_packetdrills() {
    // The retransmission comes 300 ms after the FIN. Expected 330 ms after:
    // 12.5 % of 330 ms is 41 ms, so it passes by default, as under packetdrill.
    let body = "+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.33 > F. 1:1(0) ack 1\n";
    run_str(body).unwrap();
    // Without the relative tolerance only the fixed 4 ms applies.
    let err = run_str(&format!("--tolerance_percent=0\n{body}")).unwrap_err();
    assert!(
        err.contains(
            "expected outbound packet at 0.430000 sec but happened at 0.400000 sec; \
             tolerance 0.004000 sec"
        ),
        "{err}"
    );
    // 12.5 % of 200 ms is 25 ms: 100 ms early still fails, naming the tolerance used.
    let err =
        run_str("+0 close(4) = 0\n+0 > F. 1:1(0) ack 1\n+.2 > F. 1:1(0) ack 1\n").unwrap_err();
    assert!(err.contains("tolerance 0.025000 sec"), "{err}");
}

#[test]
fn unexpected_and_missing_packets_fail() {
    // close() sends a FIN the script does not expect before its next inbound packet.
    let err = run_str("+0 close(4) = 0\n+.1 < . 1:1(0) ack 2 win 65535\n").unwrap_err();
    assert!(
        err.contains("t.pkt:9: error: unexpected outbound packet"),
        "{err}"
    );
    // A packet the host never sends.
    let err = run_str("+.1 > F. 1:1(0) ack 1\n").unwrap_err();
    assert!(
        err.contains("t.pkt:8: ") && err.contains("sent nothing"),
        "{err}"
    );
    // A packet left over at the end.
    let err = run_str("+0 close(4) = 0\n").unwrap_err();
    assert!(err.contains("after the last line"), "{err}");
}

#[test]
fn a_wrong_return_value_fails() {
    let err =
        run_str("+0 shutdown(4, SHUT_WR) = 0\n+0 > F. 1:1(0) ack 1\n+0 write(4, ..., 10) = 10\n")
            .unwrap_err();
    assert!(err.contains("t.pkt:10: write() returned -1"), "{err}");
    let err = run_str("+0 accept(3, ..., ...) = 5\n").unwrap_err();
    assert!(err.contains("accept() would block"), "{err}");
}

#[test]
fn malformed_syntax_gives_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pkt");
    std::fs::write(
        &path,
        "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) win 65535 <mss 1460\n",
    )
    .unwrap();
    let err = script::run_file(&path, &Options::default()).error.unwrap();
    assert!(err.contains("bad.pkt:2:"), "{err}");
    assert!(err.contains("parse error"), "{err}");
    let cases = [
        ("+0 < X 0:0(0) win 1\n", "1:6:", "not a TCP flag"),
        ("+0 < S 0:0 win 1\n", "1:12:", "expected '('"),
        ("+0 > S. 0:0(0) ack\n", "1:19:", "expected an ACK number"),
        ("+0 frobnicate(3) = 0\n", "1:4:", "not supported"),
        ("+x close(3) = 0\n", "1:2:", "expected a time"),
        ("+0 < S 0:0(0) win 99999\n", "1:19:", "out of range"),
    ];
    for (src, at, what) in cases {
        let e = parse(src).unwrap_err().to_string();
        assert!(e.starts_with(at) && e.contains(what), "{src:?}: {e}");
    }
}

#[test]
fn pcap_holds_every_segment_with_valid_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("out.pcap");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/normal-close-active.pkt");
    let r = script::run_file(&path, &Options::default());
    assert!(r.passed(), "{:?}", r.error);
    let outcome = r.outcome.unwrap();
    let n = script::write_pcap(&pcap, [&outcome]).unwrap();
    assert_eq!(n as usize, outcome.trace.len());

    let file = std::fs::File::open(&pcap).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    assert_eq!(reader.header().datalink, pcap_file::DataLink::RAW);
    let mut i = 0;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.unwrap();
        let tr = &outcome.trace[i];
        assert_eq!(pkt.timestamp.as_micros() as u64, tr.t.as_micros());
        let sliced = SlicedPacket::from_ip(&pkt.data).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &sliced.net else {
            panic!("not IPv4")
        };
        let iph = ip.header().to_header();
        assert_eq!(
            iph.header_checksum,
            iph.calc_header_checksum(),
            "IP checksum"
        );
        assert_eq!(iph.source, tr.seg.src_ip.to_be_bytes());
        let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else {
            panic!("not TCP")
        };
        let th = tcp.to_header();
        assert_eq!(
            th.checksum,
            th.calc_checksum_ipv4(&iph, tcp.payload()).unwrap(),
            "TCP checksum"
        );
        let s = tr.seg;
        assert_eq!(
            (th.syn, th.fin, th.rst, th.ack),
            (s.flags.syn(), s.flags.fin(), s.flags.rst(), s.flags.ack())
        );
        assert_eq!(th.sequence_number, s.seq);
        if s.flags.ack() {
            assert_eq!(th.acknowledgment_number, s.ack);
        }
        assert_eq!(tcp.payload().len() as u32, s.len);
        assert_eq!(
            (th.source_port, th.destination_port),
            (s.src_port, s.dst_port)
        );
        i += 1;
    }
    assert_eq!(i, outcome.trace.len());
    // Both directions are there: the handshake's SYN in, SYN-ACK out.
    assert_eq!(outcome.trace[0].dir, Direction::Inbound);
    assert_eq!(outcome.trace[1].dir, Direction::Outbound);
}

#[test]
fn tshark_decodes_the_pcap() {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("notice: tshark is not installed; skipping the tshark decode test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("out.pcap");
    let status = Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(["script", "--pcap"])
        .arg(&pcap)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/data-after-close.pkt"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.flags.str",
            "-e",
            "tcp.checksum.status",
            "-e",
            "ip.checksum.status",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 8, "{text}");
    for r in &rows {
        // checksum status 1 = good.
        assert_eq!((r[1], r[2]), ("1", "1"), "{text}");
    }
    assert!(
        rows[0][0].contains('S') && rows.iter().any(|r| r[0].contains('R')),
        "{text}"
    );
}

#[test]
fn cli_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_teardown");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts");
    let pass = Command::new(bin)
        .arg("script")
        .arg(scripts.join("so-linger-abort.pkt"))
        .output()
        .unwrap();
    assert_eq!(pass.status.code(), Some(0), "{pass:?}");
    // A script that expects a FIN where Linux (and the engine) sends an RST.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-linger.pkt");
    let src = std::fs::read_to_string(scripts.join("so-linger-abort.pkt")).unwrap();
    std::fs::write(&wrong, src.replace("> R.", "> F.")).unwrap();
    let fail = Command::new(bin)
        .arg("script")
        .arg(scripts.join("so-linger-abort.pkt"))
        .arg(&wrong)
        .output()
        .unwrap();
    assert_eq!(fail.status.code(), Some(1), "{fail:?}");
    assert!(String::from_utf8_lossy(&fail.stderr).contains("wrong-linger.pkt"));
    let missing = Command::new(bin)
        .args(["script", "/nonexistent.pkt"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    let usage = Command::new(bin).arg("script").output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
}

/// The engine on a runner that cannot keep the script's schedule: it wakes
/// `lag` after every time it asks for (a machine too busy), and its clock
/// moves on by `inject_lag` while it writes a packet (a runner descheduled
/// mid-write).
struct Lagging {
    inner: script::engine::EngineStack,
    lag: std::time::Duration,
    inject_lag: std::time::Duration,
    /// What the engine sent during an injection's lag, for the next look.
    held: Vec<(teardown_engine::time::Time, teardown_engine::Segment)>,
}

impl Lagging {
    fn new(lag_ms: u64, inject_lag_ms: u64) -> Lagging {
        Lagging {
            inner: script::engine::EngineStack::new(),
            lag: std::time::Duration::from_millis(lag_ms),
            inject_lag: std::time::Duration::from_millis(inject_lag_ms),
            held: Vec::new(),
        }
    }
}

impl script::Stack for Lagging {
    fn now(&self) -> teardown_engine::time::Time {
        self.inner.now()
    }
    fn advance(
        &mut self,
        until: teardown_engine::time::Time,
        stop_on_packet: bool,
        sent: &mut Vec<(teardown_engine::time::Time, teardown_engine::Segment)>,
    ) {
        sent.append(&mut self.held);
        self.inner.advance(until + self.lag, stop_on_packet, sent)
    }
    fn inject(
        &mut self,
        seg: &teardown_engine::Segment,
        o: &script::parse::TcpOptions,
    ) -> Result<(), String> {
        self.inner.inject(seg, o)?;
        if !self.inject_lag.is_zero() {
            let until = self.inner.now() + self.inject_lag;
            self.inner.advance(until, false, &mut self.held);
        }
        Ok(())
    }
    fn call(
        &mut self,
        line: usize,
        c: &script::parse::Syscall,
    ) -> Result<script::CallResult, script::Failure> {
        self.inner.call(line, c)
    }
    fn late_search(&self) -> std::time::Duration {
        self.inner.late_search()
    }
    fn local_port(&self, fd: i64) -> Option<u16> {
        self.inner.local_port(fd)
    }
    fn setup(&mut self, s: &script::stack::Setup) -> Result<(), String> {
        self.inner.setup(s)
    }
    fn sysctl(&mut self, line: usize, s: &script::sysctl::Sysctl) -> Result<(), script::Failure> {
        self.inner.sysctl(line, s)
    }
    fn take_notices(&mut self) -> Vec<String> {
        self.inner.take_notices()
    }
}

#[test]
fn a_late_runner_is_told_apart_from_a_late_stack() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/normal-close-passive.pkt"),
    )
    .unwrap();
    let s = parse(&src).unwrap();
    // 3 ms behind is within the 4 ms tolerance; 10 ms is not.
    for (lag_ms, late) in [(3, false), (10, true)] {
        let mut stack = Lagging::new(lag_ms, 0);
        let o = script::run_on(&mut stack, &s, &Options::default());
        match (&o.failure, late) {
            (None, false) => {}
            (Some(f), true) => {
                assert!(f.runner_late, "{f}");
                assert!(f.msg.contains("could only run at"), "{f}");
            }
            (f, _) => panic!("{lag_ms} ms behind: {f:?}"),
        }
    }
    // A stack that answers wrongly is the stack's fault, not the runner's.
    let wrong = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/wrong/fin-retransmit-early.pkt"),
    )
    .unwrap();
    let f = run(&parse(&wrong).unwrap(), &Options::default())
        .failure
        .unwrap();
    assert!(!f.runner_late, "{f}");
}

#[test]
fn a_script_running_past_the_end_of_time_fails_cleanly() {
    let mut src = String::from("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n");
    // 2^53 usec is the longest time a line may give; 2,100 of them pass 2^64.
    for _ in 0..2_100 {
        src.push_str("+9000000000 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0\n");
    }
    let f = run(&parse(&src).unwrap(), &Options::default())
        .failure
        .expect("it cannot pass");
    assert!(f.msg.contains("time overflows"), "{f}");
    assert!(f.line > 2_000, "{f}");
}

/// Time the runner lost injecting one packet shows only at the next line
/// (two duplicate ACKs in the same instant, as recorded by script_diff's
/// seed 51): that is still the runner falling behind, run again on Linux.
#[test]
fn time_lost_injecting_is_the_runner_being_late() {
    let src = format!(
        "{HANDSHAKE}\
+1  < . 1:1(0) ack 1 win 65535
+0  < . 1:1(0) ack 1 win 65535
+.5 read(4, ..., 1000) = -1 EAGAIN
"
    );
    let s = parse(&src).unwrap();
    for (lag_ms, late) in [(0, false), (10, true)] {
        let mut stack = Lagging::new(0, lag_ms);
        let o = script::run_on(&mut stack, &s, &Options::default());
        match (&o.failure, late) {
            (None, false) => {}
            (Some(f), true) => {
                assert!(f.msg.contains("could only run at"), "{f}");
                assert!(f.runner_late, "{f}");
            }
            (f, _) => panic!("{lag_ms} ms lost injecting: {f:?}"),
        }
    }
}

/// A line whose time an earlier line already took the clock past (here, a
/// retransmission waited for with `*`) fails as the script's doing, not as a
/// runner that fell behind: the kernel backend would run it again for nothing.
#[test]
fn a_line_already_passed_is_not_the_runner_being_late() {
    let src = "\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0  connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0  > S 0:0(0) <...>
+.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0  > . 1:1(0) ack 1
+0  close(3) = 0
+0  > F. 1:1(0) ack 1
*   > F. 1:1(0) ack 1
0.15 < . 1:1(0) ack 2 win 65535
";
    let f = run(&parse(src).unwrap(), &Options::default())
        .failure
        .expect("0.15 s has passed when the retransmission comes");
    assert_eq!(f.line, 10, "{f}");
    assert!(f.msg.contains("could only run at"), "{f}");
    assert!(!f.runner_late, "{f}");
}

/// Runs `src` (a whole script) on the engine; Err is its failure.
fn run_src(src: &str) -> Result<(), String> {
    let s = parse(src).map_err(|e| e.to_string())?;
    match run(&s, &Options::default()).failure {
        Some(f) => Err(f.to_string()),
        None => Ok(()),
    }
}

#[test]
fn the_engine_runs_the_scripts_ts_tick() {
    // ts-usec-tick.pkt at other ticks: the local host's TSvals divided by the
    // tick. Its FIN retransmission is timed by the RTO, from the RTT the TS
    // echo gave, so the tick must reach that too.
    let usec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/ts-usec-tick.pkt"),
    )
    .unwrap();
    let local_tsvals = ["1000000", "1350000", "1650000", "1750000"];
    let at_tick = |tick: u64, divisor: u64| {
        local_tsvals.iter().fold(
            usec.replace(
                "--tcp_ts_tick_usecs=1\n",
                &format!("--tcp_ts_tick_usecs={tick}\n"),
            ),
            |s, v| {
                let scaled = v.parse::<u64>().unwrap() / divisor;
                s.replace(&format!("val {v} "), &format!("val {scaled} "))
                    .replace(&format!("ecr {v}>"), &format!("ecr {scaled}>"))
            },
        )
    };
    for tick in [1, 10, 1000] {
        run_src(&at_tick(tick, tick)).unwrap_or_else(|e| panic!("tick {tick}: {e}"));
    }
    // Millisecond TSvals on a 10 us clock: the FIN is 35000 ticks after the
    // SYN-ACK (TSval 1000), not 350.
    let err = run_src(&at_tick(10, 1000)).unwrap_err();
    assert!(
        err.contains("bad outbound TCP timestamp value: expected: 1350 vs actual: 36000"),
        "{err}"
    );
}

#[test]
fn bind_port_zero_and_getsockname() {
    let head = "--bind_port=0\n\
                0 `sysctl -q net.ipv4.ip_local_port_range=\"40000 40001\"`\n\
                +0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n";
    let addr = |port: u16| {
        format!(
            "{{sa_family=AF_INET, sin_port=htons({port}), sin_addr=inet_addr(\"192.168.0.1\")}}"
        )
    };
    // getsockname() before connect(): the engine has not taken the port yet.
    let err = run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 getsockname(3, {}, [16]) = 0\n",
        addr(40001)
    ))
    .unwrap_err();
    assert!(err.contains("after connect() or accept()"), "{err}");
    // listen() on port 0 would listen where the peer does not send.
    let err = run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("listen() on a socket bound to port 0"),
        "{err}"
    );
    // A second bind() of one socket: EINVAL, as Linux's inet_bind.
    run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 bind(3, ..., ...) = -1 EINVAL (Invalid argument)\n"
    ))
    .unwrap();
    // With IP_BIND_ADDRESS_NO_PORT the socket has no port yet: bind() again.
    run_src(&format!(
        "{head}+0 setsockopt(3, SOL_IP, IP_BIND_ADDRESS_NO_PORT, [1], 4) = 0\n\
         +0 bind(3, ..., ...) = 0\n+0 bind(3, ..., ...) = 0\n"
    ))
    .unwrap();
    // Two sockets bound to port 0 and not yet connected hold both ports.
    run_src(&format!(
        "{head}+0 bind(3, ..., ...) = 0\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 4\n\
         +0 bind(4, ..., ...) = 0\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 5\n\
         +0 bind(5, ..., ...) = -1 EADDRINUSE (Address already in use)\n"
    ))
    .unwrap();
    let err = run_src(&format!(
        "{head}+0 connect(3, ..., ...) = -1 EINPROGRESS\n+0 > S 0:0(0) <...>\n\
         +0 getsockname(3, {{sa_family=AF_INET}}, [16]) = 0\n"
    ))
    .unwrap_err();
    assert!(
        err.contains("expected {sa_family=AF_INET, sin_port="),
        "{err}"
    );
}
