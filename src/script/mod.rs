//! `teardown script`: packetdrill-syntax scripts run against the engine, or
//! with `--kernel` against the running Linux kernel.
//!
//! A script plays the remote peer and the local application; the engine (or
//! the kernel) plays the local host. The subset of packetdrill's language, the
//! addresses, the sequence-number mapping and the known differences from Linux
//! are described in `docs/scripts.md`.

pub mod engine;
#[cfg(target_os = "linux")]
pub mod kernel;
pub mod parse;
pub mod record;
#[cfg(target_os = "linux")]
mod route;
pub mod run;
pub mod stack;
pub mod sysctl;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

pub use parse::{parse, Direction, ParseError, Script};
pub use run::{
    run, run_on, Options, Outcome, Traced, DEFAULT_TOLERANCE_PERCENT, DEFAULT_TOLERANCE_US,
};
pub use stack::{CallResult, Failure, Stack};

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
    /// Relative timing tolerance: this share of the time since the previous
    /// event, when larger than --tolerance-usecs (packetdrill's default).
    #[arg(long = "tolerance-percent", default_value_t = DEFAULT_TOLERANCE_PERCENT,
          value_parser = crate::cli::parse_percent)]
    pub tolerance_percent: f64,
    /// Write every segment in and out to this pcap file (scripts one after another).
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Print each segment and system call as it happens.
    #[arg(long, short)]
    pub verbose: bool,
    /// Run against the running Linux kernel instead of the engine, as
    /// packetdrill does: each script in a network namespace of its own, its
    /// peer behind a tun device, in real time. Needs root (CAP_NET_ADMIN).
    #[arg(long)]
    pub kernel: bool,
    /// Record instead of check: run the one script's inbound packets and
    /// system calls on the engine, and write to this file the script of what
    /// the engine did (its packets as `>` lines, its call results), ready for
    /// `--kernel`.
    #[arg(long, value_name = "OUT", conflicts_with_all = ["kernel", "pcap"])]
    pub record: Option<PathBuf>,
    /// With --kernel, how many scripts run at once (each in its own
    /// namespace; they mostly sleep). Default: all of them.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
}

/// What the scripts run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Engine,
    /// The running Linux kernel, through a tun device (see [`kernel`]).
    Kernel,
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

    /// A script that did not run: it could not be read, parsed or started.
    fn failed(error: String) -> FileResult {
        FileResult {
            outcome: None,
            error: Some(error),
        }
    }

    /// The failure, when it was the runner falling behind in real time.
    fn runner_late(&self) -> Option<&Failure> {
        self.outcome
            .as_ref()
            .and_then(|o| o.failure.as_ref())
            .filter(|f| f.runner_late)
    }
}

/// Reads, parses and runs one script against the engine.
pub fn run_file(path: &Path, opts: &Options) -> FileResult {
    run_file_on(path, opts, Backend::Engine)
}

/// Reads and parses one script; the error names the file (and the line and
/// column of a parse error).
fn load(path: &Path) -> Result<Script, String> {
    let name = path.display();
    let src = std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read: {e}"))?;
    parse(&src).map_err(|e| format!("{name}:{e}"))
}

/// Reads, parses and runs one script against `backend`. For the kernel, on a
/// thread of its own, in a network namespace of its own.
pub fn run_file_on(path: &Path, opts: &Options, backend: Backend) -> FileResult {
    let name = path.display();
    if opts.verbose {
        println!("== {name}");
    }
    let script = match load(path) {
        Ok(s) => s,
        Err(e) => return FileResult::failed(e),
    };
    let outcome = match backend {
        Backend::Engine => run(&script, opts),
        Backend::Kernel => match run_kernel(&script, opts) {
            Ok(o) => o,
            Err(e) => {
                return FileResult::failed(format!("{name}: cannot run against the kernel: {e}"))
            }
        },
    };
    let error = outcome.failure.as_ref().map(|f| format!("{name}:{f}"));
    FileResult {
        outcome: Some(outcome),
        error,
    }
}

