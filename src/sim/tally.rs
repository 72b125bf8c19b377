//! Values a shard records for one of the report's histograms, kept as they
//! are until there are many.
//!
//! A run has 64 virtual shards by default, each with three histograms
//! (active and passive close latency, ports probed). An auto-resizing
//! `Histogram` at 3 significant figures starts at 2,048 counts and grows to
//! about 16,000 (128 KiB, zeroed) once it holds a 60 s latency in µs, and
//! merging adds every count of every shard's copy: in a 20,000-connection
//! run that was a tenth of all the work. A shard with fewer than [`RAW_MAX`]
//! runs of one value keeps them in a list instead, recorded into the
//! merged histogram once; a busier one moves them into a histogram of its
//! own. Either way the merged histogram counts the same multiset of values,
//! so every quantile is the same.

use hdrhistogram::Histogram;

use crate::alloc;

/// Runs of values kept raw before a shard builds its own histogram (32 KiB
/// of them, as many bytes as the 4,096 single values kept before runs).
const RAW_MAX: usize = 2048;
/// Room for runs made at a tally's first (2 KiB).
const RAW_FIRST: usize = 128;

/// One shard's values for one histogram, as runs of one value: a burst's
/// connections close in one instant and end in one, so their latencies
/// come in long runs of one value, and ports probed is mostly 1. A value
/// recorded into a histogram took some 70 instructions, three times a
/// connection once a shard passes [`RAW_MAX`] (the 15.6 k connections of
/// each of a million's 64 shards): a run is one record, of its length.
#[derive(Debug, Default)]
pub struct Tally {
    /// The value of the run being counted, and its length so far (0: none).
    last: u64,
    repeats: u64,
    /// The runs before it.
    raw: Vec<(u64, u64)>,
    hist: Option<Histogram<u64>>,
}

impl Tally {
    /// Records `v`. The common case, the run's value again, is inlined into
    /// the caller (a shard records three times per connection); ending a
    /// run is out of line.
    #[inline]
    pub fn record(&mut self, v: u64) {
        if v == self.last {
            self.repeats += 1;
        } else {
            self.record_slow(v);
        }
    }

    /// Ends the run being counted (none at first), and starts `v`'s. What
    /// that allocates is the simulator's ([`alloc::outside`]): a shard
    /// records in bursts that run in a host's allocator scope.
    #[inline(never)]
    fn record_slow(&mut self, v: u64) {
        let run = (self.last, self.repeats);
        (self.last, self.repeats) = (v, 1);
        if run.1 == 0 {
            return;
        }
        alloc::outside(|| self.add_run(run));
    }

    fn add_run(&mut self, run: (u64, u64)) {
        if let Some(h) = &mut self.hist {
            // Auto-resizing: record_n() grows it; it cannot fail on range.
            let _ = h.record_n(run.0, run.1);
            return;
        }
        if self.raw.capacity() == 0 {
            // One allocation for a small shard's runs, not eight doublings
            // that realloc copies (all shards' lists grow at once).
            self.raw.reserve_exact(RAW_FIRST);
        }
        self.raw.push(run);
        if self.raw.len() == RAW_MAX {
            let mut h = new_histogram();
            for &(v, n) in &self.raw {
                let _ = h.record_n(v, n);
            }
            self.hist = Some(h);
            self.raw = Vec::new();
        }
    }

    /// Adds every value recorded here to `into`.
    pub fn add_to(&self, into: &mut Histogram<u64>) {
        if let Some(h) = &self.hist {
            // Both auto-resizing: adding cannot fail on range.
            let _ = into.add(h);
        }
        let last = (self.repeats > 0).then_some((self.last, self.repeats));
        for &(v, n) in self.raw.iter().chain(&last) {
            let _ = into.record_n(v, n);
        }
    }
}

/// The report's histograms: auto-resizing, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same values through tallies of either kind give the histogram
    /// that recording them directly gives, distinct values and runs of one
    /// value alike (0 among them, the value of no run yet).
    #[test]
    fn a_merged_tally_counts_what_direct_recording_counts() {
        let distinct = (0..RAW_MAX as u64 * 2 + 17).map(|i| (i * 7919) % 90_000_000 + 1);
        // Run r: 1 + r % 9 times the value (r % 3) * 60 s.
        let runs = (0..RAW_MAX as u64).flat_map(|r| vec![r % 3 * 60_000_000; 1 + r as usize % 9]);
        let values: Vec<u64> = runs.chain(distinct).collect();
        let mut direct = new_histogram();
        let (mut small, mut big) = (Tally::default(), Tally::default());
        for (i, &v) in values.iter().enumerate() {
            direct.record(v).unwrap();
            if i < 100 {
                small.record(v);
            } else {
                big.record(v);
            }
        }
        assert!(small.hist.is_none() && big.hist.is_some());
        let mut merged = new_histogram();
        small.add_to(&mut merged);
        big.add_to(&mut merged);
        assert_eq!(merged.len(), direct.len());
        assert_eq!(merged.max(), direct.max());
        assert_eq!(merged.min(), direct.min());
        for q in [0.0, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), direct.value_at_quantile(q));
        }
        let counts = |h: &Histogram<u64>| {
            h.iter_recorded()
                .map(|x| (x.value_iterated_to(), x.count_at_value()))
                .collect::<Vec<_>>()
        };
        assert_eq!(counts(&merged), counts(&direct));
    }
}
