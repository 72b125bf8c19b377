//! Timestamps (RFC 7323) through the public API: negotiation, TSecr, PAWS,
//! and a SYN into TIME-WAIT taken by its timestamp (RFC 6191). The host
//! listens on 10.0.0.1:80; the test plays the peer, segment by segment.

use teardown_engine::{CloseReason, Config, Event, Flags, Host, Segment, State, Time, Ts, Tuple};

const PEER_ISS: u32 = 1_000;

fn server_tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
}

/// A segment from the peer on `port`.
fn from_peer(port: u16, flags: Flags, seq: u32, ack: u32, ts: Option<(u32, u32)>) -> Segment {
    let mut s = Segment::new(&server_tuple(port).reversed(), flags, seq, ack, 0, 65_535);
    s.ts = ts.map(|(val, ecr)| Ts { val, ecr });
    s
}

struct Peer {
    host: Host,
    now: Time,
}

impl Peer {
    fn new(cfg: Config) -> Peer {
        let mut host = Host::new(cfg);
        host.listen(80);
        Peer {
            host,
            now: Time::ZERO,
        }
    }

    fn at(&mut self, ms: u64) -> &mut Peer {
        self.now = Time::from_millis(ms);
        self
    }

    fn send(&mut self, seg: Segment) -> Vec<Segment> {
        self.host.handle(self.now, &seg);
        self.host.transmits().collect()
    }

    /// Handshake on `port` with TS values from the peer; returns the SYN-ACK.
    fn open(&mut self, port: u16, seq: u32, ts: Option<(u32, u32)>) -> Segment {
        let out = self.send(from_peer(port, Flags::SYN, seq, 0, ts));
        let synack = out[0];
        assert_eq!(synack.flags, Flags::SYN | Flags::ACK);
        let ack_ts = ts.map(|(val, _)| (val + 1, synack.ts.map_or(0, |t| t.val)));
        let ack = from_peer(port, Flags::ACK, seq + 1, synack.seq + 1, ack_ts);
        assert!(self.send(ack).is_empty());
        assert_eq!(self.host.state(&server_tuple(port)), State::Established);
        synack
    }

    /// The host closes first and ends in TIME-WAIT; the peer's last TSval is `val`.
    fn close_into_time_wait(&mut self, port: u16, val: u32) -> Segment {
        let t = server_tuple(port);
        self.host.close(self.now, t).expect("close");
        let fin = self.host.transmits().next().expect("FIN");
        assert!(fin.flags.fin());
        let (seq, ack) = (fin.ack, fin.seq + 1);
        let ecr = fin.ts.map(|t| t.val).unwrap_or(0);
        self.send(from_peer(port, Flags::ACK, seq, ack, Some((val, ecr))));
        let out = self.send(from_peer(
            port,
            Flags::FIN | Flags::ACK,
            seq,
            ack,
            Some((val, ecr)),
        ));
        assert_eq!(self.host.state(&t), State::TimeWait);
        out[0]
    }
}

#[test]
fn negotiated_when_both_offer_and_echoed() {
    let mut p = Peer::new(Config::default());
    let synack = p.open(40_000, PEER_ISS, Some((100, 0)));
    let ts = synack.ts.expect("the SYN-ACK answers with timestamps");
    assert_eq!(ts.ecr, 100);
    // Data with a newer TSval: the ACK echoes it.
    let mut data = from_peer(
        40_000,
        Flags::ACK | Flags::PSH,
        PEER_ISS + 1,
        synack.seq + 1,
        Some((150, ts.val)),
    );
    data.len = 10;
    let out = p.at(50).send(data);
    assert_eq!(out[0].ts.map(|t| t.ecr), Some(150));
    // Without timestamps in the SYN there are none on the connection.
    let plain = p.open(40_001, PEER_ISS, None);
    assert_eq!(plain.ts, None);
    // Nor when the host has them off.
    let mut off = Peer::new(Config {
        timestamps: false,
        ..Config::default()
    });
    assert_eq!(off.open(40_000, PEER_ISS, Some((100, 0))).ts, None);
}

