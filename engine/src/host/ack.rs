//! An acceptable ACK (RFC 9293 §3.10.7.4, fifth): RTT sample and
//! retransmission timer, the states our FIN's ACK moves on, and what waited
//! behind the retransmission.

use super::{CloseReason, Event, Host, Next};
use crate::conn::{flag, Conn};
use crate::push::push_with;
use crate::segment::{Flags, Segment};
use crate::state::State;
use crate::time::Time;

impl Host {
    /// SYN-RECEIVED's acceptable ACK: ESTABLISHED (RFC 9293 §3.10.7.4, fifth).
    /// The request's rate limit is not the socket's (`tcp_create_openreq_child`
    /// starts `last_oow_ack_time` at 0).
    #[inline(always)]
    pub(super) fn established_by_ack(&mut self, c: &mut Conn) {
        c.state = State::Established;
        c.last_oow_ms = 0;
        push_with(&mut self.events, || Event::Established { tuple: c.tuple });
    }

    /// The states an acceptable ACK moves on (RFC 9293 §3.10.7.4, fifth,
    /// by state): our FIN acknowledged ends FIN-WAIT-1, CLOSING and
    /// LAST-ACK. `Some` when the segment's processing stops here. Shared by
    /// the full path and the predicted one ([`Host::on_predicted`]).
    ///
    /// An orphan's FIN-WAIT-2 timeout is armed here only when the segment
    /// carries no FIN: with one, it nearly always ends the entry in
    /// TIME-WAIT a few lines later (seed case 2), which cancels the timer,
    /// so [`Host::after_ack`] arms it only if the entry is still an orphaned
    /// FIN-WAIT-2 after the FIN. Nothing between reads the timer. `state`:
    /// `c.state`, as `after_ack` takes it.
    #[inline(always)]
    pub(super) fn on_acked(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        f: Flags,
        state: State,
    ) -> Option<Next> {
        // A held FIN is not sent, so not acknowledged either.
        let all_acked = c.snd_una == c.snd_nxt && !c.has(flag::FIN_HELD);
        match state {
            // "In addition to the processing for the ESTABLISHED state, if the FIN
            // segment is now acknowledged, then enter FIN-WAIT-2."
            State::FinWait1 if all_acked => {
                c.state = State::FinWait2;
                // tcp_rcv_state_process: the orphan's FIN-WAIT-2, unless the
                // peer's FIN rides on this segment.
                if c.has(flag::ORPHAN) && !f.fin() {
                    return self.orphan_fin_wait_2(now, idx, c);
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

    /// Whether the predicted segment `seg` ([`Host::predicted`]: at
    /// rcv_nxt, acknowledging new data) acknowledges all we sent in a state
    /// where that ends the entry within the segment: LAST-ACK's last ACK
    /// ("delete the TCB"), CLOSING's (TIME-WAIT), or FIN-WAIT-1's with the
    /// peer's FIN, which FIN-WAIT-2 takes in order at once (seed case 2:
    /// TIME-WAIT, or CLOSED past `tcp_max_tw_buckets` or on an orphan's
    /// data). RFC 9293 §3.10.7.4, fifth and eighth. A held FIN is not
    /// acknowledged by it, so it ends nothing. `state`: `c.state`, which the
    /// caller may know.
    #[inline(always)]
    pub(super) fn ends_with_ack(state: State, c: &Conn, seg: &Segment) -> bool {
        debug_assert_eq!(state, c.state);
        let ends = match state {
            State::LastAck | State::Closing => true,
            State::FinWait1 => seg.flags.fin(),
            _ => false,
        };
        ends && seg.ack_num() == c.snd_nxt && !c.has(flag::FIN_HELD)
    }

    /// New data acknowledged by `seg`: sample the RTT, re-arm or stop the
    /// retransmission timer. The sample is the timed segment's (Karn: never a
    /// retransmitted one) or, failing that, the TSecr's (`tcp_rtt_tsopt_us`,
    /// RFC 7323 §4: an echo names the transmission it answers). The backoff is
    /// cleared only with a valid RTT sample (Linux `tcp_ack_update_rtt`:
    /// "RFC6298: only reset backoff on valid RTT measurement"): without
    /// timestamps an ACK of retransmitted data keeps the backed-off RTO.
    /// Always inlined: in `handle` (SYN-SENT's SYN-ACK and the predicted
    /// path, three segments of a teardown) the call's saves, restores and
    /// arguments cost 0.3 % of the simulation's instructions. Inlined at
    /// one of the two call sites alone, it saved less (0.2 %) or nothing.
    /// `state`: `c.state`, which the caller may know ([`Host::after_ack`]).
    #[inline(always)]
    pub(super) fn on_new_ack(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        seg: &Segment,
        state: State,
    ) {
        debug_assert_eq!(state, c.state);
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
            // An orphan's FIN acknowledged: `on_segment` starts its
            // FIN-WAIT-2 before it returns, whose timer (the mini-socket's
            // timeout, or a long one's full-socket part) takes
            // this timer over (`Wheel::reset`: the key and place a cancel
            // here and an insert there would give), or, past
            // tcp_max_tw_buckets, closes it, which cancels it. When the
            // segment also carries the peer's FIN, the timer stays until
            // TIME-WAIT or the close cancels it, or `after_ack` arms the
            // FIN-WAIT-2 timeout over it (the FIN was out of order).
            let fin_wait_2_next =
                state == State::FinWait1 && c.has(flag::ORPHAN) && !c.has(flag::FIN_HELD);
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
