//! `loadgen`: see the library docs and docs/service.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = loadgen::Args::parse();
    match loadgen::run(&args) {
        Ok(report) => {
            println!("{}", loadgen::summary(&report.json));
            if report.leaked == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("loadgen: {} connections leaked", report.leaked);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            if e.downcast_ref::<teardown::cli::Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
