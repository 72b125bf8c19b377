//! SEGMENT ARRIVES (RFC 9293 §3.10.7): a segment routed by the state of its
//! entry: CLOSED (no entry), LISTEN, SYN-SENT, and every other state in
//! RFC 9293 §3.10.7.4's order of checks.

use super::{CloseReason, Event, Host, Next};
use crate::conn::{bits, flag, Conn};
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::state::State;
use crate::table::Found;
use crate::time::Time;
use crate::tuple::Tuple;

/// The two steps of [`Host::prefetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// The index bucket the lookup reads first, and for a segment that may
    /// end the entry the bucket of its local port, which the end releases.
    Bucket,
    /// The entry the bucket points to (the bucket must be in cache by then
    /// or this step waits for it).
    Entry,
}

impl Host {
    /// A hint that `seg` will arrive soon, in two steps a few segments apart
    /// ([`Prefetch::Bucket`] first, [`Prefetch::Entry`] later): a driver
    /// that sees its queue ahead overlaps the cache misses of the lookups to
    /// come with the work of this one, as DPDK's bulk lookup and VPP's vectors
    /// do. It changes nothing but the cache, and does nothing for a table
    /// small enough to stay in cache, where it would only cost the hashing.
    /// Always inlined, so that a small table's early return costs a compare
    /// and no call.
    #[inline(always)]
    pub fn prefetch(&self, seg: &Segment, step: Prefetch) {
        if self.table.len() < super::prefetch::FROM {
            return;
        }
        let tuple = seg.receiver_tuple();
        match step {
            Prefetch::Bucket => {
                self.table.prefetch_bucket(&tuple);
                // Only a segment with no SYN, FIN or data (LAST-ACK's final
                // ACK, an RST) can end an entry and release its port.
                let f = seg.flags;
                if !f.syn() && !f.fin() && seg.len == 0 {
                    self.prefetch_port(&tuple);
                }
            }
            Prefetch::Entry => self.table.prefetch_entry(&tuple),
        }
    }

    /// Processes one arriving segment.
    pub fn handle(&mut self, now: Time, seg: &Segment) {
        let now = self.begin(now);
        self.stats.segments_received += 1;
        let tuple = seg.receiver_tuple();
        let hash = self.table.hash(&tuple);
        match self.table.find_hashed(&tuple, hash) {
            Some(Found::Conn(idx)) => {
                let mut c = self.table.conn_named(idx, tuple);
                let before = c.state;
                let next = if c.state == State::SynSent {
                    self.on_syn_sent(now, idx, &mut c, seg)
                } else {
                    self.on_segment(now, idx, &mut c, seg)
                };
                self.commit_hashed(now, idx, c, before, next, Some(hash));
            }
            Some(Found::TimeWait(pos)) => {
                let e = self.table.time_wait(pos);
                let verdict = self.on_time_wait(now, pos, &e, seg);
                self.act_on_time_wait(now, pos, &e, seg, verdict);
            }
            None => self.on_closed(now, tuple, hash, seg),
        }
    }

    /// CLOSED (no entry): a SYN to a listening port opens a connection
    /// (RFC 9293 §3.10.7.2); anything else draws a reset. `hash`: the
    /// tuple's, from the lookup that found nothing.
    fn on_closed(&mut self, now: Time, tuple: Tuple, hash: u64, seg: &Segment) {
        let f = seg.flags;
        if f.syn() && !f.ack() && !f.rst() && !f.fin() && self.is_listening(tuple.local_port) {
            let iss = self.isn(now, &tuple);
            self.accept_syn(now, tuple, hash, seg, iss);
        } else {
            self.reset_for(now, seg);
        }
    }

