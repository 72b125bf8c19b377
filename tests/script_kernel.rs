#![cfg(target_os = "linux")]
//! The script corpus held against the running Linux kernel
//! (`teardown script --kernel`): every script in tests/scripts passes on Linux
//! as it does on the engine, and every script in tests/scripts/wrong fails on
//! both, at the line and for the reason its first line states.
//!
//! The kernel side needs root (CAP_NET_ADMIN) and /dev/net/tun, which this
//! sandbox and its CI have; without them the test fails, saying why, unless
//! TEARDOWN_KERNEL_TESTS=skip. Scripts run in real time, side by side, each in
//! its own network namespace: the longest (fin-retransmit-give-up) takes 3 min.

mod common;

use std::path::Path;

use common::{kernel_available, pkt_files, print_retries};
use teardown::script::{self, Backend, Options};

#[test]
fn every_corpus_script_passes_on_linux() {
    if !kernel_available() {
        return;
    }
    let files = pkt_files("tests/scripts");
    assert!(files.len() >= 44, "corpus shrank: {} scripts", files.len());
    let results = script::run_files(&files, &Options::default(), Backend::Kernel, files.len());
    print_retries(&files, &results);
    let failures: Vec<String> = results.into_iter().filter_map(|r| r.error).collect();
    assert!(
        failures.is_empty(),
        "{} of {} scripts fail on Linux {}:\n{}",
        failures.len(),
        files.len(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        failures.join("\n")
    );
}

/// `// KEY: LINE: TEXT` from a script's first line.
fn expectation(path: &Path, key: &str) -> (usize, String) {
    let src = std::fs::read_to_string(path).expect("read script");
    let rest = src
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(&format!("// {key}: ")))
        .unwrap_or_else(|| panic!("{}: no {key} line", path.display()));
    let (line, text) = rest.split_once(": ").expect("LINE: TEXT");
    (line.parse().expect("line number"), text.to_string())
}

/// Whether `err` is a failure of `path` at `line` with `text` in it.
fn fails_at(err: &str, path: &Path, line: usize, text: &str) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    err.contains(&format!("{name}:{line}: ")) && err.contains(text)
}

/// What Linux does and the engine does not model yet: each script in
/// tests/scripts/divergent passes on the kernel and fails on the engine where
/// its first line says. A script that starts passing on the engine was fixed.
/// (None today: tests/scripts/divergent/README.md says which moved up.)
#[test]
fn known_divergences_pass_on_linux_and_fail_on_the_engine() {
    let files = pkt_files("tests/scripts/divergent");
    let engine = script::run_files(&files, &Options::default(), Backend::Engine, 1);
    for (path, r) in files.iter().zip(&engine) {
        let (line, text) = expectation(path, "diverges");
        let err = r.error.as_deref().unwrap_or_else(|| {
            panic!(
                "{} passes on the engine: move it to tests/scripts",
                path.display()
            )
        });
        assert!(fails_at(err, path, line, &text), "on the engine:\n{err}");
    }
    if !kernel_available() {
        return;
    }
    let linux = script::run_files(&files, &Options::default(), Backend::Kernel, files.len());
    print_retries(&files, &linux);
    for r in linux {
        assert!(r.passed(), "on Linux: {:?}", r.error);
    }
}

#[test]
fn wrong_scripts_fail_alike_on_the_engine_and_on_linux() {
    let files = pkt_files("tests/scripts/wrong");
    assert!(files.len() >= 9, "{} wrong scripts", files.len());
    let mut stacks = vec![("engine", Backend::Engine)];
    if kernel_available() {
        stacks.push(("linux", Backend::Kernel));
    }
    for (stack, backend) in stacks {
        let results = script::run_files(&files, &Options::default(), backend, files.len());
        for (path, r) in files.iter().zip(results) {
            let (line, text) = expectation(path, "expect-fail");
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let err = r
                .error
                .unwrap_or_else(|| panic!("{name} passes on the {stack}; it must fail"));
            assert!(
                fails_at(&err, path, line, &text),
                "{name} on the {stack}: expected a failure at line {line} with {text:?}, got:\n{err}"
            );
        }
    }
}

/// A script the runner cannot keep to (no tolerance at all: any wake-up
/// latency is too late) fails as the runner's fault, and runs a second time
/// on its own.
#[test]
fn a_runner_that_falls_behind_runs_the_script_again_alone() {
    if !kernel_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-tolerance.pkt");
    std::fs::write(
        &path,
        "--tolerance_usecs=0\n--tolerance_percent=0\n\
         0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n\
         +.01 close(3) = 0\n",
    )
    .unwrap();
    let files = [path];
    let results = script::run_files(&files, &Options::default(), Backend::Kernel, 1);
    let notices = &results[0].outcome.as_ref().expect("it ran").notices;
    assert!(
        notices.iter().any(|n| n.starts_with(script::RETRIED)
            && n.contains("timing error: expected event at")
            && n.contains("could only run at")),
        "{notices:?}"
    );
    // Engine time never falls behind: no second run there.
    let engine = script::run_files(&files, &Options::default(), Backend::Engine, 1);
    assert!(engine[0].passed(), "{:?}", engine[0].error);
}

/// A script's sysctl lines change its own namespace only: the host's
/// values are the same before and after.
#[test]
fn sysctls_stay_in_the_scripts_namespace() {
    if !kernel_available() {
        return;
    }
    let read = || {
        ["tcp_tw_reuse", "ip_local_port_range", "tcp_timestamps"]
            .map(|n| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{n}")).unwrap())
    };
    let before = read();
    let files = [
        "tw-reuse-needs-timestamps.pkt",
        "tw-reuse-after-the-delay.pkt",
    ]
    .map(|f| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scripts")
            .join(f)
    });
    let results = script::run_files(&files, &Options::default(), Backend::Kernel, 2);
    for r in &results {
        assert!(r.passed(), "{:?}", r.error);
    }
    assert_eq!(read(), before);
}

/// Linux's TSval ticks in milliseconds, or in microseconds on a route with
/// tcp_usec_ts: a script at any other tick fails on its option line, saying
/// so, where the engine runs it.
#[test]
fn the_kernel_runs_a_ts_tick_of_1000_or_1_only() {
    if !kernel_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let usec = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/ts-usec-tick.pkt"),
    )
    .unwrap();
    let path = dir.join("ts-tick-10.pkt");
    std::fs::write(
        &path,
        usec.replace("--tcp_ts_tick_usecs=1\n", "--tcp_ts_tick_usecs=10\n"),
    )
    .unwrap();
    let line = 1 + usec
        .lines()
        .position(|l| l.starts_with("--tcp_ts_tick_usecs"))
        .unwrap();
    let r = script::run_file_on(&path, &Options::default(), Backend::Kernel);
    let err = r.error.expect("tick 10 fails on the kernel");
    assert!(
        err.contains(&format!("ts-tick-10.pkt:{line}: --tcp_ts_tick_usecs=10"))
            && err.contains("no other tick runs on the kernel"),
        "{err}"
    );
}

#[test]
fn without_privileges_kernel_mode_says_why() {
    // As root, setpriv (util-linux) drops to nobody with no capabilities;
    // as anyone else, the binary is unprivileged already.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/so-linger-abort.pkt");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["--inh-caps=-all", "--bounding-set=-all"])
            .arg(env!("CARGO_BIN_EXE_teardown"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_teardown"))
    };
    let out = cmd
        .args(["script", "--kernel"])
        .arg(&script)
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--kernel: unshare(CLONE_NEWNET): EPERM"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
