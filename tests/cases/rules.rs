//! The engine's other rules: RSTs for unknown tuples, tcp_max_tw_buckets,
//! data after close, retransmission with the FIN, abort, teardown latency,
//! and what rides on what (an ACK on the FIN, a FIN on queued data).

use super::*;

/// No matching connection: RST <SEQ=SEG.ACK> for a segment with ACK, else
/// RST|ACK <SEQ=0><ACK=SEG.SEQ+SEG.LEN>; nothing for an RST.
#[test]
fn unknown_tuple_gets_rst() {
    let mut h = Host::new(cfg());
    let t = Tuple::new([10, 0, 0, 9], 999, [10, 0, 0, 1], 80);
    let now = Time::ZERO;
    let from_t = Segment {
        wnd: 0,
        ..sent_on(t)
    };
    h.handle(
        now,
        &Segment {
            flags: Flags::FIN | Flags::ACK,
            seq: 100,
            ack: 7_777,
            ..from_t
        },
    );
    check(&h.transmits().next().unwrap(), "R", 7_777, 0);
    h.handle(
        now,
        &Segment {
            flags: Flags::FIN,
            seq: 100,
            len: 10,
            ..from_t
        },
    );
    check(&h.transmits().next().unwrap(), "R.", 0, 111);
    h.handle(
        now,
        &Segment {
            flags: Flags::RST,
            seq: 100,
            ..from_t
        },
    );
    assert_eq!(h.transmits().count(), 0);
    // A SYN to a port nobody listens on is refused.
    h.handle(
        now,
        &Segment {
            flags: Flags::SYN,
            seq: 5,
            ..from_t
        },
    );
    check(&h.transmits().next().unwrap(), "R.", 0, 6);
}

/// Past tcp_max_tw_buckets a connection skips TIME-WAIT: here the peer's FIN
/// acknowledges ours (seed case 2's path), so no FIN-WAIT-2 mini-socket is made
/// and FIN-WAIT-1 goes straight to TIME-WAIT, which overflows to CLOSED. The FIN
/// is still acknowledged.
#[test]
fn time_wait_overflow_skips_time_wait() {
    let mut n = Net::established(
        cfg(),
        Config {
            max_tw_buckets: 0,
            ..cfg()
        },
    );
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.c.handle(n.now, &fin);
    n.c.close(n.now, n.ct).unwrap();
    let fin2 = n.one_c(); // carries the ACK of the server's FIN
    n.s.handle(n.now, &fin2);
    check(&n.one_s(), ".", fin.seq + 1, fin2.seq + 1);
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(n.s.stats().time_wait_overflow, 1);
    assert_eq!(
        closed(&mut n.s),
        vec![(FinWait1, CloseReason::TimeWaitOverflow, Role::Active)]
    );
}

/// Data after close() is answered with RST and the connection destroyed (Linux).
#[test]
fn data_after_close_resets() {
    let mut n = in_state(FinWait2);
    let (snd, rcv) = n.seq_s();
    n.s.handle(
        n.now,
        &Segment {
            flags: Flags::ACK | Flags::PSH,
            seq: rcv,
            ack: snd,
            len: 10,
            ..FROM_CLIENT
        },
    );
    check(&n.one_s(), "R", snd, 0);
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(n.s.stats().abort_on_data, 1);
}

/// Data is acknowledged and lost data is retransmitted before the FIN completes.
#[test]
fn lost_data_is_retransmitted_with_the_fin() {
    let mut n = Net::default();
    let (s_snd, s_rcv) = n.seq_s();
    n.s.send(n.now, n.st, 1_000).unwrap();
    let data = n.one_s(); // lost
    check(&data, "P.", s_snd, s_rcv);
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s(); // arrives, but beyond a gap
    check(&fin, "F.", s_snd + 1_000, s_rcv);
    n.c.handle(n.now, &fin);
    check(&n.one_c(), ".", s_rcv, s_snd); // duplicate ACK: the gap
    assert_eq!(n.c.state(&n.ct), Established);
    n.until_transmit(Duration::from_secs(1));
    let re = n.one_s();
    assert_eq!(
        (re.seq, re.len, format!("{:?}", re.flags)),
        (s_snd, 1_000, "FP.".into())
    );
    n.c.handle(n.now, &re);
    check(&n.one_c(), ".", s_rcv, s_snd + 1_001);
    assert_eq!(n.c.state(&n.ct), CloseWait);
}

