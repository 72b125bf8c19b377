//! `teardown`: the command-line driver. With no arguments it runs the default
//! simulation (`teardown sim`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use teardown::cli::Usage;

#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

#[derive(Parser)]
#[command(
    name = "teardown",
    version,
    about = "Models one host's TCP connection table through teardown, at the scale of millions of connections.",
    long_about = "Models one host's TCP connection table through teardown, at the scale of millions of connections.\n\nWith no subcommand, runs the simulator: `teardown --loss 0.05` is `teardown sim --loss 0.05`.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sim: teardown::sim::SimArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deterministic simulator on a virtual clock (the default).
    Sim(Box<teardown::sim::SimArgs>),
    /// Run packetdrill-syntax scripts against the engine (see docs/scripts.md).
    Script(teardown::script::ScriptArgs),
    /// Compare two sim reports or two criterion result directories; exit 1 on a regression.
    Compare(Box<teardown::compare::CompareArgs>),
    /// Capacity planning: predicted populations, memory and limits for a close rate.
    Plan(Box<teardown::plan::PlanArgs>),
    /// Serve the engine over UDP on a real clock (see docs/service.md).
    Serve(Box<teardown::service::ServeArgs>),
    /// Read this host's (or a network namespace's) TCP counters, sockets and sysctls (see docs/observe.md).
    Observe(Box<teardown::observe::ObserveArgs>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors are one line and exit 2; --help and --version print as usual.
        Err(e) if e.use_stderr() => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("teardown: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let command = cli
        .command
        .unwrap_or_else(|| Command::Sim(Box::new(cli.sim)));
    let result = match command {
        Command::Sim(args) => teardown::sim::main(*args),
        Command::Script(args) => teardown::script::main(args),
        Command::Compare(args) => teardown::compare::main(*args),
        Command::Plan(args) => teardown::plan::main(*args),
        Command::Serve(args) => teardown::service::main(*args),
        Command::Observe(args) => teardown::observe::main(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("teardown: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
