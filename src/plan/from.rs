//! `teardown plan --from OBSERVE.json`: the model calibrated from what `teardown
//! observe` saw on a live namespace, and the headroom: the multiple of today's
//! close rate at which each limit is hit.
//!
//! Calibration (docs/plan-from.md has every field):
//! * close rate `R` = `rates.closes_per_sec` (this namespace's active closes:
//!   `TW + TWKilled + TCPTimeWaitOverflow`), split server / client by the
//!   observed TIME-WAIT (`time_wait.server` / `.client`);
//! * roles: the server end is here when there are passive opens or server-side
//!   TIME-WAIT, the client end when there are active opens or client-side
//!   TIME-WAIT; both when they share the namespace, and then both count in
//!   `tcp_max_tw_buckets` (`net->ipv4.tcp_death_row` is per namespace);
//! * RTT = p50 of `tcpi_rtt`: on a CPU-bound host the ACK delay sets FIN-WAIT-1,
//!   not the wire (issue 14), so the observed RTT, not `--rtt`, when there is one;
//! * loss = `rates.retrans_ratio`; the sysctls as read, the retry sysctls
//!   within what the planner models ([`from_retries`]).

use std::net::SocketAddr;
use std::time::Duration;

use teardown_engine::config::{Config, Profile};
use teardown_engine::state::State;

use super::bounds::{self, Buckets, Pool, Reuse};
use super::from_retries::{self, Retry};
use super::memory::{self, Slab};
use super::model::{self, Closer, Prediction, Times, Workload, MODELLED};
use crate::observe::report::Report;

/// `tcp_tw_reuse_delay` (ms, Linux default 1000): a TIME-WAIT 4-tuple is
/// reusable this long after it entered TIME-WAIT.
const TW_REUSE_DELAY: f64 = 1.0;

/// The model's inputs as read from an observation.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub close_rate: f64,
    /// Share of the closes where this namespace's server end closed first.
    pub server_share: f64,
    pub server_role: bool,
    pub client_role: bool,
    pub rtt: Duration,
    pub rtt_observed: bool,
    pub loss: f64,
    /// The clients' read timeout: `plan --app-timeout`, which no counter
    /// shows.
    pub app_timeout: Duration,
    pub host: Config,
    /// `tcp_syn_retries`, `tcp_syn_linear_timeouts`, `tcp_synack_retries`,
    /// `tcp_retries2` as `host` has them, and where from.
    pub retries: [Retry; 4],
    /// Ports in `ip_local_port_range`.
    pub port_range: u32,
    pub tw_reuse: u8,
    pub timestamps: u8,
    /// Client address x listener pools seen in the server's TIME-WAIT.
    pub server_pools: u64,
}

impl Calibration {
    /// Reads the observation; `rtt` stands in when no ESTABLISHED socket was
    /// sampled, and `app_timeout` is the clients' read timeout.
    pub fn of(r: &Report, rtt: Duration, app_timeout: Duration) -> Calibration {
        let tw = &r.time_wait;
        let rates = &r.rates;
        let server_share = if tw.total > 0 {
            tw.server as f64 / tw.total as f64
        } else if rates.passive_opens_per_sec >= rates.active_opens_per_sec {
            1.0
        } else {
            0.0
        };
        let mut host = Config::profile(Profile::Linux);
        let s = &r.sysctl;
        host.max_tw_buckets = usize::try_from(s.tcp_max_tw_buckets).unwrap_or(usize::MAX);
        host.fin_timeout = Duration::from_secs(s.tcp_fin_timeout);
        host.orphan_retries = s.tcp_orphan_retries;
        host.rfc1337 = s.tcp_rfc1337 != 0;
        // Host-wide, seen only from the initial namespace: elsewhere Linux's default.
        if let Some(n) = s.tcp_max_orphans {
            host.max_orphans = usize::try_from(n).unwrap_or(usize::MAX);
        }
        let retries = from_retries::of(s, &host);
        let [syn, linear, synack, retries2] = retries.map(|r| r.used);
        host.syn_retries = syn;
        host.syn_linear_timeouts = linear;
        host.synack_retries = synack;
        host.retries2 = retries2;
        let observed = r.rtt.p50_us.map(|us| Duration::from_micros(us.max(1)));
        Calibration {
            close_rate: rates.closes_per_sec.max(0.0),
            server_share,
            server_role: rates.passive_opens_per_sec > 0.0 || tw.server > 0,
            client_role: rates.active_opens_per_sec > 0.0 || tw.client > 0,
            rtt: observed.unwrap_or(rtt).min(Duration::from_secs(60)),
            rtt_observed: observed.is_some(),
            loss: rates.retrans_ratio.unwrap_or(0.0).clamp(0.0, 0.5),
            app_timeout,
            host,
            retries,
            port_range: s.ip_local_port_range.size(),
            tw_reuse: s.tcp_tw_reuse,
            timestamps: s.tcp_timestamps,
            server_pools: tw.server_pools,
        }
    }

