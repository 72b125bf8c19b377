//! The six seed cases of the four-way close (README): a FIN or an ACK lost at each
//! step of the close, and a peer that runs away at either end.

use super::*;

/// Seed case 1: the first FIN is lost. It is retransmitted with exponential
/// backoff from the 300 ms RTO; an orphan gives up when the time 8 doublings from
/// 200 ms would take (102.2 s) has passed at a timer expiry, silently. The peer
/// never hears anything.
#[test]
fn case1_first_fin_lost() {
    let mut n = Net::default();
    let (s_snd, s_rcv) = n.seq_s();
    let t0 = n.now;
    n.s.close(n.now, n.st).unwrap();
    check(&n.one_s(), "F.", s_snd, s_rcv); // lost
    let mut times = Vec::new();
    while n.s.state(&n.st) == FinWait1 {
        n.until_transmit(Duration::from_secs(400));
        let out = n.out_s();
        if out.is_empty() {
            break;
        }
        check(&out[0], "F.", s_snd, s_rcv); // lost again
        times.push((n.now - t0).as_millis());
    }
    // 0.3 s RTO doubling: the k-th retransmission at 0.3 * (2^k - 1) s.
    assert_eq!(
        times,
        vec![300, 900, 2_100, 4_500, 9_300, 18_900, 38_100, 76_500]
    );
    // The next expiry, at 153.3 s, finds 102.2 s exceeded: CLOSED, no RST.
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(
        closed(&mut n.s),
        vec![(FinWait1, CloseReason::RetriesExhausted, Role::Active)]
    );
    assert_eq!(n.s.stats().rst_sent, 0);
    assert_eq!(n.s.stats().timeouts_retries, 1);
    assert_eq!(n.c.state(&n.ct), Established);
}

/// Seed case 2: the ACK of the first FIN is lost. The FIN is retransmitted and
/// re-ACKed; the passive closer's FIN then acknowledges the first FIN too, and
/// FIN-WAIT-1 goes straight to TIME-WAIT.
#[test]
fn case2_ack_of_fin_lost_goes_straight_to_time_wait() {
    let mut n = Net::default();
    let (s_snd, s_rcv) = n.seq_s();
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin);
    check(&n.one_c(), ".", s_rcv, s_snd + 1); // lost
    assert_eq!(n.c.state(&n.ct), CloseWait);
    // The retransmitted FIN 300 ms after the first one.
    n.until_transmit(Duration::from_secs(1));
    let refin = n.one_s();
    check(&refin, "F.", s_snd, s_rcv);
    n.hop();
    n.c.handle(n.now, &refin);
    check(&n.one_c(), ".", s_rcv, s_snd + 1); // the duplicate is ACKed again; lost too
                                              // The passive closer closes: its FIN acknowledges the first FIN.
    n.c.close(n.now, n.ct).unwrap();
    let fin2 = n.one_c();
    check(&fin2, "F.", s_rcv, s_snd + 1);
    n.hop();
    n.s.handle(n.now, &fin2);
    check(&n.one_s(), ".", s_snd + 1, s_rcv + 1);
    assert_eq!(n.s.state(&n.st), TimeWait);
    assert_eq!(
        transitions(&mut n.s),
        vec![(Established, FinWait1), (FinWait1, TimeWait)]
    );
}

/// Seed case 3: the passive closer's FIN is lost. LAST-ACK retransmits it on its
/// RTO; FIN-WAIT-2 ACKs it. If the active closer is already in TIME-WAIT, the
/// re-ACK goes out and the 2*MSL timer restarts.
#[test]
fn case3_passive_fin_lost() {
    let mut n = Net::default();
    let (s_snd, s_rcv) = n.seq_s();
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin);
    let ack = n.one_c();
    n.hop();
    n.s.handle(n.now, &ack);
    n.c.close(n.now, n.ct).unwrap();
    let fin2 = n.one_c(); // lost
    let sent = n.now;
    let at = n.until_transmit(Duration::from_secs(1));
    assert_eq!(at - sent, Duration::from_millis(300));
    let refin = n.one_c();
    check(&refin, "F.", fin2.seq, fin2.ack);
    assert_eq!(n.s.state(&n.st), FinWait2);
    n.hop();
    n.s.handle(n.now, &refin);
    let last = n.one_s();
    check(&last, ".", s_snd + 1, s_rcv + 1); // lost
    assert_eq!(n.s.state(&n.st), TimeWait);
    let tw_at = n.now;
    // LAST-ACK retransmits again after the doubled RTO (600 ms); TIME-WAIT re-ACKs
    // and restarts its timer.
    n.until_transmit(Duration::from_secs(2));
    let refin2 = n.one_c();
    check(&refin2, "F.", fin2.seq, fin2.ack);
    n.hop();
    n.s.handle(n.now, &refin2);
    check(&n.one_s(), ".", s_snd + 1, s_rcv + 1);
    let restarted = n.now;
    assert!(restarted > tw_at);
    assert_eq!(n.s.stats().time_wait_restarts, 1);
    // Deliver that ACK: LAST-ACK closes.
    n.hop();
    let ack2 = Segment {
        flags: Flags::ACK,
        seq: s_snd + 1,
        ack: s_rcv + 1,
        ..FROM_SERVER
    };
    n.c.handle(n.now, &ack2);
    assert_eq!(n.c.state(&n.ct), Closed);
    // TIME-WAIT now ends 60 s after the restart, not after its start.
    n.advance(tw_at + Duration::from_secs(60) - n.now);
    assert_eq!(n.s.state(&n.st), TimeWait);
    n.advance(restarted + Duration::from_secs(60) - n.now);
    assert_eq!(n.s.state(&n.st), Closed);
}

