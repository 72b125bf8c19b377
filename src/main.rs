//! `teardown`: the command-line driver. With no arguments it runs the default
//! simulation (`teardown sim`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use teardown::cli::Usage;

#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

#[derive(Parser)]
#[command(name = "teardown", version, about = "Models one host's TCP connection table through teardown, at the scale of millions of connections.")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deterministic simulator on a virtual clock (the default).
    Sim(Box<teardown::sim::SimArgs>),
    /// Serve the engine over UDP on a real clock (see docs/service.md).
    Serve(Box<teardown::service::ServeArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli
        .command
        .unwrap_or_else(|| Command::Sim(Box::default()));
    let result = match command {
        Command::Sim(args) => teardown::sim::main(*args),
        Command::Serve(args) => teardown::service::main(*args),
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
