//! `teardown sim`'s flags as clap parses them, and the choices they name;
//! [`super::config`] checks them and turns them into a [`super::SimConfig`].

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::attack::AttackKind;
use super::sweep;
use crate::cli::{parse_duration, parse_fraction, parse_probability, ProfileArgs};
use crate::link::LossOnly;

/// Who sends the first FIN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CloseMode {
    Server,
    Client,
    /// Both at once: the FINs cross (simultaneous close, CLOSING on both ends).
    Both,
    /// The server first with probability F, else the client.
    Mixed(f64),
}

impl std::str::FromStr for CloseMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "server" => Ok(CloseMode::Server),
            "client" => Ok(CloseMode::Client),
            "both" => Ok(CloseMode::Both),
            _ => match s.strip_prefix("mixed:") {
                Some(f) => Ok(CloseMode::Mixed(parse_fraction(f)?)),
                None => Err(format!(
                    "unknown close mode '{s}' (expected server, client, both or mixed:F)"
                )),
            },
        }
    }
}

impl std::fmt::Display for CloseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseMode::Server => f.write_str("server"),
            CloseMode::Client => f.write_str("client"),
            CloseMode::Both => f.write_str("both"),
            CloseMode::Mixed(x) => write!(f, "mixed:{x}"),
        }
    }
}

/// When a runaway end vanishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunawayAt {
    /// Right after its FIN was ACKed (active closer), or after it ACKed the peer's
    /// FIN (passive closer).
    FinAcked,
    /// Right after it sent its FIN.
    FinSent,
    /// Either of the two, with equal odds.
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Open, request, response, close, teardown, repeat.
    Standard,
    /// N connections established, then all closed by the server with no loss,
    /// shard after shard (four one-way delays apart, so all N are ESTABLISHED
    /// together, then all N in TIME-WAIT); the run ends when the last
    /// TIME-WAIT entry expires.
    TwFill,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossKind {
    Bernoulli,
    /// Gilbert-Elliott bursts (`--burst-len`).
    Burst,
}

