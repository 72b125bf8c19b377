//! Running a configured simulation on threads: each thread holds its shards
//! at once ([`super::resident`]) or takes them one after another from a
//! crossbeam queue (`--sequential-shards`); the results are merged by shard
//! index, so the report does not depend on `--threads`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::reuse::Reuse;
use super::{resident, shard, ShardResult, SimConfig, SimReport};

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
                        let new = |k| shard::Shard::new(cfg, k, scope_base, done, Reuse::none());
                        let shards = mine.map(new);
                        let mut shards: Vec<_> = shards.collect();
                        resident::look_ahead_if_big(&mut shards);
                        resident::run(shards, &tx)
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
/// another, each in the buffers the last one handed on ([`Reuse`]); returns
/// the most entries the thread held at once (one shard's peak).
fn one_at_a_time(
    cfg: &SimConfig,
    scope_base: u16,
    done: &AtomicU64,
    work: &crossbeam::channel::Receiver<u32>,
    results: &crossbeam::channel::Sender<(u32, ShardResult)>,
) -> u64 {
    let mut peak = 0;
    let mut reuse = Reuse::sequential();
    while let Ok(k) = work.recv() {
        let r;
        (r, reuse) = shard::Shard::new(cfg, k, scope_base, done, reuse).run();
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
