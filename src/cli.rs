//! Pieces shared by the command-line drivers.

use std::fmt;
use std::time::Duration;

use teardown_engine::config::{Config, Profile};

/// A usage error: the command line asked for something meaningless. The binary
/// prints it on one line and exits 2, as clap does for its own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The host profile and the overrides of its numbers, shared by `sim` and `plan`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProfileArgs {
    /// Host profile: linux, rfc9293 or freebsd.
    #[arg(long, default_value = "linux")]
    pub profile: Profile,
    /// MSL: TIME-WAIT lasts 2*MSL.
    #[arg(long, value_parser = parse_duration)]
    pub msl: Option<Duration>,
    /// TIME-WAIT duration (overrides the profile and --msl).
    #[arg(long, value_parser = parse_duration)]
    pub time_wait: Option<Duration>,
    /// Orphaned FIN-WAIT-2 lifetime (tcp_fin_timeout).
    #[arg(long, value_parser = parse_duration)]
    pub fin_timeout: Option<Duration>,
    /// RTO before the first RTT sample (TCP_TIMEOUT_INIT).
    #[arg(long, value_parser = parse_duration)]
    pub rto_initial: Option<Duration>,
    /// Floor of the RTO (TCP_RTO_MIN).
    #[arg(long, value_parser = parse_duration)]
    pub rto_min: Option<Duration>,
    /// Ceiling of the backed-off RTO (TCP_RTO_MAX).
    #[arg(long, value_parser = parse_duration)]
    pub rto_max: Option<Duration>,
    /// tcp_orphan_retries (0 means 8).
    #[arg(long)]
    pub orphan_retries: Option<u8>,
    /// tcp_syn_linear_timeouts: SYN retransmissions on the initial RTO before
    /// it doubles, on top of tcp_syn_retries (4 in linux and freebsd, 0 in
    /// rfc9293; Linux >= 6.5).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=127))]
    pub syn_linear_timeouts: Option<u8>,
    /// tcp_synack_retries: SYN-ACK retransmissions before the server drops
    /// a handshake still in SYN-RECEIVED (5 in every profile).
    #[arg(long)]
    pub synack_retries: Option<u8>,
    /// tcp_max_tw_buckets of one host.
    #[arg(long)]
    pub max_tw_buckets: Option<usize>,
    /// tcp_max_orphans of one host: sockets closed by their application and
    /// not yet gone (FIN-WAIT-1, CLOSING, LAST-ACK); a close() past it sends
    /// RST (131,072 in linux, half the established hash; none in rfc9293 and
    /// freebsd).
    #[arg(long)]
    pub max_orphans: Option<usize>,
    /// tcp_rfc1337: RSTs do not kill TIME-WAIT.
    #[arg(long)]
    pub rfc1337: Option<bool>,
    /// tcp_timestamps (RFC 7323): on (the linux and freebsd profiles) or off.
    #[arg(long, value_parser = parse_on_off)]
    pub timestamps: Option<bool>,
    /// Delayed ACK of a peer's FIN: on in the linux profile, as Linux's
    /// `tcp_fin` pingpong mode; off in freebsd and rfc9293, which ACK a FIN at
    /// once.
    #[arg(long, value_parser = parse_on_off)]
    pub delayed_ack: Option<bool>,
    /// tcp_tw_reuse of the clients: 0, 1, or 2 (loopback only, Linux's default).
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub tw_reuse: Option<u8>,
}

/// `on` or `off` (also `true`/`false`, `1`/`0`).
fn parse_on_off(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected on or off, not '{s}'")),
    }
}

impl ProfileArgs {
    /// The profile's configuration with the overrides applied (not validated).
    pub fn config(&self) -> Config {
        let mut c = Config::profile(self.profile);
        if let Some(msl) = self.msl {
            c.time_wait = msl * 2;
        }
        let set = |slot: &mut Duration, v: Option<Duration>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut c.time_wait, self.time_wait);
        set(&mut c.fin_timeout, self.fin_timeout);
        set(&mut c.rto_initial, self.rto_initial);
        set(&mut c.rto_min, self.rto_min);
        set(&mut c.rto_max, self.rto_max);
        c.orphan_retries = self.orphan_retries.unwrap_or(c.orphan_retries);
        c.syn_linear_timeouts = self.syn_linear_timeouts.unwrap_or(c.syn_linear_timeouts);
        c.synack_retries = self.synack_retries.unwrap_or(c.synack_retries);
        c.max_tw_buckets = self.max_tw_buckets.unwrap_or(c.max_tw_buckets);
        c.max_orphans = self.max_orphans.unwrap_or(c.max_orphans);
        c.rfc1337 = self.rfc1337.unwrap_or(c.rfc1337);
        c.timestamps = self.timestamps.unwrap_or(c.timestamps);
        c.delayed_ack = self.delayed_ack.unwrap_or(c.delayed_ack);
        c.tw_reuse = self.tw_reuse.unwrap_or(c.tw_reuse);
        c
    }

    /// Overrides that reproduce `c` exactly from its profile.
    pub fn of(c: &Config) -> ProfileArgs {
        ProfileArgs {
            profile: c.profile,
            msl: None,
            time_wait: Some(c.time_wait),
            fin_timeout: Some(c.fin_timeout),
            rto_initial: Some(c.rto_initial),
            rto_min: Some(c.rto_min),
            rto_max: Some(c.rto_max),
            orphan_retries: Some(c.orphan_retries),
            syn_linear_timeouts: Some(c.syn_linear_timeouts),
            synack_retries: Some(c.synack_retries),
            max_tw_buckets: Some(c.max_tw_buckets),
            max_orphans: Some(c.max_orphans),
            rfc1337: Some(c.rfc1337),
            timestamps: Some(c.timestamps),
            delayed_ack: Some(c.delayed_ack),
            tw_reuse: Some(c.tw_reuse),
        }
    }
}

