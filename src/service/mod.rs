//! `teardown serve`: the engine as a server behind real UDP sockets, on a real clock.
//!
//! One mio event loop per worker thread, each owning one [`Host`](teardown_engine::host::Host) shard and one UDP
//! socket. Worker `i` listens on the listen port + `i`; a client sends every segment
//! of a 4-tuple to the worker [`route`] names, so each tuple lives in exactly one
//! shard and no lock is taken on the datagram path. Replies go back to the UDP
//! address the segment's simulated destination IP was last heard from.
//!
//! A control thread runs a second mio loop: signals, `GET /metrics`, the optional
//! kernel listener (`--kernel-listen`) and a 10 ms sampler of host-wide peaks. It
//! is a separate thread so that a scrape never delays a worker's datagrams and the
//! workers stay identical; it sleeps almost all the time.

mod control;
pub mod metrics;
pub mod net;
pub mod procs;
mod worker;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::cli::{parse_duration, Usage};
use teardown_engine::config::{Config, Profile};
use teardown_engine::state::State;
use teardown_engine::time::Time;
use teardown_engine::tuple::{shard_of, Tuple};

/// The simulated server address every client connects to: 10.0.0.1 port 80.
pub const SERVER_IP: [u8; 4] = [10, 0, 0, 1];
pub const SERVER_PORT: u16 = 80;
/// The shard key clients and server agree on for [`route`]. Fixed and public: the
/// routing only spreads load; the tables use their own secret key.
pub const ROUTE_KEY: u64 = 0x7464_726f_7574_6531;

/// Accept backlog of `--kernel-listen` (capped by `net.core.somaxconn`, 4,096 here).
const KERNEL_BACKLOG: i32 = 65_535;

/// The worker (UDP socket, listen port + index) that owns `tuple`, named as the
/// server sees it (local = server).
#[inline]
pub fn route(server_tuple: &Tuple, workers: usize) -> usize {
    shard_of(server_tuple, workers, ROUTE_KEY)
}

/// Which side closes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum CloseMode {
    /// The server closes right after the handshake (a close-heavy server: TIME-WAIT
    /// lands on the server).
    #[default]
    Server,
    /// The server waits for the client's FIN, then closes.
    Client,
}

/// `teardown serve` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// UDP address of worker 0; worker i listens on the same IP at port + i.
    #[arg(long, default_value = "127.0.0.1:7171")]
    pub listen: SocketAddr,
    /// Worker threads, each with its own socket and host shard (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Engine time = real elapsed time / F; 0.01 makes TIME-WAIT's 60 s pass in 0.6 s.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Which side closes first.
    #[arg(long, value_enum, default_value_t = CloseMode::Server)]
    pub close: CloseMode,
    /// With `--close server`: engine time to hold a connection before closing it
    /// (`--kernel-listen` connections too, for hold × time-scale of real time).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub hold: Duration,
    /// With `--close server`: keep up to N connections ESTABLISHED (over all
    /// workers); each one established past N closes the oldest, as a server
    /// out of connection slots closes its oldest idle ones (nginx's
    /// `ngx_drain_connections`). `POST /release` closes the rest.
    #[arg(long)]
    pub keep: Option<usize>,
    /// HTTP address serving `GET /metrics` (Prometheus text format).
    #[arg(long, default_value = "127.0.0.1:9171")]
    pub metrics: SocketAddr,
    /// Write the final report here (atomically) on SIGINT/SIGTERM.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also accept real kernel TCP connections here and close them first.
    #[arg(long)]
    pub kernel_listen: Option<SocketAddr>,
    /// Permit binding addresses other than loopback.
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Timer and limit profile of the server host.
    #[arg(long, default_value_t = Profile::Linux)]
    pub profile: Profile,
    /// Most TIME-WAIT entries (`tcp_max_tw_buckets`), over all workers.
    #[arg(long)]
    pub max_tw_buckets: Option<usize>,
    /// Run this many server processes, each with its own descriptor table,
    /// sharing the `--kernel-listen` port with SO_REUSEPORT (see [`procs`]).
    #[arg(long, default_value_t = 1)]
    pub processes: usize,
    /// Run as a child of `--processes` in parent PID: SO_REUSEPORT on the
    /// kernel listener, and a stop when the parent dies.
    #[arg(long, hide = true)]
    pub process_of: Option<u32>,
}

