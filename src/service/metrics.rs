//! Counters the workers publish and the control thread reads: one cache-padded
//! block of atomics per worker, written only by that worker (relaxed stores, no
//! locks on the datagram path), summed at scrape time and encoded with
//! prometheus-client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crossbeam::utils::CachePadded;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use teardown_engine::host::{CloseReason, Host, Stats};
use teardown_engine::state::State;

macro_rules! stats_table {
    ($($field:ident: $help:literal,)*) => {
        /// Number of [`Stats`] counters exported.
        pub const STATS: usize = [$(stringify!($field)),*].len();
        const STAT_META: [(&str, &str); STATS] = [$((stringify!($field), $help)),*];
        fn stat_values(s: &Stats) -> [u64; STATS] {
            [$(s.$field),*]
        }
        fn stats_from(v: &[u64; STATS]) -> Stats {
            let mut i = 0;
            let mut s = Stats::default();
            $(s.$field = v[i]; i += 1;)*
            debug_assert_eq!(i, STATS);
            s
        }
        /// Adds `from` into `into`, field by field.
        pub fn add_stats(into: &mut Stats, from: &Stats) {
            $(into.$field += from.$field;)*
        }
    };
}

stats_table! {
    segments_received: "Segments processed by the server hosts",
    segments_sent: "Segments emitted by the server hosts",
    retransmits: "Retransmitted segments",
    fast_retransmits: "Of those, fast retransmissions on duplicate ACKs (TCPRenoRecovery)",
    rst_sent: "RSTs sent",
    rst_received: "Acceptable RSTs received",
    challenge_acks: "RFC 5961 challenge ACKs sent",
    challenge_acks_suppressed: "Challenge ACKs suppressed by rate limits",
    oow_acks: "Out-of-window ACKs sent",
    oow_acks_suppressed: "Out-of-window ACKs suppressed",
    rst_suppressed: "RSTs suppressed by the host-wide limit",
    timeouts_fin_wait_2: "Orphaned FIN-WAIT-2 timeouts (tcp_fin_timeout)",
    timeouts_retries: "Connections closed because retransmissions ran out",
    timeouts_time_wait: "TIME-WAIT entries that ran their full course",
    time_wait_overflow: "TIME-WAIT skipped at max_tw_buckets (TCPTimeWaitOverflow)",
    time_wait_evicted: "TIME-WAIT entries evicted for room",
    time_wait_reused: "TIME-WAIT entries reopened by a new SYN (TWRecycled)",
    time_wait_restarts: "TIME-WAIT timer restarts",
    time_wait_assassinated: "TIME-WAIT entries killed by an RST",
    paws_rejected: "Old duplicates dropped by PAWS (PAWSEstabRejected, PAWS_TW_REJECTED)",
    paws_old_ack: "Old pure ACKs dropped silently by PAWS (PAWSOldAck)",
    paws_active_rejected: "SYN-ACKs whose TSecr echoes no TSval of ours (PAWSActiveRejected)",
    tsecr_rejected: "Handshake ACKs whose TSecr echoes no SYN-ACK of ours (TSEcrRejected)",
    time_wait_reused_by_ts: "Of the TIME-WAIT reopens, those taken on a newer timestamp (RFC 6191)",
    syn_dropped: "SYNs dropped at max_connections",
    abort_on_data: "Data after close() answered with RST (TCPAbortOnData)",
    abort_on_memory: "Connections ended for too many orphans (max_orphans), at close() or an orphan's RTO (TCPAbortOnMemory)",
    acks_coalesced: "Pure ACKs that rode on the application's next segment",
    fins_on_data: "FINs set on the application's last queued data segment",
    opened_active: "Active opens",
    opened_passive: "Passive opens (accepted connections)",
    tw_reused: "TIME-WAIT 4-tuples a connect() took over (tcp_twsk_unique)",
    connect_eaddrnotavail: "connect() calls that found no port (EADDRNOTAVAIL)",
}

/// Close reasons counted per connection end.
pub const REASONS: usize = CloseReason::ALL.len();
/// Connections whose teardown exchange finished, among those that reached CLOSED:
/// the passive closer's LAST-ACK was acknowledged, or the active closer left
/// TIME-WAIT (expired, evicted, reused) or skipped it at overflow. Entries still in
/// TIME-WAIT have completed too; callers add them.
pub fn completed(closed: &[u64; REASONS]) -> u64 {
    [0, 1, 6, 7, 8].iter().map(|&i| closed[i]).sum()
}

