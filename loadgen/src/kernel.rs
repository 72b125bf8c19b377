//! `--kernel`: the same open/close workload over real kernel TCP sockets on
//! loopback, against a close-heavy server (`teardown serve --kernel-listen`):
//! connect, wait for the server's FIN, close. Reports the kernel's close rate and
//! its TIME-WAIT population and `tw_sock_TCP` slab beside what the model
//! predicts for the same rate (rate × 60 s entries, 256 B each, capped by
//! `tcp_max_tw_buckets`).

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde_json::json;

use crate::report::latency;
use crate::{sock, Args, Report};

/// `teardown serve --kernel-listen`'s address when --spawn-server does not give one.
pub const DEFAULT_TARGET: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7172));

/// Descriptors kept free below the soft limit (the metrics scrape, stdio, epoll).
const FD_HEADROOM: u64 = 1000;
const OPEN_BATCH: u64 = 512;
/// Linux's TIME-WAIT length (TCP_TIMEWAIT_LEN) and tw_sock_TCP object size here.
const TIME_WAIT_SECS: f64 = 60.0;
const TW_BYTES: f64 = 256.0;

/// `/proc` figures sampled during the run.
#[derive(Default, Debug, Clone, Copy)]
struct Kernel {
    tw: u64,
    tw_slab_bytes: u64,
}

fn sockstat_tw() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == "tw" {
            return it.next()?.parse().ok();
        }
    }
    None
}

/// Active objects × object size of `tw_sock_TCP` (root only).
fn tw_slab_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("tw_sock_TCP "))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    let active: u64 = f.get(1)?.parse().ok()?;
    let size: u64 = f.get(3)?.parse().ok()?;
    Some(active * size)
}

fn sample() -> Kernel {
    Kernel {
        tw: sockstat_tw().unwrap_or(0),
        tw_slab_bytes: tw_slab_bytes().unwrap_or(0),
    }
}

/// The `i`-th source address: 127.1.0.1 and up.
fn source(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + i)
}

