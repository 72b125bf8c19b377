//! `teardown sim`: a deterministic discrete-event simulator on a virtual clock.
//!
//! A server host and its clients (two engines per shard) run a connection
//! workload through open, request/response, close and teardown over a simulated
//! link with loss, delay and jitter. The work is split into a fixed number of
//! virtual shards (`--shards`), each an independent simulation with its own seed
//! stream and its own client addresses; results are merged by shard index. So
//! for a given seed and flags the report is the same whatever `--threads` is,
//! except the wall-clock and working-set fields. By default each thread holds
//! all its shards at once and advances them together ([`resident`]);
//! `--sequential-shards` runs them one after another from a crossbeam queue.

mod app;
mod app_timers;
mod attack;
mod deliver;
pub mod plot;
mod queue;
mod repeat;
mod report;
mod resident;
mod result;
mod series;
mod shard;
mod slots;
mod sweep;
mod tally;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::cli::{
    ensure, parse_duration, parse_fraction, parse_probability, ProfileArgs, Usage, MAX_SPAN_SECS,
};
use crate::link::{Delay, Loss, LossModel, LossOnly};
use teardown_engine::config::Config;
use teardown_engine::time::Time;
use teardown_engine::BindMode;

/// µs of a time, `u64::MAX` for none: the shards' event loop compares plain
/// numbers, asked after every event.
#[inline]
fn micros_or_never(t: Option<Time>) -> u64 {
    t.map_or(u64::MAX, Time::as_micros)
}

pub use attack::{AttackCounts, AttackKind};
pub use report::{Point, SimReport};
pub use result::{Cases, ShardResult};
pub use series::Sample;

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
    /// Most connections live at once (client side, from connect to CLOSED).
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
    /// for twice the concurrency, at least 16).
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
    /// Run once per size (comma-separated --concurrency values, e.g.
    /// 10000,100000,1000000,10000000), all shards resident and then one shard at
    /// a time, and report teardowns/s against the entries held (--plot draws it).
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

/// Validated simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub connections: u64,
    pub concurrency_per_shard: u64,
    pub concurrency: u64,
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub close: CloseMode,
    pub workload: Workload,
    pub request_bytes: u32,
    pub response_bytes: u32,
    pub loss_to_server: Loss,
    pub loss_to_client: Loss,
    pub delay: Delay,
    pub jitter: Duration,
    pub runaway_client: f64,
    pub runaway_server: f64,
    pub runaway_at: RunawayAt,
    pub port_range: (u16, u16),
    /// How the clients get their ports.
    pub bind: BindMode,
    pub client_ips: u32,
    pub slots_per_shard: u32,
    pub host: Config,
    pub threads: usize,
    pub shards: u32,
    pub seed: u64,
    pub sample_interval: Duration,
    pub attacks: Vec<AttackKind>,
    pub attack_rate: f64,
    pub app_timeout: Duration,
    /// Connections captured for --pcap (0: no capture).
    pub pcap_sample: u64,
    /// All of a thread's shards live at once (the default), or one at a time.
    pub resident: bool,
    /// tw-fill: shard k opens its connections at k × stagger and closes them
    /// at k × stagger after every shard has opened, so that one shard's burst
    /// is on the link at a time, not all N segments and timers at once; zero
    /// for the standard workload.
    pub stagger: Duration,
}

