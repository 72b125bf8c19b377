//! Values a shard records for one of the report's histograms, kept as they
//! are until there are many.
//!
//! A run has 64 virtual shards by default, each with three histograms
//! (active and passive close latency, ports probed). An auto-resizing
//! `Histogram` at 3 significant figures starts at 2,048 counts and grows to
//! about 16,000 (128 KiB, zeroed) once it holds a 60 s latency in µs, and
//! merging adds every count of every shard's copy: in a 20,000-connection
//! run that was a tenth of all the work. A shard with fewer than [`RAW_MAX`]
//! values keeps them in a list instead, recorded into the merged histogram
//! once; a busier one moves them into a histogram of its own. Either way the
//! merged histogram counts the same multiset of values, so every quantile is
//! the same.

use hdrhistogram::Histogram;

/// Values kept raw before a shard builds its own histogram (32 KiB of them).
const RAW_MAX: usize = 4096;
/// Room for values made at a tally's first value (2 KiB).
const RAW_FIRST: usize = 256;

/// One shard's values for one histogram.
#[derive(Debug, Default)]
pub struct Tally {
    raw: Vec<u64>,
    hist: Option<Histogram<u64>>,
}

impl Tally {
    /// Records `v`. The common case, a list with room that stays below
    /// [`RAW_MAX`], is inlined into the caller (a shard records twice per
    /// connection); the first value, the move to a histogram and recording
    /// into one are out of line.
    #[inline]
    pub fn record(&mut self, v: u64) {
        let n = self.raw.len();
        if n < self.raw.capacity() && n + 1 < RAW_MAX {
            self.raw.push(v);
        } else {
            self.record_slow(v);
        }
    }

    #[inline(never)]
    fn record_slow(&mut self, v: u64) {
        if let Some(h) = &mut self.hist {
            // Auto-resizing: record() grows it; it cannot fail on range.
            let _ = h.record(v);
            return;
        }
        if self.raw.capacity() == 0 {
            // One allocation for a small shard's values, not eight doublings
            // that realloc copies (all shards' lists grow at once).
            self.raw.reserve_exact(RAW_FIRST);
        }
        self.raw.push(v);
        if self.raw.len() == RAW_MAX {
            let mut h = new_histogram();
            for &v in &self.raw {
                let _ = h.record(v);
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
        // Runs of one value (ports probed is mostly 1) in one call.
        for run in self.raw.chunk_by(|a, b| a == b) {
            let _ = into.record_n(run[0], run.len() as u64);
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
    /// that recording them directly gives.
    #[test]
    fn a_merged_tally_counts_what_direct_recording_counts() {
        let values: Vec<u64> = (0..RAW_MAX as u64 * 2 + 17)
            .map(|i| (i * 7919) % 90_000_000 + 1)
            .collect();
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