    fn workload(&self, rate: f64, close: Closer) -> Workload {
        Workload {
            rate,
            rtt: self.rtt,
            loss: self.loss,
            runaway: 0.0,
            close,
            app_delay: Duration::ZERO,
            app_timeout: self.app_timeout,
            lingering: None,
            host: self.host.clone(),
        }
    }
}

/// One destination of this namespace as a client that closes first.
#[derive(Clone, Debug)]
pub struct Destination {
    pub destination: String,
    /// Its share of the client-side closes (by its share of client TIME-WAIT).
    pub close_rate: f64,
    pub reuse: Reuse,
    /// Seconds each connection holds its local port (TIME-WAIT cut to
    /// `tcp_tw_reuse_delay` when reuse applies).
    pub port_hold_s: f64,
    /// Ports needed today: rate x hold.
    pub ports_needed: f64,
    /// The even half of the range: connect() slows past it.
    pub usable_ports: f64,
    pub headroom: Option<f64>,
    /// The multiple at which the whole range is held (EADDRNOTAVAIL).
    pub exhausted_at: Option<f64>,
}

/// The calibrated model.
pub struct FromPlan {
    pub cal: Calibration,
    /// The model for the closes where the server end closed first, at today's rate.
    pub server_closes: Option<Prediction>,
    pub client_closes: Option<Prediction>,
    pub destinations: Vec<Destination>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

impl FromPlan {
    /// The plan of observation `r`, with the clients' read timeout the
    /// simulator's.
    pub fn new(r: &Report, rtt: Duration) -> FromPlan {
        FromPlan::with_app_timeout(r, rtt, model::APP_TIMEOUT)
    }