/// Once the peer's FIN is in (CLOSE-WAIT, CLOSING, LAST-ACK) no text can
/// follow it: Linux ignores text or a FIN at or beyond rcv_nxt without an ACK
/// (`tcp_rcv_state_process` step 7). What comes before step 7 still happens:
/// a segment beyond the window draws the sequence check's duplicate ACK, the
/// FIN again (before rcv_nxt) is a duplicate and is ACKed, and the ACK field
/// is taken.
#[test]
fn text_beyond_the_peers_fin_is_ignored() {
    for state in [CloseWait, Closing, LastAck] {
        let mut n = in_state(state);
        let (snd, rcv) = n.seq_s();
        // What the server has sent and the client seen: our FIN is unacknowledged
        // in CLOSING and LAST-ACK.
        let una = if state == CloseWait { snd } else { snd - 1 };
        let data = Segment {
            flags: Flags::ACK | Flags::PSH,
            seq: rcv,
            ack: una,
            len: 100,
            ..FROM_CLIENT
        };
        n.s.handle(n.now, &data);
        assert!(n.out_s().is_empty(), "{state}: text at rcv_nxt is ACKed");
        n.s.handle(
            n.now,
            &Segment {
                flags: Flags::FIN | Flags::ACK,
                seq: rcv + 100,
                len: 0,
                ..data
            },
        );
        assert!(n.out_s().is_empty(), "{state}: a FIN beyond it is ACKed");
        assert_eq!(n.seq_s(), (snd, rcv), "{state}: rcv_nxt moved");
        // The FIN again: a duplicate, ACKed at once.
        n.s.handle(
            n.now,
            &Segment {
                flags: Flags::FIN | Flags::ACK,
                seq: rcv - 1,
                len: 0,
                ..data
            },
        );
        check(&n.one_s(), ".", snd, rcv);
        // Beyond the window: the sequence check ACKs it.
        n.s.handle(
            n.now,
            &Segment {
                flags: Flags::ACK,
                seq: rcv + 500_000,
                len: 0,
                ..data
            },
        );
        check(&n.one_s(), ".", snd, rcv);
        assert_eq!(n.s.state(&n.st), state);
    }
    // Text beyond rcv_nxt that acknowledges LAST-ACK's FIN ends it, unanswered.
    let mut n = in_state(LastAck);
    let (snd, rcv) = n.seq_s();
    n.s.handle(
        n.now,
        &Segment {
            flags: Flags::ACK | Flags::PSH,
            seq: rcv,
            ack: snd,
            len: 100,
            ..FROM_CLIENT
        },
    );
    assert!(n.out_s().is_empty());
    assert_eq!(
        closed(&mut n.s),
        vec![(LastAck, CloseReason::LastAckAcked, Role::Passive)]
    );
}

#[test]
fn abort_sends_rst() {
    let mut n = Net::default();
    let (snd, rcv) = n.seq_s();
    n.s.abort(n.now, n.st).unwrap();
    let rst = n.one_s();
    check(&rst, "R.", snd, rcv);
    n.c.handle(n.now, &rst);
    assert_eq!(n.c.state(&n.ct), Closed);
    assert!(n.s.close(n.now, n.st).is_err());
}

#[test]
fn latency_is_measured_from_close() {
    let mut n = Net::default();
    n.c.close(n.now, n.ct).unwrap();
    let fin = n.one_c();
    n.hop();
    n.s.handle(n.now, &fin);
    let ack = n.one_s();
    n.hop();
    n.c.handle(n.now, &ack);
    n.s.close(n.now, n.st).unwrap();
    let fin2 = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin2);
    let last = n.one_c();
    n.hop();
    n.s.handle(n.now, &last);
    let passive = n.s.events().find_map(|e| match e {
        Event::Closed {
            since_close,
            role: Role::Passive,
            ..
        } => since_close,
        _ => None,
    });
    assert_eq!(passive, Some(Duration::from_millis(100)));
    n.advance(Duration::from_secs(61));
    let active = n.c.events().find_map(|e| match e {
        Event::Closed {
            since_close,
            role: Role::Active,
            ..
        } => since_close,
        _ => None,
    });
    assert_eq!(active, Some(Duration::from_millis(60_150)));
}

/// The passive closer's application closes within the same step: its FIN carries
/// the ACK of the peer's FIN, and the separate pure ACK is not sent.
#[test]
fn ack_rides_on_an_immediate_fin() {
    let mut n = Net::default();
    let (s_snd, s_rcv) = n.seq_s();
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.c.handle(n.now, &fin);
    n.c.close(n.now, n.ct).unwrap();
    let out = n.out_c();
    assert_eq!(out.len(), 1, "{out:?}");
    check(&out[0], "F.", s_rcv, s_snd + 1);
    assert_eq!(n.c.stats().acks_coalesced, 1);
    n.s.handle(n.now, &out[0]);
    // FIN-WAIT-1 straight to TIME-WAIT, as in seed case 2.
    assert_eq!(n.s.state(&n.st), TimeWait);
}

/// close() right after a write whose segment is still queued: the FIN rides on
/// the data (Linux's tcp_send_fin), and a loss retransmits both together.
#[test]
fn fin_rides_on_queued_data() {
    let mut n = Net::default();
    let (snd, rcv) = n.seq_s();
    n.s.send(n.now, n.st, 500).unwrap();
    n.s.close(n.now, n.st).unwrap();
    let out = n.out_s();
    assert_eq!(out.len(), 1, "{out:?}");
    check(&out[0], "FP.", snd, rcv);
    assert_eq!(out[0].len, 500);
    assert_eq!(n.s.sequence(&n.st), Some((snd + 501, rcv)));
    // Lost: the retransmission carries data and FIN again, 300 ms later.
    let t0 = n.now;
    n.until_transmit(Duration::from_secs(1));
    assert_eq!(n.now - t0, Duration::from_millis(300));
    let re = n.one_s();
    check(&re, "FP.", snd, rcv);
    n.c.handle(n.now, &re);
    check(&n.one_c(), ".", rcv, snd + 501);
    assert_eq!(n.c.state(&n.ct), CloseWait);
}

