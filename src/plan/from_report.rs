//! The report of `teardown plan --from`: JSON (fields in docs/plan-from.md) and text.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::bounds::{Bound, Buckets};
use super::from::{observed, slab_of, FromPlan};
use super::from_retries::Source;
use super::memory::Slab;
use super::model::MODELLED;
use super::rel_error;
use crate::observe::report::Report;

/// Bumped when a field changes meaning or goes away.
pub const VERSION: u32 = 1;

fn buckets_json(b: &Buckets) -> Value {
    json!({
        "time_wait_by_rate": b.time_wait_by_rate,
        "time_wait": b.time_wait,
        "orphan_fin_wait_2": b.orphan_fin_wait_2,
        "demand": b.demand,
        "cap": b.cap,
        "population": b.population,
        "binds": b.binds,
        "skipped_fraction": b.skipped_fraction,
        "overflow_per_sec": b.overflow_per_sec,
        "transient": b.transient,
    })
}

/// The JSON report.
pub fn to_json(r: &Report, p: &FromPlan, growth: f64, slab: &Slab) -> Value {
    let c = &p.cal;
    let today = p.populations(1.0);
    let populations: Map<String, Value> = MODELLED
        .iter()
        .map(|&st| {
            let (m, o) = (today.get(st), observed(r, st));
            (
                st.key().to_string(),
                json!({ "model": m, "observed": o, "error": rel_error(m, o) }),
            )
        })
        .collect();
    let b = p.buckets(1.0);
    let limits = p.limits();
    let ports: Map<String, Value> = p
        .destinations
        .iter()
        .map(|d| (d.destination.clone(), json!(d.headroom)))
        .collect();
    let destinations: Vec<Value> = p
        .destinations
        .iter()
        .map(|d| {
            json!({
                "destination": d.destination,
                "close_rate": d.close_rate,
                "tw_reuse": d.reuse,
                "port_hold_s": d.port_hold_s,
                "ports_needed": d.ports_needed,
                "usable_ports": d.usable_ports,
                "port_range": c.port_range,
                "headroom": d.headroom,
                "exhausted_at": d.exhausted_at,
            })
        })
        .collect();
    let (linux, engine) = p.memory(growth, slab);
    let (linux_today, engine_today) = p.memory(1.0, slab);
    let at = p.populations(growth);
    // sockstat's `tw` counts IPv4 and IPv6 entries alike: so do their bytes.
    let tw_sock_observed = r.memory.slab.as_ref().and_then(|s| {
        let v4 = s.get("tw_sock_TCP").map(|c| c.bytes);
        let v6 = s.get("tw_sock_TCPv6").map(|c| c.bytes);
        v4.or(v6)
            .map(|_| v4.unwrap_or(0).saturating_add(v6.unwrap_or(0)))
    });
    let mut calibration = json!({
        "close_rate": c.close_rate,
        "server_share": c.server_share,
        "server_end_here": c.server_role,
        "client_end_here": c.client_role,
        "rtt_ms": c.rtt.as_secs_f64() * 1e3,
        "rtt_source": if c.rtt_observed { "observed p50" } else { "--rtt (no sample)" },
        "loss": c.loss,
        "app_timeout_s": c.app_timeout.as_secs_f64(),
        "max_tw_buckets": c.host.max_tw_buckets as f64,
        "max_orphans": c.host.max_orphans as f64,
        "max_orphans_source": if r.sysctl.tcp_max_orphans.is_some() {
            "sysctl"
        } else {
            "Linux's default (host-wide: not visible from this namespace)"
        },
        "fin_timeout_s": c.host.fin_timeout.as_secs_f64(),
        "port_range": c.port_range,
        "tcp_tw_reuse": c.tw_reuse,
        "tcp_timestamps": c.timestamps,
        "server_pools": c.server_pools,
    });
    for t in &c.retries {
        let key = t.name.trim_start_matches("tcp_");
        calibration[key] = json!(t.used);
        calibration[format!("{key}_source")] = json!(t.describe());
    }
    json!({
        "version": VERSION,
        "calibration": calibration,
        "populations": populations,
        "tw_buckets": buckets_json(&b),
        "observed_overflow_per_sec": r.rates.tw_overflow_per_sec,
        "headroom": {
            "tw_buckets": p.headroom_tw_buckets(),
            "orphans": p.headroom_orphans(),
            "ports": ports,
            "ports_if_bind_before_connect": p.headroom_bind_before_connect(),
            "order": limits.iter().map(|(n, h)| json!({ "limit": n, "at": h })).collect::<Vec<_>>(),
            "binding": limits.first().filter(|l| l.1.is_some()).map(|l| l.0.clone()),
        },
        "destinations": destinations,
        "memory": {
            "growth": growth,
            "close_rate": c.close_rate * growth,
            "populations": MODELLED.iter().map(|&st| (st.key().to_string(), json!(at.get(st)))).collect::<Map<_, _>>(),
            "tw_buckets": buckets_json(&p.buckets(growth)),
            "linux_bytes": linux,
            "engine_bytes": engine,
            "today_linux_bytes": linux_today,
            "today_engine_bytes": engine_today,
            "today_tw_sock_bytes": p.tw_sock_bytes(slab),
            "observed_tw_sock_bytes": tw_sock_observed,
            "slab_source": slab.source,
        },
    })
}

fn count(v: f64) -> String {
    crate::chart::thousands(v)
}

fn times(h: Option<f64>) -> String {
    h.map_or("never".into(), |h| format!("{h:.3}x"))
}

