use super::*;

/// Keys are their own references here; a weak hash makes collisions and
/// long overflow chains common.
fn h(r: u32) -> u64 {
    (r as u64 % 7).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (r as u64 >> 3)
}

#[test]
fn tag_matching_is_exact() {
    let mut b = Bucket::EMPTY;
    b.tags = [7, 0, 7, 0x87, 6, 8, 7, 0xff, 0, 1, 7, 0x80];
    assert_eq!(b.matching(7), 0b0100_0100_0101);
    assert_eq!(b.matching(EMPTY), 0b0001_0000_0010);
    assert_eq!(b.matching(0x80), 0b1000_0000_0000);
    assert_eq!(b.matching(0xff), 0b0000_1000_0000);
    assert_eq!(b.matching(2), 0);
    // The count's bytes are never taken for tags, whatever they hold.
    for overflow in [0, 7, 0x0707_0707, u32::MAX, 0x8000_0080] {
        b.overflow = overflow;
        assert_eq!(b.matching(7), 0b0100_0100_0101);
        assert_eq!(b.matching(EMPTY), 0b0001_0000_0010);
        assert_eq!(b.matching(0xff), 0b0000_1000_0000);
    }
    for t in 0..=255u8 {
        let want = (0..SLOTS)
            .filter(|&i| b.tags[i] == t)
            .fold(0u16, |m, i| m | 1 << i);
        assert_eq!(b.matching(t), want, "{t}");
    }
}

#[test]
fn home_is_the_hash_top_bits_for_every_size() {
    let hashes = [
        0,
        1,
        u64::MAX,
        1 << 63,
        0x9e37_79b9_7f4a_7c15,
        (1 << 63) - 1,
    ];
    for log2 in 0..20 {
        let ix = Index::with_buckets(1 << log2);
        for &h in &hashes {
            let want = h.checked_shr(64 - log2).unwrap_or(0) as usize;
            assert_eq!(ix.home(h), want, "{log2} {h:#x}");
            assert!(ix.home(h) < ix.buckets.len());
        }
    }
}

#[test]
fn insert_find_remove_like_a_set() {
    let mut ix = Index::with_capacity(0);
    for r in 0..5_000 {
        ix.insert_unique(h(r), r, h);
    }
    assert_eq!(ix.len(), 5_000);
    for r in 0..5_000 {
        assert_eq!(ix.find(h(r), |x| x == r), Some(r), "{r}");
    }
    assert_eq!(ix.find(h(9_999), |x| x == 9_999), None);
    for r in (0..5_000).step_by(2) {
        assert_eq!(ix.remove(h(r), |x| x == r), Some(r));
    }
    assert_eq!(ix.remove(h(0), |x| x == 0), None);
    for r in 0..5_000 {
        let want = (r % 2 == 1).then_some(r);
        assert_eq!(ix.find(h(r), |x| x == r), want, "{r}");
    }
    let mut all: Vec<u32> = ix.iter().collect();
    all.sort_unstable();
    assert_eq!(all, (1..5_000).step_by(2).collect::<Vec<_>>());
}

#[test]
fn removals_give_back_the_overflow_counts() {
    // One home bucket for everything: a chain across many buckets.
    let mut ix = Index::with_capacity(1 << 10);
    let same = |_: u32| 0u64;
    for r in 0..100 {
        ix.insert_unique(0, r, same);
    }
    assert!(ix.buckets[0].overflow > 0);
    for r in 0..100 {
        assert_eq!(ix.remove(0, |x| x == r), Some(r));
    }
    assert!(ix
        .buckets
        .iter()
        .all(|b| b.overflow == 0 && b.tags == [EMPTY; SLOTS]));
}

