//! `teardown serve --processes K`: K server processes sharing the
//! `--kernel-listen` port with SO_REUSEPORT, so that the kernel side is not
//! capped by one process's descriptor table (the hard `RLIMIT_NOFILE` is
//! 20,000 on these machines and even root cannot raise it) nor served by one
//! accept queue of `somaxconn` entries.
//!
//! This process re-executes the binary K times, each child a whole `teardown
//! serve` with its own UDP workers and metrics (child 0 on `--listen` and
//! `--metrics`, the others on free ports of the same addresses), its share of
//! `--max-tw-buckets`, and the hidden `--process-of` (SO_REUSEPORT, and a
//! SIGTERM when this process dies, even by SIGKILL). It prints one ready line
//! once every child is listening, forwards SIGINT/SIGTERM, waits, and sums the
//! children's reports; each child's own report is kept under `children`.
//! Model (UDP) clients talk to child 0, whose workers the ready line names.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use super::{net, validate, ServeArgs};
use teardown_engine::config::{share_of, Config};

/// How long a child has between SIGTERM and SIGKILL when the run is torn down
/// after a failure (an orderly stop waits for the children's reports).
const KILL_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// The children, stopped (SIGTERM, then SIGKILL) if this process returns
/// early; `loadgen --workers` keeps its workers in one too.
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // Only those not reaped yet: a reaped child's pid may be reused.
            if matches!(c.try_wait(), Ok(None)) {
                let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + KILL_WAIT;
        for c in &mut self.0 {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The children's reports and logs, removed however the run ends (also
/// `loadgen --workers`').
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Child `i`'s command line: the flags that shape the server, with its own
/// ports, report file and share of the host-wide limits (TIME-WAIT, orphans).
pub fn child_args(args: &ServeArgs, i: usize, json: &Path) -> Vec<String> {
    let free_port = |a: SocketAddr| SocketAddr::new(a.ip(), 0).to_string();
    let (listen, metrics) = if i == 0 {
        (args.listen.to_string(), args.metrics.to_string())
    } else {
        (free_port(args.listen), free_port(args.metrics))
    };
    let mut v: Vec<String> = vec![
        "serve".into(),
        "--process-of".into(),
        std::process::id().to_string(),
        "--listen".into(),
        listen,
        "--metrics".into(),
        metrics,
        "--time-scale".into(),
        args.time_scale.to_string(),
        "--close".into(),
        format!("{:?}", args.close).to_lowercase(),
        "--hold".into(),
        format!("{}us", args.hold.as_micros()),
        "--profile".into(),
        args.profile.to_string(),
        "--json".into(),
        json.display().to_string(),
    ];
    if let Some(a) = args.kernel_listen {
        v.extend(["--kernel-listen".into(), a.to_string()]);
    }
    if let Some(n) = args.threads {
        v.extend(["--threads".into(), n.to_string()]);
    }
    if let Some(n) = args.keep {
        // Model clients talk to child 0 alone; the others hold nothing.
        v.extend(["--keep".into(), n.to_string()]);
    }
    // The host-wide limits, given or the profile's, shared out: each child
    // holds its share, as each worker of one process does.
    let host = Config::profile(args.profile);
    let share = |n: Option<usize>, default| share_of(n.unwrap_or(default), args.processes);
    let tw = share(args.max_tw_buckets, host.max_tw_buckets);
    let orphans = share(args.max_orphans, host.max_orphans);
    v.extend(["--max-tw-buckets".into(), tw.to_string()]);
    v.extend(["--max-orphans".into(), orphans.to_string()]);
    if args.allow_non_loopback {
        v.push("--allow-non-loopback".into());
    }
    v
}

/// In a child (of `--processes`, or of `loadgen --spawn-server`): SIGTERM
/// when `parent` dies (`PR_SET_PDEATHSIG`), so that no server outlives a
/// parent that was killed; fails if it has died already.
pub fn follow_parent(parent: u32) -> anyhow::Result<()> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).context("PR_SET_PDEATHSIG")?;
    // The parent may have died before the call above took effect.
    if nix::unistd::getppid().as_raw() as u32 != parent {
        bail!("the parent {parent} is gone");
    }
    Ok(())
}

