//! SYN-RECEIVED's timer, Linux's request socket (`reqsk_timer_handler`):
//! the SYN-ACK again at 1, 3, 7, 15 and 31 s, the request dropped silently
//! at the expiry that finds `tcp_synack_retries` of them sent, and a
//! duplicate SYN answered at once, rate-limited, with the timer restarted
//! (`tcp_check_req`). `tests/scripts/synack-retries-zero.pkt` and
//! `syn-received-duplicate-syn-rearms.pkt` show both on Linux.

use teardown_engine::{CloseReason, Config, Event, Flags, Host, Segment, State, Time, Tuple};

fn server_tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], 80, [10, 0, 0, 2], port)
}

fn at(ms: u64) -> Time {
    Time::from_micros(ms * 1000)
}

/// A server host on port 80 without timestamps, `tcp_synack_retries` as
/// given, in SYN-RECEIVED: the peer's SYN at 0 ms drew one SYN-ACK.
fn opened(synack_retries: u8) -> Host {
    let mut host = Host::new(Config {
        timestamps: false,
        synack_retries,
        ..Config::default()
    });
    host.listen(80);
    host.handle(at(0), &syn());
    assert_eq!(syn_acks(&mut host), 1);
    host
}

/// The peer's SYN (ISN 1000) from port 40000.
fn syn() -> Segment {
    Segment::new(
        &server_tuple(40_000).reversed(),
        Flags::SYN,
        1_000,
        0,
        0,
        65_535,
    )
}

/// How many SYN-ACKs the server sent since the last look.
fn syn_acks(host: &mut Host) -> usize {
    host.transmits()
        .inspect(|s| assert_eq!(s.flags, Flags::SYN | Flags::ACK))
        .count()
}

fn dropped(host: &mut Host) -> bool {
    host.events().any(|e| {
        matches!(
            e,
            Event::Closed {
                from: State::SynReceived,
                reason: CloseReason::RetriesExhausted,
                ..
            }
        )
    })
}

/// Runs the timers to `ms` and says how many SYN-ACKs went and whether the
/// request was dropped.
fn until(host: &mut Host, ms: u64) -> (usize, bool) {
    host.handle_timeout(at(ms));
    (syn_acks(host), dropped(host))
}

#[test]
fn the_syn_ack_doubles_from_one_second_and_the_request_goes_at_63_s() {
    let mut host = opened(5);
    for expiry in [1_000, 3_000, 7_000, 15_000, 31_000] {
        assert_eq!(until(&mut host, expiry - 1), (0, false), "{expiry}");
        assert_eq!(until(&mut host, expiry + 1), (1, false), "{expiry}");
    }
    assert_eq!(until(&mut host, 62_999), (0, false));
    assert_eq!(until(&mut host, 63_001), (0, true));
    assert_eq!(host.state(&server_tuple(40_000)), State::Closed);
}

#[test]
fn with_no_synack_retries_the_request_goes_at_its_first_expiry_unresent() {
    let mut host = opened(0);
    assert_eq!(until(&mut host, 999), (0, false));
    assert_eq!(until(&mut host, 1_001), (0, true));
}

#[test]
fn a_duplicate_syn_draws_the_syn_ack_and_restarts_the_timer() {
    let mut host = opened(5);

    // 500 ms on: answered, and the timer is a full second from now.
    host.handle(at(500), &syn());
    assert_eq!(syn_acks(&mut host), 1);
    // 200 ms later: within tcp_invalid_ratelimit of that answer, so none.
    host.handle(at(700), &syn());
    assert_eq!(syn_acks(&mut host), 0);
    assert_eq!(host.stats().oow_acks_suppressed, 1);

    assert_eq!(until(&mut host, 1_001), (0, false));
    assert_eq!(until(&mut host, 1_499), (0, false));
    assert_eq!(until(&mut host, 1_501), (1, false));
    // The expiry counted: the next one doubles.
    assert_eq!(until(&mut host, 3_499), (0, false));
    assert_eq!(until(&mut host, 3_501), (1, false));
}

#[test]
fn a_client_resending_its_syn_keeps_the_request_from_expiring() {
    let mut host = opened(0);
    for ms in [900, 1_800, 2_700] {
        assert_eq!(until(&mut host, ms - 1), (0, false), "{ms}");
        host.handle(at(ms), &syn());
        assert_eq!(syn_acks(&mut host), 1, "{ms}");
    }
    assert_eq!(until(&mut host, 3_699), (0, false));
    assert_eq!(until(&mut host, 3_701), (0, true));
}