pub fn run(args: &Args, target: SocketAddr) -> anyhow::Result<Report> {
    let SocketAddr::V4(target) = target else {
        anyhow::bail!("--kernel-target must be an IPv4 loopback address");
    };
    anyhow::ensure!(
        target.ip().is_loopback(),
        "--kernel-target must be loopback"
    );
    let sources = args.kernel_source_ips.max(1);
    let fd_limit = sock::raise_nofile().or_else(|_| sock::nofile().map(|l| l.0))?;
    let limit = fd_limit.saturating_sub(FD_HEADROOM).max(1);
    let concurrency = (args.concurrency as u64).min(limit) as usize;
    if concurrency < args.concurrency {
        eprintln!("loadgen: --concurrency lowered to {concurrency} (descriptor limit {fd_limit})");
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<(TcpStream, Instant)>> = (0..concurrency).map(|_| None).collect();
    let mut free: Vec<usize> = (0..concurrency).rev().collect();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let (mut opened, mut closed, mut errors, mut connect_errors) = (0u64, 0u64, 0u64, 0u64);
    let before = sample();
    let mut peak = before;
    let max_tw: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_max_tw_buckets")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    let started = Instant::now();
    let mut last_sample = started;
    let mut last_close = started;
    // When the last connection was opened, and how many had closed by then.
    let mut last_open: Option<(Instant, u64)> = None;
    let mut buf = [0u8; 512];
    let mut seconds = crate::PerSecond::new(started);
    while started.elapsed() < args.timeout
        && !(opened == args.connections && free.len() == concurrency)
    {
        let allowed = if args.rate > 0.0 {
            crate::due_at_rate(started, args.rate).min(args.connections)
        } else {
            args.connections
        };
        let mut budget = OPEN_BATCH;
        while opened < allowed && budget > 0 {
            let Some(slot) = free.pop() else { break };
            budget -= 1;
            match sock::connect_from(Some(source((opened % sources as u64) as u32)), None, target) {
                Ok(mut s) => {
                    poll.registry()
                        .register(&mut s, Token(slot), Interest::READABLE)?;
                    conns[slot] = Some((s, Instant::now()));
                    opened += 1;
                    if opened == args.connections {
                        last_open = Some((Instant::now(), closed));
                    }
                }
                Err(_) => {
                    free.push(slot);
                    connect_errors += 1;
                    break;
                }
            }
        }
        let wait = if opened < args.connections && !free.is_empty() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        };
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in events.iter() {
            let slot = ev.token().0;
            let Some((s, _)) = conns.get_mut(slot).and_then(|c| c.as_mut()) else {
                continue;
            };
            // Read to the server's FIN (EOF); nothing else is expected.
            let finished = loop {
                match s.read(&mut buf) {
                    Ok(0) => break Some(true),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break None,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break Some(false),
                }
            };
            if let Some(ok) = finished {
                if let Some((mut s, opened_at)) = conns[slot].take() {
                    let _ = poll.registry().deregister(&mut s);
                    // close(): the passive close, after the server's FIN.
                    drop(s);
                    free.push(slot);
                    let now = Instant::now();
                    if ok {
                        closed += 1;
                        hist.saturating_record(((now - opened_at).as_micros() as u64).max(1));
                        last_close = now;
                    } else {
                        errors += 1;
                    }
                }
            }
        }
        seconds.sample(closed, opened < args.connections);
        if last_sample.elapsed() >= Duration::from_millis(100) {
            last_sample = Instant::now();
            let k = sample();
            peak.tw = peak.tw.max(k.tw);
            peak.tw_slab_bytes = peak.tw_slab_bytes.max(k.tw_slab_bytes);
        }
    }
    let end = sample();
    peak.tw = peak.tw.max(end.tw);
    peak.tw_slab_bytes = peak.tw_slab_bytes.max(end.tw_slab_bytes);
    let live = (concurrency - free.len()) as u64;
    let window = (last_close - started).as_secs_f64();
    let (load_window, closed_in_load) = match last_open {
        Some((t, n)) => ((t - started).as_secs_f64(), n),
        None => (window, closed),
    };
    let per_sec = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    // A run that opened everything at once has no load window; use the whole run.
    let rate = if load_window > 0.0 {
        per_sec(closed_in_load, load_window)
    } else {
        per_sec(closed, window)
    };
    let uncapped = rate * TIME_WAIT_SECS;
    let predicted = uncapped.min(max_tw as f64);
    let json = json!({
        "mode": "kernel",
        "connections": opened,
        "completed": closed,
        "errors": errors,
        "connect_errors": connect_errors,
        "leaked": live,
        "teardowns_per_sec": rate,
        "load_window_secs": load_window,
        "completed_in_load_window": closed_in_load,
        "overall_teardowns_per_sec": per_sec(closed, window),
        "per_second": seconds.summary(),
        "window_secs": window,
        "cpu_secs": teardown::service::net::cpu_secs(),
        // loadgen's own heap; null when its allocator is not the counting one
        // (the library run from a test).
        "peak_heap_bytes": teardown::alloc::installed().then(teardown::alloc::peak_bytes),
        "concurrency": concurrency,
        "source_ips": sources,
        "latency_ms": { "cycle": latency(&hist) },
        "kernel": {
            "time_wait_before": before.tw,
            "time_wait_peak": peak.tw,
            "time_wait_end": end.tw,
            "tw_slab_bytes_before": before.tw_slab_bytes,
            "tw_slab_bytes_peak": peak.tw_slab_bytes,
            "tw_slab_bytes_per_entry": if peak.tw > 0 { peak.tw_slab_bytes as f64 / peak.tw as f64 } else { 0.0 },
            "tcp_max_tw_buckets": max_tw,
        },
        "model": {
            "time_wait_uncapped": uncapped,
            "time_wait": predicted,
            "bytes_per_time_wait": TW_BYTES,
            "time_wait_bytes": predicted * TW_BYTES,
        },
    });
    Ok(Report { json, leaked: live })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_parsers_tolerate_this_machine() {
        // Present on Linux; the parsers must not panic either way.
        let _ = sample();
        assert!(sockstat_tw().is_some());
    }
}
