//! `teardown plan`'s flags and the validated [`Plan`] they make: bad input is a
//! [`Usage`] error, never a panic.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::cli::ProfileArgs;
use crate::cli::{
    check_app_timeout, ensure, parse_duration, parse_fraction, parse_probability, Usage,
};

use super::model::{Closer, Workload};

/// `teardown plan` flags.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Connections closed per second (in steady state also opened per second).
    #[arg(long, allow_hyphen_values = true, required_unless_present = "from")]
    pub close_rate: Option<String>,
    /// Calibrate from `teardown observe --json` output instead (docs/plan-from.md).
    #[arg(long, value_name = "OBSERVE.json", conflicts_with_all = ["close_rate", "verify", "plot"])]
    pub from: Option<PathBuf>,
    /// With --from: the multiple of today's close rate to price memory at.
    #[arg(long, default_value_t = 1.0, requires = "from")]
    pub growth: f64,
    /// Round-trip time between the server and its clients.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    pub rtt: Duration,
    /// Segment loss probability, each direction (0.01 or 1%).
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub loss: String,
    /// Fraction of passive closers that vanish right after ACKing the FIN, leaving
    /// the active closer in FIN-WAIT-2 until tcp_fin_timeout.
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub runaway: String,
    /// Who closes first and so holds TIME-WAIT: server or client.
    #[arg(long, default_value = "server")]
    pub close: String,
    /// How long the passive closer's application takes to close after the peer's FIN
    /// (CLOSE-WAIT); `sim --close-delay` with --verify.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub app_delay: Duration,
    /// The clients' application closes a connection still ESTABLISHED this long
    /// after its connect (a read timeout): it ends clients whose server dropped
    /// their request under heavy loss; `sim --app-timeout` with --verify.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub app_timeout: Duration,
    /// The server closes by nginx's lingering close with this `lingering_timeout`
    /// (e.g. 5s): its FIN-WAIT-2 holds the descriptor (a full socket, no bucket)
    /// until the client's FIN or the timeout, then orphans for tcp_fin_timeout.
    #[arg(long, value_parser = parse_duration, conflicts_with = "verify")]
    pub lingering_close: Option<Duration>,
    /// Clients and server share one network namespace (loopback tests, sidecars):
    /// tcp_max_tw_buckets is per namespace, so both ends' TIME-WAIT and orphans count.
    #[arg(long)]
    pub shared_netns: bool,
    /// Client IP addresses connecting to the server.
    #[arg(long, default_value_t = 1)]
    pub clients: u32,
    /// Server IP addresses the clients connect to.
    #[arg(long, default_value_t = 1)]
    pub server_ips: u32,
    /// Server ports (listeners) the clients connect to.
    #[arg(long, default_value_t = 1)]
    pub server_ports: u32,
    /// Clients' ephemeral port range (ip_local_port_range).
    #[arg(long, default_value = "32768-60999")]
    pub port_range: String,
    /// tcp_tw_reuse_delay: a client's TIME-WAIT 4-tuple is reusable this long after it entered TIME-WAIT.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub tw_reuse_delay: Duration,
    #[command(flatten)]
    pub host: ProfileArgs,
    /// Table shards the server's entries are spread over (engine memory is per shard).
    #[arg(long, default_value_t = 1)]
    pub tables: u32,
    /// Run the simulator on the same workload and compare.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: the simulator's virtual shards (also the engine's table shards).
    #[arg(long, default_value_t = 8)]
    pub shards: u32,
    /// With --verify: worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// With --verify: random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the JSON report here (- for stdout).
    #[arg(long)]
    pub json: Option<String>,
    /// Write population-vs-close-rate plots (PNG and SVG) into this directory.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// The most `tcp_syn_linear_timeouts` the handshake's enumeration takes.
pub(super) const MAX_SYN_LINEAR: u8 = 8;

/// The most `tcp_synack_retries` the handshake's enumeration takes: Linux's
/// 5, the SYN-flood tunings below it, and 6 (a request dropped 127 s after
/// its last restart). More multiplies the branches past what a plan should
/// take to print.
pub(super) const MAX_SYNACK_RETRIES: u8 = 6;

