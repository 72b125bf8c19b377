//! Tests of the scrape's encoding and the stats table's round trip.

use super::*;
use teardown_engine::Config;

#[test]
fn encodes_and_parses_back() {
    let shared = Shared::new(2, 0.01);
    let host = Host::new(Config::default());
    let mut closed = [0; REASONS];
    closed[1] = 7;
    let io = Io {
        datagrams_received: 5,
        datagrams_malformed: 2,
        ..Io::default()
    };
    shared.publish(0, &host, &closed, &io, 40);
    shared.publish(1, &host, &closed, &io, 10);
    let text = shared.encode();
    let m = parse_text(&text);
    assert_eq!(m["teardown_datagrams_received_total"], 10.0);
    assert_eq!(m["teardown_datagrams_malformed_total"], 4.0);
    assert_eq!(m["teardown_closed_total{reason=\"last_ack_acked\"}"], 14.0);
    assert_eq!(m["teardown_connections{state=\"time_wait\"}"], 0.0);
    assert_eq!(m["teardown_workers"], 2.0);
    assert_eq!(m["teardown_loop_latency_max_seconds"], 40e-6);
    // The maximum resets at each scrape.
    assert_eq!(
        parse_text(&shared.encode())["teardown_loop_latency_max_seconds"],
        0.0
    );
}

#[test]
fn stats_round_trip_through_the_table() {
    let s = Stats {
        segments_sent: 3,
        opened_passive: 9,
        ..Stats::default()
    };
    assert_eq!(stats_from(&stat_values(&s)), s);
    let mut sum = s;
    add_stats(&mut sum, &s);
    assert_eq!(sum.opened_passive, 18);
}

/// Every counter of the engine's `Stats` is in the table, so in `/metrics`
/// and in the reports' sums: one left out would stay 0 through the round
/// trip below.
#[test]
fn every_stats_counter_is_exported() {
    let values: [u64; STATS] = std::array::from_fn(|i| i as u64 + 1);
    let s = stats_from(&values);
    let shown = format!("{s:?}");
    assert!(
        !shown.contains(": 0"),
        "a Stats counter is not in the table: {shown}"
    );
    assert_eq!(shown.matches(": ").count(), STATS);
    let shared = Shared::new(1, 0.0);
    let host = Host::new(Config::default());
    shared.publish(0, &host, &[0; REASONS], &Io::default(), 0);
    let m = parse_text(&shared.encode());
    for (name, _) in STAT_META {
        assert!(m.contains_key(&format!("teardown_{name}_total")), "{name}");
    }
}
