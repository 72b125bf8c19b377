//! The seed cases of teardown-cases.md and the engine's rules, as packet traces:
//! two engines joined by a hand-operated link; each test delivers, drops and
//! delays segments and asserts the exact replies (flags, seq, ack), the states
//! passed through and when.

use std::time::Duration;

use teardown_engine::{
    Advance, CloseReason, Config, Event, Flags, Host, Role, Segment, State, Time, Tuple,
};

mod common;
use common::{open_from, sent_on};

const ONE_WAY: Duration = Duration::from_millis(50);

/// The test connection as the client names it, and as the server does.
const CLIENT: Tuple = Tuple::new([10, 0, 0, 2], 40_000, [10, 0, 0, 1], 80);
const SERVER: Tuple = Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000);

/// What the client sends the server and the server the client, before a test
/// says what differs (smoltcp's SEND_TEMPL / RECV_TEMPL).
const FROM_CLIENT: Segment = sent_on(CLIENT);
const FROM_SERVER: Segment = sent_on(SERVER);
/// An RST as a stack sends one: window 0.
const RST_FROM_SERVER: Segment = Segment {
    flags: Flags::RST,
    wnd: 0,
    ..FROM_SERVER
};

/// The client's RST at `seq`, and its SYN: what the RST and SYN tests vary.
fn client_rst(seq: u32) -> Segment {
    Segment {
        flags: Flags::RST,
        seq,
        wnd: 0,
        ..FROM_CLIENT
    }
}
fn client_syn(seq: u32) -> Segment {
    Segment {
        flags: Flags::SYN,
        seq,
        ..FROM_CLIENT
    }
}

/// A client and a server, one connection between them, and a clock.
struct Net {
    now: Time,
    c: Host,
    s: Host,
    /// The connection as the client names it.
    ct: Tuple,
    /// ... and as the server names it.
    st: Tuple,
}

/// These cases time every segment by hand: the peer's FIN is ACKed at once
/// (the delayed ACK has its own tests, engine/tests/delayed_ack.rs).
fn cfg() -> Config {
    Config {
        trace_states: true,
        delayed_ack: false,
        ..Config::default()
    }
}

impl Net {
    fn with(ccfg: Config, scfg: Config) -> Net {
        let mut net = Net {
            now: Time::from_millis(1_000),
            c: Host::new(ccfg),
            s: Host::new(scfg),
            ct: CLIENT,
            st: SERVER,
        };
        net.s.listen(80);
        net
    }

    /// Both ends ESTABLISHED after a handshake over a 100 ms RTT (so RTO = 300 ms).
    fn established(ccfg: Config, scfg: Config) -> Net {
        let mut net = Net::with(ccfg, scfg);
        net.c.connect(net.now, net.ct).unwrap();
        let syn = net.one_c();
        net.hop();
        net.s.handle(net.now, &syn);
        let synack = net.one_s();
        net.hop();
        net.c.handle(net.now, &synack);
        let ack = net.one_c();
        net.hop();
        net.s.handle(net.now, &ack);
        assert_eq!(net.c.state(&net.ct), State::Established);
        assert_eq!(net.s.state(&net.st), State::Established);
        assert_eq!(net.s.rto(&net.st), Some(Duration::from_millis(300)));
        assert_eq!(net.c.rto(&net.ct), Some(Duration::from_millis(300)));
        net.c.events().for_each(drop);
        net.s.events().for_each(drop);
        net
    }

    fn default() -> Net {
        Net::established(cfg(), cfg())
    }

    fn hop(&mut self) {
        self.advance(ONE_WAY);
    }

