//! `teardown plan --json`: the report as JSON (`"version": 1`).

use serde_json::{json, Map, Value};

use super::model::{Closer, Times, MODELLED};
use super::{rel_error, Outcome, Plan, Simulated};

fn states_json(t: &Times) -> Map<String, Value> {
    MODELLED
        .iter()
        .map(|s| (s.key().to_string(), json!(t.get(*s))))
        .collect()
}

/// The JSON report.
pub fn to_json(plan: &Plan, o: &Outcome, sim: Option<&Simulated>) -> Value {
    let w = &plan.workload;
    let pr = &o.prediction;
    let l = &o.limits;
    let mut predicted = states_json(&pr.server);
    predicted.insert("memory_bytes".into(), json!(o.engine_bytes));
    predicted.insert("clients".into(), Value::Object(states_json(&pr.clients)));
    predicted.insert("clients_memory_bytes".into(), json!(o.clients_engine_bytes));
    let mut out = json!({
        "version": 1,
        "workload": {
            "close_rate": w.rate,
            "rtt_ms": w.rtt.as_secs_f64() * 1e3,
            "loss": w.loss,
            "runaway": w.runaway,
            "close": match w.close { Closer::Server => "server", Closer::Client => "client" },
            "app_delay_s": w.app_delay.as_secs_f64(),
            "app_timeout_s": w.app_timeout.as_secs_f64(),
            "profile": w.host.profile.to_string(),
            "time_wait_s": w.host.time_wait.as_secs_f64(),
            "fin_timeout_s": w.host.fin_timeout.as_secs_f64(),
            "max_tw_buckets": w.host.max_tw_buckets as f64,
            "rto_ms": pr.rto * 1e3,
            "clients": plan.clients,
            "server_ips": plan.server_ips,
            "server_ports": plan.server_ports,
            "port_range": plan.ports,
            "tables": plan.tables,
        },
        "mean_seconds": { "server": states_json(&pr.server_times), "clients": states_json(&pr.client_times) },
        "handshakes_failed_per_sec": w.rate * pr.handshakes_failed,
        "predicted": predicted,
        "time_wait": {
            "share_of_closes": pr.tw_share,
            "lifetime_s": pr.tw_time,
            "restarts_per_entry": pr.tw_restarts,
            "uncapped": pr.tw_uncapped,
            // The table's own overflow, as if no 4-tuple came back while its
            // entry lasts; `limits` has Linux's.
            "overflow_per_sec_no_reopen": pr.tw_overflow_per_sec,
        },
        "linux": {
            "server": states_json(&o.linux_server),
            "clients": states_json(&o.linux_clients),
            "memory_bytes": o.linux_bytes,
            "clients_memory_bytes": o.clients_linux_bytes,
            "tw_sock_bytes": o.linux.tw_sock_bytes,
            "tcp_sock_bytes": o.linux.tcp_sock_bytes,
            "request_sock_bytes": o.linux.request_sock_bytes,
            "bind_bucket_bytes": o.linux.bind_bucket_bytes,
            "source": o.linux.source,
        },
        "limits": {
            "max_tw_buckets": w.host.max_tw_buckets as f64,
            "tw_buckets_overflow": l.tw_buckets_overflow,
            "tw_overflow_per_sec": o.buckets.overflow_per_sec,
            "tw_overflow_above_close_rate": pr.tw_overflow_rate,
            "linux_tw_overflow_above_close_rate": o.tw_buckets_overflow_rate,
            "destinations": plan.destinations(),
            "rate_per_destination": l.rate_per_destination,
            "port_range": plan.ports,
            "port_hold_s": l.port_hold,
            "port_hold_with_reuse_s": l.port_hold_with_reuse,
            "ports_per_destination_needed": l.ports_per_destination_needed,
            "ports_per_destination_needed_with_reuse": l.ports_per_destination_needed_with_reuse,
            "port_exhaustion": l.port_exhaustion,
            "port_exhaustion_with_reuse": l.port_exhaustion_with_reuse,
            "max_rate_per_destination": l.max_rate_per_destination,
            "max_rate_per_destination_with_reuse": l.max_rate_per_destination_with_reuse,
            "server_time_wait_tuples_per_destination": l.server_tw_tuples_per_destination,
            "tw_reuse": l.tw_reuse,
            "ports_in_use_per_destination": l.connects.in_use,
            "orphans": l.orphans,
            "max_orphans": l.max_orphans,
            "orphans_full_above_close_rate": l.orphans_full_rate,
            "eaddrnotavail_per_sec_per_destination": l.connects.eaddrnotavail_per_sec,
        },
        "linux_tw_buckets": serde_json::to_value(&o.buckets).unwrap_or(Value::Null),
        "lingering_close": w.lingering.map(|l| json!({
            "lingering_timeout_s": l.as_secs_f64(),
            "fin_wait_2_held": w.rate * pr.fin_wait_2_held,
        })),
    });
    if let (Some(s), Some(obj)) = (sim, out.as_object_mut()) {
        let mut simulated = states_json(&s.server);
        simulated.insert("memory_bytes".into(), json!(s.server_bytes));
        simulated.insert("clients".into(), Value::Object(states_json(&s.clients)));
        simulated.insert("clients_memory_bytes".into(), json!(s.client_bytes));
        simulated.insert("window_s".into(), json!([s.window.0, s.window.1]));
        simulated.insert("connections".into(), json!(s.connections));
        simulated.insert("opens_per_sec".into(), json!(s.opens_per_sec));
        simulated.insert(
            "connect".into(),
            json!({
                "eaddrnotavail_share": s.eaddrnotavail_share,
                "ports_in_use_per_destination": s.ports_in_use,
            }),
        );
        let mut error: Map<String, Value> = MODELLED
            .iter()
            .map(|st| {
                (
                    st.key().to_string(),
                    json!(rel_error(pr.server.get(*st), s.server.get(*st))),
                )
            })
            .collect();
        error.insert(
            "memory_bytes".into(),
            json!(rel_error(o.engine_bytes, s.server_bytes)),
        );
        let clients: Map<String, Value> = MODELLED
            .iter()
            .map(|st| {
                (
                    st.key().to_string(),
                    json!(rel_error(pr.clients.get(*st), s.clients.get(*st))),
                )
            })
            .collect();
        error.insert("clients".into(), Value::Object(clients));
        error.insert(
            "clients_memory_bytes".into(),
            json!(rel_error(o.clients_engine_bytes, s.client_bytes)),
        );
        obj.insert("simulated".into(), Value::Object(simulated));
        obj.insert("error".into(), Value::Object(error));
    }
    out
}
