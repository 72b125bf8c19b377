//! The limits by hand: tcp_max_tw_buckets, the 4-tuples that bound TIME-WAIT,
//! and the clients' ports with and without tcp_tw_reuse.

use teardown::plan::bounds::Bound;
use teardown::plan::evaluate;
use teardown::plan::memory::Slab;

use super::{close, plan};

#[test]
fn tw_buckets_overflow_above_2184_5_closes_a_second() {
    let slab = Slab::defaults();
    // 100 client addresses, so the 4-tuples do not bind first (below).
    let p = |rate: &str, extra: &[&str]| {
        let mut flags = vec!["--close-rate", rate, "--clients", "100"];
        flags.extend_from_slice(extra);
        plan(&flags)
    };
    let below = evaluate(&p("2184", &[]), &slab);
    assert!(!below.limits.tw_buckets_overflow);
    assert!(close(
        below.prediction.tw_overflow_rate,
        131_072.0 / 60.0,
        1e-12
    ));
    let above = evaluate(&p("2185", &[]), &slab);
    assert!(above.limits.tw_buckets_overflow);
    let o = evaluate(&p("3000", &[]), &slab);
    assert_eq!(o.prediction.server.time_wait, 131_072.0);
    assert_eq!(o.prediction.tw_uncapped, 180_000.0);
    assert!(close(
        o.prediction.tw_overflow_per_sec,
        3000.0 - 131_072.0 / 60.0,
        1e-9
    ));
    // rfc9293 has no cap.
    let rfc = evaluate(&p("3000", &["--profile", "rfc9293"]), &slab);
    assert!(!rfc.limits.tw_buckets_overflow);
    assert_eq!(rfc.prediction.server.time_wait, 3000.0 * 240.0);
}

#[test]
fn client_closers_exhaust_ports_unless_tw_reuse() {
    let slab = Slab::defaults();
    let o = evaluate(&plan(&["--close-rate", "1000", "--close", "client"]), &slab);
    let l = &o.limits;
    assert_eq!(o.prediction.clients.time_wait, 60_000.0);
    assert_eq!(o.prediction.server.time_wait, 0.0);
    // One destination at 1,000/s: ports held 60 s of TIME-WAIT plus the ~30 ms the
    // connection lives before it, against 28,232.
    assert!(
        close(l.ports_per_destination_needed, 60_030.0, 1e-3),
        "{}",
        l.ports_per_destination_needed
    );
    assert!(l.port_exhaustion);
    assert!(
        close(l.max_rate_per_destination, 28_232.0 / 60.03, 1e-3),
        "{}",
        l.max_rate_per_destination
    );
    // tcp_tw_reuse: a port is reusable 1 s after TIME-WAIT starts.
    assert!(close(
        l.ports_per_destination_needed_with_reuse,
        1_030.0,
        1e-3
    ));
    assert!(!l.port_exhaustion_with_reuse);
    // 4 client IPs x 2 server ports: 125/s per destination, 7,504 ports.
    let o = evaluate(
        &plan(&[
            "--close-rate",
            "1000",
            "--close",
            "client",
            "--clients",
            "4",
            "--server-ports",
            "2",
        ]),
        &slab,
    );
    assert_eq!(o.limits.rate_per_destination, 125.0);
    assert!(close(o.limits.ports_per_destination_needed, 7_503.75, 1e-3));
    assert!(!o.limits.port_exhaustion);
}

/// Issue 14: 1,500 server closes/s from one client address to one port, range
/// 28,232. Linux's TIME-WAIT is bounded by the 14,116 even-port 4-tuples, not
/// 1,500 x 60 = 90,000; with the cap at 4,096 the skipped share is
/// 1 - 4,096/14,116 = 71.0 %, not (R - cap/60)/R = 95.4 %.
#[test]
fn one_client_address_bounds_the_server_time_wait_by_its_tuples() {
    let o = evaluate(
        &plan(&["--close-rate", "1500", "--close", "server"]),
        &Slab::defaults(),
    );
    assert_eq!(o.buckets.time_wait_by_rate, 90_000.0);
    assert_eq!(o.buckets.binds, Bound::Tuples);
    assert_eq!(o.buckets.population, 14_116.0);
    let o = evaluate(
        &plan(&["--close-rate", "1500", "--max-tw-buckets", "4096"]),
        &Slab::defaults(),
    );
    assert_eq!(o.buckets.binds, Bound::Buckets);
    assert!(close(
        o.buckets.skipped_fraction,
        1.0 - 4096.0 / 14_116.0,
        1e-9
    ));
    let old = o.prediction.tw_overflow_per_sec / 1500.0;
    assert!(close(old, (1500.0 - 4096.0 / 60.0) / 1500.0, 1e-9), "{old}");
    // Runaway clients leave orphaned FIN-WAIT-2 on the server: in the buckets.
    let o = evaluate(
        &plan(&[
            "--close-rate",
            "1500",
            "--clients",
            "100",
            "--runaway",
            "0.1",
        ]),
        &Slab::defaults(),
    );
    assert!(close(
        o.buckets.orphan_fin_wait_2,
        1500.0 * 0.1 * 60.0,
        0.01
    ));
    assert!(close(
        o.buckets.demand,
        o.buckets.time_wait + o.buckets.orphan_fin_wait_2,
        1e-12
    ));
}

