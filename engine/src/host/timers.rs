//! Timers: retransmission (`tcp_retransmit_timer`, `tcp_write_timeout`), the
//! orphaned FIN-WAIT-2 timeout (`tcp_fin_timeout`; a long one's keepalive
//! timer first, `tcp_keepalive_timer`) and TIME-WAIT expiry, and arming them
//! on the wheel.

use std::time::Duration;

use super::{CloseReason, Host, Next};
use crate::conn::{bits, flag, Conn};
use crate::segment::Flags;
use crate::seq::Seq;
use crate::state::State;
use crate::time::Time;

/// TIME-WAIT entries expired per pass of [`Host::handle_timeout`]: a large
/// table has the next pass's index buckets asked for ahead.
const TW_BATCH: usize = 16;

impl Host {
    /// Fires every timer due at `now`: retransmissions, FIN-WAIT-2 timeouts and
    /// TIME-WAIT expiries. Timers never fire before their deadline.
    pub fn handle_timeout(&mut self, now: Time) {
        let now = self.begin(now);
        while let Some((_, idx)) = self.wheel.poll(now.as_millis()) {
            self.on_timer(now, idx);
        }
        let now_ms = now.stamp_ms();
        // Nothing due: no expiry pass, and no look-ahead, at all.
        if self.table.time_wait_due(now_ms) {
            // A table larger than the cache has the buckets of each batch's
            // removals asked for while the batch before is handled.
            let ahead = self.hinted();
            if ahead {
                self.table.prefetch_expiring(now_ms, 0, TW_BATCH);
            }
            loop {
                if ahead {
                    self.table.prefetch_expiring(now_ms, TW_BATCH, TW_BATCH);
                }
                let (table, mut end) = self.tw_end();
                let n = table.expire_time_wait(now_ms, TW_BATCH, |e| {
                    end.closed(now, &e.tuple, e.close_ms, CloseReason::TimeWaitExpired);
                });
                self.stats.timeouts_time_wait += n as u64;
                if n < TW_BATCH {
                    break;
                }
            }
        }
        self.table.compact_time_wait();
    }

    fn on_timer(&mut self, now: Time, idx: u32) {
        let mut c = self.table.conn(idx);
        c.timer = None;
        if c.bit(bits::DELACK) {
            // tcp_delack_timer_handler.
            c.set_bit(bits::DELACK, false);
            self.send_ack(&mut c);
            self.table.set_conn(idx, &c);
            return;
        }
        let before = c.state;
        if c.state == State::FinWait2 && c.has(flag::ORPHAN) && !c.has(flag::FW2_COUNTED) {
            // The full socket's part of a long FIN-WAIT-2 is over.
            let next = self.full_fin_wait_2_expired(now, idx, &mut c);
            self.commit(now, idx, c, before, next);
            return;
        }
        if c.state == State::FinWait2 {
            // Seed case 5: straight to CLOSED, not TIME-WAIT (tcp_fin_timeout).
            self.stats.timeouts_fin_wait_2 += 1;
            self.commit(
                now,
                idx,
                c,
                before,
                Next::Close(CloseReason::FinWait2Timeout),
            );
            return;
        }
        let exhausted = self.retries_exhausted(now, &c);
        // An orphan is synchronized: close() ends SYN-SENT, and turns
        // SYN-RECEIVED into FIN-WAIT-1.
        if c.has(flag::ORPHAN) && self.out_of_resources(&c, exhausted) {
            self.commit(
                now,
                idx,
                c,
                before,
                Next::Close(CloseReason::TooManyOrphans),
            );
            return;
        }
        if exhausted {
            // No RST on this path (tcp_write_err -> tcp_done).
            self.stats.timeouts_retries += 1;
            self.commit(
                now,
                idx,
                c,
                before,
                Next::Close(CloseReason::RetriesExhausted),
            );
            return;
        }
        self.retransmit(now, idx, &mut c);
        self.table.set_conn(idx, &c);
    }