/// Seed case 4: the active closer's final ACK is lost. LAST-ACK retransmits; once
/// TIME-WAIT is over (here made 1 s long) the retransmitted FIN meets no
/// connection and draws an RST, which resets LAST-ACK.
#[test]
fn case4_final_ack_lost_rst_after_time_wait() {
    let short_tw = Config {
        time_wait: Duration::from_secs(1),
        ..cfg()
    };
    let mut n = Net::established(short_tw, cfg());
    let (c_snd, c_rcv) = n.seq_c();
    // The client is the active closer here.
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
    check(&n.one_c(), ".", c_snd + 1, c_rcv + 1); // the final ACK: lost
    assert_eq!(n.c.state(&n.ct), TimeWait);
    // Retransmissions at +300 ms and +900 ms reach TIME-WAIT and are re-ACKed (lost).
    for _ in 0..2 {
        n.until_transmit(Duration::from_secs(5));
        let refin = n.one_s();
        check(&refin, "F.", fin2.seq, fin2.ack);
        n.hop();
        n.c.handle(n.now, &refin);
        check(&n.one_c(), ".", c_snd + 1, c_rcv + 1);
    }
    // Let TIME-WAIT (restarted by the last FIN) run out, then the next retransmission.
    n.advance(Duration::from_millis(1_100));
    assert_eq!(n.c.state(&n.ct), Closed);
    n.until_transmit(Duration::from_secs(5));
    let refin = n.one_s();
    n.hop();
    n.c.handle(n.now, &refin);
    // No connection: RST <SEQ=SEG.ACK>.
    let rst = n.one_c();
    check(&rst, "R", refin.ack, 0);
    n.hop();
    n.s.handle(n.now, &rst);
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(
        closed(&mut n.s),
        vec![(LastAck, CloseReason::Reset, Role::Passive)]
    );
}

/// Seed case 4, other ending: LAST-ACK gives up after its retries, silently.
#[test]
fn case4_last_ack_gives_up() {
    let mut n = Net::default();
    n.c.close(n.now, n.ct).unwrap();
    let fin = n.one_c();
    n.hop();
    n.s.handle(n.now, &fin);
    let ack = n.one_s();
    n.hop();
    n.c.handle(n.now, &ack);
    n.s.close(n.now, n.st).unwrap();
    let _lost = n.one_s();
    let t0 = n.now;
    let mut sent = 0;
    n.walk_while(Duration::from_secs(400), |n| {
        sent += n.out_s().len(); // what the last instant sent
        n.s.state(&n.st) == LastAck
    });
    assert_eq!(sent, 8);
    assert_eq!(n.now - t0, Duration::from_millis(153_300));
    assert_eq!(
        closed(&mut n.s),
        vec![(LastAck, CloseReason::RetriesExhausted, Role::Passive)]
    );
}

/// Seed case 5: the passive closer runs away after ACKing the FIN. The orphaned
/// FIN-WAIT-2 times out after tcp_fin_timeout (60 s) straight to CLOSED, not
/// TIME-WAIT, sending nothing.
#[test]
fn case5_fin_wait_2_timeout() {
    let mut n = Net::default();
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin);
    let ack = n.one_c();
    n.hop();
    n.s.handle(n.now, &ack);
    assert_eq!(n.s.state(&n.st), FinWait2);
    assert!(n.c.forget(&n.ct)); // the client vanishes
    let t = n.now;
    n.advance(Duration::from_secs(60) - Duration::from_micros(1));
    assert_eq!(n.s.state(&n.st), FinWait2);
    n.advance(Duration::from_millis(1));
    assert_eq!(n.s.state(&n.st), Closed);
    assert!(n.now - t <= Duration::from_secs(60) + Duration::from_millis(1));
    assert!(n.out_s().is_empty());
    assert_eq!(
        closed(&mut n.s),
        vec![(FinWait2, CloseReason::FinWait2Timeout, Role::Active)]
    );
    assert!(!transitions(&mut n.s).contains(&(FinWait2, TimeWait)));
}

