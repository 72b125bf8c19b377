//! The closes with nothing lost: the server first, the client first, and
//! both at once (simultaneous close through CLOSING).

use super::*;

#[test]
fn normal_close_server_first() {
    let mut n = Net::default();
    let (s_snd, s_rcv) = n.seq_s();
    let t0 = n.now;
    // 1. The active closer (server) sends FIN and enters FIN-WAIT-1.
    n.s.close(n.now, n.st).unwrap();
    let fin = n.one_s();
    check(&fin, "F.", s_snd, s_rcv);
    assert_eq!(n.s.state(&n.st), FinWait1);
    n.hop();
    // 2. The passive closer ACKs and enters CLOSE-WAIT; the application is told.
    n.c.handle(n.now, &fin);
    let ack = n.one_c();
    check(&ack, ".", s_rcv, s_snd + 1);
    assert_eq!(n.c.state(&n.ct), CloseWait);
    assert!(n.c.events().any(|e| matches!(e, Event::PeerClosed { .. })));
    n.hop();
    // 3. FIN-WAIT-2.
    n.s.handle(n.now, &ack);
    assert!(n.out_s().is_empty());
    assert_eq!(n.s.state(&n.st), FinWait2);
    // 4. The passive closer's application closes: FIN, LAST-ACK.
    n.c.close(n.now, n.ct).unwrap();
    let fin2 = n.one_c();
    check(&fin2, "F.", s_rcv, s_snd + 1);
    assert_eq!(n.c.state(&n.ct), LastAck);
    n.hop();
    // 5. ACK, TIME-WAIT.
    n.s.handle(n.now, &fin2);
    let last = n.one_s();
    check(&last, ".", s_snd + 1, s_rcv + 1);
    assert_eq!(n.s.state(&n.st), TimeWait);
    let tw_at = n.now;
    n.hop();
    // 6. LAST-ACK straight to CLOSED.
    n.c.handle(n.now, &last);
    assert_eq!(n.c.state(&n.ct), Closed);
    assert_eq!(
        closed(&mut n.c),
        vec![(LastAck, CloseReason::LastAckAcked, Role::Passive)]
    );
    // TIME-WAIT lasts 60 s, not a tick less, at most one tick more.
    n.advance(tw_at + Duration::from_secs(60) - n.now - Duration::from_micros(1));
    assert_eq!(n.s.state(&n.st), TimeWait);
    n.advance(Duration::from_millis(1));
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(
        transitions(&mut n.s),
        vec![
            (Established, FinWait1),
            (FinWait1, FinWait2),
            (FinWait2, TimeWait),
            (TimeWait, Closed)
        ]
    );
    assert!(n.out_s().is_empty(), "TIME-WAIT expiry is silent");
    assert_eq!(n.s.stats().timeouts_time_wait, 1);
    assert!(n.s.is_empty() && n.c.is_empty());
    let _ = t0;
}

#[test]
fn normal_close_client_first() {
    let mut n = Net::default();
    let (c_snd, c_rcv) = n.seq_c();
    n.c.close(n.now, n.ct).unwrap();
    let fin = n.one_c();
    check(&fin, "F.", c_snd, c_rcv);
    n.hop();
    n.s.handle(n.now, &fin);
    let ack = n.one_s();
    n.hop();
    n.c.handle(n.now, &ack);
    assert_eq!(n.c.state(&n.ct), FinWait2);
    n.s.close(n.now, n.st).unwrap();
    let fin2 = n.one_s();
    n.hop();
    n.c.handle(n.now, &fin2);
    let last = n.one_c();
    check(&last, ".", c_snd + 1, c_rcv + 1);
    n.hop();
    n.s.handle(n.now, &last);
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(n.c.state(&n.ct), TimeWait);
    assert_eq!(n.c.population(TimeWait), 1);
    assert_eq!(n.s.population(LastAck), 0);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut n = Net::default();
    let (c_snd, c_rcv) = n.seq_c();
    n.c.close(n.now, n.ct).unwrap();
    n.s.close(n.now, n.st).unwrap();
    let cfin = n.one_c();
    let sfin = n.one_s();
    n.hop();
    n.c.handle(n.now, &sfin);
    n.s.handle(n.now, &cfin);
    assert_eq!(n.c.state(&n.ct), Closing);
    assert_eq!(n.s.state(&n.st), Closing);
    let cack = n.one_c();
    let sack = n.one_s();
    check(&cack, ".", c_snd + 1, c_rcv + 1);
    n.hop();
    n.c.handle(n.now, &sack);
    n.s.handle(n.now, &cack);
    assert_eq!(n.c.state(&n.ct), TimeWait);
    assert_eq!(n.s.state(&n.st), TimeWait);
    assert_eq!(
        transitions(&mut n.c),
        vec![
            (Established, FinWait1),
            (FinWait1, Closing),
            (Closing, TimeWait)
        ]
    );
}
