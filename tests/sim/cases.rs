//! Every seed case exercised and every connection accounted for, under loss,
//! runaway peers and port reuse.

use std::time::Duration;

use teardown::sim::{CloseMode, SimArgs};

use super::{args, run};

#[test]
fn lossy_run_with_runaways_exercises_every_seed_case_and_leaks_nothing() {
    let server_first = run(&SimArgs {
        loss: 0.05,
        runaway_client: 0.05,
        ..args(40_000)
    });
    assert_eq!(server_first.leaked, 0);
    assert_eq!(server_first.completed, 40_000);
    let c = &server_first.cases;
    assert!(c.case1_first_fin_lost > 0, "{c:?}");
    assert!(c.case2_ack_of_fin_lost > 0, "{c:?}");
    assert!(c.case3_passive_fin_lost > 0, "{c:?}");
    assert!(c.case4_final_ack_lost > 0, "{c:?}");
    // Runaway passive closers leave the server in FIN-WAIT-2 (case 5).
    assert!(c.case5_fin_wait_2_timeout > 0, "{c:?}");
    assert!(c.vanished_ends > 0);
    assert!(server_first.peak["time_wait"] > 0);
    assert!(server_first.segments.retransmitted > 0);
    // Passive close is an RTT plus retransmissions; active close includes TIME-WAIT.
    assert!(server_first.latency_ms.active_close.p99 >= 60_000.0);
    assert!(server_first.latency_ms.passive_close.p50 < 1_000.0);

    // Runaway active closers leave the server in LAST-ACK (case 6); reused ports
    // bring new SYNs that end it by RST.
    let client_first = run(&SimArgs {
        close: CloseMode::Client,
        runaway_client: 0.3,
        client_ips: Some(1),
        port_range: "40000-41999".into(),
        concurrency: 500,
        shards: 1,
        ..args(20_000)
    });
    assert_eq!(client_first.leaked, 0);
    assert!(
        client_first.cases.case6_last_ack_reset > 0,
        "{:?}",
        client_first.cases
    );
    assert!(client_first.peak["last_ack"] > 0);
    assert!(client_first.peak_clients["time_wait"] > 0);
}

#[test]
fn port_reuse_sends_syns_into_time_wait() {
    let r = run(&SimArgs {
        loss: 0.0,
        client_ips: Some(1),
        port_range: "40000-40999".into(),
        concurrency: 200,
        shards: 1,
        ..args(10_000)
    });
    assert_eq!(r.leaked, 0);
    assert!(r.cases.syn_into_time_wait > 0);
}

/// `--close-delay`: the clients' applications close 2 s after the server's
/// FIN. The server's orphan waits for their FIN; with `tcp_fin_timeout` at
/// 1 s it is gone first, each late FIN draws an RST and no TIME-WAIT
/// follows, as on Linux. At 0.5 s every close reaches TIME-WAIT.
#[test]
fn a_slow_passive_closer_outlasts_the_orphans_fin_timeout() {
    let at = |delay_ms: u64| {
        let mut a = SimArgs {
            loss: 0.0,
            rate: Some(1000.0),
            close_delay: Duration::from_millis(delay_ms),
            ..args(5_000)
        };
        a.host.fin_timeout = Some(Duration::from_secs(1));
        run(&a)
    };
    let late = at(2_000);
    assert_eq!(late.leaked, 0);
    assert_eq!(late.closed_by["FinWait2Timeout"], 5_000);
    assert_eq!(late.closed_by["Reset"], 5_000);
    assert_eq!(late.peak["time_wait"], 0);
    // The clients hold CLOSE-WAIT for the delay: 1,000 a second for 2 s.
    assert!(
        (1_900..=2_000).contains(&late.peak_clients["close_wait"]),
        "{:?}",
        late.peak_clients
    );
    let early = at(500);
    assert_eq!(early.closed_by["FinWait2Timeout"], 0);
    assert_eq!(early.closed_by["TimeWaitExpired"], 5_000);
}