#[test]
fn tsval_is_a_millisecond_clock_per_four_tuple() {
    let mut p = Peer::new(Config::default());
    let a = p.open(40_000, PEER_ISS, Some((1, 0))).ts.expect("ts").val;
    let b = p.open(40_001, PEER_ISS, Some((1, 0))).ts.expect("ts").val;
    // Same address pair, same instant, another port: another offset, as
    // Linux 6.18 keys it by the 4-tuple.
    assert_ne!(a, b);
    // The same 4-tuple later, as a new incarnation would be: the same
    // offset, the clock 250 ms on.
    let mut q = Peer::new(Config::default());
    let c = q
        .at(250)
        .open(40_000, PEER_ISS, Some((1, 0)))
        .ts
        .expect("ts")
        .val;
    assert_eq!(c.wrapping_sub(a), 250);
}

#[test]
fn paws_drops_an_old_duplicate() {
    let mut p = Peer::new(Config::default());
    let synack = p.open(40_000, PEER_ISS, Some((1_000, 0)));
    let ecr = synack.ts.expect("ts").val;
    let mut old = from_peer(
        40_000,
        Flags::ACK | Flags::PSH,
        PEER_ISS + 1,
        synack.seq + 1,
        Some((900, ecr)),
    );
    old.len = 10;
    let out = p.at(10).send(old);
    // Dropped with a duplicate ACK that does not take the data.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, PEER_ISS + 1);
    assert_eq!(out[0].ts.map(|t| t.ecr), Some(1_001));
    assert!(!p.host.events().any(|e| matches!(e, Event::Received { .. })));
    assert_eq!(p.host.stats().paws_rejected, 1);
    // The same segment with a current TSval is taken.
    old.ts = Some(Ts { val: 1_002, ecr });
    let out = p.at(20).send(old);
    assert_eq!(out[0].ack, PEER_ISS + 11);
    assert_eq!(out[0].ts.map(|t| t.ecr), Some(1_002));
}

/// A pure ACK from before rcv_nxt that fails PAWS (here the peer's ACK sent
/// before its FIN, overtaken by it) is an old ACK: dropped without a
/// duplicate ACK, counted `PAWSOldAck` (`tcp_disordered_ack_check`, Linux
/// 6.14 on). It spends no out-of-window credit: a segment beyond the window
/// right after it draws its duplicate ACK. An old pure ACK at rcv_nxt that
/// acknowledges new data is no old ACK: rejected with a duplicate ACK.
#[test]
fn paws_drops_an_old_ack_without_a_reply() {
    // The FIN's ACK at once, not delayed (engine/tests/delayed_ack.rs).
    let mut p = Peer::new(Config {
        delayed_ack: false,
        ..Config::default()
    });
    let synack = p.open(40_000, PEER_ISS, Some((100, 0)));
    let ecr = synack.ts.expect("ts").val;
    let t = server_tuple(40_000);
    let fin = from_peer(
        40_000,
        Flags::FIN | Flags::ACK,
        PEER_ISS + 1,
        synack.seq + 1,
        Some((300, ecr)),
    );
    let out = p.at(100).send(fin);
    assert_eq!(out[0].ack, PEER_ISS + 2);
    assert_eq!(p.host.state(&t), State::CloseWait);
    // The reordered ACK sent before the FIN: seq rcv_nxt - 1, TSval older.
    let old = from_peer(
        40_000,
        Flags::ACK,
        PEER_ISS + 1,
        synack.seq + 1,
        Some((250, ecr)),
    );
    assert!(p.at(200).send(old).is_empty());
    let stats = *p.host.stats();
    assert_eq!((stats.paws_old_ack, stats.paws_rejected), (1, 0));
    let probe = from_peer(
        40_000,
        Flags::ACK,
        PEER_ISS + 500_000,
        synack.seq + 1,
        Some((400, ecr)),
    );
    let out = p.send(probe);
    assert_eq!((out.len(), out[0].ack), (1, PEER_ISS + 2));
    // At rcv_nxt, failing PAWS, and not a duplicate ACK: PAWSEstabRejected.
    p.host.send(p.now, t, 10).expect("send");
    let data = p.host.transmits().next().expect("data");
    let stale = from_peer(
        40_000,
        Flags::ACK,
        PEER_ISS + 2,
        data.seq + 10,
        Some((200, ecr)),
    );
    let out = p.at(800).send(stale);
    assert_eq!((out.len(), out[0].ack), (1, PEER_ISS + 2));
    let stats = *p.host.stats();
    assert_eq!((stats.paws_old_ack, stats.paws_rejected), (1, 1));
}

