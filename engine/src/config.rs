//! Host configuration: the timer and limit values a TCP stack's close path uses.
//!
//! Profiles are data, not code paths: `linux`, `rfc9293` and `freebsd` differ only in
//! the numbers below, and every number can be overridden by the driver.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The RTO after a handshake that gave no RTT sample: Linux's
/// `TCP_TIMEOUT_FALLBACK`, which `tcp_init_metrics` sets when `srtt_us` is
/// still 0 (RFC 6298 §5.7: "the RTO MUST be re-initialized to 3 seconds
/// when data transmission begins"). Every profile follows it.
pub const RTO_FALLBACK: Duration = Duration::from_secs(3);

/// `TCP_ATO_MIN`: the delayed-ACK timeout once data has arrived (the ACK of
/// a FIN that moves ESTABLISHED to CLOSE-WAIT waits it when `delayed_ack`).
pub const ATO_MIN: Duration = Duration::from_millis(40);

/// What happens when a connection would enter TIME-WAIT but the table already
/// holds `max_tw_buckets` of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwOverflow {
    /// Linux (`tcp_time_wait`): skip TIME-WAIT, go straight to CLOSED, count
    /// `TCPTimeWaitOverflow`. No RST is sent.
    Skip,
    /// FreeBSD: evict the oldest TIME-WAIT entry to make room.
    EvictOldest,
}

/// The named profiles. They differ in these values only: the rest is
/// Linux's mechanics in all three, SYN-RECEIVED's request socket among them
/// (RFC 9293 would answer a duplicate SYN with a bare ACK, and FreeBSD's
/// syncache answers every one and starts its retries afresh).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Linux,
    Rfc9293,
    FreeBsd,
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Profile, String> {
        match s.to_ascii_lowercase().as_str() {
            "linux" => Ok(Profile::Linux),
            "rfc9293" | "rfc" => Ok(Profile::Rfc9293),
            "freebsd" | "bsd" => Ok(Profile::FreeBsd),
            _ => Err(format!(
                "unknown profile '{s}' (expected linux, rfc9293 or freebsd)"
            )),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Linux => "linux",
            Profile::Rfc9293 => "rfc9293",
            Profile::FreeBsd => "freebsd",
        })
    }
}