impl Default for ServeArgs {
    fn default() -> ServeArgs {
        ServeArgs {
            listen: "127.0.0.1:7171".parse().expect("literal address"),
            threads: None,
            time_scale: 1.0,
            close: CloseMode::Server,
            hold: Duration::ZERO,
            keep: None,
            metrics: "127.0.0.1:9171".parse().expect("literal address"),
            json: None,
            kernel_listen: None,
            allow_non_loopback: false,
            profile: Profile::Linux,
            max_tw_buckets: None,
            processes: 1,
            process_of: None,
        }
    }
}

/// Real time mapped to engine time: `Time` = 1 s + real elapsed / scale. The
/// 1 s offset keeps engine stamps away from zero, which some fields use as "unset".
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    scale: f64,
}

impl Clock {
    const EPOCH_US: u64 = 1_000_000;

    pub fn new(scale: f64) -> Clock {
        Clock {
            start: Instant::now(),
            scale,
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    #[inline]
    pub fn now(&self) -> Time {
        self.at(Instant::now())
    }

    #[inline]
    pub fn at(&self, instant: Instant) -> Time {
        let real = instant.saturating_duration_since(self.start).as_micros() as f64;
        // The cast saturates; so does the sum, long after any run has ended.
        Time::from_micros(Self::EPOCH_US.saturating_add((real / self.scale) as u64))
    }

    /// Real time until engine time `t`, zero if it has passed.
    pub fn real_until(&self, t: Time) -> Duration {
        let engine = t.saturating_sub(self.now());
        engine.mul_f64(self.scale)
    }

    /// Real duration of an engine duration.
    pub fn to_real(&self, engine: Duration) -> Duration {
        engine.mul_f64(self.scale)
    }
}

/// The `--time-scale` range, for the service and loadgen alike: down to
/// 10,000× compression, where one real microsecond (the clock's resolution
/// here) is already ten of the engine's 1 ms ticks, up to 1000× slower.
pub fn check_time_scale(scale: f64) -> Result<(), Usage> {
    crate::cli::ensure((1e-4..=1000.0).contains(&scale), || {
        format!("--time-scale must be in [0.0001, 1000], got {scale}")
    })
}

/// Checks the flags before anything is bound.
pub fn validate(args: &ServeArgs) -> Result<(), Usage> {
    let loopback = |a: &SocketAddr| a.ip().is_loopback();
    let mut addrs = vec![args.listen, args.metrics];
    addrs.extend(args.kernel_listen);
    for a in &addrs {
        crate::cli::ensure(args.allow_non_loopback || loopback(a), || {
            format!("refusing to bind non-loopback address {a} (pass --allow-non-loopback)")
        })?;
    }
    check_time_scale(args.time_scale)?;
    crate::cli::ensure(args.processes >= 1, || {
        "--processes must be at least 1".into()
    })?;
    crate::cli::ensure(
        args.processes == 1 || args.kernel_listen.is_some_and(|a| a.port() != 0),
        || "--processes needs --kernel-listen with a port other than 0 (they share it)".into(),
    )?;
    crate::cli::ensure(args.threads != Some(0), || {
        "--threads must be at least 1".into()
    })?;
    crate::cli::ensure(
        args.keep.is_none() || args.close == CloseMode::Server,
        || "--keep needs --close server (the server closes what it keeps)".into(),
    )?;
    let threads = worker_count(args);
    crate::cli::ensure(args.listen.port() as usize + threads <= 65_536, || {
        format!(
            "{threads} workers do not fit above port {}",
            args.listen.port()
        )
    })?;
    Ok(())
}

fn worker_count(args: &ServeArgs) -> usize {
    args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// The server host configuration of one shard.
fn host_config(args: &ServeArgs, workers: usize) -> Config {
    let mut cfg = Config::profile(args.profile);
    if let Some(n) = args.max_tw_buckets {
        cfg.max_tw_buckets = n;
    }
    // The limit is host-wide; each shard holds its share.
    cfg.max_tw_buckets = cfg.max_tw_buckets.div_ceil(workers);
    cfg
}

/// What a worker hands back when it stops.
#[derive(Clone, Debug, Default)]
struct WorkerFinal {
    stats: teardown_engine::Stats,
    population: [usize; State::COUNT],
    peak: [usize; State::COUNT],
    peak_entries: usize,
    closed: [u64; metrics::REASONS],
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
}

/// A running service (the binary's, or a test's in-process one).
pub struct Server {
    udp: SocketAddr,
    metrics: SocketAddr,
    kernel: Option<SocketAddr>,
    workers: usize,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    control: JoinHandle<anyhow::Result<Value>>,
}

impl Server {
    /// Binds every socket and starts the threads. With `signals` the control loop
    /// also stops on SIGINT/SIGTERM.
    pub fn start(args: &ServeArgs, signals: bool) -> anyhow::Result<Server> {
        validate(args)?;
        let workers = worker_count(args);
        let sockets = net::bind_consecutive(args.listen, workers)?;
        let udp = sockets[0].local_addr()?;
        let metrics_listener = mio::net::TcpListener::bind(args.metrics)
            .with_context(|| format!("binding metrics on {}", args.metrics))?;
        let metrics_addr = metrics_listener.local_addr()?;
        let kernel_listener = match args.kernel_listen {
            Some(a) if args.process_of.is_some() => Some(mio::net::TcpListener::from_std(
                net::bind_reuseport(a, KERNEL_BACKLOG)?,
            )),
            Some(a) => {
                let l = mio::net::TcpListener::bind(a)
                    .with_context(|| format!("binding kernel listener on {a}"))?;
                // As many as somaxconn allows: a full accept queue silently drops
                // handshakes, which would measure the queue, not the teardown.
                net::set_backlog(&l, KERNEL_BACKLOG)?;
                Some(l)
            }
            None => None,
        };
        let kernel = match &kernel_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let clock = Clock::new(args.time_scale);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(metrics::Shared::new(workers, args.time_scale));
        let mut handles = Vec::with_capacity(workers);
        let mut wakers = Vec::with_capacity(workers);
        for (i, socket) in sockets.into_iter().enumerate() {
            let w = worker::Worker::new(
                i,
                workers,
                socket,
                host_config(args, workers),
                args,
                clock,
                Arc::clone(&shared),
                Arc::clone(&stop),
            )?;
            wakers.push(w.waker());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("serve-{i}"))
                    .spawn(move || w.run())?,
            );
        }
        let kernel_hold = match args.close {
            CloseMode::Server => clock.to_real(args.hold),
            CloseMode::Client => Duration::ZERO,
        };
        if kernel_listener.is_some() && !kernel_hold.is_zero() {
            // Held connections keep their descriptors: as many as allowed.
            net::raise_nofile()?;
        }
        let control = control::Control::new(
            metrics_listener,
            kernel_listener,
            kernel_hold,
            signals,
            Arc::clone(&shared),
            Arc::clone(&stop),
            wakers,
        )?;
        let waker = control.waker();
        let json = args.json.clone();
        let control = std::thread::Builder::new()
            .name("serve-control".into())
            .spawn(move || {
                let sampled = control.run()?;
                let mut finals = Vec::with_capacity(handles.len());
                for h in handles {
                    let f = h
                        .join()
                        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
                    finals.push(f);
                }
                let report = final_report(&finals, &sampled, &shared);
                if let Some(path) = &json {
                    net::write_atomically(path, &serde_json::to_vec_pretty(&report)?)?;
                }
                Ok(report)
            })?;
        Ok(Server {
            udp,
            metrics: metrics_addr,
            kernel,
            workers,
            stop,
            waker,
            control,
        })
    }

    /// UDP address of worker 0.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    pub fn kernel_addr(&self) -> Option<SocketAddr> {
        self.kernel
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Stops the threads (as SIGTERM does) and returns the final report.
    pub fn stop(self) -> anyhow::Result<Value> {
        self.stop.store(true, Relaxed);
        self.waker.wake()?;
        self.wait()
    }

    /// Waits until a signal stops the service; returns the final report.
    pub fn wait(self) -> anyhow::Result<Value> {
        self.control
            .join()
            .map_err(|_| anyhow::anyhow!("the control thread panicked"))?
    }

    /// The line the binary prints once it is serving; `loadgen --spawn-server` reads it.
    pub fn ready_line(&self) -> String {
        let kernel = self
            .kernel
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        format!(
            "serving udp={} workers={} metrics={} kernel={}",
            self.udp, self.workers, self.metrics, kernel
        )
    }
}

/// Host-wide peaks the control thread sampled.
#[derive(Clone, Debug, Default)]
struct Sampled {
    peak: [usize; State::COUNT],
    /// Heap bytes of the hosts per entry, at the sample with the most TIME-WAIT entries.
    bytes_per_entry_at_tw_peak: f64,
    kernel_accepted: u64,
    /// The most kernel connections held open at once (`--hold`).
    kernel_held_peak: usize,
}

/// The final report: the simulator's field names where the figure is the same.
fn final_report(finals: &[WorkerFinal], sampled: &Sampled, shared: &metrics::Shared) -> Value {
    let mut stats = teardown_engine::Stats::default();
    let mut population = [0usize; State::COUNT];
    let mut peak = sampled.peak;
    let mut closed = [0u64; metrics::REASONS];
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    for f in finals {
        metrics::add_stats(&mut stats, &f.stats);
        for s in 0..State::COUNT {
            population[s] += f.population[s];
            // A lone worker's own peak is exact; sampled sums may miss a spike.
            peak[s] = peak[s].max(f.peak[s]);
        }
        for (sum, n) in closed.iter_mut().zip(&f.closed) {
            *sum += n;
        }
        first = match (first, f.first_rx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = last.max(f.last_rx);
    }
    let tw = population[State::TimeWait as usize];
    let completed = metrics::completed(&closed) + tw as u64;
    let leaked: usize = State::ALL
        .iter()
        .filter(|s| !matches!(s, State::Closed | State::TimeWait))
        .map(|s| population[*s as usize])
        .sum();
    let window = match (first, last) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if window > 0.0 {
        completed as f64 / window
    } else {
        0.0
    };
    let mut peaks = serde_json::Map::new();
    for s in State::TEARDOWN {
        peaks.insert(s.key().into(), json!(peak[s as usize]));
    }
    let mut reasons = serde_json::Map::new();
    for (r, name) in teardown_engine::CloseReason::ALL
        .iter()
        .map(|c| c.key())
        .enumerate()
    {
        reasons.insert((*name).into(), json!(closed[r]));
    }
    let mut now = serde_json::Map::new();
    for s in State::ALL.iter().skip(1) {
        now.insert(s.key().into(), json!(population[*s as usize]));
    }
    let io = shared.io_totals();
    let peak_entries: usize = finals.iter().map(|f| f.peak_entries).sum();
    let summary = summary_line(
        completed,
        rate,
        peak_entries,
        &closed,
        tw as u64,
        stats.rst_sent,
    );
    json!({
        "summary": summary,
        "resident": {
            "peak_entries": peak_entries,
            "peak_heap_bytes": crate::alloc::peak_bytes(),
        },
        "connections": stats.opened_passive,
        "completed": completed,
        "leaked": leaked,
        "teardowns_per_sec": rate,
        "window_secs": window,
        "cpu_secs": net::cpu_secs(),
        "workers": finals.len(),
        "time_scale": shared.time_scale(),
        "segments": {
            "sent": stats.segments_sent,
            "received": stats.segments_received,
            "dropped": io.segments_dropped,
            "retransmitted": stats.retransmits,
            "rst": stats.rst_sent,
            "rst_received": stats.rst_received,
        },
        "timeouts": {
            "fin_wait_2": stats.timeouts_fin_wait_2,
            "retries_exhausted": stats.timeouts_retries,
            "time_wait": stats.timeouts_time_wait,
        },
        "time_wait_overflow": stats.time_wait_overflow,
        "time_wait_reused": stats.time_wait_reused,
        "closed": reasons,
        "peak": peaks,
        "population": now,
        "memory": {
            "bytes_per_time_wait": sampled.bytes_per_entry_at_tw_peak,
            "peak_heap_bytes": crate::alloc::peak_bytes(),
            "live_heap_bytes": crate::alloc::live_bytes(),
        },
        "datagrams": {
            "received": io.datagrams_received,
            "malformed": io.datagrams_malformed,
            "sent": io.datagrams_sent,
        },
        "kernel": {
            "accepted": sampled.kernel_accepted,
            "held_peak": sampled.kernel_held_peak,
        },
    })
}

/// How a summary line starts when a run is not an orderly teardown.
pub const NOT_ORDERLY: &str = "WARNING: not an orderly teardown";

/// Whether any of these shares of a run's connections (percent: ended by
/// RST, skipped TIME-WAIT, ...) is more than a trace.
pub fn not_orderly(percents: &[f64]) -> bool {
    percents.iter().any(|p| *p >= 1.0)
}

/// The report's first line for people: the rate, the working set it was
/// reached with, and how the connections ended, leading with what went wrong
/// when RSTs or skipped TIME-WAIT are more than a trace (an orphaned FIN-WAIT-2
/// that cannot become a mini-socket past `tcp_max_tw_buckets` is dropped, and
/// the peer's FIN then draws an RST: a run can look fast and be mostly resets).
/// Those RSTs end the peers' connections, not ours, so the RSTs sent are
/// counted beside the share of our connections that ended by one.
fn summary_line(
    completed: u64,
    rate: f64,
    peak_entries: usize,
    closed: &[u64; metrics::REASONS],
    in_time_wait: u64,
    rst_sent: u64,
) -> String {
    use teardown_engine::CloseReason as R;
    let ended = closed.iter().sum::<u64>() + in_time_wait;
    let reset = closed[R::Reset.index()] + closed[R::Aborted.index()];
    let skipped = closed[R::TimeWaitOverflow.index()];
    let pct = |n: u64| 100.0 * n as f64 / ended.max(1) as f64;
    let mut line = format!(
        "{completed} teardowns at {rate:.0}/s with {peak_entries} entries resident at peak; \
         {:.1} % ended by RST, {:.1} % skipped TIME-WAIT, RSTs sent for {:.1} %",
        pct(reset),
        pct(skipped),
        pct(rst_sent),
    );
    if not_orderly(&[pct(reset), pct(skipped), pct(rst_sent)]) {
        let why = if skipped > 0 {
            " (tcp_max_tw_buckets reached: see --max-tw-buckets)"
        } else {
            ""
        };
        line = format!("{NOT_ORDERLY}{why}: {line}");
    }
    line
}

/// `teardown serve`.
pub fn main(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.processes > 1 {
        return procs::main(&args);
    }
    if let Some(parent) = args.process_of {
        procs::follow_parent(parent)?;
    }
    let server = Server::start(&args, true)?;
    println!("{}", server.ready_line());
    let report = server.wait()?;
    if let Some(line) = report["summary"].as_str() {
        // Whoever started us may have stopped reading stdout after the ready
        // line; the summary is also in the JSON report, so a closed pipe is fine.
        let _ = writeln!(std::io::stdout(), "{line}");
    }
    eprintln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_leads_with_resets_and_skipped_time_wait() {
        use teardown_engine::CloseReason as R;
        let mut closed = [0u64; metrics::REASONS];
        closed[R::LastAckAcked.index()] = 990;
        closed[R::Reset.index()] = 10;
        let orderly = summary_line(1000, 5e5, 2000, &closed, 0, 0);
        assert!(
            orderly.starts_with("WARNING: not an orderly teardown: "),
            "{orderly}"
        );
        assert!(orderly.contains("1.0 % ended by RST"), "{orderly}");
        closed[R::Reset.index()] = 0;
        let clean = summary_line(1000, 5e5, 2000, &closed, 1000, 0);
        assert!(
            clean.starts_with("1000 teardowns at 500000/s with 2000 entries"),
            "{clean}"
        );
        assert!(
            clean.contains("0.0 % ended by RST, 0.0 % skipped TIME-WAIT, RSTs sent for 0.0 %"),
            "{clean}"
        );
        // The peers' connections ended by our RSTs (30 of 1990 endings): a warning too.
        let peers_reset = summary_line(1000, 5e5, 2000, &closed, 1000, 30);
        assert!(
            peers_reset.starts_with("WARNING: not an orderly teardown: ")
                && peers_reset.contains("RSTs sent for 1.5 %"),
            "{peers_reset}"
        );
        closed[R::TimeWaitOverflow.index()] = 860;
        closed[R::Reset.index()] = 860;
        let overflow = summary_line(1000, 5e5, 2000, &closed, 0, 0);
        assert!(
            overflow.contains("tcp_max_tw_buckets reached"),
            "{overflow}"
        );
        // 860 of 990 + 860 + 860 endings.
        assert!(overflow.contains("31.7 % ended by RST"), "{overflow}");
    }

    #[test]
    fn clock_compresses_time() {
        let c = Clock::new(0.01);
        let t0 = c.now();
        assert!(t0 >= Time::from_micros(Clock::EPOCH_US));
        assert_eq!(
            c.to_real(Duration::from_secs(60)),
            Duration::from_millis(600)
        );
        assert!(c.real_until(t0 + Duration::from_secs(1)) <= Duration::from_millis(10));
    }

    #[test]
    fn refuses_non_loopback() {
        let args = ServeArgs {
            listen: "0.0.0.0:7171".parse().unwrap(),
            ..ServeArgs::default()
        };
        assert!(validate(&args).is_err());
        let ok = ServeArgs {
            allow_non_loopback: true,
            ..args
        };
        assert!(validate(&ok).is_ok());
        let scale = ServeArgs {
            time_scale: 0.0,
            ..ServeArgs::default()
        };
        assert!(validate(&scale).is_err());
        let keep_but_client_closes = ServeArgs {
            keep: Some(10),
            close: CloseMode::Client,
            ..ServeArgs::default()
        };
        assert!(validate(&keep_but_client_closes).is_err());
    }

    #[test]
    fn route_is_stable_and_spreads() {
        let mut counts = [0; 3];
        for p in 0..3000u16 {
            let t = Tuple::new(SERVER_IP, SERVER_PORT, [10, 1, 0, 1], 32_768 + p);
            let r = route(&t, 3);
            assert_eq!(r, route(&t, 3));
            counts[r] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
