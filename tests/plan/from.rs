//! `plan --from`: the model calibrated on a recorded observation, its
//! headroom worst first.

use std::time::Duration;

use teardown::observe::report::Report;
use teardown::plan::bounds::{Bound, Reuse};
use teardown::plan::from::FromPlan;
use teardown::plan::from_report;
use teardown::plan::from_retries::Source;
use teardown::plan::model::MODELLED;
use teardown_engine::config::Config;

use super::{close, teardown};

/// An observation recorded under tests/fixtures/observe/, read back through its JSON
/// as `plan --from` reads it.
fn observed(name: &str) -> teardown::observe::report::Report {
    use teardown::observe::{recording::Recording, report::Report};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/observe")
        .join(name);
    let r = Report::new(&Recording::load(&dir).expect("fixture"), None).expect("report");
    Report::from_json(&serde_json::to_string(&r).unwrap()).expect("reads back")
}

fn from_plan(name: &str) -> (teardown::observe::report::Report, FromPlan) {
    let r = observed(name);
    let p = FromPlan::new(&r, std::time::Duration::from_millis(10));
    (r, p)
}

/// 40 server closes/s against 16 buckets, both ends in one namespace: the buckets
/// are already past their limit (16 / 2,400 of today's rate), the model holds the
/// observed 16, and the first second from empty skips 40 - 16 = 24, as observed.
#[test]
fn from_overflow_has_tw_bucket_headroom_below_one() {
    let (r, p) = from_plan("overflow");
    assert!(
        (p.cal.close_rate - 40.0).abs() < 1.0,
        "{}",
        p.cal.close_rate
    );
    assert_eq!(p.cal.server_share, 1.0);
    assert!(p.cal.server_role && p.cal.client_role);
    let h = p.headroom_tw_buckets().expect("reachable");
    assert!(h < 1.0, "{h}");
    assert!(close(h, 16.0 / (p.cal.close_rate * 60.0), 0.01), "{h}");
    let b = p.buckets(1.0);
    assert_eq!(b.binds, Bound::Buckets);
    assert_eq!(p.populations(1.0).time_wait, r.time_wait.total as f64);
    // One client address towards one listener: 14,116 even-port tuples, so the
    // transient skips 1 - 16/14,116 once the 16 are full.
    assert_eq!(p.cal.server_pools, 1);
    let t = b.transient.expect("buckets bind");
    let skipped = t.skipped_in(r.interval_secs);
    let seen = r.counters["TcpExt.TCPTimeWaitOverflow"] as f64;
    assert!(close(skipped, seen, 0.10), "{skipped} vs {seen}");
    assert_eq!(p.limits()[0].0, "tw_buckets");
}

/// 64 client closes/s towards 127.0.0.1:8080 with a 64-port range and
/// tcp_tw_reuse 0: that destination's ports are the binding limit, far below 1.
#[test]
fn from_ports_exhausted_names_the_destination() {
    let (r, p) = from_plan("ports-exhausted");
    assert_eq!(p.cal.server_share, 0.0);
    let d = &p.destinations[0];
    assert_eq!(d.destination, "127.0.0.1:8080");
    assert_eq!(d.reuse, Reuse::Off);
    assert_eq!(d.usable_ports, 32.0);
    let h = d.headroom.expect("reachable");
    assert!(h <= 1.0, "{h}");
    // 32 even ports / (64 closes/s x ~60 s held).
    assert!(close(h, 32.0 / (64.0 * 60.0), 0.02), "{h}");
    assert_eq!(p.limits()[0].0, "ports.127.0.0.1:8080");
    // TIME-WAIT is bounded by the range, not 64 x 60 = 3,840.
    let b = p.buckets(1.0);
    assert_eq!(b.binds, Bound::Tuples);
    assert_eq!(b.time_wait, 64.0);
    assert_eq!(p.populations(1.0).time_wait, r.time_wait.total as f64);
    assert_eq!(p.headroom_tw_buckets(), None);
}

