//! Header prediction (Van Jacobson's, RFC 1323 appendix; Linux's
//! `tcp_rcv_established` fast path): most segments of a teardown are the one
//! expected, in order and acknowledging new data: the handshake's ACK with
//! the request, the response with its FIN, the closer's FIN, the last ACK. A
//! few compares on the record recognise it, and it skips the checks of
//! RFC 9293 §3.10.7.4 that cannot apply to it. Anything else takes the full
//! path. The transitions are the full path's own functions, but for
//! FIN-WAIT-1's FIN+ACK (`fin_wait_1_ends`), which repeats what `on_acked` and
//! `on_text_and_fin` do for it: a change there must be made here too. The
//! test below runs both paths on generated segments and finds them equal.

use super::{CloseReason, Host, Next};
use crate::conn::{bits, flag, Conn};
use crate::segment::{Flags, Segment, MAX_LEN};
use crate::state::State;
use crate::time::Time;

impl Host {
    /// Whether `seg` is the predicted segment for `c`: an ACK (with FIN, PSH
    /// or data, no SYN or RST) at rcv_nxt that acknowledges new data, with no
    /// delayed ACK pending (so rcv_nxt is what we last acknowledged), on an
    /// entry that is not an orphan's FIN-WAIT-2 (`orphan.rs`; SYN-SENT never
    /// comes here), and that PAWS keeps. For such a segment the full path's
    /// sequence check passes (it starts at rcv_nxt; the window is at most
    /// 64 KiB), its RST and SYN steps do nothing, and its ACK is acceptable.
    /// The delayed-ACK and FIN-WAIT-2 tests are guards the engine's
    /// invariants already imply (a delayed ACK is armed only with nothing in
    /// flight, and FIN-WAIT-2 has nothing unacknowledged); they cost a bit
    /// test each and keep the prediction exact without leaning on them.
    #[inline(always)]
    pub(super) fn predicted(&self, c: &Conn, seg: &Segment) -> bool {
        #[cfg(test)]
        if self.unpredicted {
            return false;
        }
        const ANY: u8 = Flags::FIN.0 | Flags::PSH.0;
        // At rcv_nxt and shorter than MAX_LEN (a longer payload could wrap
        // the full path's sequence check), in one test: as two, LLVM joined
        // their results with a `sete`, a `setb`, an `and` and a compare. The
        // orphan bit goes before the state below for the same reason.
        const _: () = assert!(MAX_LEN.is_power_of_two());
        let at_rcv_nxt = (seg.seq ^ c.rcv_nxt.0) | (seg.len & !(MAX_LEN - 1)) == 0;
        seg.flags.0 & !ANY == Flags::ACK.0
            && at_rcv_nxt
            && c.snd_una < seg.ack_num()
            && seg.ack_num() <= c.snd_nxt
            && !c.bit(bits::DELACK)
            && (!c.has(flag::ORPHAN) || c.state != State::FinWait2)
            && !self.paws_discard(c, seg)
    }

    /// The full path's work for a [`Host::predicted`] segment, in its order:
    /// SYN-RECEIVED becomes ESTABLISHED; the TSval is recorded
    /// (`tcp_replace_ts_recent`; rcv_wup is rcv_nxt); the segment updates
    /// the window, so snd_wl1 is rcv_nxt if it occupies no sequence space;
    /// the new ACK is taken and moves the state; then the text and the FIN.
    /// An ACK that ends the entry ([`Host::ends_with_ack`]) moves snd_una
    /// alone: the RTT, RTO and recovery state it would update go with the
    /// entry, and leaving the table cancels the timer. LAST-ACK's last ACK
    /// ("delete the TCB", [`Host::on_acked`]) updates nothing at all: no
    /// field it would set (ts_recent, snd_wl1, snd_una) is read on the way
    /// out, and its text and FIN are never looked at. FIN-WAIT-1's with the
    /// peer's FIN and no text goes to TIME-WAIT by
    /// [`Host::fin_wait_1_ends`].
    ///
    /// ESTABLISHED (a response, the peer's FIN on it) and SYN-RECEIVED (the
    /// handshake's ACK with the request), two of a teardown's four predicted
    /// segments, take [`Host::predicted_in`] with the state a constant, so
    /// that its tests on the state (a dozen, each a load, a compare and a
    /// branch) fold away; the other states take it with the state read.
    #[inline(always)]
    pub(super) fn on_predicted(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        seg: &Segment,
    ) -> Next {
        match c.state {
            State::Established => {}
            State::SynReceived => {
                // The full path's first check that a predicted segment can fail.
                if self.handshake_echo_rejected(c, seg) {
                    return self.tsecr_rejected(now, c, seg);
                }
                self.established_by_ack(c);
            }
            State::LastAck if Self::ends_with_ack(State::LastAck, c, seg) => {
                return Next::Close(CloseReason::LastAckAcked);
            }
            state => return self.predicted_in(now, idx, c, seg, state),
        }
        self.predicted_in(now, idx, c, seg, State::Established)
    }

