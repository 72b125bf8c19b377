//! Host's time contract: a `now` earlier than one already seen is taken as the
//! latest time seen, so nothing is armed, stamped or fired in the past.

use teardown_engine::{Config, Flags, Host, Time, Tuple};

fn tuple(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], port, [10, 0, 0, 2], 80)
}

#[test]
fn an_earlier_now_counts_as_the_latest_seen() {
    let mut host = Host::new(Config::default());
    let late = Time::from_millis(10_000);
    host.connect(late, tuple(40_000)).expect("first connect");
    // The driver's clock steps back five seconds: this SYN leaves at 10 s too.
    host.connect(Time::from_millis(5_000), tuple(40_001))
        .expect("second connect");
    assert_eq!(host.transmits().count(), 2);
    // Both SYNs' retransmission timers run from 10 s (RTO 1 s): neither fires
    // at 10.5 s, which a timer armed from 5 s would.
    let deadline = host.poll_timeout().expect("the SYNs' timers");
    assert!(deadline <= Time::from_millis(11_000), "{deadline:?}");
    host.handle_timeout(Time::from_millis(10_500));
    assert_eq!(host.transmits().count(), 0);
    host.handle_timeout(Time::from_millis(11_000));
    let resent: Vec<_> = host.transmits().collect();
    assert_eq!(resent.len(), 2);
    assert!(resent.iter().all(|s| s.flags == Flags::SYN));
}
