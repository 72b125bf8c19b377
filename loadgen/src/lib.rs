//! `loadgen`: the client side of a `teardown serve` stress run.
//!
//! In the default mode the clients are played by the same engine as the server,
//! one host per worker thread, over the service's UDP wire format. `--kernel`
//! runs the same open/close workload over real kernel TCP sockets instead, and
//! `--kernel --kernel-target ADDR` churns any listening TCP server (see [`real`]).
//!
//! Accounting: a connection is accounted for when the client's host reports it
//! CLOSED (any reason) or the client vanished on purpose (`--runaway-client`).
//! The run ends when every opened connection is accounted for *and* the server's
//! metrics show no connection outside TIME-WAIT (every server entry reached CLOSED
//! or TIME-WAIT), or when `--timeout` passes. `leaked` is the connections never
//! accounted for on the client plus the server's entries outside TIME-WAIT at the
//! end.

pub mod attack;
pub mod kernel;
pub mod merge;
pub mod model;
pub mod real;
pub mod sock;
pub mod spawn;
pub mod tail;
pub mod workers;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use real::workload::{Close, HttpVersion, Request};
use serde_json::{json, Map, Value};
use teardown::cli::{parse_duration, parse_fraction, parse_probability, Usage};
use teardown::link::{Loss, LossModel, LossOnly};
use teardown::service::metrics::{completed, parse_text, REASONS};
use teardown::service::net::{http_get, http_post};
use teardown::service::{Clock, CloseMode};
use teardown::sim::AttackKind;
use teardown_engine::State;

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
    /// Most connections live on the client side at once.
    #[arg(long, default_value_t = 10_000)]
    pub concurrency: usize,
    /// Which side closes first (must match the server's `--close`); with
    /// --kernel-target also `rst` (SO_LINGER 0).
    #[arg(long, value_enum, default_value_t = Close::Server)]
    pub close: Close,
    /// With `--close client`: engine time between ESTABLISHED and close().
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub hold: Duration,
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

/// The outcome: the JSON report and whether anything leaked.
pub struct Report {
    pub json: Value,
    pub leaked: u64,
}

