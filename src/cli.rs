//! Pieces shared by the command-line drivers.

use std::fmt;
use std::time::Duration;

/// A usage error: the command line asked for something meaningless. The binary
/// prints it on one line and exits 2, as clap does for its own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Returns a [`Usage`] error unless `ok`.
pub fn ensure(ok: bool, msg: impl FnOnce() -> String) -> Result<(), Usage> {
    if ok {
        Ok(())
    } else {
        Err(Usage(msg()))
    }
}

/// Parses durations such as `60s`, `200ms`, `1.5s`, `2m`, `500us` (a bare number
/// is seconds), for clap's `value_parser`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (try 60s, 200ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => return Err(format!("unknown unit '{u}' in '{s}' (use us, ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 || secs > 1e9 {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a probability in [0, 1), for loss flags.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    let v = if s.trim().ends_with('%') { v / 100.0 } else { v };
    if !(0.0..1.0).contains(&v) {
        return Err(format!("'{s}' must be in [0, 1) (a loss of 1 would lose everything)"));
    }
    Ok(v)
}

/// Parses a fraction in [0, 1].
pub fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("'{s}' must be in [0, 1]"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.01"), Ok(0.01));
        assert_eq!(parse_probability("1%"), Ok(0.01));
        assert!(parse_probability("1").is_err());
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("-0.1").is_err());
    }
}
