//! `teardown plan`'s report for people.

use std::fmt::Write as _;

use super::bounds;
use super::model::{fin_wait2_parts, Closer, MODELLED};
use super::verify::walk_clear_ips;
use super::{rel_error, Outcome, Plan, Simulated};

fn count(v: f64) -> String {
    crate::chart::thousands(v)
}

fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v;
    let mut u = 0;
    while x >= 1024.0 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{x:.0} B")
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

fn pct(e: Option<f64>) -> String {
    e.map_or("-".into(), |e| format!("{:+.1}%", e * 100.0))
}

/// The report for people.
pub fn human(plan: &Plan, o: &Outcome, sim: Option<&Simulated>) -> String {
    let w = &plan.workload;
    let pr = &o.prediction;
    let l = &o.limits;
    let mut s = String::new();
    let o_ = &mut s;
    let closer = match w.close {
        Closer::Server => "server",
        Closer::Client => "clients",
    };
    let _ = writeln!(
        o_,
        "teardown plan: {} closes/s, RTT {:.1} ms (RTO {:.0} ms), loss {:.2}%, runaway {:.1}%, {closer} close first, profile {}",
        count(w.rate),
        w.rtt.as_secs_f64() * 1e3,
        pr.rto * 1e3,
        w.loss * 100.0,
        w.runaway * 100.0,
        w.host.profile
    );
    let fw2_parts = match fin_wait2_parts(&w.host, pr.rto) {
        Some((full, mini)) => {
            format!(" (past 60 s: {full:.0} s a full socket, then {mini:.0} s a mini-socket)")
        }
        None => String::new(),
    };
    let _ = writeln!(
        o_,
        "  TIME-WAIT {:.1} s (share of closes {:.2}%, {:.4} restarts each), FIN-WAIT-2 timeout {:.0} s{fw2_parts}, max_tw_buckets {}",
        pr.tw_time,
        pr.tw_share * 100.0,
        pr.tw_restarts,
        w.host.fin_timeout.as_secs_f64(),
        buckets(w.host.max_tw_buckets)
    );
    if pr.handshakes_failed >= 1e-4 {
        let _ = writeln!(
            o_,
            "  failed handshakes {}/s on top ({:.2}% of connects: the server dropped its request after tcp_synack_retries {}, or the client gave up); they hold their states, never close",
            count(w.rate * pr.handshakes_failed),
            100.0 * pr.handshakes_failed / (1.0 + pr.handshakes_failed),
            w.host.synack_retries
        );
    }
    let _ = writeln!(o_, "\nsteady-state population (rate x mean time in state)");
    match sim {
        None => {
            let _ = writeln!(
                o_,
                "  {:<13} {:>10} {:>12} | {:>10} {:>12}",
                "state", "server", "mean time", "clients", "mean time"
            );
            for st in MODELLED {
                let _ = writeln!(
                    o_,
                    "  {:<13} {:>10} {:>10.3} s | {:>10} {:>10.3} s",
                    st.to_string(),
                    count(pr.server.get(st)),
                    pr.server_times.get(st),
                    count(pr.clients.get(st)),
                    pr.client_times.get(st)
                );
            }
        }
        Some(sm) => {
            let _ = writeln!(
                o_,
                "  {:<13} {:>10} {:>10} {:>8} | {:>10} {:>10} {:>8}",
                "state", "server", "simulated", "error", "clients", "simulated", "error"
            );
            for st in MODELLED {
                let _ = writeln!(
                    o_,
                    "  {:<13} {:>10} {:>10} {:>8} | {:>10} {:>10} {:>8}",
                    st.to_string(),
                    count(pr.server.get(st)),
                    count(sm.server.get(st)),
                    pct(rel_error(pr.server.get(st), sm.server.get(st))),
                    count(pr.clients.get(st)),
                    count(sm.clients.get(st)),
                    pct(rel_error(pr.clients.get(st), sm.clients.get(st)))
                );
            }
        }
    }
    let _ = writeln!(o_, "\nmemory of those populations");
    let _ = writeln!(
        o_,
        "  this engine   server {:>10}   clients {:>10}   ({} table shard(s), timer wheel included)",
        bytes(o.engine_bytes),
        bytes(o.clients_engine_bytes),
        plan.tables
    );
    if let Some(sm) = sim {
        let _ = writeln!(
            o_,
            "  simulated     server {:>10} ({})   clients {:>10} ({})   (counting allocator, includes the wheel)",
            bytes(sm.server_bytes),
            pct(rel_error(o.engine_bytes, sm.server_bytes)),
            bytes(sm.client_bytes),
            pct(rel_error(o.clients_engine_bytes, sm.client_bytes))
        );
    }
    let _ = writeln!(
        o_,
        "  Linux kernel  server {:>10}   clients {:>10}   (tw_sock_TCP {} B, TCP {} B, request_sock_TCP {} B from {}; 2 x {} B of bind buckets a client port)",
        bytes(o.linux_bytes),
        bytes(o.clients_linux_bytes),
        o.linux.tw_sock_bytes,
        o.linux.tcp_sock_bytes,
        o.linux.request_sock_bytes,
        o.linux.source,
        o.linux.bind_bucket_bytes
    );
    let (ls, lc) = (&o.linux_server, &o.linux_clients);
    if (ls.time_wait - pr.server.time_wait).abs() >= 0.5
        || (lc.total() - pr.clients.total()).abs() >= 0.5
    {
        let _ = writeln!(
            o_,
            "                (of what Linux holds: server {} TIME-WAIT, clients {} TIME-WAIT and {} connections in all; limits below)",
            count(ls.time_wait),
            count(lc.time_wait),
            count(lc.total())
        );
    }
    let _ = writeln!(o_, "\nlimits");
    let b = &o.buckets;
    if w.close == Closer::Server || plan.shared_netns {
        // One answer, Linux's: the table's engine figure is explained below.
        let above = match o.tw_buckets_overflow_rate {
            Some(r) if r >= 1e4 => format!("overflows above {} closes/s", count(r)),
            Some(r) => format!("overflows above {r:.1} closes/s"),
            None => "never overflows".to_string(),
        };
        if w.host.max_tw_buckets == usize::MAX {
            let _ = writeln!(
                o_,
                "  tcp_max_tw_buckets: no limit in this profile ({} TIME-WAIT entries)",
                count(b.time_wait)
            );
        } else if b.binds == bounds::Bound::Buckets {
            let _ = writeln!(
                o_,
                "  tcp_max_tw_buckets OVERFLOWS: full at {} (would hold {} TIME-WAIT + {} orphaned FIN-WAIT-2); {}/s closes skip TIME-WAIT ({above})",
                buckets(w.host.max_tw_buckets),
                count(b.time_wait),
                count(b.orphan_fin_wait_2),
                count(b.overflow_per_sec),
            );
        } else {
            let _ = writeln!(
                o_,
                "  tcp_max_tw_buckets ok: {} of {} ({} TIME-WAIT, bound by {}, + {} orphaned FIN-WAIT-2; {above})",
                count(b.population),
                buckets(w.host.max_tw_buckets),
                count(b.time_wait),
                b.binds.describe(),
                count(b.orphan_fin_wait_2),
            );
        }
    } else {
        let _ = writeln!(
            o_,
            "  tcp_max_tw_buckets: the server holds no TIME-WAIT (the clients close first)"
        );
    }
    // The first part of a FIN-WAIT-2 past 60 s is an orphan too.
    let states = if pr.fin_wait_2_full > 0.0 {
        "FIN-WAIT-1, CLOSING, LAST-ACK and a long FIN-WAIT-2's first part"
    } else {
        "FIN-WAIT-1, CLOSING and LAST-ACK"
    };
    if let Some(max) = l.max_orphans {
        let full = l.orphans_full_rate.map_or("never fills".to_string(), |r| {
            format!("full above {r:.1} closes/s")
        });
        let _ = writeln!(
            o_,
            "  tcp_max_orphans {}: {} of {} ({states} after close(); {full}, past it a close() sends RST)",
            if l.orphans > max { "FULL" } else { "ok" },
            count(l.orphans),
            count(max),
        );
    } else {
        let _ = writeln!(
            o_,
            "  orphans: {} ({states} after close(); this profile sets no limit)",
            count(l.orphans),
        );
    }
    let _ = writeln!(
        o_,
        "  ephemeral ports: {} destination(s) ({} client IP x {} server IP x {} port), {:.2} closes/s each",
        count(plan.destinations()),
        plan.clients,
        plan.server_ips,
        plan.server_ports,
        l.rate_per_destination
    );
    let verdict = |x: bool| if x { "EXHAUSTED" } else { "ok" };
    let _ = writeln!(
        o_,
        "    ports needed per destination {:>10} of {} ({:.2} s held each)   {}   max {:.1} closes/s per destination",
        count(l.ports_per_destination_needed),
        count(plan.ports as f64),
        l.port_hold,
        verdict(l.port_exhaustion),
        l.max_rate_per_destination
    );
    let _ = writeln!(
        o_,
        "    with tcp_tw_reuse            {:>10} of {} ({:.2} s held each)   {}   max {:.1} closes/s per destination",
        count(l.ports_per_destination_needed_with_reuse),
        count(plan.ports as f64),
        l.port_hold_with_reuse,
        verdict(l.port_exhaustion_with_reuse),
        l.max_rate_per_destination_with_reuse
    );
    let c = &l.connects;
    let failed = if l.rate_per_destination > 0.0 {
        c.eaddrnotavail_per_sec / l.rate_per_destination
    } else {
        0.0
    };
    let _ = writeln!(
        o_,
        "    connect() at tcp_tw_reuse={} ({}): {} ports in use per destination, {:.1} EADDRNOTAVAIL/s ({:.1}% of connects)",
        w.host.tw_reuse,
        if l.tw_reuse { "in force" } else { "not in force" },
        count(c.in_use),
        c.eaddrnotavail_per_sec,
        failed * 100.0
    );
    if let Some(sm) = sim {
        let _ = writeln!(
            o_,
            "      simulated                  {} ports in use ({}), {:.1}% EADDRNOTAVAIL ({})",
            count(sm.ports_in_use),
            pct(rel_error(c.in_use, sm.ports_in_use)),
            sm.eaddrnotavail_share * 100.0,
            pct(rel_error(failed, sm.eaddrnotavail_share))
        );
    }
    if w.close == Closer::Client {
        let _ = writeln!(
            o_,
            "    (tcp_tw_reuse needs tcp_timestamps at both ends, tcp_twsk_unique; the default tcp_tw_reuse=2 is loopback only; bind() before connect() without IP_BIND_ADDRESS_NO_PORT shares one range across all server IPs and ports of a client IP)"
        );
    }
    if w.close == Closer::Server || plan.shared_netns {
        let whose = if plan.shared_netns {
            "the namespace's (both ends share tcp_max_tw_buckets)"
        } else {
            "the server's"
        };
        let _ = writeln!(
            o_,
            "  Linux bounds {whose} TIME-WAIT by the smallest of rate x {:.0} s ({}), the clients' usable 4-tuples ({}: {} destination(s) x {} {}) and tcp_max_tw_buckets ({}, less {} orphaned FIN-WAIT-2): {}, bound by {}",
            pr.tw_time,
            count(b.time_wait_by_rate),
            count(plan.destinations() * o.usable_ports),
            count(plan.destinations()),
            count(o.usable_ports),
            if o.usable_ports == bounds::even_ports(plan.ports) {
                "even ports, connect() takes even ports first"
            } else {
                "ports: tcp_tw_reuse does not apply, so connect() passes a port in TIME-WAIT over and searches the whole range"
            },
            buckets(w.host.max_tw_buckets),
            count(b.orphan_fin_wait_2),
            count(b.population - b.orphan_fin_wait_2.min(b.population)),
            b.binds.describe()
        );
        if let Some(l) = w.lingering {
            let held = w.rate * pr.fin_wait_2_held;
            let _ = writeln!(
                o_,
                "    lingering close ({:.1} s): {} FIN-WAIT-2 hold their descriptor (full sockets, no bucket, no timeout), {} are orphans in the buckets",
                l.as_secs_f64(),
                count(held),
                count(b.orphan_fin_wait_2)
            );
        }
        if b.binds == bounds::Bound::Tuples {
            let table = match w.close {
                Closer::Server => pr.server.time_wait,
                Closer::Client => pr.clients.time_wait,
            };
            let _ = writeln!(
                o_,
                "    (a newer SYN reopens a 4-tuple still in TIME-WAIT, RFC 6191, and the old entry goes with no counter; the table above assumes no 4-tuple comes back while its entry lasts, so it says {})",
                count(table)
            );
        }
        if w.close == Closer::Server && sim.is_some() {
            let _ = writeln!(
                o_,
                "    (the simulated clients choose ports as Linux's connect() does; --verify gives them {} addresses, enough that none comes back to a 4-tuple the server still holds, as the table assumes)",
                count(f64::from(walk_clear_ips(plan)))
            );
        }
        if let (bounds::Bound::Buckets, Some(t)) = (b.binds, &b.transient) {
            let _ = writeln!(
                o_,
                "    overflow {:.1}% of closes ({}/s: 1 - buckets / min(rate x 60 s, 4-tuples)); from empty the buckets fill in {:.1} s and {:.1}% skip until the first expiry at {:.0} s",
                b.skipped_fraction * 100.0,
                count(b.overflow_per_sec),
                t.fill_s,
                t.skipped_fraction * 100.0,
                t.until_s
            );
        }
    }
    if let Some(sm) = sim {
        let _ = writeln!(
            o_,
            "\nsimulated {} connections at {} opens/s; averaged over t = {:.0}..{:.0} s ({:.2} s wall)",
            count(sm.connections as f64),
            count(sm.opens_per_sec),
            sm.window.0,
            sm.window.1,
            sm.report.wall_seconds
        );
    }
    s
}

/// A `tcp_max_tw_buckets` value for people: `usize::MAX` means no limit.
fn buckets(n: usize) -> String {
    if n == usize::MAX {
        "unlimited".into()
    } else {
        count(n as f64)
    }
}
