use super::perturb::PERTURB_MASK;
use super::*;

impl Ports {
    fn bucket(&self, ip: u32, port: u16) -> u32 {
        self.buckets(ip)
            .filter(|_| self.in_range(port))
            .map_or(0, |b| b[(port - self.low) as usize])
    }
}

fn t(port: u16) -> Tuple {
    Tuple::new([10, 0, 0, 1], port, [10, 0, 0, 2], 80)
}

#[test]
fn a_bucket_lives_while_any_entry_holds_the_port() {
    let mut p = Ports::new((40_000, 40_009), 1);
    let ip = t(0).local_ip;
    let other = Tuple::new([10, 0, 0, 1], 40_002, [10, 0, 0, 3], 80);
    p.acquire(&t(40_002), false);
    p.acquire(&other, false);
    assert_eq!(p.bucket(ip, 40_002) & USERS, 2);
    p.release(&other);
    assert_eq!(p.bucket(ip, 40_002) & USERS, 1);
    p.release(&t(40_002));
    assert_eq!(p.bucket(ip, 40_002), 0);
    // Outside the range: not tracked.
    p.acquire(&t(80), false);
    assert_eq!(p.bucket(ip, 80), 0);
}

#[test]
fn a_bound_port_stays_bound_until_its_last_entry_goes() {
    let mut p = Ports::new((40_000, 40_009), 1);
    let ip = t(0).local_ip;
    p.acquire(&t(40_003), true);
    assert!(Ports::is_bound(p.bucket(ip, 40_003)));
    p.release(&t(40_003));
    assert!(!Ports::is_bound(p.bucket(ip, 40_003)));
}

#[test]
fn a_bucket_marks_its_entry_to_the_first_destination_while_it_is_there() {
    let mut p = Ports::new((40_000, 40_009), 1);
    let ip = t(0).local_ip;
    let other = Tuple::new([10, 0, 0, 1], 40_004, [10, 0, 0, 3], 80);
    // The first active open names the first destination.
    p.acquire(&t(40_002), false);
    assert!(p.is_first_dest(t(0).remote_ip, 80));
    assert!(!p.is_first_dest(other.remote_ip, 80));
    assert!(Ports::holds_first_dest(p.bucket(ip, 40_002)));
    // Another destination on a port does not mark it; the first one
    // joining it does, and leaving unmarks it while the other stays.
    p.acquire(&other, false);
    assert!(!Ports::holds_first_dest(p.bucket(ip, 40_004)));
    p.acquire(&t(40_004), false);
    assert!(Ports::holds_first_dest(p.bucket(ip, 40_004)));
    p.release(&t(40_004));
    assert_eq!(p.bucket(ip, 40_004), 1);
    p.release(&t(40_002));
    assert_eq!(p.bucket(ip, 40_002), 0);
}

#[test]
fn the_start_is_even_and_moves_on_after_a_success() {
    let mut p = Ports::new((40_000, 40_999), 7);
    let (slot, a) = p.start(1, 2, 80);
    assert_eq!(a % 2, 0);
    assert!(a < 1000);
    // A first-try success moves the start by at least one step (2 ports).
    p.advance(slot, 0, 0);
    assert_eq!(p.start(1, 2, 80).1, (a + 2) % 1000);
    // Another destination has its own offset.
    assert_ne!(p.port_offset(1, 2, 80), p.port_offset(1, 3, 80));
}

#[test]
fn each_destination_keeps_its_own_start_when_searches_alternate() {
    let mut p = Ports::new((40_000, 40_999), 7);
    let (a, b) = (p.port_offset(1, 2, 80), p.port_offset(1, 3, 80));
    assert_ne!(a & PERTURB_MASK, b & PERTURB_MASK);
    let (slot_a, start_a) = p.start(1, 2, 80);
    p.advance(slot_a, 0, 0);
    let (slot_b, start_b) = p.start(1, 3, 80);
    assert_ne!(slot_a.0, slot_b.0);
    p.advance(slot_b, 4, 0);
    // Back to the first: its slot, moved once; then the second's, moved once.
    let (again_a, moved_a) = p.start(1, 2, 80);
    assert_eq!((again_a.0, moved_a), (slot_a.0, (start_a + 2) % 1000));
    let (again_b, moved_b) = p.start(1, 3, 80);
    assert_eq!((again_b.0, moved_b), (slot_b.0, (start_b + 6) % 1000));
}

/// A search to the destination searched last (its offset kept, not
/// hashed) starts where one after a search elsewhere (hashed anew) does.
#[test]
fn a_repeated_destination_starts_as_a_fresh_one() {
    let (mut kept, mut fresh) = (
        Ports::new((40_000, 40_999), 7),
        Ports::new((40_000, 40_999), 7),
    );
    for round in 0..5u32 {
        let (slot, start) = kept.start(1, 2, 80);
        fresh.start(1, 3, 80);
        let (fresh_slot, fresh_start) = fresh.start(1, 2, 80);
        assert_eq!(start, fresh_start, "round {round}");
        kept.advance(slot, 2 * round, u64::from(round));
        fresh.advance(fresh_slot, 2 * round, u64::from(round));
    }
}

