//! `loadgen`: see the library docs and docs/service.md.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// The crate's counting allocator, as `teardown` installs it: the report's
/// `peak_heap_bytes` is measured, and the clients' big tables (2 MiB and up)
/// are mapped on huge pages like the server's.
#[global_allocator]
static ALLOC: teardown::alloc::Counting = teardown::alloc::Counting;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("merge") {
        let args = loadgen::merge::MergeArgs::parse_from(std::env::args().skip(1));
        return match loadgen::merge::main(&args) {
            Ok(merged) => {
                let _ = writeln!(std::io::stdout(), "{}", loadgen::summary(&merged));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("loadgen merge: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut args = loadgen::Args::parse();
    args.argv = std::env::args_os().collect();
    match loadgen::run(&args) {
        Ok(report) => {
            // A closed stdout (a pager quit early) must not turn a clean run into a panic.
            let _ = writeln!(std::io::stdout(), "{}", loadgen::summary(&report.json));
            let unopened = report.json["unopened"].as_u64().unwrap_or(0);
            if unopened > 0 {
                eprintln!("loadgen: {unopened} connections never opened by --timeout");
            }
            if report.leaked > 0 {
                eprintln!("loadgen: {} connections leaked", report.leaked);
            }
            if report.leaked == 0 && unopened == 0 {
                ExitCode::SUCCESS
            } else {
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
