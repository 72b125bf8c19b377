//! The orphaned FIN-WAIT-2: after close() and the ACK of our FIN, Linux keeps
//! the connection as a TIME-WAIT mini-socket in substate FIN_WAIT2, with
//! `tcp_timewait_state_process`'s rules rather than RFC 5961's.

use super::{CloseReason, Host, Next};
use crate::conn::{flag, Conn};
use crate::segment::Segment;
use crate::time::Time;

impl Host {
    /// An orphan whose FIN is acknowledged becomes Linux's FIN_WAIT2 mini-socket
    /// (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`): it lives `tcp_fin_time()`, and
    /// its out-of-window ACK rate limit starts afresh (tw_last_oow_ack_time = 0).
    pub(super) fn become_fin_wait_2_mini_socket(&mut self, now: Time, idx: u32, c: &mut Conn) {
        self.arm_fin_wait_2(now, idx, c);
        c.last_oow_ms = 0;
    }

    /// The mini-socket's lifetime, `tcp_fin_time()` from `now`, on the
    /// connection's one timer.
    pub(super) fn arm_fin_wait_2(&mut self, now: Time, idx: u32, c: &mut Conn) {
        let tmo_us = c.fin_wait2_timeout_us(&self.timeouts);
        self.arm_us(now, idx, c, tmo_us);
    }

    /// An orphaned FIN-WAIT-2. Once close() was called and the FIN acknowledged,
    /// Linux replaces the socket by a TIME-WAIT mini-socket in substate FIN_WAIT2
    /// (`tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)`), and segments follow
    /// `tcp_timewait_state_process`, not RFC 5961: any RST in the window kills it, a
    /// SYN at or beyond rcv_nxt or new data draws an RST, out-of-window segments a
    /// rate-limited ACK. (A FIN-WAIT-2 after shutdown() stays a full socket.)
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
