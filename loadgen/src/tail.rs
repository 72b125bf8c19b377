//! What a run's tail was made of.
//!
//! With two million connections and 1 % loss each way, a few handshakes or
//! FINs lose several transmissions in a row, and each retransmission waits
//! twice as long as the one before (RFC 6298 §5.5): a SYN's from 1 s
//! (`TCP_TIMEOUT_INIT`), a FIN's from the RTO its connection measured. The
//! last handful of connections can end ten seconds after the last open,
//! while the load took two. The report says so rather than leave the
//! whole-run figure unexplained: after the last open, when the connections
//! still unsettled (neither accounted for nor in the client's TIME-WAIT, see
//! the crate docs) first fell to 1 %, 0.1 %, 0.01 % and 0.001 % of the
//! run, and to none, and the states the stragglers were then in on both sides (SYN-SENT:
//! a SYN being retried; SYN-RECEIVED on the server: a SYN-ACK; FIN-WAIT-1,
//! CLOSING, LAST-ACK: a FIN).

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Map, Value};
use teardown_engine::State;

/// The marks, as shares of the run's connections still unsettled (the
/// fourth is the last 20 of two million).
const SHARES: [f64; 5] = [0.01, 0.001, 0.0001, 0.00001, 0.0];

/// One mark reached: how long after the last open, and who was left.
struct Mark {
    share: f64,
    /// Connections still unsettled at most.
    left: u64,
    secs: f64,
    /// The clients' unsettled connections by state (neither CLOSED nor TIME-WAIT).
    clients: BTreeMap<&'static str, u64>,
    /// The server's connections outside TIME-WAIT by state, when it could be read.
    server: Option<BTreeMap<&'static str, u64>>,
}

/// The marks of one run, sampled by the main loop (so to its 50 ms).
pub struct Tail {
    connections: u64,
    last_open: Option<Instant>,
    marks: Vec<Mark>,
    /// The next of [`SHARES`] to reach.
    next: usize,
}

impl Tail {
    pub fn new(connections: u64) -> Tail {
        Tail {
            connections,
            last_open: None,
            marks: Vec::new(),
            next: 0,
        }
    }

