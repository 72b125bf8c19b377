//! Tests of the port-range parser, the threads and keep a spawned server is
//! given, and the checks on where traffic goes and on `--app-timeout`.

use super::*;

#[test]
fn ports_parse() {
    assert_eq!(parse_ports("1000-2000"), Ok((1000, 2000)));
    assert!(parse_ports("2000-1000").is_err());
    assert!(parse_ports("x").is_err());
}

#[test]
fn a_spawned_server_shares_the_cores_and_keeps_the_concurrency_live() {
    use clap::Parser;
    let args = |extra: &[&str]| {
        let mut v = vec!["loadgen", "--concurrency", "1000"];
        v.extend_from_slice(extra);
        Args::parse_from(v)
    };
    let spawned = args(&["--spawn-server"]);
    let (server, clients) = (spawned.server_threads().unwrap(), spawned.threads());
    assert!(server >= 1 && clients >= 1);
    assert_eq!(server + clients, cores().max(2));
    // Fewer kept than may be open: a new handshake always has room.
    assert_eq!(spawned.server_keep(), Some(900));
    assert_eq!(
        args(&["--spawn-server", "--server-keep", "0"]).server_keep(),
        Some(0)
    );
    let client_closes = args(&["--spawn-server", "--close", "client"]);
    assert_eq!(client_closes.server_keep(), None);
    // Without a spawned server nothing is shared or kept.
    let external = args(&[]);
    assert_eq!(external.server_threads(), None);
    assert_eq!(external.threads(), cores());
    assert_eq!(external.server_keep(), None);
    assert!(args(&["--server-keep", "5"]).validate().is_err());
    let one = Args::parse_from(["loadgen", "--spawn-server", "--concurrency", "1"]);
    assert_eq!(one.server_keep(), Some(0));
}

/// Traffic stays on loopback or in the run's own namespace: a metrics URL
/// elsewhere needs `--allow-non-loopback`, and `--netns --source-ips` takes
/// only private addresses, which the run adds to the host for its duration.
#[test]
fn metrics_and_netns_sources_stay_off_other_hosts() {
    use clap::Parser;
    let ok = |v: &[&str]| {
        let mut argv = vec!["loadgen"];
        argv.extend_from_slice(v);
        Args::parse_from(argv).validate().is_ok()
    };
    assert!(ok(&[]));
    assert!(ok(&["--metrics-url", "http://localhost:9171/metrics"]));
    assert!(ok(&["--metrics-url", "http://[::1]:9171/metrics"]));
    assert!(!ok(&["--metrics-url", "http://example.com:9171/metrics"]));
    assert!(!ok(&["--metrics-url", "http://10.0.0.1:9171/metrics"]));
    assert!(ok(&[
        "--metrics-url",
        "http://10.0.0.1:9171/metrics",
        "--allow-non-loopback"
    ]));
    let netns = |range: &str| {
        ok(&[
            "--kernel",
            "--netns",
            "--server-cmd",
            "nginx",
            "--source-ips",
            range,
        ])
    };
    assert!(netns("10.201.0.1-10.201.0.32"));
    assert!(netns("198.18.0.1-198.18.1.0"));
    assert!(!netns("8.8.8.8-8.8.8.9"), "public");
    assert!(!netns("10.255.255.250-11.0.0.5"), "past its block");
    assert!(!netns("127.0.0.2-127.0.0.5"), "loopback");
}

/// `--app-timeout` is off unless given, bounded as the simulator's (its
/// sweep compares 32-bit millisecond stamps), and for the engine's clients.
#[test]
fn app_timeout_is_bounded_and_for_the_engines_clients() {
    use clap::Parser;
    let check = |v: &[&str]| {
        let mut argv = vec!["loadgen"];
        argv.extend_from_slice(v);
        Args::parse_from(argv).validate().map_err(|e| e.0)
    };
    assert_eq!(Args::parse_from(["loadgen"]).app_timeout, None);
    assert!(check(&["--app-timeout", "2s"]).is_ok());
    assert!(check(&["--app-timeout", "576h"]).is_ok(), "24 days");
    let bounds = Err("--app-timeout must be between 1s and 24 days".to_string());
    assert_eq!(check(&["--app-timeout", "0s"]), bounds);
    assert_eq!(check(&["--app-timeout", "999ms"]), bounds);
    assert_eq!(check(&["--app-timeout", "600h"]), bounds);
    assert_eq!(
        check(&["--kernel", "--app-timeout", "2s"]),
        Err("--app-timeout needs the engine's clients, not --kernel".to_string())
    );
}
