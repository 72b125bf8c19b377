use super::*;

/// Polls every tick from `elapsed + 1` to `to`, returning (tick, deadline, value).
fn drive(w: &mut Wheel<u32>, to: u64) -> Vec<(u64, u64, u32)> {
    let mut out = Vec::new();
    for now in w.elapsed() + 1..=to {
        while let Some((d, v)) = w.poll(now) {
            out.push((now, d, v));
        }
        assert_eq!(w.elapsed(), now);
    }
    out
}

#[test]
fn node_is_24_bytes_for_u32() {
    assert!(size_of::<Node<u32>>() <= 24, "{}", size_of::<Node<u32>>());
}

#[test]
fn fires_exactly_at_deadline() {
    let mut w = Wheel::new();
    for d in [1u64, 5, 63, 64, 65, 100, 4095, 4096, 4097, 300_000] {
        w.insert(d, d as u32);
    }
    let fired = drive(&mut w, 300_001);
    assert_eq!(fired.len(), 10);
    for (now, d, v) in fired {
        assert_eq!(now, d, "fired late or early");
        assert_eq!(v as u64, d);
    }
    assert!(w.is_empty());
}

#[test]
fn not_before_deadline_with_coarse_polls() {
    let mut w = Wheel::new();
    w.insert(1000, 7);
    assert_eq!(w.poll(999), None);
    assert_eq!(w.elapsed(), 999);
    assert_eq!(w.next_deadline(), Some(1000));
    assert_eq!(w.poll(5000), Some((1000, 7)));
    assert_eq!(w.poll(5000), None);
    assert_eq!(w.elapsed(), 5000);
}

#[test]
fn past_deadline_fires_on_next_poll() {
    let mut w = Wheel::new();
    w.poll(100);
    w.insert(50, 1);
    w.insert(100, 2);
    assert_eq!(w.next_deadline(), Some(100));
    let mut got = vec![w.poll(100).unwrap(), w.poll(100).unwrap()];
    got.sort();
    assert_eq!(got, vec![(50, 1), (100, 2)]);
    assert_eq!(w.poll(100), None);
}

#[test]
fn same_deadline_all_returned() {
    let mut w = Wheel::new();
    for v in 0..10 {
        w.insert(70, v);
    }
    w.insert(71, 10);
    let mut got: Vec<_> = std::iter::from_fn(|| w.poll(70)).map(|(_, v)| v).collect();
    got.sort();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(w.poll(71), Some((71, 10)));
}

#[test]
fn an_emptied_wheel_gives_its_nodes_back() {
    let mut w = Wheel::new();
    let keys: Vec<TimerKey> = (0..100_000u32)
        .map(|i| w.insert(10 + i as u64, i))
        .collect();
    assert!(w.heap_bytes() >= 100_000 * 24);
    for k in keys {
        w.remove(k);
    }
    assert!(w.heap_bytes() < 100_000, "{}", w.heap_bytes());
    let k = w.insert(5, 7);
    assert_eq!(w.poll(5), Some((5, 7)));
    assert!(w.is_empty());
    let _ = k;
}

#[test]
fn remove_cancels() {
    let mut w = Wheel::new();
    let a = w.insert(10, 1);
    w.insert(10, 2);
    let c = w.insert(5000, 3);
    assert_eq!(w.deadline(c), 5000);
    assert_eq!(w.remove(a), 1);
    assert_eq!(w.remove(c), 3);
    assert_eq!(w.len(), 1);
    assert_eq!(drive(&mut w, 10_000), vec![(10, 10, 2)]);
    assert_eq!(w.next_deadline(), None);
}

#[test]
fn reinsert_reuses_freed_nodes() {
    let mut w = Wheel::with_capacity(4);
    let keys: Vec<_> = (0..4).map(|i| w.insert(100 + i, i as u32)).collect();
    let bytes = w.heap_bytes();
    for round in 0..100u32 {
        let k = keys[(round % 4) as usize];
        let d = w.deadline(k);
        w.remove(k);
        let k2 = w.insert(d, round);
        assert_eq!(k2, k, "freed slab entry reused");
    }
    assert_eq!(w.heap_bytes(), bytes);
    assert_eq!(w.len(), 4);
}