/// rfc9293's 240 s TIME-WAIT, timestamps off, one client address reusing
/// its 4-tuples: each reconnect's SYN lands on the server's TIME-WAIT and is
/// taken because its ISN is beyond the old rcv_nxt. On Linux's 64 ns ISN
/// clock (a wrap every 274 s) a SYN more than 137 s after its predecessor's
/// looked older, was re-ACKed and the connect gave up (292 of 3,000); the
/// profile keeps the RFC's 4 µs clock.
#[test]
fn rfc9293_reconnects_into_its_long_time_wait() {
    let mut a = SimArgs {
        loss: 0.0,
        rate: Some(3.0),
        client_ips: Some(1),
        port_range: "40000-40999".into(),
        shards: 1,
        ..args(3_000)
    };
    a.host.profile = teardown_engine::config::Profile::Rfc9293;
    let r = run(&a);
    assert_eq!((r.completed, r.leaked), (3_000, 0));
    assert_eq!(r.closed_by["RetriesExhausted"], 0);
    assert_eq!(r.segments.rst, 0);
    assert!(r.closed_by["Reused"] > 0, "{:?}", r.closed_by);
}

/// A delayed close belongs to its incarnation: four ports, the clients close
/// first and their orphans time out at 1 s, long before the servers' 5 s
/// close. A reconnect resets the old CLOSE-WAIT and opens the 4-tuple anew;
/// the old close must not shut the new connection early (it once did, and
/// 12 clients reached TIME-WAIT, which a 5 s delay past a 1 s orphan
/// cannot give).
#[test]
fn a_delayed_close_spares_a_newer_connection_on_its_tuple() {
    let mut a = SimArgs {
        close: CloseMode::Client,
        close_delay: Duration::from_secs(5),
        loss: 0.0,
        rate: Some(0.3),
        client_ips: Some(1),
        port_range: "40000-40003".into(),
        shards: 1,
        ..args(60)
    };
    a.host.fin_timeout = Some(Duration::from_secs(1));
    let r = run(&a);
    assert_eq!(r.leaked, 0);
    assert_eq!(r.closed_by["FinWait2Timeout"], 60, "{:?}", r.closed_by);
    assert_eq!(r.closed_by["TimeWaitExpired"], 0, "{:?}", r.closed_by);
}

/// tcp_max_orphans: with the limit low, close()s past it reset (FIN, then
/// RST) instead of waiting in FIN-WAIT-1 or LAST-ACK, each shard holding its
/// share, and every connection is still accounted for. With Linux's default
/// none reset.
#[test]
fn closes_past_tcp_max_orphans_reset() {
    use teardown::cli::ProfileArgs;
    let limit = 200usize;
    let run_with = |max_orphans: Option<usize>| {
        run(&SimArgs {
            host: ProfileArgs {
                max_orphans,
                ..SimArgs::default().host
            },
            shards: 4,
            ..args(20_000)
        })
    };
    // Each of the 4 shards holds a quarter of the host's limit.
    let a = SimArgs {
        host: ProfileArgs {
            max_orphans: Some(limit),
            ..SimArgs::default().host
        },
        shards: 4,
        ..args(20_000)
    };
    let cfg = teardown::sim::SimConfig::from_args(&a).expect("valid flags");
    assert_eq!(cfg.host.max_orphans, limit / 4);
    let r = run_with(Some(limit));
    assert!(r.orphan_overflow > 0, "no close past the limit");
    assert_eq!(r.closed_by["TooManyOrphans"], r.orphan_overflow);
    assert_eq!(r.leaked, 0);
    assert_eq!(r.completed, 20_000);

    let default = run_with(None);
    assert_eq!(default.orphan_overflow, 0);
    assert_eq!(
        default
            .closed_by
            .get("TooManyOrphans")
            .copied()
            .unwrap_or(0),
        0
    );
}
