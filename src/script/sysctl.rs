//! The sysctls a script may set with a shell line, as packetdrill scripts do
//! (`` +0 `sysctl -q net.ipv4.tcp_tw_reuse=1` ``): the `net.ipv4` ones the
//! engine models, so that one script states its configuration for both
//! stacks. The engine maps each to its [`Config`]; the kernel stack writes it
//! under `/proc/sys/net/ipv4` from the script's own network namespace (every
//! one of these is per namespace in Linux 6.x, Documentation/networking/
//! ip-sysctl.rst). Any other shell command is refused: the runner has no
//! shell, and a command it skipped would leave the two stacks configured
//! apart.

use std::fmt;
use std::time::Duration;

use teardown_engine::Config;

/// One `net.ipv4` sysctl and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sysctl {
    /// 0 off, 1 on, 2 on without the random offset.
    Timestamps(u8),
    /// 0 off, 1 on, 2 loopback only (`tcp_twsk_unique`).
    TwReuse(u8),
    /// Milliseconds a TIME-WAIT entry must be old before connect() reuses it.
    TwReuseDelay(u32),
    /// connect()'s ephemeral ports, inclusive.
    LocalPortRange(u16, u16),
    /// Seconds an orphaned FIN-WAIT-2 lasts.
    FinTimeout(u32),
    MaxTwBuckets(u64),
    Rfc1337(bool),
    OrphanRetries(u8),
    SynRetries(u8),
    /// SYN retransmissions before the RTO doubles, on top of `SynRetries`.
    SynLinearTimeouts(u8),
    SynackRetries(u8),
    Retries2(u8),
    /// Milliseconds between out-of-window ACKs of one connection.
    InvalidRatelimit(u32),
    ChallengeAckLimit(u32),
}

/// The names [`Sysctl::parse`] takes, under `net.ipv4`.
pub const NAMES: [&str; 14] = [
    "tcp_timestamps",
    "tcp_tw_reuse",
    "tcp_tw_reuse_delay",
    "ip_local_port_range",
    "tcp_fin_timeout",
    "tcp_max_tw_buckets",
    "tcp_rfc1337",
    "tcp_orphan_retries",
    "tcp_syn_retries",
    "tcp_syn_linear_timeouts",
    "tcp_synack_retries",
    "tcp_retries2",
    "tcp_invalid_ratelimit",
    "tcp_challenge_ack_limit",
];

