//! `teardown serve`: the engine as a server behind real UDP sockets, on a real clock.
//!
//! One mio event loop per worker thread, each owning one [`Host`](teardown_engine::host::Host) shard and one UDP
//! socket. Worker `i` listens on the listen port + `i`; a client sends every segment
//! of a 4-tuple to the worker [`route`] names, so each tuple lives in exactly one
//! shard and no lock is taken on the datagram path. Replies go back to the UDP
//! address the segment's simulated destination IP was last heard from.
//!
//! A control thread runs a second mio loop: signals, `GET /metrics`, the optional
//! kernel listener (`--kernel-listen`) and a 10 ms sampler of host-wide peaks. It
//! is a separate thread so that a scrape never delays a worker's datagrams and the
//! workers stay identical; it sleeps almost all the time.

mod args;
mod clock;
mod control;
pub mod metrics;
pub mod net;
mod peers;
pub mod procs;
mod report;
mod worker;

pub use args::{check_time_scale, validate, CloseMode, ServeArgs};
use args::{host_config, worker_count};
pub use clock::Clock;
use report::{final_report, Sampled, WorkerFinal};
pub use report::{not_orderly, NOT_ORDERLY};

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use teardown_engine::tuple::{shard_of, Tuple};

/// The simulated server address every client connects to: 10.0.0.1 port 80.
pub const SERVER_IP: [u8; 4] = [10, 0, 0, 1];
pub const SERVER_PORT: u16 = 80;
/// The shard key clients and server agree on for [`route`]. Fixed and public: the
/// routing only spreads load; the tables use their own secret key.
pub const ROUTE_KEY: u64 = 0x7464_726f_7574_6531;

/// Accept backlog of `--kernel-listen` (capped by `net.core.somaxconn`, 4,096 here).
const KERNEL_BACKLOG: i32 = 65_535;

/// The worker (UDP socket, listen port + index) that owns `tuple`, named as the
/// server sees it (local = server).
#[inline]
pub fn route(server_tuple: &Tuple, workers: usize) -> usize {
    shard_of(server_tuple, workers, ROUTE_KEY)
}

/// A running service (the binary's, or a test's in-process one).
pub struct Server {
    udp: SocketAddr,
    metrics: SocketAddr,
    kernel: Option<SocketAddr>,
    workers: usize,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    control: JoinHandle<anyhow::Result<Value>>,
}

