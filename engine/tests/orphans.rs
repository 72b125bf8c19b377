//! `tcp_max_orphans`: orphans are the closed connections that still hold a
//! full socket (FIN-WAIT-1, CLOSING, LAST-ACK), counted as Linux >= 5.16
//! reads them, once every 100 ms (`tcp_orphan_cache`). A close() while that
//! count is past the limit sends its FIN and then an RST, and the connection
//! is gone at once (`tcp_close` -> `tcp_check_oom`, TCPAbortOnMemory); so
//! does an orphan at its retransmission timeout (`tcp_out_of_resources`).
//! An orphan whose FIN is acknowledged becomes a FIN-WAIT-2 mini-socket and
//! no longer counts (past 60 s of FIN-WAIT-2, only after its first part:
//! `fin_wait_2.rs`); a shutdown() makes no orphan until the close() after it.

mod common;

use teardown_engine::{CloseReason, Config, Flags, Host, Segment, State, Time, Tuple};

use common::closed;

fn server_tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
}

fn at(ms: u64) -> Time {
    Time::from_micros(ms * 1000)
}

/// A server host listening on port 80.
fn listening(cfg: Config) -> Host {
    let mut host = Host::new(cfg);
    host.listen(80);
    host
}

/// A server host allowing `max_orphans`, without timestamps (shorter traces).
fn server(max_orphans: usize) -> Host {
    listening(Config {
        timestamps: false,
        max_orphans,
        ..Config::default()
    })
}

/// Opens a connection from the peer's `port` (its ISN 1000): SYN, then the
/// ACK of the SYN-ACK. Returns the server's snd_nxt.
fn open(host: &mut Host, port: u16) -> u32 {
    let peer = server_tuple(port).reversed();
    host.handle(at(0), &Segment::new(&peer, Flags::SYN, 1_000, 0, 0, 65_535));
    let synack = host.transmits().next().expect("a SYN-ACK");
    let ack = Segment::new(&peer, Flags::ACK, 1_001, synack.seq + 1, 0, 65_535);
    host.handle(at(0), &ack);
    assert_eq!(host.transmits().count(), 0);
    host.events().for_each(drop);
    synack.seq + 1
}

/// What the server sent, as (flags, seq) pairs.
fn wire(host: &mut Host) -> Vec<(Flags, u32)> {
    host.transmits().map(|s| (s.flags, s.seq)).collect()
}

#[test]
fn closes_within_a_tick_overshoot_and_the_next_close_resets() {
    let mut host = server(2);
    let isn: Vec<u32> = (0..4).map(|i| open(&mut host, 40_000 + i)).collect();

    // Three closes within the first 100 ms: the count Linux reads was taken
    // at the last tick (none then), so each sends its FIN and stays.
    for i in 0..3 {
        host.close(at(10), server_tuple(40_000 + i)).unwrap();
        assert_eq!(
            wire(&mut host),
            [(Flags::FIN | Flags::ACK, isn[i as usize])]
        );
    }
    assert_eq!(host.orphans(), 3);

    // Past the tick the count is 3, one more than the limit: the next close()
    // sends its FIN, then an RST after it, and the connection is gone.
    host.close(at(120), server_tuple(40_003)).unwrap();
    assert_eq!(
        wire(&mut host),
        [
            (Flags::FIN | Flags::ACK, isn[3]),
            (Flags::RST | Flags::ACK, isn[3] + 1)
        ]
    );
    assert_eq!(
        closed(&mut host),
        [(40_003, State::FinWait1, CloseReason::TooManyOrphans)]
    );
    assert_eq!(host.state(&server_tuple(40_003)), State::Closed);
    assert_eq!(host.stats().abort_on_memory, 1);
    assert_eq!(host.stats().rst_sent, 1);
    assert_eq!(host.orphans(), 3);
    assert_eq!(host.population(State::FinWait1), 3);
}

