//! `teardown plan`: the analytic model against hand-computed cases, the CLI's
//! errors and outputs, and `--verify` against the simulator.

mod cli;
mod from;
mod limits;
mod model;
mod verify;

use std::process::Command;

use clap::Parser;
use teardown::plan::{Plan, PlanArgs};

#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

#[derive(Parser)]
struct Wrap {
    #[command(flatten)]
    args: PlanArgs,
}

pub(crate) fn plan(flags: &[&str]) -> Plan {
    let args = Wrap::parse_from(std::iter::once("plan").chain(flags.iter().copied())).args;
    Plan::from_args(&args).expect("valid flags")
}

pub(crate) fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1e-9)
}

/// Runs the `teardown` binary with `args`.
pub(crate) fn teardown(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_teardown"))
        .args(args)
        .output()
        .expect("run teardown")
}
