//! TIME-WAIT: segments on a compact entry (Linux `tcp_timewait_state_process`),
//! entering it (`tcp_time_wait`, bounded by `tcp_max_tw_buckets`), restarting
//! and leaving it.

use std::time::Duration;

use super::commit::closed_into;
use super::ephemeral::release_port;
use super::{CloseReason, Event, Host, Role, TwVerdict};
use crate::config::TwOverflow;
use crate::conn::Conn;
use crate::ports::Ports;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::state::State;
use crate::table::Table;
use crate::time::Time;
use crate::timewait::TwEntry;
use crate::tuple::Tuple;

impl Host {
    /// TIME-WAIT (Linux `tcp_timewait_state_process`, substate TIME_WAIT): the
    /// verdict on `seg` for entry `e` at `pos`. As in Linux, the entry's own
    /// bookkeeping (timer restart, out-of-window rate limit) happens here;
    /// [`Host::act_on_time_wait`] sends and removes.
    pub(super) fn on_time_wait(
        &mut self,
        now: Time,
        pos: u64,
        e: &TwEntry,
        seg: &Segment,
    ) -> TwVerdict {
        let f = seg.flags;
        // The entry's timestamp was recorded when it last (re)started, in all
        // but Linux's out-of-window restarts (see TwEntry::ts_recent).
        let stamp = self.table.time_wait_start(e.expires_ms);
        let paws_reject = self.tw_paws_reject(e.ts_recent, stamp, seg);
        // The timestamp a segment at rcv_nxt records (`tw_ts_recent`).
        let record_ts = |host: &mut Host, pos: u64| {
            if let (Some(_), Some(ts)) = (e.ts_recent, seg.ts) {
                host.table.set_time_wait_ts(pos, ts.val);
            }
        };
        if f.rst() {
            // An RST exactly at rcv_nxt (and not an old duplicate by its
            // timestamp) kills the entry unless RFC 1337 protection is on; any
            // other RST is ignored.
            if seg.seq_num() == e.rcv_nxt && !paws_reject {
                if !self.cfg.rfc1337 {
                    self.stats.rst_received += 1;
                    self.stats.time_wait_assassinated += 1;
                    return TwVerdict::Assassinated;
                }
                record_ts(self, pos);
            }
            return TwVerdict::Success;
        }
        // An in-window segment at rcv_nxt that occupies no sequence space restarts
        // the timer, with no reply.
        if !paws_reject && seg.seq_num() == e.rcv_nxt && seg.seq_len() == 0 {
            let pos = self.restart_time_wait(now, pos, e);
            record_ts(self, pos);
            return TwVerdict::Success;
        }
        // A SYN beyond rcv_nxt, or with a newer timestamp, may open a new
        // incarnation (RFC 6191), with ISN = old snd_nxt + 65535 + 2, if a
        // listener takes it. With none, `tcp_v4_rcv` falls from TCP_TW_SYN
        // through to `tcp_v4_timewait_ack`: an ACK every time, with neither
        // the out-of-window rate limit nor a timer restart
        // (syn-time-wait-no-listener.pkt).
        let beyond = e.rcv_nxt < seg.seq_num();
        if f.syn() && !f.ack() && !paws_reject && (beyond || Self::ts_newer(e.ts_recent, seg)) {
            if !self.is_listening(e.tuple.local_port) {
                self.stats.oow_acks += 1;
                return TwVerdict::Ack;
            }
            self.stats.time_wait_reused += 1;
            if !beyond {
                self.stats.time_wait_reused_by_ts += 1;
            }
            let iss = match e.snd_nxt + 65_537 {
                Seq(0) => Seq(1),
                n => n,
            };
            return TwVerdict::Syn(iss);
        }
        // Anything else (a retransmitted FIN, an old SYN, data, an old
        // duplicate by PAWS): restart the timer if it carried ACK or failed
        // PAWS, and re-ACK, rate-limited unless it occupies sequence space
        // without SYN (`tcp_timewait_check_oow_rate_limit`). A retransmitted
        // FIN is therefore always re-ACKed.
        if paws_reject {
            self.stats.paws_rejected += 1;
        }
        let pos = if f.ack() || paws_reject {
            self.restart_time_wait(now, pos, e)
        } else {
            pos
        };
        let mut last = e.last_oow_ms;
        if self.oow_allowed(seg, &mut last, now) {
            self.table.set_time_wait_oow(pos, last);
            self.stats.oow_acks += 1;
            TwVerdict::Ack
        } else {
            self.stats.oow_acks_suppressed += 1;
            TwVerdict::Success
        }
    }

    /// Acts on [`Host::on_time_wait`]'s verdict for entry `e`, still at `pos`
    /// unless the verdict restarted it (as `tcp_v4_rcv` acts on
    /// `tcp_timewait_state_process`'s). `hash`: its tuple's, from the lookup.
    pub(super) fn act_on_time_wait(
        &mut self,
        now: Time,
        pos: u64,
        hash: u64,
        e: &TwEntry,
        seg: &Segment,
        verdict: TwVerdict,
    ) {
        match verdict {
            TwVerdict::Success => {}
            // tcp_v4_timewait_ack
            TwVerdict::Ack => {
                let (snd, rcv) = (e.snd_nxt, e.rcv_nxt);
                self.emit(&e.tuple, Flags::ACK, snd, rcv, 0, e.ts_recent)
            }
            TwVerdict::Assassinated => {
                self.table.remove_time_wait_hashed(pos, &e.tuple, hash);
                self.closed_time_wait(now, &e.tuple, e.close_ms, CloseReason::Reset);
            }
            // inet_twsk_deschedule_put, then the listener processes the SYN.
            TwVerdict::Syn(iss) => {
                self.table.remove_time_wait_hashed(pos, &e.tuple, hash);
                self.closed_time_wait(now, &e.tuple, e.close_ms, CloseReason::Reused);
                self.accept_syn(now, e.tuple, hash, seg, iss);
            }
        }
    }