impl SimConfig {
    pub fn from_args(a: &SimArgs) -> Result<SimConfig, Usage> {
        ensure(a.connections > 0, || {
            "--connections must be at least 1".into()
        })?;
        ensure(a.concurrency > 0, || {
            "--concurrency must be at least 1".into()
        })?;
        ensure((1..=255).contains(&a.shards), || {
            "--shards must be between 1 and 255".into()
        })?;
        // tw-fill opens everything at once and ignores --rate.
        if let Some(r) = a.rate.filter(|_| a.workload != Workload::TwFill) {
            ensure(r.is_finite() && r > 0.0, || {
                format!("--rate must be above zero, got {r}")
            })?;
            let span = a.connections as f64 / r;
            ensure(span <= MAX_SPAN_SECS, || {
                format!(
                    "--rate {r} opens {} connections over {span:.3e} s of simulated time; \
                     a run spans at most {MAX_SPAN_SECS:.0e} s (31 years)",
                    a.connections
                )
            })?;
        }
        ensure(!a.sample_interval.is_zero(), || {
            "--sample-interval must be above zero".into()
        })?;
        ensure(a.sample_interval >= Duration::from_millis(1), || {
            "--sample-interval must be at least 1ms".into()
        })?;
        ensure(
            a.delay <= Duration::from_secs(60) && a.jitter <= Duration::from_secs(60),
            || "--delay and --jitter must be at most 60s".into(),
        )?;
        ensure(a.runaway_client + a.runaway_server <= 1.0, || {
            "--runaway-client plus --runaway-server must be at most 1".into()
        })?;
        let threads = a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        ensure((1..=1024).contains(&threads), || {
            "--threads must be between 1 and 1024".into()
        })?;
        let port_range = parse_port_range(&a.port_range).map_err(Usage)?;
        let ports = (port_range.1 - port_range.0) as u64 + 1;

        let tw_fill = a.workload == Workload::TwFill;
        let concurrency = if tw_fill {
            a.connections
        } else {
            a.concurrency.min(a.connections)
        };
        let needed_ips = (concurrency * 2).div_ceil(ports).max(16);
        let client_ips = a.client_ips.map_or(needed_ips, |n| n as u64);
        ensure(client_ips >= 1, || "--client-ips must be at least 1".into())?;
        let shards = a.shards as u64;
        let slots_total = client_ips * ports;
        let slots_per_shard = slots_total.div_ceil(shards);
        ensure(
            slots_per_shard / ports < 65_536 && slots_per_shard <= u32::MAX as u64,
            || "too many client addresses for one shard; raise --shards".into(),
        )?;
        let concurrency_per_shard = concurrency.div_ceil(shards);
        // A closed model (no --rate) keeps `concurrency` connections open, so
        // it needs that many ports. With --rate fewer ports than live
        // connections is a workload: connect() fails with EADDRNOTAVAIL
        // (counted in the report's `connect`).
        ensure(
            a.rate.is_some() || slots_per_shard >= concurrency_per_shard,
            || {
                format!(
                "{client_ips} client address(es) x {ports} ports cannot hold {concurrency} live connections; raise --client-ips"
            )
            },
        )?;

        let mut host = a.host.config();
        host.max_tw_buckets = match (a.host.max_tw_buckets, tw_fill) {
            (Some(v), _) => v,
            // Like raising net.ipv4.tcp_max_tw_buckets for the experiment; per shard.
            (None, true) => usize::MAX,
            (None, false) => host.max_tw_buckets,
        };
        // The limit is the host's; each shard holds its share of it.
        if host.max_tw_buckets != usize::MAX {
            host.max_tw_buckets = host.max_tw_buckets.div_ceil(a.shards as usize);
        }
        // Host-wide limits are split over the shards, which each hold one share.
        let per_shard = |v: u64| v.div_ceil(a.shards as u64).max(1);
        if let Some(v) = a.max_connections {
            ensure(v > 0, || "--max-connections must be at least 1".into())?;
            host.max_connections = per_shard(v as u64) as usize;
        }
        if let Some(v) = a.challenge_ack_limit {
            host.challenge_ack_limit = per_shard(v as u64) as u32;
        }
        if let Some(v) = a.rst_limit {
            host.rst_limit = per_shard(v as u64) as u32;
        }
        host.ip_local_port_range = port_range;
        host.tw_reuse_delay = a.tw_reuse_delay;
        host.validate().map_err(Usage)?;
        // The sweep compares 32-bit millisecond stamps.
        ensure(
            a.app_timeout >= Duration::from_secs(1)
                && a.app_timeout.as_millis() <= u32::MAX as u128 / 2,
            || "--app-timeout must be between 1s and 24 days".into(),
        )?;
        ensure(a.attack_rate.is_finite() && a.attack_rate > 0.0, || {
            "--attack-rate must be above zero".into()
        })?;
        let gap = a.shards as f64 / a.attack_rate;
        ensure(gap <= MAX_SPAN_SECS, || {
            format!(
                "--attack-rate {} leaves {gap:.3e} s of simulated time between a shard's \
                 attacks; a run spans at most {MAX_SPAN_SECS:.0e} s (31 years)",
                a.attack_rate
            )
        })?;
        let mut attacks = a.attack.clone();
        attacks.sort();
        attacks.dedup();

        let model = match a.loss_model {
            LossKind::Bernoulli => LossModel::Bernoulli,
            LossKind::Burst => LossModel::Burst { burst: a.burst_len },
        };
        let (ls, lc) = if tw_fill {
            (0.0, 0.0)
        } else {
            (
                a.loss_to_server.unwrap_or(a.loss),
                a.loss_to_client.unwrap_or(a.loss),
            )
        };
        let loss_to_server = Loss::new(ls, model, a.loss_only).map_err(Usage)?;
        let loss_to_client = Loss::new(lc, model, a.loss_only).map_err(Usage)?;
        let (request_bytes, response_bytes) = if tw_fill || a.close == CloseMode::Both {
            (0, 0)
        } else {
            (a.request_bytes, a.response_bytes)
        };
        let stagger = if tw_fill {
            tw_fill_stagger(a.delay + a.jitter, host.time_wait, a.shards)
        } else {
            Duration::ZERO
        };
        Ok(SimConfig {
            connections: a.connections,
            concurrency_per_shard,
            concurrency,
            rate: if tw_fill { None } else { a.rate },
            duration: a.duration,
            close: a.close,
            workload: a.workload,
            request_bytes,
            response_bytes,
            loss_to_server,
            loss_to_client,
            delay: Delay {
                base: a.delay,
                jitter: a.jitter,
            },
            jitter: a.jitter,
            runaway_client: a.runaway_client,
            runaway_server: a.runaway_server,
            runaway_at: a.runaway_at,
            port_range,
            bind: if a.bind_before_connect {
                BindMode::BeforeConnect
            } else {
                BindMode::NoPort
            },
            client_ips: client_ips as u32,
            slots_per_shard: slots_per_shard as u32,
            host,
            threads,
            shards: a.shards,
            seed: a.seed,
            sample_interval: a.sample_interval,
            attacks,
            attack_rate: a.attack_rate,
            app_timeout: a.app_timeout,
            pcap_sample: if a.pcap.is_some() { a.pcap_sample } else { 0 },
            resident: !a.sequential_shards,
            stagger,
        })
    }
}

