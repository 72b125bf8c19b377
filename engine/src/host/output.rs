//! What the host sends: new sequence space, our FIN, ACKs (duplicate,
//! out-of-window and RFC 5961 challenge ACKs, rate-limited as Linux's
//! `tcp_oow_rate_limited`), and resets for segments that match nothing.

use super::Host;
use std::time::Duration;

use crate::config::ATO_MIN;
use crate::conn::{bits, flag, Conn};
use crate::push::push_with;
use crate::segment::{Flags, Segment, Ts};
use crate::seq::Seq;
use crate::time::Time;
use crate::tuple::Tuple;

/// A delayed ACK with `ato` 0 waits for the next timer tick.
const NEXT_TICK: Duration = Duration::from_millis(1);

impl Host {
    /// Queues a segment; `ecr` makes it carry the timestamps option
    /// (RFC 7323 §3) with our clock and that echo.
    #[inline(never)]
    pub(super) fn emit(
        &mut self,
        tuple: &Tuple,
        flags: Flags,
        seq: Seq,
        ack: Seq,
        len: u32,
        ecr: Option<u32>,
    ) {
        self.push_segment(tuple, flags, seq, ack, len, ecr);
    }

    /// [`Host::emit`] on connection `c`: its tuple, with its timestamps if
    /// they were negotiated. Taking `c` whole, the call passes everything in
    /// registers (the tuple and echo as arguments put two on the stack).
    #[inline(never)]
    pub(super) fn emit_on(&mut self, c: &Conn, flags: Flags, seq: Seq, ack: Seq, len: u32) {
        self.push_segment(&c.tuple, flags, seq, ack, len, c.ts_echo());
    }

    /// `tcp_send_active_reset`: an RST of the socket at snd_nxt
    /// (`tcp_acceptable_seq`), acknowledging rcv_nxt, with its timestamps.
    pub(super) fn send_active_reset(&mut self, c: &Conn) {
        self.emit_on(c, Flags::RST | Flags::ACK, c.snd_nxt, c.rcv_nxt, 0);
        self.stats.rst_sent += 1;
    }

    /// A pure ACK on `c`, <SEQ=snd_nxt><ACK=rcv_nxt> (`tcp_send_ack`), about
    /// three a teardown: [`Host::emit_on`] with its flags, window and numbers
    /// known here, so the RST and ACK tests fold away. Always inlined: out of
    /// line, its calls from `handle` cost 0.18 % of the simulation's
    /// instructions more.
    #[inline(always)]
    fn emit_ack(&mut self, c: &Conn) {
        self.push_segment(&c.tuple, Flags::ACK, c.snd_nxt, c.rcv_nxt, 0, c.ts_echo());
    }

    /// The body of [`Host::emit`], [`Host::emit_on`] and [`Host::emit_ack`].
    /// The segment is built in its slot of the queue ([`push_with`]), not on
    /// the stack and then copied.
    #[inline(always)]
    fn push_segment(
        &mut self,
        tuple: &Tuple,
        flags: Flags,
        seq: Seq,
        ack: Seq,
        len: u32,
        ecr: Option<u32>,
    ) {
        // A pure ACK still queued for this connection is implied by any later
        // segment that carries ACK: when the application answers within the same
        // step (a response, or the passive closer's FIN), the ACK rides on it, as
        // Linux's delayed ACK makes it do.
        if flags.ack() && !flags.rst() && self.out.len() > self.sent_acks {
            if let Some(last) = self.out.last() {
                if last.flags == Flags::ACK && last.len == 0 && last.sent_on(tuple) {
                    self.out.pop();
                    self.stats.segments_sent -= 1;
                    self.stats.acks_coalesced += 1;
                }
            }
        }
        self.stats.segments_sent += 1;
        // Linux's RSTs advertise no window (tcp_v4_send_reset).
        let wnd = if flags.rst() { 0 } else { self.cfg.rcv_wnd };
        let ts = ecr.map(|ecr| Ts {
            val: self.ts_val(tuple),
            ecr,
        });
        push_with(&mut self.out, || Segment {
            ts,
            ..Segment::new(tuple, flags, seq.0, ack.0, len, wnd)
        });
    }

    /// Sends new sequence space (SYN, data or FIN) and keeps the retransmission
    /// timer running for the oldest outstanding byte. The segment is built
    /// here, not through [`Host::emit_on`]: this function saves the registers
    /// a segment needs already, and a call would save them again. Out of
    /// line for the data and FIN an ACK releases (`ack.rs`); the five new
    /// segments of a clean teardown go through [`Host::send_new_inline`].
    #[inline(never)]
    pub(super) fn send_new(&mut self, now: Time, idx: u32, c: &mut Conn, flags: Flags, len: u32) {
        self.send_new_inline(now, idx, c, flags, len);
    }

