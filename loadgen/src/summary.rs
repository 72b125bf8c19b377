//! The one-screen summary `loadgen` prints for each kind of report.

use serde_json::{json, Value};

use crate::tail;

/// A one-screen summary of a report.
pub fn summary(r: &Value) -> String {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    if g("/mode") == json!("kernel-target") {
        return format!(
            "{}: {} connections, {} completed ({:.0}/s), {} unfinished; closed by server FIN {}, client FIN {}, client RST {}, server RST {}; errors {}\n\
             connect p50/p99 {} / {} ms, first byte p50/p99 {} / {} ms, close p50/p99 {} / {} ms\n\
             TIME-WAIT peak: server side {}, client side {}, other {}; kernel: TW +{}{}, RetransSegs +{}, tw_sock_TCP peak {} B{}",
            g("/target").as_str().unwrap_or("?"),
            g("/connections"),
            g("/completed"),
            g("/completed_per_sec").as_f64().unwrap_or(0.0),
            g("/unfinished"),
            g("/closed_by/server_fin"),
            g("/closed_by/client_fin"),
            g("/closed_by/client_rst"),
            g("/closed_by/server_rst"),
            g("/errors"),
            g("/latency_ms/connect/p50"),
            g("/latency_ms/connect/p99"),
            g("/latency_ms/first_byte/p50"),
            g("/latency_ms/first_byte/p99"),
            g("/latency_ms/close/p50"),
            g("/latency_ms/close/p99"),
            g("/time_wait/server_peak"),
            g("/time_wait/client_peak"),
            g("/time_wait/other_peak"),
            g("/kernel/netstat/TW"),
            overflow(r, "/kernel"),
            g("/kernel/snmp/RetransSegs"),
            g("/kernel/tw_slab_bytes_peak"),
            match g("/netns/name") {
                Value::String(ns) => format!(
                    "\nserver namespace {ns}: TW +{}{}, RetransSegs +{}, loss {}: dropped {} to the server, {} to the client",
                    g("/server_netns/kernel/netstat/TW"),
                    overflow(r, "/server_netns/kernel"),
                    g("/server_netns/kernel/snmp/RetransSegs"),
                    g("/netns/loss"),
                    g("/netns/dropped_to_server"),
                    g("/netns/dropped_to_client"),
                ),
                _ => String::new(),
            },
        ) + &g("/notes")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|n| format!("\nnote: {n}"))
            .collect::<String>();
    }
    if g("/mode") == json!("kernel") {
        return format!(
            "kernel: {} connections, {} closed, {:.0} closes/s; TIME-WAIT peak {} (model predicts {} at this rate), tw_sock_TCP peak {} B (model {} B)",
            g("/connections"),
            g("/completed"),
            g("/teardowns_per_sec").as_f64().unwrap_or(0.0),
            g("/kernel/time_wait_peak"),
            g("/model/time_wait"),
            g("/kernel/tw_slab_bytes_peak"),
            g("/model/time_wait_bytes"),
        );
    }
    model_summary(r)
}

