//! The service's clock: real time, compressed or stretched into engine time.

use std::time::{Duration, Instant};

use teardown_engine::time::Time;

/// Real time mapped to engine time: `Time` = 1 s + real elapsed / scale. The
/// 1 s offset keeps engine stamps away from zero, which some fields use as "unset".
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    scale: f64,
}

impl Clock {
    const EPOCH_US: u64 = 1_000_000;

    pub fn new(scale: f64) -> Clock {
        Clock {
            start: Instant::now(),
            scale,
        }
    }

    pub fn scale(&self) -> f64 {
        self.scale
    }

    #[inline]
    pub fn now(&self) -> Time {
        self.at(Instant::now())
    }

    #[inline]
    pub fn at(&self, instant: Instant) -> Time {
        let real = instant.saturating_duration_since(self.start).as_micros() as f64;
        // The cast saturates; so does the sum, long after any run has ended.
        Time::from_micros(Self::EPOCH_US.saturating_add((real / self.scale) as u64))
    }

    /// Real time until engine time `t`, zero if it has passed.
    pub fn real_until(&self, t: Time) -> Duration {
        let engine = t.saturating_sub(self.now());
        engine.mul_f64(self.scale)
    }

    /// Real duration of an engine duration.
    pub fn to_real(&self, engine: Duration) -> Duration {
        engine.mul_f64(self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_compresses_time() {
        let c = Clock::new(0.01);
        let t0 = c.now();
        assert!(t0 >= Time::from_micros(Clock::EPOCH_US));
        assert_eq!(
            c.to_real(Duration::from_secs(60)),
            Duration::from_millis(600)
        );
        assert!(c.real_until(t0 + Duration::from_secs(1)) <= Duration::from_millis(10));
    }
}
