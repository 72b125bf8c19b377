//! A shard's population samples over simulated time, in bounded memory.
//!
//! Samples are taken every `interval` of simulated time. A long run (a day
//! at a low close rate, or a year) would otherwise cost a sample per 100 ms
//! per shard: gigabytes. Past [`MAX_SAMPLES`], every other sample goes and
//! the interval doubles, so a shard never holds more than that, and the
//! kept samples stay on a grid `k * interval` that merging can align.

use std::time::Duration;

use teardown_engine::state::State;
use teardown_engine::time::Time;

/// One population sample of both hosts and their measured heap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    pub server: [u32; State::COUNT],
    pub client: [u32; State::COUNT],
    pub server_bytes: i64,
    pub client_bytes: i64,
    /// The clients' connect() calls so far, and those that failed
    /// (EADDRNOTAVAIL): cumulative, so a window's share is a difference.
    pub connects: u64,
    pub connects_failed: u64,
}

/// Samples a shard keeps at most (about 400 KiB of them).
pub const MAX_SAMPLES: usize = 4096;

/// Samples per chunk of storage (28 KiB). A run holds all its shards at once,
/// so one growing `Vec` per shard could seldom grow in place: every doubling
/// copied the shard's samples (7 M instructions in a 20,000-connection run);
/// chunks are never moved.
const CHUNK: usize = 256;

#[derive(Debug)]
pub struct Series {
    /// Simulated time between kept samples: the configured interval times a
    /// power of two.
    pub interval: Duration,
    samples: Samples,
    /// When the next sample is due (`None` past the end of time): checked on
    /// every simulator event, so kept, not computed.
    next: Option<Time>,
}

/// A list of samples in chunks of [`CHUNK`].
#[derive(Debug, Default)]
struct Samples {
    chunks: Vec<Vec<Sample>>,
    len: usize,
}

impl Samples {
    #[inline]
    fn push(&mut self, s: Sample) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(s);
            self.len += 1;
        }
    }

    /// `n` copies of `s`, a chunk's room at a time.
    fn push_n(&mut self, s: &Sample, n: usize) {
        let mut left = n;
        while left > 0 {
            if self.len.is_multiple_of(CHUNK) {
                self.chunks.push(Vec::with_capacity(CHUNK));
            }
            let Some(c) = self.chunks.last_mut() else {
                return;
            };
            let k = left.min(CHUNK - c.len());
            c.extend(std::iter::repeat_n(*s, k));
            self.len += k;
            left -= k;
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<&Sample> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn iter(&self) -> impl Iterator<Item = &Sample> {
        self.chunks.iter().flatten()
    }
}

impl Series {
    pub fn new(interval: Duration) -> Series {
        Series {
            interval,
            samples: Samples::default(),
            next: Some(Time::ZERO),
        }
    }

    /// Samples kept.
    #[inline]
    pub fn len(&self) -> usize {
        self.samples.len
    }

    /// Kept sample `i`, taken at `i * interval`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&Sample> {
        self.samples.get(i)
    }

    pub fn last(&self) -> Option<&Sample> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// Whether a sample is due at or before `t`.
    #[inline]
    pub fn due_by(&self, t: Time) -> bool {
        self.next.is_some_and(|due| due <= t)
    }

    /// Records `s` for every sample due up to `t`: the populations do not
    /// change between the simulator's events, so one reading serves them all.
    /// They go in at once up to the cap, as many as one at a time would put
    /// there (a quiet stretch, TIME-WAIT's minute, is hundreds of samples,
    /// and a push of its own copied each through three calls).
    pub fn fill_to(&mut self, t: Time, s: Sample) {
        while let Some(due) = self.next.filter(|&due| due <= t) {
            self.make_room();
            // Grid points from `due` (where the cap leaves it: it halves
            // the samples and doubles the interval) up to `t`.
            let room = MAX_SAMPLES - self.len();
            let n = match u64::try_from(self.interval.as_micros()) {
                Ok(us) if us > 0 => {
                    let after = (t.as_micros() - due.as_micros()) / us;
                    usize::try_from(after).map_or(room, |a| a.saturating_add(1).min(room))
                }
                _ => 1,
            };
            self.samples.push_n(&s, n);
            self.set_next();
        }
    }

    /// Adds a sample (the last one of a run whenever it ends).
    pub fn push(&mut self, s: Sample) {
        self.make_room();
        self.samples.push(s);
        self.set_next();
    }

    /// At the cap, every other sample goes and the interval doubles.
    fn make_room(&mut self) {
        if self.len() == MAX_SAMPLES {
            let mut kept = Samples::default();
            for x in self.samples.iter().step_by(2) {
                kept.push(*x);
            }
            self.samples = kept;
            self.interval *= 2;
        }
    }

    /// Sample k is due at k * interval.
    fn set_next(&mut self) {
        self.next = u64::try_from(self.interval.as_micros())
            .ok()
            .and_then(|us| us.checked_mul(self.len() as u64))
            .map(Time::from_micros);
    }
}