impl Sysctl {
    /// `name` (`net.ipv4.tcp_tw_reuse`, `net/ipv4/...` or
    /// `/proc/sys/net/ipv4/...`) set to `value`, within the range Linux
    /// accepts for it.
    pub fn parse(name: &str, value: &str) -> Result<Sysctl, String> {
        let short = ["/proc/sys/net/ipv4/", "net.ipv4.", "net/ipv4/"]
            .iter()
            .find_map(|p| name.strip_prefix(p))
            .filter(|n| NAMES.contains(n))
            .ok_or_else(|| {
                format!(
                    "sysctl {name} is not one the engine models (net.ipv4.{{{}}})",
                    NAMES.join(",")
                )
            })?;
        let num = |lo: u64, hi: u64| -> Result<u64, String> {
            value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| format!("sysctl {short}: '{value}' is not a number in {lo}..={hi}"))
        };
        let byte = |lo, hi| num(lo, hi).map(|v| v as u8);
        let int = |lo| num(lo, i32::MAX as u64).map(|v| v as u32);
        Ok(match short {
            "tcp_timestamps" => Sysctl::Timestamps(byte(0, 2)?),
            "tcp_tw_reuse" => Sysctl::TwReuse(byte(0, 2)?),
            "tcp_tw_reuse_delay" => Sysctl::TwReuseDelay(int(1)?),
            "ip_local_port_range" => port_range(value)?,
            "tcp_fin_timeout" => Sysctl::FinTimeout(int(0)?),
            "tcp_max_tw_buckets" => Sysctl::MaxTwBuckets(num(0, i32::MAX as u64)?),
            "tcp_rfc1337" => Sysctl::Rfc1337(byte(0, 1)? == 1),
            "tcp_orphan_retries" => Sysctl::OrphanRetries(byte(0, 255)?),
            // MAX_TCP_SYNCNT
            "tcp_syn_retries" => Sysctl::SynRetries(byte(1, 127)?),
            // tcp_syn_linear_timeouts_max, MAX_TCP_SYNCNT too
            "tcp_syn_linear_timeouts" => Sysctl::SynLinearTimeouts(byte(0, 127)?),
            "tcp_synack_retries" => Sysctl::SynackRetries(byte(0, 255)?),
            "tcp_retries2" => Sysctl::Retries2(byte(0, 255)?),
            "tcp_invalid_ratelimit" => Sysctl::InvalidRatelimit(int(0)?),
            _ => Sysctl::ChallengeAckLimit(int(0)?),
        })
    }

    /// The file under `/proc/sys/net/ipv4`.
    pub fn name(&self) -> &'static str {
        match self {
            Sysctl::Timestamps(_) => "tcp_timestamps",
            Sysctl::TwReuse(_) => "tcp_tw_reuse",
            Sysctl::TwReuseDelay(_) => "tcp_tw_reuse_delay",
            Sysctl::LocalPortRange(..) => "ip_local_port_range",
            Sysctl::FinTimeout(_) => "tcp_fin_timeout",
            Sysctl::MaxTwBuckets(_) => "tcp_max_tw_buckets",
            Sysctl::Rfc1337(_) => "tcp_rfc1337",
            Sysctl::OrphanRetries(_) => "tcp_orphan_retries",
            Sysctl::SynRetries(_) => "tcp_syn_retries",
            Sysctl::SynLinearTimeouts(_) => "tcp_syn_linear_timeouts",
            Sysctl::SynackRetries(_) => "tcp_synack_retries",
            Sysctl::Retries2(_) => "tcp_retries2",
            Sysctl::InvalidRatelimit(_) => "tcp_invalid_ratelimit",
            Sysctl::ChallengeAckLimit(_) => "tcp_challenge_ack_limit",
        }
    }

    /// What to write to the file.
    pub fn value(&self) -> String {
        match *self {
            Sysctl::Timestamps(v)
            | Sysctl::TwReuse(v)
            | Sysctl::OrphanRetries(v)
            | Sysctl::SynRetries(v)
            | Sysctl::SynLinearTimeouts(v)
            | Sysctl::SynackRetries(v)
            | Sysctl::Retries2(v) => v.to_string(),
            Sysctl::TwReuseDelay(v)
            | Sysctl::FinTimeout(v)
            | Sysctl::InvalidRatelimit(v)
            | Sysctl::ChallengeAckLimit(v) => v.to_string(),
            Sysctl::MaxTwBuckets(v) => v.to_string(),
            Sysctl::Rfc1337(on) => u8::from(on).to_string(),
            Sysctl::LocalPortRange(lo, hi) => format!("{lo} {hi}"),
        }
    }

    /// Sets the engine's counterpart in `cfg`.
    pub fn apply(&self, cfg: &mut Config) -> Result<(), String> {
        match *self {
            Sysctl::Timestamps(v) => cfg.timestamps = v != 0,
            Sysctl::FinTimeout(s) => cfg.fin_timeout = Duration::from_secs(s.into()),
            Sysctl::MaxTwBuckets(n) => {
                cfg.max_tw_buckets = usize::try_from(n).unwrap_or(usize::MAX)
            }
            Sysctl::Rfc1337(on) => cfg.rfc1337 = on,
            Sysctl::OrphanRetries(n) => cfg.orphan_retries = n,
            Sysctl::SynRetries(n) => cfg.syn_retries = n,
            Sysctl::SynLinearTimeouts(n) => cfg.syn_linear_timeouts = n,
            Sysctl::SynackRetries(n) => cfg.synack_retries = n,
            Sysctl::Retries2(n) => cfg.retries2 = n,
            Sysctl::InvalidRatelimit(ms) => {
                cfg.invalid_ratelimit = Duration::from_millis(ms.into())
            }
            // Linux's default, INT_MAX since 6.0, means no limit.
            Sysctl::ChallengeAckLimit(n) => {
                cfg.challenge_ack_limit = if n >= i32::MAX as u32 { u32::MAX } else { n }
            }
            Sysctl::TwReuse(v) => cfg.tw_reuse = v,
            Sysctl::TwReuseDelay(ms) => cfg.tw_reuse_delay = Duration::from_millis(ms.into()),
            Sysctl::LocalPortRange(lo, hi) => cfg.ip_local_port_range = (lo, hi),
        }
        // Values Linux takes but the engine bounds (a day of FIN-WAIT-2).
        cfg.validate()
            .map_err(|e| format!("sysctl {}: the engine refuses it: {e}", self))
    }
}

