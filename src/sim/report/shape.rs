//! The JSON report's parts below [`super::SimReport`]: each a serde struct
//! whose field names are the report's keys (jsoncmp and the plan read them).

use hdrhistogram::Histogram;
use serde::Serialize;

use teardown_engine::state::State;

#[derive(Serialize, Debug, Clone, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub(super) fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// Ports one connect() looked at before it found one (counts, not times).
#[derive(Serialize, Debug, Clone, Default)]
pub struct Probed {
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

/// The clients' connect() calls: Linux's port choice (`__inet_hash_connect`).
#[derive(Serialize, Debug, Clone, Default)]
pub struct Connect {
    /// connect() calls that found no port (EADDRNOTAVAIL).
    pub eaddrnotavail: u64,
    /// TIME-WAIT 4-tuples a connect() took over (tcp_tw_reuse).
    pub tw_reused: u64,
    pub ports_probed: Probed,
}

impl Probed {
    pub(super) fn of(h: &Histogram<u64>) -> Probed {
        if h.is_empty() {
            return Probed::default();
        }
        Probed {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Latency {
    pub active_close: Percentiles,
    pub passive_close: Percentiles,
}

/// The least share of a host's entries a state must hold for its bytes per
/// entry to be given.
pub const MEASURED_SHARE: f64 = 0.5;

#[derive(Serialize, Debug, Clone, Default)]
pub struct Memory {
    /// Engine heap bytes (table, TIME-WAIT ring, wheel; counted by the allocator)
    /// over all entries, at the sample where TIME-WAIT's share of the entries
    /// peaked; `null` when that share is under [`MEASURED_SHARE`]: the bytes of
    /// a table mostly in other states say little about this one.
    pub bytes_per_time_wait: Option<f64>,
    /// Share of the entries in TIME-WAIT at that sample.
    pub time_wait_share: f64,
    /// Entries at that sample.
    pub time_wait_entries: u64,
    /// The same for ESTABLISHED.
    pub bytes_per_established: Option<f64>,
    pub established_share: f64,
    pub established_entries: u64,
    /// Which host the figures are for: `server`, or `clients` when TIME-WAIT lands there.
    pub side: &'static str,
    /// Highest sum of both hosts' engine heap over the samples (deterministic).
    pub peak_engine_bytes: i64,
    /// Highest process heap seen by the counting allocator (varies with threads).
    pub peak_heap_bytes: u64,
}

/// The working set: what the engine's tables held in memory at once, so that a
/// throughput figure says what size of table it was measured on.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Resident {
    /// `all-shards` (each thread's shards live together, the default) or
    /// `one-shard-per-thread` (`--sequential-shards`).
    pub mode: &'static str,
    /// Most table entries (connections and TIME-WAIT, server and clients) held
    /// at once: each thread's exact peak, summed over the threads. Varies with
    /// `--threads` (and, one shard at a time, with which shards a thread took).
    pub peak_entries: u64,
    /// Highest process heap seen by the counting allocator (as
    /// `memory.peak_heap_bytes`).
    pub peak_heap_bytes: u64,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Segments {
    pub sent: u64,
    pub dropped: u64,
    pub retransmitted: u64,
    pub rst: u64,
    /// Lost because they were addressed to an end that had vanished.
    pub blackholed: u64,
    pub challenge_acks: u64,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Timeouts {
    pub fin_wait_2: u64,
    pub retries_exhausted: u64,
    pub time_wait: u64,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct CaseCounts {
    pub case1_first_fin_lost: u64,
    pub case2_ack_of_fin_lost: u64,
    pub case3_passive_fin_lost: u64,
    pub case4_final_ack_lost: u64,
    pub case5_fin_wait_2_timeout: u64,
    pub case6_last_ack_reset: u64,
    pub last_ack_gave_up: u64,
    pub syn_into_time_wait: u64,
    pub time_wait_assassinated: u64,
    pub vanished_ends: u64,
}

/// A point of the population time series (server and clients).
#[derive(Debug, Clone)]
pub struct Point {
    pub t: f64,
    pub server: [u64; State::COUNT],
    pub client: [u64; State::COUNT],
    /// Engine heap of the server host and of all clients (counting allocator scopes;
    /// 0 when it is not installed), so steady-state memory can be averaged.
    pub server_bytes: i64,
    pub client_bytes: i64,
    /// Cumulative client connect() calls and EADDRNOTAVAIL failures.
    pub connects: u64,
    pub connects_failed: u64,
}
