//! Attacks: RFC 5961's odds for blind and in-window RSTs, and the table's
//! limits under a SYN flood.

use teardown::sim::{AttackKind, SimArgs};

use super::{args, run};

#[test]
fn attacks_follow_rfc_5961_odds() {
    let r = run(&SimArgs {
        attack: vec![
            AttackKind::BlindRst,
            AttackKind::InwindowRst,
            AttackKind::FinUnknown,
        ],
        attack_rate: 20_000.0,
        ..args(20_000)
    });
    assert_eq!(r.leaked, 0);
    let blind = &r.attacks["blind-rst"];
    assert!(blind.sent > 0 && blind.on_target > 0);
    // 1 in 2^32 per segment: none of these kill.
    assert_eq!(blind.killed, 0);
    let inwin = &r.attacks["inwindow-rst"];
    // In the window: challenge ACKs (per-connection rate limit permitting), kills
    // only at 1 in 65535.
    assert!(inwin.challenge_acks > 0);
    assert!((inwin.killed as f64) <= inwin.expected_killed * 5.0 + 3.0);
    let unknown = &r.attacks["fin-unknown"];
    assert_eq!(unknown.rst_replies, unknown.sent);
}

/// Bounded memory under a flood: SYNs that reopen TIME-WAIT entries at a high
/// rate fill the table with attacker SYN-RECEIVED entries, but --max-connections
/// and tcp_max_tw_buckets hold; what does not fit is counted, not allocated.
#[test]
fn table_limits_hold_under_a_syn_flood() {
    let shards = 4u32;
    let limit = 2_500usize;
    let tw_limit = 2_000usize;
    let r = run(&SimArgs {
        attack: vec![AttackKind::SynTimewait],
        attack_rate: 2_000.0,
        max_connections: Some(limit),
        host: teardown::cli::ProfileArgs {
            max_tw_buckets: Some(tw_limit),
            ..SimArgs::default().host
        },
        loss: 0.0,
        shards,
        ..args(20_000)
    });
    // Each shard holds its share of both limits: at no sample does the server
    // hold more entries, of all states together, than the connection limit.
    let entries = r
        .series
        .iter()
        .map(|p| p.server.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    assert!(
        entries > 0 && entries <= limit as u64,
        "{entries} entries, limit {limit}"
    );
    assert!(r.peak["time_wait"] <= tw_limit as u64, "{:?}", r.peak);
    assert!(r.syn_dropped > 0, "the flood was never turned away");
    assert!(r.time_wait_overflow > 0);
    assert!(r.attacks["syn-timewait"].killed > 0);
    assert_eq!(r.leaked, 0);
}
