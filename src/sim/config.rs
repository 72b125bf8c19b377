//! The validated parameters of a run: [`SimConfig::from_args`] checks the
//! flags once (a clear error for each bad one) and derives what the shards
//! need (slots, host limits split over the shards).

use std::time::Duration;

use super::args::{CloseMode, LossKind, RunawayAt, SimArgs, Workload};
use super::attack::AttackKind;
use crate::cli::{check_app_timeout, ensure, Usage, MAX_SPAN_SECS};
use crate::link::{Delay, Loss, LossModel};
use teardown_engine::config::Config;
use teardown_engine::segment::MAX_LEN;
use teardown_engine::BindMode;

/// Validated simulation parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub connections: u64,
    pub concurrency: u64,
    pub rate: Option<f64>,
    pub duration: Option<Duration>,
    pub close: CloseMode,
    pub workload: Workload,
    pub request_bytes: u32,
    pub response_bytes: u32,
    pub loss_to_server: Loss,
    pub loss_to_client: Loss,
    pub delay: Delay,
    pub runaway_client: f64,
    pub runaway_server: f64,
    pub runaway_at: RunawayAt,
    pub port_range: (u16, u16),
    /// How the clients get their ports.
    pub bind: BindMode,
    pub client_ips: u32,
    pub slots_per_shard: u32,
    pub host: Config,
    pub threads: usize,
    pub shards: u32,
    pub seed: u64,
    pub sample_interval: Duration,
    pub attacks: Vec<AttackKind>,
    pub attack_rate: f64,
    pub app_timeout: Duration,
    /// The passive closer's application closes this long after the peer's FIN.
    pub close_delay: Duration,
    /// Connections captured for --pcap (0: no capture).
    pub pcap_sample: u64,
    /// All of a thread's shards live at once (the default), or one at a time.
    pub resident: bool,
    /// tw-fill: shard k opens its connections at k × stagger and closes them
    /// at k × stagger after every shard has opened, so that one shard's burst
    /// is on the link at a time, not all N segments and timers at once; zero
    /// for the standard workload.
    pub stagger: Duration,
}