/// SYN-SENT: a SYN-ACK whose TSecr is not between our first SYN's TSval and
/// now echoes no SYN of ours (`tcp_rcv_synsent_state_process`,
/// `PAWSActiveRejected`): answered with RST <SEQ=SEG.ACK>, and the connection
/// stays in SYN-SENT; such an RST|ACK is dropped. After the SYN is
/// retransmitted, the first SYN's echo is still in range.
#[test]
fn syn_sent_refuses_a_syn_ack_that_echoes_no_syn_of_ours() {
    let mut host = Host::new(Config::default());
    let t = server_tuple(40_000).reversed();
    host.connect(Time::from_millis(1_000), t).expect("connect");
    let syn = host.transmits().next().expect("SYN");
    let first = syn.ts.expect("timestamps offered").val;
    let synack = |ecr: u32| {
        let mut s = Segment::new(
            &t.reversed(),
            Flags::SYN | Flags::ACK,
            PEER_ISS,
            syn.seq + 1,
            0,
            65_535,
        );
        s.ts = Some(Ts { val: 5_000, ecr });
        s
    };
    let now = Time::from_millis(1_100);
    // From the future (50 s on), and from before our SYN.
    for ecr in [first.wrapping_add(50_000), first.wrapping_sub(1)] {
        host.handle(now, &synack(ecr));
        let out: Vec<Segment> = host.transmits().collect();
        assert_eq!(out.len(), 1, "ecr {ecr}: {out:?}");
        assert_eq!((out[0].flags, out[0].seq), (Flags::RST, syn.seq + 1));
        assert_eq!(host.state(&t), State::SynSent);
    }
    let rst_ack = Segment {
        flags: Flags::RST | Flags::ACK,
        ..synack(first.wrapping_sub(1))
    };
    host.handle(now, &rst_ack);
    assert_eq!(host.transmits().count(), 0);
    assert_eq!(host.state(&t), State::SynSent);
    assert_eq!(host.stats().paws_active_rejected, 3);
    // The SYN again after its 1 s RTO; the answer to the first one is taken.
    let again = loop {
        let deadline = host.poll_timeout().expect("SYN timer");
        host.handle_timeout(deadline);
        if let Some(s) = host.transmits().next() {
            break s;
        }
    };
    assert_eq!(again.ts.map(|ts| ts.val), Some(first.wrapping_add(1_000)));
    host.handle(Time::from_millis(2_050), &synack(first));
    let out: Vec<Segment> = host.transmits().collect();
    assert_eq!((out.len(), out[0].flags), (1, Flags::ACK));
    assert_eq!(host.state(&t), State::Established);
    assert_eq!(host.stats().paws_active_rejected, 3);
}

