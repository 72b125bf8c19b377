//! `--workers K`: one `--kernel-target` run spread over K processes of loadgen,
//! so that the live connections are not capped by one process's descriptor
//! table (`RLIMIT_NOFILE`, whose hard limit of 20,000 even root cannot raise
//! on these machines).
//!
//! The workers are shards (`--shard`, composed with this process's own
//! shard, if any), each with `--concurrency`/K; this process reads the host
//! once a second meanwhile (the workers do not, so nothing is counted K
//! times) and merges their reports with `loadgen merge`'s code. With
//! `--netns` this process makes the one namespace, server and loss rules,
//! and the workers drive that server as their `--kernel-target`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use teardown::service::procs::{Children, Scratch};

use crate::real::host;
use crate::real::shard::Shard;
use crate::{Args, Report};

/// Flags this process sets for its workers or keeps to itself (the
/// namespace), dropped from the command line: those that take a value, and
/// switches.
const OWN_FLAGS: [&str; 8] = [
    "--workers",
    "--json",
    "--plot",
    "--shard",
    "--concurrency",
    "--server-cmd",
    "--netns-port",
    "--loss",
];
const OWN_SWITCHES: [&str; 3] = ["--quiet", "--worker", "--netns"];

/// The command line without [`OWN_FLAGS`] (as `--flag value` or
/// `--flag=value`) and [`OWN_SWITCHES`].
fn strip_own_flags(argv: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in argv {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let s = a.to_string_lossy();
        if OWN_FLAGS.contains(&s.as_ref()) {
            skip_value = true;
        } else if OWN_SWITCHES.contains(&s.as_ref()) {
            continue;
        } else if !OWN_FLAGS.iter().any(|f| s.starts_with(&format!("{f}="))) {
            out.push(a.clone());
        }
    }
    out
}

pub fn run(args: &Args) -> anyhow::Result<Report> {
    let Some((_, rest)) = args.argv.split_first() else {
        bail!("--workers starts loadgen processes: run it from the loadgen binary");
    };
    let mut common = strip_own_flags(rest);
    if args.netns {
        // One namespace for the run: the workers drive its server as a target.
        return crate::real::with_lab(args, |lab, target, interrupted| {
            common.extend(["--kernel-target".into(), target.to_string().into()]);
            common.push("--allow-non-loopback".into());
            spawn_and_merge(args, &common, target, Some(lab.name.clone()), interrupted)
        });
    }
    let target = args
        .kernel_target
        .context("--workers needs --kernel-target or --netns")?;
    let signals = crate::real::Interrupt::on_signals()?;
    spawn_and_merge(args, &common, target, None, &signals.flag)
}

/// Runs the workers with `common` flags and their shares, reads the host (and
/// the server's namespace) meanwhile, and merges the workers' reports. On
/// SIGINT/SIGTERM (`interrupted`) the workers are interrupted too.
fn spawn_and_merge(
    args: &Args,
    common: &[OsString],
    target: SocketAddr,
    server_netns: Option<String>,
    interrupted: &AtomicBool,
) -> anyhow::Result<Report> {
    let exe = std::env::current_exe()?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("loadgen-workers-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let base = args.shard.unwrap_or(Shard { index: 0, count: 1 });
    let k = args.workers;
    let watch = host::Watch::start(target, server_netns, None)?;
    let report = |w: u32| scratch.0.join(format!("worker-{w}.json"));
    let mut children = Children(Vec::with_capacity(k as usize));
    for w in 0..k {
        let shard = Shard {
            index: base.index * k + w,
            count: base.count * k,
        };
        let concurrency = Shard { index: w, count: k }
            .count_of(args.concurrency as u64)
            .max(1);
        let child = Command::new(&exe)
            .args(common)
            .args(["--worker", "--quiet", "--shard", &shard.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .arg("--json")
            .arg(report(w))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting worker {w} ({})", exe.display()))?;
        children.0.push(child);
    }
    let mut signalled = false;
    while children
        .0
        .iter_mut()
        .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        if interrupted.load(Relaxed) && !signalled {
            for c in &children.0 {
                let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGINT);
            }
            signalled = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for (w, child) in (0..).zip(children.0.iter_mut()) {
        let status = child.wait()?;
        // A worker that leaked connections exits 1 but still wrote its report.
        match std::fs::read_to_string(report(w)) {
            Ok(text) => reports.push(serde_json::from_str::<Value>(&text)?),
            Err(_) => failed.push(format!("worker {w}: {status}")),
        }
    }
    let readings = watch.stop()?;
    if signalled {
        bail!("interrupted by a signal; the workers were interrupted too");
    }
    if !failed.is_empty() {
        bail!("workers without a report: {}", failed.join(", "));
    }
    let mut merged = crate::merge::merge(&reports)?;
    for (key, value) in readings {
        merged[key.as_str()] = value;
    }
    host::note_others(&mut merged);
    merged["workers"] = json!({
        "count": k,
        "live_peaks": reports.iter().map(|r| r["live_peak"].clone()).collect::<Vec<_>>(),
        "nofile_soft": reports.first().map(|r| r["config"]["nofile"]["soft"].clone()),
    });
    merged["config"]["concurrency"] = json!(args.concurrency);
    merged["config"]["shard"] = json!(args.shard.map(|s| s.to_string()));
    merged["config"]["connections"] = json!(args
        .duration
        .is_none()
        .then(|| base.count_of(args.connections)));
    merged["config"]["rate"] = json!(base.rate_of(args.rate));
    // To a later `loadgen merge` this is one report of shard `config.shard`.
    if let Some(m) = merged.as_object_mut() {
        m.remove("merged");
    }
    if let Some(dir) = &args.plot {
        for path in crate::real::plot::draw(dir, &merged)? {
            eprintln!("loadgen: wrote {}", path.display());
        }
    }
    let leaked = merged["unfinished"].as_u64().unwrap_or(0);
    Ok(Report {
        json: merged,
        leaked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn own_flags_are_dropped_in_both_spellings() {
        let argv = os(&[
            "--kernel",
            "--workers",
            "3",
            "--json=out.json",
            "--kernel-target",
            "127.0.0.1:80",
            "--concurrency",
            "900",
            "--plot",
            "dir",
            "--shard=1/2",
            "--rate",
            "10",
        ]);
        assert_eq!(
            strip_own_flags(&argv),
            os(&[
                "--kernel",
                "--kernel-target",
                "127.0.0.1:80",
                "--rate",
                "10"
            ])
        );
    }
}
