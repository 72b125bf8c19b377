//! haproxy in front of nginx: the upstream TIME-WAIT is in the host's
//! counters, not loadgen's side counts.

use std::time::Duration;

use crate::common::n;
use crate::servers::{have_haproxy, have_nginx, Server};
use crate::{loadgen, no_errors, sockstat, time_wait_sides};

/// haproxy in `mode tcp` in front of nginx (`keepalive_timeout 0`): nginx
/// closes first towards the proxy and the proxy first towards loadgen, so
/// each connection leaves two TIME-WAITs, one on each server. loadgen's side
/// counts (by the target's address, the proxy's) see the proxy's only; the
/// proxy-to-nginx ones are in the host's counters, and the report says so.
#[test]
fn a_proxys_upstream_time_wait_is_in_the_host_counters_not_the_side_counts() {
    if !have_nginx() || !have_haproxy() {
        return;
    }
    let nginx = Server::nginx("0");
    let proxy = Server::haproxy(nginx.addr);
    let r = loadgen(
        proxy.addr,
        &[
            "--request",
            "http",
            "--concurrency",
            "8",
            "--connections",
            "200",
        ],
    );
    no_errors(&r);
    assert_eq!(n(&r, "/completed"), 200, "{r:#}");
    assert_eq!(n(&r, "/closed_by/server_fin"), 200, "{r:#}");
    // The proxy's frontend closes first and is in TIME-WAIT before loadgen's
    // socket is gone: loadgen's sides are the proxy's alone, as ss says (a
    // few of the 200 may be one entry, as in the nginx tests above).
    let front = n(&r, "/time_wait/server_peak");
    assert!((180..=200).contains(&front), "{:#}", r["time_wait"]);
    assert_eq!(n(&r, "/time_wait/client_peak"), 0);
    assert_eq!(
        time_wait_sides(proxy.addr),
        (front as usize, 0),
        "{}",
        sockstat()
    );
    // The proxy closes its upstream on its own time, so the last few of
    // nginx's TIME-WAITs may come after loadgen's last reading; the rest are
    // in the host's TW count and among the "other" sockets, not in the sides.
    let tw = n(&r, "/kernel/netstat/TW");
    assert!(tw > 200, "{:#}", r["kernel"]);
    assert!(n(&r, "/time_wait/entered_by_others") >= tw - 200);
    assert!(n(&r, "/time_wait/other_peak") > 0, "{:#}", r["time_wait"]);
    // And all 200 (or all but the few reopened) are there in the end, at
    // nginx, towards the proxy.
    let mut upstream = time_wait_sides(nginx.addr);
    for _ in 0..500 {
        if upstream.0 == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        upstream = time_wait_sides(nginx.addr);
    }
    assert!(
        (180..=200).contains(&upstream.0) && upstream.1 == 0,
        "{upstream:?}; {}",
        sockstat()
    );
    let note = r["notes"][0].as_str().unwrap_or_default();
    assert!(note.contains("host-wide counters"), "{r:#}");
}
