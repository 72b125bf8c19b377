//! `teardown plan`: capacity planning for close-heavy servers.
//!
//! From a close rate, an RTT and a loss rate, predicts the steady-state population
//! of every teardown state by Little's law ([`model`]), what it costs in this
//! engine and in the Linux kernel ([`memory`]), and which limit is hit first:
//! `tcp_max_tw_buckets` or the ephemeral ports of a destination. `--verify` runs
//! the simulator on the same workload and puts the two side by side.

pub mod bounds;
pub mod from;
pub mod from_report;
pub mod handshake;
pub mod memory;
pub mod model;
mod plot;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Map, Value};

use crate::cli::ProfileArgs;
use crate::cli::{ensure, parse_duration, parse_fraction, parse_probability, Usage};
use crate::sim::{self, CloseMode, SimArgs, SimConfig, SimReport};

use memory::Slab;
use model::{Closer, Prediction, Times, Workload, MODELLED};

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
    /// How long the passive closer's application takes to close after the peer's FIN (CLOSE-WAIT).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub app_delay: Duration,
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
        ensure(a.rtt <= Duration::from_secs(60), || {
            "--rtt must be at most 60s".into()
        })?;
        ensure((1..=255).contains(&a.shards), || {
            "--shards must be between 1 and 255".into()
        })?;
        let (lo, hi) = parse_port_range(&a.port_range).map_err(Usage)?;
        let host = a.host.config();
        host.validate().map_err(Usage)?;
        Ok(Plan {
            workload: Workload {
                rate,
                rtt: a.rtt,
                loss,
                runaway,
                close,
                app_delay: a.app_delay,
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

/// The limits a workload runs into.
#[derive(Clone, Debug)]
pub struct Limits {
    pub tw_buckets_overflow: bool,
    /// Per-destination close rate.
    pub rate_per_destination: f64,
    /// Seconds a client holds its port: every client-side state, TIME-WAIT included
    /// when the client closes first.
    pub port_hold: f64,
    pub port_hold_with_reuse: f64,
    pub ports_per_destination_needed: f64,
    pub ports_per_destination_needed_with_reuse: f64,
    pub port_exhaustion: bool,
    pub port_exhaustion_with_reuse: bool,
    /// Highest close rate per destination before its ports run out.
    pub max_rate_per_destination: f64,
    pub max_rate_per_destination_with_reuse: f64,
    /// 4-tuples per destination held in the server's TIME-WAIT (server closes):
    /// reopening them relies on the SYN being newer (RFC 6191).
    pub server_tw_tuples_per_destination: f64,
    /// `tcp_tw_reuse` takes effect: 1, or 2 on loopback (--shared-netns),
    /// with timestamps (`tcp_twsk_unique`).
    pub tw_reuse: bool,
    /// connect() per destination under the host's `tcp_tw_reuse`.
    pub connects: bounds::Connects,
}

/// Everything `teardown plan` computes for one workload.
pub struct Outcome {
    pub prediction: Prediction,
    /// The server's `tcp_max_tw_buckets` under Linux's bounds (the engine does not
    /// model port choice yet): TIME-WAIT bounded by its clients' usable 4-tuples,
    /// orphaned FIN-WAIT-2 in the buckets.
    pub buckets: bounds::Buckets,
    /// Close rate at which Linux's buckets fill (TIME-WAIT within its 4-tuples
    /// plus orphaned FIN-WAIT-2); `None` without a limit.
    pub tw_buckets_overflow_rate: Option<f64>,
    pub limits: Limits,
    pub engine_bytes: f64,
    pub clients_engine_bytes: f64,
    pub linux: Slab,
    pub linux_bytes: f64,
    pub clients_linux_bytes: f64,
}

/// Runs the model for `plan`, pricing Linux with `slab`.
pub fn evaluate(plan: &Plan, slab: &Slab) -> Outcome {
    let w = &plan.workload;
    let pr = model::predict(w);
    let per_dest = w.rate / plan.destinations();
    let client_hold = pr.client_times.total();
    let tw_client = pr.client_times.time_wait;
    let reuse_tw = if w.close == Closer::Client {
        pr.tw_share * plan.tw_reuse_delay.as_secs_f64().min(pr.tw_time)
    } else {
        tw_client
    };
    let hold_reuse = client_hold - tw_client + reuse_tw;
    let ports = plan.ports as f64;
    let tw_reuse =
        w.host.timestamps && (w.host.tw_reuse == 1 || (w.host.tw_reuse == 2 && plan.shared_netns));
    let limits = Limits {
        tw_buckets_overflow: pr.tw_overflow_per_sec > 0.0,
        rate_per_destination: per_dest,
        port_hold: client_hold,
        port_hold_with_reuse: hold_reuse,
        ports_per_destination_needed: per_dest * client_hold,
        ports_per_destination_needed_with_reuse: per_dest * hold_reuse,
        port_exhaustion: per_dest * client_hold > ports,
        port_exhaustion_with_reuse: per_dest * hold_reuse > ports,
        max_rate_per_destination: ports / client_hold,
        max_rate_per_destination_with_reuse: ports / hold_reuse,
        server_tw_tuples_per_destination: if w.close == Closer::Server {
            pr.server.time_wait / plan.destinations()
        } else {
            0.0
        },
        tw_reuse,
        connects: bounds::connects(
            per_dest,
            plan.ports,
            client_hold,
            tw_reuse.then_some(hold_reuse),
        ),
    };
    let buckets = server_buckets(plan, &pr, 1.0);
    let cap = w.host.max_tw_buckets as f64;
    let tw_buckets_overflow_rate =
        bounds::headroom(cap, |g| server_buckets(plan, &pr, g).demand).map(|g| g * w.rate);
    let engine_bytes = memory::engine_bytes(&pr.server, plan.tables, server_restarts(&pr, w.close));
    let clients_engine_bytes =
        memory::engine_bytes(&pr.clients, plan.tables, client_restarts(&pr, w.close));
    Outcome {
        // A lingering close's FIN-WAIT-2 keeps its full socket.
        linux_bytes: slab.bytes(&pr.server)
            + w.rate * server_held(&pr, w.close) * (slab.tcp_sock_bytes - slab.tw_sock_bytes),
        clients_linux_bytes: slab.bytes(&pr.clients),
        linux: slab.clone(),
        prediction: pr,
        buckets,
        tw_buckets_overflow_rate,
        limits,
        engine_bytes,
        clients_engine_bytes,
    }
}

/// The server's buckets: when it closes first, its TIME-WAIT comes from each
/// (client IP, server IP, port) pool's even ports (the clients' ports are free
/// after LAST-ACK, so connect() keeps to the even half, [`bounds::even_ports`]);
/// every FIN-WAIT-2 of the first closer is an orphan and takes a bucket too.
/// `growth` scales the close rate (the 4-tuples stay).
fn server_buckets(plan: &Plan, pr: &Prediction, growth: f64) -> bounds::Buckets {
    let w = &plan.workload;
    let rate = w.rate * growth;
    let tuples = plan.destinations() * bounds::even_ports(plan.ports);
    let pool = bounds::Pool {
        rate: rate * pr.tw_share,
        lifetime: pr.tw_time,
        tuples,
    };
    // With the clients in the same namespace their side counts too (the
    // clients' TIME-WAIT on loopback is reused from the even ports as well:
    // tcp_tw_reuse=2 with timestamps).
    let (server_closes, clients_here) = (w.close == Closer::Server, plan.shared_netns);
    let pools: Vec<bounds::Pool> = if server_closes || clients_here {
        vec![pool]
    } else {
        Vec::new()
    };
    let mut orphans = rate * pr.server_times.fin_wait_2;
    if server_closes {
        orphans -= rate * pr.fin_wait_2_held;
    }
    if clients_here {
        orphans += rate * pr.client_times.fin_wait_2;
    }
    bounds::buckets(&pools, orphans, w.host.max_tw_buckets as f64)
}

fn server_held(pr: &Prediction, close: Closer) -> f64 {
    if close == Closer::Server {
        pr.fin_wait_2_held
    } else {
        0.0
    }
}

fn server_restarts(pr: &Prediction, close: Closer) -> f64 {
    if close == Closer::Server {
        pr.tw_restarts
    } else {
        0.0
    }
}

fn client_restarts(pr: &Prediction, close: Closer) -> f64 {
    if close == Closer::Client {
        pr.tw_restarts
    } else {
        0.0
    }
}

/// The simulator's view of the same workload, averaged over its steady state.
pub struct Simulated {
    pub server: Times,
    pub clients: Times,
    /// Mean measured engine heap (counting allocator) of the server and the clients.
    pub server_bytes: f64,
    pub client_bytes: f64,
    pub window: (f64, f64),
    pub connections: u64,
    pub report: SimReport,
    /// Share of the clients' connect() calls in the window that failed (EADDRNOTAVAIL).
    pub eaddrnotavail_share: f64,
    /// Ports the clients held per destination (every client entry holds one),
    /// averaged over the window.
    pub ports_in_use: f64,
}

/// The longest any entry holds a 4-tuple: TIME-WAIT, a runaway's FIN-WAIT-2
/// (`tcp_fin_timeout`) or, under loss, its FIN-WAIT-1 until the orphan gives up.
fn longest_hold(plan: &Plan) -> f64 {
    let w = &plan.workload;
    let mut longest = w.host.time_wait.as_secs_f64();
    if w.runaway > 0.0 {
        longest = longest.max(w.host.fin_timeout.as_secs_f64());
        if w.loss > 0.0 {
            // Runaways whose ACK was lost hold FIN-WAIT-1 until the orphan gives
            // up: at the first expiry past the budget, up to twice it on a
            // doubling schedule (at most one rto_max step beyond it).
            let budget = w
                .host
                .model_timeout(w.host.orphan_retry_limit(), w.host.rto_min)
                .as_secs_f64();
            longest = longest.max(budget + budget.min(w.host.rto_max.as_secs_f64()));
        }
    }
    longest
}

/// How long to run: past the longest holding time, then two TIME-WAIT lifetimes.
pub fn verify_window(plan: &Plan) -> (f64, f64) {
    let tw = plan.workload.host.time_wait.as_secs_f64();
    let warmup = longest_hold(plan) + 10.0;
    (warmup, warmup + (2.0 * tw).max(20.0))
}

/// The simulator flags for the plan's workload.
pub fn sim_args(
    plan: &Plan,
    shards: u32,
    threads: Option<usize>,
    seed: u64,
    pr: &Prediction,
) -> SimArgs {
    let w = &plan.workload;
    let (_, end) = verify_window(plan);
    let live = pr.client_times.total() * w.rate;
    let h = &w.host;
    let (runaway_client, runaway_server, close) = match w.close {
        Closer::Server => (w.runaway, 0.0, CloseMode::Server),
        Closer::Client => (0.0, w.runaway, CloseMode::Client),
    };
    SimArgs {
        connections: (w.rate * end).ceil() as u64,
        concurrency: (live * 2.0 + 2_000.0).ceil() as u64,
        rate: Some(w.rate),
        close,
        loss: w.loss,
        delay: w.rtt / 2,
        runaway_client,
        runaway_server,
        host: ProfileArgs::of(h),
        // When the clients close first their TIME-WAIT holds their ports: the
        // plan's addresses, so EADDRNOTAVAIL is Linux's. When the server closes,
        // enough addresses that no 4-tuple comes back while the server holds it.
        client_ips: Some(match w.close {
            Closer::Client => plan.clients,
            Closer::Server => walk_clear_ips(plan),
        }),
        port_range: format!("{}-{}", plan.port_range.0, plan.port_range.1),
        tw_reuse_delay: plan.tw_reuse_delay,
        shards,
        threads,
        seed,
        quiet: true,
        ..SimArgs::default()
    }
}

/// Client addresses for a `--verify` run where the server closes first. The
/// model's server populations assume no client reopens a 4-tuple the server
/// still holds (the 4-tuple bound is reported apart, [`bounds::time_wait`]). But
/// Linux's connect() starts each search a random 2-16 ports (`table_perturb`,
/// mean 9: 4.5 even ports) past the last, so its start passes a given even port
/// once every `even ports / 4.5` connects to that destination and takes it with
/// probability 2/9; a new SYN on a 4-tuple in the server's FIN-WAIT-1 or
/// FIN-WAIT-2 draws a challenge ACK, the client answers RST and the entry dies
/// early (at 3,000/s over 16 addresses a runaway's FIN-WAIT-1 averaged 194
/// entries instead of 267). Enough addresses that one pass takes longer than
/// the server's longest hold, with a margin of 1.25.
fn walk_clear_ips(plan: &Plan) -> u32 {
    let even = bounds::even_ports(plan.ports);
    let ips = (plan.workload.rate * longest_hold(plan) * 4.5 * 1.25 / even).ceil();
    ips.clamp(16.0, 65_535.0) as u32
}

/// Runs the simulator on the plan's workload and averages its steady state.
pub fn simulate(
    plan: &Plan,
    shards: u32,
    threads: Option<usize>,
    seed: u64,
    pr: &Prediction,
) -> Result<Simulated, Usage> {
    let args = sim_args(plan, shards, threads, seed, pr);
    let cfg = SimConfig::from_args(&args)?;
    let report = sim::run(&cfg, false);
    let (from, to) = verify_window(plan);
    let pts: Vec<_> = report
        .series
        .iter()
        .filter(|p| p.t >= from && p.t < to)
        .collect();
    let n = pts.len().max(1) as f64;
    let mut server = Times::default();
    let mut clients = Times::default();
    for st in MODELLED {
        let s: u64 = pts.iter().map(|p| p.server[st as usize]).sum();
        let c: u64 = pts.iter().map(|p| p.client[st as usize]).sum();
        server.set(st, s as f64 / n);
        clients.set(st, c as f64 / n);
    }
    let (first, last) = (pts.first(), pts.last());
    let calls =
        |f: fn(&crate::sim::Point) -> u64| last.map_or(0, |p| f(p)) - first.map_or(0, |p| f(p));
    let eaddrnotavail_share =
        calls(|p| p.connects_failed) as f64 / calls(|p| p.connects).max(1) as f64;
    // The simulator's clients each connect to its one server address and port.
    let ports_in_use = clients.total() / f64::from(plan.clients.max(1));
    Ok(Simulated {
        server,
        clients,
        server_bytes: pts.iter().map(|p| p.server_bytes as f64).sum::<f64>() / n,
        client_bytes: pts.iter().map(|p| p.client_bytes as f64).sum::<f64>() / n,
        window: (from, to),
        connections: args.connections,
        eaddrnotavail_share,
        ports_in_use,
        report,
    })
}

/// Relative error of a prediction against the simulation (0.05 = 5 %); none when
/// both are zero or the simulation saw nothing to compare with.
pub fn rel_error(predicted: f64, simulated: f64) -> Option<f64> {
    if simulated.abs() < 1e-9 {
        (predicted.abs() < 1e-9).then_some(0.0)
    } else {
        Some((predicted - simulated) / simulated)
    }
}

fn states_json(t: &Times) -> Map<String, Value> {
    MODELLED
        .iter()
        .map(|s| (s.key().to_string(), json!(t.get(*s))))
        .collect()
}

/// The JSON report.
pub fn to_json(plan: &Plan, o: &Outcome, sim: Option<&Simulated>) -> Value {
    let w = &plan.workload;
    let pr = &o.prediction;
    let l = &o.limits;
    let mut predicted = states_json(&pr.server);
    predicted.insert("memory_bytes".into(), json!(o.engine_bytes));
    predicted.insert("clients".into(), Value::Object(states_json(&pr.clients)));
    predicted.insert("clients_memory_bytes".into(), json!(o.clients_engine_bytes));
    let mut out = json!({
        "version": 1,
        "workload": {
            "close_rate": w.rate,
            "rtt_ms": w.rtt.as_secs_f64() * 1e3,
            "loss": w.loss,
            "runaway": w.runaway,
            "close": match w.close { Closer::Server => "server", Closer::Client => "client" },
            "app_delay_s": w.app_delay.as_secs_f64(),
            "profile": w.host.profile.to_string(),
            "time_wait_s": w.host.time_wait.as_secs_f64(),
            "fin_timeout_s": w.host.fin_timeout.as_secs_f64(),
            "max_tw_buckets": w.host.max_tw_buckets as f64,
            "rto_ms": pr.rto * 1e3,
            "clients": plan.clients,
            "server_ips": plan.server_ips,
            "server_ports": plan.server_ports,
            "port_range": plan.ports,
            "tables": plan.tables,
        },
        "mean_seconds": { "server": states_json(&pr.server_times), "clients": states_json(&pr.client_times) },
        "predicted": predicted,
        "time_wait": {
            "share_of_closes": pr.tw_share,
            "lifetime_s": pr.tw_time,
            "restarts_per_entry": pr.tw_restarts,
            "uncapped": pr.tw_uncapped,
        },
        "linux": {
            "memory_bytes": o.linux_bytes,
            "clients_memory_bytes": o.clients_linux_bytes,
            "tw_sock_bytes": o.linux.tw_sock_bytes,
            "tcp_sock_bytes": o.linux.tcp_sock_bytes,
            "request_sock_bytes": o.linux.request_sock_bytes,
            "source": o.linux.source,
        },
        "limits": {
            "max_tw_buckets": w.host.max_tw_buckets as f64,
            "tw_buckets_overflow": l.tw_buckets_overflow,
            "tw_overflow_per_sec": pr.tw_overflow_per_sec,
            "tw_overflow_above_close_rate": pr.tw_overflow_rate,
            "linux_tw_overflow_above_close_rate": o.tw_buckets_overflow_rate,
            "destinations": plan.destinations(),
            "rate_per_destination": l.rate_per_destination,
            "port_range": plan.ports,
            "port_hold_s": l.port_hold,
            "port_hold_with_reuse_s": l.port_hold_with_reuse,
            "ports_per_destination_needed": l.ports_per_destination_needed,
            "ports_per_destination_needed_with_reuse": l.ports_per_destination_needed_with_reuse,
            "port_exhaustion": l.port_exhaustion,
            "port_exhaustion_with_reuse": l.port_exhaustion_with_reuse,
            "max_rate_per_destination": l.max_rate_per_destination,
            "max_rate_per_destination_with_reuse": l.max_rate_per_destination_with_reuse,
            "server_time_wait_tuples_per_destination": l.server_tw_tuples_per_destination,
            "tw_reuse": l.tw_reuse,
            "ports_in_use_per_destination": l.connects.in_use,
            "eaddrnotavail_per_sec_per_destination": l.connects.eaddrnotavail_per_sec,
        },
        "linux_tw_buckets": serde_json::to_value(&o.buckets).unwrap_or(Value::Null),
        "lingering_close": w.lingering.map(|l| json!({
            "lingering_timeout_s": l.as_secs_f64(),
            "fin_wait_2_held": w.rate * pr.fin_wait_2_held,
        })),
    });
    if let (Some(s), Some(obj)) = (sim, out.as_object_mut()) {
        let mut simulated = states_json(&s.server);
        simulated.insert("memory_bytes".into(), json!(s.server_bytes));
        simulated.insert("clients".into(), Value::Object(states_json(&s.clients)));
        simulated.insert("clients_memory_bytes".into(), json!(s.client_bytes));
        simulated.insert("window_s".into(), json!([s.window.0, s.window.1]));
        simulated.insert("connections".into(), json!(s.connections));
        simulated.insert(
            "connect".into(),
            json!({
                "eaddrnotavail_share": s.eaddrnotavail_share,
                "ports_in_use_per_destination": s.ports_in_use,
            }),
        );
        let mut error: Map<String, Value> = MODELLED
            .iter()
            .map(|st| {
                (
                    st.key().to_string(),
                    json!(rel_error(pr.server.get(*st), s.server.get(*st))),
                )
            })
            .collect();
        error.insert(
            "memory_bytes".into(),
            json!(rel_error(o.engine_bytes, s.server_bytes)),
        );
        let clients: Map<String, Value> = MODELLED
            .iter()
            .map(|st| {
                (
                    st.key().to_string(),
                    json!(rel_error(pr.clients.get(*st), s.clients.get(*st))),
                )
            })
            .collect();
        error.insert("clients".into(), Value::Object(clients));
        error.insert(
            "clients_memory_bytes".into(),
            json!(rel_error(o.clients_engine_bytes, s.client_bytes)),
        );
        obj.insert("simulated".into(), Value::Object(simulated));
        obj.insert("error".into(), Value::Object(error));
    }
    out
}

fn count(v: f64) -> String {
    sim::plot::thousands(v)
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{x:.0} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

fn pct(e: Option<f64>) -> String {
    e.map_or("-".into(), |e| format!("{:+.1}%", e * 100.0))
}

/// The report for people.
pub fn human(plan: &Plan, o: &Outcome, sim: Option<&Simulated>) -> String {
    let w = &plan.workload;
    let pr = &o.prediction;
    let l = &o.limits;
    let mut s = String::new();
    let o_ = &mut s;
    let closer = match w.close {
        Closer::Server => "server",
        Closer::Client => "clients",
    };
    let _ = writeln!(
        o_,
        "teardown plan: {} closes/s, RTT {:.1} ms (RTO {:.0} ms), loss {:.2}%, runaway {:.1}%, {closer} close first, profile {}",
        count(w.rate),
        w.rtt.as_secs_f64() * 1e3,
        pr.rto * 1e3,
        w.loss * 100.0,
        w.runaway * 100.0,
        w.host.profile
    );
    let _ = writeln!(
        o_,
        "  TIME-WAIT {:.1} s (share of closes {:.2}%, {:.4} restarts each), FIN-WAIT-2 timeout {:.0} s, max_tw_buckets {}",
        pr.tw_time,
        pr.tw_share * 100.0,
        pr.tw_restarts,
        w.host.fin_timeout.as_secs_f64(),
        buckets(w.host.max_tw_buckets)
    );
    let _ = writeln!(o_, "\nsteady-state population (rate x mean time in state)");
    match sim {
        None => {
            let _ = writeln!(
                o_,
                "  {:<13} {:>10} {:>12} | {:>10} {:>12}",
                "state", "server", "mean time", "clients", "mean time"
            );
            for st in MODELLED {
                let _ = writeln!(
                    o_,
                    "  {:<13} {:>10} {:>10.3} s | {:>10} {:>10.3} s",
                    st.to_string(),
                    count(pr.server.get(st)),
                    pr.server_times.get(st),
                    count(pr.clients.get(st)),
                    pr.client_times.get(st)
                );
            }
        }
        Some(sm) => {
            let _ = writeln!(
                o_,
                "  {:<13} {:>10} {:>10} {:>8} | {:>10} {:>10} {:>8}",
                "state", "server", "simulated", "error", "clients", "simulated", "error"
            );
            for st in MODELLED {
                let _ = writeln!(
                    o_,
                    "  {:<13} {:>10} {:>10} {:>8} | {:>10} {:>10} {:>8}",
                    st.to_string(),
                    count(pr.server.get(st)),
                    count(sm.server.get(st)),
                    pct(rel_error(pr.server.get(st), sm.server.get(st))),
                    count(pr.clients.get(st)),
                    count(sm.clients.get(st)),
                    pct(rel_error(pr.clients.get(st), sm.clients.get(st)))
                );
            }
        }
    }
    let _ = writeln!(o_, "\nmemory of those populations");
    let _ = writeln!(
        o_,
        "  this engine   server {:>10}   clients {:>10}   ({} table shard(s), timer wheel included)",
        bytes(o.engine_bytes),
        bytes(o.clients_engine_bytes),
        plan.tables
    );
    if let Some(sm) = sim {
        let _ = writeln!(
            o_,
            "  simulated     server {:>10} ({})   clients {:>10} ({})   (counting allocator, includes the wheel)",
            bytes(sm.server_bytes),
            pct(rel_error(o.engine_bytes, sm.server_bytes)),
            bytes(sm.client_bytes),
            pct(rel_error(o.clients_engine_bytes, sm.client_bytes))
        );
    }
    let _ = writeln!(
        o_,
        "  Linux kernel  server {:>10}   clients {:>10}   (tw_sock_TCP {} B, TCP {} B, request_sock_TCP {} B from {})",
        bytes(o.linux_bytes),
        bytes(o.clients_linux_bytes),
        o.linux.tw_sock_bytes,
        o.linux.tcp_sock_bytes,
        o.linux.request_sock_bytes,
        o.linux.source
    );
    let _ = writeln!(o_, "\nlimits");
    let b = &o.buckets;
    if w.close == Closer::Server || plan.shared_netns {
        // One answer, Linux's: the table's engine figure is explained below.
        let above = match o.tw_buckets_overflow_rate {
            Some(r) if r >= 1e4 => format!("overflows above {} closes/s", count(r)),
            Some(r) => format!("overflows above {r:.1} closes/s"),
            None => "never overflows".to_string(),
        };
        if w.host.max_tw_buckets == usize::MAX {
            let _ = writeln!(
                o_,
                "  tcp_max_tw_buckets: no limit in this profile ({} TIME-WAIT entries)",
                count(b.time_wait)
            );
        } else if b.binds == bounds::Bound::Buckets {
            let _ = writeln!(
                o_,
                "  tcp_max_tw_buckets OVERFLOWS: full at {} (would hold {} TIME-WAIT + {} orphaned FIN-WAIT-2); {}/s closes skip TIME-WAIT ({above})",
                buckets(w.host.max_tw_buckets),
                count(b.time_wait),
                count(b.orphan_fin_wait_2),
                count(b.overflow_per_sec),
            );
        } else {
            let _ = writeln!(
                o_,
                "  tcp_max_tw_buckets ok: {} of {} ({} TIME-WAIT, bound by {}, + {} orphaned FIN-WAIT-2; {above})",
                count(b.population),
                buckets(w.host.max_tw_buckets),
                count(b.time_wait),
                b.binds.describe(),
                count(b.orphan_fin_wait_2),
            );
        }
    } else {
        let _ = writeln!(
            o_,
            "  tcp_max_tw_buckets: the server holds no TIME-WAIT (the clients close first)"
        );
    }
    let _ = writeln!(
        o_,
        "  ephemeral ports: {} destination(s) ({} client IP x {} server IP x {} port), {:.2} closes/s each",
        count(plan.destinations()),
        plan.clients,
        plan.server_ips,
        plan.server_ports,
        l.rate_per_destination
    );
    let verdict = |x: bool| if x { "EXHAUSTED" } else { "ok" };
    let _ = writeln!(
        o_,
        "    ports needed per destination {:>10} of {} ({:.2} s held each)   {}   max {:.1} closes/s per destination",
        count(l.ports_per_destination_needed),
        count(plan.ports as f64),
        l.port_hold,
        verdict(l.port_exhaustion),
        l.max_rate_per_destination
    );
    let _ = writeln!(
        o_,
        "    with tcp_tw_reuse            {:>10} of {} ({:.2} s held each)   {}   max {:.1} closes/s per destination",
        count(l.ports_per_destination_needed_with_reuse),
        count(plan.ports as f64),
        l.port_hold_with_reuse,
        verdict(l.port_exhaustion_with_reuse),
        l.max_rate_per_destination_with_reuse
    );
    let c = &l.connects;
    let failed = if l.rate_per_destination > 0.0 {
        c.eaddrnotavail_per_sec / l.rate_per_destination
    } else {
        0.0
    };
    let _ = writeln!(
        o_,
        "    connect() at tcp_tw_reuse={} ({}): {} ports in use per destination, {:.1} EADDRNOTAVAIL/s ({:.1}% of connects)",
        w.host.tw_reuse,
        if l.tw_reuse { "in force" } else { "not in force" },
        count(c.in_use),
        c.eaddrnotavail_per_sec,
        failed * 100.0
    );
    if let Some(sm) = sim {
        let _ = writeln!(
            o_,
            "      simulated                  {} ports in use ({}), {:.1}% EADDRNOTAVAIL ({})",
            count(sm.ports_in_use),
            pct(rel_error(c.in_use, sm.ports_in_use)),
            sm.eaddrnotavail_share * 100.0,
            pct(rel_error(failed, sm.eaddrnotavail_share))
        );
    }
    if w.close == Closer::Client {
        let _ = writeln!(
            o_,
            "    (tcp_tw_reuse needs tcp_timestamps at both ends, tcp_twsk_unique; the default tcp_tw_reuse=2 is loopback only; bind() before connect() without IP_BIND_ADDRESS_NO_PORT shares one range across all server IPs and ports of a client IP)"
        );
    }
    if w.close == Closer::Server || plan.shared_netns {
        let whose = if plan.shared_netns {
            "the namespace's (both ends share tcp_max_tw_buckets)"
        } else {
            "the server's"
        };
        let _ = writeln!(
            o_,
            "  Linux bounds {whose} TIME-WAIT by the smallest of rate x {:.0} s ({}), the clients' usable 4-tuples ({}: {} destination(s) x {} even ports, connect() takes even ports first) and tcp_max_tw_buckets ({}, less {} orphaned FIN-WAIT-2): {}, bound by {}",
            pr.tw_time,
            count(b.time_wait_by_rate),
            count(plan.destinations() * bounds::even_ports(plan.ports)),
            count(plan.destinations()),
            count(bounds::even_ports(plan.ports)),
            buckets(w.host.max_tw_buckets),
            count(b.orphan_fin_wait_2),
            count(b.population - b.orphan_fin_wait_2.min(b.population)),
            b.binds.describe()
        );
        if let Some(l) = w.lingering {
            let held = w.rate * pr.fin_wait_2_held;
            let _ = writeln!(
                o_,
                "    lingering close ({:.1} s): {} FIN-WAIT-2 hold their descriptor (full sockets, no bucket, no timeout), {} are orphans in the buckets",
                l.as_secs_f64(),
                count(held),
                count(b.orphan_fin_wait_2)
            );
        }
        if b.binds == bounds::Bound::Tuples {
            let table = match w.close {
                Closer::Server => pr.server.time_wait,
                Closer::Client => pr.clients.time_wait,
            };
            let _ = writeln!(
                o_,
                "    (a newer SYN reopens a 4-tuple still in TIME-WAIT, RFC 6191, and the old entry goes with no counter; the table above assumes no 4-tuple comes back while its entry lasts, so it says {})",
                count(table)
            );
        }
        if w.close == Closer::Server && sim.is_some() {
            let _ = writeln!(
                o_,
                "    (the simulated clients choose ports as Linux's connect() does; --verify gives them {} addresses, enough that none comes back to a 4-tuple the server still holds, as the table assumes)",
                count(f64::from(walk_clear_ips(plan)))
            );
        }
        if let (bounds::Bound::Buckets, Some(t)) = (b.binds, &b.transient) {
            let _ = writeln!(
                o_,
                "    overflow {:.1}% of closes ({}/s: 1 - buckets / min(rate x 60 s, 4-tuples)); from empty the buckets fill in {:.1} s and {:.1}% skip until the first expiry at {:.0} s",
                b.skipped_fraction * 100.0,
                count(b.overflow_per_sec),
                t.fill_s,
                t.skipped_fraction * 100.0,
                t.until_s
            );
        }
    }
    if let Some(sm) = sim {
        let _ = writeln!(
            o_,
            "\nsimulated {} connections at {} opens/s; averaged over t = {:.0}..{:.0} s ({:.2} s wall)",
            count(sm.connections as f64),
            count(w.rate),
            sm.window.0,
            sm.window.1,
            sm.report.wall_seconds
        );
    }
    s
}

/// `teardown plan`.
pub fn main(args: PlanArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.from {
        return main_from(&args, path);
    }
    let plan = Plan::from_args(&args)?;
    let slab = Slab::read();
    let outcome = evaluate(&plan, &slab);
    let simulated = if args.verify {
        Some(simulate(
            &plan,
            args.shards,
            args.threads,
            args.seed,
            &outcome.prediction,
        )?)
    } else {
        None
    };
    // With --verify the simulator's shards are the engine's table shards.
    let (plan, outcome) = if args.verify {
        let mut p = plan.clone();
        p.tables = args.shards;
        let o = evaluate(&p, &slab);
        (p, o)
    } else {
        (plan, outcome)
    };
    write_out(
        args.json.as_deref(),
        &human(&plan, &outcome, simulated.as_ref()),
        &to_json(&plan, &outcome, simulated.as_ref()),
    )?;
    if let Some(dir) = &args.plot {
        plot::plot(&plan, &slab, dir)
            .with_context(|| format!("writing plots to {}", dir.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `teardown plan --from`.
fn main_from(args: &PlanArgs, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    ensure(args.growth.is_finite() && args.growth > 0.0, || {
        format!("--growth must be above zero, got {}", args.growth)
    })?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (human, json) = from_report::run(&text, args.rtt, args.growth).with_context(|| {
        format!(
            "{} is not a `teardown observe --json` report",
            path.display()
        )
    })?;
    write_out(args.json.as_deref(), &human, &json)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the text report unless JSON goes to stdout, and writes the JSON.
fn write_out(json_to: Option<&str>, human: &str, json: &Value) -> anyhow::Result<()> {
    if json_to != Some("-") {
        print!("{human}");
    }
    if let Some(path) = json_to {
        crate::cli::write_json(path, json)?;
    }
    Ok(())
}

/// A `tcp_max_tw_buckets` value for people: `usize::MAX` means no limit.
fn buckets(n: usize) -> String {
    if n == usize::MAX {
        "unlimited".into()
    } else {
        count(n as f64)
    }
}
