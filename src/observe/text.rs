//! The readable report.

use std::fmt::Write;

use teardown_engine::state::State;

use super::report::Report;
use crate::kernel::state::TcpState;

/// Destinations listed in the text (the JSON has them all).
const TOP: usize = 10;

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let ns = match &r.netns {
        Some(n) => format!("network namespace {n}"),
        None => "this network namespace".to_string(),
    };
    let _ = writeln!(
        o,
        "teardown observe: {ns}, counters {:.2} s apart",
        r.interval_secs
    );
    let rt = &r.rates;
    let _ = writeln!(o, "\nrates (TcpExt, Tcp counters)");
    let line = |o: &mut String, what: &str, v: f64, from: &str| {
        let _ = writeln!(o, "  {what:<22} {v:>10.1}/s   {from}");
    };
    line(
        &mut o,
        "closes",
        rt.closes_per_sec,
        "TW + TWKilled + TCPTimeWaitOverflow",
    );
    line(
        &mut o,
        "TIME-WAIT overflows",
        rt.tw_overflow_per_sec,
        "TCPTimeWaitOverflow",
    );
    line(
        &mut o,
        "TIME-WAIT reused",
        rt.tw_recycled_per_sec,
        "TWRecycled",
    );
    line(
        &mut o,
        "active opens",
        rt.active_opens_per_sec,
        "ActiveOpens",
    );
    line(
        &mut o,
        "passive opens",
        rt.passive_opens_per_sec,
        "PassiveOpens",
    );
    line(&mut o, "RST closes", rt.rst_closes_per_sec, "TCPAbortOn*");
    match rt.retrans_ratio {
        Some(x) => {
            let _ = writeln!(
                o,
                "  {:<22} {:>10.3} %   RetransSegs / OutSegs",
                "retransmitted",
                x * 100.0
            );
        }
        None => {
            let _ = writeln!(o, "  {:<22} {:>10}     nothing sent", "retransmitted", "-");
        }
    }

    let _ = writeln!(o, "\nsockets now (sock_diag)");
    let order = State::ALL
        .iter()
        .map(|s| TcpState::Conn(*s))
        .chain([TcpState::Listen])
        .filter(|s| r.states.get(s.key()).copied().unwrap_or(0) > 0);
    for s in order {
        let _ = writeln!(o, "  {:<22} {:>10}", s.to_string(), r.states[s.key()]);
    }
    let tw = &r.time_wait;
    let _ = writeln!(
        o,
        "  TIME-WAIT by side: server {} (local port is a listener's), client {}",
        tw.server, tw.client
    );
    if !r.destinations.is_empty() {
        let range = r.sysctl.ip_local_port_range;
        let _ = writeln!(
            o,
            "\nclient side by destination (ports of ip_local_port_range {}-{}, {} ports)",
            range.low,
            range.high,
            range.size()
        );
        let _ = writeln!(
            o,
            "  {:<28} {:>10} {:>10} {:>10} {:>8}",
            "destination", "TIME-WAIT", "sockets", "ports", "used"
        );
        for d in r.destinations.iter().take(TOP) {
            let _ = writeln!(
                o,
                "  {:<28} {:>10} {:>10} {:>10} {:>7.1}%",
                d.destination,
                d.time_wait,
                d.sockets,
                d.ports_in_use,
                d.used * 100.0
            );
        }
        if r.destinations.len() > TOP {
            let _ = writeln!(o, "  ... {} more in the JSON", r.destinations.len() - TOP);
        }
    }
    match (r.rtt.p50_us, r.rtt.p99_us) {
        (Some(p50), Some(p99)) => {
            let _ = writeln!(
                o,
                "\nRTT (tcpi_rtt of {} ESTABLISHED): p50 {:.3} ms, p99 {:.3} ms",
                r.rtt.samples,
                p50 as f64 / 1e3,
                p99 as f64 / 1e3
            );
        }
        _ => {
            let _ = writeln!(o, "\nRTT: no ESTABLISHED socket to sample");
        }
    }

    let _ = writeln!(o, "\nmemory (whole host)");
    match &r.memory.slab {
        Some(caches) => {
            for (name, c) in caches {
                let _ = writeln!(
                    o,
                    "  {:<22} {:>10} x {:>5} B = {:>12} B",
                    name, c.active_objs, c.objsize, c.bytes
                );
            }
        }
        None => {
            let _ = writeln!(
                o,
                "  /proc/slabinfo not readable (run as root for slab memory)"
            );
        }
    }
    if let Some(b) = r.memory.tcp_mem_bytes {
        let _ = writeln!(
            o,
            "  {:<22} {:>31} B   sockstat TCP mem",
            "socket buffers", b
        );
    }
    let s = &r.sockstat;
    let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let _ = writeln!(
        o,
        "  sockstat TCP: inuse {} orphan {} tw {} alloc {} mem {} pages; TCP6 inuse {}",
        show(s.inuse),
        show(s.orphan),
        show(s.tw),
        show(s.alloc),
        show(s.mem_pages),
        show(s.inuse6)
    );

    let c = &r.sysctl;
    let _ = write!(
        o,
        "\nsysctls: tcp_max_tw_buckets {} tcp_max_orphans {} tcp_fin_timeout {} ip_local_port_range {}-{} tcp_tw_reuse {} tcp_timestamps {} tcp_orphan_retries {} tcp_rfc1337 {}",
        c.tcp_max_tw_buckets,
        // Host-wide: only the initial namespace shows it.
        c.tcp_max_orphans
            .map_or("- (host-wide, not visible here)".to_string(), |n| n.to_string()),
        c.tcp_fin_timeout,
        c.ip_local_port_range.low,
        c.ip_local_port_range.high,
        c.tcp_tw_reuse,
        c.tcp_timestamps,
        c.tcp_orphan_retries,
        c.tcp_rfc1337
    );
    // Absent from older recordings, tcp_syn_linear_timeouts before Linux 6.5.
    for (name, v) in [
        ("tcp_syn_retries", c.tcp_syn_retries),
        ("tcp_syn_linear_timeouts", c.tcp_syn_linear_timeouts),
        ("tcp_synack_retries", c.tcp_synack_retries),
        ("tcp_retries2", c.tcp_retries2),
    ] {
        if let Some(v) = v {
            let _ = write!(o, " {name} {v}");
        }
    }
    o.push('\n');
    for w in warnings(r) {
        let _ = writeln!(o, "warning: {w}");
    }
    o
}

