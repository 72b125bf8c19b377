//! The comparison as a table for people, colored on a terminal.

use std::fmt::Write as _;

use owo_colors::{OwoColorize, Stream};

use super::{Better, Comparison, Figure, Kind, Verdict};

/// A number in a column: enough digits to see a few-percent change.
fn show(f: Option<Figure>) -> String {
    match f {
        None => "-".to_string(),
        Some(Figure { value, noise }) => {
            let digits = if value.abs() >= 1000.0 {
                0
            } else if value.abs() >= 1.0 {
                2
            } else {
                4
            };
            if noise > 0.0 {
                format!("{value:.digits$} ±{noise:.digits$}")
            } else {
                format!("{value:.digits$}")
            }
        }
    }
}

impl Comparison {
    /// The table, colored when stdout is a terminal that supports it.
    pub fn render(&self, threshold: f64) -> String {
        let mut o = String::new();
        let unit = match self.kind {
            Kind::Sim => "sim report",
            Kind::Criterion => "criterion median, ns",
        };
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = writeln!(
            o,
            "{:<width$}  {:>22}  {:>22}  {:>9}  verdict  ({unit}; threshold {:.1}%)",
            "figure",
            "old",
            "new",
            "change",
            threshold * 100.0
        );
        for r in &self.rows {
            let change = r
                .change()
                .map_or("-".to_string(), |c| format!("{:+.1}%", c * 100.0));
            let verdict = format!("{:<7}", r.verdict.label());
            let verdict = match r.verdict {
                Verdict::Improved => verdict
                    .if_supports_color(Stream::Stdout, |t| t.green())
                    .to_string(),
                Verdict::Regressed | Verdict::Missing => verdict
                    .if_supports_color(Stream::Stdout, |t| t.red())
                    .to_string(),
                _ => verdict,
            };
            let dir = match r.better {
                Better::Higher => "higher is better",
                Better::Lower => "lower is better",
            };
            let _ = writeln!(
                o,
                "{:<width$}  {:>22}  {:>22}  {:>9}  {verdict}  {dir}",
                r.name,
                show(r.old),
                show(r.new),
                change
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        let count = |v: Verdict| self.rows.iter().filter(|r| r.verdict == v).count();
        let _ = writeln!(
            o,
            "{} figures: {} better, {} worse, {} same, {} within noise, {} missing, {} added",
            self.rows.len(),
            count(Verdict::Improved),
            count(Verdict::Regressed),
            count(Verdict::Same),
            count(Verdict::Noise),
            count(Verdict::Missing),
            count(Verdict::Added)
        );
        o
    }
}