/// Every tunable the engine reads. Build one with [`Config::profile`] and override fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub profile: Profile,
    /// How long TIME-WAIT lasts: 2*MSL in the RFC, a fixed 60 s on Linux (TCP_TIMEWAIT_LEN).
    pub time_wait: Duration,
    /// Lifetime of an orphaned FIN-WAIT-2 (`tcp_fin_timeout`); at least 3.5 RTO is used.
    pub fin_timeout: Duration,
    /// Linux: while that lifetime (`tcp_fin_time()`) passes TIME-WAIT's
    /// length (TCP_TIMEWAIT_LEN), an orphaned FIN-WAIT-2 stays a full socket,
    /// still an orphan, for the excess (`tcp_rcv_state_process` and
    /// `tcp_close` arm its keepalive timer), then becomes the mini-socket for
    /// the excess again, at least 3.5 RTO (`tcp_keepalive_timer`,
    /// `tcp_time_wait`): at a 90 s `tcp_fin_timeout`, 30 s and 30 s. Off, the
    /// mini-socket comes at once and lasts the whole lifetime.
    pub fin_wait2_keepalive: bool,
    /// RTO before any RTT sample (TCP_TIMEOUT_INIT).
    pub rto_initial: Duration,
    /// Floor of the RTO and of its variance term (TCP_RTO_MIN).
    pub rto_min: Duration,
    /// Ceiling of the backed-off RTO (TCP_RTO_MAX).
    pub rto_max: Duration,
    /// Retransmissions of an orphan's FIN before giving up (`tcp_orphan_retries`, 0 means 8).
    pub orphan_retries: u8,
    /// SYN retransmissions (`tcp_syn_retries`).
    pub syn_retries: u8,
    /// SYN retransmissions, counted from the first, that keep the initial RTO
    /// before doubling begins, and that come on top of `syn_retries`
    /// (`tcp_syn_linear_timeouts`, Linux >= 6.5: `tcp_retransmit_timer`,
    /// `tcp_write_timeout`); 0 doubles from the first, as RFC 6298 §5.5 does.
    pub syn_linear_timeouts: u8,
    /// SYN-ACK retransmissions (`tcp_synack_retries`).
    pub synack_retries: u8,
    /// Data retransmissions on a connection the application still holds (`tcp_retries2`).
    pub retries2: u8,
    /// Most TIME-WAIT entries held at once (`tcp_max_tw_buckets`).
    pub max_tw_buckets: usize,
    pub tw_overflow: TwOverflow,
    /// Most orphans (connections the application closed that still hold a
    /// full socket: FIN-WAIT-1, CLOSING, LAST-ACK) before a close(), or an
    /// orphan's retransmission timeout, resets instead (`tcp_max_orphans`,
    /// `tcp_check_oom`); `usize::MAX` = no limit, as in FreeBSD and the RFC.
    pub max_orphans: usize,
    /// Most connections of any state (a memory bound; new SYNs past it are dropped).
    pub max_connections: usize,
    /// `tcp_rfc1337`: when true an RST no longer kills a TIME-WAIT entry.
    pub rfc1337: bool,
    /// One out-of-window ACK or challenge ACK per entry per this interval (`tcp_invalid_ratelimit`).
    pub invalid_ratelimit: Duration,
    /// Host-wide challenge ACKs per second (`tcp_challenge_ack_limit`); `u32::MAX` = off (Linux >= 6.0).
    pub challenge_ack_limit: u32,
    /// Host-wide RSTs per second sent for segments that match no connection; `u32::MAX` = off.
    pub rst_limit: u32,
    /// The receive window advertised and used for acceptability tests.
    pub rcv_wnd: u16,
    /// Offer and use the timestamps option (RFC 7323; Linux `tcp_timestamps`, 1 by default).
    pub timestamps: bool,
    /// Microseconds per tick of our TSval clock: 1000 is Linux's
    /// `tcp_clock_ms`, 1 its `tcp_clock_us` on a route with the `tcp_usec_ts`
    /// feature (Linux >= 6.7; `tcp_time_stamp_ts`). Only TSval and the RTT
    /// taken from an echo of it use it.
    pub ts_tick_us: u32,
    /// Delay the ACK of a FIN that moves ESTABLISHED to CLOSE-WAIT, as Linux
    /// does (`tcp_fin` enters pingpong mode; `tcp_send_delayed_ack`); off, it
    /// goes at once (riding only on a segment sent within the same call).
    pub delayed_ack: bool,
    /// `ip_local_port_range`: the ports connect() and bind(0) choose from
    /// (inclusive; Linux's default 32768-60999).
    pub ip_local_port_range: (u16, u16),
    /// `tcp_tw_reuse`: may connect() take over its own TIME-WAIT 4-tuple
    /// (`tcp_twsk_unique`)? 0 never, 1 always, 2 (Linux's default) only with
    /// a loopback address at either end. Timestamps are needed in every case.
    pub tw_reuse: u8,
    /// `tcp_tw_reuse_delay`: how long after entering TIME-WAIT a 4-tuple may
    /// be taken over (Linux's default 1000 ms).
    pub tw_reuse_delay: Duration,
    /// Key of the table hash, of the ISN generator (RFC 6528) and of the
    /// timestamp offsets; the driver draws it.
    pub secret: u64,
    /// Emit [`crate::Event::StateChanged`] for every transition (tests, scripts, traces).
    pub trace_states: bool,
}

/// One of `parts`' share of a host-wide limit, rounded up; no limit
/// (`usize::MAX`) stays none.
pub fn share_of(limit: usize, parts: usize) -> usize {
    if limit == usize::MAX {
        limit
    } else {
        limit.div_ceil(parts)
    }
}

impl Config {
    /// Splits the host-wide table limits (`max_tw_buckets`, `max_orphans`)
    /// over `parts` tables that each hold a share of the host's connections.
    pub fn share_host_limits(&mut self, parts: usize) {
        self.max_tw_buckets = share_of(self.max_tw_buckets, parts);
        self.max_orphans = share_of(self.max_orphans, parts);
    }

