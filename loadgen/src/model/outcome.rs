//! What a client worker reports when it stops: the main thread merges these
//! into loadgen's report (`report::model_report`).

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use teardown::service::metrics::REASONS;
use teardown::sim::{AttackCounts, AttackKind};

/// What a worker reports when it stops.
pub struct Outcome {
    pub opened: u64,
    pub accounted: u64,
    /// Connections in TIME-WAIT when the worker stopped: settled, not leaked,
    /// and not accounted for either (their CLOSED never came).
    pub time_wait_at_end: u64,
    pub runaway: u64,
    /// Connections the application closed at `--app-timeout`.
    pub app_timeouts: u64,
    /// Connections that gave up in FIN-WAIT-1 (`closed.retries_exhausted`
    /// from there, silently, as Linux's orphan) with every FIN lost on the
    /// link: the server never had it, and may hold ESTABLISHED for good.
    pub fin_abandoned: u64,
    pub closed: [u64; REASONS],
    pub stats: teardown_engine::Stats,
    pub dropped_to_server: u64,
    pub dropped_to_client: u64,
    /// Segments for a vanished client, swallowed as a dead host would.
    pub to_vanished: u64,
    pub malformed: u64,
    pub send_failures: u64,
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub active_us: Histogram<u64>,
    pub passive_us: Histogram<u64>,
    pub first_open: Option<Instant>,
    /// When this worker opened its last connection, and how many had completed by then.
    pub last_open: Option<Instant>,
    pub completed_at_last_open: u64,
    /// When this worker's application first held its whole `concurrency`
    /// open, and how many had completed by then: the rate between that and
    /// the last open is the rate at that many held open, without the ramp up
    /// to it.
    pub full_at: Option<Instant>,
    pub completed_at_full: u64,
    pub last_close: Option<Instant>,
    pub peak_live: usize,
    /// Real time the opens waited for a free 4-tuple: the worker's whole
    /// (ip, port) range was in its table, most of it in TIME-WAIT when the
    /// clients close first. A kernel's connect() fails with EADDRNOTAVAIL then.
    pub tuple_wait: Duration,
    /// Per attack kind: counts, and out-of-window ACKs seen (`old-duplicate`).
    pub attacks: Vec<(AttackKind, AttackCounts, u64)>,
    /// Replies to the attacker's made-up tuples other than RSTs.
    pub attack_other_replies: u64,
}

impl Outcome {
    /// Nothing counted yet; latency histograms from 1 µs to an hour, 3 digits.
    pub(super) fn new() -> Outcome {
        let hist = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds");
        Outcome {
            opened: 0,
            accounted: 0,
            time_wait_at_end: 0,
            runaway: 0,
            app_timeouts: 0,
            fin_abandoned: 0,
            closed: [0; REASONS],
            stats: teardown_engine::Stats::default(),
            dropped_to_server: 0,
            dropped_to_client: 0,
            to_vanished: 0,
            malformed: 0,
            send_failures: 0,
            datagrams_sent: 0,
            datagrams_received: 0,
            active_us: hist(),
            passive_us: hist(),
            first_open: None,
            last_open: None,
            completed_at_last_open: 0,
            full_at: None,
            completed_at_full: 0,
            last_close: None,
            peak_live: 0,
            tuple_wait: Duration::ZERO,
            attacks: Vec::new(),
            attack_other_replies: 0,
        }
    }
}
