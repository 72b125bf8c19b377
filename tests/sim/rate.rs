//! A host-wide `--rate`: a year at a low rate in bounded memory, and the
//! shards taking turns in one schedule.

use teardown::sim::SimArgs;

use super::{args, run};

/// A year of simulated time at a low close rate: the population series stays
/// bounded, and the idle stretches between connections cost nothing.
#[test]
fn a_year_at_a_low_rate_runs_in_bounded_memory() {
    let year = 365.0 * 86_400.0;
    let a = SimArgs {
        rate: Some(2_000.0 / year),
        ..args(2_000)
    };
    let r = run(&a);
    assert_eq!(r.leaked, 0);
    assert!(r.sim_seconds > year - 86_400.0, "{}", r.sim_seconds);
    // 8 shards' samples merged on their common grid, at most 4096 (and the
    // last one) of them.
    assert!(r.series.len() <= 4097, "{} samples", r.series.len());
    let step = r.series[1].t - r.series[0].t;
    assert!(step >= r.sim_seconds / 4097.0, "{step}");
    // The report says which interval its peaks come from: 100 ms doubled.
    assert_eq!(r.sample_interval_s, step);
    let doublings = (r.sample_interval_s / 0.1).log2();
    assert!((doublings - doublings.round()).abs() < 1e-9, "{doublings}");
}

/// A host-wide --rate is one even schedule: with 8 shards at one open per
/// 100 s, each connection's 60 s of TIME-WAIT is over before the next opens.
/// (Each shard used to open its first connection at t = 0: 8 at once.)
#[test]
fn the_shards_take_turns_in_the_rate_schedule() {
    let a = SimArgs {
        rate: Some(0.01),
        ..args(8)
    };
    let r = run(&a);
    assert_eq!(r.leaked, 0);
    assert_eq!(r.peak["time_wait"], 1, "{:?}", r.peak);
    assert!(r.sim_seconds > 700.0, "{}", r.sim_seconds);
}
