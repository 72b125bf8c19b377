//! The harness: the root-and-tools gate, checks that nothing is left, the server, a namespace.

use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};

use crate::common;

/// One test at a time, when the tools are there: every run of this process
/// names its namespaces `loadgen-PID-N`, so one test's check that none is
/// left would see another's live namespace.
pub(crate) fn tools() -> Option<MutexGuard<'static, ()>> {
    static SERIAL: Mutex<()> = Mutex::new(());
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let found = root && common::installed("ip", "-V") && common::installed("nft", "--version");
    if !found {
        assert!(
            std::env::var_os("TEARDOWN_REQUIRE_NETNS").is_none(),
            "root, ip (iproute2) and nft (nftables) are required"
        );
        eprintln!("not root, or ip/nft missing: skipped (apt-get install iproute2 nftables)");
        return None;
    }
    // A test that failed holding the lock leaves it poisoned; the others
    // still run.
    Some(SERIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

pub(crate) fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a namespace, the host end of its veth pair and its loss rules on
/// the host are gone.
pub(crate) fn gone(name: &str) -> bool {
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let table = format!("loadgen_loss_{}", name.replace('-', "_"));
    if String::from_utf8_lossy(&tables.stdout).contains(&table) {
        return false;
    }
    let pid_and_n = name.trim_start_matches("loadgen-").replace('-', "v");
    let link = Command::new("ip")
        .args(["link", "show", &format!("lg{pid_and_n}")])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    !namespaces()
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
        && !link.status.success()
}

/// Whether the run's loss table on the host is gone (or not there yet).
pub(crate) fn gone_rules(name: &str) -> bool {
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let table = format!("loadgen_loss_{}", name.replace('-', "_"));
    !String::from_utf8_lossy(&tables.stdout).contains(&table)
}

/// `teardown serve --kernel-listen` in the namespace: it closes each
/// connection first, so TIME-WAIT lands there.
pub(crate) fn server_cmd() -> String {
    format!(
        "exec {} serve --kernel-listen {{addr}} --allow-non-loopback --threads 1",
        common::teardown_bin()
    )
}

/// A namespace of the test's own, deleted on drop.
pub(crate) struct Namespace(pub(crate) String);

impl Namespace {
    pub(crate) fn create(tag: &str) -> Namespace {
        let name = format!("lgtest-{tag}-{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status();
        assert!(ok.unwrap().success(), "ip netns add {name}");
        let ns = Namespace(name);
        let up = Command::new("ip")
            .args(["-n", &ns.0, "link", "set", "lo", "up"])
            .status();
        assert!(up.unwrap().success());
        ns
    }

    /// Runs `f` on a thread inside the namespace: sockets it makes stay there.
    pub(crate) fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        teardown::kernel::netns::run_in(Some(&self.0), f).unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
