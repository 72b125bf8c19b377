//! `teardown observe`: what the kernel's own counters say about a live host's
//! (or one network namespace's) TCP teardown, sampled twice `--interval` apart.
//! See docs/observe.md for every field and where it comes from.

pub mod recording;
pub mod report;
pub mod text;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::parse_duration;
use crate::kernel::netns;
use recording::Recording;
use report::Report;

#[derive(clap::Args, Debug, Clone)]
pub struct ObserveArgs {
    /// Time between the two samples of the counters.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub interval: Duration,
    /// Observe network namespace NAME (`ip netns`, /var/run/netns/NAME) instead of this one.
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// Also write the report as JSON to PATH (`-`: JSON to stdout, no text).
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// Save the raw readings (the /proc files and the sock_diag dump) under DIR.
    #[arg(long, value_name = "DIR")]
    pub record: Option<PathBuf>,
    /// Report on readings saved by --record instead of reading the host.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["record", "netns"])]
    pub replay: Option<PathBuf>,
}

pub fn main(args: ObserveArgs) -> anyhow::Result<ExitCode> {
    crate::cli::ensure(!args.interval.is_zero(), || {
        "--interval must be above 0".into()
    })?;
    let rec = match &args.replay {
        Some(dir) => Recording::load(dir)?,
        None => {
            let interval = args.interval;
            netns::run_in(args.netns.as_deref(), || {
                Recording::read_live(interval, |what| {
                    eprintln!("observe: {what}");
                })
            })??
        }
    };
    if let Some(dir) = &args.record {
        rec.save(dir)?;
    }
    let report = Report::new(&rec, args.netns.as_deref())?;
    if args.json.as_deref() != Some("-") {
        print!("{}", text::render(&report));
    }
    if let Some(path) = &args.json {
        crate::cli::write_json(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}
