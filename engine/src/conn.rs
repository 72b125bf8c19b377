//! A live connection's entry (every state but TIME-WAIT), and its RTO arithmetic.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::config::Config;
use crate::endpoint::Packed;
use crate::seq::Seq;
use crate::state::State;
use crate::tuple::Tuple;
use crate::wheel::TimerKey;

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
    /// Counted in `Host::fw2_orphans`: an orphaned FIN-WAIT-2, which Linux keeps
    /// as a TIME-WAIT mini-socket counted against `tcp_max_tw_buckets`.
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
    /// Linux's `mdev_us`: the K*RTTVAR term (4 * RTTVAR) of RFC 6298.
    pub mdev_us: u32,
    /// Linux's `rttvar_us`: the variance term of the RTO, at least rto_min,
    /// which follows mdev up at once and down by a quarter of the gap per RTT.
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
    pub(super) const BACKOFF: u8 = 0x1f;
}

/// Loss recovery state in [`Tcb::rec`], for a peer without SACK (the engine
/// offers none), as Linux's NewReno path keeps it: `tcp_add_reno_sack`,
/// `tcp_limit_reno_sacked`, `tcp_check_reno_reordering`, `tcp_newreno_mark_lost`.
pub(crate) mod rec {
    /// The retransmission timer has fired for the oldest segment
    /// (`icsk_retransmits` above 0, which is all the engine reads of it).
    pub const RTO: u8 = 0x01;
    /// `packets_out`: segments in flight, seven standing for seven or more.
    /// The engine keeps no segment boundaries; a teardown has a response
    /// and a FIN or two in flight, each counted as it is sent.
    pub(super) const PKTS_SHIFT: u8 = 1;
    pub const PKTS_MAX: u8 = 7;
    /// Reno's `sacked_out`: duplicate ACKs counted, below `reordering`;
    /// [`FAST`] once they reached it (Linux's `TCP_CA_Recovery`).
    pub(super) const DUPS_SHIFT: u8 = 4;
    pub const FAST: u8 = 3;
    /// `tp->reordering`, the duplicate-ACK threshold: `sysctl_tcp_reordering`
    /// (3) at first, lowered to `packets_out` when more duplicates come than
    /// segments are out. Three also stands for more: dupthresh above three
    /// needs four segments out.
    pub(super) const REORD_SHIFT: u8 = 6;
    pub const REORDERING_DEFAULT: u8 = 3;
}