#[test]
fn with_capacity_gives_the_keys_of_new() {
    // Twin wheels, one with its nodes on the free list up front: the same
    // inserts, cancels and polls give the same keys and firing order, past
    // the threaded nodes (300) and after the wheel empties and gives its
    // nodes back (both hold more than `SHRINK_AT` by then).
    let (mut a, mut b) = (Wheel::with_capacity(300), Wheel::new());
    let mut x = 0u64;
    let mut next = || {
        x += 1;
        crate::ports::mix(x)
    };
    for round in 0..3 {
        let mut keys = Vec::new();
        for i in 0..600u32 {
            let r = next();
            if r % 5 == 0 && !keys.is_empty() {
                let (ka, kb) = keys.swap_remove((r / 5) as usize % keys.len());
                assert_eq!(a.remove(ka), b.remove(kb));
            } else {
                let d = a.elapsed() + 1 + r % 5000;
                let (ka, kb) = (a.insert(d, i), b.insert(d, i));
                assert_eq!(ka, kb, "round {round}, insert {i}");
                keys.push((ka, kb));
            }
        }
        assert!(a.len() > 300, "{}", a.len());
        let to = a.elapsed() + 10_000;
        assert_eq!(drive(&mut a, to), drive(&mut b, to));
        assert!(a.is_empty() && b.is_empty());
    }
}

#[test]
fn reset_is_remove_then_insert() {
    // Twin wheels: one moves timers with reset, the other with remove
    // and insert. Keys, firing order and emptying must agree, across
    // levels, into the past, and for the sole timer of a large wheel.
    let (mut a, mut b) = (Wheel::new(), Wheel::new());
    let mut keys: Vec<_> = (0..600u32)
        .map(|i| {
            let d = 5 + u64::from(i) * 37 % 5000;
            (a.insert(d, i), b.insert(d, i))
        })
        .collect();
    for (moved, (round, (ka, kb))) in keys.iter_mut().enumerate().step_by(3).enumerate() {
        let d = [2, 700, 90_000, 7][round % 4] + moved as u64 % 11;
        let v = 1000 + round as u32;
        let before = *ka;
        *ka = a.reset(*ka, d, v);
        b.remove(*kb);
        *kb = b.insert(d, v);
        assert_eq!(*ka, before);
        assert_eq!(*ka, *kb);
        assert_eq!(a.deadline(*ka), d);
    }
    assert_eq!(drive(&mut a, 3000), drive(&mut b, 3000));
    let live: Vec<_> = keys.iter().filter(|(k, _)| a.is_live(*k)).collect();
    for &&(ka, kb) in &live[1..] {
        assert_eq!(a.remove(ka), b.remove(kb));
    }
    let (ka, kb) = *live[0];
    assert_eq!(a.len(), 1);
    let (ka, kb) = (a.reset(ka, 4000, 9), {
        b.remove(kb);
        b.insert(4000, 9)
    });
    assert_eq!(ka, kb);
    assert_eq!(a.heap_bytes(), b.heap_bytes());
    assert_eq!(drive(&mut a, 200_000), drive(&mut b, 200_000));
    assert!(a.is_empty() && b.is_empty());
}

#[test]
fn far_deadlines_across_levels() {
    let mut w = Wheel::new();
    let ds: Vec<u64> = (0..LEVELS as u32)
        .flat_map(|l| {
            let b = 1u64 << (l * LEVEL_BITS);
            [b * 63 - 1, b * 64, b * 64 + 1, b * 64 * 3 + 17]
        })
        .collect();
    for (i, &d) in ds.iter().enumerate() {
        w.insert(d, i as u32);
    }
    let mut fired = Vec::new();
    // Sleep-driven: jump straight to each next_deadline like a real driver.
    while let Some(next) = w.next_deadline() {
        assert!(next >= w.elapsed());
        while let Some((d, v)) = w.poll(next) {
            assert!(d <= next);
            assert_eq!(
                d, next,
                "a lower bound must be reached before the deadline passes"
            );
            fired.push((d, v));
        }
    }
    let mut want: Vec<_> = ds.iter().enumerate().map(|(i, &d)| (d, i as u32)).collect();
    want.sort();
    fired.sort();
    assert_eq!(fired, want);
}

#[test]
fn huge_deadlines_are_clamped_not_lost() {
    let mut w = Wheel::new();
    w.insert(SPAN * 5 + 3, 1);
    let max = w.insert(u64::MAX, 2);
    w.insert(SPAN - 1, 3);
    assert!(w.next_deadline().unwrap() < SPAN);
    assert_eq!(w.poll(SPAN - 2), None);
    assert_eq!(w.poll(SPAN - 1), Some((SPAN - 1, 3)));
    assert_eq!(w.poll(SPAN * 5 + 2), None);
    assert_eq!(w.poll(SPAN * 5 + 3), Some((SPAN * 5 + 3, 1)));
    assert_eq!(w.poll(SPAN * 9), None);
    assert_eq!(w.deadline(max), u64::MAX);
    assert_eq!(w.remove(max), 2);
    assert!(w.is_empty());
}