/// How long a child server may take to say it is ready.
pub const READY_WAIT: Duration = Duration::from_secs(60);

/// A child's ready line, read from its stdout `out` within `within`: a child
/// that hangs before it is ready must not hang its parent, which then stops
/// it (its guard kills it; the reader ends with the pipe).
pub fn ready_line(out: ChildStdout, within: Duration) -> anyhow::Result<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(out).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    match rx.recv_timeout(within) {
        Ok(read) => Ok(read?),
        Err(_) => bail!("no ready line within {within:?}"),
    }
}

/// A ready line's `key=` field.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// `teardown serve --processes K`.
pub fn main(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    validate(args)?;
    let exe = std::env::current_exe()?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("teardown-serve-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let stop = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(s, Arc::clone(&stop))?;
    }
    let mut children = Children(Vec::with_capacity(args.processes));
    let mut ready = Vec::with_capacity(args.processes);
    for i in 0..args.processes {
        let log = scratch.0.join(format!("child-{i}.log"));
        let mut child = Command::new(&exe)
            .args(child_args(
                args,
                i,
                &scratch.0.join(format!("child-{i}.json")),
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        children.0.push(child);
        let line = ready_line(stdout, READY_WAIT)
            .with_context(|| format!("server process {i}; see {}", log.display()))?;
        if field(&line, "kernel=").is_none() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("server process {i} did not start: {}", said.trim());
        }
        ready.push(line);
    }
    let first = &ready[0];
    println!(
        "serving udp={} workers={} metrics={} kernel={} processes={}",
        field(first, "udp=").unwrap_or("-"),
        field(first, "workers=").unwrap_or("-"),
        field(first, "metrics=").unwrap_or("-"),
        field(first, "kernel=").unwrap_or("-"),
        args.processes
    );
    let statuses = wait(&mut children, &stop)?;
    let mut reports = Vec::with_capacity(statuses.len());
    for (i, status) in statuses.iter().enumerate() {
        let path = scratch.0.join(format!("child-{i}.json"));
        let report = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match report {
            Some(r) if status.success() => reports.push(r),
            _ => {
                let log = std::fs::read_to_string(scratch.0.join(format!("child-{i}.log")))
                    .unwrap_or_default();
                bail!("server process {i} ended with {status}: {}", log.trim());
            }
        }
    }
    let report = merge(&reports);
    if let Some(path) = &args.json {
        net::write_atomically(path, &serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(line) = report["summary"].as_str() {
        let _ = writeln!(std::io::stdout(), "{line}");
    }
    eprintln!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ExitCode::SUCCESS)
}

/// Waits for every child; on SIGINT/SIGTERM forwards SIGTERM to them. A child
/// that ends on its own ends the run: the others are stopped too.
fn wait(
    children: &mut Children,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<std::process::ExitStatus>> {
    let mut statuses = vec![None; children.0.len()];
    let mut forwarded = false;
    while statuses.iter().any(Option::is_none) {
        if stop.load(Relaxed) && !forwarded {
            // Only those not reaped yet: a reaped child's pid may be reused.
            for (c, s) in children.0.iter().zip(&statuses) {
                if s.is_none() {
                    let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
                }
            }
            forwarded = true;
        }
        for (c, s) in children.0.iter_mut().zip(statuses.iter_mut()) {
            if s.is_none() {
                *s = c.try_wait()?;
                if s.is_some() && !forwarded {
                    // One child gone unasked: stop the rest on the next turn.
                    stop.store(true, Relaxed);
                }
            }
        }
        std::thread::sleep(POLL);
    }
    Ok(statuses.into_iter().flatten().collect())
}

/// The sum of a figure over the children's reports.
fn sum(reports: &[Value], pointer: &str) -> f64 {
    reports
        .iter()
        .filter_map(|r| r.pointer(pointer).and_then(Value::as_f64))
        .sum()
}

/// The children's reports summed where a sum means something (counts, rates
/// of concurrent processes, the processes' peaks as an upper bound of the
/// host's), each child's report kept under `children`.
pub fn merge(reports: &[Value]) -> Value {
    let n = |p: &str| sum(reports, p) as u64;
    let accepted = n("/kernel/accepted");
    let completed = n("/completed");
    let rate = sum(reports, "/teardowns_per_sec");
    let workers_cpu = sum(reports, "/workers_cpu_secs");
    json!({
        "summary": format!(
            "{} processes: {accepted} kernel connections accepted; {completed} model teardowns at {rate:.0}/s",
            reports.len()
        ),
        "processes": reports.len(),
        "connections": n("/connections"),
        "completed": completed,
        "leaked": n("/leaked"),
        "teardowns_per_sec": rate,
        "cpu_secs": sum(reports, "/cpu_secs"),
        "workers_cpu_secs": workers_cpu,
        "teardowns_per_worker_cpu_sec": super::report::per_cpu_sec(completed, workers_cpu),
        "resident": { "peak_entries": n("/resident/peak_entries") },
        "kernel": { "accepted": accepted, "held_peak": n("/kernel/held_peak") },
        "children": reports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that never says it is ready does not hold its parent past the
    /// wait; one that does is read.
    #[test]
    fn ready_lines_are_waited_for_within_a_bound() {
        let spawn = |script: &str| {
            Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut mute = spawn("sleep 30");
        let out = mute.stdout.take().unwrap();
        // Still running, so a plain read would still be waiting.
        let err = ready_line(out, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("no ready line"), "{err}");
        assert!(mute.try_wait().unwrap().is_none());
        mute.kill().unwrap();
        mute.wait().unwrap();
        let mut ready = spawn("echo serving udp=1; sleep 30");
        let out = ready.stdout.take().unwrap();
        assert_eq!(ready_line(out, READY_WAIT).unwrap(), "serving udp=1\n");
        ready.kill().unwrap();
        ready.wait().unwrap();
    }

    #[test]
    fn children_get_their_own_ports_and_a_share_of_the_limit() {
        let args = ServeArgs {
            kernel_listen: Some("127.0.0.1:7172".parse().unwrap()),
            max_tw_buckets: Some(1000),
            processes: 3,
            ..ServeArgs::default()
        };
        let first = child_args(&args, 0, Path::new("a.json"));
        let second = child_args(&args, 1, Path::new("b.json"));
        let after = |v: &[String], k: &str| {
            let i = v.iter().position(|a| a == k).unwrap();
            v[i + 1].clone()
        };
        assert_eq!(after(&first, "--listen"), "127.0.0.1:7171");
        assert_eq!(after(&second, "--listen"), "127.0.0.1:0");
        assert_eq!(after(&second, "--metrics"), "127.0.0.1:0");
        assert_eq!(after(&second, "--kernel-listen"), "127.0.0.1:7172");
        assert_eq!(after(&second, "--max-tw-buckets"), "334");
        // A limit left at the profile's is shared out too: 131,072 / 3.
        assert_eq!(after(&second, "--max-orphans"), "43691");
        assert_eq!(
            after(&second, "--process-of"),
            std::process::id().to_string()
        );
        assert!(!second.contains(&"--processes".to_string()));
    }

    #[test]
    fn merge_sums_counts_and_keeps_each_report() {
        let a = json!({"kernel": {"accepted": 3}, "completed": 10, "teardowns_per_sec": 5.0,
            "workers_cpu_secs": 1.5});
        let b = json!({"kernel": {"accepted": 4}, "completed": 0, "teardowns_per_sec": 0.5,
            "workers_cpu_secs": 0.5});
        let m = merge(&[a, b]);
        assert_eq!(m["kernel"]["accepted"], 7);
        assert_eq!(m["completed"], 10);
        assert_eq!(m["teardowns_per_sec"], 5.5);
        assert_eq!(m["workers_cpu_secs"], 2.0);
        assert_eq!(m["teardowns_per_worker_cpu_sec"], 5.0);
        assert_eq!(m["children"].as_array().unwrap().len(), 2);
    }
}
