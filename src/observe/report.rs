//! What an observation reports, computed from a [`Recording`]: rates from the
//! counters' growth over the interval, populations from the socket dump, memory,
//! and the sysctls. The JSON field names are stable (docs/observe.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use teardown_engine::state::State;

use super::recording::Recording;
use crate::kernel::diag::{self, DiagSocket};
use crate::kernel::netstat::Counters;
use crate::kernel::slabinfo::{Slabinfo, TCP6_CACHES, TCP_CACHES};
use crate::kernel::sockstat::Sockstat;
use crate::kernel::state::TcpState;
use crate::kernel::sysctl::{PortRange, Sysctls};
use crate::kernel::Error;

/// Bumped when a field changes meaning or goes away (adding one does not).
pub const VERSION: u32 = 1;

/// The counters whose growth the rates come from, as (group, name).
const COUNTERS: [(&str, &str); 8] = [
    ("TcpExt", "TW"),
    ("TcpExt", "TWKilled"),
    ("TcpExt", "TCPTimeWaitOverflow"),
    ("TcpExt", "TWRecycled"),
    ("Tcp", "ActiveOpens"),
    ("Tcp", "PassiveOpens"),
    ("Tcp", "RetransSegs"),
    ("Tcp", "OutSegs"),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// The network namespace observed; `None` for the caller's own.
    pub netns: Option<String>,
    /// Seconds between the two counter reads, as measured.
    pub interval_secs: f64,
    pub rates: Rates,
    /// Growth of each counter over the interval, as `Group.Name`.
    pub counters: BTreeMap<String, u64>,
    /// Sockets per state now, every state present (0 when none).
    pub states: BTreeMap<String, u64>,
    pub time_wait: TimeWait,
    /// Client-side sockets by destination, most TIME-WAIT first.
    pub destinations: Vec<Destination>,
    pub rtt: Rtt,
    pub memory: Memory,
    pub sockstat: SockstatTcp,
    pub sysctl: Sysctls,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rates {
    pub closes_per_sec: f64,
    pub tw_overflow_per_sec: f64,
    pub tw_recycled_per_sec: f64,
    pub active_opens_per_sec: f64,
    pub passive_opens_per_sec: f64,
    pub rst_closes_per_sec: f64,
    /// `None` when nothing was sent.
    pub retrans_ratio: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWait {
    pub total: u64,
    /// Local port is a listener's port: this host closed first as the server.
    pub server: u64,
    /// Any other local port: this host closed first as the client.
    pub client: u64,
    /// Distinct (remote IP, local IP, local port) among the server-side
    /// TIME-WAIT: each is one client address's pool of 4-tuples towards one
    /// listener, which bounds the server's TIME-WAIT (`teardown plan --from`).
    /// 0 in reports written before it existed.
    #[serde(default)]
    pub server_pools: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    /// Remote `ip:port`.
    pub destination: String,
    pub time_wait: u64,
    /// Client-side sockets to it in any state.
    pub sockets: u64,
    /// Distinct local ports inside `ip_local_port_range` held towards it, on
    /// the busiest local address (each address has its own pool of 4-tuples).
    pub ports_in_use: u64,
    /// Ports in `ip_local_port_range`.
    pub port_range: u32,
    /// `ports_in_use / port_range`.
    pub used: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rtt {
    /// ESTABLISHED sockets with a `tcpi_rtt`.
    pub samples: u64,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Memory {
    /// The TCP slab caches (whole host); `None` when /proc/slabinfo is not readable.
    pub slab: Option<BTreeMap<String, SlabCache>>,
    /// `TCP mem` of sockstat in bytes: buffer memory, whole host.
    pub tcp_mem_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlabCache {
    pub active_objs: u64,
    pub objsize: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockstatTcp {
    pub inuse: Option<u64>,
    pub orphan: Option<u64>,
    pub tw: Option<u64>,
    pub alloc: Option<u64>,
    pub mem_pages: Option<u64>,
    pub inuse6: Option<u64>,
}

impl Report {
    /// Parses a recording and computes the report.
    pub fn new(rec: &Recording, netns: Option<&str>) -> Result<Report, Error> {
        let counters = |c: &super::recording::RawCounters| -> Result<Counters, Error> {
            let mut all = Counters::parse("netstat", &c.netstat)?;
            all.add("snmp", &c.snmp)?;
            Ok(all)
        };
        let (before, after) = (counters(&rec.before)?, counters(&rec.after)?);
        let mut sockstat = Sockstat::parse("sockstat", &rec.now.sockstat)?;
        if let Some(t) = &rec.now.sockstat6 {
            sockstat.add("sockstat6", t)?;
        }
        let slab = rec
            .now
            .slabinfo
            .as_deref()
            .map(Slabinfo::parse)
            .transpose()?;
        let sysctl = Sysctls::parse(&rec.now.sysctl)?;
        let sockets = diag::parse(&rec.now.diag)?;
        let secs = rec.interval.as_secs_f64();

        let mut deltas: BTreeMap<String, u64> = COUNTERS
            .iter()
            .map(|(g, n)| (format!("{g}.{n}"), after.delta(&before, g, n)))
            .collect();
        for name in after
            .names("TcpExt")
            .filter(|n| n.starts_with("TCPAbortOn"))
        {
            deltas.insert(
                format!("TcpExt.{name}"),
                after.delta(&before, "TcpExt", name),
            );
        }
        let d = |key: &str| deltas.get(key).copied().unwrap_or(0) as f64;
        let rst: f64 = deltas
            .iter()
            .filter(|(k, _)| k.starts_with("TcpExt.TCPAbortOn"))
            .map(|(_, v)| *v as f64)
            .sum();
        let rates = Rates {
            closes_per_sec: (d("TcpExt.TW")
                + d("TcpExt.TWKilled")
                + d("TcpExt.TCPTimeWaitOverflow"))
                / secs,
            tw_overflow_per_sec: d("TcpExt.TCPTimeWaitOverflow") / secs,
            tw_recycled_per_sec: d("TcpExt.TWRecycled") / secs,
            active_opens_per_sec: d("Tcp.ActiveOpens") / secs,
            passive_opens_per_sec: d("Tcp.PassiveOpens") / secs,
            rst_closes_per_sec: rst / secs,
            retrans_ratio: (d("Tcp.OutSegs") > 0.0)
                .then(|| d("Tcp.RetransSegs") / d("Tcp.OutSegs")),
        };
        let pop = Populations::of(&sockets, sysctl.ip_local_port_range);
        Ok(Report {
            version: VERSION,
            netns: netns.map(str::to_string),
            interval_secs: secs,
            rates,
            counters: deltas,
            states: pop.states,
            time_wait: pop.time_wait,
            destinations: pop.destinations,
            rtt: pop.rtt,
            memory: Memory {
                slab: slab.map(|s| {
                    TCP_CACHES
                        .iter()
                        .chain(&TCP6_CACHES)
                        .filter_map(|name| {
                            let c = s.get(name)?;
                            Some((
                                name.to_string(),
                                SlabCache {
                                    active_objs: c.active_objs,
                                    objsize: c.objsize,
                                    bytes: c.active_bytes(),
                                },
                            ))
                        })
                        .collect()
                }),
                tcp_mem_bytes: sockstat.tcp_mem_bytes(),
            },
            sockstat: SockstatTcp {
                inuse: sockstat.get("TCP", "inuse"),
                orphan: sockstat.get("TCP", "orphan"),
                tw: sockstat.get("TCP", "tw"),
                alloc: sockstat.get("TCP", "alloc"),
                mem_pages: sockstat.get("TCP", "mem"),
                inuse6: sockstat.get("TCP6", "inuse"),
            },
            sysctl,
        })
    }
}

impl Report {
    /// Reads back a report written by `teardown observe --json` (the input of
    /// `teardown plan --from`).
    pub fn from_json(text: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// What the socket dump says.
pub struct Populations {
    pub states: BTreeMap<String, u64>,
    pub time_wait: TimeWait,
    pub destinations: Vec<Destination>,
    pub rtt: Rtt,
}

impl Populations {
    /// Counts the dump. A socket is server side when its local port is a
    /// listener's (any address): the side that accepted it.
    pub fn of(sockets: &[DiagSocket], range: PortRange) -> Populations {
        let mut states: BTreeMap<String, u64> = State::ALL
            .iter()
            .map(|s| TcpState::Conn(*s))
            .chain([TcpState::Listen])
            .map(|s| (s.key().to_string(), 0))
            .collect();
        let listening: BTreeSet<u16> = sockets
            .iter()
            .filter(|s| s.state == TcpState::Listen)
            .map(|s| s.local.port())
            .collect();
        let mut tw = TimeWait::default();
        let mut server_pools: BTreeSet<(IpAddr, SocketAddr)> = BTreeSet::new();
        #[derive(Default)]
        struct Dest {
            time_wait: u64,
            sockets: u64,
            ports: HashMap<IpAddr, BTreeSet<u16>>,
        }
        let mut dests: HashMap<SocketAddr, Dest> = HashMap::new();
        let mut rtt = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .expect("constant bounds are valid");
        for s in sockets {
            *states.entry(s.state.key().to_string()).or_default() += 1;
            if s.state == TcpState::Listen {
                continue;
            }
            let time_wait = s.state == TcpState::Conn(State::TimeWait);
            if s.state == TcpState::Conn(State::Established) {
                if let Some(us) = s.rtt_us {
                    rtt.saturating_record(u64::from(us).max(1));
                }
            }
            if listening.contains(&s.local.port()) {
                tw.server += u64::from(time_wait);
                if time_wait {
                    server_pools.insert((s.remote.ip(), s.local));
                }
                continue;
            }
            tw.client += u64::from(time_wait);
            let d = dests.entry(s.remote).or_default();
            d.time_wait += u64::from(time_wait);
            d.sockets += 1;
            if range.contains(s.local.port()) {
                d.ports
                    .entry(s.local.ip())
                    .or_default()
                    .insert(s.local.port());
            }
        }
        tw.total = tw.server + tw.client;
        tw.server_pools = server_pools.len() as u64;
        let mut destinations: Vec<Destination> = dests
            .into_iter()
            .map(|(addr, d)| {
                let ports = d.ports.values().map(|p| p.len() as u64).max().unwrap_or(0);
                Destination {
                    destination: addr.to_string(),
                    time_wait: d.time_wait,
                    sockets: d.sockets,
                    ports_in_use: ports,
                    port_range: range.size(),
                    used: ports as f64 / f64::from(range.size()),
                }
            })
            .collect();
        destinations.sort_by(|a, b| {
            (b.time_wait, b.sockets, &a.destination).cmp(&(a.time_wait, a.sockets, &b.destination))
        });
        let samples = rtt.len();
        let pct = |q: f64| (samples > 0).then(|| rtt.value_at_quantile(q));
        Populations {
            states,
            time_wait: tw,
            destinations,
            rtt: Rtt {
                samples,
                p50_us: pct(0.50),
                p99_us: pct(0.99),
            },
        }
    }
}

#[cfg(test)]
mod tests;
