//! The engine run's report: the workers' outcomes summed into one JSON
//! document, with the rates over the windows the summary names.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};
use teardown::service::metrics::{completed, REASONS};

use crate::server::{server_section, split_unsettled};
use crate::{attack, model, Args};

/// The outcome: the JSON report and whether anything leaked.
pub struct Report {
    pub json: Value,
    pub leaked: u64,
}

pub(crate) fn latency(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
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

#[allow(clippy::too_many_arguments)]
pub(crate) fn model_report(
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
    let (mut opened, mut accounted, mut runaway, mut app_timeouts) = (0, 0, 0, 0);
    let mut fin_abandoned = 0;
    let mut time_wait = 0;
    let (mut to_server, mut to_client, mut to_vanished) = (0, 0, 0);
    let (mut malformed, mut send_failures, mut dg_sent, mut dg_recv) = (0, 0, 0, 0);
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut last_open: Option<Instant> = None;
    let mut done_in_load = 0;
    let mut tuple_wait = Duration::ZERO;
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
        time_wait += o.time_wait_at_end;
        runaway += o.runaway;
        app_timeouts += o.app_timeouts;
        fin_abandoned += o.fin_abandoned;
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
        // The workers waited side by side: the longest wait, not their sum.
        tuple_wait = tuple_wait.max(o.tuple_wait);
    }
    // Those in TIME-WAIT at the end have completed their teardown too.
    let done = completed(&closed) + time_wait;
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
    // A client in TIME-WAIT has finished its teardown: settled, as the server's are.
    let client_leaked = opened - (accounted + time_wait).min(opened);
    let (server_leaked, server_half_open) = server_end
        .map(|m| split_unsettled(m, fin_abandoned))
        .unwrap_or((0, 0));
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
    let config = json!({
        "time_scale": args.time_scale,
        "close": format!("{:?}", args.close).to_lowercase(),
        "loss_to_server": args.loss_to_server.unwrap_or(args.loss),
        "loss_to_client": args.loss_to_client.unwrap_or(args.loss),
        "loss_model": format!("{:?}", args.loss_model).to_lowercase(),
        "loss_only": args.loss_only.to_string(),
        "runaway_client": args.runaway_client,
        "app_timeout_secs": args.app_timeout.map(|d| d.as_secs_f64()),
        "rate": args.rate,
        "concurrency": args.concurrency,
        "threads": threads,
        "server_workers": server_workers,
    });
    let json = json!({
        "mode": "model",
        "connections": opened,
        // Short of --connections only when --timeout came first.
        "unopened": args.connections.saturating_sub(opened),
        "completed": done,
        "accounted": accounted,
        "runaway": runaway,
        "app_timeouts": app_timeouts,
        "leaked": leaked,
        "leaked_client": client_leaked,
        "leaked_server": server_leaked,
        "server_half_open": server_half_open,
        "client_time_wait_at_end": time_wait,
        "tuple_wait_secs": tuple_wait.as_secs_f64(),
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
        // loadgen's own heap; null when its allocator is not the counting one
        // (the library run from a test).
        "peak_heap_bytes": teardown::alloc::installed().then(teardown::alloc::peak_bytes),
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
        "orphan_overflow": stats.abort_on_memory,
        "closed": reasons,
        "latency_ms": { "active_close": latency(&active), "passive_close": latency(&passive) },
        "config": config,
        "attacks": attacks,
        "attack_other_replies": attack_other,
        "attack_rate": args.attack_rate,
        "server": server,
    });
    Report { json, leaked }
}
