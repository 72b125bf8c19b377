//! The simulator's report: shard results merged into one [`SimReport`]
//! (serialized as the JSON report; [`SimReport::human`] writes the text one).

mod human;
mod memory;
mod shape;

pub use shape::{
    CaseCounts, Connect, Latency, Memory, Percentiles, Point, Probed, Resident, Segments, Timeouts,
    MEASURED_SHARE,
};

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::service::metrics::add_stats;
use teardown_engine::state::State;
use teardown_engine::Stats;

use super::attack::AttackCounts;
use super::result::{Cases, ShardResult};
use super::series::{self, Sample};
use super::tally::new_histogram;
use super::{SimConfig, Workload};

/// States reported in `peak.*`: every state but CLOSED.
fn peak_states() -> &'static [State] {
    &State::ALL[1..]
}

#[derive(Serialize, Debug, Clone)]
pub struct SimReport {
    pub version: u32,
    pub seed: u64,
    pub threads: usize,
    pub shards: u32,
    pub profile: String,
    pub workload: String,
    pub close: String,
    pub loss_to_server: f64,
    pub loss_to_client: f64,
    pub concurrency: u64,
    pub connections: u64,
    pub completed: u64,
    pub leaked: u64,
    pub wall_seconds: f64,
    pub sim_seconds: f64,
    pub teardowns_per_sec: f64,
    pub resident: Resident,
    /// Simulated time between the population samples that peaks and memory
    /// are read from: `--sample-interval`, doubled as often as a shard needed
    /// to keep at most 4096 samples.
    pub sample_interval_s: f64,
    /// Peak population per state on the server host (sampled).
    pub peak: BTreeMap<&'static str, u64>,
    /// The same over all clients.
    pub peak_clients: BTreeMap<&'static str, u64>,
    pub memory: Memory,
    pub segments: Segments,
    pub timeouts: Timeouts,
    pub time_wait_overflow: u64,
    /// Connections ended for too many orphans (`tcp_max_orphans`,
    /// TCPAbortOnMemory: at close(), FIN then RST, or at an orphan's
    /// retransmission timeout), on the server and the clients, as
    /// `time_wait_overflow` counts both.
    pub orphan_overflow: u64,
    pub latency_ms: Latency,
    pub cases: CaseCounts,
    pub closed_by: BTreeMap<String, u64>,
    /// Per attack kind (with --attack).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attacks: BTreeMap<&'static str, AttackCounts>,
    /// SYNs dropped because --max-connections was reached.
    pub syn_dropped: u64,
    pub connect: Connect,
    #[serde(skip)]
    pub series: Vec<Point>,
    /// Captured segments for --pcap, in capture order.
    #[serde(skip)]
    pub capture: Vec<(
        teardown_engine::time::Time,
        teardown_engine::segment::Segment,
    )>,
    #[serde(skip)]
    pub active_hist: Option<Histogram<u64>>,
    #[serde(skip)]
    pub passive_hist: Option<Histogram<u64>>,
}