/// `teardown sim` flags.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Connection lifecycles to run.
    #[arg(long, default_value_t = 1_000_000)]
    pub connections: u64,
    /// Most connections the client application holds at once: from connect()
    /// to its close(), or to the connection's end when that comes first. The
    /// TIME-WAIT or LAST-ACK after a close holds a port, not a place.
    #[arg(long, default_value_t = 10_000)]
    pub concurrency: u64,
    /// Opens per simulated second (instead of opening as soon as a slot frees).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop at this simulated time even if connections are still open (they count as leaked).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Who sends the first FIN: server, client, both (simultaneous) or mixed:F (server with probability F).
    #[arg(long, default_value = "server")]
    pub close: CloseMode,
    /// Workload shape.
    #[arg(long, value_enum, default_value_t = Workload::Standard)]
    pub workload: Workload,
    /// Bytes the client sends after the handshake (0: the first closer closes at once).
    #[arg(long, default_value_t = 100)]
    pub request_bytes: u32,
    /// Bytes the server answers with before it closes.
    #[arg(long, default_value_t = 1000)]
    pub response_bytes: u32,
    /// Segment loss probability, both directions.
    #[arg(long, default_value = "0.01", value_parser = parse_probability)]
    pub loss: f64,
    /// Loss model.
    #[arg(long, value_enum, default_value_t = LossKind::Bernoulli)]
    pub loss_model: LossKind,
    /// Mean burst length in segments (with --loss-model burst).
    #[arg(long, default_value_t = 4.0)]
    pub burst_len: f64,
    /// Loss on segments towards the server (overrides --loss for that direction).
    #[arg(long, value_parser = parse_probability)]
    pub loss_to_server: Option<f64>,
    /// Loss on segments towards the clients (overrides --loss for that direction).
    #[arg(long, value_parser = parse_probability)]
    pub loss_to_client: Option<f64>,
    /// Which segments the loss applies to: fin, ack (pure ACKs) or any.
    #[arg(long, default_value = "any")]
    pub loss_only: LossOnly,
    /// One-way link delay.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub delay: Duration,
    /// Extra uniform delay in [0, jitter] per segment (reorders segments).
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub jitter: Duration,
    /// Applications close a connection still ESTABLISHED this long after it
    /// opened (an HTTP read/idle timeout): TCP has no timer for a half-open
    /// connection whose peer gave up silently.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub app_timeout: Duration,
    /// How long the passive closer's application takes to close after the
    /// peer's FIN (its CLOSE-WAIT): a slow worker, a proxy draining upstream.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub close_delay: Duration,
    /// Fraction of connections whose client vanishes during teardown.
    #[arg(long, default_value = "0", value_parser = parse_fraction)]
    pub runaway_client: f64,
    /// Fraction of connections whose server end vanishes during teardown.
    #[arg(long, default_value = "0", value_parser = parse_fraction)]
    pub runaway_server: f64,
    /// When a runaway end vanishes.
    #[arg(long, value_enum, default_value_t = RunawayAt::FinAcked)]
    pub runaway_at: RunawayAt,
    /// Client addresses; each has the ephemeral port range, so 4-tuples are reused
    /// while old incarnations may still sit in TIME-WAIT or LAST-ACK (default: enough
    /// for twice the clients' entries: the concurrency, doubled when the pool
    /// refills; at least 16).
    #[arg(long)]
    pub client_ips: Option<u32>,
    /// Ephemeral port range of each client address (ip_local_port_range).
    #[arg(long, default_value = "32768-60999")]
    pub port_range: String,
    /// tcp_tw_reuse_delay of the clients: how long after entering TIME-WAIT
    /// connect() may take a 4-tuple over (with --tw-reuse and timestamps).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub tw_reuse_delay: Duration,
    /// Clients bind(addr, 0) before connect(): a port is not shared across
    /// destinations and never taken from TIME-WAIT (default: connect() picks
    /// the port, as with IP_BIND_ADDRESS_NO_PORT).
    #[arg(long)]
    pub bind_before_connect: bool,
    #[command(flatten)]
    pub host: ProfileArgs,
    /// Attack traffic at the server: blind-rst, inwindow-rst, syn-timewait,
    /// syn-lastack, fin-unknown, old-duplicate (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub attack: Vec<AttackKind>,
    /// Attack segments per simulated second (all kinds together).
    #[arg(long, default_value_t = 10_000.0)]
    pub attack_rate: f64,
    /// Most connections the server holds (new SYNs past it are dropped and counted).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Challenge ACKs per second, host-wide (tcp_challenge_ack_limit; default off, as Linux >= 6.0).
    #[arg(long)]
    pub challenge_ack_limit: Option<u32>,
    /// RSTs per second for segments matching no connection, host-wide (default off).
    #[arg(long)]
    pub rst_limit: Option<u32>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Virtual shards (independent simulations); fixed so that results do not depend on --threads.
    #[arg(long, default_value_t = 64)]
    pub shards: u32,
    /// Run each thread's shards one after another, each to its end, instead of
    /// all at once: only one shard per thread is then in memory. Populations,
    /// latencies and every other simulated figure are the same; throughput and
    /// memory are those of a table --shards times smaller. For runs whose
    /// population does not fit in memory at once, not for throughput figures.
    #[arg(long)]
    pub sequential_shards: bool,
    /// Record the server host's inputs (needs --shards 1), then replay them
    /// into a fresh host --repeat times and report the engine alone on one
    /// table of the run's size: one core's teardowns/s for the server side,
    /// without the client host, link and applications the run spends most
    /// of its time on. Each replay is checked to end as the recorded host did.
    /// With --sequential-shards, every shard's server host instead, replayed
    /// one after another: the engine alone on tables --shards times smaller.
    /// With --sweep, a third point per size: the server host of the size's
    /// one-table run, replayed alone.
    #[arg(long)]
    pub replay_server: bool,
    /// Run each size (comma-separated --concurrency values, e.g.
    /// 10000,100000,1000000,10000000), all shards resident and then one shard at
    /// a time, and report teardowns/s against the entries held (--plot draws it).
    /// With --repeat K each point is the median of K runs (a --replay-server
    /// point: of K replays, at least three).
    #[arg(long, value_parser = sweep::parse_sizes)]
    pub sweep: Option<sweep::Sizes>,
    /// With --sweep: a `loadgen --kernel` JSON report to place beside the
    /// simulator's curves (the kernel's loopback figure); repeat for several.
    #[arg(long, requires = "sweep")]
    pub kernel_report: Vec<std::path::PathBuf>,
    /// With --sweep: a criterion directory holding `cargo bench --bench table`
    /// (`target/criterion`, or `results/baseline/criterion`): the table alone
    /// beside std `HashMap` at each size, in the report and a second panel.
    #[arg(long, requires = "sweep")]
    pub table_bench: Option<std::path::PathBuf>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated time between population samples, at first: past 4096
    /// samples per shard it doubles (the report's sample_interval_s).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub sample_interval: Duration,
    /// Write the JSON report here (- for stdout).
    #[arg(long)]
    pub json: Option<String>,
    /// Write plots (PNG and SVG) into this directory.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// Write the captured connections' segments (as the server host sees them) to
    /// this pcap file, as real IPv4/TCP packets with simulated timestamps.
    #[arg(long)]
    pub pcap: Option<std::path::PathBuf>,
    /// How many connections --pcap keeps (the first ones opened in shard 0).
    #[arg(long, default_value_t = 100)]
    pub pcap_sample: u64,
    /// No human report on stdout.
    #[arg(long)]
    pub quiet: bool,
    /// Run the scenario K times (same seed) and report the median and spread of the
    /// wall-clock figures; the other fields must agree across the runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
}

impl Default for SimArgs {
    fn default() -> SimArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            args: SimArgs,
        }
        Wrap::parse_from(["sim"]).args
    }
}