impl fmt::Display for Sysctl {
    /// As a shell line would set it: `net.ipv4.tcp_tw_reuse=1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value();
        if v.contains(' ') {
            write!(f, "net.ipv4.{}=\"{v}\"", self.name())
        } else {
            write!(f, "net.ipv4.{}={v}", self.name())
        }
    }
}

/// `low high`: both in 1..=65535, low not above high (`ipv4_local_port_range`).
fn port_range(value: &str) -> Result<Sysctl, String> {
    let bad =
        || format!("sysctl ip_local_port_range: '{value}' is not 'low high' within 1..=65535");
    let mut it = value.split_whitespace().map(|p| p.parse::<u16>().ok());
    match (it.next(), it.next(), it.next()) {
        (Some(Some(lo)), Some(Some(hi)), None) if lo >= 1 && lo <= hi => {
            Ok(Sysctl::LocalPortRange(lo, hi))
        }
        _ => Err(bad()),
    }
}

/// The sysctls a packetdrill shell line sets: `sysctl [-q] [-w] NAME=VALUE
/// ...` or `echo VALUE > /proc/sys/net/ipv4/NAME`, several joined by `;` or
/// `&&`. Anything else is refused, naming what.
pub fn from_shell(cmd: &str) -> Result<Vec<Sysctl>, String> {
    let words = shlex::split(cmd).ok_or_else(|| format!("cannot split `{cmd}` into words"))?;
    let mut out = Vec::new();
    let mut command: Vec<String> = Vec::new();
    for w in words {
        // `a=1; sysctl b=2`: a separator may end a word.
        let (word, ends) = match w.strip_suffix(';') {
            Some(rest) => (rest.to_string(), true),
            None => (w.clone(), w == "&&"),
        };
        if !(word.is_empty() || word == "&&") {
            command.push(word);
        }
        if ends {
            out.extend(one_command(&std::mem::take(&mut command), cmd)?);
        }
    }
    out.extend(one_command(&command, cmd)?);
    if out.is_empty() {
        return Err(format!("shell command `{cmd}` sets no sysctl"));
    }
    Ok(out)
}