    /// `tcp_out_of_resources`, asked at an orphan's retransmission timeout
    /// (`tcp_write_timeout`): with too many orphans it goes at once
    /// (TCPAbortOnMemory), with an RST while it is alive (its RTO below
    /// rto_max) or has retries left (not `exhausted`). One past both is judged against twice
    /// the count, and goes silently: its last send lies an RTO of rto_max
    /// back, past `TCP_TIMEWAIT_LEN` with Linux's 120 s. Not modelled: the
    /// doubling for a socket idle over 2 x `TCP_RTO_MAX` (240 s, `lsndtime`)
    /// and the one for an ICMP soft error (`sk_err_soft`).
    fn out_of_resources(&mut self, c: &Conn, exhausted: bool) -> bool {
        let alive = c.backed_off_rto_us(&self.timeouts) < self.timeouts.rto_max;
        let do_reset = alive || !exhausted;
        if !self.too_many_orphans(!do_reset) {
            return false;
        }
        if do_reset {
            self.send_active_reset(c);
        }
        self.stats.abort_on_memory += 1;
        true
    }

    /// `tcp_write_timeout`: the retry limit is judged by the time the given
    /// number of doublings would take (`tcp_model_timeout`), from the first
    /// transmission, once the timer has fired before. SYN-SENT also stops
    /// after `syn_retries` plus `syn_linear_timeouts` retransmissions, the
    /// SYNs sent before doubling began being extra (Linux >= 6.5), whichever
    /// comes first. With Linux's defaults both end it at 131 s: ten
    /// retransmissions, the last at 67 s, and the 127 s of six doublings.
    /// SYN-RECEIVED, Linux's request socket, counts only: `reqsk_timer_handler`
    /// drops it at the expiry that finds `tcp_synack_retries` of them sent
    /// (`syn_ack_recalc`), at 1 s with none.
    fn retries_exhausted(&self, now: Time, c: &Conn) -> bool {
        if c.state == State::SynSent && c.syn_retransmits() >= self.cfg.syn_sent_retries() {
            return true;
        }
        if c.state == State::SynReceived {
            return c.syn_retransmits() >= u32::from(self.cfg.synack_retries);
        }
        let (limit, base) = match c.state {
            State::SynSent => (self.cfg.syn_retries, self.cfg.rto_initial),
            _ if c.has(flag::ORPHAN) => (self.cfg.orphan_retry_limit(), self.cfg.rto_min),
            _ => (self.cfg.retries2, self.cfg.rto_min),
        };
        let elapsed = Duration::from_millis(now.stamp_ms().wrapping_sub(c.retrans_stamp_ms) as u64);
        c.rto_fired() && elapsed >= self.cfg.model_timeout(limit, base)
    }

    /// Resends everything from snd_una and re-arms the timer, one RTO
    /// doubled (`tcp_retransmit_timer`), or the handshake's timer.
    fn retransmit(&mut self, now: Time, idx: u32, c: &mut Conn) {
        self.resend(c);
        // tcp_enter_loss: Reno's duplicates are forgotten.
        c.set_dupacks(0);
        c.set_rto_fired(true);
        let rto_us = if c.state.is_synchronized() {
            let backoff = c.backoff().saturating_add(1).min(30);
            c.set_backoff(backoff);
            c.backed_off_rto_us(&self.timeouts)
        } else {
            c.count_syn_retransmit();
            self.syn_rto_us(c)
        };
        self.arm_us(now, idx, c, rto_us);
    }

    /// The SYN's or SYN-ACK's timer after [`Tcb::syn_retransmits`] of them:
    /// the initial RTO doubled once for each (a request's `req->timeout <<
    /// num_timeout`, `reqsk_timer_handler`), up to rto_max; in SYN-SENT not
    /// for the first `syn_linear_timeouts` (`tcp_retransmit_timer` backs off
    /// only once `total_rto` exceeds them): Linux's SYNs go at 0, 1, 2, 3, 4,
    /// 5, 7, 11, 19, 35 and 67 s. Not the RTO the connection goes on with:
    /// that is the fallback, or a sample's ([`Tcb::handshake_resent`]).
    ///
    /// [`Tcb::syn_retransmits`]: crate::conn::Tcb::syn_retransmits
    /// [`Tcb::handshake_resent`]: crate::conn::Tcb::handshake_resent
    pub(super) fn syn_rto_us(&self, c: &Conn) -> u64 {
        let n = c.syn_retransmits();
        let doublings = if c.state == State::SynSent {
            self.cfg.syn_doublings(n)
        } else {
            n
        }
        .min(30);
        u64::from(self.timeouts.rto_initial)
            .checked_shl(doublings)
            .unwrap_or(self.timeouts.rto_max)
            .min(self.timeouts.rto_max)
    }