    /// Takes one sample: `opened` and `settled` over all clients, their
    /// population of a state, and the server's metrics, read only when a
    /// mark is reached.
    pub fn sample(
        &mut self,
        opened: u64,
        settled: u64,
        clients: impl Fn(State) -> u64,
        server: impl FnOnce() -> Option<BTreeMap<String, f64>>,
    ) {
        if opened < self.connections {
            return;
        }
        let now = Instant::now();
        let since = *self.last_open.get_or_insert(now);
        let left = opened - settled.min(opened);
        let Some(share) = self.reached(left) else {
            return;
        };
        let clients = State::ALL
            .iter()
            .filter(|s| !matches!(s, State::Closed | State::TimeWait))
            .map(|s| (s.key(), clients(*s)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let server = server().map(|m| {
            State::ALL
                .iter()
                .filter(|s| !matches!(s, State::Closed | State::TimeWait))
                .map(|s| {
                    let key = format!("teardown_connections{{state=\"{}\"}}", s.key());
                    (s.key(), m.get(&key).copied().unwrap_or(0.0) as u64)
                })
                .filter(|(_, n)| *n > 0)
                .collect()
        });
        self.marks.push(Mark {
            share,
            left,
            secs: (now - since).as_secs_f64(),
            clients,
            server,
        });
    }

    /// The smallest share `left` is now within that was not reached before;
    /// shares that name the same count (in a small run) make one mark.
    fn reached(&mut self, left: u64) -> Option<f64> {
        let mut hit = None;
        while let Some(&share) = SHARES.get(self.next) {
            if left > (share * self.connections as f64) as u64 {
                break;
            }
            hit = Some(share);
            self.next += 1;
        }
        hit
    }

    /// The `tail` section of the report; `ended`: when the run stopped waiting.
    pub fn report(&self, ended: Instant) -> Value {
        let states = |m: &BTreeMap<&'static str, u64>| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| ((*k).into(), json!(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        let marks: Vec<Value> = self
            .marks
            .iter()
            .map(|m| {
                json!({
                    "share": m.share,
                    "left": m.left,
                    "secs_after_last_open": m.secs,
                    "clients": states(&m.clients),
                    "server": m.server.as_ref().map(states),
                })
            })
            .collect();
        json!({
            "secs_after_last_open": self.last_open.map(|t| ended.saturating_duration_since(t).as_secs_f64()),
            "marks": marks,
        })
    }
}

/// The summary's tail line, from a report's `tail` section.
pub fn summary(tail: &Value) -> Option<String> {
    let end = tail.get("secs_after_last_open")?.as_f64()?;
    let marks = tail.get("marks")?.as_array()?;
    let states = |v: &Value| {
        v.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
    };
    let mut parts = Vec::new();
    let mut last_states = String::new();
    for m in marks {
        let share = m["share"].as_f64().unwrap_or(0.0);
        let secs = m["secs_after_last_open"].as_f64().unwrap_or(0.0);
        let what = if share > 0.0 {
            // 0.01 %, not 0.010000000000000002 %.
            format!("{} % left", (share * 1e6).round() / 1e4)
        } else {
            "none left".into()
        };
        parts.push(format!("{what} at {secs:.2} s"));
        let (c, s) = (states(&m["clients"]), states(&m["server"]));
        if c.is_some() || s.is_some() {
            last_states = format!(
                " (then in clients: {}; server: {})",
                c.unwrap_or_else(|| "none".into()),
                s.unwrap_or_else(|| "none".into())
            );
        }
    }
    Some(format!(
        "tail after the last open: {}{last_states}; the run ended {end:.2} s after it",
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample with `syn_sent` stragglers, beside clients in TIME-WAIT,
    /// which are settled: no straggler's state.
    fn sample(t: &mut Tail, opened: u64, settled: u64, syn_sent: u64) {
        t.sample(
            opened,
            settled,
            |s| match s {
                State::SynSent => syn_sent,
                State::TimeWait => 7,
                _ => 0,
            },
            || {
                Some(
                    [(
                        "teardown_connections{state=\"fin_wait_1\"}".to_string(),
                        3.0,
                    )]
                    .into_iter()
                    .collect(),
                )
            },
        );
    }

    #[test]
    fn marks_each_share_once_with_the_stragglers() {
        let mut t = Tail::new(1_000_000);
        // Still opening: no mark, however few are left.
        sample(&mut t, 999_999, 999_999, 0);
        assert!(t.marks.is_empty() && t.last_open.is_none());
        sample(&mut t, 1_000_000, 900_000, 50);
        assert!(t.marks.is_empty());
        // 1 % (10,000) and 0.1 % (1,000) at once: one mark, the smaller.
        sample(&mut t, 1_000_000, 999_500, 40);
        sample(&mut t, 1_000_000, 999_600, 30);
        sample(&mut t, 1_000_000, 999_950, 20);
        sample(&mut t, 1_000_000, 999_995, 5);
        sample(&mut t, 1_000_000, 1_000_000, 0);
        let shares: Vec<f64> = t.marks.iter().map(|m| m.share).collect();
        assert_eq!(shares, [0.001, 0.0001, 0.00001, 0.0]);
        assert_eq!(t.marks[0].left, 500);
        assert_eq!(t.marks[1].clients.get("syn_sent"), Some(&20));
        assert_eq!(t.marks[2].left, 5);
        assert!(t.marks[3].clients.is_empty());
        let r = t.report(Instant::now());
        assert_eq!(r["marks"][1]["server"]["fin_wait_1"], json!(3));
        let line = summary(&r).unwrap();
        assert!(
            line.starts_with("tail after the last open: 0.1 % left at ")
                && line.contains("0.01 % left at ")
                && line.contains("0.001 % left at ")
                && line.contains("none left at ")
                && line.contains("(then in clients: none; server: fin_wait_1 3)"),
            "{line}"
        );
    }

    #[test]
    fn a_small_run_does_not_repeat_a_count() {
        // 0.01 % and 0.001 % of 1,000 are no connection, as "none" is: one mark.
        let mut t = Tail::new(1_000);
        sample(&mut t, 1_000, 1_000, 0);
        let shares: Vec<f64> = t.marks.iter().map(|m| m.share).collect();
        assert_eq!(shares, [0.0]);
    }
}