#[test]
fn orphans_past_the_limit_reset_at_their_retransmission_timeout() {
    let mut host = server(2);
    let isn: Vec<u32> = (0..3).map(|i| open(&mut host, 40_000 + i)).collect();
    for i in 0..3 {
        host.close(at(10), server_tuple(40_000 + i)).unwrap();
    }
    host.transmits().for_each(drop);

    // The peers are silent. At the FINs' timeout (an RTO of rto_min after
    // the handshake's sample) the tick has counted 3: `tcp_out_of_resources`
    // resets each instead of retransmitting (TCPAbortOnMemory): the timer
    // is due at 210 ms, and the wheel fires it within its 1 ms tick.
    host.handle_timeout(at(209));
    assert_eq!(wire(&mut host), []);
    host.handle_timeout(at(211));
    let rst: Vec<(Flags, u32)> = isn
        .iter()
        .map(|s| (Flags::RST | Flags::ACK, s + 1))
        .collect();
    assert_eq!(wire(&mut host), rst);
    let reasons: Vec<CloseReason> = closed(&mut host).into_iter().map(|c| c.2).collect();
    assert_eq!(reasons, [CloseReason::TooManyOrphans; 3]);
    assert_eq!((host.orphans(), host.len()), (0, 0));
    assert_eq!(host.stats().abort_on_memory, 3);
    assert_eq!(host.stats().retransmits, 0);

    // Within the limit the same timeout retransmits.
    let mut host = server(3);
    for i in 0..3 {
        open(&mut host, 40_000 + i);
    }
    for i in 0..3 {
        host.close(at(10), server_tuple(40_000 + i)).unwrap();
    }
    host.transmits().for_each(drop);
    host.handle_timeout(at(211));
    assert_eq!(host.stats().retransmits, 3);
    assert_eq!(host.stats().abort_on_memory, 0);
}

#[test]
fn an_orphan_whose_fin_is_acked_becomes_a_mini_socket_and_stops_counting() {
    // No orphan allowed: a close() after a tick that counted one resets.
    for peer_acks in [true, false] {
        let mut host = server(0);
        let a = open(&mut host, 40_000);
        open(&mut host, 40_001);
        host.close(at(10), server_tuple(40_000)).unwrap();
        host.transmits().for_each(drop);
        if peer_acks {
            // The ACK of the FIN alone: FIN-WAIT-2, Linux's mini-socket
            // (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)` destroys the socket).
            let peer = server_tuple(40_000).reversed();
            host.handle(
                at(20),
                &Segment::new(&peer, Flags::ACK, 1_001, a + 1, 0, 65_535),
            );
            assert_eq!(host.state(&server_tuple(40_000)), State::FinWait2);
            assert_eq!(host.orphans(), 0);
        }
        host.close(at(150), server_tuple(40_001)).unwrap();
        let reset = wire(&mut host).iter().any(|(f, _)| f.rst());
        assert_eq!(reset, !peer_acks, "peer acks: {peer_acks}");
        assert_eq!(host.stats().abort_on_memory, u64::from(!peer_acks));
    }
}

#[test]
fn shutdown_makes_no_orphan_until_the_close_after_it() {
    let mut host = server(0);
    open(&mut host, 40_000);
    let b = open(&mut host, 40_001);
    // shutdown(SHUT_WR) sends the FIN; the application still holds the socket.
    host.shutdown(at(10), server_tuple(40_001)).unwrap();
    assert_eq!(wire(&mut host), [(Flags::FIN | Flags::ACK, b)]);
    assert_eq!(host.orphans(), 0);

    // The tick at 100 ms counted none: this close() stays.
    host.close(at(150), server_tuple(40_000)).unwrap();
    assert!(wire(&mut host).iter().all(|(f, _)| !f.rst()));
    assert_eq!(host.orphans(), 1);

    // Past the next tick it is counted, and the shut-down socket's close()
    // is one too many: its FIN is already out, so only the RST goes.
    host.close(at(260), server_tuple(40_001)).unwrap();
    let out = wire(&mut host);
    assert_eq!(
        out.last(),
        Some(&(Flags::RST | Flags::ACK, b + 1)),
        "{out:?}"
    );
    assert!(out.iter().all(|(f, _)| !f.fin()), "{out:?}");
    assert!(closed(&mut host).contains(&(40_001, State::FinWait1, CloseReason::TooManyOrphans)));
}

#[test]
fn a_passive_close_past_the_limit_resets_from_last_ack() {
    let mut host = server(0);
    open(&mut host, 40_000);
    let b = open(&mut host, 40_001);
    host.close(at(10), server_tuple(40_000)).unwrap();
    // The peer closes first: CLOSE-WAIT, then our close() after the tick.
    let peer = server_tuple(40_001).reversed();
    host.handle(
        at(20),
        &Segment::new(&peer, Flags::FIN | Flags::ACK, 1_001, b, 0, 65_535),
    );
    assert_eq!(host.state(&server_tuple(40_001)), State::CloseWait);
    host.transmits().for_each(drop);
    host.close(at(150), server_tuple(40_001)).unwrap();
    assert_eq!(
        wire(&mut host),
        [
            (Flags::FIN | Flags::ACK, b),
            (Flags::RST | Flags::ACK, b + 1)
        ]
    );
    assert!(closed(&mut host).contains(&(40_001, State::LastAck, CloseReason::TooManyOrphans)));
}