    /// `inet_twsk_reschedule`. The entry stamp survives only where a
    /// takeover could read it ([`Host::twsk_unique`] from connect()'s search:
    /// a local port in its range, the peer's timestamps, and `tcp_tw_reuse`
    /// on for these addresses); elsewhere keeping it would cost a map slot
    /// for nothing.
    fn restart_time_wait(&mut self, now: Time, pos: u64, e: &TwEntry) -> u64 {
        self.stats.time_wait_restarts += 1;
        let expires = Self::deadline_ms(now, self.timeouts.time_wait) as u32;
        let t = &e.tuple;
        let read = e.ts_recent.is_some()
            && self.ports.in_range(t.local_port)
            && self.tw_reuse_allowed(t.local_ip, t.remote_ip);
        self.table.restart_time_wait(pos, expires, read)
    }

    /// Whether another TIME-WAIT mini-socket (a TIME-WAIT entry or an orphaned
    /// FIN-WAIT-2) would pass `tcp_max_tw_buckets` (`inet_twsk_alloc` refusing).
    pub(super) fn tw_buckets_full(&self) -> bool {
        self.table.time_wait_len() + self.fw2_orphans >= self.cfg.max_tw_buckets
    }

    /// Enters TIME-WAIT: the full entry becomes a compact one, unless the
    /// `max_tw_buckets` limit says otherwise.
    pub(super) fn enter_time_wait(
        &mut self,
        now: Time,
        idx: u32,
        c: &mut Conn,
        before: State,
        hash: u64,
    ) {
        if self.tw_buckets_full() {
            match self.cfg.tw_overflow {
                TwOverflow::Skip => {
                    self.stats.time_wait_overflow += 1;
                    let reason = CloseReason::TimeWaitOverflow;
                    self.commit_close(now, idx, c, before, reason, Some(hash));
                    return;
                }
                TwOverflow::EvictOldest => {
                    if let Some((pos, old)) = self.table.oldest_time_wait() {
                        self.stats.time_wait_evicted += 1;
                        self.table.remove_time_wait(pos, &old.tuple);
                        self.closed_time_wait(
                            now,
                            &old.tuple,
                            old.close_ms,
                            CloseReason::TimeWaitEvicted,
                        );
                    }
                }
            }
        }
        let expires_ms = Self::deadline_ms(now, self.timeouts.time_wait) as u32;
        let e = TwEntry {
            tuple: c.tuple,
            snd_nxt: c.snd_nxt,
            rcv_nxt: c.rcv_nxt,
            expires_ms,
            entry_ms: self.table.time_wait_start(expires_ms),
            close_ms: c.close_ms,
            // Zero unless a FIN-WAIT-2 mini-socket's ([`Host::commit_time_wait`]).
            last_oow_ms: c.last_oow_ms,
            ts_recent: c.ts_echo(),
        };
        if self.table.conn_to_time_wait_hashed(idx, &e, hash).is_none() {
            // More local addresses than a record can name: no room, as when
            // tcp_max_tw_buckets is reached.
            self.stats.time_wait_overflow += 1;
            let reason = CloseReason::TimeWaitOverflow;
            self.commit_close(now, idx, c, before, reason, Some(hash));
            return;
        }
        self.orphan_gone(c);
        self.enter(c.tuple, before, State::TimeWait);
    }

    /// Accounts for a TIME-WAIT entry (`tuple`, closed by the application at
    /// `close_ms`) that has already left the table.
    #[inline]
    pub(super) fn closed_time_wait(
        &mut self,
        now: Time,
        tuple: &Tuple,
        close_ms: u32,
        reason: CloseReason,
    ) {
        self.tw_end().1.closed(now, tuple, close_ms, reason);
    }

    /// The table, and apart from it the parts of the host that a TIME-WAIT
    /// entry's end touches ([`TwEnd`]).
    #[inline(always)]
    pub(super) fn tw_end(&mut self) -> (&mut Table, TwEnd<'_>) {
        let end = TwEnd {
            ports: &mut self.ports,
            listening: &self.listening,
            population: &mut self.population,
            events: &mut self.events,
            trace: self.cfg.trace_states,
        };
        (&mut self.table, end)
    }
}

/// What the end of a TIME-WAIT entry touches besides the table: its port,
/// the population, the events. Borrowed apart from the table, so that the
/// expiry pass accounts for each entry from inside the table's loop
/// ([`Table::expire_time_wait`]).
pub(super) struct TwEnd<'a> {
    ports: &'a mut Ports,
    listening: &'a [u64],
    population: &'a mut [usize; State::COUNT],
    events: &'a mut Vec<Event>,
    trace: bool,
}

impl TwEnd<'_> {
    /// [`Host::closed_time_wait`].
    #[inline(always)]
    pub(super) fn closed(&mut self, now: Time, tuple: &Tuple, close_ms: u32, reason: CloseReason) {
        release_port(self.ports, self.listening, tuple);
        self.population[State::TimeWait as usize] -= 1;
        let since_close = Duration::from_millis(now.stamp_ms().wrapping_sub(close_ms) as u64);
        closed_into(
            self.events,
            self.trace,
            tuple,
            State::TimeWait,
            reason,
            Role::Active,
            Some(since_close),
        );
    }
}
