//! `--kernel --kernel-target ADDR`: churn any listening TCP server with real
//! kernel sockets and report how each connection went and how it ended.
//!
//! One thread, one mio `Poll`, a slab of connection slots (token = slot). Two
//! ways to start connections:
//!
//! * closed model (`--rate 0`): keep `--concurrency` connections live; a new one
//!   starts when one ends.
//! * open model (`--rate R`): the i-th connection is due at `start + i / R`,
//!   whether or not earlier ones have ended. Its latencies are measured from
//!   that intended start, so a stall (of the server, or of loadgen) counts
//!   against every connection it delayed: the coordinated-omission correction
//!   of wrk2. `--concurrency` still caps live sockets; a start delayed by the
//!   cap or by loadgen falling behind is counted in `late_starts`.
//!
//! Connections open until `--connections` have started or `--duration` has
//! passed; the run then waits for the live ones, up to `--timeout`.

pub mod conn;
pub mod host;
pub mod http;
pub mod lab;
pub mod plot;
pub mod report;
pub mod shard;
pub mod workload;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};

use crate::{sock, Args, PerSecond, Report};
use conn::{Conn, Plan, Verdict};
use report::Tally;

/// Descriptors kept free below the soft limit (stdio, epoll, the JSON file).
const FD_HEADROOM: u64 = 64;
/// Most connections started between two polls.
const OPEN_BATCH: usize = 512;
/// A start later than this after its intended time counts as late.
const LATE: Duration = Duration::from_millis(1);

/// The source of the `i`-th connection: `--source-ips` in turn (or the
/// kernel's choice), and with `--source-ports` a port of that range, moving on
/// to the next port once every address has had the current one.
fn source(
    ips: Option<(Ipv4Addr, Ipv4Addr)>,
    ports: Option<(u16, u16)>,
    i: u64,
) -> (Option<Ipv4Addr>, Option<u16>) {
    let n_ips = ips.map_or(1, |(lo, hi)| u64::from(u32::from(hi) - u32::from(lo)) + 1);
    let ip = ips.map(|(lo, _)| Ipv4Addr::from(u32::from(lo) + (i % n_ips) as u32));
    let port = ports.map(|(lo, hi)| {
        let n = u64::from(hi - lo) + 1;
        lo + ((i / n_ips) % n) as u16
    });
    (ip, port)
}

/// A shard's slice of a range. The workers of one process may share a range
/// shorter than their count (the kernel keeps their ports apart); shards given
/// by hand may not.
fn share<T>(slice: Result<T, String>, whole: T, worker: bool) -> anyhow::Result<T> {
    match slice {
        Err(_) if worker => Ok(whole),
        r => r.map_err(anyhow::Error::msg),
    }
}

/// `args` with `--shard`'s share of the rate, connections and source ranges.
fn sharded(args: &Args) -> anyhow::Result<Args> {
    let mut a = args.clone();
    if let Some(s) = args.shard {
        a.rate = s.rate_of(args.rate);
        a.connections = s.count_of(args.connections);
        a.source_ips = match args.source_ips {
            Some(r) => Some(share(s.ips_of(r), r, args.worker)?),
            None => None,
        };
        a.source_ports = match args.source_ports {
            Some(r) => Some(share(s.ports_of(r), r, args.worker)?),
            None => None,
        };
    }
    Ok(a)
}

/// The slots and the poll they are registered with.
struct Slots {
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
}

impl Slots {
    fn live(&self) -> usize {
        self.conns.len() - self.free.len()
    }

    /// Ends the connection in `slot` and tallies it.
    fn finish(&mut self, slot: usize, tally: &mut Tally) {
        if let Some(mut c) = self.conns[slot].take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
            tally.record(&c.finish());
            self.free.push(slot);
        }
    }
}

/// Tells the host sampler how far the run got.
fn publish(p: &host::Progress, t: &Tally) {
    p.started.store(t.connections, Relaxed);
    p.completed.store(t.completed, Relaxed);
    p.errors.store(t.error_total(), Relaxed);
}