/// The ACK of an orphan's FIN with the peer's FIN beyond a gap: Linux resets
/// ("out of order FIN after close()", `tcp_rcv_state_process`,
/// TCPAbortOnData), RST <SEQ=SEG.ACK>, where in order the FIN would end it
/// in TIME-WAIT (`tests/scripts/fin-wait-1-out-of-order-fin.pkt`).
#[test]
fn an_out_of_order_fin_on_the_ack_of_an_orphans_fin_resets_it() {
    let mut n = Net::default();
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin);
    let ack = n.one_c();
    assert!(n.c.forget(&n.ct));
    n.hop();
    let gap_fin = Segment {
        flags: Flags::ACK | Flags::FIN,
        seq: ack.seq + 5,
        ..ack
    };
    n.s.handle(n.now, &gap_fin);
    assert_eq!(n.s.state(&n.st), Closed);
    let rst = n.one_s();
    assert_eq!((rst.flags, rst.seq), (Flags::RST, ack.ack));
    assert_eq!(
        closed(&mut n.s),
        vec![(FinWait1, CloseReason::Aborted, Role::Active)]
    );
    assert_eq!(n.s.stats().abort_on_data, 1);
}

/// A FIN-WAIT-2 whose application still holds the socket (shutdown) never times out.
#[test]
fn fin_wait_2_after_shutdown_waits_forever() {
    let mut n = Net::default();
    n.s.shutdown(n.now, n.st).unwrap();
    n.server_fin_acked();
    n.advance(Duration::from_secs(600));
    assert_eq!(n.s.state(&n.st), FinWait2);
    // close() now starts the timeout.
    n.s.close(n.now, n.st).unwrap();
    n.advance(Duration::from_secs(60));
    assert_eq!(n.s.state(&n.st), Closed);
}

/// Seed case 6: the active closer runs away after receiving the ACK. LAST-ACK
/// retransmits; a new client reusing the 4-tuple sends SYN; LAST-ACK answers with
/// a challenge ACK (Linux; the article says FIN/ACK); the new client, in SYN-SENT,
/// answers RST at that ACK number, which is exactly rcv_nxt: LAST-ACK is reset, and
/// the new client's retransmitted SYN opens the connection.
#[test]
fn case6_new_client_resets_last_ack() {
    let mut n = Net::default();
    n.c.close(n.now, n.ct).unwrap();
    let fin = n.one_c();
    n.hop();
    n.s.handle(n.now, &fin);
    let ack = n.one_s();
    n.hop();
    n.c.handle(n.now, &ack);
    assert!(n.c.forget(&n.ct)); // runs away in FIN-WAIT-2
    n.s.close(n.now, n.st).unwrap();
    let (s_snd, s_rcv) = n.seq_s();
    let _lost = n.one_s();
    n.until_transmit(Duration::from_secs(1));
    let _lost_again = n.one_s();
    assert_eq!(n.s.state(&n.st), LastAck);
    // A new incarnation: a fresh client host, same 4-tuple.
    n.c = Host::new(cfg());
    n.c.connect(n.now, n.ct).unwrap();
    let syn = n.one_c();
    check(&syn, "S", syn.seq, 0);
    n.hop();
    n.s.handle(n.now, &syn);
    let chal = n.one_s();
    check(&chal, ".", s_snd, s_rcv);
    assert_eq!(n.s.stats().challenge_acks, 1);
    assert_eq!(n.s.state(&n.st), LastAck);
    n.hop();
    n.c.handle(n.now, &chal);
    let rst = n.one_c();
    check(&rst, "R", s_rcv, 0);
    assert_eq!(n.c.state(&n.ct), SynSent);
    n.hop();
    n.s.handle(n.now, &rst);
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(
        closed(&mut n.s),
        vec![(LastAck, CloseReason::Reset, Role::Passive)]
    );
    // The client's SYN comes again after its 1 s initial RTO and succeeds.
    n.until_transmit(Duration::from_secs(2));
    let syn2 = n.one_c();
    check(&syn2, "S", syn.seq, 0);
    n.hop();
    n.s.handle(n.now, &syn2);
    let synack = n.one_s();
    check(&synack, "S.", synack.seq, syn.seq + 1);
    n.hop();
    n.c.handle(n.now, &synack);
    let ack = n.one_c();
    n.hop();
    n.s.handle(n.now, &ack);
    assert_eq!(n.s.state(&n.st), Established);
    assert_eq!(n.c.state(&n.ct), Established);
}
