//! `--spawn-server`: one command runs a whole stress test, server included.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::Args;

/// A `teardown serve` child process, killed and reaped if it is dropped still
/// running (a run that ends early by an error or a panic), as `Child` alone
/// is not; [`Spawned::stop`] ends it in order. Its report and stderr files go
/// with it: an error about the server quotes what it wrote.
pub struct Spawned {
    child: Child,
    pub udp: SocketAddr,
    pub workers: usize,
    pub metrics_url: String,
    pub kernel: Option<SocketAddr>,
    json: PathBuf,
    log: PathBuf,
}

/// The `teardown` binary: `--server-bin`, or next to this executable (tests run
/// from `target/<profile>/deps`, so its parent is tried too).
fn server_bin(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.server_bin {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let candidate = d.join("teardown");
        if candidate.is_file() {
            return Ok(candidate);
        }
        if d.file_name().is_some_and(|n| n == "target") {
            break;
        }
        dir = d.parent();
    }
    bail!(
        "no teardown binary next to {}; build it or pass --server-bin",
        exe.display()
    )
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.json);
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Spawned {
    /// Starts the server on free loopback ports with the run's clock and close mode,
    /// and waits for its ready line.
    pub fn start(args: &Args) -> anyhow::Result<Spawned> {
        let bin = server_bin(args)?;
        // Unique among live processes (the pid) and within this one (the count).
        static SPAWNED: AtomicU64 = AtomicU64::new(0);
        let tag = format!(
            "loadgen-{}-{}",
            std::process::id(),
            SPAWNED.fetch_add(1, Relaxed)
        );
        let json = std::env::temp_dir().join(format!("{tag}-server.json"));
        let log = std::env::temp_dir().join(format!("{tag}-server.log"));
        let mut cmd = Command::new(&bin);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
        ])
        .arg("--time-scale")
        .arg(args.time_scale.to_string())
        .arg("--close")
        .arg(format!("{:?}", args.close).to_lowercase())
        .arg("--json")
        .arg(&json);
        if let Some(n) = args.server_threads() {
            cmd.arg("--threads").arg(n.to_string());
        }
        if let Some(n) = args.server_keep() {
            cmd.arg("--keep").arg(n.to_string());
        }
        if args.kernel {
            cmd.args(["--kernel-listen", "127.0.0.1:0"]);
        }
        // If loadgen dies without stopping the server (SIGKILL, a crash), the
        // server is sent SIGTERM, its own orderly stop (`procs::follow_parent`).
        cmd.arg("--parent").arg(std::process::id().to_string());
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        // Held from here on, so that any failure below stops it (Drop).
        let mut s = Spawned {
            child,
            udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 0,
            metrics_url: String::new(),
            kernel: None,
            json,
            log,
        };
        let stdout = s.child.stdout.take().context("no stdout pipe")?;
        let line =
            teardown::service::procs::ready_line(stdout, teardown::service::procs::READY_WAIT)
                .with_context(|| format!("the server{}", s.said()))?;
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_string)
        };
        let (Some(udp), Some(workers), Some(metrics)) =
            (field("udp="), field("workers="), field("metrics="))
        else {
            bail!("the server did not start (ready line {line:?}){}", s.said());
        };
        s.udp = udp.parse()?;
        s.workers = workers.parse()?;
        s.metrics_url = format!("http://{metrics}/metrics");
        s.kernel = field("kernel=").and_then(|k| k.parse().ok());
        Ok(s)
    }

    /// SIGTERM, wait for the exit, read the final report it wrote.
    pub fn stop(mut self) -> anyhow::Result<Value> {
        terminate(self.child.id())?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                // Dropped on the way out: killed then.
                bail!(
                    "the server did not exit within 30 s of SIGTERM{}",
                    self.said()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!("the server exited with {status}{}", self.said());
        }
        read_json(&self.json).with_context(|| format!("the server's report{}", self.said()))
    }

    /// The end of the server's stderr, as a suffix for an error about it.
    fn said(&self) -> String {
        crate::said::said(&self.log)
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", path.display()))
}

/// Sends SIGTERM to our child `pid`.
fn terminate(pid: u32) -> anyhow::Result<()> {
    let pid = libc::pid_t::try_from(pid)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is
    // our own child, not yet reaped, so the number cannot name another process.
    // Exercised by the spawn test in tests/e2e.rs.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}