/// Datagram-path counters a worker keeps besides the host's [`Stats`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Io {
    pub datagrams_received: u64,
    pub datagrams_malformed: u64,
    pub datagrams_sent: u64,
    /// Segments not delivered: unroutable replies, misrouted input, failed sends.
    pub segments_dropped: u64,
    pub loop_iterations: u64,
    pub loop_busy_us: u64,
}

#[derive(Default)]
struct Cells {
    stats: Counters<STATS>,
    population: [AtomicU64; State::COUNT],
    closed: [AtomicU64; REASONS],
    heap_bytes: AtomicU64,
    entries: AtomicU64,
    datagrams_received: AtomicU64,
    datagrams_malformed: AtomicU64,
    datagrams_sent: AtomicU64,
    segments_dropped: AtomicU64,
    loop_iterations: AtomicU64,
    loop_busy_us: AtomicU64,
    /// Longest loop iteration since the last scrape, µs (the scrape swaps it to 0).
    loop_max_us: AtomicU64,
}

/// `N` counters from zero: std derives `Default` for arrays of at most 32.
struct Counters<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl<const N: usize> std::ops::Deref for Counters<N> {
    type Target = [AtomicU64; N];

    fn deref(&self) -> &[AtomicU64; N] {
        &self.0
    }
}

/// Everything the workers publish, one padded block each.
pub struct Shared {
    workers: Vec<CachePadded<Cells>>,
    time_scale: f64,
    kernel_accepted: AtomicU64,
    /// `POST /release`: the workers close what `--keep` holds and keep no more.
    released: AtomicBool,
}

/// A host-wide sum of the published figures.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub stats: Stats,
    pub population: [u64; State::COUNT],
    pub closed: [u64; REASONS],
    pub heap_bytes: u64,
    pub entries: u64,
}

impl Shared {
    pub fn new(workers: usize, time_scale: f64) -> Shared {
        Shared {
            workers: (0..workers)
                .map(|_| CachePadded::new(Cells::default()))
                .collect(),
            time_scale,
            kernel_accepted: AtomicU64::new(0),
            released: AtomicBool::new(false),
        }
    }

    /// Ends `--keep`; true the first time (the caller then wakes the workers).
    pub fn release(&self) -> bool {
        !self.released.swap(true, Relaxed)
    }

    pub fn released(&self) -> bool {
        self.released.load(Relaxed)
    }

    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Worker `i` publishes its current figures.
    pub fn publish(
        &self,
        i: usize,
        host: &Host,
        closed: &[u64; REASONS],
        io: &Io,
        iteration_us: u64,
    ) {
        let c = &self.workers[i];
        for (cell, v) in c.stats.iter().zip(stat_values(host.stats())) {
            cell.store(v, Relaxed);
        }
        for s in State::ALL {
            c.population[s as usize].store(host.population(s) as u64, Relaxed);
        }
        for (cell, v) in c.closed.iter().zip(closed) {
            cell.store(*v, Relaxed);
        }
        c.heap_bytes.store(host.heap_bytes() as u64, Relaxed);
        c.entries.store(host.len() as u64, Relaxed);
        c.datagrams_received.store(io.datagrams_received, Relaxed);
        c.datagrams_malformed.store(io.datagrams_malformed, Relaxed);
        c.datagrams_sent.store(io.datagrams_sent, Relaxed);
        c.segments_dropped.store(io.segments_dropped, Relaxed);
        c.loop_iterations.store(io.loop_iterations, Relaxed);
        c.loop_busy_us.store(io.loop_busy_us, Relaxed);
        c.loop_max_us.fetch_max(iteration_us, Relaxed);
    }

    pub fn kernel_accepted(&self, n: u64) {
        self.kernel_accepted.fetch_add(n, Relaxed);
    }

    pub fn kernel_accepted_total(&self) -> u64 {
        self.kernel_accepted.load(Relaxed)
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        let mut stats = [0u64; STATS];
        for c in &self.workers {
            for (sum, cell) in stats.iter_mut().zip(c.stats.iter()) {
                *sum += cell.load(Relaxed);
            }
            for (sum, cell) in t.population.iter_mut().zip(&c.population) {
                *sum += cell.load(Relaxed);
            }
            for (sum, cell) in t.closed.iter_mut().zip(&c.closed) {
                *sum += cell.load(Relaxed);
            }
            t.heap_bytes += c.heap_bytes.load(Relaxed);
            t.entries += c.entries.load(Relaxed);
        }
        t.stats = stats_from(&stats);
        t
    }