#[test]
fn deadlines_near_u64_max() {
    let mut w = Wheel::new();
    assert_eq!(w.poll(u64::MAX - 100), None);
    w.insert(u64::MAX, 1);
    w.insert(u64::MAX - 50, 2);
    assert!(w.next_deadline().unwrap() <= u64::MAX - 50);
    assert_eq!(w.poll(u64::MAX - 51), None);
    assert_eq!(w.poll(u64::MAX - 50), Some((u64::MAX - 50, 2)));
    assert_eq!(w.poll(u64::MAX - 1), None);
    assert_eq!(w.poll(u64::MAX), Some((u64::MAX, 1)));
    assert_eq!(w.poll(u64::MAX), None);
}

#[test]
fn wrap_across_top_level_boundary() {
    let mut w = Wheel::new();
    w.poll(SPAN - 10);
    w.insert(SPAN + 5, 1);
    w.insert(SPAN - 3, 2);
    assert_eq!(w.next_deadline(), Some(SPAN - 3));
    assert_eq!(w.poll(SPAN - 3), Some((SPAN - 3, 2)));
    assert_eq!(w.poll(SPAN + 4), None);
    assert_eq!(w.poll(SPAN + 5), Some((SPAN + 5, 1)));
}

/// The placement rule written out whole, as one formula: the due slot, the
/// park beyond the span (which never holds a deadline when the span runs
/// past `u64::MAX`), else the highest differing digit's level, at most the
/// top one.
fn slot_by_rule(elapsed: u64, deadline: u64) -> usize {
    if deadline <= elapsed {
        return DUE;
    }
    let top_digit = elapsed >> TOP_SHIFT;
    let horizon = (top_digit << TOP_SHIFT).checked_add(SPAN);
    if horizon.is_some_and(|h| deadline >= h) {
        return (LEVELS - 1) * SLOTS + ((top_digit + SLOT_MASK) & SLOT_MASK) as usize;
    }
    let level = (((elapsed ^ deadline) | SLOT_MASK).ilog2() / LEVEL_BITS).min(LEVELS as u32 - 1);
    level as usize * SLOTS + ((deadline >> (level * LEVEL_BITS)) & SLOT_MASK) as usize
}

/// `slot_for`'s fast path (a deadline agreeing with `elapsed` above the top
/// digit) and its far path place every deadline where the whole rule does:
/// each level's edges, across `2^36` boundaries and near `u64::MAX`.
#[test]
fn slot_for_is_the_placement_rule() {
    let mut elapseds = vec![0, 1, 63, 64, SPAN - 10, SPAN - 1, SPAN, SPAN * 7 + 12_345];
    elapseds.extend([u64::MAX - SPAN, u64::MAX - 100, u64::MAX]);
    // A pseudo-random spread besides the edges (the crate's splitmix64 mix
    // of a counter).
    let mut x = 0u64;
    let mut next = || {
        x += 1;
        crate::ports::mix(x)
    };
    elapseds.extend((0..32).map(|_| next() >> (next() % 64)));
    let mut w: Wheel<u32> = Wheel::new();
    for elapsed in elapseds {
        w.elapsed = elapsed;
        let mut offsets: Vec<u64> = (0..64).flat_map(|b| [1u64 << b, (1u64 << b) - 1]).collect();
        offsets.extend((0..64).map(|_| next() >> (next() % 64)));
        for off in offsets {
            for deadline in [elapsed.saturating_add(off), elapsed.saturating_sub(off)] {
                assert_eq!(
                    w.slot_for(deadline),
                    slot_by_rule(elapsed, deadline),
                    "elapsed {elapsed}, deadline {deadline}"
                );
            }
        }
    }
}

/// The insert that takes the last free node prefetches past the slab (the
/// free list's `NIL`), and the next, with none free, grows it: both leave
/// every timer and key as they were.
#[test]
fn insert_prefetches_past_the_slab() {
    let mut w = Wheel::<u32>::with_capacity(3);
    let keys: Vec<TimerKey> = (0..5u32).map(|i| w.insert(10 + i as u64, i)).collect();
    assert_eq!(
        keys.iter().map(|k| k.idx()).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(keys.iter().all(|&k| w.is_live(k)));
    assert_eq!(w.remove(keys[4]), 4);
    let fired: Vec<u32> = drive(&mut w, 20).into_iter().map(|(_, _, v)| v).collect();
    assert_eq!(fired, [0, 1, 2, 3]);
}

/// A key carries its index below the top bit, up to the slab's cap.
#[test]
fn timer_key_round_trips_up_to_the_cap() {
    for idx in [0, 1, KEY_BIT - 2, KEY_BIT - 1] {
        assert_eq!(TimerKey::new(idx).idx(), idx);
    }
    assert_eq!(size_of::<Option<TimerKey>>(), 4);
}
