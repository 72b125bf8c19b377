//! The deterministic simulator (work in progress on the engine branch).

use std::process::ExitCode;

/// `teardown sim` flags.
#[derive(clap::Args, Debug, Default)]
pub struct SimArgs {}

pub fn main(_args: SimArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the simulator is being written")
}