    /// [`Host::send_new`] in its caller: for the application's calls (the
    /// SYN, data, our FIN) and `accept_syn`'s SYN-ACK, whose connection then
    /// never leaves their frame for a call.
    #[inline(always)]
    pub(super) fn send_new_inline(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        flags: Flags,
        len: u32,
    ) {
        let ack = if flags.ack() { c.rcv_nxt } else { Seq(0) };
        self.push_segment(&c.tuple, flags, c.snd_nxt, ack, len, c.ts_echo());
        let idle = c.snd_una == c.snd_nxt;
        if flags.ack() {
            if idle && c.bit(bits::DELACK) {
                // The delayed ACK rides on this segment (`tcp_event_ack_sent`)
                // and its timer is re-armed below as the retransmission
                // timer: one move on the wheel, to the key and place that
                // cancelling it and arming anew would give (`Wheel::reset`).
                c.set_bit(bits::DELACK, false);
            } else {
                self.ack_sent(c);
            }
        }
        c.snd_nxt += len + flags.syn() as u32 + flags.fin() as u32;
        c.add_pkt();
        if idle {
            c.start_timing(now.as_micros() as u32);
            // `now` is the time `begin` returned, whose stamp it keeps.
            debug_assert_eq!(now, self.now);
            c.retrans_stamp_ms = self.now_ms;
            let rto_us = c.backed_off_rto_us(&self.timeouts);
            self.arm_us(now, idx, c, rto_us);
        }
    }

    /// Sends our FIN. When the application's last data is still queued unsent,
    /// the FIN rides on it, as Linux's `tcp_send_fin` sets FIN on the tail of the
    /// write queue.
    pub(super) fn send_fin(&mut self, now: Time, idx: u32, c: &mut Conn) {
        self.send_fin_inline(now, idx, c);
    }

    /// [`Host::send_fin`] in its caller, with [`Host::send_new_inline`]: for
    /// the application's close(), as `send_new_inline` is for its send().
    #[inline(always)]
    pub(super) fn send_fin_inline(&mut self, now: Time, idx: u32, c: &mut Conn) {
        if c.must_hold() {
            c.flags |= flag::FIN_HELD;
            return;
        }
        if let Some(last) = self.out.last_mut() {
            if last.len > 0
                && last.flags.ack()
                && !last.flags.fin()
                && !last.flags.syn()
                && last.seq_num() + last.len == c.snd_nxt
                && last.sent_on(&c.tuple)
            {
                last.flags = last.flags | Flags::FIN;
                c.flags |= flag::FIN_WITH_DATA;
                c.snd_nxt += 1;
                self.stats.fins_on_data += 1;
                return;
            }
        }
        self.send_new_inline(now, idx, c, Flags::FIN | Flags::ACK, 0);
    }

    /// Our SYN-ACK once more, outside the retransmission timer: a simultaneous
    /// open's answer, or the reply to a retransmitted SYN (`tcp_check_req`).
    pub(super) fn resend_syn_ack(&mut self, c: &Conn) {
        self.emit_on(c, Flags::SYN | Flags::ACK, c.snd_una, c.rcv_nxt, 0);
    }

    /// A pure ACK now, out of line: for the rarer callers, whose code would
    /// grow by the whole segment build in each ([`Host::send_ack_inline`]).
    #[inline(never)]
    pub(super) fn send_ack(&mut self, c: &mut Conn) {
        self.send_ack_inline(c);
    }

    /// [`Host::send_ack`] in its caller: for the ACKs of a teardown's
    /// segments in `handle` (SYN-SENT's, the request's, FIN-WAIT-1's last),
    /// three a teardown, where the call's saves, restores and moves cost
    /// 0.6 % of the simulation's instructions.
    #[inline(always)]
    pub(super) fn send_ack_inline(&mut self, c: &mut Conn) {
        self.emit_ack(c);
        self.ack_sent(c);
    }

