//! `plan --from`: the model calibrated on a recorded observation, its
//! headroom worst first.

use teardown::plan::bounds::{Bound, Reuse};
use teardown::plan::from::FromPlan;

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
    assert!(v["memory"]["linux_bytes"].as_f64().unwrap() > 64.0 * 256.0);
    let text = teardown(&["plan", "--from", obs.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("ports.127.0.0.1:8080"), "{text}");
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