    /// LISTEN takes a SYN (RFC 9293 §3.10.7.2): SYN-RECEIVED with ISS `iss`, and
    /// our SYN-ACK; dropped silently when the table is full. `hash`: the
    /// tuple's [`crate::table::Table::hash`].
    pub(super) fn accept_syn(
        &mut self,
        now: Time,
        tuple: Tuple,
        hash: u64,
        seg: &Segment,
        iss: Seq,
    ) {
        if self.table.len() >= self.cfg.max_connections {
            self.stats.syn_dropped += 1;
            return;
        }
        let mut c = Conn::new(tuple, State::SynReceived, iss);
        c.rcv_nxt = seg.seq_num() + 1;
        // RFC 7323 §3.2: timestamps when both offer them; the SYN's TSval is
        // the first ts_recent (`tcp_openreq_init`).
        if let (true, Some(ts)) = (self.cfg.timestamps, seg.ts) {
            c.flags |= flag::TS_OK;
            c.ts_recent = ts.val;
        }
        let idx = self.table.insert_conn_hashed(c, hash);
        self.send_new(now, idx, &mut c, Flags::SYN | Flags::ACK, 0);
        self.table.set_new_conn(idx, &c);
        self.stats.opened_passive += 1;
        self.enter(tuple, State::Closed, State::SynReceived);
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3).
    fn on_syn_sent(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;
        // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit
        // is set) <SEQ=SEG.ACK><CTL=RST>". This is how a new client answers the
        // challenge ACK of an old LAST-ACK incarnation (seed case 6).
        if f.ack() && (seg.ack_num() <= c.snd_una || c.snd_nxt < seg.ack_num()) {
            if !f.rst() {
                self.emit(&c.tuple, Flags::RST, seg.ack_num(), Seq(0), 0, None);
                self.stats.rst_sent += 1;
            }
            return Next::Keep;
        }
        if f.rst() {
            if f.ack() {
                self.stats.rst_received += 1;
                return Next::Close(CloseReason::Reset);
            }
            return Next::Keep;
        }
        if !f.syn() {
            return Next::Keep;
        }
        c.rcv_nxt = seg.seq_num() + 1;
        // Our SYN offered timestamps: kept if the answer has them too.
        match seg.ts {
            Some(ts) if c.has(flag::TS_OK) => c.ts_recent = ts.val,
            _ => c.flags &= !flag::TS_OK,
        }
        if f.ack() {
            self.on_new_ack(now, idx, c, seg);
            c.state = State::Established;
            self.send_ack(c);
            self.events.push(Event::Established { tuple: c.tuple });
        } else {
            // Simultaneous open: SYN-RECEIVED, resend our SYN with an ACK.
            c.state = State::SynReceived;
            self.resend_syn_ack(c);
        }
        Next::Keep
    }

    /// Linux's `tcp_sequence`: acceptable unless it ends before rcv_nxt or starts
    /// beyond the window. (RFC 9293 §3.10.7.4's four cases reject a segment that ends
    /// exactly at rcv_nxt; Linux accepts it and acknowledges it as a duplicate.)
    fn acceptable(&self, c: &Conn, seg: &Segment) -> bool {
        seg.seq_end() >= c.rcv_nxt && c.rcv_nxt + self.cfg.rcv_wnd as u32 >= seg.seq_num()
    }

    /// Every synchronized state and SYN-RECEIVED (RFC 9293 §3.10.7.4, with
    /// RFC 5961 and Linux's `tcp_validate_incoming` / `tcp_rcv_state_process`).
    fn on_segment(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        if self.predicted(c, seg) {
            return self.on_predicted(now, idx, c, seg);
        }
        self.on_unpredicted(now, idx, c, seg)
    }