#[test]
fn a_second_close_of_an_orphan_changes_nothing() {
    let mut host = server(0);
    let isn: Vec<u32> = (0..2).map(|i| open(&mut host, 40_000 + i)).collect();
    host.close(at(10), server_tuple(40_000)).unwrap();
    // The second becomes a FIN-WAIT-2 mini-socket.
    host.close(at(10), server_tuple(40_001)).unwrap();
    let peer = server_tuple(40_001).reversed();
    host.handle(
        at(20),
        &Segment::new(&peer, Flags::ACK, 1_001, isn[1] + 1, 0, 65_535),
    );
    host.transmits().for_each(drop);
    // Past the tick the count (one) passes the limit (none), but neither
    // close() makes an orphan: both stay as they were.
    for port in [40_000, 40_001] {
        host.close(at(150), server_tuple(port)).unwrap();
    }
    assert_eq!(wire(&mut host), []);
    assert_eq!(host.state(&server_tuple(40_000)), State::FinWait1);
    assert_eq!(host.state(&server_tuple(40_001)), State::FinWait2);
    assert_eq!(host.stats().abort_on_memory, 0);
    assert_eq!(host.orphans(), 1);
}

/// An orphan whose RTO has reached rto_max and whose retries are spent is
/// judged against twice the count, and goes without an RST; within that
/// doubled limit it gives up as retries exhausted.
#[test]
fn a_spent_orphan_is_judged_against_twice_the_count_and_goes_silently() {
    for (max_orphans, reason) in [
        (1, CloseReason::TooManyOrphans),
        (2, CloseReason::RetriesExhausted),
    ] {
        // RTOs of 200 then 400 ms (rto_max); one retry gives up at 600 ms.
        let mut host = listening(Config {
            timestamps: false,
            max_orphans,
            rto_max: std::time::Duration::from_millis(400),
            orphan_retries: 1,
            ..Config::default()
        });
        open(&mut host, 40_000);
        host.close(at(10), server_tuple(40_000)).unwrap();
        host.transmits().for_each(drop);
        // At 210 ms it is alive (RTO 200 ms) and one orphan is within both
        // limits: the FIN goes again.
        host.handle_timeout(at(211));
        assert_eq!(host.stats().retransmits, 1);
        host.transmits().for_each(drop);
        host.handle_timeout(at(611));
        assert_eq!(wire(&mut host), [], "max_orphans {max_orphans}");
        assert_eq!(closed(&mut host), [(40_000, State::FinWait1, reason)]);
        let aborted = u64::from(reason == CloseReason::TooManyOrphans);
        assert_eq!(host.stats().abort_on_memory, aborted);
        assert_eq!(host.stats().timeouts_retries, 1 - aborted);
    }
}

/// An orphan stays one through CLOSING (a simultaneous close) and stops
/// being one in TIME-WAIT; a host forgetting an orphan forgets its count.
#[test]
fn orphans_end_in_time_wait_through_closing_and_when_forgotten() {
    let mut host = server(10);
    let isn: Vec<u32> = (0..2).map(|i| open(&mut host, 40_000 + i)).collect();
    host.close(at(10), server_tuple(40_000)).unwrap();
    host.close(at(10), server_tuple(40_001)).unwrap();
    host.transmits().for_each(drop);
    assert_eq!(host.orphans(), 2);

    // The peer's FIN crosses ours: it acknowledges only the handshake.
    let peer = server_tuple(40_000).reversed();
    let fin = Segment::new(&peer, Flags::FIN | Flags::ACK, 1_001, isn[0], 0, 65_535);
    host.handle(at(20), &fin);
    assert_eq!(host.state(&server_tuple(40_000)), State::Closing);
    assert_eq!(host.orphans(), 2);
    let ack = Segment::new(&peer, Flags::ACK, 1_002, isn[0] + 1, 0, 65_535);
    host.handle(at(30), &ack);
    assert_eq!(host.state(&server_tuple(40_000)), State::TimeWait);
    assert_eq!(host.orphans(), 1);

    assert!(host.forget(&server_tuple(40_001)));
    assert_eq!(host.orphans(), 0);
}

#[test]
fn the_profiles_limits() {
    use teardown_engine::config::Profile;
    assert_eq!(Config::profile(Profile::Linux).max_orphans, 131_072);
    assert_eq!(Config::profile(Profile::FreeBsd).max_orphans, usize::MAX);
    assert_eq!(Config::profile(Profile::Rfc9293).max_orphans, usize::MAX);
}
