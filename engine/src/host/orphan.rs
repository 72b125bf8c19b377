//! The orphaned FIN-WAIT-2: after close() and the ACK of our FIN, Linux keeps
//! the connection as a TIME-WAIT mini-socket in substate FIN_WAIT2, with
//! `tcp_timewait_state_process`'s rules rather than RFC 5961's; while its
//! lifetime passes TIME-WAIT's length, a full socket first.

use super::{CloseReason, Host, Next};
use crate::conn::{flag, Conn};
use crate::segment::Segment;
use crate::time::Time;

impl Host {
    /// An orphan's FIN-WAIT-2 begins: its FIN acknowledged, or close() after
    /// shutdown() (`tcp_rcv_state_process`, `tcp_close`). With
    /// [`crate::Config::fin_wait2_keepalive`] and a lifetime (`tcp_fin_time()`)
    /// past TIME-WAIT's, the full socket stays for the excess, an orphan
    /// still; otherwise it becomes the mini-socket now, or past
    /// `tcp_max_tw_buckets` the connection is done (`tcp_time_wait`).
    pub(super) fn orphan_fin_wait_2(&mut self, now: Time, idx: u32, c: &mut Conn) -> Option<Next> {
        let tmo_us = c.fin_wait2_timeout_us(&self.timeouts);
        if self.keep_full_fin_wait_2(now, idx, c, tmo_us) {
            return None;
        }
        self.become_fin_wait_2_mini_socket(now, idx, c, tmo_us)
    }

    /// Whether the full socket stays for the lifetime's excess over
    /// TIME-WAIT's (`inet_csk_reset_keepalive_timer(sk, tmo - TCP_TIMEWAIT_LEN)`);
    /// if so, its timer is armed for it.
    fn keep_full_fin_wait_2(&mut self, now: Time, idx: u32, c: &mut Conn, tmo_us: u64) -> bool {
        let excess = self.fin_wait_2_excess(tmo_us);
        let full = self.cfg.fin_wait2_keepalive && excess > 0;
        if full {
            self.arm_us(now, idx, c, excess);
        }
        full
    }

    /// How far a FIN-WAIT-2 lifetime passes TIME-WAIT's: Linux's fixed
    /// TCP_TIMEWAIT_LEN, which is the profile's `time_wait` (60 s) unless
    /// overridden, when the split follows the override.
    fn fin_wait_2_excess(&self, tmo_us: u64) -> u64 {
        tmo_us.saturating_sub(self.timeouts.time_wait)
    }

    /// The full orphaned FIN-WAIT-2's timer (`tcp_keepalive_timer`): the
    /// mini-socket for the same excess again, at least 3.5 RTO
    /// (`tcp_time_wait`), or past `tcp_max_tw_buckets` the connection is
    /// done, silently.
    pub(super) fn full_fin_wait_2_expired(&mut self, now: Time, idx: u32, c: &mut Conn) -> Next {
        let excess = self.fin_wait_2_excess(c.fin_wait2_timeout_us(&self.timeouts));
        let tmo_us = excess.max(c.three_and_a_half_rto_us(&self.timeouts));
        self.become_fin_wait_2_mini_socket(now, idx, c, tmo_us)
            .unwrap_or(Next::Keep)
    }

    /// Linux's FIN_WAIT2 mini-socket (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`):
    /// it lives `tmo_us`, counts against `tcp_max_tw_buckets` and no longer
    /// as an orphan, and its out-of-window ACK rate limit starts afresh
    /// (tw_last_oow_ack_time = 0). Past `tcp_max_tw_buckets` there is none:
    /// the connection is done, silently (TCPTimeWaitOverflow).
    fn become_fin_wait_2_mini_socket(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        tmo_us: u64,
    ) -> Option<Next> {
        if self.tw_buckets_full() {
            self.stats.time_wait_overflow += 1;
            return Some(Next::Close(CloseReason::TimeWaitOverflow));
        }
        self.count_fw2_orphan(c, true);
        self.arm_us(now, idx, c, tmo_us);
        c.last_oow_ms = 0;
        None
    }

    /// An orphaned FIN-WAIT-2 mini-socket (`flag::FW2_COUNTED`). Once close()
    /// was called and the FIN acknowledged, Linux replaces the socket by a
    /// TIME-WAIT mini-socket in substate FIN_WAIT2, and segments follow
    /// `tcp_timewait_state_process`, not RFC 5961: any RST in the window kills it, a
    /// SYN at or beyond rcv_nxt or new data draws an RST, out-of-window segments a
    /// rate-limited ACK. (A FIN-WAIT-2 after shutdown(), or in its first part
    /// above, stays a full socket.)
    pub(super) fn on_orphan_fin_wait_2(&mut self, now: Time, c: &mut Conn, seg: &Segment) -> Next {
        let f = seg.flags;
        let (seq, end) = (seg.seq_num(), seg.seq_end());
        let right = c.rcv_nxt + self.cfg.rcv_wnd as u32;
        // tcp_in_window(seq, end_seq, rcv_nxt, rcv_nxt + rcv_wnd)
        let in_window =
            seq == c.rcv_nxt || (c.rcv_nxt < end && seq < right) || (seq == right && seq == end);
        // tcp_paws_reject, with the entry's timestamp taken as recorded now
        // (a Conn keeps no stamp): an RST that fails PAWS is refused.
        let paws_reject =
            c.has(flag::TS_OK) && self.tw_paws_reject(Some(c.ts_recent), self.now.stamp_ms(), seg);
        if paws_reject {
            self.stats.paws_rejected += 1;
        }
        if paws_reject || !in_window {
            self.dup_ack(now, c, seg);
            return Next::Keep;
        }
        if f.rst() {
            self.stats.rst_received += 1;
            return Next::Close(CloseReason::Reset);
        }
        if f.syn() && seq >= c.rcv_nxt {
            self.reset_for(now, seg);
            return Next::Close(CloseReason::Aborted);
        }
        // A duplicate or pure ACK, or no ACK at all: dropped silently.
        if !f.ack() || c.rcv_nxt >= end || seg.seq_len() == 0 {
            return Next::Keep;
        }
        // New data after the half-duplex close, or a FIN not exactly at rcv_nxt.
        if !f.fin() || end != c.rcv_nxt + 1 {
            if seg.len > 0 {
                self.stats.abort_on_data += 1;
            }
            self.reset_for(now, seg);
            return Next::Close(CloseReason::Aborted);
        }
        // The FIN: true TIME-WAIT, its timestamp recorded, and its ACK.
        c.rcv_nxt = end;
        if let (true, Some(ts)) = (c.has(flag::TS_OK), seg.ts) {
            c.ts_recent = ts.val;
        }
        self.send_ack(c);
        Next::TimeWait
    }
}