    pub fn profile(profile: Profile) -> Config {
        let linux = Config {
            profile,
            time_wait: Duration::from_secs(60),
            fin_timeout: Duration::from_secs(60),
            fin_wait2_keepalive: true,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(120),
            orphan_retries: 8,
            syn_retries: 6,
            syn_linear_timeouts: 4,
            synack_retries: 5,
            retries2: 15,
            max_tw_buckets: 131_072,
            tw_overflow: TwOverflow::Skip,
            // `tcp_init`: half the established hash, as tcp_max_tw_buckets.
            max_orphans: 131_072,
            max_connections: usize::MAX,
            rfc1337: false,
            invalid_ratelimit: Duration::from_millis(500),
            challenge_ack_limit: u32::MAX,
            rst_limit: u32::MAX,
            rcv_wnd: 65_535,
            timestamps: true,
            ts_tick_us: 1000,
            delayed_ack: true,
            ip_local_port_range: (32_768, 60_999),
            tw_reuse: 2,
            tw_reuse_delay: Duration::from_secs(1),
            secret: 0x7465_6172_646f_776e,
            trace_states: false,
        };
        match profile {
            Profile::Linux => linux,
            // RFC 9293: MSL is 2 minutes, so TIME-WAIT is 4. The RFC sets no FIN-WAIT-2
            // timer; the user timeout of RFC 9293 §3.8.3 (5 minutes) bounds it here.
            Profile::Rfc9293 => Config {
                time_wait: Duration::from_secs(240),
                // RFC 6298 §5.5: "back off the timer" at every expiry.
                syn_linear_timeouts: 0,
                fin_timeout: Duration::from_secs(300),
                fin_wait2_keepalive: false,
                max_tw_buckets: usize::MAX,
                max_orphans: usize::MAX,
                rfc1337: true,
                timestamps: false,
                // §3.10.7.4, eighth: "send an acknowledgment for the FIN".
                delayed_ack: false,
                ..linux
            },
            // FreeBSD: MSL 30 s (TIME-WAIT 60 s), tcp_finwait2_timeout 60 s, RTO min
            // 30 ms, TIME-WAIT RSTs ignored, the oldest TIME-WAIT evicted on
            // overflow, and a FIN ACKed at once (tcp_do_segment sets TF_ACKNOW).
            // Its SYNs keep Linux's linear_timeouts 4: tcp_timer_rexmt spaces
            // them by tcp_syn_backoff (1, 1, 1, 1, 1, 2, 4, ... times the
            // initial RTO), while the syncache's SYN-ACKs double.
            Profile::FreeBsd => Config {
                delayed_ack: false,
                // No Linux split of a long FIN-WAIT-2 (tcp_keepalive_timer).
                fin_wait2_keepalive: false,
                rto_min: Duration::from_millis(30),
                rto_max: Duration::from_secs(64),
                orphan_retries: 12,
                rfc1337: true,
                tw_overflow: TwOverflow::EvictOldest,
                // FreeBSD has no tcp_max_orphans.
                max_orphans: usize::MAX,
                ..linux
            },
        }
    }

    /// A clear message for values that would make the engine meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.rto_min.is_zero() {
            return Err("rto-min must be above zero".into());
        }
        if self.rto_min > self.rto_max {
            return Err("rto-min must not exceed rto-max".into());
        }
        if self.rto_initial < self.rto_min || self.rto_initial > self.rto_max {
            return Err("rto-initial must lie between rto-min and rto-max".into());
        }
        if self.rto_max > Duration::from_secs(3600) {
            return Err("rto-max above one hour is not supported".into());
        }
        if self.time_wait > Duration::from_secs(86_400)
            || self.fin_timeout > Duration::from_secs(86_400)
        {
            return Err("time-wait and fin-timeout must be at most one day".into());
        }
        let (low, high) = self.ip_local_port_range;
        if low == 0 || low > high {
            return Err("ip_local_port_range must be LOW-HIGH with 1 <= LOW <= HIGH".into());
        }
        if self.ts_tick_us == 0 || self.ts_tick_us > 1_000_000 {
            return Err("the timestamp tick must lie between 1 us and 1 s".into());
        }
        if self.tw_reuse > 2 {
            return Err("tcp_tw_reuse must be 0, 1 or 2".into());
        }
        if self.tw_reuse_delay.is_zero() || self.tw_reuse_delay > Duration::from_secs(60) {
            return Err("tcp_tw_reuse_delay must lie between 1 ms and 60 s".into());
        }
        if self.rcv_wnd == 0 {
            return Err("the receive window must be above zero".into());
        }
        Ok(())
    }

    /// Orphan retries as Linux reads them: 0 stands for 8 (`tcp_orphan_retries()`).
    pub fn orphan_retry_limit(&self) -> u8 {
        if self.orphan_retries == 0 {
            8
        } else {
            self.orphan_retries
        }
    }

    /// Doublings of the initial RTO in SYN-SENT's timer after `retransmits`
    /// SYNs resent: none for the first `syn_linear_timeouts`
    /// (`tcp_retransmit_timer` backs off only once `total_rto` exceeds them).
    pub fn syn_doublings(&self, retransmits: u32) -> u32 {
        retransmits.saturating_sub(u32::from(self.syn_linear_timeouts))
    }

    /// SYNs SYN-SENT resends before it gives up by count (`tcp_write_timeout`:
    /// `syn_retries`, plus `syn_linear_timeouts` since Linux 6.5).
    pub fn syn_sent_retries(&self) -> u32 {
        u32::from(self.syn_retries) + u32::from(self.syn_linear_timeouts)
    }

    /// How long `boundary` retransmissions take from a first RTO of `rto_base`,
    /// each doubling up to `rto_max`: Linux's `tcp_model_timeout()`, which decides
    /// when an orphan's retries are exhausted (102.2 s for 8 from 200 ms).
    pub fn model_timeout(&self, boundary: u8, rto_base: Duration) -> Duration {
        let base = rto_base.as_micros() as u64;
        let max = self.rto_max.as_micros() as u64;
        let thresh = (max / base.max(1)).max(1).ilog2();
        let boundary = boundary as u32;
        let us = if boundary <= thresh {
            ((2u64 << boundary) - 1) * base
        } else {
            ((2u64 << thresh) - 1) * base + (boundary - thresh) as u64 * max
        };
        Duration::from_micros(us)
    }
}