impl SimReport {
    pub fn merge(cfg: &SimConfig, shards: &[ShardResult], wall: Duration) -> SimReport {
        let mut stats = Stats::default();
        let mut cases = Cases::default();
        let mut active = new_histogram();
        let mut passive = new_histogram();
        let mut probed = new_histogram();
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut attacks: BTreeMap<&'static str, AttackCounts> = BTreeMap::new();
        let (mut opened, mut leaked, mut sent, mut dropped, mut blackholed) = (0, 0, 0, 0, 0);
        let mut end = 0f64;
        for s in shards {
            // Every counter, as the service sums its workers'.
            add_stats(&mut stats, &s.server);
            add_stats(&mut stats, &s.client);
            cases.add(&s.cases);
            s.active.add_to(&mut active);
            s.passive.add_to(&mut passive);
            s.probed.add_to(&mut probed);
            for (k, c) in &s.attacks {
                attacks.entry(k.key()).or_default().add(c);
            }
            for (r, c) in &s.reasons {
                *reasons.entry(format!("{r:?}")).or_default() += c;
            }
            opened += s.opened;
            leaked += s.leaked;
            sent += s.sent;
            dropped += s.dropped;
            blackholed += s.blackholed;
            end = end.max(s.end.as_micros() as f64 / 1e6);
        }
        let per_shard: Vec<&series::Series> = shards.iter().map(|s| &s.series).collect();
        let (interval, sum) = series::merge(&per_shard);
        let peak_of =
            |f: &dyn Fn(&Sample) -> u32| sum.iter().map(|x| f(x) as u64).max().unwrap_or(0);
        let peak: BTreeMap<_, _> = peak_states()
            .iter()
            .map(|st| (st.key(), peak_of(&|x| x.server[*st as usize])))
            .collect();
        let peak_clients: BTreeMap<_, _> = peak_states()
            .iter()
            .map(|st| (st.key(), peak_of(&|x| x.client[*st as usize])))
            .collect();
        let client_side = peak_clients["time_wait"] > peak["time_wait"];
        let memory = memory::memory(&sum, client_side);
        let wall_seconds = wall.as_secs_f64();
        let completed = opened - leaked;
        let interval = interval.as_secs_f64();
        let series = sum
            .iter()
            .enumerate()
            .map(|(i, x)| Point {
                t: i as f64 * interval,
                server: x.server.map(|v| v as u64),
                client: x.client.map(|v| v as u64),
                server_bytes: x.server_bytes,
                client_bytes: x.client_bytes,
                connects: x.connects,
                connects_failed: x.connects_failed,
            })
            .collect();
        SimReport {
            version: 1,
            seed: cfg.seed,
            threads: cfg.threads,
            shards: cfg.shards,
            profile: cfg.host.profile.to_string(),
            workload: match cfg.workload {
                Workload::Standard => "standard".into(),
                Workload::TwFill => "tw-fill".into(),
            },
            close: cfg.close.to_string(),
            loss_to_server: cfg.loss_to_server.rate(),
            loss_to_client: cfg.loss_to_client.rate(),
            concurrency: cfg.concurrency,
            connections: opened,
            completed,
            leaked,
            wall_seconds,
            sim_seconds: end,
            sample_interval_s: interval,
            teardowns_per_sec: if wall_seconds > 0.0 {
                completed as f64 / wall_seconds
            } else {
                0.0
            },
            resident: Resident {
                mode: if cfg.resident {
                    "all-shards"
                } else {
                    "one-shard-per-thread"
                },
                // The driver knows its threads' peaks; see `sim::run`.
                peak_entries: 0,
                peak_heap_bytes: crate::alloc::peak_bytes() as u64,
            },
            peak,
            peak_clients,
            memory: Memory {
                peak_heap_bytes: crate::alloc::peak_bytes() as u64,
                ..memory
            },
            segments: Segments {
                sent,
                dropped,
                retransmitted: stats.retransmits,
                rst: stats.rst_sent,
                blackholed,
                challenge_acks: stats.challenge_acks,
            },
            timeouts: Timeouts {
                fin_wait_2: stats.timeouts_fin_wait_2,
                retries_exhausted: stats.timeouts_retries,
                time_wait: stats.timeouts_time_wait,
            },
            time_wait_overflow: stats.time_wait_overflow,
            orphan_overflow: stats.abort_on_memory,
            latency_ms: Latency {
                active_close: Percentiles::of(&active),
                passive_close: Percentiles::of(&passive),
            },
            cases: CaseCounts {
                case1_first_fin_lost: cases.first_fin_lost,
                case2_ack_of_fin_lost: cases.ack_of_fin_lost,
                case3_passive_fin_lost: cases.passive_fin_lost,
                case4_final_ack_lost: cases.final_ack_lost,
                case5_fin_wait_2_timeout: stats.timeouts_fin_wait_2,
                case6_last_ack_reset: cases.last_ack_reset,
                last_ack_gave_up: cases.last_ack_gave_up,
                syn_into_time_wait: stats.time_wait_reused,
                time_wait_assassinated: stats.time_wait_assassinated,
                vanished_ends: cases.vanished,
            },
            closed_by: reasons,
            attacks,
            syn_dropped: stats.syn_dropped,
            connect: Connect {
                eaddrnotavail: stats.connect_eaddrnotavail,
                tw_reused: stats.tw_reused,
                ports_probed: Probed::of(&probed),
            },
            series,
            capture: Vec::new(),
            active_hist: Some(active),
            passive_hist: Some(passive),
        }
    }
}

/// `--plot DIR`: see [`super::plot::plot`].
pub fn plot(report: &SimReport, dir: &std::path::Path) -> anyhow::Result<()> {
    super::plot::plot(report, dir)
}
