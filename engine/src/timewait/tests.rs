use super::*;

fn entry(i: u32) -> TwRecord {
    TwRecord {
        snd_nxt: Seq(i),
        ..TwRecord::default()
    }
}

#[test]
fn fifo_across_chunks_and_recycles() {
    let mut r = TwRing::default();
    let n = CHUNK as u32 * 3 + 17;
    for i in 0..n {
        assert_eq!(r.push(entry(i), i), i as u64);
    }
    for i in 0..n {
        let (pos, e, expires_ms) = r.front().expect("entry");
        assert_eq!((pos, e.snd_nxt), (i as u64, Seq(i)));
        assert_eq!((r.expires_ms(pos), expires_ms), (i, i));
        r.pop_front();
    }
    assert!(r.front().is_none());
    // Refill after emptying: positions keep growing, storage is reused.
    assert_eq!(r.push(entry(1), 7), n as u64);
    assert_eq!(r.at(n as u64).snd_nxt, Seq(1));
    assert!(r.heap_bytes() <= 2 * CHUNK * std::mem::size_of::<TwRecord>() + 1024);
}

#[test]
fn front_slots_run_to_the_chunk_end_and_pop_at_once() {
    let mut r = TwRing::default();
    let n = CHUNK as u32 + 100;
    for i in 0..n {
        r.push(entry(i), 1_000 + i);
    }
    r.pop_front_n(10);
    let slots: Vec<_> = r
        .front_slots()
        .expect("slots")
        .map(|(p, e, x)| (p, e.snd_nxt, x))
        .collect();
    // From the head to the end of the first chunk, as front() gives them.
    assert_eq!(slots.len(), CHUNK - 10);
    for (k, &(p, seq, x)) in slots.iter().enumerate() {
        let i = 10 + k as u32;
        assert_eq!((p, seq, x), (i as u64, Seq(i), 1_000 + i));
    }
    // Skipping k gives the slots from the k-th on, and nothing past the chunk.
    for k in [0, 1, 5, CHUNK - 11, CHUNK - 10, CHUNK] {
        let front = r.front_slots().expect("slots");
        let skipped: Vec<_> = front.skipping(k).map(|(p, _, _)| p).collect();
        let want: Vec<_> = slots.iter().skip(k).map(|s| s.0).collect();
        assert_eq!(skipped, want, "skipping {k}");
    }
    r.pop_front_n(slots.len());
    // The second chunk, to the ring's tail.
    let rest: Vec<_> = r.front_slots().expect("slots").map(|(p, _, _)| p).collect();
    assert_eq!(rest, (CHUNK as u64..n as u64).collect::<Vec<_>>());
    r.pop_front_n(rest.len());
    assert!(r.front_slots().is_none() && r.front().is_none());
    assert_eq!(r.push(entry(7), 5_000), n as u64);
    assert_eq!(
        r.front().map(|(p, e, x)| (p, e.snd_nxt, x)),
        Some((n as u64, Seq(7), 5_000))
    );
}

#[test]
fn short_positions_resolve_near_head() {
    let mut r = TwRing::default();
    for i in 0..10 {
        r.push(entry(i), 0);
    }
    r.pop_front();
    assert_eq!(r.resolve(5), 5);
    assert_eq!(r.resolve((5 & POS_MASK) as u32), 5);
}

#[test]
fn a_late_expiry_starts_a_new_run_after_dead_slots() {
    let mut r = TwRing::default();
    assert_eq!(r.push(entry(1), 1_000), 0);
    assert_eq!(r.push(entry(2), 1_000 + 65_535), 1);
    // 65.536 s after the run's base: a new run.
    let p = r.push(entry(3), 1_000 + 65_536);
    assert_eq!(p, SPAN as u64);
    assert_eq!(r.expires_ms(1), 1_000 + 65_535);
    assert_eq!(r.expires_ms(p), 1_000 + 65_536);
    assert_eq!(r.at(p).snd_nxt, Seq(3));
    // The dead slots between are popped like stale ones.
    for _ in 0..SPAN {
        r.pop_front();
    }
    assert_eq!(
        r.front().map(|(pos, e, _)| (pos, e.snd_nxt)),
        Some((p, Seq(3)))
    );
    // Across chunks, 1.5 s apart (a run spans 96 s, so dead slots end
    // many runs), positions and expiries hold.
    for i in 0..3 * CHUNK as u32 {
        let q = r.push(entry(i), 1_000 + 65_536 + i * 1_500);
        assert_eq!(r.expires_ms(q), 1_000 + 65_536 + i * 1_500);
        assert_eq!(r.at(q).snd_nxt, Seq(i));
    }
    while let Some((q, e, exp)) = r.front() {
        assert_eq!(exp, r.expires_ms(q));
        let e = *e;
        if e.snd_nxt.0 > 3 {
            assert_eq!(exp, 1_000 + 65_536 + e.snd_nxt.0 * 1_500);
        }
        r.pop_front();
    }
}

#[test]
fn chunks_hold_only_pushed_records() {
    let mut r = TwRing::default();
    for i in 0..3 {
        r.push(entry(i), 10 + i);
    }
    assert_eq!(r.chunks[0].recs.len(), 3);
    // A late expiry pads its run with dead slots, then starts the next run.
    let p = r.push(entry(9), 100_000);
    assert_eq!((p, r.chunks[0].recs.len()), (SPAN as u64, SPAN + 1));
    // A chunk recycled through the spare comes back empty.
    for _ in 0..=SPAN {
        r.pop_front();
    }
    assert!(r.chunks.is_empty() && r.spare.as_ref().is_some_and(|c| c.recs.is_empty()));
    assert_eq!(r.push(entry(4), 100_001), p + 1);
    assert_eq!((r.chunks[0].recs.len(), r.at(p + 1).snd_nxt), (1, Seq(4)));
}
