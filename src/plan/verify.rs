//! `teardown plan --verify`: the simulator run on the plan's workload, averaged
//! over its steady state, to set beside the model's prediction.

use crate::cli::{ProfileArgs, Usage};
use crate::sim::{self, CloseMode, SimArgs, SimConfig, SimReport};

use super::model::{Closer, Prediction, Times, MODELLED};
use super::Plan;
use super::{bounds, handshake};

/// The simulator's view of the same workload, averaged over its steady state.
pub struct Simulated {
    pub server: Times,
    pub clients: Times,
    /// Mean measured engine heap (counting allocator) of the server and the clients.
    pub server_bytes: f64,
    pub client_bytes: f64,
    pub window: (f64, f64),
    pub connections: u64,
    /// The simulator's connects per second: the plan's closes and the
    /// handshakes that fail on top of them.
    pub opens_per_sec: f64,
    pub report: SimReport,
    /// Share of the clients' connect() calls in the window that failed (EADDRNOTAVAIL).
    pub eaddrnotavail_share: f64,
    /// Ports the clients held per destination (every client entry holds one),
    /// averaged over the window.
    pub ports_in_use: f64,
}

/// The longest any entry holds a 4-tuple: TIME-WAIT, a runaway's FIN-WAIT-2
/// (`tcp_fin_time()`, in two parts past 60 s on Linux) or, under loss, its FIN-WAIT-1 until the orphan gives
/// up; with `--app-delay`, the passive end's CLOSE-WAIT followed by TIME-WAIT
/// at the active end (or, if its orphan timed out first, nothing).
fn longest_hold(plan: &Plan) -> f64 {
    let w = &plan.workload;
    let mut longest = w.host.time_wait.as_secs_f64() + w.app_delay.as_secs_f64();
    if w.runaway > 0.0 {
        // The FIN-WAIT-2's two parts on Linux past 60 s, at the initial RTO's 3.5.
        let fin_wait_2 =
            super::model::fin_wait2_lifetime(&w.host, w.host.rto_initial.as_secs_f64());
        longest = longest.max(fin_wait_2);
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

/// How long a failed handshake's client may hold its 4-tuple: ESTABLISHED
/// until its application's timeout, swept at most a quarter of it late,
/// then FIN-WAIT-1 until its request's next expiry, at most rto_max on.
/// Counted only where the failures could move the clients' ESTABLISHED by
/// a thousandth: heavy loss, few SYN-ACK retries. A handshake that
/// completes is over long before.
fn failed_hold(plan: &Plan, pr: &Prediction) -> f64 {
    let w = &plan.workload;
    let hold =
        handshake::app_close_latest(w.app_timeout.as_secs_f64()) + w.host.rto_max.as_secs_f64();
    let seconds = pr.handshakes_failed * hold;
    if seconds > 1e-3 * pr.client_times.established {
        hold
    } else {
        0.0
    }
}

/// How long to run: past the longest holding time, then two TIME-WAIT lifetimes.
pub fn verify_window(plan: &Plan, pr: &Prediction) -> (f64, f64) {
    let tw = plan.workload.host.time_wait.as_secs_f64();
    let warmup = longest_hold(plan).max(failed_hold(plan, pr)) + 10.0;
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
    let (_, end) = verify_window(plan, pr);
    let live = pr.client_times.total() * w.rate;
    // The plan's rate is of closes; the simulator's of connects, some of
    // which fail in the handshake.
    let opens = w.rate * (1.0 + pr.handshakes_failed);
    let h = &w.host;
    let (runaway_client, runaway_server, close) = match w.close {
        Closer::Server => (w.runaway, 0.0, CloseMode::Server),
        Closer::Client => (0.0, w.runaway, CloseMode::Client),
    };
    SimArgs {
        connections: (opens * end).ceil() as u64,
        concurrency: (live * 2.0 + 2_000.0).ceil() as u64,
        rate: Some(opens),
        close,
        loss: w.loss,
        delay: w.rtt / 2,
        close_delay: w.app_delay,
        app_timeout: w.app_timeout,
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
pub(super) fn walk_clear_ips(plan: &Plan) -> u32 {
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
    let (from, to) = verify_window(plan, pr);
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
        opens_per_sec: args.rate.unwrap_or(plan.workload.rate),
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
