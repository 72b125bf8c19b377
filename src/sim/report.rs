//! The simulator's report: shard results merged, as JSON and as text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

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

#[derive(Serialize, Debug, Clone, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
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
    fn of(h: &Histogram<u64>) -> Probed {
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

#[derive(Serialize, Debug, Clone, Default)]
pub struct Memory {
    /// Engine heap bytes (table, TIME-WAIT ring, wheel; counted by the allocator)
    /// over all entries, at the sample where TIME-WAIT's share of the entries peaked.
    pub bytes_per_time_wait: f64,
    /// Share of the entries in TIME-WAIT at that sample.
    pub time_wait_share: f64,
    /// Entries at that sample.
    pub time_wait_entries: u64,
    /// The same for ESTABLISHED.
    pub bytes_per_established: f64,
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

fn add_stats(a: &mut Stats, b: &Stats) {
    a.segments_received += b.segments_received;
    a.segments_sent += b.segments_sent;
    a.retransmits += b.retransmits;
    a.rst_sent += b.rst_sent;
    a.rst_received += b.rst_received;
    a.challenge_acks += b.challenge_acks;
    a.timeouts_fin_wait_2 += b.timeouts_fin_wait_2;
    a.timeouts_retries += b.timeouts_retries;
    a.timeouts_time_wait += b.timeouts_time_wait;
    a.time_wait_overflow += b.time_wait_overflow;
    a.time_wait_reused += b.time_wait_reused;
    a.time_wait_assassinated += b.time_wait_assassinated;
    a.syn_dropped += b.syn_dropped;
    a.tw_reused += b.tw_reused;
    a.connect_eaddrnotavail += b.connect_eaddrnotavail;
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
        let memory = memory(&sum, client_side);
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

    /// The report for people.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(
            w,
            "teardown sim: {} connections, {} concurrent, close={}, loss {:.2}%/{:.2}% (to server/to clients), profile {}, seed {}, {} thread(s)",
            self.connections,
            self.concurrency,
            self.close,
            self.loss_to_server * 100.0,
            self.loss_to_client * 100.0,
            self.profile,
            self.seed,
            self.threads
        );
        let _ =
            writeln!(
            w,
            "  completed {} / leaked {}   simulated {:.1} s in {:.2} s wall   {:.0} teardowns/s",
            self.completed, self.leaked, self.sim_seconds, self.wall_seconds, self.teardowns_per_sec
        );
        let r = &self.resident;
        let _ = writeln!(
            w,
            "  resident: {} entries at peak ({}), process heap {:.1} MiB",
            r.peak_entries,
            match r.mode {
                "all-shards" => "all shards live at once",
                _ => "one shard per thread at a time: the table is --shards times smaller",
            },
            r.peak_heap_bytes as f64 / 1048576.0
        );
        let _ = writeln!(
            w,
            "\npeak population (server host | all clients), sampled every {} s",
            sample_secs(self.sample_interval_s)
        );
        for &st in peak_states() {
            let _ = writeln!(
                w,
                "  {:<13} {:>12} | {:>12}",
                st.to_string(),
                self.peak[st.key()],
                self.peak_clients[st.key()]
            );
        }
        let m = &self.memory;
        let _ = writeln!(
            w,
            "\nmemory ({} engine heap, counted by the allocator)",
            m.side
        );
        for (name, bytes, share, entries, linux) in [
            (
                "TIME-WAIT entry",
                m.bytes_per_time_wait,
                m.time_wait_share,
                m.time_wait_entries,
                "256 B tw_sock_TCP",
            ),
            (
                "ESTABLISHED",
                m.bytes_per_established,
                m.established_share,
                m.established_entries,
                "2,368 B TCP socket",
            ),
        ] {
            if share >= 0.5 {
                let _ = writeln!(
                    w,
                    "  per {name:<16} {bytes:>7.1} B  (all-in, at {entries} entries, {:.0}% of them in that state; Linux: {linux})",
                    share * 100.0
                );
            } else {
                let _ = writeln!(
                    w,
                    "  per {name:<16}       -    (never over {:.0}% of the entries here, so not measured; --workload tw-fill measures it)",
                    share * 100.0
                );
            }
        }
        let _ = writeln!(
            w,
            "  peak engine heap {:.1} MiB, process heap {:.1} MiB",
            m.peak_engine_bytes as f64 / 1048576.0,
            m.peak_heap_bytes as f64 / 1048576.0
        );
        let s = &self.segments;
        let _ = writeln!(
            w,
            "\nsegments: {} sent, {} dropped, {} retransmitted, {} RST, {} challenge ACKs, {} to vanished ends",
            s.sent, s.dropped, s.retransmitted, s.rst, s.challenge_acks, s.blackholed
        );
        let t = &self.timeouts;
        let _ = writeln!(
            w,
            "timeouts: {} FIN-WAIT-2, {} retries exhausted, {} TIME-WAIT expired; {} TIME-WAIT overflows (tcp_max_tw_buckets)",
            t.fin_wait_2, t.retries_exhausted, t.time_wait, self.time_wait_overflow
        );
        let _ = writeln!(
            w,
            "\nteardown latency, close() to CLOSED (ms)       p50       p99     p99.9       max"
        );
        for (name, p) in [
            ("active closer", &self.latency_ms.active_close),
            ("passive closer", &self.latency_ms.passive_close),
        ] {
            let _ = writeln!(
                w,
                "  {:<15} ({:>9} conns)       {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name, p.count, p.p50, p.p99, p.p999, p.max
            );
        }
        let c = &self.cases;
        let _ = writeln!(w, "\nseed cases exercised (teardown-cases.md)");
        let _ = writeln!(
            w,
            "  1 first FIN lost            {:>10}",
            c.case1_first_fin_lost
        );
        let _ = writeln!(
            w,
            "  2 ACK of FIN lost           {:>10}",
            c.case2_ack_of_fin_lost
        );
        let _ = writeln!(
            w,
            "  3 passive FIN lost          {:>10}",
            c.case3_passive_fin_lost
        );
        let _ = writeln!(
            w,
            "  4 final ACK lost            {:>10}",
            c.case4_final_ack_lost
        );
        let _ = writeln!(
            w,
            "  5 FIN-WAIT-2 timeouts       {:>10}",
            c.case5_fin_wait_2_timeout
        );
        let _ = writeln!(
            w,
            "  6 LAST-ACK reset by RST     {:>10}  (gave up: {})",
            c.case6_last_ack_reset, c.last_ack_gave_up
        );
        let _ = writeln!(
            w,
            "  SYN into TIME-WAIT (reuse)  {:>10}",
            c.syn_into_time_wait
        );
        let _ = writeln!(
            w,
            "  TIME-WAIT killed by RST     {:>10}",
            c.time_wait_assassinated
        );
        let _ = writeln!(w, "  runaway ends vanished       {:>10}", c.vanished_ends);
        if !self.attacks.is_empty() {
            let _ = writeln!(
                w,
                "\nattacks            sent  on target     killed  (RFC 5961 odds)  disturbed  challenge ACKs  RSTs"
            );
            for (k, a) in &self.attacks {
                let _ = writeln!(
                    w,
                    "  {:<13} {:>9} {:>10} {:>10}  ({:>13.3})  {:>9} {:>15} {:>5}",
                    k,
                    a.sent,
                    a.on_target,
                    a.killed,
                    a.expected_killed,
                    a.disturbed,
                    a.challenge_acks,
                    a.rst_replies
                );
            }
            let _ = writeln!(
                w,
                "  SYNs dropped at --max-connections: {}",
                self.syn_dropped
            );
        }
        let c = &self.connect;
        let _ = writeln!(
            w,
            "\nconnect(): {} EADDRNOTAVAIL, {} TIME-WAIT 4-tuples reused, ports probed p50 {} p99 {} max {}",
            c.eaddrnotavail, c.tw_reused, c.ports_probed.p50, c.ports_probed.p99, c.ports_probed.max
        );
        o
    }
}

