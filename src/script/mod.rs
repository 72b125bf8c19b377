//! `teardown script`: packetdrill-syntax scripts run against the engine.
//!
//! A script plays the remote peer and the local application; the engine plays
//! the local kernel. The subset of packetdrill's language, the addresses, the
//! sequence-number mapping and the known differences from Linux are described
//! in `docs/scripts.md`.

pub mod parse;
pub mod run;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

pub use parse::{parse, Direction, ParseError, Script};
pub use run::{run, Failure, Options, Outcome, Traced, DEFAULT_TOLERANCE_US};

use crate::pcap::PcapWriter;

/// `teardown script` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ScriptArgs {
    /// Scripts to run (packetdrill syntax, `.pkt`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Timing tolerance for outbound packets, in microseconds (packetdrill's default).
    #[arg(long = "tolerance-usecs", default_value_t = DEFAULT_TOLERANCE_US)]
    pub tolerance_usecs: u64,
    /// Write every segment in and out to this pcap file (scripts one after another).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Print each segment and system call as it happens.
    #[arg(long, short)]
    pub verbose: bool,
}

/// The result of one script file.
#[derive(Debug)]
pub struct FileResult {
    pub outcome: Option<Outcome>,
    /// `path:line: message` when the script failed or did not parse.
    pub error: Option<String>,
}

impl FileResult {
    pub fn passed(&self) -> bool {
        self.error.is_none()
    }
}

/// Reads, parses and runs one script.
pub fn run_file(path: &Path, opts: &Options) -> FileResult {
    let name = path.display();
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            return FileResult {
                outcome: None,
                error: Some(format!("{name}: cannot read: {e}")),
            }
        }
    };
    let script = match parse(&src) {
        Ok(s) => s,
        Err(e) => {
            return FileResult {
                outcome: None,
                error: Some(format!("{name}:{e}")),
            }
        }
    };
    let outcome = run(&script, opts);
    let error = outcome.failure.as_ref().map(|f| format!("{name}:{f}"));
    FileResult {
        outcome: Some(outcome),
        error,
    }
}

/// Writes the traces of several runs into one pcap, each run starting one
/// second after the previous one ended.
pub fn write_pcap<'a>(
    path: &Path,
    runs: impl IntoIterator<Item = &'a Outcome>,
) -> std::io::Result<u64> {
    let mut w = PcapWriter::create(path)?;
    let mut offset = Duration::ZERO;
    for o in runs {
        w.set_offset(offset);
        for tr in &o.trace {
            w.write(tr.t, &tr.seg)?;
        }
        offset += Duration::from_micros(o.end.as_micros()) + Duration::from_secs(1);
    }
    let n = w.packets();
    w.finish()?;
    Ok(n)
}

/// `teardown script FILE...`: exit 0 when every script passes, 1 otherwise.
pub fn main(args: ScriptArgs) -> anyhow::Result<ExitCode> {
    let opts = Options {
        tolerance_us: args.tolerance_usecs,
        verbose: args.verbose,
    };
    let mut failed = 0;
    let mut results = Vec::new();
    for path in &args.files {
        if args.verbose {
            println!("== {}", path.display());
        }
        let r = run_file(path, &opts);
        if let Some(o) = &r.outcome {
            for n in &o.notices {
                eprintln!("{}: notice: {n}", path.display());
            }
        }
        match &r.error {
            None => println!("ok   {}", path.display()),
            Some(e) => {
                failed += 1;
                println!("FAIL {}", path.display());
                eprintln!("{e}");
            }
        }
        results.push(r);
    }
    if let Some(pcap) = &args.pcap {
        let n = write_pcap(pcap, results.iter().filter_map(|r| r.outcome.as_ref()))
            .with_context(|| format!("writing {}", pcap.display()))?;
        eprintln!("wrote {n} packets to {}", pcap.display());
    }
    println!("{} passed, {failed} failed", args.files.len() - failed);
    std::io::stdout().flush()?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
