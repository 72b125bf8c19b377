//! Timestamps (RFC 7323): our clock, PAWS, and which of the peer's
//! timestamps a connection remembers.
//!
//! Our TSval is a millisecond clock plus an offset keyed by the 4-tuple
//! (`tcp_clock_ms` plus the offset Linux 6.18 derives with the ISN from the
//! 4-tuple in net/core/secure_seq.c; kernels from 4.13 keyed it by the address
//! pair alone, and two ports to one peer now show TSvals billions apart). A
//! new incarnation of a 4-tuple has its predecessor's offset, so its SYN
//! carries a TSval newer than any its predecessor sent, which is what lets
//! TIME-WAIT take it (RFC 6191, [`Host::ts_newer`]).

use super::Host;
use crate::conn::{bits, flag, Conn};
use crate::segment::Segment;
use crate::seq::Seq;
use crate::time::Time;
use crate::tuple::{fold_mul, Tuple};

/// `TCP_PAWS_WINDOW`: a TSval one tick older than ts_recent still passes.
const PAWS_WINDOW: i32 = 1;

/// `TCP_PAWS_MSL`: an RST that fails PAWS is taken once ts_recent is this old.
const PAWS_MSL_MS: u32 = 60_000;

/// The key of the TSval offset, worked out once per host from the
/// configured secret: the offset is taken on every segment sent (and every
/// RTT sample), and deriving the key there cost a third of it.
#[derive(Clone, Copy, Debug)]
pub(super) struct TsKey {
    /// Mixed with the address pair.
    addrs: u64,
    /// Mixed with the port pair.
    ports: u64,
}

