//! The server as its metrics endpoint shows it: where the endpoint is, the
//! parsed counters, whether any entry is still outside CLOSED and TIME-WAIT
//! other than the half-open ones the clients explain (the run's end
//! condition), and its figures over the run for the report.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};
use teardown::service::metrics::parse_text;
use teardown::service::net::http_get;
use teardown_engine::State;

use crate::{spawn, Args};

pub(crate) fn metrics_url(args: &Args, spawned: Option<&spawn::Spawned>) -> String {
    match spawned {
        Some(s) => s.metrics_url.clone(),
        None => args.metrics_url.clone(),
    }
}

/// Fetches and parses the server's metrics.
pub(crate) fn scrape(url: &str) -> anyhow::Result<BTreeMap<String, f64>> {
    Ok(parse_text(&http_get(url, Duration::from_secs(2))?)
        .into_iter()
        .collect())
}

/// The server's `POST /release` beside its `/metrics`: it ends `--keep`.
pub(crate) fn release_url(metrics_url: &str) -> Option<String> {
    let rest = metrics_url.strip_prefix("http://")?;
    let host = rest.split('/').next()?;
    Some(format!("http://{host}/release"))
}

/// Server entries outside CLOSED and TIME-WAIT.
fn server_unsettled(m: &BTreeMap<String, f64>) -> u64 {
    State::ALL
        .iter()
        .filter(|s| !matches!(s, State::Closed | State::TimeWait))
        .map(|s| population(m, *s))
        .sum()
}

fn population(m: &BTreeMap<String, f64>, s: State) -> u64 {
    m.get(&format!("teardown_connections{{state=\"{}\"}}", s.key()))
        .copied()
        .unwrap_or(0.0) as u64
}

/// The server's unsettled entries as (leaked, half-open). Half-open: entries
/// still ESTABLISHED, up to `fin_abandoned` clients that gave up in
/// FIN-WAIT-1 with every FIN lost on the link. Linux's orphan gives up so,
/// silently, and a server that waits for the client's FIN with no keepalive
/// then holds ESTABLISHED for good. A client whose FIN arrived leaves the
/// server in CLOSE-WAIT, LAST-ACK or later, which end by themselves, so
/// those are never excused, nor ESTABLISHED entries past the count (which
/// drops when such a tuple opens again: the new SYN ends the old entry).
/// The match is by count, not by tuple: the server's metrics name no tuple.
pub(crate) fn split_unsettled(m: &BTreeMap<String, f64>, fin_abandoned: u64) -> (u64, u64) {
    let half_open = population(m, State::Established).min(fin_abandoned);
    (server_unsettled(m) - half_open, half_open)
}

/// The server's figures over the run: counters as deltas from the start, gauges as read
/// at the end. `teardown_closed_total{reason="reset"}` becomes `closed.reset`.
pub(crate) fn server_section(start: &BTreeMap<String, f64>, end: &BTreeMap<String, f64>) -> Value {
    let mut out = Map::new();
    for (k, v) in end {
        let name = k.strip_prefix("teardown_").unwrap_or(k);
        let (base, label) = match name.split_once('{') {
            Some((b, l)) => (b, l.split('"').nth(1)),
            None => (name, None),
        };
        let counter = base.ends_with("_total");
        let base = base.strip_suffix("_total").unwrap_or(base);
        let key = match label {
            Some(l) => format!("{base}.{l}"),
            None => base.to_string(),
        };
        let value = if counter {
            v - start.get(k).copied().unwrap_or(0.0)
        } else {
            *v
        };
        out.insert(key, json!(value));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_beside_the_metrics() {
        assert_eq!(
            release_url("http://127.0.0.1:9171/metrics").as_deref(),
            Some("http://127.0.0.1:9171/release")
        );
        assert_eq!(release_url("https://x/metrics"), None);
    }

    #[test]
    fn server_section_takes_deltas_of_counters() {
        let start: BTreeMap<_, _> =
            [("teardown_closed_total{reason=\"reset\"}".to_string(), 2.0)].into();
        let end: BTreeMap<_, _> = [
            ("teardown_closed_total{reason=\"reset\"}".to_string(), 5.0),
            ("teardown_connections{state=\"time_wait\"}".to_string(), 7.0),
        ]
        .into();
        let v = server_section(&start, &end);
        assert_eq!(v["closed.reset"], json!(3.0));
        assert_eq!(v["connections.time_wait"], json!(7.0));
        assert_eq!(server_unsettled(&end), 0);
    }

    /// An ESTABLISHED entry is half-open, not leaked, only as far as clients
    /// gave up with every FIN lost; a LAST-ACK is never excused.
    #[test]
    fn only_established_entries_a_client_abandoned_are_half_open() {
        let m: BTreeMap<_, _> = [
            (
                "teardown_connections{state=\"established\"}".to_string(),
                2.0,
            ),
            ("teardown_connections{state=\"last_ack\"}".to_string(), 1.0),
            ("teardown_connections{state=\"time_wait\"}".to_string(), 5.0),
        ]
        .into();
        assert_eq!(split_unsettled(&m, 0), (3, 0));
        assert_eq!(split_unsettled(&m, 1), (2, 1));
        assert_eq!(split_unsettled(&m, 2), (1, 2));
        assert_eq!(split_unsettled(&m, 7), (1, 2));
    }
}
