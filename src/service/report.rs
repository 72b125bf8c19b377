//! The final report a stopped service prints, and its first line for people.

use std::time::Instant;

use serde_json::{json, Value};

use super::{metrics, net};
use teardown_engine::state::State;

/// What a worker hands back when it stops.
#[derive(Clone, Debug, Default)]
pub(super) struct WorkerFinal {
    pub(super) stats: teardown_engine::Stats,
    pub(super) population: [usize; State::COUNT],
    pub(super) peak: [usize; State::COUNT],
    pub(super) peak_entries: usize,
    /// The worker thread's own CPU seconds, its I/O's included.
    pub(super) cpu_secs: f64,
    pub(super) closed: [u64; metrics::REASONS],
    pub(super) first_rx: Option<Instant>,
    pub(super) last_rx: Option<Instant>,
}

/// Host-wide peaks the control thread sampled.
#[derive(Clone, Debug, Default)]
pub(super) struct Sampled {
    pub(super) peak: [usize; State::COUNT],
    /// Heap bytes of the hosts per entry (of any state), at the sample with
    /// the most TIME-WAIT entries: a TIME-WAIT entry's all-in cost as far as
    /// the entries were TIME-WAIT then, which the next two say (as the
    /// simulator's `memory` does).
    pub(super) bytes_per_entry_at_tw_peak: f64,
    pub(super) entries_at_tw_peak: u64,
    pub(super) tw_at_peak: u64,
    pub(super) kernel_accepted: u64,
    /// The most kernel connections held open at once (`--hold`).
    pub(super) kernel_held_peak: usize,
}

/// The final report: the simulator's field names where the figure is the same.
pub(super) fn final_report(
    finals: &[WorkerFinal],
    sampled: &Sampled,
    shared: &metrics::Shared,
) -> Value {
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
    let workers_cpu: f64 = finals.iter().map(|f| f.cpu_secs).sum();
    let per_cpu = per_cpu_sec(completed, workers_cpu);
    let summary = summary_line(
        completed,
        rate,
        peak_entries,
        per_cpu,
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
        "workers_cpu_secs": workers_cpu,
        "teardowns_per_worker_cpu_sec": per_cpu,
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
        "orphan_overflow": stats.abort_on_memory,
        "time_wait_reused": stats.time_wait_reused,
        "closed": reasons,
        "peak": peaks,
        "population": now,
        "memory": {
            "bytes_per_time_wait": sampled.bytes_per_entry_at_tw_peak,
            "time_wait_entries": sampled.tw_at_peak,
            "time_wait_share": sampled.tw_at_peak as f64 / sampled.entries_at_tw_peak.max(1) as f64,
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

/// Teardowns per CPU second of the workers: what one core with a table of
/// the resident size does, its socket I/O included, however much of the
/// wall clock the workers spent waiting for the clients. None before the
/// workers used any measurable CPU.
pub(super) fn per_cpu_sec(completed: u64, workers_cpu: f64) -> Option<f64> {
    (workers_cpu > 0.0).then(|| completed as f64 / workers_cpu)
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
    per_cpu: Option<f64>,
    closed: &[u64; metrics::REASONS],
    in_time_wait: u64,
    rst_sent: u64,
) -> String {
    use teardown_engine::CloseReason as R;
    let ended = closed.iter().sum::<u64>() + in_time_wait;
    let orphans_reset = closed[R::TooManyOrphans.index()];
    let reset = closed[R::Reset.index()] + closed[R::Aborted.index()] + orphans_reset;
    let skipped = closed[R::TimeWaitOverflow.index()];
    let pct = |n: u64| 100.0 * n as f64 / ended.max(1) as f64;
    let per_cpu = per_cpu.map_or(String::new(), |n| {
        format!(", {n:.0} per CPU second of the workers")
    });
    let mut line = format!(
        "{completed} teardowns at {rate:.0}/s with {peak_entries} entries resident at peak{per_cpu}; \
         {:.1} % ended by RST, {:.1} % skipped TIME-WAIT, RSTs sent for {:.1} %",
        pct(reset),
        pct(skipped),
        pct(rst_sent),
    );
    if not_orderly(&[pct(reset), pct(skipped), pct(rst_sent)]) {
        let why = match (skipped > 0, orphans_reset > 0) {
            (true, false) => " (tcp_max_tw_buckets reached: see --max-tw-buckets)",
            (false, true) => " (tcp_max_orphans reached: see --max-orphans)",
            (true, true) => {
                " (tcp_max_tw_buckets and tcp_max_orphans reached: see --max-tw-buckets, --max-orphans)"
            }
            (false, false) => "",
        };
        line = format!("{NOT_ORDERLY}{why}: {line}");
    }
    line
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
        let orderly = summary_line(1000, 5e5, 2000, None, &closed, 0, 0);
        assert!(
            orderly.starts_with("WARNING: not an orderly teardown: "),
            "{orderly}"
        );
        assert!(orderly.contains("1.0 % ended by RST"), "{orderly}");
        closed[R::Reset.index()] = 0;
        let clean = summary_line(1000, 5e5, 2000, None, &closed, 1000, 0);
        assert!(
            clean.starts_with("1000 teardowns at 500000/s with 2000 entries"),
            "{clean}"
        );
        assert!(
            clean.contains("0.0 % ended by RST, 0.0 % skipped TIME-WAIT, RSTs sent for 0.0 %"),
            "{clean}"
        );
        // The workers' CPU time gives the rate one core reaches at this size.
        let timed = summary_line(1000, 5e5, 2000, per_cpu_sec(1000, 0.004), &closed, 1000, 0);
        assert!(
            timed.starts_with(
                "1000 teardowns at 500000/s with 2000 entries resident at peak, 250000 per CPU second of the workers; "
            ),
            "{timed}"
        );
        assert_eq!(per_cpu_sec(1000, 0.0), None);
        // The peers' connections ended by our RSTs (30 of 1990 endings): a warning too.
        let peers_reset = summary_line(1000, 5e5, 2000, None, &closed, 1000, 30);
        assert!(
            peers_reset.starts_with("WARNING: not an orderly teardown: ")
                && peers_reset.contains("RSTs sent for 1.5 %"),
            "{peers_reset}"
        );
        closed[R::TimeWaitOverflow.index()] = 860;
        closed[R::Reset.index()] = 860;
        let overflow = summary_line(1000, 5e5, 2000, None, &closed, 0, 0);
        assert!(
            overflow.contains("tcp_max_tw_buckets reached"),
            "{overflow}"
        );
        // 860 of 990 + 860 + 860 endings.
        assert!(overflow.contains("31.7 % ended by RST"), "{overflow}");
        // Closes reset past tcp_max_orphans are ended by RST too, and named.
        closed[R::TimeWaitOverflow.index()] = 0;
        closed[R::Reset.index()] = 0;
        closed[R::TooManyOrphans.index()] = 110;
        let orphans = summary_line(1000, 5e5, 2000, None, &closed, 0, 110);
        assert!(
            orphans.starts_with("WARNING: not an orderly teardown (tcp_max_orphans reached: "),
            "{orphans}"
        );
        // 110 of 990 + 110 endings.
        assert!(orphans.contains("10.0 % ended by RST"), "{orphans}");
    }
}