    /// `tcp_send_delayed_ack`: the ACK waits for the delayed-ACK timeout,
    /// Linux's `ato`: `TCP_ATO_MIN` (40 ms) once data has arrived, and 0
    /// before, which fires at the next tick (Linux measured: 2.6 ms at HZ
    /// 250; the engine's tick is 1 ms). Anything we send meanwhile carries the
    /// ACK and cancels it. The connection has one timer: while the
    /// retransmission timer runs, the ACK goes at once instead. Always
    /// inlined: its one caller on the path of a teardown is `handle`
    /// (ESTABLISHED's FIN), where the call cost more than the body.
    #[inline(always)]
    pub(super) fn send_delayed_ack(&mut self, now: Time, idx: u32, c: &mut Conn) {
        if !self.cfg.delayed_ack || c.timer.is_some() {
            self.send_ack(c);
            return;
        }
        let ato = if c.bit(bits::DATA_RECEIVED) {
            ATO_MIN
        } else {
            NEXT_TICK
        };
        self.arm(now, idx, c, ato);
        c.set_bit(bits::DELACK, true);
    }

    /// Whether a scheduled delayed ACK is due within a quarter of its `ato`
    /// (at once for an `ato` of 0, whose timer is due at the current tick).
    pub(super) fn delayed_ack_due_soon(&self, now: Time, c: &Conn) -> bool {
        let Some(key) = c.timer.filter(|_| c.bit(bits::DELACK)) else {
            return false;
        };
        if !c.bit(bits::DATA_RECEIVED) {
            return true;
        }
        let quarter = ATO_MIN.as_millis() as u64 / 4;
        self.wheel.deadline(key) <= now.as_millis() + quarter
    }

    /// `tcp_event_ack_sent`: a segment carrying our ACK went out, so a
    /// delayed ACK is no longer due.
    pub(super) fn ack_sent(&mut self, c: &mut Conn) {
        if c.bit(bits::DELACK) {
            c.set_bit(bits::DELACK, false);
            self.disarm(c);
        }
    }

    /// `tcp_oow_rate_limited`: one ACK per entry per `invalid_ratelimit` for
    /// segments that occupy no sequence space (or carry SYN); segments with data
    /// or FIN are always answered, since they cannot be part of an ACK loop.
    pub(super) fn oow_allowed(&self, seg: &Segment, last_ms: &mut u32, now: Time) -> bool {
        if seg.seq_len() > 0 && !seg.flags.syn() {
            return true;
        }
        let now_ms = now.stamp_ms().max(1);
        if *last_ms != 0
            && (now_ms.wrapping_sub(*last_ms) as u64)
                < self.cfg.invalid_ratelimit.as_millis() as u64
        {
            return false;
        }
        *last_ms = now_ms;
        true
    }

    /// [`Host::oow_allowed`] on connection `c`'s own stamp.
    pub(super) fn conn_oow_allowed(&self, c: &mut Conn, seg: &Segment, now: Time) -> bool {
        self.oow_allowed(seg, &mut c.last_oow_ms, now)
    }

    pub(super) fn dup_ack(&mut self, now: Time, c: &mut Conn, seg: &Segment) {
        if self.conn_oow_allowed(c, seg, now) {
            self.stats.oow_acks += 1;
            self.send_ack(c);
        } else {
            self.stats.oow_acks_suppressed += 1;
        }
    }

    /// RFC 5961 challenge ACK, rate-limited per entry and host-wide.
    pub(super) fn challenge_ack(&mut self, now: Time, c: &mut Conn) {
        let probe = Segment::new(&c.tuple, Flags::ACK, 0, 0, 0, 0);
        let mut last = c.last_oow_ms;
        if self.oow_allowed(&probe, &mut last, now)
            && self
                .challenge_budget
                .take(now, self.cfg.challenge_ack_limit)
        {
            c.last_oow_ms = last;
            self.stats.challenge_acks += 1;
            self.send_ack(c);
        } else {
            self.stats.challenge_acks_suppressed += 1;
        }
    }

    /// RFC 9293 §3.10.7.1 / Linux `tcp_v4_send_reset`: the reply to a segment that
    /// matches no connection. Never an RST in reply to an RST, and without
    /// timestamps (`tcp_v4_send_reset` has no socket to take them from).
    pub(super) fn reset_for(&mut self, now: Time, seg: &Segment) {
        if seg.flags.rst() {
            return;
        }
        if !self.rst_budget.take(now, self.cfg.rst_limit) {
            self.stats.rst_suppressed += 1;
            return;
        }
        let t = seg.receiver_tuple();
        if seg.flags.ack() {
            self.emit(&t, Flags::RST, seg.ack_num(), Seq(0), 0, None);
        } else {
            self.emit(&t, Flags::RST | Flags::ACK, Seq(0), seg.seq_end(), 0, None);
        }
        self.stats.rst_sent += 1;
    }
}