/// Both ends in one namespace (loopback): the clients' TIME-WAIT fills the
/// same tcp_max_tw_buckets, bounded by the even ports of the one destination.
#[test]
fn a_shared_namespace_counts_the_clients_time_wait() {
    let apart = evaluate(
        &plan(&["--close-rate", "1500", "--close", "client"]),
        &Slab::defaults(),
    );
    assert_eq!(apart.buckets.demand, 0.0);
    let shared = evaluate(
        &plan(&[
            "--close-rate",
            "1500",
            "--close",
            "client",
            "--shared-netns",
        ]),
        &Slab::defaults(),
    );
    assert_eq!(shared.buckets.time_wait, 14_116.0);
    assert_eq!(shared.buckets.binds, Bound::Tuples);
}

/// `bounds::connects` by hand: 100 connects/s to one destination over 1,000
/// ports, each held 60 s (TIME-WAIT) or, under tcp_tw_reuse, 1 s.
#[test]
fn connect_limits_by_hand() {
    use teardown::plan::bounds::connects;
    // No reuse: 1,000 ports / 60 s = 16.7/s succeed, the rest fail.
    let c = connects(100.0, 1_000, 60.0, None);
    assert_eq!(c.in_use, 1_000.0);
    assert!(close(c.eaddrnotavail_per_sec, 100.0 - 1_000.0 / 60.0, 1e-9));
    // Reuse: the walk cycles all 500 even ports, none fail.
    let c = connects(100.0, 1_000, 60.0, Some(1.0));
    assert_eq!((c.in_use, c.eaddrnotavail_per_sec), (500.0, 0.0));
    // Too few connects to need every even port: rate x hold.
    let c = connects(5.0, 1_000, 60.0, Some(1.0));
    assert_eq!((c.in_use, c.eaddrnotavail_per_sec), (300.0, 0.0));
    // Reuse outgrown: the odd ports too, and 1,000 / 1 s succeed.
    let c = connects(1_500.0, 1_000, 60.0, Some(1.0));
    assert_eq!((c.in_use, c.eaddrnotavail_per_sec), (1_000.0, 500.0));
    // An odd range: the search scans it rounded down to even.
    assert_eq!(connects(100.0, 1_001, 60.0, None).in_use, 1_000.0);
}

/// Linux holds what its bounds allow, and the memory and the overflow verdict
/// say so: one client address at 10,000 server closes a second reopens its
/// 4-tuples, 14,116 TIME-WAIT (the simulator's plateau with `--client-ips 1`),
/// never the buckets' 131,072 that the table (no 4-tuple back) shows.
#[test]
fn linux_memory_and_overflow_are_at_the_bounded_population() {
    let o = evaluate(&plan(&["--close-rate", "10000"]), &Slab::defaults());
    assert_eq!(o.prediction.server.time_wait, 131_072.0);
    assert!(o.prediction.tw_overflow_per_sec > 0.0);
    assert_eq!(o.linux_server.time_wait, 14_116.0);
    assert!(!o.limits.tw_buckets_overflow);
    assert_eq!(o.buckets.overflow_per_sec, 0.0);
    // tw_sock_TCP for each, plus 100 FIN-WAIT-1 full sockets and 100 request socks.
    let want = 14_116.0 * 256.0 + 100.0 * 2368.0 + 100.0 * 320.0;
    assert!(close(o.linux_bytes, want, 1e-9), "{}", o.linux_bytes);
}

/// Clients that close first and run out of ports hold what their ports
/// serve: of 2,000 connects a second to one destination, 28,232 / 60.03 s
/// succeed, and both ends hold only those connections (the simulator: 28,215
/// client TIME-WAIT).
#[test]
fn exhausted_clients_hold_what_their_ports_serve() {
    let slab = Slab::defaults();
    let o = evaluate(&plan(&["--close-rate", "2000", "--close", "client"]), &slab);
    assert_eq!(o.prediction.clients.time_wait, 120_000.0);
    assert!(o.limits.port_exhaustion);
    let held = &o.linux_clients;
    assert!(close(held.total(), 28_232.0, 1e-9), "{}", held.total());
    assert!((28_000.0..28_232.0).contains(&held.time_wait), "{held:?}");
    let served = 28_232.0 / o.limits.ports_per_destination_needed;
    let server_last_ack = o.prediction.server.last_ack * served;
    assert!(close(o.linux_server.last_ack, server_last_ack, 1e-9));
}

