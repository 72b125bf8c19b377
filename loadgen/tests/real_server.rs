//! `loadgen --kernel --kernel-target` against a real server: Debian's nginx on
//! a loopback address of its own, with its own config in a temp dir. What
//! loadgen reports is held against TIME-WAIT read independently with `ss`.
//!
//! Without nginx installed these tests say so and pass, unless
//! `TEARDOWN_REQUIRE_NGINX` is set (as `.ci/run` does after installing it).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use common::n;

/// A real server of this test's own (nginx or haproxy) in the foreground on a
/// loopback address of its own, its config and logs in `dir`; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddrV4,
    dir: tempfile::TempDir,
}

/// A loopback address per test, so that `ss` sees only this test's sockets.
fn next_ip() -> Ipv4Addr {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    Ipv4Addr::new(
        127,
        77,
        (std::process::id() % 250) as u8,
        NEXT.fetch_add(1, Relaxed),
    )
}

/// Whether `program` is installed; when it is not, the test is skipped, unless
/// the environment variable `require` says it must run.
fn available(program: &str, require: &str, package: &str) -> bool {
    let found = common::installed(program, "-v");
    if !found {
        assert!(
            std::env::var_os(require).is_none(),
            "{program} is required (apt-get install {package})"
        );
        eprintln!("{program} not installed: skipped (apt-get install {package})");
    }
    found
}

fn have_nginx() -> bool {
    available("nginx", "TEARDOWN_REQUIRE_NGINX", "nginx-light")
}

fn have_haproxy() -> bool {
    available("haproxy", "TEARDOWN_REQUIRE_HAPROXY", "haproxy")
}

impl Server {
    /// nginx answering `GET /` with 6 bytes, and `keepalive_timeout` as given.
    fn nginx(keepalive_timeout: &str) -> Server {
        let (dir, addr) = Server::place();
        let nginx = Command::new("nginx");
        let child = common::nginx(nginx, dir.path(), &addr.to_string(), keepalive_timeout)
            .spawn()
            .unwrap();
        Server { child, addr, dir }.listening("nginx")
    }