/// SYN-RECEIVED (Linux >= 6.15, `tcp_check_req`, `TSEcrRejected`): a
/// handshake ACK whose TSecr is not between our SYN-ACK's TSval and now
/// echoes no SYN-ACK of ours. It is answered with an ACK and dropped, an RST
/// so is dropped silently, and the connection waits for a good ACK.
#[test]
fn syn_received_drops_an_ack_that_echoes_no_syn_ack_of_ours() {
    let mut host = Host::new(Config::default());
    host.listen(80);
    let t = server_tuple(40_000);
    host.handle(
        Time::from_millis(1_000),
        &from_peer(40_000, Flags::SYN, PEER_ISS, 0, Some((100, 0))),
    );
    let synack = host.transmits().next().expect("SYN-ACK");
    let ours = synack.ts.expect("timestamps agreed").val;
    let ack = |ecr: u32| {
        from_peer(
            40_000,
            Flags::ACK,
            PEER_ISS + 1,
            synack.seq + 1,
            Some((200, ecr)),
        )
    };
    let now = Time::from_millis(1_100);
    // From the future (60 s on): the ACK would be the predicted segment.
    host.handle(now, &ack(ours.wrapping_add(60_000)));
    let out: Vec<Segment> = host.transmits().collect();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].flags, out[0].seq, out[0].ack),
        (Flags::ACK, synack.seq + 1, PEER_ISS + 1)
    );
    assert_eq!(host.state(&t), State::SynReceived);
    // From before our SYN-ACK, as an RST: dropped without a word.
    let rst = Segment {
        flags: Flags::RST,
        ..ack(ours.wrapping_sub(1))
    };
    host.handle(now, &rst);
    assert_eq!(host.transmits().count(), 0);
    assert_eq!(host.state(&t), State::SynReceived);
    assert_eq!(host.stats().tsecr_rejected, 2);
    // The echo of our SYN-ACK establishes.
    host.handle(Time::from_millis(1_200), &ack(ours));
    assert_eq!(host.state(&t), State::Established);
    assert_eq!(host.stats().tsecr_rejected, 2);
}

#[test]
fn syn_into_time_wait_with_lower_seq_is_taken_by_a_newer_timestamp() {
    let mut p = Peer::new(Config::default());
    p.open(40_000, PEER_ISS, Some((1_000, 0)));
    let last_ack = p.at(100).close_into_time_wait(40_000, 1_100);
    assert_eq!(last_ack.ts.map(|t| t.ecr), Some(1_100));
    // A new incarnation's SYN below rcv_nxt, with a newer TSval: reopened.
    let out = p
        .at(1_100)
        .send(from_peer(40_000, Flags::SYN, 10, 0, Some((2_100, 0))));
    assert_eq!(out[0].flags, Flags::SYN | Flags::ACK);
    assert_eq!(out[0].ts.map(|t| t.ecr), Some(2_100));
    assert_eq!(p.host.state(&server_tuple(40_000)), State::SynReceived);
    assert!(p.host.events().any(|e| matches!(
        e,
        Event::Closed {
            reason: CloseReason::Reused,
            ..
        }
    )));
    let stats = p.host.stats();
    assert_eq!(
        (stats.time_wait_reused, stats.time_wait_reused_by_ts),
        (1, 1)
    );
}

#[test]
fn syn_into_time_wait_with_an_older_timestamp_is_refused() {
    let mut p = Peer::new(Config::default());
    p.open(40_000, PEER_ISS, Some((1_000, 0)));
    p.at(100).close_into_time_wait(40_000, 1_100);
    // Below rcv_nxt and an older TSval: an old duplicate, answered with an ACK.
    let out = p
        .at(1_100)
        .send(from_peer(40_000, Flags::SYN, 10, 0, Some((1_050, 0))));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].flags, Flags::ACK);
    assert_eq!(p.host.state(&server_tuple(40_000)), State::TimeWait);
    assert_eq!(p.host.stats().paws_rejected, 1);
    // Without timestamps, the same SYN below rcv_nxt is refused too, and one
    // above it taken (the sequence rule alone).
    let mut q = Peer::new(Config::default());
    q.open(40_000, PEER_ISS, None);
    q.host
        .close(Time::from_millis(100), server_tuple(40_000))
        .expect("close");
    let fin = q.host.transmits().next().expect("FIN");
    q.at(100).send(from_peer(
        40_000,
        Flags::FIN | Flags::ACK,
        fin.ack,
        fin.seq + 1,
        None,
    ));
    q.at(1_100).send(from_peer(40_000, Flags::SYN, 10, 0, None));
    assert_eq!(q.host.state(&server_tuple(40_000)), State::TimeWait);
    q.send(from_peer(40_000, Flags::SYN, PEER_ISS + 5, 0, None));
    assert_eq!(q.host.state(&server_tuple(40_000)), State::SynReceived);
}