    /// [`Host::on_segment`] for a segment header prediction does not take:
    /// out of line, so that `handle` keeps the predicted path's registers.
    #[inline(never)]
    fn on_unpredicted(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;

        // SYN-RECEIVED seeing the SYN again: our SYN-ACK was lost (tcp_check_req).
        if c.state == State::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && seg.seq_num() == c.rcv_nxt - 1
        {
            self.resend_syn_ack(c);
            return Next::Keep;
        }

        if c.state == State::FinWait2 && c.has(flag::ORPHAN) {
            return self.on_orphan_fin_wait_2(now, c, seg);
        }

        // RFC 7323 §5.3 R1 (`tcp_validate_incoming` checks it first): an old
        // duplicate by its timestamp is dropped with a rate-limited ACK; a
        // SYN gets the challenge ACK; an RST goes on to the usual checks.
        if !f.rst() && self.paws_discard(c, seg) {
            self.stats.paws_rejected += 1;
            if f.syn() && c.state.is_synchronized() {
                self.challenge_ack(now, c);
            } else {
                self.dup_ack(now, c, seg);
            }
            return Next::Keep;
        }

        // First, check the sequence number.
        if !self.acceptable(c, seg) {
            if f.rst() {
                // tcp_reset_check: in CLOSE-WAIT, LAST-ACK and CLOSING the peer's RST
                // may carry its FIN's sequence number, rcv_nxt - 1.
                let fin_seen =
                    matches!(c.state, State::CloseWait | State::LastAck | State::Closing);
                if fin_seen && seg.seq_num() == c.rcv_nxt - 1 {
                    self.stats.rst_received += 1;
                    return Next::Close(CloseReason::Reset);
                }
                return Next::Keep;
            }
            if f.syn() && c.state.is_synchronized() {
                self.challenge_ack(now, c);
            } else {
                self.dup_ack(now, c, seg);
            }
            return Next::Keep;
        }

        // Second, the RST bit (RFC 5961 §3.2): exactly rcv_nxt resets, anything
        // else in the window draws a challenge ACK.
        if f.rst() {
            if seg.seq_num() == c.rcv_nxt {
                self.stats.rst_received += 1;
                return Next::Close(CloseReason::Reset);
            }
            self.challenge_ack(now, c);
            return Next::Keep;
        }

        // Fourth, the SYN bit (RFC 5961 §4): a SYN in a synchronized state, whatever
        // its sequence number, gets a challenge ACK and the connection stays. A new
        // client reusing the 4-tuple answers that ACK with the RST that ends us
        // (seed case 6).
        if f.syn() {
            self.challenge_ack(now, c);
            return Next::Keep;
        }

        // Fifth, the ACK field.
        if !f.ack() {
            return Next::Keep;
        }
        if c.state == State::SynReceived {
            if !(c.snd_una < seg.ack_num() && seg.ack_num() <= c.snd_nxt) {
                // <SEQ=SEG.ACK><CTL=RST>
                self.emit(&c.tuple, Flags::RST, seg.ack_num(), Seq(0), 0, None);
                self.stats.rst_sent += 1;
                return Next::Keep;
            }
            self.established_by_ack(c);
        }
        if c.snd_nxt < seg.ack_num() {
            // It acknowledges something not yet sent: ACK and drop (RFC 5961
            // §5.2). Linux answers with a challenge ACK, rate-limited per entry
            // even when the segment carries a FIN or data.
            self.challenge_ack(now, c);
            return Next::Keep;
        }
        // An acceptable ACK records the segment's timestamp (`tcp_ack`); so
        // does an old one that takes `tcp_rcv_established`'s fast path
        // (ESTABLISHED, a plain ACK at rcv_nxt), which records it first. An
        // acceptable ACK may also update the send window
        // (`tcp_may_update_window`: it acknowledges new data or starts after
        // snd_wl1; windows are not modelled), which moves snd_wl1 to its seq.
        // rcv_wup: what our last ACK acknowledged. The engine acknowledges as
        // it goes, except the peer's FIN while its ACK is delayed.
        let rcv_wup = if c.bit(bits::DELACK) {
            c.rcv_nxt - 1
        } else {
            c.rcv_nxt
        };
        let fast_path = c.state == State::Established
            && Flags(f.0 & !Flags::PSH.0) == Flags::ACK
            && seg.seq_num() == rcv_wup;
        if c.snd_una <= seg.ack_num() || fast_path {
            Self::replace_ts_recent(c, seg, rcv_wup);
        }
        if c.snd_una <= seg.ack_num() {
            let after_wl1 = if c.bit(bits::WL1_AT_RCV_NXT) {
                rcv_wup < seg.seq_num()
            } else {
                rcv_wup <= seg.seq_num()
            };
            let starts_here = seg.seq_num() == rcv_wup && seg.seq_len() == 0;
            if c.snd_una < seg.ack_num() || after_wl1 {
                c.set_bit(bits::WL1_AT_RCV_NXT, starts_here);
            } else if seg.seq_len() > 0 {
                c.set_bit(bits::WL1_AT_RCV_NXT, false);
            }
        }
        if c.snd_una < seg.ack_num() {
            self.on_new_ack(now, idx, c, seg);
        } else if c.snd_una == seg.ack_num()
            && c.snd_una != c.snd_nxt
            && seg.seq_len() == 0
            && c.state != State::SynReceived
        {
            self.on_dup_ack(now, idx, c);
        }
        if let Some(next) = self.on_acked(now, idx, c, f) {
            return next;
        }
        self.on_text_and_fin(now, idx, c, seg)
    }

