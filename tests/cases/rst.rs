//! RSTs and SYNs against every state: RFC 5961's exact-match rule and
//! challenge ACKs, Linux's orphaned FIN-WAIT-2 mini-socket, RFC 1337, and a
//! SYN on TIME-WAIT (RFC 6191).

use super::*;

/// RST in every state: exactly at rcv_nxt resets; elsewhere in the window draws a
/// challenge ACK (RFC 5961 §3.2); outside the window it is dropped. TIME-WAIT
/// ignores an inexact RST without any reply. An orphaned FIN-WAIT-2 is Linux's
/// mini-socket: any RST in the window kills it, one outside draws an ACK.
#[test]
fn rst_in_every_state() {
    for state in State::TEARDOWN {
        let n0 = in_state(state);
        let (snd, rcv) = n0.seq_s();
        // Out of window.
        let mut n = in_state(state);
        let far = client_rst(rcv.wrapping_add(1 << 30));
        n.s.handle(n.now, &far);
        assert_eq!(n.s.state(&n.st), state, "{state}: far RST");
        let out = n.out_s();
        if state == FinWait2 {
            assert_eq!(out.len(), 1, "{state}: an ACK for an out-of-window RST");
            check(&out[0], ".", snd, rcv);
        } else {
            assert!(out.is_empty(), "{state}: {out:?}");
        }
        // In window, not exact.
        let rst = client_rst(rcv.wrapping_add(100));
        n.s.handle(n.now, &rst);
        let out = n.out_s();
        match state {
            FinWait2 => {
                assert_eq!(
                    n.s.state(&n.st),
                    Closed,
                    "{state}: any in-window RST kills it"
                );
                assert!(out.is_empty());
                continue;
            }
            TimeWait => assert!(out.is_empty(), "{state}: {out:?}"),
            _ => {
                assert_eq!(out.len(), 1, "{state}: challenge ACK expected");
                check(&out[0], ".", snd, rcv);
            }
        }
        assert_eq!(n.s.state(&n.st), state, "{state}: inexact RST");
        // Exact.
        let exact = client_rst(rcv);
        n.s.handle(n.now, &exact);
        assert_eq!(n.s.state(&n.st), Closed, "{state}: exact RST");
        assert!(n.out_s().is_empty(), "never an RST for an RST");
        assert_eq!(closed(&mut n.s)[0].1, CloseReason::Reset);
        assert!(n.s.is_empty());
    }
}

/// FIN-WAIT-2 after shutdown() is still a full socket: RFC 5961 applies.
#[test]
fn rst_in_fin_wait_2_after_shutdown_draws_challenge_ack() {
    let mut n = Net::default();
    n.s.shutdown(n.now, n.st).unwrap();
    n.server_fin_acked();
    assert_eq!(n.s.state(&n.st), FinWait2);
    let (snd, rcv) = n.seq_s();
    n.s.handle(n.now, &client_rst(rcv + 100));
    check(&n.one_s(), ".", snd, rcv);
    assert_eq!(n.s.state(&n.st), FinWait2);
}

/// An orphaned FIN-WAIT-2 answers a SYN at or beyond rcv_nxt with RST and goes.
#[test]
fn syn_into_orphaned_fin_wait_2_draws_rst() {
    let mut n = in_state(FinWait2);
    let (_, rcv) = n.seq_s();
    n.s.handle(n.now, &client_syn(rcv + 5));
    check(&n.one_s(), "R.", 0, rcv + 6);
    assert_eq!(n.s.state(&n.st), Closed);
}

#[test]
fn rst_at_fin_sequence_resets_after_peer_fin() {
    for state in [CloseWait, LastAck, Closing] {
        let mut n = in_state(state);
        let (_, rcv) = n.seq_s();
        let rst = client_rst(rcv - 1);
        n.s.handle(n.now, &rst);
        assert_eq!(n.s.state(&n.st), Closed, "{state}");
    }
    // Not in ESTABLISHED, where rcv_nxt - 1 is simply out of window.
    let mut n = in_state(Established);
    let (_, rcv) = n.seq_s();
    n.s.handle(n.now, &client_rst(rcv - 1));
    assert_eq!(n.s.state(&n.st), Established);
}

#[test]
fn rst_with_rfc1337_spares_time_wait() {
    let mut n = Net::established(
        cfg(),
        Config {
            rfc1337: true,
            ..cfg()
        },
    );
    n.s.close(n.now, n.st).unwrap();
    n.server_fin_acked();
    n.c.close(n.now, n.ct).unwrap();
    let fin2 = n.one_c();
    n.s.handle(n.now, &fin2);
    n.out_s();
    let (_, rcv) = n.seq_s();
    n.s.handle(n.now, &client_rst(rcv));
    assert_eq!(n.s.state(&n.st), TimeWait);
}

#[test]
fn rst_in_syn_states() {
    // SYN-RECEIVED: an exact RST removes the embryonic connection.
    let mut n = Net::with(cfg(), cfg());
    n.c.connect(n.now, n.ct).unwrap();
    let syn = n.one_c();
    n.s.handle(n.now, &syn);
    let synack = n.one_s();
    assert_eq!(n.s.state(&n.st), SynReceived);
    n.s.handle(n.now, &client_rst(syn.seq + 1));
    assert_eq!(n.s.state(&n.st), Closed);
    // SYN-SENT: an RST is acceptable only with an acceptable ACK.
    n.c.handle(
        n.now,
        &Segment {
            ack: syn.seq + 1,
            ..RST_FROM_SERVER
        },
    );
    assert_eq!(n.c.state(&n.ct), SynSent);
    n.c.handle(
        n.now,
        &Segment {
            flags: Flags::RST | Flags::ACK,
            ack: syn.seq + 1,
            ..RST_FROM_SERVER
        },
    );
    assert_eq!(n.c.state(&n.ct), Closed);
    let _ = synack;
}

