//! `loadgen`'s flags and the rules on which go together: the command line
//! is checked whole before anything starts, so that a bad combination is a
//! usage error (exit 2), not a half-run.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use teardown::cli::{parse_duration, parse_fraction, parse_probability, Usage};
use teardown::link::{Loss, LossModel, LossOnly};
use teardown::service::CloseMode;
use teardown::sim::AttackKind;

use crate::real;
use crate::real::workload::{Close, HttpVersion, Request};

/// The loss shape flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArg {
    Bernoulli,
    Burst,
}

/// `loadgen` flags.
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "loadgen",
    version,
    about = "Stress `teardown serve` with engine-played clients, or the kernel with real sockets."
)]
pub struct Args {
    /// UDP address of the server's worker 0.
    #[arg(long, default_value = "127.0.0.1:7171")]
    pub target: SocketAddr,
    /// The server's metrics endpoint (read for its worker count and final counters).
    #[arg(long, default_value = "http://127.0.0.1:9171/metrics")]
    pub metrics_url: String,
    /// Server worker count (default: read from the metrics; with
    /// --spawn-server, half the cores, the clients taking the rest).
    #[arg(long)]
    pub server_threads: Option<usize>,
    /// With --spawn-server and --close server: the spawned server's `--keep`,
    /// the connections it keeps ESTABLISHED, closing the oldest past that
    /// (default: --concurrency less a tenth, so that --concurrency are live
    /// and the handshakes and teardowns in flight still have room; 0: close at once).
    #[arg(long)]
    pub server_keep: Option<usize>,
    /// Connections to open in all.
    #[arg(long, default_value_t = 100_000)]
    pub connections: u64,
    /// Opens per real second; 0 opens as fast as `--concurrency` allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Most connections the clients' application holds open at once, from
    /// connect() to its close(), as a real client's pool: with `--close
    /// client` the TIME-WAIT after it holds a 4-tuple, not a slot (unlike
    /// `teardown sim --concurrency`, which counts a host's connections to
    /// CLOSED).
    #[arg(long, default_value_t = 10_000)]
    pub concurrency: usize,
    /// Which side closes first (must match the server's `--close`); with
    /// --kernel-target also `rst` (SO_LINGER 0).
    #[arg(long, value_enum, default_value_t = Close::Server)]
    pub close: Close,
    /// With `--close client`: engine time between ESTABLISHED and close().
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub hold: Duration,
    /// Engine time after which the clients' application closes a connection
    /// still ESTABLISHED (a read timeout, as `teardown sim --app-timeout`):
    /// TCP has no timer for a connection whose server gave up silently. Off
    /// by default, unlike the simulator's 120s: a server's --hold or --keep
    /// and the clients' --hold keep healthy connections ESTABLISHED longer,
    /// by 1/F under --time-scale F.
    #[arg(long, value_parser = parse_duration)]
    pub app_timeout: Option<Duration>,
    /// Loss each way, applied by the client to what it sends and receives.
    #[arg(long, value_parser = parse_probability, default_value = "0")]
    pub loss: f64,
    /// Loss of segments toward the server (overrides --loss).
    #[arg(long, value_parser = parse_probability)]
    pub loss_to_server: Option<f64>,
    /// Loss of segments toward the client (overrides --loss).
    #[arg(long, value_parser = parse_probability)]
    pub loss_to_client: Option<f64>,
    #[arg(long, value_enum, default_value_t = ModelArg::Bernoulli)]
    pub loss_model: ModelArg,
    /// Mean burst length of `--loss-model burst`, in segments.
    #[arg(long, default_value_t = 4.0)]
    pub burst_len: f64,
    /// Which segments the loss applies to: fin, ack or any.
    #[arg(long, default_value_t = LossOnly::Any)]
    pub loss_only: LossOnly,
    /// Fraction of connections whose client vanishes (Host::forget) after
    /// ACKing the server's FIN (--close server) or once its FIN is ACKed (--close client).
    #[arg(long, value_parser = parse_fraction, default_value = "0")]
    pub runaway_client: f64,
    /// Give up waiting after this much real time.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub timeout: Duration,
    /// Engine time = real time / F; must match the server's.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Client worker threads (default: all cores; with --spawn-server, those
    /// the server's workers leave).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Simulated client IPs per worker (10.128.0.0 and up).
    #[arg(long, default_value_t = 64)]
    pub client_ips: u32,
    /// Ephemeral port range of the simulated clients, LO-HI; tuples are reused
    /// once it is spent.
    #[arg(long, default_value = "32768-60999", value_parser = parse_ports)]
    pub ports: (u16, u16),
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Start `teardown serve` on free loopback ports, stop it with SIGTERM at the
    /// end and include its final report.
    #[arg(long)]
    pub spawn_server: bool,
    /// The `teardown` binary for --spawn-server (default: next to this one).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,
    /// Run the workload over real kernel TCP sockets: against `teardown serve
    /// --kernel-listen` (127.0.0.1:7172, or the spawned server's), or against
    /// any server with --kernel-target.
    #[arg(long)]
    pub kernel: bool,
    /// Drive this listening TCP server (IPv4, or IPv6 as [::1]:PORT) with the
    /// --request/--close workload.
    // `[::1]` is the address notation of --help, not a doc link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, requires = "kernel", conflicts_with = "spawn_server")]
    pub kernel_target: Option<SocketAddr>,
    /// Let --kernel-target be a non-loopback address.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// What each --kernel-target connection sends: none, http, or raw:BYTES
    /// (escapes \r \n \t \0 \\ \xHH).
    #[arg(long, default_value = "none")]
    pub request: Request,
    /// HTTP version of --request http: 1.1 or 1.0.
    #[arg(long, value_enum, default_value_t = HttpVersion::V11)]
    pub http_version: HttpVersion,
    /// Path of --request http.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// With --kernel-target: open connections for this long instead of --connections.
    #[arg(long, value_parser = parse_duration, conflicts_with = "connections")]
    pub duration: Option<Duration>,
    /// Source addresses of --kernel-target connections, A-B inclusive, in turn
    /// (loopback has all of 127.0.0.0/8); ports are picked per destination.
    /// With --netns they are added to the host's end of the pair for the run.
    #[arg(long, value_parser = real::parse_source_ips)]
    pub source_ips: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Source IPs of --kernel connections without --kernel-target (127.1.0.1
    /// and up), to widen the 4-tuple space as the reference benchmark did.
    #[arg(long, default_value_t = 64)]
    pub kernel_source_ips: u32,
    /// Play an off-path attacker against the server: blind-rst, inwindow-rst,
    /// syn-timewait, syn-lastack, fin-unknown, old-duplicate (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub attack: Vec<AttackKind>,
    /// Attack segments per real second, all kinds and workers together.
    #[arg(long, default_value_t = 1000.0)]
    pub attack_rate: f64,
    /// With --kernel-target: draw the run's rate, TIME-WAIT by side and errors
    /// over time into DIR (PNG and SVG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Source ports of --kernel-target connections, LO-HI, bound explicitly
    /// (SO_REUSEADDR) in turn; without it the kernel picks them.
    #[arg(long, value_parser = parse_ports)]
    pub source_ports: Option<(u16, u16)>,
    /// Do the I-th of N shares (0-based) of --rate, --connections,
    /// --source-ips and --source-ports, for fleets: see `loadgen merge`.
    #[arg(long)]
    pub shard: Option<real::shard::Shard>,
    /// With --kernel-target: spread the run over this many worker processes
    /// (each with its own descriptor table), as shards; this process reads
    /// the host and merges their reports.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// Run as one of --workers' processes: no host readings (the parent's).
    #[arg(long, hide = true)]
    pub worker: bool,
    /// The command line, for --workers to start its processes with.
    #[arg(skip)]
    pub argv: Vec<std::ffi::OsString>,
    /// With --kernel: run --server-cmd in a network namespace this run creates
    /// (a veth pair with a private /30 from 10.200.0.0/16) and drive it there;
    /// --loss P drops TCP segments each way with nftables. All torn down at exit.
    #[arg(long, requires = "kernel", requires = "server_cmd", conflicts_with_all = ["kernel_target", "spawn_server"])]
    pub netns: bool,
    /// The --netns server, a shell command line run inside the namespace;
    /// {ip}, {port} and {addr} become the server's address.
    #[arg(long, requires = "netns")]
    pub server_cmd: Option<String>,
    /// The port --server-cmd listens on.
    #[arg(long, default_value_t = 8080)]
    pub netns_port: u16,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub quiet: bool,
}

/// Most `--source-ips` a `--netns` run adds to the host (about 115 M 4-tuples
/// to one port).
const MAX_NETNS_SOURCE_IPS: u32 = 4096;

/// The private block `ip` lies in, as its first address: RFC 1918's three,
/// shared address space (RFC 6598) and the benchmarking range (RFC 2544).
fn private_block(ip: Ipv4Addr) -> Option<u32> {
    const BLOCKS: [([u8; 4], u32); 5] = [
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([100, 64, 0, 0], 10),
        ([198, 18, 0, 0], 15),
    ];
    let ip = u32::from(ip);
    BLOCKS.iter().find_map(|&(net, bits)| {
        let net = u32::from(Ipv4Addr::from(net));
        (ip >> (32 - bits) == net >> (32 - bits)).then_some(net)
    })
}

/// Whether an `http://HOST:PORT/...` URL names a loopback host
/// (`localhost`, 127/8 or `[::1]`).
fn url_is_loopback(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("'{s}' is not a range LO-HI"))?;
    let lo: u16 = a.trim().parse().map_err(|_| format!("bad port '{a}'"))?;
    let hi: u16 = b.trim().parse().map_err(|_| format!("bad port '{b}'"))?;
    if lo == 0 || lo > hi {
        return Err(format!("'{s}' must be 1 <= LO <= HI"));
    }
    Ok((lo, hi))
}

