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

use serde_json::{Map, Value};
use teardown::kernel::netstat::Counters;
use teardown::kernel::slabinfo::{self, Slabinfo};
use teardown::kernel::sockstat::Sockstat;
use teardown::kernel::state::TcpState;
use teardown::kernel::{diag, netns, PROC_NET};
use teardown_engine::State;

mod report;
pub use report::note_others;

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

    pub(super) fn max(self, o: Sides) -> Sides {
        Sides {
            server: self.server.max(o.server),
            client: self.client.max(o.client),
            other: self.other.max(o.other),
        }
    }
}

/// One reading of the namespace.
#[derive(Clone, Debug, Default)]
pub(super) struct Reading {
    /// The [`COUNTERS`], in order (0 where this kernel lacks one).
    pub(super) counters: [u64; COUNTERS.len()],
    pub(super) time_wait: Sides,
    /// sockstat `TCP tw`, `orphan`, `inuse`.
    pub(super) sockstat: [u64; 3],
    /// `tw_sock_TCP` active objects × object size; `None` when slabinfo is unreadable.
    pub(super) tw_slab_bytes: Option<u64>,
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
        time_wait: Sides::of(&diag::dump_time_wait()?, target),
        sockstat,
        tw_slab_bytes,
    })
}

/// A reading with what the run had done by then.
#[derive(Clone, Debug)]
pub(super) struct Sample {
    pub(super) secs: f64,
    /// What the run had done; `None` when the run is in other processes.
    pub(super) started: Option<u64>,
    pub(super) completed: Option<u64>,
    pub(super) errors: Option<u64>,
    /// loadgen's own namespace.
    pub(super) reading: Reading,
    /// The server's namespace, with `--netns`.
    pub(super) server: Option<Reading>,
}

impl Sample {
    /// TIME-WAIT by side: the server's from its namespace when it has one.
    pub(super) fn sides(&self) -> Sides {
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
        Ok(report::sections(&samples))
    }
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
}
