//! `--netns`: the target runs in a network namespace this run creates and
//! destroys, reached over a veth pair with a private /30 of its own, with
//! `--loss P` applied there by nftables (`numgen random`; netem is not
//! available on these kernels).
//!
//! Everything is done with the `ip` (iproute2) and `nft` (nftables) commands,
//! so that what loadgen did can be repeated by hand. [`Lab`] is a guard: its
//! `Drop` stops the server's process group and deletes the rules, the veth
//! pair and the namespace, whether the run ended, failed, panicked or was
//! interrupted (the driver turns SIGINT/SIGTERM into a normal return).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use teardown::kernel::state::TcpState;
use teardown::kernel::{diag, netns};

mod addr;

/// The nftables table holding the loss rules, inside the namespace.
const TABLE: &str = "loadgen_loss";
/// The namespace end of the veth pair.
const NS_IF: &str = "eth0";
/// How long the server may take to listen.
const LISTEN_WAIT: Duration = Duration::from_secs(15);
/// How long the server has between SIGTERM and SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// A namespace with a veth pair to it, a server inside, and loss rules.
pub struct Lab {
    pub name: String,
    host_if: String,
    /// The host end of the pair (loadgen's source address).
    pub client_ip: Ipv4Addr,
    /// The namespace end (the server's address).
    pub server_ip: Ipv4Addr,
    server: Option<Child>,
    loss: Option<f64>,
}

/// Runs a command, failing with its stderr.
fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs an nft script, inside namespace `ns` or here.
fn nft(ns: Option<&str>, script: &str) -> anyhow::Result<()> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    fed(&mut cmd, script, "nft", "nft (Debian package nftables)")
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args))
}

/// Runs `ip [-n ns] -batch -` with `lines` on its stdin, one command a line.
fn ip_batch(ns: Option<&str>, lines: &str) -> anyhow::Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    cmd.args(["-batch", "-"]);
    fed(
        &mut cmd,
        lines,
        "ip -batch",
        "ip -batch (Debian package iproute2)",
    )
}

/// Runs `cmd` with `input` on its stdin; a failure quotes its stderr under
/// `name`, and one that cannot start says which package gives `program`.
fn fed(cmd: &mut Command, input: &str, name: &str, program: &str) -> anyhow::Result<()> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    // A command that stops at its first error (`ip -batch`) closes its input
    // early: its stderr says why, which a broken pipe reported first hid.
    // The child is reaped either way.
    let wrote = match child.stdin.take() {
        Some(mut stdin) => {
            use std::io::Write;
            stdin.write_all(input.as_bytes())
        }
        None => Ok(()),
    };
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{name}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    wrote.with_context(|| format!("{name}: writing its input"))
}

/// Stops the processes in namespace `ns`: SIGTERM, then SIGKILL for any
/// left after `STOP_WAIT`. Once the server's group is gone, what is left is
/// a `--server-cmd` that daemonized and so left that group (nginx's `daemon
/// on`), which would outlive `ip netns del`.
fn stop_all_in(ns: &str) {
    let pids = || -> Vec<Pid> {
        ip(&["netns", "pids", ns])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok().map(Pid::from_raw))
            .collect()
    };
    for p in pids() {
        let _ = kill(p, Signal::SIGTERM);
    }
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline {
        if pids().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in pids() {
        let _ = kill(p, Signal::SIGKILL);
    }
}

/// What a run killed outright left behind (SIGKILL, which no guard sees):
/// each namespace `loadgen-PID-N` whose PID no longer runs, with what still
/// runs in it, its host table of loss rules and the host end of its pair.
/// Another live run's are kept.
fn clear_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some((pid, n)) = name
            .strip_prefix("loadgen-")
            .and_then(|r| r.split_once('-'))
        else {
            continue;
        };
        let (Ok(pid), Ok(n)) = (pid.parse::<u32>(), n.parse::<u32>()) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("loadgen: removing {name}, left by a run that was killed");
        stop_all_in(name);
        let _ = nft(None, &format!("delete table netdev {}\n", host_table(name)));
        let _ = ip(&["link", "del", &host_if(pid, n)]);
        let _ = ip(&["netns", "del", name]);
    }
}

/// The host's table of loss rules for namespace `ns` (the namespace has its
/// own, `TABLE`).
fn host_table(ns: &str) -> String {
    format!("{TABLE}_{}", ns.replace('-', "_"))
}

/// The host end of run `pid`'s `n`-th pair: at most 15 bytes (IFNAMSIZ - 1),
/// "lg" + pid (at most 7 digits) + "v" + n.
fn host_if(pid: u32, n: u32) -> String {
    format!("lg{pid}v{}", n % 100_000)
}