impl SimConfig {
    pub fn from_args(a: &SimArgs) -> Result<SimConfig, Usage> {
        ensure(a.connections > 0, || {
            "--connections must be at least 1".into()
        })?;
        ensure(a.concurrency > 0, || {
            "--concurrency must be at least 1".into()
        })?;
        ensure((1..=255).contains(&a.shards), || {
            "--shards must be between 1 and 255".into()
        })?;
        ensure(
            !a.replay_server || a.shards == 1 || a.sequential_shards,
            || {
                "--replay-server records one server host at a time: it needs --shards 1 or --sequential-shards".into()
            },
        )?;
        ensure(!a.replay_server || a.pcap.is_none(), || {
            "--replay-server marks every connection as --pcap-sample marks its sample: not with --pcap".into()
        })?;
        // tw-fill opens everything at once and ignores --rate.
        if let Some(r) = a.rate.filter(|_| a.workload != Workload::TwFill) {
            ensure(r.is_finite() && r > 0.0, || {
                format!("--rate must be above zero, got {r}")
            })?;
            let span = a.connections as f64 / r;
            ensure(span <= MAX_SPAN_SECS, || {
                format!(
                    "--rate {r} opens {} connections over {span:.3e} s of simulated time; \
                     a run spans at most {MAX_SPAN_SECS:.0e} s (31 years)",
                    a.connections
                )
            })?;
        }
        ensure(!a.sample_interval.is_zero(), || {
            "--sample-interval must be above zero".into()
        })?;
        ensure(a.sample_interval >= Duration::from_millis(1), || {
            "--sample-interval must be at least 1ms".into()
        })?;
        ensure(
            a.delay <= Duration::from_secs(60) && a.jitter <= Duration::from_secs(60),
            || "--delay and --jitter must be at most 60s".into(),
        )?;
        ensure(a.runaway_client + a.runaway_server <= 1.0, || {
            "--runaway-client plus --runaway-server must be at most 1".into()
        })?;
        let threads = a
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        ensure((1..=1024).contains(&threads), || {
            "--threads must be between 1 and 1024".into()
        })?;
        let port_range = parse_port_range(&a.port_range).map_err(Usage)?;
        let ports = (port_range.1 - port_range.0) as u64 + 1;

        let tw_fill = a.workload == Workload::TwFill;
        let concurrency = if tw_fill {
            a.connections
        } else {
            a.concurrency.min(a.connections)
        };
        // Ports for twice the client entries a run holds at once: the pool,
        // and when it refills (fewer places than connections) as many again
        // behind it in LAST-ACK, each a port until CLOSED. Fuller, Linux's
        // port search walks thousands of taken ports a connect.
        let entries_per_place = if concurrency < a.connections { 2 } else { 1 };
        let needed_ips = (concurrency * entries_per_place * 2)
            .div_ceil(ports)
            .max(16);
        let client_ips = a.client_ips.map_or(needed_ips, |n| n as u64);
        ensure(client_ips >= 1, || "--client-ips must be at least 1".into())?;
        let shards = a.shards as u64;
        let slots_total = client_ips * ports;
        let slots_per_shard = slots_total.div_ceil(shards);
        ensure(
            slots_per_shard / ports < 65_536 && slots_per_shard <= u32::MAX as u64,
            || "too many client addresses for one shard; raise --shards".into(),
        )?;
        // Shards share the live connections as they share the connections, the
        // first `concurrency % shards` one more: together exactly `concurrency`.
        // A shard with connections to open must be allowed one live.
        ensure(concurrency >= shards.min(a.connections), || {
            format!(
                "--concurrency {concurrency} is fewer than --shards {shards}: each shard keeps at least one connection live; lower --shards"
            )
        })?;
        let concurrency_per_shard = concurrency.div_ceil(shards);
        // A closed model (no --rate) keeps `concurrency` connections open, so
        // it needs that many ports. With --rate fewer ports than live
        // connections is a workload: connect() fails with EADDRNOTAVAIL
        // (counted in the report's `connect`).
        ensure(
            a.rate.is_some() || slots_per_shard >= concurrency_per_shard,
            || {
                format!(
                "{client_ips} client address(es) x {ports} ports cannot hold {concurrency} live connections; raise --client-ips"
            )
            },
        )?;

        let mut host = a.host.config();
        host.max_tw_buckets = match (a.host.max_tw_buckets, tw_fill) {
            (Some(v), _) => v,
            // Like raising net.ipv4.tcp_max_tw_buckets for the experiment; per shard.
            (None, true) => usize::MAX,
            (None, false) => host.max_tw_buckets,
        };
        // The limits are the host's; each shard holds its share of them.
        host.share_host_limits(a.shards as usize);
        // Host-wide limits are split over the shards, which each hold one share.
        let per_shard = |v: u64| v.div_ceil(a.shards as u64).max(1);
        if let Some(v) = a.max_connections {
            ensure(v > 0, || "--max-connections must be at least 1".into())?;
            host.max_connections = per_shard(v as u64) as usize;
        }
        if let Some(v) = a.challenge_ack_limit {
            host.challenge_ack_limit = per_shard(v as u64) as u32;
        }
        if let Some(v) = a.rst_limit {
            host.rst_limit = per_shard(v as u64) as u32;
        }
        host.ip_local_port_range = port_range;
        host.tw_reuse_delay = a.tw_reuse_delay;
        host.validate().map_err(Usage)?;
        // Each is sent as one segment (`send`, `send_close`).
        for (flag, n) in [
            ("--request-bytes", a.request_bytes),
            ("--response-bytes", a.response_bytes),
        ] {
            ensure(n <= MAX_LEN, || {
                format!("{flag} {n} is more than one segment can model ({MAX_LEN})")
            })?;
        }
        check_app_timeout(a.app_timeout)?;
        ensure(a.close_delay.as_secs_f64() <= MAX_SPAN_SECS, || {
            format!("--close-delay must be at most {MAX_SPAN_SECS} s")
        })?;
        ensure(a.attack_rate.is_finite() && a.attack_rate > 0.0, || {
            "--attack-rate must be above zero".into()
        })?;
        let gap = a.shards as f64 / a.attack_rate;
        ensure(gap <= MAX_SPAN_SECS, || {
            format!(
                "--attack-rate {} leaves {gap:.3e} s of simulated time between a shard's \
                 attacks; a run spans at most {MAX_SPAN_SECS:.0e} s (31 years)",
                a.attack_rate
            )
        })?;
        let mut attacks = a.attack.clone();
        attacks.sort();
        attacks.dedup();

        let model = match a.loss_model {
            LossKind::Bernoulli => LossModel::Bernoulli,
            LossKind::Burst => LossModel::Burst { burst: a.burst_len },
        };
        let (ls, lc) = if tw_fill {
            (0.0, 0.0)
        } else {
            (
                a.loss_to_server.unwrap_or(a.loss),
                a.loss_to_client.unwrap_or(a.loss),
            )
        };
        let loss_to_server = Loss::new(ls, model, a.loss_only).map_err(Usage)?;
        let loss_to_client = Loss::new(lc, model, a.loss_only).map_err(Usage)?;
        let (request_bytes, response_bytes) = if tw_fill || a.close == CloseMode::Both {
            (0, 0)
        } else {
            (a.request_bytes, a.response_bytes)
        };
        let stagger = if tw_fill {
            tw_fill_stagger(a.delay + a.jitter, host.time_wait, a.shards)
        } else {
            Duration::ZERO
        };
        Ok(SimConfig {
            connections: a.connections,
            concurrency,
            rate: if tw_fill { None } else { a.rate },
            duration: a.duration,
            close: a.close,
            workload: a.workload,
            request_bytes,
            response_bytes,
            loss_to_server,
            loss_to_client,
            delay: Delay {
                base: a.delay,
                jitter: a.jitter,
            },
            runaway_client: a.runaway_client,
            runaway_server: a.runaway_server,
            runaway_at: a.runaway_at,
            port_range,
            bind: if a.bind_before_connect {
                BindMode::BeforeConnect
            } else {
                BindMode::NoPort
            },
            client_ips: client_ips as u32,
            slots_per_shard: slots_per_shard as u32,
            host,
            threads,
            shards: a.shards,
            seed: a.seed,
            sample_interval: a.sample_interval,
            attacks,
            attack_rate: a.attack_rate,
            app_timeout: a.app_timeout,
            close_delay: a.close_delay,
            pcap_sample: if a.pcap.is_some() { a.pcap_sample } else { 0 },
            resident: !a.sequential_shards,
            stagger,
        })
    }
}

/// How far apart tw-fill's shards open, and close: four one-way delays, room
/// for a shard's handshakes (three delays) to finish before the next shard's
/// begin. Capped so that the spread of the closes (shards × stagger) stays
/// under a quarter of TIME-WAIT: every server entry is in TIME-WAIT at once.
fn tw_fill_stagger(one_way: Duration, time_wait: Duration, shards: u32) -> Duration {
    (one_way * 4).min(time_wait / (4 * shards))
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("--port-range '{s}' must look like 32768-60999"))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| format!("bad port '{lo}' in --port-range"))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| format!("bad port '{hi}' in --port-range"))?;
    if lo == 0 || lo > hi {
        return Err(format!(
            "--port-range '{s}' must be LO-HI with 0 < LO <= HI"
        ));
    }
    Ok((lo, hi))
}