#[test]
fn a_miss_ends_when_every_bucket_has_sent_an_entry_on() {
    // Two buckets of 12. Bucket 0 fills and sends 12 on to bucket 1,
    // which fills; 0 gives a slot back and takes 111 sent on from 1;
    // then 1 gives a slot back. Both counts stay 1 with room in both:
    // only the probe bound ends a miss.
    let mut ix = Index::with_buckets(2);
    let home = |r: u32| if r < 100 { 0 } else { 1u64 << 63 };
    let add = |ix: &mut Index, r: u32| {
        ix.place(home(r), r);
        ix.len += 1;
    };
    (0..13).for_each(|r| add(&mut ix, r));
    (100..111).for_each(|r| add(&mut ix, r));
    assert_eq!(ix.remove(home(0), |x| x == 0), Some(0));
    add(&mut ix, 111);
    assert_eq!(ix.remove(home(100), |x| x == 100), Some(100));
    assert!(ix.buckets.iter().all(|b| b.overflow == 1));
    assert_eq!(ix.find(home(50), |x| x == 50), None);
    assert_eq!(ix.find(home(150), |x| x == 150), None);
    assert_eq!(ix.find(home(12), |x| x == 12), Some(12));
    assert_eq!(ix.find(home(111), |x| x == 111), Some(111));
}

#[test]
fn growth_keeps_every_entry_and_the_load_bound() {
    let mut ix = Index::with_capacity(10);
    let before = ix.buckets.len();
    for r in 0..100_000 {
        ix.insert_unique(h(r), r, h);
    }
    assert!(ix.buckets.len() > before);
    assert!(ix.len() * MAX_LOAD_DEN <= ix.buckets.len() * MAX_LOAD_NUM);
    assert!((0..100_000).all(|r| ix.find(h(r), |x| x == r) == Some(r)));
    assert_eq!(ix.allocation_size(), ix.buckets.len() * 64);
}

#[test]
fn grows_exactly_when_an_insert_would_pass_the_load_bound() {
    for start in [1, 2, 4, 64] {
        let mut ix = Index::with_buckets(start);
        for r in 0..2_000u32 {
            let buckets = ix.buckets.len();
            let over = (ix.len() + 1) * MAX_LOAD_DEN > buckets * MAX_LOAD_NUM;
            ix.insert_unique(h(r), r, h);
            assert_eq!(ix.buckets.len() > buckets, over, "{start} {r}");
        }
    }
}

#[test]
fn prefetch_changes_nothing() {
    let mut ix = Index::with_capacity(100);
    for r in 0..50 {
        ix.insert_unique(h(r), r, h);
    }
    for r in 0..200 {
        ix.prefetch(h(r));
    }
    assert!((0..50).all(|r| ix.find(h(r), |x| x == r) == Some(r)));
    // The home bucket's candidates include the entry when it lives there.
    let homed = (0..50)
        .filter(|&r| ix.home_candidates(h(r)).any(|x| x == r))
        .count();
    assert!(homed > 0);
}

proptest::proptest! {
    /// Any interleaving of inserts and removals, over a hash with many
    /// collisions, answers like a set.
    #[test]
    fn behaves_like_a_set(ops in proptest::collection::vec((0u32..600, proptest::bool::ANY), 1..3000)) {
        let weak = |r: u32| (r as u64 % 13) << 60 | (r as u64 % 5);
        let mut ix = Index::with_capacity(0);
        let mut model = std::collections::BTreeSet::new();
        for (r, add) in ops {
            if add && !model.contains(&r) {
                ix.insert_unique(weak(r), r, weak);
                model.insert(r);
            } else if !add {
                proptest::prop_assert_eq!(ix.remove(weak(r), |x| x == r).is_some(), model.remove(&r));
            }
            proptest::prop_assert_eq!(ix.find(weak(r), |x| x == r).is_some(), model.contains(&r));
        }
        proptest::prop_assert_eq!(ix.len(), model.len());
        let mut all: Vec<u32> = ix.iter().collect();
        all.sort_unstable();
        proptest::prop_assert_eq!(all, model.into_iter().collect::<Vec<_>>());
        // Every overflow count is what the entries' positions imply.
        let mut expect = vec![0u32; ix.buckets.len()];
        for (b, bucket) in ix.buckets.iter().enumerate() {
            for (i, &t) in bucket.tags.iter().enumerate() {
                if t != EMPTY {
                    let mut h = ix.home(weak(bucket.refs[i]));
                    while h != b {
                        expect[h] += 1;
                        h = (h + 1) & ix.mask();
                    }
                }
            }
        }
        let got: Vec<u32> = ix.buckets.iter().map(|b| b.overflow).collect();
        proptest::prop_assert_eq!(got, expect);
    }
}