impl Args {
    pub(crate) fn validate(&self) -> Result<(), Usage> {
        teardown::service::check_time_scale(self.time_scale)?;
        teardown::cli::ensure(self.concurrency > 0, || {
            "--concurrency must be above 0".into()
        })?;
        teardown::cli::ensure(self.rate >= 0.0 && self.rate.is_finite(), || {
            "--rate must be >= 0".into()
        })?;
        teardown::cli::ensure(
            self.attack.is_empty() || (self.attack_rate.is_finite() && self.attack_rate > 0.0),
            || "--attack-rate must be above zero".into(),
        )?;
        teardown::cli::ensure(self.attack.is_empty() || !self.kernel, || {
            "--attack needs the engine's clients, not --kernel".into()
        })?;
        if let Some(d) = self.app_timeout {
            teardown::cli::check_app_timeout(d)?;
            teardown::cli::ensure(!self.kernel, || {
                "--app-timeout needs the engine's clients, not --kernel".into()
            })?;
        }
        teardown::cli::ensure(self.workers >= 1, || "--workers must be at least 1".into())?;
        teardown::cli::ensure(self.threads != Some(0), || {
            "--threads must be at least 1".into()
        })?;
        teardown::cli::ensure(self.server_keep.is_none() || self.server_keeps(), || {
            "--server-keep needs --spawn-server and --close server".into()
        })?;
        teardown::cli::ensure(self.client_ips > 0 && self.client_ips <= 1 << 16, || {
            "--client-ips must be in 1..=65536".into()
        })?;
        self.validate_kernel_target()?;
        teardown::cli::ensure(
            url_is_loopback(&self.metrics_url) || self.allow_non_loopback,
            || {
                format!(
                    "--metrics-url {} is not on loopback; pass --allow-non-loopback to read it",
                    self.metrics_url
                )
            },
        )?;
        teardown::cli::ensure(self.target.ip().is_loopback() || self.spawn_server, || {
            format!(
                "--target {} is not loopback; loadgen only runs on loopback",
                self.target
            )
        })?;
        Ok(())
    }