/// The engine run's summary: the rate and which window it is over, how many
/// connections were live for it, and how they ended, leading with a warning
/// when RSTs or skipped TIME-WAIT are more than a trace (a run can look fast
/// and be mostly resets, see `teardown serve`'s summary).
fn model_summary(r: &Value) -> String {
    let g = |p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    let f = |p: &str| r.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    let connections = f("/connections").max(1.0);
    let rst = f("/closed/reset") + f("/closed/aborted") + f("/closed/too_many_orphans");
    let overflow = f("/server/time_wait_overflow");
    // A client that closes first skips TIME-WAIT past its own buckets, as Linux's does.
    let client_overflow = f("/closed/time_wait_overflow");
    let pct = |n: f64| 100.0 * n / connections;
    let orderly = [pct(rst), pct(overflow), pct(client_overflow)];
    let mut warning = if teardown::service::not_orderly(&orderly) {
        format!("{}: ", teardown::service::NOT_ORDERLY)
    } else {
        String::new()
    };
    let on_clients = if client_overflow > 0.0 {
        format!(
            " and {:.1} % on the clients ({client_overflow} overflows)",
            pct(client_overflow)
        )
    } else {
        String::new()
    };
    if let Some(n) = r
        .pointer("/unopened")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
    {
        warning = format!("TIMED OUT with {n} connections never opened: {warning}");
    }
    let at_concurrency = match r.pointer("/teardowns_per_sec_at_concurrency") {
        Some(Value::Number(n)) => format!(
            ", {:.0}/s once --concurrency were open",
            n.as_f64().unwrap_or(0.0)
        ),
        _ => String::new(),
    };
    let per_cpu = match r
        .pointer("/server_report/teardowns_per_worker_cpu_sec")
        .and_then(Value::as_f64)
    {
        Some(n) => {
            let workers = g("/server_report/workers");
            let plural = if workers == json!(1) { "" } else { "s" };
            format!(" ({n:.0} teardowns per CPU second of its {workers} worker thread{plural})")
        }
        None => String::new(),
    };
    let resident = match r.pointer("/server_report/resident/peak_entries") {
        Some(n) => format!(" and {n} entries resident on the server{per_cpu}"),
        None => String::new(),
    };
    // Closes the application made, then counted by how the connections ended.
    let app_timeouts = match r.pointer("/config/app_timeout_secs") {
        Some(Value::Number(_)) => format!(", {} closed by --app-timeout", g("/app_timeouts")),
        _ => String::new(),
    };
    // Completed, and not yet CLOSED: named only when there are any.
    let time_wait = match r
        .pointer("/client_time_wait_at_end")
        .and_then(Value::as_u64)
    {
        Some(n) if n > 0 => format!(" ({n} of them still in TIME-WAIT on the clients)"),
        _ => String::new(),
    };
    // The server's entries its clients' lost FINs left ESTABLISHED: not leaked.
    let half_open = match r.pointer("/server_half_open").and_then(Value::as_u64) {
        Some(n) if n > 0 => format!(
            "; {n} half-open on the server, ESTABLISHED after their clients lost every \
             FIN and gave up"
        ),
        _ => String::new(),
    };
    // Opens held back by the 4-tuple range, not by --concurrency.
    let tuple_wait = match r.pointer("/tuple_wait_secs").and_then(Value::as_f64) {
        Some(s) if s > 0.0 => format!(
            "; opens waited {s:.2} s for a free (ip, port), every one of a worker's range \
             in its table (raise --client-ips)"
        ),
        _ => String::new(),
    };
    let line = format!(
        "{warning}{:.0} teardowns/s over the {:.2} s load window, first to last open ({:.0}/s until the last close{at_concurrency}), \
         with {} connections live at peak on the clients{resident}; {:.1} % ended by RST, \
         {:.1} % skipped TIME-WAIT on the server ({overflow} overflows: tcp_max_tw_buckets){on_clients}\n\
         {} connections: {} completed{time_wait}, {} runaway{app_timeouts}, {} leaked ({} client, {} server){half_open}{tuple_wait}; \
         segments sent {} dropped {} retransmitted {}; active close {}, passive close {}",
        f("/teardowns_per_sec"),
        f("/load_window_secs"),
        f("/overall_teardowns_per_sec"),
        g("/peak_live"),
        pct(rst),
        pct(overflow),
        g("/connections"),
        g("/completed"),
        g("/runaway"),
        g("/leaked"),
        g("/leaked_client"),
        g("/leaked_server"),
        g("/segments/sent"),
        g("/segments/dropped"),
        g("/segments/retransmitted"),
        close_latency(r, "active_close"),
        close_latency(r, "passive_close"),
    );
    [
        Some(line),
        attacks(r),
        r.get("tail").and_then(tail::summary),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n")
}

/// A namespace's closes that skipped TIME-WAIT (`TCPTimeWaitOverflow`), to
/// follow its `TW`, if it had any.
fn overflow(r: &Value, kernel: &str) -> String {
    let p = format!("{kernel}/netstat/TCPTimeWaitOverflow");
    match r.pointer(&p).and_then(Value::as_u64) {
        Some(n) if n > 0 => format!(" (TIME-WAIT overflow +{n})"),
        _ => String::new(),
    }
}

/// `--attack`'s line: per kind, segments sent (on a live target), the
/// connections it killed against the odds' expectation, and the replies it
/// drew, challenge and out-of-window ACKs together (docs/service.md, "Attacks").
fn attacks(r: &Value) -> Option<String> {
    let kinds = r.get("attacks")?.as_object()?;
    if kinds.is_empty() {
        return None;
    }
    let n = |a: &Value, k: &str| a[k].as_u64().unwrap_or(0);
    let each: Vec<String> = kinds
        .iter()
        .map(|(kind, a)| {
            format!(
                "{kind} {} sent ({} on target), {} killed (expected {}), {} ACKs and {} RSTs in reply",
                n(a, "sent"),
                n(a, "on_target"),
                n(a, "killed"),
                odds(a["expected_killed"].as_f64().unwrap_or(0.0)),
                n(a, "challenge_acks") + n(a, "oow_acks"),
                n(a, "rst_replies"),
            )
        })
        .collect();
    Some(format!("attacks: {}", each.join("; ")))
}

/// One side's close latency, or `none` where no connection closed that way
/// (the clients never close first under `--close server`): a 0 would read
/// as a measurement.
fn close_latency(r: &Value, side: &str) -> String {
    let l = &r["latency_ms"][side];
    match l["count"].as_u64() {
        Some(0) => "none".into(),
        _ => format!("p50/p99 {} / {} ms", l["p50"], l["p99"]),
    }
}

/// An expected count, readable from 1/2 per segment down to 2^-32: two
/// decimals from 0.01 up, two significant digits below.
fn odds(x: f64) -> String {
    if x == 0.0 || x >= 0.01 {
        format!("{x:.2}")
    } else {
        format!("{x:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_leads_with_live_resets_and_overflow() {
        let mut r = json!({
            "connections": 1000, "teardowns_per_sec": 5e5, "load_window_secs": 2.0,
            "overall_teardowns_per_sec": 4e5, "peak_live": 900,
            "closed": {"reset": 5, "aborted": 0},
            "server": {"time_wait_overflow": 0.0},
            "server_report": {"resident": {"peak_entries": 950}},
        });
        let clean = summary(&r);
        assert!(
            clean.starts_with("500000 teardowns/s over the 2.00 s load window, first to last open (400000/s until the last close), with 900 connections live at peak on the clients and 950 entries resident on the server; 0.5 % ended by RST, 0.0 % skipped TIME-WAIT"),
            "{clean}"
        );
        r["teardowns_per_sec_at_concurrency"] = json!(6e5);
        assert!(
            summary(&r)
                .contains("(400000/s until the last close, 600000/s once --concurrency were open)"),
            "{}",
            summary(&r)
        );
        r["server_report"]["teardowns_per_worker_cpu_sec"] = json!(2.5e6);
        r["server_report"]["workers"] = json!(1);
        assert!(
            summary(&r).contains(
                "and 950 entries resident on the server (2500000 teardowns per CPU second of its 1 worker thread); "
            ),
            "{}",
            summary(&r)
        );
        r["server_report"]["workers"] = json!(2);
        assert!(
            summary(&r).contains("of its 2 worker threads); "),
            "{}",
            summary(&r)
        );
        // The summary of `r` leads with the warning and says `why`.
        let warned = |r: &Value, why: &str| {
            let bad = summary(r);
            assert!(
                bad.starts_with("WARNING: not an orderly teardown: ") && bad.contains(why),
                "{bad}"
            );
            bad
        };
        r["closed"]["reset"] = json!(20);
        r["server"]["time_wait_overflow"] = json!(860.0);
        let bad = warned(
            &r,
            "2.0 % ended by RST, 86.0 % skipped TIME-WAIT on the server (860 overflows",
        );
        assert!(!bad.contains("on the clients ("), "{bad}");
        // Clients that close first overflow their own buckets.
        r["closed"]["reset"] = json!(0);
        r["server"]["time_wait_overflow"] = json!(0.0);
        r["closed"]["time_wait_overflow"] = json!(300);
        warned(
            &r,
            "0.0 % skipped TIME-WAIT on the server (0 overflows: tcp_max_tw_buckets) \
             and 30.0 % on the clients (300 overflows)\n",
        );
    }

    /// Each attack kind's counts are in the summary, not only the JSON.
    #[test]
    fn the_summary_names_each_attack_kind() {
        let mut r = json!({"connections": 10, "attacks": {}});
        assert!(!summary(&r).contains("attacks:"), "{}", summary(&r));
        r["attacks"]["blind-rst"] = json!({
            "sent": 9000, "on_target": 8500, "killed": 0, "expected_killed": 8500.0 / 2f64.powi(32),
            "challenge_acks": 40, "oow_acks": 0, "rst_replies": 0,
        });
        r["attacks"]["syn-timewait"] = json!({
            "sent": 90, "on_target": 80, "killed": 0, "expected_killed": 0.0,
            "challenge_acks": 0, "oow_acks": 70, "rst_replies": 2,
        });
        let s = summary(&r);
        assert!(
            s.contains(
                "\nattacks: blind-rst 9000 sent (8500 on target), 0 killed (expected 2.0e-6), \
                 40 ACKs and 0 RSTs in reply; syn-timewait 90 sent (80 on target), 0 killed \
                 (expected 0.00), 70 ACKs and 2 RSTs in reply"
            ),
            "{s}"
        );
    }

    /// A side no connection closed on says `none`, not a latency of 0.
    #[test]
    fn a_close_side_without_connections_says_none() {
        let r = json!({
            "connections": 10,
            "latency_ms": {
                "active_close": {"count": 0, "p50": 0.0, "p99": 0.0},
                "passive_close": {"count": 10, "p50": 8.003, "p99": 223.103},
            },
        });
        let s = summary(&r);
        assert!(
            s.contains("; active close none, passive close p50/p99 8.003 / 223.103 ms"),
            "{s}"
        );
    }

    /// Connections the application closed at `--app-timeout` are named beside
    /// the leaked, when the run had that timeout.
    #[test]
    fn the_summary_names_the_app_timeouts_closes() {
        let mut r = json!({"connections": 20, "completed": 13, "runaway": 0, "leaked": 0});
        assert!(
            summary(&r).contains("20 connections: 13 completed, 0 runaway, 0 leaked"),
            "{}",
            summary(&r)
        );
        r["config"] = json!({"app_timeout_secs": 2.0});
        r["app_timeouts"] = json!(7);
        assert!(
            summary(&r).contains(
                "20 connections: 13 completed, 0 runaway, 7 closed by --app-timeout, 0 leaked"
            ),
            "{}",
            summary(&r)
        );
    }

    /// Clients left in TIME-WAIT are named among the completed, and only
    /// when there are any: settled, so not among the leaked.
    #[test]
    fn the_summary_names_the_clients_left_in_time_wait() {
        let mut r = json!({"connections": 20, "completed": 20, "runaway": 0, "leaked": 0,
            "leaked_client": 0, "leaked_server": 0, "client_time_wait_at_end": 0});
        let line = summary(&r);
        assert!(
            line.contains("0 leaked (0 client, 0 server); segments"),
            "{line}"
        );
        assert!(!line.contains("TIME-WAIT on the clients"), "{line}");
        r["client_time_wait_at_end"] = json!(7);
        let line = summary(&r);
        assert!(
            line.contains(
                "20 connections: 20 completed (7 of them still in TIME-WAIT on the clients), \
                 0 runaway, 0 leaked (0 client, 0 server); segments"
            ),
            "{line}"
        );
    }

    /// Server entries left half-open by clients that gave up their FIN are
    /// named beside the leaked, only when there are any.
    #[test]
    fn the_summary_names_the_half_open_server_entries() {
        let mut r = json!({"connections": 20, "leaked": 0, "leaked_client": 0,
            "leaked_server": 0, "server_half_open": 0});
        let line = summary(&r);
        assert!(!line.contains("half-open"), "{line}");
        r["server_half_open"] = json!(2);
        let line = summary(&r);
        assert!(
            line.contains(
                "0 leaked (0 client, 0 server); 2 half-open on the server, ESTABLISHED after \
                 their clients lost every FIN and gave up; segments"
            ),
            "{line}"
        );
    }

    /// A run cut short by `--timeout` leads with it, and opens held back by
    /// the 4-tuple range are named: neither shows when it did not happen.
    #[test]
    fn the_summary_leads_with_unopened_connections_and_names_tuple_waits() {
        let mut r = json!({"connections": 10, "unopened": 0, "tuple_wait_secs": 0.0});
        let line = summary(&r);
        assert!(
            !line.contains("TIMED OUT") && !line.contains("waited"),
            "{line}"
        );
        r["unopened"] = json!(20);
        r["tuple_wait_secs"] = json!(2.5);
        let line = summary(&r);
        assert!(
            line.starts_with("TIMED OUT with 20 connections never opened: "),
            "{line}"
        );
        assert!(
            line.contains("; opens waited 2.50 s for a free (ip, port)"),
            "{line}"
        );
    }
}