/// An entry taken at the buckets a search found counts as one taken by
/// its tuple.
#[test]
fn acquire_at_the_found_buckets_is_acquire() {
    let (mut at, mut plain) = (
        Ports::new((40_000, 40_009), 1),
        Ports::new((40_000, 40_009), 1),
    );
    let ip = t(0).local_ip;
    let other = Tuple::new([10, 0, 0, 1], 40_004, [10, 0, 0, 3], 80);
    for (tuple, bound) in [
        (t(40_002), false),
        (other, false),
        (t(40_004), false),
        (t(40_006), true),
    ] {
        // The first entry makes the address's buckets; later ones find them.
        match at.local_at(ip) {
            Some(found) => at.acquire_at(found, &tuple, bound),
            None => at.acquire(&tuple, bound),
        }
        plain.acquire(&tuple, bound);
        assert_eq!(at.buckets(ip), plain.buckets(ip));
    }
    assert_eq!(at.bucket(ip, 40_004), 2 | TO_FIRST);
    assert!(Ports::is_bound(at.bucket(ip, 40_006)));
}

/// Addresses asked for in turn, more than the cache has slots and some
/// sharing one, each find their own buckets.
#[test]
fn each_local_address_finds_its_own_buckets() {
    let mut p = Ports::new((40_000, 40_009), 1);
    let n = RECENT_LOCALS as u32 + 16;
    let port = |k: u32| 40_000 + (k % 10) as u16;
    for k in 0..n {
        let local_ip = 0x0a00_0000 + k;
        p.acquire(
            &Tuple {
                local_ip,
                ..t(port(k))
            },
            false,
        );
    }
    for k in (0..n).chain((0..n).rev()) {
        let ip = 0x0a00_0000 + k;
        assert_eq!(p.bucket(ip, port(k)), 1 | TO_FIRST, "{ip:#x}");
        assert_eq!(p.bucket(ip, port(k + 1)), 0, "{ip:#x}");
    }
}

/// A peek is where the destination's next search starts: none before
/// its first, the same when asked again (kept, not hashed), and moved
/// with the start by a search since, as destinations alternate.
#[test]
fn a_peek_is_the_next_start() {
    let mut p = Ports::new((40_000, 40_999), 7);
    let dests = [(1, 2, 80), (1, 3, 80), (4, 2, 443)];
    for round in 0..3 {
        for (i, &(s, d, port)) in dests.iter().enumerate() {
            let peeked = [p.peek_start(s, d, port), p.peek_start(s, d, port)];
            let (slot, start) = p.start(s, d, port);
            let want = (round > 0).then_some(start);
            assert_eq!(peeked, [want; 2], "round {round}, destination {i}");
            p.advance(slot, 2 * i as u32, 0);
            assert_eq!(p.peek_start(s, d, port), Some(p.start(s, d, port).1));
            assert_ne!(p.start(s, d, port).1, start);
        }
    }
}

#[test]
fn an_odd_range_scans_an_even_count() {
    let p = Ports::new((40_000, 40_010), 1);
    assert_eq!(p.range_len(), 11);
    assert_eq!(p.even_remaining(), 10);
}

proptest::proptest! {
    /// After any acquires and releases (to the first destination and to
    /// another, bound or not, on two addresses), each port's [`Taken`] bit
    /// says what its bucket does: bound, or holding an entry to the first
    /// destination.
    #[test]
    fn the_taken_bits_follow_the_buckets(
        ops in proptest::collection::vec((0u16..40, 0u8..2, proptest::bool::ANY, 0u8..2), 1..300),
    ) {
        let mut p = Ports::new((40_000, 40_039), 1);
        let mut held: Vec<(Tuple, bool)> = Vec::new();
        for (port, dest, bound, addr) in ops {
            let tuple = Tuple::new([10, 0, 0, 1 + addr], 40_000 + port, [10, 0, 0, 2 + dest], 80);
            match held.iter().position(|(t, _)| *t == tuple) {
                Some(i) => {
                    p.release(&held.swap_remove(i).0);
                }
                None => {
                    p.acquire(&tuple, bound);
                    held.push((tuple, bound));
                }
            }
        }
        for addr in 1..3 {
            let ip = u32::from_be_bytes([10, 0, 0, addr]);
            let Some(at) = p.local_at(ip) else { continue };
            for idx in 0..40 {
                let bucket = p.buckets_at(at)[idx];
                proptest::prop_assert_eq!(p.taken_at(at).get(idx), bucket & REFUSED != 0, "port {}", idx);
            }
        }
    }
}