impl Config {
    /// The longest an orphan may take from close() to CLOSED under any loss below
    /// 100 %: its FIN retransmissions give up after the modelled timeout, checked at
    /// the next expiry (at most one RTO, capped at rto_max, later); FIN-WAIT-2 lasts
    /// at most T = max(fin_timeout, 3.5 RTO), or with `fin_wait2_keepalive` past
    /// time_wait its two parts, at most 2 T - time_wait; TIME-WAIT lasts time_wait
    /// after the last retransmitted FIN of the peer, whose own retransmissions obey
    /// the same give-up rule.
    pub fn close_bound(&self) -> Duration {
        let give_up = self.model_timeout(self.orphan_retry_limit(), self.rto_min) + self.rto_max;
        let fin_wait_2 = self.fin_timeout.max(self.rto_max * 7 / 2);
        let fin_wait_2 = if self.fin_wait2_keepalive {
            fin_wait_2.max((fin_wait_2 * 2).saturating_sub(self.time_wait))
        } else {
            fin_wait_2
        };
        give_up * 2 + fin_wait_2 + self.time_wait
    }

    /// The longest an active open may take to succeed or give up: the
    /// client's SYNs, then the request's SYN-ACKs, whose timer each
    /// duplicate SYN restarts (`tcp_check_req`), so they may all follow the
    /// client's last SYN.
    pub fn open_bound(&self) -> Duration {
        self.model_timeout(self.syn_retries, self.rto_initial)
            + self.model_timeout(self.synack_retries, self.rto_initial)
            + self.rto_max
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::profile(Profile::Linux)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_orphan_give_up_is_102_2_seconds() {
        let c = Config::default();
        assert_eq!(
            c.model_timeout(c.orphan_retry_limit(), c.rto_min),
            Duration::from_millis(102_200)
        );
        // tcp_retries2 = 15 passes the linear threshold (ilog2(120 s / 200 ms) = 9):
        // 1023 * 0.2 s + 6 * 120 s = 924.6 s, the figure ip-sysctl.rst gives.
        assert_eq!(
            c.model_timeout(15, c.rto_min),
            Duration::from_millis(924_600)
        );
    }

    #[test]
    fn profiles_differ_only_in_numbers() {
        let r = Config::profile(Profile::Rfc9293);
        assert_eq!(r.time_wait, Duration::from_secs(240));
        assert_eq!(
            Config::profile(Profile::FreeBsd).time_wait,
            Duration::from_secs(60)
        );
        let linear = [Profile::Linux, Profile::Rfc9293, Profile::FreeBsd]
            .map(|p| Config::profile(p).syn_linear_timeouts);
        assert_eq!(linear, [4, 0, 4]);
        assert!("solaris".parse::<Profile>().is_err());
        assert_eq!("FreeBSD".parse::<Profile>(), Ok(Profile::FreeBsd));
    }

    #[test]
    fn validate_rejects_nonsense() {
        let c = Config {
            rto_min: Duration::from_secs(5),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        assert!(Config::default().validate().is_ok());
    }
}