    /// The rest of [`Host::on_segment`] once the ACK is taken: the segment
    /// text, the FIN bit, our ACK and what waited to be sent (RFC 9293
    /// §3.10.7.4, seventh and eighth). Shared with the predicted path.
    #[inline(always)]
    pub(super) fn on_text_and_fin(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        seg: &Segment,
    ) -> Next {
        let f = seg.flags;
        // Seventh, the segment text.
        let mut ack_now = false;
        if seg.len > 0 {
            let end = seg.seq_num() + seg.len;
            match c.state {
                State::FinWait1 | State::FinWait2 if c.has(flag::ORPHAN) && c.rcv_nxt < end => {
                    // Data after close(): Linux resets (TCPAbortOnData), RST <SEQ=SEG.ACK>.
                    self.emit(&c.tuple, Flags::RST, seg.ack_num(), Seq(0), 0, None);
                    self.stats.rst_sent += 1;
                    self.stats.abort_on_data += 1;
                    return Next::Close(CloseReason::Aborted);
                }
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if seg.seq_num() <= c.rcv_nxt && c.rcv_nxt < end {
                        let len = end - c.rcv_nxt;
                        c.rcv_nxt = end;
                        c.set_bit(bits::DATA_RECEIVED, true);
                        self.events.push(Event::Received {
                            tuple: c.tuple,
                            len,
                        });
                    }
                    // No delayed ACK and no out-of-order queue: every data segment is
                    // acknowledged at once, duplicates and gaps with a duplicate ACK.
                    ack_now = true;
                }
                _ => ack_now = true,
            }
        }