/// Orphaned FIN-WAIT-2 entries are TIME-WAIT mini-sockets on Linux and count
/// against tcp_max_tw_buckets: past the limit, an orphan whose FIN is ACKed goes
/// straight to CLOSED (overflow), and a connection entering TIME-WAIT also finds
/// the buckets taken by FIN-WAIT-2 orphans.
#[test]
fn fin_wait_2_orphans_count_against_tw_buckets() {
    let mut s = Host::new(Config {
        max_tw_buckets: 2,
        ..cfg()
    });
    s.listen(80);
    let now = Time::from_millis(1);
    let tuple = |i: u16| Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000 + i);
    // Three established connections, each closed by the server; the peer ACKs
    // the FIN (no FIN of its own yet).
    let mut fins = Vec::new();
    let mut peers = Vec::new();
    for i in 0..3 {
        peers.push(open_from(&mut s, now, tuple(i).reversed()));
        s.close(now, tuple(i)).unwrap();
        fins.push(s.transmits().next().unwrap());
    }
    for (peer, fin) in peers.iter().zip(&fins) {
        let ack = Segment {
            ack: fin.seq + 1,
            ..*peer
        };
        s.handle(now, &ack);
    }
    // Two fit as FIN-WAIT-2 mini-sockets; the third overflows to CLOSED.
    assert_eq!(s.state(&tuple(0)), FinWait2);
    assert_eq!(s.state(&tuple(1)), FinWait2);
    assert_eq!(s.state(&tuple(2)), Closed);
    assert_eq!(s.stats().time_wait_overflow, 1);
    // The first one's FIN arrives: it moves from FIN-WAIT-2 to TIME-WAIT and keeps
    // its bucket (one FIN-WAIT-2 + one TIME-WAIT = the limit).
    let fin = Segment {
        flags: Flags::FIN | Flags::ACK,
        ack: fins[0].seq + 1,
        ..peers[0]
    };
    s.handle(now, &fin);
    assert_eq!(s.state(&tuple(0)), TimeWait);
    s.transmits().for_each(drop);
    // 61 s on, the second one's FIN-WAIT-2 has timed out and the first one's
    // TIME-WAIT has expired: both buckets are free.
    s.handle_timeout(now + Duration::from_secs(61));
    assert_eq!(s.state(&tuple(1)), Closed);
    assert_eq!(s.state(&tuple(0)), Closed);
    assert_eq!(
        closed(&mut s).into_iter().map(|c| c.1).collect::<Vec<_>>(),
        vec![
            CloseReason::TimeWaitOverflow,
            CloseReason::FinWait2Timeout,
            CloseReason::TimeWaitExpired
        ]
    );
    // A new orphan fits again.
    s.transmits().for_each(drop);
    let t = now + Duration::from_secs(61);
    let peer = open_from(&mut s, t, tuple(3).reversed());
    s.close(t, tuple(3)).unwrap();
    let fin = s.transmits().next().unwrap();
    let ack = Segment {
        ack: fin.seq + 1,
        ..peer
    };
    s.handle(t, &ack);
    assert_eq!(s.state(&tuple(3)), FinWait2);
}

/// A payload past `segment::MAX_LEN` is no TCP segment: the drivers refuse
/// one (the wire decoder, the script parser, `sim`'s flags), and so does
/// send(). Handed one anyway, the engine does not overflow: SEG.LEN wraps in
/// sequence space, as sequence numbers do.
#[test]
fn payloads_past_what_a_segment_may_model() {
    use teardown_engine::segment::MAX_LEN;
    use teardown_engine::Error;
    let mut h = Host::new(cfg());
    let t = Tuple::new([10, 0, 0, 9], 999, [10, 0, 0, 1], 80);
    h.handle(
        Time::ZERO,
        &Segment {
            flags: Flags::FIN,
            seq: 100,
            len: u32::MAX,
            wnd: 0,
            ..sent_on(t)
        },
    );
    // RST|ACK <ACK=SEG.SEQ+SEG.LEN>: 100 + (2^32 - 1) + 1, modulo 2^32.
    check(&h.transmits().next().unwrap(), "R.", 0, 100);

    let mut n = Net::established(cfg(), cfg());
    let too_long = MAX_LEN + 1;
    assert_eq!(
        n.c.send(n.now, n.ct, too_long),
        Err(Error::TooLong(too_long))
    );
    assert_eq!(
        n.c.send_close(n.now, n.ct, u32::MAX),
        Err(Error::TooLong(u32::MAX))
    );
    assert_eq!(n.c.state(&n.ct), Established);
    assert!(n.out_c().is_empty(), "a refused send sends nothing");
    n.c.send(n.now, n.ct, MAX_LEN).unwrap();
    assert_eq!(n.one_c().len, MAX_LEN);
}
