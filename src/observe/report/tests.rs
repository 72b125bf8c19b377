//! Tests of the populations: sides, destinations and RTT from a socket dump.

use super::*;

fn sock(state: u8, local: &str, remote: &str, rtt_us: Option<u32>) -> DiagSocket {
    DiagSocket {
        state: TcpState::from_kernel(state).unwrap(),
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        rtt_us,
    }
}

#[test]
fn sides_destinations_and_rtt() {
    let range = PortRange {
        low: 40000,
        high: 40009,
    };
    let sockets = [
        sock(10, "0.0.0.0:80", "0.0.0.0:0", None),
        // Server side: the local port is the listener's (any address).
        sock(6, "10.0.0.1:80", "10.9.9.9:51000", None),
        sock(1, "10.0.0.1:80", "10.9.9.9:51001", Some(900)),
        // Client side towards 10.1.1.1:443 from two local addresses.
        sock(6, "10.0.0.1:40000", "10.1.1.1:443", None),
        sock(6, "10.0.0.1:40001", "10.1.1.1:443", None),
        sock(1, "10.0.0.1:40002", "10.1.1.1:443", Some(2000)),
        sock(6, "10.0.0.2:40000", "10.1.1.1:443", None),
        // Bound outside the range: holds no ephemeral port.
        sock(6, "10.0.0.1:1234", "10.1.1.1:443", None),
        sock(6, "10.0.0.1:40003", "10.2.2.2:80", None),
    ];
    let p = Populations::of(&sockets, range);
    assert_eq!(p.states["listen"], 1);
    assert_eq!(p.states["time_wait"], 6);
    assert_eq!(p.states["established"], 2);
    assert_eq!(p.states["close_wait"], 0);
    assert_eq!(
        p.time_wait,
        TimeWait {
            total: 6,
            server: 1,
            client: 5,
            server_pools: 1,
        }
    );
    let d = &p.destinations[0];
    assert_eq!(d.destination, "10.1.1.1:443");
    // 10.0.0.1 holds 3 ports of the range (1234 is outside), 10.0.0.2 one.
    assert_eq!(
        (d.time_wait, d.sockets, d.ports_in_use, d.port_range),
        (4, 5, 3, 10)
    );
    assert!((d.used - 0.3).abs() < 1e-12);
    assert_eq!(p.destinations[1].destination, "10.2.2.2:80");
    assert_eq!(p.rtt.samples, 2);
    assert!(p.rtt.p50_us.unwrap().abs_diff(900) <= 1);
    assert!(p.rtt.p99_us.unwrap().abs_diff(2000) <= 2);
}

#[test]
fn no_sockets_no_rtt() {
    let p = Populations::of(&[], PortRange { low: 1, high: 1 });
    assert_eq!(p.rtt, Rtt::default());
    assert!(p.destinations.is_empty());
    assert_eq!(p.states.len(), 11);
}
