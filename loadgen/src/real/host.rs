//! What the host's kernel did during a `--kernel-target` run, read once a
//! second on a thread of its own (a sock_diag dump of tens of thousands of
//! TIME-WAIT sockets takes milliseconds the event loop should not lose):
//! TIME-WAIT by side, the growth of the kernel's teardown counters, sockstat
//! and the `tw_sock_TCP` slab. Everything goes through `teardown::kernel`, the
//! readers `teardown observe` uses.
//!
//! TIME-WAIT by side, from the sock_diag dump of the namespace the sockets
//! live in: a socket whose local address (ip:port) is the target's is the
//! server's (it closed first); one whose remote address is the target's is
//! loadgen's (the client closed first); any other TIME-WAIT in the namespace
//! (another program's, or a proxy's connections to its upstream) is `other`.
//! On loopback both ends are on this host and the two sides are told apart by
//! which end is the target's address, not by which host holds them. With
//! `--netns` the server's side is read inside its namespace, and that
//! namespace's counters (the server's alone) are reported as well.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use teardown::kernel::netstat::Counters;
use teardown::kernel::slabinfo::{self, Slabinfo};
use teardown::kernel::sockstat::Sockstat;
use teardown::kernel::state::TcpState;
use teardown::kernel::{diag, netns, PROC_NET};
use teardown_engine::State;

/// The counters whose growth is reported, by (group, name, report section).
pub const COUNTERS: [(&str, &str, &str); 11] = [
    ("TcpExt", "TW", "netstat"),
    ("TcpExt", "TWKilled", "netstat"),
    ("TcpExt", "TWRecycled", "netstat"),
    ("TcpExt", "TCPTimeWaitOverflow", "netstat"),
    ("TcpExt", "TCPAbortOnData", "netstat"),
    ("TcpExt", "TCPAbortOnClose", "netstat"),
    ("TcpExt", "TCPAbortOnTimeout", "netstat"),
    ("Tcp", "ActiveOpens", "snmp"),
    ("Tcp", "PassiveOpens", "snmp"),
    ("Tcp", "OutSegs", "snmp"),
    ("Tcp", "RetransSegs", "snmp"),
];

/// How far the run got, published by the event loop for the sampler.
#[derive(Debug, Default)]
pub struct Progress {
    pub started: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
}

/// TIME-WAIT sockets by side (see the module doc).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sides {
    pub server: u64,
    pub client: u64,
    pub other: u64,
}

impl Sides {
    /// Counts the TIME-WAIT sockets of a dump against the target's address.
    pub fn of(sockets: &[diag::DiagSocket], target: SocketAddr) -> Sides {
        let mut s = Sides::default();
        for sock in sockets
            .iter()
            .filter(|s| s.state == TcpState::Conn(State::TimeWait))
        {
            if sock.local == target {
                s.server += 1;
            } else if sock.remote == target {
                s.client += 1;
            } else {
                s.other += 1;
            }
        }
        s
    }

    fn max(self, o: Sides) -> Sides {
        Sides {
            server: self.server.max(o.server),
            client: self.client.max(o.client),
            other: self.other.max(o.other),
        }
    }
}

/// One reading of the namespace.
#[derive(Clone, Debug, Default)]
struct Reading {
    /// The [`COUNTERS`], in order (0 where this kernel lacks one).
    counters: [u64; COUNTERS.len()],
    time_wait: Sides,
    /// sockstat `TCP tw`, `orphan`, `inuse`.
    sockstat: [u64; 3],
    /// `tw_sock_TCP` active objects × object size; `None` when slabinfo is unreadable.
    tw_slab_bytes: Option<u64>,
}