impl Conn {
    pub fn new(tuple: Tuple, state: State, iss: Seq) -> Conn {
        Conn {
            tuple,
            last_oow_ms: 0,
            tcb: Tcb::new(state, iss),
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
    fn new(state: State, iss: Seq) -> Tcb {
        Tcb {
            snd_una: iss,
            snd_nxt: iss,
            rcv_nxt: Seq(0),
            srtt_us: 0,
            mdev_us: 0,
            rttvar_us: 0,
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

    /// The retransmission timer fired for the oldest segment (`icsk_retransmits`).
    #[inline]
    pub fn rto_fired(&self) -> bool {
        self.rec & rec::RTO != 0
    }

    #[inline]
    pub fn set_rto_fired(&mut self, on: bool) {
        self.rec = (self.rec & !rec::RTO) | on as u8;
    }

    /// Segments in flight (`packets_out`, saturating at [`rec::PKTS_MAX`]).
    #[inline]
    pub fn pkts(&self) -> u8 {
        (self.rec >> rec::PKTS_SHIFT) & 0x7
    }

    #[inline]
    pub fn set_pkts(&mut self, n: u8) {
        let n = n.min(rec::PKTS_MAX);
        self.rec = (self.rec & !(0x7 << rec::PKTS_SHIFT)) | n << rec::PKTS_SHIFT;
    }

    /// Duplicate ACKs counted (`sacked_out`), or [`rec::FAST`] in fast recovery.
    #[inline]
    pub fn dupacks(&self) -> u8 {
        (self.rec >> rec::DUPS_SHIFT) & 0x3
    }

    #[inline]
    pub fn set_dupacks(&mut self, n: u8) {
        debug_assert!(n <= rec::FAST);
        self.rec = (self.rec & !(0x3 << rec::DUPS_SHIFT)) | n << rec::DUPS_SHIFT;
    }

    /// In fast recovery: a fast retransmission is outstanding.
    #[inline]
    pub fn fast_recovery(&self) -> bool {
        self.dupacks() == rec::FAST
    }

    /// The duplicate-ACK threshold (`tp->reordering`), 1 to 3.
    #[inline]
    pub fn reordering(&self) -> u8 {
        self.rec >> rec::REORD_SHIFT
    }

    #[inline]
    pub fn set_reordering(&mut self, n: u8) {
        let n = n.clamp(1, rec::REORDERING_DEFAULT);
        self.rec = (self.rec & !(0x3 << rec::REORD_SHIFT)) | n << rec::REORD_SHIFT;
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

    /// A retransmitted segment is unacknowledged: Linux is in loss recovery
    /// (after an RTO with a congestion window of one; in fast recovery the
    /// engine holds new data alike), and sends no new sequence space.
    #[inline]
    pub fn in_recovery(&self) -> bool {
        (self.rto_fired() || self.fast_recovery()) && self.snd_una != self.snd_nxt
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

    /// Records when the application first closed (for teardown latency).
    pub fn stamp_close(&mut self, now: crate::time::Time) {
        if !self.has(flag::CLOSE_STAMPED) {
            self.close_ms = now.stamp_ms();
            self.flags |= flag::CLOSE_STAMPED;
        }
    }

    /// Feeds one RTT sample, as Linux's `tcp_rtt_estimator` and `__tcp_set_rto` do:
    /// the first sample m gives srtt = m and a variance term of max(2m, rto_min),
    /// so RTO = m + max(2m, 200 ms); later samples smooth srtt by 1/8 and mdev
    /// by 1/4 (1/32 when the RTT falls), and rttvar follows max(mdev, rto_min)
    /// up at once and down by a quarter of the gap.
    pub fn rtt_sample(&mut self, m_us: u32, t: &TimeoutsUs) {
        let m = m_us.max(1) as i64;
        let rto_min = t.rto_min as i64;
        if self.srtt_us == 0 {
            // "no previous measure": rto = 3 * rtt, at least rto_min above it.
            self.srtt_us = m as u32;
            self.mdev_us = (2 * m) as u32;
            self.rttvar_us = (2 * m).max(rto_min) as u32;
            return;
        }
        let srtt = self.srtt_us as i64;
        let mdev = self.mdev_us as i64;
        let err = m - srtt;
        self.srtt_us = (srtt + err / 8).max(1) as u32;
        // mdev = 3/4 mdev + 1/4 |err|, with Linux's finer gain (a further 1/8)
        // when the RTT falls: "like Eifel it also prevents growth of rto".
        let step = if err < 0 {
            let d = -err - mdev / 4;
            if d > 0 {
                d >> 3
            } else {
                d
            }
        } else {
            err - mdev / 4
        };
        self.mdev_us = (mdev + step).max(0) as u32;
        // Once per RTT (each engine sample is from a later flight): rttvar
        // rises to max(mdev, rto_min) at once, falls by a quarter of the gap.
        let mdev_max = (self.mdev_us as i64).max(rto_min);
        let rttvar = self.rttvar_us as i64;
        self.rttvar_us = if mdev_max > rttvar {
            mdev_max
        } else {
            rttvar - (rttvar - mdev_max) / 4
        } as u32;
    }

    /// The RTO before backoff in microseconds, uncapped (`__tcp_set_rto`:
    /// srtt + rttvar), or the initial RTO before any sample. Integer work: it
    /// runs on every arm of the retransmission timer.
    #[inline]
    fn rto_us(&self, t: &TimeoutsUs) -> u64 {
        if self.srtt_us == 0 {
            t.rto_initial
        } else {
            self.srtt_us as u64 + self.rttvar_us as u64
        }
    }

    /// The RTO after backoff, capped at rto_max (`inet_csk_rto_backoff`).
    pub fn backed_off_rto(&self, t: &TimeoutsUs) -> Duration {
        Duration::from_micros(self.backed_off_rto_us(t))
    }

    /// [`Conn::backed_off_rto`] in microseconds.
    #[inline]
    pub(crate) fn backed_off_rto_us(&self, t: &TimeoutsUs) -> u64 {
        self.rto_us(t)
            .checked_shl(self.backoff() as u32)
            .unwrap_or(t.rto_max)
            .min(t.rto_max)
    }

    /// `tcp_fin_time()`: the orphaned FIN-WAIT-2 lifetime, `tcp_fin_timeout` but at
    /// least 3.5 RTO. Linux's `icsk_rto` is the backed-off RTO: it stays backed
    /// off until a valid RTT sample, so a FIN that was retransmitted and then
    /// ACKed can stretch FIN-WAIT-2 beyond 60 s. In microseconds, rounded
    /// down as arming the timer rounds a `Duration`: `Duration` arithmetic
    /// (times 7, halved, compared) cost more than the rest of arming it.
    pub fn fin_wait2_timeout_us(&self, t: &TimeoutsUs) -> u64 {
        t.fin_timeout
            .max(self.backed_off_rto_us(t).saturating_mul(7) / 2)
    }
}

/// A [`Config`]'s timeouts in microseconds, taken once per host: read as
/// `Duration`s they cost a multiply and a divide each on every arm of the
/// retransmission timer and every RTT sample. Same values as the
/// `Duration`s' `as_micros()` (the RTO bounds truncated to 64 bits as
/// before, `fin_timeout` saturated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutsUs {
    pub rto_initial: u64,
    pub rto_min: u64,
    pub rto_max: u64,
    pub fin_timeout: u64,
}

impl TimeoutsUs {
    pub fn new(cfg: &Config) -> TimeoutsUs {
        TimeoutsUs {
            rto_initial: cfg.rto_initial.as_micros() as u64,
            rto_min: cfg.rto_min.as_micros() as u64,
            rto_max: cfg.rto_max.as_micros() as u64,
            fin_timeout: u64::try_from(cfg.fin_timeout.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_gives_m_plus_max_2m_200ms() {
        let t = TimeoutsUs::new(&Config::default());
        let mut c = Conn::new(Tuple::default(), State::SynSent, Seq(0));
        assert_eq!(c.backed_off_rto(&t), Duration::from_secs(1));
        c.rtt_sample(100_000, &t);
        assert_eq!(c.backed_off_rto(&t), Duration::from_millis(300));
        let mut d = Conn::new(Tuple::default(), State::SynSent, Seq(0));
        d.rtt_sample(20_000, &t);
        assert_eq!(d.backed_off_rto(&t), Duration::from_millis(220));
    }

    #[test]
    fn later_samples_smooth_and_backoff_caps() {
        let t = TimeoutsUs::new(&Config::default());
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0));
        c.rtt_sample(100_000, &t);
        c.rtt_sample(100_000, &t);
        // srtt stays 100 ms; mdev decays from 200 ms to 150 ms, under the 200 ms floor.
        assert_eq!(c.srtt_us, 100_000);
        assert_eq!(c.mdev_us, 150_000);
        assert_eq!(c.backed_off_rto(&t), Duration::from_millis(300));
        c.set_backoff(3);
        assert_eq!(c.backed_off_rto(&t), Duration::from_millis(2_400));
        c.set_backoff(30);
        assert_eq!(c.backed_off_rto(&t), Duration::from_secs(120));
    }

    #[test]
    fn a_falling_rtt_moves_the_rto_as_linux_does() {
        // Hand-run of tcp_rtt_estimator: 100 ms, then a 50 us sample.
        let t = TimeoutsUs::new(&Config::default());
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0));
        c.rtt_sample(100_000, &t);
        c.rtt_sample(50, &t);
        // srtt 100000 + (50 - 100000) / 8; mdev 200000 + ((99950 - 50000) >> 3);
        // rttvar follows mdev up.
        assert_eq!(c.srtt_us, 87_507);
        assert_eq!(c.mdev_us, 206_243);
        assert_eq!(c.rttvar_us, 206_243);
        assert_eq!(c.backed_off_rto(&t), Duration::from_micros(293_750));
        // Steady 100 ms samples bring mdev down and rttvar back to the floor
        // by a quarter of the gap each time.
        c.rtt_sample(100_000, &t);
        // mdev falls to 167176, under the floor: rttvar moves a quarter of the
        // way down to rto_min.
        assert_eq!(c.rttvar_us, 206_243 - (206_243 - 200_000) / 4);
    }

    #[test]
    fn fin_wait2_lasts_at_least_three_and_a_half_rto() {
        let cfg = Config {
            fin_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        let t = TimeoutsUs::new(&cfg);
        let mut c = Conn::new(Tuple::default(), State::FinWait2, Seq(0));
        c.rtt_sample(100_000, &t);
        c.set_backoff(2); // 300 ms backed off twice
        assert_eq!(c.fin_wait2_timeout_us(&t), 4_200_000);
        // An odd RTO (300,003 µs): 3.5 of it rounds down to the microsecond,
        // as `Duration` arithmetic and then arming the timer round it.
        let mut d = Conn::new(Tuple::default(), State::FinWait2, Seq(0));
        d.rtt_sample(100_001, &t);
        let rto = d.backed_off_rto(&t);
        assert_eq!(rto.as_micros(), 300_003);
        let want = std::cmp::max(cfg.fin_timeout, rto * 7 / 2);
        assert_eq!(d.fin_wait2_timeout_us(&t), 1_050_010);
        assert_eq!(u128::from(d.fin_wait2_timeout_us(&t)), want.as_micros());
    }

    #[test]
    fn recovery_fields_share_a_byte_without_meeting() {
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0));
        assert_eq!((c.pkts(), c.dupacks(), c.reordering()), (0, 0, 3));
        assert!(!c.rto_fired() && !c.fast_recovery());
        c.set_pkts(9);
        c.set_dupacks(2);
        c.set_reordering(1);
        c.set_rto_fired(true);
        assert_eq!((c.pkts(), c.dupacks(), c.reordering()), (7, 2, 1));
        assert!(c.rto_fired());
        c.set_reordering(5);
        c.set_dupacks(rec::FAST);
        c.set_rto_fired(false);
        assert_eq!((c.pkts(), c.reordering()), (7, 3));
        assert!(c.fast_recovery() && !c.rto_fired());
    }

    #[test]
    fn timing_and_held_bytes_share_a_field_without_meeting() {
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0));
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
