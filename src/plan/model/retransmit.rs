//! The retransmission timer as the model sees it: the doubling schedule of
//! attempts, the SYN's (linear at first), the retry budgets
//! (`tcp_write_timeout`) and the RTT estimator that sets the RTO
//! (`tcp_rtt_estimator`).

use std::time::Duration;

use teardown_engine::config::Config;

/// Send times of attempts 0..n on a doubling schedule capped at `max` per step.
pub(super) fn schedule(rto: f64, max: f64, n: usize) -> Vec<f64> {
    let mut t = Vec::with_capacity(n);
    let (mut at, mut step) = (0.0, rto);
    for _ in 0..n {
        t.push(at);
        at += step.min(max);
        step = (step * 2.0).min(max);
    }
    t
}

/// The engine's retry budget: attempts sent and the time the sender gives up
/// (`tcp_write_timeout` checks `elapsed >= model_timeout` only at expiries k >= 2).
pub(super) fn give_up(cfg: &Config, rto: f64, limit: u8, base: Duration) -> (Vec<f64>, f64) {
    let budget = cfg.model_timeout(limit, base).as_secs_f64();
    let t = schedule(rto, cfg.rto_max.as_secs_f64(), 64);
    let k = (2..t.len())
        .find(|&k| t[k] >= budget)
        .unwrap_or(t.len() - 1);
    (t[..k].to_vec(), t[k])
}

/// `rto` doubled `n` times, at most `rto_max` (`inet_csk_rto_backoff`,
/// a request's `reqsk_timeout`), in seconds.
pub(in crate::plan) fn backed_off(rto: f64, n: u32, rto_max: f64) -> f64 {
    (rto * f64::from(1u32 << n.min(30))).min(rto_max)
}

/// SYN-SENT's timer, in seconds, after `n` retransmissions of the SYN: the
/// initial RTO, doubled for each retransmission past the first
/// `syn_linear_timeouts` (`tcp_retransmit_timer`), up to rto_max.
pub(in crate::plan) fn syn_rto(cfg: &Config, n: u32) -> f64 {
    let max = cfg.rto_max.as_secs_f64();
    backed_off(cfg.rto_initial.as_secs_f64(), cfg.syn_doublings(n), max)
}

/// Whether SYN-SENT gives up at the expiry `t` seconds after its first SYN,
/// which would send retransmission `n` (`tcp_write_timeout`): after
/// `syn_retries` + `syn_linear_timeouts` of them, or once the time
/// `syn_retries` doublings from the initial RTO take has passed, at an
/// expiry after a retransmission.
pub(in crate::plan) fn syn_given_up(cfg: &Config, n: u32, t: f64) -> bool {
    let sent = n.saturating_sub(1);
    let budget = cfg
        .model_timeout(cfg.syn_retries, cfg.rto_initial)
        .as_secs_f64();
    sent >= cfg.syn_sent_retries() || (sent > 0 && t >= budget)
}

/// Whether an established connection gives up at its request timer's `n`-th
/// expiry, `elapsed` seconds after the request first went
/// (`tcp_write_timeout`): once the time `tcp_retries2` doublings from
/// rto_min take has passed (924.6 s with Linux's 15), or for an `orphan`
/// (its application closed it) `tcp_orphan_retries` doublings (102.2 s
/// with Linux's 8), at an expiry after a retransmission.
pub(in crate::plan) fn request_given_up(cfg: &Config, n: u32, elapsed: f64, orphan: bool) -> bool {
    let limit = if orphan {
        cfg.orphan_retry_limit()
    } else {
        cfg.retries2
    };
    n >= 2 && elapsed >= cfg.model_timeout(limit, cfg.rto_min).as_secs_f64()
}

/// Whether SYN-RECEIVED's `n`-th expiry drops the request instead of
/// resending its SYN-ACK: Linux drops it at the expiry that finds
/// `tcp_synack_retries` of them sent, silently (`reqsk_timer_handler`'s
/// `syn_ack_recalc`, then `inet_csk_reqsk_queue_drop`), the first with 0.
/// SYN-ACKs resent for a duplicate SYN do not count (`inet_rtx_syn_ack`
/// counts `num_retrans`, not `num_timeout`).
pub(in crate::plan) fn synack_dropped(cfg: &Config, n: u32) -> bool {
    n > u32::from(cfg.synack_retries)
}

/// Mean wait until the first success of independent attempts at times `t`, success
/// k completing at t_k + `extra`, first attempt with probability `s0`, later `s`;
/// all failing costs `fail_at`.
fn first_success(t: &[f64], s0: f64, s: f64, extra: f64, fail_at: f64) -> f64 {
    let (mut left, mut mean) = (1.0, 0.0);
    for (k, &tk) in t.iter().enumerate() {
        let p = if k == 0 { s0 } else { s };
        mean += left * p * (tk + extra);
        left *= 1.0 - p;
    }
    mean + left * fail_at
}

/// Mean time from a sender's first transmission until its segment first arrives,
/// each copy lost with probability `p`, attempts at `t` (copies of one segment).
pub(super) fn first_arrival_delay(t: &[f64], p: f64) -> f64 {
    first_success(t, 1.0 - p, 1.0 - p, 0.0, t.last().copied().unwrap_or(0.0))
}