/// The report for people.
pub fn human(r: &Report, p: &FromPlan, growth: f64, slab: &Slab) -> String {
    let c = &p.cal;
    let mut s = String::new();
    let o = &mut s;
    let ends = match (c.server_role, c.client_role) {
        (true, true) => "both ends here (they share tcp_max_tw_buckets)",
        (true, false) => "server end here",
        (false, true) => "client end here",
        (false, false) => "no connections seen",
    };
    let _ = writeln!(
        o,
        "teardown plan --from: {} closes/s ({:.0}% server closes first), {ends}",
        count(c.close_rate),
        c.server_share * 100.0
    );
    let _ = writeln!(
        o,
        "  RTT {:.3} ms ({}), loss {:.3}% (retransmitted share), tcp_max_tw_buckets {}, port range {}, tcp_tw_reuse {}, timestamps {}",
        c.rtt.as_secs_f64() * 1e3,
        if c.rtt_observed { "observed p50" } else { "--rtt: nothing to sample" },
        c.loss * 100.0,
        count(c.host.max_tw_buckets as f64),
        count(f64::from(c.port_range)),
        c.tw_reuse,
        c.timestamps
    );
    // An observation made before these were read lacks all four: one note.
    let all_default = c.retries.iter().all(|t| t.source == Source::Default);
    let retries: Vec<String> = c
        .retries
        .iter()
        .map(|t| match t.source {
            Source::Sysctl => format!("{} {}", t.name, t.used),
            Source::Default if all_default => format!("{} {}", t.name, t.used),
            _ => format!("{} {} ({})", t.name, t.used, t.describe()),
        })
        .collect();
    let _ = writeln!(
        o,
        "  {}{}",
        retries.join(", "),
        if all_default {
            " (Linux's defaults, not in the observation)"
        } else {
            ""
        }
    );
    let today = p.populations(1.0);
    let _ = writeln!(o, "\npopulations today: model vs observed");
    for st in MODELLED {
        let (m, ob) = (today.get(st), observed(r, st));
        if m < 0.5 && ob == 0.0 {
            continue;
        }
        let err = rel_error(m, ob).map_or("-".into(), |e| format!("{:+.1}%", e * 100.0));
        let _ = writeln!(
            o,
            "  {:<13} {:>10} {:>10} {:>8}",
            st.to_string(),
            count(m),
            count(ob),
            err
        );
    }
    let b = p.buckets(1.0);
    let _ = writeln!(
        o,
        "\ntcp_max_tw_buckets: {} TIME-WAIT (rate x lifetime {}) + {} orphaned FIN-WAIT-2 = {} of {}; bound by {}",
        count(b.time_wait),
        count(b.time_wait_by_rate),
        count(b.orphan_fin_wait_2),
        count(b.demand),
        count(b.cap),
        b.binds.describe()
    );
    if b.binds == Bound::Buckets {
        let _ = writeln!(
            o,
            "  overflow: {:.1}% of closes skip TIME-WAIT, {}/s (observed {}/s)",
            b.skipped_fraction * 100.0,
            count(b.overflow_per_sec),
            count(r.rates.tw_overflow_per_sec)
        );
        if let Some(t) = &b.transient {
            let _ = writeln!(
                o,
                "  from empty: full after {:.2} s, then {:.1}% skip until the first expiry at {:.0} s (a first {:.1} s window from empty: {} skip)",
                t.fill_s,
                t.skipped_fraction * 100.0,
                t.until_s,
                r.interval_secs,
                count(t.skipped_in(r.interval_secs))
            );
        }
    }
    let _ = writeln!(
        o,
        "\nheadroom (multiple of today's rate at which each limit is hit, worst first)"
    );
    for (name, h) in p.limits() {
        let _ = writeln!(o, "  {:<40} {}", name, times(h));
    }
    for d in &p.destinations {
        let _ = writeln!(
            o,
            "  {}: {:.2} closes/s x {:.2} s held = {} ports of {} even (connect() slows past them), tw_reuse {}; all {} gone at {}",
            d.destination,
            d.close_rate,
            d.port_hold_s,
            count(d.ports_needed),
            count(d.usable_ports),
            d.reuse.describe(),
            count(f64::from(c.port_range)),
            times(d.exhausted_at)
        );
    }
    if let Some(h) = p.headroom_bind_before_connect() {
        let _ = writeln!(
            o,
            "  with bind() before connect() and no IP_BIND_ADDRESS_NO_PORT: one pool for all destinations, {}",
            times(Some(h))
        );
    }
    let (linux, engine) = p.memory(growth, slab);
    let at = p.buckets(growth);
    let _ = writeln!(
        o,
        "\nat {growth}x ({} closes/s): TIME-WAIT {} + orphaned FIN-WAIT-2 {} (bound by {}); Linux {} B, this engine {} B (slab sizes: {})",
        count(c.close_rate * growth),
        count(at.time_wait.min(at.population)),
        count(at.orphan_fin_wait_2.min(at.population)),
        at.binds.describe(),
        count(linux),
        count(engine),
        slab.source
    );
    s
}

/// `teardown plan --from PATH`.
pub fn run(
    text: &str,
    rtt: std::time::Duration,
    app_timeout: std::time::Duration,
    growth: f64,
) -> anyhow::Result<(String, Value)> {
    let r = Report::from_json(text)?;
    let p = FromPlan::with_app_timeout(&r, rtt, app_timeout);
    let slab = slab_of(&r);
    Ok((human(&r, &p, growth, &slab), to_json(&r, &p, growth, &slab)))
}