#[test]
fn time_wait_keeps_ts_recent_and_drops_old_duplicates() {
    let mut p = Peer::new(Config::default());
    p.open(40_000, PEER_ISS, Some((1_000, 0)));
    let last = p.at(100).close_into_time_wait(40_000, 1_100);
    let (seq, ack) = (last.ack, last.seq);
    // An old RST at rcv_nxt fails PAWS and does not kill the entry.
    p.at(200)
        .send(from_peer(40_000, Flags::RST, seq, 0, Some((1_000, 0))));
    assert_eq!(p.host.state(&server_tuple(40_000)), State::TimeWait);
    // A retransmitted FIN echoes the TIME-WAIT's ts_recent.
    let out = p.at(300).send(from_peer(
        40_000,
        Flags::FIN | Flags::ACK,
        seq - 1,
        ack,
        Some((1_200, 0)),
    ));
    assert_eq!(out[0].ts.map(|t| t.ecr), Some(1_100));
    // A bare ACK at rcv_nxt records its TSval, which the next ACK echoes.
    p.at(400)
        .send(from_peer(40_000, Flags::ACK, seq, ack, Some((1_300, 0))));
    let out = p.at(1_500).send(from_peer(
        40_000,
        Flags::FIN | Flags::ACK,
        seq - 1,
        ack,
        Some((1_400, 0)),
    ));
    assert_eq!(out[0].ts.map(|t| t.ecr), Some(1_300));
    // A current RST kills it.
    p.at(1_600)
        .send(from_peer(40_000, Flags::RST, seq, 0, Some((1_500, 0))));
    assert_eq!(p.host.state(&server_tuple(40_000)), State::Closed);
}

/// The host closes on `port` after a handshake with (or without) timestamps,
/// its FIN is retransmitted once, and the peer ACKs the retransmission 50 ms
/// later echoing it: the RTO after that ACK.
fn rto_after_acked_retransmission(ts: bool) -> (std::time::Duration, std::time::Duration) {
    let mut p = Peer::new(Config::default());
    p.open(40_000, PEER_ISS, ts.then_some((1_000, 0)));
    let t = server_tuple(40_000);
    p.host.close(p.now, t).expect("close");
    let fin = p.host.transmits().next().expect("FIN");
    let before = p.host.rto(&t).expect("rto");
    // poll_timeout may answer early (a wheel slot boundary): poll until it fires.
    let (deadline, again) = loop {
        let deadline = p.host.poll_timeout().expect("retransmission timer");
        p.host.handle_timeout(deadline);
        let again: Vec<Segment> = p.host.transmits().collect();
        if !again.is_empty() {
            break (deadline, again);
        }
    };
    assert_eq!(again.len(), 1);
    assert_eq!(p.host.rto(&t), Some(before * 2));
    let echo = again[0].ts.map(|t| (1_001, t.val));
    let ms = deadline.as_millis() + 50;
    p.at(ms)
        .send(from_peer(40_000, Flags::ACK, fin.ack, fin.seq + 1, echo));
    assert_eq!(p.host.state(&t), State::FinWait2);
    (before, p.host.rto(&t).expect("rto"))
}

#[test]
fn an_ack_of_a_retransmission_samples_the_rtt_by_its_echo() {
    // Karn: without timestamps the ACK of a retransmission gives no sample,
    // and the RTO stays backed off.
    let (before, after) = rto_after_acked_retransmission(false);
    assert_eq!(after, before * 2);
    // With them the echo times it (tcp_rtt_tsopt_us): a 50 ms sample, and
    // the backoff cleared.
    let (before, after) = rto_after_acked_retransmission(true);
    assert!(after < before * 2, "{after:?} after {before:?}");
    assert!(after > before, "a 50 ms sample raises the RTO: {after:?}");
}