    /// [`FromPlan::new`] with the clients' read timeout given.
    pub fn with_app_timeout(r: &Report, rtt: Duration, app_timeout: Duration) -> FromPlan {
        let cal = Calibration::of(r, rtt, app_timeout);
        let run =
            |rate: f64, close| (rate > 0.0).then(|| model::predict(&cal.workload(rate, close)));
        let server_closes = run(cal.close_rate * cal.server_share, Closer::Server);
        let client_closes = run(cal.close_rate * (1.0 - cal.server_share), Closer::Client);
        let client_tw: u64 = r.destinations.iter().map(|d| d.time_wait).sum();
        let destinations = match &client_closes {
            Some(pr) if client_tw > 0 => r
                .destinations
                .iter()
                .filter(|d| d.time_wait > 0)
                .map(|d| {
                    let rate = cal.close_rate * (1.0 - cal.server_share) * d.time_wait as f64
                        / client_tw as f64;
                    let ip = d.destination.parse::<SocketAddr>().ok().map(|a| a.ip());
                    let reuse = bounds::reuse(cal.tw_reuse, cal.timestamps, ip);
                    let hold = port_hold(pr, reuse);
                    let usable = bounds::even_ports(cal.port_range);
                    Destination {
                        destination: d.destination.clone(),
                        close_rate: rate,
                        reuse,
                        port_hold_s: hold,
                        ports_needed: rate * hold,
                        usable_ports: usable,
                        headroom: ratio(usable, rate * hold),
                        exhausted_at: ratio(f64::from(cal.port_range), rate * hold),
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        FromPlan {
            cal,
            server_closes,
            client_closes,
            destinations,
        }
    }

    /// The pools of 4-tuples feeding this namespace's TIME-WAIT at `growth`.
    pub fn pools(&self, growth: f64) -> Vec<Pool> {
        let c = &self.cal;
        let mut pools = Vec::new();
        if let (Some(pr), true) = (&self.server_closes, c.server_role) {
            // The clients' ports are free once they leave LAST-ACK, so connect()
            // keeps to the even half of each client address's range.
            let tuples = match c.server_pools {
                0 => f64::INFINITY,
                n => n as f64 * bounds::even_ports(c.port_range),
            };
            pools.push(Pool {
                rate: growth * c.close_rate * c.server_share * pr.tw_share,
                lifetime: pr.tw_time,
                tuples,
            });
        }
        if let (Some(pr), true) = (&self.client_closes, c.client_role) {
            let entries = |rate: f64| growth * rate * pr.tw_share;
            if self.destinations.is_empty() {
                pools.push(Pool {
                    rate: entries(c.close_rate * (1.0 - c.server_share)),
                    lifetime: pr.tw_time,
                    tuples: f64::INFINITY,
                });
            }
            for d in &self.destinations {
                // With reuse, connect() takes TIME-WAIT tuples on the even ports;
                // without, it searches the whole range before EADDRNOTAVAIL.
                let tuples = match d.reuse {
                    Reuse::Applies => d.usable_ports,
                    _ => f64::from(c.port_range),
                };
                pools.push(Pool {
                    rate: entries(d.close_rate),
                    lifetime: pr.tw_time,
                    tuples,
                });
            }
        }
        pools
    }

    /// Populations of the namespace at `growth` before the TIME-WAIT bounds:
    /// every role that is here, every state.
    fn raw(&self, growth: f64) -> Times {
        let c = &self.cal;
        let mut out = Times::default();
        let mut add = |t: &Times, rate: f64| {
            for st in MODELLED {
                out.set(st, out.get(st) + growth * rate * t.get(st));
            }
        };
        for (pr, rate) in [
            (&self.server_closes, c.close_rate * c.server_share),
            (&self.client_closes, c.close_rate * (1.0 - c.server_share)),
        ] {
            if let Some(pr) = pr {
                if c.server_role {
                    add(&pr.server_times, rate);
                }
                if c.client_role {
                    add(&pr.client_times, rate);
                }
            }
        }
        out
    }

    /// `tcp_max_tw_buckets` at `growth`: every FIN-WAIT-2 the model holds is an
    /// orphan (the closer's application has closed), so a mini-socket in the
    /// buckets, but for the first part of one past 60 s, a full socket.
    pub fn buckets(&self, growth: f64) -> Buckets {
        let orphans = self.raw(growth).fin_wait_2 - self.full_fin_wait_2(growth);
        bounds::buckets(
            &self.pools(growth),
            orphans,
            self.cal.host.max_tw_buckets as f64,
        )
    }

    /// Populations at `growth`, TIME-WAIT bounded and the buckets applied.
    pub fn populations(&self, growth: f64) -> Times {
        let mut pop = self.raw(growth);
        let b = self.buckets(growth);
        let kept = if b.demand > 0.0 {
            b.population / b.demand
        } else {
            1.0
        };
        pop.time_wait = b.time_wait * kept;
        // Only the mini-sockets are in the buckets.
        let full = self.full_fin_wait_2(growth);
        pop.fin_wait_2 = full + (pop.fin_wait_2 - full) * kept;
        pop
    }

    /// The multiple of today's rate at which the buckets fill (`None`: never,
    /// the 4-tuples bind first, or nothing closes).
    pub fn headroom_tw_buckets(&self) -> Option<f64> {
        let cap = self.cal.host.max_tw_buckets as f64;
        if self.cal.close_rate <= 0.0 {
            return None;
        }
        let pools = self.pools(1.0);
        let orphans = self.raw(1.0).fin_wait_2 - self.full_fin_wait_2(1.0);
        bounds::headroom(cap, |g| {
            pools.iter().map(|p| p.open(g)).sum::<f64>() + g * orphans
        })
    }

    /// The multiple of today's rate at which the orphans (FIN-WAIT-1, CLOSING
    /// and LAST-ACK, each closed by its application, and the first part of a
    /// FIN-WAIT-2 past 60 s) pass `tcp_max_orphans`, past which a close()
    /// resets (`None`: no orphans). The limit is host-wide: the orphans of
    /// other namespaces count against it too.
    pub fn headroom_orphans(&self) -> Option<f64> {
        let pop = self.raw(1.0);
        ratio(
            self.cal.host.max_orphans as f64,
            pop.fin_wait_1 + pop.closing + pop.last_ack + self.full_fin_wait_2(1.0),
        )
    }

    /// The orphaned FIN-WAIT-2 held as full sockets at `growth`: the first
    /// part of one past 60 s, at the closer of each prediction.
    pub fn full_fin_wait_2(&self, growth: f64) -> f64 {
        let c = &self.cal;
        [
            (
                &self.server_closes,
                c.server_role,
                c.close_rate * c.server_share,
            ),
            (
                &self.client_closes,
                c.client_role,
                c.close_rate * (1.0 - c.server_share),
            ),
        ]
        .into_iter()
        .filter_map(|(pr, role, rate)| {
            Some(growth * rate * pr.as_ref().filter(|_| role)?.fin_wait_2_full)
        })
        .sum()
    }

    /// With `bind(addr, 0)` before connect() and no `IP_BIND_ADDRESS_NO_PORT`, the
    /// port is chosen at bind time (`inet_csk_find_open_port`, odd half first)
    /// for all destinations together, and a TIME-WAIT keeps its bind bucket (no
    /// `tcp_tw_reuse` for bind()): one pool of half the range for every
    /// client-side close, held the full TIME-WAIT.
    pub fn headroom_bind_before_connect(&self) -> Option<f64> {
        let pr = self.client_closes.as_ref()?;
        let rate = self.cal.close_rate * (1.0 - self.cal.server_share);
        ratio(
            bounds::even_ports(self.cal.port_range),
            rate * pr.client_times.total(),
        )
    }

    /// Every limit with its headroom, worst first; unreachable ones last.
    pub fn limits(&self) -> Vec<(String, Option<f64>)> {
        let mut all = vec![
            ("tw_buckets".to_string(), self.headroom_tw_buckets()),
            ("orphans".to_string(), self.headroom_orphans()),
        ];
        for d in &self.destinations {
            all.push((format!("ports.{}", d.destination), d.headroom));
        }
        all.sort_by(|a, b| match (a.1, b.1) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        all
    }

    /// Kernel and engine bytes of the namespace's populations at `growth`.
    pub fn memory(&self, growth: f64, slab: &Slab) -> (f64, f64) {
        let pop = self.populations(growth);
        let restarts = [&self.server_closes, &self.client_closes]
            .iter()
            .filter_map(|p| p.as_ref().map(|p| p.tw_restarts))
            .fold(0.0, f64::max);
        // The first part of a FIN-WAIT-2 past 60 s is a full socket.
        let full = self.full_fin_wait_2(growth) * (slab.tcp_sock_bytes - slab.tw_sock_bytes);
        (
            slab.bytes(&pop) + full,
            memory::engine_bytes(&pop, 1, restarts),
        )
    }

    /// The `tw_sock_TCP` bytes of today's TIME-WAIT and FIN-WAIT-2
    /// mini-sockets.
    pub fn tw_sock_bytes(&self, slab: &Slab) -> f64 {
        let pop = self.populations(1.0);
        (pop.time_wait + pop.fin_wait_2 - self.full_fin_wait_2(1.0)) * slab.tw_sock_bytes
    }
}

/// Seconds a client connection holds its port: every client-side state; with
/// reuse the TIME-WAIT part is cut to `tcp_tw_reuse_delay`.
fn port_hold(pr: &Prediction, reuse: Reuse) -> f64 {
    let t = &pr.client_times;
    match reuse {
        Reuse::Applies => t.total() - t.time_wait + pr.tw_share * TW_REUSE_DELAY.min(pr.tw_time),
        _ => t.total(),
    }
}

/// Slab object sizes from the observation, defaults for any it lacks.
pub fn slab_of(r: &Report) -> Slab {
    let mut s = Slab::defaults();
    if let Some(caches) = &r.memory.slab {
        let mut found = 0;
        for (name, slot) in [
            ("tw_sock_TCP", &mut s.tw_sock_bytes),
            ("TCP", &mut s.tcp_sock_bytes),
            ("request_sock_TCP", &mut s.request_sock_bytes),
        ] {
            if let Some(c) = caches.get(name) {
                *slot = c.objsize as f64;
                found += 1;
            }
        }
        if found > 0 {
            s.source = "the observation's /proc/slabinfo".into();
        }
    }
    s
}

/// Observed sockets per modelled state.
pub fn observed(r: &Report, st: State) -> f64 {
    r.states.get(st.key()).copied().unwrap_or(0) as f64
}