/// A segment first sent `after` seconds from now and resent at offsets `t`,
/// each copy lost with probability `p`, awaited at most `limit` seconds: the
/// mean wait (`min(arrival, limit)`) and the probability it arrives in time.
/// An orphaned FIN-WAIT-2 waits so for the peer's FIN (`tcp_fin_timeout`).
pub(super) fn arrival_within(t: &[f64], p: f64, after: f64, limit: f64) -> (f64, f64) {
    let (mut left, mut mean, mut within) = (1.0, 0.0, 0.0);
    for &tk in t {
        let got = left * (1.0 - p);
        let at = after + tk;
        if at < limit {
            mean += got * at;
            within += got;
        } else {
            mean += got * limit;
        }
        left -= got;
    }
    (mean + left * limit, within)
}

/// The engine's RTT estimator (`Conn::rtt_sample`, Linux `tcp_rtt_estimator`)
/// in seconds.
#[derive(Default)]
pub(super) struct Rtt {
    srtt: f64,
    mdev: f64,
    rttvar: f64,
}

impl Rtt {
    pub(super) fn sample(&mut self, m: f64, rto_min: f64) {
        if self.srtt == 0.0 {
            self.srtt = m;
            self.mdev = 2.0 * m;
            self.rttvar = (2.0 * m).max(rto_min);
            return;
        }
        let err = m - self.srtt;
        self.srtt += err / 8.0;
        let step = if err < 0.0 {
            let d = -err - self.mdev / 4.0;
            if d > 0.0 {
                d / 8.0
            } else {
                d
            }
        } else {
            err - self.mdev / 4.0
        };
        self.mdev = (self.mdev + step).max(0.0);
        let top = self.mdev.max(rto_min);
        self.rttvar = if top > self.rttvar {
            top
        } else {
            self.rttvar - (self.rttvar - top) / 4.0
        };
    }

    pub(super) fn rto(&self) -> f64 {
        self.srtt + self.rttvar
    }
}

/// The RTO after a handshake sample `first` (if any) and a sample `m`.
pub(super) fn rto_after(first: Option<f64>, m: f64, rto_min: f64, rto_max: f64) -> f64 {
    let mut est = Rtt::default();
    if let Some(f) = first {
        est.sample(f, rto_min);
    }
    est.sample(m, rto_min);
    est.rto().clamp(rto_min, rto_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SYN send times until SYN-SENT gives up, and when it does.
    fn syns(cfg: &Config) -> (Vec<f64>, f64) {
        let (mut at, mut sent) = (0.0, vec![0.0]);
        for n in 1.. {
            at += syn_rto(cfg, n - 1);
            if syn_given_up(cfg, n, at) {
                return (sent, at);
            }
            sent.push(at);
        }
        unreachable!()
    }

    /// The engine's SYN schedule (tests/cases/handshake.rs, and Linux 6.18 in
    /// tests/scripts/syn-*.pkt).
    #[test]
    fn the_syn_schedule_is_the_engines() {
        let linux = Config::default();
        assert_eq!(
            syns(&linux),
            (
                vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 11.0, 19.0, 35.0, 67.0],
                131.0
            )
        );
        let doubling = Config {
            syn_linear_timeouts: 0,
            ..Config::default()
        };
        assert_eq!(
            syns(&doubling),
            (vec![0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0], 127.0)
        );
        let two = Config {
            syn_retries: 2,
            ..Config::default()
        };
        assert_eq!(syns(&two), (vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 7.0));
    }

    /// When SYN-RECEIVED's timer expires for the `n`-th time, from its
    /// first SYN-ACK: the initial RTO doubled from the first expiry, each
    /// step at most rto_max (`req->timeout << num_timeout`).
    fn synack_expiry(cfg: &Config, n: u32) -> Duration {
        (0..n.min(64))
            .map(|i| {
                cfg.rto_initial
                    .saturating_mul(1 << i.min(30))
                    .min(cfg.rto_max)
            })
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// SYN-ACK retransmissions until the request is dropped, and when, in
    /// seconds from the first.
    fn synacks(retries: u8) -> (Vec<u64>, u64) {
        let cfg = Config {
            synack_retries: retries,
            ..Config::default()
        };
        let at = |n| synack_expiry(&cfg, n).as_secs();
        let resent = (1..).take_while(|&n| !synack_dropped(&cfg, n));
        let resent: Vec<u64> = resent.map(at).collect();
        let dropped = at(resent.len() as u32 + 1);
        (resent, dropped)
    }

    /// The engine's SYN-ACK schedule (tests/cases/handshake.rs,
    /// `syn_received_doubles_from_the_first`): copies at 1, 3, 7, 15 and
    /// 31 s, dropped at 63 s with `tcp_synack_retries` 5; at 7 s after two.
    /// With 0 none is resent and the request goes at 1 s
    /// (`tests/scripts/synack-retries-zero.pkt` on Linux).
    #[test]
    fn the_synack_schedule_is_the_engines() {
        assert_eq!(synacks(5), (vec![1, 3, 7, 15, 31], 63));
        assert_eq!(synacks(2), (vec![1, 3], 7));
        assert_eq!(synacks(1), (vec![1], 3));
        assert_eq!(synacks(0), (vec![], 1));
        // Past rto_max (120 s) each step is 120 s.
        assert_eq!(synacks(8).1, 127 + 2 * 120);
    }
}