    /// [`Host::on_predicted`] past SYN-RECEIVED and LAST-ACK's last ACK,
    /// in `state` (`c.state`).
    #[inline(always)]
    fn predicted_in(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        seg: &Segment,
        state: State,
    ) -> Next {
        debug_assert_eq!(state, c.state);
        // rcv_wup is rcv_nxt, which the segment starts at: named by the
        // segment's own seq, the test `seq <= rcv_wup` folds away.
        Self::replace_ts_recent(c, seg, seg.seq_num());
        c.set_bit(bits::WL1_AT_RCV_NXT, seg.seq_len() == 0);
        if Self::ends_with_ack(state, c, seg) {
            c.snd_una = seg.ack_num();
            if state == State::FinWait1 && seg.len == 0 {
                return self.fin_wait_1_ends(c);
            }
        } else {
            self.on_new_ack(now, idx, c, seg, state);
        }
        self.after_ack(now, idx, c, seg, state)
    }

    /// FIN-WAIT-1's ACK of our FIN with the peer's FIN and no text (seed
    /// case 2), as [`Host::after_ack`] takes it in one go: FIN-WAIT-2
    /// (`on_acked`; the FIN spares an orphan the bucket check and the
    /// FIN-WAIT-2 timer), the FIN, which the prediction put at rcv_nxt,
    /// then our ACK at once, and TIME-WAIT. Always inlined since `handle`
    /// inlines `on_new_ack` (before that, inlined it cost more than it
    /// saved: LLVM laid `handle` out worse).
    #[inline(always)]
    fn fin_wait_1_ends(&mut self, c: &mut Conn) -> Next {
        c.state = State::FinWait2;
        c.rcv_nxt += 1;
        self.send_ack_inline(c);
        Next::TimeWait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::host::Event;
    use crate::segment::Ts;
    use crate::table::Found;
    use crate::tuple::Tuple;
    use proptest::prelude::*;

    /// One step of a generated script, on one connection to a listening host.
    #[derive(Clone, Debug)]
    enum Op {
        /// A segment from the peer: its flags, its seq as an offset from our
        /// rcv_nxt, its ack as an offset from our snd_una (or snd_nxt if
        /// `from_nxt`), its payload, and its TSval as an offset from the last
        /// one the peer sent.
        Peer {
            flags: Flags,
            seq: i32,
            from_nxt: bool,
            ack: i32,
            len: u32,
            ts: i32,
        },
        Send(u32),
        Close,
        Shutdown,
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let flags = prop::sample::select(vec![
            Flags::ACK,
            Flags::ACK,
            Flags::ACK,
            Flags::ACK | Flags::PSH,
            Flags::ACK | Flags::FIN,
            Flags::ACK | Flags::PSH | Flags::FIN,
            Flags::ACK | Flags::RST,
            Flags::RST,
            Flags::SYN,
            Flags::FIN,
        ]);
        prop_oneof![
            6 => (
                flags,
                prop_oneof![4 => Just(0), 1 => -2..3i32],
                (any::<bool>(), prop_oneof![2 => Just(0), 2 => 1..1400i32, 2 => -3..3i32]),
                prop_oneof![4 => Just(0u32), 1 => 1..800u32],
                prop_oneof![4 => 0..3i32, 1 => -5..1i32, 1 => Just(-100_000)],
            )
                .prop_map(|(flags, seq, (from_nxt, ack), len, ts)| Op::Peer {
                    flags,
                    seq,
                    from_nxt,
                    ack: if from_nxt { -ack.abs() } else { ack },
                    len,
                    ts,
                }),
            2 => (1..1500u32).prop_map(Op::Send),
            1 => Just(Op::Close),
            1 => Just(Op::Shutdown),
            2 => prop_oneof![Just(1u64), 1..400u64, Just(3_000u64)].prop_map(Op::Wait),
        ]
    }

    /// A listening host and its one peer, which the script drives.
    struct Run {
        host: Host,
        now: Time,
        peer_ts: u32,
        peer_seq_base: u32,
    }

    fn tuple() -> Tuple {
        Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], 40_000)
    }

    impl Run {
        /// A connection accepted on the listener: ESTABLISHED by a plain
        /// ACK, or left in SYN-RECEIVED (`established == false`) for the
        /// script's first segments, where the handshake's ACK with the
        /// request, the commonest predicted segment, takes the fast path.
        fn new(unpredicted: bool, timestamps: bool, established: bool) -> Run {
            let cfg = Config {
                timestamps,
                ..Config::default()
            };
            let mut host = Host::new(cfg);
            host.unpredicted = unpredicted;
            host.listen(80);
            let mut run = Run {
                host,
                now: Time::from_millis(1),
                peer_ts: 1_000,
                peer_seq_base: 5_000,
            };
            let syn = run.segment(Flags::SYN, 5_000, 0, 0);
            run.host.handle(run.now, &syn);
            let synack = run.host.transmits().next().expect("SYN-ACK");
            if established {
                let ack = run.segment(Flags::ACK, 5_001, synack.seq.wrapping_add(1), 0);
                run.host.handle(run.now, &ack);
            }
            run
        }

        fn segment(&self, flags: Flags, seq: u32, ack: u32, len: u32) -> Segment {
            let mut s = Segment::new(&tuple().reversed(), flags, seq, ack, len, 65_535);
            s.ts = Some(Ts {
                val: self.peer_ts,
                ecr: 0,
            });
            s
        }

        fn conn(&self) -> Option<Conn> {
            match self.host.table.find(&tuple()) {
                Some(Found::Conn(i)) => Some(self.host.table.conn(i)),
                _ => None,
            }
        }

        /// Applies `op`; returns what the host did, to compare.
        fn step(&mut self, op: &Op) -> String {
            let t = tuple();
            match *op {
                Op::Peer {
                    flags,
                    seq,
                    from_nxt,
                    ack,
                    len,
                    ts,
                } => {
                    let (rcv_nxt, snd_una) = match self.conn() {
                        Some(c) if from_nxt => (c.rcv_nxt.0, c.snd_nxt.0),
                        Some(c) => (c.rcv_nxt.0, c.snd_una.0),
                        None => (self.peer_seq_base, 0),
                    };
                    self.peer_ts = self.peer_ts.wrapping_add_signed(ts);
                    let seg = self.segment(
                        flags,
                        rcv_nxt.wrapping_add_signed(seq),
                        snd_una.wrapping_add_signed(ack),
                        len,
                    );
                    self.host.handle(self.now, &seg);
                }
                Op::Send(n) => drop(self.host.send(self.now, t, n)),
                Op::Close => drop(self.host.close(self.now, t)),
                Op::Shutdown => drop(self.host.shutdown(self.now, t)),
                Op::Wait(ms) => {
                    self.now = self.now + std::time::Duration::from_millis(ms);
                    self.host.handle_timeout(self.now);
                }
            }
            let out: Vec<Segment> = self.host.transmits().collect();
            let events: Vec<_> = self.host.events().collect();
            format!(
                "{:?} {out:?} {events:?} {:?} {:?} {:?} {}",
                self.conn(),
                self.host.state(&t),
                self.host.stats(),
                self.host.poll_timeout(),
                self.host.fw2_orphans,
            )
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// The predicted path and the full path leave the same record, send
        /// the same segments, report the same events and arm the same timers.
        #[test]
        fn predicted_path_matches_the_full_path(
            ops in prop::collection::vec(op(), 1..40),
            timestamps in any::<bool>(),
            established in any::<bool>(),
        ) {
            let mut full = Run::new(true, timestamps, established);
            let mut fast = Run::new(false, timestamps, established);
            for op in &ops {
                prop_assert_eq!(full.step(op), fast.step(op), "after {:?}", op);
            }
        }
    }

    /// The generated scripts reach the predicted path: a response's ACK and
    /// the ACK of our FIN take it.
    #[test]
    fn the_expected_acks_are_predicted() {
        let mut run = Run::new(false, true, true);
        let t = tuple();
        run.host.send(run.now, t, 100).expect("send");
        let data = run.host.transmits().next().expect("data");
        let c = run.conn().expect("conn");
        let ack = run.segment(Flags::ACK, c.rcv_nxt.0, data.seq.wrapping_add(100), 0);
        assert!(run.host.predicted(&c, &ack));
        run.host.handle(run.now, &ack);
        let c = run.conn().expect("conn");
        assert_eq!(c.snd_una, c.snd_nxt);
        run.host.close(run.now, t).expect("close");
        let fin = run.host.transmits().next().expect("FIN");
        let ack = run.segment(Flags::ACK, c.rcv_nxt.0, fin.seq.wrapping_add(1), 0);
        let c = run.conn().expect("conn");
        assert!(run.host.predicted(&c, &ack));
        // Not predicted: a duplicate ACK, and one beyond snd_nxt.
        let dup = run.segment(Flags::ACK, c.rcv_nxt.0, c.snd_una.0, 0);
        assert!(!run.host.predicted(&c, &dup));
        let ahead = run.segment(Flags::ACK, c.rcv_nxt.0, c.snd_nxt.0 + 1, 0);
        assert!(!run.host.predicted(&c, &ahead));
        run.host.handle(run.now, &ack);
        assert_eq!(run.host.state(&t), State::FinWait2);
    }

    /// Only an ACK of everything that ends the entry within its segment
    /// skips the RTT and timer bookkeeping: FIN-WAIT-1's with the peer's
    /// FIN, and LAST-ACK's, which closes the entry at once.
    #[test]
    fn acks_that_end_the_entry_are_told_apart() {
        let t = tuple();
        let mut run = Run::new(false, true, true);
        run.host.close(run.now, t).expect("close");
        let fin = run.host.transmits().next().expect("FIN");
        let c = run.conn().expect("conn");
        let all = fin.seq.wrapping_add(1);
        let fin_ack = run.segment(Flags::ACK | Flags::FIN, c.rcv_nxt.0, all, 0);
        assert!(Host::ends_with_ack(c.state, &c, &fin_ack));
        let ack = run.segment(Flags::ACK, c.rcv_nxt.0, all, 0);
        assert!(!Host::ends_with_ack(c.state, &c, &ack), "FIN-WAIT-2 stays");
        let short = run.segment(Flags::ACK | Flags::FIN, c.rcv_nxt.0, fin.seq, 0);
        assert!(
            !Host::ends_with_ack(c.state, &c, &short),
            "our FIN not acknowledged"
        );
        run.host.handle(run.now, &fin_ack);
        assert_eq!(run.host.state(&t), State::TimeWait);
        // fin_wait_1_ends acknowledges the peer's FIN at once.
        let out: Vec<Segment> = run.host.transmits().collect();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].flags, Flags::ACK);
        assert_eq!(out[0].ack, fin_ack.seq.wrapping_add(1));

        let mut run = Run::new(false, true, true);
        let c = run.conn().expect("conn");
        let peer_fin = run.segment(Flags::ACK | Flags::FIN, c.rcv_nxt.0, c.snd_nxt.0, 0);
        run.host.handle(run.now, &peer_fin);
        run.host.close(run.now, t).expect("close");
        let fin = run.host.transmits().next_back().expect("FIN");
        let c = run.conn().expect("conn");
        assert_eq!(c.state, State::LastAck);
        let last = run.segment(Flags::ACK, c.rcv_nxt.0, fin.seq.wrapping_add(1), 0);
        assert!(run.host.predicted(&c, &last) && Host::ends_with_ack(c.state, &c, &last));
        run.host.handle(run.now, &last);
        assert_eq!(run.host.state(&t), State::Closed);
        // on_predicted's early exit gives on_acked's verdict.
        let closed = run.host.events().any(|e| {
            matches!(
                e,
                Event::Closed {
                    from: State::LastAck,
                    reason: CloseReason::LastAckAcked,
                    ..
                }
            )
        });
        assert!(closed);
    }
}