        // Eighth, the FIN bit.
        let mut next = Next::Keep;
        let mut ack_on_the_spot = false;
        let mut delay_ack = false;
        if f.fin() {
            let fin_seq = seg.seq_num() + seg.len;
            if fin_seq == c.rcv_nxt && !c.state.fin_received() {
                c.rcv_nxt += 1;
                match c.state {
                    // tcp_fin: CLOSE-WAIT enters pingpong mode, so the ACK
                    // is delayed (and rides on our FIN if the application
                    // closes in time).
                    State::Established => {
                        c.state = State::CloseWait;
                        self.events.push(Event::PeerClosed { tuple: c.tuple });
                        delay_ack = true;
                    }
                    // Our FIN is not acknowledged yet: simultaneous close.
                    // Linux ACKs on the spot here (tcp_fin: tcp_send_ack).
                    State::FinWait1 => {
                        c.state = State::Closing;
                        ack_on_the_spot = true;
                    }
                    // Seed case 2: when the peer's FIN also acknowledged ours, FIN-WAIT-1
                    // moved to FIN-WAIT-2 above and goes on to TIME-WAIT here, within
                    // this one segment.
                    State::FinWait2 => next = Next::TimeWait,
                    _ => {}
                }
            }
            // In order, a duplicate or beyond a gap: acknowledge at once.
            ack_now = true;
        }
        if delay_ack {
            self.send_delayed_ack(now, idx, c);
        } else if ack_now {
            self.send_ack(c);
            if ack_on_the_spot {
                self.sent_acks = self.out.len();
            }
        } else if self.delayed_ack_due_soon(now, c) {
            // tcp_ack_snd_check -> tcp_send_delayed_ack: "If delack timer is
            // about to expire, send ACK now."
            self.send_ack(c);
        }
        if matches!(next, Next::Keep) {
            self.release_held(now, idx, c);
        }
        next
    }

    /// SYN-RECEIVED's acceptable ACK: ESTABLISHED (RFC 9293 §3.10.7.4, fifth).
    #[inline(always)]
    pub(super) fn established_by_ack(&mut self, c: &mut Conn) {
        c.state = State::Established;
        self.events.push(Event::Established { tuple: c.tuple });
    }

    /// The states an acceptable ACK moves on (RFC 9293 §3.10.7.4, fifth,
    /// by state): our FIN acknowledged ends FIN-WAIT-1, CLOSING and
    /// LAST-ACK. `Some` when the segment's processing stops here. Shared by
    /// the full path and the predicted one ([`Host::on_predicted`]).
    #[inline(always)]
    pub(super) fn on_acked(&mut self, now: Time, idx: u32, c: &mut Conn, f: Flags) -> Option<Next> {
        // A held FIN is not sent, so not acknowledged either.
        let all_acked = c.snd_una == c.snd_nxt && !c.has(flag::FIN_HELD);
        match c.state {
            // "In addition to the processing for the ESTABLISHED state, if the FIN
            // segment is now acknowledged, then enter FIN-WAIT-2."
            State::FinWait1 if all_acked => {
                c.state = State::FinWait2;
                if c.has(flag::ORPHAN) {
                    // tcp_rcv_state_process: an orphan becomes a FIN_WAIT2 mini-socket
                    // (tcp_time_wait), unless the peer's FIN rides on this segment;
                    // past tcp_max_tw_buckets that fails and the socket is done.
                    if !f.fin() && self.tw_buckets_full() {
                        self.stats.time_wait_overflow += 1;
                        return Some(Next::Close(CloseReason::TimeWaitOverflow));
                    }
                    self.become_fin_wait_2_mini_socket(now, idx, c);
                }
                None
            }
            // "If the ACK acknowledges our FIN, then enter the TIME-WAIT state."
            State::Closing if all_acked => Some(Next::TimeWait),
            // "The only thing that can arrive in this state is an acknowledgment of
            // our FIN. If our FIN is now acknowledged, delete the TCB."
            State::LastAck if all_acked => Some(Next::Close(CloseReason::LastAckAcked)),
            _ => None,
        }
    }

    /// New data acknowledged by `seg`: sample the RTT, re-arm or stop the
    /// retransmission timer. The sample is the timed segment's (Karn: never a
    /// retransmitted one) or, failing that, the TSecr's (`tcp_rtt_tsopt_us`,
    /// RFC 7323 §4: an echo names the transmission it answers). The backoff is
    /// cleared only with a valid RTT sample (Linux `tcp_ack_update_rtt`:
    /// "RFC6298: only reset backoff on valid RTT measurement"): without
    /// timestamps an ACK of retransmitted data keeps the backed-off RTO.
    pub(super) fn on_new_ack(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) {
        let ack = seg.ack_num();
        // Linux samples per skb it frees: an ACK that covers a FIN's data
        // but not the FIN frees nothing, so its echo times nothing.
        let fin_skb_partly_acked =
            c.has(flag::FIN_WITH_DATA) && !c.has(flag::FIN_HELD) && ack + 1 == c.snd_nxt;
        let sample = c.take_timing(now.as_micros() as u32).or_else(|| {
            (!fin_skb_partly_acked)
                .then(|| self.ts_rtt_us(c, seg))
                .flatten()
        });
        if let Some(m) = sample {
            c.rtt_sample(m, &self.timeouts);
            c.set_backoff(0);
        }
        self.on_snd_una_advanced(c, ack);
        c.snd_una = ack;
        c.set_rto_fired(false);
        if c.snd_una == c.snd_nxt {
            // An orphan's FIN acknowledged: `on_segment` makes it the
            // FIN-WAIT-2 mini-socket before it returns, whose timeout takes
            // this timer over (`Wheel::reset`: the key and place a cancel
            // here and an insert there would give), or, past
            // tcp_max_tw_buckets, closes it, which cancels it.
            let fin_wait_2_next =
                c.state == State::FinWait1 && c.has(flag::ORPHAN) && !c.has(flag::FIN_HELD);
            if !fin_wait_2_next {
                self.disarm(c);
            }
        } else {
            c.retrans_stamp_ms = now.stamp_ms();
            let rto_us = c.backed_off_rto_us(&self.timeouts);
            self.arm_us(now, idx, c, rto_us);
        }
    }

    /// Out of recovery, what waited behind the retransmission goes, the FIN
    /// riding on the data: after the segment's own processing, as Linux's
    /// `tcp_data_snd_check` at the end of `tcp_rcv_state_process`.
    /// Inlined: nothing is held on most segments, and the call cost more
    /// than the test.
    #[inline(always)]
    pub(super) fn release_held(&mut self, now: Time, idx: u32, c: &mut Conn) {
        if c.holds_back() && !c.in_recovery() {
            self.send_held(now, idx, c);
        }
    }

    /// [`Host::release_held`] once something is held and may go.
    #[inline(never)]
    fn send_held(&mut self, now: Time, idx: u32, c: &mut Conn) {
        let len = c.take_held();
        if len > 0 {
            self.send_new(now, idx, c, Flags::ACK | Flags::PSH, len);
        }
        if c.has(flag::FIN_HELD) {
            c.flags &= !flag::FIN_HELD;
            self.send_fin(now, idx, c);
        }
    }
}
