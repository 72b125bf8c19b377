//! The JSON of the host readings: `time_wait`, `kernel`, `server_netns` and
//! the per-second `series` (docs/service.md, "Host-side readings"), and the
//! note on TIME-WAIT that was not between loadgen and the target.

use serde_json::{json, Map, Value};

use super::{Reading, Sample, Sides, COUNTERS};

/// The report's sections from the samples (the first is the baseline).
pub(super) fn sections(samples: &[Sample]) -> Map<String, Value> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Map::new();
    };
    let peak = samples
        .iter()
        .fold(Sides::default(), |p, s| p.max(s.sides()));
    let series: Vec<Value> = samples
        .windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            json!({
                "t_secs": b.secs,
                "secs": b.secs - a.secs,
                "started": growth(a.started, b.started),
                "completed": growth(a.completed, b.completed),
                "errors": growth(a.errors, b.errors),
                "time_wait": sides_json(b.sides()),
                "sockstat": sockstat_json(&b.reading),
                "tw_slab_bytes": b.reading.tw_slab_bytes,
                "netstat": deltas("netstat", &a.reading, &b.reading),
                "snmp": deltas("snmp", &a.reading, &b.reading),
                "server_netns": match (&a.server, &b.server) {
                    (Some(x), Some(y)) => json!({
                        "sockstat": sockstat_json(y),
                        "netstat": deltas("netstat", x, y),
                        "snmp": deltas("snmp", x, y),
                    }),
                    _ => Value::Null,
                },
            })
        })
        .collect();
    let mut out = Map::new();
    out.insert(
        "time_wait".into(),
        json!({
            "server_peak": peak.server,
            "client_peak": peak.client,
            "other_peak": peak.other,
            "other_at_start": first.sides().other,
            "server_at_start": first.sides().server,
            "client_at_start": first.sides().client,
            "server_at_end": last.sides().server,
            "client_at_end": last.sides().client,
        }),
    );
    let readings: Vec<&Reading> = samples.iter().map(|s| &s.reading).collect();
    out.insert("kernel".into(), kernel_json(&readings));
    let server: Option<Vec<&Reading>> = samples.iter().map(|s| s.server.as_ref()).collect();
    if let Some(server) = server {
        out.insert(
            "server_netns".into(),
            json!({ "kernel": kernel_json(&server) }),
        );
    }
    out.insert("series".into(), Value::Array(series));
    out
}

/// How much a progress count grew between two samples.
fn growth(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    Some(b? - a?.min(b?))
}

/// Growth of one section's [`COUNTERS`] between two readings.
fn deltas(section: &str, from: &Reading, to: &Reading) -> Map<String, Value> {
    COUNTERS
        .iter()
        .enumerate()
        .filter(|(_, (_, _, s))| *s == section)
        .map(|(i, (_, name, _))| {
            (
                name.to_string(),
                json!(to.counters[i].saturating_sub(from.counters[i])),
            )
        })
        .collect()
}

/// A namespace's `kernel` section from its readings, first to last.
fn kernel_json(readings: &[&Reading]) -> Value {
    let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
        return Value::Null;
    };
    let sockstat_peak = |i: usize| readings.iter().map(|r| r.sockstat[i]).max();
    json!({
        "netstat": deltas("netstat", first, last),
        "snmp": deltas("snmp", first, last),
        "sockstat": {
            "tw_peak": sockstat_peak(0),
            "orphan_peak": sockstat_peak(1),
            "inuse_peak": sockstat_peak(2),
        },
        "tw_slab_bytes_peak": readings.iter().filter_map(|r| r.tw_slab_bytes).max(),
        "samples": readings.len(),
    })
}

fn sockstat_json(r: &Reading) -> Value {
    json!({ "tw": r.sockstat[0], "orphan": r.sockstat[1], "inuse": r.sockstat[2] })
}