/// How the notice of a second run begins.
pub const RETRIED: &str = "ran a second time, alone";

/// Runs `files` on `backend`, `at_once` of them side by side (each on a
/// thread of its own; kernel scripts mostly sleep), and gives their results
/// in the order given.
///
/// On the kernel, a script that failed only because the runner could not
/// keep its schedule (see [`Failure::runner_late`]) runs once more, alone,
/// and says so in a notice: that failure is the machine's, not Linux's.
pub fn run_files(
    files: &[PathBuf],
    opts: &Options,
    backend: Backend,
    at_once: usize,
) -> Vec<FileResult> {
    let mut results = Vec::with_capacity(files.len());
    for chunk in files.chunks(at_once.max(1)) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|path| s.spawn(move || run_file_on(path, opts, backend)))
                .collect();
            results.extend(handles.into_iter().map(|h| {
                h.join()
                    .unwrap_or_else(|_| FileResult::failed("the script's thread panicked".into()))
            }));
        });
    }
    if backend == Backend::Kernel {
        for (path, r) in files.iter().zip(&mut results) {
            let Some(late) = r.runner_late().map(Failure::to_string) else {
                continue;
            };
            *r = run_file_on(path, opts, backend);
            if let Some(o) = &mut r.outcome {
                o.notices.push(format!(
                    "{RETRIED}: the runner fell behind the first time ({late})"
                ));
            }
        }
    }
    results
}

#[cfg(target_os = "linux")]
fn run_kernel(script: &Script, opts: &Options) -> Result<Outcome, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut stack = kernel::KernelStack::new().map_err(|e| e.to_string())?;
            Ok(run_on(&mut stack, script, opts))
        })
        .join()
        .unwrap_or_else(|_| Err("the script's thread panicked".into()))
    })
}

#[cfg(not(target_os = "linux"))]
fn run_kernel(_: &Script, _: &Options) -> Result<Outcome, String> {
    Err("--kernel needs Linux".into())
}

/// `--record OUT IN`: exit 0 when the recording was written, 1 when the
/// script could not be read, parsed or run.
fn record_file(files: &[PathBuf], out: &Path, opts: &Options) -> anyhow::Result<ExitCode> {
    let [path] = files else {
        return Err(
            crate::cli::Usage(format!("--record takes one script, not {}", files.len())).into(),
        );
    };
    let name = path.display();
    let script = match load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let (text, outcome) = record::record_script(&script, opts);
    if let Some(f) = &outcome.failure {
        eprintln!("{name}:{f}");
        return Ok(ExitCode::FAILURE);
    }
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    let sent = outcome
        .trace
        .iter()
        .filter(|t| t.dir == Direction::Outbound)
        .count();
    println!(
        "recorded {sent} outbound packets of {name} to {}",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
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
        tolerance_percent: args.tolerance_percent,
        verbose: args.verbose,
    };
    if let Some(out) = &args.record {
        return record_file(&args.files, out, &opts);
    }
    let backend = if args.kernel {
        #[cfg(target_os = "linux")]
        kernel::available().map_err(|e| anyhow::anyhow!("--kernel: {e}"))?;
        Backend::Kernel
    } else {
        Backend::Engine
    };
    // Kernel scripts run in real time, so they run side by side, each in its
    // own namespace.
    let jobs = match (backend, args.jobs) {
        (Backend::Engine, _) => 1,
        // Verbose output is one script's story at a time.
        (Backend::Kernel, _) if args.verbose => 1,
        (Backend::Kernel, None) => args.files.len().max(1),
        (Backend::Kernel, Some(j)) => j as usize,
    };
    let mut failed = 0;
    let results = run_files(&args.files, &opts, backend, jobs);
    for (path, r) in args.files.iter().zip(&results) {
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