    /// haproxy in `mode tcp` forwarding to `upstream`; `-db` keeps it in the
    /// foreground.
    fn haproxy(upstream: SocketAddrV4) -> Server {
        let (dir, addr) = Server::place();
        let conf = format!(
            "global\n maxconn 4096\ndefaults\n mode tcp\n timeout connect 5s\n\
             timeout client 30s\n timeout server 30s\n\
             frontend f\n bind {addr}\n default_backend b\n\
             backend b\n server s1 {upstream}\n"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Server { child, addr, dir }.listening("haproxy")
    }

    /// A temporary directory, and a port free on a fresh loopback address (the
    /// server binds it right after).
    fn place() -> (tempfile::TempDir, SocketAddrV4) {
        let ip = next_ip();
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        (tempfile::tempdir().unwrap(), SocketAddrV4::new(ip, port))
    }

    /// Waits until `ss` lists the listener (a probe connection would leave a
    /// TIME-WAIT of its own behind).
    fn listening(mut self, name: &str) -> Server {
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{name} exited with {status}: {}", self.log());
            }
            if !sockets("listening", "src", self.addr).is_empty() {
                return self;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{name} did not listen on {}: {}", self.addr, self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// TCP sockets in `state` whose local (`src`) or remote (`dst`) end is `addr`, by `ss`.
fn sockets(state: &str, side: &str, addr: SocketAddrV4) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-tanH", "state", state, side, &addr.to_string()])
        .output()
        .expect("ss (iproute2) is needed");
    common::assert_ok(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn time_wait(side: &str, addr: SocketAddrV4) -> Vec<String> {
    sockets("time-wait", side, addr)
}

/// TIME-WAIT held by the server (local end = its address) and by the clients.
fn time_wait_sides(addr: SocketAddrV4) -> (usize, usize) {
    (time_wait("src", addr).len(), time_wait("dst", addr).len())
}

fn loadgen(target: SocketAddrV4, extra: &[&str]) -> Value {
    let target = target.to_string();
    let mut argv = vec![
        "loadgen",
        "--kernel",
        "--kernel-target",
        &target,
        "--timeout",
        "60s",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    let r = loadgen::run(&loadgen::Args::parse_from(argv)).unwrap();
    assert_eq!(r.leaked, 0, "{:#}", r.json);
    r.json
}

fn no_errors(r: &Value) {
    let errors = r["errors"].as_object().unwrap();
    assert!(errors.values().all(|v| v == 0), "{r:#}");
}

fn sockstat() -> String {
    std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default()
}

#[test]
fn keepalive_0_means_the_server_closes_and_keeps_time_wait() {
    if !have_nginx() {
        return;
    }
    let nginx = Server::nginx("0");
    let r = loadgen(
        nginx.addr,
        &[
            "--request",
            "http",
            "--concurrency",
            "16",
            "--connections",
            "300",
        ],
    );
    no_errors(&r);
    assert_eq!(n(&r, "/connections"), 300, "{r:#}");
    assert_eq!(n(&r, "/completed"), 300, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 300, "{r:#}");
    assert_eq!(n(&r, "/latency_ms/first_byte/count"), 300);
    assert_eq!(n(&r, "/latency_ms/close/count"), 300);
    let (server, client) = time_wait_sides(nginx.addr);
    // Linux's connect() can walk back onto a 4-tuple still in the server's
    // TIME-WAIT (one client address): the newer SYN reopens it (RFC 6191) and
    // the new connection's TIME-WAIT takes the old one's place, so a few of
    // the 300 may be one entry (as the IPv6 test below saw).
    assert!(
        (270..=300).contains(&server) && client == 0,
        "TIME-WAIT by side: {server} server, {client} client; {}",
        sockstat()
    );
    // loadgen's own reading of the sides (sock_diag, last sample after the
    // last close) is what ss sees.
    assert_eq!(
        n(&r, "/time_wait/server_peak"),
        server as u64,
        "{:#}",
        r["time_wait"]
    );
    assert_eq!(n(&r, "/time_wait/client_peak"), 0, "{:#}", r["time_wait"]);
    // Host-wide counters: other tests' sockets may add to them, never take away.
    assert!(n(&r, "/kernel/netstat/TW") >= 300, "{:#}", r["kernel"]);
    assert!(
        n(&r, "/kernel/snmp/ActiveOpens") >= 300,
        "{:#}",
        r["kernel"]
    );
    assert!(
        n(&r, "/kernel/snmp/PassiveOpens") >= 300,
        "{:#}",
        r["kernel"]
    );
    assert!(
        n(&r, "/kernel/sockstat/tw_peak") >= 300,
        "{:#}",
        r["kernel"]
    );
    let series = r["series"].as_array().unwrap();
    let completed: u64 = series.iter().map(|p| n(p, "/completed")).sum();
    assert_eq!(completed, 300, "the series adds up to the run");
}

#[test]
fn the_client_closing_first_keeps_time_wait_on_the_client() {
    if !have_nginx() {
        return;
    }
    let nginx = Server::nginx("60s");
    let r = loadgen(
        nginx.addr,
        &[
            "--request",
            "http",
            "--close",
            "client",
            "--source-ips",
            "127.0.0.2-127.0.0.5",
            "--concurrency",
            "16",
            "--connections",
            "200",
        ],
    );
    no_errors(&r);
    assert_eq!(n(&r, "/completed"), 200, "{r:#}");
    assert_eq!(n(&r, "/closed_by/client_fin"), 200, "{r:#}");
    let client = time_wait("dst", nginx.addr);
    assert_eq!(time_wait("src", nginx.addr).len(), 0);
    assert_eq!(client.len(), 200, "{}", sockstat());
    assert_eq!(n(&r, "/time_wait/client_peak"), 200, "{:#}", r["time_wait"]);
    assert_eq!(n(&r, "/time_wait/server_peak"), 0, "{:#}", r["time_wait"]);
    assert!(n(&r, "/kernel/netstat/TW") >= 200, "{:#}", r["kernel"]);
    // Spread over the four source addresses.
    for last in 2..=5 {
        let ip = format!(" 127.0.0.{last}:");
        assert_eq!(
            client.iter().filter(|l| l.contains(&ip)).count(),
            50,
            "{ip}"
        );
    }
}

#[test]
fn rst_closes_leave_no_time_wait() {
    if !have_nginx() {
        return;
    }
    let nginx = Server::nginx("60s");
    let r = loadgen(
        nginx.addr,
        &[
            "--request",
            "http",
            "--close",
            "rst",
            "--concurrency",
            "16",
            "--connections",
            "200",
        ],
    );
    no_errors(&r);
    assert_eq!(n(&r, "/completed"), 200, "{r:#}");
    assert_eq!(n(&r, "/closed_by/client_rst"), 200, "{r:#}");
    assert_eq!(time_wait_sides(nginx.addr), (0, 0));
    assert_eq!(n(&r, "/time_wait/server_peak"), 0);
    assert_eq!(n(&r, "/time_wait/client_peak"), 0);
    // close() with SO_LINGER 0 counts as TCPAbortOnData (`__tcp_close`).
    assert!(
        n(&r, "/kernel/netstat/TCPAbortOnData") >= 200,
        "{:#}",
        r["kernel"]
    );
}

/// The open model: `--rate` with `--duration` starts exactly rate × duration
/// connections, each on its schedule; raw bytes are a workload too.
#[test]
fn open_model_runs_on_schedule_with_raw_requests() {
    if !have_nginx() {
        return;
    }
    let nginx = Server::nginx("0");
    let plots = tempfile::tempdir().unwrap();
    let r = loadgen(
        nginx.addr,
        &[
            "--request",
            "raw:GET / HTTP/1.0\\r\\n\\r\\n",
            "--rate",
            "500",
            "--duration",
            "400ms",
            "--plot",
            plots.path().to_str().unwrap(),
        ],
    );
    for file in ["loadgen.png", "loadgen.svg"] {
        assert!(plots.path().join(file).is_file(), "{file}");
    }
    no_errors(&r);
    assert_eq!(r["config"]["model"], "open");
    assert_eq!(n(&r, "/connections"), 200, "{r:#}");
    assert_eq!(n(&r, "/completed"), 200, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 200, "{r:#}");
    // A few may be one entry: see keepalive_0_means_the_server_closes_and_keeps_time_wait.
    let (server, client) = time_wait_sides(nginx.addr);
    assert!(
        (180..=200).contains(&server) && client == 0,
        "TIME-WAIT by side: {server} server, {client} client; {}",
        sockstat()
    );
}

/// Nothing listens: every connect is refused, by errno, and nothing is left.
#[test]
fn refused_connections_are_counted_by_errno() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = loadgen(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        &["--concurrency", "8", "--connections", "50"],
    );
    assert_eq!(n(&r, "/connections"), 50);
    assert_eq!(n(&r, "/errors/econnrefused"), 50, "{r:#}");
    assert_eq!(n(&r, "/established"), 0);
    assert_eq!(n(&r, "/completed"), 0);
}

/// A non-loopback target is refused before any socket exists (nothing is sent
/// to 10.0.0.1), with a usage error that names the flag to pass.
#[test]
fn non_loopback_targets_need_an_explicit_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--kernel",
            "--kernel-target",
            "10.0.0.1:80",
            "--connections",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
    let args = loadgen::Args::parse_from(["loadgen", "--kernel", "--kernel-target", "10.0.0.1:80"]);
    let e = loadgen::run(&args).err().expect("refused");
    assert!(e.to_string().contains("not a loopback address"), "{e}");
}

/// haproxy in `mode tcp` in front of nginx (`keepalive_timeout 0`): nginx
/// closes first towards the proxy and the proxy first towards loadgen, so
/// each connection leaves two TIME-WAITs, one on each server. loadgen's side
/// counts (by the target's address, the proxy's) see the proxy's only; the
/// proxy-to-nginx ones are in the host's counters, and the report says so.
#[test]
fn a_proxys_upstream_time_wait_is_in_the_host_counters_not_the_side_counts() {
    if !have_nginx() || !have_haproxy() {
        return;
    }
    let nginx = Server::nginx("0");
    let proxy = Server::haproxy(nginx.addr);
    let r = loadgen(
        proxy.addr,
        &[
            "--request",
            "http",
            "--concurrency",
            "8",
            "--connections",
            "200",
        ],
    );
    no_errors(&r);
    assert_eq!(n(&r, "/completed"), 200, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 200, "{r:#}");
    // The proxy's frontend closes first and is in TIME-WAIT before loadgen's
    // socket is gone: loadgen's sides are the proxy's alone, as ss says (a
    // few of the 200 may be one entry, as in the nginx tests above).
    let front = n(&r, "/time_wait/server_peak");
    assert!((180..=200).contains(&front), "{:#}", r["time_wait"]);
    assert_eq!(n(&r, "/time_wait/client_peak"), 0);
    assert_eq!(
        time_wait_sides(proxy.addr),
        (front as usize, 0),
        "{}",
        sockstat()
    );
    // The proxy closes its upstream on its own time, so the last few of
    // nginx's TIME-WAITs may come after loadgen's last reading; the rest are
    // in the host's TW count and among the "other" sockets, not in the sides.
    let tw = n(&r, "/kernel/netstat/TW");
    assert!(tw > 200, "{:#}", r["kernel"]);
    assert!(n(&r, "/time_wait/entered_by_others") >= tw - 200);
    assert!(n(&r, "/time_wait/other_peak") > 0, "{:#}", r["time_wait"]);
    // And all 200 (or all but the few reopened) are there in the end, at
    // nginx, towards the proxy.
    let mut upstream = time_wait_sides(nginx.addr);
    for _ in 0..500 {
        if upstream.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        upstream = time_wait_sides(nginx.addr);
    }
    assert!(
        (180..=200).contains(&upstream.0) && upstream.1 == 0,
        "{upstream:?}; {}",
        sockstat()
    );
    let note = r["notes"][0].as_str().unwrap_or_default();
    assert!(note.contains("host-wide counters"), "{r:#}");
}

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

/// A `teardown serve --kernel-listen [::1]:0` of this test's own, killed on drop.
struct Serve6(Child);

impl Drop for Serve6 {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An IPv6 target: connections to [::1], the close-first server's TIME-WAIT
/// found on its side by sock_diag's IPv6 dump, and the same count by `ss`.
#[test]
fn ipv6_targets_are_driven_and_their_time_wait_found_by_side() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(common::teardown_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .args(["--threads", "1", "--kernel-listen", "[::1]:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _server = Serve6(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let target = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kernel="))
        .unwrap_or_else(|| panic!("no kernel= in {line:?}"))
        .to_string();
    assert!(target.starts_with("[::1]:"), "{target}");
    let r = loadgen::run(&loadgen::Args::parse_from([
        "loadgen",
        "--kernel",
        "--kernel-target",
        &target,
        "--concurrency",
        "16",
        "--connections",
        "300",
        "--timeout",
        "60s",
        "--quiet",
    ]))
    .unwrap();
    assert_eq!(r.leaked, 0, "{:#}", r.json);
    let r = r.json;
    no_errors(&r);
    assert_eq!(n(&r, "/completed"), 300, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 300, "{r:#}");
    // Linux's connect() can walk back onto a 4-tuple still in the server's
    // TIME-WAIT (one client address, one port): the newer SYN reopens it
    // (RFC 6191) and the old entry goes with no counter, so a few of the 300
    // may be missing (292 in one CI run). What loadgen reports must be what
    // `ss` sees.
    let server = n(&r, "/time_wait/server_at_end");
    assert!((270..=300).contains(&server), "{:#}", r["time_wait"]);
    assert_eq!(
        n(&r, "/time_wait/server_peak"),
        server,
        "{:#}",
        r["time_wait"]
    );
    assert_eq!(n(&r, "/time_wait/client_peak"), 0, "{:#}", r["time_wait"]);
    let ss = |side: &str| {
        let out = Command::new("ss")
            .args(["-tanH", "state", "time-wait", side, &target])
            .output()
            .expect("ss (iproute2) is needed");
        common::assert_ok(&out);
        String::from_utf8_lossy(&out.stdout).lines().count() as u64
    };
    assert_eq!((ss("src"), ss("dst")), (server, 0));
    // --source-ips is IPv4 only: a clear usage error, not a failed run.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--kernel", "--kernel-target", &target])
        .args(["--source-ips", "127.0.0.2-127.0.0.3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IPv4 only"));
}
