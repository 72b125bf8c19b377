//! Each bound checked against a hand-computed case.

use super::*;

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Issue 14: 1,500 closes/s from one address to one port, range 28,232: the
/// server's TIME-WAIT is bounded by the 4-tuples (14,116), not 90,000.
#[test]
fn one_address_one_port_is_bounded_by_the_tuples() {
    let b = time_wait(1500.0, 60.0, even_ports(28_232), 131_072.0);
    assert_eq!(b.time_wait_by_rate, 90_000.0);
    assert_eq!(b.population, 14_116.0);
    assert_eq!(b.binds, Bound::Tuples);
    assert_eq!(b.overflow_per_sec, 0.0);
    assert!(b.transient.is_none());
}

/// Both ends in one namespace: the client's TIME-WAIT towards one port
/// (bounded by its 32 even ports) plus the server's, plus 500 orphaned
/// FIN-WAIT-2 against 1,000 buckets.
#[test]
fn both_ends_and_orphans_share_the_buckets() {
    let pools = [
        Pool {
            rate: 10.0,
            lifetime: 60.0,
            tuples: 32.0,
        },
        Pool {
            rate: 10.0,
            lifetime: 60.0,
            tuples: f64::INFINITY,
        },
    ];
    let b = buckets(&pools, 500.0, 1000.0);
    assert_eq!(b.time_wait_by_rate, 1200.0);
    assert_eq!(b.time_wait, 632.0);
    assert_eq!(b.demand, 1132.0);
    assert_eq!((b.binds, b.population), (Bound::Buckets, 1000.0));
    assert!(near(b.skipped_fraction, 1.0 - 1000.0 / 1132.0));
    assert!(near(b.overflow_per_sec, 20.0 * (1.0 - 1000.0 / 1132.0)));
    let b = buckets(&pools, 0.0, 1000.0);
    assert_eq!((b.binds, b.population), (Bound::Tuples, 632.0));
}

/// A cap of 4,096 below 14,116 tuples: 1 - 4096/14116 = 70.98 % skip, where
/// the planners' (R - cap/60)/R says 95.4 % at 1,500/s.
#[test]
fn a_cap_below_the_tuples_skips_one_minus_cap_over_tuples() {
    let b = time_wait(1500.0, 60.0, 14_116.0, 4096.0);
    assert_eq!(b.binds, Bound::Buckets);
    assert_eq!(b.population, 4096.0);
    assert!(near(b.skipped_fraction, 1.0 - 4096.0 / 14_116.0));
    assert!(near(b.overflow_per_sec, 1500.0 * (1.0 - 4096.0 / 14_116.0)));
    let old = (1500.0 - 4096.0 / 60.0) / 1500.0;
    assert!(old > b.skipped_fraction + 0.2);
    let t = b.transient.unwrap();
    assert!(near(t.fill_s, 4096.0 / 1500.0));
    assert!(near(t.skipped_fraction, b.skipped_fraction));
    assert_eq!(t.until_s, 60.0);
    // A 10 s window from empty: all but the first 4,096 entries, less the
    // reopened tuples, skip.
    assert!(near(
        t.skipped_in(10.0),
        (15_000.0 - 4096.0) * (1.0 - 4096.0 / 14_116.0)
    ));
    assert_eq!(t.skipped_in(1.0), 0.0);
}

/// Without tuple reuse the classic answer: 3,000/s, cap 131,072: the excess
/// over 131,072 / 60 = 2,184.5/s skips; and everything skips until 60 s.
#[test]
fn many_tuples_give_the_classic_overflow() {
    let b = time_wait(3000.0, 60.0, f64::INFINITY, 131_072.0);
    assert_eq!(b.binds, Bound::Buckets);
    assert!(near(b.overflow_per_sec, 3000.0 - 131_072.0 / 60.0));
    let t = b.transient.unwrap();
    assert_eq!(t.skipped_fraction, 1.0);
    assert!(near(t.fill_s, 131_072.0 / 3000.0));
    let ok = time_wait(1000.0, 60.0, f64::INFINITY, 131_072.0);
    assert_eq!((ok.binds, ok.population), (Bound::Rate, 60_000.0));
}

#[test]
fn even_ports_are_half_the_range() {
    assert_eq!(even_ports(28_232), 14_116.0);
    assert_eq!(even_ports(64), 32.0);
    assert_eq!(even_ports(1), 1.0);
}

#[test]
fn reuse_needs_timestamps_and_loopback_for_2() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let far: IpAddr = "10.1.1.1".parse().unwrap();
    assert_eq!(reuse(2, 1, Some(lo)), Reuse::Applies);
    assert_eq!(reuse(2, 1, Some(far)), Reuse::NotLoopback);
    assert_eq!(reuse(1, 1, Some(far)), Reuse::Applies);
    assert_eq!(reuse(1, 0, Some(far)), Reuse::NoTimestamps);
    assert_eq!(reuse(2, 0, Some(lo)), Reuse::NoTimestamps);
    assert_eq!(reuse(0, 1, Some(lo)), Reuse::Off);
}

#[test]
fn headroom_solves_piecewise_demand() {
    // 1,500/s × 60 s against 131,072 buckets: 1.4564 times today.
    let h = headroom(131_072.0, |g| 1500.0 * g * 60.0).unwrap();
    assert!((h - 131_072.0 / 90_000.0).abs() < 1e-6);
    // Bounded by 14,116 tuples: never reaches the cap.
    assert_eq!(
        headroom(131_072.0, |g| (1500.0 * g * 60.0).min(14_116.0)),
        None
    );
    // Already past it.
    let h = headroom(16.0, |g| 40.0 * g * 60.0).unwrap();
    assert!((h - 16.0 / 2400.0).abs() < 1e-9);
}