impl Server {
    /// Binds every socket and starts the threads. With `signals` the control loop
    /// also stops on SIGINT/SIGTERM.
    pub fn start(args: &ServeArgs, signals: bool) -> anyhow::Result<Server> {
        validate(args)?;
        let workers = worker_count(args);
        let sockets = net::bind_consecutive(args.listen, workers)?;
        let udp = sockets[0].local_addr()?;
        let metrics_listener = mio::net::TcpListener::bind(args.metrics)
            .with_context(|| format!("binding metrics on {}", args.metrics))?;
        let metrics_addr = metrics_listener.local_addr()?;
        let kernel_listener = match args.kernel_listen {
            Some(a) if args.process_of.is_some() => Some(mio::net::TcpListener::from_std(
                net::bind_reuseport(a, KERNEL_BACKLOG)?,
            )),
            Some(a) => {
                let l = mio::net::TcpListener::bind(a)
                    .with_context(|| format!("binding kernel listener on {a}"))?;
                // As many as somaxconn allows: a full accept queue silently drops
                // handshakes, which would measure the queue, not the teardown.
                net::set_backlog(&l, KERNEL_BACKLOG)?;
                Some(l)
            }
            None => None,
        };
        let kernel = match &kernel_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let clock = Clock::new(args.time_scale);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(metrics::Shared::new(workers, args.time_scale));
        let mut handles = Vec::with_capacity(workers);
        let mut wakers = Vec::with_capacity(workers);
        for (i, socket) in sockets.into_iter().enumerate() {
            let w = worker::Worker::new(
                i,
                workers,
                socket,
                host_config(args, workers),
                args,
                clock,
                Arc::clone(&shared),
                Arc::clone(&stop),
            )?;
            wakers.push(w.waker());
            let ended = StopOnExit(Arc::clone(&stop));
            handles.push(
                std::thread::Builder::new()
                    .name(format!("serve-{i}"))
                    .spawn(move || {
                        let _ended = ended;
                        w.run()
                    })?,
            );
        }
        let kernel_hold = match args.close {
            CloseMode::Server => clock.to_real(args.hold),
            CloseMode::Client => Duration::ZERO,
        };
        if kernel_listener.is_some() && !kernel_hold.is_zero() {
            // Held connections keep their descriptors: as many as allowed.
            net::raise_nofile()?;
        }
        let control = control::Control::new(
            metrics_listener,
            kernel_listener,
            kernel_hold,
            signals,
            Arc::clone(&shared),
            Arc::clone(&stop),
            wakers,
        )?;
        let waker = control.waker();
        let json = args.json.clone();
        let control = std::thread::Builder::new()
            .name("serve-control".into())
            .spawn(move || {
                let sampled = control.run()?;
                let mut finals = Vec::with_capacity(handles.len());
                for h in handles {
                    let f = h
                        .join()
                        .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
                    finals.push(f);
                }
                let report = final_report(&finals, &sampled, &shared);
                if let Some(path) = &json {
                    net::write_atomically(path, &serde_json::to_vec_pretty(&report)?)?;
                }
                Ok(report)
            })?;
        Ok(Server {
            udp,
            metrics: metrics_addr,
            kernel,
            workers,
            stop,
            waker,
            control,
        })
    }

    /// UDP address of worker 0.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
    }

    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Stops the threads (as SIGTERM does) and returns the final report.
    pub fn stop(self) -> anyhow::Result<Value> {
        self.stop.store(true, Relaxed);
        self.waker.wake()?;
        self.wait()
    }

    /// Waits until a signal stops the service; returns the final report.
    pub fn wait(self) -> anyhow::Result<Value> {
        self.control
            .join()
            .map_err(|_| anyhow::anyhow!("the control thread panicked"))?
    }

    /// The line the binary prints once it is serving; `loadgen --spawn-server` reads it.
    pub fn ready_line(&self) -> String {
        let kernel = self
            .kernel
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into());
        format!(
            "serving udp={} workers={} metrics={} kernel={}",
            self.udp, self.workers, self.metrics, kernel
        )
    }
}

/// `teardown serve`.
pub fn main(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.processes > 1 {
        return procs::main(&args);
    }
    if let Some(parent) = args.process_of.or(args.parent) {
        procs::follow_parent(parent)?;
    }
    let server = Server::start(&args, true)?;
    println!("{}", server.ready_line());
    let report = server.wait()?;
    if let Some(line) = report["summary"].as_str() {
        // Whoever started us may have stopped reading stdout after the ready
        // line; the summary is also in the JSON report, so a closed pipe is fine.
        let _ = writeln!(std::io::stdout(), "{line}");
    }
    eprintln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Held by a worker thread: however it ends, by the stop it was asked for,
/// an error or a panic, the whole server stops, so that a dead shard is not
/// served around (its tuples dropped unseen) until someone signals.
struct StopOnExit(Arc<AtomicBool>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_panics_stops_the_server() {
        let stop = Arc::new(AtomicBool::new(false));
        let ended = StopOnExit(Arc::clone(&stop));
        let worker = std::thread::spawn(move || {
            let _ended = ended;
            panic!("a worker's bug");
        });
        assert!(worker.join().is_err());
        assert!(stop.load(Relaxed));
    }

    #[test]
    fn route_is_stable_and_spreads() {
        let mut counts = [0; 3];
        for p in 0..3000u16 {
            let t = Tuple::new(SERVER_IP, SERVER_PORT, [10, 1, 0, 1], 32_768 + p);
            let r = route(&t, 3);
            assert_eq!(r, route(&t, 3));
            counts[r] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