    fn validate_kernel_target(&self) -> Result<(), Usage> {
        if self.kernel_target.is_some() || self.netns {
            teardown::cli::ensure(
                self.loss_to_server.is_none()
                    && self.loss_to_client.is_none()
                    && self.loss_model == ModelArg::Bernoulli,
                || {
                    "with --kernel-target or --netns, --loss is the only loss flag (each way)"
                        .into()
                },
            )?;
            teardown::cli::ensure(self.loss == 0.0 || self.netns, || {
                "--loss on real TCP needs --netns (loss is applied inside the namespace)".into()
            })?;
        }
        if self.netns {
            // Added to the host's end of the pair for the run: few, and
            // private, so that none stands in for a host the machine could
            // otherwise reach.
            return match self.source_ips {
                Some((lo, hi)) => teardown::cli::ensure(
                    matches!((private_block(lo), private_block(hi)), (Some(a), Some(b)) if a == b)
                        && u32::from(hi) - u32::from(lo) < MAX_NETNS_SOURCE_IPS,
                    || {
                        format!(
                            "--netns --source-ips {lo}-{hi}: at most {MAX_NETNS_SOURCE_IPS} \
                             addresses in one private block (10/8, 172.16/12, 192.168/16, \
                             100.64/10 or 198.18/15)"
                        )
                    },
                ),
                None => Ok(()),
            };
        }
        let Some(target) = self.kernel_target else {
            let needs = [
                (self.close == Close::Rst, "--close rst"),
                (self.request != Request::None, "--request"),
                (self.duration.is_some(), "--duration"),
                (self.source_ips.is_some(), "--source-ips"),
                (self.plot.is_some(), "--plot"),
                (self.source_ports.is_some(), "--source-ports"),
                (self.shard.is_some(), "--shard"),
                (self.workers > 1, "--workers"),
            ];
            return match needs.iter().find(|(used, _)| *used) {
                Some((_, flag)) => Err(Usage(format!("{flag} needs --kernel --kernel-target"))),
                None => Ok(()),
            };
        };
        teardown::cli::ensure(
            target.is_ipv4() || (self.source_ips.is_none() && self.source_ports.is_none()),
            || format!("--kernel-target {target}: --source-ips and --source-ports are IPv4 only"),
        )?;
        teardown::cli::ensure(
            real::target_allowed(target, self.allow_non_loopback),
            || {
                format!(
                    "--kernel-target {target} is not a loopback address: refusing to send \
                 traffic there without --allow-non-loopback"
                )
            },
        )?;
        if let Some((lo, hi)) = self.source_ips {
            teardown::cli::ensure(
                !target.ip().is_loopback() || (lo.is_loopback() && hi.is_loopback()),
                || format!("--source-ips {lo}-{hi} must be in 127.0.0.0/8 for a loopback target"),
            )?;
        }
        Ok(())
    }

