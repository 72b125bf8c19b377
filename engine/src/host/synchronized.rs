//! SEGMENT ARRIVES in SYN-RECEIVED and the synchronized states (RFC 9293
//! §3.10.7.4): the full path's checks in the RFC's order (sequence number,
//! RST, SYN, ACK), then the segment text and the FIN bit, which the
//! predicted path shares.

use super::{CloseReason, Event, Host, Next};
use crate::conn::{bits, flag, Conn};
use crate::push::push_with;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::state::State;
use crate::time::Time;

impl Host {
    /// Linux's `tcp_sequence`: acceptable unless it ends before rcv_nxt or starts
    /// beyond the window. (RFC 9293 §3.10.7.4's four cases reject a segment that ends
    /// exactly at rcv_nxt; Linux accepts it and acknowledges it as a duplicate.)
    fn acceptable(&self, c: &Conn, seg: &Segment) -> bool {
        seg.seq_end() >= c.rcv_nxt && c.rcv_nxt + self.cfg.rcv_wnd as u32 >= seg.seq_num()
    }

    /// Every synchronized state and SYN-RECEIVED (RFC 9293 §3.10.7.4, with
    /// RFC 5961 and Linux's `tcp_validate_incoming` / `tcp_rcv_state_process`).
    pub(super) fn on_segment(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
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

        if c.state == State::FinWait2 && c.has(flag::FW2_COUNTED) {
            return self.on_orphan_fin_wait_2(now, c, seg);
        }

        // RFC 7323 §5.3 R1 (`tcp_validate_incoming` checks it first): an old
        // duplicate by its timestamp is dropped with a rate-limited ACK; a
        // SYN gets the challenge ACK; an RST goes on to the usual checks; an
        // old pure ACK is dropped silently ([`Host::old_ack`]).
        if !f.rst() && self.paws_discard(c, seg) {
            if Self::old_ack(c, seg) {
                self.stats.paws_old_ack += 1;
                return Next::Keep;
            }
            self.stats.paws_rejected += 1;
            if f.syn() && c.state.is_synchronized() {
                self.challenge_ack(now, c);
            } else {
                self.dup_ack(now, c, seg);
            }
            return Next::Keep;
        }

        // A pure duplicate of the SYN that opened SYN-RECEIVED, past PAWS
        // (`tcp_check_req`).
        if c.state == State::SynReceived
            && f.syn()
            && !f.ack()
            && !f.rst()
            && seg.seq_num() == c.rcv_nxt - 1
        {
            return self.syn_again(now, idx, c, seg);
        }

        // `tcp_check_req` refuses an echo of no SYN-ACK of ours after PAWS
        // and after an unacceptable ACK, which the listener resets (fifth, below).
        if c.state == State::SynReceived
            && (!f.ack() || Self::acks_syn_ack(c, seg))
            && self.handshake_echo_rejected(c, seg)
        {
            return self.tsecr_rejected(now, c, seg);
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
            if !Self::acks_syn_ack(c, seg) {
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
            self.on_new_ack(now, idx, c, seg, c.state);
        } else if c.snd_una == seg.ack_num()
            && c.snd_una != c.snd_nxt
            && seg.seq_len() == 0
            && c.state != State::SynReceived
        {
            self.on_dup_ack(now, idx, c);
        }
        self.after_ack(now, idx, c, seg, c.state)
    }

    /// In SYN-RECEIVED, whether `seg`'s ACK is acceptable: it acknowledges
    /// our SYN-ACK (RFC 9293 §3.10.7.4, fifth); otherwise the listener resets.
    fn acks_syn_ack(c: &Conn, seg: &Segment) -> bool {
        c.snd_una < seg.ack_num() && seg.ack_num() <= c.snd_nxt
    }

    /// SYN-RECEIVED seeing the SYN again: our SYN-ACK was lost
    /// (`tcp_check_req`). It goes again at once, unless one went for a
    /// duplicate less than `invalid_ratelimit` ago (`tcp_oow_rate_limited`
    /// on the request's `last_oow_ack_time`), and the timer starts afresh
    /// from now (`mod_timer_pending` to `reqsk_timeout`), so a client
    /// resending its SYN keeps the request's own timer from firing. A
    /// retransmission all the same (`inet_rtx_syn_ack` counts it in
    /// `num_retrans`), but not an expiry: `num_timeout`, which doubles the
    /// timer and ends the request, stays.
    #[cold]
    fn syn_again(&mut self, now: Time, idx: u32, c: &mut Conn, seg: &Segment) -> Next {
        if !self.conn_oow_allowed(c, seg, now) {
            self.stats.oow_acks_suppressed += 1;
            return Next::Keep;
        }
        c.handshake_resent();
        self.resend_syn_ack(c);
        self.stats.retransmits += 1;
        let rto_us = self.syn_rto_us(c);
        self.arm_us(now, idx, c, rto_us);
        Next::Keep
    }

    /// `tcp_check_req` (Linux >= 6.15): in SYN-RECEIVED a segment whose
    /// TSecr echoes no SYN-ACK of ours ([`Host::handshake_echo_rejected`]) is
    /// answered with a rate-limited ACK, unless it is an RST, and dropped
    /// (`TSEcrRejected`); SYN-RECEIVED waits for a good one. The engine
    /// applies it to a simultaneous open's SYN-RECEIVED too, which Linux
    /// holds as a full socket without the check: only a forged echo differs.
    #[cold]
    pub(super) fn tsecr_rejected(&mut self, now: Time, c: &mut Conn, seg: &Segment) -> Next {
        self.stats.tsecr_rejected += 1;
        if !seg.flags.rst() {
            self.dup_ack(now, c, seg);
        }
        Next::Keep
    }

    /// The rest of [`Host::on_segment`] once the ACK is taken, shared with
    /// the predicted path: the states the ACK moves on ([`Host::on_acked`]),
    /// then the text and the FIN. An orphan whose FIN this acknowledges
    /// along with a FIN of the peer's (`on_acked` left its FIN-WAIT-2 to
    /// that FIN) is reset if the FIN is out of order: `tcp_rcv_state_process`,
    /// "out of order FIN after close()", TCPAbortOnData; at rcv_nxt it goes
    /// on to TIME-WAIT.
    ///
    /// `state` is `c.state`, passed on so that a caller that knows it (the
    /// predicted path's ESTABLISHED) has the tests on it folded away: read
    /// from the record, each is a load, a compare and a branch again after
    /// every call that sees `c`. Only `on_acked` moves it, out of
    /// FIN-WAIT-1, so the text and the FIN see the record's state then.
    #[inline(always)]
    pub(super) fn after_ack(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        seg: &Segment,
        state: State,
    ) -> Next {
        debug_assert_eq!(state, c.state);
        let fin_wait_1 = state == State::FinWait1;
        if let Some(next) = self.on_acked(now, idx, c, seg.flags, state) {
            return next;
        }
        let state = if fin_wait_1 { c.state } else { state };
        if fin_wait_1
            && seg.flags.fin()
            && state == State::FinWait2
            && c.has(flag::ORPHAN)
            && c.rcv_nxt < seg.seq_num() + seg.len
        {
            return self.abort_on_data(c, seg);
        }
        self.on_text_and_fin(now, idx, c, seg, state)
    }

    /// Data after close(), or an out-of-order FIN on the ACK of ours: Linux
    /// resets (TCPAbortOnData), RST <SEQ=SEG.ACK>, and the connection is done.
    #[cold]
    fn abort_on_data(&mut self, c: &Conn, seg: &Segment) -> Next {
        self.emit(&c.tuple, Flags::RST, seg.ack_num(), Seq(0), 0, None);
        self.stats.rst_sent += 1;
        self.stats.abort_on_data += 1;
        Next::Close(CloseReason::Aborted)
    }

    /// The segment text, the FIN bit, our ACK and what waited to be sent
    /// (RFC 9293 §3.10.7.4, seventh and eighth). `state`: `c.state`, as
    /// [`Host::after_ack`] takes it.
    #[inline(always)]
    fn on_text_and_fin(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        seg: &Segment,
        state: State,
    ) -> Next {
        debug_assert_eq!(state, c.state);
        let f = seg.flags;
        // Seventh, the segment text.
        let mut ack_now = false;
        if seg.len > 0 {
            let end = seg.seq_num() + seg.len;
            match state {
                State::FinWait1 | State::FinWait2 if c.has(flag::ORPHAN) && c.rcv_nxt < end => {
                    return self.abort_on_data(c, seg);
                }
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if seg.seq_num() <= c.rcv_nxt && c.rcv_nxt < end {
                        let len = end - c.rcv_nxt;
                        c.rcv_nxt = end;
                        c.set_bit(bits::DATA_RECEIVED, true);
                        push_with(&mut self.events, || Event::Received {
                            tuple: c.tuple,
                            len,
                        });
                    }
                    // No delayed ACK and no out-of-order queue: every data segment is
                    // acknowledged at once, duplicates and gaps with a duplicate ACK.
                    ack_now = true;
                }
                // CLOSE-WAIT, CLOSING, LAST-ACK: the peer's FIN is in, so text
                // at or beyond rcv_nxt cannot be; `tcp_rcv_state_process`
                // step 7 ignores it (no ACK scheduled). Text that starts
                // before rcv_nxt goes on to `tcp_data_queue`, a duplicate,
                // and is ACKed.
                _ => ack_now = seg.seq_num() < c.rcv_nxt,
            }
        }

        // Eighth, the FIN bit.
        let mut next = Next::Keep;
        let mut ack_on_the_spot = false;
        let mut delay_ack = false;
        if f.fin() {
            let fin_seq = seg.seq_num() + seg.len;
            if fin_seq == c.rcv_nxt && !state.fin_received() {
                c.rcv_nxt += 1;
                match state {
                    // tcp_fin: CLOSE-WAIT enters pingpong mode, so the ACK
                    // is delayed (and rides on our FIN if the application
                    // closes in time).
                    State::Established => {
                        c.state = State::CloseWait;
                        push_with(&mut self.events, || Event::PeerClosed { tuple: c.tuple });
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
                ack_now = true;
            } else if !state.fin_received() || seg.seq_num() < c.rcv_nxt {
                // A duplicate, or beyond a gap: acknowledge at once. Once the
                // FIN is in, a FIN at or beyond rcv_nxt is ignored with the
                // text (step 7 above).
                ack_now = true;
            }
        }
        if delay_ack {
            self.send_delayed_ack(now, idx, c);
        } else if ack_now {
            self.send_ack_inline(c);
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
}