impl TsKey {
    pub(super) fn new(secret: u64) -> TsKey {
        // The offset only has to look random per 4-tuple to whoever lacks
        // the key, so one keyed folded multiply does (the table's hash
        // takes two, for bucket spread).
        let key = secret.rotate_left(17) ^ 0x7473_5f6f_6666;
        TsKey {
            addrs: key,
            ports: key.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The offset `tuple`'s TSvals carry over our clock.
    #[inline]
    fn offset(&self, tuple: &Tuple) -> u32 {
        let addrs = (u64::from(tuple.local_ip) << 32 | u64::from(tuple.remote_ip)) ^ self.addrs;
        let ports = (u64::from(tuple.local_port) << 16 | u64::from(tuple.remote_port)) ^ self.ports;
        fold_mul(addrs, ports) as u32
    }
}

/// `tcp_time_stamp_ts` at `now`: tcp_clock_ms, or tcp_clock_us with
/// tcp_usec_ts, as ticks of `tick_us` (taken once per advance of the clock).
pub(super) fn clock(tick_us: u32, now: Time) -> u32 {
    let ticks = match tick_us {
        1000 => now.as_millis(),
        tick => now.as_micros() / u64::from(tick),
    };
    ticks as u32
}

impl Host {
    /// Our TSval on a segment of `tuple` now.
    #[inline]
    pub(super) fn ts_val(&self, tuple: &Tuple) -> u32 {
        self.ts_clock.wrapping_add(self.ts_key.offset(tuple))
    }

    /// Whether `seg` carries a timestamp older than `ts_recent` by more than
    /// `window` (`tcp_paws_check` failing). A ts_recent of 0 is ignored, as
    /// Linux does for peers that send 0 in their SYN. Linux also stops
    /// rejecting once ts_recent is 24 days old (`TCP_PAWS_24DAYS`); the engine
    /// keeps no stamp for that, and no modelled connection idles so long.
    #[inline]
    fn paws_fails(ts_recent: u32, seg: &Segment, window: i32) -> bool {
        match seg.ts {
            Some(ts) => ts_recent != 0 && (ts_recent.wrapping_sub(ts.val) as i32) > window,
            None => false,
        }
    }

    /// `tcp_paws_discard` for a full connection (RFC 7323 §5.3 R1): an old
    /// duplicate is dropped, unless it is `tcp_disordered_ack`, a duplicate
    /// pure ACK at rcv_nxt that cannot update the window (snd_wl1 is
    /// rcv_nxt already) whose TSval lags by less than the RTO (reordered
    /// ACKs, not old ones). RSTs are not checked here: `tcp_validate_incoming`
    /// accepts an RST that fails PAWS.
    /// Inlined: every segment asks, and a call cost more than the test; the
    /// rare failing one goes on to [`Host::disordered_ack`] out of line.
    /// No test of `TS_OK`: without it ts_recent is 0 (it is set only with
    /// the flag, and zeroed where SYN-SENT drops the flag), which
    /// [`Host::paws_fails`] ignores.
    #[inline(always)]
    pub(super) fn paws_discard(&self, c: &Conn, seg: &Segment) -> bool {
        debug_assert!(c.has(flag::TS_OK) || c.ts_recent == 0);
        Self::paws_fails(c.ts_recent, seg, PAWS_WINDOW) && !self.disordered_ack(c, seg)
    }

    /// `tcp_disordered_ack`, for a segment that failed PAWS.
    #[cold]
    #[inline(never)]
    fn disordered_ack(&self, c: &Conn, seg: &Segment) -> bool {
        seg.flags.ack()
            && seg.seq_len() == 0
            && seg.seq_num() == c.rcv_nxt
            && seg.ack_num() == c.snd_una
            && c.bit(bits::WL1_AT_RCV_NXT)
            && seg.ts.is_some_and(|ts| {
                let rto_ms = (c.backed_off_rto_us(&self.timeouts) / 1000) as u32;
                c.ts_recent.wrapping_sub(ts.val) <= rto_ms
            })
    }

    /// `tcp_disordered_ack_check`'s `TCP_RFC7323_PAWS_ACK` (Linux >= 6.14),
    /// for a segment that failed PAWS: a pure ACK from before rcv_nxt, which
    /// data or a FIN overtook on the way. Such old ACKs are common, so
    /// `tcp_validate_incoming` drops them without a duplicate ACK (which
    /// would spend the out-of-window rate limit) and counts `PAWSOldAck`,
    /// not `PAWSEstabRejected`.
    pub(super) fn old_ack(c: &Conn, seg: &Segment) -> bool {
        seg.flags.ack() && seg.seq_len() == 0 && seg.seq_num() < c.rcv_nxt
    }

    /// Whether a handshake segment's echo names no SYN or SYN-ACK of ours.
    /// When timestamps were agreed and the segment echoes one (TSecr, less
    /// our offset, not 0), the echo must lie between the TSval of our first
    /// SYN or SYN-ACK (`retrans_stamp`) and now. SYN-SENT:
    /// `tcp_rcv_synsent_state_process`, `PAWSActiveRejected`. SYN-RECEIVED:
    /// `tcp_check_req` (Linux >= 6.15), `TSEcrRejected`, whose range ends at
    /// the last SYN-ACK's TSval (`snt_tsval_last`), where the engine, which
    /// keeps no such stamp, takes now: an echo no SYN-ACK carried yet is
    /// still refused, if it passes now. The first send's time is kept to the
    /// millisecond (`retrans_stamp_ms`): exact on the default millisecond TS
    /// clock; on another the range starts up to a millisecond and a tick
    /// early, never late.
    pub(super) fn handshake_echo_rejected(&self, c: &Conn, seg: &Segment) -> bool {
        let Some(ts) = seg.ts.filter(|_| c.has(flag::TS_OK)) else {
            return false;
        };
        let ecr = ts.ecr.wrapping_sub(self.ts_key.offset(&c.tuple));
        if ts.ecr == 0 || ecr == 0 {
            return false;
        }
        let elapsed_ms = self.now_ms.wrapping_sub(c.retrans_stamp_ms);
        let elapsed = match self.cfg.ts_tick_us {
            1000 => elapsed_ms,
            tick => ((u64::from(elapsed_ms) + 1) * 1000).div_ceil(u64::from(tick)) as u32,
        };
        // `between(ecr, first, now)`, in TS ticks of our clock.
        ecr.wrapping_sub(self.ts_clock.wrapping_sub(elapsed)) > elapsed
    }

    /// `tcp_replace_ts_recent`: a segment that passed the checks and starts at
    /// or before `rcv_wup` (the rcv_nxt we last acknowledged; the engine
    /// acknowledges as it goes, so rcv_nxt before the segment) records its
    /// TSval, unless that is older (RFC 7323 §4.3).
    pub(super) fn replace_ts_recent(c: &mut Conn, seg: &Segment, rcv_wup: Seq) {
        if let Some(ts) = seg.ts {
            if c.has(flag::TS_OK)
                && seg.seq_num() <= rcv_wup
                && !Self::paws_fails(c.ts_recent, seg, 0)
            {
                c.ts_recent = ts.val;
            }
        }
    }

    /// `tcp_paws_reject` for a TIME-WAIT mini-socket whose `tw_ts_recent` is
    /// `ts_recent`, last recorded at `stamp_ms`: PAWS with no window, except
    /// that an RST is taken once ts_recent is `TCP_PAWS_MSL` old.
    pub(super) fn tw_paws_reject(
        &self,
        ts_recent: Option<u32>,
        stamp_ms: u32,
        seg: &Segment,
    ) -> bool {
        let Some(recent) = ts_recent else {
            return false;
        };
        if !Self::paws_fails(recent, seg, 0) {
            return false;
        }
        !(seg.flags.rst() && self.now.stamp_ms().wrapping_sub(stamp_ms) >= PAWS_MSL_MS)
    }

    /// `tcp_rtt_tsopt_us`: the RTT from an ACK's TSecr, in microseconds at
    /// the clock's grain (1 µs for an echo of this tick).
    pub(super) fn ts_rtt_us(&self, c: &Conn, seg: &Segment) -> Option<u32> {
        let ecr = seg.ts.filter(|ts| ts.ecr != 0 && c.has(flag::TS_OK))?.ecr;
        let ticks = self.ts_val(&c.tuple).wrapping_sub(ecr);
        let tick = self.cfg.ts_tick_us;
        // An echo from the future, or one older than 24 days, is no sample.
        (ticks < i32::MAX as u32 / tick).then(|| (ticks * tick).max(1))
    }

    /// RFC 6191: a SYN whose TSval is newer than TIME-WAIT's ts_recent is a
    /// new incarnation whatever its sequence number.
    pub(super) fn ts_newer(ts_recent: Option<u32>, seg: &Segment) -> bool {
        match (ts_recent, seg.ts) {
            (Some(recent), Some(ts)) => (recent.wrapping_sub(ts.val) as i32) < 0,
            _ => false,
        }
    }
}