fn read(target: SocketAddr) -> Result<Reading, teardown::kernel::Error> {
    let proc_net = Path::new(PROC_NET);
    let c = Counters::read(proc_net)?;
    let counters = COUNTERS.map(|(g, n, _)| c.get(g, n).unwrap_or(0).max(0) as u64);
    let st = Sockstat::read(proc_net)?;
    let sockstat = ["tw", "orphan", "inuse"].map(|k| st.get("TCP", k).unwrap_or(0));
    let tw_slab_bytes = Slabinfo::read(Path::new(slabinfo::PATH))
        .ok()
        .and_then(|s| s.get("tw_sock_TCP"))
        .map(|c| c.active_bytes());
    Ok(Reading {
        counters,
        time_wait: Sides::of(&diag::dump()?, target),
        sockstat,
        tw_slab_bytes,
    })
}

/// A reading with what the run had done by then.
#[derive(Clone, Debug)]
struct Sample {
    secs: f64,
    /// What the run had done; `None` when the run is in other processes.
    started: Option<u64>,
    completed: Option<u64>,
    errors: Option<u64>,
    /// loadgen's own namespace.
    reading: Reading,
    /// The server's namespace, with `--netns`.
    server: Option<Reading>,
}

impl Sample {
    /// TIME-WAIT by side: the server's from its namespace when it has one.
    fn sides(&self) -> Sides {
        match &self.server {
            Some(r) => Sides {
                server: r.time_wait.server,
                ..self.reading.time_wait
            },
            None => self.reading.time_wait,
        }
    }
}

/// The sampler thread; [`Watch::stop`] takes a last reading and gives the report.
pub struct Watch {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<anyhow::Result<Vec<Sample>>>,
}

impl Watch {
    /// Takes a first reading now (so that errors show before any traffic),
    /// then one a second. `server_netns`: the server's namespace, read too.
    /// `progress`: the run's, when it is in this process (`--workers` runs it
    /// in others).
    pub fn start(
        target: SocketAddr,
        server_netns: Option<String>,
        progress: Option<Arc<Progress>>,
    ) -> anyhow::Result<Watch> {
        let started = Instant::now();
        let take = move |p: Option<&Progress>| -> anyhow::Result<Sample> {
            let reading = read(target)?;
            let server = match &server_netns {
                Some(ns) => Some(netns::run_in(Some(ns), || read(target))??),
                None => None,
            };
            Ok(Sample {
                secs: started.elapsed().as_secs_f64(),
                started: p.map(|p| p.started.load(Relaxed)),
                completed: p.map(|p| p.completed.load(Relaxed)),
                errors: p.map(|p| p.errors.load(Relaxed)),
                reading,
                server,
            })
        };
        let first = take(progress.as_deref())?;
        let (stop, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("host-readings".into())
            .spawn(move || {
                let mut samples = vec![first];
                let mut next = Duration::from_secs(1);
                loop {
                    let wait = next.saturating_sub(started.elapsed());
                    let last = match rx.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => false,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => true,
                    };
                    samples.push(take(progress.as_deref())?);
                    if last {
                        return Ok(samples);
                    }
                    next += Duration::from_secs(1);
                }
            })?;
        Ok(Watch { stop, thread })
    }

    /// Stops the sampler after one last reading and returns the report's
    /// `time_wait`, `kernel` and `series` sections.
    pub fn stop(self) -> anyhow::Result<Map<String, Value>> {
        let _ = self.stop.send(());
        let samples = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the host-readings thread panicked"))??;
        Ok(report(&samples))
    }
}

