//! A live connection's entry (every state but TIME-WAIT), and its RTO arithmetic.

use std::time::Duration;

use crate::config::Config;
use crate::state::State;
use crate::tuple::Tuple;
use crate::wheel::TimerKey;

/// Flag bits in [`Conn::flags`].
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
}

/// A full connection. 60 bytes; kept in a chunked slab, named by a `u32` index.
///
/// Timestamps are 32-bit and only compared by difference: milliseconds for the
/// long ones (49 days of range), microseconds for the RTT (71 minutes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conn {
    pub tuple: Tuple,
    /// Oldest unacknowledged sequence number.
    pub snd_una: u32,
    /// Next sequence number to send.
    pub snd_nxt: u32,
    /// Next sequence number expected from the peer.
    pub rcv_nxt: u32,
    /// Smoothed RTT, 0 before the first sample.
    pub srtt_us: u32,
    /// Linux's `mdev`: the K*RTTVAR term (4 * RTTVAR) of RFC 6298.
    pub mdev_us: u32,
    /// RTO before backoff.
    pub rto_us: u32,
    /// When the timed segment was sent.
    pub rtt_ts_us: u32,
    /// When the oldest unacknowledged segment was first sent (Linux `retrans_stamp`).
    pub retrans_stamp_ms: u32,
    /// When the application called close().
    pub close_ms: u32,
    /// Last out-of-window or challenge ACK (per-entry `tcp_invalid_ratelimit`).
    pub last_oow_ms: u32,
    /// The pending timer: retransmission, or the FIN-WAIT-2 timeout.
    pub timer: Option<TimerKey>,
    pub state: State,
    pub flags: u8,
    /// Retransmissions of the current oldest segment (`icsk_retransmits`).
    pub retransmits: u8,
    /// RTO doublings (`icsk_backoff`).
    pub backoff: u8,
}

impl Conn {
    pub fn new(tuple: Tuple, state: State, iss: u32, cfg: &Config) -> Conn {
        Conn {
            tuple,
            snd_una: iss,
            snd_nxt: iss,
            rcv_nxt: 0,
            srtt_us: 0,
            mdev_us: 0,
            rto_us: cfg.rto_initial.as_micros() as u32,
            rtt_ts_us: 0,
            retrans_stamp_ms: 0,
            close_ms: 0,
            last_oow_ms: 0,
            timer: None,
            state,
            flags: 0,
            retransmits: 0,
            backoff: 0,
        }
    }

    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
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
    /// so RTO = m + max(2m, 200 ms); later samples follow RFC 6298 smoothing
    /// (gains 1/8 and 1/4) with the same floor on the variance term.
    pub fn rtt_sample(&mut self, m_us: u32, cfg: &Config) {
        let m = m_us.max(1);
        if self.srtt_us == 0 {
            self.srtt_us = m;
            self.mdev_us = m.saturating_mul(2);
        } else {
            let err = m as i64 - self.srtt_us as i64;
            self.srtt_us = (self.srtt_us as i64 + err / 8).max(1) as u32;
            let mdev = self.mdev_us as i64;
            self.mdev_us = (mdev - mdev / 4 + err.abs()) as u32;
        }
        let var = self.mdev_us.max(cfg.rto_min.as_micros() as u32);
        self.rto_us = self
            .srtt_us
            .saturating_add(var)
            .min(cfg.rto_max.as_micros() as u32);
    }

    /// The RTO after backoff, capped at rto_max (`inet_csk_rto_backoff`).
    pub fn backed_off_rto(&self, cfg: &Config) -> Duration {
        let max = cfg.rto_max.as_micros() as u64;
        let rto = (self.rto_us as u64)
            .checked_shl(self.backoff as u32)
            .unwrap_or(max)
            .min(max);
        Duration::from_micros(rto)
    }

    /// `tcp_fin_time()`: the orphaned FIN-WAIT-2 lifetime, `tcp_fin_timeout` but at
    /// least 3.5 RTO. Linux's `icsk_rto` is the backed-off RTO: it stays backed
    /// off until a valid RTT sample, so a FIN that was retransmitted and then
    /// ACKed can stretch FIN-WAIT-2 beyond 60 s.
    pub fn fin_wait2_timeout(&self, cfg: &Config) -> Duration {
        cfg.fin_timeout.max(self.backed_off_rto(cfg) * 7 / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_gives_m_plus_max_2m_200ms() {
        let cfg = Config::default();
        let mut c = Conn::new(Tuple::default(), State::SynSent, 0, &cfg);
        assert_eq!(c.backed_off_rto(&cfg), Duration::from_secs(1));
        c.rtt_sample(100_000, &cfg);
        assert_eq!(c.backed_off_rto(&cfg), Duration::from_millis(300));
        let mut d = Conn::new(Tuple::default(), State::SynSent, 0, &cfg);
        d.rtt_sample(20_000, &cfg);
        assert_eq!(d.backed_off_rto(&cfg), Duration::from_millis(220));
    }

    #[test]
    fn later_samples_smooth_and_backoff_caps() {
        let cfg = Config::default();
        let mut c = Conn::new(Tuple::default(), State::Established, 0, &cfg);
        c.rtt_sample(100_000, &cfg);
        c.rtt_sample(100_000, &cfg);
        // srtt stays 100 ms; mdev decays from 200 ms to 150 ms, under the 200 ms floor.
        assert_eq!(c.srtt_us, 100_000);
        assert_eq!(c.mdev_us, 150_000);
        assert_eq!(c.backed_off_rto(&cfg), Duration::from_millis(300));
        c.backoff = 3;
        assert_eq!(c.backed_off_rto(&cfg), Duration::from_millis(2_400));
        c.backoff = 40;
        assert_eq!(c.backed_off_rto(&cfg), Duration::from_secs(120));
    }

    #[test]
    fn fin_wait2_lasts_at_least_three_and_a_half_rto() {
        let cfg = Config {
            fin_timeout: Duration::from_secs(1),
            ..Config::default()
        };
        let mut c = Conn::new(Tuple::default(), State::FinWait2, 0, &cfg);
        c.rto_us = 400_000;
        assert_eq!(c.fin_wait2_timeout(&cfg), Duration::from_millis(1_400));
    }

    #[test]
    fn conn_stays_compact() {
        assert!(
            std::mem::size_of::<Conn>() <= 64,
            "{}",
            std::mem::size_of::<Conn>()
        );
    }
}
