//! The retransmission timeout: RTT samples smoothed as Linux's
//! `tcp_rtt_estimator` does (RFC 6298), the backed-off RTO, and the
//! FIN-WAIT-2 timeout that follows it, in microseconds.

use std::time::Duration;

use super::Tcb;
use crate::config::{Config, RTO_FALLBACK};

/// [`RTO_FALLBACK`] in microseconds.
pub(crate) const RTO_FALLBACK_US: u32 = RTO_FALLBACK.as_micros() as u32;

impl Tcb {
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
    /// srtt + rttvar). Before the first sample srtt is 0 and rttvar holds the
    /// initial RTO ([`Conn::new`](super::Conn::new)), as FreeBSD's
    /// `tcp_newtcpcb` seeds `t_rttvar` so that the formula gives
    /// `TCPTV_RTOBASE`, or [`RTO_FALLBACK_US`] after a handshake that gave no
    /// sample. Integer work, and no branch: it runs on every arm of the
    /// retransmission timer.
    #[inline]
    fn rto_us(&self) -> u64 {
        self.srtt_us as u64 + self.rttvar_us as u64
    }

    /// Our SYN or SYN-ACK went again: Karn's rule leaves the handshake no
    /// RTT sample but a timestamp echo's (a request's `num_retrans` stops
    /// `tcp_synack_rtt_meas` alike). Without one Linux's `tcp_init_metrics`
    /// starts the data phase on `TCP_TIMEOUT_FALLBACK`, 3 s (RFC 6298 §5.7),
    /// not backed off: it sets `icsk_rto`, and a passive open's child socket
    /// has no backoff. Set now rather than at the end: no timer of the
    /// handshake reads it (they count [`Tcb::syn_retransmits`] from the
    /// initial RTO), and a sample from the handshake's last segment, a first
    /// sample, replaces it, where Linux skips the fallback.
    pub fn handshake_resent(&mut self) {
        self.take_timing(0);
        self.rttvar_us = RTO_FALLBACK_US;
    }

    /// Timer retransmissions of our SYN or SYN-ACK so far: Linux's
    /// `icsk_retransmits` (and `total_rto`) in SYN-SENT, a request's
    /// `num_timeout`. They are counted in `mdev_us`, which means nothing
    /// until the first RTT sample: [`Tcb::rto_us`] does not read it, and the
    /// first sample sets it afresh. The handshake has no sample before its
    /// last segment, so the count lives as long as it is needed. (The
    /// backoff stays 0 in the handshake: none is carried past it.)
    #[inline]
    pub fn syn_retransmits(&self) -> u32 {
        debug_assert_eq!(self.srtt_us, 0, "a sample in the handshake");
        self.mdev_us
    }

    /// One more timer retransmission of our SYN or SYN-ACK.
    pub fn count_syn_retransmit(&mut self) {
        self.mdev_us = self.syn_retransmits().saturating_add(1);
    }

    /// The RTO after backoff, capped at rto_max (`inet_csk_rto_backoff`).
    pub fn backed_off_rto(&self, t: &TimeoutsUs) -> Duration {
        Duration::from_micros(self.backed_off_rto_us(t))
    }

    /// [`Tcb::backed_off_rto`] in microseconds.
    #[inline]
    pub(crate) fn backed_off_rto_us(&self, t: &TimeoutsUs) -> u64 {
        self.rto_us()
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
        t.fin_timeout.max(self.three_and_a_half_rto_us(t))
    }

    /// 3.5 times the backed-off RTO, the least a FIN-WAIT-2 mini-socket
    /// lives (`tcp_fin_time`, `tcp_time_wait`), rounded down to the µs.
    #[inline]
    pub fn three_and_a_half_rto_us(&self, t: &TimeoutsUs) -> u64 {
        self.backed_off_rto_us(t).saturating_mul(7) / 2
    }
}

/// A [`Config`]'s timeouts in microseconds, taken once per host: read as
/// `Duration`s they cost a multiply and a divide each on every arm of the
/// retransmission timer, every RTT sample and every entry into TIME-WAIT.
/// Same values as the `Duration`s' `as_micros()` (`rto_min` and `rto_max`
/// truncated to 64 bits as before, `rto_initial` saturated to 32,
/// `fin_timeout` and `time_wait` saturated, as `Time + Duration` saturates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeoutsUs {
    /// 32 bits, as the `rttvar_us` it seeds: `Config::validate` keeps it
    /// within an hour (saturated past 71 minutes).
    pub(crate) rto_initial: u32,
    pub(crate) rto_min: u64,
    pub(crate) rto_max: u64,
    pub(crate) fin_timeout: u64,
    pub(crate) time_wait: u64,
}

impl TimeoutsUs {
    pub(crate) fn new(cfg: &Config) -> TimeoutsUs {
        TimeoutsUs {
            rto_initial: u32::try_from(cfg.rto_initial.as_micros()).unwrap_or(u32::MAX),
            rto_min: cfg.rto_min.as_micros() as u64,
            rto_max: cfg.rto_max.as_micros() as u64,
            fin_timeout: u64::try_from(cfg.fin_timeout.as_micros()).unwrap_or(u64::MAX),
            time_wait: u64::try_from(cfg.time_wait.as_micros()).unwrap_or(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Conn;
    use crate::seq::Seq;
    use crate::state::State;
    use crate::tuple::Tuple;

    #[test]
    fn first_sample_gives_m_plus_max_2m_200ms() {
        let t = TimeoutsUs::new(&Config::default());
        let mut c = Conn::new(Tuple::default(), State::SynSent, Seq(0), &t);
        assert_eq!(c.backed_off_rto(&t), Duration::from_secs(1));
        c.rtt_sample(100_000, &t);
        assert_eq!(c.backed_off_rto(&t), Duration::from_millis(300));
        let mut d = Conn::new(Tuple::default(), State::SynSent, Seq(0), &t);
        d.rtt_sample(20_000, &t);
        assert_eq!(d.backed_off_rto(&t), Duration::from_millis(220));
    }

    #[test]
    fn later_samples_smooth_and_backoff_caps() {
        let t = TimeoutsUs::new(&Config::default());
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0), &t);
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
        let mut c = Conn::new(Tuple::default(), State::Established, Seq(0), &t);
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
        let mut c = Conn::new(Tuple::default(), State::FinWait2, Seq(0), &t);
        c.rtt_sample(100_000, &t);
        c.set_backoff(2); // 300 ms backed off twice
        assert_eq!(c.fin_wait2_timeout_us(&t), 4_200_000);
        // An odd RTO (300,003 µs): 3.5 of it rounds down to the microsecond,
        // as `Duration` arithmetic and then arming the timer round it.
        let mut d = Conn::new(Tuple::default(), State::FinWait2, Seq(0), &t);
        d.rtt_sample(100_001, &t);
        let rto = d.backed_off_rto(&t);
        assert_eq!(rto.as_micros(), 300_003);
        let want = std::cmp::max(cfg.fin_timeout, rto * 7 / 2);
        assert_eq!(d.fin_wait2_timeout_us(&t), 1_050_010);
        assert_eq!(u128::from(d.fin_wait2_timeout_us(&t)), want.as_micros());
    }
}
