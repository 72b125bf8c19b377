//! The default mode: the clients played by the engine, one `model::Worker`
//! per thread, watched from here until every connection is settled and the
//! server agrees (see the crate docs for the accounting).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use teardown::service::net::http_post;
use teardown::service::Clock;
use teardown_engine::State;

use crate::report::{model_report, PerSecond};
use crate::server::{metrics_url, release_url, scrape, split_unsettled};
use crate::{model, spawn, tail, Args, Report};

/// Runs the engine-played clients against `--target` (or the spawned server)
/// and reports once they and the server are settled or `--timeout` passes.
pub(crate) fn run(args: &Args, spawned: Option<&spawn::Spawned>) -> anyhow::Result<Report> {
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
            app_timeout: args.app_timeout,
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
        let settled = settled(&progress);
        let completed: u64 = progress.iter().map(|p| p.completed.load(Relaxed)).sum();
        seconds.sample(completed, opened < args.connections);
        peak_live = peak_live.max(opened - accounted.min(opened));
        sample_tail(&mut tail, &progress, opened, settled, &url);
        if opened >= args.connections && !released {
            // Nothing newer will push what the server keeps into its teardown.
            // A server without `--keep` (or an older one) has nothing to release.
            released = true;
            if let Some(u) = release_url(&url) {
                let _ = http_post(&u, Duration::from_secs(2));
            }
        }
        if let Some(b) = &bar {
            b.set_position(settled);
            b.set_message(state_line(&progress, opened, accounted, started));
        }
        // A worker ends only when told to: one that ended by itself failed,
        // and its error or panic comes with the join below, now rather than
        // after the whole --timeout.
        if handles.iter().any(|h| h.is_finished()) {
            timed_out = false;
            break;
        }
        if progress.iter().all(|p| p.done.load(Relaxed)) {
            // The clients are done; the server must agree before the run ends. The
            // client workers keep running meanwhile, to answer its retransmissions.
            // Its half-open entries (`split_unsettled`) will never settle.
            match scrape(&url) {
                Ok(m) => {
                    server_checked = true;
                    let abandoned = progress.iter().map(|p| p.fin_abandoned.load(Relaxed)).sum();
                    let settled = split_unsettled(&m, abandoned).0 == 0;
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
    sample_tail(&mut tail, &progress, opened, settled(&progress), &url);
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

/// Connections accounted for or in TIME-WAIT, over all clients.
fn settled(progress: &[Arc<model::Progress>]) -> u64 {
    progress.iter().map(|p| p.settled.load(Relaxed)).sum()
}

/// One sample of the clients (and, at a mark, the server) for the report's tail.
fn sample_tail(
    tail: &mut tail::Tail,
    progress: &[Arc<model::Progress>],
    opened: u64,
    settled: u64,
    url: &str,
) {
    let population = |s: State| -> u64 {
        progress
            .iter()
            .map(|p| p.population[s as usize].load(Relaxed))
            .sum()
    };
    tail.sample(opened, settled, population, || scrape(url).ok());
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