/// The CLI end to end: observe a fixture into JSON, plan from it.
#[test]
fn plan_from_cli_reports_headroom_worst_first() {
    let dir = tempfile::tempdir().unwrap();
    let obs = dir.path().join("observe.json");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/observe/ports-exhausted"
    );
    let out = teardown(&[
        "observe",
        "--replay",
        fixture,
        "--json",
        obs.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = teardown(&[
        "plan",
        "--from",
        obs.to_str().unwrap(),
        "--growth",
        "2",
        "--json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let h = &v["headroom"];
    assert_eq!(h["binding"], "ports.127.0.0.1:8080");
    assert!(h["ports"]["127.0.0.1:8080"].as_f64().unwrap() <= 1.0);
    assert!(h["tw_buckets"].is_null());
    assert_eq!(h["order"][0]["limit"], "ports.127.0.0.1:8080");
    assert_eq!(v["tw_buckets"]["binds"], "tuples");
    assert_eq!(v["populations"]["time_wait"]["observed"], 64.0);
    assert_eq!(v["memory"]["growth"], 2.0);
    // Recorded before the retry sysctls were read: Linux's, and said so.
    let c = &v["calibration"];
    assert_eq!(c["synack_retries"], Config::default().synack_retries);
    for key in [
        "syn_retries",
        "syn_linear_timeouts",
        "synack_retries",
        "retries2",
    ] {
        let source = c[format!("{key}_source")].as_str().unwrap();
        assert!(source.starts_with("Linux's default"), "{key}: {source}");
    }
    assert!(v["memory"]["linux_bytes"].as_f64().unwrap() > 64.0 * 256.0);
    let text = teardown(&["plan", "--from", obs.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ports.127.0.0.1:8080"), "{text}");
    assert!(
        text.contains("tcp_retries2 15 (Linux's defaults, not in the observation)\n"),
        "{text}"
    );
    // Not an observation, and a meaningless growth: one line, no panic.
    for args in [
        &["plan", "--from", fixture][..],
        &["plan", "--from", obs.to_str().unwrap(), "--growth", "0"],
        &["plan", "--growth", "2"],
    ] {
        let out = teardown(args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("teardown: ") || err.starts_with("error:"),
            "{args:?}: {err}"
        );
    }
}

/// `tcp_max_orphans` is host-wide, so a namespace's recording lacks it and
/// Linux's default stands in; its headroom is the limit over the modelled
/// orphans (FIN-WAIT-1, CLOSING, LAST-ACK), which grow with the close rate.
#[test]
fn orphan_headroom_is_the_limit_over_the_modelled_orphans() {
    let mut r = observed("overflow");
    assert_eq!(r.sysctl.tcp_max_orphans, None);
    let rtt = std::time::Duration::from_millis(10);
    let p = FromPlan::new(&r, rtt);
    assert_eq!(p.cal.host.max_orphans, 131_072);
    let pop = p.populations(1.0);
    let orphans = pop.fin_wait_1 + pop.closing + pop.last_ack;
    assert!(orphans > 0.0, "{pop:?}");
    let h = p.headroom_orphans().expect("reachable");
    assert!(close(h, 131_072.0 / orphans, 1e-9), "{h}");
    // Read from the host, the limit is the host's.
    r.sysctl.tcp_max_orphans = Some(64);
    let p = FromPlan::new(&r, rtt);
    let h = p.headroom_orphans().expect("reachable");
    assert!(close(h, 64.0 / orphans, 1e-9), "{h}");
    assert!(p
        .limits()
        .iter()
        .any(|(n, l)| n == "orphans" && *l == Some(h)));
}

/// A host whose `tcp_fin_timeout` passes 60 s holds an orphan's FIN-WAIT-2
/// as a full socket for the excess: those count against `tcp_max_orphans`
/// and take no bucket, where at 60 s every one is a mini-socket.
#[test]
fn a_fin_timeout_past_sixty_seconds_moves_fin_wait_2_from_the_buckets_to_the_orphans() {
    let mut r = observed("overflow");
    r.rates.retrans_ratio = Some(0.05);
    let rtt = std::time::Duration::from_millis(10);
    let at_60 = FromPlan::new(&r, rtt);
    r.sysctl.tcp_fin_timeout = 90;
    let at_90 = FromPlan::new(&r, rtt);
    // Under loss some FIN-WAIT-2 wait for the peer's retransmitted FIN: a
    // few RTOs, well inside the full socket's 30 s.
    let fw2 = at_60.buckets(1.0).orphan_fin_wait_2;
    assert!(fw2 > 0.0, "{fw2}");
    assert!(
        at_90.buckets(1.0).orphan_fin_wait_2 < 0.01 * fw2,
        "{} of {fw2}",
        at_90.buckets(1.0).orphan_fin_wait_2
    );
    let pop = at_60.populations(1.0);
    let orphans = pop.fin_wait_1 + pop.closing + pop.last_ack;
    let h = at_90.headroom_orphans().expect("reachable");
    assert!(close(h, 131_072.0 / (orphans + fw2), 1e-3), "{h}");
    // This fixture's buckets overflow: the mini-sockets keep their share of
    // them, the full sockets all stay, and are priced as full sockets.
    let kept = at_60.populations(1.0).fin_wait_2 / fw2;
    assert!(kept < 0.99, "{kept}");
    let held = at_90.populations(1.0).fin_wait_2;
    assert!(close(held, at_90.full_fin_wait_2(1.0), 1e-2), "{held}");
    // Those hold no tw_sock_TCP: only TIME-WAIT does.
    let slab = teardown::plan::memory::Slab::defaults();
    let time_wait = at_90.populations(1.0).time_wait * slab.tw_sock_bytes;
    assert!(close(at_90.tw_sock_bytes(&slab), time_wait, 1e-2));
    let with_fw2 = time_wait + held * slab.tw_sock_bytes;
    assert!(at_90.tw_sock_bytes(&slab) < with_fw2 - 0.5 * held * slab.tw_sock_bytes);
}

/// `observed("ports-exhausted")` with this much loss (the handshake then
/// retransmits) and these retry sysctls: `tcp_syn_retries`,
/// `tcp_syn_linear_timeouts`, `tcp_synack_retries`, `tcp_retries2`.
fn tuned(loss: f64, retries: [Option<u8>; 4]) -> Report {
    let mut r = observed("ports-exhausted");
    r.rates.retrans_ratio = Some(loss);
    let s = &mut r.sysctl;
    [
        s.tcp_syn_retries,
        s.tcp_syn_linear_timeouts,
        s.tcp_synack_retries,
        s.tcp_retries2,
    ] = retries;
    r
}

fn host_retries(p: &FromPlan) -> [u8; 4] {
    let h = &p.cal.host;
    [
        h.syn_retries,
        h.syn_linear_timeouts,
        h.synack_retries,
        h.retries2,
    ]
}

const RTT: Duration = Duration::from_millis(10);

/// The fixtures predate the retry sysctls' reading: Linux's defaults, and
/// every one says so.
#[test]
fn observations_without_retry_sysctls_take_linux_defaults() {
    let (r, p) = from_plan("overflow");
    assert_eq!(r.sysctl.tcp_synack_retries, None);
    let linux = Config::default();
    assert_eq!(
        host_retries(&p),
        [
            linux.syn_retries,
            linux.syn_linear_timeouts,
            linux.synack_retries,
            linux.retries2
        ]
    );
    assert!(
        p.cal.retries.iter().all(|t| t.source == Source::Default),
        "{:?}",
        p.cal.retries
    );
}

/// A host tuned against SYN floods (`tcp_synack_retries` 2) with more linear
/// SYNs than the planner enumerates: the sysctls reach the model, the
/// linear timeouts clamped to 8 (modelled exactly as 8), not refused.
#[test]
fn retry_sysctls_calibrate_the_handshake() {
    let p = FromPlan::new(&tuned(0.3, [Some(3), Some(12), Some(2), Some(8)]), RTT);
    assert_eq!(host_retries(&p), [3, 8, 2, 8]);
    let sources = p.cal.retries.map(|t| t.source);
    assert_eq!(
        sources,
        [
            Source::Sysctl,
            Source::Clamped(12),
            Source::Sysctl,
            Source::Sysctl
        ]
    );
    let note = p.cal.retries[1].describe();
    assert!(note.contains("12") && note.ends_with("8 used"), "{note}");
    let eight = FromPlan::new(&tuned(0.3, [Some(3), Some(8), Some(2), Some(8)]), RTT);
    assert_eq!(host_retries(&eight), host_retries(&p));
    assert_eq!(eight.cal.retries[1].source, Source::Sysctl);
    for st in MODELLED {
        let (a, b) = (p.populations(1.0).get(st), eight.populations(1.0).get(st));
        assert_eq!(a, b, "{st}");
    }
    // The server drops a request after two SYN-ACK retransmissions, not
    // five: fewer SYN-RECEIVED (docs/plan-from.md, "Limits"). Not many
    // fewer: while the client's linear SYNs keep coming, each restarts the
    // request's timer, which then seldom fires.
    let linux = Config::default();
    let five = tuned(0.3, [Some(3), Some(8), Some(linux.synack_retries), Some(8)]);
    let five = FromPlan::new(&five, RTT);
    let syn_received = |p: &FromPlan| p.populations(1.0).syn_received;
    assert!(
        syn_received(&eight) < 0.97 * syn_received(&five),
        "{} vs {}",
        syn_received(&eight),
        syn_received(&five)
    );
}

/// `tcp_synack_retries` above the 6 the planner enumerates (each retry
/// doubles the request's life) is clamped to 6, not refused, and says so.
#[test]
fn synack_retries_past_six_are_clamped() {
    let p = FromPlan::new(&tuned(0.3, [Some(3), Some(8), Some(9), Some(8)]), RTT);
    assert_eq!(host_retries(&p), [3, 8, 6, 8]);
    let synack = p.cal.retries[2];
    assert_eq!(synack.source, Source::Clamped(9));
    assert_eq!(
        synack.describe(),
        "sysctl 9, outside the 0..=6 plan models: 6 used"
    );
}

/// `tcp_syn_retries` without `tcp_syn_linear_timeouts`: a kernel before 6.5,
/// whose SYN RTO doubles from the first retransmission. Under loss its
/// connect()s wait longer in SYN-SENT than 6.5's four linear SYNs do.
#[test]
fn a_kernel_before_6_5_doubles_its_syns() {
    let linux = Config::default();
    let [syn, synack, retries2] = [linux.syn_retries, linux.synack_retries, linux.retries2];
    let old = FromPlan::new(
        &tuned(0.3, [Some(syn), None, Some(synack), Some(retries2)]),
        RTT,
    );
    assert_eq!(old.cal.host.syn_linear_timeouts, 0);
    assert_eq!(old.cal.retries[1].source, Source::BeforeLinux65);
    let new = tuned(0.3, [Some(syn), Some(4), Some(synack), Some(retries2)]);
    let new = FromPlan::new(&new, RTT);
    let syn_sent = |p: &FromPlan| p.populations(1.0).syn_sent;
    assert!(
        syn_sent(&old) > 1.2 * syn_sent(&new),
        "{} vs {}",
        syn_sent(&old),
        syn_sent(&new)
    );
}

/// Values no Linux takes (a hand-made observation): `tcp_syn_retries` is
/// kept to Linux's 1..=127, the linear timeouts to 8 and
/// `tcp_synack_retries` to 6, each said so; nothing fails or panics.
#[test]
fn odd_retry_values_are_clamped_not_refused() {
    for (given, used) in [([0, 0, 0, 0], [1, 0, 0, 0]), ([255; 4], [127, 8, 6, 255])] {
        let r = tuned(0.3, given.map(Some));
        let p = FromPlan::new(&r, RTT);
        assert_eq!(host_retries(&p), used, "{given:?}");
        assert!(p.cal.host.validate().is_ok());
        let pop = p.populations(1.0);
        assert!(
            MODELLED.iter().all(|&st| pop.get(st).is_finite()),
            "{pop:?}"
        );
        let text = serde_json::to_string(&r).unwrap();
        let (human, json) = from_report::run(&text, RTT, Duration::from_secs(120), 1.0).unwrap();
        let note = format!("sysctl {}, outside the 1..=127 plan models", given[0]);
        assert!(human.contains(&note), "{human}");
        assert_eq!(
            json["calibration"]["syn_retries_source"],
            format!("{note}: {} used", used[0])
        );
    }
}

/// The CLI end to end on a tuned host: a recording with the retry sysctls,
/// observed into JSON and planned from; the text and the JSON give the
/// values used and the clamp.
#[test]
fn plan_from_cli_reports_the_retry_sysctls() {
    use teardown::observe::recording::Recording;
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/observe/ports-exhausted"
    );
    let mut rec = Recording::load(std::path::Path::new(fixture)).unwrap();
    for (name, v) in [
        ("tcp_syn_retries", "6"),
        ("tcp_syn_linear_timeouts", "12"),
        ("tcp_synack_retries", "2"),
        ("tcp_retries2", "15"),
    ] {
        rec.now.sysctl.insert(name.into(), format!("{v}\n"));
    }
    let recorded = dir.path().join("tuned");
    rec.save(&recorded).unwrap();
    let obs = dir.path().join("observe.json");
    let obs = obs.to_str().unwrap();
    let out = teardown(&[
        "observe",
        "--replay",
        recorded.to_str().unwrap(),
        "--json",
        obs,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("tcp_synack_retries 2"), "{text}");
    let out = teardown(&["plan", "--from", obs]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(
            "tcp_syn_retries 6, tcp_syn_linear_timeouts 8 (sysctl 12, outside the 0..=8 plan models: 8 used), tcp_synack_retries 2, tcp_retries2 15\n"
        ),
        "{text}"
    );
    let out = teardown(&["plan", "--from", obs, "--json", "-"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &v["calibration"];
    assert_eq!(
        (&c["synack_retries"], &c["synack_retries_source"]),
        (&2.into(), &"sysctl".into())
    );
    assert_eq!(c["syn_linear_timeouts"], 8);
    assert_eq!(
        c["syn_linear_timeouts_source"],
        "sysctl 12, outside the 0..=8 plan models: 8 used"
    );
}

/// `plan --from --app-timeout` reaches the model: at 30 % loss with no
/// SYN-ACK retries, a shorter read timeout closes sooner the clients that
/// dropped requests strand ESTABLISHED. The JSON says which it used.
#[test]
fn the_app_timeout_reaches_the_model() {
    let r = tuned(0.3, [Some(3), Some(8), Some(0), Some(8)]);
    let established = |secs: u64| {
        let p = FromPlan::with_app_timeout(&r, RTT, Duration::from_secs(secs));
        let pr = p.server_closes.or(p.client_closes).expect("closes");
        pr.clients.established
    };
    let (short, default) = (established(30), established(120));
    assert!(short < 0.9 * default, "{short} vs {default}");
    let text = serde_json::to_string(&r).expect("serialises");
    let (_, json) = from_report::run(&text, RTT, Duration::from_secs(30), 1.0).expect("plans");
    assert_eq!(json["calibration"]["app_timeout_s"], 30.0);
}
