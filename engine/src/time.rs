//! Time as the engine sees it: a value the driver passes in.
//!
//! The engine never reads a clock (sans-IO). A [`Time`] is microseconds since an
//! epoch the driver picks; the simulator uses a virtual clock, the service a real one.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, in microseconds since the driver's epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    pub const ZERO: Time = Time(0);

    #[inline]
    pub const fn from_micros(us: u64) -> Time {
        Time(us)
    }

    #[inline]
    pub const fn from_millis(ms: u64) -> Time {
        Time(ms * 1000)
    }

    /// Seconds since the epoch, to the microsecond; saturates (a schedule at
    /// an absurdly low rate is due at the end of time, not a panic).
    #[inline]
    pub fn from_secs_f64(secs: f64) -> Time {
        Duration::try_from_secs_f64(secs).map_or(Time(u64::MAX), |d| Time::ZERO + d)
    }

    #[inline]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds, rounded down: the engine's timer tick.
    #[inline]
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// Milliseconds rounded up, so that a deadline converted to ticks never fires early.
    /// As `(us + 999) / 1000`: one multiply, where `div_ceil`'s test of the
    /// remainder took another and a compare (every arm of a timer rounds);
    /// only the last 999 µs of the range, where the sum would overflow, take
    /// `div_ceil`.
    #[inline]
    pub const fn ceil_millis(self) -> u64 {
        match self.0.checked_add(999) {
            Some(us) => us / 1000,
            None => self.0.div_ceil(1000),
        }
    }

    /// The low 32 bits of the millisecond clock, used for compact per-entry stamps.
    /// They wrap after 49.7 days; stamps are only ever compared by difference.
    #[inline]
    pub const fn stamp_ms(self) -> u32 {
        self.as_millis() as u32
    }

    #[inline]
    pub fn saturating_sub(self, rhs: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(rhs.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    #[inline]
    fn add(self, d: Duration) -> Time {
        Time(
            self.0
                .saturating_add(d.as_micros().min(u64::MAX as u128) as u64),
        )
    }
}

impl Sub for Time {
    type Output = Duration;
    #[inline]
    fn sub(self, rhs: Time) -> Duration {
        self.saturating_sub(rhs)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Takes the front of a queue kept in time order, if it is due by `now`:
/// `while let Some(x) = pop_due(&mut q, now) { ... }` drains what is due.
pub fn pop_due<T>(q: &mut std::collections::VecDeque<(Time, T)>, now: Time) -> Option<T> {
    match q.front() {
        Some((t, _)) if *t <= now => q.pop_front().map(|(_, x)| x),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_due_takes_only_what_is_due() {
        let mut q: std::collections::VecDeque<(Time, u8)> =
            [(Time::from_millis(1), 1), (Time::from_millis(2), 2)].into();
        assert_eq!(pop_due(&mut q, Time::ZERO), None);
        assert_eq!(pop_due(&mut q, Time::from_millis(1)), Some(1));
        assert_eq!(pop_due(&mut q, Time::from_millis(1)), None);
        assert_eq!(pop_due(&mut q, Time::from_millis(5)), Some(2));
        assert_eq!(pop_due(&mut q, Time::from_millis(5)), None);
    }

    #[test]
    fn ceil_never_rounds_a_deadline_down() {
        assert_eq!(Time::from_micros(1_000).ceil_millis(), 1);
        assert_eq!(Time::from_micros(1_001).ceil_millis(), 2);
        assert_eq!(Time::from_micros(1_999).as_millis(), 1);
        assert_eq!(Time::ZERO.ceil_millis(), 0);
        // Every remainder, and the top of the range where `us + 999` overflows.
        for us in (0..3_000).chain(u64::MAX - 3_000..=u64::MAX) {
            assert_eq!(
                Time::from_micros(us).ceil_millis(),
                us.div_ceil(1000),
                "{us}"
            );
        }
        assert_eq!(Time::ZERO + Duration::from_millis(5), Time::from_millis(5));
        assert_eq!(Time::from_millis(3) - Time::from_millis(5), Duration::ZERO);
    }
}
