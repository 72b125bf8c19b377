//! Draining events by swapping buffers (`Host::swap_events`): the events come
//! out oldest first, the driver's stale ones are dropped, and the host's queue
//! is left empty, ready for the next.

use teardown_engine::{Config, Event, Flags, Host, Segment, Time, Tuple};

fn server_tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
}

/// Opens a connection from the peer's `port`: SYN, then the ACK of the SYN-ACK.
fn open(host: &mut Host, port: u16) {
    let peer = server_tuple(port).reversed();
    host.handle(
        Time::ZERO,
        &Segment::new(&peer, Flags::SYN, 1_000, 0, 0, 65_535),
    );
    let synack = host.transmits().next().expect("a SYN-ACK");
    let ack = Segment::new(&peer, Flags::ACK, 1_001, synack.seq + 1, 0, 65_535);
    host.handle(Time::ZERO, &ack);
    assert_eq!(host.transmits().count(), 0);
}

fn established(events: &[Event]) -> Vec<u16> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Established { tuple } => Some(tuple.remote_port),
            _ => None,
        })
        .collect()
}

#[test]
fn swap_events_hands_over_the_queue_oldest_first() {
    let mut host = Host::new(Config {
        timestamps: false,
        ..Config::default()
    });
    host.listen(80);
    open(&mut host, 40_000);
    open(&mut host, 40_001);
    assert!(host.has_events());

    let mut buf = Vec::new();
    host.swap_events(&mut buf);
    assert_eq!(established(&buf), [40_000, 40_001]);
    assert!(!host.has_events());

    // The buffer goes back with the last batch still in it: those are
    // dropped, and only the new connection's event comes out.
    open(&mut host, 40_002);
    host.swap_events(&mut buf);
    assert_eq!(established(&buf), [40_002]);
    assert!(!host.has_events());
    assert_eq!(host.events().count(), 0);
}