    /// Resends everything from snd_una in one segment, as Linux collapses
    /// small segments into the retransmitted head (`tcp_retrans_try_collapse`),
    /// which leaves one segment in flight (`tcp_adjust_pcount`, with Reno's
    /// duplicates shrinking alike).
    pub(super) fn resend(&mut self, c: &mut Conn) {
        let outstanding = c.snd_nxt - c.snd_una;
        let (flags, len) = match c.state {
            State::SynSent => {
                c.handshake_resent();
                (Flags::SYN, 0)
            }
            State::SynReceived => {
                c.handshake_resent();
                (Flags::SYN | Flags::ACK, 0)
            }
            _ if c.fin_out() => {
                let len = outstanding.saturating_sub(1);
                if len > 0 {
                    c.flags |= flag::FIN_WITH_DATA;
                }
                let psh = if c.has(flag::FIN_WITH_DATA) {
                    Flags::PSH
                } else {
                    Flags::NONE
                };
                (Flags::FIN | Flags::ACK | psh, len)
            }
            _ => (Flags::ACK | Flags::PSH, outstanding),
        };
        let ack = if flags.ack() { c.rcv_nxt } else { Seq(0) };
        self.emit_on(c, flags, c.snd_una, ack, len);
        if flags.ack() {
            self.ack_sent(c);
        }
        self.stats.retransmits += 1;
        c.take_timing(0); // Karn: no RTT sample from a retransmission.
        if !c.fast_recovery() {
            let merged = c.pkts().saturating_sub(1);
            let dupacks = c.dupacks().saturating_sub(merged);
            c.set_dupacks(dupacks);
        }
        c.set_pkts(1);
    }

    pub(super) fn arm(&mut self, now: Time, idx: u32, c: &mut Conn, after: Duration) {
        let after_us = u64::try_from(after.as_micros()).unwrap_or(u64::MAX);
        self.arm_us(now, idx, c, after_us);
    }

    /// The tick `after_us` microseconds from `now`, rounded up so that a
    /// timer never fires early (`now + Duration`, saturated, in ticks).
    #[inline]
    pub(super) fn deadline_ms(now: Time, after_us: u64) -> u64 {
        Time::from_micros(now.as_micros().saturating_add(after_us)).ceil_millis()
    }

    /// [`Host::arm`] `after_us` microseconds from `now`.
    #[inline]
    pub(super) fn arm_us(&mut self, now: Time, idx: u32, c: &mut Conn, after_us: u64) {
        let deadline = Self::deadline_ms(now, after_us);
        c.timer = Some(match c.timer {
            Some(k) => self.wheel.reset(k, deadline, idx),
            None => self.wheel.insert(deadline, idx),
        });
    }

    /// Cancels `c`'s pending timer, if any, out of line: for callers that do
    /// not save every register already ([`Host::disarm_inline`]).
    #[inline(never)]
    pub(super) fn disarm(&mut self, c: &mut Conn) {
        self.disarm_inline(c);
    }

    /// [`Host::disarm`] in its caller: for the commits that take an entry
    /// out of the table, which save every register already, so that the
    /// call's own saves, restores and argument moves go.
    #[inline(always)]
    pub(super) fn disarm_inline(&mut self, c: &mut Conn) {
        if let Some(k) = c.timer.take() {
            self.wheel.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::conn::TimeoutsUs;

    /// The TIME-WAIT deadline the engine stamps (microseconds from
    /// `TimeoutsUs`, added saturating) is the tick of `now + time_wait`
    /// rounded up, for lengths and clocks up to both ends of their range.
    #[test]
    fn deadline_ms_is_now_plus_the_duration_rounded_up() {
        let lengths = [
            Duration::ZERO,
            Duration::from_nanos(1_999),
            Duration::from_secs(60),
            Duration::from_secs(u64::MAX / 1_000_000 + 1),
            Duration::MAX,
        ];
        for time_wait in lengths {
            let t = TimeoutsUs::new(&Config {
                time_wait,
                ..Config::default()
            });
            for now in [0, 1_234_567, u64::MAX - 60_000_000, u64::MAX] {
                let now = Time::from_micros(now);
                assert_eq!(
                    Host::deadline_ms(now, t.time_wait),
                    (now + time_wait).ceil_millis(),
                    "{time_wait:?} after {now}"
                );
            }
        }
    }
}