/// The clients' own TIME-WAIT in a shared namespace: with `tcp_tw_reuse` a
/// connect() takes a TIME-WAIT 4-tuple back from the even ports, without it
/// the search passes them and fills the whole range (the simulator: 28,232
/// with `--tw-reuse 0`).
#[test]
fn without_tw_reuse_the_clients_time_wait_fills_the_whole_range() {
    let slab = Slab::defaults();
    let flags = [
        "--close-rate",
        "1000",
        "--close",
        "client",
        "--shared-netns",
    ];
    let on = evaluate(&plan(&flags), &slab);
    assert!(on.limits.tw_reuse);
    assert_eq!(on.usable_ports, 14_116.0);
    assert_eq!(on.buckets.time_wait, 14_116.0);
    let off = evaluate(&plan(&[&flags[..], &["--tw-reuse", "0"]].concat()), &slab);
    assert!(!off.limits.tw_reuse);
    assert_eq!(off.usable_ports, 28_232.0);
    assert_eq!(off.buckets.time_wait, 28_232.0);
}

/// A client's connection on a port of its own holds a `tcp_bind_bucket` and a
/// `tcp_bind2_bucket` beside its socket, TIME-WAIT too: about 512 B a client
/// TIME-WAIT (kernel-facts.md), where the server's shares its listener's.
#[test]
fn client_time_wait_holds_its_bind_buckets() {
    let slab = Slab::defaults();
    let o = evaluate(
        &plan(&[
            "--close-rate",
            "10000",
            "--close",
            "client",
            "--clients",
            "100",
        ]),
        &slab,
    );
    let held = &o.linux_clients;
    assert!(close(held.time_wait, 600_000.0, 1e-12), "{held:?}");
    let want = slab.bytes(held) + held.total() * 2.0 * 128.0;
    assert!(
        close(o.clients_linux_bytes, want, 1e-12),
        "{}",
        o.clients_linux_bytes
    );
    assert!(o.clients_linux_bytes / held.time_wait > 510.0);
    // In one namespace the 100 addresses share each port's tcp_bind_bucket.
    let shared = slab.client_bind_bytes(600_000.0, 100.0, 28_232.0, true);
    assert_eq!(shared, (28_232.0 + 600_000.0) * 128.0);
}

/// Orphans (closed by their application, a full socket still: FIN-WAIT-1,
/// CLOSING, LAST-ACK) against `tcp_max_orphans`: at 10,000 server closes a
/// second over 10 ms, 100 in FIN-WAIT-1; the clients' 100 LAST-ACK count
/// only when they share the host.
#[test]
fn orphans_against_tcp_max_orphans() {
    let slab = Slab::defaults();
    let o = evaluate(&plan(&["--close-rate", "10000"]), &slab);
    let l = &o.limits;
    assert!(close(l.orphans, 100.0, 1e-9), "{}", l.orphans);
    assert_eq!(l.max_orphans, Some(131_072.0));
    let full = l.orphans_full_rate.expect("orphans grow with the rate");
    assert!(close(full, 10_000.0 * 131_072.0 / 100.0, 1e-9), "{full}");
    let shared = evaluate(&plan(&["--close-rate", "10000", "--shared-netns"]), &slab);
    assert!(
        close(shared.limits.orphans, 200.0, 1e-9),
        "{}",
        shared.limits.orphans
    );
    let out = super::teardown(&["plan", "--close-rate", "10000", "--max-orphans", "50"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tcp_max_orphans FULL: 100 of 50"), "{text}");
    // FreeBSD has no such limit: the orphans are shown, nothing fills.
    let bsd = evaluate(
        &plan(&["--close-rate", "10000", "--profile", "freebsd"]),
        &slab,
    );
    assert_eq!(bsd.limits.max_orphans, None);
    assert_eq!(bsd.limits.orphans_full_rate, None);
    let out = super::teardown(&["plan", "--close-rate", "10000", "--profile", "freebsd"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("this profile sets no limit"), "{text}");
}

/// With `tcp_tw_reuse` every connect succeeds: the clients' TIME-WAIT is
/// taken over within the even ports in use, and nothing else shrinks (the
/// server's populations and its orphans stay the table's).
#[test]
fn tw_reuse_keeps_every_connect_and_bounds_only_the_clients_time_wait() {
    let o = evaluate(
        &plan(&[
            "--close-rate",
            "1000",
            "--close",
            "client",
            "--tw-reuse",
            "1",
        ]),
        &Slab::defaults(),
    );
    assert_eq!(o.limits.connects.eaddrnotavail_per_sec, 0.0);
    assert_eq!(o.limits.connects.in_use, 14_116.0);
    assert_eq!(o.linux_server.established, o.prediction.server.established);
    assert_eq!(o.linux_server.last_ack, o.prediction.server.last_ack);
    let held = &o.linux_clients;
    assert!(close(held.total(), 14_116.0, 1e-9), "{held:?}");
    assert!(close(o.limits.orphans, o.prediction.server.last_ack, 1e-12));
}
