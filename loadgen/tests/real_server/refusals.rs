//! Targets loadgen cannot or must not reach: refused connects counted by
//! errno, and a non-loopback target refused before any socket exists.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::Command;

use clap::Parser;

use crate::common::n;
use crate::loadgen;

/// Nothing listens: every connect is refused, by errno, and nothing is left.
#[test]
fn refused_connections_are_counted_by_errno() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = loadgen(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        &["--concurrency", "8", "--connections", "50"],
    );
    assert_eq!(n(&r, "/connections"), 50);
    assert_eq!(n(&r, "/errors/econnrefused"), 50, "{r:#}");
    assert_eq!(n(&r, "/established"), 0);
    assert_eq!(n(&r, "/completed"), 0);
}

/// A non-loopback target is refused before any socket exists (nothing is sent
/// to 10.0.0.1), with a usage error that names the flag to pass.
#[test]
fn non_loopback_targets_need_an_explicit_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--kernel",
            "--kernel-target",
            "10.0.0.1:80",
            "--connections",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-non-loopback"), "{stderr}");
    let args = loadgen::Args::parse_from(["loadgen", "--kernel", "--kernel-target", "10.0.0.1:80"]);
    let e = loadgen::run(&args).err().expect("refused");
    assert!(e.to_string().contains("not a loopback address"), "{e}");
}