/// The shards' series summed on the coarsest grid among them. A shard that
/// ended early holds its last sample for the rest. Returns that grid's
/// interval and the sums.
pub fn merge(series: &[&Series]) -> (Duration, Vec<Sample>) {
    let interval = series
        .iter()
        .map(|s| s.interval)
        .max()
        .unwrap_or(Duration::ZERO);
    let step = |s: &Series| {
        // Intervals are the same base times powers of two.
        (interval.as_micros() / s.interval.as_micros().max(1)).max(1) as usize
    };
    let n = series
        .iter()
        .map(|s| s.len().div_ceil(step(s)))
        .max()
        .unwrap_or(0);
    let mut sum = vec![Sample::default(); n];
    for s in series {
        let Some(last) = s.last() else {
            continue;
        };
        // Sample i of the grid is the shard's sample i * step, read in
        // order (not looked up by index), then its last one.
        let mut xs = s.samples.iter().step_by(step(s));
        for acc in &mut sum {
            acc.add(xs.next().unwrap_or(last));
        }
    }
    (interval, sum)
}

impl Sample {
    /// Adds `x` field by field (the populations a lane at a time).
    fn add(&mut self, x: &Sample) {
        for (a, b) in self.server.iter_mut().zip(&x.server) {
            *a += b;
        }
        for (a, b) in self.client.iter_mut().zip(&x.client) {
            *a += b;
        }
        self.server_bytes += x.server_bytes;
        self.client_bytes += x.client_bytes;
        self.connects += x.connects;
        self.connects_failed += x.connects_failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(v: u32) -> Sample {
        let mut s = Sample::default();
        s.server[0] = v;
        s
    }

    #[test]
    fn past_the_cap_every_other_sample_goes_and_the_interval_doubles() {
        let mut s = Series::new(Duration::from_millis(100));
        // Sample k holds k: the one taken at k * 100 ms.
        for k in 0..MAX_SAMPLES as u32 + 1 {
            assert!(s.due_by(Time::from_millis(100 * k as u64)));
            s.push(sample(k));
        }
        assert_eq!(s.interval, Duration::from_millis(200));
        assert_eq!(s.len(), MAX_SAMPLES / 2 + 1);
        // Still on the grid: kept sample i is the one taken at i * 200 ms.
        for (i, x) in s.samples.iter().enumerate() {
            assert_eq!(x.server[0], 2 * i as u32);
        }
        assert!(!s.due_by(Time::from_millis(200 * (MAX_SAMPLES as u64 / 2 + 1) - 1)));
        assert!(s.due_by(Time::from_millis(200 * (MAX_SAMPLES as u64 / 2 + 1))));
    }

    /// Filling in bulk keeps what a push per due sample keeps, through
    /// the cap's halvings, from a grid point, between two and at the end.
    #[test]
    fn filling_keeps_what_one_push_per_due_sample_keeps() {
        let (mut bulk, mut one) = (
            Series::new(Duration::from_millis(100)),
            Series::new(Duration::from_millis(100)),
        );
        let stops = [
            0,
            50,
            100,
            99_999,
            100_000,
            7_654_321,
            409_600_000,
            900_000_001,
        ];
        for (k, &ms) in stops.iter().enumerate() {
            let t = Time::from_millis(ms);
            bulk.fill_to(t, sample(k as u32));
            while one.due_by(t) {
                one.push(sample(k as u32));
            }
            assert_eq!(
                (bulk.interval, bulk.len(), bulk.next),
                (one.interval, one.len(), one.next)
            );
            let values = |s: &Series| s.samples.iter().map(|x| x.server[0]).collect::<Vec<_>>();
            assert_eq!(values(&bulk), values(&one), "to {ms} ms");
        }
        bulk.fill_to(Time::from_micros(u64::MAX), sample(9));
        assert!(bulk.len() <= MAX_SAMPLES && bulk.next.is_none());
    }

    #[test]
    fn filling_to_the_end_of_time_stays_bounded_and_ends() {
        let mut s = Series::new(Duration::from_millis(100));
        s.fill_to(Time::from_micros(u64::MAX), sample(7));
        assert!(s.len() <= MAX_SAMPLES);
        assert!(!s.due_by(Time::from_micros(u64::MAX)));
    }

    #[test]
    fn merging_aligns_shards_on_the_coarsest_grid() {
        // Shard a: every 100 ms, 0..8; shard b: every 200 ms, 10 per sample, ended early.
        let mut a = Series::new(Duration::from_millis(100));
        for k in 0..8 {
            a.push(sample(k));
        }
        let mut b = Series::new(Duration::from_millis(200));
        b.push(sample(10));
        b.push(sample(20));
        let (interval, sum) = merge(&[&a, &b]);
        assert_eq!(interval, Duration::from_millis(200));
        // a at 0, 200, 400, 600 ms is 0, 2, 4, 6; b holds its last after it ends.
        let got: Vec<u32> = sum.iter().map(|x| x.server[0]).collect();
        assert_eq!(got, [10, 22, 24, 26]);
    }
}