impl Lab {
    /// Creates the namespace, the veth pair and its addresses. On any failure
    /// the guard undoes what was done.
    pub fn create() -> anyhow::Result<Lab> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Relaxed);
        let pid = std::process::id();
        // Until the pair's addresses are on the host.
        let _addresses = addr::lock()?;
        clear_stale();
        let net = addr::free_slash30()?;
        let name = format!("loadgen-{pid}-{n}");
        ip(&["netns", "add", &name])?;
        // From here on the guard undoes what was done.
        let lab = Lab {
            name,
            host_if: host_if(pid, n),
            client_ip: Ipv4Addr::from(net + 1),
            server_ip: Ipv4Addr::from(net + 2),
            server: None,
            loss: None,
        };
        let (ns, host_if) = (lab.name.as_str(), lab.host_if.as_str());
        let client = format!("{}/30", lab.client_ip);
        let server = format!("{}/30", lab.server_ip);
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", NS_IF, "netns", ns,
        ])?;
        ip(&["addr", "add", &client, "dev", host_if])?;
        ip(&["link", "set", host_if, "up"])?;
        ip(&["-n", ns, "addr", "add", &server, "dev", NS_IF])?;
        ip(&["-n", ns, "link", "set", NS_IF, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        eprintln!(
            "loadgen: namespace {ns}: {} here <-> {} there, over {host_if}",
            lab.client_ip, lab.server_ip
        );
        Ok(lab)
    }

    /// Gives the client side more source addresses than the pair's one: each
    /// of `lo..=hi` on the host's end of the pair, and a route to it in the
    /// namespace, so that many 4-tuples reach one server port (about 28,000
    /// ports each with the default `ip_local_port_range`). Refused where the
    /// host already has an address or route covering one of them. They go
    /// with the pair and the namespace.
    pub fn add_client_ips(&mut self, (lo, hi): (Ipv4Addr, Ipv4Addr)) -> anyhow::Result<()> {
        // Until they are on the host.
        let _addresses = addr::lock()?;
        let prefixes = addr::host_prefixes_now()?;
        let ips = (u32::from(lo)..=u32::from(hi)).map(Ipv4Addr::from);
        if let Some(used) = ips
            .clone()
            .find(|a| prefixes.iter().any(|&(p, m)| u32::from(*a) & m == p))
        {
            bail!("--source-ips {lo}-{hi}: {used} is already an address or route of this host");
        }
        let (mut here, mut there) = (String::new(), String::new());
        for a in ips {
            here.push_str(&format!("addr add {a}/32 dev {}\n", self.host_if));
            there.push_str(&format!("route add {a}/32 dev {NS_IF}\n"));
        }
        ip_batch(None, &here)?;
        ip_batch(Some(&self.name), &there)?;
        Ok(())
    }

    /// The server's address for `port`.
    pub fn target(&self, port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(self.server_ip, port))
    }

    /// Starts `cmd` (a shell command line; `{ip}`, `{port}` and `{addr}` are
    /// replaced by the server's) inside the namespace, in a process group of
    /// its own, and waits until something listens on `port` there.
    pub fn start_server(
        &mut self,
        cmd: &str,
        port: u16,
        interrupted: &AtomicBool,
    ) -> anyhow::Result<()> {
        let line = cmd
            .replace("{addr}", &self.target(port).to_string())
            .replace("{ip}", &self.server_ip.to_string())
            .replace("{port}", &port.to_string());
        let log = self.server_log();
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", &line])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting --server-cmd {line:?}"))?;
        let child = self.server.insert(child);
        let deadline = Instant::now() + LISTEN_WAIT;
        loop {
            if let Some(status) = child.try_wait()? {
                // Quoted, so not kept: a run that never started has
                // nothing else to look back on.
                let said = crate::said::said(&log);
                let _ = std::fs::remove_file(&log);
                bail!("--server-cmd {line:?} exited with {status} before listening on port {port}{said}");
            }
            let listening = netns::run_in(Some(&self.name), diag::dump)??
                .iter()
                .any(|s| s.state == TcpState::Listen && s.local.port() == port);
            if listening {
                return Ok(());
            }
            // The server still runs: its log is kept, and named.
            if interrupted.load(Relaxed) {
                bail!(
                    "interrupted while waiting for --server-cmd to listen (log {})",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "--server-cmd {line:?} did not listen on port {port} within {LISTEN_WAIT:?} (log {}){}",
                    log.display(),
                    crate::said::said(&log)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where the server's stdout and stderr go: kept after a run, quoted
    /// and removed if the server exits before it listens.
    pub fn server_log(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("{}.server.log", self.name))
    }

    /// Drops each TCP segment over the pair with probability `p`, in each
    /// direction, where it arrives: at the ingress of the namespace's end (to
    /// the server) and of the host's end (to the client), `numgen random mod
    /// 1000000 < p·10⁶`. The host's rule is bound to this run's veth alone.
    ///
    /// Not at the sender's output hook: a drop there fails the send with
    /// EPERM, which TCP does not take as loss. A SYN-ACK retransmission that
    /// fails makes `reqsk_timer_handler` drop the request socket, so a client
    /// whose handshake ACK was lost stays ESTABLISHED forever (seen: 6 of 3,000
    /// connections at 5 % loss each way).
    pub fn set_loss(&mut self, p: f64) -> anyhow::Result<()> {
        let below = (p * 1e6).round() as u32;
        let table = |chain: &str, dev: &str| {
            format!(
                "table netdev {TABLE} {{\n\
                 chain {chain} {{ type filter hook ingress device \"{dev}\" priority 0; policy accept;\n\
                   meta l4proto tcp numgen random mod 1000000 < {below} counter drop\n}}\n}}\n"
            )
        };
        nft(Some(&self.name), &table("to_server", NS_IF))?;
        self.loss = Some(p);
        nft(
            None,
            &table("to_client", &self.host_if).replace(TABLE, &host_table(&self.name)),
        )?;
        Ok(())
    }

    /// Segments the loss rules dropped so far, (to the server, to the client).
    pub fn dropped(&self) -> anyhow::Result<(u64, u64)> {
        let count = |ns: Option<&str>, table: &str| -> anyhow::Result<u64> {
            let mut cmd = match ns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "nft"]);
                    c
                }
                None => Command::new("nft"),
            };
            let out = run(cmd.args(["-j", "list", "table", "netdev", table]))?;
            let v: Value = serde_json::from_str(&out).context("nft -j output")?;
            Ok(v["nftables"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|item| item["rule"]["expr"].as_array().into_iter().flatten())
                .filter_map(|e| e["counter"]["packets"].as_u64())
                .sum())
        };
        Ok((
            count(Some(&self.name), TABLE)?,
            count(None, &host_table(&self.name))?,
        ))
    }

    /// The report's `netns` section.
    pub fn json(&self, port: u16, server_cmd: &str) -> Value {
        let dropped = self.loss.and_then(|_| self.dropped().ok());
        json!({
            "name": self.name,
            "client_ip": self.client_ip.to_string(),
            "server": self.target(port).to_string(),
            "server_cmd": server_cmd,
            "server_log": self.server_log().display().to_string(),
            "loss": self.loss.unwrap_or(0.0),
            "dropped_to_server": dropped.map(|d| d.0),
            "dropped_to_client": dropped.map(|d| d.1),
        })
    }

    fn stop_server(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        // The group is the `ip netns exec` child's own (process_group(0)).
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_WAIT;
        // Until no process of the group is left (a zombie still counts, so reap).
        while Instant::now() < deadline {
            let _ = child.try_wait();
            if killpg(group, None).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_server();
        stop_all_in(&self.name);
        // The rules, then the pair (deleting one end deletes both), then the
        // namespace. Each may already be gone after a partial create.
        if self.loss.is_some() {
            let host = format!("delete table netdev {}\n", host_table(&self.name));
            if let Err(e) = nft(None, &host) {
                eprintln!(
                    "loadgen: removing the loss rules on {}: {e:#}",
                    self.host_if
                );
            }
            let _ = nft(Some(&self.name), &format!("delete table netdev {TABLE}\n"));
        }
        let _ = ip(&["link", "del", &self.host_if]);
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("loadgen: removing namespace {}: {e:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that fails on its first line and closes its input is
    /// reported by what it said, not by the broken pipe of the rest.
    #[test]
    fn a_command_that_stops_early_says_why() {
        let input = "x\n".repeat(1 << 20);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "read line; echo \"bad line: $line\" >&2; exit 1"]);
        let err = fed(&mut cmd, &input, "sh -c", "sh").unwrap_err();
        assert_eq!(err.to_string(), "sh -c: bad line: x");
        let mut ok = Command::new("sh");
        ok.args(["-c", "cat >/dev/null"]);
        fed(&mut ok, &input, "cat", "sh").unwrap();
    }
}
