//! What every bench file shares: the quick mode for smoke runs.
//!
//! `TEARDOWN_BENCH_QUICK=1 cargo bench -- --quick` shrinks the sizes (this file)
//! and the statistics (criterion's own `--quick`), so the suite finishes in a
//! minute or two; the numbers are then only good for "it still runs".

use std::time::Duration;

use criterion::Criterion;

/// True when `TEARDOWN_BENCH_QUICK` is set to anything but `0` or empty.
pub fn quick() -> bool {
    std::env::var("TEARDOWN_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Criterion with the given warm-up, measurement time and samples, each cut
/// down in quick mode. `criterion_group!` applies the command-line flags
/// (`--quick`, filters) on top.
pub fn criterion(warm_up: Duration, measure: Duration, samples: usize) -> Criterion {
    let (warm_up, measure, samples) = if quick() {
        (warm_up / 10, measure / 10, 10)
    } else {
        (warm_up, measure, samples)
    };
    Criterion::default()
        .warm_up_time(warm_up.max(Duration::from_millis(1)))
        .measurement_time(measure.max(Duration::from_millis(10)))
        .sample_size(samples)
}
