//! The handshake's timers, and the RTO a handshake hands on to the data phase.

use super::*;

/// The client's SYN is answered, but the SYN-ACK is lost; the client's SYN,
/// resent after 1 s, is lost too; the server's SYN-ACK, resent 1 s after the
/// first, gets through. Both ends resent their SYN, so only a timestamp echo
/// can time the handshake (Karn).
fn handshake_resent_at_both_ends(ts: bool) -> Net {
    let cfg = Config {
        timestamps: ts,
        ..cfg()
    };
    let mut n = Net::with(cfg.clone(), cfg);
    let t0 = n.now;
    n.c.connect(n.now, n.ct).unwrap();
    let syn = n.one_c();
    n.hop();
    n.s.handle(n.now, &syn);
    check(&n.one_s(), "S.", n.seq_s().0 - 1, syn.seq + 1); // lost
    n.until_transmit(Duration::from_secs(2));
    assert_eq!(n.now - t0, Duration::from_secs(1));
    check(&n.one_c(), "S", syn.seq, 0); // lost
    n.until_transmit(Duration::from_secs(2));
    assert_eq!(n.now - t0, Duration::from_millis(1_050));
    let synack = n.one_s();
    check(&synack, "S.", n.seq_s().0 - 1, syn.seq + 1);
    n.hop();
    n.c.handle(n.now, &synack);
    let ack = n.one_c();
    check(&ack, ".", syn.seq + 1, synack.seq + 1);
    n.hop();
    n.s.handle(n.now, &ack);
    assert_eq!(n.c.state(&n.ct), Established);
    assert_eq!(n.s.state(&n.st), Established);
    n
}

/// Without timestamps neither end has an RTT sample: each goes on with
/// Linux's 3 s (`tcp_init_metrics`, RFC 6298 §5.7), not 1 s doubled by the
/// handshake's backoff, and doubles from there. The client's FIN, lost,
/// goes again 3 s later and 6 s after that.
#[test]
fn a_handshake_without_a_sample_goes_on_with_3_s() {
    let mut n = handshake_resent_at_both_ends(false);
    assert_eq!(n.c.rto(&n.ct), Some(Duration::from_secs(3)));
    assert_eq!(n.s.rto(&n.st), Some(Duration::from_secs(3)));
    let (c_snd, c_rcv) = n.seq_c();
    let t0 = n.now;
    n.c.close(n.now, n.ct).unwrap();
    check(&n.one_c(), "F.", c_snd, c_rcv); // lost
    let mut times = Vec::new();
    for _ in 0..2 {
        n.until_transmit(Duration::from_secs(10));
        check(&n.one_c(), "F.", c_snd, c_rcv); // lost again
        times.push((n.now - t0).as_millis());
    }
    assert_eq!(times, vec![3_000, 9_000]);
}

/// With timestamps each end's echo times the copy the peer answered
/// (`tcp_rtt_tsopt_us`): the client's first SYN, 1.1 s before the SYN-ACK
/// came (RTO 1.1 + 2.2 s), and the server's second SYN-ACK, 100 ms (RTO
/// 300 ms). A sample replaces the 3 s fallback.
#[test]
fn a_timestamp_echo_times_a_resent_handshake() {
    let n = handshake_resent_at_both_ends(true);
    assert_eq!(n.c.rto(&n.ct), Some(Duration::from_millis(3_300)));
    assert_eq!(n.s.rto(&n.st), Some(Duration::from_millis(300)));
}

/// The times (from the first) of a SYN's or SYN-ACK's copies into the void,
/// and when its end gave up, silently.
fn copies_until_given_up(n: &mut Net, client: bool) -> (Vec<u128>, u128) {
    let t0 = n.now;
    let mut times = Vec::new();
    let tuple = if client { n.ct } else { n.st };
    loop {
        n.until_transmit(Duration::from_secs(200));
        let out = if client { n.out_c() } else { n.out_s() };
        let host = if client { &mut n.c } else { &mut n.s };
        if out.is_empty() {
            assert_eq!(host.state(&tuple), Closed);
            let from = if client { SynSent } else { SynReceived };
            assert_eq!(
                closed(host),
                vec![(from, CloseReason::RetriesExhausted, Role::None)]
            );
            assert_eq!(host.stats().rst_sent, 0);
            return (times, (n.now - t0).as_millis());
        }
        assert!(out.iter().all(|s| s.flags.syn()), "{out:?}");
        times.push((n.now - t0).as_millis());
    }
}

/// SYN-SENT keeps the initial RTO for its first `tcp_syn_linear_timeouts`
/// (4) retransmissions and doubles after, and gives up after `syn_retries` +
/// 4: SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35 and 67 s, CLOSED at 131 s
/// (Linux >= 6.5: `tcp_retransmit_timer`, `tcp_write_timeout`).
#[test]
fn syn_sent_keeps_1_s_for_four_retransmissions_then_doubles() {
    let mut n = Net::with(cfg(), cfg());
    n.c.connect(n.now, n.ct).unwrap();
    n.one_c(); // lost, as every copy
    let (times, gone) = copies_until_given_up(&mut n, true);
    assert_eq!(
        times,
        vec![1_000, 2_000, 3_000, 4_000, 5_000, 7_000, 11_000, 19_000, 35_000, 67_000]
    );
    assert_eq!(gone, 131_000);
}

/// With `syn_linear_timeouts` 0 (the rfc9293 profile, or Linux before 6.5)
/// the SYN doubles from the first retransmission and gives up at 127 s.
#[test]
fn syn_sent_without_linear_timeouts_doubles_from_the_first() {
    let plain = Config {
        syn_linear_timeouts: 0,
        ..cfg()
    };
    assert_eq!(
        Config::profile(teardown_engine::Profile::Rfc9293).syn_linear_timeouts,
        0
    );
    let mut n = Net::with(plain.clone(), plain);
    n.c.connect(n.now, n.ct).unwrap();
    n.one_c();
    let (times, gone) = copies_until_given_up(&mut n, true);
    assert_eq!(times, vec![1_000, 3_000, 7_000, 15_000, 31_000, 63_000]);
    assert_eq!(gone, 127_000);
}

/// The SYN-ACK's timer doubles from the first, linear timeouts or not
/// (`reqsk_timer_handler`): copies at 1, 3, 7, 15 and 31 s, gone at 63 s
/// (`tcp_synack_retries` 5).
#[test]
fn syn_received_doubles_from_the_first() {
    let mut n = Net::with(cfg(), cfg());
    n.s.handle(n.now, &client_syn(100));
    n.one_s(); // lost, as every copy
    let (times, gone) = copies_until_given_up(&mut n, false);
    assert_eq!(times, vec![1_000, 3_000, 7_000, 15_000, 31_000]);
    assert_eq!(gone, 63_000);
}
