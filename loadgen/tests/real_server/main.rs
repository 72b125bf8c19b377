//! `loadgen --kernel --kernel-target` against a real server: Debian's nginx on
//! a loopback address of its own, with its own config in a temp dir. What
//! loadgen reports is held against TIME-WAIT read independently with `ss`.
//!
//! Without nginx installed these tests say so and pass, unless
//! `TEARDOWN_REQUIRE_NGINX` is set (as `.ci/run` does after installing it).

#[path = "../common/mod.rs"]
mod common;
mod servers;

mod closes;
mod ipv6;
mod open_model;
mod proxy;
mod refusals;
mod shards;
mod workers;

use std::net::SocketAddrV4;
use std::process::Command;

use clap::Parser;
use serde_json::Value;

/// TCP sockets in `state` whose local (`src`) or remote (`dst`) end is `addr`, by `ss`.
pub(crate) fn sockets(state: &str, side: &str, addr: SocketAddrV4) -> Vec<String> {
    let out = Command::new("ss")
        .args(["-tanH", "state", state, side, &addr.to_string()])
        .output()
        .expect("ss (iproute2) is needed");
    common::assert_ok(&out);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub(crate) fn time_wait(side: &str, addr: SocketAddrV4) -> Vec<String> {
    sockets("time-wait", side, addr)
}

/// TIME-WAIT held by the server (local end = its address) and by the clients.
pub(crate) fn time_wait_sides(addr: SocketAddrV4) -> (usize, usize) {
    (time_wait("src", addr).len(), time_wait("dst", addr).len())
}

pub(crate) fn loadgen(target: SocketAddrV4, extra: &[&str]) -> Value {
    let target = target.to_string();
    let mut argv = vec![
        "loadgen",
        "--kernel",
        "--kernel-target",
        &target,
        "--timeout",
        "60s",
        "--quiet",
    ];
    argv.extend_from_slice(extra);
    let r = loadgen::run(&loadgen::Args::parse_from(argv)).unwrap();
    assert_eq!(r.leaked, 0, "{:#}", r.json);
    r.json
}

pub(crate) fn no_errors(r: &Value) {
    let errors = r["errors"].as_object().unwrap();
    assert!(errors.values().all(|v| v == 0), "{r:#}");
}

pub(crate) fn sockstat() -> String {
    std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default()
}