    pub fn io_totals(&self) -> Io {
        let mut io = Io::default();
        for c in &self.workers {
            io.datagrams_received += c.datagrams_received.load(Relaxed);
            io.datagrams_malformed += c.datagrams_malformed.load(Relaxed);
            io.datagrams_sent += c.datagrams_sent.load(Relaxed);
            io.segments_dropped += c.segments_dropped.load(Relaxed);
            io.loop_iterations += c.loop_iterations.load(Relaxed);
            io.loop_busy_us += c.loop_busy_us.load(Relaxed);
        }
        io
    }

    /// The Prometheus text exposition of every figure (names prefixed `teardown_`).
    pub fn encode(&self) -> String {
        let t = self.totals();
        let io = self.io_totals();
        let loop_max_us = self
            .workers
            .iter()
            .map(|c| c.loop_max_us.swap(0, Relaxed))
            .max()
            .unwrap_or(0);
        let mut r = Registry::with_prefix("teardown");
        for ((name, help), v) in STAT_META.iter().zip(stat_values(&t.stats)) {
            let c: Counter = Counter::default();
            c.inc_by(v);
            r.register(*name, *help, c);
        }
        let states = Family::<Vec<(String, String)>, Gauge>::default();
        for s in State::ALL.iter().skip(1) {
            states
                .get_or_create(&vec![("state".into(), s.key().into())])
                .set(t.population[*s as usize] as i64);
        }
        r.register("connections", "Connections per state, all workers", states);
        let closed = Family::<Vec<(String, String)>, Counter>::default();
        for (i, name) in CloseReason::ALL.iter().map(|r| r.key()).enumerate() {
            closed
                .get_or_create(&vec![("reason".into(), (*name).into())])
                .inc_by(t.closed[i]);
        }
        r.register(
            "closed",
            "Connections that reached CLOSED, by reason",
            closed,
        );
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let c: Counter = Counter::default();
            c.inc_by(v);
            r.register(name, help, c);
        };
        counter(
            &mut r,
            "datagrams_received",
            "UDP datagrams received",
            io.datagrams_received,
        );
        counter(
            &mut r,
            "datagrams_malformed",
            "Datagrams rejected by the wire decoder",
            io.datagrams_malformed,
        );
        counter(
            &mut r,
            "datagrams_sent",
            "UDP datagrams sent",
            io.datagrams_sent,
        );
        counter(
            &mut r,
            "segments_dropped",
            "Segments not delivered (unroutable, misrouted, failed sends)",
            io.segments_dropped,
        );
        counter(
            &mut r,
            "loop_iterations",
            "Event-loop iterations",
            io.loop_iterations,
        );
        counter(
            &mut r,
            "kernel_accepted",
            "Kernel TCP connections accepted and closed (--kernel-listen)",
            self.kernel_accepted_total(),
        );
        let busy: Counter<f64, AtomicU64> = Counter::default();
        busy.inc_by(io.loop_busy_us as f64 / 1e6);
        r.register("loop_busy_seconds", "Time the loops spent working", busy);
        let gauge = |r: &mut Registry, name: &str, help: &str, v: f64| {
            let g: Gauge<f64, AtomicU64> = Gauge::default();
            g.set(v);
            r.register(name, help, g);
        };
        gauge(
            &mut r,
            "loop_latency_max_seconds",
            "Longest loop iteration since the previous scrape",
            loop_max_us as f64 / 1e6,
        );
        gauge(
            &mut r,
            "host_heap_bytes",
            "Heap bytes of the host tables and timers",
            t.heap_bytes as f64,
        );
        gauge(
            &mut r,
            "host_entries",
            "Entries in the host tables",
            t.entries as f64,
        );
        let per_entry = if t.entries > 0 {
            t.heap_bytes as f64 / t.entries as f64
        } else {
            0.0
        };
        gauge(
            &mut r,
            "host_bytes_per_entry",
            "Host heap bytes per entry",
            per_entry,
        );
        gauge(
            &mut r,
            "process_heap_live_bytes",
            "Live heap bytes of the process (counting allocator)",
            crate::alloc::live_bytes() as f64,
        );
        gauge(
            &mut r,
            "process_heap_peak_bytes",
            "Peak heap bytes of the process",
            crate::alloc::peak_bytes() as f64,
        );
        gauge(
            &mut r,
            "workers",
            "Worker threads (UDP sockets at consecutive ports)",
            self.workers.len() as f64,
        );
        gauge(
            &mut r,
            "time_scale",
            "Engine time = real time / this",
            self.time_scale,
        );
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

/// Parses Prometheus text exposition into series name (with its labels, as
/// written) → value. Comments and unparsable lines are skipped.
pub fn parse_text(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests;