/// Memory per entry from the merged samples: among the samples where the state
/// holds at least half its peak population, at the one where its share of the
/// host's entries is highest, that host's measured engine bytes over its entries.
fn memory(sum: &[Sample], client_side: bool) -> Memory {
    fn side(x: &Sample, client_side: bool) -> (&[u32; State::COUNT], u32, i64) {
        if client_side {
            (&x.client, x.client.iter().sum(), x.client_bytes)
        } else {
            (&x.server, x.server.iter().sum(), x.server_bytes)
        }
    }
    let at = |st: State| -> (f64, f64, u64) {
        // Only moments when the state holds at least half its peak: a sample with
        // three TIME-WAIT entries left in a drained table says nothing per entry.
        let peak = sum
            .iter()
            .map(|x| side(x, client_side).0[st as usize])
            .max()
            .unwrap_or(0);
        let mut best: Option<(f64, u64, i64)> = None;
        for x in sum {
            let (pop, entries, bytes) = side(x, client_side);
            if entries == 0 || pop[st as usize] == 0 || pop[st as usize] * 2 < peak {
                continue;
            }
            let share = pop[st as usize] as f64 / entries as f64;
            let better = match best {
                None => true,
                Some((s, e, _)) => {
                    share > s + 1e-9 || ((share - s).abs() <= 1e-9 && entries as u64 > e)
                }
            };
            if better {
                best = Some((share, entries as u64, bytes));
            }
        }
        match best {
            Some((share, entries, bytes)) => (bytes as f64 / entries as f64, share, entries),
            None => (0.0, 0.0, 0),
        }
    };
    let (tw_b, tw_s, tw_n) = at(State::TimeWait);
    let (es_b, es_s, es_n) = at(State::Established);
    Memory {
        bytes_per_time_wait: tw_b,
        time_wait_share: tw_s,
        time_wait_entries: tw_n,
        bytes_per_established: es_b,
        established_share: es_s,
        established_entries: es_n,
        side: if client_side { "clients" } else { "server" },
        peak_engine_bytes: sum
            .iter()
            .map(|x| x.server_bytes + x.client_bytes)
            .max()
            .unwrap_or(0),
        peak_heap_bytes: 0,
    }
}

/// `--plot DIR`: see [`super::plot::plot`].
pub fn plot(report: &SimReport, dir: &std::path::Path) -> anyhow::Result<()> {
    super::plot::plot(report, dir)
}

/// A sample interval for people: 0.1, 0.8, 419430.4.
fn sample_secs(s: f64) -> String {
    let t = format!("{s:.3}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}
