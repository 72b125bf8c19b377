//! `teardown plan`: capacity planning for close-heavy servers.
//!
//! From a close rate, an RTT and a loss rate, predicts the steady-state population
//! of every teardown state by Little's law ([`model`]), what it costs in this
//! engine and in the Linux kernel ([`memory`]), and which limit is hit first:
//! `tcp_max_tw_buckets` or the ephemeral ports of a destination. `--verify` runs
//! the simulator on the same workload and puts the two side by side.

mod args;
pub mod bounds;
mod evaluate;
pub mod from;
pub mod from_report;
pub mod from_retries;
pub mod handshake;
mod human;
mod json;
pub mod memory;
pub mod model;
mod plot;
mod verify;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use crate::cli::ensure;

pub use args::{Plan, PlanArgs};
pub use evaluate::{evaluate, Limits, Outcome};
pub use human::human;
pub use json::to_json;
use memory::Slab;
pub use verify::{rel_error, sim_args, simulate, verify_window, Simulated};

/// `teardown plan`.
pub fn main(args: PlanArgs) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.from {
        return main_from(&args, path);
    }
    let plan = Plan::from_args(&args)?;
    let slab = Slab::read();
    let outcome = evaluate(&plan, &slab);
    let simulated = if args.verify {
        Some(simulate(
            &plan,
            args.shards,
            args.threads,
            args.seed,
            &outcome.prediction,
        )?)
    } else {
        None
    };
    // With --verify the simulator's shards are the engine's table shards.
    let (plan, outcome) = if args.verify {
        let mut p = plan.clone();
        p.tables = args.shards;
        let o = evaluate(&p, &slab);
        (p, o)
    } else {
        (plan, outcome)
    };
    write_out(
        args.json.as_deref(),
        &human(&plan, &outcome, simulated.as_ref()),
        &to_json(&plan, &outcome, simulated.as_ref()),
    )?;
    if let Some(dir) = &args.plot {
        plot::plot(&plan, &slab, dir)
            .with_context(|| format!("writing plots to {}", dir.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `teardown plan --from`.
fn main_from(args: &PlanArgs, path: &Path) -> anyhow::Result<ExitCode> {
    ensure(args.growth.is_finite() && args.growth > 0.0, || {
        format!("--growth must be above zero, got {}", args.growth)
    })?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (human, json) = from_report::run(&text, args.rtt, args.app_timeout, args.growth)
        .with_context(|| {
            format!(
                "{} is not a `teardown observe --json` report",
                path.display()
            )
        })?;
    write_out(args.json.as_deref(), &human, &json)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the text report unless JSON goes to stdout, and writes the JSON.
fn write_out(json_to: Option<&str>, human: &str, json: &Value) -> anyhow::Result<()> {
    if json_to != Some("-") {
        print!("{human}");
    }
    if let Some(path) = json_to {
        crate::cli::write_json(path, json)?;
    }
    Ok(())
}
