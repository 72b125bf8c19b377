//! A live connection's entry (every state but TIME-WAIT), and its RTO arithmetic.

use std::ops::{Deref, DerefMut};

use crate::endpoint::Packed;
use crate::seq::Seq;
use crate::state::State;
use crate::tuple::Tuple;
use crate::wheel::TimerKey;

mod recovery;
mod rto;

pub(crate) use recovery::rec;
pub(crate) use rto::TimeoutsUs;

/// Flag bits in [`Tcb::flags`].
pub(crate) mod flag {
    /// The application closed the socket (`close()`): Linux calls it an orphan.
    /// Orphans give up by `tcp_orphan_retries` and time out in FIN-WAIT-2.
    pub const ORPHAN: u8 = 0x01;
    /// `rtt_ts_us` times the oldest outstanding segment (Karn: never a retransmitted one).
    pub const TIMING: u8 = 0x02;
    /// `close_ms` holds when the application closed (for teardown latency).
    pub const CLOSE_STAMPED: u8 = 0x04;
    /// Our FIN has gone out in one segment with data (riding on it, or
    /// collapsed with it on retransmission): Linux's FIN skb then carries PSH,
    /// and keeps it when the data is acknowledged and the FIN resent alone.
    pub const FIN_WITH_DATA: u8 = 0x08;
    /// close() was called in CLOSE-WAIT: this end is the passive closer.
    pub const PASSIVE_CLOSE: u8 = 0x10;
    /// Counted in `Host::fw2_orphans`: an orphaned FIN-WAIT-2 that Linux keeps
    /// as a TIME-WAIT mini-socket, counted against `tcp_max_tw_buckets`. An
    /// orphaned FIN-WAIT-2 without it is the full socket that a long
    /// lifetime keeps first (`Config::fin_wait2_keepalive`).
    pub const FW2_COUNTED: u8 = 0x20;
    /// Our FIN waits behind a retransmission (see [`super::Tcb::held`]): the
    /// state has moved on (FIN-WAIT-1, LAST-ACK) but the FIN is not in
    /// snd_nxt yet.
    pub const FIN_HELD: u8 = 0x40;
    /// Both ends offered timestamps in the handshake (RFC 7323 §3.2): every
    /// segment carries one, and `ts_recent` holds the peer's.
    pub const TS_OK: u8 = 0x80;
}

/// A full connection as the host works on it: its name, the rare
/// `last_oow_ms`, and its [`Tcb`], which it derefs to. The table keeps it
/// smaller ([`ConnRecord`]) and hands out copies.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conn {
    pub tuple: Tuple,
    /// Last out-of-window or challenge ACK (per-entry `tcp_invalid_ratelimit`),
    /// 0 if none: most connections never send one.
    pub last_oow_ms: u32,
    tcb: Tcb,
}

impl Deref for Conn {
    type Target = Tcb;
    #[inline]
    fn deref(&self) -> &Tcb {
        &self.tcb
    }
}

impl DerefMut for Conn {
    #[inline]
    fn deref_mut(&mut self) -> &mut Tcb {
        &mut self.tcb
    }
}

/// A [`Conn`] as the table's slab keeps it: 56 bytes. The tuple's fixed end
/// is interned ([`crate::endpoint`]) and `last_oow_ms` is kept beside the slab
/// for the few entries that have one ([`crate::rare`]), which spares 8 bytes
/// in every entry (Linux's `tcp_sock` is over 2 KiB). The [`Tcb`] is copied
/// whole between the two.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnRecord {
    pub name: Packed,
    tcb: Tcb,
}