/// Returns a [`Usage`] error unless `ok`.
pub fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<(), Usage> {
    if ok {
        Ok(())
    } else {
        Err(Usage(msg()))
    }
}

/// `--app-timeout` of `teardown sim` and `loadgen`: from 1 s to half the
/// range of the 32-bit millisecond stamps their sweeps compare (24 days), so
/// that the wrapping difference of two stamps is an age.
pub fn check_app_timeout(d: Duration) -> Result<(), Usage> {
    ensure(
        d >= Duration::from_secs(1) && d.as_millis() <= u32::MAX as u128 / 2,
        || "--app-timeout must be between 1s and 24 days".into(),
    )
}

/// The longest duration any flag takes, and the longest simulated time a run
/// may span: 1e9 s, 31 years. Engine times stay far from `u64` microseconds'
/// end (584,000 years), where saturating arithmetic would pile events up.
pub const MAX_SPAN_SECS: f64 = 1e9;

/// Parses durations such as `60s`, `200ms`, `1.5s`, `2m`, `500us` (a bare number
/// is seconds), for clap's `value_parser`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (try 60s, 200ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => {
            return Err(format!(
                "unknown unit '{u}' in '{s}' (use us, ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=MAX_SPAN_SECS).contains(&secs) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a probability in [0, 1), for loss flags.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    let v = if s.trim().ends_with('%') {
        v / 100.0
    } else {
        v
    };
    if !(0.0..1.0).contains(&v) {
        return Err(format!(
            "'{s}' must be in [0, 1) (a loss of 1 would lose everything)"
        ));
    }
    Ok(v)
}

/// Parses a fraction in [0, 1].
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("'{s}' must be in [0, 1]"));
    }
    Ok(v)
}

/// Parses a percentage in [0, 100] (`12.5`, or `12.5%`).
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("'{s}' must be a percentage in [0, 100]"));
    }
    Ok(v)
}

/// Writes a report as pretty JSON (and a newline) to `path`, or to stdout for `-`,
/// as every command's `--json` does.
pub fn write_json(path: &str, value: &impl serde::Serialize) -> anyhow::Result<()> {
    write_text(path, &(serde_json::to_string_pretty(value)? + "\n"))
}

/// Writes `text` to `path`, or to stdout for `-`. Missing directories on the
/// way are made, as `--plot DIR` makes its own: a report is written after
/// its run, which may have taken many minutes, and lost for want of one.
pub fn write_text(path: &str, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    if path == "-" {
        print!("{text}");
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
        }
    }
    std::fs::write(path, text).with_context(|| format!("writing {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_written_below_directories_not_yet_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results/sweep/sweep.json");
        write_text(path.to_str().unwrap(), "{}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        // A file where a directory would go is still an error, not a panic.
        let blocked = dir.path().join("results/sweep/sweep.json/x.json");
        assert!(write_text(blocked.to_str().unwrap(), "{}").is_err());
    }

    /// The host flags as `sim` and `plan` take them.
    #[derive(clap::Parser)]
    struct Host {
        #[command(flatten)]
        host: ProfileArgs,
    }

    fn host(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::Parser;
        let argv = std::iter::once("teardown").chain(args.iter().copied());
        Host::try_parse_from(argv).map(|h| h.host.config())
    }

    #[test]
    fn syn_linear_timeouts_from_the_profile_or_the_flag() {
        assert_eq!(host(&[]).unwrap().syn_linear_timeouts, 4);
        let rfc = host(&["--profile", "rfc9293"]).unwrap();
        assert_eq!(rfc.syn_linear_timeouts, 0);
        assert_eq!(ProfileArgs::of(&rfc).config(), rfc);
        let off = host(&["--syn-linear-timeouts", "0"]).unwrap();
        assert_eq!(off.syn_linear_timeouts, 0);
        // Linux's range, MAX_TCP_SYNCNT.
        assert_eq!(
            host(&["--syn-linear-timeouts", "127"])
                .unwrap()
                .syn_linear_timeouts,
            127
        );
        assert!(host(&["--syn-linear-timeouts", "128"]).is_err());
    }

    /// `--synack-retries` reaches the host and the simulator's copy of it
    /// (`plan --verify` hands the plan's host over by `ProfileArgs::of`).
    #[test]
    fn synack_retries_from_the_profile_or_the_flag() {
        assert_eq!(host(&[]).unwrap().synack_retries, 5);
        let tuned = host(&["--synack-retries", "2"]).unwrap();
        assert_eq!(tuned.synack_retries, 2);
        assert_eq!(ProfileArgs::of(&tuned).config(), tuned);
        assert!(host(&["--synack-retries", "256"]).is_err());
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("12.5"), Ok(12.5));
        assert_eq!(parse_percent("0%"), Ok(0.0));
        assert!(parse_percent("101").is_err());
        assert!(parse_percent("-1").is_err());
        assert!(parse_percent("NaN").is_err());
        assert!(parse_percent("x").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.01"), Ok(0.01));
        assert_eq!(parse_probability("1%"), Ok(0.01));
        assert!(parse_probability("1").is_err());
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("-0.1").is_err());
    }
}
