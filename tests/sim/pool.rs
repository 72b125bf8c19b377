//! `--concurrency` is the client application's pool, which refills at
//! close(): the TIME-WAIT a client that closes first leaves behind holds a
//! port, not a place, and piles up until the ports or `tcp_max_tw_buckets`
//! run out, as behind a proxy or a load generator closing its connections.

use teardown::sim::{CloseMode, SimArgs, SimReport};
use teardown_engine::state::State;

use super::{args, run};

/// The most client connections in the states the application holds them in
/// (before its close()) at any one sample: never more than the pool.
fn most_held(r: &SimReport) -> u64 {
    let held = [State::SynSent, State::Established, State::CloseWait];
    r.series
        .iter()
        .map(|p| held.iter().map(|&st| p.client[st as usize]).sum())
        .max()
        .unwrap_or(0)
}

fn clients_close(a: SimArgs) -> SimReport {
    run(&SimArgs {
        close: CloseMode::Client,
        loss: 0.0,
        ..a
    })
}

/// A pool of 200 closing first: each place is free again a round trip
/// after its connect, so 20,000 connections take seconds, and their
/// TIME-WAIT, 60 s each, outnumbers the pool a hundredfold. (When the
/// place was held to CLOSED, the run took 20,000 / 200 TIME-WAITs in turn:
/// 6,000 s, with never more than 200 of them.)
#[test]
fn time_wait_piles_up_past_the_pool_that_left_it() {
    let r = clients_close(SimArgs {
        concurrency: 200,
        ..args(20_000)
    });
    assert_eq!((r.completed, r.leaked), (20_000, 0));
    assert!(
        r.peak_clients["time_wait"] >= 19_000,
        "{:?}",
        r.peak_clients
    );
    // Every connection went through TIME-WAIT in one lifetime, not in turns.
    assert!(r.sim_seconds < 90.0, "{}", r.sim_seconds);
    assert_eq!(r.closed_by["TimeWaitExpired"], 20_000, "{:?}", r.closed_by);
    // The pool itself never grew: no more connections held than it has.
    assert!(most_held(&r) <= 200, "{}", most_held(&r));
    assert_eq!(r.connect.eaddrnotavail, 0);
}

/// The same pool behind one client address with 1,000 ports: TIME-WAIT
/// holds every port a minute, so connect() meets EADDRNOTAVAIL and the
/// 3,000 connections go in waves a TIME-WAIT apart, never more than the
/// ports in TIME-WAIT at once: the limit an operator of such a client hits
/// first.
#[test]
fn a_pool_that_outruns_its_ports_meets_eaddrnotavail() {
    let r = clients_close(SimArgs {
        concurrency: 50,
        client_ips: Some(1),
        port_range: "40000-40999".into(),
        ..args(3_000)
    });
    assert_eq!((r.completed, r.leaked), (3_000, 0));
    assert!(r.connect.eaddrnotavail > 0, "{:?}", r.connect);
    assert!(
        (900..=1_000).contains(&r.peak_clients["time_wait"]),
        "{:?}",
        r.peak_clients
    );
    // Three waves of 1,000 ports: the third opens two TIME-WAITs in.
    assert!(r.sim_seconds >= 180.0, "{}", r.sim_seconds);
    assert!(most_held(&r) <= 50, "{}", most_held(&r));
}