/// How far apart tw-fill's shards open, and close: four one-way delays, room
/// for a shard's handshakes (three delays) to finish before the next shard's
/// begin. Capped so that the spread of the closes (shards × stagger) stays
/// under a quarter of TIME-WAIT: every server entry is in TIME-WAIT at once.
fn tw_fill_stagger(one_way: Duration, time_wait: Duration, shards: u32) -> Duration {
    (one_way * 4).min(time_wait / (4 * shards))
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("--port-range '{s}' must look like 32768-60999"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("bad port '{lo}' in --port-range"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("bad port '{hi}' in --port-range"))?;
    if lo == 0 || lo > hi {
        return Err(format!(
            "--port-range '{s}' must be LO-HI with 0 < LO <= HI"
        ));
    }
    Ok((lo, hi))
}

/// Runs the simulation; `progress` (if any) is told how many connections are done.
pub fn run(cfg: &SimConfig, show_progress: bool) -> SimReport {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let mut results: Vec<Option<ShardResult>> = (0..cfg.shards).map(|_| None).collect();
    let mut capture = Vec::new();
    let scope_base = crate::alloc::reserve_scopes(2 * cfg.shards as u16);
    let threads = cfg.threads.min(cfg.shards as usize);
    let mut peak_entries = 0;
    std::thread::scope(|scope| {
        let (work_tx, work_rx) = crossbeam::channel::unbounded::<u32>();
        let (res_tx, res_rx) = crossbeam::channel::unbounded::<(u32, ShardResult)>();
        for k in 0..cfg.shards {
            // Largest shards first is unknowable; plain order keeps runs repeatable.
            let _ = work_tx.send(k);
        }
        drop(work_tx);
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let (rx, tx, done) = (work_rx.clone(), res_tx.clone(), &done);
                scope.spawn(move || {
                    if cfg.resident {
                        // Every shard k with k % threads == i, all live at once.
                        let mine = (i as u32..cfg.shards).step_by(threads);
                        let shards = mine.map(|k| shard::Shard::new(cfg, k, scope_base, done));
                        resident::run(shards.collect(), &tx)
                    } else {
                        one_at_a_time(cfg, scope_base, done, &rx, &tx)
                    }
                })
            })
            .collect();
        drop(res_tx);
        let bar = show_progress.then(|| progress_bar(cfg.connections));
        loop {
            match res_rx.recv_timeout(Duration::from_millis(100)) {
                Ok((k, mut r)) => {
                    capture.append(&mut r.capture);
                    results[k as usize] = Some(r);
                }
                Err(crossbeam::channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam::channel::RecvTimeoutError::Disconnected) => break,
            }
            if let Some(bar) = &bar {
                bar.set_position(done.load(Ordering::Relaxed));
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        for w in workers {
            peak_entries += w.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    });
    let wall = start.elapsed();
    let results: Vec<ShardResult> = results.into_iter().flatten().collect();
    let mut report = SimReport::merge(cfg, &results, wall);
    report.resident.peak_entries = peak_entries;
    report.capture = capture;
    report
}

/// One thread's shards taken from the queue and run to their end one after
/// another; returns the most entries the thread held at once (one shard's peak).
fn one_at_a_time(
    cfg: &SimConfig,
    scope_base: u16,
    done: &AtomicU64,
    work: &crossbeam::channel::Receiver<u32>,
    results: &crossbeam::channel::Sender<(u32, ShardResult)>,
) -> u64 {
    let mut peak = 0;
    while let Ok(k) = work.recv() {
        let r = shard::Shard::new(cfg, k, scope_base, done).run();
        peak = peak.max(r.peak_entries);
        if results.send((k, r)).is_err() {
            break;
        }
    }
    peak
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {human_pos}/{human_len} connections ({per_sec}) eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// `teardown sim`.
pub fn main(args: SimArgs) -> anyhow::Result<ExitCode> {
    if let Some(sizes) = &args.sweep {
        return sweep_main(&args, &sizes.0);
    }
    let cfg = SimConfig::from_args(&args)?;
    let show_progress = std::io::stderr().is_terminal() && !args.quiet;
    let (report, repeat) = repeat::run_repeated(&cfg, args.repeat, show_progress)?;
    if !args.quiet && args.json.as_deref() != Some("-") {
        print!("{}", report.human());
        if let Some(r) = &repeat {
            print!("{}", r.human());
        }
    }
    if let Some(path) = &args.json {
        crate::cli::write_text(path, &(repeat::json(&report, repeat.as_ref())? + "\n"))?;
    }
    if let Some(path) = &args.pcap {
        let mut w = crate::pcap::PcapWriter::create(path)
            .with_context(|| format!("creating {}", path.display()))?;
        for (t, seg) in &report.capture {
            w.write(*t, seg)?;
        }
        w.finish()?;
    }
    if let Some(dir) = &args.plot {
        report::plot(&report, dir)
            .with_context(|| format!("writing plots to {}", dir.display()))?;
    }
    Ok(if report.leaked == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `teardown sim --sweep SIZES`.
fn sweep_main(args: &SimArgs, sizes: &[u64]) -> anyhow::Result<ExitCode> {
    let points = sweep::sweep(
        args,
        sizes,
        &args.kernel_report,
        args.table_bench.as_deref(),
    )?;
    if !args.quiet && args.json.as_deref() != Some("-") {
        print!("{}", sweep::human(&points));
    }
    if let Some(path) = &args.json {
        crate::cli::write_json(path, &points)?;
    }
    if let Some(dir) = &args.plot {
        let threads = SimConfig::from_args(args)?.threads;
        let title = format!(
            "teardowns/s as the table grows (loss {}%, {} thread{}, {} shards)",
            (args.loss * 100_000.0).round() / 1000.0,
            threads,
            if threads == 1 { "" } else { "s" },
            args.shards
        );
        sweep::plot(&points, &title, dir)
            .with_context(|| format!("writing plots to {}", dir.display()))?;
    }
    Ok(if points.runs.iter().all(|p| p.leaked == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
