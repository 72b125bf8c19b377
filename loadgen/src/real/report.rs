//! Counters and latency histograms of a run against a real server, and their
//! JSON. Each histogram also goes out in HdrHistogram's V2 encoding (base64),
//! so that reports of several runs or shards can be merged exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::conn::{ClosedBy, Outcome};

/// Error keys always present in the report, zero or not.
const ERRORS: [&str; 6] = [
    "eaddrnotavail",
    "econnrefused",
    "econnreset",
    "etimedout",
    "emfile",
    "other",
];

/// Histogram range: 1 µs to an hour, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds")
}

pub struct Tally {
    /// Connections started (a socket was asked for).
    pub connections: u64,
    pub established: u64,
    pub completed: u64,
    closed_by: [u64; ClosedBy::ALL.len()],
    errors: BTreeMap<&'static str, u64>,
    connect: Histogram<u64>,
    first_byte: Histogram<u64>,
    close: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            connections: 0,
            established: 0,
            completed: 0,
            closed_by: [0; ClosedBy::ALL.len()],
            errors: ERRORS.iter().map(|k| (*k, 0)).collect(),
            connect: histogram(),
            first_byte: histogram(),
            close: histogram(),
        }
    }
}

fn record(h: &mut Histogram<u64>, d: Option<Duration>) {
    if let Some(d) = d {
        h.saturating_record((d.as_micros() as u64).max(1));
    }
}

impl Tally {
    pub fn error(&mut self, key: &'static str) {
        *self.errors.entry(key).or_default() += 1;
    }

    pub fn record(&mut self, o: &Outcome) {
        if let Some(c) = o.closed_by {
            self.established += 1;
            self.closed_by[c as usize] += 1;
        }
        self.completed += o.completed as u64;
        if let Some(e) = o.error {
            self.error(e);
        }
        record(&mut self.connect, o.connect);
        record(&mut self.first_byte, o.first_byte);
        record(&mut self.close, o.close);
    }

    /// Errors of every kind so far.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn closed_by(&self, c: ClosedBy) -> u64 {
        self.closed_by[c as usize]
    }

    /// `connections`, `established`, `completed`, `closed_by`, `errors`,
    /// `latency_ms` and `histograms` of the report.
    pub fn json(&self) -> anyhow::Result<Map<String, Value>> {
        let closed_by: Map<String, Value> = ClosedBy::ALL
            .iter()
            .map(|c| (c.key().to_string(), json!(self.closed_by(*c))))
            .collect();
        let hists = [
            ("connect", &self.connect),
            ("first_byte", &self.first_byte),
            ("close", &self.close),
        ];
        let mut latency = Map::new();
        let mut encoded = Map::new();
        for (name, h) in hists {
            latency.insert(name.into(), crate::report::latency(h));
            encoded.insert(name.into(), json!(encode(h)?));
        }
        encoded.insert("unit".into(), json!("us"));
        let mut out = Map::new();
        out.insert("connections".into(), json!(self.connections));
        out.insert("established".into(), json!(self.established));
        out.insert("completed".into(), json!(self.completed));
        out.insert("closed_by".into(), Value::Object(closed_by));
        out.insert("errors".into(), json!(self.errors));
        out.insert("latency_ms".into(), Value::Object(latency));
        out.insert("histograms".into(), Value::Object(encoded));
        Ok(out)
    }
}

/// HdrHistogram's V2 encoding (not deflated), base64: what `HistogramLogWriter`
/// and the Java and Go HdrHistogram libraries read back.
pub fn encode(h: &Histogram<u64>) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut bytes)
        .map_err(|e| anyhow::anyhow!("serializing a histogram: {e:?}"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A histogram from [`encode`]'s text (plain or deflated V2, as
/// hdrhistogram's deserializer takes either).
pub fn decode(b64: &str) -> anyhow::Result<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| anyhow::anyhow!("not a V2 histogram: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_tallied_and_histograms_round_trip() {
        let mut t = Tally::default();
        for ms in 1..=100u64 {
            t.record(&Outcome {
                closed_by: Some(ClosedBy::ServerFin),
                completed: true,
                connect: Some(Duration::from_millis(ms)),
                ..Outcome::default()
            });
        }
        t.record(&Outcome {
            error: Some("econnrefused"),
            ..Outcome::default()
        });
        let j = Value::Object(t.json().unwrap());
        assert_eq!(j["established"], 100);
        assert_eq!(j["completed"], 100);
        assert_eq!(j["closed_by"]["server_fin"], 100);
        assert_eq!(j["errors"]["econnrefused"], 1);
        assert_eq!(j["errors"]["eaddrnotavail"], 0);
        assert_eq!(j["latency_ms"]["first_byte"]["count"], 0);
        let b64 = j["histograms"]["connect"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        assert_eq!(h, t.connect);
        assert_eq!(h.len(), 100);
        assert_eq!(h.value_at_quantile(0.5) / 1000, 50);
    }
}