/// RFC 9293's transmission control block less the connection's name: what
/// segments, timers and the application's calls read and write. 48 bytes.
///
/// Timestamps are 32-bit and only compared by difference: milliseconds for the
/// long ones (49 days of range), microseconds for the RTT (71 minutes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tcb {
    /// Oldest unacknowledged sequence number.
    pub snd_una: Seq,
    /// Next sequence number to send.
    pub snd_nxt: Seq,
    /// Next sequence number expected from the peer.
    pub rcv_nxt: Seq,
    /// Smoothed RTT, 0 before the first sample.
    pub srtt_us: u32,
    /// Linux's `mdev_us`: the K*RTTVAR term (4 * RTTVAR) of RFC 6298. Until
    /// the first sample it counts the handshake's retransmissions instead
    /// ([`Tcb::syn_retransmits`]).
    pub mdev_us: u32,
    /// Linux's `rttvar_us`: the variance term of the RTO, at least rto_min,
    /// which follows mdev up at once and down by a quarter of the gap per RTT.
    /// Before the first sample: the RTO (the initial one, or the fallback
    /// after a handshake that gave no sample).
    pub rttvar_us: u32,
    /// While `flag::TIMING`: when the timed segment was sent. Otherwise the
    /// bytes held back behind a retransmission ([`Tcb::held`]): bytes are
    /// held only in recovery, where a retransmission has already stopped the
    /// timing (Karn), so the two never live together and share four bytes.
    timing_or_held: u32,
    /// When the oldest unacknowledged segment was first sent (Linux `retrans_stamp`).
    pub retrans_stamp_ms: u32,
    /// When the application called close().
    pub close_ms: u32,
    /// The pending timer: retransmission, or the FIN-WAIT-2 timeout.
    pub timer: Option<TimerKey>,
    /// The peer's latest timestamp at the left edge of the window (RFC 7323
    /// §4.3, Linux `tcp_replace_ts_recent`): what we echo, and what PAWS
    /// compares with. Its stamp (`ts_recent_stamp`) is not kept: it only
    /// serves PAWS's 24-day rule and the 60 s rule for RSTs, which a
    /// connection idle that long would need (see `Host::paws_reject`).
    pub ts_recent: u32,
    pub state: State,
    pub flags: u8,
    /// Loss recovery in one byte: see [`rec`].
    rec: u8,
    /// RTO doublings (`icsk_backoff`, at most 30: the low five bits) and the
    /// [`bits`] above them.
    backoff_bits: u8,
}

/// Flags kept above the backoff in [`Tcb::backoff_bits`] ([`Tcb::bit`]).
pub(crate) mod bits {
    /// The last segment that updated the send window (Linux's `snd_wl1`)
    /// started at rcv_nxt, so a duplicate pure ACK there cannot update it
    /// again, which `tcp_disordered_ack` asks.
    pub const WL1_AT_RCV_NXT: u8 = 0x80;
    /// Data has arrived: Linux's delayed-ACK timeout (`icsk_ack.ato`) is set,
    /// at least `TCP_ATO_MIN`; before any it is 0 (the next tick).
    pub const DATA_RECEIVED: u8 = 0x40;
    /// A delayed ACK is scheduled (`ICSK_ACK_TIMER`): `timer` is its timer.
    pub const DELACK: u8 = 0x20;
    pub(in crate::conn) const BACKOFF: u8 = 0x1f;
}

impl Conn {
    /// A connection in `state` with ISS `iss`, its RTO the initial one of `t`.
    pub fn new(tuple: Tuple, state: State, iss: Seq, t: &TimeoutsUs) -> Conn {
        Conn {
            tuple,
            last_oow_ms: 0,
            tcb: Tcb::new(state, iss, t.rto_initial),
        }
    }

    /// The record the slab keeps, under `name` (this tuple, packed).
    #[inline]
    pub fn record(&self, name: Packed) -> ConnRecord {
        ConnRecord {
            name,
            tcb: self.tcb,
        }
    }
}

impl ConnRecord {
    /// The connection again, given its tuple and the `last_oow_ms` kept
    /// elsewhere.
    #[inline]
    pub fn conn(&self, tuple: Tuple, last_oow_ms: u32) -> Conn {
        Conn {
            tuple,
            last_oow_ms,
            tcb: self.tcb,
        }
    }

    /// Takes the working copy `c` back (its tuple does not change).
    #[inline]
    pub fn update(&mut self, c: &Conn) {
        self.tcb = c.tcb;
    }
}

const _: () = assert!(std::mem::size_of::<Tcb>() == 48);

impl Tcb {
    fn new(state: State, iss: Seq, rto_initial_us: u32) -> Tcb {
        Tcb {
            snd_una: iss,
            snd_nxt: iss,
            rcv_nxt: Seq(0),
            srtt_us: 0,
            mdev_us: 0,
            rttvar_us: rto_initial_us,
            timing_or_held: 0,
            retrans_stamp_ms: 0,
            close_ms: 0,
            timer: None,
            ts_recent: 0,
            state,
            flags: 0,
            rec: rec::REORDERING_DEFAULT << rec::REORD_SHIFT,
            backoff_bits: 0,
        }
    }

    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// The TSecr our segments carry, when timestamps are in use (offered, in
    /// SYN-SENT): the peer's `ts_recent` (RFC 7323 §4.3).
    #[inline]
    pub fn ts_echo(&self) -> Option<u32> {
        self.has(flag::TS_OK).then_some(self.ts_recent)
    }