    /// Moves the clock forward by `d`, firing both hosts' timers on the way at
    /// their deadlines, as a driver does.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.now = Advance::new(self.now, end).finish(&mut [&mut self.c, &mut self.s]);
    }

    /// Fires timer after timer, both hosts' in one time order, for at most
    /// `limit`, while `go` holds before each instant; returns when it stopped.
    fn walk_while(&mut self, limit: Duration, mut go: impl FnMut(&mut Net) -> bool) -> Time {
        let mut walk = Advance::new(self.now, self.now + limit);
        while go(self) {
            let Some(at) = walk.fire(&mut [&mut self.c, &mut self.s]) else {
                break;
            };
            self.now = at;
        }
        self.now
    }

    /// Steps timer by timer until one of the hosts has something to send, or
    /// `limit` has passed; returns when.
    fn until_transmit(&mut self, limit: Duration) -> Time {
        self.walk_while(limit, |n| {
            n.c.pending_transmits().is_empty() && n.s.pending_transmits().is_empty()
        })
    }

    fn out_c(&mut self) -> Vec<Segment> {
        self.c.transmits().collect()
    }
    fn out_s(&mut self) -> Vec<Segment> {
        self.s.transmits().collect()
    }
    fn one_c(&mut self) -> Segment {
        let v = self.out_c();
        assert_eq!(v.len(), 1, "client sent {v:?}");
        v[0]
    }
    fn one_s(&mut self) -> Segment {
        let v = self.out_s();
        assert_eq!(v.len(), 1, "server sent {v:?}");
        v[0]
    }
    /// The server's one segment (its FIN) to the client, and the client's one
    /// answer (its ACK) back.
    fn server_fin_acked(&mut self) {
        let fin = self.one_s();
        self.c.handle(self.now, &fin);
        let ack = self.one_c();
        self.s.handle(self.now, &ack);
    }
    fn seq_c(&self) -> (u32, u32) {
        self.c.sequence(&self.ct).unwrap()
    }
    fn seq_s(&self) -> (u32, u32) {
        self.s.sequence(&self.st).unwrap()
    }
}

/// Asserts a segment's flags (packetdrill notation), seq and ack.
#[track_caller]
fn check(seg: &Segment, flags: &str, seq: u32, ack: u32) {
    assert_eq!(format!("{:?}", seg.flags), flags, "flags of {seg:?}");
    assert_eq!(seg.seq, seq, "seq of {seg:?}");
    if seg.flags.ack() {
        assert_eq!(seg.ack, ack, "ack of {seg:?}");
    }
}

fn transitions(h: &mut Host) -> Vec<(State, State)> {
    h.events()
        .filter_map(|e| match e {
            Event::StateChanged { from, to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

fn closed(h: &mut Host) -> Vec<(State, CloseReason, Role)> {
    h.events()
        .filter_map(|e| match e {
            Event::Closed {
                from, reason, role, ..
            } => Some((from, reason, role)),
            _ => None,
        })
        .collect()
}

use State::*;

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

/// The ACK of an orphan's FIN with the peer's FIN beyond a gap: FIN-WAIT-2
/// (the FIN is not taken), and the mini-socket's timeout still runs, though
/// the segment carried a FIN (which, in order, would have ended it in
/// TIME-WAIT and cancelled that timeout).
#[test]
fn fin_wait_2_after_an_out_of_order_fin_still_times_out() {
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
    assert_eq!(n.s.state(&n.st), FinWait2);
    let dup = n.one_s();
    assert_eq!((dup.flags, dup.ack), (Flags::ACK, ack.seq));
    n.advance(Duration::from_secs(60) - Duration::from_micros(1));
    assert_eq!(n.s.state(&n.st), FinWait2);
    n.advance(Duration::from_millis(1));
    assert_eq!(n.s.state(&n.st), Closed);
    assert_eq!(
        closed(&mut n.s),
        vec![(FinWait2, CloseReason::FinWait2Timeout, Role::Active)]
    );
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

/// Builds a server-side connection in `state` and returns the net.
fn in_state(state: State) -> Net {
    let mut n = Net::default();
    match state {
        Established => {}
        FinWait1 => {
            n.s.close(n.now, n.st).unwrap();
            n.out_s();
        }
        FinWait2 | TimeWait => {
            n.s.close(n.now, n.st).unwrap();
            let fin = n.one_s();
            n.c.handle(n.now, &fin);
            let ack = n.one_c();
            n.s.handle(n.now, &ack);
            if state == TimeWait {
                n.c.close(n.now, n.ct).unwrap();
                let fin2 = n.one_c();
                n.s.handle(n.now, &fin2);
                n.out_s();
            }
        }
        Closing => {
            n.s.close(n.now, n.st).unwrap();
            n.out_s();
            n.c.close(n.now, n.ct).unwrap();
            let cfin = n.one_c();
            n.s.handle(n.now, &cfin);
            n.out_s();
        }
        CloseWait | LastAck => {
            n.c.close(n.now, n.ct).unwrap();
            let fin = n.one_c();
            n.s.handle(n.now, &fin);
            n.out_s();
            if state == LastAck {
                n.s.close(n.now, n.st).unwrap();
                n.out_s();
            }
        }
        s => panic!("not built here: {s}"),
    }
    assert_eq!(n.s.state(&n.st), state);
    n.s.events().for_each(drop);
    n
}

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
