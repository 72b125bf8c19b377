//! The simulator end to end: every connection accounted for, every seed case
//! exercised, the same report for the same seed whatever the thread count, bad
//! flags rejected with exit 2, and the pcap capture readable.

mod attacks;
mod cases;
mod cli;
mod determinism;
mod pcap;
mod pool;
mod rate;
mod shards;
mod sweep;

use teardown::sim::{self, SimArgs, SimConfig, SimReport};

pub(crate) fn args(connections: u64) -> SimArgs {
    SimArgs {
        connections,
        concurrency: 2_000,
        shards: 8,
        quiet: true,
        ..SimArgs::default()
    }
}

pub(crate) fn run(a: &SimArgs) -> SimReport {
    let cfg = SimConfig::from_args(a).expect("valid flags");
    sim::run(&cfg, false)
}