/// A SYN on a TIME-WAIT 4-tuple beyond the old rcv_nxt opens a new incarnation
/// (ISN = old snd_nxt + 65535 + 2); at or below it, the old connection re-ACKs.
#[test]
fn syn_into_time_wait() {
    let mut n = in_state(TimeWait);
    let (snd, rcv) = n.seq_s();
    let old = client_syn(rcv.wrapping_sub(10));
    n.s.handle(n.now, &old);
    check(&n.one_s(), ".", snd, rcv);
    assert_eq!(n.s.state(&n.st), TimeWait);
    // A second ACK for an old SYN within 500 ms is rate-limited.
    n.s.handle(n.now, &old);
    assert!(n.out_s().is_empty());
    let new = client_syn(rcv.wrapping_add(1_000_000));
    n.s.handle(n.now, &new);
    let synack = n.one_s();
    check(&synack, "S.", snd.wrapping_add(65_537), new.seq + 1);
    assert_eq!(n.s.state(&n.st), SynReceived);
    assert_eq!(n.s.stats().time_wait_reused, 1);
    assert_eq!(n.s.population(TimeWait), 0);
    assert_eq!(n.s.population(SynReceived), 1);
}

/// A reconnect that TIME-WAIT takes by its sequence number alone (no
/// timestamps): the client uploads 1 MB, the server closes first, and the
/// client connects again on the same 4-tuple 450 ms after its first SYN. Its
/// ISN clock, Linux's 64 ns tick (`secure_tcp_seq`), has moved 7,031,250 on,
/// beyond the 1,000,002 the first connection used, so the SYN is after the
/// TIME-WAIT's rcv_nxt and opens a new incarnation at once. On RFC 793's 4 µs
/// clock it would have moved 112,500: an old duplicate, re-ACKed, and the
/// reconnect would wait for the client's RST and its SYN's retransmission.
#[test]
fn reconnect_is_beyond_the_old_rcv_nxt_by_the_isn_clock() {
    let plain = Config {
        timestamps: false,
        ..cfg()
    };
    let mut n = Net::established(plain.clone(), plain);
    let first_syn = Time::from_millis(1_000);
    let (_, rcv) = n.seq_s();
    let old_isn = rcv - 1;
    n.c.send(n.now, n.ct, 1_000_000).unwrap();
    let data = n.one_c();
    n.hop();
    n.s.handle(n.now, &data);
    let ack = n.one_s();
    n.hop();
    n.c.handle(n.now, &ack);
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin);
    let ack = n.one_c();
    n.hop();
    n.s.handle(n.now, &ack);
    n.c.close(n.now, n.ct).unwrap();
    let fin = n.one_c();
    n.hop();
    n.s.handle(n.now, &fin);
    let last = n.one_s();
    check(&last, ".", fin.ack, old_isn + 1_000_002);
    n.hop();
    n.c.handle(n.now, &last);
    assert_eq!(n.c.state(&n.ct), Closed);
    assert_eq!(n.s.state(&n.st), TimeWait);
    assert_eq!(n.now - first_syn, Duration::from_millis(450));

    n.c.connect(n.now, n.ct).unwrap();
    let syn = n.one_c();
    assert_eq!(syn.seq.wrapping_sub(old_isn), 7_031_250);
    n.hop();
    n.s.handle(n.now, &syn);
    // The new incarnation's ISS: the old snd_nxt + 65535 + 2.
    check(&n.one_s(), "S.", fin.ack.wrapping_add(65_537), syn.seq + 1);
    assert_eq!(n.s.state(&n.st), SynReceived);
    assert_eq!(n.s.stats().time_wait_reused, 1);
}

#[test]
fn syn_into_last_ack_draws_challenge_ack() {
    let mut n = in_state(LastAck);
    let (snd, rcv) = n.seq_s();
    for seq in [rcv.wrapping_add(5), rcv.wrapping_sub(5_000_000)] {
        let syn = client_syn(seq);
        n.now = n.now + Duration::from_secs(1);
        n.s.handle(n.now, &syn);
        check(&n.one_s(), ".", snd, rcv);
        assert_eq!(n.s.state(&n.st), LastAck);
    }
    assert_eq!(n.s.stats().challenge_acks, 2);
}

/// A retransmitted FIN in TIME-WAIT is re-ACKed every time (never rate-limited)
/// and restarts the full timer.
#[test]
fn duplicate_fin_in_time_wait() {
    let mut n = in_state(TimeWait);
    let (snd, rcv) = n.seq_s();
    let dup = Segment {
        flags: Flags::FIN | Flags::ACK,
        seq: rcv - 1,
        ack: snd,
        ..FROM_CLIENT
    };
    let t1 = n.now + Duration::from_secs(30);
    n.advance(t1 - n.now);
    for _ in 0..3 {
        n.s.handle(n.now, &dup);
        check(&n.one_s(), ".", snd, rcv);
    }
    assert_eq!(n.s.stats().time_wait_restarts, 3);
    n.advance(Duration::from_secs(60) - Duration::from_millis(1));
    assert_eq!(n.s.state(&n.st), TimeWait);
    n.advance(Duration::from_millis(1));
    assert_eq!(n.s.state(&n.st), Closed);
}