fn one_command(words: &[String], cmd: &str) -> Result<Vec<Sysctl>, String> {
    let refuse = || {
        format!(
            "shell command `{cmd}` is not run: the runner only sets net.ipv4 sysctls \
             (`sysctl -q net.ipv4.NAME=VALUE` or `echo VALUE > /proc/sys/net/ipv4/NAME`)"
        )
    };
    match words {
        [] => Ok(Vec::new()),
        [first, args @ ..] if first == "sysctl" => args
            .iter()
            .filter(|a| !matches!(a.as_str(), "-q" | "-w" | "-e" | "-qw" | "-wq"))
            .map(|a| {
                let (name, value) = a.split_once('=').ok_or_else(refuse)?;
                Sysctl::parse(name, value)
            })
            .collect(),
        [first, rest @ ..] if first == "echo" => match rest {
            [values @ .., gt, path] if gt == ">" && !values.is_empty() => {
                Ok(vec![Sysctl::parse(path, &values.join(" "))?])
            }
            _ => Err(refuse()),
        },
        _ => Err(refuse()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packetdrill_forms() {
        assert_eq!(
            from_shell("sysctl -q net.ipv4.tcp_tw_reuse=1"),
            Ok(vec![Sysctl::TwReuse(1)])
        );
        assert_eq!(
            from_shell(
                "sysctl -q net.ipv4.ip_local_port_range=\"40000 40001\"; \
                 echo 0 > /proc/sys/net/ipv4/tcp_timestamps && sysctl -w net/ipv4/tcp_rfc1337=1"
            ),
            Ok(vec![
                Sysctl::LocalPortRange(40_000, 40_001),
                Sysctl::Timestamps(0),
                Sysctl::Rfc1337(true)
            ])
        );
        assert_eq!(
            from_shell("echo 40000 40001 > /proc/sys/net/ipv4/ip_local_port_range"),
            Ok(vec![Sysctl::LocalPortRange(40_000, 40_001)])
        );
        let s = Sysctl::LocalPortRange(40_000, 40_001);
        assert_eq!(
            s.to_string(),
            "net.ipv4.ip_local_port_range=\"40000 40001\""
        );
        assert_eq!(from_shell(&format!("sysctl -q {s}")), Ok(vec![s]));
    }

    #[test]
    fn refuses_what_it_does_not_run() {
        for (cmd, says) in [
            ("../common/defaults.sh", "is not run"),
            ("tc qdisc add dev tun0 root netem loss 1%", "is not run"),
            (
                "sysctl -q net.core.somaxconn=10",
                "not one the engine models",
            ),
            ("sysctl -q net.ipv4.tcp_sack=0", "not one the engine models"),
            ("sysctl -q net.ipv4.tcp_tw_reuse=3", "not a number in 0..=2"),
            (
                "sysctl -q net.ipv4.tcp_syn_retries=0",
                "not a number in 1..=127",
            ),
            (
                "sysctl -q net.ipv4.tcp_syn_linear_timeouts=128",
                "not a number in 0..=127",
            ),
            (
                "sysctl -q net.ipv4.ip_local_port_range=\"5 4\"",
                "not 'low high'",
            ),
            ("sysctl -a", "is not run"),
            ("", "sets no sysctl"),
        ] {
            let e = from_shell(cmd).unwrap_err();
            assert!(e.contains(says), "{cmd}: {e}");
        }
    }

    #[test]
    fn engine_config() {
        let mut cfg = Config::default();
        for s in [
            Sysctl::Timestamps(0),
            Sysctl::FinTimeout(7),
            Sysctl::MaxTwBuckets(3),
            Sysctl::Rfc1337(true),
            Sysctl::OrphanRetries(2),
            Sysctl::ChallengeAckLimit(i32::MAX as u32),
            Sysctl::TwReuse(1),
            Sysctl::TwReuseDelay(500),
            Sysctl::LocalPortRange(40_000, 40_001),
            Sysctl::SynLinearTimeouts(0),
        ] {
            s.apply(&mut cfg).unwrap();
        }
        assert_eq!(cfg.syn_linear_timeouts, 0);
        assert!(!cfg.timestamps && cfg.rfc1337);
        assert_eq!(cfg.fin_timeout, Duration::from_secs(7));
        assert_eq!((cfg.max_tw_buckets, cfg.orphan_retries), (3, 2));
        assert_eq!(cfg.challenge_ack_limit, u32::MAX);
        assert_eq!(cfg.tw_reuse, 1);
        assert_eq!(cfg.tw_reuse_delay, Duration::from_millis(500));
        assert_eq!(cfg.ip_local_port_range, (40_000, 40_001));
        let e = Sysctl::FinTimeout(100_000).apply(&mut cfg).unwrap_err();
        assert!(e.contains("the engine refuses it"), "{e}");
    }
}
