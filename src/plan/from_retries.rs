//! The retry sysctls of `plan --from`: `tcp_syn_retries`,
//! `tcp_syn_linear_timeouts`, `tcp_synack_retries`, `tcp_retries2` as
//! observed, within what the planner models, and where each came from.

use teardown_engine::config::Config;

use super::args::{MAX_SYNACK_RETRIES, MAX_SYN_LINEAR};
use crate::kernel::sysctl::Sysctls;

/// The least and most `tcp_syn_retries` Linux accepts (`tcp_syn_retries_min`,
/// MAX_TCP_SYNCNT in net/ipv4/sysctl_net_ipv4.c).
const SYN_RETRIES: (u8, u8) = (1, 127);

/// One retry sysctl as calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The sysctl's name.
    pub name: &'static str,
    /// What the model runs with.
    pub used: u8,
    pub source: Source,
    /// The values the planner takes, inclusive.
    pub range: (u8, u8),
}

/// Where a [`Retry`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// As observed.
    Sysctl,
    /// This was observed, outside the range: the nearest end is used.
    Clamped(u8),
    /// Not in the observation (made before these were read): Linux's default.
    Default,
    /// `tcp_syn_linear_timeouts` missing beside `tcp_syn_retries`: a kernel
    /// before 6.5, whose SYN RTO doubles from the first retransmission (0).
    BeforeLinux65,
}

impl Retry {
    /// `observed` within `range`, or `absent` (value, source) without it.
    fn of(
        name: &'static str,
        observed: Option<u8>,
        range: (u8, u8),
        absent: (u8, Source),
    ) -> Retry {
        let (used, source) = match observed {
            None => absent,
            Some(v) if !(range.0..=range.1).contains(&v) => {
                (v.clamp(range.0, range.1), Source::Clamped(v))
            }
            Some(v) => (v, Source::Sysctl),
        };
        Retry {
            name,
            used,
            source,
            range,
        }
    }

    /// Where the value came from, for the reports.
    pub fn describe(&self) -> String {
        match self.source {
            Source::Sysctl => "sysctl".into(),
            Source::Clamped(v) => format!(
                "sysctl {v}, outside the {}..={} plan models: {} used",
                self.range.0, self.range.1, self.used
            ),
            Source::Default => "Linux's default, not in the observation".into(),
            Source::BeforeLinux65 => {
                "not on the observed kernel, before 6.5: SYNs double from the first".into()
            }
        }
    }
}

/// The retry sysctls of `s`, in the order `syn_retries`,
/// `syn_linear_timeouts`, `synack_retries`, `retries2`; `linux` gives the
/// defaults.
pub fn of(s: &Sysctls, linux: &Config) -> [Retry; 4] {
    let default = |v| (v, Source::Default);
    // Every kernel has tcp_syn_retries: with it and no linear timeouts, the
    // kernel predates them.
    let linear_absent = match s.tcp_syn_retries {
        Some(_) => (0, Source::BeforeLinux65),
        None => default(linux.syn_linear_timeouts),
    };
    [
        Retry::of(
            "tcp_syn_retries",
            s.tcp_syn_retries,
            SYN_RETRIES,
            default(linux.syn_retries),
        ),
        // The handshake is enumerated over every loss pattern, each linear SYN
        // multiplying the interleavings (args.rs).
        Retry::of(
            "tcp_syn_linear_timeouts",
            s.tcp_syn_linear_timeouts,
            (0, MAX_SYN_LINEAR),
            linear_absent,
        ),
        // Each retry doubles the request's life and its interleavings (args.rs).
        Retry::of(
            "tcp_synack_retries",
            s.tcp_synack_retries,
            (0, MAX_SYNACK_RETRIES),
            default(linux.synack_retries),
        ),
        Retry::of(
            "tcp_retries2",
            s.tcp_retries2,
            (0, u8::MAX),
            default(linux.retries2),
        ),
    ]
}