/// Adds `time_wait.entered_by_others` and `time_wait.overflow`, and notes
/// to the whole report:
/// * TIME-WAIT the kernel counted (`TW`, loadgen's namespace plus the
///   server's) beyond one per connection loadgen saw closed by a FIN. Each
///   FIN close leaves one TIME-WAIT, on one side; a proxy between loadgen
///   and the server leaves another per upstream connection, which the side
///   counts (by the target's address) do not see and the host's counters do.
/// * Closes that skipped TIME-WAIT (`TCPTimeWaitOverflow`, `tcp_time_wait`):
///   the buckets were full, often of an earlier run's TIME-WAIT, so `TW` did
///   not grow and the side counts stay low whatever the close rate.
pub fn note_others(report: &mut Value) {
    let get = |p: &str| report.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let both = |p: &str| get(&format!("/kernel/{p}")) + get(&format!("/server_netns/kernel/{p}"));
    let entered = both("netstat/TW");
    let overflow = both("netstat/TCPTimeWaitOverflow");
    let fin_closes = get("/closed_by/server_fin") + get("/closed_by/client_fin");
    let others = entered.saturating_sub(fin_closes);
    let (other_peak, other_at_start) = (
        get("/time_wait/other_peak"),
        get("/time_wait/other_at_start"),
    );
    report["time_wait"]["entered_by_others"] = json!(others);
    report["time_wait"]["overflow"] = json!(overflow);
    let mut notes = Vec::new();
    if overflow > 0 {
        notes.push(format!(
            "{overflow} closes skipped TIME-WAIT (kernel TCPTimeWaitOverflow +{overflow}): the \
             kernel's TIME-WAIT buckets (net.ipv4.tcp_max_tw_buckets) were full, so the \
             TIME-WAIT counts and kernel TW show fewer than this run's closes made"
        ));
    }
    if others > 0 || other_peak > 0 {
        let before = match other_at_start {
            0 => String::new(),
            n => format!(" ({n} of them already there when the run began)"),
        };
        notes.push(format!(
            "{others} TIME-WAIT entries (kernel TW +{entered} against {fin_closes} FIN-closed \
             connections of this run) and a peak of {other_peak} TIME-WAIT sockets{before} were \
             between other endpoints than loadgen and the target, such as a proxy and its \
             upstream, an earlier run or other programs: the host-wide counters \
             (kernel.netstat.TW, kernel.sockstat.tw_peak, tw_slab_bytes_peak) include them, \
             time_wait.server_peak and client_peak do not"
        ));
    }
    if !notes.is_empty() {
        report["notes"] = json!(notes);
    }
}

fn sides_json(s: Sides) -> Value {
    json!({ "server": s.server, "client": s.client, "other": s.other })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: f64, completed: u64, tw: u64, server: u64) -> Sample {
        let mut reading = Reading::default();
        reading.counters[0] = tw;
        reading.counters[10] = 2 * tw;
        reading.time_wait.server = server;
        reading.sockstat = [server, 0, 1];
        Sample {
            secs,
            started: Some(completed),
            completed: Some(completed),
            errors: Some(0),
            reading,
            server: None,
        }
    }

    #[test]
    fn time_wait_beyond_the_runs_fin_closes_is_noted() {
        let mut r = json!({
            "closed_by": {"server_fin": 300, "client_fin": 0},
            "kernel": {"netstat": {"TW": 600}},
            "time_wait": {"other_peak": 300},
        });
        note_others(&mut r);
        assert_eq!(r["time_wait"]["entered_by_others"], 300);
        let note = r["notes"][0].as_str().unwrap();
        assert!(
            note.starts_with("300 TIME-WAIT entries (kernel TW +600 against 300"),
            "{note}"
        );
        let mut quiet = json!({
            "closed_by": {"server_fin": 10, "client_fin": 5},
            "kernel": {"netstat": {"TW": 15}},
            "server_netns": {"kernel": {"netstat": {"TW": 0}}},
            "time_wait": {"other_peak": 0},
        });
        note_others(&mut quiet);
        assert_eq!(quiet["time_wait"]["entered_by_others"], 0);
        assert_eq!(quiet["time_wait"]["overflow"], 0);
        assert_eq!(quiet.get("notes"), None);
    }

    /// Buckets full of an earlier run's TIME-WAIT: this run's closes skip
    /// it (`TW` +0), and the notes say so first, then whose the others are.
    #[test]
    fn full_buckets_and_an_earlier_runs_time_wait_are_noted() {
        let mut r = json!({
            "closed_by": {"server_fin": 0, "client_fin": 5000},
            "kernel": {"netstat": {"TW": 0, "TCPTimeWaitOverflow": 4000}},
            "server_netns": {"kernel": {"netstat": {"TW": 0, "TCPTimeWaitOverflow": 1000}}},
            "time_wait": {"other_peak": 131072, "other_at_start": 131072},
        });
        note_others(&mut r);
        assert_eq!(r["time_wait"]["overflow"], 5000);
        let notes: Vec<&str> = r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("5000 closes skipped TIME-WAIT"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].contains("131072 of them already there when the run began"),
            "{}",
            notes[1]
        );
    }

    #[test]
    fn deltas_peaks_and_series() {
        let r = Value::Object(sections(&[
            sample(0.0, 0, 100, 5),
            sample(1.0, 40, 140, 45),
            sample(1.5, 50, 150, 30),
        ]));
        assert_eq!(r["kernel"]["netstat"]["TW"], 50);
        assert_eq!(r["kernel"]["snmp"]["RetransSegs"], 100);
        assert_eq!(r["kernel"]["netstat"].get("RetransSegs"), None);
        assert_eq!(r["time_wait"]["server_peak"], 45);
        assert_eq!(r["time_wait"]["server_at_start"], 5);
        assert_eq!(r["time_wait"]["other_at_start"], 0);
        assert_eq!(r["kernel"]["sockstat"]["tw_peak"], 45);
        assert_eq!(r["kernel"]["tw_slab_bytes_peak"], Value::Null);
        let series = r["series"].as_array().unwrap();
        assert_eq!(series.len(), 2);
        assert_eq!(series[0]["completed"], 40);
        assert_eq!(series[1]["completed"], 10);
        assert_eq!(series[1]["netstat"]["TW"], 10);
        assert_eq!(series[1]["time_wait"]["server"], 30);
    }
}
