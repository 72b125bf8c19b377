//! The replay ends where the recorded host ended, and a recording that is
//! not the host's input is caught.

use super::*;
use crate::sim::{AttackKind, SimArgs};

/// The one server host of a one-table run.
fn record_one(cfg: &SimConfig) -> anyhow::Result<Recording> {
    let mut recs = record_servers(cfg)?;
    ensure!(recs.len() == 1, "{} hosts", recs.len());
    Ok(recs.remove(0))
}

fn config(extra: impl FnOnce(&mut SimArgs)) -> SimConfig {
    let mut args = SimArgs {
        connections: 3_000,
        concurrency: 1_000,
        loss: 0.05,
        shards: 1,
        threads: Some(1),
        quiet: true,
        ..SimArgs::default()
    };
    extra(&mut args);
    SimConfig::from_args(&args).unwrap()
}

#[test]
fn a_replay_ends_as_the_recorded_host_did() {
    let rec = record_one(&config(|_| {})).unwrap();
    assert_eq!(rec.completed, 3_000);
    // Segments, timer instants, the server's send_close, and drains.
    let segments = rec
        .inputs
        .iter()
        .filter(|i| matches!(i.call, Call::Segment(_)))
        .count() as u64;
    assert_eq!(segments, rec.stats.segments_received);
    assert!(rec.inputs.iter().any(|i| i.call == Call::Timers));
    assert!(rec
        .inputs
        .iter()
        .any(|i| matches!(i.call, Call::SendClose(..))));
    assert!(rec
        .inputs
        .iter()
        .all(|i| i.drains <= DRAIN_EVENTS | DRAIN_TRANSMITS));
    // Loss retransmits and coalesced ACKs: counters a wrong drain would move.
    assert!(rec.stats.retransmits > 0 && rec.stats.acks_coalesced > 0);
    let r = replay(&rec).unwrap();
    assert_eq!(r.segments, segments);
    assert!(r.peak_entries >= 1_000, "{}", r.peak_entries);
}

#[test]
fn runaways_and_attacks_replay_too() {
    let cfg = config(|a| {
        a.runaway_client = 0.05;
        a.runaway_server = 0.05;
        a.attack = vec![AttackKind::InwindowRst, AttackKind::SynTimewait];
    });
    let rec = record_one(&cfg).unwrap();
    assert!(rec.inputs.iter().any(|i| matches!(i.call, Call::Forget(_))));
    assert!(rec.stats.rst_received > 0, "{:?}", rec.stats);
    replay(&rec).unwrap();
}

#[test]
fn a_replay_that_is_not_the_hosts_input_is_caught() {
    let mut rec = record_one(&config(|_| {})).unwrap();
    // Drains moved: a pure ACK no longer gives way to the segment after it.
    for i in &mut rec.inputs {
        i.drains = DRAIN_EVENTS | DRAIN_TRANSMITS;
    }
    let err = replay(&rec).unwrap_err().to_string();
    assert!(err.contains("counters differ"), "{err}");
    let mut rec = record_one(&config(|_| {})).unwrap();
    let at = rec
        .inputs
        .iter()
        .position(|i| matches!(i.call, Call::SendClose(..)))
        .unwrap();
    rec.inputs.remove(at);
    assert!(replay(&rec).is_err());
}

/// One shard at a time: each shard's server host recorded, in shard order,
/// each replay ending as its host did, the table a quarter of the run's.
#[test]
fn sequential_shards_record_each_server_host() {
    let cfg = config(|a| {
        a.shards = 4;
        a.sequential_shards = true;
    });
    let recs = record_servers(&cfg).unwrap();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs.iter().map(|r| r.completed).sum::<u64>(), 3_000);
    // Each shard is a run of its own, on its own seed.
    assert_ne!(recs[0].inputs, recs[1].inputs);
    let all = replay_all(&recs).unwrap();
    let received: u64 = recs.iter().map(|r| r.stats.segments_received).sum();
    assert_eq!(all.segments, received);
    // A shard's table: its 750 connections at most (250 live at once and
    // the server's TIME-WAITs), never the run's 3,000.
    assert!(
        (250..=750).contains(&all.peak_entries),
        "{}",
        all.peak_entries
    );
    // A shard's recording that is not its host's input is caught, by shard.
    let mut recs = recs;
    recs[2]
        .inputs
        .retain(|i| !matches!(i.call, Call::SendClose(..)));
    let err = format!("{:#}", replay_all(&recs).unwrap_err());
    assert!(err.starts_with("shard 2"), "{err}");
}

#[test]
fn recording_needs_one_host_at_a_time_and_no_pcap_sample() {
    let err = record_servers(&config(|a| a.shards = 4)).unwrap_err();
    assert!(err.to_string().contains("--shards 1"), "{err}");
    assert!(err.to_string().contains("--sequential-shards"), "{err}");
    let err = record_one(&config(|a| {
        a.pcap = Some("x.pcap".into());
        a.pcap_sample = 10;
    }))
    .unwrap_err();
    assert!(err.to_string().contains("--pcap-sample"), "{err}");
}