/// Validated inputs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub workload: Workload,
    pub clients: u32,
    pub server_ips: u32,
    pub server_ports: u32,
    /// Ephemeral ports per (client IP, server IP, server port).
    pub ports: u32,
    /// The clients' `ip_local_port_range` (for `--verify`).
    pub port_range: (u16, u16),
    pub tw_reuse_delay: Duration,
    pub tables: u32,
    /// Both ends in one network namespace: one set of buckets.
    pub shared_netns: bool,
    /// `tcp_max_orphans` of the server's host (`--max-orphans`, or the
    /// profile's); `None` where the profile has no such limit.
    pub max_orphans: Option<u64>,
}

impl Plan {
    pub fn from_args(a: &PlanArgs) -> Result<Plan, Usage> {
        let given = a.close_rate.as_deref().unwrap_or_default();
        let rate: f64 = given.trim().parse().map_err(|_| {
            Usage(format!(
                "--close-rate must be a number of closes per second, got '{given}'"
            ))
        })?;
        ensure(rate.is_finite() && rate > 0.0, || {
            format!("--close-rate must be above zero, got {given}")
        })?;
        ensure(rate <= 1e9, || {
            "--close-rate above 1e9 per second is not supported".into()
        })?;
        let loss = parse_probability(&a.loss).map_err(|e| Usage(format!("--loss: {e}")))?;
        let runaway = parse_fraction(&a.runaway).map_err(|e| Usage(format!("--runaway: {e}")))?;
        let close = match a.close.as_str() {
            "server" => Closer::Server,
            "client" => Closer::Client,
            c => {
                return Err(Usage(format!(
                    "unknown --close '{c}' (expected server or client)"
                )))
            }
        };
        ensure(
            a.clients >= 1 && a.server_ips >= 1 && a.server_ports >= 1,
            || "--clients, --server-ips and --server-ports must be at least 1".into(),
        )?;
        ensure(a.tables >= 1, || "--tables must be at least 1".into())?;
        // A connection lives at least a round trip: with none, a client would
        // hold its port no time and its ports would serve any rate.
        ensure(!a.rtt.is_zero() && a.rtt <= Duration::from_secs(60), || {
            "--rtt must be above 0 and at most 60s".into()
        })?;
        ensure((1..=255).contains(&a.shards), || {
            "--shards must be between 1 and 255".into()
        })?;
        let (lo, hi) = parse_port_range(&a.port_range).map_err(Usage)?;
        let host = a.host.config();
        host.validate().map_err(Usage)?;
        // The handshake is enumerated over every loss pattern: each SYN on the
        // initial RTO multiplies its interleavings with the server's timer
        // (20 of them took 8 s and 790 MB at 70 % loss; 8 take 0.6 s at worst).
        ensure(host.syn_linear_timeouts <= MAX_SYN_LINEAR, || {
            format!(
                "plan models --syn-linear-timeouts up to {MAX_SYN_LINEAR} (sim takes up to Linux's 127)"
            )
        })?;
        // Each SYN-ACK retry doubles the time the request lives, and the
        // interleavings of its copies with the client's: with 8 linear SYNs
        // at 70 % loss 6 take 0.5 s and 5 take 1.1 s, the worst; 7 took about
        // twice as long as 6, 10 four times.
        check_app_timeout(a.app_timeout)?;
        ensure(host.synack_retries <= MAX_SYNACK_RETRIES, || {
            format!(
                "plan models --synack-retries up to {MAX_SYNACK_RETRIES} (sim takes up to Linux's 255)"
            )
        })?;
        Ok(Plan {
            workload: Workload {
                rate,
                rtt: a.rtt,
                loss,
                runaway,
                close,
                app_delay: a.app_delay,
                app_timeout: a.app_timeout,
                lingering: a.lingering_close,
                host,
            },
            clients: a.clients,
            server_ips: a.server_ips,
            server_ports: a.server_ports,
            ports: (hi - lo) as u32 + 1,
            port_range: (lo, hi),
            tw_reuse_delay: a.tw_reuse_delay,
            tables: a.tables,
            shared_netns: a.shared_netns,
            max_orphans: match a.host.config().max_orphans {
                usize::MAX => None,
                n => Some(n as u64),
            },
        })
    }

    /// (client IP, server IP, server port) triples; each has its own port range.
    pub fn destinations(&self) -> f64 {
        self.clients as f64 * self.server_ips as f64 * self.server_ports as f64
    }
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("--port-range '{s}' must look like 32768-60999");
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}