impl Args {
    fn validate(&self) -> Result<(), Usage> {
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
            // Added to the host's end of the pair: real, routable, and few.
            return match self.source_ips {
                Some((lo, hi)) => teardown::cli::ensure(
                    !lo.is_loopback()
                        && !hi.is_loopback()
                        && u32::from(hi) - u32::from(lo) < MAX_NETNS_SOURCE_IPS,
                    || {
                        format!(
                            "--netns --source-ips {lo}-{hi}: at most {MAX_NETNS_SOURCE_IPS} \
                             addresses outside 127.0.0.0/8"
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
    fn close_mode(&self) -> Result<CloseMode, Usage> {
        match self.close {
            Close::Server => Ok(CloseMode::Server),
            Close::Client => Ok(CloseMode::Client),
            Close::Rst => Err(Usage("--close rst needs --kernel --kernel-target".into())),
        }
    }

    fn loss(&self, p: Option<f64>) -> Result<Loss, Usage> {
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
    fn threads(&self) -> usize {
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

/// How many a schedule at `rate` per second has due once `since` has passed,
/// counting the one due at once. The float-to-int cast saturates, and so does
/// the sum: any rate, however absurd, means "as fast as possible".
fn due_at_rate(since: Instant, rate: f64) -> u64 {
    ((since.elapsed().as_secs_f64() * rate) as u64).saturating_add(1)
}

/// Runs the whole stress test.
pub fn run(args: &Args) -> anyhow::Result<Report> {
    args.validate()?;
    let spawned = if args.spawn_server {
        Some(spawn::Spawned::start(args)?)
    } else {
        None
    };
    let result = if args.kernel_target.is_some() || args.netns {
        real::run(args)
    } else if args.kernel {
        let target = spawned
            .as_ref()
            .and_then(|s| s.kernel)
            .unwrap_or(kernel::DEFAULT_TARGET);
        kernel::run(args, target)
    } else {
        run_model(args, spawned.as_ref())
    };
    let mut report = result?;
    if let Some(s) = spawned {
        let server = s.stop()?;
        report.json["server_report"] = server;
    }
    if let Some(path) = &args.json {
        teardown::service::net::write_atomically(path, &serde_json::to_vec_pretty(&report.json)?)?;
    }
    Ok(report)
}

fn metrics_url(args: &Args, spawned: Option<&spawn::Spawned>) -> String {
    match spawned {
        Some(s) => s.metrics_url.clone(),
        None => args.metrics_url.clone(),
    }
}

/// Fetches and parses the server's metrics.
fn scrape(url: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    Ok(parse_text(&http_get(url, Duration::from_secs(2))?)
        .into_iter()
        .collect())
}

/// The server's `POST /release` beside its `/metrics`: it ends `--keep`.
fn release_url(metrics_url: &str) -> Option<String> {
    let rest = metrics_url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    Some(format!("http://{host}/release"))
}

/// Server entries outside CLOSED and TIME-WAIT.
fn server_unsettled(m: &BTreeMap<String, f64>) -> u64 {
    State::ALL
        .iter()
        .filter(|s| !matches!(s, State::Closed | State::TimeWait))
        .map(|s| {
            m.get(&format!("teardown_connections{{state=\"{}\"}}", s.key()))
                .copied()
                .unwrap_or(0.0) as u64
        })
        .sum()
}

/// The server's figures over the run: counters as deltas from the start, gauges as read
/// at the end. `teardown_closed_total{reason="reset"}` becomes `closed.reset`.
fn server_section(start: &BTreeMap<String, f64>, end: &BTreeMap<String, f64>) -> Value {
    let mut out = Map::new();
    for (k, v) in end {
        let name = k.strip_prefix("teardown_").unwrap_or(k);
        let (base, label) = match name.split_once('{') {
            Some((b, l)) => (b, l.split('"').nth(1)),
            None => (name, None),
        };
        let counter = base.ends_with("_total");
        let base = base.strip_suffix("_total").unwrap_or(base);
        let key = match label {
            Some(l) => format!("{base}.{l}"),
            None => base.to_string(),
        };
        let value = if counter {
            v - start.get(k).copied().unwrap_or(0.0)
        } else {
            *v
        };
        out.insert(key, json!(value));
    }
    Value::Object(out)
}

fn latency(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

fn run_model(args: &Args, spawned: Option<&spawn::Spawned>) -> anyhow::Result<Report> {
    let url = metrics_url(args, spawned);
    let target = spawned.map(|s| s.udp).unwrap_or(args.target);
    let start_metrics = scrape(&url).ok();
    let server_workers = match (args.server_threads, spawned, &start_metrics) {
        (Some(n), _, _) => n,
        (None, Some(s), _) => s.workers,
        (None, None, Some(m)) => m
            .get("teardown_workers")
            .map(|v| *v as usize)
            .filter(|n| *n > 0)
            .context("the metrics carry no teardown_workers")?,
        (None, None, None) => {
            anyhow::bail!("cannot read the server's worker count from {url}; pass --server-threads")
        }
    };
    if let Some(scale) = start_metrics
        .as_ref()
        .and_then(|m| m.get("teardown_time_scale"))
    {
        // Timers on the two sides would disagree by the ratio of the scales.
        teardown::cli::ensure(
            (scale - args.time_scale).abs() <= 1e-9 * scale.abs().max(1.0),
            || {
                format!(
                    "--time-scale {} does not match the server's {scale}",
                    args.time_scale
                )
            },
        )?;
    }
    teardown::cli::ensure(target.port() as usize + server_workers <= 65_536, || {
        format!(
            "{server_workers} server workers do not fit above port {}",
            target.port()
        )
    })?;
    let threads = args.threads();
    let clock = Clock::new(args.time_scale);
    let mut kinds = args.attack.clone();
    kinds.sort();
    kinds.dedup();
    let stop = Arc::new(AtomicBool::new(false));
    let mut progress = Vec::new();
    let mut handles = Vec::new();
    let share = |total: u64, i: usize| {
        total / threads as u64 + ((i as u64) < total % threads as u64) as u64
    };
    for i in 0..threads {
        let plan = model::Plan {
            index: i,
            server: target,
            server_workers,
            connections: share(args.connections, i),
            concurrency: (share(args.concurrency as u64, i) as usize).max(1),
            rate: args.rate / threads as f64,
            close: args.close_mode()?,
            hold: args.hold,
            loss_to_server: args.loss(args.loss_to_server)?,
            loss_to_client: args.loss(args.loss_to_client)?,
            runaway: args.runaway_client,
            ips: args.client_ips,
            ports: args.ports,
            seed: args.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            clock,
            attacks: kinds.clone(),
            attack_rate: args.attack_rate / threads as f64,
        };
        let worker = model::Worker::new(plan)?;
        let p = Arc::new(model::Progress::default());
        progress.push(Arc::clone(&p));
        let stop = Arc::clone(&stop);
        handles.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn(move || worker.run(&p, &stop))?,
        );
    }

    let started = Instant::now();
    let bar = progress_bar(args);
    let mut peak_live = 0u64;
    let mut server_end = None;
    let mut server_checked = false;
    let mut timed_out = true;
    let mut released = false;
    let mut seconds = PerSecond::new(started);
    let mut tail = tail::Tail::new(args.connections);
    while started.elapsed() < args.timeout {
        std::thread::sleep(Duration::from_millis(50));
        let opened: u64 = progress.iter().map(|p| p.opened.load(Relaxed)).sum();
        let accounted: u64 = progress.iter().map(|p| p.accounted.load(Relaxed)).sum();
        let completed: u64 = progress.iter().map(|p| p.completed.load(Relaxed)).sum();
        seconds.sample(completed, opened < args.connections);
        peak_live = peak_live.max(opened - accounted.min(opened));
        sample_tail(&mut tail, &progress, opened, accounted, &url);
        if opened >= args.connections && !released {
            // Nothing newer will push what the server keeps into its teardown.
            // A server without `--keep` (or an older one) has nothing to release.
            released = true;
            if let Some(u) = release_url(&url) {
                let _ = http_post(&u, Duration::from_secs(2));
            }
        }
        if let Some(b) = &bar {
            b.set_position(accounted);
            b.set_message(state_line(&progress, opened, accounted, started));
        }
        if progress.iter().all(|p| p.done.load(Relaxed)) {
            // The clients are done; the server must agree before the run ends. The
            // client workers keep running meanwhile, to answer its retransmissions.
            match scrape(&url) {
                Ok(m) => {
                    server_checked = true;
                    let settled = server_unsettled(&m) == 0;
                    server_end = Some(m);
                    if settled {
                        timed_out = false;
                        break;
                    }
                }
                Err(_) => {
                    timed_out = false;
                    break;
                }
            }
        }
    }
    // The loop may have read the counts just before the clients were done.
    let opened: u64 = progress.iter().map(|p| p.opened.load(Relaxed)).sum();
    let accounted: u64 = progress.iter().map(|p| p.accounted.load(Relaxed)).sum();
    sample_tail(&mut tail, &progress, opened, accounted, &url);
    let ended = Instant::now();
    stop.store(true, Relaxed);
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a loadgen worker panicked"))??,
        );
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if server_end.is_none() || timed_out {
        if let Ok(m) = scrape(&url) {
            server_checked = true;
            server_end = Some(m);
        }
    }
    let mut report = model_report(
        args,
        &outcomes,
        &seconds,
        server_workers,
        threads,
        started.elapsed(),
        timed_out,
        peak_live,
        start_metrics.as_ref(),
        server_end.as_ref().filter(|_| server_checked),
    );
    report.json["tail"] = tail.report(ended);
    Ok(report)
}

/// One sample of the clients (and, at a mark, the server) for the report's tail.
fn sample_tail(
    tail: &mut tail::Tail,
    progress: &[Arc<model::Progress>],
    opened: u64,
    accounted: u64,
    url: &str,
) {
    let population = |s: State| -> u64 {
        progress
            .iter()
            .map(|p| p.population[s as usize].load(Relaxed))
            .sum()
    };
    tail.sample(opened, accounted, population, || scrape(url).ok());
}

/// Completions in each whole real second while connections were still being
/// opened, as the kernel reference reports min / median / max per 1 s.
pub struct PerSecond {
    start: Instant,
    next: Duration,
    last: u64,
    rates: Vec<u64>,
}

impl PerSecond {
    pub fn new(start: Instant) -> PerSecond {
        PerSecond {
            start,
            next: Duration::from_secs(1),
            last: 0,
            rates: Vec::new(),
        }
    }

    /// Records `completed` at each second boundary passed, while `loading`.
    pub fn sample(&mut self, completed: u64, loading: bool) {
        if self.start.elapsed() < self.next {
            return;
        }
        self.next += Duration::from_secs(1);
        if loading {
            self.rates.push(completed - self.last.min(completed));
        }
        self.last = completed;
    }

    pub fn summary(&self) -> Value {
        let mut r = self.rates.clone();
        r.sort_unstable();
        json!({
            "seconds": r.len(),
            "min": r.first(),
            "median": r.get(r.len() / 2),
            "max": r.last(),
            "series": self.rates,
        })
    }
}

fn progress_bar(args: &Args) -> Option<ProgressBar> {
    if args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = ProgressBar::new(args.connections);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    b.set_style(style);
    Some(b)
}

fn state_line(
    progress: &[Arc<model::Progress>],
    opened: u64,
    accounted: u64,
    started: Instant,
) -> String {
    let pop = |s: State| -> u64 {
        progress
            .iter()
            .map(|p| p.population[s as usize].load(Relaxed))
            .sum()
    };
    let rate = accounted as f64 / started.elapsed().as_secs_f64().max(1e-3);
    format!(
        "{rate:.0}/s open {opened} | SYN-SENT {} EST {} FW1 {} FW2 {} CW {} LA {} TW {}",
        pop(State::SynSent),
        pop(State::Established),
        pop(State::FinWait1),
        pop(State::FinWait2),
        pop(State::CloseWait),
        pop(State::LastAck),
        pop(State::TimeWait),
    )
}

#[allow(clippy::too_many_arguments)]
fn model_report(
    args: &Args,
    outcomes: &[model::Outcome],
    seconds: &PerSecond,
    server_workers: usize,
    threads: usize,
    elapsed: Duration,
    timed_out: bool,
    peak_live: u64,
    server_start: Option<&BTreeMap<String, f64>>,
    server_end: Option<&BTreeMap<String, f64>>,
) -> Report {
    let mut stats = teardown_engine::Stats::default();
    let mut closed = [0u64; REASONS];
    let mut active = Histogram::<u64>::new(3).expect("static sigfig");
    let mut passive = Histogram::<u64>::new(3).expect("static sigfig");
    let (mut opened, mut accounted, mut runaway) = (0, 0, 0);
    let (mut to_server, mut to_client, mut to_vanished) = (0, 0, 0);
    let (mut malformed, mut send_failures, mut dg_sent, mut dg_recv) = (0, 0, 0, 0);
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut last_open: Option<Instant> = None;
    let mut done_in_load = 0;
    for o in outcomes {
        teardown::service::metrics::add_stats(&mut stats, &o.stats);
        for (sum, n) in closed.iter_mut().zip(&o.closed) {
            *sum += n;
        }
        // Same bounds on both sides; adding cannot fail.
        let _ = active.add(&o.active_us);
        let _ = passive.add(&o.passive_us);
        opened += o.opened;
        accounted += o.accounted;
        runaway += o.runaway;
        to_server += o.dropped_to_server;
        to_client += o.dropped_to_client;
        to_vanished += o.to_vanished;
        malformed += o.malformed;
        send_failures += o.send_failures;
        dg_sent += o.datagrams_sent;
        dg_recv += o.datagrams_received;
        first = match (first, o.first_open) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = last.max(o.last_close);
        last_open = last_open.max(o.last_open);
        done_in_load += o.completed_at_last_open;
    }
    let done = completed(&closed);
    // Each worker from the moment its share of --concurrency was first all open
    // to its last open; the workers ran side by side, so their rates add up.
    let at_concurrency = outcomes
        .iter()
        .map(|o| match (o.full_at, o.last_open) {
            (Some(a), Some(b)) if b > a => Some(
                o.completed_at_last_open.saturating_sub(o.completed_at_full) as f64
                    / (b - a).as_secs_f64(),
            ),
            _ => None,
        })
        .sum::<Option<f64>>();
    let load_window = match (first, last_open) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let per_sec = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let window = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let client_leaked = opened - accounted.min(opened);
    let server_leaked = server_end.map(server_unsettled).unwrap_or(0);
    let leaked = client_leaked + server_leaked;
    let mut reasons = Map::new();
    for (i, name) in teardown_engine::CloseReason::ALL
        .iter()
        .map(|r| r.key())
        .enumerate()
    {
        reasons.insert((*name).into(), json!(closed[i]));
    }
    let attacks = if args.attack.is_empty() {
        Value::Null
    } else {
        let per_worker: Vec<_> = outcomes.iter().map(|o| o.attacks.clone()).collect();
        attack::report(&per_worker)
    };
    let attack_other: u64 = outcomes.iter().map(|o| o.attack_other_replies).sum();
    let empty = BTreeMap::new();
    let server = server_end
        .map(|end| server_section(server_start.unwrap_or(&empty), end))
        .unwrap_or(Value::Null);
    let json = json!({
        "mode": "model",
        "connections": opened,
        "completed": done,
        "accounted": accounted,
        "runaway": runaway,
        "leaked": leaked,
        "leaked_client": client_leaked,
        "leaked_server": server_leaked,
        "server_checked": server_end.is_some(),
        "timed_out": timed_out,
        // A run that opened everything at once has no load window; use the whole run.
        "teardowns_per_sec": if load_window > 0.0 {
            per_sec(done_in_load, load_window)
        } else {
            per_sec(done, window)
        },
        "load_window_secs": load_window,
        "teardowns_per_sec_at_concurrency": at_concurrency,
        "completed_in_load_window": done_in_load,
        "overall_teardowns_per_sec": per_sec(done, window),
        "per_second": seconds.summary(),
        "window_secs": window,
        "cpu_secs": teardown::service::net::cpu_secs(),
        "elapsed_secs": elapsed.as_secs_f64(),
        "peak_live": peak_live,
        "segments": {
            "sent": stats.segments_sent,
            "received": stats.segments_received,
            "dropped": to_server + to_client,
            "dropped_to_server": to_server,
            "dropped_to_client": to_client,
            "to_vanished": to_vanished,
            "send_failures": send_failures,
            "retransmitted": stats.retransmits,
            "rst": stats.rst_sent,
        },
        "datagrams": { "sent": dg_sent, "received": dg_recv, "malformed": malformed },
        "timeouts": {
            "fin_wait_2": stats.timeouts_fin_wait_2,
            "retries_exhausted": stats.timeouts_retries,
            "time_wait": stats.timeouts_time_wait,
        },
        "time_wait_overflow": stats.time_wait_overflow,
        "closed": reasons,
        "latency_ms": { "active_close": latency(&active), "passive_close": latency(&passive) },
        "config": {
            "time_scale": args.time_scale,
            "close": format!("{:?}", args.close).to_lowercase(),
            "loss_to_server": args.loss_to_server.unwrap_or(args.loss),
            "loss_to_client": args.loss_to_client.unwrap_or(args.loss),
            "loss_model": format!("{:?}", args.loss_model).to_lowercase(),
            "loss_only": args.loss_only.to_string(),
            "runaway_client": args.runaway_client,
            "rate": args.rate,
            "concurrency": args.concurrency,
            "threads": threads,
            "server_workers": server_workers,
        },
        "attacks": attacks,
        "attack_other_replies": attack_other,
        "attack_rate": args.attack_rate,
        "server": server,
    });
    Report { json, leaked }
}

/// A one-screen summary of a report.
pub fn summary(r: &Value) -> String {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    if g("/mode") == json!("kernel-target") {
        return format!(
            "{}: {} connections, {} completed ({:.0}/s), {} unfinished; closed by server FIN {}, client FIN {}, client RST {}, server RST {}; errors {}\n\
             connect p50/p99 {} / {} ms, first byte p50/p99 {} / {} ms, close p50/p99 {} / {} ms\n\
             TIME-WAIT peak: server side {}, client side {}, other {}; kernel: TW +{}, RetransSegs +{}, tw_sock_TCP peak {} B{}",
            g("/target").as_str().unwrap_or("?"),
            g("/connections"),
            g("/completed"),
            g("/completed_per_sec").as_f64().unwrap_or(0.0),
            g("/unfinished"),
            g("/closed_by/server_fin"),
            g("/closed_by/client_fin"),
            g("/closed_by/client_rst"),
            g("/closed_by/server_rst"),
            g("/errors"),
            g("/latency_ms/connect/p50"),
            g("/latency_ms/connect/p99"),
            g("/latency_ms/first_byte/p50"),
            g("/latency_ms/first_byte/p99"),
            g("/latency_ms/close/p50"),
            g("/latency_ms/close/p99"),
            g("/time_wait/server_peak"),
            g("/time_wait/client_peak"),
            g("/time_wait/other_peak"),
            g("/kernel/netstat/TW"),
            g("/kernel/snmp/RetransSegs"),
            g("/kernel/tw_slab_bytes_peak"),
            match g("/netns/name") {
                Value::String(ns) => format!(
                    "\nserver namespace {ns}: TW +{}, RetransSegs +{}, loss {}: dropped {} to the server, {} to the client",
                    g("/server_netns/kernel/netstat/TW"),
                    g("/server_netns/kernel/snmp/RetransSegs"),
                    g("/netns/loss"),
                    g("/netns/dropped_to_server"),
                    g("/netns/dropped_to_client"),
                ),
                _ => String::new(),
            },
        ) + &g("/notes")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|n| format!("\nnote: {n}"))
            .collect::<String>();
    }
    if g("/mode") == json!("kernel") {
        return format!(
            "kernel: {} connections, {} closed, {:.0} closes/s; TIME-WAIT peak {} (model predicts {} at this rate), tw_sock_TCP peak {} B (model {} B)",
            g("/connections"),
            g("/completed"),
            g("/teardowns_per_sec").as_f64().unwrap_or(0.0),
            g("/kernel/time_wait_peak"),
            g("/model/time_wait"),
            g("/kernel/tw_slab_bytes_peak"),
            g("/model/time_wait_bytes"),
        );
    }
    model_summary(r)
}

/// The engine run's summary: the rate and which window it is over, how many
/// connections were live for it, and how they ended, leading with a warning
/// when RSTs or skipped TIME-WAIT are more than a trace (a run can look fast
/// and be mostly resets, see `teardown serve`'s summary).
fn model_summary(r: &Value) -> String {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    let f = |p: &str| r.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let connections = f("/connections").max(1.0);
    let rst = f("/closed/reset") + f("/closed/aborted");
    let overflow = f("/server/time_wait_overflow");
    let pct = |n: f64| 100.0 * n / connections;
    let warning = if teardown::service::not_orderly(&[pct(rst), pct(overflow)]) {
        format!("{}: ", teardown::service::NOT_ORDERLY)
    } else {
        String::new()
    };
    let at_concurrency = match r.pointer("/teardowns_per_sec_at_concurrency") {
        Some(Value::Number(n)) => format!(
            ", {:.0}/s once --concurrency were open",
            n.as_f64().unwrap_or(0.0)
        ),
        _ => String::new(),
    };
    let resident = match r.pointer("/server_report/resident/peak_entries") {
        Some(n) => format!(" and {n} entries resident on the server"),
        None => String::new(),
    };
    let line = format!(
        "{warning}{:.0} teardowns/s over the {:.2} s load window, first to last open ({:.0}/s until the last close{at_concurrency}), \
         with {} connections live at peak on the clients{resident}; {:.1} % ended by RST, \
         {:.1} % skipped TIME-WAIT on the server ({overflow} overflows: tcp_max_tw_buckets)\n\
         {} connections: {} completed, {} runaway, {} leaked ({} client, {} server); \
         segments sent {} dropped {} retransmitted {}; active close p50/p99 {} / {} ms, passive close p50/p99 {} / {} ms",
        f("/teardowns_per_sec"),
        f("/load_window_secs"),
        f("/overall_teardowns_per_sec"),
        g("/peak_live"),
        pct(rst),
        pct(overflow),
        g("/connections"),
        g("/completed"),
        g("/runaway"),
        g("/leaked"),
        g("/leaked_client"),
        g("/leaked_server"),
        g("/segments/sent"),
        g("/segments/dropped"),
        g("/segments/retransmitted"),
        g("/latency_ms/active_close/p50"),
        g("/latency_ms/active_close/p99"),
        g("/latency_ms/passive_close/p50"),
        g("/latency_ms/passive_close/p99"),
    );
    match r.get("tail").and_then(tail::summary) {
        Some(t) => format!("{line}\n{t}"),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(parse_ports("1000-2000"), Ok((1000, 2000)));
        assert!(parse_ports("2000-1000").is_err());
        assert!(parse_ports("x").is_err());
    }

    #[test]
    fn a_spawned_server_shares_the_cores_and_keeps_the_concurrency_live() {
        use clap::Parser;
        let args = |extra: &[&str]| {
            let mut v = vec!["loadgen", "--concurrency", "1000"];
            v.extend_from_slice(extra);
            Args::parse_from(v)
        };
        let spawned = args(&["--spawn-server"]);
        let (server, clients) = (spawned.server_threads().unwrap(), spawned.threads());
        assert!(server >= 1 && clients >= 1);
        assert_eq!(server + clients, cores().max(2));
        // Fewer kept than may be open: a new handshake always has room.
        assert_eq!(spawned.server_keep(), Some(900));
        assert_eq!(
            args(&["--spawn-server", "--server-keep", "0"]).server_keep(),
            Some(0)
        );
        let client_closes = args(&["--spawn-server", "--close", "client"]);
        assert_eq!(client_closes.server_keep(), None);
        // Without a spawned server nothing is shared or kept.
        let external = args(&[]);
        assert_eq!(external.server_threads(), None);
        assert_eq!(external.threads(), cores());
        assert_eq!(external.server_keep(), None);
        assert!(args(&["--server-keep", "5"]).validate().is_err());
        let one = Args::parse_from(["loadgen", "--spawn-server", "--concurrency", "1"]);
        assert_eq!(one.server_keep(), Some(0));
    }

    #[test]
    fn release_is_beside_the_metrics() {
        assert_eq!(
            release_url("http://127.0.0.1:9171/metrics").as_deref(),
            Some("http://127.0.0.1:9171/release")
        );
        assert_eq!(release_url("https://x/metrics"), None);
    }

    #[test]
    fn the_summary_leads_with_live_resets_and_overflow() {
        let mut r = json!({
            "connections": 1000, "teardowns_per_sec": 5e5, "load_window_secs": 2.0,
            "overall_teardowns_per_sec": 4e5, "peak_live": 900,
            "closed": {"reset": 5, "aborted": 0},
            "server": {"time_wait_overflow": 0.0},
            "server_report": {"resident": {"peak_entries": 950}},
        });
        let clean = summary(&r);
        assert!(
            clean.starts_with("500000 teardowns/s over the 2.00 s load window, first to last open (400000/s until the last close), with 900 connections live at peak on the clients and 950 entries resident on the server; 0.5 % ended by RST, 0.0 % skipped TIME-WAIT"),
            "{clean}"
        );
        r["teardowns_per_sec_at_concurrency"] = json!(6e5);
        assert!(
            summary(&r)
                .contains("(400000/s until the last close, 600000/s once --concurrency were open)"),
            "{}",
            summary(&r)
        );
        r["closed"]["reset"] = json!(20);
        r["server"]["time_wait_overflow"] = json!(860.0);
        let bad = summary(&r);
        assert!(
            bad.starts_with("WARNING: not an orderly teardown: "),
            "{bad}"
        );
        assert!(
            bad.contains(
                "2.0 % ended by RST, 86.0 % skipped TIME-WAIT on the server (860 overflows"
            ),
            "{bad}"
        );
    }

    #[test]
    fn server_section_takes_deltas_of_counters() {
        let start: BTreeMap<_, _> =
            [("teardown_closed_total{reason=\"reset\"}".to_string(), 2.0)].into();
        let end: BTreeMap<_, _> = [
            ("teardown_closed_total{reason=\"reset\"}".to_string(), 5.0),
            ("teardown_connections{state=\"time_wait\"}".to_string(), 7.0),
        ]
        .into();
        let v = server_section(&start, &end);
        assert_eq!(v["closed.reset"], json!(3.0));
        assert_eq!(v["connections.time_wait"], json!(7.0));
        assert_eq!(server_unsettled(&end), 0);
    }
}
