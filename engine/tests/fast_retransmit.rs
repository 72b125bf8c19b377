//! Fast retransmit on duplicate ACKs, as Linux 6.18 does it for a peer
//! without SACK (`tcp_add_reno_sack`, `tcp_limit_reno_sacked`,
//! `tcp_check_reno_reordering`, `tcp_newreno_mark_lost`). Each test is a
//! packet trace; the same traces pass on Linux as tests/scripts/*fast-retransmit*.pkt.

use teardown_engine::{Config, Flags, Host, Segment, Time, Tuple};

fn tuple() -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000)
}

fn from_peer(flags: Flags, seq: u32, ack: u32) -> Segment {
    Segment::new(&tuple().reversed(), flags, seq, ack, 0, 65_535)
}

fn ms(n: u64) -> Time {
    Time::from_millis(n)
}

/// A passive open with a 100 ms RTT (so a 300 ms RTO); the peer's ISS is 0.
/// Returns the host and our ISS + 1.
fn established() -> (Host, u32) {
    let mut host = Host::new(Config {
        timestamps: false,
        ..Config::default()
    });
    host.listen(80);
    host.handle(ms(0), &from_peer(Flags::SYN, 0, 0));
    let synack = host.transmits().next().expect("SYN-ACK");
    host.handle(ms(100), &from_peer(Flags::ACK, 1, synack.seq + 1));
    (host, synack.seq + 1)
}

/// The host's next segments, as (flags, relative seq, len).
fn sent(host: &mut Host, iss: u32) -> Vec<(Flags, u32, u32)> {
    host.transmits()
        .map(|s| (s.flags, s.seq.wrapping_sub(iss), s.len))
        .collect()
}

/// `writes` segments of 100 bytes and our FIN, all at `at`, each sent
/// before the next call (so the FIN goes alone); returns how many went.
fn send_all(host: &mut Host, at: Time, writes: u32) -> usize {
    let mut n = 0;
    for _ in 0..writes {
        host.send(at, tuple(), 100).expect("established");
        n += host.transmits().count();
    }
    host.shutdown(at, tuple()).expect("established");
    n + host.transmits().count()
}

#[test]
fn a_duplicate_with_one_segment_out_lowers_the_threshold_to_one() {
    // Differential seed 1004.
    let (mut host, iss) = established();
    host.send(ms(300), tuple(), 100).unwrap();
    assert_eq!(sent(&mut host, iss), [(Flags::ACK | Flags::PSH, 0, 100)]);
    host.handle(ms(350), &from_peer(Flags::ACK, 1, iss));
    assert!(sent(&mut host, iss).is_empty());
    assert_eq!(send_all(&mut host, ms(350), 1), 2);
    host.handle(ms(360), &from_peer(Flags::ACK, 1, iss));
    // Everything again, FIN included, 240 ms before the RTO.
    let fp = Flags::FIN | Flags::ACK | Flags::PSH;
    assert_eq!(sent(&mut host, iss), [(fp, 0, 200)]);
    assert_eq!(host.stats().fast_retransmits, 1);
    assert_eq!(host.stats().retransmits, 1);
}

#[test]
fn the_third_duplicate_retransmits_with_four_segments_out() {
    let (mut host, iss) = established();
    assert_eq!(send_all(&mut host, ms(100), 3), 4);
    for (i, t) in [150, 160].into_iter().enumerate() {
        host.handle(ms(t), &from_peer(Flags::ACK, 1, iss));
        assert!(sent(&mut host, iss).is_empty(), "duplicate {}", i + 1);
    }
    host.handle(ms(170), &from_peer(Flags::ACK, 1, iss));
    let fp = Flags::FIN | Flags::ACK | Flags::PSH;
    assert_eq!(sent(&mut host, iss), [(fp, 0, 300)]);
    // In fast recovery further duplicates retransmit nothing more.
    host.handle(ms(180), &from_peer(Flags::ACK, 1, iss));
    assert!(sent(&mut host, iss).is_empty());
    assert_eq!(host.stats().fast_retransmits, 1);
}

#[test]
fn three_duplicates_with_three_out_are_reordering_and_the_rto_resends() {
    let (mut host, iss) = established();
    assert_eq!(send_all(&mut host, ms(100), 2), 3);
    for t in [150, 160, 170, 180] {
        host.handle(ms(t), &from_peer(Flags::ACK, 1, iss));
        assert!(sent(&mut host, iss).is_empty(), "duplicate at {t} ms");
    }
    assert_eq!(host.stats().fast_retransmits, 0);
    let rto = host.poll_timeout().expect("the RTO");
    host.handle_timeout(ms(400));
    assert!(rto <= ms(400));
    let fp = Flags::FIN | Flags::ACK | Flags::PSH;
    assert_eq!(sent(&mut host, iss), [(fp, 0, 200)]);
    assert_eq!(host.stats().retransmits, 1);
}

#[test]
fn a_segment_with_data_or_fin_is_no_duplicate() {
    let (mut host, iss) = established();
    assert_eq!(send_all(&mut host, ms(100), 3), 4);
    host.handle(ms(150), &from_peer(Flags::ACK, 1, iss));
    host.handle(ms(160), &from_peer(Flags::ACK, 1, iss));
    // The peer's data acknowledges nothing new but is no duplicate ACK (a
    // third one would retransmit)...
    let data = Segment {
        len: 10,
        ..from_peer(Flags::ACK | Flags::PSH, 1, iss)
    };
    host.handle(ms(165), &data);
    assert_eq!(host.stats().fast_retransmits, 0);
    // ...nor is its FIN.
    host.handle(ms(170), &from_peer(Flags::FIN | Flags::ACK, 11, iss));
    assert_eq!(host.stats().fast_retransmits, 0);
}