/// The report's sections from the samples (the first is the baseline).
fn report(samples: &[Sample]) -> Map<String, Value> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Map::new();
    };
    let peak = samples
        .iter()
        .fold(Sides::default(), |p, s| p.max(s.sides()));
    let series: Vec<Value> = samples
        .windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            json!({
                "t_secs": b.secs,
                "secs": b.secs - a.secs,
                "started": growth(a.started, b.started),
                "completed": growth(a.completed, b.completed),
                "errors": growth(a.errors, b.errors),
                "time_wait": sides_json(b.sides()),
                "sockstat": sockstat_json(&b.reading),
                "tw_slab_bytes": b.reading.tw_slab_bytes,
                "netstat": deltas("netstat", &a.reading, &b.reading),
                "snmp": deltas("snmp", &a.reading, &b.reading),
                "server_netns": match (&a.server, &b.server) {
                    (Some(x), Some(y)) => json!({
                        "sockstat": sockstat_json(y),
                        "netstat": deltas("netstat", x, y),
                        "snmp": deltas("snmp", x, y),
                    }),
                    _ => Value::Null,
                },
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert(
        "time_wait".into(),
        json!({
            "server_peak": peak.server,
            "client_peak": peak.client,
            "other_peak": peak.other,
            "server_at_start": first.sides().server,
            "client_at_start": first.sides().client,
            "server_at_end": last.sides().server,
            "client_at_end": last.sides().client,
        }),
    );
    let readings: Vec<&Reading> = samples.iter().map(|s| &s.reading).collect();
    out.insert("kernel".into(), kernel_json(&readings));
    let server: Option<Vec<&Reading>> = samples.iter().map(|s| s.server.as_ref()).collect();
    if let Some(server) = server {
        out.insert(
            "server_netns".into(),
            json!({ "kernel": kernel_json(&server) }),
        );
    }
    out.insert("series".into(), Value::Array(series));
    out
}

/// How much a progress count grew between two samples.
fn growth(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b? - a?.min(b?))
}

/// Growth of one section's [`COUNTERS`] between two readings.
fn deltas(section: &str, from: &Reading, to: &Reading) -> Map<String, Value> {
    COUNTERS
        .iter()
        .enumerate()
        .filter(|(_, (_, _, s))| *s == section)
        .map(|(i, (_, name, _))| {
            (
                name.to_string(),
                json!(to.counters[i].saturating_sub(from.counters[i])),
            )
        })
        .collect()
}

/// A namespace's `kernel` section from its readings, first to last.
fn kernel_json(readings: &[&Reading]) -> Value {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return Value::Null;
    };
    let sockstat_peak = |i: usize| readings.iter().map(|r| r.sockstat[i]).max();
    json!({
        "netstat": deltas("netstat", first, last),
        "snmp": deltas("snmp", first, last),
        "sockstat": {
            "tw_peak": sockstat_peak(0),
            "orphan_peak": sockstat_peak(1),
            "inuse_peak": sockstat_peak(2),
        },
        "tw_slab_bytes_peak": readings.iter().filter_map(|r| r.tw_slab_bytes).max(),
        "samples": readings.len(),
    })
}

fn sockstat_json(r: &Reading) -> Value {
    json!({ "tw": r.sockstat[0], "orphan": r.sockstat[1], "inuse": r.sockstat[2] })
}

/// Adds `time_wait.entered_by_others` and, when there were any, a note to
/// the whole report: TIME-WAIT the kernel counted (`TW`, loadgen's namespace
/// plus the server's) beyond one per connection loadgen saw closed by a FIN.
/// Each FIN close leaves one TIME-WAIT, on one side; a proxy between loadgen
/// and the server leaves another per upstream connection, which the side
/// counts (by the target's address) do not see and the host's counters do.
pub fn note_others(report: &mut Value) {
    let get = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let entered = get("/kernel/netstat/TW") + get("/server_netns/kernel/netstat/TW");
    let fin_closes = get("/closed_by/server_fin") + get("/closed_by/client_fin");
    let others = entered.saturating_sub(fin_closes);
    let other_peak = get("/time_wait/other_peak");
    report["time_wait"]["entered_by_others"] = json!(others);
    if others > 0 || other_peak > 0 {
        report["notes"] = json!([format!(
            "{others} TIME-WAIT entries (kernel TW +{entered} against {fin_closes} FIN-closed \
             connections of this run) and a peak of {other_peak} TIME-WAIT sockets were \
             between other endpoints than loadgen and the target, such as a proxy and its \
             upstream or other programs: the host-wide counters (kernel.netstat.TW, \
             kernel.sockstat.tw_peak, tw_slab_bytes_peak) include them, \
             time_wait.server_peak and client_peak do not"
        )]);
    }
}