/// What a reader should not miss: a limit reached or near.
pub fn warnings(r: &Report) -> Vec<String> {
    let mut w = Vec::new();
    if r.rates.tw_overflow_per_sec > 0.0 {
        w.push(format!(
            "{:.1} closes/s skip TIME-WAIT: tcp_max_tw_buckets ({}) is full (TCPTimeWaitOverflow)",
            r.rates.tw_overflow_per_sec, r.sysctl.tcp_max_tw_buckets
        ));
    }
    let aborts = r
        .counters
        .get("TcpExt.TCPAbortOnMemory")
        .copied()
        .unwrap_or(0);
    if aborts > 0 {
        w.push(format!(
            "{aborts} connections reset in the interval for too many orphans, past tcp_max_orphans ({}), or for TCP memory pressure (TCPAbortOnMemory)",
            r.sysctl
                .tcp_max_orphans
                .map_or("not visible here".to_string(), |n| n.to_string())
        ));
    } else if let (Some(orphans), Some(max)) = (r.sockstat.orphan, r.sysctl.tcp_max_orphans) {
        if orphans.saturating_mul(2) >= max {
            w.push(format!(
                "{orphans} orphans of tcp_max_orphans {max}: past it a close() resets (TCPAbortOnMemory)"
            ));
        }
    }
    for d in r.destinations.iter().filter(|d| d.used >= 0.5) {
        let what = if d.ports_in_use >= u64::from(d.port_range) {
            "no port is left: connect() to it fails with EADDRNOTAVAIL unless tcp_tw_reuse frees one"
        } else {
            "connect() tries even ports first, so new connects slow down past half the range"
        };
        w.push(format!(
            "{} holds {} of {} local ports ({:.0} %): {what}",
            d.destination,
            d.ports_in_use,
            d.port_range,
            d.used * 100.0
        ));
    }
    w
}