    /// `--close` for the engine's clients, which have no RST close.
    pub(crate) fn close_mode(&self) -> Result<CloseMode, Usage> {
        match self.close {
            Close::Server => Ok(CloseMode::Server),
            Close::Client => Ok(CloseMode::Client),
            Close::Rst => Err(Usage("--close rst needs --kernel --kernel-target".into())),
        }
    }

    pub(crate) fn loss(&self, p: Option<f64>) -> Result<Loss, Usage> {
        let model = match self.loss_model {
            ModelArg::Bernoulli => LossModel::Bernoulli,
            ModelArg::Burst => LossModel::Burst {
                burst: self.burst_len,
            },
        };
        Loss::new(p.unwrap_or(self.loss), model, self.loss_only).map_err(Usage)
    }

    /// A spawned server and the engine's clients share this machine's cores.
    fn shares_cores(&self) -> bool {
        self.spawn_server && !self.kernel
    }

    /// Whether the spawned server can keep connections: it closes first.
    fn server_keeps(&self) -> bool {
        self.shares_cores() && self.close == Close::Server
    }

    /// The spawned server's workers: half the cores (at least one), so that
    /// the two processes do not each run a thread per core and preempt each
    /// other; `--server-threads` when given.
    pub fn server_threads(&self) -> Option<usize> {
        self.server_threads
            .or_else(|| self.shares_cores().then(|| (cores() / 2).max(1)))
    }

    /// Client workers: `--threads`, or the cores a spawned server leaves (at
    /// least one), or all of them.
    pub(crate) fn threads(&self) -> usize {
        match (self.threads, self.server_threads()) {
            (Some(n), _) => n,
            (None, Some(server)) if self.shares_cores() => cores().saturating_sub(server).max(1),
            (None, _) => cores(),
        }
    }

    /// The spawned server's `--keep`. Without it a connection lives a round
    /// trip or two (plus any retransmission), so the clients cannot open fast
    /// enough to have `--concurrency` live at once (Little's law). The server
    /// keeps fewer than the clients may have open, so that a new handshake
    /// always has room and pushes the oldest kept connection into its teardown.
    pub fn server_keep(&self) -> Option<usize> {
        self.server_keep.or_else(|| {
            self.server_keeps()
                .then(|| self.concurrency - (self.concurrency / 10).max(1))
        })
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests;