    /// RTO doublings (`icsk_backoff`).
    #[inline]
    pub fn backoff(&self) -> u8 {
        self.backoff_bits & bits::BACKOFF
    }

    #[inline]
    pub fn set_backoff(&mut self, backoff: u8) {
        debug_assert!(backoff <= bits::BACKOFF);
        self.backoff_bits = (self.backoff_bits & !bits::BACKOFF) | backoff.min(bits::BACKOFF);
    }

    /// Whether flag `bit` (one of [`bits`]) is set.
    #[inline]
    pub fn bit(&self, bit: u8) -> bool {
        self.backoff_bits & bit != 0
    }

    #[inline]
    pub fn set_bit(&mut self, bit: u8, on: bool) {
        debug_assert_eq!(bit & bits::BACKOFF, 0);
        self.backoff_bits = (self.backoff_bits & !bit) | if on { bit } else { 0 };
    }

    /// Starts timing a segment sent `now_us` (Karn: never a retransmitted one).
    #[inline]
    pub fn start_timing(&mut self, now_us: u32) {
        debug_assert_eq!(self.held(), 0);
        self.timing_or_held = now_us;
        self.flags |= flag::TIMING;
    }

    /// The RTT sample of the timed segment, acknowledged at `now_us`; stops timing.
    #[inline]
    pub fn take_timing(&mut self, now_us: u32) -> Option<u32> {
        if !self.has(flag::TIMING) {
            return None;
        }
        self.flags &= !flag::TIMING;
        Some(now_us.wrapping_sub(std::mem::take(&mut self.timing_or_held)))
    }

    /// Bytes the application wrote that wait behind a retransmission: after an
    /// RTO Linux's congestion window is one segment, so new data (and the FIN)
    /// go out only once the retransmitted segment is acknowledged.
    #[inline]
    pub fn held(&self) -> u32 {
        if self.has(flag::TIMING) {
            0
        } else {
            self.timing_or_held
        }
    }

    /// Holds `len` more bytes back (only in recovery, when nothing is timed).
    #[inline]
    pub fn hold(&mut self, len: u32) {
        if self.take_timing(0).is_some() {
            debug_assert!(false, "bytes held while a segment is timed");
        }
        self.timing_or_held = self.timing_or_held.saturating_add(len);
    }

    /// Takes the held bytes, to send them.
    #[inline]
    pub fn take_held(&mut self) -> u32 {
        let n = self.held();
        self.timing_or_held -= n;
        n
    }

    /// New sequence space (data, our FIN) must wait now: in recovery, or
    /// behind what already waits.
    #[inline]
    pub fn must_hold(&self) -> bool {
        self.in_recovery() || self.held() > 0
    }

    /// Data or our FIN is held back, not yet in snd_nxt.
    #[inline]
    pub fn holds_back(&self) -> bool {
        self.held() > 0 || self.has(flag::FIN_HELD)
    }

    /// Our FIN is in the sequence space (sent, perhaps lost), not held back.
    #[inline]
    pub fn fin_out(&self) -> bool {
        self.state.fin_sent() && !self.has(flag::FIN_HELD)
    }

    /// Records when the application first closed (for teardown latency), at
    /// the millisecond stamp `now_ms` (the host keeps it: no division here).
    pub fn stamp_close(&mut self, now_ms: u32) {
        if !self.has(flag::CLOSE_STAMPED) {
            self.close_ms = now_ms;
            self.flags |= flag::CLOSE_STAMPED;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_and_held_bytes_share_a_field_without_meeting() {
        let t = TimeoutsUs::new(&crate::Config::default());
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0), &t);
        c.start_timing(1_000);
        assert_eq!(c.held(), 0);
        assert_eq!(c.take_timing(41_000), Some(40_000));
        assert_eq!(c.take_timing(50_000), None);
        c.hold(100);
        c.hold(100);
        assert_eq!(c.held(), 200);
        assert_eq!(c.take_held(), 200);
        assert_eq!(c.held(), 0);
    }
}