fn sides_json(s: Sides) -> Value {
    json!({ "server": s.server, "client": s.client, "other": s.other })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn tw(local: &str, remote: &str) -> diag::DiagSocket {
        diag::DiagSocket {
            state: TcpState::Conn(State::TimeWait),
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            rtt_us: None,
        }
    }

    #[test]
    fn sides_are_told_apart_by_which_end_is_the_target() {
        let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), 80);
        let mut sockets = vec![
            tw("127.0.0.9:80", "127.0.0.1:40000"),
            tw("127.0.0.9:80", "127.0.0.2:40001"),
            tw("127.0.0.1:40002", "127.0.0.9:80"),
            // Same port, another address: a proxy's upstream, not the target.
            tw("127.0.0.1:40003", "127.0.0.8:80"),
        ];
        let mut established = tw("127.0.0.9:80", "127.0.0.1:40004");
        established.state = TcpState::Conn(State::Established);
        sockets.push(established);
        let s = Sides::of(&sockets, target);
        assert_eq!(
            s,
            Sides {
                server: 2,
                client: 1,
                other: 1
            }
        );
    }

    fn sample(secs: f64, completed: u64, tw: u64, server: u64) -> Sample {
        let mut reading = Reading::default();
        reading.counters[0] = tw;
        reading.counters[10] = 2 * tw;
        reading.time_wait.server = server;
        reading.sockstat = [server, 0, 1];
        Sample {
            secs,
            started: Some(completed),
            completed: Some(completed),
            errors: Some(0),
            reading,
            server: None,
        }
    }

    #[test]
    fn time_wait_beyond_the_runs_fin_closes_is_noted() {
        let mut r = json!({
            "closed_by": {"server_fin": 300, "client_fin": 0},
            "kernel": {"netstat": {"TW": 600}},
            "time_wait": {"other_peak": 300},
        });
        note_others(&mut r);
        assert_eq!(r["time_wait"]["entered_by_others"], 300);
        let note = r["notes"][0].as_str().unwrap();
        assert!(
            note.starts_with("300 TIME-WAIT entries (kernel TW +600 against 300"),
            "{note}"
        );
        let mut quiet = json!({
            "closed_by": {"server_fin": 10, "client_fin": 5},
            "kernel": {"netstat": {"TW": 15}},
            "server_netns": {"kernel": {"netstat": {"TW": 0}}},
            "time_wait": {"other_peak": 0},
        });
        note_others(&mut quiet);
        assert_eq!(quiet["time_wait"]["entered_by_others"], 0);
        assert_eq!(quiet.get("notes"), None);
    }

    #[test]
    fn deltas_peaks_and_series() {
        let r = Value::Object(report(&[
            sample(0.0, 0, 100, 5),
            sample(1.0, 40, 140, 45),
            sample(1.5, 50, 150, 30),
        ]));
        assert_eq!(r["kernel"]["netstat"]["TW"], 50);
        assert_eq!(r["kernel"]["snmp"]["RetransSegs"], 100);
        assert_eq!(r["kernel"]["netstat"].get("RetransSegs"), None);
        assert_eq!(r["time_wait"]["server_peak"], 45);
        assert_eq!(r["time_wait"]["server_at_start"], 5);
        assert_eq!(r["kernel"]["sockstat"]["tw_peak"], 45);
        assert_eq!(r["kernel"]["tw_slab_bytes_peak"], Value::Null);
        let series = r["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0]["completed"], 40);
        assert_eq!(series[1]["completed"], 10);
        assert_eq!(series[1]["netstat"]["TW"], 10);
        assert_eq!(series[1]["time_wait"]["server"], 30);
    }
}