/// Runs against `--kernel-target`, or against `--server-cmd` in a namespace of
/// its own with `--netns` (torn down on return, also on SIGINT/SIGTERM, which
/// end the run early with an error).
pub fn run(args: &Args) -> anyhow::Result<Report> {
    if args.workers > 1 {
        return crate::workers::run(args);
    }
    let args = &sharded(args)?;
    if args.netns {
        return with_lab(args, |lab, target, interrupted| {
            drive(args, target, Some(lab.name.clone()), interrupted)
        });
    }
    let target = args
        .kernel_target
        .context("--kernel-target or --netns is needed")?;
    drive(args, target, None, &AtomicBool::new(false))
}

/// A flag that SIGINT, SIGTERM or SIGHUP (the terminal gone) sets while
/// this lives, in place of their default action (which would end the
/// process and leave what it started).
pub(crate) struct Interrupt {
    pub(crate) flag: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Interrupt {
    pub(crate) fn on_signals() -> anyhow::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        for signal in [SIGINT, SIGTERM, SIGHUP] {
            ids.push(signal_hook::flag::register(signal, flag.clone())?);
        }
        Ok(Interrupt { flag, ids })
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        for &id in &self.ids {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// `--netns`: creates the namespace, starts `--server-cmd` there, applies
/// `--loss`, and runs `f` against the server with a flag that SIGINT or
/// SIGTERM sets; the namespace goes when this returns, however it returns.
pub fn with_lab(
    args: &Args,
    f: impl FnOnce(&lab::Lab, SocketAddr, &AtomicBool) -> anyhow::Result<Report>,
) -> anyhow::Result<Report> {
    let cmd = args
        .server_cmd
        .as_deref()
        .context("--netns needs --server-cmd")?;
    let signals = Interrupt::on_signals()?;
    let interrupted = &signals.flag;
    (|| {
        let mut lab = lab::Lab::create()?;
        if let Some(range) = args.source_ips {
            lab.add_client_ips(range)?;
        }
        lab.start_server(cmd, args.netns_port, interrupted)?;
        if args.loss > 0.0 {
            lab.set_loss(args.loss)?;
        }
        let mut report = f(&lab, lab.target(args.netns_port), interrupted)?;
        report.json["netns"] = lab.json(args.netns_port, cmd);
        Ok(report)
    })()
}

fn drive(
    args: &Args,
    target: SocketAddr,
    server_netns: Option<String>,
    interrupted: &AtomicBool,
) -> anyhow::Result<Report> {
    let dst = target;
    let (soft, hard) = sock::nofile()?;
    let soft = sock::raise_nofile().unwrap_or(soft);
    let concurrency =
        (args.concurrency as u64).min(soft.saturating_sub(FD_HEADROOM).max(1)) as usize;
    if concurrency < args.concurrency {
        eprintln!("loadgen: --concurrency lowered to {concurrency} (descriptor limit {soft})");
    }
    let plan = Plan {
        bytes: workload::request_bytes(
            &args.request,
            args.close,
            args.http_version,
            &dst.to_string(),
            &args.path,
        ),
        request: args.request.clone(),
        close: args.close,
    };
    let mut slots = Slots {
        poll: Poll::new()?,
        conns: (0..concurrency).map(|_| None).collect(),
        free: (0..concurrency).rev().collect(),
    };
    let mut events = Events::with_capacity(1024);
    let mut tally = Tally::default();
    let progress = Arc::new(host::Progress::default());
    // A worker of --workers leaves the host's readings to its parent.
    let watch = match args.worker {
        true => None,
        false => Some(host::Watch::start(
            target,
            server_netns,
            Some(progress.clone()),
        )?),
    };
    let mut live_peak = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let open_model = args.rate > 0.0;
    let started = Instant::now();
    let stop_opening = args.duration.map(|d| started + d);
    let mut seconds = PerSecond::new(started);
    let (mut late_starts, mut last_end) = (0u64, started);
    loop {
        let now = Instant::now();
        let intended = |i: u64| {
            if open_model {
                started + Duration::from_secs_f64(i as f64 / args.rate)
            } else {
                now
            }
        };
        let opening = |i: u64| match stop_opening {
            Some(end) => intended(i) < end,
            None => i < args.connections,
        };
        // Start what is due, as far as slots allow.
        let mut backoff = false;
        for _ in 0..OPEN_BATCH {
            let i = tally.connections;
            let due = intended(i);
            if !opening(i) || due > now {
                break;
            }
            let Some(slot) = slots.free.pop() else { break };
            tally.connections += 1;
            late_starts += (now - due > LATE) as u64;
            let (ip, port) = source(args.source_ips, args.source_ports, i);
            match sock::connect(ip, port, dst) {
                Ok(mut s) => {
                    slots.poll.registry().register(
                        &mut s,
                        Token(slot),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    slots.conns[slot] = Some(Conn::new(s, due, &plan));
                }
                Err(e) => {
                    // Out of ports or descriptors: let time pass before the next try.
                    slots.free.push(slot);
                    tally.error(sock::errno_key(&e));
                    last_end = Instant::now();
                    backoff = true;
                    break;
                }
            }
        }
        let more = opening(tally.connections);
        seconds.sample(tally.completed, more);
        publish(&progress, &tally);
        live_peak = live_peak.max(slots.live());
        if (!more && slots.live() == 0)
            || started.elapsed() >= args.timeout
            || interrupted.load(Relaxed)
        {
            break;
        }
        let next_due = intended(tally.connections);
        let wait = if backoff {
            Duration::from_millis(1)
        } else if more && !slots.free.is_empty() {
            next_due.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(50)
        };
        match slots
            .poll
            .poll(&mut events, Some(wait.min(Duration::from_millis(50))))
        {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in events.iter() {
            let slot = ev.token().0;
            let Some(c) = slots.conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if let Verdict::Done = c.on_event(&plan, &mut buf) {
                slots.finish(slot, &mut tally);
                last_end = Instant::now();
            }
        }
    }
    let elapsed = started.elapsed();
    // Whatever is still live at the timeout is left unfinished: closed here, uncounted.
    let unfinished = slots.live() as u64;
    drop(slots);
    let readings = watch
        .map(host::Watch::stop)
        .transpose()?
        .unwrap_or_default();
    if interrupted.load(Relaxed) {
        anyhow::bail!(
            "interrupted by a signal after {} connections",
            tally.connections
        );
    }
    let window = (last_end - started).as_secs_f64();
    let mut json = tally.json()?;
    let extra = json!({
        "mode": "kernel-target",
        "target": target.to_string(),
        "unfinished": unfinished,
        "live_peak": live_peak,
        "leaked": unfinished,
        "late_starts": late_starts,
        "completed_per_sec": if window > 0.0 { tally.completed as f64 / window } else { 0.0 },
        "window_secs": window,
        "elapsed_secs": elapsed.as_secs_f64(),
        "per_second": seconds.summary(),
        "cpu_secs": teardown::service::net::cpu_secs(),
        "config": {
            "request": args.request.to_string(),
            "close": format!("{:?}", args.close).to_lowercase(),
            "http_version": format!("{:?}", args.http_version),
            "path": args.path,
            "model": if open_model { "open" } else { "closed" },
            "rate": args.rate,
            "concurrency": concurrency,
            "connections": args.duration.is_none().then_some(args.connections),
            "duration_secs": args.duration.map(|d| d.as_secs_f64()),
            "source_ips": args.source_ips.map(|(a, b)| format!("{a}-{b}")),
            "source_ports": args.source_ports.map(|(a, b)| format!("{a}-{b}")),
            "shard": args.shard.map(|s| s.to_string()),
            "nofile": { "soft": soft, "hard": hard },
        },
    });
    if let Value::Object(m) = extra {
        json.extend(m);
    }
    json.extend(readings);
    let mut json = Value::Object(json);
    host::note_others(&mut json);
    if let Some(dir) = &args.plot {
        for path in plot::draw(dir, &json)? {
            eprintln!("loadgen: wrote {}", path.display());
        }
    }
    Ok(Report {
        json,
        leaked: unfinished,
    })
}

/// `--source-ips A-B`: an inclusive IPv4 range (one address alone is `A`).
pub fn parse_source_ips(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let ip = |t: &str| {
        t.trim()
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("'{t}' is not an IPv4 address"))
    };
    let (lo, hi) = (ip(a)?, ip(b)?);
    if lo > hi {
        return Err(format!("'{s}': the range must run low to high"));
    }
    Ok((lo, hi))
}

/// Whether a target may be driven: loopback, or explicitly allowed.
pub fn target_allowed(target: SocketAddr, allow_non_loopback: bool) -> bool {
    target.ip().is_loopback() || allow_non_loopback
}

#[cfg(test)]
mod tests;
