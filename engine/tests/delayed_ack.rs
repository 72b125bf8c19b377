//! The delayed ACK of the peer's FIN (Linux `tcp_fin` puts CLOSE-WAIT in
//! pingpong mode; `tcp_send_delayed_ack`): it waits `ato`, 0 (the next tick)
//! before any data arrived and `TCP_ATO_MIN` (40 ms) after, and rides on
//! anything the host sends meanwhile.

use teardown_engine::{Config, Flags, Host, Segment, State, Time, Tuple};

fn tuple() -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000)
}

fn from_peer(flags: Flags, seq: u32, ack: u32, len: u32) -> Segment {
    Segment::new(&tuple().reversed(), flags, seq, ack, len, 65_535)
}

/// An established connection (peer ISS 1000); with `data`, 100 bytes from
/// the peer taken at 10 ms. Returns the host and our next sequence number.
fn established(data: bool) -> (Host, u32) {
    let mut host = Host::new(Config {
        timestamps: false,
        ..Config::default()
    });
    host.listen(80);
    host.handle(Time::ZERO, &from_peer(Flags::SYN, 1_000, 0, 0));
    let synack = host.transmits().next().expect("SYN-ACK");
    host.handle(Time::ZERO, &from_peer(Flags::ACK, 1_001, synack.seq + 1, 0));
    if data {
        let seg = from_peer(Flags::ACK | Flags::PSH, 1_001, synack.seq + 1, 100);
        host.handle(Time::from_millis(10), &seg);
        // The first data is ACKed at once (quick-ACK mode).
        assert_eq!(host.transmits().count(), 1);
    }
    (host, synack.seq + 1)
}

/// When the host ACKs a FIN that arrives at 100 ms and nothing else happens.
fn fin_ack_time(data: bool) -> Time {
    let (mut host, snd) = established(data);
    let fin_seq = 1_001 + if data { 100 } else { 0 };
    host.handle(
        Time::from_millis(100),
        &from_peer(Flags::FIN | Flags::ACK, fin_seq, snd, 0),
    );
    assert_eq!(host.state(&tuple()), State::CloseWait);
    assert_eq!(host.transmits().count(), 0, "the ACK waits");
    loop {
        let t = host.poll_timeout().expect("the delayed-ACK timer");
        host.handle_timeout(t);
        let out: Vec<Segment> = host.transmits().collect();
        if let Some(ack) = out.first() {
            assert_eq!((ack.flags, ack.ack), (Flags::ACK, fin_seq + 1));
            return t;
        }
    }
}

#[test]
fn the_ack_of_a_fin_waits_ato() {
    assert_eq!(fin_ack_time(false), Time::from_millis(101));
    assert_eq!(fin_ack_time(true), Time::from_millis(140));
}

#[test]
fn a_close_within_the_delay_carries_the_ack() {
    let (mut host, snd) = established(true);
    host.handle(
        Time::from_millis(100),
        &from_peer(Flags::FIN | Flags::ACK, 1_101, snd, 0),
    );
    host.close(Time::from_millis(120), tuple()).expect("close");
    let out: Vec<Segment> = host.transmits().collect();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flags, out[0].ack), (Flags::FIN | Flags::ACK, 1_102));
    // The delayed ACK is gone with it: nothing more until the FIN's RTO.
    let next = host.poll_timeout().expect("retransmission timer");
    assert!(next >= Time::from_millis(320), "{next:?}");
}

#[test]
fn another_segment_sends_a_delayed_ack_due_this_tick() {
    let (mut host, snd) = established(false);
    host.handle(
        Time::from_millis(100),
        &from_peer(Flags::FIN | Flags::ACK, 1_001, snd, 0),
    );
    assert_eq!(host.transmits().count(), 0);
    // tcp_send_delayed_ack: "If delack timer is about to expire, send ACK now."
    host.handle(
        Time::from_millis(100),
        &from_peer(Flags::ACK, 1_002, snd, 0),
    );
    let out: Vec<Segment> = host.transmits().collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, 1_002);
}
